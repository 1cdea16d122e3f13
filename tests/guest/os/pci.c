/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos PCI: configuration mechanism #1 (0xcf8/0xcfc), a scan of bus 0 and
 * of buses behind bridges that firmware numbered, capability lists, and
 * memory BARs: used where firmware put them, assigned from a free window
 * when it left them 0 (a VMM without firmware may), mapped when above
 * 4 GiB. Ring 0 only; used only with net=on.
 */
#include "gwos.h"

#define PCI_ADDR   0xcf8
#define PCI_DATA   0xcfc

#define PCI_COMMAND        0x04
#define PCI_STATUS         0x06
#define PCI_HEADER_TYPE    0x0e
#define PCI_BAR0           0x10
#define PCI_SECONDARY_BUS  0x19
#define PCI_CAP_PTR        0x34
#define PCI_CMD_MEMORY     0x0002
#define PCI_CMD_MASTER     0x0004
#define PCI_CMD_INTX_OFF   0x0400
#define PCI_STATUS_CAPS    0x0010

/*
 * Window for BARs firmware left unassigned: 0xe0000000 up to the IOAPIC
 * at 0xfec00000. Below RAM's end on no PC machine (QEMU's i440fx keeps
 * RAM below 3.5 GiB, q35 below 2.75 GiB plus MMCONFIG at 0xb0000000,
 * godwit below 3 GiB); the LAPIC (0xfee00000) and KVM's TSS pages
 * (0xfeffc000) lie above its end. Assigned BARs found on the bus are
 * avoided.
 */
#define BAR_WINDOW_START 0xe0000000ul
#define BAR_WINDOW_END   0xfec00000ul
#define MAX_SCANNED      64
#define MAX_BUSES        32

static PciDev scanned[MAX_SCANNED];
static int nr_scanned;
static uint64_t window_next = BAR_WINDOW_START;

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static uint32_t cfg_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint32_t off)
{
    return 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 |
           (off & 0xfc);
}

static uint32_t read32_at(uint8_t bus, uint8_t dev, uint8_t fn, uint32_t off)
{
    outl(PCI_ADDR, cfg_addr(bus, dev, fn, off));
    return inl(PCI_DATA);
}

uint32_t pci_read32(const PciDev *d, uint32_t off)
{
    return read32_at(d->bus, d->dev, d->fn, off);
}

uint16_t pci_read16(const PciDev *d, uint32_t off)
{
    outl(PCI_ADDR, cfg_addr(d->bus, d->dev, d->fn, off));
    return inw((uint16_t)(PCI_DATA + (off & 2)));
}

uint8_t pci_read8(const PciDev *d, uint32_t off)
{
    outl(PCI_ADDR, cfg_addr(d->bus, d->dev, d->fn, off));
    return inb((uint16_t)(PCI_DATA + (off & 3)));
}

void pci_write32(const PciDev *d, uint32_t off, uint32_t v)
{
    outl(PCI_ADDR, cfg_addr(d->bus, d->dev, d->fn, off));
    outl(PCI_DATA, v);
}

void pci_write16(const PciDev *d, uint32_t off, uint16_t v)
{
    outl(PCI_ADDR, cfg_addr(d->bus, d->dev, d->fn, off));
    outw((uint16_t)(PCI_DATA + (off & 2)), v);
}

static void add_function(uint8_t bus, uint8_t dev, uint8_t fn, uint32_t id, uint8_t *buses,
                         int *nbuses)
{
    PciDev d = { bus, dev, fn, (uint16_t)id, (uint16_t)(id >> 16), 0 };

    d.class_rev = pci_read32(&d, 0x08);
    kprintf("gwos: pci %02x:%02x.%u %04x:%04x class %04x\n", bus, dev, fn, d.vendor,
            d.device, d.class_rev >> 16);
    if (nr_scanned < MAX_SCANNED) {
        scanned[nr_scanned++] = d;
    }
    /* A PCI-PCI bridge (header type 1): follow it if firmware gave it a bus. */
    if ((d.class_rev >> 16) == 0x0604 && (pci_read8(&d, PCI_HEADER_TYPE) & 0x7f) == 1) {
        uint8_t sec = pci_read8(&d, PCI_SECONDARY_BUS);
        bool known = sec == 0;
        for (int i = 0; i < *nbuses; i++) {
            known |= buses[i] == sec;
        }
        if (!known && *nbuses < MAX_BUSES) {
            buses[(*nbuses)++] = sec;
        }
    }
}

int pci_scan(PciDev *out, int max)
{
    uint8_t buses[MAX_BUSES] = { 0 };
    int nbuses = 1;

    nr_scanned = 0;
    for (int b = 0; b < nbuses; b++) {
        for (uint8_t dev = 0; dev < 32; dev++) {
            uint32_t id = read32_at(buses[b], dev, 0, 0);
            if ((id & 0xffff) == 0xffff) {
                continue;
            }
            add_function(buses[b], dev, 0, id, buses, &nbuses);
            PciDev f0 = { buses[b], dev, 0, 0, 0, 0 };
            if (!(pci_read8(&f0, PCI_HEADER_TYPE) & 0x80)) {
                continue;               /* single-function device */
            }
            for (uint8_t fn = 1; fn < 8; fn++) {
                id = read32_at(buses[b], dev, fn, 0);
                if ((id & 0xffff) != 0xffff) {
                    add_function(buses[b], dev, fn, id, buses, &nbuses);
                }
            }
        }
    }
    for (int i = 0; i < nr_scanned && i < max; i++) {
        out[i] = scanned[i];
    }
    return nr_scanned < max ? nr_scanned : max;
}

