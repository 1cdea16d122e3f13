/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QEMU 7.2 as the vhost-user front-end of our example back-end. The guest
 * is Debian's Linux kernel with a busybox initramfs (linux-guest.py) whose
 * program sends numbered frames out of the virtio-net device and checks
 * what comes back; the back-end reflects them. Both socket roles; then
 * live migration with a back-end on each side: precopy (the destination
 * paused, so its RAM must equal the source's byte for byte, which fails if
 * a back-end write was not in the dirty log) and postcopy (the destination
 * back-end's accesses to missing pages fault, are fetched by QEMU and
 * woken). Skips loudly when QEMU or the guest's parts are missing.
 *
 * QEMU runs with TCG: on these hosts (kvm_pvm) a Linux guest does not boot
 * under KVM. GW_VU_QEMU_ACCEL=kvm asks for KVM instead, for a host whose
 * KVM boots Linux guests; the test VM's multi-threaded boot sets it
 * (docs/devel/test-vm.md). QEMU 7.2 under TCG crashes when a vhost-user
 * virtio-net-pci device uses MSI-X, so there the device gets vectors=0
 * (INTx); under KVM it keeps its MSI-X vectors, as users run it.
 */
#include "net/numbered-frame.h"
#include "vu-frontend.h"

#include <stdbool.h>

#include "libgw.h"

#include <glib/gstdio.h>
#include <inttypes.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GUEST_MAC "52:54:00:12:34:56"
/*
 * 256 MiB and two pages: QEMU 7.2 under TCG loses guest writes in precopy
 * when a RAM block's length is a multiple of 64 pages. Its dirty-bitmap
 * sync then clears whole bitmap words without re-arming TCG's write
 * tracking, so a page the vCPU keeps writing is never sent again (10-24
 * stale pages in every run of precopy-dirty-log at 256 MiB; the Linux
 * guest hung or panicked on the destination in about one run in six).
 * Another length takes its page-by-page path, which re-arms it.
 */
#define RAM_KIB (256 * 1024 + 8)

typedef struct Guest {
    char *kernel;
    char *initrd;
} Guest;

typedef struct Backend {
    char *dir;
    char *sock;
    char *out;
    char *err;
    pid_t pid;
} Backend;

static char *qemu_binary(void)
{
    const char *env = g_getenv("GW_QEMU_BINARY");
    char *q = env && *env ? g_strdup(env) : g_find_program_in_path("qemu-system-x86_64");

    if (!q) {
        g_printerr("\n*** SKIP: qemu-system-x86_64 is not installed (apt-get install"
                   " qemu-system-x86) ***\n");
        g_test_skip("qemu-system-x86_64 is not installed");
    }
    return q;
}

/* Kernel and initramfs from linux-guest.py, or NULL after a loud skip. */
static Guest *guest_build(const char *dir)
{
    const char *program = g_getenv("GW_VU_GUEST_FRAMES");
    const char *script = g_getenv("GW_VU_LINUX_GUEST");
    g_autofree char *initrd = g_build_filename(dir, "initrd.cpio", NULL);
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(GError) error = NULL;
    int status;

    if (!program || !g_file_test(program, G_FILE_TEST_IS_EXECUTABLE)) {
        g_printerr("\n*** SKIP: no static guest program (GW_VU_GUEST_FRAMES): this toolchain"
                   " cannot link statically (libc6-dev's libc.a) ***\n");
        g_test_skip("no static guest program");
        return NULL;
    }
    g_assert_nonnull(script);
    const char *argv[] = { "python3", script, "--program", program, "--out", initrd, NULL };
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               &out, &err, &status, &error));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        g_strstrip(err);
        g_printerr("\n*** SKIP: cannot build the Linux test guest: %s ***\n", err);
        g_test_skip("cannot build the Linux test guest");
        return NULL;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_error("linux-guest.py failed (status 0x%x): %s", status, err);
    }
    Guest *g = g_new0(Guest, 1);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (g_str_has_prefix(*l, "KERNEL=")) {
            g->kernel = g_strdup(*l + 7);
        } else if (g_str_has_prefix(*l, "INITRD=")) {
            g->initrd = g_strdup(*l + 7);
        }
    }
    g_assert_nonnull(g->kernel);
    g_assert_nonnull(g->initrd);
    return g;
}

