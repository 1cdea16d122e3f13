/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueues (virtio 1.x): starting and stopping a ring, popping a
 * descriptor chain into iovecs (direct or one indirect table), pushing used
 * entries, and deciding when to interrupt (VIRTIO_RING_F_EVENT_IDX aware).
 * The ring is guest memory the guest writes concurrently: every descriptor
 * is copied before it is checked, indexes are bounded, and a chain that
 * loops or points outside guest memory breaks the queue instead of us.
 */
#include "vub-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static bool has_feature(VubDev *dev, unsigned bit)
{
    return dev->features & (1ull << bit);
}

static VubQueue *queue_of(VubDev *dev, unsigned qidx)
{
    return qidx < dev->cfg.num_queues ? &dev->queues[qidx] : NULL;
}

void vub_queue_mark_broken(VubDev *dev, VubQueue *q, const char *fmt, ...)
{
    char why[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (!q->broken) {
        vub_log(dev, VUB_LOG_ERROR, "queue %u: %s; the queue stops until the front-end sets"
                " it up again", q->index, why);
    }
    q->broken = true;
}

static VubRegion *host_region(VubDev *dev, const void *p)
{
    for (unsigned i = 0; i < dev->nregions; i++) {
        VubRegion *r = &dev->regions[i];
        if ((const uint8_t *)p >= r->host && (const uint8_t *)p < r->host + r->size) {
            return r;
        }
    }
    return NULL;
}

static void log_used(VubDev *dev, VubQueue *q, uint64_t offset, uint64_t len)
{
    if (q->addr.flags & VHOST_VRING_F_LOG) {
        vub_log_write(dev, q->addr.log_guest_addr + offset, len);
    }
}

static bool watch_kick(VubDev *dev, VubQueue *q)
{
    struct epoll_event ev = {
        .events = EPOLLIN,
        .data.u64 = (1ull << 56) | ((uint64_t)(q->gen & 0xffffff) << 16) | q->index,
    };

    if (q->kick_fd < 0) {
        return true;
    }
    if (epoll_ctl(dev->epfd, EPOLL_CTL_ADD, q->kick_fd, &ev) < 0) {
        vub_queue_mark_broken(dev, q, "watching its kick eventfd failed (%s)", strerror(errno));
        return false;
    }
    return true;
}

bool vub_queue_try_start(VubDev *dev, VubQueue *q)
{
    if (!q->num || !q->addr_set || (q->kick_fd < 0 && !q->kick_polled)) {
        return false;       /* not configured yet: not an error */
    }
    if (!dev->nregions) {
        vub_queue_mark_broken(dev, q, "the ring was started before any memory table");
        return false;
    }
    void *desc = vub_uva_to_host(dev, q->addr.desc_user_addr, VRING_DESC_SIZE(q->num), NULL);
    void *avail = vub_uva_to_host(dev, q->addr.avail_user_addr, VRING_AVAIL_SIZE(q->num), NULL);
    void *used = vub_uva_to_host(dev, q->addr.used_user_addr, VRING_USED_SIZE(q->num), NULL);
    if (!desc || !avail || !used) {
        vub_queue_mark_broken(dev, q, "its %s ring (front-end address 0x%" PRIx64 ", %u entries)"
                              " is not inside the memory table",
                              !desc ? "descriptor" : !avail ? "available" : "used",
                              !desc ? q->addr.desc_user_addr : !avail ? q->addr.avail_user_addr
                              : q->addr.used_user_addr, q->num);
        return false;
    }
    if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) || ((uintptr_t)used & 3)) {
        vub_queue_mark_broken(dev, q, "its ring addresses are misaligned");
        return false;
    }
    q->desc = desc;
    q->avail = avail;
    q->used = used;
    q->broken = false;
    q->needs_sync = true;
    if (!q->started) {
        q->gen++;
        if (!watch_kick(dev, q)) {
            return false;
        }
        q->started = true;
        vub_log(dev, VUB_LOG_INFO, "queue %u: started, %u entries, next available %u%s",
                q->index, q->num, q->last_avail, q->kick_polled ? ", polled (no kick fd)" : "");
    }
    vub_wake_data(dev);
    return true;
}

