/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for the tick dump checker: dumps made by a model of the tick
 * guest (RAM split in two pieces, like below 3 GiB / above 4 GiB) pass,
 * and a lost or repeated page write anywhere makes them fail.
 */
#include "qemu/osdep.h"
#include "qemu/byteorder.h"

#include "tick-invariant.h"

#define LOW_GPA     0x0ULL
#define LOW_LEN     (64 * TICK_PAGE_SIZE)
#define HIGH_GPA    0x100000000ULL
#define HIGH_LEN    (32 * TICK_PAGE_SIZE)

typedef struct Fixture {
    uint8_t *low;
    uint8_t *high;
    TickMemPiece mem[2];
    TickRange ranges[2];
    uint64_t pages;
} Fixture;

static uint8_t *page_at(Fixture *f, uint64_t gpa)
{
    if (gpa >= HIGH_GPA) {
        return f->high + (gpa - HIGH_GPA);
    }
    return f->low + (gpa - LOW_GPA);
}

/* GPA of the i-th page in the guest's walk order. */
static uint64_t walk_gpa(Fixture *f, uint64_t i)
{
    uint64_t n0 = (f->ranges[0].end - f->ranges[0].start) / TICK_PAGE_SIZE;

    if (i < n0) {
        return f->ranges[0].start + i * TICK_PAGE_SIZE;
    }
    return f->ranges[1].start + (i - n0) * TICK_PAGE_SIZE;
}

/* What the guest leaves after @mem_writes increments; the mailbox says @mbx_writes. */
static void model(Fixture *f, uint64_t mem_writes, uint64_t mbx_writes)
{
    uint8_t *mbx = f->low + TICK_MAILBOX_GPA;
    uint64_t i;

    for (i = 0; i < f->pages; i++) {
        uint64_t c = mem_writes / f->pages + (i < mem_writes % f->pages ? 1 : 0);

        *page_at(f, walk_gpa(f, i)) = (uint8_t)c;
    }
    memset(mbx, 0, TICK_PAGE_SIZE);
    le64_store(mbx + TICK_MBX_MAGIC, TICK_MAILBOX_MAGIC);
    le64_store(mbx + TICK_MBX_PASSES, mbx_writes / f->pages);
    le64_store(mbx + TICK_MBX_START, f->ranges[0].start);
    le64_store(mbx + TICK_MBX_END, f->ranges[1].end);
    le64_store(mbx + TICK_MBX_WRITES, mbx_writes);
    le64_store(mbx + TICK_MBX_PAGES, f->pages);
    le64_store(mbx + TICK_MBX_STATE, TICK_STATE_TICKING);
    le64_store(mbx + TICK_MBX_RING, 3);
    le64_store(mbx + TICK_MBX_NR_RANGES, 2);
    for (i = 0; i < 2; i++) {
        le64_store(mbx + TICK_MBX_RANGES + i * 16, f->ranges[i].start);
        le64_store(mbx + TICK_MBX_RANGES + i * 16 + 8, f->ranges[i].end);
    }
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->low = g_malloc0(LOW_LEN);
    f->high = g_malloc0(HIGH_LEN);
    /* Fill the non-counter bytes so the checker must look at byte 0 only. */
    memset(f->low + 0x10000, 0xa5, LOW_LEN - 0x10000);
    memset(f->high, 0x5a, HIGH_LEN);
    f->mem[0] = (TickMemPiece){ .gpa = LOW_GPA, .host = f->low, .len = LOW_LEN };
    f->mem[1] = (TickMemPiece){ .gpa = HIGH_GPA, .host = f->high, .len = HIGH_LEN };
    f->ranges[0] = (TickRange){ 0x10000, LOW_GPA + LOW_LEN };
    f->ranges[1] = (TickRange){ HIGH_GPA, HIGH_GPA + HIGH_LEN };
    f->pages = (LOW_LEN - 0x10000 + HIGH_LEN) / TICK_PAGE_SIZE;
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    g_free(f->low);
    g_free(f->high);
}