uint8_t pci_find_cap(const PciDev *d, uint8_t cap_id, uint8_t from)
{
    uint8_t p;

    if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAPS)) {
        return 0;
    }
    p = from ? pci_read8(d, from + 1u) : pci_read8(d, PCI_CAP_PTR);
    /* 48 capabilities at most fit in 192 bytes: a bound against loops. */
    for (int n = 0; n < 48 && p >= 0x40; n++) {
        p &= 0xfc;
        if (pci_read8(d, p) == cap_id) {
            return p;
        }
        p = pci_read8(d, p + 1u);
    }
    return 0;
}

/*
 * Size of memory BAR @bar (0 if absent or I/O); *is64 says whether it
 * takes two registers. Memory decode is off while the BAR reads back its
 * size mask, so the device answers no stray address meanwhile.
 */
static uint64_t bar_size(const PciDev *d, int bar, bool *is64)
{
    uint32_t off = PCI_BAR0 + 4u * (uint32_t)bar;
    uint32_t lo = pci_read32(d, off);
    uint16_t cmd = pci_read16(d, PCI_COMMAND);
    uint64_t mask;

    *is64 = (lo & 0x7) == 0x4;
    if (lo & 1) {
        return 0;
    }
    pci_write16(d, PCI_COMMAND, cmd & ~PCI_CMD_MEMORY);
    pci_write32(d, off, 0xffffffffu);
    mask = pci_read32(d, off) & ~0xfull;
    pci_write32(d, off, lo);
    if (*is64 && bar < 5) {
        uint32_t hi = pci_read32(d, off + 4);
        pci_write32(d, off + 4, 0xffffffffu);
        mask |= (uint64_t)pci_read32(d, off + 4) << 32;
        pci_write32(d, off + 4, hi);
    } else {
        mask |= 0xffffffff00000000ull;
    }
    pci_write16(d, PCI_COMMAND, cmd);
    return mask & 0xfffffff0u ? ~mask + 1 : 0;
}

static uint64_t bar_addr(const PciDev *d, int bar)
{
    uint32_t lo = pci_read32(d, PCI_BAR0 + 4u * (uint32_t)bar);
    uint64_t a = lo & ~0xfull;

    if ((lo & 0x7) == 0x4 && bar < 5) {
        a |= (uint64_t)pci_read32(d, PCI_BAR0 + 4u * (uint32_t)bar + 4) << 32;
    }
    return a;
}

/* Does [a, a + size) overlap a memory BAR firmware assigned on the bus? */
static uint64_t overlap_end(uint64_t a, uint64_t size)
{
    for (int i = 0; i < nr_scanned; i++) {
        const PciDev *d = &scanned[i];
        if ((pci_read8(d, PCI_HEADER_TYPE) & 0x7f) != 0) {
            continue;                   /* bridges: their BARs are rare, windows ignored */
        }
        for (int b = 0; b < 6; b++) {
            bool is64;
            uint64_t base = bar_addr(d, b);
            uint64_t len = base ? bar_size(d, b, &is64) : 0;
            if (len && base < a + size && a < base + len) {
                return base + len;
            }
            if (len && is64) {
                b++;
            }
        }
    }
    return 0;
}

uint64_t pci_bar_address(const PciDev *d, int bar)
{
    uint32_t off = PCI_BAR0 + 4u * (uint32_t)bar;
    uint32_t lo;
    bool is64;
    uint64_t a, size;

    if (bar < 0 || bar > 5) {
        return 0;
    }
    lo = pci_read32(d, off);
    if (lo & 1) {
        return 0;                       /* I/O space: not used by this driver */
    }
    a = bar_addr(d, bar);
    if (a) {
        return a;
    }
    size = bar_size(d, bar, &is64);
    if (!size) {
        return 0;
    }
    /* Naturally aligned, first fit in the window, around assigned BARs. */
    a = (window_next + size - 1) & ~(size - 1);
    for (int tries = 0; tries < 64 && a + size <= BAR_WINDOW_END; tries++) {
        uint64_t end = overlap_end(a, size);
        if (!end) {
            break;
        }
        a = (end + size - 1) & ~(size - 1);
    }
    if (a + size > BAR_WINDOW_END || overlap_end(a, size)) {
        kprintf("gwos: warning: pci %02x:%02x.%u bar%d (0x%lx bytes) does not fit the "
                "window 0x%lx-0x%lx\n", d->bus, d->dev, d->fn, bar, size,
                BAR_WINDOW_START, BAR_WINDOW_END);
        return 0;
    }
    uint16_t cmd = pci_read16(d, PCI_COMMAND);
    pci_write16(d, PCI_COMMAND, cmd & ~PCI_CMD_MEMORY);
    pci_write32(d, off, (uint32_t)a | (lo & 0xf));
    if (is64) {
        pci_write32(d, off + 4, (uint32_t)(a >> 32));
    }
    pci_write16(d, PCI_COMMAND, cmd);
    window_next = a + size;
    kprintf("gwos: pci %02x:%02x.%u bar%d assigned 0x%lx (0x%lx bytes)\n", d->bus, d->dev,
            d->fn, bar, a, size);
    return a;
}

void pci_enable(const PciDev *d)
{
    uint16_t cmd = pci_read16(d, PCI_COMMAND);

    pci_write16(d, PCI_COMMAND,
                (uint16_t)((cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER) & ~PCI_CMD_INTX_OFF));
}

bool pci_map_high(uint64_t addr, uint64_t len)
{
    extern uint64_t boot_pd[];

    if (addr + len > 64ull << 30) {
        return false;                   /* beyond what boot.S's page directories cover */
    }
    for (uint64_t a = addr & ~0x1fffffull; a < addr + len; a += 0x200000) {
        if (a >= 4ull << 30) {
            boot_pd[a >> 21] = a | 0x87 | 0x18;     /* 2 MiB, user, PWT | PCD */
        }
    }
    __asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
    return true;
}