static void guest_free(Guest *g)
{
    if (g) {
        g_unlink(g->initrd);
        g_free(g->kernel);
        g_free(g->initrd);
        g_free(g);
    }
}

static Backend *backend_start(const char *dir, const char *name, const char *args)
{
    Backend *b = g_new0(Backend, 1);
    g_autofree char *cmd = NULL;
    g_auto(GStrv) argv = NULL;

    b->dir = g_strdup(dir);
    b->sock = g_strdup_printf("%s/%s.sock", dir, name);
    b->out = g_strdup_printf("%s/%s.out", dir, name);
    b->err = g_strdup_printf("%s/%s.err", dir, name);
    cmd = g_strdup_printf("%s --socket-path %s --interval 1 %s", g_getenv("GW_VHOST_USER_NET"),
                          b->sock, args);
    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    b->pid = vu_spawn(argv, b->out, b->err);
    if (!strstr(args, "--client")) {
        g_autofree char *ready = vu_wait_file_contains(b->out, ": ready, ", 10000, b->pid);
        g_assert_nonnull(ready);
    }
    return b;
}

/* The back-end's stdout once it has ended (it leaves with QEMU). */
static char *backend_finish(Backend *b)
{
    int status;
    char *out = NULL;
    g_autofree char *err = NULL;

    if (!vu_wait_pid(b->pid, 10000, &status)) {
        status = vu_stop_pid(b->pid, 5000);
    }
    g_assert_true(g_file_get_contents(b->out, &out, NULL, NULL));
    g_file_get_contents(b->err, &err, NULL, NULL);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !strstr(out, ": final ")) {
        g_error("the back-end ended badly (status 0x%x):\n%s%s", status, out, err);
    }
    if (g_test_verbose()) {
        g_printerr("# back-end stderr:\n%s", err);
    }
    return out;
}

static void backend_free(Backend *b)
{
    if (!g_getenv("GW_KEEP_TMP")) {
        g_unlink(b->sock);
        g_unlink(b->out);
        g_unlink(b->err);
    }
    g_free(b->dir);
    g_free(b->sock);
    g_free(b->out);
    g_free(b->err);
    g_free(b);
}

static gint64 backend_final(const char *out, const char *key)
{
    return vu_stat_value(out, "godwit-vhost-user-net: final", key);
}

/* The value of @key on the last "vu-guest: @what" line of @text. */
static gint64 guest_value(const char *text, const char *what, const char *key)
{
    g_autofree char *prefix = g_strdup_printf("vu-guest: %s", what);

    return vu_stat_value(text, prefix, key);
}

static const char *qemu_accel(void)
{
    const char *accel = g_getenv("GW_VU_QEMU_ACCEL");

    if (!accel || !*accel) {
        return "tcg";
    }
    if (strcmp(accel, "tcg") && strcmp(accel, "kvm")) {
        g_error("GW_VU_QEMU_ACCEL is '%s'; it can be tcg or kvm", accel);
    }
    return accel;
}

/*
 * QEMU's arguments for a guest on @b's socket; @chardev_extra e.g.
 * ",server=on". @ram_compared: the test compares all of RAM across a
 * migration. Under KVM that guest then runs without kvmclock: KVM itself
 * writes the guest's pvclock page, and in the test VM that page (0x4200000)
 * was the one page of RAM to differ, in 3 of 3 runs of precopy-dirty-log,
 * and in none of 2 without kvmclock. It is a write of KVM's, not of a
 * back-end's, and the destination's KVM rewrites the page before the guest
 * runs there.
 */
static char *qemu_args(Guest *g, Backend *b, const char *chardev_extra, const char *guest_args,
                       bool ram_compared, const char *more)
{
    const char *accel = qemu_accel();
    const char *cpu = ram_compared && !strcmp(accel, "kvm") ? "max,-kvmclock" : "max";

    return g_strdup_printf(
        "-accel %s -cpu %s -m %dk -no-reboot"
        " -object memory-backend-memfd,id=mem,size=%dK,share=on -machine pc,memory-backend=mem"
        " -kernel %s -initrd %s"
        " -append 'console=ttyS0 panic=-1 ipv6.disable=1 rdinit=/init -- %s'"
        " -chardev socket,id=vhost0,path=%s%s -netdev vhost-user,id=net0,chardev=vhost0"
        " -device virtio-net-pci,netdev=net0,mac=" GUEST_MAC "%s %s",
        accel, cpu, RAM_KIB, RAM_KIB, g->kernel, g->initrd, guest_args, b->sock, chardev_extra,
        strcmp(accel, "tcg") ? "" : ",vectors=0", more);
}

