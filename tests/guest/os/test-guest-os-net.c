/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Functional tests of gwos's virtio-net driver and network workload
 * (net=on) under QEMU 7.2, with real sockets as the network: a UDP socket
 * that sends to itself reflects every frame (KVM and TCG); a reflector in
 * this program that drops, duplicates, swaps, corrupts and injects chosen
 * frames, whose every fault the guest must count; DPDK testpmd as a
 * vhost-user back-end forwarding its port to itself; BARs gwos assigns
 * itself; exit=N's summary; and net=on on machines without the device
 * (QEMU, godwit), where the guest must carry on without it. godwit's own
 * virtio-net-pci is tested with gwos in tests/functional/test-vhost-user.c.
 */
#include "qemu/osdep.h"
#include "libgw.h"
#include "gwos-results.h"
#include "net/numbered-frame.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define NET_RATE    1000
#define NET_LEN     256
#define NET_WIN     32
#define GUEST_MAC   "52:54:00:12:34:56"

typedef struct NetHb {
    double t;
    guint64 tx, rx, lost, dup, reorder, corrupt, foreign, maxgap_us, gap_us, irqs, late,
            inflight, rtt_us, rtt_max_us, skipped;
} NetHb;

/* ---------------------------------------------------------------------- */
/* Which VMM and accelerator */

static void G_GNUC_PRINTF(1, 2) loud_skip(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_printerr("\n*** SKIP: %s ***\n", msg);
    g_test_skip(msg);
}

/* Point libgw at QEMU (GW_QEMU_BINARY, else PATH); false after a loud skip. */
static bool use_qemu(void)
{
    const char *env = g_getenv("GW_QEMU_BINARY");
    g_autofree char *path = env && *env ? g_strdup(env) :
                            g_find_program_in_path("qemu-system-x86_64");

    if (!path) {
        loud_skip("QEMU (qemu-system-x86_64) is not installed; scripts/install-deps.sh "
                  "installs qemu-system-x86");
        return false;
    }
    gw_set_binary(path, GW_FLAVOUR_QEMU);
    return gw_require_binary();
}

/*
 * QEMU's accelerator and CPU options. -cpu host without arch-capabilities:
 * the kvm_pvm hosts here refuse QEMU's write of MSR_IA32_ARCH_CAPABILITIES
 * (QEMU aborts "failed to set MSR 0x10a"); hardware KVM does not care.
 */
static const char *accel_args(bool kvm)
{
    return kvm ? "-accel kvm -cpu host,-arch-capabilities" : "-accel tcg -cpu max";
}

/* KVM if usable (else TCG, said loudly): for tests about the guest's logic. */
static bool prefer_kvm(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        g_test_message("no /dev/kvm (%s): running under TCG", g_strerror(errno));
        return false;
    }
    close(fd);
    return true;
}

/* A UDP port on 127.0.0.1 that was free a moment ago. */
static int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &len), ==, 0);
    close(fd);
    return ntohs(a.sin_port);
}

static GwVM *start_gwos(bool kvm, const char *append, const char *net_args)
{
    const char *guest = gw_require_guest("GW_OS_GUEST");

    if (!guest) {
        return NULL;
    }
    return gw_vm_startf("%s -smp 2 -m 256M -kernel %s -append '%s' %s", accel_args(kvm),
                        guest, append, net_args);
}

/* -netdev socket in UDP mode: frames go to @remote_port, arrive on @local_port. */
static char *udp_netdev(int remote_port, int local_port)
{
    return g_strdup_printf("-netdev socket,id=n0,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d "
                           "-device virtio-net-pci,netdev=n0,mac=" GUEST_MAC,
                           remote_port, local_port);
}

/* ---------------------------------------------------------------------- */
/* The guest's serial lines */

static GArray *parse_net(const char *log)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(NetHb));
    g_auto(GStrv) lines = g_strsplit(log, "\n", -1);

    /* the last element may be a line still being written */
    for (int i = 0; lines[i] && lines[i + 1]; i++) {
        NetHb h;
        guint64 sec, ms;
        if (!g_str_has_prefix(lines[i], "net t=")) {
            continue;
        }
        if (sscanf(lines[i], "net t=%" SCNu64 ".%" SCNu64 " tx=%" SCNu64 " rx=%" SCNu64
                   " lost=%" SCNu64 " dup=%" SCNu64 " reorder=%" SCNu64 " corrupt=%" SCNu64
                   " foreign=%" SCNu64 " maxgap_us=%" SCNu64 " gap_us=%" SCNu64
                   " irqs=%" SCNu64 " late=%" SCNu64 " inflight=%" SCNu64
                   " rtt_us=%" SCNu64 " rtt_max_us=%" SCNu64 " skipped=%" SCNu64,
                   &sec, &ms, &h.tx, &h.rx, &h.lost, &h.dup, &h.reorder, &h.corrupt,
                   &h.foreign, &h.maxgap_us, &h.gap_us, &h.irqs, &h.late, &h.inflight,
                   &h.rtt_us, &h.rtt_max_us, &h.skipped) != 17) {
            g_test_message("malformed net line: %s", lines[i]);
            g_test_fail();
            continue;
        }
        h.t = (double)sec + (double)ms / 1000.0;
        g_array_append_val(a, h);
    }
    return a;
}

