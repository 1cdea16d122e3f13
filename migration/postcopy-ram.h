/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Destination side of postcopy RAM: userfaultfd registration of guest RAM,
 * the fault thread that turns missing-page faults into page requests,
 * atomic page placement, discards, and blocktime/latency statistics.
 * No KVM or monitor dependency: unit tests drive it on plain memory.
 * docs/devel/migration/postcopy.md describes the threads and page lifecycle.
 */
#ifndef GODWIT_POSTCOPY_RAM_H
#define GODWIT_POSTCOPY_RAM_H

#include "qemu/osdep.h"
#include "hw/machine.h"

struct uffd_msg;

typedef struct PostcopyIncoming PostcopyIncoming;

/*
 * Callbacks into the migration core. Both run WITHOUT any postcopy lock
 * held, so they may take their own locks and block briefly.
 */
typedef struct PostcopyHooks {
    /*
     * Ask the source for [offset, offset + len) of the block (one host page).
     * Called from the fault thread (and from postcopy_incoming_resume()).
     * Return false when the return path is broken: the request stays in the
     * outstanding set and is sent again by postcopy_incoming_resume().
     */
    bool (*request_page)(void *opaque, uint64_t offset, uint32_t len);
    /*
     * Optional: a host page became present (placed, or found present after
     * a fault). Wakes faulters that sleep on other userfaultfds (vhost-user
     * back-ends). Called from the placing thread or the fault thread.
     */
    void (*page_placed)(void *opaque, uint64_t offset, uint32_t len);
} PostcopyHooks;

/* QEMU 10.1's postcopy-latency-dist: bucket N counts faults in [2^N, 2^(N+1)) us. */
#define POSTCOPY_LATENCY_BUCKETS 24

typedef struct PostcopyLatency {
    uint64_t faults;          /* remote faults resolved (one per waiting thread) */
    uint64_t total_ns;
    uint64_t avg_ns;          /* total_ns / faults: QEMU's *-latency fields */
    uint64_t p50_ns;          /* percentiles from a log histogram, within ~6% */
    uint64_t p99_ns;
    uint64_t max_ns;
} PostcopyLatency;

typedef struct PostcopyStats {
    uint64_t faults;            /* fault messages read from our userfaultfd */
    uint64_t faults_received;   /* ... on a page already received (no request) */
    uint64_t faults_pending;    /* ... on a page already requested (no request) */
    uint64_t external_faults;   /* faults forwarded by external userfaultfds */
    uint64_t requests;          /* request_page calls that succeeded */
    uint64_t request_failures;  /* request_page calls that returned false */
    uint64_t resent;            /* requests re-sent by postcopy_incoming_resume */
    uint64_t pages_placed;      /* host pages made present by UFFDIO_COPY */
    uint64_t zero_pages_placed; /* host pages made present as zeros */
    uint64_t local_zero_fills;  /* received-but-absent pages zero-filled on fault */
    uint64_t duplicates;        /* placements that found the page present (EEXIST) */
    uint64_t duplicates_unexpected; /* placements refused: present, never received */
    uint64_t discard_dontneed;  /* discard calls that used MADV_DONTNEED */
    uint64_t discard_punch_hole; /* ... fallocate(PUNCH_HOLE) on the backing fd */
    uint64_t discard_remove;    /* ... MADV_REMOVE (shared anonymous memory) */
    uint64_t pending;           /* host pages requested and not yet placed */
    uint64_t missing_pages;     /* target pages not yet received */
    PostcopyLatency all;        /* postcopy-latency (ns) */
    PostcopyLatency vcpu;       /* faults from vCPU threads */
    PostcopyLatency non_vcpu;   /* postcopy-non-vcpu-latency (ns) */
    uint64_t latency_dist[POSTCOPY_LATENCY_BUCKETS]; /* postcopy-latency-dist */
} PostcopyStats;

/*
 * Handler for faults read from an external userfaultfd (a vhost-user
 * back-end's). Runs in the fault thread with no lock held. It translates
 * msg->arg.pagefault.address into a block offset and calls
 * postcopy_fault_external(); if that returns true the page is already
 * present and the handler must UFFDIO_WAKE its own fd.
 */
typedef void (*PostcopyExternalFaultFn)(PostcopyIncoming *pi, void *opaque,
                                        const struct uffd_msg *msg);