/*
 * The guest's virtio-net interrupts came the way qemu_args set the device
 * up: by MSI-X under KVM, by the I/O APIC's line (vectors=0) under TCG.
 * The guest prints its /proc/interrupts lines for virtio as "vu-init: irq
 * N: COUNT CHIP ... virtio0-..." (one vCPU, so one count).
 */
static void check_interrupt_mode(const char *serial)
{
    const char *chip = strcmp(qemu_accel(), "tcg") ? "PCI-MSI" : "IO-APIC";
    g_auto(GStrv) lines = g_strsplit(serial, "\n", -1);
    gint64 taken = 0;

    for (char **l = lines; *l; l++) {
        const char *line = strstr(*l, "vu-init: irq ");
        if (!line || !strstr(line, chip) || !strstr(line, "virtio0")) {
            continue;
        }
        gint64 count;
        if (sscanf(line, "vu-init: irq %*s %" SCNd64, &count) == 1) {
            taken += count;
        }
    }
    if (taken == 0) {
        g_test_message("serial:\n%s", serial);
        g_error("the guest took no %s interrupt of virtio0 (QEMU under %s)", chip, qemu_accel());
    }
    g_test_message("guest: %" G_GINT64_FORMAT " %s interrupts of virtio0", taken, chip);
}

static void check_reflect_run(GwVM *vm, Backend *b, gint64 count)
{
    gw_serial_wait_for(vm, "vu-init: exit 0", gw_timeout(300000));
    g_autofree char *serial = gw_serial_read_all(vm);
    gint64 sent = guest_value(serial, "final", "sent");
    gint64 received = guest_value(serial, "final", "received");

    g_test_message("guest: sent %" G_GINT64_FORMAT ", received %" G_GINT64_FORMAT
                   ", longest round trip %" G_GINT64_FORMAT " us", sent, received,
                   guest_value(serial, "final", "rtt_max_us"));
    g_assert_cmpint(sent, ==, count);
    g_assert_cmpint(received, ==, count);
    g_assert_cmpint(guest_value(serial, "final", "ok"), ==, count);
    g_assert_cmpint(guest_value(serial, "final", "gaps"), ==, 0);
    g_assert_cmpint(guest_value(serial, "final", "dups"), ==, 0);
    g_assert_cmpint(guest_value(serial, "final", "corrupt"), ==, 0);
    g_assert_cmpint(guest_value(serial, "final", "before_first"), ==, 0);
    check_interrupt_mode(serial);
    /* The guest powered off: QEMU exits, and the back-end with it. */
    int status;
    g_assert_true(gw_vm_wait_exit(vm, gw_timeout(30000), &status));
    g_autofree char *out = backend_finish(b);
    g_assert_cmpint(backend_final(out, "nf_ok"), ==, count);
    g_assert_cmpint(backend_final(out, "nf_gaps"), ==, 0);
    g_assert_cmpint(backend_final(out, "nf_corrupt"), ==, 0);
    g_assert_cmpint(backend_final(out, "reflected"), ==, backend_final(out, "tx"));
    g_assert_cmpint(backend_final(out, "dropped"), ==, 0);
    g_assert_cmpint(backend_final(out, "rejected"), ==, 0);
}

static void test_linux(gconstpointer data)
{
    bool client = GPOINTER_TO_INT(data);
    const gint64 count = 1000;
    g_autofree char *qemu = qemu_binary();
    if (!qemu) {
        return;
    }
    g_autofree char *dir = g_dir_make_tmp("vub-qemu-XXXXXX", NULL);
    Guest *g = guest_build(dir);
    if (!g) {
        g_rmdir(dir);
        return;
    }
    gw_set_binary(qemu, GW_FLAVOUR_QEMU);
    /* As client the back-end connects to QEMU's socket; QEMU waits for it (server=on). */
    Backend *b = backend_start(dir, "backend", client ? "--client" : "");
    g_autofree char *guest_args = g_strdup_printf("--count %" G_GINT64_FORMAT " --rate 250",
                                                  count);
    g_autofree char *args = qemu_args(g, b, client ? ",server=on" : "", guest_args, false, "");
    GwVMOpts o = { .name = "vubqemu", .args = args, .start_timeout_ms = 30000 };
    GwVM *vm = gw_vm_start(&o);
    check_reflect_run(vm, b, count);
    gw_vm_free(vm);
    backend_free(b);
    guest_free(g);
    g_rmdir(dir);
}