/* The guest's net lines, into the test log: what a failure is read from. */
static void log_net_lines(const char *log)
{
    g_auto(GStrv) lines = g_strsplit(log, "\n", -1);

    for (int i = 0; lines[i]; i++) {
        if (g_str_has_prefix(lines[i], "net ") || g_str_has_prefix(lines[i], "CORRUPT net")) {
            g_test_message("%s", lines[i]);
        }
    }
}

/* Wait for @n net heartbeats, the last with tx >= @min_tx; returns the log. */
static char *wait_net(GwVM *vm, guint n, guint64 min_tx, int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)gw_timeout(timeout_ms) * 1000;

    for (;;) {
        char *log = gw_serial_read_all(vm);
        g_autoptr(GArray) a = parse_net(log);
        if (a->len >= n && g_array_index(a, NetHb, a->len - 1).tx >= min_tx) {
            return log;
        }
        if (g_get_monotonic_time() > end || !gw_vm_running(vm)) {
            g_autofree char *err = gw_vm_stderr(vm);
            int status;
            g_autofree char *how = gw_vm_wait_exit(vm, 0, &status) ?
                                   gw_describe_status(status) : g_strdup("running");
            g_test_message("serial log:\n%s\nstderr:\n%s\nVM: %s", log, err, how);
            g_free(log);
            g_error("timed out waiting for %u net heartbeats (tx >= %" PRIu64 ")", n,
                    min_tx);
        }
        g_free(log);
        g_usleep(200 * 1000);
    }
}

static void check_clean(const char *log)
{
    g_assert_null(strstr(log, "CORRUPT"));
    g_assert_null(strstr(log, "gwos: exception"));
    g_assert_null(strstr(log, "gwos: panic"));
    g_assert_null(strstr(log, "gwos: error"));
    g_assert_null(strstr(log, "gwos: net: warning"));
}

/* What the driver printed at boot about QEMU's virtio-net-pci. */
static void check_boot_lines(const char *log)
{
    g_autofree char *cfg = g_strdup_printf("gwos: net: cpu 1 len=%d rate=%d/s win=%d "
                                           "queue=256 features=0x100000020\n",
                                           NET_LEN, NET_RATE, NET_WIN);

    /* transitional virtio-net (QEMU's pc machine), modern BAR 4, our MAC */
    g_assert_nonnull(strstr(log, " 1af4:1000 virtio-net bar4=0x"));
    g_assert_nonnull(strstr(log, " mac=" GUEST_MAC "\n"));
    /* QEMU's MADT lists the PCI IRQs as level, active high */
    g_assert_nonnull(strstr(log, "gwos: net: intx pin 1 line "));
    g_assert_nonnull(strstr(log, "(level, active high) vector 0x33\n"));
    g_assert_nonnull(strstr(log, cfg));
}

/*
 * The rate over the heartbeats after the first (start-up) and over the
 * whole run: tx + skipped follows NET_RATE per guest second, to within what
 * the guest may be behind before it gives frames up (100 ms) plus a burst,
 * at either end; skipped is what host stalls cost. And frames must flow:
 * at least half the rate goes out and comes back. Returns the rx rate.
 */
static double check_rate(GArray *a, const GwosResults *r, const char *what)
{
    const GwosNetResults *n = &r->net;
    NetHb *f = &g_array_index(a, NetHb, 1), *l = &g_array_index(a, NetHb, a->len - 1);
    double dt = l->t - f->t;
    double sched = (double)(l->tx + l->skipped - f->tx - f->skipped) / dt;
    double tx_rate = (double)(l->tx - f->tx) / dt, rx_rate = (double)(l->rx - f->rx) / dt;
    double slack = 2.0 * (NET_RATE / 10 + NET_WIN + 1);
    double run_s = (double)(r->cpu[n->cpu].now_ns - n->start_ns) / 1e9;
    double due = run_s * NET_RATE + 1;

    g_test_message("%s: %.1f s, tx %.0f/s rx %.0f/s (schedule %.0f/s, %" PRIu64 " skipped), "
                   "irqs %.0f/s, rtt avg %" PRIu64 " us max %" PRIu64 " us, max gap %" PRIu64
                   " us", what, dt, tx_rate, rx_rate, sched, n->skipped,
                   (double)(l->irqs - f->irqs) / dt, n->rx ? n->rtt_sum_ns / n->rx / 1000 : 0,
                   n->rtt_max_ns / 1000, n->maxgap_ns / 1000);
    g_assert_cmpfloat(dt, >=, 3.5);
    g_assert_cmpfloat(ABS(sched - NET_RATE) * dt, <=, slack);
    g_assert_cmpfloat((double)(n->tx + n->skipped), <=, due + 1);
    g_assert_cmpfloat((double)(n->tx + n->skipped), >=, due - slack / 2 - 1);
    g_assert_cmpfloat(tx_rate, >, NET_RATE * 0.5);
    g_assert_cmpfloat(rx_rate, >, NET_RATE * 0.5);
    return rx_rate;
}

