/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A device's lifetime and its two threads: "vub/ctl" (connection and
 * messages, one session after another) and "vub/data" (kick eventfds and
 * watched fds -> the application's callbacks, under the data-path lock).
 * Also logging, statistics and stop/free.
 */
#include "vub-internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* epoll tags: the type in the top byte. */
enum { TAG_WAKE = 0, TAG_KICK = 1, TAG_WATCH = 2 };

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void vub_error_set(VubError *err, const char *fmt, ...)
{
    va_list ap;

    if (!err) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

void vub_log(VubDev *dev, VubLogLevel level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (level > dev->cfg.log_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (dev->ops.log) {
        dev->ops.log(level, line, dev->cfg.opaque);
    } else {
        fprintf(stderr, "vhost-user-backend: %s: %s\n", level_names[level], line);
    }
}

uint64_t vub_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void vub_wake_data(VubDev *dev)
{
    uint64_t one = 1;

    if (write(dev->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        vub_log(dev, VUB_LOG_WARNING, "waking the data thread failed: %s", strerror(errno));
    }
}

VubDev *vub_new(const VubConfig *cfg, VubError *err)
{
    const uint64_t unsupported = (1ull << VIRTIO_F_RING_PACKED) |
                                 (1ull << VIRTIO_F_ACCESS_PLATFORM);
    VubDev *dev;

    if (!cfg || cfg->num_queues == 0 || cfg->num_queues > VUB_MAX_QUEUES) {
        vub_error_set(err, "a device needs 1 to %u queues", VUB_MAX_QUEUES);
        return NULL;
    }
    if (cfg->features & unsupported) {
        vub_error_set(err, "features 0x%" PRIx64 " (packed rings, platform IOMMU) are not"
                      " implemented by this library", cfg->features & unsupported);
        return NULL;
    }
    dev = calloc(1, sizeof(*dev));
    if (!dev) {
        vub_error_set(err, "out of memory");
        return NULL;
    }
    dev->cfg = *cfg;
    if (cfg->ops) {
        dev->ops = *cfg->ops;
    }
    dev->offered_features = cfg->features | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
                            (1ull << VHOST_F_LOG_ALL);
    dev->offered_protocol = (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD) |
                            (1ull << VHOST_USER_PROTOCOL_F_RARP) |
                            (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
    if (cfg->postcopy) {
        dev->offered_protocol |= 1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT;
    }
    dev->listen_fd = dev->adopted_fd = dev->sock = dev->uffd = -1;
    for (unsigned i = 0; i < VUB_MAX_QUEUES; i++) {
        VubQueue *q = &dev->queues[i];
        q->index = i;
        q->kick_fd = q->call_fd = q->err_fd = -1;
    }
    pthread_mutex_init(&dev->dp_lock, NULL);
    pthread_mutex_init(&dev->fault_lock, NULL);
    dev->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    dev->finished_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    dev->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    dev->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (dev->stop_fd < 0 || dev->finished_fd < 0 || dev->wake_fd < 0 || dev->epfd < 0) {
        vub_error_set(err, "cannot create the device's eventfds: %s", strerror(errno));
        vub_free(dev);
        return NULL;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)TAG_WAKE << 56 };
    if (epoll_ctl(dev->epfd, EPOLL_CTL_ADD, dev->wake_fd, &ev) < 0) {
        vub_error_set(err, "cannot watch the wake eventfd: %s", strerror(errno));
        vub_free(dev);
        return NULL;
    }
    return dev;
}

static bool set_mode(VubDev *dev, VubMode mode, const char *path, VubError *err)
{
    if (dev->mode != VUB_MODE_NONE) {
        vub_error_set(err, "the device already has a socket");
        return false;
    }
    if (dev->threads_started) {
        vub_error_set(err, "the device is already serving");
        return false;
    }
    if (path) {
        dev->path = strdup(path);
        if (!dev->path) {
            vub_error_set(err, "out of memory");
            return false;
        }
    }
    dev->mode = mode;
    return true;
}

bool vub_listen(VubDev *dev, const char *path, VubError *err)
{
    int fd = vub_socket_listen(path, err);

    if (fd < 0) {
        return false;
    }
    if (!set_mode(dev, VUB_MODE_SERVER, path, err)) {
        close(fd);
        return false;
    }
    dev->listen_fd = fd;
    return true;
}

bool vub_set_client(VubDev *dev, const char *path, VubError *err)
{
    return set_mode(dev, VUB_MODE_CLIENT, path, err);
}

bool vub_adopt_fd(VubDev *dev, int fd, VubError *err)
{
    if (fd < 0) {
        vub_error_set(err, "no socket to adopt");
        return false;
    }
    if (!set_mode(dev, VUB_MODE_FD, NULL, err)) {
        return false;
    }
    dev->adopted_fd = fd;
    return true;
}

bool vub_watch_fd(VubDev *dev, int fd, VubWatchFn cb, void *opaque, VubError *err)
{
    bool ok = false;

    pthread_mutex_lock(&dev->dp_lock);
    if (dev->nwatches >= VUB_MAX_WATCHES) {
        vub_error_set(err, "at most %u watched fds per device", VUB_MAX_WATCHES);
    } else {
        unsigned i = dev->nwatches;
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = ((uint64_t)TAG_WATCH << 56) | i };
        if (epoll_ctl(dev->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            vub_error_set(err, "cannot watch fd %d: %s", fd, strerror(errno));
        } else {
            dev->watches[i] = (VubWatch){ .fd = fd, .cb = cb, .opaque = opaque };
            dev->nwatches++;
            ok = true;
        }
    }
    pthread_mutex_unlock(&dev->dp_lock);
    return ok;
}

/* ---- the data thread ----------------------------------------------------- */

static void take_event(VubDev *dev, uint64_t tag)
{
    unsigned type = (unsigned)(tag >> 56);

    if (type == TAG_WAKE) {
        uint64_t v;
        if (read(dev->wake_fd, &v, sizeof(v)) < 0) {
            /* EAGAIN: another event already drained it. */
        }
    } else if (type == TAG_KICK) {
        unsigned qidx = (unsigned)(tag & 0xffff);
        uint32_t gen = (uint32_t)(tag >> 16) & 0xffffff;
        if (qidx >= dev->cfg.num_queues) {
            return;
        }
        VubQueue *q = &dev->queues[qidx];
        /* An event from before the kick fd changed refers to a closed fd. */
        if (!q->started || q->kick_fd < 0 || (q->gen & 0xffffff) != gen) {
            return;
        }
        struct pollfd p = { .fd = q->kick_fd, .events = POLLIN };
        uint64_t v;
        if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
            if (read(q->kick_fd, &v, sizeof(v)) < 0) {
                /* Not an eventfd, or drained: the ring is looked at anyway. */
            }
        }
        q->pending = true;
    } else if (type == TAG_WATCH) {
        unsigned i = (unsigned)(tag & 0xff);
        if (i < dev->nwatches) {
            dev->watches[i].pending = true;
        }
    }
}

static void *data_thread(void *opaque)
{
    VubDev *dev = opaque;
    struct epoll_event evs[32];
    int timeout = -1;

    pthread_setname_np(pthread_self(), "vub/data");
    while (!atomic_load(&dev->stopping)) {
        int n = epoll_wait(dev->epfd, evs, 32, timeout);
        if (n < 0 && errno != EINTR) {
            vub_log(dev, VUB_LOG_ERROR, "the data thread cannot wait for events: %s",
                    strerror(errno));
            break;
        }
        if (atomic_load(&dev->stopping)) {
            break;
        }
        pthread_mutex_lock(&dev->dp_lock);
        for (int i = 0; i < n; i++) {
            take_event(dev, evs[i].data.u64);
        }
        bool polled = false;
        for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
            VubQueue *q = &dev->queues[i];
            if (q->needs_sync) {
                vub_queue_sync(dev, q);
            }
            if (q->started && q->kick_polled) {
                q->pending = true;
                polled = true;
            }
        }
        for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
            VubQueue *q = &dev->queues[i];
            if (q->pending) {
                q->pending = false;
                if (vub_queue_ready(dev, i) && dev->ops.queue_kick) {
                    dev->ops.queue_kick(dev, i, dev->cfg.opaque);
                }
            }
        }
        for (unsigned i = 0; i < dev->nwatches; i++) {
            VubWatch *w = &dev->watches[i];
            if (w->pending) {
                w->pending = false;
                w->cb(dev, w->fd, w->opaque);
            }
        }
        pthread_mutex_unlock(&dev->dp_lock);
        /* A ring without a kick fd is looked at every millisecond. */
        timeout = polled ? 1 : -1;
    }
    atomic_store(&dev->data_exited, true);
    return NULL;
}

/* ---- the control thread --------------------------------------------------- */

static void run_session(VubDev *dev, int sock)
{
    VubMsg *msg = malloc(sizeof(*msg));

    dev->sock = sock;
    atomic_fetch_add(&dev->st_sessions, 1);
    atomic_store(&dev->st_connected, true);
    vub_log(dev, VUB_LOG_INFO, "front-end connected");
    if (dev->ops.connected) {
        dev->ops.connected(dev, dev->cfg.opaque);
    }
    while (msg) {
        int r = vub_msg_read(dev, sock, msg);
        if (r == 0) {
            vub_log(dev, VUB_LOG_INFO, "the front-end closed the connection");
            break;
        }
        if (r < 0 || !vub_handle_message(dev, sock, msg)) {
            break;
        }
    }
    if (!msg) {
        vub_log(dev, VUB_LOG_ERROR, "out of memory for a message buffer");
    }
    free(msg);
    vub_session_reset(dev, true);
    dev->sock = -1;
    atomic_store(&dev->st_connected, false);
}

static void *ctl_thread(void *opaque)
{
    VubDev *dev = opaque;

    pthread_setname_np(pthread_self(), "vub/ctl");
    for (;;) {
        int sock = -1;
        switch (dev->mode) {
        case VUB_MODE_SERVER:
            sock = vub_socket_accept(dev);
            break;
        case VUB_MODE_CLIENT:
            sock = vub_socket_connect(dev);
            break;
        case VUB_MODE_FD:
            sock = dev->adopted_fd;
            dev->adopted_fd = -1;
            break;
        case VUB_MODE_NONE:
            break;
        }
        if (sock < 0) {
            break;
        }
        run_session(dev, sock);
        close(sock);
        bool again = dev->cfg.reconnect && dev->mode != VUB_MODE_FD &&
                     !atomic_load(&dev->stopping);
        if (dev->ops.disconnected) {
            dev->ops.disconnected(dev, again, dev->cfg.opaque);
        }
        if (!again) {
            break;
        }
        vub_log(dev, VUB_LOG_INFO, "serving again: %s '%s'",
                dev->mode == VUB_MODE_SERVER ? "listening on" : "connecting to", dev->path);
    }
    atomic_store(&dev->finished, true);
    uint64_t one = 1;
    if (write(dev->finished_fd, &one, sizeof(one)) < 0) {
        vub_log(dev, VUB_LOG_WARNING, "signalling the end of the session failed: %s",
                strerror(errno));
    }
    return NULL;
}

bool vub_start(VubDev *dev, VubError *err)
{
    int e;

    if (dev->mode == VUB_MODE_NONE) {
        vub_error_set(err, "no socket: call vub_listen, vub_set_client or vub_adopt_fd first");
        return false;
    }
    if (dev->threads_started) {
        vub_error_set(err, "the device is already serving");
        return false;
    }
    e = pthread_create(&dev->data_thread, NULL, data_thread, dev);
    if (e) {
        vub_error_set(err, "cannot start the data thread: %s", strerror(e));
        return false;
    }
    e = pthread_create(&dev->ctl_thread, NULL, ctl_thread, dev);
    if (e) {
        vub_error_set(err, "cannot start the control thread: %s", strerror(e));
        atomic_store(&dev->stopping, true);
        vub_wake_data(dev);
        pthread_join(dev->data_thread, NULL);
        return false;
    }
    dev->threads_started = true;
    return true;
}

int vub_finished_fd(VubDev *dev)
{
    return dev->finished_fd;
}

bool vub_wait_finished(VubDev *dev, int timeout_ms)
{
    struct pollfd p = { .fd = dev->finished_fd, .events = POLLIN };

    if (atomic_load(&dev->finished)) {
        return true;
    }
    while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR) {
    }
    return atomic_load(&dev->finished);
}

