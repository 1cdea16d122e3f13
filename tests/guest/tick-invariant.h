/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Checks a dump of the tick test guest's memory (tests/guest/tick.S) for the
 * counter invariant described in docs/devel/test-guests.md: a migration
 * that lost or repeated a page write leaves a dump that fails it.
 */
#ifndef TESTS_GUEST_TICK_INVARIANT_H
#define TESTS_GUEST_TICK_INVARIANT_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The mailbox page (layout mirrored in tests/guest/guest.inc). */
#define TICK_MAILBOX_GPA        0x1000ULL
#define TICK_MAILBOX_MAGIC      0x31304b4349545747ULL   /* "GWTICK01" */
#define TICK_MAX_RANGES         32
#define TICK_PAGE_SIZE          4096ULL

#define TICK_MBX_MAGIC          0x00
#define TICK_MBX_PASSES         0x08
#define TICK_MBX_START          0x10
#define TICK_MBX_END            0x18
#define TICK_MBX_WRITES         0x20
#define TICK_MBX_PAGES          0x28
#define TICK_MBX_STATE          0x30
#define TICK_MBX_PASS_LIMIT     0x38
#define TICK_MBX_RING           0x40
#define TICK_MBX_NR_RANGES      0x48
#define TICK_MBX_RANGES         0x80

typedef enum TickState {
    TICK_STATE_BOOT = 0,        /* mailbox written, counters not yet zeroed */
    TICK_STATE_ZEROING = 1,     /* pass 0 running: counters being zeroed */
    TICK_STATE_TICKING = 2,     /* the invariant holds from here on */
    TICK_STATE_DONE = 3,        /* passes=N reached; counters final */
} TickState;

/* One piece of a guest-physical memory dump: [gpa, gpa + len) at host. */
typedef struct TickMemPiece {
    uint64_t gpa;
    const uint8_t *host;
    uint64_t len;
} TickMemPiece;

/* A page-aligned guest-physical range [start, end). */
typedef struct TickRange {
    uint64_t start;
    uint64_t end;
} TickRange;

/* The mailbox as read from a dump (all fields little-endian u64). */
typedef struct TickMailbox {
    uint64_t passes;            /* full passes completed */
    uint64_t start;             /* first ticked page */
    uint64_t end;               /* end of the last ticked range */
    uint64_t writes;            /* page increments done, all passes */
    uint64_t pages;             /* pages per pass */
    uint64_t state;             /* TickState */
    uint64_t pass_limit;        /* passes=N, 0 = forever */
    uint64_t ring;              /* 0 or 3: where the loop runs */
    uint64_t nr_ranges;
    TickRange ranges[TICK_MAX_RANGES];  /* in the order the guest walks */
} TickMailbox;

/* What a successful check found. */
typedef struct TickScan {
    uint64_t pages;             /* pages checked */
    uint64_t position;          /* pages already bumped in the current pass */
    uint8_t value;              /* counter of the pages not yet bumped */
} TickScan;

/*
 * Read and validate the mailbox at TICK_MAILBOX_GPA from @mem (@n_mem
 * pieces). On failure returns false and appends one sentence to @why
 * (which may be NULL).
 */
bool tick_mailbox_read(const TickMemPiece *mem, size_t n_mem,
                       TickMailbox *mb, GString *why);

/*
 * Check the counters (byte 0 of every 4 KiB page) of @ranges, walked in
 * array order, in the dump @mem. The invariant: some position k and value
 * v such that the first k pages hold v + 1 and the rest hold v (mod 256).
 * If @writes is non-NULL (the mailbox's write count) the dump must in
 * addition match exactly @writes or @writes + 1 page increments from
 * all-zero counters. Pages missing from the dump are an error. @scan
 * (may be NULL) receives what was found. Returns false with a reason
 * appended to @why (may be NULL) on failure.
 */
bool tick_check_ranges(const TickMemPiece *mem, size_t n_mem,
                       const TickRange *ranges, size_t n_ranges,
                       const uint64_t *writes, TickScan *scan, GString *why);

/*
 * The whole check of a paused tick guest: reads the mailbox from the dump,
 * requires state TICKING or DONE and checks the guest's own ranges against
 * its write count. @mb and @scan may be NULL.
 */
bool tick_check_dump(const TickMemPiece *mem, size_t n_mem,
                     TickMailbox *mb, TickScan *scan, GString *why);

/*
 * Convenience for one contiguous dump of @len bytes starting at guest-
 * physical @base_gpa: checks the structural invariant over the pages of
 * [start, end) (no mailbox cross-check). @start and @end must be page
 * aligned and inside the dump.
 */
bool tick_check_invariant(const uint8_t *mem, uint64_t base_gpa, uint64_t len,
                          uint64_t start, uint64_t end, GString *why);

#endif