static GwosResults *read_results(GwVM *vm)
{
    g_autoptr(GBytes) mem = gw_memsave(vm, GWOS_RESULTS_GPA, GWOS_RESULTS_SIZE);
    gsize len;
    const void *p = g_bytes_get_data(mem, &len);

    g_assert_cmpuint(len, ==, GWOS_RESULTS_SIZE);
    GwosResults *r = g_memdup2(p, sizeof(GwosResults));
    g_assert_cmphex(r->magic, ==, GWOS_RESULTS_MAGIC);
    g_assert_cmpuint(r->version, ==, GWOS_RESULTS_VERSION);
    return r;
}

/* The fixed part of the results page's net block for our configuration. */
static void check_net_config(const GwosNetResults *n)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

    g_assert_cmpuint(n->cpu, ==, 1);
    g_assert_cmphex(n->vendor, ==, 0x1af4);
    g_assert_cmphex(n->device, ==, 0x1000);
    g_assert_cmpmem(n->mac, 6, mac, 6);
    g_assert_cmpuint(n->irq_pin, ==, 1);
    g_assert_cmpuint(n->gsi, ==, n->irq_line);      /* QEMU: ISA IRQ = GSI */
    g_assert_cmphex(n->features, ==, (1ull << 32) | (1ull << 5));   /* VERSION_1 | MAC */
    g_assert_cmpuint(n->queue_size, ==, 256);
    g_assert_cmpuint(n->frame_len, ==, NET_LEN);
    g_assert_cmpuint(n->rate, ==, NET_RATE);
    g_assert_cmpuint(n->window, ==, NET_WIN);
}

/* ---------------------------------------------------------------------- */
/* Frames flow: the kernel's UDP loopback as a perfect reflector */

