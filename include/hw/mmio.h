/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * MMIO dispatch for userspace devices (PCI BARs). A guest access to
 * guest-physical space that no memory slot backs exits KVM_RUN
 * (KVM_EXIT_MMIO); the vCPU thread takes the BQL and calls mmio_dispatch().
 * Regions are added once and mapped, moved and unmapped at run time (a
 * guest may move a BAR), always with the BQL held.
 */
#ifndef GODWIT_HW_MMIO_H
#define GODWIT_HW_MMIO_H

#include "qemu/osdep.h"

/*
 * Accesses are 1, 2, 4 or 8 bytes at @offset inside the region (possibly
 * unaligned, possibly running past its end: the callee clips). Values are
 * little-endian in the low bytes of the uint64_t. BQL held.
 */
typedef uint64_t (*MMIOReadFn)(void *opaque, uint64_t offset, unsigned size);
typedef void (*MMIOWriteFn)(void *opaque, uint64_t offset, uint64_t val, unsigned size);

typedef struct MMIORegion {
    const char *name;
    uint64_t size;
    MMIOReadFn read;
    MMIOWriteFn write;
    void *opaque;
    /* Owned by hw/mmio.c: */
    bool mapped;
    uint64_t addr;
} MMIORegion;

/* Map @r at guest-physical @addr (moves it if mapped already). BQL held. */
void mmio_region_map(MMIORegion *r, uint64_t addr);
void mmio_region_unmap(MMIORegion *r);

/*
 * Dispatch one access from a KVM_EXIT_MMIO. Reads nobody claims return all
 * ones, writes vanish, as on a PC bus. @data has @len bytes (1..8).
 * Returns whether a region claimed it. BQL held.
 */
bool mmio_dispatch(uint64_t addr, uint8_t *data, unsigned len, bool is_write);

#endif
