/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Checker for dumps of the tick test guest: walks the ticked pages in the
 * guest's order and verifies the counter pattern (see tick-invariant.h and
 * docs/devel/test-guests.md). Pure C + GLib so functional tests link it.
 */
#include "qemu/osdep.h"
#include "qemu/byteorder.h"

#include "tick-invariant.h"

static void tick_why(GString *why, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void tick_why(GString *why, const char *fmt, ...)
{
    va_list ap;

    if (!why) {
        return;
    }
    va_start(ap, fmt);
    g_string_append_vprintf(why, fmt, ap);
    va_end(ap);
}

/* The piece holding [gpa, gpa + size), or NULL. *hint speeds up walks. */
static const TickMemPiece *tick_find(const TickMemPiece *mem, size_t n_mem,
                                     uint64_t gpa, uint64_t size, size_t *hint)
{
    size_t i;

    for (i = 0; i < n_mem; i++) {
        size_t idx = (*hint + i) % n_mem;
        const TickMemPiece *p = &mem[idx];

        if (gpa >= p->gpa && gpa - p->gpa < p->len &&
            p->len - (gpa - p->gpa) >= size) {
            *hint = idx;
            return p;
        }
    }
    return NULL;
}

bool tick_mailbox_read(const TickMemPiece *mem, size_t n_mem,
                       TickMailbox *mb, GString *why)
{
    const uint64_t need = TICK_MBX_RANGES + TICK_MAX_RANGES * 16;
    const TickMemPiece *p;
    const uint8_t *b;
    uint64_t magic, pages = 0;
    size_t hint = 0, i;

    memset(mb, 0, sizeof(*mb));
    p = tick_find(mem, n_mem, TICK_MAILBOX_GPA, need, &hint);
    if (!p) {
        tick_why(why, "the dump does not cover the tick mailbox at 0x%" PRIx64,
                 (uint64_t)TICK_MAILBOX_GPA);
        return false;
    }
    b = p->host + (TICK_MAILBOX_GPA - p->gpa);
    magic = le64_load(b + TICK_MBX_MAGIC);
    if (magic != TICK_MAILBOX_MAGIC) {
        tick_why(why, "no tick mailbox at 0x%" PRIx64 " (magic 0x%016" PRIx64 ")",
                 (uint64_t)TICK_MAILBOX_GPA, magic);
        return false;
    }
    mb->passes = le64_load(b + TICK_MBX_PASSES);
    mb->start = le64_load(b + TICK_MBX_START);
    mb->end = le64_load(b + TICK_MBX_END);
    mb->writes = le64_load(b + TICK_MBX_WRITES);
    mb->pages = le64_load(b + TICK_MBX_PAGES);
    mb->state = le64_load(b + TICK_MBX_STATE);
    mb->pass_limit = le64_load(b + TICK_MBX_PASS_LIMIT);
    mb->ring = le64_load(b + TICK_MBX_RING);
    mb->nr_ranges = le64_load(b + TICK_MBX_NR_RANGES);
    if (mb->state > TICK_STATE_DONE) {
        tick_why(why, "tick mailbox has an unknown state %" PRIu64, mb->state);
        return false;
    }
    if (mb->nr_ranges == 0 || mb->nr_ranges > TICK_MAX_RANGES) {
        tick_why(why, "tick mailbox has %" PRIu64 " ranges (want 1..%d)",
                 mb->nr_ranges, TICK_MAX_RANGES);
        return false;
    }
    for (i = 0; i < mb->nr_ranges; i++) {
        TickRange *r = &mb->ranges[i];

        r->start = le64_load(b + TICK_MBX_RANGES + i * 16);
        r->end = le64_load(b + TICK_MBX_RANGES + i * 16 + 8);
        if (r->start >= r->end || (r->start | r->end) % TICK_PAGE_SIZE ||
            (i > 0 && r->start < mb->ranges[i - 1].end)) {
            tick_why(why, "tick mailbox range %zu [0x%" PRIx64 ", 0x%" PRIx64
                     ") is empty, unaligned or out of order", i, r->start, r->end);
            return false;
        }
        pages += (r->end - r->start) / TICK_PAGE_SIZE;
    }
    if (pages != mb->pages || mb->start != mb->ranges[0].start ||
        mb->end != mb->ranges[mb->nr_ranges - 1].end) {
        tick_why(why, "tick mailbox is inconsistent: %" PRIu64 " pages in its "
                 "ranges, %" PRIu64 " in its header", pages, mb->pages);
        return false;
    }
    return true;
}

/* Do @w increments from zero leave @pages counters at (@position, @value)? */
static bool tick_matches_writes(uint64_t w, uint64_t pages, uint64_t position,
                                uint8_t value)
{
    return (uint8_t)(w / pages) == value && w % pages == position;
}

bool tick_check_ranges(const TickMemPiece *mem, size_t n_mem,
                       const TickRange *ranges, size_t n_ranges,
                       const uint64_t *writes, TickScan *scan, GString *why)
{
    uint64_t count = 0, position = 0, step_gpa = 0;
    uint8_t prev = 0;
    bool stepped = false;
    size_t hint = 0, i;

    for (i = 0; i < n_ranges; i++) {
        uint64_t gpa;

        if (ranges[i].start >= ranges[i].end ||
            (ranges[i].start | ranges[i].end) % TICK_PAGE_SIZE) {
            tick_why(why, "tick range [0x%" PRIx64 ", 0x%" PRIx64
                     ") is empty or not page aligned",
                     ranges[i].start, ranges[i].end);
            return false;
        }
        for (gpa = ranges[i].start; gpa < ranges[i].end; gpa += TICK_PAGE_SIZE) {
            const TickMemPiece *p = tick_find(mem, n_mem, gpa, 1, &hint);
            uint8_t c;

            if (!p) {
                tick_why(why, "tick page 0x%" PRIx64 " is not in the dump", gpa);
                return false;
            }
            c = p->host[gpa - p->gpa];
            if (count > 0 && c != prev) {
                if ((uint8_t)(prev - c) != 1) {
                    tick_why(why, "tick page 0x%" PRIx64 " has counter %u after "
                             "%u: a page write was lost or repeated", gpa, c, prev);
                    return false;
                }
                if (stepped) {
                    tick_why(why, "tick counters step down twice, at page 0x%"
                             PRIx64 " and at page 0x%" PRIx64 ": a page write "
                             "was lost or repeated", step_gpa, gpa);
                    return false;
                }
                stepped = true;
                step_gpa = gpa;
                position = count;
            }
            prev = c;
            count++;
        }
    }
    if (count == 0) {
        tick_why(why, "no tick pages to check");
        return false;
    }

    /*
     * Uniform counters are "position 0"; otherwise the last page holds the
     * value of the pages the current pass has not reached yet. The guest
     * bumps its write count right after each page, so a pause between the
     * two shows one write more in memory than in the mailbox.
     */
    if (writes && !tick_matches_writes(*writes, count, position, prev) &&
        !tick_matches_writes(*writes + 1, count, position, prev)) {
        tick_why(why, "tick counters show position %" PRIu64 " with value %u, "
                 "but the mailbox counts %" PRIu64 " writes (pass %" PRIu64
                 ", position %" PRIu64 "): a page write was lost or repeated",
                 position, prev, *writes, *writes / count, *writes % count);
        return false;
    }
    if (scan) {
        scan->pages = count;
        scan->position = position;
        scan->value = prev;
    }
    return true;
}

bool tick_check_dump(const TickMemPiece *mem, size_t n_mem,
                     TickMailbox *mb, TickScan *scan, GString *why)
{
    TickMailbox local;
    uint64_t full;

    if (!mb) {
        mb = &local;
    }
    if (!tick_mailbox_read(mem, n_mem, mb, why)) {
        return false;
    }
    if (mb->state != TICK_STATE_TICKING && mb->state != TICK_STATE_DONE) {
        tick_why(why, "the tick guest has not started ticking yet (state %" PRIu64 ")",
                 mb->state);
        return false;
    }
    /* The pass count is stored just after a pass's last page write. */
    full = mb->writes / mb->pages;
    if (mb->passes != full &&
        !(mb->writes % mb->pages == 0 && mb->passes + 1 == full)) {
        tick_why(why, "tick mailbox counts %" PRIu64 " passes but %" PRIu64
                 " writes of %" PRIu64 " pages", mb->passes, mb->writes, mb->pages);
        return false;
    }
    return tick_check_ranges(mem, n_mem, mb->ranges, mb->nr_ranges,
                             &mb->writes, scan, why);
}

bool tick_check_invariant(const uint8_t *mem, uint64_t base_gpa, uint64_t len,
                          uint64_t start, uint64_t end, GString *why)
{
    TickMemPiece piece = { .gpa = base_gpa, .host = mem, .len = len };
    TickRange range = { .start = start, .end = end };

    return tick_check_ranges(&piece, 1, &range, 1, NULL, NULL, why);
}