static void run_udp_loopback(bool kvm)
{
    if (!use_qemu() || (kvm && !gw_require_kvm())) {
        return;
    }
    int port = free_udp_port();
    g_autofree char *net = udp_netdev(port, port);
    g_autofree char *append = g_strdup_printf("work=tick mem=32M hz=250 marker=0 net=on "
                                              "netrate=%d netlen=%d netwin=%d",
                                              NET_RATE, NET_LEN, NET_WIN);
    GwVM *vm = start_gwos(kvm, append, net);
    if (!vm) {
        return;
    }
    gw_serial_wait_for(vm, "gwos: running", 60000);
    g_autofree char *log = wait_net(vm, 7, 0, 60000);
    gw_qmp_assert_success(vm, "{'execute': 'stop'}");
    g_autofree GwosResults *r = read_results(vm);
    g_autofree char *all = gw_serial_read_all(vm);

    check_clean(all);
    check_boot_lines(all);
    log_net_lines(log);
    g_autoptr(GArray) a = parse_net(log);
    for (guint i = 0; i < a->len; i++) {
        NetHb *h = &g_array_index(a, NetHb, i);
        /* a quiet loopback loses, repeats, reorders and damages nothing */
        g_assert_cmpuint(h->lost, ==, 0);
        g_assert_cmpuint(h->dup, ==, 0);
        g_assert_cmpuint(h->reorder, ==, 0);
        g_assert_cmpuint(h->corrupt, ==, 0);
        g_assert_cmpuint(h->foreign, ==, 0);
        g_assert_cmpuint(h->late, ==, 0);
        g_assert_cmpuint(h->inflight, <=, 2 * NET_WIN);     /* window + probes */
        g_assert_cmpuint(h->rx + h->inflight, ==, h->tx);
        if (i) {
            /*
             * One line per whole guest second, printed at the first poll
             * after it: a stall on a loaded host delays one, never doubles
             * it.
             */
            guint64 s0 = (guint64)g_array_index(a, NetHb, i - 1).t, s1 = (guint64)h->t;
            g_assert_cmpuint(s1, >=, s0 + 1);
            g_assert_cmpuint(s1, <=, s0 + 2);
        }
    }
    check_rate(a, r, kvm ? "kvm" : "tcg");
    NetHb *f = &g_array_index(a, NetHb, 1), *l = &g_array_index(a, NetHb, a->len - 1);
    g_assert_cmpuint(l->irqs, >, f->irqs);

    g_assert_cmpuint(r->state, ==, GWOS_STATE_RUNNING);
    const GwosNetResults *n = &r->net;
    g_assert_cmpuint(n->state, ==, GWOS_NET_RUNNING);
    check_net_config(n);
    g_assert_cmpuint(n->tx, >=, l->tx);
    g_assert_cmpuint(n->rx, >=, l->rx);
    g_assert_cmpuint(n->tx - n->rx, <=, NET_WIN + n->probes);
    g_assert_cmpuint(n->lost + n->dup + n->reorder + n->late + n->corrupt + n->foreign, ==, 0);
    g_assert_cmpuint(n->hb_count, >=, a->len);
    g_assert_cmpuint(n->maxgap_ns, >, 0);
    g_assert_cmpuint(n->maxgap_ns, <, 2 * G_USEC_PER_SEC * 1000ull);
    g_assert_cmpuint(n->rtt_max_ns, >, 0);
    g_assert_cmpuint(n->rtt_max_ns, <, 2 * G_USEC_PER_SEC * 1000ull);
    g_assert_cmpuint(n->rtt_sum_ns / n->rx, <=, n->rtt_max_ns);
    guint64 hist = 0;
    for (int i = 0; i < GWOS_NET_RTT_BUCKETS; i++) {
        hist += n->rtt_hist[i];
    }
    /* every frame back has a round trip; rx is published after the poll */
    g_assert_cmpuint(hist, >=, n->rx);
    g_assert_cmpuint(hist, <=, n->rx + 256);
    /*
     * Interrupts: only RX notifications raise INTx (TX ones are
     * suppressed), several frames may share one, and an interrupt whose
     * ISR read finds nothing (irqs_idle) shows the line was delivered
     * again after the handler lowered it.
     */
    g_assert_cmpuint(n->irqs, >=, n->irqs_idle);
    g_assert_cmpuint(n->irqs - n->irqs_idle, >=, n->rx / 50);
    g_assert_cmpuint(n->irqs - n->irqs_idle, <=, n->rx + 1);
    g_assert_cmpuint(n->tx_kicks, >, 0);
    g_assert_cmpuint(n->tx_kicks, <=, n->tx);
    g_test_message("irqs %" PRIu64 " (ISR clear %" PRIu64 "), tx kicks %" PRIu64
                   ", rx kicks %" PRIu64 ", rtt histogram (log2 us):", n->irqs,
                   n->irqs_idle, n->tx_kicks, n->rx_kicks);
    for (int i = 0; i < GWOS_NET_RTT_BUCKETS; i++) {
        if (n->rtt_hist[i]) {
            g_test_message("  [%d] %" PRIu64, i, n->rtt_hist[i]);
        }
    }
    /* and the memory workloads went on beside it */
    for (int c = 0; c < 2; c++) {
        g_assert_cmpuint(r->cpu[c].online, ==, 1);
        g_assert_cmpuint(r->cpu[c].pass, >, 0);
        g_assert_cmpuint(r->cpu[c].corrupt, ==, 0);
    }
    gw_vm_free(vm);
}

static void test_udp_loopback_kvm(void)
{
    run_udp_loopback(true);
}

static void test_udp_loopback_tcg(void)
{
    run_udp_loopback(false);
}

/*
 * netbarzero: the device's BARs cleared first, as a VMM without firmware
 * would leave them; gwos sizes and assigns BAR 4 from its window (around
 * the BARs SeaBIOS assigned to the other devices) and frames flow.
 */
static void test_bar_assign(void)
{
    if (!use_qemu()) {
        return;
    }
    bool kvm = prefer_kvm();
    if (kvm && !gw_require_kvm()) {
        return;
    }
    int port = free_udp_port();
    g_autofree char *net = udp_netdev(port, port);
    GwVM *vm = start_gwos(kvm, "work=idle hz=250 marker=0 net=on netbarzero", net);
    if (!vm) {
        return;
    }
    g_autofree char *log = wait_net(vm, 3, 1000, 60000);
    g_autofree GwosResults *r = read_results(vm);
    check_clean(log);
    g_assert_nonnull(strstr(log, "gwos: net: netbarzero: the device's BARs cleared\n"));
    const char *a = strstr(log, " bar4 assigned 0x");
    g_assert_nonnull(a);
    guint64 addr = g_ascii_strtoull(a + strlen(" bar4 assigned "), NULL, 16);
    g_test_message("bar4 assigned at 0x%" PRIx64, addr);
    /* QEMU's modern virtio BAR: 16 KiB, naturally aligned, in gwos's window */
    g_assert_nonnull(strstr(a, " (0x4000 bytes)\n"));
    g_assert_cmphex(addr & 0x3fff, ==, 0);
    g_assert_cmphex(addr, >=, 0xe0000000);
    g_assert_cmphex(addr + 0x4000, <=, 0xfec00000);
    g_autofree char *used = g_strdup_printf(" virtio-net bar4=0x%" PRIx64 " mac=" GUEST_MAC
                                            "\n", addr);
    g_assert_nonnull(strstr(log, used));
    const GwosNetResults *n = &r->net;
    g_assert_cmpuint(n->state, ==, GWOS_NET_RUNNING);
    g_assert_cmpuint(n->rx, >=, 1000);
    g_assert_cmpuint(n->lost + n->dup + n->reorder + n->late + n->corrupt + n->foreign, ==, 0);
    gw_vm_free(vm);
}

