/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vCPU threads: one KVM_RUN loop per vCPU. A vCPU is paused by setting
 * cpu->stop and kicking it out of KVM_RUN (immediate_exit + signal); it parks
 * on a condition variable with the BQL and reports cpu->stopped. Threads are
 * never killed; on exit the process ends around them.
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/ioport.h"
#include "hw/mmio.h"
#include "sysemu/cpus.h"
#include "sysemu/kvm-cpu.h"
#include "sysemu/main-loop.h"
#include "sysemu/runstate.h"
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#define SIG_IPI SIGUSR1

static Machine *cpus_machine;
static GCond cpu_park_cond;       /* a vCPU parked or was created */
static GCond cpu_resume_cond;     /* vCPUs may run again */
static bool cpus_running;         /* BQL */

/* auto-converge: every period the vCPUs sleep a share of it. */
#define THROTTLE_TIMESLICE_MS 10
static int throttle_percent;      /* atomic */
static guint throttle_timer;      /* main thread */

static void sig_ipi_handler(int sig)
{
    /* Only there to interrupt KVM_RUN; immediate_exit carries the meaning. */
}

static void cpu_kick(CPUState *cpu)
{
    if (cpu->created) {
        __atomic_store_n(&cpu->run->immediate_exit, 1, __ATOMIC_RELEASE);
        pthread_kill(cpu->thread, SIG_IPI);
    }
}

static void cpu_handle_io(CPUState *cpu)
{
    struct kvm_run *run = cpu->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;

    for (uint32_t i = 0; i < run->io.count; i++) {
        uint32_t val = 0;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            memcpy(&val, data, run->io.size);
            ioport_write(run->io.port, val, run->io.size);
        } else {
            val = ioport_read(run->io.port, run->io.size);
            memcpy(data, &val, run->io.size);
        }
        data += run->io.size;
    }
}

static void cpu_handle_mmio(CPUState *cpu)
{
    struct kvm_run *run = cpu->run;

    /* PCI BARs; an address nobody claims reads as all ones (hw/mmio.c). */
    mmio_dispatch(run->mmio.phys_addr, run->mmio.data, run->mmio.len, run->mmio.is_write);
}

/* Handle one KVM exit with the BQL held. Returns false to park for good. */
static bool cpu_handle_exit(CPUState *cpu)
{
    struct kvm_run *run = cpu->run;

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        cpu_handle_io(cpu);
        return true;
    case KVM_EXIT_MMIO:
        cpu_handle_mmio(cpu);
        return true;
    case KVM_EXIT_HLT:
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return true;
    case KVM_EXIT_SHUTDOWN:
        /* A triple fault: a PC resets. */
        qemu_system_reset_request();
        return true;
    case KVM_EXIT_SYSTEM_EVENT:
        if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
            qemu_system_reset_request();
        } else {
            qemu_system_shutdown_request_guest();
        }
        return true;
    case KVM_EXIT_FAIL_ENTRY: {
        g_autofree char *why = g_strdup_printf(
            "vCPU %d: KVM entry failed, hardware error 0x%" PRIx64, cpu->index,
            (uint64_t)run->fail_entry.hardware_entry_failure_reason);
        qemu_system_internal_error(why);
        return false;
    }
    case KVM_EXIT_INTERNAL_ERROR: {
        g_autofree char *why = g_strdup_printf(
            "vCPU %d: KVM internal error, suberror %u", cpu->index,
            run->internal.suberror);
        qemu_system_internal_error(why);
        return false;
    }
    default: {
        g_autofree char *why = g_strdup_printf("vCPU %d: unhandled KVM exit %u",
                                               cpu->index, run->exit_reason);
        qemu_system_internal_error(why);
        return false;
    }
    }
}

static void cpu_throttle_sleep(void)
{
    int pct = g_atomic_int_get(&throttle_percent);

    if (pct > 0) {
        /* Sleep pct/(100-pct) of a timeslice: the vCPU runs (100-pct)%. */
        int64_t us = (int64_t)THROTTLE_TIMESLICE_MS * 1000 * pct / (100 - pct);
        g_usleep(us);
    }
}