/*
 * Probe, now, whether postcopy can serve @rb on this host: opens a
 * userfaultfd that also traps kernel accesses (no UFFD_USER_MODE_ONLY),
 * negotiates the features the backend needs (shmem/hugetlbfs), and does a
 * REGISTER/COPY/ZEROPAGE on a scratch area of the same kind. On failure one
 * sentence saying what is missing and how to enable it. Any thread; no lock.
 * The caller must not hold guest RAM mlock()ed while postcopy runs.
 */
bool postcopy_ram_supported(const RAMBlock *rb, GError **errp);

/*
 * Create the destination postcopy state for @rb. @received is the RAM
 * loader's bitmap (1 bit per 4 KiB target page, 64-bit words), already
 * filled by precopy; from now on only this module writes it (atomically),
 * others may read it with atomic loads. Opens and negotiates the
 * userfaultfd but registers nothing yet. Main/incoming thread.
 */
PostcopyIncoming *postcopy_incoming_new(RAMBlock *rb, unsigned long *received,
                                        size_t npages_target,
                                        const PostcopyHooks *hooks, void *opaque,
                                        GError **errp);

/*
 * vCPU thread ids (gettid()) in vCPU index order, for blocktime: faults
 * whose TID matches count as vCPU faults. Call before listen (later calls
 * are allowed but reset the blocktime counters). Any thread; takes the lock.
 */
void postcopy_set_vcpu_tids(PostcopyIncoming *pi, const int *tids, int n);

/*
 * DISCARD phase (after ADVISE, before LISTEN): drop [offset, offset + len)
 * so that it faults again, and clear its received bits. Both must be
 * aligned to the block's host page size. Private anonymous memory uses
 * MADV_DONTNEED; shared memory punches a hole in the backing fd (or
 * MADV_REMOVE), because MADV_DONTNEED keeps a shared page's data and the
 * page would never fault. The first discard marks the block
 * MADV_NOHUGEPAGE. Incoming thread; not after postcopy_listen().
 */
bool postcopy_discard_range(PostcopyIncoming *pi, uint64_t offset, uint64_t len,
                            GError **errp);

/*
 * Register external userfaultfds (vhost-user back-ends) to poll. Only
 * before postcopy_listen(): the poll set is fixed when the fault thread
 * starts. The fd stays owned by the caller; close it after
 * postcopy_incoming_finish()/free(). Incoming thread.
 */
bool postcopy_register_external_uffd(PostcopyIncoming *pi, int fd,
                                     PostcopyExternalFaultFn handler, void *opaque,
                                     GError **errp);

/*
 * External userfaultfds described by callbacks instead of a raw handler:
 * the fault thread reads the fd itself and treats each fault like one of
 * ours. Each callback runs with no postcopy lock held.
 */
typedef struct PostcopyExternalOps {
    /*
     * The owner's faulting address -> block offset; false if it is not guest
     * RAM the owner shares (the fault is then woken at once). Fault thread.
     */
    bool (*translate)(void *opaque, uint64_t addr, uint64_t *offset);
    /*
     * [offset, offset + len) of the block is present now (placed, or found
     * received when the fault was read): UFFDIO_WAKE the owner's sleepers
     * there. Called after every page that becomes present, requested or
     * not. Placing (listen) thread or fault thread.
     */
    void (*wake)(void *opaque, uint64_t offset, uint64_t len);
} PostcopyExternalOps;

/* As postcopy_register_external_uffd, with callbacks; same rules. */
bool postcopy_register_external_uffd_ops(PostcopyIncoming *pi, int fd,
                                         const PostcopyExternalOps *ops, void *opaque,
                                         GError **errp);

/*
 * For an external fault handler: a thread (TID @tid, 0 if unknown) faulted
 * on block offset @offset. Requests the page (de-duplicated like our own
 * faults) and returns false, or returns true if the page is present already
 * (the caller wakes its own fd). Fault thread only.
 */
bool postcopy_fault_external(PostcopyIncoming *pi, uint64_t offset, uint32_t tid);

/*
 * LISTEN: register the whole block with userfaultfd (MODE_MISSING), check
 * the kernel offers COPY, WAKE (and ZEROPAGE unless hugetlbfs), and start
 * the fault thread "mig/dst/fault". From here on a missing page makes its
 * reader sleep until it is placed. Incoming thread.
 */
bool postcopy_listen(PostcopyIncoming *pi, GError **errp);

