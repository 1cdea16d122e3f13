/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The example's data path: take frames off the guest's TX queue, check the
 * numbered ones, and (reflect) put them back into RX, or (generate) fill
 * RX with numbered frames paced by a timerfd. Everything here runs on the
 * library's data thread with its data-path lock held.
 */
#include "net-backend.h"
#include "net/numbered-frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* A locally administered MAC for generated frames ("gw" in the middle). */
static const uint8_t generator_mac[6] = { 0x02, 0x67, 0x77, 0x00, 0x00, 0x01 };

/* Frames the generator may owe after a stall; more are skipped, not sent in a burst. */
#define GEN_MAX_BURST 256u

static void on_timer(VubDev *dev, int fd, void *opaque);

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t net_backend_features(void)
{
    return (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
           (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_F_ANY_LAYOUT);
}

bool net_backend_init(NetBackend *nb, const NetConfig *cfg, VubError *err)
{
    memset(nb, 0, sizeof(*nb));
    nb->cfg = *cfg;
    nb->hdr_len = VIRTIO_NET_HDR_LEN;
    nb->timer_fd = -1;
    atomic_init(&nb->generating, !cfg->start_paused);
    if (!frame_check_init(&nb->check)) {
        snprintf(err->msg, sizeof(err->msg), "out of memory for the frame checker");
        return false;
    }
    return true;
}

bool net_backend_attach(NetBackend *nb, VubDev *dev, VubError *err)
{
    nb->dev = dev;
    if (nb->cfg.mode != NET_MODE_GENERATE) {
        return true;
    }
    /* Tick often enough for the rate, at most every millisecond. */
    uint64_t period = nb->cfg.rate ? 1000000000u / nb->cfg.rate : 10000000u;
    if (period < 1000000u) {
        period = 1000000u;
    }
    if (period > 100000000u) {
        period = 100000000u;
    }
    nb->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (nb->timer_fd < 0) {
        snprintf(err->msg, sizeof(err->msg), "cannot create the generator's timer: %s",
                 strerror(errno));
        return false;
    }
    struct itimerspec its = {
        .it_interval = { .tv_sec = (time_t)(period / 1000000000u),
                         .tv_nsec = (long)(period % 1000000000u) },
        .it_value = { .tv_sec = (time_t)(period / 1000000000u),
                      .tv_nsec = (long)(period % 1000000000u) },
    };
    timerfd_settime(nb->timer_fd, 0, &its, NULL);
    return vub_watch_fd(dev, nb->timer_fd, on_timer, nb, err);
}

void net_backend_cleanup(NetBackend *nb)
{
    if (nb->timer_fd >= 0) {
        close(nb->timer_fd);
        nb->timer_fd = -1;
    }
    frame_check_free(&nb->check);
}

static void count(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

typedef enum PutResult { PUT_OK, PUT_RING_FULL, PUT_TOO_SMALL } PutResult;

/* Put one frame into the guest's RX queue. */
static PutResult put_rx(NetBackend *nb, const uint8_t *frame, uint32_t len)
{
    VubElem *rx = &nb->rx_elem;
    uint8_t hdr[VIRTIO_NET_HDR_LEN] = { 0 };

    if (!vub_queue_pop(nb->dev, NET_RXQ, rx)) {
        return PUT_RING_FULL;
    }
    size_t room = vub_iov_size(rx->in_sg, rx->in_num);
    if (room < nb->hdr_len + (size_t)len) {
        /* The driver sees an empty buffer and recycles it. */
        vub_queue_push(nb->dev, NET_RXQ, rx, 0);
        count(&nb->counters.rx_too_small, 1);
        return PUT_TOO_SMALL;
    }
    if (nb->hdr_len == VIRTIO_NET_HDR_LEN) {
        hdr[10] = 1;    /* num_buffers: one chain per frame (no MRG_RXBUF) */
    }
    vub_iov_from_buf(rx->in_sg, rx->in_num, 0, hdr, nb->hdr_len);
    vub_iov_from_buf(rx->in_sg, rx->in_num, nb->hdr_len, frame, len);
    vub_queue_push(nb->dev, NET_RXQ, rx, nb->hdr_len + len);
    return PUT_OK;
}

static void process_tx(NetBackend *nb)
{
    VubElem *tx = &nb->tx_elem;
    bool tx_done = false, rx_done = false;

    while (vub_queue_pop(nb->dev, NET_TXQ, tx)) {
        size_t total = vub_iov_size(tx->out_sg, tx->out_num);
        tx_done = true;
        if (total < nb->hdr_len + NF_ETH_LEN || total - nb->hdr_len > NET_MAX_FRAME) {
            count(&nb->counters.tx_bad, 1);
            vub_queue_push(nb->dev, NET_TXQ, tx, 0);
            continue;
        }
        uint32_t len = (uint32_t)(total - nb->hdr_len);
        vub_iov_to_buf(tx->out_sg, tx->out_num, nb->hdr_len, nb->frame, len);
        vub_queue_push(nb->dev, NET_TXQ, tx, 0);
        count(&nb->counters.tx_frames, 1);
        count(&nb->counters.tx_bytes, len);
        frame_check_add(&nb->check, nb->frame, len);
        if (nb->cfg.mode != NET_MODE_REFLECT) {
            continue;
        }
        if (nb->cfg.mac_swap) {
            uint8_t tmp[6];
            memcpy(tmp, nb->frame, 6);
            memcpy(nb->frame, nb->frame + 6, 6);
            memcpy(nb->frame + 6, tmp, 6);
        }
        switch (put_rx(nb, nb->frame, len)) {
        case PUT_OK:
            count(&nb->counters.reflected, 1);
            rx_done = true;
            break;
        case PUT_RING_FULL:
            count(&nb->counters.dropped, 1);
            break;
        case PUT_TOO_SMALL:
            rx_done = true;
            break;
        }
    }
    if (tx_done) {
        vub_queue_notify(nb->dev, NET_TXQ);
    }
    if (rx_done) {
        vub_queue_notify(nb->dev, NET_RXQ);
    }
}

/*
 * Generate up to @n frames. At a fixed rate a frame that finds RX full is
 * dropped (the sequence number is kept for the next one, so the stream the
 * guest sees has no gap we caused); at rate 0 (@fill) we just stop.
 */
static void generate(NetBackend *nb, uint64_t n, bool fill)
{
    bool pushed = false;

    for (uint64_t i = 0; i < n; i++) {
        if (nb->cfg.count && nb->gen_seq >= nb->cfg.count) {
            break;
        }
        uint32_t len = nf_fill(nb->frame, nb->cfg.frame_len, generator_mac, nb->cfg.stream,
                               nb->gen_seq, now_ns());
        PutResult r = put_rx(nb, nb->frame, len);
        if (r == PUT_RING_FULL && fill) {
            break;
        }
        nb->gen_attempts++;
        if (r == PUT_OK) {
            nb->gen_seq++;
            count(&nb->counters.generated, 1);
        } else if (r == PUT_RING_FULL) {
            count(&nb->counters.dropped, 1);
        }
        pushed |= r != PUT_RING_FULL;
    }
    if (pushed) {
        vub_queue_notify(nb->dev, NET_RXQ);
    }
}

static void on_timer(VubDev *dev, int fd, void *opaque)
{
    NetBackend *nb = opaque;
    uint64_t expirations;

    (void)dev;
    if (read(fd, &expirations, sizeof(expirations)) < 0) {
        return;
    }
    bool on = atomic_load(&nb->generating);
    if (!vub_queue_ready(nb->dev, NET_RXQ) || !on) {
        nb->gen_was_on = false;
        return;
    }
    if (!nb->gen_was_on) {
        /* The rate counts from when generating (re)started. */
        nb->gen_was_on = true;
        nb->gen_start_ns = now_ns();
        nb->gen_attempts = 0;
    }
    if (nb->cfg.rate == 0) {
        generate(nb, UINT64_MAX, true);
        return;
    }
    uint64_t elapsed = now_ns() - nb->gen_start_ns;
    /* Frames due by now at the rate (128-bit product: long runs at high rates). */
    uint64_t due = (uint64_t)((unsigned __int128)elapsed * nb->cfg.rate / 1000000000u);
    if (due <= nb->gen_attempts) {
        return;
    }
    uint64_t owed = due - nb->gen_attempts;
    if (owed > GEN_MAX_BURST) {
        nb->gen_attempts += owed - GEN_MAX_BURST;
        owed = GEN_MAX_BURST;
    }
    generate(nb, owed, false);
}

void net_backend_kick(VubDev *dev, unsigned qidx, void *opaque)
{
    NetBackend *nb = opaque;

    (void)dev;
    if (qidx == NET_TXQ) {
        process_tx(nb);
    } else if (qidx == NET_RXQ && nb->cfg.mode == NET_MODE_GENERATE && nb->cfg.rate == 0 &&
               atomic_load(&nb->generating)) {
        generate(nb, UINT64_MAX, true);
    }
}

void net_backend_queue_state(VubDev *dev, unsigned qidx, bool started, void *opaque)
{
    NetBackend *nb = opaque;
    uint64_t f = vub_features(dev);

    if (!started) {
        return;
    }
    nb->hdr_len = (f & ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MRG_RXBUF)))
                  ? VIRTIO_NET_HDR_LEN : VIRTIO_NET_HDR_LEN_LEGACY;
    if (qidx == NET_RXQ) {
        /* The rate counts from when frames can be delivered. */
        nb->gen_start_ns = now_ns();
        nb->gen_attempts = 0;
    }
}

bool net_backend_toggle(NetBackend *nb)
{
    bool on = !atomic_load(&nb->generating);

    atomic_store(&nb->generating, on);
    return on;
}

void net_backend_rarp(VubDev *dev, const uint8_t mac[6], void *opaque)
{
    NetBackend *nb = opaque;

    (void)dev;
    (void)mac;
    count(&nb->counters.rarp, 1);
}
