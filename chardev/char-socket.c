/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Listening socket back-end (unix:PATH and tcp:HOST:PORT, server=on).
 * One client at a time: while one is connected the listening socket is
 * not polled, so the next client waits in the backlog until this one
 * leaves. Output with no client is dropped.
 */
#include "qemu/osdep.h"
#include "qemu/sockets.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <glib-unix.h>

#include "chardev/char.h"
#include "chardev/char-internal.h"

typedef struct SocketState {
    bool is_unix;
    char *path;                 /* unix: unlinked at close */
    int listen_fd;
    guint listen_watch;
    int client_fd;              /* -1: nobody connected */
    guint client_watch;
    CharOut *out;
} SocketState;

static gboolean socket_accept_cb(gint fd, GIOCondition cond, gpointer opaque);

static void socket_listen_watch(Chardev *chr)
{
    SocketState *s = chr->be_opaque;

    if (!s->listen_watch && s->listen_fd >= 0) {
        s->listen_watch = g_unix_fd_add(s->listen_fd, G_IO_IN, socket_accept_cb, chr);
    }
}

static void socket_disconnect(Chardev *chr)
{
    SocketState *s = chr->be_opaque;

    if (s->client_fd < 0) {
        return;
    }
    if (s->client_watch) {
        g_source_remove(s->client_watch);
        s->client_watch = 0;
    }
    /* Unblock a writer stuck on a client that stopped reading. */
    shutdown(s->client_fd, SHUT_RDWR);
    char_out_set_fd(s->out, -1);
    close(s->client_fd);
    s->client_fd = -1;
    chardev_be_event(chr, false);
}

static gboolean socket_client_cb(gint fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    SocketState *s = chr->be_opaque;
    uint8_t buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        s->client_watch = 0;    /* removed by returning G_SOURCE_REMOVE */
        socket_disconnect(chr);
        socket_listen_watch(chr);
        return G_SOURCE_REMOVE;
    }
    chardev_be_deliver(chr, buf, n);
    return G_SOURCE_CONTINUE;
}

static void socket_set_client(Chardev *chr, int fd)
{
    SocketState *s = chr->be_opaque;

    s->client_fd = fd;
    char_out_set_fd(s->out, fd);
    s->client_watch = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                    socket_client_cb, chr);
    chardev_be_event(chr, true);
}

static gboolean socket_accept_cb(gint fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    SocketState *s = chr->be_opaque;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    if (cfd < 0) {
        return G_SOURCE_CONTINUE;   /* EAGAIN, ECONNABORTED...: wait for the next */
    }
    /* Stop accepting until this client leaves. */
    s->listen_watch = 0;
    socket_set_client(chr, cfd);
    return G_SOURCE_REMOVE;
}

static void socket_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    SocketState *s = chr->be_opaque;

    char_out_write(s->out, buf, len);
}

static bool socket_drain(Chardev *chr, int timeout_ms)
{
    SocketState *s = chr->be_opaque;

    return char_out_drain(s->out, timeout_ms);
}

static void socket_close(Chardev *chr)
{
    SocketState *s = chr->be_opaque;

    if (s->listen_watch) {
        g_source_remove(s->listen_watch);
    }
    if (s->client_fd >= 0) {
        char_out_drain(s->out, 500);
    }
    socket_disconnect(chr);
    char_out_free(s->out);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    if (s->is_unix && s->path) {
        unlink(s->path);
    }
    g_free(s->path);
    g_free(s);
}

static const ChardevOps socket_ops = {
    .name = "socket",
    .write = socket_write,
    .drain = socket_drain,
    .close = socket_close,
};

Chardev *chardev_socket_new(const char *id, bool is_unix, const char *path,
                            const char *host, const char *port, bool wait,
                            GError **errp)
{
    g_autofree char *label = is_unix ? g_strdup_printf("unix:%s", path)
                                     : g_strdup_printf("tcp:%s:%s", host ? host : "", port);
    int fd = is_unix ? gw_listen_unix(path, 4, errp)
                     : gw_listen_tcp(host, port, 4, NULL, NULL, errp);
    SocketState *s;
    Chardev *chr;

    if (fd < 0) {
        return NULL;
    }
    s = g_new0(SocketState, 1);
    s->is_unix = is_unix;
    s->path = g_strdup(path);
    s->listen_fd = fd;
    s->client_fd = -1;
    s->out = char_out_new(-1, true, 0);
    chr = chardev_alloc(&socket_ops, id, label);
    chr->be_opaque = s;

    if (wait) {
        /* wait=on: like QEMU, do not go on until the first client is here. */
        int flags = fcntl(fd, F_GETFL);
        int cfd;

        fprintf(stderr, "godwit: waiting for connection on: %s,server=on\n", label);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        do {
            cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        } while (cfd < 0 && errno == EINTR);
        fcntl(fd, F_SETFL, flags);
        if (cfd >= 0) {
            socket_set_client(chr, cfd);
            return chr;
        }
    }
    socket_listen_watch(chr);
    return chr;
}
