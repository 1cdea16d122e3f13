/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of migration/ram.c on a machine whose RAM is plain memory
 * (migration-harness.h): the source sweep and its request queue after the
 * postcopy switch, the destination loader, and huge-page assembly under
 * userfaultfd. Each test runs in a subprocess: ram.c and the state machines keep
 * one state per process, as godwit does.
 */
#include "qemu/osdep.h"
#include "migration-harness.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "migration/migration.h"
#include "migration/postcopy-ram.h"
#include "migration/ram-format.h"
#include "migration/recv-bitmap.h"
#include "migration/savevm.h"

#define MIB (1024 * 1024)

/* Run the test body in a fresh process (one ram_state per process). */
#define SUBPROCESS(body) do {                                             \
        if (g_test_subprocess()) {                                        \
            body;                                                         \
            return;                                                       \
        }                                                                 \
        g_test_trap_subprocess(NULL, 120 * G_USEC_PER_SEC,                \
                               G_TEST_SUBPROCESS_INHERIT_STDOUT |         \
                               G_TEST_SUBPROCESS_INHERIT_STDERR);         \
        g_test_trap_assert_passed();                                      \
    } while (0)

/* A recognisable, never-zero byte for every target page. */
static void fill_pattern(Machine *m, uint8_t seed)
{
    RAMBlock *rb = m->ram;

    for (uint64_t p = 0; p < rb->size / GW_PAGE_SIZE; p++) {
        memset(rb->host + p * GW_PAGE_SIZE, (uint8_t)(seed + p % 251 + 1), GW_PAGE_SIZE);
    }
}

/* One RAM record as it went out, in stream order. */
typedef struct SentRun {
    uint64_t offset;
    uint32_t npages;
    bool zero;
} SentRun;

/*
 * Decode the records of @len bytes of stream body (sections and commands,
 * no header): the RAM records of every START/PART/END, in order.
 */
static GArray *decode_ram_records(const uint8_t *d, size_t len)
{
    g_autoptr(GError) err = NULL;
    MigStream *s = stream_new_mem_reader(d, len, false);
    GArray *runs = g_array_new(FALSE, FALSE, sizeof(SentRun));
    RamReader rr;
    char name[256];

    ram_reader_reset(&rr);
    while (!stream_at_eof(s)) {
        uint8_t type = stream_get_u8(s);
        if (type == MIG_REC_COMMAND) {
            stream_get_be16(s);
            stream_skip(s, stream_get_be16(s));
            continue;
        }
        g_assert_true(type == MIG_REC_SECTION_START || type == MIG_REC_SECTION_PART ||
                      type == MIG_REC_SECTION_END);
        stream_get_be32(s);
        if (type == MIG_REC_SECTION_START) {
            stream_get_cstr(s, name);
            stream_get_be32(s);
            stream_get_be32(s);
        }
        for (;;) {
            RamRecord rec;
            g_assert_true(ram_get_record(s, &rr, &rec, &err));
            if (rec.type == RAM_RECORD_EOS) {
                break;
            }
            if (rec.type == RAM_RECORD_MEM_SIZE) {
                g_autofree MigRamBlockInfo *b = NULL;
                unsigned n;
                g_assert_true(ram_get_mem_size_blocks(s, rec.offset, &b, &n, &err));
                continue;
            }
            SentRun r = { rec.offset, rec.npages, rec.type == RAM_RECORD_ZERO };
            g_array_append_val(runs, r);
            if (rec.type == RAM_RECORD_PAGES) {
                stream_skip(s, (size_t)rec.npages * GW_PAGE_SIZE);
            }
        }
        g_assert_cmpuint(stream_get_u8(s), ==, MIG_REC_FOOTER);
        stream_get_be32(s);
        g_assert_true(stream_check(s, &err));
    }
    stream_free(s);
    return runs;
}

/* ---------------------------------------------------------------------- */
/* Source: the sweep and the request queue after the postcopy switch */

typedef struct BudgetCtx {
    uint64_t total_pages;
    bool queued;
    uint64_t req_offset, req_len;
} BudgetCtx;

/*
 * The rate limiter's hook between two runs, used to let a page request
 * arrive as soon as the sweep has sent something, with the window's
 * budget spent: the sweep stops and the next iteration serves the request.
 */
static bool budget_queue_request(void *opaque)
{
    BudgetCtx *c = opaque;
    g_autoptr(GError) err = NULL;

    if (!c->queued && ram_dirty_pages() < c->total_pages) {
        g_assert_true(ram_queue_request("pc.ram", c->req_offset, c->req_len, &err));
        c->queued = true;
        return true;
    }
    return false;
}

/*
 * After the switch the destination places a huge page only once all of its
 * target pages have arrived, in order: the source must never interleave
 * two host pages, even when a request (for another host page) arrives
 * while it is in the middle of one. Every target page must go exactly once.
 */
