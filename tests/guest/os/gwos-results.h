/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos results page: a fixed guest-physical area the guest OS keeps up to
 * date and the host reads with pmemsave (or straight from guest RAM).
 * Shared by the guest (freestanding) and host-side tests; only <stdint.h>.
 * All fields little-endian; docs/devel/guest-os.md describes them.
 */
#ifndef GWOS_RESULTS_H
#define GWOS_RESULTS_H

#include <stdint.h>

#define GWOS_RESULTS_GPA      0x4000u    /* two pages: 0x4000..0x5fff */
#define GWOS_RESULTS_SIZE     0x2000u
#define GWOS_RESULTS_MAGIC    0x31534552534f5747ull   /* "GWOSRES1" */
#define GWOS_RESULTS_VERSION  3u   /* 2: GwosResults.net; 3: io_gp_traps */
#define GWOS_MAX_CPUS         32

/* GwosResults.state */
enum {
    GWOS_STATE_BOOT = 0,      /* BSP is setting up */
    GWOS_STATE_RUNNING = 1,   /* all vCPUs up, workloads running */
    GWOS_STATE_DONE = 2,      /* exit=N reached */
    GWOS_STATE_FAILED = 3,    /* boot error or CPU exception (see serial) */
};

/* GwosResults.work */
enum {
    GWOS_WORK_IDLE = 0,
    GWOS_WORK_TICK = 1,
    GWOS_WORK_WS = 2,
    GWOS_WORK_RAND = 3,
    GWOS_WORK_READ = 4,
};

/* GwosResults.clock */
enum {
    GWOS_CLOCK_TSC = 1,       /* TSC calibrated against the PIT */
    GWOS_CLOCK_KVM = 2,       /* kvmclock (pvclock page per vCPU) */
};

/* GwosNetResults.state */
enum {
    GWOS_NET_OFF = 0,         /* no net=on on the command line */
    GWOS_NET_NO_DEVICE = 1,   /* no usable virtio-net device on the PCI bus */
    GWOS_NET_FAILED = 2,      /* the device refused the driver (see serial) */
    GWOS_NET_RUNNING = 3,     /* the network loop runs */
    GWOS_NET_DONE = 4,        /* exit=N: stopped, outstanding frames resolved */
};

#define GWOS_NET_RTT_BUCKETS 16

/*
 * The network workload's figures (net=on); 512 bytes at offset 0x1100.
 * Counters as in the "net" serial line; times are guest clock nanoseconds.
 */
typedef struct GwosNetResults {
    uint32_t state;           /* 0x00 GWOS_NET_* */
    uint32_t cpu;             /* 0x04 vCPU index running the loop */
    uint32_t pci_bdf;         /* 0x08 bus << 8 | device << 3 | function */
    uint16_t vendor;          /* 0x0c */
    uint16_t device;          /* 0x0e */
    uint8_t mac[6];           /* 0x10 */
    uint8_t irq_line;         /* 0x16 PCI interrupt line (0xff: none) */
    uint8_t irq_pin;          /* 0x17 PCI interrupt pin (1 = INTA) */
    uint32_t gsi;             /* 0x18 IOAPIC input used */
    uint32_t queue_size;      /* 0x1c entries per ring (RX and TX) */
    uint64_t features;        /* 0x20 negotiated feature bits */
    uint64_t frame_len;       /* 0x28 bytes per frame (Ethernet header included) */
    uint64_t rate;            /* 0x30 frames/s (0 = as fast as the window allows) */
    uint64_t window;          /* 0x38 frames in flight at most */
    uint64_t tx;              /* 0x40 frames queued for sending */
    uint64_t rx;              /* 0x48 distinct frames of ours that came back */
    uint64_t lost;            /* 0x50 */
    uint64_t dup;             /* 0x58 */
    uint64_t reorder;         /* 0x60 */
    uint64_t late;            /* 0x68 came back after being counted lost */
    uint64_t corrupt;         /* 0x70 failed nf_check() (other than not ours) */
    uint64_t foreign;         /* 0x78 not ours: other frames, streams, unsent seqs */
    uint64_t maxgap_ns;       /* 0x80 longest gap between two frames received */
    uint64_t gap_hb_ns;       /* 0x88 longest gap in the last heartbeat interval */
    uint64_t last_rx_ns;      /* 0x90 guest clock at the last frame received */
    uint64_t rtt_max_ns;      /* 0x98 round trip: sent_ns to receipt */
    uint64_t rtt_sum_ns;      /* 0xa0 over rx (average = rtt_sum_ns / rx) */
    uint64_t irqs;            /* 0xa8 INTx interrupts taken */
    uint64_t irqs_idle;       /* 0xb0 of those, with the ISR register read as 0 */
    uint64_t tx_kicks;        /* 0xb8 TX queue notifications */
    uint64_t rx_kicks;        /* 0xc0 RX queue notifications */
    uint64_t hb_count;        /* 0xc8 net heartbeats printed */
    uint64_t last_hb_ns;      /* 0xd0 */
    uint64_t first_bad_seq;   /* 0xd8 seq field of the first corrupt frame */
    uint64_t rtt_hist[GWOS_NET_RTT_BUCKETS];  /* 0xe0 by round trip: [0] < 2 us,
                               * [i] in [2^i, 2^(i+1)) us, [15] >= 32768 us */
    uint64_t probes;          /* 0x160 frames sent beyond a full window (see net.c) */
    uint64_t skipped;         /* 0x168 frames the rate's schedule gave up (stalls, full window) */
    uint64_t start_ns;        /* 0x170 guest clock when the loop started */
    uint64_t reserved[17];    /* 0x178 */
} GwosNetResults;

