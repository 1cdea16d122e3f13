/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The RECV_BITMAP payload of postcopy recovery: encoding on the destination
 * and, on the source, the set of pages still to send (see recv-bitmap.h and
 * docs/devel/migration/stream.md).
 */
#include "qemu/osdep.h"
#include "migration/format.h"
#include "migration/recv-bitmap.h"

#define HOST_BITS_PER_LONG (sizeof(unsigned long) * 8)

uint64_t recv_bitmap_size(uint64_t nbits)
{
    return (nbits + 63) / 64 * 8;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    }
}

static bool host_bit(const unsigned long *map, uint64_t n)
{
    return (map[n / HOST_BITS_PER_LONG] >> (n % HOST_BITS_PER_LONG)) & 1;
}

uint8_t *recv_bitmap_encode(const unsigned long *bits, uint64_t nbits, size_t *len)
{
    uint64_t size = recv_bitmap_size(nbits);
    uint8_t *buf = g_malloc0(size + 16);

    put_be64(buf, size);
    /* Little-endian words: page i is bit i % 8 of byte i / 8, whatever the host. */
    for (uint64_t i = 0; i < nbits; i++) {
        if (host_bit(bits, i)) {
            buf[8 + i / 8] |= (uint8_t)(1u << (i % 8));
        }
    }
    put_be64(buf + 8 + size, MIG_RECV_BITMAP_END);
    *len = (size_t)(size + 16);
    return buf;
}

uint64_t recv_bitmap_to_dirty(const uint8_t *bytes, uint64_t nbits, unsigned long *dirty)
{
    uint64_t count = 0;

    memset(dirty, 0, (nbits + HOST_BITS_PER_LONG - 1) / HOST_BITS_PER_LONG *
           sizeof(unsigned long));
    for (uint64_t i = 0; i < nbits; i++) {
        if (!((bytes[i / 8] >> (i % 8)) & 1)) {
            dirty[i / HOST_BITS_PER_LONG] |= 1UL << (i % HOST_BITS_PER_LONG);
            count++;
        }
    }
    return count;
}
