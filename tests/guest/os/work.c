/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos workloads. work_main() runs in ring 3 on every vCPU over that vCPU's
 * own slice of RAM and never returns. Every page of the slice carries a tag
 * (in its first and last 8 bytes) naming its address and the generation the
 * workload last wrote; every write checks the old tag first, and a scrubber
 * re-checks one more page per iteration, so each page is verified once per
 * sweep whatever the access pattern. Each iteration also reads the clock:
 * the stall meter. Nothing here may use privileged instructions.
 */
#include "gwos.h"

#define PAGE 4096ull
#define SCRUB_EVERY 1       /* scrub one page per iteration */

static inline uint64_t tag(uint64_t addr, uint64_t gen)
{
    uint32_t h = (uint32_t)((addr >> 12) * 0x9e3779b1u) | 0x80000000u;
    return (uint64_t)h << 32 | (uint32_t)gen;
}

static uint64_t page_addr(Cpu *c, uint64_t idx)
{
    for (int i = 0; i < c->next; i++) {
        if (idx < c->ext[i].pages) {
            return c->ext[i].addr + idx * PAGE;
        }
        idx -= c->ext[i].pages;
    }
    return c->ext[0].addr;      /* not reached */
}

#define MAX_REPORTS 16   /* CORRUPT lines per vCPU; the count goes on */

static void report(Cpu *c, uint64_t addr, uint64_t expected, uint64_t got)
{
    c->res->corrupt++;
    if (!c->res->first_bad_addr) {
        c->res->first_bad_addr = addr;
    }
    if (c->reported++ < MAX_REPORTS) {
        uprintf(c, "CORRUPT cpu=%d addr=0x%lx expected=0x%lx got=0x%lx\n", c->index,
                addr, expected, got);
    }
}

/* Check a page's two tag words; repair them so one bad page is one report. */
static inline void check(Cpu *c, uint64_t a, uint64_t want)
{
    volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)a;
    uint64_t w0 = p[0], w1 = p[511];

    if (__builtin_expect(w0 != want, 0)) {
        report(c, a, want, w0);
        p[0] = want;
    }
    if (__builtin_expect(w1 != want, 0)) {
        report(c, a + 4088, want, w1);
        p[511] = want;
    }
}

static inline void put(uint64_t a, uint64_t v)
{
    volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)a;
    p[0] = v;
    p[511] = v;
}

/*
 * The heartbeat, once a second of guest time per vCPU (format in
 * docs/devel/guest-os.md). gap_us is the largest gap since the previous
 * heartbeat, maxgap_us the largest since the workload started.
 */
static void heartbeat(Cpu *c, uint64_t now)
{
    GwosCpuResults *r = c->res;
    uint64_t gap = r->gap_hb_ns;
    uint64_t corrupt = 0;

    r->gap_hb_ns = 0;
    r->last_hb_ns = now;
    r->hb_count++;
    for (uint32_t i = 0; i < results->ncpus; i++) {
        corrupt += results->cpu[i].corrupt;
    }
    results->corrupt_total = corrupt;
    uprintf(c, "hb cpu=%d t=%lu.%03lu iters=%lu gap_us=%lu maxgap_us=%lu ticks=%lu "
            "pit=%lu back=%lu corrupt=%lu pass=%lu\n",
            c->index, now / NSEC_PER_SEC, now % NSEC_PER_SEC / 1000000, r->iters,
            gap / 1000, r->maxgap_ns / 1000, r->lapic_ticks, results->pit_ticks,
            r->backwards, r->corrupt, r->pass);
}

/* exit=N: summary line, then the debug-exit port (status 1 good, 3 bad). */
void work_finish(Cpu *c)
{
    uint64_t corrupt = 0, back = 0, maxgap = 0;

    net_stop(c);

    for (uint32_t i = 0; i < results->ncpus; i++) {
        GwosCpuResults *r = &results->cpu[i];
        corrupt += r->corrupt;
        back += r->backwards;
        maxgap = r->maxgap_ns > maxgap ? r->maxgap_ns : maxgap;
    }
    results->state = GWOS_STATE_DONE;
    if (results->net.state == GWOS_NET_DONE) {
        /* net=on only, so the line without it stays as it was */
        uprintf(c, "gwos: done corrupt=%lu back=%lu maxgap_us=%lu net_corrupt=%lu "
                "net_lost=%lu\n", corrupt, back, maxgap / 1000, results->net.corrupt,
                results->net.lost);
        corrupt += results->net.corrupt;
    } else {
        uprintf(c, "gwos: done corrupt=%lu back=%lu maxgap_us=%lu\n", corrupt, back,
                maxgap / 1000);
    }
    /*
     * Let the line drain before the exit ends the VM: on a slow (nested)
     * KVM a burst and its UART interrupt can take longer than 200 ms.
     */
    uint64_t until = clock_ns(c) + 10000000000ull;
    for (uint64_t t = clock_ns(c); t < until && !uconsole_drained(); t = clock_ns(c)) {
        uconsole_poll(c, t);
    }
    uio_outb(0x501, corrupt || back ? 1 : 0);
    for (;;) {
        cpu_relax();
    }
}