static bool join_within(pthread_t t, int ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

bool vub_stop(VubDev *dev)
{
    uint64_t one = 1;
    bool ok = true;

    if (!dev->threads_started) {
        return true;
    }
    atomic_store(&dev->stopping, true);
    if (write(dev->stop_fd, &one, sizeof(one)) < 0) {
        /* cannot fail for an eventfd that is never read */
    }
    vub_wake_data(dev);
    if (!join_within(dev->ctl_thread, 3000)) {
        vub_log(dev, VUB_LOG_ERROR, "the control thread did not stop");
        ok = false;
    }
    if (!join_within(dev->data_thread, 1000)) {
        vub_log(dev, VUB_LOG_ERROR, "the data thread did not stop: it sleeps in a postcopy page"
                " fault nobody resolves; leaving the device allocated");
        ok = false;
    }
    dev->threads_started = !ok;
    return ok;
}

void vub_free(VubDev *dev)
{
    if (!dev) {
        return;
    }
    if (dev->threads_started) {
        /* vub_stop could not join a thread that still uses the device. */
        return;
    }
    if (dev->nregions || dev->log_map) {
        vub_session_reset(dev, true);
    }
    if (dev->listen_fd >= 0) {
        close(dev->listen_fd);
        if (dev->path) {
            unlink(dev->path);
        }
    }
    if (dev->adopted_fd >= 0) {
        close(dev->adopted_fd);
    }
    if (dev->uffd >= 0) {
        close(dev->uffd);
    }
    for (unsigned i = 0; i < VUB_MAX_QUEUES; i++) {
        VubQueue *q = &dev->queues[i];
        if (q->kick_fd >= 0) {
            close(q->kick_fd);
        }
        if (q->call_fd >= 0) {
            close(q->call_fd);
        }
        if (q->err_fd >= 0) {
            close(q->err_fd);
        }
    }
    int fds[] = { dev->stop_fd, dev->finished_fd, dev->wake_fd, dev->epfd };
    for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    pthread_mutex_destroy(&dev->dp_lock);
    pthread_mutex_destroy(&dev->fault_lock);
    free(dev->fault_samples);
    free(dev->path);
    free(dev);
}

/* ---- statistics ------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted @s. */
static uint64_t percentile(const uint64_t *s, size_t n, unsigned pct)
{
    if (!n) {
        return 0;
    }
    size_t rank = (n * pct + 99) / 100;
    return s[rank ? rank - 1 : 0];
}

void vub_get_stats(VubDev *dev, VubStats *out)
{
    memset(out, 0, sizeof(*out));
    out->sessions = atomic_load(&dev->st_sessions);
    out->messages = atomic_load(&dev->st_messages);
    out->rejected = atomic_load(&dev->st_rejected);
    out->dirty_log_writes = atomic_load(&dev->st_log_writes);
    out->connected = atomic_load(&dev->st_connected);
    out->postcopy_listening = atomic_load(&dev->postcopy_listening);

    uint64_t *copy = NULL;
    size_t n = 0;
    pthread_mutex_lock(&dev->fault_lock);
    out->faults = dev->faults;
    out->fault_ns_total = dev->fault_ns_total;
    out->fault_ns_max = dev->fault_ns_max;
    if (dev->fault_samples && dev->faults) {
        n = dev->faults < VUB_FAULT_SAMPLES ? dev->faults : VUB_FAULT_SAMPLES;
        copy = malloc(n * sizeof(uint64_t));
        if (copy) {
            memcpy(copy, dev->fault_samples, n * sizeof(uint64_t));
        }
    }
    pthread_mutex_unlock(&dev->fault_lock);
    if (copy) {
        qsort(copy, n, sizeof(uint64_t), cmp_u64);
        out->fault_ns_p50 = percentile(copy, n, 50);
        out->fault_ns_p99 = percentile(copy, n, 99);
        free(copy);
    }
}
