/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for gwos's frame sequence bookkeeping (net-seq.c): the counts
 * a reflector's behaviour must produce (in order, loss, duplicates,
 * reordering, late arrival after being counted lost, numbers never sent)
 * and the bitmap's wrap-around over a long run.
 */
#include "qemu/osdep.h"

#include "net-seq.h"

static NetSeq *seq_new(void)
{
    NetSeq *s = g_new(NetSeq, 1);

    /* garbage first: init must not rely on zeroed memory */
    memset(s, 0xa5, sizeof(*s));
    net_seq_init(s);
    return s;
}

static void send_n(NetSeq *s, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        g_assert_cmpuint(net_seq_send(s), ==, s->next - 1);
    }
}

static void test_in_order(void)
{
    g_autofree NetSeq *s = seq_new();

    send_n(s, 100);
    g_assert_cmpuint(net_seq_outstanding(s), ==, 100);
    for (uint64_t i = 0; i < 100; i++) {
        g_assert_cmpint(net_seq_received(s, i), ==, NET_SEQ_NEW);
    }
    g_assert_cmpuint(s->received, ==, 100);
    g_assert_cmpuint(s->top, ==, 100);
    g_assert_cmpuint(s->base, ==, 100);
    g_assert_cmpuint(net_seq_outstanding(s), ==, 0);
    net_seq_expire(s, s->next);
    g_assert_cmpuint(s->lost + s->dup + s->reorder + s->late + s->future, ==, 0);
}

static void test_loss(void)
{
    g_autofree NetSeq *s = seq_new();

    send_n(s, 10);
    for (uint64_t i = 0; i < 10; i++) {
        if (i != 3 && i != 7) {
            net_seq_received(s, i);
        }
    }
    /* nothing resolved yet: 3 and 7 are only outstanding */
    g_assert_cmpuint(s->lost, ==, 0);
    g_assert_cmpuint(s->base, ==, 3);
    g_assert_cmpuint(net_seq_outstanding(s), ==, 2);
    net_seq_expire(s, 5);
    g_assert_cmpuint(s->lost, ==, 1);
    g_assert_cmpuint(s->base, ==, 7);
    net_seq_expire(s, 1000);        /* past next: clamped */
    g_assert_cmpuint(s->lost, ==, 2);
    g_assert_cmpuint(s->base, ==, 10);
    g_assert_cmpuint(net_seq_outstanding(s), ==, 0);
    g_assert_cmpuint(s->received, ==, 8);
    g_assert_cmpuint(s->reorder, ==, 0);
}

static void test_dup_reorder(void)
{
    g_autofree NetSeq *s = seq_new();

    send_n(s, 6);
    g_assert_cmpint(net_seq_received(s, 0), ==, NET_SEQ_NEW);
    g_assert_cmpint(net_seq_received(s, 2), ==, NET_SEQ_NEW);
    g_assert_cmpint(net_seq_received(s, 1), ==, NET_SEQ_NEW);   /* reordered */
    g_assert_cmpint(net_seq_received(s, 2), ==, NET_SEQ_DUP);
    g_assert_cmpint(net_seq_received(s, 0), ==, NET_SEQ_DUP);   /* below base */
    g_assert_cmpint(net_seq_received(s, 5), ==, NET_SEQ_NEW);
    g_assert_cmpint(net_seq_received(s, 3), ==, NET_SEQ_NEW);   /* reordered */
    g_assert_cmpint(net_seq_received(s, 6), ==, NET_SEQ_FUTURE);
    g_assert_cmpuint(s->received, ==, 5);
    g_assert_cmpuint(s->dup, ==, 2);
    g_assert_cmpuint(s->reorder, ==, 2);
    g_assert_cmpuint(s->future, ==, 1);
    g_assert_cmpuint(s->base, ==, 4);
    g_assert_cmpuint(net_seq_outstanding(s), ==, 1);
}