static void hugepage_order_body(void)
{
    const uint64_t ram = 8 * MIB, hps = 2 * MIB, hpp = hps / GW_PAGE_SIZE;
    Machine *m = harness_init(ram, hps, 1);
    g_autoptr(GError) err = NULL;
    /* Host page 2 is requested once the sweep has started on host page 0. */
    BudgetCtx ctx = { .total_pages = ram / GW_PAGE_SIZE, .req_offset = 4 * MIB, .req_len = hps };
    GString *order = g_string_new(NULL);
    uint64_t dirty;
    size_t len;

    fill_pattern(m, 1);
    g_assert_true(ram_start_tracking(&err));
    g_assert_true(ram_sync(&dirty, &err));
    g_assert_cmpuint(dirty, ==, ram / GW_PAGE_SIZE);
    MigStream *w = stream_new_mem_writer();
    g_assert_true(savevm_live_setup(w, &err));
    /* Pure postcopy: the switch comes before any page went. */
    g_assert_true(ram_postcopy_send_discard(w, &err));
    ram_postcopy_switch();
    ram_set_budget(budget_queue_request, &ctx);
    for (int i = 0; i < 1000; i++) {
        int r = savevm_live_iterate(w, &err);
        g_assert_no_error(err);
        g_assert_cmpint(r, >=, 0);
        if (r == 1 && !ram_has_requests()) {
            break;
        }
    }
    g_assert_true(savevm_live_complete(w, &err));
    g_assert_true(ctx.queued);
    ram_set_budget(NULL, NULL);

    const uint8_t *d = stream_mem_data(w, &len);
    g_autoptr(GArray) runs = decode_ram_records(d, len);
    g_autofree uint8_t *seen = g_new0(uint8_t, ram / GW_PAGE_SIZE);
    uint64_t cur_hp = UINT64_MAX, next_page = 0;
    for (guint i = 0; i < runs->len; i++) {
        SentRun *r = &g_array_index(runs, SentRun, i);
        for (uint32_t k = 0; k < r->npages; k++) {
            uint64_t p = r->offset / GW_PAGE_SIZE + k;
            g_assert_cmpuint(seen[p], ==, 0);
            seen[p] = 1;
            if (cur_hp == UINT64_MAX) {
                /* A host page starts with its first target page... */
                if (p % hpp) {
                    g_error("target page %" PRIu64 " starts host page %" PRIu64
                            " in its middle", p, p / hpp);
                }
                cur_hp = p / hpp;
                g_string_append_printf(order, "%" PRIu64 " ", cur_hp);
            } else if (p != next_page) {
                /* ...and goes on, in order, until its last one. */
                g_error("target page %" PRIu64 " (host page %" PRIu64 ") sent while host page %"
                        PRIu64 " was incomplete", p, p / hpp, cur_hp);
            }
            next_page = p + 1;
            if (next_page % hpp == 0) {
                cur_hp = UINT64_MAX;
            }
        }
    }
    g_assert_cmpuint(cur_hp, ==, UINT64_MAX);
    for (uint64_t p = 0; p < ram / GW_PAGE_SIZE; p++) {
        g_assert_cmpuint(seen[p], ==, 1);
    }
    /*
     * Host page 0 is finished, then the requested one goes, then the sweep
     * goes on after it (locality) and comes back for the rest.
     */
    g_assert_cmpstr(order->str, ==, "0 2 3 1 ");
    g_string_free(order, TRUE);
    g_assert_cmpuint(migration_stats()->postcopy_requests, ==, 1);
    stream_free(w);
    ram_stop_tracking();
}

static void test_hugepage_order(void)
{
    SUBPROCESS(hugepage_order_body());
}

/*
 * The request queue (4 KiB pages): page requests from the return path are
 * checked against the block, served ahead of the sweep in the order they
 * arrived, and the sweep goes on right after the latest one (where the
 * guest faults now); a page already sent is not sent again. Bad requests
 * are refused with the reason and not counted.
 */
static void request_queue_body(void)
{
    Machine *m = harness_init(MIB, GW_PAGE_SIZE, 1);
    g_autoptr(GError) err = NULL;
    uint64_t dirty;
    size_t len;
    static const struct {
        const char *block;
        uint64_t offset, len;
        const char *msg;
    } bad[] = {
        { "pc.rom", 0, 4096, "page request for unknown RAM block 'pc.rom'" },
        { "pc.ram", 100, 4096, "page request [0x64, +0x1000) is not aligned to host pages or "
          "lies outside RAM" },
        { "pc.ram", 4096, 100, "page request [0x1000, +0x64) is not aligned to host pages or "
          "lies outside RAM" },
        { "pc.ram", 4096, 0, "page request [0x1000, +0x0) is not aligned to host pages or "
          "lies outside RAM" },
        { "pc.ram", MIB, 4096, "page request [0x100000, +0x1000) is not aligned to host pages "
          "or lies outside RAM" },
        { "pc.ram", MIB - 4096, 8192, "page request [0xff000, +0x2000) is not aligned to host "
          "pages or lies outside RAM" },
        { "pc.ram", 0xfffffffffffff000ULL, 0x2000, "page request [0xfffffffffffff000, +0x2000) "
          "is not aligned to host pages or lies outside RAM" },
    };

    fill_pattern(m, 5);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(ram_queue_request(bad[i].block, bad[i].offset, bad[i].len, &err));
        g_assert_cmpstr(err->message, ==, bad[i].msg);
        g_clear_error(&err);
    }
    g_assert_cmpuint(migration_stats()->postcopy_requests, ==, 0);
    g_assert_false(ram_has_requests());

    g_assert_true(ram_start_tracking(&err));
    g_assert_true(ram_sync(&dirty, &err));
    MigStream *w = stream_new_mem_writer();
    g_assert_true(savevm_live_setup(w, &err));
    g_assert_true(ram_postcopy_send_discard(w, &err));
    ram_postcopy_switch();
    size_t skip;
    stream_mem_data(w, &skip);
    /* Pages 100 and 7, then 100 again (it will be on its way already). */
    g_assert_true(ram_queue_request("pc.ram", 100 * 4096, 4096, &err));
    g_assert_true(ram_queue_request("pc.ram", 7 * 4096, 4096, &err));
    g_assert_true(ram_has_requests());
    g_assert_cmpint(savevm_live_iterate(w, &err), ==, 0);      /* the requests only */
    g_assert_false(ram_has_requests());
    g_assert_true(ram_queue_request("pc.ram", 100 * 4096, 4096, &err));
    for (int i = 0; i < 1000; i++) {
        int r = savevm_live_iterate(w, &err);
        g_assert_cmpint(r, >=, 0);
        if (r == 1 && !ram_has_requests()) {
            break;
        }
    }
    g_assert_cmpuint(migration_stats()->postcopy_requests, ==, 3);
    const uint8_t *d = stream_mem_data(w, &len);
    g_autoptr(GArray) runs = decode_ram_records(d + skip, len - skip);
    GString *order = g_string_new(NULL);
    g_autofree uint8_t *seen = g_new0(uint8_t, 256);
    for (guint i = 0; i < runs->len; i++) {
        SentRun *r = &g_array_index(runs, SentRun, i);
        if (i < 4) {
            g_string_append_printf(order, "%" PRIu64 "+%u ", r->offset / 4096, r->npages);
        }
        for (uint32_t k = 0; k < r->npages; k++) {
            g_assert_cmpuint(seen[r->offset / 4096 + k]++, ==, 0);
        }
    }
    for (unsigned p = 0; p < 256; p++) {
        g_assert_cmpuint(seen[p], ==, 1);
    }
    /*
     * 100, 7, then the sweep in runs of 16 right after the latest request,
     * page 100 asked again (not sent twice: it is on its way); the pages
     * skipped come when the sweep wraps (every page once, above).
     */
    g_assert_cmpstr(order->str, ==, "100+1 7+1 101+16 117+16 ");
    g_string_free(order, TRUE);
    stream_free(w);
    ram_stop_tracking();
}

