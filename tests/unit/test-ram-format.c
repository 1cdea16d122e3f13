/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for migration/ram-format.c: golden bytes of every RAM record,
 * CONTINUE elision, runs, decoding with hostile flags/names/lengths, every
 * truncation, the zero-page helpers, and a throughput check of page runs
 * over a unix socketpair.
 */
#include "qemu/osdep.h"

#include <sys/mman.h>
#include <sys/socket.h>

#include "migration/ram-format.h"

#define P RAM_REC_PAGE_SIZE

static GBytes *take_mem(MigStream *s)
{
    size_t len;
    const uint8_t *d = stream_mem_data(s, &len);
    GBytes *b = g_bytes_new(d, len);

    stream_free(s);
    return b;
}

static void test_golden(void)
{
    static uint8_t pages[3 * 4096];
    MigRamBlockInfo blocks[2] = {
        { .name = "pc.ram", .size = 0x4000, .page_size = 0x1000 },
        { .name = "rom", .size = 0x1000, .page_size = 0x1000 },
    };
    MigStream *s = stream_new_mem_writer();
    RamWriter w;

    memset(pages, 0xa5, sizeof(pages));
    ram_writer_reset(&w);
    ram_put_mem_size(s, blocks, 2);
    ram_put_eos(s);
    ram_put_zero(s, &w, "pc.ram", 0x1000, 1);
    ram_put_zero(s, &w, "pc.ram", 0x2000, 5);
    ram_put_pages(s, &w, "rom", 0, pages, 1);
    ram_put_pages(s, &w, "rom", 0x3000, pages, 3);
    ram_put_eos(s);
    g_autoptr(GBytes) b = take_mem(s);

    GByteArray *e = g_byte_array_new();
#define BYTES(...) do { \
        static const uint8_t x_[] = { __VA_ARGS__ }; \
        g_byte_array_append(e, x_, sizeof(x_)); \
    } while (0)
    BYTES(0, 0, 0, 0, 0, 0, 0x50, 0x04);                 /* MEM_SIZE 0x5000 */
    BYTES(6, 'p', 'c', '.', 'r', 'a', 'm', 0, 0, 0, 0, 0, 0, 0x40, 0,
          0, 0, 0, 0, 0, 0, 0x10, 0);
    BYTES(3, 'r', 'o', 'm', 0, 0, 0, 0, 0, 0, 0x10, 0,
          0, 0, 0, 0, 0, 0, 0x10, 0);
    BYTES(0, 0, 0, 0, 0, 0, 0, 0x10);                    /* EOS */
    BYTES(0, 0, 0, 0, 0, 0, 0x10, 0x02, 6, 'p', 'c', '.', 'r', 'a', 'm');
    BYTES(0, 0, 0, 0, 0, 0, 0x20, 0x60, 0, 0, 0, 5);     /* ZERO_RUN|CONT */
    BYTES(0, 0, 0, 0, 0, 0, 0, 0x08, 3, 'r', 'o', 'm');  /* PAGE */
    g_byte_array_append(e, pages, 4096);
    BYTES(0, 0, 0, 0, 0, 0, 0x30, 0xa0, 0, 0, 0, 3);     /* PAGE_RUN|CONT */
    g_byte_array_append(e, pages, 3 * 4096);
    BYTES(0, 0, 0, 0, 0, 0, 0, 0x10);
#undef BYTES
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);
    g_assert_cmpmem(d, len, e->data, e->len);
    g_byte_array_unref(e);
}

static GBytes *sample_stream(void)
{
    static uint8_t pages[4 * 4096];
    MigRamBlockInfo blocks[1] = {
        { .name = "pc.ram", .size = 0x100000, .page_size = 0x1000 },
    };
    MigStream *s = stream_new_mem_writer();
    RamWriter w;

    for (size_t i = 0; i < sizeof(pages); i++) {
        pages[i] = i / 4096 + 1;
    }
    ram_writer_reset(&w);
    ram_put_mem_size(s, blocks, 1);
    ram_put_zero(s, &w, "pc.ram", 0, 1);
    ram_put_pages(s, &w, "pc.ram", 0x1000, pages, 1);
    ram_put_zero(s, &w, "pc.ram", 0x2000, 7);
    ram_put_pages(s, &w, "pc.ram", 0x10000, pages, 4);
    ram_put_eos(s);
    return take_mem(s);
}

