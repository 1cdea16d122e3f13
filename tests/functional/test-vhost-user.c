/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * godwit's virtio-net-pci with a real vhost-user back-end (DPDK testpmd or
 * our example back-end) and gwos's virtio-net driver sending numbered
 * frames: the device on the PCI bus as the guest sees it, the back-end's
 * view of the memory table and rings, frames reflected without loss or
 * corruption, INTx, stop/cont, system reset, RAM above 4 GiB, reconnect of
 * a restarted back-end in both socket directions, and the refusal of RAM
 * that is not shared.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include "libgw.h"
#include "gwos-results.h"
#include "vu-backend.h"
#include <signal.h>

#define BOOT_MS 120000
#define MAC_LINE "gwos: pci 00:01.0 1af4:1041 virtio-net bar4=0xe0000000 mac=52:54:00:12:34:56"

typedef struct Env {
    GwVuKind kind;
    const char *gwos;
    char *dir;
    char *sock;
    GwVuBackend *be;
    GwVM *vm;
} Env;

static bool env_init(Env *e, GwVuKind kind, const char *name)
{
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->gwos = gw_require_guest("GW_OS_GUEST");
    if (!e->gwos || !gw_require_kvm() || !gw_vu_require(kind)) {
        return false;
    }
    e->dir = gw_vu_dir_new(name);
    e->sock = g_build_filename(e->dir, "vu.sock", NULL);
    return true;
}

static void env_free(Env *e)
{
    gw_vm_free(e->vm);
    gw_vu_free(e->be);
    gw_vu_dir_free(e->dir);
    g_free(e->sock);
}

static GwVuBackend *start_backend(Env *e, const char *name, bool client)
{
    GwVuOpts o = { .kind = e->kind, .sock = e->sock, .client = client, .postcopy = true,
                   .dir = e->dir, .name = name };
    return gw_vu_start(&o);
}

/* godwit serves the socket; the back-end (a client, retrying) connects. */
static void start_vm(Env *e, unsigned ram_mib, const char *append)
{
    g_autofree char *args = gw_vu_vm_args(e->gwos, ram_mib, e->sock, true, 0, append, NULL);
    GwVMOpts o = { .name = "vu", .args = args, .start_timeout_ms = gw_timeout(60000) };

    e->be = start_backend(e, "backend", true);
    e->vm = gw_vm_start(&o);
}

static GwosNetResults net_results(GwVM *vm)
{
    g_autoptr(GBytes) b = gw_memsave(vm, GWOS_RESULTS_GPA, GWOS_RESULTS_SIZE);
    GwosNetResults r;

    memcpy(&r, (const uint8_t *)g_bytes_get_data(b, NULL) + offsetof(GwosResults, net),
           sizeof(r));
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

/* Wait for @n more "net t=" heartbeats after offset @from; returns the new offset. */
static gsize wait_net_lines(GwVM *vm, gsize from, int n)
{
    for (int i = 0; i < n; i++) {
        from = gw_serial_wait_for_from(vm, from, "\nnet t=", gw_timeout(60000));
    }
    return from;
}

/* Wait until the guest has had at least @rx frames back (results page, VM running). */
static GwosNetResults wait_rx(GwVM *vm, uint64_t rx, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)gw_timeout(timeout_ms) * 1000;
    GwosNetResults r;

    do {
        r = net_results(vm);
        if (r.rx >= rx) {
            return r;
        }
        g_usleep(200000);
    } while (g_get_monotonic_time() < deadline);
    g_error("the guest got %" G_GUINT64_FORMAT " frames back, waited for %" G_GUINT64_FORMAT,
            r.rx, rx);
}

/* What every check of a running NIC asserts: nothing corrupt, nothing doubled. */
static void assert_clean(const GwosNetResults *r)
{
    g_assert_cmpuint(r->state, ==, GWOS_NET_RUNNING);
    g_assert_cmpuint(r->corrupt, ==, 0);
    g_assert_cmpuint(r->dup, ==, 0);
    g_assert_cmpuint(r->reorder, ==, 0);
}

