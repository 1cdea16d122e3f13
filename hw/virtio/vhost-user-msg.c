/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user framing for the front-end: a 12-byte header and a bounded
 * payload over a unix stream socket, descriptors as SCM_RIGHTS on the
 * first byte of a message, every wait bounded by a deadline, and the checks
 * a reply must pass before anything in it is used.
 */
#include "qemu/osdep.h"
#include "hw/virtio/vhost-user-msg.h"
#include <poll.h>
#include <sys/socket.h>

static const char *const request_names[VHOST_USER_MAX_REQUEST] = {
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
    [VHOST_USER_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
    [VHOST_USER_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
    [VHOST_USER_POSTCOPY_END] = "POSTCOPY_END",
    [VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
};

const char *vhost_user_request_name(uint32_t request)
{
    static __thread char buf[24];

    if (request < VHOST_USER_MAX_REQUEST && request_names[request]) {
        return request_names[request];
    }
    snprintf(buf, sizeof(buf), "request %u", request);
    return buf;
}

void vhost_user_msg_init(VhostUserMsg *m, VhostUserRequest req, uint32_t size)
{
    memset(m, 0, sizeof(*m));
    m->request = req;
    m->flags = VHOST_USER_VERSION;
    m->size = size;
}

/* Wait for @events on @fd until @deadline (monotonic us). */
static bool wait_fd(int fd, short events, int64_t deadline, const char *what, uint32_t req,
                    GError **errp)
{
    for (;;) {
        int64_t left = deadline - g_get_monotonic_time();
        struct pollfd p = { .fd = fd, .events = events };
        if (left <= 0) {
            error_setg(errp, "vhost-user back-end did not %s %s in time", what,
                       vhost_user_request_name(req));
            return false;
        }
        int r = poll(&p, 1, (int)MIN(left / 1000 + 1, 1000));
        if (r > 0) {
            return true;        /* readable, writable, or an error the syscall will report */
        }
        if (r < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "vhost-user: poll failed");
            return false;
        }
    }
}

bool vhost_user_msg_send(int fd, const VhostUserMsg *m, const int *fds, unsigned nfds,
                         int timeout_ms, GError **errp)
{
    int64_t deadline = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    uint8_t buf[VHOST_USER_HDR_SIZE + VHOST_USER_PAYLOAD_MAX];
    size_t len = VHOST_USER_HDR_SIZE + m->size, done = 0;
    union {
        char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
        struct cmsghdr align;
    } control;

    g_assert(m->size <= VHOST_USER_PAYLOAD_MAX && nfds <= VHOST_USER_MAX_FDS);
    memcpy(buf, m, VHOST_USER_HDR_SIZE);
    memcpy(buf + VHOST_USER_HDR_SIZE, &m->payload, m->size);
    while (done < len) {
        struct iovec iov = { .iov_base = buf + done, .iov_len = len - done };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (done == 0 && nfds) {
            /* The descriptors ride on the first byte of the message. */
            memset(&control, 0, sizeof(control));
            mh.msg_control = control.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && errno == EAGAIN) {
            if (!wait_fd(fd, POLLOUT, deadline, "accept", m->request, errp)) {
                return false;
            }
            continue;
        }
        error_setg_errno(errp, r < 0 ? errno : EPIPE, "vhost-user: cannot send %s",
                         vhost_user_request_name(m->request));
        return false;
    }
    return true;
}

static void close_fds_in(struct msghdr *mh, int *fds, unsigned max, unsigned *count)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        unsigned n = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (unsigned i = 0; i < n; i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (fds && *count < max) {
                fds[(*count)++] = f;
            } else {
                close(f);
            }
        }
    }
}

/* Read exactly @len bytes (the first read may carry descriptors). */
static bool recv_exact(int fd, void *buf, size_t len, int *fds, unsigned max, unsigned *count,
                       int64_t deadline, uint32_t req, GError **errp)
{
    size_t done = 0;
    union {
        char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
        struct cmsghdr align;
    } control;

    while (done < len) {
        struct iovec iov = { .iov_base = (uint8_t *)buf + done, .iov_len = len - done };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = control.buf, .msg_controllen = sizeof(control) };
        ssize_t r = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (r > 0) {
            close_fds_in(&mh, fds, max, count);
            if (mh.msg_flags & MSG_CTRUNC) {
                error_setg(errp, "vhost-user back-end sent too many file descriptors with %s",
                           vhost_user_request_name(req));
                return false;
            }
            done += (size_t)r;
            continue;
        }
        if (r == 0) {
            error_setg(errp, "vhost-user back-end closed the connection while we waited for "
                       "%s", vhost_user_request_name(req));
            return false;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            if (!wait_fd(fd, POLLIN, deadline, "answer", req, errp)) {
                return false;
            }
            continue;
        }
        error_setg_errno(errp, errno, "vhost-user: cannot read the reply to %s",
                         vhost_user_request_name(req));
        return false;
    }
    return true;
}

