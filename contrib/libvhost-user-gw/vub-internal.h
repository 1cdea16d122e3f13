/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Private state of a vhost-user back-end device and the interfaces between
 * the library's files: framing (vub-socket.c), message handlers
 * (vub-handlers.c), guest memory (vub-memory.c), dirty log (vub-log.c),
 * postcopy (vub-postcopy.c), split rings (vub-virtqueue.c), threads and
 * lifetime (vub-device.c).
 */
#ifndef VUB_INTERNAL_H
#define VUB_INTERNAL_H

#include "vhost-user-backend.h"
#include "vhost-user-protocol.h"

#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdarg.h>

/* Largest payload we read; anything bigger breaks the framing (QEMU's max is ~0x110). */
#define VUB_MSG_MAX_PAYLOAD 4096u
#define VUB_MAX_WATCHES     8u
/* The log covers at most 2^46 bytes of guest-physical space (64 TiB): 2 GiB of bitmap. */
#define VUB_LOG_MAX_SIZE    (1ull << 31)

typedef struct VubMsg {
    VhostUserHeader hdr;
    union {
        uint64_t u64;
        VhostUserVringState state;
        VhostUserVringAddr addr;
        VhostUserMemTable mem;
        VhostUserLogArea log;
        uint8_t raw[VUB_MSG_MAX_PAYLOAD];
    } payload;
    int fds[VHOST_USER_MAX_FDS];
    unsigned nfds;
    bool fds_truncated;     /* the sender attached more fds than any message may carry */
} VubMsg;

typedef struct VubRegion {
    uint64_t gpa;
    uint64_t size;
    uint64_t uva;           /* the front-end's address of gpa */
    uint64_t mmap_offset;   /* file offset of gpa */
    uint8_t *host;          /* our address of gpa */
    void *map_addr;         /* the whole mapping (starts at an aligned file offset) */
    size_t map_len;
    size_t page_size;       /* 4 KiB, or the huge page size of a hugetlbfs file */
    bool uffd_registered;
    /* Postcopy fault accounting: pages already seen present. Data thread. */
    uint64_t *seen;
} VubRegion;

typedef struct VubQueue {
    unsigned index;
    /* Set by messages (control thread, dp_lock held). */
    uint32_t num;                   /* 0 until SET_VRING_NUM */
    uint16_t last_avail;            /* next avail entry to pop */
    VhostUserVringAddr addr;
    bool addr_set;
    int kick_fd, call_fd, err_fd;   /* -1 when absent */
    bool kick_polled;               /* SET_VRING_KICK with the no-fd bit */
    bool enabled;
    bool started;                   /* between SET_VRING_KICK and GET_VRING_BASE */
    bool broken;                    /* a malformed ring: ignored until set up again */
    uint32_t gen;                   /* bumped when the kick fd changes (stale events) */
    /* Derived when started (dp_lock held). */
    VringDesc *desc;
    VringAvail *avail;
    VringUsed *used;
    bool needs_sync;                /* data thread: touch the ring, load used idx, kick the app */
    bool announced;                 /* queue_state(started) was called */
    bool pending;                   /* data thread: call queue_kick this round */
    uint16_t used_idx;
    uint16_t signalled_used;
    bool signalled_used_valid;
    unsigned inflight;              /* popped, not pushed */
} VubQueue;

typedef struct VubWatch {
    int fd;
    VubWatchFn cb;
    void *opaque;
    bool pending;
} VubWatch;

typedef enum VubMode { VUB_MODE_NONE, VUB_MODE_SERVER, VUB_MODE_CLIENT, VUB_MODE_FD } VubMode;

struct VubDev {
    VubConfig cfg;
    VubOps ops;
    uint64_t offered_features;
    uint64_t offered_protocol;

    /* Connection (control thread only, except where noted). */
    VubMode mode;
    char *path;
    int listen_fd;
    int adopted_fd;
    int sock;                       /* current session, -1 between sessions */
    int stop_fd;                    /* eventfd: vub_stop wants both threads out */
    int finished_fd;                /* eventfd: the session ended for good */
    atomic_bool stopping;
    atomic_bool finished;
    bool threads_started;
    pthread_t ctl_thread, data_thread;
    atomic_bool data_exited;

    /*
     * Everything below up to the statistics is read by the data thread and
     * written by the control thread, both holding dp_lock.
     */
    pthread_mutex_t dp_lock;
    uint64_t features;              /* negotiated (SET_FEATURES) */
    uint64_t protocol_features;     /* negotiated (SET_PROTOCOL_FEATURES) */
    bool owner;
    VubRegion regions[VHOST_USER_MEM_REGIONS_MAX];
    unsigned nregions;
    uint8_t *log;                   /* dirty bitmap, one bit per 4 KiB of GPA */
    uint64_t log_size;
    void *log_map;
    size_t log_map_len;
    bool log_overflow_warned;
    VubQueue queues[VUB_MAX_QUEUES];
    VubWatch watches[VUB_MAX_WATCHES];
    unsigned nwatches;
    bool fault_accounting;          /* postcopy: time first touches of missing pages */
    int epfd;                       /* data thread's epoll set (kick fds, watches, wake) */
    int wake_fd;                    /* eventfd: the data thread must look at the state again */
    bool any_polled;                /* some started queue has no kick fd: poll every 1 ms */

