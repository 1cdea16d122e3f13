/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libgwvhostuser: the back-end side of vhost-user, for a device whose data
 * plane runs in this process on guest RAM the front-end (QEMU, godwit,
 * DPDK virtio-user) shares with it. Split virtqueues, dirty logging for
 * precopy, postcopy (PAGEFAULT: the back-end's own userfaultfd). Plain C11
 * + pthreads, no GLib. docs/devel/vhost-user-backend.md is the guide.
 *
 * Threads. The library runs two threads per device:
 *   "vub/ctl"   accepts or connects, reads every message and applies it. It
 *               never touches guest memory, so it keeps answering while the
 *               data path sleeps in a postcopy page fault.
 *   "vub/data"  waits on the kick eventfds and the application's watched
 *               fds, and runs the application's data-path callbacks.
 * Both take the device's data-path lock around anything the data path reads
 * (memory table, rings, dirty log): the data thread holds it for the whole
 * of a callback, and a control message that changes the data path waits
 * for the callback to return. In postcopy that can be until a page fault
 * is resolved, so a front-end must serve the back-end's faults from a
 * thread that does not wait for replies on this socket (QEMU does; DPDK's
 * vhost library has the same rule).
 *
 * Errors. Fallible calls take a VubError * last (may be NULL) and return
 * false / NULL; err->msg is one sentence. Everything that arrives on the
 * socket is checked; a bad message is rejected with a line through the log
 * callback (and a non-zero REPLY_ACK if the front-end asked for one), a
 * message that breaks the framing ends the connection. Nothing the
 * front-end or the guest sends makes the library abort.
 */
#ifndef VHOST_USER_BACKEND_H
#define VHOST_USER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything else in the shared library is hidden. */
#if defined(__GNUC__) && !defined(VUB_STATIC)
#define VUB_API __attribute__((visibility("default")))
#else
#define VUB_API
#endif

#define VUB_MAX_QUEUES      16u     /* virtqueues per device */
#define VUB_ELEM_MAX_SG     256u    /* iovecs per direction in one element */

typedef struct VubDev VubDev;

typedef struct VubError {
    char msg[256];
} VubError;

typedef enum VubLogLevel {
    VUB_LOG_ERROR = 0,      /* something failed: a message rejected, a queue broken */
    VUB_LOG_WARNING = 1,    /* tolerated, but the front-end or guest is misbehaving */
    VUB_LOG_INFO = 2,       /* connections, postcopy phases, memory table changes */
    VUB_LOG_DEBUG = 3,      /* every message */
} VubLogLevel;

/*
 * One descriptor chain popped from a ring. out_sg are the buffers the
 * driver filled (read them), in_sg the ones the device fills (write them,
 * then report how many bytes with vub_queue_push). The pointers stay valid
 * until the callback that popped the element returns.
 */
typedef struct VubElem {
    uint16_t index;                         /* head descriptor: what push reports */
    unsigned out_num;
    unsigned in_num;
    struct iovec out_sg[VUB_ELEM_MAX_SG];
    struct iovec in_sg[VUB_ELEM_MAX_SG];
    uint64_t in_gpa[VUB_ELEM_MAX_SG];       /* guest-physical start of each in_sg (dirty log) */
} VubElem;

typedef struct VubOps {
    /*
     * A line for the operator: one sentence, no newline. Any thread, no lock
     * held. NULL prints "vhost-user-backend: LEVEL: msg" on stderr.
     */
    void (*log)(VubLogLevel level, const char *msg, void *opaque);
    /*
     * Queue @qidx may have new buffers (a kick, the queue just started, or
     * it was enabled). Data thread, data-path lock held: pop until
     * vub_queue_pop returns false, push and notify.
     */
    void (*queue_kick)(VubDev *dev, unsigned qidx, void *opaque);
    /*
     * Queue @qidx started (first processing after SET_VRING_KICK) or stopped
     * (GET_VRING_BASE, reset, disconnect). Data-path lock held, so never
     * concurrent with queue_kick or a watch callback; data thread for a
     * start, control thread for a stop.
     */
    void (*queue_state)(VubDev *dev, unsigned qidx, bool started, void *opaque);
    /* A front-end connected / the connection ended. Control thread. */
    void (*connected)(VubDev *dev, void *opaque);
    void (*disconnected)(VubDev *dev, bool serving_again, void *opaque);
    /* SEND_RARP: announce @mac on the network side. Control thread. */
    void (*send_rarp)(VubDev *dev, const uint8_t mac[6], void *opaque);
} VubOps;

typedef struct VubConfig {
    unsigned num_queues;        /* 1 .. VUB_MAX_QUEUES (net: 2, RX = 0, TX = 1) */
    /*
     * The device's virtio feature bits. The library adds
     * VHOST_USER_F_PROTOCOL_FEATURES and VHOST_F_LOG_ALL itself and refuses
     * bits it cannot honour (packed rings, ACCESS_PLATFORM). EVENT_IDX,
     * INDIRECT_DESC and VERSION_1 are handled by the ring code: offer them.
     */
    uint64_t features;
    bool postcopy;              /* offer PAGEFAULT (postcopy live migration) */
    bool reconnect;             /* after a disconnect, accept/connect again */
    int connect_timeout_ms;     /* client mode: retry this long (0: one attempt; < 0: forever) */
    VubLogLevel log_level;      /* lines above this level are not produced */
    const VubOps *ops;
    void *opaque;
} VubConfig;

/* ---- lifetime (application threads) ------------------------------------ */

/* A device, not yet serving. @cfg is copied. */
VUB_API VubDev *vub_new(const VubConfig *cfg, VubError *err);

/*
 * Serve as the socket's server: create @path now (so a caller can start the
 * front-end as soon as this returns) and accept when started. A stale socket
 * file is replaced; a path someone is listening on, or a non-socket, is an
 * error.
 */
VUB_API bool vub_listen(VubDev *dev, const char *path, VubError *err);
/* Serve as the client of a front-end listening on @path (connected when started). */
VUB_API bool vub_set_client(VubDev *dev, const char *path, VubError *err);
/* Serve an already-connected stream socket (ownership passes to the device). */
VUB_API bool vub_adopt_fd(VubDev *dev, int fd, VubError *err);

/* Start the threads. One of the three calls above must have been made. */
VUB_API bool vub_start(VubDev *dev, VubError *err);

/*
 * Without cfg.reconnect: wait up to @timeout_ms (< 0: forever) for the
 * session to end (front-end gone, or a fatal protocol error). True if it has.
 */
VUB_API bool vub_wait_finished(VubDev *dev, int timeout_ms);
/* An eventfd that becomes readable when vub_wait_finished would return true. */
VUB_API int vub_finished_fd(VubDev *dev);

/*
 * Stop serving: close the connection and join both threads. A data thread
 * asleep in a postcopy fault the front-end never resolves cannot be joined;
 * then this gives up after about a second, logs why and returns false, and
 * the device must be left allocated (exit the process instead of vub_free).
 */
VUB_API bool vub_stop(VubDev *dev);
/* Free a stopped (or never started) device. */
VUB_API void vub_free(VubDev *dev);

/* ---- data path (data thread, i.e. inside a callback) --------------------- */

/* True if queue @qidx is started, enabled and not broken. */
VUB_API bool vub_queue_ready(VubDev *dev, unsigned qidx);
/*
 * Take the next available chain of queue @qidx into @elem. False if the ring
 * is empty or the queue cannot be used; a malformed chain (loops, bad
 * indexes, addresses outside guest memory) marks the queue broken, with a
 * log line, until the front-end sets it up again.
 */
VUB_API bool vub_queue_pop(VubDev *dev, unsigned qidx, VubElem *elem);
/*
 * Return @elem to the driver with @written bytes in its in_sg. Marks the
 * written guest pages (and the used-ring entry) in the dirty log while
 * logging is on. Every popped element must be pushed before the callback
 * returns: the ring index GET_VRING_BASE reports assumes it.
 */
VUB_API void vub_queue_push(VubDev *dev, unsigned qidx, const VubElem *elem, uint32_t written);
/* Signal the call eventfd if the driver wants an interrupt now (EVENT_IDX aware). */
VUB_API void vub_queue_notify(VubDev *dev, unsigned qidx);

/* Negotiated virtio features (valid inside callbacks). */
VUB_API uint64_t vub_features(VubDev *dev);

/* iovec helpers: total size; copy out of / into an iovec array from @offset. */
VUB_API size_t vub_iov_size(const struct iovec *iov, unsigned n);
VUB_API size_t vub_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset,
                      void *buf, size_t len);
