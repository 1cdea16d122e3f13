/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Precopy migrations that must not succeed: bad URIs and refused
 * connections, migrate_cancel from setup, active and pre-switchover, a
 * destination with a different RAM size, corrupt and truncated streams, and
 * a hundred cancels in a row without leaking threads or descriptors. After
 * each, the source guest runs on with its memory intact and a second
 * migration succeeds.
 */
#include "qemu/osdep.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "migration-framework.h"

#define TICK_DEFAULT "rate=128"

static const MigTestConfig plain_cfg = {
    .tick_append = TICK_DEFAULT,
    .transport = MIG_UNIX,
};

static MigTest *new_test(const MigTestConfig *cfg)
{
    MigTest *t = g_new0(MigTest, 1);

    t->cfg = cfg;
    t->fds[0] = t->fds[1] = -1;
    return t;
}

/*
 * The source after a failed or cancelled migration: running (a RESUME if
 * it had been stopped is the caller's business), still ticking, memory
 * consistent, and it runs on after the check.
 */
static void check_source_unharmed(GwVM *src)
{
    g_autofree char *st = gw_vm_query_status(src);
    TickMailbox mb;

    g_assert_cmpstr(st, ==, "running");
    mig_wait_new_pass(src);
    mig_check_invariant(src, 128, &mb);
    g_assert_cmpuint(mb.state, ==, TICK_STATE_TICKING);
    json_node_unref(gw_qmp_assert_success(src, "{'execute': 'cont'}"));
    json_node_unref(gw_qmp_wait_event(src, "RESUME", MIG_EVENT_TIMEOUT_MS));
    mig_wait_new_pass(src);
}

/*
 * A second migration of t->src to a fresh destination succeeds, byte for
 * byte, and the guest runs on there.
 */
static void second_migration(MigTest *t, const MigTestConfig *cfg)
{
    GwVM *src = t->src;
    g_autoptr(JsonNode) stop = NULL;

    gw_vm_free(t->dst);
    t->dst = NULL;
    t->cfg = cfg;
    mig_start_dest(t, "dst2", true);
    mig_configure(t);
    gw_qmp_clear_events(src);
    mig_migrate(t);
    mig_wait_status(src, "completed", MIG_DEFAULT_TIMEOUT_MS);
    mig_wait_status(t->dst, "completed", MIG_EVENT_TIMEOUT_MS);
    stop = gw_qmp_wait_event(src, "STOP", MIG_EVENT_TIMEOUT_MS);
    mig_check_same_memory(src, t->dst, 128, &t->src_mb);
    mig_finish_dest(t);
}

/* The destination of a failed/cancelled precopy exits with status 1. */
static void check_dest_exit(GwVM *dst)
{
    int status;
    g_autofree char *err = NULL;

    g_assert_true(gw_vm_wait_exit(dst, gw_timeout(10000), &status));
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    err = gw_vm_stderr(dst);
    g_test_message("destination stderr: %s", err);
    g_assert_cmpstr(err, !=, "");
}

/* ---------------------------------------------------------------------- */
/* Bad destinations */

static void expect_failed(GwVM *src, const char *uri)
{
    g_autoptr(JsonNode) info = NULL;
    g_autoptr(JsonNode) stop = NULL;
    const char *desc;

    gw_qmp_clear_events(src);
    json_node_unref(gw_qmp_assert_success(src,
        "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", uri));
    mig_wait_status(src, "failed", MIG_EVENT_TIMEOUT_MS);
    info = mig_query(src);
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(info),
                                                  "status"), ==, "failed");
    desc = json_object_get_string_member(json_node_get_object(info),
                                         "error-desc");
    g_test_message("%s: error-desc: %s", uri, desc);
    g_assert_nonnull(desc);
    g_assert_cmpuint(strlen(desc), >, 10);
    /* The guest was never stopped for it. */
    stop = gw_qmp_poll_event(src, "STOP", 200);
    g_assert_null(stop);
}

