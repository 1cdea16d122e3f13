/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Postcopy recovery between two godwit processes on real KVM and
 * userfaultfd, with the tick guest writing its whole range flat out on the
 * destination: migrate-pause from either side, a connection cut by a
 * forwarding proxy of the test's own, recovery on a new address, twice in
 * one migration, and a recovery that itself fails and is tried again.
 * Each ends with both sides completed, the destination's guest still
 * running and its memory a consistent tick image (no lost page).
 */
#include "qemu/osdep.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "migration-framework.h"

#define RC_TICK "rate=0"
#define RC_CAPS "postcopy-ram"
/* Slow enough that most of RAM is still missing when the connection breaks. */
#define RC_PARAMS "'downtime-limit': 1, 'max-bandwidth': 268435456, " \
                  "'max-postcopy-bandwidth': 4194304"
#define RC_RAM_MIB 128

/* ---------------------------------------------------------------------- */
/* A forwarding proxy between the two processes, which the test can cut */

typedef struct Proxy {
    int listen_fd;
    char *path;                 /* where the source connects */
    char *target;               /* the destination's unix socket */
    bool cut_on_reply;          /* cut as soon as the destination answers */
    int cut_efd;                /* written by proxy_cut() */
    GThread *thread;
    gint cut_done;              /* atomic: the connection is gone */
    gint64 forwarded;           /* bytes source -> destination */
} Proxy;

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_error("proxy: cannot connect to %s: %s", path, g_strerror(errno));
    }
    return fd;
}

static bool forward(int from, int to, gint64 *count)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof(buf));

    if (n <= 0) {
        return false;
    }
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0) {
            return false;
        }
        off += w;
    }
    if (count) {
        *count += n;
    }
    return true;
}

static gpointer proxy_thread(gpointer opaque)
{
    Proxy *p = opaque;
    int a = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);

    g_assert_cmpint(a, >=, 0);
    int b = unix_connect(p->target);
    for (;;) {
        struct pollfd fds[3] = {
            { .fd = a, .events = POLLIN },
            { .fd = b, .events = POLLIN },
            { .fd = p->cut_efd, .events = POLLIN },
        };
        if (poll(fds, 3, -1) < 0) {
            continue;
        }
        if (fds[2].revents) {
            break;
        }
        if (fds[1].revents && p->cut_on_reply) {
            break;              /* the reply never reaches the source */
        }
        if (fds[0].revents && !forward(a, b, &p->forwarded)) {
            break;
        }
        if (fds[1].revents && !forward(b, a, NULL)) {
            break;
        }
    }
    /* Both peers see the connection end, as when a link goes down and resets. */
    shutdown(a, SHUT_RDWR);
    shutdown(b, SHUT_RDWR);
    close(a);
    close(b);
    g_atomic_int_set(&p->cut_done, 1);
    return NULL;
}

static Proxy *proxy_new(const char *dir, const char *name, const char *target,
                        bool cut_on_reply)
{
    Proxy *p = g_new0(Proxy, 1);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    p->path = g_strdup_printf("%s/%s.sock", dir, name);
    p->target = g_strdup(target);
    p->cut_on_reply = cut_on_reply;
    p->cut_efd = eventfd(0, EFD_CLOEXEC);
    g_assert_cmpint(p->cut_efd, >=, 0);
    p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_strlcpy(sa.sun_path, p->path, sizeof(sa.sun_path));
    unlink(p->path);
    g_assert_cmpint(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(p->listen_fd, 1), ==, 0);
    p->thread = g_thread_new("proxy", proxy_thread, p);
    return p;
}

static void proxy_cut(Proxy *p)
{
    uint64_t one = 1;

    g_assert_cmpint(write(p->cut_efd, &one, sizeof(one)), ==, sizeof(one));
}

static void proxy_free(Proxy *p)
{
    if (!g_atomic_int_get(&p->cut_done)) {
        proxy_cut(p);
    }
    g_thread_join(p->thread);
    close(p->listen_fd);
    close(p->cut_efd);
    unlink(p->path);
    g_free(p->path);
    g_free(p->target);
    g_free(p);
}

/* ---------------------------------------------------------------------- */
/* Steps */

