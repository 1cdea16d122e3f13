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
    main_loop_init(o->no_reboot, o->no_shutdown);

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

    int exit_status = main_loop_run();

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
