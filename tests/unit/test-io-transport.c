/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for the migration transports (migration/channel.c, socket.c,
 * fd.c, exec.c, file.c): unix and tcp connect/listen (port 0 reporting),
 * refused connects, exec: with cat, file:, fd: (number and monitor name),
 * bad URIs, and cancelling a blocked accept.
 */
#include "qemu/osdep.h"

#include <sys/socket.h>

#include "migration/transport.h"

/* The test's own getfd table, overriding the weak fallback in fd.c. */
static int named_fd = -1;

int monitor_fd_take(const char *name, GError **errp);
int monitor_fd_take(const char *name, GError **errp)
{
    if (!strcmp(name, "migfd") && named_fd >= 0) {
        int fd = named_fd;
        named_fd = -1;
        return fd;
    }
    error_setg(errp, "File descriptor named '%s' has not been found", name);
    return -1;
}

typedef struct Acceptor {
    MigrationListener *l;
    QIOCancel *cancel;
    QIOChannel *ch;
    GError *err;
} Acceptor;

static gpointer accept_thread(gpointer opaque)
{
    Acceptor *a = opaque;

    a->ch = migration_listener_accept(a->l, a->cancel, &a->err);
    return NULL;
}

/* Connect to @l's URI, send a message, read it on the accepted side. */
static void check_pair(MigrationListener *l)
{
    Acceptor a = { .l = l };
    GError *err = NULL;
    char buf[6];

    GThread *t = g_thread_new("accept", accept_thread, &a);
    QIOChannel *c = migration_connect(migration_listener_uri(l), NULL, &err);
    g_assert_no_error(err);
    g_assert_nonnull(c);
    g_thread_join(t);
    g_assert_no_error(a.err);
    g_assert_nonnull(a.ch);
    g_assert_true(qio_channel_write_all(c, "hello", 5, &err));
    g_assert_true(qio_channel_read_all(a.ch, buf, 5, &err));
    buf[5] = '\0';
    g_assert_cmpstr(buf, ==, "hello");
    /* And back: the return path uses the same socket. */
    g_assert_true(qio_channel_write_all(a.ch, "pong!", 5, &err));
    g_assert_true(qio_channel_read_all(c, buf, 5, &err));
    g_assert_cmpmem(buf, 5, "pong!", 5);
    g_assert_no_error(err);
    qio_channel_unref(c);
    qio_channel_unref(a.ch);
}

static void test_unix(void)
{
    g_autofree char *dir = g_dir_make_tmp("gw-mig-XXXXXX", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/sock", dir);
    GError *err = NULL;

    MigrationListener *l = migration_listen(uri, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(migration_listener_uri(l), ==, uri);
    g_assert_cmpint(migration_listener_port(l), ==, -1);
    check_pair(l);
    migration_listener_free(l);
    g_autofree char *path = g_strdup_printf("%s/sock", dir);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));

    /* Nobody listening any more. */
    g_assert_null(migration_connect(uri, NULL, &err));
    g_autofree char *exp = g_strdup_printf(
        "Failed to connect to '%s': No such file or directory", path);
    g_assert_cmpstr(err->message, ==, exp);
    g_clear_error(&err);
    rmdir(dir);
}

static void test_tcp_port0(void)
{
    GError *err = NULL;
    MigrationListener *l = migration_listen("tcp:127.0.0.1:0", &err);

    g_assert_no_error(err);
    int port = migration_listener_port(l);
    g_assert_cmpint(port, >, 0);
    g_autofree char *exp = g_strdup_printf("tcp:127.0.0.1:%d", port);
    g_assert_cmpstr(migration_listener_uri(l), ==, exp);
    check_pair(l);
    migration_listener_free(l);
}

