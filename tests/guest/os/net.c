/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos network workload (net=on), ring 3 on one vCPU, polled from every
 * iteration of that vCPU's memory workload: send numbered frames
 * (include/net/numbered-frame.h) at `netrate` with at most `netwin` in
 * flight, take back what the reflector returns, check every frame, and
 * count tx, rx, lost, duplicated, reordered, late and corrupt frames, the
 * longest gap in the received stream and round-trip times. Reports a "net"
 * line per guest second and keeps GwosResults.net current.
 */
#include "virtio-net.h"
#include "net-seq.h"
#include "net/numbered-frame.h"

#define NET_BURST        32                 /* frames queued per poll at most */
#define NET_PROBE_NS     20000000ull        /* window full, nothing back: one frame per 20 ms */
#define NET_CATCHUP_NS   100000000ull       /* behind schedule by more: no catch-up burst */
#define NET_DRAIN_NS     200000000ull       /* exit: wait this long for frames in flight */
#define NET_STOP_WAIT_NS 10000000000ull     /* exit: the BSP waits this long for the summary */
#define NET_LOST_AGE_NS  2000000000ull      /* not back after this long: lost */
#define NET_MARKS        4                  /* heartbeats remembered for that */
#define NET_MAX_REPORTS  16

typedef struct NetLoop {
    NetSeq seq;
    uint16_t stream;
    bool started;
    bool finished;
    uint64_t horizon;               /* frames behind the newest one: lost */
    uint64_t interval_ns;           /* 0 = as fast as the window allows */
    uint64_t next_tx_ns;
    uint64_t last_progress_ns;      /* last new frame back, or last probe */
    uint64_t next_hb_ns;
    uint64_t mark_seq[NET_MARKS];   /* next seq at each of the last heartbeats */
    uint64_t mark_ns[NET_MARKS];    /* and when */
    uint32_t mark_n;
    uint64_t rtt_hb_sum, rtt_hb_n;  /* this heartbeat interval */
    uint64_t reported;              /* CORRUPT lines printed */
    uint64_t bad_used;              /* used entries with an impossible id */
    volatile uint32_t stop_req;     /* set by the BSP's work_finish */
    volatile uint32_t stopped;
} NetLoop;

static NetLoop nl;

static void publish(void)
{
    GwosNetResults *r = &results->net;

    r->tx = nl.seq.next;
    r->rx = nl.seq.received;
    r->lost = nl.seq.lost;
    r->dup = nl.seq.dup;
    r->reorder = nl.seq.reorder;
    r->late = nl.seq.late;
}

static void start(Cpu *c, uint64_t now)
{
    net_seq_init(&nl.seq);
    nl.stream = (uint16_t)c->index;
    nl.horizon = 2 * cfg.net_window > 32 ? 2 * cfg.net_window : 32;
    nl.interval_ns = cfg.net_rate ? NSEC_PER_SEC / cfg.net_rate : 0;
    nl.next_tx_ns = now;
    nl.last_progress_ns = now;
    nl.started = true;
    results->net.start_ns = now;
}

static const char *const nf_errors[] = {
    [NF_OK] = "ok", [NF_NOT_OURS] = "not-ours", [NF_BAD_LENGTH] = "length",
    [NF_BAD_HEADER] = "header", [NF_BAD_PAYLOAD] = "payload",
};

/* One line per corrupt frame (the first few): what differs, and where. */
static void report_corrupt(Cpu *c, const uint8_t *f, uint32_t len, int err)
{
    GwosNetResults *r = &results->net;
    uint64_t seq = len >= NF_OFF_SEQ + 8 ? nf_get64(f + NF_OFF_SEQ) : 0;
    char line[200];

    r->corrupt++;
    if (r->corrupt == 1) {
        r->first_bad_seq = seq;
    }
    if (nl.reported++ >= NET_MAX_REPORTS) {
        return;
    }
    if (err == NF_BAD_PAYLOAD) {
        uint32_t i = NF_PAYLOAD_OFF;
        while (i < len && f[i] == nf_pattern_byte(seq, i)) {
            i++;
        }
        ksnprintf(line, sizeof(line), "CORRUPT net seq=%lu err=payload len=%u off=%u "
                  "expected=0x%02x got=0x%02x\n", seq, len, i,
                  i < len ? nf_pattern_byte(seq, i) : 0, i < len ? f[i] : 0);
    } else if (err == NF_BAD_LENGTH) {
        ksnprintf(line, sizeof(line), "CORRUPT net seq=%lu err=length len=%u field=%u\n",
                  seq, len, nf_get32(f + NF_OFF_LENGTH));
    } else {
        ksnprintf(line, sizeof(line), "CORRUPT net seq=%lu err=%s len=%u hsum=0x%x "
                  "expected=0x%x\n", seq, nf_errors[err], len,
                  len >= NF_OFF_HSUM + 4 ? nf_get32(f + NF_OFF_HSUM) : 0,
                  len >= NF_OFF_HSUM ? nf_hdr_sum(f) : 0);
    }
    uconsole_write(c, line, strlen(line));
}

