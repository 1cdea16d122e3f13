/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The main loop (system/main-loop-requests.c) and the requests other
 * threads make of it (guest shutdown/reset from a
 * vCPU, an exit status from debug-exit). They are queued and acted on by
 * the main thread with the BQL held.
 */
#ifndef GODWIT_MAIN_LOOP_H
#define GODWIT_MAIN_LOOP_H

#include "qemu/osdep.h"

/* main(): create the loop (BQL held; poll() runs without it). */
void main_loop_init(bool no_reboot, bool no_shutdown);
/* main(): run until a shutdown or exit request; returns the exit status. */
int main_loop_run(void);

/* Run @fn(@data) on the main thread with the BQL held. Any thread. */
void main_loop_schedule(GSourceFunc fn, gpointer data);

/* Guest asked to power off (reason "guest-shutdown") or the host quit. */
void qemu_system_shutdown_request_guest(void);
/* debug-exit: leave with this process exit status. */
void qemu_system_exit_request(int status);
/* system_reset from the monitor (reason host-qmp-system-reset). */
void qemu_system_reset_request_host(void);
/* A vCPU hit an error KVM cannot continue from. */
void qemu_system_internal_error(const char *why);

#endif
