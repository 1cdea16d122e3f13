/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Core functional tests that boot a guest: the tick guest runs and keeps
 * its memory invariant, stop/cont really stop and restart it, a big VM
 * does not touch its RAM at start, and the VM exits the ways it should.
 */
#include "qemu/osdep.h"

#include <sys/wait.h>

#include "libgw.h"
#include "tick-invariant.h"

#define TICK_RAM (128ULL << 20)
#define BOOT_TIMEOUT_MS 60000
#define PASS_TIMEOUT_MS 30000

static GwVM *start_tick(const char *tick, const char *append)
{
    return gw_vm_startf("-m 128M -kernel '%s' -append '%s'", tick,
                        append ? append : "");
}

/* Dump all of the 128 MiB guest and run the tick checker on it. */
static void check_tick_memory(GwVM *vm, TickMailbox *mb)
{
    g_autoptr(GBytes) mem = gw_memsave(vm, 0, TICK_RAM);
    g_autoptr(GString) why = g_string_new(NULL);
    TickMemPiece piece = {
        .gpa = 0,
        .host = g_bytes_get_data(mem, NULL),
        .len = g_bytes_get_size(mem),
    };
    TickScan scan;

    if (!tick_check_dump(&piece, 1, mb, &scan, why)) {
        g_test_message("tick invariant broken: %s", why->str);
        g_assert_not_reached();
    }
    g_test_message("tick: %" PRIu64 " passes, %" PRIu64 " pages, position %"
                   PRIu64, mb->passes, scan.pages, scan.position);
}

static void test_tick_boots(void)
{
    const char *tick = gw_require_guest("GW_TICK_GUEST");
    GwVM *vm;
    TickMailbox mb;
    g_autoptr(JsonNode) ev = NULL;
    g_autofree char *status = NULL;
    g_autofree char *log = NULL;
    gsize off;

    if (!tick || !gw_require_kvm()) {
        return;
    }
    vm = start_tick(tick, NULL);
    gw_serial_wait_for(vm, "tick: start=0x200000 end=0x", BOOT_TIMEOUT_MS);
    gw_serial_wait_for(vm, "tick: pass 3\n", PASS_TIMEOUT_MS);
    log = gw_serial_read_all(vm);
    g_assert_null(strstr(log, "tick: error"));
    g_assert_null(strstr(log, "tick: exception"));

    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'stop'}"));
    ev = gw_qmp_wait_event(vm, "STOP", 5000);
    status = gw_vm_query_status(vm);
    g_assert_cmpstr(status, ==, "paused");

    check_tick_memory(vm, &mb);
    g_assert_cmpuint(mb.state, ==, TICK_STATE_TICKING);
    g_assert_cmpuint(mb.passes, >=, 3);
    g_assert_cmpuint(mb.start, ==, 0x200000);
    /* RAM ends at 128 MiB; the guest ticks up to there (or a bit less). */
    g_assert_cmpuint(mb.end, <=, TICK_RAM);
    g_assert_cmpuint(mb.end, >, TICK_RAM - (2ULL << 20));

    /* And it carries on where it stopped. */
    off = gw_serial_offset(vm);
    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'cont'}"));
    gw_serial_wait_for_from(vm, off, "tick: pass ", PASS_TIMEOUT_MS);
    gw_vm_free(vm);
}

static void test_stop_cont(void)
{
    const char *tick = gw_require_guest("GW_TICK_GUEST");
    GwVM *vm;
    g_autoptr(GBytes) a = NULL;
    g_autoptr(GBytes) b = NULL;
    g_autoptr(GBytes) c = NULL;
    JsonNode *ev;
    char *status;
    gsize off_stop, off_now;

    if (!tick || !gw_require_kvm()) {
        return;
    }
    vm = start_tick(tick, NULL);
    gw_serial_wait_for(vm, "tick: pass 1\n", BOOT_TIMEOUT_MS);

    status = gw_vm_query_status(vm);
    g_assert_cmpstr(status, ==, "running");
    g_free(status);

    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'stop'}"));
    ev = gw_qmp_wait_event(vm, "STOP", 5000);
    g_assert_null(gw_event_data(ev));
    g_assert_cmpint(gw_event_timestamp_us(ev), >, 0);
    json_node_unref(ev);
    status = gw_vm_query_status(vm);
    g_assert_cmpstr(status, ==, "paused");
    g_free(status);
    {
        JsonNode *r = gw_qmp_assert_success(vm, "{'execute': 'query-status'}");
        g_assert_false(json_object_get_boolean_member(json_node_get_object(r),
                                                      "running"));
        json_node_unref(r);
    }

    /*
     * Paused means nothing changes: two dumps with a pause in between (a
     * bounded wait for a RESUME that must not come) are equal, and so is
     * the serial log.
     */
    off_stop = gw_serial_offset(vm);
    a = gw_memsave(vm, 0, TICK_RAM);
    ev = gw_qmp_poll_event(vm, "RESUME", 300);
    g_assert_null(ev);
    b = gw_memsave(vm, 0, TICK_RAM);
    g_assert_true(g_bytes_equal(a, b));
    off_now = gw_serial_offset(vm);
    g_assert_cmpuint(off_now, ==, off_stop);

    /* A second stop is harmless and emits no second RESUME/STOP pair. */
    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'stop'}"));

    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'cont'}"));
    ev = gw_qmp_wait_event(vm, "RESUME", 5000);
    json_node_unref(ev);
    status = gw_vm_query_status(vm);
    g_assert_cmpstr(status, ==, "running");
    g_free(status);

    /* Running again: new passes, and the memory moves on. */
    gw_serial_wait_for_from(vm, off_stop, "tick: pass ", PASS_TIMEOUT_MS);
    c = gw_memsave(vm, 0, TICK_RAM);
    g_assert_false(g_bytes_equal(a, c));
    gw_vm_free(vm);
}

