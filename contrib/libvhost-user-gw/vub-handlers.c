/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One function per vhost-user request: size and fd checks, the state
 * change (under the data-path lock when the data path reads it), and the
 * reply. The dispatcher sends REPLY_ACKs, closes fds a request did not
 * use, and counts rejections; only a broken postcopy memory-table
 * exchange ends the session from here.
 */
#include "vub-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum HandlerResult {
    HANDLED,        /* success; REPLY_ACK 0 if asked */
    REJECTED,       /* refused, with a log line; REPLY_ACK 1 if asked */
    REPLIED,        /* the handler sent the request's own reply */
    FATAL,          /* the conversation cannot continue */
} HandlerResult;

static const char *const request_names[] = {
    [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
    [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
    [VHOST_USER_SET_OWNER] = "SET_OWNER",
    [VHOST_USER_RESET_OWNER] = "RESET_OWNER",
    [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
    [VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
    [VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
    [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
    [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
    [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
    [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
    [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
    [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
    [VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
    [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
    [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
    [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
    [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
    [VHOST_USER_SEND_RARP] = "SEND_RARP",
    [VHOST_USER_NET_SET_MTU] = "NET_SET_MTU",
    [VHOST_USER_SET_SLAVE_REQ_FD] = "SET_SLAVE_REQ_FD",
    [VHOST_USER_IOTLB_MSG] = "IOTLB_MSG",
    [VHOST_USER_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
    [VHOST_USER_GET_CONFIG] = "GET_CONFIG",
    [VHOST_USER_SET_CONFIG] = "SET_CONFIG",
    [VHOST_USER_CREATE_CRYPTO_SESSION] = "CREATE_CRYPTO_SESSION",
    [VHOST_USER_CLOSE_CRYPTO_SESSION] = "CLOSE_CRYPTO_SESSION",
    [VHOST_USER_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
    [VHOST_USER_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
    [VHOST_USER_POSTCOPY_END] = "POSTCOPY_END",
    [VHOST_USER_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
    [VHOST_USER_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
    [VHOST_USER_GPU_SET_SOCKET] = "GPU_SET_SOCKET",
    [VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
    [VHOST_USER_VRING_KICK] = "VRING_KICK",
    [VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
    [VHOST_USER_ADD_MEM_REG] = "ADD_MEM_REG",
    [VHOST_USER_REM_MEM_REG] = "REM_MEM_REG",
    [VHOST_USER_SET_STATUS] = "SET_STATUS",
    [VHOST_USER_GET_STATUS] = "GET_STATUS",
};

const char *vub_request_name(uint32_t request)
{
    if (request < sizeof(request_names) / sizeof(request_names[0]) && request_names[request]) {
        return request_names[request];
    }
    return "unknown request";
}

static bool has_protocol(VubDev *dev, unsigned bit)
{
    return dev->protocol_features & (1ull << bit);
}

/* Exact payload size, or a rejection naming both sizes. */
static bool expect_size(VubDev *dev, const VubMsg *msg, uint32_t size)
{
    if (msg->hdr.size == size) {
        return true;
    }
    vub_log(dev, VUB_LOG_ERROR, "%s carries %u payload bytes instead of %u: rejected",
            vub_request_name(msg->hdr.request), msg->hdr.size, size);
    return false;
}

/* A vring index from a state/addr/u64 payload, checked against the device. */
static VubQueue *vring_of(VubDev *dev, const VubMsg *msg, uint32_t index)
{
    if (index >= dev->cfg.num_queues) {
        vub_log(dev, VUB_LOG_ERROR, "%s names ring %u, but the device has %u rings: rejected",
                vub_request_name(msg->hdr.request), index, dev->cfg.num_queues);
        return NULL;
    }
    return &dev->queues[index];
}

/* Take the message's only fd; -1 (and a log line) if it does not carry exactly one. */
static int take_one_fd(VubDev *dev, VubMsg *msg)
{
    if (msg->nfds != 1) {
        vub_log(dev, VUB_LOG_ERROR, "%s must carry one file descriptor, it carries %u: rejected",
                vub_request_name(msg->hdr.request), msg->nfds);
        return -1;
    }
    int fd = msg->fds[0];
    msg->fds[0] = -1;
    return fd;
}

static bool reply_u64(VubDev *dev, int sock, const VubMsg *msg, uint64_t value)
{
    return vub_msg_reply(dev, sock, msg->hdr.request, &value, sizeof(value), -1);
}

/* ---- features and ownership -------------------------------------------- */

static HandlerResult set_features(VubDev *dev, VubMsg *msg)
{
    if (!expect_size(dev, msg, 8)) {
        return REJECTED;
    }
    uint64_t f = msg->payload.u64;
    if (f & ~dev->offered_features) {
        vub_log(dev, VUB_LOG_ERROR, "SET_FEATURES 0x%" PRIx64 " has bits the back-end did not"
                " offer (0x%" PRIx64 "): rejected", f, f & ~dev->offered_features);
        return REJECTED;
    }
    pthread_mutex_lock(&dev->dp_lock);
    bool log_was = dev->features & (1ull << VHOST_F_LOG_ALL);
    dev->features = f;
    /* Without protocol features there is no SET_VRING_ENABLE: rings run once started. */
    if (!(f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) {
        for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
            dev->queues[i].enabled = true;
        }
    }
    pthread_mutex_unlock(&dev->dp_lock);
    bool log_now = f & (1ull << VHOST_F_LOG_ALL);
    if (log_was != log_now) {
        vub_log(dev, VUB_LOG_INFO, "dirty logging %s", log_now ? "on" : "off");
    }
    vub_log(dev, VUB_LOG_DEBUG, "features 0x%" PRIx64, f);
    return HANDLED;
}

static HandlerResult set_protocol_features(VubDev *dev, VubMsg *msg)
{
    if (!expect_size(dev, msg, 8)) {
        return REJECTED;
    }
    uint64_t f = msg->payload.u64;
    if (f & ~dev->offered_protocol) {
        /* Keep what we offered: a front-end that sent this cannot see a refusal. */
        vub_log(dev, VUB_LOG_WARNING, "SET_PROTOCOL_FEATURES 0x%" PRIx64 " has bits the back-end"
                " did not offer (0x%" PRIx64 "); they are ignored", f, f & ~dev->offered_protocol);
        f &= dev->offered_protocol;
    }
    dev->protocol_features = f;
    vub_log(dev, VUB_LOG_INFO, "protocol features 0x%" PRIx64 "%s", f,
            (f & (1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT)) ? " (postcopy capable)" : "");
    return HANDLED;
}

/* ---- memory table ------------------------------------------------------ */

static bool check_mem_table(VubDev *dev, VubMsg *msg)
{
    if (msg->hdr.size < 8) {
        vub_log(dev, VUB_LOG_ERROR, "SET_MEM_TABLE carries %u payload bytes, less than its"
                " 8-byte header: rejected", msg->hdr.size);
        return false;
    }
    uint32_t n = msg->payload.mem.nregions;
    if (n == 0 || n > VHOST_USER_MEM_REGIONS_MAX) {
        vub_log(dev, VUB_LOG_ERROR, "SET_MEM_TABLE has %u regions; 1 to %u are allowed: rejected",
                n, VHOST_USER_MEM_REGIONS_MAX);
        return false;
    }
    if (!expect_size(dev, msg, VHOST_USER_MEM_TABLE_SIZE(n))) {
        return false;
    }
    if (msg->nfds != n) {
        vub_log(dev, VUB_LOG_ERROR, "SET_MEM_TABLE has %u regions but carries %u file"
                " descriptors: rejected", n, msg->nfds);
        return false;
    }
    return true;
}

/* Install @fresh as the memory table (dp_lock taken here); unmap the old one. */
static void install_regions(VubDev *dev, VubRegion *fresh, unsigned n, bool accounting)
{
    VubRegion old[VHOST_USER_MEM_REGIONS_MAX];
    unsigned old_n;

    pthread_mutex_lock(&dev->dp_lock);
    memcpy(old, dev->regions, sizeof(old));
    old_n = dev->nregions;
    memcpy(dev->regions, fresh, sizeof(dev->regions));
    dev->nregions = n;
    dev->fault_accounting = accounting;
    /* Running rings follow the new table (memory hot-plug moves nothing we keep). */
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        VubQueue *q = &dev->queues[i];
        if (q->started) {
            vub_queue_try_start(dev, q);
        }
    }
    pthread_mutex_unlock(&dev->dp_lock);
    vub_regions_unmap(old, old_n);
}

static HandlerResult set_mem_table(VubDev *dev, int sock, VubMsg *msg)
{
    VubRegion fresh[VHOST_USER_MEM_REGIONS_MAX];
    VubError err;

    if (!check_mem_table(dev, msg)) {
        return REJECTED;
    }
    unsigned n = msg->payload.mem.nregions;
    bool postcopy = atomic_load(&dev->postcopy_listening);
    bool ok = vub_regions_map(dev, &msg->payload.mem, msg->fds, postcopy, fresh, &err);
    msg->nfds = 0;          /* consumed either way */
    if (!ok) {
        vub_log(dev, VUB_LOG_ERROR, "SET_MEM_TABLE rejected: %s", err.msg);
        return REJECTED;
    }
    if (!postcopy) {
        install_regions(dev, fresh, n, false);
        return HANDLED;
    }

    /*
     * Postcopy: tell the front-end where the regions are in *our* address
     * space (it matches our faults by these), wait for its ack, and only then
     * let the pages fault into our userfaultfd.
     */
    VhostUserMemTable reply = msg->payload.mem;
    for (unsigned i = 0; i < n; i++) {
        reply.regions[i].userspace_addr = (uint64_t)(uintptr_t)fresh[i].host;
    }
    if (!vub_msg_reply(dev, sock, VHOST_USER_SET_MEM_TABLE, &reply, msg->hdr.size, -1)) {
        vub_regions_unmap(fresh, n);
        return FATAL;
    }
    VubMsg *ack = malloc(sizeof(*ack));
    if (!ack || vub_msg_read(dev, sock, ack) != 1) {
        vub_log(dev, VUB_LOG_ERROR, "the front-end did not acknowledge our postcopy memory table");
        free(ack);
        vub_regions_unmap(fresh, n);
        return FATAL;
    }
    bool good_ack = ack->hdr.request == VHOST_USER_SET_MEM_TABLE && ack->hdr.size == 8 &&
                    ack->nfds == 0 && ack->payload.u64 == 0;
    if (!good_ack) {
        vub_log(dev, VUB_LOG_ERROR, "expected the front-end's ack of our postcopy memory table"
                " (SET_MEM_TABLE, u64 0), got %s (%u) with %u payload bytes and %u fds",
                vub_request_name(ack->hdr.request), ack->hdr.request, ack->hdr.size, ack->nfds);
        vub_msg_close_fds(ack);
        free(ack);
        vub_regions_unmap(fresh, n);
        return FATAL;
    }
    free(ack);
    if (!vub_postcopy_register(dev, fresh, n, &err)) {
        vub_log(dev, VUB_LOG_ERROR, "postcopy memory table: %s", err.msg);
        vub_regions_unmap(fresh, n);
        return FATAL;
    }
    install_regions(dev, fresh, n, true);
    vub_log(dev, VUB_LOG_INFO, "postcopy: %u regions registered with our userfaultfd", n);
    return REPLIED;
}

static HandlerResult set_log_base(VubDev *dev, int sock, VubMsg *msg)
{
    VubError err;
    bool shmfd = has_protocol(dev, VHOST_USER_PROTOCOL_F_LOG_SHMFD);
    bool ok = false;

    if (!shmfd) {
        vub_log(dev, VUB_LOG_ERROR, "SET_LOG_BASE without the LOG_SHMFD protocol feature: only a"
                " shared-memory log is supported: rejected");
        return REJECTED;
    }
    if (expect_size(dev, msg, sizeof(VhostUserLogArea))) {
        int fd = take_one_fd(dev, msg);
        if (fd >= 0) {
            ok = vub_log_set_base(dev, &msg->payload.log, fd, &err);
            close(fd);
            if (!ok) {
                vub_log(dev, VUB_LOG_ERROR, "SET_LOG_BASE rejected: %s", err.msg);
            }
        }
    }
    /* With LOG_SHMFD the front-end always waits for this reply. */
    if (!reply_u64(dev, sock, msg, ok ? 0 : 1)) {
        return FATAL;
    }
    if (!ok) {
        atomic_fetch_add(&dev->st_rejected, 1);
    }
    return REPLIED;
}

/* ---- rings ------------------------------------------------------------- */

static HandlerResult set_vring_num(VubDev *dev, VubMsg *msg)
{
    if (!expect_size(dev, msg, sizeof(VhostUserVringState))) {
        return REJECTED;
    }
    VubQueue *q = vring_of(dev, msg, msg->payload.state.index);
    uint32_t num = msg->payload.state.num;
    if (!q) {
        return REJECTED;
    }
    if (num == 0 || num > VIRTQUEUE_MAX_SIZE || (num & (num - 1))) {
        vub_log(dev, VUB_LOG_ERROR, "ring %u: size %u is not a power of two up to %u: rejected",
                q->index, num, VIRTQUEUE_MAX_SIZE);
        return REJECTED;
    }
    pthread_mutex_lock(&dev->dp_lock);
    bool running = q->started;
    if (!running) {
        q->num = num;
    }
    pthread_mutex_unlock(&dev->dp_lock);
    if (running) {
        vub_log(dev, VUB_LOG_ERROR, "ring %u: SET_VRING_NUM while it runs: rejected", q->index);
        return REJECTED;
    }
    return HANDLED;
}

static HandlerResult set_vring_base(VubDev *dev, VubMsg *msg)
{
    if (!expect_size(dev, msg, sizeof(VhostUserVringState))) {
        return REJECTED;
    }
    VubQueue *q = vring_of(dev, msg, msg->payload.state.index);
    if (!q) {
        return REJECTED;
    }
    if (msg->payload.state.num > 0xffff) {
        vub_log(dev, VUB_LOG_ERROR, "ring %u: base 0x%x does not fit a split ring's 16-bit index"
                " (packed rings are not supported): rejected", q->index, msg->payload.state.num);
        return REJECTED;
    }
    pthread_mutex_lock(&dev->dp_lock);
    bool running = q->started;
    if (!running) {
        q->last_avail = (uint16_t)msg->payload.state.num;
    }
    pthread_mutex_unlock(&dev->dp_lock);
    if (running) {
        vub_log(dev, VUB_LOG_ERROR, "ring %u: SET_VRING_BASE while it runs: rejected", q->index);
        return REJECTED;
    }
    return HANDLED;
}

static HandlerResult set_vring_addr(VubDev *dev, VubMsg *msg)
{
    if (!expect_size(dev, msg, sizeof(VhostUserVringAddr))) {
        return REJECTED;
    }
    const VhostUserVringAddr *a = &msg->payload.addr;
    VubQueue *q = vring_of(dev, msg, a->index);
    if (!q) {
        return REJECTED;
    }
    if (a->flags & ~VHOST_VRING_F_LOG) {
        vub_log(dev, VUB_LOG_ERROR, "ring %u: unknown address flags 0x%x: rejected", q->index,
                a->flags);
        return REJECTED;
    }
    pthread_mutex_lock(&dev->dp_lock);
    q->addr = *a;
    q->addr_set = true;
    /* A running ring gets new addresses when logging is switched on or off. */
    if (q->started) {
        vub_queue_try_start(dev, q);
    }
    pthread_mutex_unlock(&dev->dp_lock);
    return HANDLED;
}

static HandlerResult get_vring_base(VubDev *dev, int sock, VubMsg *msg)
{
    if (!expect_size(dev, msg, sizeof(VhostUserVringState))) {
        return REJECTED;
    }
    VubQueue *q = vring_of(dev, msg, msg->payload.state.index);
    if (!q) {
        return REJECTED;
    }
    VhostUserVringState st = { .index = q->index };
    pthread_mutex_lock(&dev->dp_lock);
    vub_queue_stop(dev, q);
    st.num = q->last_avail;
    pthread_mutex_unlock(&dev->dp_lock);
    return vub_msg_reply(dev, sock, msg->hdr.request, &st, sizeof(st), -1) ? REPLIED : FATAL;
}

/* SET_VRING_KICK/CALL/ERR: index in bits 0-7, bit 8 = no fd. */
static HandlerResult set_vring_fd(VubDev *dev, VubMsg *msg)
{
    if (!expect_size(dev, msg, 8)) {
        return REJECTED;
    }
    uint64_t v = msg->payload.u64;
    if (v & ~(uint64_t)(VHOST_USER_VRING_INDEX_MASK | VHOST_USER_VRING_NOFD)) {
        vub_log(dev, VUB_LOG_ERROR, "%s payload 0x%" PRIx64 " has bits beyond the index and the"
                " no-fd flag: rejected", vub_request_name(msg->hdr.request), v);
        return REJECTED;
    }
    VubQueue *q = vring_of(dev, msg, (uint32_t)(v & VHOST_USER_VRING_INDEX_MASK));
    if (!q) {
        return REJECTED;
    }
    bool nofd = v & VHOST_USER_VRING_NOFD;
    int fd = -1;
    if (!nofd) {
        fd = take_one_fd(dev, msg);
        if (fd < 0) {
            return REJECTED;
        }
    }
    pthread_mutex_lock(&dev->dp_lock);
    switch (msg->hdr.request) {
    case VHOST_USER_SET_VRING_KICK:
        vub_queue_set_kick(dev, q, fd, nofd);
        if (!q->started) {
            vub_queue_try_start(dev, q);
        }
        break;
    case VHOST_USER_SET_VRING_CALL:
        if (q->call_fd >= 0) {
            close(q->call_fd);
        }
        q->call_fd = fd;
        q->signalled_used_valid = false;
        if (q->started && fd >= 0) {
            /*
             * The ring may have run (and pushed) before this fd existed, QEMU
             * sends CALL after KICK: one interrupt now so nothing waits for
             * one that was never sent. Drivers tolerate a spurious one.
             */
            uint64_t one = 1;
            if (write(fd, &one, sizeof(one)) < 0) {
                vub_log(dev, VUB_LOG_WARNING, "ring %u: signalling the new call eventfd"
                        " failed: %s", q->index, strerror(errno));
            }
        }
        break;
    default:
        if (q->err_fd >= 0) {
            close(q->err_fd);
        }
        q->err_fd = fd;
        break;
    }
    pthread_mutex_unlock(&dev->dp_lock);
    return HANDLED;
}

static HandlerResult set_vring_enable(VubDev *dev, VubMsg *msg)
{
    if (!expect_size(dev, msg, sizeof(VhostUserVringState))) {
        return REJECTED;
    }
    VubQueue *q = vring_of(dev, msg, msg->payload.state.index);
    if (!q) {
        return REJECTED;
    }
    pthread_mutex_lock(&dev->dp_lock);
    bool was = q->enabled;
    q->enabled = msg->payload.state.num != 0;
    if (q->enabled && !was && q->started) {
        q->pending = true;      /* buffers may have waited while it was disabled */
        vub_wake_data(dev);
    }
    pthread_mutex_unlock(&dev->dp_lock);
    vub_log(dev, VUB_LOG_DEBUG, "ring %u %s", q->index, q->enabled ? "enabled" : "disabled");
    return HANDLED;
}

/* ---- postcopy ---------------------------------------------------------- */

static HandlerResult postcopy_advise(VubDev *dev, int sock, VubMsg *msg)
{
    VubError err;
    int fd = -1;

    if (!has_protocol(dev, VHOST_USER_PROTOCOL_F_PAGEFAULT)) {
        vub_log(dev, VUB_LOG_ERROR, "POSTCOPY_ADVISE without the PAGEFAULT protocol feature"
                " (start the back-end with postcopy support): refused");
    } else {
        fd = vub_postcopy_advise(dev, &err);
        if (fd < 0) {
            vub_log(dev, VUB_LOG_ERROR, "POSTCOPY_ADVISE: %s", err.msg);
        }
    }
    if (fd >= 0) {
        if (dev->uffd >= 0) {
            close(dev->uffd);
        }
        dev->uffd = fd;
        vub_log(dev, VUB_LOG_INFO, "postcopy advised: our userfaultfd goes to the front-end");
    } else {
        atomic_fetch_add(&dev->st_rejected, 1);
    }
    /* The reply has no payload; a missing fd is how the front-end learns of a failure. */
    return vub_msg_reply(dev, sock, msg->hdr.request, NULL, 0, fd) ? REPLIED : FATAL;
}

static HandlerResult postcopy_listen(VubDev *dev, int sock, VubMsg *msg)
{
    uint64_t result = 0;

    pthread_mutex_lock(&dev->dp_lock);
    unsigned mapped = dev->nregions;
    pthread_mutex_unlock(&dev->dp_lock);
    if (dev->uffd < 0) {
        vub_log(dev, VUB_LOG_ERROR, "POSTCOPY_LISTEN before a successful POSTCOPY_ADVISE: refused");
        result = 1;
    } else if (mapped) {
        vub_log(dev, VUB_LOG_ERROR, "POSTCOPY_LISTEN with %u memory regions already mapped: the"
                " device must not start on the destination before the listen phase: refused",
                mapped);
        result = 1;
    } else {
        atomic_store(&dev->postcopy_listening, true);
        vub_log(dev, VUB_LOG_INFO, "postcopy listening: the next memory table is registered"
                " with our userfaultfd");
    }
    if (result) {
        atomic_fetch_add(&dev->st_rejected, 1);
    }
    return reply_u64(dev, sock, msg, result) ? REPLIED : FATAL;
}

static HandlerResult postcopy_end(VubDev *dev, int sock, VubMsg *msg)
{
    vub_postcopy_end(dev);
    vub_log(dev, VUB_LOG_INFO, "postcopy ended");
    return reply_u64(dev, sock, msg, 0) ? REPLIED : FATAL;
}

/* ---- the rest ---------------------------------------------------------- */

static HandlerResult send_rarp(VubDev *dev, VubMsg *msg)
{
    uint8_t mac[6];

    if (!expect_size(dev, msg, 8)) {
        return REJECTED;
    }
    memcpy(mac, msg->payload.raw, 6);
    vub_log(dev, VUB_LOG_INFO, "SEND_RARP for %02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
            mac[2], mac[3], mac[4], mac[5]);
    if (dev->ops.send_rarp) {
        dev->ops.send_rarp(dev, mac, dev->cfg.opaque);
    }
    return HANDLED;
}

static HandlerResult dispatch(VubDev *dev, int sock, VubMsg *msg)
{
    uint32_t req = msg->hdr.request;

    switch (req) {
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_GET_QUEUE_NUM: {
        uint64_t v = req == VHOST_USER_GET_FEATURES ? dev->offered_features
                   : req == VHOST_USER_GET_PROTOCOL_FEATURES ? dev->offered_protocol
                   : dev->cfg.num_queues;
        return reply_u64(dev, sock, msg, v) ? REPLIED : FATAL;
    }
    case VHOST_USER_SET_FEATURES:
        return set_features(dev, msg);
    case VHOST_USER_SET_PROTOCOL_FEATURES:
        return set_protocol_features(dev, msg);
    case VHOST_USER_SET_OWNER:
        dev->owner = true;
        return HANDLED;
    case VHOST_USER_RESET_OWNER:
        vub_session_reset(dev, false);
        return HANDLED;
    case VHOST_USER_SET_MEM_TABLE:
        return set_mem_table(dev, sock, msg);
    case VHOST_USER_SET_LOG_BASE:
        return set_log_base(dev, sock, msg);
    case VHOST_USER_SET_LOG_FD: {
        /* We have nothing to tell through it: the shared log needs no signal. */
        int fd = take_one_fd(dev, msg);
        if (fd < 0) {
            return REJECTED;
        }
        close(fd);
        return HANDLED;
    }
    case VHOST_USER_SET_VRING_NUM:
        return set_vring_num(dev, msg);
    case VHOST_USER_SET_VRING_ADDR:
        return set_vring_addr(dev, msg);
    case VHOST_USER_SET_VRING_BASE:
        return set_vring_base(dev, msg);
    case VHOST_USER_GET_VRING_BASE:
        return get_vring_base(dev, sock, msg);
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        return set_vring_fd(dev, msg);
    case VHOST_USER_SET_VRING_ENABLE:
        return set_vring_enable(dev, msg);
    case VHOST_USER_SEND_RARP:
        return send_rarp(dev, msg);
    case VHOST_USER_POSTCOPY_ADVISE:
        return postcopy_advise(dev, sock, msg);
    case VHOST_USER_POSTCOPY_LISTEN:
        return postcopy_listen(dev, sock, msg);
    case VHOST_USER_POSTCOPY_END:
        return postcopy_end(dev, sock, msg);
    default:
        break;
    }
    if (req <= VHOST_USER_REQUEST_MAX_KNOWN && req != VHOST_USER_NONE) {
        vub_log(dev, VUB_LOG_ERROR, "%s (%u) is not supported by this back-end (it did not offer"
                " the feature that needs it): rejected", vub_request_name(req), req);
    } else {
        vub_log(dev, VUB_LOG_ERROR, "unknown request %u (flags 0x%x, %u payload bytes):"
                " rejected", req, msg->hdr.flags, msg->hdr.size);
    }
    return REJECTED;
}

/* Requests whose payload is defined as empty; any payload they carry is ignored. */
static bool payload_free(uint32_t req)
{
    switch (req) {
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_SET_OWNER:
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_GET_QUEUE_NUM:
    case VHOST_USER_POSTCOPY_ADVISE:
    case VHOST_USER_POSTCOPY_LISTEN:
    case VHOST_USER_POSTCOPY_END:
        return true;
    default:
        return false;
    }
}

bool vub_handle_message(VubDev *dev, int sock, VubMsg *msg)
{
    uint32_t req = msg->hdr.request;
    bool need_reply = msg->hdr.flags & VHOST_USER_FLAG_NEED_REPLY;
    HandlerResult r;

    atomic_fetch_add(&dev->st_messages, 1);
    vub_log(dev, VUB_LOG_DEBUG, "%s (%u), flags 0x%x, %u payload bytes, %u fds",
            vub_request_name(req), req, msg->hdr.flags, msg->hdr.size, msg->nfds);
    if (msg->fds_truncated) {
        vub_log(dev, VUB_LOG_ERROR, "%s came with more than %u file descriptors: rejected",
                vub_request_name(req), VHOST_USER_MAX_FDS);
        r = REJECTED;
    } else {
        if (payload_free(req) && msg->hdr.size) {
            vub_log(dev, VUB_LOG_WARNING, "%s carries %u payload bytes it does not use; ignored",
                    vub_request_name(req), msg->hdr.size);
        }
        r = dispatch(dev, sock, msg);
    }
    if (msg->nfds) {
        unsigned extra = 0;
        for (unsigned i = 0; i < msg->nfds; i++) {
            extra += msg->fds[i] >= 0;
        }
        if (extra && r != REJECTED) {
            vub_log(dev, VUB_LOG_WARNING, "%s carried %u file descriptors it does not use;"
                    " closed", vub_request_name(req), extra);
        }
        vub_msg_close_fds(msg);
    }
    if (r == REJECTED) {
        atomic_fetch_add(&dev->st_rejected, 1);
    }
    if ((r == HANDLED || r == REJECTED) && need_reply) {
        if (!reply_u64(dev, sock, msg, r == REJECTED ? 1 : 0)) {
            return false;
        }
    }
    return r != FATAL;
}

/* ---- session teardown ---------------------------------------------------- */

/*
 * Take dp_lock when the data thread may be asleep in a postcopy fault that
 * nobody will resolve (the front-end went away). After a second, closing
 * our userfaultfd lets the kernel fill such pages itself if the front-end's
 * copy of it is gone too; a live front-end keeps resolving them.
 */
static bool lock_patiently(VubDev *dev)
{
    bool warned = false;

    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        if (pthread_mutex_timedlock(&dev->dp_lock, &ts) == 0) {
            return true;
        }
        if (!warned) {
            vub_log(dev, VUB_LOG_WARNING, "the data path is blocked (asleep in a postcopy page"
                    " fault the front-end has not resolved); releasing our userfaultfd");
            warned = true;
        }
        if (dev->uffd >= 0) {
            close(dev->uffd);
            dev->uffd = -1;
        }
        if (atomic_load(&dev->stopping)) {
            return false;
        }
    }
}

void vub_session_reset(VubDev *dev, bool disconnecting)
{
    VubRegion old[VHOST_USER_MEM_REGIONS_MAX];
    unsigned old_n;

    if (disconnecting) {
        if (!lock_patiently(dev)) {
            return;
        }
    } else {
        pthread_mutex_lock(&dev->dp_lock);
    }
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        VubQueue *q = &dev->queues[i];
        vub_queue_stop(dev, q);
        if (q->call_fd >= 0) {
            close(q->call_fd);
        }
        if (q->err_fd >= 0) {
            close(q->err_fd);
        }
        q->call_fd = -1;
        q->err_fd = -1;
        q->num = 0;
        q->last_avail = 0;
        q->addr_set = false;
        q->enabled = false;
        q->broken = false;
        memset(&q->addr, 0, sizeof(q->addr));
    }
    vub_fault_accounting_stop(dev);
    memcpy(old, dev->regions, sizeof(old));
    old_n = dev->nregions;
    memset(dev->regions, 0, sizeof(dev->regions));
    dev->nregions = 0;
    vub_log_drop(dev);
    dev->features = 0;
    if (disconnecting) {
        dev->protocol_features = 0;
        dev->owner = false;
    }
    pthread_mutex_unlock(&dev->dp_lock);
    vub_regions_unmap(old, old_n);
    if (disconnecting) {
        if (dev->uffd >= 0) {
            close(dev->uffd);
            dev->uffd = -1;
        }
        atomic_store(&dev->postcopy_listening, false);
    }
}