static void test_tcp_refused(void)
{
    GError *err = NULL;

    g_assert_null(migration_connect("tcp:127.0.0.1:1", NULL, &err));
    g_assert_cmpstr(err->message, ==,
                    "Failed to connect to '127.0.0.1:1': Connection refused");
    g_clear_error(&err);
    g_assert_null(migration_connect("tcp:127.0.0.1", NULL, &err));
    g_assert_nonnull(strstr(err->message, "expected HOST:PORT"));
    g_clear_error(&err);
    g_assert_null(migration_listen("tcp:[::1:5", &err));
    g_assert_nonnull(strstr(err->message, "expected HOST:PORT"));
    g_clear_error(&err);
}

static void test_bad_uri(void)
{
    static const char *const bad[] = {
        "", "foo:bar", "tcp", "rdma:1.2.3.4:5", "unix:", "exec:", "file:",
        "fd:",
    };
    GError *err = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_null(migration_connect(bad[i], NULL, &err));
        g_assert_cmpstr(err->message, ==,
                        "Parameter 'uri' expects a valid migration protocol");
        g_clear_error(&err);
        g_assert_null(migration_listen(bad[i], &err));
        g_assert_cmpstr(err->message, ==,
                        "Parameter 'uri' expects a valid migration protocol");
        g_clear_error(&err);
    }
}