    /* Postcopy (control thread only). */
    int uffd;                       /* ours, from POSTCOPY_ADVISE; -1 otherwise */
    atomic_bool postcopy_listening;

    /* Statistics (any thread). */
    atomic_uint_fast64_t st_sessions, st_messages, st_rejected, st_log_writes;
    atomic_bool st_connected;
    pthread_mutex_t fault_lock;     /* protects the fault samples below */
    uint64_t faults, fault_ns_total, fault_ns_max;
    uint64_t *fault_samples;        /* first VUB_FAULT_SAMPLES latencies */
};

/* ---- logging (vub-device.c) --------------------------------------------- */
void vub_log(VubDev *dev, VubLogLevel level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vub_error_set(VubError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vub_wake_data(VubDev *dev);
uint64_t vub_now_ns(void);

/* ---- framing (vub-socket.c) --------------------------------------------- */
/* 1: a message; 0: the peer closed between messages; -1: error (logged) or stopping. */
int vub_msg_read(VubDev *dev, int sock, VubMsg *msg);
/* Send a reply (flags 0x5) with @size payload bytes and optionally one fd. */
bool vub_msg_reply(VubDev *dev, int sock, uint32_t request, const void *payload,
                   uint32_t size, int fd);
void vub_msg_close_fds(VubMsg *msg);
int vub_socket_listen(const char *path, VubError *err);
/* Accept one connection, or connect (retrying); -1 when stopping or failed. */
int vub_socket_accept(VubDev *dev);
int vub_socket_connect(VubDev *dev);

/* ---- messages (vub-handlers.c) ------------------------------------------ */
/* Handle one request; false ends the session (framing broken). */
bool vub_handle_message(VubDev *dev, int sock, VubMsg *msg);
/* Tear the session state down (disconnect, RESET_OWNER). Takes dp_lock. */
void vub_session_reset(VubDev *dev, bool disconnecting);

/* ---- guest memory (vub-memory.c) ---------------------------------------- */
/* Host address of [gpa, gpa + len) if it lies in one region, else NULL. */
void *vub_gpa_to_host(VubDev *dev, uint64_t gpa, uint64_t len, VubRegion **region);
/* Host address of gpa and how many bytes follow it in the same region. */
void *vub_gpa_to_host_partial(VubDev *dev, uint64_t gpa, uint64_t *contig, VubRegion **region);
void *vub_uva_to_host(VubDev *dev, uint64_t uva, uint64_t len, VubRegion **region);
/*
 * Map the regions of @table with @fds into @out (nothing on failure, fds
 * always consumed). @postcopy maps PROT_NONE for the LISTEN sequence.
 */
bool vub_regions_map(VubDev *dev, const VhostUserMemTable *table, const int *fds,
                     bool postcopy, VubRegion *out, VubError *err);
void vub_regions_unmap(VubRegion *regions, unsigned n);

/* ---- dirty log (vub-log.c) ---------------------------------------------- */
bool vub_log_set_base(VubDev *dev, const VhostUserLogArea *area, int fd, VubError *err);
void vub_log_drop(VubDev *dev);
/* Mark [gpa, gpa + len) dirty if logging is on. dp_lock held. */
void vub_log_write(VubDev *dev, uint64_t gpa, uint64_t len);
bool vub_log_active(VubDev *dev);

/* ---- postcopy (vub-postcopy.c) ------------------------------------------ */
int vub_postcopy_advise(VubDev *dev, VubError *err);
/* After the front-end's ack: drop stale pages, register, unprotect. */
bool vub_postcopy_register(VubDev *dev, VubRegion *regions, unsigned n, VubError *err);
void vub_postcopy_end(VubDev *dev);
/* Data thread: make [p, p + len) present, timing pages that were missing. */
void vub_postcopy_touch(VubDev *dev, VubRegion *region, const void *p, uint64_t len);
void vub_fault_accounting_stop(VubDev *dev);

/* ---- rings (vub-virtqueue.c) -------------------------------------------- */
/* Control thread, dp_lock held: translate the ring addresses, start if complete. */
bool vub_queue_try_start(VubDev *dev, VubQueue *q);
void vub_queue_stop(VubDev *dev, VubQueue *q);
/* Control thread, dp_lock held: replace the kick fd (consumed), running or not. */
void vub_queue_set_kick(VubDev *dev, VubQueue *q, int fd, bool polled);
/* Data thread, dp_lock held: first look at a started ring. */
void vub_queue_sync(VubDev *dev, VubQueue *q);
void vub_queue_mark_broken(VubDev *dev, VubQueue *q, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
