/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Chardev tests: spec/option parsing errors, the mux escape handling and
 * focus (which front-end gets the bytes, held output), the file back-end
 * and the unix socket back-end (one client at a time, drop without one).
 */
#include "qemu/osdep.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "chardev/char.h"
#include "chardev/char-internal.h"
#include "qemu/bql.h"
#include "sysemu/runstate.h"

/* ---- test-local stand-ins for the machine ---- */

static GMutex test_bql;
static __thread bool test_bql_held;
static int shutdown_requests;

void bql_lock(void)
{
    g_mutex_lock(&test_bql);
    test_bql_held = true;
}

void bql_unlock(void)
{
    test_bql_held = false;
    g_mutex_unlock(&test_bql);
}

bool bql_locked(void)
{
    return test_bql_held;
}

void qemu_system_shutdown_request(const char *reason)
{
    g_assert_cmpstr(reason, ==, "host-quit");
    shutdown_requests++;
}

/* A front-end that records what it receives. */
typedef struct Fe {
    GString *in;
    int connects, disconnects;
    bool bql_seen;
} Fe;

static void fe_read(void *opaque, const uint8_t *buf, size_t len)
{
    Fe *fe = opaque;

    fe->bql_seen = bql_locked();
    g_string_append_len(fe->in, (const char *)buf, len);
}

static void fe_event(void *opaque, bool connected)
{
    Fe *fe = opaque;

    if (connected) {
        fe->connects++;
    } else {
        fe->disconnects++;
    }
}

static Fe *fe_new(void)
{
    Fe *fe = g_new0(Fe, 1);

    fe->in = g_string_new(NULL);
    return fe;
}

static void fe_free(Fe *fe)
{
    g_string_free(fe->in, true);
    g_free(fe);
}

static void feed(Chardev *be, const char *s)
{
    chardev_be_deliver(be, (const uint8_t *)s, strlen(s));
}

/* ---- parsing ---- */

