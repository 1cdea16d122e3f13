/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The main loop and the requests other threads and layers make of it
 * (shutdown, reset, exit status, internal error). Requests are queued and
 * acted on by the main thread with the BQL held, so a vCPU or migration
 * thread never calls up into main.
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/pc.h"
#include "monitor/qmp.h"
#include "sysemu/cpus.h"
#include "sysemu/main-loop.h"
#include "sysemu/runstate.h"

static GMainLoop *main_loop;
static GPollFunc glib_poll;
static int exit_status;
static bool no_reboot, no_shutdown;    /* -no-reboot, -no-shutdown */
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

void main_loop_init(bool opt_no_reboot, bool opt_no_shutdown)
{
    no_reboot = opt_no_reboot;
    no_shutdown = opt_no_shutdown;
    glib_poll = g_main_context_get_poll_func(NULL);
    g_main_context_set_poll_func(NULL, poll_without_bql);
    main_loop = g_main_loop_new(NULL, FALSE);
}

int main_loop_run(void)
{
    g_main_loop_run(main_loop);
    return exit_status;
}