static void test_bad_dest(void)
{
    MigTest *t;
    g_autofree char *missing = NULL;
    g_autofree char *refused = NULL;
    int s;
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof(sa);

    if (!mig_require(false)) {
        return;
    }
    t = new_test(&plain_cfg);
    t->src = mig_start_source(&plain_cfg, "src");
    mig_set_caps(t->src, "events", true);

    gw_qmp_expect_error(t->src, "GenericError",
                        "Parameter 'uri' expects a valid migration protocol",
                        "{'execute': 'migrate', 'arguments': "
                        "{'uri': 'carrier-pigeon:somewhere'}}");

    missing = g_strdup_printf("unix:%s/no-such.sock", gw_vm_dir(t->src));
    expect_failed(t->src, missing);

    /* A port that was free a moment ago: nobody listens there. */
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(s, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(getsockname(s, (struct sockaddr *)&sa, &len), ==, 0);
    close(s);
    refused = g_strdup_printf("tcp:127.0.0.1:%u", ntohs(sa.sin_port));
    expect_failed(t->src, refused);

    check_source_unharmed(t->src);
    second_migration(t, &plain_cfg);
    mig_test_free(t);
}

/* ---------------------------------------------------------------------- */
/* Cancel */

/* A unix socket that listens but never accepts: the source stays in setup. */
static int silent_listener(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(fd, 16), ==, 0);
    return fd;
}

/* Accept and close whatever connected, so the backlog never fills. */
static void drain_listener(int fd)
{
    int c;

    while ((c = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        close(c);
    }
}

static void cancel_and_check(GwVM *src)
{
    json_node_unref(gw_qmp_assert_success(src,
                                          "{'execute': 'migrate_cancel'}"));
    mig_wait_status(src, "cancelled", MIG_EVENT_TIMEOUT_MS);
    g_assert_cmpstr(mig_query_str(src, "status"), ==, "cancelled");
}

static void test_cancel_setup(void)
{
    MigTest *t;
    g_autofree char *path = NULL;
    g_autofree char *uri = NULL;
    g_autoptr(JsonNode) ev = NULL;
    int lfd;

    if (!mig_require(false)) {
        return;
    }
    t = new_test(&plain_cfg);
    t->src = mig_start_source(&plain_cfg, "src");
    mig_set_caps(t->src, "events", true);
    path = gw_vm_path(t->src, "silent.sock");
    lfd = silent_listener(path);
    uri = g_strdup_printf("unix:%s", path);

    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", uri));
    mig_wait_status(t->src, "setup", MIG_EVENT_TIMEOUT_MS);
    /* It stays in setup: the peer never answers. */
    ev = gw_qmp_poll_event(t->src, "MIGRATION_PASS", 500);
    g_assert_null(ev);
    g_assert_cmpstr(mig_query_str(t->src, "status"), ==, "setup");
    cancel_and_check(t->src);
    g_assert_null(gw_qmp_poll_event(t->src, "STOP", 100));
    drain_listener(lfd);
    close(lfd);

    check_source_unharmed(t->src);
    second_migration(t, &plain_cfg);
    mig_test_free(t);
}

static const MigTestConfig slow_link_cfg = {
    .tick_append = TICK_DEFAULT,
    .transport = MIG_UNIX,
    .src_params = "'max-bandwidth': 8388608",
};

static const MigTestConfig fast_link_cfg = {
    .tick_append = TICK_DEFAULT,
    .transport = MIG_UNIX,
    .src_params = "'max-bandwidth': 0",
};

static void test_cancel_active(void)
{
    MigTest *t;

    if (!mig_require(false)) {
        return;
    }
    t = new_test(&slow_link_cfg);
    mig_start_dest(t, "dst", true);
    t->src = mig_start_source(&slow_link_cfg, "src");
    mig_configure(t);
    mig_migrate(t);
    mig_wait_status(t->src, "active", MIG_EVENT_TIMEOUT_MS);
    /* 128 MiB at 8 MiB/s: still active a second later. */
    g_assert_null(gw_qmp_poll_event(t->src, "STOP", 1000));
    g_assert_cmpstr(mig_query_str(t->src, "status"), ==, "active");
    cancel_and_check(t->src);
    g_assert_null(gw_qmp_poll_event(t->src, "STOP", 100));
    check_dest_exit(t->dst);

    check_source_unharmed(t->src);
    second_migration(t, &fast_link_cfg);
    mig_test_free(t);
}

static const MigTestConfig pre_switch_cfg = {
    .tick_append = TICK_DEFAULT,
    .transport = MIG_UNIX,
    .src_caps = "pause-before-switchover",
};

static void test_cancel_pre_switchover(void)
{
    MigTest *t;
    g_autofree char *st = NULL;
    g_autoptr(JsonNode) stop = NULL;
    g_autoptr(JsonNode) resume = NULL;

    if (!mig_require(false)) {
        return;
    }
    t = new_test(&pre_switch_cfg);
    mig_start_dest(t, "dst", true);
    t->src = mig_start_source(&pre_switch_cfg, "src");
    mig_configure(t);
    mig_migrate(t);
    mig_wait_status(t->src, "pre-switchover", MIG_DEFAULT_TIMEOUT_MS);
    /* Stopped for the switch-over and holding there. */
    stop = gw_qmp_wait_event(t->src, "STOP", MIG_EVENT_TIMEOUT_MS);
    st = gw_vm_query_status(t->src);
    g_assert_cmpstr(st, !=, "running");
    gw_qmp_clear_events(t->src);
    {
        g_autoptr(JsonNode) ev = gw_qmp_poll_event(t->src, "MIGRATION", 300);
        if (ev) {
            g_autofree char *s = json_to_string(ev, false);
            g_error("pre-switchover did not hold: %s", s);
        }
    }
    g_assert_cmpstr(mig_query_str(t->src, "status"), ==, "pre-switchover");

    cancel_and_check(t->src);
    /* The guest that was stopped for the switch runs again. */
    resume = gw_qmp_wait_event(t->src, "RESUME", MIG_EVENT_TIMEOUT_MS);
    check_dest_exit(t->dst);
    check_source_unharmed(t->src);

    /* Second try through pre-switchover and migrate-continue. */
    gw_vm_free(t->dst);
    t->dst = NULL;
    mig_start_dest(t, "dst2", true);
    mig_configure(t);
    gw_qmp_clear_events(t->src);
    gw_qmp_expect_error(t->src, "GenericError",
                        "Migration not in expected state: cancelled",
                        "{'execute': 'migrate-continue', 'arguments': "
                        "{'state': 'pre-switchover'}}");
    mig_migrate(t);
    mig_wait_status(t->src, "pre-switchover", MIG_DEFAULT_TIMEOUT_MS);
    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate-continue', 'arguments': "
        "{'state': 'pre-switchover'}}"));
    mig_wait_status(t->src, "completed", MIG_DEFAULT_TIMEOUT_MS);
    mig_wait_status(t->dst, "completed", MIG_EVENT_TIMEOUT_MS);
    mig_check_same_memory(t->src, t->dst, 128, &t->src_mb);
    mig_finish_dest(t);
    mig_test_free(t);
}