static uint32_t rtt_bucket(uint64_t rtt_ns)
{
    uint64_t us = rtt_ns / 1000;
    uint32_t b = us < 2 ? 0 : 63u - (uint32_t)__builtin_clzll(us);

    return b < GWOS_NET_RTT_BUCKETS ? b : GWOS_NET_RTT_BUCKETS - 1;
}

static void frame_in(Cpu *c, const uint8_t *f, uint32_t len, uint64_t now)
{
    GwosNetResults *r = &results->net;
    uint16_t stream;
    uint64_t seq;
    int err = nf_check(f, len, &stream, &seq);

    if (err == NF_NOT_OURS) {
        r->foreign++;
        return;
    }
    if (err != NF_OK) {
        report_corrupt(c, f, len, err);
        return;
    }
    if (stream != nl.stream) {
        r->foreign++;
        return;
    }
    NetSeqVerdict v = net_seq_received(&nl.seq, seq);
    if (v == NET_SEQ_FUTURE) {
        r->foreign++;               /* a number this boot never sent */
        return;
    }
    if (v == NET_SEQ_DUP) {
        return;
    }
    if (r->last_rx_ns) {
        uint64_t gap = now - r->last_rx_ns;
        if (gap > r->gap_hb_ns) {
            r->gap_hb_ns = gap;
            if (gap > r->maxgap_ns) {
                r->maxgap_ns = gap;
            }
        }
    }
    r->last_rx_ns = now;
    nl.last_progress_ns = now;
    uint64_t sent = nf_get64(f + NF_OFF_SENT);
    if (sent <= now) {
        uint64_t rtt = now - sent;
        r->rtt_sum_ns += rtt;
        r->rtt_max_ns = rtt > r->rtt_max_ns ? rtt : r->rtt_max_ns;
        r->rtt_hist[rtt_bucket(rtt)]++;
        nl.rtt_hb_sum += rtt;
        nl.rtt_hb_n++;
    }
}

/* Take what the device returned on RX, check it, and post the buffers again. */
static uint32_t receive(Cpu *c, uint64_t now)
{
    VQueue *q = &vnet_q[VNET_RXQ];
    uint16_t used = READ_ONCE(q->used.idx);
    uint32_t n = 0;

    barrier();                      /* entries are read after the index */
    while (vnet.used_seen[VNET_RXQ] != used) {
        VringUsedElem e = q->used.ring[vnet.used_seen[VNET_RXQ] % vnet.qsize];
        vnet.used_seen[VNET_RXQ]++;
        if (e.id >= vnet.qsize) {
            nl.bad_used++;          /* not a buffer we posted: nothing to give back */
            continue;
        }
        uint32_t len = e.len < VNET_BUF_SIZE ? e.len : VNET_BUF_SIZE;
        if (len >= VNET_HDR_LEN) {
            frame_in(c, q->buf[e.id] + VNET_HDR_LEN, len - VNET_HDR_LEN, now);
        }
        q->avail.ring[vnet.avail_idx[VNET_RXQ]++ % vnet.qsize] = (uint16_t)e.id;
        n++;
    }
    if (n) {
        net_seq_expire(&nl.seq, nl.seq.top > nl.horizon ? nl.seq.top - nl.horizon : 0);
        barrier();                  /* ring entries before the index */
        WRITE_ONCE(q->avail.idx, vnet.avail_idx[VNET_RXQ]);
        vnet_kick(VNET_RXQ);
    }
    return n;
}

