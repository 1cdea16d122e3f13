/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The received-pages bitmap a destination sends after MIG_RP_MSG_RECV_BITMAP
 * during postcopy recovery (be64 size, little-endian 64-bit words, be64 end
 * marker) and the source's use of it: what it still has to send. Pure.
 */
#ifndef GODWIT_MIGRATION_RECV_BITMAP_H
#define GODWIT_MIGRATION_RECV_BITMAP_H

#include "qemu/osdep.h"

/* Bytes of bitmap for @nbits pages: whole 64-bit words. */
uint64_t recv_bitmap_size(uint64_t nbits);

/*
 * The bytes that follow the RECV_BITMAP message: be64 size, the bitmap
 * (bit i of the little-endian word i / 64 = page i received), be64
 * MIG_RECV_BITMAP_END. @bits holds @nbits bits in host unsigned longs.
 */
uint8_t *recv_bitmap_encode(const unsigned long *bits, uint64_t nbits, size_t *len);

/*
 * Source: from the @size bitmap bytes that followed a be64 @size (already
 * checked equal to recv_bitmap_size(@nbits)), set @dirty (host unsigned
 * longs, @nbits bits) to the pages NOT received, and return how many.
 * Bits past @nbits in the input are ignored.
 */
uint64_t recv_bitmap_to_dirty(const uint8_t *bytes, uint64_t nbits, unsigned long *dirty);

#endif