static int count_dir(const char *path)
{
    GDir *d = g_dir_open(path, 0, NULL);
    int n = 0;

    g_assert_nonnull(d);
    while (g_dir_read_name(d)) {
        n++;
    }
    g_dir_close(d);
    return n;
}

/*
 * Cancel in setup again and again (as many as fit in ~30 s, at most 100):
 * the source's thread and descriptor counts come back to where they were.
 */
static void test_cancel_leak(void)
{
    MigTest *t;
    g_autofree char *path = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *task = NULL;
    g_autofree char *fd = NULL;
    int lfd, threads0 = 0, fds0 = 0, threads1, fds1, n;
    gint64 end;

    if (!mig_require(false)) {
        return;
    }
    t = new_test(&plain_cfg);
    t->src = mig_start_source(&plain_cfg, "src");
    mig_set_caps(t->src, "events", true);
    path = gw_vm_path(t->src, "silent.sock");
    lfd = silent_listener(path);
    uri = g_strdup_printf("unix:%s", path);
    task = g_strdup_printf("/proc/%d/task", gw_vm_pid(t->src));
    fd = g_strdup_printf("/proc/%d/fd", gw_vm_pid(t->src));

    /* One round first, so lazily created things exist before counting. */
    end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    for (n = 0; n < 101 && g_get_monotonic_time() < end; n++) {
        if (n == 1) {
            threads0 = count_dir(task);
            fds0 = count_dir(fd);
        }
        json_node_unref(gw_qmp_assert_success(t->src,
            "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", uri));
        mig_wait_status(t->src, "setup", MIG_EVENT_TIMEOUT_MS);
        cancel_and_check(t->src);
        drain_listener(lfd);
    }
    /* Threads may take a moment to exit after "cancelled". */
    for (int i = 0; i < 100; i++) {
        threads1 = count_dir(task);
        fds1 = count_dir(fd);
        if (threads1 <= threads0 && fds1 <= fds0) {
            break;
        }
        mig_sleep_events(t->src, 20);
    }
    g_test_message("%d cancelled migrations: threads %d -> %d, fds %d -> %d",
                   n - 1, threads0, threads1, fds0, fds1);
    g_assert_cmpint(n, >=, 20);
    g_assert_cmpint(threads1, <=, threads0);
    g_assert_cmpint(fds1, <=, fds0);
    close(lfd);
    check_source_unharmed(t->src);
    mig_test_free(t);
}