static void test_rss_4g(void)
{
    const char *tick = gw_require_guest("GW_TICK_GUEST");
    GwVM *vm;
    guint64 rss;
    char *status;

    if (!tick || !gw_require_kvm()) {
        return;
    }
    vm = gw_vm_startf("-m 4G -S -kernel '%s'", tick);
    status = gw_vm_query_status(vm);
    g_assert_cmpstr(status, ==, "prelaunch");
    g_free(status);
    rss = gw_vm_rss_kib(vm);
    g_test_message("%s -m 4G -S: VmRSS %" G_GUINT64_FORMAT " KiB",
                   gw_flavour_name(), rss);
    /* 4 GiB of guest RAM must not be touched before the guest runs. */
    g_assert_cmpuint(rss, <, 64 * 1024);
    gw_vm_free(vm);
}

static void test_shutdown_debug_exit(void)
{
    const char *tick = gw_require_guest("GW_TICK_GUEST");
    const char *idle = gw_require_guest("GW_IDLE_GUEST");
    GwVM *vm;
    int st;

    if (!tick || !idle || !gw_require_kvm()) {
        return;
    }
    /*
     * tick: passes=N reached, outb 0 to 0x501 -> exit status (0 << 1) | 1.
     * Started with -S so the exit cannot race the QMP handshake.
     */
    vm = gw_vm_startf("-S -m 128M -kernel '%s' -append passes=2", tick);
    json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'cont'}"));
    g_assert_true(gw_vm_wait_exit(vm, BOOT_TIMEOUT_MS, &st));
    g_assert_true(WIFEXITED(st));
    g_assert_cmpint(WEXITSTATUS(st), ==, 1);
    g_assert_cmpuint(gw_serial_count(vm, "tick: pass "), ==, 2);
    g_assert_cmpuint(gw_serial_count(vm, "tick: done\n"), ==, 1);
    gw_vm_free(vm);

    /* idle: the 32-bit guest takes the same exit, maybe before QMP is up. */
    {
        g_autofree char *args = g_strdup_printf("-m 32M -kernel '%s' "
                                                "-append exit", idle);
        GwVMOpts o = { .name = "idle", .args = args, .no_qmp = true };
        vm = gw_vm_start(&o);
    }
    g_assert_true(gw_vm_wait_exit(vm, BOOT_TIMEOUT_MS, &st));
    g_assert_true(WIFEXITED(st));
    g_assert_cmpint(WEXITSTATUS(st), ==, 1);
    g_assert_cmpuint(gw_serial_count(vm, "idle: exit"), ==, 1);
    gw_vm_free(vm);
}

static void test_shutdown_quit(void)
{
    const char *idle = gw_require_guest("GW_IDLE_GUEST");
    GwVM *vm;
    JsonNode *r, *ev;
    JsonObject *data;
    int st;

    if (!idle || !gw_require_kvm()) {
        return;
    }
    vm = gw_vm_startf("-m 32M -kernel '%s'", idle);
    gw_serial_wait_for(vm, "idle: ready", BOOT_TIMEOUT_MS);
    r = gw_qmp_assert_success(vm, "{'execute': 'quit'}");
    json_node_unref(r);
    ev = gw_qmp_wait_event(vm, "SHUTDOWN", 5000);
    data = gw_event_data(ev);
    g_assert_nonnull(data);
    g_assert_false(json_object_get_boolean_member(data, "guest"));
    g_assert_cmpstr(json_object_get_string_member(data, "reason"), ==,
                    "host-qmp-quit");
    json_node_unref(ev);
    g_assert_true(gw_qmp_conn_wait_closed(gw_vm_qmp(vm), 5000));
    g_assert_true(gw_vm_wait_exit(vm, 10000, &st));
    g_assert_true(WIFEXITED(st));
    g_assert_cmpint(WEXITSTATUS(st), ==, 0);
    gw_vm_free(vm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/core/tick/boots", test_tick_boots);
    g_test_add_func("/core/stop-cont", test_stop_cont);
    g_test_add_func("/core/rss-4g", test_rss_4g);
    g_test_add_func("/core/shutdown/debug-exit", test_shutdown_debug_exit);
    g_test_add_func("/core/shutdown/quit", test_shutdown_quit);
    return g_test_run();
}
