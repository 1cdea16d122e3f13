/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * godwit's main: parse the command line, build the machine, wire chardevs,
 * monitors and QMP, then run the GLib main loop. The main thread holds the
 * BQL except while it sleeps in poll(), so every main-loop callback runs
 * under the BQL.
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "chardev/char.h"
#include "hw/pc.h"
#include "monitor/monitor.h"
#include "monitor/qmp.h"
#include "migration/misc.h"
#include "sysemu/cpus.h"
#include "sysemu/main-loop.h"
#include "sysemu/options.h"
#include "sysemu/runstate.h"
#include <glib-unix.h>
#include <signal.h>

static GMainLoop *main_loop;
static GPollFunc glib_poll;
static int exit_status;
static bool no_reboot, no_shutdown;
static const char *shutdown_reason;
static bool shutdown_guest;

static gint poll_without_bql(GPollFD *fds, guint nfds, gint timeout)
{
    gint r;

    bql_unlock();
    r = glib_poll(fds, nfds, timeout);
    bql_lock();
    return r;
}

void main_loop_schedule(GSourceFunc fn, gpointer data)
{
    g_idle_add_full(G_PRIORITY_HIGH, fn, data, NULL);
}

static void emit_shutdown_event(const char *name, bool guest, const char *reason)
{
    JsonObject *data = json_object_new();
    json_object_set_boolean_member(data, "guest", guest);
    json_object_set_string_member(data, "reason", reason);
    qmp_event_emit(name, data);
}

static gboolean do_shutdown(gpointer opaque)
{
    if (shutdown_guest && no_shutdown) {
        /* -no-shutdown: keep the process, stop the guest. */
        emit_shutdown_event("SHUTDOWN", true, shutdown_reason);
        vm_stop(RUN_STATE_SHUTDOWN);
        return G_SOURCE_REMOVE;
    }
    emit_shutdown_event("SHUTDOWN", shutdown_guest, shutdown_reason);
    g_main_loop_quit(main_loop);
    return G_SOURCE_REMOVE;
}

void qemu_system_shutdown_request(const char *reason)
{
    shutdown_reason = reason;
    shutdown_guest = false;
    main_loop_schedule(do_shutdown, NULL);
}

void qemu_system_shutdown_request_guest(void)
{
    shutdown_reason = "guest-shutdown";
    shutdown_guest = true;
    main_loop_schedule(do_shutdown, NULL);
}

static gboolean do_exit(gpointer opaque)
{
    exit_status = GPOINTER_TO_INT(opaque);
    g_main_loop_quit(main_loop);
    return G_SOURCE_REMOVE;
}

void qemu_system_exit_request(int status)
{
    main_loop_schedule(do_exit, GINT_TO_POINTER(status));
}

static gboolean do_reset(gpointer opaque)
{
    Machine *ms = current_machine;
    bool guest = GPOINTER_TO_INT(opaque);
    bool was_running = runstate_is_running();
    g_autoptr(GError) err = NULL;

    if (guest && no_reboot) {
        shutdown_reason = "guest-reset";
        shutdown_guest = true;
        return do_shutdown(NULL);
    }
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        return G_SOURCE_REMOVE;
    }
    cpus_pause_all();
    if (!pc_machine_reset(ms, &err)) {
        fprintf(stderr, "godwit: system reset failed: %s\n", err->message);
        runstate_set(RUN_STATE_INTERNAL_ERROR);
        return G_SOURCE_REMOVE;
    }
    emit_shutdown_event("RESET", guest, guest ? "guest-reset" : "host-qmp-system-reset");
    if (was_running) {
        cpus_resume_all();
    }
    return G_SOURCE_REMOVE;
}

void qemu_system_reset_request(void)
{
    main_loop_schedule(do_reset, GINT_TO_POINTER(1));
}

void qemu_system_reset_request_host(void)
{
    main_loop_schedule(do_reset, GINT_TO_POINTER(0));
}

