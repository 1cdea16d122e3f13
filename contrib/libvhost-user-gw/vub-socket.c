/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user framing on a unix stream socket: reading one message (12-byte
 * header, SCM_RIGHTS fds on its first byte, bounded payload), sending
 * replies, and getting a connection (listen + accept, or connect with
 * retries). Every wait also watches the device's stop eventfd.
 */
#include "vub-internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Wait until @fd is ready for @events; false if stopping or on error. */
static bool wait_fd(VubDev *dev, int fd, short events, int timeout_ms, bool *timed_out)
{
    struct pollfd p[2] = {
        { .fd = fd, .events = events },
        { .fd = dev->stop_fd, .events = POLLIN },
    };

    if (timed_out) {
        *timed_out = false;
    }
    for (;;) {
        int r = poll(p, 2, timeout_ms);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return false;
        }
        if (r == 0) {
            if (timed_out) {
                *timed_out = true;
            }
            return false;
        }
        if (p[1].revents) {
            return false;
        }
        return true;
    }
}

/* Read exactly @len bytes; 1 done, 0 EOF before the first byte, -1 error/EOF midway. */
static int read_full(VubDev *dev, int sock, void *buf, size_t len, bool at_start)
{
    size_t done = 0;

    while (done < len) {
        if (!wait_fd(dev, sock, POLLIN, -1, NULL)) {
            return -1;
        }
        ssize_t n = recv(sock, (uint8_t *)buf + done, len - done, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n < 0) {
            vub_log(dev, VUB_LOG_ERROR, "reading from the front-end failed: %s",
                    strerror(errno));
            return -1;
        }
        if (n == 0) {
            if (at_start && done == 0) {
                return 0;
            }
            vub_log(dev, VUB_LOG_ERROR,
                    "the front-end closed the connection in the middle of a message");
            return -1;
        }
        done += (size_t)n;
    }
    return 1;
}

void vub_msg_close_fds(VubMsg *msg)
{
    for (unsigned i = 0; i < msg->nfds; i++) {
        if (msg->fds[i] >= 0) {
            close(msg->fds[i]);
        }
        msg->fds[i] = -1;
    }
    msg->nfds = 0;
}

static void collect_fds(VubMsg *msg, struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const uint8_t *data = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (msg->nfds < VHOST_USER_MAX_FDS) {
                msg->fds[msg->nfds++] = fd;
            } else {
                close(fd);
                msg->fds_truncated = true;
            }
        }
    }
    if (mh->msg_flags & MSG_CTRUNC) {
        msg->fds_truncated = true;
    }
}

int vub_msg_read(VubDev *dev, int sock, VubMsg *msg)
{
    union {
        char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = &msg->hdr, .iov_len = VHOST_USER_HDR_SIZE };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
    };
    ssize_t n;

    msg->nfds = 0;
    msg->fds_truncated = false;
    for (;;) {
        if (!wait_fd(dev, sock, POLLIN, -1, NULL)) {
            return -1;
        }
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        break;
    }
    if (n < 0) {
        if (errno == ECONNRESET) {
            return 0;
        }
        vub_log(dev, VUB_LOG_ERROR, "reading from the front-end failed: %s", strerror(errno));
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    collect_fds(msg, &mh);
    if ((size_t)n < VHOST_USER_HDR_SIZE &&
        read_full(dev, sock, (uint8_t *)&msg->hdr + n, VHOST_USER_HDR_SIZE - (size_t)n,
                  false) < 0) {
        vub_msg_close_fds(msg);
        return -1;
    }
    if ((msg->hdr.flags & VHOST_USER_FLAG_VERSION_MASK) != VHOST_USER_VERSION) {
        vub_log(dev, VUB_LOG_ERROR,
                "message %u has protocol version %u in its flags 0x%x, only version 1 exists:"
                " closing the connection", msg->hdr.request,
                msg->hdr.flags & VHOST_USER_FLAG_VERSION_MASK, msg->hdr.flags);
        vub_msg_close_fds(msg);
        return -1;
    }
    if (msg->hdr.flags & VHOST_USER_FLAG_REPLY) {
        vub_log(dev, VUB_LOG_ERROR,
                "the front-end sent a reply (flags 0x%x, request %u) where a request was due:"
                " closing the connection", msg->hdr.flags, msg->hdr.request);
        vub_msg_close_fds(msg);
        return -1;
    }
    if (msg->hdr.size > VUB_MSG_MAX_PAYLOAD) {
        vub_log(dev, VUB_LOG_ERROR,
                "message %u announces a %u-byte payload, more than the %u any request needs:"
                " closing the connection", msg->hdr.request, msg->hdr.size,
                VUB_MSG_MAX_PAYLOAD);
        vub_msg_close_fds(msg);
        return -1;
    }
    if (msg->hdr.size && read_full(dev, sock, &msg->payload, msg->hdr.size, false) < 0) {
        vub_msg_close_fds(msg);
        return -1;
    }
    return 1;
}