static void assert_good(Fixture *f, uint64_t position, uint8_t value)
{
    g_autoptr(GString) why = g_string_new(NULL);
    TickMailbox mb;
    TickScan scan;

    if (!tick_check_dump(f->mem, 2, &mb, &scan, why)) {
        g_error("good dump rejected: %s", why->str);
    }
    g_assert_cmpuint(scan.pages, ==, f->pages);
    g_assert_cmpuint(scan.position, ==, position);
    g_assert_cmpuint(scan.value, ==, value);
    g_assert_cmpuint(mb.nr_ranges, ==, 2);
    g_assert_cmpuint(mb.start, ==, 0x10000);
    g_assert_cmpuint(mb.end, ==, HIGH_GPA + HIGH_LEN);
}

/* The dump must be rejected, with a reason mentioning @needle. */
static void assert_bad(Fixture *f, const char *needle)
{
    g_autoptr(GString) why = g_string_new(NULL);

    g_assert_false(tick_check_dump(f->mem, 2, NULL, NULL, why));
    g_test_message("rejected: %s", why->str);
    g_assert_nonnull(strstr(why->str, needle));
}

static void test_good_uniform(Fixture *f, gconstpointer data)
{
    model(f, 0, 0);
    assert_good(f, 0, 0);
    model(f, 3 * f->pages, 3 * f->pages);
    assert_good(f, 0, 3);
}

static void test_good_mid_pass(Fixture *f, gconstpointer data)
{
    uint64_t k;

    /* Every position, including the step right at the low/high seam. */
    for (k = 1; k < f->pages; k++) {
        model(f, 5 * f->pages + k, 5 * f->pages + k);
        assert_good(f, k, 5);
    }
}

static void test_good_pause_window(Fixture *f, gconstpointer data)
{
    /* Paused between the page write and the write-count update. */
    model(f, 2 * f->pages + 7, 2 * f->pages + 6);
    assert_good(f, 7, 2);
    /* ... on the last page of a pass, before the pass count moved. */
    model(f, 3 * f->pages, 3 * f->pages - 1);
    assert_good(f, 0, 3);
}

static void test_good_wrap(Fixture *f, gconstpointer data)
{
    /* Counters wrap: first pages hold 0, the rest 255. */
    model(f, 255 * f->pages + 9, 255 * f->pages + 9);
    assert_good(f, 9, 255);
    /* 256 full passes: all zero again, mailbox far ahead. */
    model(f, 256 * f->pages, 256 * f->pages);
    assert_good(f, 0, 0);
    model(f, 1000 * f->pages + 3, 1000 * f->pages + 3);
    assert_good(f, 3, 1000 % 256);
}

static void test_bad_lost_write(Fixture *f, gconstpointer data)
{
    uint64_t w = 4 * f->pages + 20;

    /* A page the current pass already bumped is back at its old value. */
    model(f, w, w);
    (*page_at(f, walk_gpa(f, 10)))--;
    assert_bad(f, "after");

    /* A page not yet reached lost the previous pass's write. */
    model(f, w, w);
    (*page_at(f, walk_gpa(f, 40)))--;
    assert_bad(f, "step down twice");

    /* The last page bumped: only the mailbox can tell. */
    model(f, w, w);
    (*page_at(f, walk_gpa(f, 19)))--;
    assert_bad(f, "mailbox counts");

    /* The last page of a pass, in the high piece. */
    model(f, 4 * f->pages, 4 * f->pages);
    (*page_at(f, walk_gpa(f, f->pages - 1)))--;
    assert_bad(f, "mailbox counts");

    /* A whole old page image (counter two passes behind). */
    model(f, w, w);
    *page_at(f, walk_gpa(f, 50)) -= 2;
    assert_bad(f, "lost or repeated");
}

static void test_bad_duplicated_write(Fixture *f, gconstpointer data)
{
    uint64_t w = 6 * f->pages + 30;

    model(f, w, w);
    (*page_at(f, walk_gpa(f, 5)))++;
    assert_bad(f, "after");

    model(f, w, w);
    (*page_at(f, walk_gpa(f, 60)))++;
    assert_bad(f, "after");

    /*
     * The next two pages bumped early: only the mailbox can tell. (One
     * page early is indistinguishable from a pause between the page
     * write and the write-count update, so that one passes.)
     */
    model(f, w, w);
    (*page_at(f, walk_gpa(f, 30)))++;
    (*page_at(f, walk_gpa(f, 31)))++;
    assert_bad(f, "mailbox counts");

    /* Repeated at the wrap from 255 to 0. */
    model(f, 255 * f->pages + 3, 255 * f->pages + 3);
    (*page_at(f, walk_gpa(f, 1)))++;
    assert_bad(f, "after");
}

