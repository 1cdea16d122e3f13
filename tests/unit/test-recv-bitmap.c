/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The RECV_BITMAP payload of postcopy recovery (migration/recv-bitmap.c):
 * golden bytes of the encoding (be64 size, little-endian 64-bit words,
 * be64 end marker) and the source's to-send set rebuilt from it.
 */
#include "qemu/osdep.h"
#include "migration/format.h"
#include "migration/recv-bitmap.h"

#define LONG_BITS (sizeof(unsigned long) * 8)

static void set_host_bit(unsigned long *map, uint64_t n)
{
    map[n / LONG_BITS] |= 1UL << (n % LONG_BITS);
}

static bool host_bit(const unsigned long *map, uint64_t n)
{
    return (map[n / LONG_BITS] >> (n % LONG_BITS)) & 1;
}

static void test_size(void)
{
    g_assert_cmpuint(recv_bitmap_size(0), ==, 0);
    g_assert_cmpuint(recv_bitmap_size(1), ==, 8);
    g_assert_cmpuint(recv_bitmap_size(64), ==, 8);
    g_assert_cmpuint(recv_bitmap_size(65), ==, 16);
    /* 128 MiB of 4 KiB pages. */
    g_assert_cmpuint(recv_bitmap_size(32768), ==, 4096);
}

/* 70 pages, received: 0, 1, 9, 63, 64, 69. */
static void test_encode_golden(void)
{
    unsigned long bits[2] = { 0 };
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,    /* be64 size 16 */
        0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,    /* word 0, little-endian */
        0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,    /* word 1: pages 64 and 69 */
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,    /* end marker */
    };
    size_t len;

    for (unsigned i = 0; i < 6; i++) {
        static const unsigned pages[] = { 0, 1, 9, 63, 64, 69 };
        set_host_bit(bits, pages[i]);
    }
    g_autofree uint8_t *out = recv_bitmap_encode(bits, 70, &len);
    g_assert_cmpmem(out, len, want, sizeof(want));
}

/* A bit past the last page in the host map never reaches the wire. */
static void test_encode_ignores_tail(void)
{
    unsigned long bits[1] = { ~0UL };
    size_t len;

    g_autofree uint8_t *out = recv_bitmap_encode(bits, 3, &len);
    g_assert_cmpuint(len, ==, 8 + 8 + 8);
    g_assert_cmphex(out[8], ==, 0x07);
    for (unsigned i = 9; i < 16; i++) {
        g_assert_cmphex(out[i], ==, 0);
    }
}

static void test_to_dirty(void)
{
    /* Received: 0-7 and 66 of 70 pages (bits past 70 set: ignored). */
    static const uint8_t bytes[16] = {
        0xff, 0, 0, 0, 0, 0, 0, 0,
        0x04, 0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };
    unsigned long dirty[2] = { ~0UL, ~0UL };

    uint64_t n = recv_bitmap_to_dirty(bytes, 70, dirty);
    g_assert_cmpuint(n, ==, 70 - 8 - 1);
    for (uint64_t i = 0; i < 70; i++) {
        bool received = i < 8 || i == 66;
        g_assert_cmpint(host_bit(dirty, i), ==, !received);
    }
    /* Nothing past the last page is left set (the map was all ones before). */
    for (uint64_t i = 70; i < 2 * LONG_BITS; i++) {
        g_assert_false(host_bit(dirty, i));
    }
}

/* Encode on the destination, rebuild on the source: exactly the complement. */
static void test_round_trip(void)
{
    enum { NPAGES = 32768 + 13 };
    unsigned long *recv = g_new0(unsigned long, NPAGES / LONG_BITS + 1);
    unsigned long *dirty = g_new0(unsigned long, NPAGES / LONG_BITS + 1);
    GRand *r = g_rand_new_with_seed(10);
    uint64_t received = 0;
    size_t len;

    for (uint64_t i = 0; i < NPAGES; i++) {
        if (g_rand_int_range(r, 0, 3) == 0) {
            set_host_bit(recv, i);
            received++;
        }
    }
    g_autofree uint8_t *wire = recv_bitmap_encode(recv, NPAGES, &len);
    g_assert_cmpuint(len, ==, 16 + recv_bitmap_size(NPAGES));
    uint64_t n = recv_bitmap_to_dirty(wire + 8, NPAGES, dirty);
    g_assert_cmpuint(n, ==, NPAGES - received);
    for (uint64_t i = 0; i < NPAGES; i++) {
        g_assert_cmpint(host_bit(dirty, i), !=, host_bit(recv, i));
    }
    g_rand_free(r);
    g_free(recv);
    g_free(dirty);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/recv-bitmap/size", test_size);
    g_test_add_func("/recv-bitmap/encode-golden", test_encode_golden);
    g_test_add_func("/recv-bitmap/encode-ignores-tail", test_encode_ignores_tail);
    g_test_add_func("/recv-bitmap/to-dirty", test_to_dirty);
    g_test_add_func("/recv-bitmap/round-trip", test_round_trip);
    return g_test_run();
}
