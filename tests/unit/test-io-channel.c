/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for io/channel.c: full reads and writes over socketpairs and
 * pipes, EOF reporting, and cancellation of blocked I/O from another thread.
 */
#include "qemu/osdep.h"

#include <signal.h>
#include <sys/socket.h>

#include "io/channel.h"

static void make_socketpair(QIOChannel **a, QIOChannel **b)
{
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    ==, 0);
    *a = qio_channel_new_fd(sv[0], QIO_CHANNEL_SOCKET, "a", NULL);
    *b = qio_channel_new_fd(sv[1], QIO_CHANNEL_SOCKET, "b", NULL);
}

typedef struct Blob {
    QIOChannel *ch;
    uint8_t *buf;
    size_t len;
    bool ok;
    GError *err;
} Blob;

static gpointer writer_thread(gpointer opaque)
{
    Blob *b = opaque;

    b->ok = qio_channel_write_all(b->ch, b->buf, b->len, &b->err);
    return NULL;
}

static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245 + 12345;
        buf[i] = seed >> 16;
    }
}

static gpointer writer_close_thread(gpointer opaque)
{
    Blob *b = opaque;

    b->ok = qio_channel_write_all(b->ch, b->buf, b->len, &b->err);
    qio_channel_unref(b->ch);
    b->ch = NULL;
    return NULL;
}

/* A buffer much larger than the socket buffer forces partial writes. */
static void test_socketpair_roundtrip(void)
{
    QIOChannel *a, *b;
    size_t len = 8 << 20;
    Blob w = { .len = len };
    g_autofree uint8_t *in = g_malloc(len);
    GError *err = NULL;

    make_socketpair(&a, &b);
    w.ch = a;
    w.buf = g_malloc(len);
    fill_pattern(w.buf, len, 1);
    GThread *t = g_thread_new("writer", writer_thread, &w);
    g_assert_true(qio_channel_read_all(b, in, len, &err));
    g_assert_no_error(err);
    g_thread_join(t);
    g_assert_true(w.ok);
    g_assert_true(memcmp(in, w.buf, len) == 0);

    /* Clean EOF after the writer is gone. */
    qio_channel_unref(a);
    uint8_t c;
    g_assert_cmpint(qio_channel_read_all_eof(b, &c, 1, &err), ==, 0);
    g_assert_no_error(err);
    g_free(w.buf);
    qio_channel_unref(b);
}

static void test_pipe_roundtrip_and_eof(void)
{
    int p[2];
    GError *err = NULL;
    size_t len = 1 << 20;
    Blob w = { .len = len };
    g_autofree uint8_t *in = g_malloc(len);

    g_assert_cmpint(pipe(p), ==, 0);
    QIOChannel *r = qio_channel_new_pipes(p[0], -1, 0, "pipe-r", NULL);
    w.ch = qio_channel_new_pipes(-1, p[1], 0, "pipe-w", NULL);
    w.buf = g_malloc(len);
    fill_pattern(w.buf, len, 7);
    GThread *t = g_thread_new("writer", writer_close_thread, &w);
    /* Ask for one byte more than is sent: EOF in the middle is an error. */
    g_autofree uint8_t *big = g_malloc(len + 1);
    g_assert_cmpint(qio_channel_read_all_eof(r, big, len + 1, &err), ==, -1);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "Unexpected end-of-file"));
    g_thread_join(t);
    g_assert_true(w.ok);
    g_assert_true(memcmp(big, w.buf, len) == 0);
    g_clear_error(&err);

    /* Direction checks. */
    g_assert_false(qio_channel_write_all(r, "x", 1, &err));
    g_assert_nonnull(strstr(err->message, "not writable"));
    g_clear_error(&err);
    g_free(w.buf);
    qio_channel_unref(r);
}

typedef struct Blocked {
    QIOChannel *ch;
    bool write;
    int result;
    GError *err;
} Blocked;

