/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Loading and storing 16/32/64-bit integers at unaligned byte addresses in
 * a fixed byte order: big-endian for the migration stream, little-endian
 * for guest-visible tables (ACPI, Multiboot, PCI configuration, test
 * frames). Header-only and <stdint.h>-only, so the freestanding guests can
 * share it; compilers turn each function into one load or store (plus a
 * byte swap where the host order differs).
 */
#ifndef GODWIT_BYTEORDER_H
#define GODWIT_BYTEORDER_H

#include <stdint.h>

static inline uint16_t be16_load(const void *ptr)
{
    const uint8_t *p = ptr;

    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t be32_load(const void *ptr)
{
    const uint8_t *p = ptr;

    return (uint32_t)be16_load(p) << 16 | be16_load(p + 2);
}

static inline uint64_t be64_load(const void *ptr)
{
    const uint8_t *p = ptr;

    return (uint64_t)be32_load(p) << 32 | be32_load(p + 4);
}

static inline void be16_store(void *ptr, uint16_t v)
{
    uint8_t *p = ptr;

    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void be32_store(void *ptr, uint32_t v)
{
    uint8_t *p = ptr;

    be16_store(p, (uint16_t)(v >> 16));
    be16_store(p + 2, (uint16_t)v);
}

static inline void be64_store(void *ptr, uint64_t v)
{
    uint8_t *p = ptr;

    be32_store(p, (uint32_t)(v >> 32));
    be32_store(p + 4, (uint32_t)v);
}

static inline uint16_t le16_load(const void *ptr)
{
    const uint8_t *p = ptr;

    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static inline uint32_t le32_load(const void *ptr)
{
    const uint8_t *p = ptr;

    return le16_load(p) | (uint32_t)le16_load(p + 2) << 16;
}

static inline uint64_t le64_load(const void *ptr)
{
    const uint8_t *p = ptr;

    return le32_load(p) | (uint64_t)le32_load(p + 4) << 32;
}

static inline void le16_store(void *ptr, uint16_t v)
{
    uint8_t *p = ptr;

    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void le32_store(void *ptr, uint32_t v)
{
    uint8_t *p = ptr;

    le16_store(p, (uint16_t)v);
    le16_store(p + 2, (uint16_t)(v >> 16));
}

static inline void le64_store(void *ptr, uint64_t v)
{
    uint8_t *p = ptr;

    le32_store(p, (uint32_t)v);
    le32_store(p + 4, (uint32_t)(v >> 32));
}

#endif
