/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos ACPI reader: find the RSDP (EBDA, then 0xe0000..0xfffff), walk the
 * XSDT or RSDT to the MADT ("APIC") and collect the local APIC ids, the
 * first IOAPIC and the ISA interrupt source overrides.
 */
#include "gwos.h"

Madt madt;

static bool sum_ok(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++) {
        s += p[i];
    }
    return s == 0;
}

static uint32_t rd32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static const uint8_t *scan_rsdp(uint64_t start, uint64_t len)
{
    for (uint64_t a = start; a + 20 <= start + len; a += 16) {
        const uint8_t *p = (const uint8_t *)(uintptr_t)a;
        if (p[0] == 'R' && p[1] == 'S' && p[2] == 'D' && p[3] == ' ' && p[4] == 'P' &&
            p[5] == 'T' && p[6] == 'R' && p[7] == ' ' && sum_ok(p, 20)) {
            return p;
        }
    }
    return NULL;
}

static void parse_madt(const uint8_t *t)
{
    uint32_t len = rd32(t + 4);
    const uint8_t *p = t + 44, *end = t + len;

    while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
        switch (p[0]) {
        case 0:                 /* processor local APIC */
            if ((rd32(p + 4) & 3) && madt.ncpus < GWOS_MAX_CPUS) {
                madt.apic_ids[madt.ncpus++] = p[3];
            }
            break;
        case 1:                 /* IOAPIC: the first one */
            if (!madt.ioapic_addr) {
                madt.ioapic_addr = rd32(p + 4);
                madt.ioapic_gsi_base = rd32(p + 8);
            }
            break;
        case 2:                 /* interrupt source override */
            if (p[2] == 0 && p[3] < 16) {
                madt.isa_gsi[p[3]] = rd32(p + 4);
                madt.isa_flags[p[3]] = (uint16_t)(p[8] | p[9] << 8);
            }
            break;
        default:
            break;
        }
        p += p[1];
    }
}

bool madt_find(void)
{
    const uint8_t *rsdp = NULL;
    uintptr_t bda = 0x40e;      /* BIOS data area: EBDA segment */
    __asm__("" : "+r"(bda));    /* hide the constant address from -Warray-bounds */
    uint64_t ebda = (uint64_t)*(volatile uint16_t *)bda << 4;

    for (int i = 0; i < 16; i++) {
        madt.isa_gsi[i] = (uint32_t)i;
    }
    madt.ioapic_addr = 0;
    if (ebda >= 0x80000 && ebda < 0xa0000) {
        rsdp = scan_rsdp(ebda, 1024);
    }
    if (!rsdp) {
        rsdp = scan_rsdp(0xe0000, 0x20000);
    }
    if (!rsdp) {
        return false;
    }
    uint64_t root;
    int esz;
    if (rsdp[15] >= 2 && rd64(rsdp + 24) && sum_ok(rsdp, rd32(rsdp + 20))) {
        root = rd64(rsdp + 24);
        esz = 8;
    } else {
        root = rd32(rsdp + 16);
        esz = 4;
    }
    const uint8_t *r = (const uint8_t *)(uintptr_t)root;
    uint32_t rlen = rd32(r + 4);
    if (rlen < 36 || !sum_ok(r, rlen)) {
        kprintf("gwos: warning: bad %s checksum\n", esz == 8 ? "XSDT" : "RSDT");
        return false;
    }
    for (uint32_t off = 36; off + esz <= rlen; off += esz) {
        uint64_t a = esz == 8 ? rd64(r + off) : rd32(r + off);
        const uint8_t *t = (const uint8_t *)(uintptr_t)a;
        if (t[0] == 'A' && t[1] == 'P' && t[2] == 'I' && t[3] == 'C') {
            if (!sum_ok(t, rd32(t + 4))) {
                kprintf("gwos: warning: bad MADT checksum\n");
                return false;
            }
            parse_madt(t);
            return madt.ncpus > 0;
        }
    }
    return false;
}
