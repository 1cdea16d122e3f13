/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Live migration of gwos, the SMP test guest OS (issue 5): -smp 2, every
 * workload on both vCPUs, precopy and postcopy (switch after the first
 * pass). After the move the guest must go on as if nothing happened, and
 * the test reports how long it did not run, seen from inside (stall meter)
 * and from outside (the serial marker, 1 kHz unless GW_MARKER_HZ says
 * otherwise, read with host timestamps).
 */
#include "qemu/osdep.h"
#include "libgw.h"
#include "gwos-results.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#define RAM_MIB  256
#define HZ       250
#define PIT_HZ   100

/* ---------------------------------------------------------------------- */
/* Serial through a socket, every line stamped with CLOCK_MONOTONIC */

typedef struct SerLine {
    /*
     * Host monotonic clock when its last byte was read. Not the wall
     * clock: it was seen stepping 9.6 s forward in the middle of a test,
     * and only differences of these stamps are used.
     */
    gint64 t_us;
    char *text;             /* without the newline */
} SerLine;

typedef struct SerTap {
    char *path;
    GThread *thread;
    GMutex lock;
    GPtrArray *lines;       /* SerLine */
    GString *partial;       /* bytes after the last newline */
    gint stop;
    gint connected;
    gint eof;
} SerTap;

static void ser_line_free(gpointer p)
{
    SerLine *l = p;

    g_free(l->text);
    g_free(l);
}

/*
 * A thread of its own reads the socket, so a line's timestamp is taken
 * within a few microseconds of the VMM writing it, whatever the test is
 * busy with (QMP waits, dumps).
 */
static gpointer ser_tap_thread(gpointer opaque)
{
    SerTap *tap = opaque;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    gint64 end = g_get_monotonic_time() + (gint64)gw_timeout(20000) * 1000;
    int fd = -1;

    g_strlcpy(sa.sun_path, tap->path, sizeof(sa.sun_path));
    while (!g_atomic_int_get(&tap->stop)) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(fd, >=, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            break;
        }
        close(fd);
        fd = -1;
        if (g_get_monotonic_time() > end) {
            break;
        }
        g_usleep(5000);
    }
    if (fd < 0) {
        g_atomic_int_set(&tap->eof, 1);
        return NULL;
    }
    g_atomic_int_set(&tap->connected, 1);
    while (!g_atomic_int_get(&tap->stop)) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char buf[65536];

        if (poll(&pfd, 1, 50) <= 0) {
            continue;
        }
        ssize_t n = read(fd, buf, sizeof(buf));
        gint64 now = g_get_monotonic_time();
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        g_mutex_lock(&tap->lock);
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                g_string_append_c(tap->partial, buf[i]);
                continue;
            }
            SerLine *l = g_new0(SerLine, 1);
            l->t_us = now;
            l->text = g_strdup(tap->partial->str);
            g_ptr_array_add(tap->lines, l);
            g_string_truncate(tap->partial, 0);
        }
        g_mutex_unlock(&tap->lock);
    }
    close(fd);
    g_atomic_int_set(&tap->eof, 1);
    return NULL;
}

/* Connect to the VM's serial socket; returns once connected. */
static SerTap *ser_tap_start(GwVM *vm)
{
    SerTap *tap = g_new0(SerTap, 1);
    gint64 end = g_get_monotonic_time() + (gint64)gw_timeout(20000) * 1000;

    tap->path = gw_vm_path(vm, "serial.sock");
    g_mutex_init(&tap->lock);
    tap->lines = g_ptr_array_new_with_free_func(ser_line_free);
    tap->partial = g_string_new("");
    tap->thread = g_thread_new("serial-tap", ser_tap_thread, tap);
    while (!g_atomic_int_get(&tap->connected)) {
        if (g_atomic_int_get(&tap->eof) || g_get_monotonic_time() > end) {
            g_error("%s: cannot connect to the serial socket %s", gw_vm_name(vm),
                    tap->path);
        }
        g_usleep(2000);
    }
    return tap;
}