/* ---------------------------------------------------------------------- */
/* Faults: a reflector that damages chosen frames */

#define DROP_SEQ     100
#define DUP_SEQ      200
#define HOLD_SEQ     300     /* sent after HOLD_SEQ + 1 */
#define CORRUPT_SEQ  400
#define CORRUPT_OFF  100     /* a payload byte */
#define FOREIGN_AT   500     /* a frame that is not ours goes back with this one */

typedef struct Reflector {
    int fd;
    int port;
    int guest_port;
    GThread *thread;
    gint stop;
    guint64 frames;
    uint8_t held[2048];
    ssize_t held_len;
} Reflector;

static void reflect(Reflector *r, const uint8_t *buf, ssize_t n)
{
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)r->guest_port),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    g_assert_cmpint(sendto(r->fd, buf, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to)),
                    ==, n);
}

static gpointer reflector_main(gpointer opaque)
{
    Reflector *r = opaque;
    uint8_t buf[2048];

    while (!g_atomic_int_get(&r->stop)) {
        struct pollfd p = { .fd = r->fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        ssize_t n = recv(r->fd, buf, sizeof(buf), 0);
        uint16_t stream;
        uint64_t seq;
        if (n <= 0) {
            continue;
        }
        r->frames++;
        if (nf_check(buf, (uint32_t)n, &stream, &seq) != NF_OK) {
            reflect(r, buf, n);
            continue;
        }
        switch (seq) {
        case DROP_SEQ:
            break;
        case DUP_SEQ:
            reflect(r, buf, n);
            reflect(r, buf, n);
            break;
        case HOLD_SEQ:
            memcpy(r->held, buf, (size_t)n);
            r->held_len = n;
            break;
        case HOLD_SEQ + 1:
            reflect(r, buf, n);
            if (r->held_len) {
                reflect(r, r->held, r->held_len);
            }
            break;
        case CORRUPT_SEQ:
            buf[CORRUPT_OFF] ^= 0x5a;
            reflect(r, buf, n);
            break;
        case FOREIGN_AT: {
            uint8_t junk[64] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1,
                                 0x08, 0x00 };    /* an IPv4 ethertype: not ours */
            reflect(r, buf, n);
            reflect(r, junk, sizeof(junk));
            break;
        }
        default:
            reflect(r, buf, n);
            break;
        }
    }
    return NULL;
}

static void reflector_start(Reflector *r)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);

    memset(r, 0, sizeof(*r));
    r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(r->fd, >=, 0);
    g_assert_cmpint(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(getsockname(r->fd, (struct sockaddr *)&a, &len), ==, 0);
    r->port = ntohs(a.sin_port);
    r->guest_port = free_udp_port();
    r->thread = g_thread_new("reflector", reflector_main, r);
}

static void reflector_stop(Reflector *r)
{
    g_atomic_int_set(&r->stop, 1);
    g_thread_join(r->thread);
    close(r->fd);
}

