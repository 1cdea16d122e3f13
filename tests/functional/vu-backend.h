/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user back-end processes for godwit's functional tests: DPDK's
 * testpmd (io forwarding on one vhost port: every frame the guest sends
 * comes back) and our example back-end (contrib/vhost-user-net-example,
 * reflect mode). Each runs as a child that dies with the test, logs into
 * the test's directory and is stopped gracefully to get its final report.
 */
#ifndef GODWIT_TESTS_VU_BACKEND_H
#define GODWIT_TESTS_VU_BACKEND_H

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

typedef enum GwVuKind {
    GW_VU_TESTPMD,      /* dpdk-testpmd --vdev net_vhost0,... --forward-mode=io */
    GW_VU_EXAMPLE,      /* godwit-vhost-user-net (reflect) */
} GwVuKind;

typedef struct GwVuBackend GwVuBackend;

/* "testpmd" / "example", for test paths and messages. */
const char *gw_vu_kind_name(GwVuKind kind);

/*
 * The back-end's program, or NULL after a loud skip naming what is missing:
 * testpmd from GW_TESTPMD or dpdk-testpmd in PATH (Debian: apt-get install
 * dpdk-dev); the example from GW_VHOST_USER_NET (set by meson).
 */
const char *gw_vu_require(GwVuKind kind);

typedef struct GwVuOpts {
    GwVuKind kind;
    const char *sock;       /* the vhost-user socket */
    bool client;            /* connect to godwit (which serves @sock); else listen */
    bool postcopy;          /* offer PAGEFAULT (testpmd: postcopy-support=1) */
    bool mlockall;          /* testpmd: leave out --no-mlockall (pre-faults guest RAM) */
    const char *dir;        /* where the log goes */
    const char *name;       /* log file name: DIR/NAME.log */
} GwVuOpts;

/* Start a back-end (no waiting: a client retries until godwit listens). */
GwVuBackend *gw_vu_start(const GwVuOpts *o);
pid_t gw_vu_pid(GwVuBackend *b);
/* Everything it logged so far (g_free). */
char *gw_vu_log(GwVuBackend *b);
/* How often @needle occurs in its log. */
guint gw_vu_log_count(GwVuBackend *b, const char *needle);
/* Wait until @needle is in its log; fails the test on timeout or exit. */
void gw_vu_wait_log(GwVuBackend *b, const char *needle, int timeout_ms);
/* Send @sig (e.g. SIGKILL to simulate a crash); the process is reaped later. */
void gw_vu_kill(GwVuBackend *b, int sig);
/*
 * Stop it the graceful way (testpmd: Enter on its stdin; the example:
 * SIGTERM), wait for its exit (SIGKILL after 10 s) and return the whole
 * log (g_free). The handle stays valid for gw_vu_log until gw_vu_free.
 */
char *gw_vu_stop(GwVuBackend *b);
void gw_vu_free(GwVuBackend *b);

/*
 * The example's final "name=value" counter (from its last "final" line),
 * or -1 when the line or the name is missing.
 */
gint64 gw_vu_example_counter(const char *log, const char *name);

/*
 * The example's last "queue Q: stopped at available index N" (GET_VRING_BASE
 * answered N), or -1 when there is none.
 */
gint64 gw_vu_example_stopped_at(const char *log, unsigned queue);

/* ---- the guest side: gwos with one virtio-net-pci NIC ---- */

/*
 * godwit's arguments for gwos (@gwos) with @ram_mib of memfd RAM shared
 * with the back-end, one virtio-net-pci (mac 52:54:00:12:34:56) on a
 * vhost-user netdev at @sock (godwit listens if @server, else connects,
 * retrying every @reconnect s), "net=on" plus @append for the guest, and
 * @extra. g_free.
 */
char *gw_vu_vm_args(const char *gwos, unsigned ram_mib, const char *sock, bool server,
                    unsigned reconnect, const char *append, const char *extra);

/* A private directory for sockets and back-end logs (removed by gw_vu_dir_free). */
char *gw_vu_dir_new(const char *name);
void gw_vu_dir_free(char *dir);

#endif
