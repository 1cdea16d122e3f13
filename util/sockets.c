/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Listening sockets for QMP, chardevs and migration (see qemu/sockets.h). */
#include "qemu/osdep.h"
#include "qemu/sockets.h"
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

int gw_listen_unix(const char *path, int backlog, GError **errp)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        error_setg(errp, "unix socket path '%s' is too long", path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create a unix socket");
        return -1;
    }
    /* A stale socket file from an earlier run would make bind() fail. */
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        error_setg(errp, "Failed to bind socket to '%s': %s", path, g_strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) < 0) {
        error_setg(errp, "Failed to listen on '%s': %s", path, g_strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

int gw_listen_tcp(const char *host, const char *port, int backlog, char **actual,
                  int *port_out, GError **errp)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE,
    };
    struct addrinfo *res;
    const char *h = host ? host : "";
    int fd = -1, err = 0;

    int r = getaddrinfo(*h ? h : NULL, port, &hints, &res);
    if (r) {
        error_setg(errp, "address resolution failed for %s:%s: %s", h, port, gai_strerror(r));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6) {
            /* The IPv6 wildcard takes IPv4 too. */
            int zero = 0;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) {
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg(errp, "Failed to bind socket to '%s:%s': %s", h, port, g_strerror(err));
        return -1;
    }
    if (!actual && !port_out) {
        return fd;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), pbuf, sizeof(pbuf),
                    NI_NUMERICHOST | NI_NUMERICSERV)) {
        error_setg_errno(errp, errno, "Failed to read the bound address");
        close(fd);
        return -1;
    }
    if (port_out) {
        *port_out = atoi(pbuf);
    }
    if (actual) {
        /* Keep the host as the user wrote it (e.g. "localhost"). */
        const char *name = *h ? h : hbuf;
        *actual = strchr(name, ':') ? g_strdup_printf("[%s]:%s", name, pbuf)
                                    : g_strdup_printf("%s:%s", name, pbuf);
    }
    return fd;
}