static void reclaim_tx(void)
{
    VQueue *q = &vnet_q[VNET_TXQ];
    uint16_t used = READ_ONCE(q->used.idx);

    barrier();
    while (vnet.used_seen[VNET_TXQ] != used) {
        uint32_t id = q->used.ring[vnet.used_seen[VNET_TXQ] % vnet.qsize].id;
        vnet.used_seen[VNET_TXQ]++;
        if (id < vnet.qsize && vnet.tx_nfree < vnet.qsize) {
            vnet.tx_free[vnet.tx_nfree++] = (uint16_t)id;
        } else {
            nl.bad_used++;
        }
    }
}

/* Queue what the rate and the window allow, then one kick for the lot. */
static uint32_t transmit(uint64_t now)
{
    VQueue *q = &vnet_q[VNET_TXQ];
    uint32_t n = 0;

    /*
     * Far behind the schedule (a stall, or a window full for long): give
     * those frames up, counted, rather than send them in one burst. So
     * tx + skipped follows the rate to within NET_CATCHUP_NS.
     */
    if (nl.interval_ns && nl.next_tx_ns + NET_CATCHUP_NS < now) {
        uint64_t behind = (now - nl.next_tx_ns) / nl.interval_ns;
        results->net.skipped += behind;
        nl.next_tx_ns += behind * nl.interval_ns;
    }
    while (n < NET_BURST && vnet.tx_nfree) {
        if (nl.interval_ns && now < nl.next_tx_ns) {
            break;
        }
        /*
         * In flight: sent after the newest frame back, unless those are all
         * resolved lost already. A full window with nothing back for
         * NET_PROBE_NS sends one more to find out whether the path lives
         * (all in flight may have been lost, e.g. over a migration), up to
         * a second window's worth; the heartbeat's expiry frees the rest.
         */
        uint64_t floor = nl.seq.top > nl.seq.base ? nl.seq.top : nl.seq.base;
        uint64_t out = nl.seq.next - floor;
        bool probe = false;
        if (out >= cfg.net_window) {
            if (out >= 2 * cfg.net_window || now - nl.last_progress_ns < NET_PROBE_NS) {
                break;
            }
            nl.last_progress_ns = now;
            results->net.probes++;
            probe = true;
        }
        uint16_t id = vnet.tx_free[--vnet.tx_nfree];
        uint8_t *b = q->buf[id];
        for (uint32_t i = 0; i < VNET_HDR_LEN; i++) {
            b[i] = 0;               /* virtio_net_hdr: no checksum, no GSO */
        }
        uint64_t seq = net_seq_send(&nl.seq);
        uint32_t len = nf_fill(b + VNET_HDR_LEN, (uint32_t)cfg.net_len, vnet.mac, nl.stream,
                               seq, now);
        q->desc[id].len = VNET_HDR_LEN + len;
        q->avail.ring[vnet.avail_idx[VNET_TXQ]++ % vnet.qsize] = id;
        n++;
        nl.next_tx_ns += nl.interval_ns;
        if (probe) {
            break;
        }
    }
    if (n) {
        barrier();
        WRITE_ONCE(q->avail.idx, vnet.avail_idx[VNET_TXQ]);
        vnet_kick(VNET_TXQ);
    }
    return n;
}