/* ---------------------------------------------------------------------- */
/* Mismatched destination */

static void test_mismatch(void)
{
    static const struct {
        const char *dst_args;
        const char *desc;
    } cases[] = {
        { "-m 256M -smp 1", "RAM size mismatch" },
        { "-m 128M -smp 2", "vCPU" },
    };
    MigTest *t;

    if (!mig_require(false)) {
        return;
    }
    t = new_test(&plain_cfg);
    t->src = mig_start_source(&plain_cfg, "src");
    mig_set_caps(t->src, "events", true);

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *args = g_strdup_printf(
            "%s -incoming unix:@DIR@/mig.sock", cases[i].dst_args);
        GwVMOpts o = { .name = "dst", .args = args };
        GwVM *dst = gw_vm_start(&o);
        g_autofree char *uri = g_strdup_printf("unix:%s/mig.sock",
                                               gw_vm_dir(dst));
        g_autoptr(JsonNode) info = NULL;
        g_autofree char *err = NULL;
        g_autoptr(JsonNode) stop = NULL;
        const char *desc;

        gw_qmp_clear_events(t->src);
        json_node_unref(gw_qmp_assert_success(t->src,
            "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", uri));
        mig_wait_status(t->src, "failed", MIG_EVENT_TIMEOUT_MS);
        info = mig_query(t->src);
        desc = json_object_get_string_member(json_node_get_object(info),
                                             "error-desc");
        g_test_message("source error-desc: %s", desc);
        g_assert_nonnull(desc);
        /* Refused during setup: the source guest was never stopped. */
        stop = gw_qmp_poll_event(t->src, "STOP", 300);
        g_assert_null(stop);
        check_dest_exit(dst);
        err = gw_vm_stderr(dst);
        g_assert_nonnull(strstr(err, cases[i].desc));
        /* One sentence: a single line. */
        g_assert_true(strchr(err, '\n') == err + strlen(err) - 1);
        gw_vm_free(dst);
        {
            g_autofree char *st = gw_vm_query_status(t->src);
            g_assert_cmpstr(st, ==, "running");
        }
    }
    check_source_unharmed(t->src);
    second_migration(t, &plain_cfg);
    mig_test_free(t);
}

/* ---------------------------------------------------------------------- */
/* Bad streams */

/* Find the SECTION_FULL record named @name: returns the payload offset. */
static gsize find_record_payload(const guint8 *buf, gsize len,
                                 const char *name)
{
    gsize n = strlen(name);

    /* 04, be32 id, cstr name, be32 instance, be32 version, be32 len. */
    for (gsize i = len - n - 1; i > 5; i--) {
        if (buf[i] == n && memcmp(buf + i + 1, name, n) == 0 &&
            buf[i - 5] == 0x04) {
            return i + 1 + n + 12;
        }
    }
    g_error("no '%s' record in the stream file", name);
}

/*
 * Feed @file to a fresh destination (no -S, so "never ran" means
 * something); it must exit 1 with one line on stderr and no guest output.
 */
static void expect_bad_stream(const char *file, const char *what)
{
    g_autofree char *args = g_strdup_printf(
        "-m 128M -incoming 'exec:cat %s'", file);
    GwVMOpts o = { .name = "bad", .args = args, .no_qmp = true };
    GwVM *dst = gw_vm_start(&o);
    g_autofree char *err = NULL;
    g_autofree char *serial = NULL;
    int status;

    g_assert_true(gw_vm_wait_exit(dst, gw_timeout(30000), &status));
    err = gw_vm_stderr(dst);
    serial = gw_serial_read_all(dst);
    g_test_message("%s: %s", what, err);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), !=, 0);
    g_assert_cmpuint(strlen(err), >, 10);
    g_assert_true(g_str_has_suffix(err, "\n"));
    g_assert_true(strchr(err, '\n') == err + strlen(err) - 1);
    /* The guest never ran: it prints a marker at least once a second. */
    g_assert_cmpstr(serial, ==, "");
    gw_vm_free(dst);
}