static void __attribute__((noinline)) events(Cpu *c, uint64_t now)
{
    if (now >= c->next_hb_ns) {
        if (c->next_hb_ns) {
            heartbeat(c, now);
        }
        c->next_hb_ns = (now / NSEC_PER_SEC + 1) * NSEC_PER_SEC;
    }
    c->next_event_ns = c->next_hb_ns;
    if (c->index == 0) {
        if (cfg.marker_hz) {
            uint64_t period = NSEC_PER_SEC / cfg.marker_hz;
            if (now >= c->next_marker_ns) {
                if (c->next_marker_ns) {
                    /* counted first: a host that saw marker N finds >= N + 1 */
                    results->marker_seq = c->marker_seq + 1;
                    marker_emit(c, c->marker_seq++);
                }
                /* on schedule; after a stall, one marker and a new start */
                c->next_marker_ns = c->next_marker_ns + period > now ?
                                    c->next_marker_ns + period : now + period;
            }
            if (c->next_marker_ns < c->next_event_ns) {
                c->next_event_ns = c->next_marker_ns;
            }
        }
        if (cfg.exit_after_s && now - results->boot_ns >= cfg.exit_after_s * NSEC_PER_SEC) {
            work_finish(c);
        }
    }
}

/* The stall meter: one clock read per iteration. */
static inline uint64_t meter(Cpu *c)
{
    GwosCpuResults *r = c->res;
    uint64_t t = clock_ns(c);

    if (__builtin_expect(t < c->last_ns, 0)) {
        r->backwards++;
        if (c->last_ns - t > r->max_back_ns) {
            r->max_back_ns = c->last_ns - t;
        }
    } else {
        uint64_t gap = t - c->last_ns;
        if (gap > r->gap_hb_ns) {
            r->gap_hb_ns = gap;
            if (gap > r->maxgap_ns) {
                r->maxgap_ns = gap;
            }
        }
    }
    c->last_ns = t;
    r->now_ns = t;
    r->iters++;
    uconsole_poll(c, t);
    if (__builtin_expect(c->net, 0)) {
        net_poll(c, t);
    }
    if (__builtin_expect(t >= c->next_event_ns, 0)) {
        events(c, t);
    }
    return t;
}

static inline uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Rate limiter: true when the next write is due. */
typedef struct Pace {
    uint64_t interval_ns;   /* 0 = unlimited */
    uint64_t next_ns;
} Pace;

static inline bool pace_due(Pace *p, uint64_t now)
{
    if (!p->interval_ns) {
        return true;
    }
    if (now < p->next_ns) {
        return false;
    }
    p->next_ns += p->interval_ns;
    if (p->next_ns + 100000000ull < now) {
        p->next_ns = now;   /* after a long stall, no catch-up burst */
    }
    return true;
}

static void __attribute__((noreturn)) idle_loop(Cpu *c)
{
    for (;;) {
        meter(c);
    }
}

/* tick and ws: sequential sweeps; page j holds generation pass or pass-1. */
static void __attribute__((noreturn)) seq_loop(Cpu *c, Pace *pace)
{
    uint64_t pass = 1, cur = 0, scrub = 0;

    for (;;) {
        uint64_t now = meter(c);
        if (pace_due(pace, now)) {
            uint64_t a = page_addr(c, cur);
            check(c, a, tag(a, pass - 1));
            put(a, tag(a, pass));
            if (++cur == c->pages) {
                cur = 0;
                c->res->pass = pass++;
            }
        }
        uint64_t s = page_addr(c, scrub);
        check(c, s, tag(s, scrub < cur ? pass : pass - 1));
        if (++scrub == c->pages) {
            scrub = 0;
        }
    }
}

/* rand and read: generations kept in the shadow table (one byte per page). */
static void __attribute__((noreturn)) shadow_loop(Cpu *c, Pace *pace, bool reads)
{
    uint64_t scrub = 0, nread = 0, sweep = 0;
    uint64_t every = cfg.read_write_every ? cfg.read_write_every : 16;

    for (;;) {
        uint64_t now = meter(c);
        bool write;
        if (reads) {
            /* read a whole page (one word per cache line), check its tags */
            uint64_t a = page_addr(c, scrub);
            const volatile uint64_t *p = (const volatile uint64_t *)(uintptr_t)a;
            uint64_t sum = 0;
            for (int i = 0; i < 512; i += 8) {
                sum += p[i];
            }
            (void)sum;
            nread++;
            write = pace->interval_ns ? pace_due(pace, now) : nread % every == 0;
        } else {
            write = pace_due(pace, now);
        }
        if (write) {
            uint64_t idx = xorshift(&c->rng) % c->pages;
            uint64_t a = page_addr(c, idx);
            uint8_t g = c->shadow[idx];
            check(c, a, tag(a, g));
            c->shadow[idx] = ++g;
            put(a, tag(a, g));
        }
        uint64_t s = page_addr(c, scrub);
        check(c, s, tag(s, c->shadow[scrub]));
        if (++scrub == c->pages) {
            scrub = 0;
            c->res->pass = ++sweep;
        }
    }
}

void work_main(Cpu *c)
{
    Pace pace = { 0, 0 };

    c->last_ns = clock_ns(c);
    if (c->work == GWOS_WORK_IDLE || !c->pages) {
        idle_loop(c);
    }
    /* Initial sweep: every page gets generation 0. */
    if (c->shadow) {
        for (uint64_t i = 0; i < c->pages; i++) {
            c->shadow[i] = 0;
        }
    }
    for (uint64_t i = 0; i < c->pages; i++) {
        meter(c);
        uint64_t a = page_addr(c, i);
        put(a, tag(a, 0));
    }
    if (c->rate_bytes_per_s) {
        pace.interval_ns = PAGE * NSEC_PER_SEC / c->rate_bytes_per_s;
        pace.next_ns = clock_ns(c);
    }
    c->res->online = 1;
    uprintf(c, "gwos: cpu %d working pages=%lu\n", c->index, c->pages);
    switch (c->work) {
    case GWOS_WORK_TICK:
        pace.interval_ns = 0;
        seq_loop(c, &pace);
    case GWOS_WORK_WS:
        seq_loop(c, &pace);
    case GWOS_WORK_RAND:
        shadow_loop(c, &pace, false);
    default:
        shadow_loop(c, &pace, true);
    }
}
