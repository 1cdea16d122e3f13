/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Migrating a guest whose NIC is served by a vhost-user back-end: godwit on
 * both sides, a back-end process on each (DPDK testpmd, or the example
 * back-end), gwos sending numbered frames through the NIC the whole time.
 * Precopy, postcopy after a pass and postcopy from the start with the
 * destination running (the back-end faults on missing pages and godwit
 * serves them), the destination's RAM byte-exact with the source's, the
 * frame counters continuing, announce rounds, and the failures: a
 * destination back-end without PAGEFAULT, a back-end killed in precopy
 * (the source runs on) and in postcopy (nothing hangs), testpmd with
 * mlockall (its faults cannot be taken; the guest runs on).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include "migration-framework.h"
#include "gwos-results.h"
#include "vu-backend.h"

#define RAM_MIB 128
#define BOOT_MS 120000
#define MIG_MS 180000
#define MAC_LINE "gwos: pci 00:01.0 1af4:1041 virtio-net bar4=0xe0000000 mac=52:54:00:12:34:56"

typedef struct Mig {
    GwVuKind kind;
    const char *gwos;
    char *dir;
    char *src_sock, *dst_sock, *uri;
    GwVuBackend *src_be, *dst_be;
    GwVM *src, *dst;
    unsigned announce_rounds;   /* set on the destination; 0: QEMU's default, 5 */
} Mig;

typedef struct MigOpts {
    const char *name;
    bool dst_paused;            /* -S on the destination */
    bool dst_postcopy;          /* the destination's back-end offers PAGEFAULT */
    bool dst_mlockall;          /* testpmd pre-faults guest RAM */
    const char *append;         /* gwos workload */
} MigOpts;

static GwVuBackend *be_start(Mig *m, const char *sock, const char *name, bool postcopy,
                             bool mlockall)
{
    GwVuOpts o = { .kind = m->kind, .sock = sock, .client = true, .postcopy = postcopy,
                   .mlockall = mlockall, .dir = m->dir, .name = name };
    return gw_vu_start(&o);
}

static GwosResults results(GwVM *vm)
{
    g_autoptr(GBytes) b = gw_memsave(vm, GWOS_RESULTS_GPA, GWOS_RESULTS_SIZE);
    GwosResults r;

    memcpy(&r, g_bytes_get_data(b, NULL), sizeof(r));
    return r;
}

static void vm_stop(GwVM *vm)
{
    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'stop'}"));
    json_node_unref(gw_qmp_wait_event(vm, "STOP", 10000));
}

static void vm_cont(GwVM *vm)
{
    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'cont'}"));
    json_node_unref(gw_qmp_wait_event(vm, "RESUME", 10000));
}

/* Wait (VM running) until the guest has @rx frames back; returns its results. */
static GwosResults wait_rx(GwVM *vm, uint64_t rx, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)gw_timeout(timeout_ms) * 1000;
    GwosResults r;

    do {
        r = results(vm);
        if (r.net.rx >= rx) {
            return r;
        }
        g_usleep(200000);
    } while (g_get_monotonic_time() < deadline);
    g_error("%s: the guest got %" G_GUINT64_FORMAT " frames back, waited for %"
            G_GUINT64_FORMAT, gw_vm_name(vm), r.net.rx, rx);
}

static void wait_stderr(GwVM *vm, const char *needle, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)gw_timeout(timeout_ms) * 1000;

    for (;;) {
        g_autofree char *err = gw_vm_stderr(vm);
        if (strstr(err, needle)) {
            return;
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("%s: '%s' not on stderr:\n%s", gw_vm_name(vm), needle, err);
        }
        g_usleep(100000);
    }
}

static bool mig_env(Mig *m, GwVuKind kind, bool postcopy)
{
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    m->gwos = gw_require_guest("GW_OS_GUEST");
    return m->gwos && gw_require_kvm() && (!postcopy || gw_require_uffd()) &&
           gw_vu_require(kind);
}