static void test_spec_errors(void)
{
    static const struct {
        const char *spec;
        const char *msg;
    } cases[] = {
        { "foo", "chardev: unknown backend 'foo'" },
        { "foo:bar", "chardev: unknown backend 'foo'" },
        { "chardev:nope", "chardev 'nope' not found" },
        { "unix:/tmp/x,bogus=1", "chardev: unknown option 'bogus' for backend 'unix'" },
        { "unix:/tmp/x,server=maybe",
          "chardev: option 'server' expects 'on' or 'off', not 'maybe'" },
        { "tcp:localhost", "chardev: 'tcp:localhost' needs HOST:PORT" },
        { "file:", "chardev: 'file:' needs a path" },
        { "", "chardev: empty specification" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;

        g_assert_null(chardev_new_from_spec(cases[i].spec, &err));
        g_assert_nonnull(err);
        g_assert_cmpstr(err->message, ==, cases[i].msg);
        g_error_free(err);
    }
}

static void test_opts_errors(void)
{
    GError *err = NULL;

    g_assert_null(chardev_new_from_opts("pty,id=x", &err));
    g_assert_cmpstr(err->message, ==, "chardev: unknown backend 'pty'");
    g_clear_error(&err);
    g_assert_null(chardev_new_from_opts("file,path=/dev/null", &err));
    g_assert_cmpstr(err->message, ==, "chardev: 'file' needs an id");
    g_clear_error(&err);
    g_assert_null(chardev_new_from_opts("socket,id=s,path=/tmp/x,server=on,color=red", &err));
    g_assert_cmpstr(err->message, ==, "chardev: unknown option 'color' for backend 'socket'");
    g_clear_error(&err);
    g_assert_null(chardev_new_from_opts("socket,id=s,path=/tmp/x", &err));
    g_assert_true(g_str_has_prefix(err->message, "chardev: "));
    g_assert_nonnull(strstr(err->message, "server=on"));
    g_clear_error(&err);
}

static void test_none_and_null(void)
{
    GError *err = NULL;
    Chardev *chr;

    g_assert_null(chardev_new_from_spec("none", &err));
    g_assert_no_error(err);
    chr = chardev_new_from_spec("null", &err);
    g_assert_no_error(err);
    g_assert_nonnull(chr);
    chardev_write(chr, "dropped", 7);   /* must simply not crash */
    chardev_write(NULL, "x", 1);
    chardev_cleanup_all();
}

/* ---- mux ---- */

typedef struct MuxFixture {
    Chardev *be;
    Chardev *serial, *monitor;
    Fe *fs, *fm;
} MuxFixture;

static void mux_setup(MuxFixture *f, bool monitor_first)
{
    GError *err = NULL;

    f->be = chardev_memory_new("mem");
    char_mux_attach(f->be, false);
    f->serial = char_mux_new_frontend(f->be, &err);
    g_assert_no_error(err);
    f->monitor = char_mux_new_frontend(f->be, &err);
    g_assert_no_error(err);
    f->fs = fe_new();
    f->fm = fe_new();
    chardev_set_frontend_is_monitor(f->monitor, true);
    if (monitor_first) {
        chardev_set_handlers(f->monitor, fe_read, fe_event, f->fm);
        chardev_set_handlers(f->serial, fe_read, fe_event, f->fs);
    } else {
        chardev_set_handlers(f->serial, fe_read, fe_event, f->fs);
        chardev_set_handlers(f->monitor, fe_read, fe_event, f->fm);
    }
}

static void mux_teardown(MuxFixture *f)
{
    chardev_cleanup_all();
    fe_free(f->fs);
    fe_free(f->fm);
}

static void test_mux_focus_and_escapes(void)
{
    MuxFixture f;
    g_autofree char *out = NULL;

    /* The serial starts in front even when the monitor attached first. */
    mux_setup(&f, true);
    g_assert_true(char_mux_escapes_enabled(f.be->mux));
    g_assert_cmpint(char_mux_focus(f.be->mux), ==, (int)f.serial->mux_slot);

    feed(f.be, "abc");
    g_assert_cmpstr(f.fs->in->str, ==, "abc");
    g_assert_true(f.fs->bql_seen);
    g_assert_cmpstr(f.fm->in->str, ==, "");

    /* C-a C-a sends one C-a; unknown escapes are swallowed. */
    feed(f.be, "x\001\001y\001zq");
    g_assert_cmpstr(f.fs->in->str, ==, "abcx\001yq");

    /* C-a c in the middle of a chunk: the rest goes to the monitor. */
    feed(f.be, "1\001c2");
    g_assert_cmpstr(f.fs->in->str, ==, "abcx\001yq1");
    g_assert_cmpstr(f.fm->in->str, ==, "2");
    /* Nothing was held for the monitor, so it was told it is in front. */
    g_assert_cmpint(f.fm->connects, ==, 1);

    /* Escape split across two reads. */
    feed(f.be, "\001");
    feed(f.be, "c3");
    g_assert_cmpstr(f.fs->in->str, ==, "abcx\001yq13");

    /* C-a h prints help on the back-end, C-a x asks for shutdown. */
    g_free(chardev_memory_take(f.be));
    feed(f.be, "\001h");
    out = chardev_memory_take(f.be);
    g_assert_nonnull(strstr(out, "C-a x    exit godwit"));
    g_assert_cmpint(shutdown_requests, ==, 0);
    feed(f.be, "\001x");
    g_assert_cmpint(shutdown_requests, ==, 1);
    shutdown_requests = 0;
    mux_teardown(&f);
}

static void test_mux_held_output(void)
{
    MuxFixture f;
    char *out;

    mux_setup(&f, false);
    chardev_write(f.serial, "guest1 ", 7);
    chardev_write(f.monitor, "(qemu) ", 7);   /* held: serial in front */
    out = chardev_memory_take(f.be);
    g_assert_cmpstr(out, ==, "guest1 ");
    g_free(out);

    feed(f.be, "\001c");                      /* monitor to the front */
    out = chardev_memory_take(f.be);
    g_assert_cmpstr(out, ==, "(qemu) ");
    g_free(out);
    /* Its held output was shown, so no "you are in front" event. */
    g_assert_cmpint(f.fm->connects, ==, 0);

    chardev_write(f.serial, "guest2 ", 7);    /* held now */
    chardev_write(f.monitor, "info ", 5);
    out = chardev_memory_take(f.be);
    g_assert_cmpstr(out, ==, "info ");
    g_free(out);

    feed(f.be, "\001c");
    out = chardev_memory_take(f.be);
    g_assert_cmpstr(out, ==, "guest2 ");
    g_free(out);
    mux_teardown(&f);
}

static void test_mux_single_frontend_passthrough(void)
{
    Chardev *be = chardev_memory_new("mem1");
    Chardev *fe;
    Fe *r = fe_new();

    char_mux_attach(be, false);
    fe = char_mux_new_frontend(be, NULL);
    chardev_set_handlers(fe, fe_read, fe_event, r);
    /* One front-end and no mon:/mux=on: C-a is plain data. */
    g_assert_false(char_mux_escapes_enabled(be->mux));
    feed(be, "a\001cb");
    g_assert_cmpstr(r->in->str, ==, "a\001cb");
    chardev_cleanup_all();
    fe_free(r);
}

static void test_chardev_id_sharing(void)
{
    GError *err = NULL;
    g_autofree char *path = g_build_filename(g_get_tmp_dir(), "gw-test-chr-id", NULL);
    g_autofree char *opts = g_strdup_printf("file,id=log,path=%s", path);
    Chardev *be = chardev_new_from_opts(opts, &err);
    Chardev *fe;

    g_assert_no_error(err);
    g_assert_true(chardev_lookup("log") == be);
    g_assert_null(chardev_new_from_opts(opts, &err));
    g_assert_cmpstr(err->message, ==, "chardev: duplicate id 'log'");
    g_clear_error(&err);
    fe = chardev_new_from_spec("chardev:log", &err);
    g_assert_no_error(err);
    g_assert_true(fe == be);
    /* Without mux=on, a second front-end is refused. */
    g_assert_null(chardev_new_from_spec("chardev:log", &err));
    g_assert_nonnull(strstr(err->message, "already in use"));
    g_clear_error(&err);
    chardev_cleanup_all();
    unlink(path);
}

/* ---- file ---- */

static void test_file_backend(void)
{
    g_autofree char *path = g_build_filename(g_get_tmp_dir(), "gw-test-chr-file", NULL);
    g_autofree char *spec = g_strdup_printf("file:%s", path);
    g_autofree char *contents = NULL;
    GError *err = NULL;
    Chardev *chr = chardev_new_from_spec(spec, &err);

    g_assert_no_error(err);
    chardev_write(chr, "hello ", 6);
    chardev_printf(chr, "%d-%s\n", 42, "x");
    chardev_cleanup_all();      /* drains the queue */
    g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
    g_assert_cmpstr(contents, ==, "hello 42-x\n");
    unlink(path);
}

/*
 * After chardev_drain_all() (what a VM stop does) the file holds every byte
 * written before, while the chardev is still open: a migration test reads
 * the source's serial log right after the source reports completion.
 */
static void test_file_drain_all(void)
{
    g_autofree char *path = g_build_filename(g_get_tmp_dir(), "gw-test-chr-drain", NULL);
    g_autofree char *spec = g_strdup_printf("file:%s", path);
    g_autofree char *contents = NULL;
    gsize len = 0;
    GError *err = NULL;
    Chardev *chr = chardev_new_from_spec(spec, &err);

    g_assert_no_error(err);
    for (int i = 0; i < 20000; i++) {
        chardev_printf(chr, "tick: pass %d\n", i);
    }
    chardev_drain_all(5000);
    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    g_assert_true(g_str_has_suffix(contents, "tick: pass 19999\n"));
    chardev_cleanup_all();
    unlink(path);
}

static void test_file_bad_path(void)
{
    GError *err = NULL;

    g_assert_null(chardev_new_from_spec("file:/nonexistent-dir/x", &err));
    g_assert_true(g_str_has_prefix(err->message,
                                   "chardev: could not open '/nonexistent-dir/x': "));
    g_error_free(err);
}

/* A vCPU writing into a full queue must not wait. */
static void test_output_queue_bounded(void)
{
    int fds[2];
    CharOut *out;
    uint8_t block[4096] = { 0 };
    gint64 t0;

    g_assert_cmpint(pipe(fds), ==, 0);
    out = char_out_new(fds[1], false, 8192);
    t0 = g_get_monotonic_time();
    /* Nobody reads the pipe: the writer blocks, the queue fills, we drop. */
    for (int i = 0; i < 200; i++) {
        char_out_write(out, block, sizeof(block));
    }
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 500000);
    g_assert_cmpuint(char_out_dropped(out), >, 0);
    /* Unblock the writer so it can be stopped. */
    close(fds[0]);
    char_out_free(out);
    close(fds[1]);
}

