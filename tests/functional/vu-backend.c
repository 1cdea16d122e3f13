/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user back-end processes for the functional tests (vu-backend.h):
 * testpmd without huge pages, or our example back-end, as children that
 * die with the test (PR_SET_PDEATHSIG), logging into the test's directory.
 */
#include "vu-backend.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

struct GwVuBackend {
    GwVuKind kind;
    pid_t pid;
    int stdin_fd;           /* testpmd: Enter stops it */
    char *log_path;
    bool reaped;
    int status;
};

const char *gw_vu_kind_name(GwVuKind kind)
{
    return kind == GW_VU_TESTPMD ? "testpmd" : "example";
}

static void vu_skip(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void vu_skip(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "*** SKIP: %s ***\n", msg);
    g_test_skip(msg);
}

const char *gw_vu_require(GwVuKind kind)
{
    static char *testpmd;
    const char *p;

    if (kind == GW_VU_EXAMPLE) {
        p = g_getenv("GW_VHOST_USER_NET");
        if (!p || !g_file_test(p, G_FILE_TEST_IS_EXECUTABLE)) {
            vu_skip("the example vhost-user back-end (godwit-vhost-user-net) is not built: "
                    "GW_VHOST_USER_NET is %s", p ? p : "unset");
            return NULL;
        }
        return p;
    }
    p = g_getenv("GW_TESTPMD");
    if (p && *p) {
        if (!g_file_test(p, G_FILE_TEST_IS_EXECUTABLE)) {
            vu_skip("GW_TESTPMD=%s is not an executable", p);
            return NULL;
        }
        return p;
    }
    if (!testpmd) {
        testpmd = g_find_program_in_path("dpdk-testpmd");
    }
    if (!testpmd) {
        vu_skip("DPDK's dpdk-testpmd is not installed (Debian: apt-get install dpdk-dev)");
        return NULL;
    }
    return testpmd;
}

GwVuBackend *gw_vu_start(const GwVuOpts *o)
{
    GwVuBackend *b = g_new0(GwVuBackend, 1);
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    const char *prog = gw_vu_require(o->kind);
    int in[2];

    g_assert_nonnull(prog);
    b->kind = o->kind;
    b->log_path = g_strdup_printf("%s/%s.log", o->dir, o->name);
    g_ptr_array_add(argv, g_strdup(prog));
    if (o->kind == GW_VU_TESTPMD) {
        static int seq;
        /* No huge pages; one forwarding core that may run on either CPU. */
        g_ptr_array_add(argv, g_strdup("--no-huge"));
        g_ptr_array_add(argv, g_strdup("-m"));
        g_ptr_array_add(argv, g_strdup("512"));
        g_ptr_array_add(argv, g_strdup("--no-pci"));
        g_ptr_array_add(argv, g_strdup("--lcores=0@(0,1),1@(0,1)"));
        g_ptr_array_add(argv, g_strdup_printf("--file-prefix=gwvu%d-%d", (int)getpid(), seq++));
        g_ptr_array_add(argv, g_strdup("--vdev"));
        g_ptr_array_add(argv, g_strdup_printf("net_vhost0,iface=%s,client=%d%s", o->sock,
                                              o->client, o->postcopy ? ",postcopy-support=1" : ""));
        g_ptr_array_add(argv, g_strdup("--log-level=lib.vhost.config:debug"));
        g_ptr_array_add(argv, g_strdup("--"));
        g_ptr_array_add(argv, g_strdup("--total-num-mbufs=16384"));
        if (!o->mlockall) {
            g_ptr_array_add(argv, g_strdup("--no-mlockall"));
        }
        g_ptr_array_add(argv, g_strdup("--forward-mode=io"));
        g_ptr_array_add(argv, g_strdup("-a"));
    } else {
        g_ptr_array_add(argv, g_strdup("--socket-path"));
        g_ptr_array_add(argv, g_strdup(o->sock));
        if (o->client) {
            g_ptr_array_add(argv, g_strdup("--client"));
        }
        if (o->postcopy) {
            g_ptr_array_add(argv, g_strdup("--postcopy"));
        }
        g_ptr_array_add(argv, g_strdup("--interval"));
        g_ptr_array_add(argv, g_strdup("0"));
    }
    g_ptr_array_add(argv, NULL);
    if (g_getenv("GW_VERBOSE")) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv->pdata);
        g_test_message("back-end: %s", cmd);
    }

    g_assert_cmpint(pipe2(in, O_CLOEXEC), ==, 0);
    int log = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    g_assert_cmpint(log, >=, 0);
    b->pid = fork();
    g_assert_cmpint(b->pid, >=, 0);
    if (b->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* A polling back-end must not starve the VMs on a small machine. */
        setpriority(PRIO_PROCESS, 0, 10);
        dup2(in[0], 0);
        dup2(log, 1);
        dup2(log, 2);
        execv(prog, (char **)argv->pdata);
        _exit(127);
    }
    close(in[0]);
    close(log);
    b->stdin_fd = in[1];
    return b;
}