static const MigTestConfig rc_cfg = {
    .ram_mib = RC_RAM_MIB,
    .tick_append = RC_TICK,
    .transport = MIG_UNIX,
    .caps = RC_CAPS,
    .src_params = RC_PARAMS,
    .dst_autostart = true,
};

/*
 * Both up, migrate (through a new proxy when @proxy is given), switch to
 * postcopy at once and wait until the guest runs on the destination and
 * has faulted a while.
 */
static MigTest *rc_start(Proxy **proxy)
{
    MigTest *t = g_new0(MigTest, 1);

    t->cfg = &rc_cfg;
    t->fds[0] = t->fds[1] = -1;
    mig_start_dest(t, "dst", false);
    t->src = mig_start_source(&rc_cfg, "src");
    mig_configure(t);
    if (proxy) {
        g_autofree char *target = g_strdup_printf("%s/mig.sock", gw_vm_dir(t->dst));
        *proxy = proxy_new(gw_vm_dir(t->dst), "proxy", target, false);
        g_free(t->uri);
        t->uri = g_strdup_printf("unix:%s", (*proxy)->path);
    }
    mig_migrate(t);
    json_node_unref(gw_qmp_assert_success(t->src, "{'execute': 'migrate-start-postcopy'}"));
    mig_wait_status(t->src, "postcopy-active", MIG_EVENT_TIMEOUT_MS);
    mig_wait_status(t->dst, "postcopy-active", MIG_EVENT_TIMEOUT_MS);
    json_node_unref(gw_qmp_wait_event(t->dst, "RESUME", MIG_EVENT_TIMEOUT_MS));
    mig_sleep_events(t->dst, 300);
    return t;
}

/* Both sides in postcopy-paused, each with a reason in error-desc. */
static void rc_wait_paused(MigTest *t, const char *src_reason)
{
    mig_wait_status(t->src, "postcopy-paused", MIG_EVENT_TIMEOUT_MS);
    mig_wait_status(t->dst, "postcopy-paused", MIG_EVENT_TIMEOUT_MS);
    g_assert_cmpstr(mig_query_str(t->src, "status"), ==, "postcopy-paused");
    g_assert_cmpstr(mig_query_str(t->dst, "status"), ==, "postcopy-paused");
    const char *why = mig_query_str(t->src, "error-desc");
    g_test_message("source paused: %s; destination: %s", why ?: "(none)",
                   mig_query_str(t->dst, "error-desc") ?: "(none)");
    g_assert_nonnull(why);
    /* Pages were still missing: the recovery has work to do. */
    g_autoptr(JsonNode) info = mig_query(t->src);
    double remaining = mig_num(info, "ram.remaining");
    g_test_message("source still holds %.0f bytes the destination lacks", remaining);
    g_assert_cmpfloat(remaining, >, 0);
    if (src_reason) {
        g_assert_nonnull(strstr(why, src_reason));
    }
    /* The source keeps its guest stopped: it runs on the destination. */
    g_autofree char *st = gw_vm_query_status(t->src);
    g_assert_cmpstr(st, !=, "running");
    g_autofree char *dst_st = gw_vm_query_status(t->dst);
    g_assert_cmpstr(dst_st, ==, "running");
}

/* migrate-recover on @dst_uri, then migrate resume=true to where it listens. */
static void rc_recover(MigTest *t, const char *dst_uri)
{
    g_autofree char *src_uri = NULL;

    json_node_unref(gw_qmp_assert_success(t->dst,
        "{'execute': 'migrate-recover', 'arguments': {'uri': '%s'}}", dst_uri));
    /* As QEMU: an extra setup event, the state stays postcopy-paused. */
    json_node_unref(gw_qmp_wait_event_data(t->dst, "MIGRATION", "status", "setup",
                                           MIG_EVENT_TIMEOUT_MS));
    g_assert_cmpstr(mig_query_str(t->dst, "status"), ==, "postcopy-paused");
    src_uri = g_str_has_prefix(dst_uri, "tcp:") ? mig_dst_tcp_uri(t->dst) : g_strdup(dst_uri);
    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate', 'arguments': {'uri': '%s', 'resume': true}}", src_uri));
    json_node_unref(gw_qmp_wait_event_data(t->src, "MIGRATION", "status", "postcopy-recover",
                                           MIG_EVENT_TIMEOUT_MS));
    json_node_unref(gw_qmp_wait_event_data(t->dst, "MIGRATION", "status", "postcopy-recover",
                                           MIG_EVENT_TIMEOUT_MS));
    mig_wait_status(t->src, "postcopy-active", MIG_EVENT_TIMEOUT_MS);
    mig_wait_status(t->dst, "postcopy-active", MIG_EVENT_TIMEOUT_MS);
}