void vub_queue_set_kick(VubDev *dev, VubQueue *q, int fd, bool polled)
{
    if (q->started && q->kick_fd >= 0) {
        epoll_ctl(dev->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
    }
    if (q->kick_fd >= 0) {
        close(q->kick_fd);
    }
    q->kick_fd = fd;
    q->kick_polled = polled;
    q->gen++;
    if (q->started) {
        /* A new kick fd on a running ring: keep going, look at the ring once. */
        if (watch_kick(dev, q)) {
            q->pending = true;
            vub_wake_data(dev);
        }
    }
}

void vub_queue_stop(VubDev *dev, VubQueue *q)
{
    if (q->started) {
        if (q->kick_fd >= 0) {
            epoll_ctl(dev->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
        }
        q->started = false;
        q->gen++;
        if (q->inflight) {
            vub_log(dev, VUB_LOG_WARNING, "queue %u stopped with %u buffers popped but not"
                    " returned; the driver will not get them back", q->index, q->inflight);
        }
        if (q->announced && dev->ops.queue_state) {
            dev->ops.queue_state(dev, q->index, false, dev->cfg.opaque);
        }
        q->announced = false;
        vub_log(dev, VUB_LOG_INFO, "queue %u: stopped at available index %u", q->index,
                q->last_avail);
    }
    if (q->kick_fd >= 0) {
        close(q->kick_fd);
        q->kick_fd = -1;
    }
    q->kick_polled = false;
    q->desc = NULL;
    q->avail = NULL;
    q->used = NULL;
    q->needs_sync = false;
    q->pending = false;
    q->inflight = 0;
}

void vub_queue_sync(VubDev *dev, VubQueue *q)
{
    q->needs_sync = false;
    if (!q->started || q->broken) {
        return;
    }
    /* In postcopy these are the first touches of the ring pages: they may fault. */
    vub_postcopy_touch(dev, host_region(dev, q->desc), q->desc, VRING_DESC_SIZE(q->num));
    vub_postcopy_touch(dev, host_region(dev, q->avail), q->avail, VRING_AVAIL_SIZE(q->num));
    vub_postcopy_touch(dev, host_region(dev, q->used), q->used, VRING_USED_SIZE(q->num));
    q->used_idx = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
    q->signalled_used_valid = false;
    q->inflight = 0;
    if (q->used_idx != q->last_avail) {
        vub_log(dev, VUB_LOG_INFO, "queue %u: resumes with used index %u and available index %u",
                q->index, q->used_idx, q->last_avail);
    }
    if (!q->announced && dev->ops.queue_state) {
        dev->ops.queue_state(dev, q->index, true, dev->cfg.opaque);
    }
    q->announced = true;
    q->pending = true;
}

bool vub_queue_ready(VubDev *dev, unsigned qidx)
{
    VubQueue *q = queue_of(dev, qidx);

    return q && q->started && q->enabled && !q->broken && q->desc && !q->needs_sync;
}

uint64_t vub_features(VubDev *dev)
{
    return dev->features;
}

/* Add [gpa, gpa + len) to @elem, one iovec per memory region it touches. */
static bool map_buffer(VubDev *dev, VubQueue *q, VubElem *elem, uint64_t gpa, uint32_t len,
                       bool writable)
{
    while (len) {
        uint64_t contig;
        VubRegion *r;
        uint8_t *p = vub_gpa_to_host_partial(dev, gpa, &contig, &r);
        if (!p) {
            vub_queue_mark_broken(dev, q, "a buffer at guest address 0x%" PRIx64 " (%u bytes)"
                                  " is outside guest memory", gpa, len);
            return false;
        }
        unsigned *num = writable ? &elem->in_num : &elem->out_num;
        if (*num >= VUB_ELEM_MAX_SG) {
            vub_queue_mark_broken(dev, q, "a descriptor chain needs more than %u buffers",
                                  VUB_ELEM_MAX_SG);
            return false;
        }
        uint32_t chunk = contig < len ? (uint32_t)contig : len;
        vub_postcopy_touch(dev, r, p, chunk);
        struct iovec *iov = writable ? &elem->in_sg[*num] : &elem->out_sg[*num];
        iov->iov_base = p;
        iov->iov_len = chunk;
        if (writable) {
            elem->in_gpa[*num] = gpa;
        }
        (*num)++;
        gpa += chunk;
        len -= chunk;
    }
    return true;
}

static bool walk_chain(VubDev *dev, VubQueue *q, uint16_t head, VubElem *elem)
{
    const VringDesc *table = q->desc;
    uint32_t table_size = q->num;
    uint32_t i = head;
    uint32_t steps = 0;
    bool in_indirect = false;

    elem->index = head;
    elem->out_num = 0;
    elem->in_num = 0;
    for (;;) {
        VringDesc d;

        if (i >= table_size) {
            vub_queue_mark_broken(dev, q, "descriptor index %u is outside its %u-entry table",
                                  i, table_size);
            return false;
        }
        if (++steps > table_size) {
            vub_queue_mark_broken(dev, q, "the descriptor chain from %u loops", head);
            return false;
        }
        /* One copy: the guest may rewrite the descriptor while we look at it. */
        memcpy(&d, &table[i], sizeof(d));
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (in_indirect || steps != 1) {
                vub_queue_mark_broken(dev, q, "an indirect descriptor appears %s",
                                      in_indirect ? "inside an indirect table"
                                      : "after the head of a chain");
                return false;
            }
            if (!has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC)) {
                vub_queue_mark_broken(dev, q, "the driver used an indirect descriptor without"
                                      " negotiating VIRTIO_RING_F_INDIRECT_DESC");
                return false;
            }
            if (d.len == 0 || d.len % sizeof(VringDesc) ||
                d.len / sizeof(VringDesc) > VIRTQUEUE_MAX_SIZE) {
                vub_queue_mark_broken(dev, q, "an indirect table of %u bytes is not a whole"
                                      " number of descriptors (at most %u)", d.len,
                                      VIRTQUEUE_MAX_SIZE);
                return false;
            }
            VubRegion *r;
            const VringDesc *ind = vub_gpa_to_host(dev, d.addr, d.len, &r);
            if (!ind) {
                vub_queue_mark_broken(dev, q, "the indirect table at guest address 0x%" PRIx64
                                      " (%u bytes) is not inside one memory region",
                                      d.addr, d.len);
                return false;
            }
            vub_postcopy_touch(dev, r, ind, d.len);
            table = ind;
            table_size = d.len / sizeof(VringDesc);
            i = 0;
            steps = 0;
            in_indirect = true;
            continue;
        }
        bool writable = d.flags & VRING_DESC_F_WRITE;
        if (!writable && elem->in_num) {
            vub_queue_mark_broken(dev, q, "a device-readable buffer follows a device-writable"
                                  " one in the chain from %u", head);
            return false;
        }
        if (!map_buffer(dev, q, elem, d.addr, d.len, writable)) {
            return false;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            return true;
        }
        i = d.next;
    }
}