/*
 * Place one whole host page (4 KiB, or the huge page size) at @offset with
 * UFFDIO_COPY from @host_page; atomically: no reader sees it half written.
 * A page that is present already (sent twice: requested and swept) is
 * success. Sets its received bits, removes it from the outstanding set,
 * accounts blocktime/latency, then calls page_placed. Listen thread (one
 * placer at a time); safe against the fault thread.
 */
bool postcopy_place_page(PostcopyIncoming *pi, uint64_t offset, const void *host_page,
                         GError **errp);
/*
 * @npages consecutive host pages from @src (contiguous), with as few
 * ioctls as possible (4 KiB pages: one UFFDIO_COPY for the run). Same
 * semantics as postcopy_place_page for each page. Listen thread.
 */
bool postcopy_place_pages(PostcopyIncoming *pi, uint64_t offset, const void *src,
                          uint32_t npages, GError **errp);
/* Same for a page that is all zeros (UFFDIO_ZEROPAGE; hugetlbfs: a zero copy). */
bool postcopy_place_zero_page(PostcopyIncoming *pi, uint64_t offset, GError **errp);

/*
 * Another process about to map the block (a vhost-user back-end) may
 * populate pages that have not arrived, e.g. one that locks all its memory:
 * their content would then be zeros, and the page, present, would never
 * fault. The caller holds placement while that process maps the memory
 * (the placing thread waits; nothing here waits for it), then drops every
 * page that is present but not received so that it faults and arrives as
 * usual, then releases. Any thread; not the placing one.
 */
void postcopy_placement_hold(PostcopyIncoming *pi);
void postcopy_placement_release(PostcopyIncoming *pi);
/* With placement held: pages dropped (0: nobody populated any), or -1 with @errp. */
int64_t postcopy_drop_unreceived(PostcopyIncoming *pi, GError **errp);

/* Whether every target page of the block has been received. Any thread. */
bool postcopy_all_received(PostcopyIncoming *pi);

/*
 * Connection failure: keep the userfaultfd registered (blocked threads
 * stay blocked; no zero page is ever handed out in place of data), keep the
 * outstanding set, stop sending requests (new faults are still recorded).
 * Any thread.
 */
void postcopy_incoming_pause(PostcopyIncoming *pi);
/*
 * Recovery: send every outstanding request again (the new channel is
 * connected) and resume normal requesting. False if a send failed (then
 * still paused). Listen thread.
 */
bool postcopy_incoming_resume(PostcopyIncoming *pi, GError **errp);

/*
 * Completion: only once every page has arrived (else false and nothing
 * changes): stop the fault thread, forget the external userfaultfds and
 * raise POSTCOPY_NOTIFY_INBOUND_END (their owners may close them now),
 * UFFDIO_UNREGISTER, close the userfaultfd, give anonymous RAM back its
 * MADV_HUGEPAGE. Unregistering
 * while pages are missing would let threads read zeros where guest data
 * belongs. Listen or main thread.
 */
bool postcopy_incoming_finish(PostcopyIncoming *pi, GError **errp);

/*
 * Free the state. Stops the fault thread. If pages are still missing the
 * userfaultfd is deliberately left open and registered (closing it would
 * unregister): blocked threads stay blocked until the process exits.
 * Main thread.
 */
void postcopy_incoming_free(PostcopyIncoming *pi);

/*
 * Blocktime (QEMU's postcopy-blocktime / postcopy-vcpu-blocktime, ms),
 * live: time still being spent blocked is included. @total_ms counts only
 * time when all vCPUs were blocked at once. @per_vcpu_ms gets min(n, nvcpus)
 * entries (may be NULL). Any thread.
 */
void postcopy_get_blocktime(PostcopyIncoming *pi, uint32_t *total_ms,
                            uint32_t *per_vcpu_ms, int n);
/* Average remote-fault latency per vCPU (postcopy-vcpu-latency, ns). */
void postcopy_get_vcpu_latency(PostcopyIncoming *pi, uint64_t *avg_ns, int n);
/* Counters and latency statistics, copied under the lock. Any thread. */
void postcopy_get_stats(PostcopyIncoming *pi, PostcopyStats *st);

/* The userfaultfd (tests, diagnostics), -1 once closed. */
int postcopy_incoming_uffd(PostcopyIncoming *pi);

#endif