static void ser_tap_free(SerTap *tap)
{
    if (!tap) {
        return;
    }
    g_atomic_int_set(&tap->stop, 1);
    g_thread_join(tap->thread);
    g_ptr_array_unref(tap->lines);
    g_string_free(tap->partial, TRUE);
    g_mutex_clear(&tap->lock);
    g_free(tap->path);
    g_free(tap);
}

/* A copy of the lines read so far (SerLine), and the unfinished rest. */
static GPtrArray *ser_tap_snapshot(SerTap *tap, char **partial)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(ser_line_free);

    g_mutex_lock(&tap->lock);
    for (guint i = 0; i < tap->lines->len; i++) {
        SerLine *src = g_ptr_array_index(tap->lines, i);
        SerLine *l = g_new0(SerLine, 1);
        l->t_us = src->t_us;
        l->text = g_strdup(src->text);
        g_ptr_array_add(a, l);
    }
    if (partial) {
        *partial = g_strdup(tap->partial->str);
    }
    g_mutex_unlock(&tap->lock);
    return a;
}

static void dump_tail(const char *what, GPtrArray *lines)
{
    guint shown = 0;

    g_test_message("%s serial (last non-marker lines):", what);
    for (guint i = lines->len; i-- > 0 && shown < 30;) {
        SerLine *l = g_ptr_array_index(lines, i);
        if (l->text[0] != '@') {
            g_test_message("  %s", l->text);
            shown++;
        }
    }
}

/* Wait until a line containing @needle has been read. */
static void ser_tap_wait(SerTap *tap, GwVM *vm, const char *needle, int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)gw_timeout(timeout_ms) * 1000;

    for (;;) {
        bool found = false;
        g_mutex_lock(&tap->lock);
        for (guint i = 0; i < tap->lines->len && !found; i++) {
            SerLine *l = g_ptr_array_index(tap->lines, i);
            found = strstr(l->text, needle) != NULL;
        }
        g_mutex_unlock(&tap->lock);
        if (found) {
            return;
        }
        if (g_get_monotonic_time() > end || !gw_vm_running(vm)) {
            g_autoptr(GPtrArray) lines = ser_tap_snapshot(tap, NULL);
            g_autofree char *err = gw_vm_stderr(vm);
            dump_tail(gw_vm_name(vm), lines);
            g_test_message("%s stderr: %s", gw_vm_name(vm), err);
            g_error("%s: '%s' did not appear on the serial within %d ms%s",
                    gw_vm_name(vm), needle, timeout_ms,
                    gw_vm_running(vm) ? "" : " (the VM exited)");
        }
        g_usleep(10000);
    }
}

/* ---------------------------------------------------------------------- */
/* Parsing */

typedef struct Hb {
    gint64 host_us;
    double t;
    guint64 iters, gap_us, maxgap_us, ticks, pit, back, corrupt, pass;
} Hb;

/* Heartbeats of vCPU @cpu among @lines, in order. */
static GArray *parse_hb(GPtrArray *lines, int cpu)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(Hb));
    g_autofree char *prefix = g_strdup_printf("hb cpu=%d ", cpu);

    for (guint i = 0; i < lines->len; i++) {
        SerLine *l = g_ptr_array_index(lines, i);
        guint64 sec, ms;
        Hb h = { .host_us = l->t_us };

        if (!g_str_has_prefix(l->text, prefix)) {
            continue;
        }
        if (sscanf(l->text + strlen(prefix),
                   "t=%" SCNu64 ".%" SCNu64 " iters=%" SCNu64 " gap_us=%" SCNu64
                   " maxgap_us=%" SCNu64 " ticks=%" SCNu64 " pit=%" SCNu64
                   " back=%" SCNu64 " corrupt=%" SCNu64 " pass=%" SCNu64,
                   &sec, &ms, &h.iters, &h.gap_us, &h.maxgap_us, &h.ticks, &h.pit,
                   &h.back, &h.corrupt, &h.pass) != 10) {
            /* only when the guest's ring overflowed; serial_dropped says so */
            g_test_message("malformed heartbeat: %s", l->text);
            continue;
        }
        h.t = (double)sec + (double)ms / 1000.0;
        g_array_append_val(a, h);
    }
    return a;
}

