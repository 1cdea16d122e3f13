/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Migrations at the edges the other programs do not reach: huge-page
 * postcopy with a guest that writes all of its RAM while it runs on the
 * destination, destination RAM that does not start zeroed (a reused
 * memory-backend-file), bandwidth limits at the top of their range, and a
 * full UART receive FIFO. Each is a real pair of godwit processes; memory
 * is compared byte for byte wherever the destination is held with -S.
 */
#include "qemu/osdep.h"
#include "qemu/byteorder.h"

#include <fcntl.h>

#include <glib/gstdio.h>

#include "migration-framework.h"
#include "mig-stream.h"

/* ---------------------------------------------------------------------- */
/* Huge pages */

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static bool write_sysctl(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        return false;
    }
    n = write(fd, value, strlen(value));
    close(fd);
    return n == (ssize_t)strlen(value);
}

static guint64 hugepages_free(void)
{
    g_autofree char *mi = NULL;
    const char *p;

    g_assert_true(g_file_get_contents("/proc/meminfo", &mi, NULL, NULL));
    p = strstr(mi, "HugePages_Free:");
    g_assert_nonnull(p);
    return g_ascii_strtoull(p + strlen("HugePages_Free:"), NULL, 10);
}

/* Reserve @n more 2 MiB pages: the old setting (restore it), or NULL after a loud skip. */
static char *reserve_hugepages(guint64 n)
{
    g_autofree char *old = NULL;
    g_autofree char *want = NULL;

    if (!g_file_get_contents(NR_HUGEPAGES, &old, NULL, NULL)) {
        g_test_skip("no " NR_HUGEPAGES);
        g_printerr("*** SKIP: no " NR_HUGEPAGES " ***\n");
        return NULL;
    }
    g_strstrip(old);
    want = g_strdup_printf("%" PRIu64 "\n", g_ascii_strtoull(old, NULL, 10) + n);
    if (!write_sysctl(NR_HUGEPAGES, want)) {
        g_test_skip("cannot write " NR_HUGEPAGES " (not root?)");
        g_printerr("*** SKIP: cannot reserve huge pages: writing " NR_HUGEPAGES
                   " failed ***\n");
        return NULL;
    }
    if (hugepages_free() < n) {
        write_sysctl(NR_HUGEPAGES, old);
        g_test_skip("not enough huge pages");
        g_printerr("*** SKIP: asked for %" PRIu64 " more 2 MiB pages, only %" PRIu64
                   " free ***\n", n, hugepages_free());
        return NULL;
    }
    return g_steal_pointer(&old);
}

/*
 * The destination runs the guest, which writes its RAM flat out, so it
 * faults on host pages away from the slow sweep while the sweep is in the
 * middle of another: the source must finish each 2 MiB host page before it
 * serves the request for the next (the destination places host pages
 * whole, in order). A near-idle guest never shows it, nor one that only
 * faults where the sweep already is.
 */
static void check_requests_served(MigTest *t)
{
    double req = mig_num(t->src_info, "ram.postcopy-requests");
    double dst_req = mig_num(t->dst_info, "x-postcopy-latency-percentiles.requests");

    g_test_message("postcopy-requests: source %.0f, destination %.0f", req, dst_req);
    /* Every request the destination sent was received and served, none lost. */
    g_assert_cmpfloat(req, ==, dst_req);
    g_assert_cmpfloat(req, >=, 1);
}

static void run_hugetlb_running(const char *tick)
{
    MigTestConfig cfg = {
        .tick_append = tick,
        .transport = MIG_UNIX,
        .backend = MIG_BACKEND_HUGETLB,
        .caps = "postcopy-ram",
        .dst_caps = "postcopy-blocktime",
        /* 128 MiB at 32 MiB/s: about four seconds of sweep under the running guest. */
        .src_params = "'max-postcopy-bandwidth': 33554432",
        .postcopy = MIG_PC_IMMEDIATE,
        .dst_autostart = true,
        .end_hook = check_requests_served,
    };

    g_test_message("tick guest: %s", tick);
    mig_run(&cfg, NULL);
}