static void test_request_queue(void)
{
    SUBPROCESS(request_queue_body());
}

/*
 * Postcopy recovery on the source: the destination's received bitmap
 * becomes the set of pages to send. Pages sent on the old connection but
 * not received go again, received ones never; a request queued for the
 * old connection is dropped; the new stream's first record names its block
 * (a fresh reader decodes it). Bitmaps for another block or of the wrong
 * size are refused.
 */
static void resume_from_received_body(void)
{
    Machine *m = harness_init(MIB, GW_PAGE_SIZE, 1);
    g_autoptr(GError) err = NULL;
    uint64_t dirty;
    size_t len, skip, wire_len;
    unsigned long recv[256 / (sizeof(unsigned long) * 8)] = { 0 };
    unsigned expect_left = 0;

    fill_pattern(m, 9);
    g_assert_true(ram_start_tracking(&err));
    g_assert_true(ram_sync(&dirty, &err));
    MigStream *w = stream_new_mem_writer();
    g_assert_true(savevm_live_setup(w, &err));
    g_assert_true(ram_postcopy_send_discard(w, &err));
    ram_postcopy_switch();
    /* The old connection: everything went out (1 MiB, no budget)... */
    g_assert_cmpint(savevm_live_iterate(w, &err), ==, 1);
    g_assert_cmpuint(ram_dirty_pages(), ==, 0);
    stream_free(w);
    g_assert_true(ram_queue_request("pc.ram", 5 * 4096, 4096, &err));

    /* ...but only 0-99 and 200-255 except 210 arrived; the rest were lost with it. */
    for (unsigned p = 0; p < 256; p++) {
        bool received = p < 100 || (p >= 200 && p != 210);
        if (received) {
            recv[p / (sizeof(unsigned long) * 8)] |= 1UL << (p % (sizeof(unsigned long) * 8));
        } else {
            expect_left++;
        }
    }
    g_autofree uint8_t *wire = recv_bitmap_encode(recv, 256, &wire_len);
    g_assert_cmpuint(wire_len, ==, 8 + 32 + 8);
    g_assert_cmpuint(ram_recv_bitmap_bytes("pc.ram"), ==, 32);
    g_assert_cmpuint(ram_recv_bitmap_bytes("pc.rom"), ==, 0);

    g_assert_false(ram_postcopy_resume_from_received("pc.rom", wire + 8, 32, &err));
    g_assert_cmpstr(err->message, ==,
                    "The destination sent a received bitmap for an unknown RAM block");
    g_clear_error(&err);
    g_assert_false(ram_postcopy_resume_from_received("pc.ram", wire + 8, 24, &err));
    g_assert_cmpstr(err->message, ==,
                    "The destination's received bitmap has 24 bytes, expected 32");
    g_clear_error(&err);

    g_assert_true(ram_postcopy_resume_from_received("pc.ram", wire + 8, 32, &err));
    g_assert_cmpuint(ram_dirty_pages(), ==, expect_left);
    g_assert_cmpuint(expect_left, ==, 101);
    g_assert_false(ram_has_requests());

    /* The new connection: exactly the pages not received, each once. */
    w = stream_new_mem_writer();
    stream_mem_data(w, &skip);
    for (int i = 0; i < 1000; i++) {
        int r = savevm_live_iterate(w, &err);
        g_assert_cmpint(r, >=, 0);
        if (r == 1) {
            break;
        }
    }
    const uint8_t *d = stream_mem_data(w, &len);
    g_autoptr(GArray) runs = decode_ram_records(d + skip, len - skip);
    g_autofree uint8_t *seen = g_new0(uint8_t, 256);
    for (guint i = 0; i < runs->len; i++) {
        SentRun *r = &g_array_index(runs, SentRun, i);
        for (uint32_t k = 0; k < r->npages; k++) {
            g_assert_cmpuint(seen[r->offset / 4096 + k]++, ==, 0);
        }
    }
    for (unsigned p = 0; p < 256; p++) {
        bool received = p < 100 || (p >= 200 && p != 210);
        g_assert_cmpuint(seen[p], ==, received ? 0 : 1);
    }
    g_assert_cmpuint(ram_dirty_pages(), ==, 0);
    stream_free(w);
    ram_stop_tracking();
}

static void test_resume_from_received(void)
{
    SUBPROCESS(resume_from_received_body());
}

/* ---------------------------------------------------------------------- */
/* Destination: the precopy loader */

/*
 * Load a precopy stream of the "ram" section alone: START, one PART with
 * @body's records, END, EOF. The registry holds only RAM here.
 */
