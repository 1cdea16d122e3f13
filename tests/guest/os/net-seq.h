/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sequence bookkeeping of gwos's network workload: which numbered frames
 * came back, which are lost, duplicated, reordered or late. Pure logic on
 * <stdint.h> only, so the freestanding guest and a host unit test
 * (test-net-seq.c) build the same file.
 */
#ifndef GWOS_NET_SEQ_H
#define GWOS_NET_SEQ_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Frames remembered (one bit each) behind the next one to send. A frame
 * older than that which is still unresolved is declared lost when a new
 * one is sent, so the bitmap never aliases.
 */
#define NET_SEQ_HISTORY 65536u

/* What net_seq_received() made of a frame. */
typedef enum NetSeqVerdict {
    NET_SEQ_NEW = 0,        /* first copy of a frame still outstanding */
    NET_SEQ_LATE = 1,       /* first copy of a frame already counted lost */
    NET_SEQ_DUP = 2,        /* a copy of a frame already received */
    NET_SEQ_FUTURE = 3,     /* a sequence number never sent */
} NetSeqVerdict;

/*
 * Frames 0 .. next-1 have been sent. Every frame below @base is resolved:
 * its bit says whether it came back (1) or was counted lost (0). Frames in
 * [base, next) are outstanding unless their bit is set (received out of
 * order). @top is the highest frame received plus one.
 */
typedef struct NetSeq {
    uint64_t next;
    uint64_t base;
    uint64_t top;
    uint64_t received;      /* distinct frames that came back */
    uint64_t lost;          /* resolved as missing (and not arrived since) */
    uint64_t dup;
    uint64_t reorder;       /* arrived after a higher-numbered frame */
    uint64_t late;          /* arrived after being counted lost */
    uint64_t future;
    uint8_t seen[NET_SEQ_HISTORY / 8];
} NetSeq;

void net_seq_init(NetSeq *s);

/* A frame is about to be sent; returns its sequence number. */
uint64_t net_seq_send(NetSeq *s);

/* Frame @seq came back. Updates the counters and returns the verdict. */
NetSeqVerdict net_seq_received(NetSeq *s, uint64_t seq);

/* Count every outstanding frame below @upto as lost. */
void net_seq_expire(NetSeq *s, uint64_t upto);

/* Frames sent and not yet received, holes below @top included. */
static inline uint64_t net_seq_outstanding(const NetSeq *s)
{
    return s->next - s->received - s->lost;
}

#endif
