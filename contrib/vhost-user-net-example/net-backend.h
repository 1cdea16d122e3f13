/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The example's virtio-net data path on top of libgwvhostuser: one queue
 * pair (RX = 0, TX = 1). Reflect mode sends every frame the guest
 * transmits back into its RX queue; generate mode puts numbered frames
 * into RX at a rate. Both check the numbered frames seen on TX.
 */
#ifndef NET_BACKEND_H
#define NET_BACKEND_H

#include "frame-check.h"
#include "vhost-user-backend.h"
#include "vhost-user-protocol.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define NET_RXQ 0u
#define NET_TXQ 1u
/* Largest frame we take from TX (no GSO is offered, so this is generous). */
#define NET_MAX_FRAME 65536u

typedef enum NetMode { NET_MODE_REFLECT, NET_MODE_GENERATE } NetMode;

typedef struct NetConfig {
    NetMode mode;
    bool mac_swap;              /* reflect: swap source and destination MAC */
    uint64_t rate;              /* generate: frames per second (0: as fast as RX has room) */
    uint64_t count;             /* generate: stop after this many frames (0: never) */
    uint32_t frame_len;         /* generate: bytes per frame, Ethernet header included */
    uint16_t stream;            /* generate: the numbered-frame stream id */
    bool start_paused;          /* generate: wait for net_backend_toggle() */
} NetConfig;

typedef struct NetCounters {
    atomic_uint_fast64_t tx_frames;     /* frames the guest transmitted */
    atomic_uint_fast64_t tx_bytes;
    atomic_uint_fast64_t tx_bad;        /* TX chains without a frame (short, oversized) */
    atomic_uint_fast64_t reflected;     /* frames put back into RX (reflect) */
    atomic_uint_fast64_t generated;     /* frames put into RX (generate) */
    atomic_uint_fast64_t dropped;       /* frames lost because RX had no buffer */
    atomic_uint_fast64_t rx_too_small;  /* frames lost because an RX buffer was too small */
    atomic_uint_fast64_t rarp;          /* SEND_RARP announcements */
} NetCounters;

typedef struct NetBackend {
    NetConfig cfg;
    NetCounters counters;
    FrameCheck check;           /* numbered frames seen on TX */
    atomic_bool generating;     /* generate: on (any thread may toggle it) */
    /* Data thread only. */
    VubDev *dev;
    unsigned hdr_len;           /* 12 with VERSION_1 or MRG_RXBUF, else 10 */
    uint64_t gen_start_ns;      /* generate: when RX became ready */
    uint64_t gen_attempts;      /* generate: frames due so far (sent or dropped) */
    uint64_t gen_seq;
    bool gen_was_on;            /* generating, as the data thread last saw it */
    int timer_fd;
    VubElem tx_elem, rx_elem;
    uint8_t frame[NET_MAX_FRAME];
} NetBackend;

/* The virtio features the example offers. */
uint64_t net_backend_features(void);
/* false (with a sentence in @err) if out of memory or the timer cannot be made. */
bool net_backend_init(NetBackend *nb, const NetConfig *cfg, VubError *err);
/* After vub_new: hook the callbacks' device and the generator's timer. */
bool net_backend_attach(NetBackend *nb, VubDev *dev, VubError *err);
void net_backend_cleanup(NetBackend *nb);
/* Generate mode: pause or resume generating (e.g. on SIGUSR1); returns the new state. */
bool net_backend_toggle(NetBackend *nb);
/* Library callbacks (VubOps members; opaque = NetBackend *). Data thread / lock held. */
void net_backend_kick(VubDev *dev, unsigned qidx, void *opaque);
void net_backend_queue_state(VubDev *dev, unsigned qidx, bool started, void *opaque);
/* Control thread. */
void net_backend_rarp(VubDev *dev, const uint8_t mac[6], void *opaque);

#endif
