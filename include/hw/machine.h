/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The machine: one KVM VM with its guest RAM, vCPUs and devices.
 *
 * Guest RAM is one RAMBlock ("pc.ram") mapped into guest-physical space by
 * one or two memory slots after the PC convention: [0, below_4g) and, when
 * RAM does not fit below the PCI hole, [4 GiB, 4 GiB + rest). Migration
 * works in RAMBlock offsets; the slots translate GPAs.
 */
#ifndef GODWIT_MACHINE_H
#define GODWIT_MACHINE_H

#include "qemu/osdep.h"

/* Highest RAM address below 4 GiB; the rest of RAM starts at 4 GiB. */
#define PC_BELOW_4G_MAX   0xC0000000ULL  /* 3 GiB: hole for LAPIC/IOAPIC/devices */
#define PC_ABOVE_4G_BASE  0x100000000ULL

typedef struct RAMBlock {
    char name[32];            /* "pc.ram" */
    uint8_t *host;            /* mapping of the whole block */
    uint64_t size;            /* bytes */
    size_t page_size;         /* host page size backing it (4 KiB or huge) */
    int fd;                   /* backend fd (memfd/file) or -1 for private anonymous */
    uint64_t fd_offset;       /* where the block starts in @fd */
    bool shared;              /* MAP_SHARED backend */
    bool hugetlb;             /* backed by hugetlbfs */
    /*
     * This process created the memory empty (anonymous, a new memfd, a new
     * or empty file): a page never written reads as zero. False for an
     * existing file with content, whose pages hold whatever it held.
     */
    bool zero_at_start;
    char *backend_id;         /* -object id, or NULL for the default backend */
    char *mem_path;           /* memory-backend-file mem-path, or NULL */
} RAMBlock;

typedef struct MemSlot {
    uint32_t slot;            /* KVM slot id */
    uint64_t gpa;
    uint64_t size;
    uint64_t block_offset;    /* offset into the RAMBlock */
    uint32_t flags;           /* current KVM_MEM_* flags */
} MemSlot;

typedef struct CPUState CPUState;

typedef struct Machine {
    int kvm_fd;
    int vm_fd;
    int vcpu_mmap_size;
    int smp_cpus;
    CPUState **cpus;
    RAMBlock *ram;
    MemSlot slots[2];
    int nr_slots;
    char *type;               /* "q35", "pc", "none" */
    char *name;               /* -name, or NULL */
    char *kernel;             /* -kernel */
    char *append;             /* -append */
    char *modules;            /* -initrd: Multiboot modules, comma separated */
    char *incoming;           /* -incoming URI / "defer", or NULL */
    uint64_t entry_point;     /* set by the loader */
    uint64_t boot_info;       /* Multiboot info address (EBX) */
} Machine;

/* The one machine of this process (set by main before the main loop runs). */
extern Machine *current_machine;

/* Guest-physical -> host pointer for [gpa, gpa + len) inside one slot, or NULL. */
void *machine_gpa_to_hva(Machine *ms, uint64_t gpa, uint64_t len);
/* Guest-physical -> RAMBlock offset; false when not RAM. */
bool machine_gpa_to_offset(Machine *ms, uint64_t gpa, uint64_t *offset);

/*
 * Write into guest RAM on behalf of godwit itself (loaders, devices). Every
 * such write goes through here so that migration sees it as dirty: KVM's
 * dirty log only records guest writes.
 */
bool machine_ram_write(Machine *ms, uint64_t gpa, const void *buf, uint64_t len,
                       GError **errp);
/* Read guest RAM (pmemsave, xp). Unmapped ranges are an error. */
bool machine_ram_read(Machine *ms, uint64_t gpa, void *buf, uint64_t len,
                      GError **errp);

/*
 * Hook migration installs while it tracks dirty memory: called for every
 * machine_ram_write with the RAMBlock offset range. NULL when not tracking.
 */
typedef void (*RAMDirtyHook)(RAMBlock *rb, uint64_t offset, uint64_t len);
void machine_set_ram_dirty_hook(RAMDirtyHook hook);

#endif