static void set_avail_event(VubDev *dev, VubQueue *q, uint16_t value)
{
    uint16_t *slot = (uint16_t *)&q->used->ring[q->num];

    __atomic_store_n(slot, value, __ATOMIC_RELAXED);
    log_used(dev, q, 4 + 8ull * q->num, 2);
}

bool vub_queue_pop(VubDev *dev, unsigned qidx, VubElem *elem)
{
    VubQueue *q = queue_of(dev, qidx);

    if (!q || !vub_queue_ready(dev, qidx)) {
        return false;
    }
    uint16_t avail_idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
    if (avail_idx == q->last_avail) {
        if (!has_feature(dev, VIRTIO_RING_F_EVENT_IDX)) {
            return false;
        }
        /*
         * Ask for a kick at the next buffer, then look again: the driver may
         * have added one before it could see the request.
         */
        set_avail_event(dev, q, q->last_avail);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        avail_idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
        if (avail_idx == q->last_avail) {
            return false;
        }
    }
    if ((uint16_t)(avail_idx - q->last_avail) > q->num) {
        vub_queue_mark_broken(dev, q, "the driver's available index %u is %u entries ahead of"
                              " ours (%u), more than the ring holds", avail_idx,
                              (uint16_t)(avail_idx - q->last_avail), q->last_avail);
        return false;
    }
    uint16_t head = __atomic_load_n(&q->avail->ring[q->last_avail % q->num], __ATOMIC_RELAXED);
    if (!walk_chain(dev, q, head, elem)) {
        return false;
    }
    q->last_avail++;
    q->inflight++;
    return true;
}