static void test_hugetlb_running(void)
{
    g_autofree char *old = NULL;

    if (!mig_require(true)) {
        return;
    }
    /* Two 128 MiB guests, plus slack. */
    old = reserve_hugepages(2 * 64 + 8);
    if (!old) {
        return;
    }
    /* All of its RAM: it faults mostly where the sweep is, right behind it. */
    run_hugetlb_running("rate=0");
    /*
     * The upper half only: right after RUN it needs its code (host page 0)
     * and then pages far ahead of the sweep, which by then is in the middle
     * of another host page. This is the case that lost the guest.
     */
    run_hugetlb_running("rate=0 start=0x4000000");
    g_assert_true(write_sysctl(NR_HUGEPAGES, old));
}

/* ---------------------------------------------------------------------- */
/* Destination RAM that does not start zeroed */

#define REUSED_RAM_MIB 128

/* A 128 MiB file in /dev/shm (tmpfs: postcopy can serve it) full of 0xaa. */
static char *make_used_file(void)
{
    g_autofree char *path = g_strdup("/dev/shm/gw-reused-XXXXXX");
    g_autofree guint8 *junk = g_malloc(1 << 20);
    int fd = g_mkstemp(path);

    g_assert_cmpint(fd, >=, 0);
    memset(junk, 0xaa, 1 << 20);
    for (int i = 0; i < REUSED_RAM_MIB; i++) {
        g_assert_cmpint(write(fd, junk, 1 << 20), ==, 1 << 20);
    }
    close(fd);
    return g_steal_pointer(&path);
}

/*
 * The destination's memory-backend-file already holds data (a file reused
 * from an earlier VM): every page the source sends as zero must read as
 * zero there, byte for byte, in precopy and in postcopy. The source RAM is
 * default (anonymous), three quarters of it never written.
 */
static void run_file_reused(bool postcopy)
{
    MigTestConfig cfg = {
        /* The guest writes 2..32 MiB: the rest goes as zero pages. */
        .tick_append = postcopy ? "rate=0 end=0x2000000" : "rate=128 end=0x2000000",
        .transport = MIG_UNIX,
        .caps = postcopy ? "postcopy-ram" : NULL,
        .src_params = postcopy ? "'max-bandwidth': 268435456" : NULL,
    };
    g_autofree char *file = make_used_file();
    g_autofree char *args = g_strdup_printf(
        "-m %uM -object memory-backend-file,id=mem,size=%uM,mem-path=%s,share=on "
        "-machine memory-backend=mem -S -incoming unix:@DIR@/mig.sock",
        REUSED_RAM_MIB, REUSED_RAM_MIB, file);
    GwVMOpts o = { .name = "dst", .args = args };
    MigTest *t = g_new0(MigTest, 1);

    t->cfg = &cfg;
    t->fds[0] = t->fds[1] = -1;
    t->dst = gw_vm_start(&o);
    t->uri = g_strdup_printf("unix:%s/mig.sock", gw_vm_dir(t->dst));
    t->src = mig_start_source(&cfg, "src");
    mig_configure(t);
    mig_migrate(t);
    if (postcopy) {
        for (;;) {
            g_autoptr(JsonNode) ev = gw_qmp_wait_event(t->src, "MIGRATION_PASS",
                                                       MIG_DEFAULT_TIMEOUT_MS);
            if (json_object_get_int_member(gw_event_data(ev), "pass") >= 2) {
                break;
            }
        }
        json_node_unref(gw_qmp_assert_success(t->src,
            "{'execute': 'migrate-start-postcopy'}"));
    }
    mig_wait_status(t->src, "completed", MIG_DEFAULT_TIMEOUT_MS);
    mig_wait_status(t->dst, "completed", MIG_EVENT_TIMEOUT_MS);
    t->src_info = mig_query(t->src);
    g_test_message("zero pages sent: %.0f, data pages: %.0f",
                   mig_num(t->src_info, "ram.duplicate"), mig_num(t->src_info, "ram.normal"));
    /* The 96 MiB the guest never wrote went as zero pages: the case this is about. */
    g_assert_cmpfloat(mig_num(t->src_info, "ram.duplicate"), >=, 96 * 256);
    mig_check_same_memory(t->src, t->dst, REUSED_RAM_MIB, &t->src_mb);
    mig_finish_dest(t);
    mig_test_free(t);
    g_unlink(file);
}

