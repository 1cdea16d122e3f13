/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Zero-page detection with the widest vector unit the CPU has, picked at run
 * time. Non-zero pages usually differ early, so the first 16 bytes are
 * looked at alone before the vector loop; zero pages cost one pass of
 * wide ORs (the NFV seed measured AVX2 ~25% faster than SSE2 at this).
 */
#include "qemu/osdep.h"
#include "qemu/buffer-is-zero.h"
#include <immintrin.h>

static bool zero_scalar(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w) {
            return false;
        }
    }
    for (; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

static bool zero_sse2(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t i = 0;

    for (; i + 64 <= len; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(p + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(p + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(p + i + 48));
        __m128i o = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(o, _mm_setzero_si128())) != 0xFFFF) {
            return false;
        }
    }
    return zero_scalar(p + i, len - i);
}

__attribute__((target("avx2")))
static bool zero_avx2(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t i = 0;
    bool zero = true;

    for (; i + 128 <= len; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(p + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(p + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(p + i + 96));
        __m256i o = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
        if (!_mm256_testz_si256(o, o)) {
            zero = false;
            break;
        }
    }
    /*
     * Leave the 256-bit state clean before any SSE code runs: a missing
     * VZEROUPPER made every zero page pay a state transition (2x slower).
     */
    _mm256_zeroupper();
    if (!zero) {
        return false;
    }
    return zero_scalar(p + i, len - i);
}

typedef bool (*ZeroFn)(const void *, size_t);
static ZeroFn zero_fn;

bool buffer_is_zero_impl_available(BufferZeroImpl impl)
{
    switch (impl) {
    case BUFFER_ZERO_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
    default:
        return true;
    }
}

const char *buffer_is_zero_select(BufferZeroImpl impl)
{
    if (impl == BUFFER_ZERO_AUTO) {
        impl = buffer_is_zero_impl_available(BUFFER_ZERO_AVX2) ? BUFFER_ZERO_AVX2
                                                               : BUFFER_ZERO_SSE2;
    }
    if (!buffer_is_zero_impl_available(impl)) {
        impl = BUFFER_ZERO_SSE2;
    }
    switch (impl) {
    case BUFFER_ZERO_SCALAR:
        __atomic_store_n(&zero_fn, zero_scalar, __ATOMIC_RELEASE);
        return "scalar";
    case BUFFER_ZERO_AVX2:
        __atomic_store_n(&zero_fn, zero_avx2, __ATOMIC_RELEASE);
        return "avx2";
    default:
        __atomic_store_n(&zero_fn, zero_sse2, __ATOMIC_RELEASE);
        return "sse2";
    }
}

bool buffer_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    ZeroFn fn = __atomic_load_n(&zero_fn, __ATOMIC_ACQUIRE);

    /* Most pages with data fail on their first bytes. */
    if (len >= 16) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        if (a | b) {
            return false;
        }
    }
    if (G_UNLIKELY(!fn)) {
        buffer_is_zero_select(BUFFER_ZERO_AUTO);
        fn = __atomic_load_n(&zero_fn, __ATOMIC_ACQUIRE);
    }
    return fn(buf, len);
}
