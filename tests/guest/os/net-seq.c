/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sequence bookkeeping of gwos's network workload (see net-seq.h): a bit
 * per recent frame, a cursor below which every frame is resolved, and the
 * counters the guest reports. Freestanding: no library calls.
 */
#include "net-seq.h"

static inline bool seen_get(const NetSeq *s, uint64_t seq)
{
    uint32_t i = (uint32_t)(seq % NET_SEQ_HISTORY);
    return s->seen[i / 8] & (1u << (i % 8));
}

static inline void seen_put(NetSeq *s, uint64_t seq, bool v)
{
    uint32_t i = (uint32_t)(seq % NET_SEQ_HISTORY);
    if (v) {
        s->seen[i / 8] |= (uint8_t)(1u << (i % 8));
    } else {
        s->seen[i / 8] &= (uint8_t)~(1u << (i % 8));
    }
}

void net_seq_init(NetSeq *s)
{
    s->next = s->base = s->top = 0;
    s->received = s->lost = s->dup = s->reorder = s->late = s->future = 0;
    for (uint32_t i = 0; i < NET_SEQ_HISTORY / 8; i++) {
        s->seen[i] = 0;
    }
}

/* Move @base over frames that came back, so it rests on an outstanding one. */
static void advance_base(NetSeq *s)
{
    while (s->base < s->next && seen_get(s, s->base)) {
        s->base++;
    }
}

void net_seq_expire(NetSeq *s, uint64_t upto)
{
    if (upto > s->next) {
        upto = s->next;
    }
    while (s->base < upto) {
        if (!seen_get(s, s->base)) {
            s->lost++;
        }
        s->base++;
    }
    advance_base(s);
}

uint64_t net_seq_send(NetSeq *s)
{
    uint64_t seq = s->next;

    /* The slot is about to mean @seq: resolve the frame it meant before. */
    if (seq >= NET_SEQ_HISTORY) {
        net_seq_expire(s, seq - NET_SEQ_HISTORY + 1);
    }
    seen_put(s, seq, false);
    s->next = seq + 1;
    return seq;
}

NetSeqVerdict net_seq_received(NetSeq *s, uint64_t seq)
{
    if (seq >= s->next) {
        s->future++;
        return NET_SEQ_FUTURE;
    }
    if (s->next - seq > NET_SEQ_HISTORY) {
        /*
         * Older than the bitmap: it was resolved long ago. Lost is the
         * likely story (a frame that sat in a stopped queue); with nothing
         * counted lost it can only be a copy.
         */
        if (!s->lost) {
            s->dup++;
            return NET_SEQ_DUP;
        }
        s->lost--;
        s->late++;
        s->reorder++;
        s->received++;
        return NET_SEQ_LATE;
    }
    if (seen_get(s, seq)) {
        s->dup++;
        return NET_SEQ_DUP;
    }
    seen_put(s, seq, true);
    s->received++;
    if (seq < s->top) {
        s->reorder++;
    } else {
        s->top = seq + 1;
    }
    if (seq < s->base) {
        s->lost--;
        s->late++;
        return NET_SEQ_LATE;
    }
    advance_base(s);
    return NET_SEQ_NEW;
}