static void test_boot(gconstpointer opaque)
{
    Env e;

    if (!env_init(&e, (GwVuKind)GPOINTER_TO_INT(opaque), "boot")) {
        return;
    }
    start_vm(&e, 128, "work=idle");
    /* The guest finds the device where the doc says, and its INTx at GSI 17. */
    gw_serial_wait_for(e.vm, MAC_LINE, gw_timeout(BOOT_MS));
    gw_serial_wait_for(e.vm, "gwos: net: intx pin 1 line 17 -> gsi 17 (level, active low)",
                       gw_timeout(10000));
    gsize off = gw_serial_wait_for(e.vm, "features=0x100000020", gw_timeout(10000));
    off = wait_net_lines(e.vm, off, 3);

    vm_stop(e.vm);
    GwosNetResults r = net_results(e.vm);
    assert_clean(&r);
    g_assert_cmphex(r.vendor, ==, 0x1af4);
    g_assert_cmphex(r.device, ==, 0x1041);
    g_assert_cmpuint(r.pci_bdf, ==, 1 << 3);
    g_assert_cmpuint(r.irq_line, ==, 17);
    g_assert_cmpuint(r.irq_pin, ==, 1);
    g_assert_cmpuint(r.gsi, ==, 17);
    g_assert_cmpuint(r.queue_size, ==, 256);
    g_assert_cmphex(r.features, ==, (1ULL << 32) | (1ULL << 5));
    /*
     * The back-end reflects every frame: all back but those in flight (a
     * window, and at most as many probes beyond it when the window stalls), none lost.
     */
    g_assert_cmpfloat(r.tx, >=, 500 / gw_slow_factor());   /* 220 seen in the test VM */
    g_assert_cmpuint(r.rx + 2 * r.window, >=, r.tx);
    g_assert_cmpuint(r.lost, ==, 0);
    g_assert_cmpuint(r.foreign, ==, 0);
    /* Back-end calls reach the guest as INTx (RX interrupts are not suppressed). */
    g_assert_cmpuint(r.irqs, >, 0);
    g_test_message("%s: tx=%" G_GUINT64_FORMAT " rx=%" G_GUINT64_FORMAT " irqs=%"
                   G_GUINT64_FORMAT, gw_vu_kind_name(e.kind), r.tx, r.rx, r.irqs);

    /* The back-end saw both regions' fd, the rings, and (stopped) handed them back. */
    if (e.kind == GW_VU_TESTPMD) {
        gw_vu_wait_log(e.be, "negotiated Vhost-user protocol features: 0x10e", 1000);
        gw_vu_wait_log(e.be, "negotiated Virtio features: 0x140000000", 1000);
        gw_vu_wait_log(e.be, "guest memory region size: 0x8000000", 1000);
        gw_vu_wait_log(e.be, "vring kick idx:1", 1000);
        gw_vu_wait_log(e.be, "read message VHOST_USER_GET_VRING_BASE", 5000);
    } else {
        gw_vu_wait_log(e.be, "protocol features 0x10e", 1000);
        gw_vu_wait_log(e.be, "region 0: guest 0x0-0x7ffffff, 128 MiB", 1000);
        gw_vu_wait_log(e.be, "queue 0: started, 256 entries, next available 0", 1000);
        gw_vu_wait_log(e.be, "queue 1: started, 256 entries, next available 0", 1000);
        /*
         * GET_VRING_BASE at the stop: where the back-end had consumed the TX
         * ring to. Both it and the guest's published frame count trail the
         * ring's available index by at most a batch (gwos posts a batch,
         * then publishes its count; the back-end consumes what is posted),
         * so they are within a batch of each other, either way round
         * (2273 against 2272 seen with the stop between post and publish).
         */
        gw_vu_wait_log(e.be, "queue 1: stopped at available index", 5000);
        g_autofree char *log1 = gw_vu_log(e.be);
        gint64 base = gw_vu_example_stopped_at(log1, 1);
        gint64 tx16 = (gint64)(r.tx & 0xffff);
        gint64 diff = (base - tx16 + 0x18000) % 0x10000 - 0x8000;   /* mod 2^16 */
        g_assert_cmpint(diff, >=, -32);
        g_assert_cmpint(diff, <=, 32);
        /* cont: the rings come back exactly where the back-end left them. */
        vm_cont(e.vm);
        g_autofree char *start1 = g_strdup_printf("queue 1: started, 256 entries, next "
                                                  "available %" G_GINT64_FORMAT, base);
        gw_vu_wait_log(e.be, start1, 5000);
        /* Frames flow again after cont. */
        GwosNetResults r2 = wait_rx(e.vm, r.tx + 200, 60000);
        assert_clean(&r2);
        g_assert_cmpuint(r2.lost, ==, 0);
        g_autofree char *log = gw_vu_stop(e.be);
        g_assert_cmpint(gw_vu_example_counter(log, "nf_corrupt"), ==, 0);
        g_assert_cmpint(gw_vu_example_counter(log, "nf_gaps"), ==, 0);
        g_assert_cmpint(gw_vu_example_counter(log, "nf_ok"), >=, (gint64)r2.rx);
    }
    env_free(&e);
}

