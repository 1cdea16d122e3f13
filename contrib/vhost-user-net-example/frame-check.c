/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Numbered-frame stream accounting for the example back-end: what nf_check()
 * says about each frame, and per-stream sequence bookkeeping.
 */
#include "frame-check.h"
#include "net/numbered-frame.h"

#include <stdlib.h>

bool frame_check_init(FrameCheck *fc)
{
    atomic_init(&fc->ok, 0);
    atomic_init(&fc->gaps, 0);
    atomic_init(&fc->dups, 0);
    atomic_init(&fc->corrupt, 0);
    atomic_init(&fc->other, 0);
    atomic_init(&fc->streams, 0);
    atomic_init(&fc->before_first, 0);
    fc->next = calloc(65536, sizeof(uint64_t));
    fc->seen = calloc(65536 / 64, sizeof(uint64_t));
    if (!fc->next || !fc->seen) {
        frame_check_free(fc);
        return false;
    }
    return true;
}

void frame_check_free(FrameCheck *fc)
{
    free(fc->next);
    free(fc->seen);
    fc->next = NULL;
    fc->seen = NULL;
}

int frame_check_add(FrameCheck *fc, const uint8_t *frame, uint32_t len)
{
    uint16_t stream;
    uint64_t seq;
    int verdict = nf_check(frame, len, &stream, &seq);

    switch (verdict) {
    case NF_OK:
        break;
    case NF_NOT_OURS:
        atomic_fetch_add_explicit(&fc->other, 1, memory_order_relaxed);
        return verdict;
    default:
        atomic_fetch_add_explicit(&fc->corrupt, 1, memory_order_relaxed);
        return verdict;
    }
    atomic_fetch_add_explicit(&fc->ok, 1, memory_order_relaxed);
    uint64_t bit = 1ull << (stream % 64);
    if (!(fc->seen[stream / 64] & bit)) {
        fc->seen[stream / 64] |= bit;
        fc->next[stream] = seq + 1;
        atomic_fetch_add_explicit(&fc->streams, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&fc->before_first, seq, memory_order_relaxed);
        return verdict;
    }
    if (seq >= fc->next[stream]) {
        atomic_fetch_add_explicit(&fc->gaps, seq - fc->next[stream], memory_order_relaxed);
        fc->next[stream] = seq + 1;
    } else {
        atomic_fetch_add_explicit(&fc->dups, 1, memory_order_relaxed);
    }
    return verdict;
}
