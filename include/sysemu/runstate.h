/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The VM run state (query-status "status") and the stop/start primitives.
 * Run-state changes happen with the BQL held; STOP/RESUME events are emitted
 * by vm_stop()/vm_start() themselves.
 */
#ifndef GODWIT_RUNSTATE_H
#define GODWIT_RUNSTATE_H

#include "qemu/osdep.h"

/* RunState comes from the schema (qapi/machine.json): QEMU's names. */
#include "qapi/qapi-types.h"

const char *runstate_name(RunState s);
RunState runstate_get(void);
void runstate_set(RunState s);
bool runstate_is_running(void);

/*
 * Stop all vCPUs (they park outside KVM_RUN) and enter @new_state; emits STOP
 * if the VM was running. BQL held. Returns once every vCPU is parked.
 */
void vm_stop(RunState new_state);

/* Start (or resume) the vCPUs; emits RESUME. BQL held. */
void vm_start(void);

/*
 * Told when the VM starts (@running, before the vCPUs resume) or stops
 * (after every vCPU is parked, before STOP is emitted), on whichever
 * thread calls vm_start/vm_stop, with the BQL held. Register at start-up.
 */
typedef void (*VMStateChangeFn)(void *opaque, bool running, RunState state);
void vm_state_add_notifier(VMStateChangeFn fn, void *opaque);

/* Whether the guest should start when an incoming migration completes (no -S). */
extern bool autostart;

/* Request an orderly exit of the main loop (quit, guest shutdown, SIGTERM). */
void qemu_system_shutdown_request(const char *reason);
void qemu_system_reset_request(void);

#endif