/*
 * Let it finish at full speed; both sides completed, the destination's
 * guest running and writing, its memory a consistent tick image.
 */
static void rc_finish(MigTest *t)
{
    TickMailbox mb;

    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate-set-parameters', "
        "'arguments': {'max-postcopy-bandwidth': 0}}"));
    mig_wait_status(t->src, "completed", MIG_DEFAULT_TIMEOUT_MS);
    mig_wait_status(t->dst, "completed", MIG_DEFAULT_TIMEOUT_MS);
    g_assert_cmpstr(mig_query_str(t->src, "status"), ==, "completed");
    g_assert_cmpstr(mig_query_str(t->dst, "status"), ==, "completed");

    guint64 w0 = mig_mailbox_writes(t->dst);
    mig_sleep_events(t->dst, 300);
    guint64 w1 = mig_mailbox_writes(t->dst);
    g_test_message("destination guest wrote %" PRIu64 " pages in 300 ms after completion",
                   w1 - w0);
    g_assert_cmpuint(w1, >, w0);
    /* Every page: a lost or stale one breaks the invariant (the dump stops the VM). */
    mig_check_invariant(t->dst, RC_RAM_MIB, &mb);
    g_assert_cmpuint(mb.writes, >=, w1);
}

static void rc_pause(GwVM *vm)
{
    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'migrate-pause'}"));
}

/* ---------------------------------------------------------------------- */
/* Tests */

static void test_pause_source(void)
{
    MigTest *t;
    g_autofree char *uri = NULL;

    if (!mig_require(true)) {
        return;
    }
    t = rc_start(NULL);
    /* Refused where it makes no sense, with QEMU's sentences. */
    gw_qmp_expect_error(t->dst, "GenericError",
                        "Migrate recover can only be run when postcopy is paused.",
                        "{'execute': 'migrate-recover', 'arguments': {'uri': 'unix:/x'}}");
    gw_qmp_expect_error(t->src, "GenericError", "Cannot resume if there is no paused migration",
                        "{'execute': 'migrate', 'arguments': {'uri': 'unix:/x', 'resume': true}}");
    gw_qmp_expect_error(t->src, "GenericError", "Postcopy migration can't be cancelled",
                        "{'execute': 'migrate_cancel'}");
    rc_pause(t->src);
    rc_wait_paused(t, "migrate-pause");
    gw_qmp_expect_error(t->src, "GenericError",
                        "migrate-pause is currently only supported during postcopy-active state",
                        "{'execute': 'migrate-pause'}");
    gw_qmp_expect_error(t->src, "GenericError", "Postcopy migration can't be cancelled",
                        "{'execute': 'migrate_cancel'}");
    uri = g_strdup_printf("unix:%s/recover1.sock", gw_vm_dir(t->dst));
    rc_recover(t, uri);
    rc_finish(t);
    mig_test_free(t);
}

static void test_pause_dest(void)
{
    MigTest *t;

    if (!mig_require(true)) {
        return;
    }
    t = rc_start(NULL);
    rc_pause(t->dst);
    rc_wait_paused(t, NULL);
    g_assert_nonnull(strstr(mig_query_str(t->dst, "error-desc"), "migrate-pause"));
    /* A new port this time. */
    rc_recover(t, "tcp:127.0.0.1:0");
    rc_finish(t);
    mig_test_free(t);
}

