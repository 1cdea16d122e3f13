/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Every zero-check implementation agrees with a byte loop, at every offset and length. */
#include "qemu/osdep.h"
#include "qemu/buffer-is-zero.h"

static bool reference(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

static void check_impl(gconstpointer data)
{
    BufferZeroImpl impl = GPOINTER_TO_INT(data);
    g_autofree uint8_t *buf = g_malloc0(8192 + 64);

    if (!buffer_is_zero_impl_available(impl)) {
        g_test_skip("SKIP: this CPU lacks the instruction set of this implementation");
        return;
    }
    buffer_is_zero_select(impl);
    /* Unaligned starts, odd lengths, one non-zero byte anywhere (incl. the last). */
    for (size_t start = 0; start < 33; start += 7) {
        for (size_t len = 0; len <= 4096 + 17; len += (len < 300 ? 1 : 509)) {
            uint8_t *p = buf + start;
            g_assert_true(buffer_is_zero(p, len) == reference(p, len));
            for (size_t pos = 0; pos < len; pos += (len < 300 ? 1 : 97)) {
                p[pos] = 0x80;
                g_assert_false(buffer_is_zero(p, len));
                p[pos] = 0;
            }
            if (len) {
                p[len - 1] = 1;
                g_assert_false(buffer_is_zero(p, len));
                p[len - 1] = 0;
            }
        }
    }
    buffer_is_zero_select(BUFFER_ZERO_AUTO);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/buffer-is-zero/scalar", GINT_TO_POINTER(BUFFER_ZERO_SCALAR), check_impl);
    g_test_add_data_func("/buffer-is-zero/sse2", GINT_TO_POINTER(BUFFER_ZERO_SSE2), check_impl);
    g_test_add_data_func("/buffer-is-zero/avx2", GINT_TO_POINTER(BUFFER_ZERO_AVX2), check_impl);
    return g_test_run();
}