void vub_queue_push(VubDev *dev, unsigned qidx, const VubElem *elem, uint32_t written)
{
    VubQueue *q = queue_of(dev, qidx);

    if (!q || !q->started || !q->used || q->broken) {
        return;
    }
    size_t room = vub_iov_size(elem->in_sg, elem->in_num);
    if (written > room) {
        vub_log(dev, VUB_LOG_WARNING, "queue %u: the device reported %u bytes written into"
                " %zu bytes of buffers; reporting %zu", q->index, written, room, room);
        written = (uint32_t)room;
    }
    if (vub_log_active(dev)) {
        uint64_t left = written;
        for (unsigned i = 0; i < elem->in_num && left; i++) {
            uint64_t n = left < elem->in_sg[i].iov_len ? left : elem->in_sg[i].iov_len;
            vub_log_write(dev, elem->in_gpa[i], n);
            left -= n;
        }
    }
    uint16_t slot = q->used_idx % q->num;
    VringUsedElem *e = &q->used->ring[slot];
    __atomic_store_n(&e->id, (uint32_t)elem->index, __ATOMIC_RELAXED);
    __atomic_store_n(&e->len, written, __ATOMIC_RELAXED);
    log_used(dev, q, 4 + 8ull * slot, 8);
    q->used_idx++;
    /* The entry must be visible before the index that publishes it. */
    __atomic_store_n(&q->used->idx, q->used_idx, __ATOMIC_RELEASE);
    log_used(dev, q, 2, 2);
    if (q->inflight) {
        q->inflight--;
    }
}

void vub_queue_notify(VubDev *dev, unsigned qidx)
{
    VubQueue *q = queue_of(dev, qidx);
    bool need;

    if (!q || !q->started || !q->avail || q->call_fd < 0) {
        return;
    }
    if (q->signalled_used_valid && q->signalled_used == q->used_idx) {
        return;     /* nothing new since the last interrupt */
    }
    /* Our used index must be visible before we read what the driver asked for. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (has_feature(dev, VIRTIO_RING_F_EVENT_IDX)) {
        uint16_t used_event = __atomic_load_n(&q->avail->ring[q->num], __ATOMIC_RELAXED);
        uint16_t now = q->used_idx;
        uint16_t old = q->signalled_used;
        need = !q->signalled_used_valid || (uint16_t)(now - used_event - 1) < (uint16_t)(now - old);
    } else {
        need = !(__atomic_load_n(&q->avail->flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    q->signalled_used = q->used_idx;
    q->signalled_used_valid = true;
    if (need) {
        uint64_t one = 1;
        if (write(q->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
            vub_log(dev, VUB_LOG_WARNING, "queue %u: signalling the call eventfd failed: %s",
                    q->index, strerror(errno));
        }
    }
}

size_t vub_iov_size(const struct iovec *iov, unsigned n)
{
    size_t total = 0;

    for (unsigned i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    return total;
}

size_t vub_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len)
{
    size_t done = 0;

    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - done) {
            chunk = len - done;
        }
        memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + offset, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t vub_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf,
                        size_t len)
{
    size_t done = 0;

    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - done) {
            chunk = len - done;
        }
        memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}