static void test_faults(void)
{
    Reflector refl;

    if (!use_qemu()) {
        return;
    }
    bool kvm = prefer_kvm();
    if (kvm && !gw_require_kvm()) {
        return;
    }
    reflector_start(&refl);
    g_autofree char *net = udp_netdev(refl.port, refl.guest_port);
    g_autofree char *append = g_strdup_printf("work=rand mem=32M hz=250 marker=0 net=on "
                                              "netrate=%d netlen=%d netwin=%d exit=12",
                                              NET_RATE, NET_LEN, NET_WIN);
    GwVM *vm = start_gwos(kvm, append, net);
    if (!vm) {
        reflector_stop(&refl);
        return;
    }
    /* every fault is well behind the newest frame back, so resolved */
    g_autofree char *log = wait_net(vm, 3, FOREIGN_AT + 4 * NET_WIN, 60000);
    gw_qmp_assert_success(vm, "{'execute': 'stop'}");
    g_autofree GwosResults *r = read_results(vm);
    gw_qmp_assert_success(vm, "{'execute': 'cont'}");

    const GwosNetResults *n = &r->net;
    g_test_message("reflector saw %" PRIu64 " frames; guest: tx %" PRIu64 " rx %" PRIu64
                   " lost %" PRIu64 " dup %" PRIu64 " reorder %" PRIu64 " corrupt %" PRIu64
                   " foreign %" PRIu64, refl.frames, n->tx, n->rx, n->lost, n->dup,
                   n->reorder, n->corrupt, n->foreign);
    check_net_config(n);
    /* DROP_SEQ, and CORRUPT_SEQ whose only copy was damaged */
    g_assert_cmpuint(n->lost, ==, 2);
    g_assert_cmpuint(n->dup, ==, 1);
    g_assert_cmpuint(n->reorder, ==, 1);
    g_assert_cmpuint(n->corrupt, ==, 1);
    g_assert_cmpuint(n->first_bad_seq, ==, CORRUPT_SEQ);
    g_assert_cmpuint(n->foreign, ==, 1);
    g_assert_cmpuint(n->late, ==, 0);

    uint8_t want = nf_pattern_byte(CORRUPT_SEQ, CORRUPT_OFF);
    g_autofree char *line = g_strdup_printf("CORRUPT net seq=%d err=payload len=%d off=%d "
                                            "expected=0x%02x got=0x%02x\n", CORRUPT_SEQ,
                                            NET_LEN, CORRUPT_OFF, want, want ^ 0x5a);
    g_assert_nonnull(strstr(log, line));
    g_assert_cmpuint(gw_serial_count(vm, "CORRUPT"), ==, 1);

    /* exit=N: the summary names the damage and the exit status says so */
    int status;
    g_assert_true(gw_vm_wait_exit(vm, 60000, &status));
    g_autofree char *all = gw_serial_read_all(vm);
    const char *done = strstr(all, "net done ");
    if (!done) {
        g_test_message("serial log (end):\n%s", all + (strlen(all) > 3000 ? strlen(all) - 3000 : 0));
    }
    g_assert_nonnull(done);
    g_test_message("%.*s", (int)strcspn(done, "\n"), done);
    g_assert_nonnull(strstr(done, "lost=2 dup=1 reorder=1 corrupt=1 foreign=1 late=0 "));
    g_assert_nonnull(strstr(all, " net_corrupt=1 net_lost=2\n"));
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 3);
    gw_vm_free(vm);
    reflector_stop(&refl);
}

/* exit=N on a clean path: every frame sent comes back, status 1 (good). */
static void test_exit(void)
{
    int status;

    if (!use_qemu()) {
        return;
    }
    bool kvm = prefer_kvm();
    if (kvm && !gw_require_kvm()) {
        return;
    }
    int port = free_udp_port();
    g_autofree char *net = udp_netdev(port, port);
    GwVM *vm = start_gwos(kvm, "work=ws rate=16 mem=32M hz=250 net=on netrate=2000 exit=4",
                          net);
    if (!vm) {
        return;
    }
    g_assert_true(gw_vm_wait_exit(vm, 90000, &status));
    g_autofree char *log = gw_serial_read_all(vm);
    check_clean(log);
    const char *done = strstr(log, "net done ");
    if (!done) {
        g_test_message("serial log (end):\n%s", log + (strlen(log) > 3000 ? strlen(log) - 3000 : 0));
    }
    g_assert_nonnull(done);
    guint64 tx, rx;
    g_assert_cmpint(sscanf(done, "net done tx=%" SCNu64 " rx=%" SCNu64, &tx, &rx), ==, 2);
    g_test_message("%.*s", (int)strcspn(done, "\n"), done);
    g_assert_cmpuint(tx, ==, rx);
    g_assert_cmpuint(tx, >, 2000);      /* frames flowed for seconds */
    g_assert_nonnull(strstr(done, " lost=0 dup=0 reorder=0 corrupt=0 foreign=0 late=0 "));
    g_assert_nonnull(strstr(log, "gwos: done corrupt=0 back=0 "));
    g_assert_nonnull(strstr(log, " net_corrupt=0 net_lost=0\n"));
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    gw_vm_free(vm);
}

/* ---------------------------------------------------------------------- */
/* vhost-user: DPDK testpmd forwarding its one port to itself */

typedef struct Testpmd {
    GPid pid;
    char *dir;
    char *sock;
    char *log;
} Testpmd;

/* In the child: a test that dies must not leave testpmd spinning. */
static void die_with_parent(gpointer unused)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
}

/*
 * Start testpmd as a vhost-user client of @t->sock (it retries until QEMU
 * listens there). No huge pages and no mlockall (what the postcopy tests
 * need too); --stats-period keeps it forwarding without a terminal.
 */