/* Both sides up, each with its back-end; the source's guest sends frames. */
static void mig_setup(Mig *m, const MigOpts *o)
{
    m->dir = gw_vu_dir_new(o->name);
    m->src_sock = g_build_filename(m->dir, "src.sock", NULL);
    m->dst_sock = g_build_filename(m->dir, "dst.sock", NULL);
    m->uri = g_strdup_printf("unix:%s/mig.sock", m->dir);
    /*
     * nokvmclock where RAM is compared byte for byte: KVM itself rewrites a
     * kvmclock page on the destination when it restores the vCPU's MSRs.
     */
    g_autofree char *append = g_strdup_printf("%s%s", o->append ? o->append :
                                              "work=ws mem=16M rate=8",
                                              o->dst_paused ? " nokvmclock" : "");

    g_autofree char *sargs = gw_vu_vm_args(m->gwos, RAM_MIB, m->src_sock, true, 0, append, NULL);
    g_autofree char *dextra = g_strdup_printf("-incoming %s%s", m->uri,
                                              o->dst_paused ? " -S" : "");
    g_autofree char *dargs = gw_vu_vm_args(m->gwos, RAM_MIB, m->dst_sock, true, 0, append,
                                           dextra);
    GwVMOpts so = { .name = "src", .args = sargs, .start_timeout_ms = gw_timeout(60000) };
    GwVMOpts dopt = { .name = "dst", .args = dargs, .start_timeout_ms = gw_timeout(60000) };

    m->src_be = be_start(m, m->src_sock, "src-backend", true, false);
    m->src = gw_vm_start(&so);
    m->dst_be = be_start(m, m->dst_sock, "dst-backend", o->dst_postcopy, o->dst_mlockall);
    m->dst = gw_vm_start(&dopt);
    gsize off = gw_serial_wait_for(m->src, MAC_LINE, gw_timeout(BOOT_MS));
    gw_serial_wait_for_from(m->src, off, "\nnet t=", gw_timeout(60000));
    wait_rx(m->src, 200, 60000);
    mig_set_caps(m->src, "events", true);
    mig_set_caps(m->dst, "events", true);
}

static void mig_free(Mig *m)
{
    gw_vm_free(m->src);
    gw_vm_free(m->dst);
    gw_vu_free(m->src_be);
    gw_vu_free(m->dst_be);
    gw_vu_dir_free(m->dir);
    g_free(m->src_sock);
    g_free(m->dst_sock);
    g_free(m->uri);
}

static void migrate(Mig *m)
{
    json_node_unref(gw_qmp_assert_success(m->src, "{'execute': 'migrate', 'arguments': "
                                          "{'uri': '%s'}}", m->uri));
}

static void report(Mig *m, const char *what)
{
    g_autoptr(JsonNode) info = mig_query(m->src);
    g_test_message("%s/%s: total-time %.0f ms, downtime %.0f ms, %.0f postcopy requests",
                   gw_vu_kind_name(m->kind), what, mig_num(info, "total-time"),
                   mig_num(info, "downtime"), mig_num(info, "ram.postcopy-requests"));
}

/*
 * After a completed migration with the destination held by -S: the whole RAM
 * byte-exact, then cont: the frame stream continues where the source left it,
 * the NIC announces itself, nothing corrupt. Returns the source's results.
 */