static guint hb_count_min(GPtrArray *lines, int ncpus)
{
    guint min = G_MAXUINT;

    for (int c = 0; c < ncpus; c++) {
        g_autoptr(GArray) a = parse_hb(lines, c);
        min = MIN(min, a->len);
    }
    return min;
}

/* Wait until every vCPU has printed @n heartbeats on @tap. */
static void wait_heartbeats(SerTap *tap, GwVM *vm, guint n, int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)gw_timeout(timeout_ms) * 1000;

    for (;;) {
        g_autoptr(GPtrArray) lines = ser_tap_snapshot(tap, NULL);
        if (hb_count_min(lines, 2) >= n) {
            return;
        }
        if (g_get_monotonic_time() > end || !gw_vm_running(vm)) {
            dump_tail(gw_vm_name(vm), lines);
            g_error("%s: fewer than %u heartbeats per vCPU within %d ms%s",
                    gw_vm_name(vm), n, timeout_ms,
                    gw_vm_running(vm) ? "" : " (the VM exited)");
        }
        g_usleep(50000);
    }
}

static void check_clean(GPtrArray *lines, const char *side)
{
    static const char *const bad[] = {
        "CORRUPT", "gwos: exception", "gwos: panic", "gwos: error", NULL
    };

    for (guint i = 0; i < lines->len; i++) {
        SerLine *l = g_ptr_array_index(lines, i);
        for (int b = 0; bad[b]; b++) {
            if (strstr(l->text, bad[b])) {
                g_test_message("%s serial: %s", side, l->text);
                g_test_fail();
            }
        }
    }
}

/* Is @text a marker line "@xxxxxxxx"? Sets @seq. */
static bool is_marker(const char *text, guint64 *seq)
{
    if (text[0] != '@' || strlen(text) != 9) {
        return false;
    }
    for (int i = 1; i < 9; i++) {
        if (!g_ascii_isxdigit(text[i])) {
            return false;
        }
    }
    *seq = g_ascii_strtoull(text + 1, NULL, 16);
    return true;
}

/* ---------------------------------------------------------------------- */
/* The test */

typedef struct Case {
    const char *work;
    const char *append;     /* workload words; the rest is added below */
    bool postcopy;
    bool slow;
    /*
     * Postcopy: switch right after migrate instead of after the first
     * pass. For idle: its dirty set after one pass is a few pages, which
     * fits any downtime-limit, so a switch after the pass would come too
     * late.
     */
    bool switch_at_once;
} Case;

/*
 * Working sets are modest so precopy converges on a busy 2-CPU host: ws is
 * rate-limited (64 MiB/s over 128 MiB); tick and rand write flat out over
 * 48 MiB, read reads 96 MiB and writes one page in 16 (a few tens of ms of
 * stop-and-copy at the worst).
 */
static const Case cases[] = {
    { "tick", "work=tick mem=48M", false, true },
    { "ws", "work=ws mem=128M rate=64", false, true },
    { "rand", "work=rand mem=48M", false, false },
    { "read", "work=read mem=96M", false, true },
    { "idle", "work=idle", false, true },
    { "tick", "work=tick mem=48M", true, true },
    { "ws", "work=ws mem=128M rate=64", true, true },
    { "rand", "work=rand mem=48M", true, false },
    { "read", "work=read mem=96M", true, true },
    { "idle", "work=idle", true, true, true },
};

static bool event_pass_ge2(JsonNode *ev, gpointer opaque)
{
    JsonObject *d = gw_event_data(ev);

    return d && json_object_get_int_member(d, "pass") >= 2;
}