/* Decode a whole sample; returns false with @errp on the first error. */
static bool decode_all(const uint8_t *d, size_t len, GString *log,
                       GError **errp)
{
    MigStream *s = stream_new_mem_reader(d, len, false);
    RamReader r;
    RamRecord rec;
    bool ok = false;

    ram_reader_reset(&r);
    for (;;) {
        if (!ram_get_record(s, &r, &rec, errp)) {
            break;
        }
        if (rec.type == RAM_RECORD_EOS) {
            g_string_append(log, "eos");
            ok = true;
            break;
        }
        if (rec.type == RAM_RECORD_MEM_SIZE) {
            g_autofree MigRamBlockInfo *b = NULL;
            unsigned n;
            if (!ram_get_mem_size_blocks(s, rec.offset, &b, &n, errp)) {
                break;
            }
            g_string_append_printf(log, "size %" PRIx64 " %u %s;", rec.offset,
                                   n, b[0].name);
            continue;
        }
        if (!ram_record_check_range(&rec, 0x100000, errp)) {
            break;
        }
        g_string_append_printf(log, "%s %s %" PRIx64 " %" PRIu32 ";",
                               rec.type == RAM_RECORD_ZERO ? "zero" : "data",
                               rec.block, rec.offset, rec.npages);
        if (rec.type == RAM_RECORD_PAGES) {
            g_autofree uint8_t *buf = g_malloc(rec.npages * P);
            stream_get_buffer(s, buf, rec.npages * P);
            if (!stream_check(s, errp)) {
                break;
            }
            g_string_append_printf(log, "[%u..%u]", buf[0],
                                   buf[rec.npages * P - 1]);
        }
    }
    stream_free(s);
    return ok;
}

static void test_decode(void)
{
    g_autoptr(GBytes) b = sample_stream();
    g_autoptr(GString) log = g_string_new("");
    GError *err = NULL;
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);

    g_assert_true(decode_all(d, len, log, &err));
    g_assert_no_error(err);
    g_assert_cmpstr(log->str, ==,
                    "size 100000 1 pc.ram;zero pc.ram 0 1;data pc.ram 1000 1;"
                    "[1..1]zero pc.ram 2000 7;data pc.ram 10000 4;[1..4]eos");
}

static void test_truncated(void)
{
    g_autoptr(GBytes) b = sample_stream();
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);

    for (gsize n = 0; n < len; n++) {
        g_autoptr(GString) log = g_string_new("");
        GError *err = NULL;
        g_autofree uint8_t *copy = g_memdup2(d, n ? n : 1);
        g_assert_false(decode_all(copy, n, log, &err));
        g_assert_nonnull(err);
        g_error_free(err);
    }
}

static void test_hostile(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *msg;
    } cases[] = {
        { "\0\0\0\0\0\0\0\0", 8, "Invalid RAM record flags 0x0" },
        { "\0\0\0\0\0\0\0\x01", 8, "Unknown RAM record flags 0x1" },
        { "\0\0\0\0\0\0\x01\0", 8, "Unknown RAM record flags 0x100" },
        { "\0\0\0\0\0\0\0\x0a\x01x", 10, "Invalid RAM record flags 0xa" },
        { "\0\0\0\0\0\0\0\x30", 8, "Invalid RAM record flags 0x30" },
        { "\0\0\0\0\0\0\x10\x10", 8, "Malformed RAM end-of-section" },
        { "\0\0\0\0\0\0\0\x22", 8, "continues a block but none was named" },
        { "\0\0\0\0\0\0\0\x02\0", 9, "empty block name" },
        { "\0\0\0\0\0\0\0\x40\x01x\0\0\0\x01", 14, "Invalid RAM run length 1" },
        { "\0\0\0\0\0\0\0\x80\x01x\0\x04\0\x01", 14,
          "Invalid RAM run length 262145" },
        { "\0\0\0\0\0\x10\0\x02\x01x", 10, "is outside block 'x'" },
        { "\0\0\0\0\0\x0f\xf0\x40\x01x\0\0\0\x11", 14, "is outside block 'x'" },
        { "\0\0\0\0\0\x10\0\x04\x01x\0\0\0\0\0\x20\0\0\0\0\0\0\0\0\x10\0", 26,
          "does not fit the announced total" },
        { "\0\0\0\0\0\x10\0\x04\x01x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x10\0", 26,
          "does not fit the announced total" },
        { "\0\0\0\0\0\0\0\x08\x05x", 10, "Unexpected end" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GString) log = g_string_new("");
        GError *err = NULL;
        g_autofree uint8_t *copy = g_memdup2(cases[i].bytes, cases[i].len);
        g_assert_false(decode_all(copy, cases[i].len, log, &err));
        g_assert_nonnull(err);
        if (!strstr(err->message, cases[i].msg)) {
            g_error("case %zu: '%s' lacks '%s'", i, err->message,
                    cases[i].msg);
        }
        g_error_free(err);
    }
}

/* A run longer than the maximum is split; CONTINUE survives the split. */
static void test_long_runs(void)
{
    MigStream *s = stream_new_mem_writer();
    RamWriter w;
    RamReader r;
    RamRecord rec;

    ram_writer_reset(&w);
    ram_put_zero(s, &w, "big", 0, RAM_REC_MAX_RUN + 3);
    size_t len;
    const uint8_t *d = stream_mem_data(s, &len);
    MigStream *rs = stream_new_mem_reader(d, len, false);
    ram_reader_reset(&r);
    g_assert_true(ram_get_record(rs, &r, &rec, NULL));
    g_assert_cmpuint(rec.npages, ==, RAM_REC_MAX_RUN);
    g_assert_true(ram_get_record(rs, &r, &rec, NULL));
    g_assert_cmpuint(rec.npages, ==, 3);
    g_assert_cmpuint(rec.offset, ==, (uint64_t)RAM_REC_MAX_RUN * P);
    g_assert_cmpstr(rec.block, ==, "big");
    g_assert_true(stream_at_eof(rs));
    stream_free(rs);
    stream_free(s);
}