static GwosResults check_paused_destination(Mig *m)
{
    g_autofree char *sst = gw_vm_query_status(m->src);
    g_autofree char *dst = gw_vm_query_status(m->dst);

    g_assert_cmpstr(sst, ==, "postmigrate");
    g_assert_cmpstr(dst, ==, "paused");
    mig_compare_memory(m->src, m->dst, RAM_MIB);
    GwosResults s = results(m->src);
    g_assert_cmpuint(s.net.state, ==, GWOS_NET_RUNNING);
    g_assert_cmpuint(s.net.corrupt, ==, 0);

    vm_cont(m->dst);
    GwosResults d = wait_rx(m->dst, s.net.rx + 500, 120000);
    vm_stop(m->dst);
    d = results(m->dst);
    g_assert_cmpuint(d.net.corrupt, ==, 0);
    g_assert_cmpuint(d.net.dup, ==, 0);
    g_assert_cmpuint(d.corrupt_total, ==, 0);
    g_assert_cmpuint(d.net.tx, >, s.net.tx);
    /*
     * Frames in flight at the switch: the example back-end has answered
     * them all when it returns the rings; testpmd drops what it holds (a burst).
     */
    if (m->kind == GW_VU_EXAMPLE) {
        g_assert_cmpuint(d.net.lost, ==, s.net.lost);
    } else {
        g_assert_cmpuint(d.net.lost - s.net.lost, <=, 2 * d.net.window);
    }
    g_test_message("frames: source tx %" G_GUINT64_FORMAT " rx %" G_GUINT64_FORMAT
                   "; destination tx %" G_GUINT64_FORMAT " rx %" G_GUINT64_FORMAT
                   " lost %" G_GUINT64_FORMAT ", longest gap %.1f ms", s.net.tx, s.net.rx,
                   d.net.tx, d.net.rx, d.net.lost - s.net.lost, d.net.maxgap_ns / 1e6);

    /*
     * The destination's back-end took the rings up exactly where the
     * source's GET_VRING_BASE left them (the index went in the device state).
     */
    if (m->kind == GW_VU_EXAMPLE) {
        g_autofree char *slog = gw_vu_log(m->src_be);
        for (unsigned q = 0; q < 2; q++) {
            gint64 base = gw_vu_example_stopped_at(slog, q);
            g_assert_cmpint(base, >=, 0);
            g_autofree char *start = g_strdup_printf("queue %u: started, 256 entries, next "
                                                     "available %" G_GINT64_FORMAT, q, base);
            gw_vu_wait_log(m->dst_be, start, 1000);
        }
    }
    return s;
}

/* The announce rounds and what the back-ends saw of the migration. */
static void check_backends(Mig *m, bool precopy_logging)
{
    const char *rarp = m->kind == GW_VU_EXAMPLE ? "SEND_RARP for 52:54:00:12:34:56" :
                       "read message VHOST_USER_SEND_RARP";
    guint rounds = m->announce_rounds ? m->announce_rounds : 5;
    gint64 deadline = g_get_monotonic_time() + gw_timeout(10000) * 1000LL;

    /*
     * announce-rounds SEND_RARPs: by default 5, the first at once, the last
     * ~550 ms later. Then a second more, so one round too many would show.
     */
    while (gw_vu_log_count(m->dst_be, rarp) < rounds && g_get_monotonic_time() < deadline) {
        g_usleep(100000);
    }
    g_usleep(1000000);
    g_assert_cmpuint(gw_vu_log_count(m->dst_be, rarp), ==, rounds);
    if (m->kind == GW_VU_TESTPMD) {
        if (precopy_logging) {
            gw_vu_wait_log(m->src_be, "read message VHOST_USER_SET_LOG_BASE", 1000);
        }
        return;
    }
    g_autofree char *slog = gw_vu_stop(m->src_be);
    g_autofree char *dlog = gw_vu_stop(m->dst_be);
    g_assert_cmpint(gw_vu_example_counter(slog, "nf_corrupt"), ==, 0);
    g_assert_cmpint(gw_vu_example_counter(dlog, "nf_corrupt"), ==, 0);
    /* Every numbered frame crossed exactly one of the two back-ends, in order. */
    g_assert_cmpint(gw_vu_example_counter(dlog, "nf_gaps"), ==, 0);
    g_assert_cmpint(gw_vu_example_counter(dlog, "nf_dups"), ==, 0);
    g_assert_cmpint(gw_vu_example_counter(dlog, "nf_before_first"), ==,
                    gw_vu_example_counter(slog, "nf_ok"));
    if (precopy_logging) {
        g_assert_cmpint(gw_vu_example_counter(slog, "dirty_log_writes"), >, 0);
    }
}