/* ---- live migration ------------------------------------------------------------ */

typedef struct MigRig {
    char *dir;
    Guest *guest;
    Backend *src_be, *dst_be;
    GwVM *src, *dst;
} MigRig;

static void qmp_ok(GwVM *vm, const char *cmd)
{
    json_node_unref(gw_qmp_assert_success(vm, "%s", cmd));
}

/*
 * Source and destination QEMU, each with its own back-end; the guest runs
 * frames without end on the source. @dst_paused: the destination stays
 * paused (-S), for a test that compares its RAM with the source's. NULL
 * (after a loud skip) when a piece is missing.
 */
static MigRig *rig_start(bool dst_postcopy, bool dst_paused, const char *guest_args,
                         const char *src_be_args, const char *ready_line)
{
    g_autofree char *qemu = qemu_binary();
    if (!qemu) {
        return NULL;
    }
    MigRig *r = g_new0(MigRig, 1);
    r->dir = g_dir_make_tmp("vub-mig-XXXXXX", NULL);
    r->guest = guest_build(r->dir);
    if (!r->guest) {
        g_rmdir(r->dir);
        g_free(r->dir);
        g_free(r);
        return NULL;
    }
    gw_set_binary(qemu, GW_FLAVOUR_QEMU);
    r->src_be = backend_start(r->dir, "src-backend", src_be_args);
    r->dst_be = backend_start(r->dir, "dst-backend", dst_postcopy ? "--postcopy" : "");
    g_autofree char *src_args = qemu_args(r->guest, r->src_be, "", guest_args, dst_paused, "");
    g_autofree char *mig = g_strdup_printf("-incoming unix:%s/mig.sock%s", r->dir,
                                           dst_paused ? " -S" : "");
    g_autofree char *dst_args = qemu_args(r->guest, r->dst_be, "", guest_args, dst_paused, mig);
    GwVMOpts so = { .name = "vubsrc", .args = src_args, .start_timeout_ms = 30000 };
    GwVMOpts dopt = { .name = "vubdst", .args = dst_args, .start_timeout_ms = 30000 };
    r->src = gw_vm_start(&so);
    r->dst = gw_vm_start(&dopt);
    qmp_ok(r->src, "{'execute': 'migrate-set-capabilities', 'arguments': {'capabilities':"
                   " [{'capability': 'events', 'state': true}]}}");
    qmp_ok(r->dst, "{'execute': 'migrate-set-capabilities', 'arguments': {'capabilities':"
                   " [{'capability': 'events', 'state': true}]}}");
    gsize off = gw_serial_wait_for(r->src, ready_line, gw_timeout(180000));
    if (strstr(ready_line, "progress")) {
        /* A second progress line: frames go out and come back. */
        gw_serial_wait_for_from(r->src, off, ready_line, gw_timeout(30000));
    }
    return r;
}

static void rig_free(MigRig *r)
{
    gw_vm_free(r->src);
    gw_vm_free(r->dst);
    if (r->src_be->pid > 0 && kill(r->src_be->pid, 0) == 0) {
        vu_stop_pid(r->src_be->pid, 5000);
    }
    if (r->dst_be->pid > 0 && kill(r->dst_be->pid, 0) == 0) {
        vu_stop_pid(r->dst_be->pid, 5000);
    }
    backend_free(r->src_be);
    backend_free(r->dst_be);
    g_autofree char *mig = g_build_filename(r->dir, "mig.sock", NULL);
    g_unlink(mig);
    guest_free(r->guest);
    g_rmdir(r->dir);
    g_free(r->dir);
    g_free(r);
}

/* The back-end's stdout after SIGTERM (it prints its final counters). */
static char *backend_stop(Backend *b)
{
    int status = vu_stop_pid(b->pid, 5000);
    char *out = NULL;

    b->pid = -1;
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_assert_true(g_file_get_contents(b->out, &out, NULL, NULL));
    return out;
}