/* exec: out to "cat > file", then back in with "cat file". */
static void test_exec_cat(void)
{
    g_autofree char *dir = g_dir_make_tmp("gw-mig-XXXXXX", NULL);
    g_autofree char *path = g_strdup_printf("%s/stream", dir);
    g_autofree char *out = g_strdup_printf("exec:cat > %s", path);
    g_autofree char *in = g_strdup_printf("exec:cat %s", path);
    GError *err = NULL;
    size_t len = 1 << 20;
    g_autofree uint8_t *data = g_malloc(len);
    g_autofree uint8_t *back = g_malloc(len);

    for (size_t i = 0; i < len; i++) {
        data[i] = i * 13;
    }
    QIOChannel *c = migration_connect(out, NULL, &err);
    g_assert_no_error(err);
    g_assert_true(qio_channel_write_all(c, data, len, &err));
    qio_channel_unref(c);    /* closes stdin and reaps cat */

    MigrationListener *l = migration_listen(in, &err);
    g_assert_no_error(err);
    QIOCancel *cancel = qio_cancel_new();
    QIOChannel *r = migration_listener_accept(l, cancel, &err);
    g_assert_no_error(err);
    g_assert_true(qio_channel_read_all(r, back, len, &err));
    g_assert_cmpmem(back, len, data, len);
    uint8_t x;
    g_assert_cmpint(qio_channel_read_all_eof(r, &x, 1, &err), ==, 0);
    /* A second accept has nothing to give. */
    g_assert_null(migration_listener_accept(l, NULL, &err));
    g_clear_error(&err);
    /* The caller's token now governs the channel. */
    qio_cancel_trigger(cancel);
    g_assert_cmpint(qio_channel_read(r, &x, 1, &err), ==, -1);
    g_assert_nonnull(strstr(err->message, "cancelled"));
    g_clear_error(&err);
    qio_cancel_unref(cancel);
    qio_channel_unref(r);
    migration_listener_free(l);

    /* A command that fails to start still gives a channel (sh runs); EOF. */
    l = migration_listen("exec:exit 3", &err);
    g_assert_no_error(err);
    r = migration_listener_accept(l, NULL, &err);
    g_assert_cmpint(qio_channel_read_all_eof(r, &x, 1, &err), ==, 0);
    qio_channel_unref(r);
    migration_listener_free(l);

    /* A source whose command died gets a write error, not SIGPIPE. */
    c = migration_connect("exec:exit 0", NULL, &err);
    g_assert_no_error(err);
    g_usleep(100 * 1000);
    g_assert_false(qio_channel_write_all(c, data, len, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    qio_channel_unref(c);

    unlink(path);
    rmdir(dir);
}

static void test_file(void)
{
    g_autofree char *dir = g_dir_make_tmp("gw-mig-XXXXXX", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s/f", dir);
    GError *err = NULL;
    char buf[4];

    QIOChannel *c = migration_connect(uri, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpint(qio_channel_kind(c), ==, QIO_CHANNEL_FILE);
    g_assert_true(qio_channel_write_all(c, "GDWT", 4, &err));
    qio_channel_unref(c);
    MigrationListener *l = migration_listen(uri, &err);
    g_assert_no_error(err);
    c = migration_listener_accept(l, NULL, &err);
    g_assert_true(qio_channel_read_all(c, buf, 4, &err));
    g_assert_cmpmem(buf, 4, "GDWT", 4);
    qio_channel_unref(c);
    migration_listener_free(l);

    g_autofree char *missing = g_strdup_printf("file:%s/nope", dir);
    g_assert_null(migration_listen(missing, &err));
    g_assert_nonnull(strstr(err->message, "No such file or directory"));
    g_clear_error(&err);
    g_autofree char *f = g_strdup_printf("%s/f", dir);
    unlink(f);
    rmdir(dir);
}

static void test_fd(void)
{
    int sv[2];
    GError *err = NULL;
    char buf[3];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    ==, 0);
    /* By monitor name (getfd). */
    named_fd = sv[0];
    QIOChannel *c = migration_connect("fd:migfd", NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpint(qio_channel_kind(c), ==, QIO_CHANNEL_SOCKET);
    g_assert_null(migration_connect("fd:migfd", NULL, &err));
    g_assert_cmpstr(err->message, ==,
                    "File descriptor named 'migfd' has not been found");
    g_clear_error(&err);

    /* By number (inherited), on the incoming side. */
    g_autofree char *uri = g_strdup_printf("fd:%d", sv[1]);
    MigrationListener *l = migration_listen(uri, &err);
    g_assert_no_error(err);
    QIOChannel *r = migration_listener_accept(l, NULL, &err);
    g_assert_true(qio_channel_write_all(c, "abc", 3, &err));
    g_assert_true(qio_channel_read_all(r, buf, 3, &err));
    g_assert_cmpmem(buf, 3, "abc", 3);
    g_assert_no_error(err);
    qio_channel_unref(c);
    qio_channel_unref(r);
    migration_listener_free(l);

    g_assert_null(migration_listen("fd:9999", &err));
    g_assert_cmpstr(err->message, ==, "File descriptor 9999 is not open");
    g_clear_error(&err);
    g_assert_null(migration_listen("fd:12x", &err));
    g_assert_nonnull(strstr(err->message, "Invalid file descriptor"));
    g_clear_error(&err);
}

/* A destination waiting for a source that never comes can be cancelled. */
static void test_cancel_accept(void)
{
    GError *err = NULL;
    MigrationListener *l = migration_listen("tcp:127.0.0.1:0", &err);
    Acceptor a = { .l = l, .cancel = qio_cancel_new() };

    g_assert_no_error(err);
    GThread *t = g_thread_new("accept", accept_thread, &a);
    g_usleep(50 * 1000);
    qio_cancel_trigger(a.cancel);
    g_thread_join(t);
    g_assert_null(a.ch);
    g_assert_nonnull(strstr(a.err->message, "cancelled"));
    g_error_free(a.err);
    qio_cancel_unref(a.cancel);
    migration_listener_free(l);

    /* A cancelled token stops a connect before it starts. */
    QIOCancel *c = qio_cancel_new();
    qio_cancel_trigger(c);
    l = migration_listen("tcp:127.0.0.1:0", &err);
    g_assert_null(migration_connect(migration_listener_uri(l), c, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    qio_cancel_unref(c);
    migration_listener_free(l);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/transport/unix", test_unix);
    g_test_add_func("/migration/transport/tcp/port0", test_tcp_port0);
    g_test_add_func("/migration/transport/tcp/refused", test_tcp_refused);
    g_test_add_func("/migration/transport/bad-uri", test_bad_uri);
    g_test_add_func("/migration/transport/exec/cat", test_exec_cat);
    g_test_add_func("/migration/transport/file", test_file);
    g_test_add_func("/migration/transport/fd", test_fd);
    g_test_add_func("/migration/transport/cancel-accept", test_cancel_accept);
    return g_test_run();
}