bool vub_msg_reply(VubDev *dev, int sock, uint32_t request, const void *payload,
                   uint32_t size, int fd)
{
    VhostUserHeader hdr = {
        .request = request,
        .flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY,
        .size = size,
    };
    struct iovec iov[2] = {
        { .iov_base = &hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)payload, .iov_len = size },
    };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
    size_t total = sizeof(hdr) + size;
    size_t sent = 0;

    if (fd >= 0) {
        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = sizeof(control.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    while (sent < total) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            if (!wait_fd(dev, sock, POLLOUT, -1, NULL)) {
                return false;
            }
            continue;
        }
        if (n < 0) {
            vub_log(dev, VUB_LOG_ERROR, "sending the reply to %s failed: %s",
                    vub_request_name(request), strerror(errno));
            return false;
        }
        sent += (size_t)n;
        /* The fd went with the first byte; the rest is plain data. */
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        size_t skip = (size_t)n;
        while (skip && mh.msg_iovlen) {
            if (skip >= mh.msg_iov->iov_len) {
                skip -= mh.msg_iov->iov_len;
                mh.msg_iov++;
                mh.msg_iovlen--;
            } else {
                mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + skip;
                mh.msg_iov->iov_len -= skip;
                skip = 0;
            }
        }
    }
    return true;
}

static bool fill_addr(struct sockaddr_un *sa, const char *path, VubError *err)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path)) {
        vub_error_set(err, "socket path '%s' is longer than the %zu bytes a unix socket"
                      " address holds", path, sizeof(sa->sun_path) - 1);
        return false;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return true;
}

int vub_socket_listen(const char *path, VubError *err)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    if (!fill_addr(&sa, path, err)) {
        return -1;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            vub_error_set(err, "'%s' exists and is not a socket; not replacing it", path);
            return -1;
        }
        /* Replace a stale socket, never one somebody still serves. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            vub_error_set(err, "something is already listening on '%s'", path);
            return -1;
        }
        if (probe >= 0) {
            close(probe);
        }
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        vub_error_set(err, "cannot create a unix socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        vub_error_set(err, "cannot bind '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 1) < 0) {
        vub_error_set(err, "cannot listen on '%s': %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

int vub_socket_accept(VubDev *dev)
{
    for (;;) {
        if (!wait_fd(dev, dev->listen_fd, POLLIN, -1, NULL)) {
            return -1;
        }
        int fd = accept4(dev->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            return fd;
        }
        if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) {
            continue;
        }
        vub_log(dev, VUB_LOG_ERROR, "accepting on '%s' failed: %s", dev->path, strerror(errno));
        return -1;
    }
}

int vub_socket_connect(VubDev *dev)
{
    struct sockaddr_un sa;
    uint64_t deadline = 0;
    bool told = false;

    if (!fill_addr(&sa, dev->path, NULL)) {
        return -1;
    }
    if (dev->cfg.connect_timeout_ms >= 0) {
        deadline = vub_now_ns() + (uint64_t)dev->cfg.connect_timeout_ms * 1000000u;
    }
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            vub_log(dev, VUB_LOG_ERROR, "cannot create a unix socket: %s", strerror(errno));
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            return fd;
        }
        int e = errno;
        close(fd);
        if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR) {
            vub_log(dev, VUB_LOG_ERROR, "cannot connect to '%s': %s", dev->path, strerror(e));
            return -1;
        }
        if (deadline && vub_now_ns() >= deadline) {
            vub_log(dev, VUB_LOG_ERROR, "no front-end listened on '%s' within %d ms (%s)",
                    dev->path, dev->cfg.connect_timeout_ms, strerror(e));
            return -1;
        }
        if (!told) {
            vub_log(dev, VUB_LOG_INFO, "waiting for a front-end to listen on '%s'", dev->path);
            told = true;
        }
        bool timed_out;
        if (!wait_fd(dev, dev->stop_fd, 0, 100, &timed_out) && !timed_out) {
            return -1;
        }
        if (atomic_load(&dev->stopping)) {
            return -1;
        }
    }
}