static bool testpmd_start(Testpmd *t, const char *mode)
{
    g_autofree char *bin = g_find_program_in_path("dpdk-testpmd");
    g_autoptr(GError) err = NULL;

    memset(t, 0, sizeof(*t));
    if (!bin) {
        loud_skip("DPDK testpmd (dpdk-testpmd, Debian package dpdk-dev) is not installed; "
                  "scripts/install-deps.sh installs it");
        return false;
    }
    t->dir = g_dir_make_tmp("gw-testpmd-XXXXXX", &err);
    g_assert_no_error(err);
    t->sock = g_build_filename(t->dir, "vhost.sock", NULL);
    t->log = g_build_filename(t->dir, "testpmd.log", NULL);
    g_autofree char *prefix = g_path_get_basename(t->dir);
    g_autofree char *vdev = g_strdup_printf("net_vhost0,iface=%s,client=1,postcopy-support=1",
                                            t->sock);
    g_autofree char *fwd = g_strdup_printf("--forward-mode=%s", mode);
    g_autofree char *file_prefix = g_strdup_printf("--file-prefix=%s", prefix);
    const char *argv[] = {
        "/bin/sh", "-c", "exec \"$0\" \"$@\" >\"$GW_TESTPMD_LOG\" 2>&1 </dev/null", bin,
        "--no-huge", "-m", "512", "--no-pci", file_prefix, "--vdev", vdev, "--",
        "--total-num-mbufs=16384", "--no-mlockall", fwd, "--port-topology=loop",
        "--stats-period=1", NULL,
    };
    g_auto(GStrv) env = g_environ_setenv(g_get_environ(), "GW_TESTPMD_LOG", t->log, TRUE);
    g_autofree char *cmd = g_strjoinv(" ", (char **)argv + 3);
    g_test_message("testpmd: %s", cmd);
    g_assert_true(g_spawn_async(NULL, (char **)argv, env, G_SPAWN_DO_NOT_REAP_CHILD,
                                die_with_parent, NULL, &t->pid, &err));
    g_assert_no_error(err);
    return true;
}

/* Stop testpmd (SIGTERM: it prints its totals) and return its log. */
static char *testpmd_stop(Testpmd *t)
{
    int status = 0;
    char *log = NULL;

    if (!t->pid) {
        return g_strdup("");
    }
    kill(t->pid, SIGTERM);
    for (int i = 0; i < 100 && waitpid(t->pid, &status, WNOHANG) == 0; i++) {
        g_usleep(100 * 1000);
    }
    if (waitpid(t->pid, &status, WNOHANG) == 0) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, &status, 0);
    }
    g_spawn_close_pid(t->pid);
    t->pid = 0;
    if (!g_file_get_contents(t->log, &log, NULL, NULL)) {
        log = g_strdup("");
    }
    unlink(t->log);
    unlink(t->sock);
    rmdir(t->dir);
    g_free(t->dir);
    g_free(t->sock);
    g_free(t->log);
    return log;
}

/* The last "@key N" number in testpmd's output (its final totals). */
static guint64 testpmd_last(const char *log, const char *key)
{
    const char *p = NULL;

    for (const char *q = strstr(log, key); q; q = strstr(q + 1, key)) {
        p = q;
    }
    g_assert_nonnull(p);
    return g_ascii_strtoull(p + strlen(key), NULL, 10);
}

