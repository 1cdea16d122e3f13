/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Run state and the stop/start primitives. The state is written with the
 * BQL held; readers on other threads use runstate_get() (atomic).
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "sysemu/runstate.h"
#include "sysemu/cpus.h"
#include "monitor/qmp.h"
#include "chardev/char.h"

/*
 * Once the vCPUs are paused, output the guest wrote is given this long to
 * reach its file, terminal or client: a file write takes microseconds, so
 * only a stuck terminal or socket client ever makes a stop wait this long.
 */
#define VM_STOP_DRAIN_MS 100

static int current_runstate = RUN_STATE_PRELAUNCH;
bool autostart = true;

const char *runstate_name(RunState s)
{
    return (unsigned)s < RUN_STATE__MAX ? RunState_str(s) : "unknown";
}

RunState runstate_get(void)
{
    return (RunState)g_atomic_int_get(&current_runstate);
}

void runstate_set(RunState s)
{
    g_atomic_int_set(&current_runstate, (int)s);
}

bool runstate_is_running(void)
{
    return runstate_get() == RUN_STATE_RUNNING;
}

typedef struct VMStateNotifier {
    VMStateChangeFn fn;
    void *opaque;
} VMStateNotifier;

static GArray *vm_state_notifiers;    /* VMStateNotifier; BQL */

void vm_state_add_notifier(VMStateChangeFn fn, void *opaque)
{
    VMStateNotifier n = { fn, opaque };

    if (!vm_state_notifiers) {
        vm_state_notifiers = g_array_new(FALSE, TRUE, sizeof(VMStateNotifier));
    }
    g_array_append_val(vm_state_notifiers, n);
}

static void vm_state_notify(bool running, RunState state)
{
    for (guint i = 0; vm_state_notifiers && i < vm_state_notifiers->len; i++) {
        VMStateNotifier *n = &g_array_index(vm_state_notifiers, VMStateNotifier, i);
        n->fn(n->opaque, running, state);
    }
}

void vm_stop(RunState new_state)
{
    bool was_running = runstate_is_running();

    g_assert(bql_locked());
    cpus_pause_all();
    chardev_drain_all(VM_STOP_DRAIN_MS);
    runstate_set(new_state);
    if (was_running) {
        /* vCPUs are parked: devices stop (a vhost-user back-end returns its rings). */
        vm_state_notify(false, new_state);
        qmp_event_emit("STOP", NULL);
    }
}

void vm_start(void)
{
    g_assert(bql_locked());
    if (runstate_is_running()) {
        return;
    }
    runstate_set(RUN_STATE_RUNNING);
    /* Devices first, so the guest finds them running when its vCPUs resume. */
    vm_state_notify(true, RUN_STATE_RUNNING);
    cpus_resume_all();
    qmp_event_emit("RESUME", NULL);
}
