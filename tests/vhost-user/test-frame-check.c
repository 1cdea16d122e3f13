/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of the numbered-frame stream checker the example back-end and
 * the Linux guest program share: ok, gaps, duplicates, corruption (header,
 * length, payload), frames that are not ours, and per-stream bookkeeping.
 */
#include "frame-check.h"
#include "net/numbered-frame.h"

#include <glib.h>
#include <string.h>

static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };

static uint32_t frame(uint8_t *buf, uint16_t stream, uint64_t seq)
{
    return nf_fill(buf, 200, mac, stream, seq, 0);
}

#define V(field) ((guint64)atomic_load(&fc.field))

static void test_sequence(void)
{
    FrameCheck fc;
    uint8_t buf[NF_MAX_LEN];

    g_assert_true(frame_check_init(&fc));
    /* Stream 1 starts at 5: 5 frames before we looked. */
    for (uint64_t s = 5; s < 10; s++) {
        g_assert_cmpint(frame_check_add(&fc, buf, frame(buf, 1, s)), ==, NF_OK);
    }
    /* 10 and 11 lost, 12 arrives; 12 again; 11 late. */
    frame_check_add(&fc, buf, frame(buf, 1, 12));
    frame_check_add(&fc, buf, frame(buf, 1, 12));
    frame_check_add(&fc, buf, frame(buf, 1, 11));
    /* Stream 2 from 0, interleaved, no loss. */
    for (uint64_t s = 0; s < 3; s++) {
        frame_check_add(&fc, buf, frame(buf, 2, s));
    }
    g_assert_cmpuint(V(ok), ==, 5 + 3 + 3);
    g_assert_cmpuint(V(gaps), ==, 2);
    g_assert_cmpuint(V(dups), ==, 2);
    g_assert_cmpuint(V(streams), ==, 2);
    g_assert_cmpuint(V(before_first), ==, 5);
    g_assert_cmpuint(V(corrupt), ==, 0);
    g_assert_cmpuint(V(other), ==, 0);
    frame_check_free(&fc);
}

static void test_damage(void)
{
    FrameCheck fc;
    uint8_t buf[NF_MAX_LEN];
    uint32_t len;

    g_assert_true(frame_check_init(&fc));
    /* A payload byte, a header byte, a short frame, a long frame. */
    len = frame(buf, 3, 0);
    buf[len - 1] ^= 1;
    g_assert_cmpint(frame_check_add(&fc, buf, len), ==, NF_BAD_PAYLOAD);
    len = frame(buf, 3, 1);
    buf[NF_OFF_SEQ] ^= 0x80;
    g_assert_cmpint(frame_check_add(&fc, buf, len), ==, NF_BAD_HEADER);
    len = frame(buf, 3, 2);
    g_assert_cmpint(frame_check_add(&fc, buf, len - 1), ==, NF_BAD_LENGTH);
    len = frame(buf, 3, 3);
    g_assert_cmpint(frame_check_add(&fc, buf, len + 1), ==, NF_BAD_LENGTH);
    /* Not numbered frames: another ethertype, a bad magic, too short. */
    len = frame(buf, 3, 4);
    buf[12] = 0x08;
    buf[13] = 0x00;
    g_assert_cmpint(frame_check_add(&fc, buf, len), ==, NF_NOT_OURS);
    len = frame(buf, 3, 5);
    buf[NF_OFF_MAGIC] ^= 0xff;
    g_assert_cmpint(frame_check_add(&fc, buf, len), ==, NF_NOT_OURS);
    g_assert_cmpint(frame_check_add(&fc, buf, 20), ==, NF_NOT_OURS);
    /* MAC addresses may change (a reflector swapping them): still fine. */
    len = frame(buf, 3, 6);
    memset(buf, 0x42, 12);
    g_assert_cmpint(frame_check_add(&fc, buf, len), ==, NF_OK);
    g_assert_cmpuint(V(corrupt), ==, 4);
    g_assert_cmpuint(V(other), ==, 3);
    g_assert_cmpuint(V(ok), ==, 1);
    g_assert_cmpuint(V(gaps), ==, 0);
    frame_check_free(&fc);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vhost-user/frame-check/sequence", test_sequence);
    g_test_add_func("/vhost-user/frame-check/damage", test_damage);
    return g_test_run();
}