static void test_bad_dump(Fixture *f, gconstpointer data)
{
    g_autoptr(GString) why = g_string_new(NULL);
    TickMemPiece short_mem[2];
    uint8_t *mbx = f->low + TICK_MAILBOX_GPA;

    /* Part of the high piece missing from the dump. */
    model(f, 10, 10);
    memcpy(short_mem, f->mem, sizeof(short_mem));
    short_mem[1].len -= TICK_PAGE_SIZE;
    g_assert_false(tick_check_dump(short_mem, 2, NULL, NULL, why));
    g_assert_nonnull(strstr(why->str, "not in the dump"));

    /* No mailbox in the dump at all. */
    g_string_truncate(why, 0);
    g_assert_false(tick_check_dump(&f->mem[1], 1, NULL, NULL, why));
    g_assert_nonnull(strstr(why->str, "mailbox"));

    model(f, 10, 10);
    le64_store(mbx + TICK_MBX_MAGIC, 0);
    assert_bad(f, "magic");

    model(f, 10, 10);
    le64_store(mbx + TICK_MBX_STATE, TICK_STATE_ZEROING);
    assert_bad(f, "not started ticking");

    model(f, 10, 10);
    le64_store(mbx + TICK_MBX_PASSES, 7);
    assert_bad(f, "passes");

    model(f, 10, 10);
    le64_store(mbx + TICK_MBX_PAGES, f->pages + 1);
    assert_bad(f, "inconsistent");

    model(f, 10, 10);
    le64_store(mbx + TICK_MBX_NR_RANGES, TICK_MAX_RANGES + 1);
    assert_bad(f, "ranges");

    model(f, 10, 10);
    le64_store(mbx + TICK_MBX_RANGES + 16, 0x8000);       /* before range 0 */
    assert_bad(f, "out of order");
}

static void test_single_piece(void)
{
    g_autoptr(GString) why = g_string_new(NULL);
    const uint64_t base = 0x200000, len = 16 * TICK_PAGE_SIZE;
    g_autofree uint8_t *mem = g_malloc0(len);
    uint64_t i;

    /* Pages 2..13 ticked; pages 2..5 one ahead, wrapping 255 -> 0. */
    for (i = 2; i < 14; i++) {
        mem[i * TICK_PAGE_SIZE] = i < 6 ? 0 : 255;
    }
    g_assert_true(tick_check_invariant(mem, base, len, base + 2 * TICK_PAGE_SIZE,
                                       base + 14 * TICK_PAGE_SIZE, why));
    /* Bytes other than offset 0, and pages outside the range, are ignored. */
    mem[3 * TICK_PAGE_SIZE + 1] = 77;
    mem[15 * TICK_PAGE_SIZE] = 77;
    g_assert_true(tick_check_invariant(mem, base, len, base + 2 * TICK_PAGE_SIZE,
                                       base + 14 * TICK_PAGE_SIZE, why));
    /* Counters may not rise along the walk. */
    mem[9 * TICK_PAGE_SIZE] = 0;
    g_assert_false(tick_check_invariant(mem, base, len, base + 2 * TICK_PAGE_SIZE,
                                        base + 14 * TICK_PAGE_SIZE, why));
    /* The range must lie inside the dump. */
    mem[9 * TICK_PAGE_SIZE] = 255;
    mem[14 * TICK_PAGE_SIZE] = 255;
    mem[15 * TICK_PAGE_SIZE] = 255;
    g_string_truncate(why, 0);
    g_assert_false(tick_check_invariant(mem, base, len, base + 8 * TICK_PAGE_SIZE,
                                        base + 17 * TICK_PAGE_SIZE, why));
    g_assert_nonnull(strstr(why->str, "not in the dump"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

#define ADD(path, fn) \
    g_test_add("/tick-invariant/" path, Fixture, NULL, fixture_setup, fn, \
               fixture_teardown)
    ADD("good/uniform", test_good_uniform);
    ADD("good/mid-pass", test_good_mid_pass);
    ADD("good/pause-window", test_good_pause_window);
    ADD("good/wrap", test_good_wrap);
    ADD("bad/lost-write", test_bad_lost_write);
    ADD("bad/duplicated-write", test_bad_duplicated_write);
    ADD("bad/dump", test_bad_dump);
#undef ADD
    g_test_add_func("/tick-invariant/single-piece", test_single_piece);
    return g_test_run();
}