/*
 * Precopy held open while the guest runs: at 64 KiB/s a 100 ms rate window
 * carries under two pages, so a pass of two pages or more is measured at
 * that rate, and each page still dirty after it is estimated at 50 ms of
 * downtime, over the 1 ms limit. Only a guest that all but stops writing
 * lets it converge.
 */
#define HOLD_OPEN_PARAMS "'max-bandwidth': 65536, 'downtime-limit': 1"

static void test_precopy(gconstpointer opaque)
{
    Mig m;
    MigOpts o = { .name = "precopy", .dst_paused = true, .dst_postcopy = true };

    if (!mig_env(&m, (GwVuKind)GPOINTER_TO_INT(opaque), false)) {
        return;
    }
    mig_setup(&m, &o);
    /*
     * Unlimited, the move can end (47 ms natively, 138 ms in the test VM)
     * before a descheduled guest sends a frame: nothing for the dirty log to
     * show. So it is held open until 200 frames have crossed the back-end
     * since the first pass began (its log was on by then), and then let go.
     */
    mig_set_params(m.src, HOLD_OPEN_PARAMS);
    migrate(&m);
    json_node_unref(gw_qmp_wait_event(m.src, "MIGRATION_PASS", gw_timeout(30000)));
    wait_rx(m.src, results(m.src).net.rx + 200, 60000);
    g_assert_cmpstr(mig_query_str(m.src, "status"), ==, "active");
    mig_set_params(m.src, "'max-bandwidth': 0, 'downtime-limit': 300");
    mig_wait_status(m.src, "completed", gw_timeout(MIG_MS));
    mig_wait_status(m.dst, "completed", gw_timeout(MIG_MS));
    report(&m, "precopy");
    check_paused_destination(&m);
    check_backends(&m, true);
    mig_free(&m);
}

/*
 * Wait until the guest's working set has been written through once (every
 * vCPU running the workload has finished a pass over its share), so that a
 * migration's first pass has at least that much to send.
 */
static void wait_working_set_written(Mig *m)
{
    gint64 deadline = g_get_monotonic_time() + gw_timeout(60000) * 1000LL;
    GwosResults r;

    for (;;) {
        r = results(m->src);
        bool all = r.online > 0;
        for (uint32_t i = 0; i < r.online && i < GWOS_MAX_CPUS; i++) {
            all = all && (i == r.net.cpu || r.cpu[i].pass >= 1);
        }
        if (all) {
            return;
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("the guest's workload has not written its %" G_GUINT64_FORMAT
                    " MiB working set through once", r.mem_bytes >> 20);
        }
        g_usleep(100000);
    }
}

/*
 * With 16 MiB written, the first pass sends at least 4096 pages. Three
 * quarters of the way through it (over 250 ms before its end at 16 MiB/s),
 * drop to the hold-open rate: on a slow host the guest dirties so little
 * during the first pass that the second would otherwise converge within
 * milliseconds, before a migrate-start-postcopy could land.
 */