static void test_testpmd(void)
{
    Testpmd tp;

    if (!use_qemu()) {
        return;
    }
    bool kvm = prefer_kvm();
    const char *guest;
    if ((kvm && !gw_require_kvm()) || !(guest = gw_require_guest("GW_OS_GUEST")) ||
        !testpmd_start(&tp, "io")) {
        return;
    }
    /* vhost-user needs guest RAM the back-end can map: a shared memfd */
    g_autofree char *args = g_strdup_printf(
        "%s -smp 2 -m 256M -kernel %s -append 'work=tick mem=32M hz=250 marker=0 net=on "
        "netrate=%d netlen=%d netwin=%d' "
        "-object memory-backend-memfd,id=mem,size=256M,share=on -machine memory-backend=mem "
        "-chardev socket,id=chr0,path=%s,server=on,wait=off "
        "-netdev vhost-user,id=n0,chardev=chr0 "
        "-device virtio-net-pci,netdev=n0,mac=" GUEST_MAC,
        accel_args(kvm), guest, NET_RATE, NET_LEN, NET_WIN, tp.sock);
    /* QEMU waits for the back-end before its monitor answers */
    GwVMOpts o = { .name = "testpmd", .args = args, .start_timeout_ms = 60000 };
    GwVM *vm = gw_vm_start(&o);
    g_autofree char *log = wait_net(vm, 6, 0, 90000);
    gw_qmp_assert_success(vm, "{'execute': 'stop'}");
    g_autofree GwosResults *r = read_results(vm);
    g_autofree char *tplog = testpmd_stop(&tp);
    g_autofree char *all = gw_serial_read_all(vm);

    check_clean(all);
    check_boot_lines(all);
    log_net_lines(log);
    g_autoptr(GArray) a = parse_net(log);
    for (guint i = 0; i < a->len; i++) {
        NetHb *h = &g_array_index(a, NetHb, i);
        g_assert_cmpuint(h->lost + h->dup + h->reorder + h->corrupt + h->foreign + h->late,
                         ==, 0);
    }
    double rx_rate = check_rate(a, r, "testpmd");
    const GwosNetResults *n = &r->net;
    guint64 tp_rx = testpmd_last(tplog, "RX-packets: ");
    guint64 tp_tx = testpmd_last(tplog, "TX-packets: ");
    guint64 tp_drop = testpmd_last(tplog, "TX-dropped: ");
    g_test_message("testpmd: rx %" PRIu64 " tx %" PRIu64 " dropped %" PRIu64 "; guest: tx %"
                   PRIu64 " rx %" PRIu64 ", %.0f frames/s, rtt avg %" PRIu64 " us max %"
                   PRIu64 " us, max gap %" PRIu64 " us, irqs %" PRIu64 " (ISR clear %"
                   PRIu64 ")", tp_rx, tp_tx, tp_drop, n->tx, n->rx, rx_rate,
                   n->rx ? n->rtt_sum_ns / n->rx / 1000 : 0, n->rtt_max_ns / 1000,
                   n->maxgap_ns / 1000, n->irqs, n->irqs_idle);
    check_net_config(n);
    g_assert_cmpuint(n->state, ==, GWOS_NET_RUNNING);
    g_assert_cmpuint(n->lost + n->dup + n->reorder + n->late + n->corrupt + n->foreign, ==, 0);
    g_assert_cmpuint(n->irqs - n->irqs_idle, >, 0);
    /* What the guest sent reached testpmd, and all it forwarded came back. */
    g_assert_cmpuint(tp_drop, ==, 0);
    g_assert_cmpuint(tp_tx, ==, tp_rx);
    g_assert_cmpuint(n->rx, <=, tp_tx);
    g_assert_cmpuint(tp_rx, <=, n->tx);
    g_assert_cmpuint(n->tx - n->rx, <=, NET_WIN + n->probes);
    g_assert_cmpuint(n->rx, >=, NET_RATE);
    gw_vm_free(vm);
}

/* ---------------------------------------------------------------------- */
/* No device: the guest says why and runs its memory workloads as before */

static void check_no_device(GwVM *vm)
{
    gw_serial_wait_for(vm, "gwos: net: no virtio-net device on the PCI bus; "
                       "network workload off\n", 60000);
    gw_serial_wait_for(vm, "hb cpu=1 t=", 30000);
    gw_serial_wait_for(vm, "hb cpu=0 t=", 30000);
    g_autofree GwosResults *r = read_results(vm);
    g_autofree char *log = gw_serial_read_all(vm);
    check_clean(log);
    g_assert_null(strstr(log, "\nnet t="));
    g_assert_cmpuint(r->state, ==, GWOS_STATE_RUNNING);
    g_assert_cmpuint(r->online, ==, 2);
    g_assert_cmpuint(r->net.state, ==, GWOS_NET_NO_DEVICE);
    g_assert_cmpuint(r->net.tx, ==, 0);
}

static void test_no_device_qemu(void)
{
    if (!use_qemu()) {
        return;
    }
    bool kvm = prefer_kvm();
    if (kvm && !gw_require_kvm()) {
        return;
    }
    GwVM *vm = start_gwos(kvm, "work=tick mem=32M net=on", "");
    if (vm) {
        check_no_device(vm);
        gw_vm_free(vm);
    }
}

/* godwit without -device virtio-net-pci: bus 0 holds only its host bridge. */
static void test_no_device_godwit(void)
{
    const char *godwit = g_getenv("GODWIT_BINARY");
    const char *guest;

    if (!godwit || !*godwit) {
        loud_skip("GODWIT_BINARY is not set (run through meson test)");
        return;
    }
    gw_set_binary(godwit, GW_FLAVOUR_GODWIT);
    if (!gw_require_kvm() || !(guest = gw_require_guest("GW_OS_GUEST"))) {
        return;
    }
    GwVM *vm = gw_vm_startf("-smp 2 -m 256M -kernel %s -append "
                            "'work=tick mem=32M net=on marker=%d'", guest, gw_marker_hz());
    check_no_device(vm);
    gw_vm_free(vm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/guest-os/net/udp-loopback/kvm", test_udp_loopback_kvm);
    g_test_add_func("/guest-os/net/udp-loopback/tcg", test_udp_loopback_tcg);
    g_test_add_func("/guest-os/net/bar-assign", test_bar_assign);
    g_test_add_func("/guest-os/net/faults", test_faults);
    g_test_add_func("/guest-os/net/exit", test_exit);
    g_test_add_func("/guest-os/net/vhost-user/testpmd", test_testpmd);
    g_test_add_func("/guest-os/net/no-device/qemu", test_no_device_qemu);
    g_test_add_func("/guest-os/net/no-device/godwit", test_no_device_godwit);
    return g_test_run();
}
