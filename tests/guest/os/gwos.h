/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos: internal declarations of the godwit test guest OS (freestanding,
 * x86-64, no libc). Ring 0 code: boot, interrupts, devices, console.
 * Ring 3 code: the workloads (work.c), which only touch memory and clocks.
 */
#ifndef GWOS_H
#define GWOS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "gwos-results.h"

#define KERNEL_CS   0x08
#define KERNEL_DS   0x10
#define USER_DS     0x1b
#define USER_CS     0x23
#define TSS_SEL(i)  (0x28 + 16 * (i))

#define VEC_TIMER     0x30
#define VEC_PIT       0x31
#define VEC_SERIAL    0x32
#define VEC_NET       0x33
#define VEC_SPURIOUS  0xff

#define NSEC_PER_SEC  1000000000ul
#define WORK_BASE     0x1000000ull   /* workloads use RAM from 16 MiB up */
#define MAX_RAM_RANGES 16
#define MAX_EXTENTS    8

/* ---- low level ---- */
static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}
static inline void cpu_relax(void)
{
    __asm__ volatile("pause" ::: "memory");
}
static inline uint64_t irq_save(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0; cli" : "=r"(f) : : "memory");
    return f;
}
static inline void irq_restore(uint64_t f)
{
    if (f & 0x200) {
        __asm__ volatile("sti" ::: "memory");
    }
}
#define barrier() __asm__ volatile("" ::: "memory")
#define READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

typedef struct Spinlock {
    volatile uint32_t v;
} Spinlock;
void spin_lock(Spinlock *l);
void spin_unlock(Spinlock *l);

/* ---- pvclock page (KVM ABI) ---- */
typedef struct PvClock {
    uint32_t version;
    uint32_t pad0;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint8_t flags;
    uint8_t pad[2];
} __attribute__((aligned(64))) PvClock;

/* ---- per-vCPU state ---- */
typedef struct Extent {
    uint64_t addr;            /* first byte */
    uint64_t pages;           /* 4 KiB pages */
} Extent;

typedef struct Cpu {
    struct Cpu *self;         /* offset 0: this_cpu() reads %gs:0 */
    int index;                /* 8 */
    uint32_t apic_id;         /* 12 */
    GwosCpuResults *res;      /* 16: used by timer_stub in boot.S */
    PvClock *pvclock;         /* NULL without kvmclock */
    /* workload (ring 3) */
    int work;
    uint64_t rate_bytes_per_s;    /* this vCPU's share, 0 = unlimited */
    Extent ext[MAX_EXTENTS];
    int next;
    uint64_t pages;           /* data pages over all extents */
    uint8_t *shadow;          /* rand/read: one generation byte per page */
    uint64_t rng;
    uint64_t last_ns;         /* stall meter: previous iteration */
    uint64_t next_event_ns;   /* earliest of the two below */
    uint64_t next_hb_ns;
    uint64_t next_marker_ns;  /* BSP only */
    uint64_t marker_seq;
    uint64_t reported;        /* CORRUPT lines printed */
    bool booted;              /* reached ap_main (APs) or kmain (BSP) */
    bool net;                 /* runs the network loop (net.c) too */
} Cpu;

extern Cpu cpus[GWOS_MAX_CPUS];
extern GwosResults *const results;

/* ---- configuration from the command line ---- */
typedef struct Config {
    int work;
    uint64_t mem;             /* total working set bytes, 0 = default */
    bool mem_max;
    uint64_t rate_mib;
    uint64_t hz;
    uint64_t pit_hz;
    uint64_t marker_hz;
    uint64_t exit_after_s;
    uint64_t read_write_every;    /* read: one write per this many reads */
    bool no_kvmclock;
    bool ring0;               /* workloads stay in ring 0 */
    bool net;                 /* net=on: the network workload */
    uint64_t net_rate;        /* frames/s, 0 = as fast as the window allows */
    uint64_t net_len;         /* bytes per frame */
    uint64_t net_window;      /* frames in flight at most */
    bool net_bar_zero;        /* test: forget firmware's BARs, assign our own */
} Config;
extern Config cfg;