/* RAM above 4 GiB: a second region with the same fd at its offset. */
static void test_high_ram(void)
{
    Env e;

    if (!env_init(&e, GW_VU_EXAMPLE, "highram")) {
        return;
    }
    start_vm(&e, 3584, "work=idle");
    gw_vu_wait_log(e.be, "region 0: guest 0x0-0xbfffffff, 3072 MiB", gw_timeout(60000));
    gw_vu_wait_log(e.be, "region 1: guest 0x100000000-0x11fffffff, 512 MiB", 1000);
    gw_serial_wait_for(e.vm, MAC_LINE, gw_timeout(BOOT_MS));
    GwosNetResults r = wait_rx(e.vm, 300, 60000);
    assert_clean(&r);
    g_assert_cmpuint(r.lost, ==, 0);
    env_free(&e);
}

/* memory-backend-file,share=on (a file on tmpfs) is shareable too: same fd, its offset. */
static void test_file_backend(void)
{
    Env e;

    if (!env_init(&e, GW_VU_EXAMPLE, "file")) {
        return;
    }
    g_autofree char *ram = g_build_filename(e.dir, "guest-ram", NULL);
    g_autofree char *base = gw_vu_vm_args(e.gwos, 128, e.sock, true, 0, "work=idle", NULL);
    /* The same command line with a file backend in place of the memfd. */
    g_autofree char *memfd = g_strdup("memory-backend-memfd,id=mem,size=128M,share=on");
    g_autofree char *file = g_strdup_printf("memory-backend-file,id=mem,size=128M,"
                                            "mem-path=%s,share=on", ram);
    g_auto(GStrv) parts = g_strsplit(base, memfd, 2);
    g_assert_cmpuint(g_strv_length(parts), ==, 2);
    g_autofree char *args = g_strconcat(parts[0], file, parts[1], NULL);
    GwVMOpts o = { .name = "vu", .args = args, .start_timeout_ms = gw_timeout(60000) };

    e.be = start_backend(&e, "backend", true);
    e.vm = gw_vm_start(&o);
    gw_vu_wait_log(e.be, "region 0: guest 0x0-0x7ffffff, 128 MiB", gw_timeout(60000));
    gw_serial_wait_for(e.vm, MAC_LINE, gw_timeout(BOOT_MS));
    GwosNetResults r = wait_rx(e.vm, 300, 60000);
    assert_clean(&r);
    g_assert_cmpuint(r.lost, ==, 0);
    env_free(&e);
}

static void test_reset(void)
{
    Env e;

    if (!env_init(&e, GW_VU_EXAMPLE, "reset")) {
        return;
    }
    start_vm(&e, 128, "work=idle");
    gsize off = gw_serial_wait_for(e.vm, MAC_LINE, gw_timeout(BOOT_MS));
    wait_net_lines(e.vm, off, 1);
    json_node_unref(gw_qmp_assert_success(e.vm, "{'execute': 'system_reset'}"));
    json_node_unref(gw_qmp_wait_event(e.vm, "RESET", 10000));
    /* The reset took the rings back; the rebooted driver starts them from 0 again. */
    gw_vu_wait_log(e.be, "queue 1: stopped at available index", 10000);
    off = gw_serial_wait_for_from(e.vm, off, "gwos: booting", gw_timeout(BOOT_MS));
    off = gw_serial_wait_for_from(e.vm, off, MAC_LINE, gw_timeout(BOOT_MS));
    g_assert_cmpuint(gw_vu_log_count(e.be, "queue 1: started, 256 entries, next available 0"),
                     ==, 2);
    GwosNetResults r = wait_rx(e.vm, 300, 60000);
    assert_clean(&r);
    g_assert_cmpuint(r.lost, ==, 0);
    env_free(&e);
}

/*
 * A back-end that dies and comes back: godwit notices, keeps the guest
 * running, and restarts the rings from where they were when the new one
 * connects (godwit listening, or connecting with reconnect=1).
 */
