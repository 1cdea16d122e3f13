/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for migration/stream.c: typed big-endian put/get, the
 * first-error latch, counted strings, zero-copy pages, byte counters,
 * round trips over a socketpair and a pipe, and shutdown of a blocked reader.
 */
#include "qemu/osdep.h"

#include <sys/socket.h>

#include "migration/stream.h"

static const uint8_t golden_typed[] = {
    0xab,
    0x12, 0x34,
    0xde, 0xad, 0xbe, 0xef,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    0x03, 'r', 'a', 'm',
    0x00,
    'x', 'y',
};

static void put_typed(MigStream *s)
{
    stream_put_u8(s, 0xab);
    stream_put_be16(s, 0x1234);
    stream_put_be32(s, 0xdeadbeef);
    stream_put_be64(s, 0x0102030405060708ULL);
    stream_put_cstr(s, "ram");
    stream_put_cstr(s, "");
    stream_put_buffer(s, "xy", 2);
}

static void test_mem_golden(void)
{
    MigStream *s = stream_new_mem_writer();
    size_t len;

    put_typed(s);
    g_assert_true(stream_check(s, NULL));
    const uint8_t *data = stream_mem_data(s, &len);
    g_assert_cmpmem(data, len, golden_typed, sizeof(golden_typed));
    g_assert_cmpuint(stream_bytes(s), ==, sizeof(golden_typed));
    stream_free(s);
}

static void test_mem_get(void)
{
    MigStream *s = stream_new_mem_reader(golden_typed, sizeof(golden_typed),
                                         false);
    char str[STREAM_MAX_CSTR + 1];
    uint8_t xy[2];

    g_assert_cmpuint(stream_get_u8(s), ==, 0xab);
    g_assert_cmpuint(stream_get_be16(s), ==, 0x1234);
    g_assert_cmpuint(stream_get_be32(s), ==, 0xdeadbeef);
    g_assert_cmpuint(stream_get_be64(s), ==, 0x0102030405060708ULL);
    g_assert_true(stream_get_cstr(s, str));
    g_assert_cmpstr(str, ==, "ram");
    g_assert_true(stream_get_cstr(s, str));
    g_assert_cmpstr(str, ==, "");
    stream_get_buffer(s, xy, 2);
    g_assert_cmpmem(xy, 2, "xy", 2);
    g_assert_true(stream_check(s, NULL));
    g_assert_true(stream_at_eof(s));
    g_assert_cmpuint(stream_bytes(s), ==, sizeof(golden_typed));
    stream_free(s);
}

/* After the first error every get returns 0 and the first error stays. */
static void test_error_latch(void)
{
    static const uint8_t two[] = { 0x11, 0x22 };
    MigStream *s = stream_new_mem_reader(two, sizeof(two), false);
    GError *err = NULL;

    g_assert_cmpuint(stream_get_be32(s), ==, 0);
    g_assert_true(stream_has_error(s));
    /* Even a byte that is there is not returned any more. */
    g_assert_cmpuint(stream_get_u8(s), ==, 0);
    stream_set_error_msg(s, "second error");
    g_assert_false(stream_check(s, &err));
    g_assert_cmpstr(err->message, ==, "Unexpected end of migration stream");
    g_clear_error(&err);
    stream_free(s);

    /* Writers too: a too-long string latches and later puts are dropped. */
    s = stream_new_mem_writer();
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    stream_put_u8(s, 1);
    stream_put_cstr(s, longname);
    stream_put_be32(s, 5);
    size_t len;
    stream_mem_data(s, &len);
    g_assert_cmpuint(len, ==, 1);
    g_assert_false(stream_check(s, &err));
    g_assert_nonnull(strstr(err->message, "too long"));
    g_clear_error(&err);
    stream_free(s);
}

