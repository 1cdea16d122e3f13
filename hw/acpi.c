/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ACPI tables for the PC machine (RSDP, RSDT, XSDT, MADT), written at
 * kernel load because godwit runs no firmware. Only what a guest needs to
 * find its vCPUs, the IOAPIC and the ISA IRQ wiring; no DSDT/FADT.
 */
#include "qemu/osdep.h"
#include "hw/acpi.h"
#include "qemu/byteorder.h"

#define ACPI_OEM_ID        "GODWIT"
#define ACPI_OEM_TABLE_ID  "GODWITPC"
#define ACPI_CREATOR_ID    "GDWT"
#define ACPI_HDR_LEN       36

static uint8_t checksum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;

    for (size_t i = 0; i < len; i++) {
        s += p[i];
    }
    return (uint8_t)-s;
}

/* The common 36-byte header; the checksum is filled in once the body is. */
static void table_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(t, sig, 4);
    le32_store(t + 4, len);
    t[8] = rev;
    memcpy(t + 10, ACPI_OEM_ID, 6);
    memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
    le32_store(t + 24, 1);                       /* OEM revision */
    memcpy(t + 28, ACPI_CREATOR_ID, 4);
    le32_store(t + 32, 1);                       /* creator revision */
}

static void table_finish(uint8_t *t, uint32_t len)
{
    t[9] = 0;
    t[9] = checksum(t, len);
}

size_t acpi_build_tables(uint8_t *buf, size_t size, uint64_t base, int ncpus)
{
    /* Layout: RSDP (36, 16-aligned) | RSDT | XSDT | MADT, each 16-aligned. */
    const size_t rsdp_off = 0, rsdt_off = 48;
    const uint32_t rsdt_len = ACPI_HDR_LEN + 4;
    const size_t xsdt_off = rsdt_off + 48;
    const uint32_t xsdt_len = ACPI_HDR_LEN + 8;
    const size_t madt_off = xsdt_off + 48;
    const uint32_t madt_len = 44 + 8 * (uint32_t)ncpus + 12 + 10 + 6;
    const size_t total = madt_off + madt_len;

    if (ncpus < 1 || ncpus > 255 || total > size) {
        return 0;
    }
    memset(buf, 0, total);

    uint8_t *m = buf + madt_off;
    table_header(m, "APIC", madt_len, 3);
    le32_store(m + 36, ACPI_LAPIC_ADDR);
    le32_store(m + 40, 1);                       /* PCAT_COMPAT: 8259s present */
    uint8_t *e = m + 44;
    for (int i = 0; i < ncpus; i++, e += 8) {
        e[0] = 0;                           /* processor local APIC */
        e[1] = 8;
        e[2] = (uint8_t)i;                  /* ACPI processor UID */
        e[3] = (uint8_t)i;                  /* APIC id = vCPU index (CPUID agrees) */
        le32_store(e + 4, 1);                    /* enabled */
    }
    e[0] = 1;                               /* IOAPIC */
    e[1] = 12;
    e[2] = 0;                               /* IOAPIC id */
    le32_store(e + 4, ACPI_IOAPIC_ADDR);
    le32_store(e + 8, 0);                        /* GSI base */
    e += 12;
    /*
     * IRQ0 (PIT) arrives on IOAPIC pin 2, as on PCs; kvm_init() sets KVM's
     * GSI routing to match. Flags 0: ISA defaults (edge, active high).
     */
    e[0] = 2;
    e[1] = 10;
    e[2] = 0;                               /* ISA bus */
    e[3] = 0;                               /* IRQ0 */
    le32_store(e + 4, 2);                        /* GSI 2 */
    le16_store(e + 8, 0);
    e += 10;
    e[0] = 4;                               /* local APIC NMI */
    e[1] = 6;
    e[2] = 0xff;                            /* all processors */
    le16_store(e + 3, 0);
    e[5] = 1;                               /* LINT1 */
    table_finish(m, madt_len);

    uint8_t *x = buf + xsdt_off;
    table_header(x, "XSDT", xsdt_len, 1);
    le64_store(x + 36, base + madt_off);
    table_finish(x, xsdt_len);

    uint8_t *r = buf + rsdt_off;
    table_header(r, "RSDT", rsdt_len, 1);
    le32_store(r + 36, (uint32_t)(base + madt_off));
    table_finish(r, rsdt_len);

    /* RSDP revision 2: the v1 checksum covers 20 bytes, the extended one 36. */
    uint8_t *p = buf + rsdp_off;
    memcpy(p, "RSD PTR ", 8);
    memcpy(p + 9, ACPI_OEM_ID, 6);
    p[15] = 2;
    le32_store(p + 16, (uint32_t)(base + rsdt_off));
    le32_store(p + 20, 36);
    le64_store(p + 24, base + xsdt_off);
    p[8] = checksum(p, 20);
    p[32] = checksum(p, 36);
    return total;
}

bool acpi_setup(Machine *ms, GError **errp)
{
    uint8_t buf[4096];
    size_t n = acpi_build_tables(buf, sizeof(buf), ACPI_TABLES_BASE, ms->smp_cpus);

    if (!n) {
        error_setg(errp, "ACPI tables for %d vCPUs do not fit", ms->smp_cpus);
        return false;
    }
    return machine_ram_write(ms, ACPI_TABLES_BASE, buf, n, errp);
}