static void test_reconnect(gconstpointer opaque)
{
    bool server = GPOINTER_TO_INT(opaque);
    Env e;

    if (!env_init(&e, GW_VU_EXAMPLE, server ? "recon-srv" : "recon-cli")) {
        return;
    }
    if (server) {
        start_vm(&e, 128, "work=idle");
    } else {
        g_autofree char *args = gw_vu_vm_args(e.gwos, 128, e.sock, false, 1, "work=idle", NULL);
        GwVMOpts o = { .name = "vu", .args = args, .start_timeout_ms = gw_timeout(60000) };
        e.be = start_backend(&e, "backend", false);
        gw_vu_wait_log(e.be, "ready", gw_timeout(10000));
        e.vm = gw_vm_start(&o);
    }
    gw_serial_wait_for(e.vm, MAC_LINE, gw_timeout(BOOT_MS));
    GwosNetResults before = wait_rx(e.vm, 300, 60000);

    gw_vu_kill(e.be, SIGKILL);
    g_autofree char *log1 = gw_vu_stop(e.be);
    gw_vu_free(e.be);
    e.be = NULL;
    gint64 deadline = g_get_monotonic_time() + gw_timeout(10000) * 1000LL;
    for (;;) {
        g_autofree char *err = gw_vm_stderr(e.vm);
        if (strstr(err, "vhost-user back-end 'net0' disconnected")) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(100000);
    }
    /* The guest runs on without its network. */
    g_autofree char *st = gw_vm_query_status(e.vm);
    g_assert_cmpstr(st, ==, "running");
    GwosNetResults down = net_results(e.vm);

    e.be = start_backend(&e, "backend2", server);
    gw_vu_wait_log(e.be, "queue 1: started", gw_timeout(30000));
    g_autofree char *err = gw_vm_stderr(e.vm);
    g_assert_nonnull(strstr(err, "vhost-user back-end 'net0' connected"));
    GwosNetResults after = wait_rx(e.vm, down.rx + 300, 60000);
    assert_clean(&after);
    g_assert_cmpuint(after.tx, >, before.tx);
    /* Frames the dead back-end had taken are counted lost, not corrupt or doubled. */
    g_assert_cmpuint(after.lost, <=, 2 * after.window);
    g_test_message("reconnect (%s): lost %" G_GUINT64_FORMAT " frames",
                   server ? "godwit listens" : "godwit connects", after.lost);
    env_free(&e);
}

/* RAM the back-end cannot map: refused at start-up with one sentence. */
static void test_ram_not_shared(void)
{
    const char *gwos = gw_require_guest("GW_OS_GUEST");
    static const char *const ram[] = {
        "-m 128M",
        "-object memory-backend-memfd,id=mem,size=128M,share=off -machine memory-backend=mem",
        "-object memory-backend-ram,id=mem,size=128M,share=on -machine memory-backend=mem",
    };

    if (!gwos || !gw_require_kvm()) {
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(ram); i++) {
        g_autofree char *out = NULL, *err = NULL;
        g_autofree char *args = g_strdup_printf(
            "%s -nodefaults -display none -chardev socket,id=c,path=/nonexistent/vu.sock "
            "-netdev vhost-user,id=n,chardev=c -device virtio-net-pci,netdev=n -kernel '%s'",
            ram[i], gwos);
        int status = gw_run(args, gw_timeout(20000), &out, &err);
        g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        g_assert_nonnull(strstr(err, "is not shared with a file descriptor"));
        g_auto(GStrv) lines = g_strsplit(g_strstrip(err), "\n", -1);
        g_assert_cmpuint(g_strv_length(lines), ==, 1);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/vhost-user/testpmd/boot", GINT_TO_POINTER(GW_VU_TESTPMD), test_boot);
    g_test_add_data_func("/vhost-user/example/boot", GINT_TO_POINTER(GW_VU_EXAMPLE), test_boot);
    g_test_add_func("/vhost-user/example/high-ram", test_high_ram);
    g_test_add_func("/vhost-user/example/file-backend", test_file_backend);
    g_test_add_func("/vhost-user/example/reset", test_reset);
    g_test_add_data_func("/vhost-user/example/reconnect/server", GINT_TO_POINTER(1),
                         test_reconnect);
    g_test_add_data_func("/vhost-user/example/reconnect/client", GINT_TO_POINTER(0),
                         test_reconnect);
    g_test_add_func("/vhost-user/ram-not-shared", test_ram_not_shared);
    return g_test_run();
}
