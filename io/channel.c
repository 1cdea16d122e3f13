/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fd-based byte channels with cancellable blocking I/O. The fds are kept
 * non-blocking and every wait is a poll() on the fd plus the cancel eventfd,
 * so the fast path is one read/write syscall and a cancel never gets lost.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "io/channel.h"

struct QIOCancel {
    gint refcnt;
    int efd;
    gint set;
};

QIOCancel *qio_cancel_new(void)
{
    QIOCancel *c = g_new0(QIOCancel, 1);

    c->refcnt = 1;
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->efd < 0) {
        /* Out of fds: still usable, just relies on the flag + shutdown. */
        g_warning("eventfd: %s", g_strerror(errno));
    }
    return c;
}

QIOCancel *qio_cancel_ref(QIOCancel *c)
{
    g_atomic_int_inc(&c->refcnt);
    return c;
}

void qio_cancel_unref(QIOCancel *c)
{
    if (c && g_atomic_int_dec_and_test(&c->refcnt)) {
        if (c->efd >= 0) {
            close(c->efd);
        }
        g_free(c);
    }
}

void qio_cancel_trigger(QIOCancel *c)
{
    uint64_t one = 1;

    g_atomic_int_set(&c->set, 1);
    /* The counter stays non-zero (nobody reads it), so POLLIN is sticky. */
    if (c->efd >= 0 && write(c->efd, &one, sizeof(one)) < 0) {
        /* EAGAIN means the counter is already huge: still readable. */
    }
}

bool qio_cancel_is_set(QIOCancel *c)
{
    return c && g_atomic_int_get(&c->set);
}

int qio_cancel_fd(QIOCancel *c)
{
    return c ? c->efd : -1;
}

bool qio_wait_fd(int fd, short events, QIOCancel *c, const char *what,
                 GError **errp)
{
    struct pollfd pfd[2] = {
        { .fd = fd, .events = events },
        { .fd = qio_cancel_fd(c), .events = POLLIN },
    };

    for (;;) {
        if (qio_cancel_is_set(c)) {
            error_setg(errp, "%s cancelled", what);
            return false;
        }
        int r = poll(pfd, pfd[1].fd >= 0 ? 2 : 1, -1);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_setg_errno(errp, errno, "%s: poll failed", what);
            return false;
        }
        if (pfd[1].fd >= 0 && pfd[1].revents) {
            error_setg(errp, "%s cancelled", what);
            return false;
        }
        /* POLLERR/POLLHUP count as ready: the syscall reports the cause. */
        if (pfd[0].revents) {
            return true;
        }
    }
}

struct QIOChannel {
    gint refcnt;
    QIOChannelKind kind;
    int rfd;
    int wfd;              /* == rfd for sockets and files */
    GPid child;
    char *name;
    QIOCancel *cancel;
};

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0 && !(fl & O_NONBLOCK)) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
}

static QIOChannel *channel_new(QIOChannelKind kind, int rfd, int wfd,
                               GPid child, const char *name, QIOCancel *cancel)
{
    QIOChannel *ch = g_new0(QIOChannel, 1);

    ch->refcnt = 1;
    ch->kind = kind;
    ch->rfd = rfd;
    ch->wfd = wfd;
    ch->child = child;
    ch->name = g_strdup(name ? name : "channel");
    ch->cancel = cancel ? qio_cancel_ref(cancel) : qio_cancel_new();
    /*
     * Regular files never block, and O_NONBLOCK on them is meaningless;
     * for the rest it turns every wait into our poll() with the canceller.
     */
    if (kind != QIO_CHANNEL_FILE) {
        if (rfd >= 0) {
            set_nonblock(rfd);
        }
        if (wfd >= 0 && wfd != rfd) {
            set_nonblock(wfd);
        }
    }
    return ch;
}

QIOChannel *qio_channel_new_fd(int fd, QIOChannelKind kind, const char *name,
                               QIOCancel *cancel)
{
    return channel_new(kind, fd, fd, 0, name, cancel);
}

QIOChannel *qio_channel_new_pipes(int rfd, int wfd, GPid child_pid,
                                  const char *name, QIOCancel *cancel)
{
    return channel_new(QIO_CHANNEL_PIPE, rfd, wfd, child_pid, name, cancel);
}

QIOChannel *qio_channel_ref(QIOChannel *ch)
{
    g_atomic_int_inc(&ch->refcnt);
    return ch;
}

/*
 * Reap a child process started for exec:. Its stdin is already closed, so
 * a well-behaved command exits; give it a moment, then make sure it does,
 * because a close must not hang the migration thread forever.
 */
static void reap_child(GPid pid)
{
    int status;

    for (int i = 0; i < 200; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) {
            return;
        }
        g_usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        /* retry */
    }
}

void qio_channel_unref(QIOChannel *ch)
{
    if (!ch || !g_atomic_int_dec_and_test(&ch->refcnt)) {
        return;
    }
    if (ch->wfd >= 0 && ch->wfd != ch->rfd) {
        close(ch->wfd);
    }
    if (ch->rfd >= 0) {
        close(ch->rfd);
    }
    if (ch->child > 0) {
        reap_child(ch->child);
    }
    qio_cancel_unref(ch->cancel);
    g_free(ch->name);
    g_free(ch);
}

const char *qio_channel_name(QIOChannel *ch)
{
    return ch->name;
}