/*
 * The guest's frame stream across the move: the destination's progress
 * lines go on from the source's counters, with nothing corrupted or
 * repeated, and every frame the guest found missing is one a back-end
 * reported dropping (its RX ring was full). Stops both back-ends; returns
 * the destination back-end's stdout.
 */
static char *check_stream_continues(MigRig *r)
{
    gsize off = gw_serial_offset(r->dst);
    gw_serial_wait_for_from(r->dst, off, "vu-guest: progress", gw_timeout(60000));
    off = gw_serial_wait_for_from(r->dst, off, "vu-guest: progress", gw_timeout(60000));
    gw_serial_wait_for_from(r->dst, off, "vu-guest: progress", gw_timeout(60000));
    g_autofree char *src_serial = gw_serial_read_all(r->src);
    g_autofree char *dst_serial = gw_serial_read_all(r->dst);
    gint64 src_sent = guest_value(src_serial, "progress", "sent");
    gint64 dst_sent = guest_value(dst_serial, "progress", "sent");
    gint64 dst_received = guest_value(dst_serial, "progress", "received");
    gint64 gaps = guest_value(dst_serial, "progress", "gaps");

    g_test_message("guest: %" G_GINT64_FORMAT " frames sent on the source, %" G_GINT64_FORMAT
                   " in all after the move, %" G_GINT64_FORMAT " came back, %" G_GINT64_FORMAT
                   " lost, longest round trip %" G_GINT64_FORMAT " us", src_sent, dst_sent,
                   dst_received, gaps, guest_value(dst_serial, "progress", "rtt_max_us"));
    g_assert_cmpint(dst_sent, >, src_sent);
    g_assert_cmpint(guest_value(dst_serial, "progress", "corrupt"), ==, 0);
    g_assert_cmpint(guest_value(dst_serial, "progress", "dups"), ==, 0);
    g_assert_cmpint(guest_value(dst_serial, "progress", "other"), ==, 0);
    g_assert_cmpint(guest_value(dst_serial, "progress", "before_first"), ==, 0);
    /* Frames in flight at the last line (at most two rings' worth) are not yet back. */
    g_assert_cmpint(dst_received + gaps, <=, dst_sent);
    g_assert_cmpint(dst_sent - dst_received - gaps, <=, 512);

    g_autofree char *src_out = backend_stop(r->src_be);
    char *dst_out = backend_stop(r->dst_be);
    gint64 dropped = backend_final(src_out, "dropped") + backend_final(dst_out, "dropped");
    g_test_message("back-ends: %" G_GINT64_FORMAT " + %" G_GINT64_FORMAT " frames reflected,"
                   " %" G_GINT64_FORMAT " dropped for want of RX buffers",
                   backend_final(src_out, "reflected"), backend_final(dst_out, "reflected"),
                   dropped);
    g_assert_cmpint(gaps, <=, dropped);
    g_assert_cmpint(backend_final(src_out, "nf_corrupt"), ==, 0);
    g_assert_cmpint(backend_final(dst_out, "nf_corrupt"), ==, 0);
    g_assert_cmpint(backend_final(src_out, "rejected"), ==, 0);
    g_assert_cmpint(backend_final(dst_out, "rejected"), ==, 0);
    return dst_out;
}

/*
 * Precopy with frames flowing: the guest's stream goes on from the
 * destination, nothing corrupted or repeated, every missing frame one a
 * back-end dropped; QEMU announces the MAC through SEND_RARP afterwards.
 */
static void test_migrate_precopy(void)
{
    MigRig *r = rig_start(false, false, "--count 0 --rate 200", "", "vu-guest: progress");
    if (!r) {
        return;
    }
    json_node_unref(gw_qmp_assert_success(r->src, "{'execute': 'migrate', 'arguments':"
                                                  " {'uri': 'unix:%s/mig.sock'}}", r->dir));
    json_node_unref(gw_qmp_wait_event_data(r->src, "MIGRATION", "status", "completed",
                                           gw_timeout(300000)));
    json_node_unref(gw_qmp_wait_event_data(r->dst, "MIGRATION", "status", "completed",
                                           gw_timeout(30000)));
    g_autofree char *dst_out = check_stream_continues(r);
    g_assert_cmpint(backend_final(dst_out, "rarp"), >=, 1);
    rig_free(r);
}

