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

void vm_stop(RunState new_state)
{
    bool was_running = runstate_is_running();

    g_assert(bql_locked());
    cpus_pause_all();
    runstate_set(new_state);
    if (was_running) {
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
    cpus_resume_all();
    qmp_event_emit("RESUME", NULL);
}