static void test_precopy_file_reused(void)
{
    if (!mig_require(false)) {
        return;
    }
    run_file_reused(false);
}

static void test_postcopy_file_reused(void)
{
    if (!mig_require(true)) {
        return;
    }
    run_file_reused(true);
}

/* ---------------------------------------------------------------------- */
/* Rate limits at the top of their range */

/*
 * The limits accept up to INT64_MAX bytes/s. At 2^62 a window's budget
 * used to wrap to 0: nothing was ever sent and the migration stayed active
 * without an error. Both limits, at 2^62 and at INT64_MAX, must complete.
 */
static void test_precopy_bandwidth_top(void)
{
    static const char *const params[] = {
        "'max-bandwidth': 4611686018427387904",
        "'max-bandwidth': 9223372036854775807",
    };

    if (!mig_require(false)) {
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(params); i++) {
        MigTestConfig cfg = {
            .tick_append = "rate=128",
            .transport = MIG_UNIX,
            .src_params = params[i],
            .timeout_ms = 30000,
        };
        g_test_message("%s", params[i]);
        mig_run(&cfg, NULL);
    }
}

static void test_postcopy_bandwidth_top(void)
{
    MigTestConfig cfg = {
        .tick_append = "rate=0",
        .transport = MIG_UNIX,
        .caps = "postcopy-ram",
        .src_params = "'max-postcopy-bandwidth': 4611686018427387904",
        .postcopy = MIG_PC_IMMEDIATE,
        .timeout_ms = 30000,
    };

    if (!mig_require(true)) {
        return;
    }
    mig_run(&cfg, NULL);
}

/* ---------------------------------------------------------------------- */
/* The QMP and HMP shape of migration parameters */

/*
 * Through the real monitor (schema checks included): every member QEMU 7.2
 * returns is there with its default, "no TLS" is accepted in both of QEMU's
 * spellings and a credential is refused, HMP shows the new members, and the
 * postcopy-recovery commands that do not exist are not offered.
 */