/* Counted strings: truncated name, and a long valid one. */
static void test_cstr_bounds(void)
{
    static const uint8_t trunc[] = { 0x05, 'a', 'b' };
    char str[STREAM_MAX_CSTR + 1];
    MigStream *s = stream_new_mem_reader(trunc, sizeof(trunc), false);

    g_assert_false(stream_get_cstr(s, str));
    g_assert_cmpstr(str, ==, "");
    stream_free(s);

    uint8_t full[256];
    full[0] = 255;
    memset(full + 1, 'z', 255);
    s = stream_new_mem_reader(full, sizeof(full), false);
    g_assert_true(stream_get_cstr(s, str));
    g_assert_cmpuint(strlen(str), ==, 255);
    stream_free(s);

    static const uint8_t nul[] = { 0x03, 'a', 0, 'b' };
    s = stream_new_mem_reader(nul, sizeof(nul), false);
    g_assert_false(stream_get_cstr(s, str));
    g_assert_true(stream_has_error(s));
    stream_free(s);
}

static void test_get_alloc_and_skip(void)
{
    size_t len = 3 << 20;
    g_autofree uint8_t *src = g_malloc(len);
    for (size_t i = 0; i < len; i++) {
        src[i] = i * 7;
    }
    MigStream *s = stream_new_mem_reader(src, len, false);
    stream_skip(s, 10);
    g_autofree uint8_t *got = stream_get_alloc(s, len - 20);
    g_assert_nonnull(got);
    g_assert_cmpmem(got, len - 20, src + 10, len - 20);
    /* Asking for more than is there fails without reading out of bounds. */
    g_assert_null(stream_get_alloc(s, 11));
    g_assert_true(stream_has_error(s));
    stream_free(s);

    /* A hostile length on a short input. */
    s = stream_new_mem_reader(src, 100, false);
    g_assert_null(stream_get_alloc(s, 16u << 20));
    stream_free(s);

    /* stream_get_ptr beyond the buffer size is refused. */
    s = stream_new_mem_reader(src, len, false);
    g_assert_null(stream_get_ptr(s, STREAM_BUF_SIZE + 1));
    g_assert_true(stream_has_error(s));
    stream_free(s);
}

typedef struct Peer {
    MigStream *s;
    uint8_t *pages;
    size_t npages;
    uint64_t bytes;
    bool ok;
    GError *err;
} Peer;

#define PAGE 4096

/*
 * A mix of small items and zero-copy pages, enough to cross every flush
 * threshold; then the sender closes its end so the reader sees EOF.
 */
static gpointer send_mix(gpointer opaque)
{
    Peer *p = opaque;

    for (size_t i = 0; i < p->npages; i++) {
        stream_put_be64(p->s, i * PAGE | 0x8);
        if (i % 3 == 0) {
            stream_put_cstr(p->s, "pc.ram");
        }
        stream_put_page(p->s, p->pages + i * PAGE, PAGE);
    }
    /* A big copied buffer too (larger than the write buffer). */
    stream_put_buffer(p->s, p->pages, 300 * 1024);
    stream_put_be32(p->s, 0xfeedf00d);
    p->ok = stream_flush(p->s, &p->err);
    g_assert_cmpuint(stream_pending(p->s), ==, 0);
    p->bytes = stream_bytes(p->s);
    stream_free(p->s);
    return NULL;
}

static void recv_mix(MigStream *r, Peer *p)
{
    char name[STREAM_MAX_CSTR + 1];
    uint8_t page[PAGE];

    for (size_t i = 0; i < p->npages; i++) {
        g_assert_cmpuint(stream_get_be64(r), ==, i * PAGE | 0x8);
        if (i % 3 == 0) {
            g_assert_true(stream_get_cstr(r, name));
            g_assert_cmpstr(name, ==, "pc.ram");
        }
        if (i % 2) {
            const uint8_t *ptr = stream_get_ptr(r, PAGE);
            g_assert_nonnull(ptr);
            g_assert_true(memcmp(ptr, p->pages + i * PAGE, PAGE) == 0);
        } else {
            stream_get_buffer(r, page, PAGE);
            g_assert_true(memcmp(page, p->pages + i * PAGE, PAGE) == 0);
        }
    }
    g_autofree uint8_t *big = g_malloc(300 * 1024);
    stream_get_buffer(r, big, 300 * 1024);
    g_assert_true(memcmp(big, p->pages, 300 * 1024) == 0);
    g_assert_cmpuint(stream_get_be32(r), ==, 0xfeedf00d);
    g_assert_true(stream_check(r, NULL));
    g_assert_true(stream_at_eof(r));
}