VUB_API size_t vub_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset,
                        const void *buf, size_t len);

/*
 * Call @cb on the data thread, lock held, whenever @fd is readable (e.g. a
 * timerfd driving a traffic generator). Up to 8 per device; before or after
 * vub_start. The application keeps @fd open until vub_stop.
 */
typedef void (*VubWatchFn)(VubDev *dev, int fd, void *opaque);
VUB_API bool vub_watch_fd(VubDev *dev, int fd, VubWatchFn cb, void *opaque, VubError *err);

/* ---- statistics (any thread) -------------------------------------------- */

typedef struct VubStats {
    uint64_t sessions;          /* connections served */
    uint64_t messages;          /* requests handled */
    uint64_t rejected;          /* requests refused (bad, unknown, wrong state) */
    uint64_t dirty_log_writes;  /* guest ranges marked in the dirty log */
    bool connected;
    bool postcopy_listening;    /* between POSTCOPY_LISTEN and POSTCOPY_END */
    /*
     * Postcopy faults: pages that were missing (not in the shared file) when
     * the data path first needed them, and how long it slept on each until
     * the front-end placed and woke it. Percentiles are over the first
     * VUB_FAULT_SAMPLES faults.
     */
    uint64_t faults;
    uint64_t fault_ns_total;
    uint64_t fault_ns_max;
    uint64_t fault_ns_p50;
    uint64_t fault_ns_p99;
} VubStats;

#define VUB_FAULT_SAMPLES 65536u

VUB_API void vub_get_stats(VubDev *dev, VubStats *out);

/* "SET_MEM_TABLE" for 5; "unknown request" for numbers the protocol does not define. */
VUB_API const char *vub_request_name(uint32_t request);

#ifdef __cplusplus
}
#endif

#endif