/* One vCPU's figures; 128 bytes. Times are guest clock nanoseconds. */
typedef struct GwosCpuResults {
    uint32_t apic_id;
    uint32_t online;          /* 1 once the vCPU runs its workload */
    uint64_t iters;           /* workload loop iterations */
    uint64_t maxgap_ns;       /* largest gap between iterations, ever */
    uint64_t last_hb_ns;      /* guest clock at the last heartbeat */
    uint64_t hb_count;        /* heartbeats printed */
    uint64_t lapic_ticks;     /* LAPIC timer interrupts */
    uint64_t corrupt;         /* verification mismatches seen */
    uint64_t backwards;       /* times the clock read went backwards */
    uint64_t max_back_ns;     /* largest backward step */
    uint64_t now_ns;          /* last clock value the loop read */
    uint64_t first_bad_addr;  /* first CORRUPT address (0 if none) */
    uint64_t pass;            /* completed passes over the working set */
    uint64_t gap_hb_ns;       /* largest gap in the last heartbeat interval */
    uint64_t reserved[3];
} GwosCpuResults;

typedef struct GwosResults {
    uint64_t magic;           /* 0x00 GWOS_RESULTS_MAGIC */
    uint32_t version;         /* 0x08 */
    uint32_t ncpus;           /* 0x0c vCPUs found in the MADT */
    uint32_t online;          /* 0x10 vCPUs running */
    uint32_t state;           /* 0x14 GWOS_STATE_* */
    uint64_t tsc_khz;         /* 0x18 */
    uint64_t lapic_hz;        /* 0x20 configured LAPIC timer rate */
    uint64_t pit_hz;          /* 0x28 configured PIT rate (0 = off) */
    uint64_t pit_ticks;       /* 0x30 IRQ0 interrupts on the BSP */
    uint64_t marker_seq;      /* 0x38 serial markers emitted */
    uint64_t serial_dropped;  /* 0x40 bytes dropped because the ring was full */
    uint64_t corrupt_total;   /* 0x48 */
    uint32_t work;            /* 0x50 GWOS_WORK_* */
    uint32_t clock;           /* 0x54 GWOS_CLOCK_* */
    uint64_t mem_bytes;       /* 0x58 working set, all vCPUs together */
    uint64_t rate_mib;        /* 0x60 write rate limit, MiB/s, all vCPUs (0 = none) */
    uint64_t boot_ns;         /* 0x68 guest clock when workloads started */
    uint64_t serial_tx;       /* 0x70 bytes written to the UART */
    uint64_t serial_irqs;     /* 0x78 UART interrupts */
    uint64_t serial_rx;       /* 0x80 bytes received (discarded) */
    uint64_t io_gp_traps;     /* 0x88 ring-3 port I/O done by the #GP stub
                               * (0 where the KVM honours IOPL 3) */
    uint64_t reserved[14];    /* 0x90 */
    GwosCpuResults cpu[GWOS_MAX_CPUS];   /* 0x100 */
    GwosNetResults net;                  /* 0x1100 (version 2) */
} GwosResults;

_Static_assert(sizeof(GwosCpuResults) == 128, "per-vCPU results are 128 bytes");
_Static_assert(sizeof(GwosNetResults) == 512, "net results are 512 bytes");
_Static_assert(sizeof(GwosResults) == 0x100 + 128 * GWOS_MAX_CPUS + 512,
               "results layout");
_Static_assert(sizeof(GwosResults) <= GWOS_RESULTS_SIZE, "results fit");

#endif