static void test_zero_helpers(void)
{
    size_t len = 64 * P;
    uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    g_assert_true(m != MAP_FAILED);
    g_assert_true(ram_buffer_is_zero(m, len));
    m[len - 1] = 1;
    g_assert_false(ram_buffer_is_zero(m, len));
    g_assert_false(ram_buffer_is_zero(m + len - P, P));
    g_assert_true(ram_buffer_is_zero(m, len - P));
    m[0] = 1;
    g_assert_false(ram_buffer_is_zero(m, P));
    /* Odd sizes still work. */
    g_assert_false(ram_buffer_is_zero(m + len - 3, 3));

    g_assert_false(ram_zero_pages(m + 2 * P, P, false));
    g_assert_true(ram_zero_pages(m, P, false));
    g_assert_true(ram_buffer_is_zero(m, P));
    munmap(m, len);

    /* Known untouched: not even read, so the page stays unpopulated. */
    m = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    g_assert_true(m != MAP_FAILED);
    g_assert_false(ram_zero_pages(m, P, true));
    unsigned char vec[1];
    g_assert_cmpint(mincore(m, P, vec), ==, 0);
    g_assert_false(vec[0] & 1);
    munmap(m, P);
}

typedef struct Sender {
    MigStream *s;
    const uint8_t *ram;
    size_t npages;
    unsigned rounds;
    bool ok;
} Sender;

static gpointer send_ram(gpointer opaque)
{
    Sender *sd = opaque;
    RamWriter w;

    ram_writer_reset(&w);
    for (unsigned r = 0; r < sd->rounds; r++) {
        /* Runs of 64 pages, as a dirty-bitmap scan would find them. */
        for (size_t i = 0; i < sd->npages; i += 64) {
            ram_put_pages(sd->s, &w, "pc.ram", i * P, sd->ram + i * P, 64);
        }
    }
    ram_put_eos(sd->s);
    sd->ok = stream_flush(sd->s, NULL);
    stream_free(sd->s);
    return NULL;
}

/*
 * Page runs over a unix socketpair into a destination buffer. Prints the
 * rate; asserts a low floor only (the machine is shared and may run
 * sanitizers), the number to watch is in the test log.
 */
static void test_throughput(void)
{
    size_t npages = 16384;        /* 64 MiB */
    unsigned rounds = 8;          /* 512 MiB in total */
    int sv[2];
    uint8_t *src = g_malloc(npages * P);
    uint8_t *dst = g_malloc(npages * P);

    memset(src, 0x5a, npages * P);
    memset(dst, 0, npages * P);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    ==, 0);
    QIOChannel *a = qio_channel_new_fd(sv[0], QIO_CHANNEL_SOCKET, "a", NULL);
    QIOChannel *b = qio_channel_new_fd(sv[1], QIO_CHANNEL_SOCKET, "b", NULL);
    Sender sd = { .s = stream_new_writer(a), .ram = src, .npages = npages,
                  .rounds = rounds };
    MigStream *rs = stream_new_reader(b);
    qio_channel_unref(a);
    qio_channel_unref(b);

    int64_t t0 = g_get_monotonic_time();
    GThread *t = g_thread_new("sender", send_ram, &sd);
    RamReader r;
    RamRecord rec;
    GError *err = NULL;
    ram_reader_reset(&r);
    for (;;) {
        g_assert_true(ram_get_record(rs, &r, &rec, &err));
        if (rec.type == RAM_RECORD_EOS) {
            break;
        }
        g_assert_true(ram_record_check_range(&rec, npages * P, &err));
        stream_get_buffer(rs, dst + rec.offset, (size_t)rec.npages * P);
    }
    g_thread_join(t);
    int64_t us = g_get_monotonic_time() - t0;
    g_assert_true(sd.ok);
    g_assert_true(stream_check(rs, NULL));
    g_assert_true(memcmp(src, dst, npages * P) == 0);
    double gbs = (double)npages * P * rounds / us / 1000.0;
    g_test_message("page runs over a unix socketpair: %.2f GB/s", gbs);
    g_assert_cmpfloat(gbs, >, 0.2);
    stream_free(rs);
    g_free(src);
    g_free(dst);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/ram-format/golden", test_golden);
    g_test_add_func("/migration/ram-format/decode", test_decode);
    g_test_add_func("/migration/ram-format/truncated", test_truncated);
    g_test_add_func("/migration/ram-format/hostile", test_hostile);
    g_test_add_func("/migration/ram-format/long-runs", test_long_runs);
    g_test_add_func("/migration/ram-format/zero-helpers", test_zero_helpers);
    g_test_add_func("/migration/ram-format/throughput", test_throughput);
    return g_test_run();
}