/* Takes the references on @wch and @rch. */
static void roundtrip(QIOChannel *wch, QIOChannel *rch)
{
    Peer p = { .npages = 2000 };

    p.pages = g_malloc(p.npages * PAGE);
    for (size_t i = 0; i < p.npages * PAGE; i++) {
        p.pages[i] = (i * 31) ^ (i >> 12);
    }
    p.s = stream_new_writer(wch);
    qio_channel_unref(wch);   /* the stream holds the only reference */
    MigStream *r = stream_new_reader(rch);
    qio_channel_unref(rch);

    GThread *t = g_thread_new("sender", send_mix, &p);
    recv_mix(r, &p);
    g_thread_join(t);
    g_assert_no_error(p.err);
    g_assert_true(p.ok);
    g_assert_cmpuint(p.bytes, ==, stream_bytes(r));
    stream_free(r);
    g_free(p.pages);
}

static void test_roundtrip_socketpair(void)
{
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    ==, 0);
    roundtrip(qio_channel_new_fd(sv[0], QIO_CHANNEL_SOCKET, "a", NULL),
              qio_channel_new_fd(sv[1], QIO_CHANNEL_SOCKET, "b", NULL));
}

static void test_roundtrip_pipe(void)
{
    int p[2];

    g_assert_cmpint(pipe(p), ==, 0);
    roundtrip(qio_channel_new_pipes(-1, p[1], 0, "w", NULL),
              qio_channel_new_pipes(p[0], -1, 0, "r", NULL));
}

static gpointer read_forever(gpointer opaque)
{
    MigStream *r = opaque;

    stream_get_be32(r);
    return NULL;
}

/* stream_shutdown from another thread ends a read blocked on the socket. */
static void test_shutdown_blocked_reader(void)
{
    int sv[2];
    GError *err = NULL;

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    ==, 0);
    QIOChannel *a = qio_channel_new_fd(sv[0], QIO_CHANNEL_SOCKET, "a", NULL);
    MigStream *r = stream_new_reader(a);
    qio_channel_unref(a);
    GThread *t = g_thread_new("reader", read_forever, r);
    g_usleep(50 * 1000);
    stream_shutdown(r);
    g_thread_join(t);
    g_assert_false(stream_check(r, &err));
    g_clear_error(&err);
    stream_free(r);
    close(sv[1]);
}

/* The writer's latch: a write to a vanished peer fails once, then no-ops. */
static void test_writer_peer_gone(void)
{
    int sv[2];
    GError *err = NULL;
    static uint8_t page[PAGE];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    ==, 0);
    close(sv[1]);
    QIOChannel *a = qio_channel_new_fd(sv[0], QIO_CHANNEL_SOCKET, "a", NULL);
    MigStream *w = stream_new_writer(a);
    qio_channel_unref(a);
    for (int i = 0; i < 1000; i++) {
        stream_put_page(w, page, PAGE);
    }
    g_assert_false(stream_flush(w, &err));
    g_assert_nonnull(strstr(err->message, "Unable to write"));
    g_clear_error(&err);
    stream_put_be32(w, 1);
    g_assert_false(stream_flush(w, NULL));
    stream_free(w);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/stream/mem-golden", test_mem_golden);
    g_test_add_func("/migration/stream/mem-get", test_mem_get);
    g_test_add_func("/migration/stream/error-latch", test_error_latch);
    g_test_add_func("/migration/stream/cstr-bounds", test_cstr_bounds);
    g_test_add_func("/migration/stream/get-alloc-skip",
                    test_get_alloc_and_skip);
    g_test_add_func("/migration/stream/roundtrip/socketpair",
                    test_roundtrip_socketpair);
    g_test_add_func("/migration/stream/roundtrip/pipe", test_roundtrip_pipe);
    g_test_add_func("/migration/stream/shutdown-blocked-reader",
                    test_shutdown_blocked_reader);
    g_test_add_func("/migration/stream/writer-peer-gone",
                    test_writer_peer_gone);
    return g_test_run();
}
