/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Migration URIs to channels: picks the transport by scheme for the
 * outgoing connect and the incoming listen/accept (see transport.h).
 */
#include "qemu/osdep.h"

#include "migration/transport.h"

#define BAD_URI "Parameter 'uri' expects a valid migration protocol"

struct MigrationListener {
    enum { LISTEN_SOCKET, LISTEN_READY } kind;
    int lfd;                /* LISTEN_SOCKET */
    QIOChannel *ready;      /* LISTEN_READY: handed out once */
    char *uri;              /* actual address */
    char *unix_path;        /* to unlink on free */
    int port;
};

static bool has_prefix(const char *uri, const char *scheme, const char **rest)
{
    size_t n = strlen(scheme);

    if (strncmp(uri, scheme, n)) {
        return false;
    }
    *rest = uri + n;
    return true;
}

QIOChannel *migration_connect(const char *uri, QIOCancel *cancel,
                              GError **errp)
{
    const char *rest;
    int fd;

    if (has_prefix(uri, "tcp:", &rest)) {
        fd = socket_connect_tcp(rest, cancel, errp);
        return fd < 0 ? NULL : qio_channel_new_fd(fd, QIO_CHANNEL_SOCKET,
                                                  uri, cancel);
    }
    if (has_prefix(uri, "unix:", &rest)) {
        if (!rest[0]) {
            error_setg(errp, BAD_URI);
            return NULL;
        }
        fd = socket_connect_unix(rest, cancel, errp);
        return fd < 0 ? NULL : qio_channel_new_fd(fd, QIO_CHANNEL_SOCKET,
                                                  uri, cancel);
    }
    if (has_prefix(uri, "fd:", &rest)) {
        fd = fd_transport_take(rest, errp);
        return fd < 0 ? NULL : qio_channel_new_fd(fd, fd_transport_kind(fd),
                                                  uri, cancel);
    }
    if (has_prefix(uri, "exec:", &rest)) {
        return exec_transport_spawn(rest, cancel, errp);
    }
    if (has_prefix(uri, "file:", &rest)) {
        return file_transport_open(rest, true, cancel, errp);
    }
    error_setg(errp, BAD_URI);
    return NULL;
}

MigrationListener *migration_listen(const char *uri, GError **errp)
{
    MigrationListener *l = g_new0(MigrationListener, 1);
    const char *rest;

    l->lfd = -1;
    l->port = -1;
    if (has_prefix(uri, "tcp:", &rest)) {
        char *actual = NULL;
        l->kind = LISTEN_SOCKET;
        l->lfd = socket_listen_tcp(rest, &actual, &l->port, errp);
        if (l->lfd >= 0) {
            l->uri = g_strdup_printf("tcp:%s", actual);
            g_free(actual);
        }
    } else if (has_prefix(uri, "unix:", &rest)) {
        l->kind = LISTEN_SOCKET;
        if (!rest[0]) {
            error_setg(errp, BAD_URI);
        } else {
            l->lfd = socket_listen_unix(rest, errp);
        }
        if (l->lfd >= 0) {
            l->uri = g_strdup(uri);
            l->unix_path = g_strdup(rest);
        }
    } else {
        l->kind = LISTEN_READY;
        if (has_prefix(uri, "fd:", &rest)) {
            int fd = fd_transport_take(rest, errp);
            if (fd >= 0) {
                l->ready = qio_channel_new_fd(fd, fd_transport_kind(fd), uri,
                                              NULL);
            }
        } else if (has_prefix(uri, "exec:", &rest)) {
            l->ready = exec_transport_spawn(rest, NULL, errp);
        } else if (has_prefix(uri, "file:", &rest)) {
            l->ready = file_transport_open(rest, false, NULL, errp);
        } else {
            error_setg(errp, BAD_URI);
        }
        if (l->ready) {
            l->uri = g_strdup(uri);
        }
    }
    if (!l->uri) {
        migration_listener_free(l);
        return NULL;
    }
    return l;
}

QIOChannel *migration_listener_accept(MigrationListener *l, QIOCancel *cancel,
                                      GError **errp)
{
    if (l->kind == LISTEN_READY) {
        if (!l->ready) {
            error_setg(errp, "Migration source '%s' was already accepted",
                       l->uri);
            return NULL;
        }
        if (qio_cancel_is_set(cancel)) {
            error_setg(errp, "Waiting for the migration connection cancelled");
            return NULL;
        }
        /* Opened at listen time; from now on the caller's token rules it. */
        if (cancel) {
            qio_channel_set_cancel(l->ready, cancel);
        }
        return g_steal_pointer(&l->ready);
    }
    int fd = socket_accept(l->lfd, cancel, errp);
    if (fd < 0) {
        return NULL;
    }
    return qio_channel_new_fd(fd, QIO_CHANNEL_SOCKET, l->uri, cancel);
}

const char *migration_listener_uri(MigrationListener *l)
{
    return l->uri;
}

int migration_listener_port(MigrationListener *l)
{
    return l->port;
}

int migration_listener_fd(MigrationListener *l)
{
    return l->lfd;
}

void migration_listener_free(MigrationListener *l)
{
    if (!l) {
        return;
    }
    if (l->lfd >= 0) {
        close(l->lfd);
    }
    if (l->unix_path) {
        unlink(l->unix_path);
    }
    qio_channel_unref(l->ready);
    g_free(l->unix_path);
    g_free(l->uri);
    g_free(l);
}
