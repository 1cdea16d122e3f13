/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vCPU threads: one per vCPU running the KVM_RUN loop. They are paused and
 * resumed with a handshake under the BQL, never killed; see
 * docs/devel/architecture.md.
 */
#ifndef GODWIT_CPUS_H
#define GODWIT_CPUS_H

#include "qemu/osdep.h"
#include <pthread.h>
#include <linux/kvm.h>
#include "hw/machine.h"

struct CPUState {
    int index;
    int fd;                     /* vCPU fd */
    struct kvm_run *run;        /* mmapped kvm_run */
    pthread_t thread;
    int tid;                    /* gettid() of the vCPU thread (blocktime) */
    /* Protected by the BQL: */
    bool stop;                  /* request: park outside KVM_RUN */
    bool stopped;               /* state: parked */
    bool created;
    /*
     * The last exit was port I/O or MMIO that KVM completes only on the
     * next KVM_RUN (an OUT's RIP advance, an IN's value into RAX). Only
     * the vCPU thread uses it.
     */
    bool io_pending;
    /* Throttling (auto-converge): share of each period the thread sleeps, 0..99. */
    int throttle_percent;       /* written by migration, read by the vCPU thread */
};

/* Create the vCPU threads (they start parked). BQL held. */
bool cpus_create(Machine *ms, GError **errp);
/* Park every vCPU and wait until they are outside KVM_RUN. BQL held. */
void cpus_pause_all(void);
/* Let every vCPU run. BQL held. */
void cpus_resume_all(void);
/* True if every vCPU is parked. BQL held. */
bool cpus_all_stopped(void);
/* Set auto-converge throttle for all vCPUs (0 = off). Any thread. */
void cpus_set_throttle(int percent);
int cpus_get_throttle(void);

/* Human-readable register dump (HMP info registers). BQL held; syncs from KVM. */
void cpu_dump_state(CPUState *cpu, GString *out);

#endif