pid_t gw_vu_pid(GwVuBackend *b)
{
    return b->pid;
}

char *gw_vu_log(GwVuBackend *b)
{
    char *text = NULL;

    if (!g_file_get_contents(b->log_path, &text, NULL, NULL)) {
        return g_strdup("");
    }
    return text;
}

guint gw_vu_log_count(GwVuBackend *b, const char *needle)
{
    g_autofree char *log = gw_vu_log(b);
    guint n = 0;

    for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle)) {
        n++;
    }
    return n;
}

static bool vu_reap(GwVuBackend *b, bool block)
{
    if (!b->reaped && waitpid(b->pid, &b->status, block ? 0 : WNOHANG) == b->pid) {
        b->reaped = true;
    }
    return b->reaped;
}

void gw_vu_wait_log(GwVuBackend *b, const char *needle, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        g_autofree char *log = gw_vu_log(b);
        if (strstr(log, needle)) {
            return;
        }
        if (vu_reap(b, false) || g_get_monotonic_time() > deadline) {
            g_error("%s back-end: '%s' did not appear in its log (%s); log:\n%s",
                    gw_vu_kind_name(b->kind), needle,
                    b->reaped ? "it exited" : "timeout", log);
        }
        g_usleep(50000);
    }
}

void gw_vu_kill(GwVuBackend *b, int sig)
{
    if (!vu_reap(b, false)) {
        kill(b->pid, sig);
    }
}

char *gw_vu_stop(GwVuBackend *b)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    if (!vu_reap(b, false)) {
        if (b->kind == GW_VU_TESTPMD) {
            /* testpmd -a waits for Enter: its way out prints the statistics. */
            if (write(b->stdin_fd, "\n", 1) < 0) {
                kill(b->pid, SIGTERM);
            }
        } else {
            kill(b->pid, SIGTERM);
        }
        while (!vu_reap(b, false) && g_get_monotonic_time() < deadline) {
            g_usleep(20000);
        }
        if (!b->reaped) {
            kill(b->pid, SIGKILL);
            vu_reap(b, true);
        }
    }
    if (b->stdin_fd >= 0) {
        close(b->stdin_fd);
        b->stdin_fd = -1;
    }
    return gw_vu_log(b);
}

void gw_vu_free(GwVuBackend *b)
{
    if (!b) {
        return;
    }
    if (!vu_reap(b, false)) {
        kill(b->pid, SIGKILL);
        vu_reap(b, true);
    }
    if (b->stdin_fd >= 0) {
        close(b->stdin_fd);
    }
    g_free(b->log_path);
    g_free(b);
}

gint64 gw_vu_example_counter(const char *log, const char *name)
{
    const char *line = NULL;
    g_autofree char *key = g_strdup_printf(" %s=", name);

    for (const char *p = log; (p = strstr(p, ": final ")); p++) {
        line = p;
    }
    if (!line) {
        return -1;
    }
    const char *eol = strchr(line, '\n');
    const char *k = strstr(line, key);
    if (!k || (eol && k > eol)) {
        return -1;
    }
    return g_ascii_strtoll(k + strlen(key), NULL, 10);
}

char *gw_vu_vm_args(const char *gwos, unsigned ram_mib, const char *sock, bool server,
                    unsigned reconnect, const char *append, const char *extra)
{
    g_autofree char *chr = server ?
        g_strdup_printf("socket,id=chr0,path=%s,server=on", sock) :
        g_strdup_printf("socket,id=chr0,path=%s,reconnect=%u", sock, reconnect);

    return g_strdup_printf("-m %uM -smp 2 -object memory-backend-memfd,id=mem,size=%uM,share=on "
                           "-machine memory-backend=mem -chardev %s "
                           "-netdev vhost-user,id=net0,chardev=chr0 "
                           "-device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56 "
                           "-kernel '%s' -append 'net=on %s' %s", ram_mib, ram_mib, chr, gwos,
                           append ? append : "", extra ? extra : "");
}

char *gw_vu_dir_new(const char *name)
{
    g_autofree char *tmpl = g_strdup_printf("gw-vu-%s-XXXXXX", name);
    char *dir = g_dir_make_tmp(tmpl, NULL);

    g_assert_nonnull(dir);
    return dir;
}

void gw_vu_dir_free(char *dir)
{
    if (!dir) {
        return;
    }
    if (g_getenv("GW_KEEP_TMP")) {
        g_test_message("kept %s", dir);
    } else {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *n;
        while (d && (n = g_dir_read_name(d))) {
            g_autofree char *p = g_build_filename(dir, n, NULL);
            unlink(p);
        }
        rmdir(dir);
    }
    g_free(dir);
}

gint64 gw_vu_example_stopped_at(const char *log, unsigned queue)
{
    g_autofree char *key = g_strdup_printf("queue %u: stopped at available index ", queue);
    gint64 n = -1;

    for (const char *p = log; (p = strstr(p, key)); p++) {
        n = g_ascii_strtoll(p + strlen(key), NULL, 10);
    }
    return n;
}