static void load_ram_only(Machine *m, void (*body)(MigStream *w, RamWriter *rw),
                          GError **errp)
{
    MigRamBlockInfo b = { .name = "pc.ram", .size = m->ram->size, .page_size = GW_PAGE_SIZE };
    MigStream *w = stream_new_mem_writer();
    g_autoptr(MigConfig) c = mig_config_new();
    RamWriter rw;
    size_t len;

    savevm_unregister_all();
    ram_migration_init(m);
    ram_writer_reset(&rw);
    savevm_put_header(w);
    savevm_put_config(w, c);
    savevm_put_section_header(w, MIG_REC_SECTION_START, 1, "ram", 0, RAM_SECTION_VERSION);
    ram_put_mem_size(w, &b, 1);
    ram_put_eos(w);
    savevm_put_footer(w, 1);
    savevm_put_section_header(w, MIG_REC_SECTION_PART, 1, NULL, 0, 0);
    body(w, &rw);
    ram_put_eos(w);
    savevm_put_footer(w, 1);
    savevm_put_section_header(w, MIG_REC_SECTION_END, 1, NULL, 0, 0);
    ram_put_eos(w);
    savevm_put_footer(w, 1);
    savevm_put_eof(w);
    const uint8_t *d = stream_mem_data(w, &len);
    MigStream *s = stream_new_mem_reader(d, len, false);
    LoadVMState *st = loadvm_state_new(NULL, NULL, NULL);
    g_assert_true(loadvm_read_header(st, s, errp));
    g_assert_cmpint(loadvm_main(st, s, errp), ==, LOADVM_EOF);
    loadvm_state_free(st);
    stream_free(s);
    stream_free(w);
}

/* 1 MiB: a data page, then zero pages, then data, then zero to the end. */
static void body_mixed(MigStream *w, RamWriter *rw)
{
    static uint8_t data[4 * GW_PAGE_SIZE];

    memset(data, 0x11, sizeof(data));
    ram_put_pages(w, rw, "pc.ram", 0, data, 1);
    ram_put_zero(w, rw, "pc.ram", GW_PAGE_SIZE, 100);
    ram_put_zero(w, rw, "pc.ram", 101 * GW_PAGE_SIZE, 1);
    ram_put_pages(w, rw, "pc.ram", 102 * GW_PAGE_SIZE, data, 4);
    ram_put_zero(w, rw, "pc.ram", 106 * GW_PAGE_SIZE, 256 - 106);
}

static void check_mixed(Machine *m)
{
    for (uint64_t p = 0; p < 256; p++) {
        uint8_t want = (p == 0 || (p >= 102 && p < 106)) ? 0x11 : 0;
        const uint8_t *pg = m->ram->host + p * GW_PAGE_SIZE;
        for (size_t i = 0; i < GW_PAGE_SIZE; i++) {
            if (pg[i] != want) {
                g_error("page %" PRIu64 " byte %zu reads 0x%02x, expected 0x%02x",
                        p, i, pg[i], want);
            }
        }
    }
}

/*
 * A memory-backend-file that already held data (zero_at_start false): a
 * ZERO record must clear the page, or the guest sees the file's old bytes
 * where the source had zeros.
 */
static void zero_reused_body(void)
{
    g_autofree char *path = g_build_filename(g_get_tmp_dir(), "gw-test-ram-XXXXXX", NULL);
    int fd = g_mkstemp(path);
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(fd, >=, 0);
    g_unlink(path);
    g_assert_cmpint(ftruncate(fd, MIB), ==, 0);
    Machine *m = harness_init_fd(fd, MIB, false);
    memset(m->ram->host, 0xaa, MIB);          /* what the file held */
    load_ram_only(m, body_mixed, &err);
    g_assert_no_error(err);
    check_mixed(m);
}

static void test_zero_reused(void)
{
    SUBPROCESS(zero_reused_body());
}

/*
 * Memory this process created empty: ZERO records for pages never written
 * are free, they are not even touched (nothing gets allocated).
 */
static void zero_fresh_body(void)
{
    Machine *m = harness_init(MIB, GW_PAGE_SIZE, 1);
    g_autoptr(GError) err = NULL;
    unsigned char vec[256];

    load_ram_only(m, body_mixed, &err);
    g_assert_no_error(err);
    g_assert_cmpint(mincore(m->ram->host, MIB, vec), ==, 0);
    for (unsigned p = 0; p < 256; p++) {
        bool data = p == 0 || (p >= 102 && p < 106);
        if (!data && (vec[p] & 1)) {
            g_error("zero page %u was populated", p);
        }
    }
    check_mixed(m);
}

static void test_zero_fresh(void)
{
    SUBPROCESS(zero_fresh_body());
}

/* ---------------------------------------------------------------------- */
/* Source: pages that are not resident */

/*
 * The first pass sends pages that were never populated as zero without
 * reading them. A page that is not resident may still hold data: a file's
 * page dropped from the page cache (here: written, synced and dropped).
 * Neither an existing file (@zero_at_start false: it may hold anything)
 * nor one godwit created empty and the guest wrote since may lose it:
 * every page must go with its data.
 */