/* Which bytes of a page differ; with GW_VU_DEBUG_DIFF=DIR both copies go to DIR. */
static void describe_diff(const uint8_t *src, const uint8_t *dst, gsize gpa)
{
    const char *dir = g_getenv("GW_VU_DEBUG_DIFF");
    gsize first = 0, last = 0, count = 0;

    for (gsize i = 0; i < 4096; i++) {
        if (src[i] != dst[i]) {
            first = count++ ? first : i;
            last = i;
        }
    }
    g_test_message("page 0x%zx: %zu bytes differ, from 0x%zx to 0x%zx", gpa, count, first, last);
    if (dir) {
        g_autofree char *ps = g_strdup_printf("%s/src-%zx", dir, gpa);
        g_autofree char *pd = g_strdup_printf("%s/dst-%zx", dir, gpa);
        g_file_set_contents(ps, (const char *)src, 4096, NULL);
        g_file_set_contents(pd, (const char *)dst, 4096, NULL);
    }
}

/*
 * Every frame the back-end wrote into guest RAM that is still there on the
 * source (found by its numbered header: the generator's stream and MAC,
 * intact; the guest never writes such frames) must be on the destination
 * byte for byte, with the virtio-net header in front of it. Returns how
 * many there were.
 */
static guint check_frames_moved(const uint8_t *src, const uint8_t *dst, gsize n)
{
    static const uint8_t magic[4] = { 'G', 'W', 'N', 'F' };
    static const uint8_t gen_mac[6] = { 0x02, 0x67, 0x77, 0x00, 0x00, 0x01 };
    guint found = 0, stale = 0;
    const uint8_t *p = src;

    while ((p = memmem(p, n - (gsize)(p - src), magic, sizeof(magic)))) {
        gsize at = (gsize)(p - src);
        p++;
        if (at < NF_OFF_MAGIC + VIRTIO_NET_HDR_LEN) {
            continue;
        }
        gsize start = at - NF_OFF_MAGIC;
        uint32_t len = nf_get32(src + start + NF_OFF_LENGTH);
        uint16_t stream;
        uint64_t seq;
        if (len < NF_MIN_LEN || len > NF_MAX_LEN || start + len > n ||
            memcmp(src + start + 6, gen_mac, 6) ||
            nf_check(src + start, len, &stream, &seq) != NF_OK || stream != 0x8000) {
            continue;
        }
        found++;
        gsize from = start - VIRTIO_NET_HDR_LEN;
        if (memcmp(src + from, dst + from, VIRTIO_NET_HDR_LEN + len)) {
            if (!stale++) {
                g_test_message("frame %" G_GUINT64_FORMAT " at 0x%zx differs on the"
                               " destination", seq, start);
            }
        }
    }
    if (stale) {
        g_error("%u of the %u frames the back-end wrote are stale on the destination: its"
                " writes were not all in the dirty log", stale, found);
    }
    return found;
}

/* ram.dirty-sync-count of query-migrate: 2 once the first pass over RAM is done. */
static gint64 dirty_syncs(GwVM *vm)
{
    JsonNode *r = gw_qmp_assert_success(vm, "{'execute': 'query-migrate'}");
    JsonObject *o = json_node_get_object(r);
    gint64 n = 0;

    if (json_object_has_member(o, "ram")) {
        n = json_object_get_int_member(json_object_get_object_member(o, "ram"),
                                       "dirty-sync-count");
    }
    json_node_unref(r);
    return n;
}

static gint64 backend_stat_now(Backend *b, const char *key)
{
    g_autofree char *out = NULL;

    g_assert_true(g_file_get_contents(b->out, &out, NULL, NULL));
    return vu_stat_value(out, "godwit-vhost-user-net: stats", key);
}

/*
 * The dirty log across processes with QEMU. The guest takes its NIC down
 * (its RX buffers stay posted, never looked at) and dirties 4 MiB/s of
 * its own memory, so the migration, on a 2 MiB/s link, iterates without
 * end. Once the first pass over RAM is done, the source back-end starts
 * writing numbered frames into those RX buffers: pages QEMU has already
 * sent, which only the dirty log can bring it to send again. Then the link
 * opens, the migration completes, and every frame in the source's RAM must
 * be on the (paused) destination byte for byte, and so must the whole of
 * RAM (see RAM_KIB for why that needs an odd RAM size under TCG).
 */