static void test_network_cut(void)
{
    MigTest *t;
    Proxy *proxy = NULL;

    if (!mig_require(true)) {
        return;
    }
    t = rc_start(&proxy);
    mig_sleep_events(t->dst, 300);
    g_test_message("proxy forwarded %" PRId64 " bytes before the cut", proxy->forwarded);
    proxy_cut(proxy);
    rc_wait_paused(t, "Lost the connection to the destination");
    g_assert_nonnull(mig_query_str(t->dst, "error-desc"));
    rc_recover(t, "tcp:127.0.0.1:0");
    rc_finish(t);
    proxy_free(proxy);
    mig_test_free(t);
}

static void test_twice(void)
{
    MigTest *t;
    g_autofree char *uri = NULL;

    if (!mig_require(true)) {
        return;
    }
    t = rc_start(NULL);
    rc_pause(t->src);
    rc_wait_paused(t, "migrate-pause");
    uri = g_strdup_printf("unix:%s/recover1.sock", gw_vm_dir(t->dst));
    rc_recover(t, uri);
    mig_sleep_events(t->dst, 300);
    rc_pause(t->dst);
    rc_wait_paused(t, NULL);
    rc_recover(t, "tcp:127.0.0.1:0");
    rc_finish(t);
    mig_test_free(t);
}

static void test_fail_during_recovery(void)
{
    MigTest *t;
    Proxy *bad;
    g_autofree char *uri = NULL;
    g_autofree char *target = NULL;

    if (!mig_require(true)) {
        return;
    }
    t = rc_start(NULL);
    rc_pause(t->src);
    rc_wait_paused(t, "migrate-pause");

    /* The destination cannot listen there: refused, still paused. */
    gw_qmp_expect_error(t->dst, NULL, NULL,
                        "{'execute': 'migrate-recover', "
                        "'arguments': {'uri': 'unix:/nonexistent/dir/x.sock'}}");
    g_assert_cmpstr(mig_query_str(t->dst, "status"), ==, "postcopy-paused");

    /* The source cannot connect: it stays paused and says why. */
    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate', 'arguments': {'uri': 'unix:%s/nobody.sock', 'resume': true}}",
        gw_vm_dir(t->dst)));
    for (int i = 0; i < 100; i++) {
        const char *why = mig_query_str(t->src, "error-desc");
        if (why && strstr(why, "nobody.sock")) {
            break;
        }
        mig_sleep_events(t->src, 50);
    }
    g_test_message("source after a failed connect: %s", mig_query_str(t->src, "error-desc"));
    g_assert_nonnull(strstr(mig_query_str(t->src, "error-desc"), "nobody.sock"));
    g_assert_cmpstr(mig_query_str(t->src, "status"), ==, "postcopy-paused");

    /*
     * The handshake breaks half way: the destination has answered
     * RECV_BITMAP (postcopy-recover on both sides), the answer never
     * arrives. Both go back to postcopy-paused.
     */
    uri = g_strdup_printf("unix:%s/recover1.sock", gw_vm_dir(t->dst));
    json_node_unref(gw_qmp_assert_success(t->dst,
        "{'execute': 'migrate-recover', 'arguments': {'uri': '%s'}}", uri));
    target = g_strdup_printf("%s/recover1.sock", gw_vm_dir(t->dst));
    bad = proxy_new(gw_vm_dir(t->dst), "cutter", target, true);
    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate', 'arguments': {'uri': 'unix:%s', 'resume': true}}", bad->path));
    json_node_unref(gw_qmp_wait_event_data(t->src, "MIGRATION", "status", "postcopy-recover",
                                           MIG_EVENT_TIMEOUT_MS));
    json_node_unref(gw_qmp_wait_event_data(t->dst, "MIGRATION", "status", "postcopy-recover",
                                           MIG_EVENT_TIMEOUT_MS));
    rc_wait_paused(t, NULL);
    proxy_free(bad);

    /* And now properly. */
    rc_recover(t, "tcp:127.0.0.1:0");
    rc_finish(t);
    mig_test_free(t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    mig_add_test("/migration/recovery/pause-source", test_pause_source, false);
    mig_add_test("/migration/recovery/pause-dest", test_pause_dest, false);
    mig_add_test("/migration/recovery/network-cut", test_network_cut, true);
    mig_add_test("/migration/recovery/twice", test_twice, true);
    mig_add_test("/migration/recovery/fail-during-recovery", test_fail_during_recovery, true);
    return g_test_run();
}