static void nonresident_file_body(bool zero_at_start)
{
    const uint64_t size = 4 * MIB;
    g_autofree char *path = g_build_filename("/var/tmp", "gw-test-ram-XXXXXX", NULL);
    int fd = g_mkstemp(path);
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *data = g_malloc(size);
    unsigned char vec[1024];
    uint64_t dirty, resident = 0;
    size_t len;

    g_assert_cmpint(fd, >=, 0);
    g_unlink(path);
    for (uint64_t p = 0; p < size / GW_PAGE_SIZE; p++) {
        memset(data + p * GW_PAGE_SIZE, (int)(p % 200 + 1), GW_PAGE_SIZE);
    }
    g_assert_cmpint(pwrite(fd, data, size, 0), ==, (ssize_t)size);
    g_assert_cmpint(fsync(fd), ==, 0);
    g_assert_cmpint(posix_fadvise(fd, 0, size, POSIX_FADV_DONTNEED), ==, 0);
    Machine *m = harness_init_fd(fd, size, zero_at_start);
    g_assert_cmpint(mincore(m->ram->host, size, vec), ==, 0);
    for (unsigned i = 0; i < size / GW_PAGE_SIZE; i++) {
        resident += vec[i] & 1;
    }
    if (resident == size / GW_PAGE_SIZE) {
        g_test_skip("the page cache kept the file: nothing is non-resident");
        g_printerr("*** SKIP: /var/tmp's page cache was not dropped ***\n");
        return;
    }
    g_test_message("%" PRIu64 " of %" PRIu64 " pages resident before the sweep", resident,
                   (uint64_t)(size / GW_PAGE_SIZE));

    g_assert_true(ram_start_tracking(&err));
    g_assert_true(ram_sync(&dirty, &err));
    MigStream *w = stream_new_mem_writer();
    g_assert_true(savevm_live_setup(w, &err));
    while (!ram_sweep_done()) {
        g_assert_cmpint(savevm_live_iterate(w, &err), >=, 0);
    }
    const uint8_t *d = stream_mem_data(w, &len);
    g_autoptr(GArray) runs = decode_ram_records(d, len);
    uint64_t pages = 0;
    for (guint i = 0; i < runs->len; i++) {
        SentRun *r = &g_array_index(runs, SentRun, i);
        if (r->zero) {
            g_error("pages 0x%" PRIx64 "+%u went as zero pages; the file holds data there",
                    r->offset, r->npages);
        }
        pages += r->npages;
    }
    g_assert_cmpuint(pages, ==, size / GW_PAGE_SIZE);
    stream_free(w);
    ram_stop_tracking();
}

static void test_nonresident_file(void)
{
    SUBPROCESS(nonresident_file_body(false));
}

static void test_nonresident_written_file(void)
{
    SUBPROCESS(nonresident_file_body(true));
}

/*
 * Anonymous memory created empty: the pages the guest wrote go with their
 * data, the others as zero without being read, so they are still not
 * allocated after the pass.
 */
static void unpopulated_anon_body(void)
{
    Machine *m = harness_init(4 * MIB, GW_PAGE_SIZE, 1);
    g_autoptr(GError) err = NULL;
    unsigned char vec[1024];
    uint64_t dirty;
    size_t len;

    for (unsigned p = 0; p < 1024; p += 100) {
        memset(m->ram->host + (uint64_t)p * GW_PAGE_SIZE, 0x77, GW_PAGE_SIZE);
    }
    g_assert_true(ram_start_tracking(&err));
    g_assert_true(ram_sync(&dirty, &err));
    MigStream *w = stream_new_mem_writer();
    g_assert_true(savevm_live_setup(w, &err));
    while (!ram_sweep_done()) {
        g_assert_cmpint(savevm_live_iterate(w, &err), >=, 0);
    }
    const uint8_t *d = stream_mem_data(w, &len);
    g_autoptr(GArray) runs = decode_ram_records(d, len);
    uint64_t data = 0, zero = 0;
    for (guint i = 0; i < runs->len; i++) {
        SentRun *r = &g_array_index(runs, SentRun, i);
        for (uint32_t k = 0; k < r->npages; k++) {
            uint64_t p = r->offset / GW_PAGE_SIZE + k;
            g_assert_cmpint(r->zero, ==, p % 100 != 0);
        }
        *(r->zero ? &zero : &data) += r->npages;
    }
    g_assert_cmpuint(data, ==, 11);
    g_assert_cmpuint(zero, ==, 1024 - 11);
    g_assert_cmpint(mincore(m->ram->host, 4 * MIB, vec), ==, 0);
    for (unsigned p = 0; p < 1024; p++) {
        g_assert_cmpuint(vec[p] & 1, ==, p % 100 == 0);
    }
    stream_free(w);
    ram_stop_tracking();
}

static void test_unpopulated_anon(void)
{
    SUBPROCESS(unpopulated_anon_body());
}

/* The rate limiter's hook: the window is spent once the sweep has sent anything. */
static bool budget_after_first_run(void *opaque)
{
    return ram_dirty_pages() < *(const uint64_t *)opaque;
}

/*
 * Postcopy from the start switches inside the first pass. A page that was
 * never populated when its chunk's residency was checked, and that the
 * guest first wrote after that check but before the switch, is in the
 * switch's dirty log: it must go with its data, whether the sweep reaches
 * it or the destination asks for it. (It went as a zero page, unread, and
 * the destination lost the write: gwos saw its tags as zeros.)
 */
