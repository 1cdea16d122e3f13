/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The MMIO dispatch table: which device region answers a guest-physical
 * address that is not RAM. A handful of regions at most (one per BAR), so
 * a list searched linearly is the simplest thing that works; it only
 * changes with the BQL held, and every lookup holds it too.
 */
#include "qemu/osdep.h"
#include "hw/mmio.h"

static GPtrArray *mapped_regions;   /* MMIORegion *, BQL */

void mmio_region_map(MMIORegion *r, uint64_t addr)
{
    if (!mapped_regions) {
        mapped_regions = g_ptr_array_new();
    }
    if (!r->mapped) {
        g_ptr_array_add(mapped_regions, r);
    }
    r->addr = addr;
    r->mapped = true;
}

void mmio_region_unmap(MMIORegion *r)
{
    if (r->mapped) {
        g_ptr_array_remove(mapped_regions, r);
        r->mapped = false;
    }
}

static MMIORegion *mmio_find(uint64_t addr)
{
    if (!mapped_regions) {
        return NULL;
    }
    /* The most recently mapped region wins an overlap (a BAR moved on top of another). */
    for (guint i = mapped_regions->len; i-- > 0;) {
        MMIORegion *r = g_ptr_array_index(mapped_regions, i);
        if (addr >= r->addr && addr - r->addr < r->size) {
            return r;
        }
    }
    return NULL;
}

bool mmio_dispatch(uint64_t addr, uint8_t *data, unsigned len, bool is_write)
{
    MMIORegion *r = mmio_find(addr);
    uint64_t v = 0;

    if (len == 0 || len > 8) {
        return false;
    }
    if (!r) {
        if (!is_write) {
            memset(data, 0xff, len);
        }
        return false;
    }
    if (is_write) {
        memcpy(&v, data, len);
        if (r->write) {
            r->write(r->opaque, addr - r->addr, v, len);
        }
    } else {
        v = r->read ? r->read(r->opaque, addr - r->addr, len) : ~0ULL;
        memcpy(data, &v, len);
    }
    return true;
}