/* ---- console (console.c) ---- */
void console_init(void);
void console_irq_mode(void);      /* enable UART interrupts (RX; THRE on demand) */
void console_write(const char *s, size_t n);      /* ring 0, polled */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ksnprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
void console_irq(void);           /* UART interrupt, ring 0 */
/* ring 3 */
void uconsole_write(Cpu *c, const char *s, size_t n);
void uprintf(Cpu *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void uconsole_poll(Cpu *c, uint64_t now);
bool uconsole_drained(void);      /* everything written has gone to the UART */
void marker_emit(Cpu *c, uint64_t seq);
void work_finish(Cpu *c) __attribute__((noreturn));

/* boot.S: port I/O usable from ring 3 (traps to the #GP fast path) */
void uio_outsb(uint16_t port, const void *buf, uint64_t n);
void uio_outb(uint16_t port, uint8_t v);
uint8_t uio_inb(uint16_t port);

/* ---- clocks (clock.c) ---- */
bool kvmclock_available(void);
void clock_cpu_init(Cpu *c);      /* per vCPU: enable kvmclock */
void clock_calibrate(void);       /* BSP: TSC frequency */
uint64_t clock_ns(Cpu *c);        /* safe in ring 3 */
void clock_delay_us(Cpu *c, uint64_t us);
extern uint64_t tsc_khz;

/* ---- interrupts, APIC (apic.c) ---- */
#define LAPIC_BASE   0xfee00000ull
uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t v);
void lapic_eoi(void);
uint32_t lapic_id(void);
void lapic_cpu_init(void);
void lapic_timer_calibrate(Cpu *c);
void lapic_timer_start(uint64_t hz);
bool lapic_start_ap(Cpu *bsp, uint32_t apic_id, uint32_t trampoline);
void ioapic_route_isa(int irq, int vector, uint32_t dest_apic);
/*
 * Route a PCI INTx line (the interrupt-line register) to @vector on
 * @dest_apic: ISA numbers through the MADT overrides, others as GSIs.
 * Returns the GSI used and sets *level / *low to the mode chosen, or -1.
 */
int ioapic_route_pci(uint8_t line, int vector, uint32_t dest_apic, bool *level, bool *low);
void pic_disable(void);
void pit_start(uint64_t hz);

/* ---- ACPI (madt.c) ---- */
typedef struct Madt {
    int ncpus;
    uint32_t apic_ids[GWOS_MAX_CPUS];
    uint64_t ioapic_addr;
    uint32_t ioapic_gsi_base;
    /* ISA IRQ -> GSI and MPS flags (polarity/trigger), from overrides */
    uint32_t isa_gsi[16];
    uint16_t isa_flags[16];
} Madt;
extern Madt madt;
bool madt_find(void);

/* ---- PCI (pci.c, ring 0) ---- */
typedef struct PciDev {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
    uint32_t class_rev;       /* class << 8 | revision, as in config 0x08 */
} PciDev;
uint32_t pci_read32(const PciDev *d, uint32_t off);
uint16_t pci_read16(const PciDev *d, uint32_t off);
uint8_t pci_read8(const PciDev *d, uint32_t off);
void pci_write32(const PciDev *d, uint32_t off, uint32_t v);
void pci_write16(const PciDev *d, uint32_t off, uint16_t v);
/*
 * Scan bus 0 and the buses behind bridges firmware numbered, printing one
 * line per function; store up to @max functions in @out. Returns how many.
 */
int pci_scan(PciDev *out, int max);
/* First capability of @cap_id at or after config offset @from (0: start). */
uint8_t pci_find_cap(const PciDev *d, uint8_t cap_id, uint8_t from);
/*
 * Memory BAR @bar's address, assigning one from the free window if
 * firmware left it 0 (with memory decode off meanwhile). Returns 0 for an
 * I/O BAR, an absent BAR or when the window is full.
 */
uint64_t pci_bar_address(const PciDev *d, int bar);
/* Memory space + bus master on, INTx not disabled. */
void pci_enable(const PciDev *d);
/* Map [addr, addr + len) above 4 GiB (uncached, user); false beyond 64 GiB. */
bool pci_map_high(uint64_t addr, uint64_t len);

/* ---- the network workload (virtio-net.c ring 0, net.c ring 3) ---- */
void net_poll(Cpu *c, uint64_t now);  /* ring 3, every loop iteration of the net vCPU */
void net_finish(Cpu *c);          /* ring 3, net vCPU: stop, resolve, print the summary */
void net_stop(Cpu *c);            /* ring 3, BSP at exit=N: have the net vCPU finish */

/* ---- workloads (work.c, ring 3) ---- */
void work_main(Cpu *c) __attribute__((noreturn));

/* ---- misc ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
size_t strlen(const char *s);
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
Cpu *this_cpu(void);

#endif