static void hold_open_after_first_pass(Mig *m)
{
    gint64 deadline = g_get_monotonic_time() + gw_timeout(MIG_MS) * 1000LL;

    for (;;) {
        g_autoptr(JsonNode) q = mig_query(m->src);
        const char *status = json_object_get_string_member(json_node_get_object(q), "status");
        /* MIGRATION_PASS 1 comes just before setup ends. */
        if (g_strcmp0(status, "setup") != 0) {
            g_assert_cmpstr(status, ==, "active");
            g_assert_cmpfloat(mig_num(q, "ram.dirty-sync-count"), ==, 1);
            if (mig_num(q, "ram.normal") >= 3072) {
                break;
            }
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(5000);
    }
    mig_set_params(m->src, HOLD_OPEN_PARAMS);
}

static bool event_pass_ge2(JsonNode *ev, gpointer opaque)
{
    JsonObject *d = gw_event_data(ev);
    return d && json_object_get_int_member(d, "pass") >= 2;
}

static void test_postcopy_after_pass(gconstpointer opaque)
{
    Mig m;
    MigOpts o = { .name = "pc-pass", .dst_paused = true, .dst_postcopy = true };

    if (!mig_env(&m, (GwVuKind)GPOINTER_TO_INT(opaque), true)) {
        return;
    }
    mig_setup(&m, &o);
    mig_set_caps(m.src, "postcopy-ram", true);
    mig_set_caps(m.dst, "postcopy-ram", true);
    wait_working_set_written(&m);
    mig_set_params(m.src, "'max-bandwidth': 16777216, 'downtime-limit': 1");
    /* The destination announces with its own announce-* parameters. */
    mig_set_params(m.dst, "'announce-rounds': 3, 'announce-initial': 20, 'announce-step': 30");
    m.announce_rounds = 3;
    migrate(&m);
    json_node_unref(gw_qmp_wait_event(m.src, "MIGRATION_PASS", gw_timeout(30000)));
    hold_open_after_first_pass(&m);
    json_node_unref(gw_qmp_wait_event_match(m.src, "MIGRATION_PASS", event_pass_ge2, NULL,
                                            gw_timeout(MIG_MS)));
    json_node_unref(gw_qmp_assert_success(m.src, "{'execute': 'migrate-start-postcopy'}"));
    mig_wait_status(m.src, "postcopy-active", gw_timeout(MIG_MS));
    mig_wait_status(m.src, "completed", gw_timeout(MIG_MS));
    mig_wait_status(m.dst, "completed", gw_timeout(MIG_MS));
    report(&m, "postcopy-after-pass");
    check_paused_destination(&m);
    check_backends(&m, true);
    mig_free(&m);
}

/*
 * Pure postcopy with the destination running at once on a slow link: its
 * back-end touches pages that have not arrived, faults on its own
 * userfaultfd, and godwit requests and wakes them.
 */
static void test_postcopy_running(gconstpointer opaque)
{
    Mig m;
    MigOpts o = { .name = "pc-run", .dst_paused = false, .dst_postcopy = true };

    if (!mig_env(&m, (GwVuKind)GPOINTER_TO_INT(opaque), true)) {
        return;
    }
    mig_setup(&m, &o);
    mig_set_caps(m.src, "postcopy-ram", true);
    mig_set_caps(m.dst, "postcopy-ram", true);
    /*
     * Precopy gets 64 KiB/s until the switch: on a slow host (the test VM)
     * it had sent the ring pages before migrate-start-postcopy arrived.
     * The push after it slows with the square of the host's slowness: it
     * follows the vCPUs' requests into gwos's rings and buffers, and in the
     * test VM at 1 MiB/s it had placed them before testpmd wrote one (no
     * back-end fault in 1 of 3 runs); at 256 KiB/s testpmd took 32-63.
     */
    double slow = gw_slow_factor();
    g_autofree char *params = g_strdup_printf(
        "'max-bandwidth': 65536, 'max-postcopy-bandwidth': %.0f", 4194304 / (slow * slow));
    mig_set_params(m.src, params);
    migrate(&m);
    json_node_unref(gw_qmp_assert_success(m.src, "{'execute': 'migrate-start-postcopy'}"));
    mig_wait_status(m.src, "completed", gw_timeout(MIG_MS));
    mig_wait_status(m.dst, "completed", gw_timeout(MIG_MS));
    report(&m, "postcopy-running");

    /* Every fault the back-end took was answered: no page it waits for. */
    wait_stderr(m.dst, "vhost-user back-end 'net0': postcopy ended:", 10000);
    g_autofree char *err = gw_vm_stderr(m.dst);
    const char *line = strstr(err, "postcopy ended:");
    unsigned faults = 0, woken = 0, p50 = 0, p99 = 0, waiting = 1;
    g_assert_cmpint(sscanf(line, "postcopy ended: %u page faults, %u pages woken after %u us "
                           "(p50), %u us (p99), %u still waiting", &faults, &woken, &p50,
                           &p99, &waiting), ==, 5);
    g_assert_cmpuint(waiting, ==, 0);
    g_assert_cmpuint(woken, >=, 1);
    g_assert_cmpuint(faults, >=, woken);
    g_test_message("back-end faults: %u (%u pages), woken after %u us p50, %u us p99",
                   faults, woken, p50, p99);

    /* The guest runs on there: frames continue, memory and frames intact. */
    GwosResults s = results(m.src);
    GwosResults d = wait_rx(m.dst, s.net.rx + 500, 120000);
    vm_stop(m.dst);
    d = results(m.dst);
    g_assert_cmpuint(d.net.corrupt, ==, 0);
    g_assert_cmpuint(d.net.dup, ==, 0);
    g_assert_cmpuint(d.corrupt_total, ==, 0);
    for (unsigned i = 0; i < 2; i++) {
        g_assert_cmpuint(d.cpu[i].corrupt, ==, 0);
    }
    g_test_message("frames: source tx %" G_GUINT64_FORMAT "; destination tx %"
                   G_GUINT64_FORMAT " rx %" G_GUINT64_FORMAT " lost %" G_GUINT64_FORMAT
                   ", longest gap %.1f ms", s.net.tx, d.net.tx, d.net.rx,
                   d.net.lost - s.net.lost, d.net.maxgap_ns / 1e6);
    if (m.kind == GW_VU_EXAMPLE) {
        g_autofree char *dlog = gw_vu_stop(m.dst_be);
        /*
         * Every page godwit woke was one the back-end had found missing. It
         * can have found more: a page the background push placed between
         * its check (mincore) and its access never reached the userfaultfd
         * (seen in the single-threaded test VM: 8 against 7).
         */
        g_assert_cmpint(gw_vu_example_counter(dlog, "faults"), >=, woken);
        g_assert_cmpint(gw_vu_example_counter(dlog, "nf_corrupt"), ==, 0);
    }
    mig_free(&m);
}

/* A destination back-end without PAGEFAULT cannot take part in postcopy. */
static void test_no_pagefault(gconstpointer opaque)
{
    Mig m;
    MigOpts o = { .name = "no-pf", .dst_paused = true, .dst_postcopy = false };

    if (!mig_env(&m, (GwVuKind)GPOINTER_TO_INT(opaque), true)) {
        return;
    }
    mig_setup(&m, &o);
    gw_qmp_expect_error(m.dst, "GenericError", "vhost-user backend not capable of postcopy",
                        "{'execute': 'migrate-set-capabilities', 'arguments': "
                        "{'capabilities': [{'capability': 'postcopy-ram', 'state': true}]}}");
    /* Asked by the source alone, the destination refuses at ADVISE, in setup. */
    mig_set_caps(m.src, "postcopy-ram", true);
    GwosResults before = results(m.src);
    migrate(&m);
    mig_wait_status(m.src, "failed", gw_timeout(MIG_MS));
    g_autoptr(JsonNode) info = mig_query(m.src);
    const char *desc = json_object_get_string_member(json_node_get_object(info), "error-desc");
    g_assert_nonnull(strstr(desc, "vhost-user backend not capable of postcopy"));
    g_autofree char *st = gw_vm_query_status(m.src);
    g_assert_cmpstr(st, ==, "running");
    int status;
    g_assert_true(gw_vm_wait_exit(m.dst, gw_timeout(10000), &status));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    /* The source's guest and its network never stopped. */
    GwosResults after = wait_rx(m.src, before.net.rx + 300, 60000);
    g_assert_cmpuint(after.net.corrupt, ==, 0);
    mig_free(&m);
}

/*
 * The source's back-end dies during precopy: pages it wrote just before may
 * be missing from its log, so the migration fails and the source guest runs
 * on; a new back-end picks the rings up.
 */
static void test_killed_precopy(gconstpointer opaque)
{
    Mig m;
    MigOpts o = { .name = "kill-pre", .dst_paused = true, .dst_postcopy = true,
                  .append = "work=ws mem=32M" };

    if (!mig_env(&m, (GwVuKind)GPOINTER_TO_INT(opaque), false)) {
        return;
    }
    mig_setup(&m, &o);
    mig_set_params(m.src, "'max-bandwidth': 8388608");
    migrate(&m);
    mig_poll_status(m.src, "active", gw_timeout(30000));
    json_node_unref(gw_qmp_wait_event(m.src, "MIGRATION_PASS", gw_timeout(30000)));
    gw_vu_kill(m.src_be, SIGKILL);
    mig_wait_status(m.src, "failed", gw_timeout(MIG_MS));
    g_autoptr(JsonNode) info = mig_query(m.src);
    const char *desc = json_object_get_string_member(json_node_get_object(info), "error-desc");
    g_assert_nonnull(strstr(desc, "vhost-user back-end 'net0' disconnected during the "
                                  "migration"));
    g_autofree char *st = gw_vm_query_status(m.src);
    g_assert_cmpstr(st, ==, "running");
    int status;
    g_assert_true(gw_vm_wait_exit(m.dst, gw_timeout(10000), &status));

    GwosResults down = results(m.src);
    gw_vu_free(m.src_be);
    m.src_be = be_start(&m, m.src_sock, "src-backend2", true, false);
    GwosResults up = wait_rx(m.src, down.net.rx + 300, 120000);
    g_assert_cmpuint(up.net.corrupt, ==, 0);
    g_assert_cmpuint(up.net.dup, ==, 0);
    mig_free(&m);
}

/*
 * The destination's back-end dies in postcopy: its faults end with it, the
 * migration completes anyway, nothing hangs, and a new back-end takes the
 * rings once postcopy has ended.
 */
static void test_killed_postcopy(gconstpointer opaque)
{
    Mig m;
    MigOpts o = { .name = "kill-pc", .dst_paused = false, .dst_postcopy = true };

    if (!mig_env(&m, (GwVuKind)GPOINTER_TO_INT(opaque), true)) {
        return;
    }
    mig_setup(&m, &o);
    mig_set_caps(m.src, "postcopy-ram", true);
    mig_set_caps(m.dst, "postcopy-ram", true);
    mig_set_params(m.src, "'max-postcopy-bandwidth': 2097152");
    migrate(&m);
    json_node_unref(gw_qmp_assert_success(m.src, "{'execute': 'migrate-start-postcopy'}"));
    mig_poll_status(m.dst, "postcopy-active", gw_timeout(30000));
    /* Killed once it serves the guest there (its rings started after RUN). */
    gw_vu_wait_log(m.dst_be, m.kind == GW_VU_EXAMPLE ? "queue 1: started" :
                   "read message VHOST_USER_SET_VRING_ENABLE", gw_timeout(30000));
    gw_vu_kill(m.dst_be, SIGKILL);
    wait_stderr(m.dst, "vhost-user back-end 'net0' disconnected", 10000);
    mig_wait_status(m.src, "completed", gw_timeout(MIG_MS));
    mig_wait_status(m.dst, "completed", gw_timeout(MIG_MS));
    g_autofree char *st = gw_vm_query_status(m.dst);
    g_assert_cmpstr(st, ==, "running");

    GwosResults down = results(m.dst);
    gw_vu_free(m.dst_be);
    m.dst_be = be_start(&m, m.dst_sock, "dst-backend2", true, false);
    GwosResults up = wait_rx(m.dst, down.net.rx + 300, 120000);
    g_assert_cmpuint(up.net.corrupt, ==, 0);
    g_assert_cmpuint(up.corrupt_total, ==, 0);
    /* quit ends both at once: no thread waits on a page or a back-end. */
    for (int i = 0; i < 2; i++) {
        GwVM *vm = i ? m.dst : m.src;
        gint64 t0 = g_get_monotonic_time();
        json_node_unref(gw_qmp(vm, "{'execute': 'quit'}"));
        g_assert_true(gw_vm_wait_exit(vm, gw_timeout(5000), NULL));
        g_assert_cmpint(g_get_monotonic_time() - t0, <, gw_timeout(5000) * 1000LL);
    }
    mig_free(&m);
}

/*
 * testpmd with mlockall pre-faults all of guest RAM: it cannot register it
 * for postcopy faults (EEXIST). godwit says so in one sentence and the guest
 * runs on without its NIC until postcopy ends.
 */
static void test_mlockall(void)
{
    Mig m;
    MigOpts o = { .name = "mlock", .dst_paused = false, .dst_postcopy = true,
                  .dst_mlockall = true };

    if (!mig_env(&m, GW_VU_TESTPMD, true)) {
        return;
    }
    mig_setup(&m, &o);
    mig_set_caps(m.src, "postcopy-ram", true);
    mig_set_caps(m.dst, "postcopy-ram", true);
    mig_set_params(m.src, "'max-postcopy-bandwidth': 4194304");
    migrate(&m);
    json_node_unref(gw_qmp_assert_success(m.src, "{'execute': 'migrate-start-postcopy'}"));
    wait_stderr(m.dst, "pre-faulted guest RAM when it mapped it (e.g. with mlockall), so it "
                "cannot take postcopy faults: its network device stays stopped until postcopy "
                "ends", 60000);
    mig_wait_status(m.src, "completed", gw_timeout(MIG_MS));
    mig_wait_status(m.dst, "completed", gw_timeout(MIG_MS));
    g_autofree char *st = gw_vm_query_status(m.dst);
    g_assert_cmpstr(st, ==, "running");
    /* The pages it had populated were dropped and arrived: nothing the guest checks is off. */
    g_autofree char *err = gw_vm_stderr(m.dst);
    g_assert_null(strstr(err, "postcopy ended with pages missing"));
    /* Postcopy over, the NIC starts with the same back-end and frames flow again. */
    GwosResults before = results(m.dst);
    GwosResults d = wait_rx(m.dst, before.net.rx + 300, 120000);
    vm_stop(m.dst);
    d = results(m.dst);
    g_assert_cmpuint(d.corrupt_total, ==, 0);
    g_assert_cmpuint(d.net.corrupt, ==, 0);
    for (unsigned i = 0; i < 2; i++) {
        g_assert_cmpuint(d.cpu[i].corrupt, ==, 0);
    }
    mig_free(&m);
}

static void add(const char *what, GwVuKind kind, void (*fn)(gconstpointer), bool slow)
{
    g_autofree char *path = g_strdup_printf("/vhost-user/migration/%s/%s",
                                            gw_vu_kind_name(kind), what);
    mig_add_test_data(path, GINT_TO_POINTER(kind), fn, slow);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (int k = GW_VU_TESTPMD; k <= GW_VU_EXAMPLE; k++) {
        add("precopy", k, test_precopy, false);
        add("postcopy/after-pass", k, test_postcopy_after_pass, k == GW_VU_TESTPMD);
        add("postcopy/running", k, test_postcopy_running, false);
        add("postcopy/no-pagefault", k, test_no_pagefault, k == GW_VU_TESTPMD);
        add("killed/precopy", k, test_killed_precopy, true);
        add("killed/postcopy", k, test_killed_postcopy, true);
    }
    mig_add_test("/vhost-user/migration/testpmd/postcopy/mlockall", test_mlockall, true);
    return g_test_run();
}