static void test_parameters_shape(void)
{
    static const char *const qemu72[] = {
        "announce-initial", "announce-max", "announce-rounds", "announce-step",
        "block-incremental", "compress-level", "compress-threads", "compress-wait-thread",
        "cpu-throttle-increment", "cpu-throttle-initial", "cpu-throttle-tailslow",
        "decompress-threads", "downtime-limit", "max-bandwidth", "max-cpu-throttle",
        "max-postcopy-bandwidth", "multifd-channels", "multifd-compression",
        "multifd-zlib-level", "multifd-zstd-level", "throttle-trigger-threshold",
        "tls-authz", "tls-creds", "tls-hostname", "x-checkpoint-delay", "xbzrle-cache-size",
    };
    const char *idle = gw_require_guest("GW_IDLE_GUEST");
    g_autoptr(JsonNode) p = NULL;
    g_autofree char *info = NULL;
    g_autofree char *help = NULL;
    g_autofree char *out = NULL;
    JsonObject *o;
    GwVM *vm;

    if (!idle || !gw_require_kvm()) {
        return;
    }
    vm = gw_vm_startf("-m 32M -kernel '%s'", idle);
    p = gw_qmp_assert_success(vm, "{'execute': 'query-migrate-parameters'}");
    o = json_node_get_object(p);
    for (size_t i = 0; i < G_N_ELEMENTS(qemu72); i++) {
        if (!json_object_has_member(o, qemu72[i])) {
            g_error("query-migrate-parameters lacks '%s'", qemu72[i]);
        }
    }
    /* QEMU's members and godwit's x-postcopy-after-passes, nothing else. */
    g_assert_cmpuint(json_object_get_size(o), ==, G_N_ELEMENTS(qemu72) + 1);
    g_assert_cmpstr(json_object_get_string_member(o, "tls-creds"), ==, "");
    g_assert_cmpstr(json_object_get_string_member(o, "multifd-compression"), ==, "none");
    g_assert_cmpint(json_object_get_int_member(o, "x-checkpoint-delay"), ==, 20000);
    g_assert_false(json_object_get_boolean_member(o, "block-incremental"));

    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'migrate-set-parameters', "
        "'arguments': {'tls-creds': '', 'tls-hostname': null, 'multifd-compression': 'zlib', "
        "'compress-threads': 4}}"));
    gw_qmp_expect_error(vm, "GenericError", "TLS is not supported by godwit",
                        "{'execute': 'migrate-set-parameters', "
                        "'arguments': {'tls-creds': 'tls0'}}");
    gw_qmp_expect_error(vm, "GenericError", "Block migration is not supported by godwit",
                        "{'execute': 'migrate-set-parameters', "
                        "'arguments': {'block-incremental': true}}");
    gw_qmp_expect_error(vm, "GenericError", "multifd-compression",
                        "{'execute': 'migrate-set-parameters', "
                        "'arguments': {'multifd-compression': 'lz4'}}");

    info = gw_hmp(vm, "info migrate_parameters");
    g_test_message("%s", info);
    g_assert_nonnull(strstr(info, "tls-creds: ''\r\n"));
    g_assert_nonnull(strstr(info, "multifd-compression: zlib\r\n"));
    g_assert_nonnull(strstr(info, "compress-threads: 4\r\n"));
    out = gw_hmp(vm, "migrate_set_parameter tls-creds tls0");
    g_assert_nonnull(strstr(out, "TLS is not supported by godwit"));

    /* Postcopy recovery: HMP lists it, and refuses it outside its states as QEMU does. */
    help = gw_hmp(vm, "help");
    g_assert_nonnull(strstr(help, "migrate_recover"));
    g_assert_nonnull(strstr(help, "migrate_pause"));
    g_free(out);
    out = gw_hmp(vm, "migrate_recover tcp:127.0.0.1:4444");
    g_assert_cmpstr(out, ==, "Error: Migrate recover can only be run when postcopy is paused.\r\n");
    g_free(out);
    out = gw_hmp(vm, "migrate_pause");
    g_assert_cmpstr(out, ==, "Error: migrate-pause is currently only supported during "
                    "postcopy-active state\r\n");
    gw_vm_free(vm);
}

/* ---------------------------------------------------------------------- */
/* A full UART receive FIFO */

/* The serial record's FIFO in a stream file: its bytes (g_byte_array_unref). */
static GByteArray *stream_serial_fifo(const char *file)
{
    g_autofree char *data = NULL;
    gsize len;
    const MigRec *r;
    GByteArray *fifo = g_byte_array_new();

    g_assert_true(g_file_get_contents(file, &data, &len, NULL));
    MigStreamFile *f = mig_stream_split(g_bytes_new_take(g_steal_pointer(&data), len));
    r = mig_stream_find(f, MIG_REC_SECTION_FULL, "serial");
    g_assert_nonnull(r);
    /* 04, be32 id, cstr "serial", be32 instance, be32 version, be32 len, payload */
    const guint8 *rec = (const guint8 *)g_bytes_get_data(f->bytes, NULL) + r->off;
    const guint8 *v = rec + 1 + 4 + 7 + 4;
    guint32 version = be32_load(v);
    const guint8 *payload = v + 8;
    /* 12 register bytes, the count (version 1: u8, 2: be16), the FIFO from its head. */
    g_assert_true(version == 1 || version == 2);
    guint count = version == 1 ? payload[12] : be16_load(payload + 12);
    g_byte_array_append(fifo, payload + 12 + version, count);
    mig_stream_file_free(f);
    return fifo;
}