QIOChannelKind qio_channel_kind(QIOChannel *ch)
{
    return ch->kind;
}

int qio_channel_rfd(QIOChannel *ch)
{
    return ch->rfd;
}

int qio_channel_wfd(QIOChannel *ch)
{
    return ch->wfd;
}

QIOCancel *qio_channel_cancel(QIOChannel *ch)
{
    return ch->cancel;
}

void qio_channel_set_cancel(QIOChannel *ch, QIOCancel *cancel)
{
    QIOCancel *old = ch->cancel;

    ch->cancel = qio_cancel_ref(cancel);
    qio_cancel_unref(old);
}

static bool check_cancel(QIOChannel *ch, const char *op, GError **errp)
{
    if (qio_cancel_is_set(ch->cancel)) {
        error_setg(errp, "%s on '%s' cancelled", op, ch->name);
        return false;
    }
    return true;
}

ssize_t qio_channel_read(QIOChannel *ch, void *buf, size_t len, GError **errp)
{
    if (ch->rfd < 0) {
        error_setg(errp, "Channel '%s' is not readable", ch->name);
        return -1;
    }
    for (;;) {
        if (!check_cancel(ch, "Read", errp)) {
            return -1;
        }
        ssize_t n = read(ch->rfd, buf, len);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            g_autofree char *what = g_strdup_printf("Read on '%s'", ch->name);
            if (!qio_wait_fd(ch->rfd, POLLIN, ch->cancel, what, errp)) {
                return -1;
            }
            continue;
        }
        error_setg_errno(errp, errno, "Unable to read from '%s'", ch->name);
        return -1;
    }
}

int qio_channel_read_all_eof(QIOChannel *ch, void *buf, size_t len,
                             GError **errp)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = qio_channel_read(ch, (char *)buf + done, len - done, errp);
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            if (done == 0) {
                return 0;
            }
            error_setg(errp, "Unexpected end-of-file on '%s'", ch->name);
            return -1;
        }
        done += n;
    }
    return 1;
}

bool qio_channel_read_all(QIOChannel *ch, void *buf, size_t len, GError **errp)
{
    int r = qio_channel_read_all_eof(ch, buf, len, errp);

    if (r == 0 && len > 0) {
        error_setg(errp, "Unexpected end-of-file on '%s'", ch->name);
    }
    return r > 0 || len == 0;
}

/*
 * writev() on a pipe whose reader is gone (an exec: command that exited)
 * raises SIGPIPE, which would kill the whole VMM unless the process ignores
 * it. Block it for this thread around the call and swallow the one the
 * call generated, so the caller just sees EPIPE.
 */
static ssize_t writev_nosigpipe(int fd, const struct iovec *iov, int cnt)
{
    sigset_t set, old;
    struct timespec zero = { 0, 0 };

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    ssize_t n = writev(fd, iov, cnt);
    int err = errno;
    if (n < 0 && err == EPIPE) {
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
            /* retry */
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

bool qio_channel_writev_all(QIOChannel *ch, struct iovec *iov, int niov,
                            GError **errp)
{
    if (ch->wfd < 0) {
        error_setg(errp, "Channel '%s' is not writable", ch->name);
        return false;
    }
    while (niov > 0) {
        if (iov[0].iov_len == 0) {
            iov++;
            niov--;
            continue;
        }
        if (!check_cancel(ch, "Write", errp)) {
            return false;
        }
        ssize_t n;
        int cnt = MIN(niov, IOV_MAX);
        if (ch->kind == QIO_CHANNEL_SOCKET) {
            /* MSG_NOSIGNAL: a vanished peer is an error, not a SIGPIPE. */
            struct msghdr msg = { .msg_iov = iov, .msg_iovlen = cnt };
            n = sendmsg(ch->wfd, &msg, MSG_NOSIGNAL);
        } else {
            n = writev_nosigpipe(ch->wfd, iov, cnt);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                g_autofree char *what = g_strdup_printf("Write on '%s'",
                                                        ch->name);
                if (!qio_wait_fd(ch->wfd, POLLOUT, ch->cancel, what, errp)) {
                    return false;
                }
                continue;
            }
            error_setg_errno(errp, errno, "Unable to write to '%s'", ch->name);
            return false;
        }
        /* Skip what went out; a partial element is advanced in place. */
        size_t left = n;
        while (niov > 0 && left >= iov[0].iov_len) {
            left -= iov[0].iov_len;
            iov++;
            niov--;
        }
        if (left) {
            iov[0].iov_base = (char *)iov[0].iov_base + left;
            iov[0].iov_len -= left;
        }
    }
    return true;
}

bool qio_channel_write_all(QIOChannel *ch, const void *buf, size_t len,
                           GError **errp)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return qio_channel_writev_all(ch, &iov, 1, errp);
}

void qio_channel_shutdown(QIOChannel *ch, QIOChannelShutdown how)
{
    if (ch->kind == QIO_CHANNEL_SOCKET) {
        int sh = how == QIO_CHANNEL_SHUTDOWN_READ ? SHUT_RD :
                 how == QIO_CHANNEL_SHUTDOWN_WRITE ? SHUT_WR : SHUT_RDWR;
        /* ENOTCONN after the peer left is fine: we only want it woken. */
        shutdown(ch->rfd, sh);
        if (how != QIO_CHANNEL_SHUTDOWN_BOTH) {
            return;
        }
    }
    qio_cancel_trigger(ch->cancel);
}