static void set_caps(GwVM *vm, bool postcopy)
{
    JsonNode *r = gw_qmp_assert_success(vm,
        "{'execute': 'migrate-set-capabilities', 'arguments': {'capabilities': ["
        "{'capability': 'events', 'state': true}%s]}}",
        postcopy ? ", {'capability': 'postcopy-ram', 'state': true},"
                   " {'capability': 'postcopy-blocktime', 'state': true}" : "");
    json_node_unref(r);
}

static double obj_num(JsonObject *o, const char *member)
{
    if (!o || !json_object_has_member(o, member)) {
        return -1;
    }
    return json_node_get_double(json_object_get_member(o, member));
}

static void test_migrate(gconstpointer opaque)
{
    const Case *c = opaque;
    const char *guest;
    bool qemu = gw_flavour() == GW_FLAVOUR_QEMU;

    if (!gw_require_kvm() || !(guest = gw_require_guest("GW_OS_GUEST"))) {
        return;
    }
    if (c->postcopy && !gw_require_uffd()) {
        return;
    }
    g_autofree char *append = g_strdup_printf("%s hz=%d pit=%d marker=%d",
                                              c->append, HZ, PIT_HZ, gw_marker_hz());
    GwVMOpts so = { .name = "src" }, dopts = { .name = "dst" };
    g_autofree char *sargs = g_strdup_printf(
        "-S -smp 2 -m %dM -kernel '%s' -append '%s' "
        "-serial unix:@DIR@/serial.sock,server=on,wait=off", RAM_MIB, guest, append);
    /*
     * godwit's destination takes everything from the stream; QEMU's needs
     * the same -kernel for its option ROM to match.
     */
    g_autofree char *kern = qemu ? g_strdup_printf("-kernel '%s' -append '%s' ",
                                                   guest, append) : g_strdup("");
    g_autofree char *dargs = g_strdup_printf(
        "-smp 2 -m %dM %s-serial unix:@DIR@/serial.sock,server=on,wait=off "
        "-incoming unix:@DIR@/mig.sock", RAM_MIB, kern);
    so.args = sargs;
    dopts.args = dargs;

    /* Source: connect to its serial before it runs, then let it boot. */
    GwVM *src = gw_vm_start(&so);
    SerTap *stap = ser_tap_start(src);
    json_node_unref(gw_qmp_assert_success(src, "{'execute': 'cont'}"));
    ser_tap_wait(stap, src, "gwos: running", 60000);
    if (strcmp(c->work, "idle")) {
        /* past the first sweep (idle has none) */
        ser_tap_wait(stap, src, "gwos: cpu 0 working", 60000);
        ser_tap_wait(stap, src, "gwos: cpu 1 working", 60000);
    }
    /* the first guest seconds have irregular timers (boot, calibration) */
    wait_heartbeats(stap, src, 3, 30000);

    GwVM *dst = gw_vm_start(&dopts);
    SerTap *dtap = ser_tap_start(dst);
    g_autofree char *uri = g_strdup_printf("unix:%s/mig.sock", gw_vm_dir(dst));

    set_caps(src, c->postcopy);
    set_caps(dst, c->postcopy);
    /*
     * No bandwidth cap (QEMU 7.2 defaults to 128 MiB/s; 1 TiB/s is "none"
     * on every QEMU). For postcopy, downtime-limit 1 ms keeps precopy from
     * completing at the end of the first pass, before the switch (not 0:
     * QEMU 7.2 then never syncs the dirty bitmap and completes after the
     * first pass).
     */
    /*
     * godwit decides at the end of each pass, so a workload that dirties
     * little could finish in precopy before a switch requested after the
     * first pass arrives. Its postcopy cases therefore slow the precopy
     * phase down (8 MiB/s; the phase after the switch is unlimited) and
     * switch while the first pass is under way.
     */
    bool godwit_mid_pass = c->postcopy && !qemu && !c->switch_at_once;
    json_node_unref(gw_qmp_assert_success(src,
        "{'execute': 'migrate-set-parameters', 'arguments': "
        "{'max-bandwidth': %" PRId64 ", 'downtime-limit': %d}}",
        qemu ? ((gint64)1 << 40) : godwit_mid_pass ? (gint64)8 << 20 : 0,
        c->postcopy ? 1 : 300));
    gw_qmp_clear_events(src);
    gw_qmp_clear_events(dst);

    json_node_unref(gw_qmp_assert_success(src,
        "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", uri));
    if (c->postcopy) {
        if (godwit_mid_pass) {
            /* A few MiB into the first pass (each poll is a QMP round trip). */
            for (int i = 0; i < 600; i++) {
                JsonNode *r = gw_qmp_assert_success(src, "{'execute': 'query-migrate'}");
                JsonObject *o = json_node_get_object(r);
                gint64 sent = 0;
                if (json_object_has_member(o, "ram")) {
                    sent = json_object_get_int_member(
                        json_object_get_object_member(o, "ram"), "transferred");
                }
                json_node_unref(r);
                if (sent >= (4 << 20)) {
                    break;
                }
                g_usleep(20 * 1000);
            }
        } else if (!c->switch_at_once) {
            json_node_unref(gw_qmp_wait_event_match(src, "MIGRATION_PASS",
                                                    event_pass_ge2, NULL,
                                                    60000));
        }
        json_node_unref(gw_qmp_assert_success(src,
            "{'execute': 'migrate-start-postcopy'}"));
        json_node_unref(gw_qmp_wait_event_data(src, "MIGRATION", "status",
                                               "postcopy-active", 30000));
    }
    JsonNode *stop = gw_qmp_wait_event(src, "STOP", 120000);
    JsonNode *resume = gw_qmp_wait_event(dst, "RESUME", 60000);
    json_node_unref(gw_qmp_wait_event_data(src, "MIGRATION", "status", "completed",
                                           120000));
    json_node_unref(gw_qmp_wait_event_data(dst, "MIGRATION", "status", "completed",
                                           60000));
    double stop_resume_ms = (double)(gw_event_timestamp_us(resume) -
                                     gw_event_timestamp_us(stop)) / 1000.0;
    json_node_unref(stop);
    json_node_unref(resume);
    JsonNode *sinfo = gw_qmp_assert_success(src, "{'execute': 'query-migrate'}");
    JsonNode *dinfo = gw_qmp_assert_success(dst, "{'execute': 'query-migrate'}");
    JsonObject *so_info = json_node_get_object(sinfo);
    JsonObject *do_info = json_node_get_object(dinfo);
    double total_ms = obj_num(so_info, "total-time");
    double downtime_ms = obj_num(so_info, "downtime");
    double blocktime_ms = obj_num(do_info, "postcopy-blocktime");

    /* Four heartbeats per vCPU on the destination: three whole intervals. */
    wait_heartbeats(dtap, dst, 4, 30000);
    g_autoptr(GBytes) res = gw_memsave(dst, GWOS_RESULTS_GPA, GWOS_RESULTS_SIZE);
    g_autofree char *spartial = NULL;
    g_autoptr(GPtrArray) slines = ser_tap_snapshot(stap, &spartial);
    g_autoptr(GPtrArray) dlines = ser_tap_snapshot(dtap, NULL);

    /* A line the source had begun is finished by the destination. */
    if (spartial[0] && dlines->len) {
        SerLine *first = g_ptr_array_index(dlines, 0);
        char *joined = g_strconcat(spartial, first->text, NULL);
        g_free(first->text);
        first->text = joined;
    }

    check_clean(slines, "source");
    check_clean(dlines, "destination");

    /* Markers: one sequence across both hosts, and the gap seen from outside. */
    guint64 seq, last_src_seq = 0, first_dst_seq = 0, prev = 0;
    gint64 last_src_us = 0, first_dst_us = 0;
    guint nsrc = 0, ndst = 0, holes = 0;
    const GwosResults *r = g_bytes_get_data(res, NULL);
    for (guint i = 0; i < slines->len; i++) {
        SerLine *l = g_ptr_array_index(slines, i);
        if (is_marker(l->text, &seq)) {
            if (nsrc && seq != prev + 1) {
                g_test_message("source marker @%08" PRIx64 " after @%08" PRIx64,
                               seq, prev);
                holes++;
            }
            prev = last_src_seq = seq;
            last_src_us = l->t_us;
            nsrc++;
        }
    }
    for (guint i = 0; i < dlines->len; i++) {
        SerLine *l = g_ptr_array_index(dlines, i);
        if (is_marker(l->text, &seq)) {
            if (!ndst) {
                first_dst_seq = seq;
                first_dst_us = l->t_us;
            } else if (seq != prev + 1) {
                g_test_message("destination marker @%08" PRIx64 " after @%08" PRIx64,
                               seq, prev);
                holes++;
            }
            prev = seq;
            ndst++;
        }
    }
    g_assert_cmpfloat(nsrc, >, gw_marker_hz() / 10.0 / gw_slow_factor());
    g_assert_cmpfloat(ndst, >, gw_marker_hz() / 10.0 / gw_slow_factor());
    if (first_dst_seq != last_src_seq + 1) {
        holes++;
    }
    /*
     * The sequence has holes only where the guest's serial ring overflowed
     * (it drops rather than waits; QEMU's UART is slow enough for that on a
     * busy host), which the results page counts. QEMU 7.2 itself was
     * seen losing a few lines on a loaded host with nothing dropped by
     * the guest; that is noted, not failed, in QEMU mode.
     */
    if (holes) {
        g_test_message("%u holes in the marker sequence, %" PRIu64 " bytes dropped "
                       "by the guest", holes, r->serial_dropped);
        if (!qemu) {
            g_assert_cmpuint(r->serial_dropped, >, 0);
        }
    }
    double marker_gap_ms = (double)(first_dst_us - last_src_us) / 1000.0;

    /* Per vCPU: heartbeats go on, the clock is monotonic, timers at rate. */
    double load[1] = { 0 };
    double lapic_min = 0.4 / gw_slow_factor();
    if (getloadavg(load, 1) == 1 && load[0] > (double)g_get_num_processors()) {
        lapic_min = 0.2 / gw_slow_factor();
        g_test_message("host load %.1f on %u CPUs: LAPIC lower bound %.0f %% of %d Hz",
                       load[0], g_get_num_processors(), lapic_min * 100, HZ);
    }
    GString *gaps = g_string_new("");
    for (int cpu = 0; cpu < 2; cpu++) {
        g_autoptr(GArray) sh = parse_hb(slines, cpu);
        g_autoptr(GArray) dh = parse_hb(dlines, cpu);
        g_assert_cmpuint(sh->len, >=, 2);
        g_assert_cmpuint(dh->len, >=, 4);
        Hb *ls = &g_array_index(sh, Hb, sh->len - 1);
        Hb *f = &g_array_index(dh, Hb, 0);
        Hb *l = &g_array_index(dh, Hb, dh->len - 1);

        for (guint i = 0; i < sh->len; i++) {
            g_assert_cmpuint(g_array_index(sh, Hb, i).back, ==, 0);
        }
        /*
         * Across the move and after it: about a guest second apart, never
         * back. Heartbeats aim at whole guest seconds, so one printed late
         * under host load is followed by a shorter step.
         */
        for (guint i = 0; i < dh->len; i++) {
            Hb *h = &g_array_index(dh, Hb, i);
            Hb *p = i ? &g_array_index(dh, Hb, i - 1) : ls;
            double step = h->t - p->t;
            /*
             * Each heartbeat belongs to its own guest second: one printed
             * late (t=9.966 for second 9, seen at host load 6.8) may be
             * followed closely by the next (t=10.000), never by one of the
             * same second. A vCPU that did not run for 2.5 s fails, or 4x
             * that in the test VM, where one stalled for 2.56 s outside
             * the move.
             */
            if ((gint64)h->t <= (gint64)p->t || step >= 2.5 * gw_slow_factor()) {
                g_test_message("cpu %d: heartbeat t=%.3f after t=%.3f", cpu, h->t, p->t);
                g_test_fail();
            }
            g_assert_cmpuint(h->back, ==, 0);
            g_assert_cmpuint(h->corrupt, ==, 0);
            g_assert_cmpuint(h->iters, >, p->iters);
        }
        /*
         * Timer rates: the LAPIC on the destination (first to last
         * heartbeat); the PIT over the whole run (first source heartbeat to
         * the last destination one), so ticks repeated by the move show.
         * KVM drops periodic LAPIC ticks while a vCPU thread waits for a
         * host CPU, so on an overloaded host only a lower LAPIC bound
         * holds. The PIT stalls for up to ~2 s now and then on these hosts
         * (under QEMU too) and then reinjects what it owes, so over a
         * window of a few seconds only "more than half" holds below; above,
         * a catch-up of the stopped time would show.
         */
        double dt = l->t - f->t;
        double lapic = (double)(l->ticks - f->ticks) / dt;
        Hb *fs = &g_array_index(sh, Hb, 0);
        double pit = (double)(l->pit - fs->pit) / (l->t - fs->t);
        g_assert_cmpfloat(dt, >=, 2.5);
        if (lapic <= HZ * lapic_min || lapic >= HZ * 1.05 ||
            pit <= PIT_HZ * 0.5 || pit >= PIT_HZ * 1.15 || l->pit == ls->pit) {
            g_test_message("cpu %d: LAPIC %.1f Hz on the destination (of %d, at least "
                           "%.0f %%), PIT %.1f Hz over the run (of %d)", cpu, lapic,
                           HZ, lapic_min * 100, pit, PIT_HZ);
            g_test_fail();
        }
        /*
         * The documented clock: kvmclock is frozen while the VM is stopped,
         * so over the move the guest's clock falls behind the host's by
         * about the stopped time, and never runs ahead of it. Host stamps
         * of serial lines jitter by host scheduling, hence the slack; in
         * the test VM a line takes hundreds of ms through the UART (seen:
         * -150.7 ms), so the slack grows with gw_slow_factor().
         * A line printed late moves only its own lag, while a clock that
         * lost or gained time shows in every line after the move, so the
         * check fails only when each of the first three destination
         * heartbeats is out of bounds on the same side. (In the test VM
         * cpu 1's first one was stamped 2.19 s of host time after the
         * source's last, one guest second on: lag 1192 ms; the next two
         * gave 63 and -29 ms.)
         */
        double lag_min_ms = G_MAXDOUBLE, lag_max_ms = -G_MAXDOUBLE;
        for (guint i = 0; i < 3; i++) {
            Hb *h = &g_array_index(dh, Hb, i);
            double host_s = (double)(h->host_us - ls->host_us) / 1e6;
            double lag = (host_s - (h->t - ls->t)) * 1000.0;
            lag_min_ms = MIN(lag_min_ms, lag);
            lag_max_ms = MAX(lag_max_ms, lag);
        }
        double slack_ms = 150.0 * gw_slow_factor();
        if (lag_max_ms < -slack_ms || lag_min_ms > marker_gap_ms + 100.0 + slack_ms) {
            g_test_message("cpu %d: guest clock %.1f to %.1f ms behind the host over the "
                           "move (marker gap %.1f ms)", cpu, lag_min_ms, lag_max_ms,
                           marker_gap_ms);
            g_test_fail();
        }
        /* The guest's own view: largest gap in the interval holding the move. */
        guint64 move_gap_us = MAX(f->gap_us, g_array_index(dh, Hb, 1).gap_us);
        const GwosCpuResults *cr =
            &((const GwosResults *)g_bytes_get_data(res, NULL))->cpu[cpu];
        g_string_append_printf(gaps, "%scpu%d %.1f ms (ever %.1f ms, clock lag %.0f ms, "
                               "LAPIC %.0f Hz, PIT %.0f Hz)", cpu ? "; " : "", cpu,
                               (double)move_gap_us / 1000.0,
                               (double)cr->maxgap_ns / 1e6, lag_min_ms, lapic, pit);
        g_assert_cmpuint(move_gap_us, <, 5000000);
        if (strcmp(c->work, "idle")) {
            g_assert_cmpuint(cr->online, ==, 1);   /* workload running */
        }
        g_assert_cmpuint(cr->corrupt, ==, 0);
        g_assert_cmpuint(cr->backwards, ==, 0);
    }
    if (g_test_failed()) {
        for (int cpu = 0; cpu < 2; cpu++) {
            g_autoptr(GArray) sh = parse_hb(slines, cpu);
            g_autoptr(GArray) dh = parse_hb(dlines, cpu);
            for (guint i = 0; i < sh->len + dh->len; i++) {
                Hb *h = i < sh->len ? &g_array_index(sh, Hb, i)
                                    : &g_array_index(dh, Hb, i - sh->len);
                g_test_message("%s hb cpu=%d host=%.3f t=%.3f iters=%" PRIu64
                               " gap_us=%" PRIu64 " ticks=%" PRIu64 " pit=%" PRIu64,
                               i < sh->len ? "src" : "dst", cpu,
                               (double)(h->host_us % 100000000) / 1e6, h->t, h->iters,
                               h->gap_us, h->ticks, h->pit);
            }
        }
    }
    g_assert_cmphex(r->magic, ==, GWOS_RESULTS_MAGIC);
    g_assert_cmpuint(r->online, ==, 2);
    g_assert_cmpuint(r->state, ==, GWOS_STATE_RUNNING);
    g_assert_cmpuint(r->corrupt_total, ==, 0);

    /*
     * The markers stop before the source's STOP and start after the
     * destination's RESUME, so the outside gap cannot be much shorter than
     * the event gap (slack for the two readers' timing).
     */
    g_autofree char *blk = blocktime_ms >= 0 ?
        g_strdup_printf(", blocktime %.0f ms", blocktime_ms) : g_strdup("");
    g_test_message("%s %s/%s: total %.0f ms, downtime %.0f ms, STOP->RESUME %.1f ms, "
                   "marker gap %.1f ms (@%08" PRIx64 " -> @%08" PRIx64 ", %+.1f ms "
                   "beyond STOP->RESUME)%s; "
                   "guest-measured gap over the move: %s",
                   gw_flavour_name(), c->postcopy ? "postcopy" : "precopy", c->work,
                   total_ms, downtime_ms, stop_resume_ms, marker_gap_ms,
                   last_src_seq, first_dst_seq, marker_gap_ms - stop_resume_ms,
                   blk, gaps->str);
    g_assert_cmpfloat(marker_gap_ms, >, stop_resume_ms - 20.0);
    g_assert_cmpfloat(marker_gap_ms, <, 10000.0);

    g_string_free(gaps, TRUE);
    json_node_unref(sinfo);
    json_node_unref(dinfo);
    ser_tap_free(stap);
    ser_tap_free(dtap);
    gw_vm_free(dst);
    gw_vm_free(src);
}

int main(int argc, char **argv)
{
    const char *suite = g_getenv("GW_MIG_SUITE");

    g_test_init(&argc, &argv, NULL);
    /*
     * GW_MIG_SUITE=quick: only the short cases (the sanitizer run),
     * "slow": only the others; unset: all (as the migration tests do).
     */
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const Case *c = &cases[i];
        if (suite && ((!strcmp(suite, "quick") && c->slow) ||
                      (!strcmp(suite, "slow") && !c->slow))) {
            continue;
        }
        g_autofree char *path = g_strdup_printf("/migration/%s/guest-os/%s",
                                                c->postcopy ? "postcopy" : "precopy",
                                                c->work);
        g_test_add_data_func(path, c, test_migrate);
    }
    return g_test_run();
}