/*
 * KVM finishes a port I/O or MMIO instruction only when the vCPU re-enters
 * KVM_RUN; until then its registers show the instruction not yet executed.
 * A vCPU that parked right after such an exit would be saved (migrated)
 * that way and the destination would execute it again: an OUT to the UART
 * printed its byte twice, an IN from it would lose one. So before parking,
 * enter KVM_RUN once with immediate_exit set: KVM completes the pending
 * instruction and returns at once without running the guest further.
 * Called and returns with the BQL held.
 */
static void cpu_complete_pending_io(CPUState *cpu)
{
    if (!cpu->io_pending) {
        return;
    }
    cpu->io_pending = false;
    __atomic_store_n(&cpu->run->immediate_exit, 1, __ATOMIC_RELEASE);
    bql_unlock();
    int r = ioctl(cpu->fd, KVM_RUN, 0);
    int err = errno;
    bql_lock();
    __atomic_store_n(&cpu->run->immediate_exit, 0, __ATOMIC_RELAXED);
    if (r == 0) {
        /*
         * Not expected with immediate_exit set; if KVM did run and exit
         * again, that exit must not be lost.
         */
        if (!cpu_handle_exit(cpu)) {
            cpu->stop = true;
        }
        cpu->io_pending = cpu->run->exit_reason == KVM_EXIT_IO ||
                          cpu->run->exit_reason == KVM_EXIT_MMIO;
    } else if (err != EINTR && err != EAGAIN) {
        g_autofree char *why = g_strdup_printf("vCPU %d: KVM_RUN failed: %s",
                                               cpu->index, g_strerror(err));
        qemu_system_internal_error(why);
        cpu->stop = true;
    }
}

static void *vcpu_thread_fn(void *opaque)
{
    CPUState *cpu = opaque;
    char name[16];
    bool throttle_due = false;

    snprintf(name, sizeof(name), GW_THREAD_VCPU_FMT, cpu->index);
    pthread_setname_np(pthread_self(), name);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIG_IPI);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    bql_lock();
    cpu->tid = (int)syscall(SYS_gettid);
    cpu->created = true;
    g_cond_broadcast(&cpu_park_cond);

    for (;;) {
        while (cpu->stop || !cpus_running) {
            cpu_complete_pending_io(cpu);
            if (!cpu->stop && cpus_running) {
                break;      /* resumed while the BQL was dropped */
            }
            if (!cpu->stopped) {
                cpu->stopped = true;
                g_cond_broadcast(&cpu_park_cond);
            }
            bql_cond_wait(&cpu_resume_cond);
        }
        cpu->stopped = false;
        bql_unlock();

        if (throttle_due) {
            throttle_due = false;
            cpu_throttle_sleep();
        }
        int r = ioctl(cpu->fd, KVM_RUN, 0);
        int err = errno;

        bql_lock();
        cpu->io_pending = false;
        if (r < 0) {
            if (err == EINTR || err == EAGAIN) {
                __atomic_store_n(&cpu->run->immediate_exit, 0, __ATOMIC_RELAXED);
                /* A kick without a stop request is the throttle timer's. */
                throttle_due = !cpu->stop && g_atomic_int_get(&throttle_percent) > 0;
                continue;
            }
            g_autofree char *why = g_strdup_printf("vCPU %d: KVM_RUN failed: %s",
                                                   cpu->index, g_strerror(err));
            qemu_system_internal_error(why);
            cpu->stop = true;
            continue;
        }
        if (!cpu_handle_exit(cpu)) {
            cpu->stop = true;
        }
        cpu->io_pending = cpu->run->exit_reason == KVM_EXIT_IO ||
                          cpu->run->exit_reason == KVM_EXIT_MMIO;
    }
    return NULL;
}