static void first_write_before_switch_body(void)
{
    const uint64_t npages = 4 * MIB / GW_PAGE_SIZE;
    const uint64_t swept = 600, requested = 700;
    Machine *m = harness_init(4 * MIB, GW_PAGE_SIZE, 1);
    g_autoptr(GError) err = NULL;
    uint64_t dirty;
    size_t len;

    for (unsigned p = 0; p < 100; p++) {
        memset(m->ram->host + (uint64_t)p * GW_PAGE_SIZE, 0x11, GW_PAGE_SIZE);
    }
    g_assert_true(ram_start_tracking(&err));
    g_assert_true(ram_sync(&dirty, &err));
    MigStream *w = stream_new_mem_writer();
    g_assert_true(savevm_live_setup(w, &err));
    ram_set_budget(budget_after_first_run, (void *)&npages);
    /* The residency check of the only chunk, then one run. */
    g_assert_cmpint(savevm_live_iterate(w, &err), ==, 0);
    g_assert_cmpuint(ram_dirty_pages(), <, npages);
    g_assert_cmpuint(ram_dirty_pages(), >, npages - requested);
    ram_set_budget(NULL, NULL);

    /* The guest's first writes of two pages the sweep has not reached. */
    memset(m->ram->host + swept * GW_PAGE_SIZE, 0x5a, GW_PAGE_SIZE);
    memset(m->ram->host + requested * GW_PAGE_SIZE, 0x5b, GW_PAGE_SIZE);
    harness_dirty(swept, 1);
    harness_dirty(requested, 1);

    /* The switch, then the destination asks for one of them. */
    g_assert_true(ram_sync(&dirty, &err));
    g_assert_true(ram_postcopy_send_discard(w, &err));
    ram_postcopy_switch();
    g_assert_true(ram_queue_request("pc.ram", requested * GW_PAGE_SIZE, GW_PAGE_SIZE, &err));
    for (int i = 0; i < 1000; i++) {
        int r = savevm_live_iterate(w, &err);
        g_assert_cmpint(r, >=, 0);
        if (r == 1 && !ram_has_requests()) {
            break;
        }
    }
    g_assert_cmpuint(ram_dirty_pages(), ==, 0);

    const uint8_t *d = stream_mem_data(w, &len);
    g_autoptr(GArray) runs = decode_ram_records(d, len);
    g_autofree uint8_t *seen = g_new0(uint8_t, npages);
    for (guint i = 0; i < runs->len; i++) {
        SentRun *r = &g_array_index(runs, SentRun, i);
        for (uint32_t k = 0; k < r->npages; k++) {
            uint64_t p = r->offset / GW_PAGE_SIZE + k;
            bool has_data = p < 100 || p == swept || p == requested;
            g_assert_cmpuint(seen[p]++, ==, 0);
            if (r->zero == has_data) {
                g_error("page %" PRIu64 " went as %s; it holds %s", p,
                        r->zero ? "a zero page" : "data", has_data ? "data" : "zeros");
            }
        }
    }
    for (uint64_t p = 0; p < npages; p++) {
        g_assert_cmpuint(seen[p], ==, 1);
    }
    stream_free(w);
    ram_stop_tracking();
}

static void test_first_write_before_switch(void)
{
    SUBPROCESS(first_write_before_switch_body());
}

/* ---------------------------------------------------------------------- */
/* Destination: the loader under userfaultfd, huge pages assembled */

typedef struct DestCtx {
    unsigned requests;
} DestCtx;

static bool dest_request_page(void *opaque, uint64_t offset, uint32_t len)
{
    DestCtx *c = opaque;

    __atomic_fetch_add(&c->requests, 1, __ATOMIC_RELAXED);
    return true;
}

static const PostcopyHooks dest_hooks = { .request_page = dest_request_page };
static DestCtx dest_ctx;

static int dest_advise(void *opaque, uint64_t summary, uint64_t target, GError **errp)
{
    return ram_postcopy_incoming_advise(summary, target, &dest_hooks, &dest_ctx, errp) ? 0 : -1;
}

static int dest_discard(void *opaque, const char *block, const MigDiscardRange *r,
                        unsigned n, GError **errp)
{
    return ram_postcopy_incoming_discard(block, r, n, errp) ? 0 : -1;
}

static int dest_listen(void *opaque, GError **errp)
{
    int tid = 0;

    return ram_postcopy_incoming_listen(&tid, 1, errp) ? 0 : -1;
}

static int dest_run(void *opaque, GError **errp)
{
    return LOADVM_QUIT;
}

static const LoadVMCommandOps dest_ops = {
    .postcopy_advise = dest_advise, .postcopy_discard = dest_discard,
    .postcopy_listen = dest_listen, .postcopy_run = dest_run,
};

/* Header, CONFIG, ADVISE (2 MiB pages), then @pre (the RAM setup, discards), the switch. */
static GBytes *dest_prefix(const uint8_t *pre, size_t pre_len)
{
    MigStream *w = stream_new_mem_writer();
    g_autoptr(MigConfig) c = mig_config_new();
    MigStream *pk = stream_new_mem_writer();
    size_t len;

    savevm_put_header(w);
    savevm_put_config(w, c);
    savevm_send_postcopy_advise(w, 2 * MIB, GW_PAGE_SIZE);
    stream_put_buffer(w, pre, pre_len);
    savevm_send_postcopy_listen(pk);
    savevm_send_postcopy_run(pk);
    const uint8_t *pd = stream_mem_data(pk, &len);
    g_assert_true(savevm_send_packaged(w, pd, len, NULL));
    stream_free(pk);
    const uint8_t *d = stream_mem_data(w, &len);
    GBytes *b = g_bytes_new(d, len);
    stream_free(w);
    return b;
}

/*
 * Load @prefix (up to RUN) then @post on the listen thread's view, as the
 * destination does. Returns the listen side's result; @errp set on error.
 */
static LoadVMResult dest_load(GBytes *prefix, const uint8_t *post, size_t post_len,
                              GError **errp)
{
    gsize len;
    const uint8_t *d = g_bytes_get_data(prefix, &len);
    MigStream *s = stream_new_mem_reader(d, len, false);
    LoadVMState *st = loadvm_state_new(NULL, &dest_ops, NULL);

    g_assert_true(loadvm_read_header(st, s, errp));
    g_assert_cmpint(loadvm_main(st, s, errp), ==, LOADVM_QUIT);
    g_assert_no_error(*errp);
    MigStream *ls = stream_new_mem_reader(post, post_len, false);
    LoadVMState *f = loadvm_state_fork(st, NULL, NULL);
    LoadVMResult r = loadvm_main(f, ls, errp);
    stream_free(ls);
    stream_free(s);
    loadvm_state_free(f);
    loadvm_state_free(st);
    return r;
}

