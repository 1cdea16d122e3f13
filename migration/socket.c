/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcp: and unix: transports. Connects are non-blocking underneath so that
 * a cancel can interrupt them; accepted and connected TCP sockets get
 * TCP_NODELAY because the return path carries small latency-critical page
 * requests.
 */
#include "qemu/osdep.h"
#include "qemu/sockets.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "migration/transport.h"

/* Split "HOST:PORT" / "[V6]:PORT" / ":PORT" into host and port. */
static bool parse_hostport(const char *hostport, char **host, char **port,
                           GError **errp)
{
    const char *colon;

    if (hostport[0] == '[') {
        const char *end = strchr(hostport, ']');
        if (!end || end[1] != ':') {
            goto bad;
        }
        *host = g_strndup(hostport + 1, end - hostport - 1);
        colon = end + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (!colon) {
            goto bad;
        }
        *host = g_strndup(hostport, colon - hostport);
    }
    if (!colon[1]) {
        g_free(*host);
        goto bad;
    }
    *port = g_strdup(colon + 1);
    return true;

bad:
    error_setg(errp, "Invalid address '%s': expected HOST:PORT", hostport);
    return false;
}

static void set_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * Connect @fd to @addr, waiting in poll() so @cancel can interrupt.
 * Returns 0 or an errno value (ECANCELED when cancelled).
 */
static int connect_wait(int fd, const struct sockaddr *addr, socklen_t alen,
                        QIOCancel *cancel)
{
    if (connect(fd, addr, alen) == 0) {
        return 0;
    }
    if (errno != EINPROGRESS && errno != EINTR) {
        return errno;
    }
    if (!qio_wait_fd(fd, POLLOUT, cancel, "Connect", NULL)) {
        return ECANCELED;
    }
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
        return errno;
    }
    return err;
}

int socket_connect_tcp(const char *hostport, QIOCancel *cancel, GError **errp)
{
    g_autofree char *host = NULL;
    g_autofree char *port = NULL;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
    };
    struct addrinfo *res;
    int err = ECONNREFUSED;

    if (!parse_hostport(hostport, &host, &port, errp)) {
        return -1;
    }
    int r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (r) {
        error_setg(errp, "address resolution failed for %s:%s: %s", host,
                   port, gai_strerror(r));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        err = connect_wait(fd, ai->ai_addr, ai->ai_addrlen, cancel);
        if (err == 0) {
            freeaddrinfo(res);
            set_nodelay(fd);
            return fd;
        }
        close(fd);
        if (err == ECANCELED) {
            break;
        }
    }
    freeaddrinfo(res);
    if (err == ECANCELED) {
        error_setg(errp, "Connection to '%s:%s' cancelled", host, port);
    } else {
        error_setg(errp, "Failed to connect to '%s:%s': %s", host, port,
                   g_strerror(err));
    }
    return -1;
}

static bool fill_sun(struct sockaddr_un *sun, const char *path, GError **errp)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return false;
    }
    strcpy(sun->sun_path, path);
    return true;
}

int socket_connect_unix(const char *path, QIOCancel *cancel, GError **errp)
{
    struct sockaddr_un sun;

    if (!fill_sun(&sun, path, errp)) {
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create socket");
        return -1;
    }
    int err;
    /*
     * A full backlog makes a non-blocking unix connect fail with EAGAIN
     * rather than wait; retry for a while, still listening to the cancel.
     */
    for (int tries = 0;; tries++) {
        err = connect_wait(fd, (struct sockaddr *)&sun, sizeof(sun), cancel);
        if (err != EAGAIN || tries == 500) {
            break;
        }
        g_usleep(10 * 1000);
        if (qio_cancel_is_set(cancel)) {
            err = ECANCELED;
            break;
        }
    }
    if (err) {
        close(fd);
        if (err == ECANCELED) {
            error_setg(errp, "Connection to '%s' cancelled", path);
        } else {
            error_setg(errp, "Failed to connect to '%s': %s", path,
                       g_strerror(err));
        }
        return -1;
    }
    return fd;
}

int socket_listen_tcp(const char *hostport, char **actual, int *port_out,
                      GError **errp)
{
    g_autofree char *host = NULL;
    g_autofree char *port = NULL;

    if (!parse_hostport(hostport, &host, &port, errp)) {
        return -1;
    }
    return gw_listen_tcp(host, port, 1, actual, port_out, errp);
}

int socket_listen_unix(const char *path, GError **errp)
{
    struct sockaddr_un sun;

    /* fill_sun gives the transport's own message for a bad path. */
    if (!fill_sun(&sun, path, errp)) {
        return -1;
    }
    return gw_listen_unix(path, 1, errp);
}

int socket_accept(int lfd, QIOCancel *cancel, GError **errp)
{
    for (;;) {
        if (!qio_wait_fd(lfd, POLLIN, cancel, "Waiting for the migration "
                         "connection", errp)) {
            return -1;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
                ss.ss_family != AF_UNIX) {
                set_nodelay(fd);
            }
            return fd;
        }
        if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) {
            continue;
        }
        error_setg_errno(errp, errno, "Failed to accept the migration "
                         "connection");
        return -1;
    }
}