static void write_variant(const char *path, const guint8 *buf, gsize len)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(g_file_set_contents(path, (const char *)buf, len, &err));
}

static void test_bad_stream(void)
{
    MigTest *t;
    g_autofree char *file = NULL;
    g_autofree char *bad = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *incoming = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) stop = NULL;
    GMappedFile *mf;
    const guint8 *buf;
    g_autofree guint8 *copy = NULL;
    gsize len, cpu;

    if (!mig_require(false)) {
        return;
    }
    t = new_test(&plain_cfg);
    t->src = mig_start_source(&plain_cfg, "src");
    mig_set_caps(t->src, "events", true);
    file = gw_vm_path(t->src, "stream.bin");
    bad = gw_vm_path(t->src, "bad.bin");
    uri = g_strdup_printf("exec:cat > %s", file);
    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", uri));
    mig_wait_status(t->src, "completed", MIG_DEFAULT_TIMEOUT_MS);
    stop = gw_qmp_wait_event(t->src, "STOP", MIG_EVENT_TIMEOUT_MS);

    /* The file as written loads, byte for byte (so the mangling matters). */
    {
        g_autofree char *args = NULL;
        GwVMOpts o = { .name = "dst" };
        incoming = g_strdup_printf("exec:cat %s", file);
        args = mig_dst_args(&plain_cfg, incoming, true);
        o.args = args;
        t->dst = gw_vm_start(&o);
        mig_set_caps(t->dst, "events", true);
        mig_poll_status(t->dst, "completed", MIG_DEFAULT_TIMEOUT_MS);
        mig_check_same_memory(t->src, t->dst, 128, &t->src_mb);
    }

    mf = g_mapped_file_new(file, false, &err);
    g_assert_no_error(err);
    buf = (const guint8 *)g_mapped_file_get_contents(mf);
    len = g_mapped_file_get_length(mf);
    g_assert_cmpuint(len, >, 128 << 20);
    copy = g_memdup2(buf, len);

    /* Truncated: inside the header, in CONFIG, mid-RAM, without EOF. */
    write_variant(bad, buf, 6);
    expect_bad_stream(bad, "truncated header");
    write_variant(bad, buf, 200);
    expect_bad_stream(bad, "truncated CONFIG");
    write_variant(bad, buf, len / 2);
    expect_bad_stream(bad, "truncated in RAM");
    write_variant(bad, buf, len - 1);
    expect_bad_stream(bad, "EOF record missing");

    /* Corrupt: magic, record type, a device record's payload (CRC). */
    copy[0] ^= 0xff;
    write_variant(bad, copy, len);
    expect_bad_stream(bad, "bad magic");
    copy[0] = buf[0];

    cpu = find_record_payload(buf, len, "cpu");
    copy[cpu + 64] ^= 0x5a;
    write_variant(bad, copy, len);
    expect_bad_stream(bad, "cpu record payload");
    copy[cpu + 64] = buf[cpu + 64];

    /* The type byte of the cpu record: 04 -> 0x55, an unknown type. */
    copy[cpu - 12 - 4 - 5] = 0x55;
    write_variant(bad, copy, len);
    expect_bad_stream(bad, "unknown record type");

    g_mapped_file_unref(mf);
    g_unlink(bad);
    g_unlink(file);
    mig_finish_dest(t);
    mig_test_free(t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    mig_add_test("/migration/bad-dest", test_bad_dest, false);
    mig_add_test("/migration/mismatch", test_mismatch, false);
    mig_add_test("/migration/cancel/setup", test_cancel_setup, false);
    mig_add_test("/migration/cancel/active", test_cancel_active, false);
    mig_add_test("/migration/cancel/pre-switchover",
                 test_cancel_pre_switchover, false);
    mig_add_test("/migration/bad-stream", test_bad_stream, true);
    mig_add_test("/migration/cancel/leak", test_cancel_leak, true);
    return g_test_run();
}