bool vhost_user_msg_recv(int fd, VhostUserMsg *m, int *fds, unsigned *nfds, int timeout_ms,
                         GError **errp)
{
    int64_t deadline = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    unsigned max = nfds ? *nfds : 0, count = 0;
    uint32_t expect = m->request;       /* for messages only */
    bool ok;

    memset(m, 0, sizeof(*m));
    ok = recv_exact(fd, m, VHOST_USER_HDR_SIZE, fds, max, &count, deadline, expect, errp);
    if (ok && m->size > VHOST_USER_PAYLOAD_MAX) {
        error_setg(errp, "vhost-user back-end sent %s with a %u-byte payload (at most %zu)",
                   vhost_user_request_name(m->request), m->size, VHOST_USER_PAYLOAD_MAX);
        ok = false;
    }
    if (ok && m->size) {
        ok = recv_exact(fd, &m->payload, m->size, fds, max, &count, deadline, expect, errp);
    }
    if (!ok) {
        for (unsigned i = 0; i < count; i++) {
            close(fds[i]);
        }
        count = 0;
    }
    if (nfds) {
        *nfds = count;
    }
    return ok;
}

bool vhost_user_reply_check(const VhostUserMsg *reply, uint32_t request, uint32_t size,
                            GError **errp)
{
    if (reply->request != request) {
        error_setg(errp, "vhost-user back-end answered %s with %s",
                   vhost_user_request_name(request), vhost_user_request_name(reply->request));
        return false;
    }
    if (reply->flags != (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK)) {
        error_setg(errp, "vhost-user back-end's reply to %s has flags 0x%x (expected 0x5)",
                   vhost_user_request_name(request), reply->flags);
        return false;
    }
    if (reply->size != size) {
        error_setg(errp, "vhost-user back-end's reply to %s has %u payload bytes (expected %u)",
                   vhost_user_request_name(request), reply->size, size);
        return false;
    }
    return true;
}

bool vhost_user_parse_postcopy_mem_reply(const VhostUserMsg *sent, const VhostUserMsg *reply,
                                         uint64_t *client_base, GError **errp)
{
    const VhostUserMemory *s = &sent->payload.memory, *r = &reply->payload.memory;

    if (!vhost_user_reply_check(reply, VHOST_USER_SET_MEM_TABLE, sent->size, errp)) {
        return false;
    }
    if (r->nregions != s->nregions) {
        error_setg(errp, "vhost-user back-end's postcopy memory table has %u regions, we sent %u",
                   r->nregions, s->nregions);
        return false;
    }
    /* The back-end answers in our order; match by guest-physical address all the same. */
    for (uint32_t i = 0; i < s->nregions; i++) {
        const VhostUserMemRegion *want = &s->regions[i];
        bool found = false;
        for (uint32_t j = 0; j < r->nregions && !found; j++) {
            const VhostUserMemRegion *got = &r->regions[j];
            if (got->guest_phys_addr != want->guest_phys_addr) {
                continue;
            }
            if (got->memory_size != want->memory_size || got->userspace_addr == 0 ||
                got->userspace_addr > UINT64_MAX - got->memory_size) {
                error_setg(errp, "vhost-user back-end's postcopy memory table gives region "
                           "0x%" PRIx64 " size 0x%" PRIx64 " at 0x%" PRIx64 ", which is not "
                           "usable", got->guest_phys_addr, got->memory_size,
                           got->userspace_addr);
                return false;
            }
            client_base[i] = got->userspace_addr;
            found = true;
        }
        if (!found) {
            error_setg(errp, "vhost-user back-end's postcopy memory table lacks region "
                       "0x%" PRIx64, want->guest_phys_addr);
            return false;
        }
    }
    return true;
}