bool cpus_create(Machine *ms, GError **errp)
{
    struct sigaction sa = { .sa_handler = sig_ipi_handler };

    cpus_machine = ms;
    sigaction(SIG_IPI, &sa, NULL);

    ms->cpus = g_new0(CPUState *, ms->smp_cpus);
    for (int i = 0; i < ms->smp_cpus; i++) {
        ms->cpus[i] = kvm_cpu_create(ms, i, errp);
        if (!ms->cpus[i]) {
            return false;
        }
    }
    /* Threads start with SIG_IPI blocked until they unblock it themselves. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIG_IPI);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    for (int i = 0; i < ms->smp_cpus; i++) {
        CPUState *cpu = ms->cpus[i];
        int r = pthread_create(&cpu->thread, NULL, vcpu_thread_fn, cpu);
        if (r) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            error_setg(errp, "cannot create vCPU thread: %s", g_strerror(r));
            return false;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int i = 0; i < ms->smp_cpus; i++) {
        while (!ms->cpus[i]->created || !ms->cpus[i]->stopped) {
            bql_cond_wait(&cpu_park_cond);
        }
    }
    return true;
}

bool cpus_all_stopped(void)
{
    Machine *ms = cpus_machine;

    for (int i = 0; i < ms->smp_cpus; i++) {
        if (!ms->cpus[i]->stopped) {
            return false;
        }
    }
    return true;
}

void cpus_pause_all(void)
{
    Machine *ms = cpus_machine;

    g_assert(bql_locked());
    if (!ms || !ms->cpus) {
        return;
    }
    cpus_running = false;
    for (int i = 0; i < ms->smp_cpus; i++) {
        ms->cpus[i]->stop = true;
        cpu_kick(ms->cpus[i]);
    }
    while (!cpus_all_stopped()) {
        /* Re-kick now and then: a signal can land just before KVM_RUN. */
        if (!bql_cond_wait_until(&cpu_park_cond, g_get_monotonic_time() + 20000)) {
            for (int i = 0; i < ms->smp_cpus; i++) {
                if (!ms->cpus[i]->stopped) {
                    cpu_kick(ms->cpus[i]);
                }
            }
        }
    }
    kvm_clock_on_stop(ms);
}

void cpus_resume_all(void)
{
    Machine *ms = cpus_machine;

    g_assert(bql_locked());
    if (!ms || !ms->cpus) {
        return;
    }
    kvm_clock_on_start(ms);
    for (int i = 0; i < ms->smp_cpus; i++) {
        ms->cpus[i]->stop = false;
    }
    cpus_running = true;
    g_cond_broadcast(&cpu_resume_cond);
}

static gboolean throttle_tick(gpointer data)
{
    Machine *ms = cpus_machine;
    int pct = g_atomic_int_get(&throttle_percent);

    if (pct <= 0) {
        throttle_timer = 0;
        return G_SOURCE_REMOVE;
    }
    for (int i = 0; i < ms->smp_cpus; i++) {
        cpu_kick(ms->cpus[i]);
    }
    return G_SOURCE_CONTINUE;
}

static gboolean throttle_apply(gpointer data)
{
    int pct = g_atomic_int_get(&throttle_percent);

    if (throttle_timer) {
        g_source_remove(throttle_timer);
        throttle_timer = 0;
    }
    if (pct > 0) {
        /* One kick per period of timeslice / (1 - p). */
        guint period = (guint)(THROTTLE_TIMESLICE_MS * 100 / (100 - pct));
        throttle_timer = g_timeout_add(period, throttle_tick, NULL);
    }
    return G_SOURCE_REMOVE;
}

void cpus_set_throttle(int percent)
{
    percent = CLAMP(percent, 0, 99);
    g_atomic_int_set(&throttle_percent, percent);
    main_loop_schedule(throttle_apply, NULL);
}

int cpus_get_throttle(void)
{
    return g_atomic_int_get(&throttle_percent);
}