static void test_migrate_dirty_log(void)
{
    MigRig *r = rig_start(false, true, "--down --idle --dirty 1024",
                          "--mode generate --rate 100 --frame-size 1000 --start-paused",
                          ", idle, dirtying");
    if (!r) {
        return;
    }
    qmp_ok(r->src, "{'execute': 'migrate-set-parameters', 'arguments':"
                   " {'max-bandwidth': 2097152}}");
    json_node_unref(gw_qmp_assert_success(r->src, "{'execute': 'migrate', 'arguments':"
                                                  " {'uri': 'unix:%s/mig.sock'}}", r->dir));
    gint64 deadline = g_get_monotonic_time() + (gint64)gw_timeout(180000) * 1000;
    while (dirty_syncs(r->src) < 2) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(200000);
    }
    /* The first pass is over: now the back-end writes (256 RX buffers at 100/s). */
    g_assert_cmpint(backend_stat_now(r->src_be, "generated"), ==, 0);
    kill(r->src_be->pid, SIGUSR1);
    deadline = g_get_monotonic_time() + (gint64)gw_timeout(60000) * 1000;
    while (backend_stat_now(r->src_be, "generated") < 256) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(200000);
    }
    qmp_ok(r->src, "{'execute': 'migrate-set-parameters', 'arguments':"
                   " {'max-bandwidth': 1073741824}}");
    json_node_unref(gw_qmp_wait_event_data(r->src, "MIGRATION", "status", "completed",
                                           gw_timeout(120000)));
    json_node_unref(gw_qmp_wait_event_data(r->dst, "MIGRATION", "status", "completed",
                                           gw_timeout(30000)));

    g_autoptr(GBytes) src_ram = gw_memsave(r->src, 0, (guint64)RAM_KIB << 10);
    g_autoptr(GBytes) dst_ram = gw_memsave(r->dst, 0, (guint64)RAM_KIB << 10);
    gsize n;
    const uint8_t *a = g_bytes_get_data(src_ram, &n);
    const uint8_t *b = g_bytes_get_data(dst_ram, NULL);
    guint64 bad_pages = 0, first_bad = 0;
    for (gsize off = 0; off < n; off += 4096) {
        if (memcmp(a + off, b + off, 4096)) {
            first_bad = bad_pages++ ? first_bad : off;
            describe_diff(a + off, b + off, off);
        }
    }
    guint moved = check_frames_moved(a, b, n);
    g_autofree char *src_out = backend_stop(r->src_be);
    gint64 generated = backend_final(src_out, "generated");
    gint64 logged = backend_final(src_out, "dirty_log_writes");
    g_test_message("source back-end: %" G_GINT64_FORMAT " frames written into already-sent"
                   " RX buffers, %" G_GINT64_FORMAT " writes marked in the dirty log; all %u"
                   " on the destination; %" G_GUINT64_FORMAT " pages of RAM differ (first 0x%"
                   G_GINT64_MODIFIER "x)", generated, logged, moved, bad_pages, first_bad);
    /* One frame per RX buffer: the guest never took any back. */
    g_assert_cmpint(generated, ==, 256);
    g_assert_cmpint(moved, ==, 256);
    g_assert_cmpint(logged, >=, generated);
    g_assert_cmpint(backend_final(src_out, "rejected"), ==, 0);
    g_assert_cmpuint(bad_pages, ==, 0);
    qmp_ok(r->dst, "{'execute': 'cont'}");
    g_autofree char *status = gw_vm_query_status(r->dst);
    g_assert_cmpstr(status, ==, "running");
    rig_free(r);
}

/*
 * Postcopy: the destination runs at once; its back-end's first touches of
 * pages not yet there fault into its userfaultfd, which QEMU polls,
 * fetches from the source and wakes.
 */
