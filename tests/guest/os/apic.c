/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos interrupt hardware: the local APIC (xAPIC MMIO at 0xfee00000: timer,
 * INIT/SIPI), the IOAPIC (ISA IRQs to the BSP, honouring the MADT's
 * interrupt source overrides), the 8259 PICs (masked) and PIT channel 0.
 */
#include "gwos.h"

#define LAPIC_ID      0x020
#define LAPIC_TPR     0x080
#define LAPIC_EOI     0x0b0
#define LAPIC_SVR     0x0f0
#define LAPIC_ESR     0x280
#define LAPIC_ICR_LO  0x300
#define LAPIC_ICR_HI  0x310
#define LAPIC_LVT_TMR 0x320
#define LAPIC_LINT0   0x350
#define LAPIC_LINT1   0x360
#define LAPIC_LVT_ERR 0x370
#define LAPIC_TMR_ICR 0x380
#define LAPIC_TMR_CCR 0x390
#define LAPIC_TMR_DCR 0x3e0
#define LVT_MASKED    0x10000
#define LVT_PERIODIC  0x20000
#define MSR_APIC_BASE 0x1b

static uint64_t lapic_timer_hz;       /* timer input clock after the /16 divider */

uint32_t lapic_read(uint32_t reg)
{
    return *(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg);
}

void lapic_write(uint32_t reg, uint32_t v)
{
    *(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg) = v;
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_EOI, 0);
}

uint32_t lapic_id(void)
{
    return lapic_read(LAPIC_ID) >> 24;
}

void lapic_cpu_init(void)
{
    uint64_t base = rdmsr(MSR_APIC_BASE);

    if (!(base & (1u << 11))) {
        wrmsr(MSR_APIC_BASE, base | (1u << 11));
    }
    lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_LINT0, LVT_MASKED);
    lapic_write(LAPIC_LINT1, 0x400);          /* NMI */
    lapic_write(LAPIC_LVT_ERR, LVT_MASKED);
    lapic_write(LAPIC_LVT_TMR, LVT_MASKED);
    lapic_write(LAPIC_TMR_DCR, 0x3);          /* divide by 16 */
}

void lapic_timer_calibrate(Cpu *c)
{
    lapic_write(LAPIC_LVT_TMR, LVT_MASKED);
    lapic_write(LAPIC_TMR_DCR, 0x3);
    uint64_t t0 = clock_ns(c);
    lapic_write(LAPIC_TMR_ICR, 0xffffffffu);
    clock_delay_us(c, 20000);
    uint32_t left = lapic_read(LAPIC_TMR_CCR);
    uint64_t t1 = clock_ns(c);
    lapic_write(LAPIC_TMR_ICR, 0);
    uint64_t ticks = 0xffffffffu - left;
    lapic_timer_hz = t1 > t0 ? ticks * NSEC_PER_SEC / (t1 - t0) : 0;
    if (!lapic_timer_hz) {
        lapic_timer_hz = 62500000;            /* KVM's 1 GHz bus / 16 */
    }
    kprintf("gwos: lapic timer clock %lu Hz (after /16)\n", lapic_timer_hz);
}

void lapic_timer_start(uint64_t hz)
{
    uint64_t count = lapic_timer_hz / (hz ? hz : 1);

    lapic_write(LAPIC_TMR_DCR, 0x3);
    lapic_write(LAPIC_LVT_TMR, VEC_TIMER | LVT_PERIODIC);
    lapic_write(LAPIC_TMR_ICR, (uint32_t)(count ? count : 1));
}

static bool icr_wait(void)
{
    for (int i = 0; i < 1000000; i++) {
        if (!(lapic_read(LAPIC_ICR_LO) & (1u << 12))) {
            return true;
        }
        cpu_relax();
    }
    return false;
}

bool lapic_start_ap(Cpu *bsp, uint32_t apic_id, uint32_t trampoline)
{
    lapic_write(LAPIC_ESR, 0);
    lapic_write(LAPIC_ICR_HI, apic_id << 24);
    lapic_write(LAPIC_ICR_LO, 0x4500);            /* INIT, assert */
    if (!icr_wait()) {
        return false;
    }
    clock_delay_us(bsp, 10000);
    for (int i = 0; i < 2; i++) {
        lapic_write(LAPIC_ICR_HI, apic_id << 24);
        lapic_write(LAPIC_ICR_LO, 0x4600 | (trampoline >> 12));   /* SIPI */
        if (!icr_wait()) {
            return false;
        }
        clock_delay_us(bsp, 200);
    }
    return true;
}