/*
 * 300 bytes arrive on COM1 of a guest that never reads them: the FIFO
 * holds the first 256. They must all survive a migration (to a stream
 * file), a load into another VM, and that VM's own migration: the record
 * used to count them in a byte and kept 255.
 */
static void test_serial_fifo_full(void)
{
    const char *idle = gw_require_guest("GW_IDLE_GUEST");
    g_autofree char *file1 = NULL, *file2 = NULL, *sock = NULL;
    g_autofree char *uri = NULL, *args = NULL;
    guint8 in[300];
    GwVM *src, *dst;

    if (!idle || !mig_require(false)) {
        return;
    }
    src = gw_vm_startf("-m 32M -kernel '%s' -serial unix:@DIR@/ser.sock,server=on,wait=off",
                       idle);
    mig_set_caps(src, "events", true);
    sock = gw_vm_path(src, "ser.sock");
    MigRawSource *ser = mig_raw_connect(sock, 10000);
    for (guint i = 0; i < sizeof(in); i++) {
        in[i] = (guint8)(i * 13 + 1);
    }
    g_assert_true(mig_raw_write(ser, in, sizeof(in)));
    /* Let the main loop take the input in before the VM stops. */
    mig_sleep_events(src, 500);

    file1 = gw_vm_path(src, "one.bin");
    uri = g_strdup_printf("exec:cat > %s", file1);
    json_node_unref(gw_qmp_assert_success(src,
        "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", uri));
    mig_wait_status(src, "completed", MIG_DEFAULT_TIMEOUT_MS);
    g_autoptr(GByteArray) one = stream_serial_fifo(file1);
    g_test_message("FIFO in the first stream: %u bytes", one->len);
    g_assert_cmpmem(one->data, one->len, in, 256);

    /* Into another VM and out again. */
    args = g_strdup_printf("-m 32M -S -incoming 'exec:cat %s'", file1);
    GwVMOpts o = { .name = "dst", .args = args };
    dst = gw_vm_start(&o);
    mig_set_caps(dst, "events", true);
    mig_poll_status(dst, "completed", MIG_DEFAULT_TIMEOUT_MS);
    gw_qmp_clear_events(dst);      /* the incoming side's MIGRATION events */
    file2 = gw_vm_path(dst, "two.bin");
    g_free(uri);
    uri = g_strdup_printf("exec:cat > %s", file2);
    json_node_unref(gw_qmp_assert_success(dst,
        "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", uri));
    mig_wait_status(dst, "completed", MIG_DEFAULT_TIMEOUT_MS);
    g_autoptr(GByteArray) two = stream_serial_fifo(file2);
    g_assert_cmpmem(two->data, two->len, in, 256);
    mig_raw_close(ser);
    gw_vm_free(dst);
    gw_vm_free(src);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    mig_add_test("/migration/postcopy/hugetlb/running", test_hugetlb_running, false);
    mig_add_test("/migration/precopy/file-reused", test_precopy_file_reused, false);
    mig_add_test("/migration/postcopy/file-reused", test_postcopy_file_reused, false);
    mig_add_test("/migration/precopy/bandwidth-top", test_precopy_bandwidth_top, false);
    mig_add_test("/migration/postcopy/bandwidth-top", test_postcopy_bandwidth_top, false);
    mig_add_test("/migration/qmp/parameters", test_parameters_shape, false);
    mig_add_test("/migration/serial/fifo-full", test_serial_fifo_full, false);
    return g_test_run();
}