/* The RAM setup section of a 8 MiB block with 2 MiB pages (a source's START). */
static void put_ram_start(MigStream *w)
{
    MigRamBlockInfo b = { .name = "pc.ram", .size = 8 * MIB, .page_size = 2 * MIB };

    savevm_put_section_header(w, MIG_REC_SECTION_START, 1, "ram", 0, RAM_SECTION_VERSION);
    ram_put_mem_size(w, &b, 1);
    ram_put_eos(w);
    savevm_put_footer(w, 1);
}

/*
 * Every target page of a host page, in order, data and zero mixed: the
 * destination places each host page whole once its last target page is
 * there. Nothing is requested: nothing faults.
 */
static void hugepage_assembly_body(void)
{
    Machine *m = harness_init(8 * MIB, 2 * MIB, 1);
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *src = g_malloc0(8 * MIB);
    RamWriter rw;
    size_t len;

    if (!postcopy_ram_supported(m->ram, &err)) {
        g_test_skip(err->message);
        g_printerr("*** SKIP: %s ***\n", err->message);
        return;
    }
    for (uint64_t p = 0; p < 2048; p++) {
        bool zero = (p >= 512 && p < 1024) || (p >= 1536 && p % 3 == 0) || p == 7;
        if (!zero) {
            memset(src + p * GW_PAGE_SIZE, (int)(p % 251 + 1), GW_PAGE_SIZE);
        }
    }
    MigStream *pre = stream_new_mem_writer();
    put_ram_start(pre);
    const uint8_t *pred = stream_mem_data(pre, &len);
    g_autoptr(GBytes) prefix = dest_prefix(pred, len);
    stream_free(pre);

    /* After the switch: page by page stretches, as the source classifies them. */
    MigStream *w = stream_new_mem_writer();
    ram_writer_reset(&rw);
    savevm_put_section_header(w, MIG_REC_SECTION_PART, 1, NULL, 0, 0);
    for (uint64_t p = 0; p < 2048;) {
        bool zero = ram_buffer_is_zero(src + p * GW_PAGE_SIZE, GW_PAGE_SIZE);
        uint64_t q = p + 1;
        while (q < 2048 && q % 512 && ram_buffer_is_zero(src + q * GW_PAGE_SIZE,
                                                         GW_PAGE_SIZE) == zero) {
            q++;
        }
        if (zero) {
            ram_put_zero(w, &rw, "pc.ram", p * GW_PAGE_SIZE, (uint32_t)(q - p));
        } else {
            ram_put_pages(w, &rw, "pc.ram", p * GW_PAGE_SIZE, src + p * GW_PAGE_SIZE,
                          (uint32_t)(q - p));
        }
        p = q;
    }
    ram_put_eos(w);
    savevm_put_footer(w, 1);
    savevm_put_section_header(w, MIG_REC_SECTION_END, 1, NULL, 0, 0);
    ram_put_eos(w);
    savevm_put_footer(w, 1);
    savevm_put_eof(w);
    const uint8_t *post = stream_mem_data(w, &len);

    g_assert_cmpint(dest_load(prefix, post, len, &err), ==, LOADVM_EOF);
    g_assert_no_error(err);
    PostcopyIncoming *pc = ram_postcopy_incoming();
    PostcopyStats st;
    postcopy_get_stats(pc, &st);
    /* Four host pages: three with data, one all zero; each placed once. */
    g_assert_cmpuint(st.pages_placed, ==, 3);
    g_assert_cmpuint(st.zero_pages_placed, ==, 1);
    g_assert_cmpuint(st.duplicates, ==, 0);
    g_assert_cmpuint(st.missing_pages, ==, 0);
    g_assert_cmpuint(dest_ctx.requests, ==, 0);
    g_assert_true(postcopy_incoming_finish(pc, &err));
    g_assert_cmpmem(m->ram->host, 8 * MIB, src, 8 * MIB);
    stream_free(w);
}

static void test_hugepage_assembly(void)
{
    SUBPROCESS(hugepage_assembly_body());
}

/*
 * A record for another host page while one is incomplete is a protocol
 * error (the source must not interleave them): refused, naming both, and
 * nothing of the incomplete host page was placed.
 */
static void hugepage_interleaved_body(void)
{
    Machine *m = harness_init(8 * MIB, 2 * MIB, 1);
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *src = g_malloc(8 * MIB);
    unsigned char vec[512];
    RamWriter rw;
    size_t len;

    if (!postcopy_ram_supported(m->ram, &err)) {
        g_test_skip(err->message);
        g_printerr("*** SKIP: %s ***\n", err->message);
        return;
    }
    memset(src, 0x5a, 8 * MIB);
    MigStream *pre = stream_new_mem_writer();
    put_ram_start(pre);
    const uint8_t *pred = stream_mem_data(pre, &len);
    g_autoptr(GBytes) prefix = dest_prefix(pred, len);
    stream_free(pre);

    MigStream *w = stream_new_mem_writer();
    ram_writer_reset(&rw);
    savevm_put_section_header(w, MIG_REC_SECTION_PART, 1, NULL, 0, 0);
    ram_put_pages(w, &rw, "pc.ram", 0, src, 16);
    ram_put_pages(w, &rw, "pc.ram", 4 * MIB, src, 1);
    ram_put_eos(w);
    savevm_put_footer(w, 1);
    const uint8_t *post = stream_mem_data(w, &len);

    g_assert_cmpint(dest_load(prefix, post, len, &err), ==, LOADVM_ERROR);
    g_assert_cmpstr(err->message, ==, "Loading section 'ram': page 0x400000 arrived while "
                    "huge page 0x0 was incomplete");
    PostcopyStats st;
    postcopy_get_stats(ram_postcopy_incoming(), &st);
    g_assert_cmpuint(st.pages_placed, ==, 0);
    g_assert_cmpuint(st.missing_pages, ==, 2048);
    /* Still absent (a read would block on userfaultfd): mincore says so. */
    g_assert_cmpint(mincore(m->ram->host, 2 * MIB, vec), ==, 0);
    for (unsigned i = 0; i < 512; i++) {
        g_assert_cmpuint(vec[i] & 1, ==, 0);
    }
    stream_free(w);
}