/* ---- IOAPIC ---- */
static void ioapic_write(uint32_t reg, uint32_t v)
{
    volatile uint32_t *base = (volatile uint32_t *)(uintptr_t)madt.ioapic_addr;
    base[0] = reg;
    base[4] = v;
}

static uint32_t ioapic_read(uint32_t reg)
{
    volatile uint32_t *base = (volatile uint32_t *)(uintptr_t)madt.ioapic_addr;
    base[0] = reg;
    return base[4];
}

void ioapic_route_isa(int irq, int vector, uint32_t dest_apic)
{
    uint32_t gsi = madt.isa_gsi[irq];
    uint16_t flags = madt.isa_flags[irq];
    uint32_t pin = gsi - madt.ioapic_gsi_base;
    uint32_t lo = (uint32_t)vector;               /* fixed, physical, unmasked */

    if ((flags & 3) == 3) {
        lo |= 1u << 13;                           /* active low */
    }
    if (((flags >> 2) & 3) == 3) {
        lo |= 1u << 15;                           /* level */
    }
    uint32_t max_pin = (ioapic_read(1) >> 16) & 0xff;
    if (pin > max_pin) {
        kprintf("gwos: warning: IRQ %d maps to GSI %u beyond the IOAPIC\n", irq, gsi);
        return;
    }
    ioapic_write(0x11 + 2 * pin, dest_apic << 24);
    ioapic_write(0x10 + 2 * pin, lo);
}

/*
 * PCI INTx. An interrupt line below 16 is an ISA IRQ number (what PC
 * firmware writes there): its GSI and mode come from the MADT overrides
 * (QEMU lists IRQs 5, 9, 10 and 11 as level, active high). Without an
 * override, or for a line of 16 and up (taken as the GSI itself), the PCI
 * convention applies: level triggered, active low. KVM's in-kernel IOAPIC
 * does not look at the polarity bit, so that choice cannot invert the line
 * there; the trigger mode matters (level: remote IRR until EOI).
 */
int ioapic_route_pci(uint8_t line, int vector, uint32_t dest_apic, bool *level, bool *low)
{
    uint32_t gsi = line;
    uint16_t flags = 0;

    if (line == 0 || line == 0xff) {
        return -1;                                /* no line assigned */
    }
    if (line < 16) {
        gsi = madt.isa_gsi[line];
        flags = madt.isa_flags[line];
    }
    *low = (flags & 3) != 1;                      /* 1 = active high; 0 = bus default */
    *level = ((flags >> 2) & 3) != 1;             /* 1 = edge; 0 = bus default */
    uint32_t max_pin = (ioapic_read(1) >> 16) & 0xff;
    if (gsi < madt.ioapic_gsi_base || gsi - madt.ioapic_gsi_base > max_pin) {
        return -1;
    }
    uint32_t pin = gsi - madt.ioapic_gsi_base;
    uint32_t lo = (uint32_t)vector | (*low ? 1u << 13 : 0) | (*level ? 1u << 15 : 0);
    ioapic_write(0x11 + 2 * pin, dest_apic << 24);
    ioapic_write(0x10 + 2 * pin, lo);
    return (int)gsi;
}

/* ---- legacy PIC and PIT ---- */
void pic_disable(void)
{
    /* Remap out of the exception range first, then mask every line. */
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    outb(0x21, 0xe0);
    outb(0xa1, 0xe8);
    outb(0x21, 0x04);
    outb(0xa1, 0x02);
    outb(0x21, 0x01);
    outb(0xa1, 0x01);
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

void pit_start(uint64_t hz)
{
    uint32_t div = (uint32_t)(1193182 / hz);

    if (div > 65535) {
        div = 65535;
    }
    if (div < 2) {
        div = 2;
    }
    outb(0x43, 0x34);                             /* channel 0, lo/hi, rate generator */
    outb(0x40, div & 0xff);
    outb(0x40, div >> 8);
}
