/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Checking a stream of numbered frames (include/net/numbered-frame.h) as it
 * arrives: per stream, frames missing (gaps), frames seen again or late
 * (duplicates), and frames whose contents changed (corrupted). Pure logic,
 * one thread; the counters may be read from any thread.
 */
#ifndef FRAME_CHECK_H
#define FRAME_CHECK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct FrameCheck {
    atomic_uint_fast64_t ok;        /* numbered frames that checked out */
    atomic_uint_fast64_t gaps;      /* frames missing: sum of the jumps forward */
    atomic_uint_fast64_t dups;      /* frames at or behind what a stream already passed */
    atomic_uint_fast64_t corrupt;   /* ours, but header, length or payload damaged */
    atomic_uint_fast64_t other;     /* not numbered frames at all */
    atomic_uint_fast64_t streams;   /* distinct streams seen */
    atomic_uint_fast64_t before_first; /* sum of each stream's first sequence number:
                                          frames numbered before we saw the stream */
    /* Per stream (65536): the next expected sequence number. Checker thread only. */
    uint64_t *next;
    uint64_t *seen;                 /* bitmap: stream already started */
} FrameCheck;

/* false if out of memory. */
bool frame_check_init(FrameCheck *fc);
void frame_check_free(FrameCheck *fc);
/*
 * Account one frame of @len bytes. A stream's first frame sets where it
 * starts (a checker that joins late does not count what it never could
 * see). Returns the nf_check() verdict.
 */
int frame_check_add(FrameCheck *fc, const uint8_t *frame, uint32_t len);

#endif