static void test_late(void)
{
    g_autofree NetSeq *s = seq_new();

    send_n(s, 5);
    net_seq_received(s, 0);
    net_seq_received(s, 2);
    net_seq_expire(s, 2);           /* 1 counted lost */
    g_assert_cmpuint(s->lost, ==, 1);
    g_assert_cmpint(net_seq_received(s, 1), ==, NET_SEQ_LATE);
    g_assert_cmpuint(s->lost, ==, 0);
    g_assert_cmpuint(s->late, ==, 1);
    g_assert_cmpuint(s->reorder, ==, 1);
    g_assert_cmpint(net_seq_received(s, 1), ==, NET_SEQ_DUP);
    g_assert_cmpuint(s->received, ==, 3);
    g_assert_cmpuint(net_seq_outstanding(s), ==, 2);
}

/*
 * A long run through the bitmap several times: a frame in every 1000 is
 * lost (only resolved when the bitmap slot is reused), the others come
 * back two at a time in swapped order.
 */
static void test_wrap(void)
{
    g_autofree NetSeq *s = seq_new();
    const uint64_t total = 5 * NET_SEQ_HISTORY + 123;
    uint64_t expect_lost = 0, expect_reorder = 0;

    for (uint64_t i = 0; i < total; i += 2) {
        net_seq_send(s);
        net_seq_send(s);
        for (int k = 1; k >= 0; k--) {
            uint64_t q = i + (uint64_t)k;
            if (q % 1000 == 999) {
                expect_lost++;
                continue;
            }
            g_assert_cmpint(net_seq_received(s, q), ==, NET_SEQ_NEW);
            if (k == 0 && (i + 1) % 1000 != 999) {
                expect_reorder++;
            }
        }
    }
    uint64_t sent = s->next;
    /* what is still in the bitmap is not resolved yet */
    g_assert_cmpuint(s->lost, <, expect_lost);
    g_assert_cmpuint(s->lost, >=, expect_lost - NET_SEQ_HISTORY / 1000 - 1);
    net_seq_expire(s, sent);
    g_assert_cmpuint(s->lost, ==, expect_lost);
    g_assert_cmpuint(s->received, ==, sent - expect_lost);
    g_assert_cmpuint(s->reorder, ==, expect_reorder);
    g_assert_cmpuint(s->dup, ==, 0);
    g_assert_cmpuint(net_seq_outstanding(s), ==, 0);

    /* older than the bitmap: taken as a lost frame arriving late */
    g_assert_cmpint(net_seq_received(s, 999), ==, NET_SEQ_LATE);
    g_assert_cmpuint(s->lost, ==, expect_lost - 1);
    /* a recent one already received is a duplicate, not a new frame */
    g_assert_cmpint(net_seq_received(s, sent - 2), ==, NET_SEQ_DUP);
}

/* The bitmap slot of a frame still outstanding is resolved before reuse. */
static void test_history_forces_loss(void)
{
    g_autofree NetSeq *s = seq_new();

    send_n(s, NET_SEQ_HISTORY);
    g_assert_cmpuint(s->lost, ==, 0);
    net_seq_send(s);
    g_assert_cmpuint(s->lost, ==, 1);
    g_assert_cmpuint(s->base, ==, 1);
    /* frame 0 now comes back: older than the bitmap, counted late */
    g_assert_cmpint(net_seq_received(s, 0), ==, NET_SEQ_LATE);
    /* and the newest frame is unaffected by the reuse of its slot */
    g_assert_cmpint(net_seq_received(s, NET_SEQ_HISTORY), ==, NET_SEQ_NEW);
    g_assert_cmpint(net_seq_received(s, NET_SEQ_HISTORY), ==, NET_SEQ_DUP);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/gwos/net-seq/in-order", test_in_order);
    g_test_add_func("/gwos/net-seq/loss", test_loss);
    g_test_add_func("/gwos/net-seq/dup-reorder", test_dup_reorder);
    g_test_add_func("/gwos/net-seq/late", test_late);
    g_test_add_func("/gwos/net-seq/wrap", test_wrap);
    g_test_add_func("/gwos/net-seq/history-forces-loss", test_history_forces_loss);
    return g_test_run();
}
