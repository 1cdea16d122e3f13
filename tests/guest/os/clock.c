/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos clocks: kvmclock (one pvclock page per vCPU, MSR 0x4b564d01, when
 * CPUID 0x40000001 offers it) and the TSC. clock_ns() is safe in ring 3:
 * it only reads memory and the TSC. Without kvmclock the TSC is calibrated
 * against PIT channel 2 and counts from the calibration point.
 */
#include "gwos.h"

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define MSR_KVM_SYSTEM_TIME     0x12
#define KVM_FEATURE_CLOCKSOURCE   (1u << 0)
#define KVM_FEATURE_CLOCKSOURCE2  (1u << 3)

static PvClock pvclocks[GWOS_MAX_CPUS];
static uint32_t kvmclock_msr;
static bool kvmclock_probed;
uint64_t tsc_khz;
static uint64_t tsc0;                 /* TSC clock only */
static uint64_t ns_per_tsc_fp32;      /* ns per TSC tick, 32.32 fixed point */

bool kvmclock_available(void)
{
    uint32_t r[4];

    if (kvmclock_probed) {
        return kvmclock_msr != 0;
    }
    kvmclock_probed = true;
    if (cfg.no_kvmclock) {
        return false;
    }
    cpuid(1, 0, r);
    if (!(r[2] & (1u << 31))) {
        return false;                   /* not under a hypervisor */
    }
    cpuid(0x40000000, 0, r);
    if (r[1] != 0x4b4d564b || r[2] != 0x564b4d56 || r[3] != 0x4d || r[0] < 0x40000001) {
        return false;                   /* not "KVMKVMKVM\0\0\0" */
    }
    cpuid(0x40000001, 0, r);
    if (r[0] & KVM_FEATURE_CLOCKSOURCE2) {
        kvmclock_msr = MSR_KVM_SYSTEM_TIME_NEW;
    } else if (r[0] & KVM_FEATURE_CLOCKSOURCE) {
        kvmclock_msr = MSR_KVM_SYSTEM_TIME;
    }
    return kvmclock_msr != 0;
}

void clock_cpu_init(Cpu *c)
{
    if (!kvmclock_available()) {
        return;
    }
    PvClock *p = &pvclocks[c->index];
    wrmsr(kvmclock_msr, (uint64_t)(uintptr_t)p | 1);
    /* KVM fills the page before the vCPU next runs guest code. */
    while (READ_ONCE(p->version) == 0) {
        cpu_relax();
    }
    c->pvclock = p;
}

uint64_t clock_ns(Cpu *c)
{
    PvClock *p = c->pvclock;

    if (p) {
        uint32_t v;
        uint64_t tsc, ts, st;
        uint32_t mul;
        int8_t shift;
        do {
            v = READ_ONCE(p->version);
            barrier();
            tsc = rdtsc();
            ts = p->tsc_timestamp;
            st = p->system_time;
            mul = p->tsc_to_system_mul;
            shift = p->tsc_shift;
            barrier();
        } while ((v & 1) || v != READ_ONCE(p->version));
        uint64_t d = tsc - ts;
        if ((int64_t)d < 0) {
            d = 0;      /* a TSC read just before the page update */
        }
        d = shift < 0 ? d >> -shift : d << shift;
        return st + (uint64_t)(((unsigned __int128)d * mul) >> 32);
    }
    return (uint64_t)(((unsigned __int128)(rdtsc() - tsc0) * ns_per_tsc_fp32) >> 32);
}

void clock_delay_us(Cpu *c, uint64_t us)
{
    uint64_t end = clock_ns(c) + us * 1000;
    while (clock_ns(c) < end) {
        cpu_relax();
    }
}

/* TSC ticks in 10 ms of PIT channel 2 (mode 0, gate on, speaker off). */
static uint64_t pit_measure_tsc(void)
{
    const uint16_t count = 11932;       /* 1193182 Hz / 100 */

    outb(0x61, (inb(0x61) & ~0x02) | 0x01);
    outb(0x43, 0xb0);
    outb(0x42, count & 0xff);
    outb(0x42, count >> 8);
    uint64_t t0 = rdtsc();
    int guard = 0;
    while (!(inb(0x61) & 0x20) && ++guard < 50000000) {
        cpu_relax();
    }
    return rdtsc() - t0;
}

void clock_calibrate(void)
{
    Cpu *c = this_cpu();

    if (c->pvclock) {
        /* The pvclock scale says it: ns = (tsc << shift) * mul / 2^32. */
        PvClock *p = c->pvclock;
        uint64_t hz = (NSEC_PER_SEC << 32) / p->tsc_to_system_mul;
        hz = p->tsc_shift < 0 ? hz << -p->tsc_shift : hz >> p->tsc_shift;
        tsc_khz = hz / 1000;
        return;
    }
    uint64_t best = ~0ull;
    for (int i = 0; i < 3; i++) {
        uint64_t t = pit_measure_tsc();
        if (t < best) {
            best = t;
        }
    }
    tsc_khz = best / 10;
    if (!tsc_khz) {
        tsc_khz = 1000000;              /* give up: pretend 1 GHz */
    }
    ns_per_tsc_fp32 = (NSEC_PER_SEC << 32) / (tsc_khz * 1000);
    tsc0 = rdtsc();
}