static void test_migrate_postcopy(void)
{
    /* Frames without end, 200 a second, each checked when it comes back. */
    MigRig *r = rig_start(true, false, "--count 0 --rate 200", "", "vu-guest: progress");
    if (!r) {
        return;
    }
    const char *caps = "{'execute': 'migrate-set-capabilities', 'arguments': {'capabilities':"
                       " [{'capability': 'postcopy-ram', 'state': true}]}}";
    qmp_ok(r->src, caps);
    qmp_ok(r->dst, caps);
    /*
     * Slow links (8 MiB/s, then 4 MiB/s in postcopy) keep most pages on the
     * source for seconds after the switch, so the destination back-end's
     * first touches of rings and buffers find them missing.
     */
    qmp_ok(r->src, "{'execute': 'migrate-set-parameters', 'arguments':"
                   " {'max-bandwidth': 8388608, 'max-postcopy-bandwidth': 4194304}}");
    json_node_unref(gw_qmp_assert_success(r->src, "{'execute': 'migrate', 'arguments':"
                                                  " {'uri': 'unix:%s/mig.sock'}}", r->dir));
    json_node_unref(gw_qmp_wait_event_data(r->src, "MIGRATION", "status", "active",
                                           gw_timeout(60000)));
    qmp_ok(r->src, "{'execute': 'migrate-start-postcopy'}");
    json_node_unref(gw_qmp_wait_event_data(r->src, "MIGRATION", "status", "postcopy-active",
                                           gw_timeout(60000)));
    json_node_unref(gw_qmp_wait_event_data(r->src, "MIGRATION", "status", "completed",
                                           gw_timeout(300000)));
    json_node_unref(gw_qmp_wait_event_data(r->dst, "MIGRATION", "status", "completed",
                                           gw_timeout(60000)));
    g_autofree char *dst_out = check_stream_continues(r);
    gint64 faults = backend_final(dst_out, "faults");
    const char *fl = strstr(dst_out, ": final ");
    g_test_message("destination back-end: %" G_GINT64_FORMAT " postcopy faults; %s", faults,
                   strstr(fl, " faults="));
    g_assert_cmpint(faults, >=, 1);
    g_autofree char *err = NULL;
    g_assert_true(g_file_get_contents(r->dst_be->err, &err, NULL, NULL));
    g_assert_nonnull(strstr(err, "postcopy: 1 regions registered with our userfaultfd"));
    g_assert_nonnull(strstr(err, "postcopy ended"));
    rig_free(r);
}

/* A destination back-end without PAGEFAULT: QEMU refuses the postcopy-ram capability. */
static void test_migrate_refused(void)
{
    g_autofree char *qemu = qemu_binary();
    if (!qemu) {
        return;
    }
    g_autofree char *dir = g_dir_make_tmp("vub-mig-XXXXXX", NULL);
    Guest *g = guest_build(dir);
    if (!g) {
        g_rmdir(dir);
        return;
    }
    gw_set_binary(qemu, GW_FLAVOUR_QEMU);
    Backend *b = backend_start(dir, "backend", "");
    g_autofree char *mig = g_strdup_printf("-incoming unix:%s/mig.sock", dir);
    g_autofree char *args = qemu_args(g, b, "", "--count 0", false, mig);
    GwVMOpts o = { .name = "vubdst", .args = args, .start_timeout_ms = 30000 };
    GwVM *vm = gw_vm_start(&o);
    gw_qmp_expect_error(vm, "GenericError", "ostcopy",
                        "{'execute': 'migrate-set-capabilities', 'arguments': {'capabilities':"
                        " [{'capability': 'postcopy-ram', 'state': true}]}}");
    g_autofree char *qerr = gw_vm_stderr(vm);
    g_test_message("QEMU: %s", qerr);
    g_assert_nonnull(strstr(qerr, "vhost-user backend not capable of postcopy"));
    gw_vm_free(vm);
    vu_stop_pid(b->pid, 5000);
    backend_free(b);
    g_autofree char *sock = g_build_filename(dir, "mig.sock", NULL);
    g_unlink(sock);
    guest_free(g);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!g_getenv("GW_VHOST_USER_NET") || !g_getenv("GW_VU_LINUX_GUEST")) {
        g_printerr("GW_VHOST_USER_NET and GW_VU_LINUX_GUEST must be set (meson sets them)\n");
        return 1;
    }
    g_test_add_data_func("/vhost-user/qemu/linux/backend-server", GINT_TO_POINTER(0), test_linux);
    g_test_add_data_func("/vhost-user/qemu/linux/backend-client", GINT_TO_POINTER(1), test_linux);
    g_test_add_func("/vhost-user/qemu/migrate/precopy", test_migrate_precopy);
    g_test_add_func("/vhost-user/qemu/migrate/precopy-dirty-log", test_migrate_dirty_log);
    g_test_add_func("/vhost-user/qemu/migrate/postcopy", test_migrate_postcopy);
    g_test_add_func("/vhost-user/qemu/migrate/no-pagefault", test_migrate_refused);
    return g_test_run();
}