static gboolean do_internal_error(gpointer opaque)
{
    g_autofree char *why = opaque;

    fprintf(stderr, "godwit: %s\n", why);
    vm_stop(RUN_STATE_INTERNAL_ERROR);
    return G_SOURCE_REMOVE;
}

void qemu_system_internal_error(const char *why)
{
    main_loop_schedule(do_internal_error, g_strdup(why));
}

static gboolean on_signal(gpointer opaque)
{
    qemu_system_shutdown_request("host-signal");
    return G_SOURCE_CONTINUE;
}

static G_GNUC_NORETURN void die(const char *what, GError *err)
{
    hmp_monitor_cleanup_all();
    chardev_cleanup_all();
    if (what) {
        fprintf(stderr, "godwit: %s: %s\n", what, err->message);
    } else {
        fprintf(stderr, "godwit: %s\n", err->message);
    }
    exit(1);
}

static bool spec_uses_stdio(const char *spec)
{
    return !strcmp(spec, "stdio") || !strcmp(spec, "mon:stdio");
}

int main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    bool exit_now;
    /* Static: the options stay reachable for the life of the process. */
    static GodwitOptions *o;
    Chardev *serial_chr = NULL;
    Chardev *mux = NULL;
    int stdio_users = 0;

    o = godwit_options_parse(argc, argv, &exit_now, &err);
    if (!o) {
        fprintf(stderr, "godwit: %s\n", err->message);
        return 1;
    }
    if (exit_now) {
        godwit_options_free(o);
        return 0;
    }
    no_reboot = o->no_reboot;
    no_shutdown = o->no_shutdown;
    if (!o->kernel && !o->incoming && strcmp(o->machine_type, "none") != 0) {
        fprintf(stderr, "godwit: no -kernel given (godwit boots Multiboot kernels; "
                "use -incoming to receive a migration)\n");
        return 1;
    }
    if (o->kernel && !g_file_test(o->kernel, G_FILE_TEST_IS_REGULAR)) {
        fprintf(stderr, "godwit: could not open kernel '%s': No such file\n", o->kernel);
        return 1;
    }
    for (guint i = 0; i < o->serials->len; i++) {
        stdio_users += spec_uses_stdio(g_ptr_array_index(o->serials, i));
    }
    for (guint i = 0; i < o->monitors->len; i++) {
        stdio_users += spec_uses_stdio(g_ptr_array_index(o->monitors, i));
    }
    if (stdio_users > 1) {
        fprintf(stderr, "godwit: cannot use stdio by multiple character devices "
                "(use -nographic or mon:stdio to share it)\n");
        return 1;
    }
    if (o->serials->len > 1) {
        fprintf(stderr, "godwit: only one -serial port (COM1) is supported\n");
        return 1;
    }

    bql_lock();
    glib_poll = g_main_context_get_poll_func(NULL);
    g_main_context_set_poll_func(NULL, poll_without_bql);
    main_loop = g_main_loop_new(NULL, FALSE);

    for (guint i = 0; i < o->chardevs->len; i++) {
        if (!chardev_new_from_opts(g_ptr_array_index(o->chardevs, i), &err)) {
            die("-chardev", err);
        }
    }
    if (o->nographic && !stdio_users) {
        /* -nographic: serial and HMP share stdio, unless placed elsewhere. */
        mux = chardev_new_from_spec("mon:stdio", &err);
        if (!mux) {
            die("-nographic", err);
        }
    }
    if (o->serials->len) {
        const char *spec = g_ptr_array_index(o->serials, 0);
        if (!strcmp(spec, "mon:stdio")) {
            mux = chardev_new_from_spec(spec, &err);
            serial_chr = mux;
        } else {
            serial_chr = chardev_new_from_spec(spec, &err);
        }
        if (err) {
            die("-serial", err);
        }
    } else if (mux) {
        serial_chr = mux;
    } else if (!o->nodefaults && !stdio_users && !o->monitors->len) {
        serial_chr = chardev_new_from_spec("stdio", &err);
        if (err) {
            die("-serial", err);
        }
    }

    Machine *ms = pc_machine_create(o, serial_chr, &err);
    if (!ms) {
        die(NULL, err);
    }
    migration_init();
    if (!o->incoming && !pc_load_kernel(ms, &err)) {
        die(NULL, err);
    }

    for (guint i = 0; i < o->qmps->len; i++) {
        if (!qmp_server_add(g_ptr_array_index(o->qmps, i), &err)) {
            die("-qmp", err);
        }
    }
    for (guint i = 0; i < o->mons->len; i++) {
        g_autoptr(GHashTable) kv = keyval_parse(g_ptr_array_index(o->mons, i), "chardev", &err);
        const char *id, *mode;
        if (!kv) {
            die("-mon", err);
        }
        id = g_hash_table_lookup(kv, "chardev");
        mode = g_hash_table_lookup(kv, "mode");
        if (!id) {
            fprintf(stderr, "godwit: -mon: parameter 'chardev' is missing\n");
            return 1;
        }
        if (!mode || !strcmp(mode, "readline")) {
            Chardev *c = chardev_lookup(id);
            if (!c) {
                fprintf(stderr, "godwit: -mon: chardev '%s' not found\n", id);
                return 1;
            }
            if (!hmp_monitor_new(c, &err)) {
                die("-mon", err);
            }
        } else if (!strcmp(mode, "control")) {
            if (!qmp_server_add_chardev(id, &err)) {
                die("-mon", err);
            }
        } else {
            fprintf(stderr, "godwit: -mon: mode must be readline or control\n");
            return 1;
        }
    }
    bool monitor_on_mux = mux != NULL && !o->monitors->len;
    for (guint i = 0; i < o->monitors->len; i++) {
        const char *spec = g_ptr_array_index(o->monitors, i);
        Chardev *c;
        if (!strcmp(spec, "none")) {
            continue;
        }
        if (!strcmp(spec, "mon:stdio") || (mux && !strcmp(spec, "stdio"))) {
            monitor_on_mux = true;
            continue;
        }
        c = chardev_new_from_spec(spec, &err);
        if (!c) {
            die("-monitor", err);
        }
        if (!hmp_monitor_new(c, &err)) {
            die("-monitor", err);
        }
    }
    if (monitor_on_mux && mux) {
        /* Each front-end of the stdio mux gets its own handle. */
        Chardev *mon = chardev_new_from_spec("mon:stdio", &err);
        if (!mon || !hmp_monitor_new(mon, &err)) {
            die("-monitor", err);
        }
    }

    if (o->pidfile) {
        g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
        if (!g_file_set_contents(o->pidfile, pid, -1, &err)) {
            die("-pidfile", err);
        }
    }
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGHUP, on_signal, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (o->incoming) {
        runstate_set(RUN_STATE_INMIGRATE);
        autostart = !o->start_paused;
        if (!migration_incoming_from_cmdline(o->incoming, &err)) {
            die("-incoming", err);
        }
    } else if (o->start_paused || !strcmp(o->machine_type, "none")) {
        autostart = false;
        runstate_set(RUN_STATE_PRELAUNCH);
    } else {
        vm_start();
    }

    g_main_loop_run(main_loop);

    /*
     * Leave without joining vCPU threads: a vCPU may sleep on a page that
     * will never arrive (postcopy), and exit() ends it all the same. The
     * BQL stays held to the end: a running vCPU that exits to emulate port
     * I/O waits for it, so it can never reach the chardevs freed here (it
     * did once, writing to the serial chardev after its cleanup).
     */
    qmp_server_cleanup();
    hmp_monitor_cleanup_all();
    chardev_cleanup_all();
    if (o->pidfile) {
        unlink(o->pidfile);
    }
    fflush(stdout);
    _exit(exit_status);
}
