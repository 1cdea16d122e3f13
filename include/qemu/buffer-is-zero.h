/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Zero-page detection, the hot loop of every precopy pass. The
 * implementation is chosen once at run time from what the CPU offers
 * (AVX2, else SSE2, which every x86-64 has).
 */
#ifndef GODWIT_BUFFER_IS_ZERO_H
#define GODWIT_BUFFER_IS_ZERO_H

#include "qemu/osdep.h"

/* True if @len bytes at @buf are all zero. @buf any alignment, any length. */
bool buffer_is_zero(const void *buf, size_t len);

/* For tests and the benchmark: force one implementation; returns its name. */
typedef enum BufferZeroImpl {
    BUFFER_ZERO_AUTO,
    BUFFER_ZERO_SCALAR,
    BUFFER_ZERO_SSE2,
    BUFFER_ZERO_AVX2,
} BufferZeroImpl;
const char *buffer_is_zero_select(BufferZeroImpl impl);
bool buffer_is_zero_impl_available(BufferZeroImpl impl);

#endif