static void test_hugepage_interleaved(void)
{
    SUBPROCESS(hugepage_interleaved_body());
}

/* The source of the end-to-end test: what it sent before and after the switch. */
static void e2e_source(const char *pre_path, const char *post_path)
{
    Machine *m = harness_init(8 * MIB, 2 * MIB, 1);
    g_autoptr(GError) err = NULL;
    BudgetCtx ctx = { .total_pages = 2048, .req_offset = 6 * MIB, .req_len = 2 * MIB };
    uint64_t dirty;
    size_t len;

    fill_pattern(m, 3);
    memset(m->ram->host + 2 * MIB, 0, 2 * MIB);      /* host page 1 reads as zero */
    g_assert_true(ram_start_tracking(&err));
    g_assert_true(ram_sync(&dirty, &err));
    MigStream *pre = stream_new_mem_writer();
    g_assert_true(savevm_live_setup(pre, &err));
    g_assert_true(ram_postcopy_send_discard(pre, &err));
    ram_postcopy_switch();
    MigStream *post = stream_new_mem_writer();
    ram_set_budget(budget_queue_request, &ctx);
    for (int i = 0; i < 1000; i++) {
        int r = savevm_live_iterate(post, &err);
        g_assert_cmpint(r, >=, 0);
        if (r == 1 && !ram_has_requests()) {
            break;
        }
    }
    g_assert_true(ctx.queued);
    g_assert_true(savevm_live_complete(post, &err));
    savevm_put_eof(post);
    const uint8_t *d = stream_mem_data(pre, &len);
    g_assert_true(g_file_set_contents(pre_path, (const char *)d, len, NULL));
    d = stream_mem_data(post, &len);
    g_assert_true(g_file_set_contents(post_path, (const char *)d, len, NULL));
}

/*
 * The source's own output after the switch, with a request arriving while
 * a host page is in flight, loaded by the destination under userfaultfd:
 * every host page placed once, memory equal to the source's.
 */
static void hugepage_e2e_body(void)
{
    g_autofree char *dir = g_dir_make_tmp("gw-test-ram-XXXXXX", NULL);
    g_autofree char *pre_path = g_build_filename(dir, "pre", NULL);
    g_autofree char *post_path = g_build_filename(dir, "post", NULL);
    g_autoptr(GError) err = NULL;
    g_autofree char *pre = NULL, *post = NULL;
    gsize pre_len, post_len;
    int status;

    /* The source in a process of its own: one ram_state per process. */
    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        e2e_source(pre_path, post_path);
        _exit(0);
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_assert_true(g_file_get_contents(pre_path, &pre, &pre_len, NULL));
    g_assert_true(g_file_get_contents(post_path, &post, &post_len, NULL));
    g_unlink(pre_path);
    g_unlink(post_path);
    g_rmdir(dir);

    Machine *m = harness_init(8 * MIB, 2 * MIB, 1);
    if (!postcopy_ram_supported(m->ram, &err)) {
        g_test_skip(err->message);
        g_printerr("*** SKIP: %s ***\n", err->message);
        return;
    }
    g_autoptr(GBytes) prefix = dest_prefix((const uint8_t *)pre, pre_len);
    g_assert_cmpint(dest_load(prefix, (const uint8_t *)post, post_len, &err), ==, LOADVM_EOF);
    g_assert_no_error(err);
    PostcopyStats st;
    postcopy_get_stats(ram_postcopy_incoming(), &st);
    g_assert_cmpuint(st.pages_placed, ==, 3);
    g_assert_cmpuint(st.zero_pages_placed, ==, 1);
    g_assert_cmpuint(st.duplicates, ==, 0);
    g_assert_true(postcopy_incoming_finish(ram_postcopy_incoming(), &err));
    /* What the source held: the pattern, host page 1 zero. */
    g_autofree uint8_t *want = g_malloc(8 * MIB);
    for (uint64_t p = 0; p < 2048; p++) {
        memset(want + p * GW_PAGE_SIZE, (uint8_t)(3 + p % 251 + 1), GW_PAGE_SIZE);
    }
    memset(want + 2 * MIB, 0, 2 * MIB);
    g_assert_cmpmem(m->ram->host, 8 * MIB, want, 8 * MIB);
}

static void test_hugepage_e2e(void)
{
    SUBPROCESS(hugepage_e2e_body());
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ram/source/postcopy-hugepage-order", test_hugepage_order);
    g_test_add_func("/ram/source/request-queue", test_request_queue);
    g_test_add_func("/ram/source/resume-from-received", test_resume_from_received);
    g_test_add_func("/ram/source/nonresident-file", test_nonresident_file);
    g_test_add_func("/ram/source/nonresident-written-file", test_nonresident_written_file);
    g_test_add_func("/ram/source/unpopulated-anonymous", test_unpopulated_anon);
    g_test_add_func("/ram/source/postcopy-first-write-before-switch",
                    test_first_write_before_switch);
    g_test_add_func("/ram/destination/zero-on-reused-memory", test_zero_reused);
    g_test_add_func("/ram/destination/zero-on-fresh-memory", test_zero_fresh);
    g_test_add_func("/ram/destination/hugepage-assembly", test_hugepage_assembly);
    g_test_add_func("/ram/destination/hugepage-interleaved", test_hugepage_interleaved);
    g_test_add_func("/ram/postcopy/hugepage-source-to-destination", test_hugepage_e2e);
    return g_test_run();
}
