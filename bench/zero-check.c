/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * How fast each zero-page check runs: GB/s over zero pages (the full scan)
 * and over pages with data in their middle (an early exit would not help).
 * Usage: build/bench/zero-check [MiB]
 */
#include "qemu/osdep.h"
#include "qemu/buffer-is-zero.h"

static double run(BufferZeroImpl impl, const uint8_t *buf, size_t size)
{
    int64_t t0;
    size_t zero = 0;

    buffer_is_zero_select(impl);
    /* Warm up (page-in, AVX frequency transition) before the clock starts. */
    for (size_t off = 0; off < size; off += 4096) {
        zero += buffer_is_zero(buf + off, 4096);
    }
    t0 = g_get_monotonic_time();
    for (int rep = 0; rep < 5; rep++) {
        for (size_t off = 0; off < size; off += 4096) {
            zero += buffer_is_zero(buf + off, 4096);
        }
    }
    int64_t us = g_get_monotonic_time() - t0;
    if (zero == (size_t)-1) {
        printf("impossible\n");
    }
    return (double)size * 5 / 1e3 / (double)MAX(us, 1);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 256;
    size_t size = mib << 20;
    uint8_t *zeros = g_malloc0(size);
    uint8_t *data = g_malloc0(size);
    static const BufferZeroImpl impls[] = { BUFFER_ZERO_SCALAR, BUFFER_ZERO_SSE2, BUFFER_ZERO_AVX2 };
    static const char *const names[] = { "scalar", "sse2", "avx2" };

    memset(zeros, 0, size);
    for (size_t off = 0; off < size; off += 4096) {
        data[off + 4095] = 1;    /* non-zero only at the end: a full scan */
    }
    printf("%-8s %14s %20s\n", "impl", "zero GB/s", "data-at-end GB/s");
    for (size_t i = 0; i < G_N_ELEMENTS(impls); i++) {
        if (!buffer_is_zero_impl_available(impls[i])) {
            printf("%-8s %14s %20s\n", names[i], "n/a", "n/a");
            continue;
        }
        printf("%-8s %14.2f %20.2f\n", names[i], run(impls[i], zeros, size),
               run(impls[i], data, size));
    }
    printf("auto: %s\n", buffer_is_zero_select(BUFFER_ZERO_AUTO));
    return 0;
}