static gpointer blocked_thread(gpointer opaque)
{
    Blocked *b = opaque;
    g_autofree uint8_t *buf = g_malloc0(16 << 20);

    if (b->write) {
        b->result = qio_channel_write_all(b->ch, buf, 16 << 20, &b->err);
    } else {
        b->result = qio_channel_read_all(b->ch, buf, 1, &b->err);
    }
    return NULL;
}

/* A read blocked on a pipe nobody writes to must return once cancelled. */
static void test_cancel_blocked_pipe_read(void)
{
    int p[2];

    g_assert_cmpint(pipe(p), ==, 0);
    Blocked b = { .ch = qio_channel_new_pipes(p[0], -1, 0, "pipe", NULL) };
    GThread *t = g_thread_new("reader", blocked_thread, &b);
    g_usleep(50 * 1000);
    qio_channel_shutdown(b.ch, QIO_CHANNEL_SHUTDOWN_READ);
    g_thread_join(t);
    g_assert_false(b.result);
    g_assert_nonnull(b.err);
    g_assert_nonnull(strstr(b.err->message, "cancelled"));
    g_error_free(b.err);
    qio_channel_unref(b.ch);
    close(p[1]);
}

/* A write blocked on a full socket must return once shut down. */
static void test_cancel_blocked_socket_write(void)
{
    QIOChannel *a, *peer;

    make_socketpair(&a, &peer);
    Blocked b = { .ch = a, .write = true };
    GThread *t = g_thread_new("writer", blocked_thread, &b);
    g_usleep(50 * 1000);
    qio_channel_shutdown(a, QIO_CHANNEL_SHUTDOWN_BOTH);
    g_thread_join(t);
    g_assert_false(b.result);
    g_assert_nonnull(b.err);
    g_error_free(b.err);
    qio_channel_unref(a);
    qio_channel_unref(peer);
}

/* A shared cancel token stops every channel using it. */
static void test_cancel_token_shared(void)
{
    QIOCancel *c = qio_cancel_new();
    int p[2];
    GError *err = NULL;
    uint8_t x;

    g_assert_cmpint(pipe(p), ==, 0);
    QIOChannel *r = qio_channel_new_pipes(p[0], p[1], 0, "pipe", c);
    g_assert_false(qio_cancel_is_set(c));
    qio_cancel_trigger(c);
    g_assert_true(qio_cancel_is_set(qio_channel_cancel(r)));
    g_assert_cmpint(qio_channel_read(r, &x, 1, &err), ==, -1);
    g_assert_nonnull(strstr(err->message, "cancelled"));
    g_clear_error(&err);
    g_assert_false(qio_channel_write_all(r, &x, 1, &err));
    g_clear_error(&err);
    qio_channel_unref(r);
    qio_cancel_unref(c);
}

/* Writing to a socket whose peer is gone is an error, not SIGPIPE. */
static void test_socket_peer_gone(void)
{
    QIOChannel *a, *b;
    GError *err = NULL;
    g_autofree uint8_t *buf = g_malloc0(1 << 20);

    make_socketpair(&a, &b);
    qio_channel_unref(b);
    g_assert_false(qio_channel_write_all(a, buf, 1 << 20, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "Unable to write to 'a'"));
    g_error_free(err);
    qio_channel_unref(a);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/io/channel/socketpair-roundtrip",
                    test_socketpair_roundtrip);
    g_test_add_func("/io/channel/pipe-roundtrip-eof",
                    test_pipe_roundtrip_and_eof);
    g_test_add_func("/io/channel/cancel/pipe-read",
                    test_cancel_blocked_pipe_read);
    g_test_add_func("/io/channel/cancel/socket-write",
                    test_cancel_blocked_socket_write);
    g_test_add_func("/io/channel/cancel/shared-token",
                    test_cancel_token_shared);
    g_test_add_func("/io/channel/socket-peer-gone", test_socket_peer_gone);
    return g_test_run();
}