/* ---- unix socket ---- */

static int connect_unix(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    return fd;
}

static void spin_until(bool (*cond)(void *), void *opaque)
{
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    while (!cond(opaque)) {
        g_assert_cmpint(g_get_monotonic_time(), <, end);
        g_main_context_iteration(NULL, false);
        g_usleep(1000);
    }
}

static bool fe_connected(void *opaque)
{
    Fe *fe = opaque;

    return fe->connects > fe->disconnects;
}

static bool fe_disconnected(void *opaque)
{
    Fe *fe = opaque;

    return fe->disconnects > 0 && fe->connects == fe->disconnects;
}

static bool fe_got_input(void *opaque)
{
    Fe *fe = opaque;

    return fe->in->len > 0;
}

static void read_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);

        g_assert_cmpint(n, >, 0);
        got += n;
    }
    buf[got] = '\0';
}

static void test_unix_socket(void)
{
    g_autofree char *path = g_strdup_printf("%s/gw-test-chr-%d.sock", g_get_tmp_dir(),
                                            (int)getpid());
    g_autofree char *spec = g_strdup_printf("unix:%s,server,nowait", path);
    GError *err = NULL;
    Chardev *chr = chardev_new_from_spec(spec, &err);
    Fe *fe = fe_new();
    int c1, c2;
    char buf[64];

    g_assert_no_error(err);
    chardev_set_handlers(chr, fe_read, fe_event, fe);
    chardev_write(chr, "lost", 4);      /* nobody there: dropped */

    c1 = connect_unix(path);
    spin_until(fe_connected, fe);
    chardev_write(chr, "hi", 2);
    read_exact(c1, buf, 2);
    g_assert_cmpstr(buf, ==, "hi");
    g_assert_cmpint(write(c1, "cmd\n", 4), ==, 4);
    spin_until(fe_got_input, fe);
    g_assert_cmpstr(fe->in->str, ==, "cmd\n");
    g_assert_true(fe->bql_seen);

    /* A second client waits in the backlog while the first is served. */
    c2 = connect_unix(path);
    g_assert_cmpint(write(c2, "second", 6), ==, 6);
    for (int i = 0; i < 50; i++) {
        g_main_context_iteration(NULL, false);
        g_usleep(1000);
    }
    g_assert_cmpstr(fe->in->str, ==, "cmd\n");
    g_assert_cmpint(fe->connects, ==, 1);

    close(c1);
    spin_until(fe_disconnected, fe);
    spin_until(fe_connected, fe);       /* now c2 */
    g_string_truncate(fe->in, 0);
    spin_until(fe_got_input, fe);
    g_assert_cmpstr(fe->in->str, ==, "second");
    chardev_write(chr, "to2", 3);
    read_exact(c2, buf, 3);
    g_assert_cmpstr(buf, ==, "to2");

    close(c2);
    chardev_cleanup_all();
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    fe_free(fe);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* As godwit's main does: a closed reader is an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    g_test_add_func("/chardev/spec/errors", test_spec_errors);
    g_test_add_func("/chardev/opts/errors", test_opts_errors);
    g_test_add_func("/chardev/spec/none-null", test_none_and_null);
    g_test_add_func("/chardev/opts/id-sharing", test_chardev_id_sharing);
    g_test_add_func("/chardev/mux/focus-escapes", test_mux_focus_and_escapes);
    g_test_add_func("/chardev/mux/held-output", test_mux_held_output);
    g_test_add_func("/chardev/mux/single-frontend", test_mux_single_frontend_passthrough);
    g_test_add_func("/chardev/file/write", test_file_backend);
    g_test_add_func("/chardev/file/bad-path", test_file_bad_path);
    g_test_add_func("/chardev/file/drain-all", test_file_drain_all);
    g_test_add_func("/chardev/out/bounded", test_output_queue_bounded);
    g_test_add_func("/chardev/socket/unix", test_unix_socket);
    return g_test_run();
}