static void heartbeat(Cpu *c, uint64_t now)
{
    GwosNetResults *r = &results->net;
    char line[320];

    /*
     * Frames still out NET_LOST_AGE_NS after they were sent: lost. Ages
     * come from the marks the heartbeats leave (a late heartbeat does not
     * shorten them), so to within a heartbeat interval.
     */
    for (uint32_t i = nl.mark_n > NET_MARKS ? nl.mark_n - NET_MARKS : 0; i < nl.mark_n; i++) {
        if (nl.mark_ns[i % NET_MARKS] + NET_LOST_AGE_NS <= now) {
            net_seq_expire(&nl.seq, nl.mark_seq[i % NET_MARKS]);
        }
    }
    nl.mark_seq[nl.mark_n % NET_MARKS] = nl.seq.next;
    nl.mark_ns[nl.mark_n % NET_MARKS] = now;
    nl.mark_n++;
    /* A gap still open counts too, or a dead link would look quiet. */
    if (r->last_rx_ns && now - r->last_rx_ns > r->gap_hb_ns) {
        r->gap_hb_ns = now - r->last_rx_ns;
        r->maxgap_ns = r->gap_hb_ns > r->maxgap_ns ? r->gap_hb_ns : r->maxgap_ns;
    }
    publish();
    ksnprintf(line, sizeof(line),
              "net t=%lu.%03lu tx=%lu rx=%lu lost=%lu dup=%lu reorder=%lu corrupt=%lu "
              "foreign=%lu maxgap_us=%lu gap_us=%lu irqs=%lu late=%lu inflight=%lu "
              "rtt_us=%lu rtt_max_us=%lu skipped=%lu\n",
              now / NSEC_PER_SEC, now % NSEC_PER_SEC / 1000000, r->tx, r->rx, r->lost,
              r->dup, r->reorder, r->corrupt, r->foreign, r->maxgap_ns / 1000,
              r->gap_hb_ns / 1000, READ_ONCE(r->irqs), r->late,
              net_seq_outstanding(&nl.seq),
              nl.rtt_hb_n ? nl.rtt_hb_sum / nl.rtt_hb_n / 1000 : 0, r->rtt_max_ns / 1000,
              r->skipped);
    uconsole_write(c, line, strlen(line));
    r->gap_hb_ns = 0;
    r->last_hb_ns = now;
    r->hb_count++;
    nl.rtt_hb_sum = nl.rtt_hb_n = 0;
}

void net_poll(Cpu *c, uint64_t now)
{
    if (nl.finished) {
        return;
    }
    if (!nl.started) {
        start(c, now);
    }
    reclaim_tx();
    uint32_t moved = receive(c, now) + transmit(now);
    if (moved) {
        publish();
    }
    if (now >= nl.next_hb_ns) {
        if (nl.next_hb_ns) {
            heartbeat(c, now);
        }
        nl.next_hb_ns = (now / NSEC_PER_SEC + 1) * NSEC_PER_SEC;
    }
    if (READ_ONCE(nl.stop_req)) {
        net_finish(c);
    }
}

/*
 * exit=N, on the net vCPU: stop sending, give frames in flight
 * NET_DRAIN_NS to come back, count the rest lost, print the summary.
 */
void net_finish(Cpu *c)
{
    GwosNetResults *r = &results->net;
    char line[256];

    if (nl.finished) {
        return;
    }
    nl.finished = true;
    if (!nl.started) {
        start(c, clock_ns(c));
    }
    uint64_t until = clock_ns(c) + NET_DRAIN_NS;
    for (uint64_t t = clock_ns(c); t < until && net_seq_outstanding(&nl.seq);
         t = clock_ns(c)) {
        reclaim_tx();
        receive(c, t);
        uconsole_poll(c, t);
    }
    net_seq_expire(&nl.seq, nl.seq.next);
    publish();
    r->state = GWOS_NET_DONE;
    ksnprintf(line, sizeof(line),
              "net done tx=%lu rx=%lu lost=%lu dup=%lu reorder=%lu corrupt=%lu foreign=%lu "
              "late=%lu maxgap_us=%lu irqs=%lu\n", r->tx, r->rx, r->lost, r->dup,
              r->reorder, r->corrupt, r->foreign, r->late, r->maxgap_ns / 1000,
              READ_ONCE(r->irqs));
    uconsole_write(c, line, strlen(line));
    WRITE_ONCE(nl.stopped, 1);
}

/*
 * The BSP's exit path: have the net vCPU stop (or stop here if this is
 * it) and wait, guest-clock bounded, for its summary.
 */
void net_stop(Cpu *c)
{
    if (results->net.state != GWOS_NET_RUNNING) {
        return;
    }
    if (c->net) {
        net_finish(c);
        return;
    }
    /*
     * Bounded, in case that vCPU is wedged, but generously: on a loaded
     * host its thread may wait seconds for a CPU while this clock runs.
     */
    WRITE_ONCE(nl.stop_req, 1);
    uint64_t until = clock_ns(c) + NET_STOP_WAIT_NS;
    for (uint64_t t = clock_ns(c); t < until && !READ_ONCE(nl.stopped); t = clock_ns(c)) {
        uconsole_poll(c, t);
    }
    if (!READ_ONCE(nl.stopped)) {
        uprintf(c, "gwos: warning: the net vCPU did not stop within %lu s\n",
                (uint64_t)(NET_STOP_WAIT_NS / NSEC_PER_SEC));
    }
}
