/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Migration transports: turn a URI into a connected channel.
 *   tcp:HOST:PORT   connect; listen (PORT 0 picks a free port, reported back)
 *   unix:PATH       connect; listen
 *   fd:NAME         a descriptor passed with getfd (or a number: inherited)
 *   exec:CMD        /bin/sh -c CMD; the source writes its stdin, the
 *                   destination reads its stdout
 *   file:PATH       write / read a plain file (handy for the analyser)
 * Connect and accept block; call them from a migration thread and pass a
 * QIOCancel to be able to interrupt them from the main thread.
 */
#ifndef GODWIT_MIGRATION_TRANSPORT_H
#define GODWIT_MIGRATION_TRANSPORT_H

#include "qemu/osdep.h"
#include "io/channel.h"

/*
 * Outgoing: connect to @uri. @cancel (may be NULL) interrupts the connect
 * and is shared by the returned channel, so one trigger covers both.
 * Unknown scheme: "Parameter 'uri' expects a valid migration protocol".
 */
QIOChannel *migration_connect(const char *uri, QIOCancel *cancel,
                              GError **errp);

typedef struct MigrationListener MigrationListener;

/*
 * Incoming: start listening on @uri (tcp/unix bind+listen now; exec runs
 * the command now; fd/file open now), so errors surface immediately and
 * the actual address is known before anything connects.
 */
MigrationListener *migration_listen(const char *uri, GError **errp);
/*
 * Wait for the source (blocking; interruptible through @cancel, which the
 * returned channel shares). For fd/exec/file the channel is returned once.
 */
QIOChannel *migration_listener_accept(MigrationListener *l, QIOCancel *cancel,
                                      GError **errp);
/*
 * The address actually listened on, as a URI: "tcp:127.0.0.1:41234" for
 * "tcp:127.0.0.1:0", "unix:/path", or the original URI otherwise.
 */
const char *migration_listener_uri(MigrationListener *l);
/* tcp: the bound port; -1 for other transports. */
int migration_listener_port(MigrationListener *l);
/* The listening socket (to watch from a main loop), or -1. */
int migration_listener_fd(MigrationListener *l);
/* Close the listener (a unix socket path we created is unlinked). */
void migration_listener_free(MigrationListener *l);

/* --- per-transport helpers used by channel.c (and tests) --- */

/* socket.c: each returns a connected/listening fd, or -1 with @errp set. */
int socket_connect_tcp(const char *hostport, QIOCancel *cancel, GError **errp);
int socket_connect_unix(const char *path, QIOCancel *cancel, GError **errp);
/* @actual gets "HOST:PORT" with the bound port, @port the port number. */
int socket_listen_tcp(const char *hostport, char **actual, int *port,
                      GError **errp);
int socket_listen_unix(const char *path, GError **errp);
int socket_accept(int lfd, QIOCancel *cancel, GError **errp);

/* fd.c: the descriptor called @name (taken from the monitor, or a number). */
int fd_transport_take(const char *name, GError **errp);
/* The channel kind matching what @fd is (socket, regular file, pipe). */
QIOChannelKind fd_transport_kind(int fd);

/* exec.c: run @cmd under /bin/sh -c with its stdin and stdout piped to us. */
QIOChannel *exec_transport_spawn(const char *cmd, QIOCancel *cancel,
                                 GError **errp);

/* file.c: open @path for writing (truncate) or reading. */
QIOChannel *file_transport_open(const char *path, bool writing,
                                QIOCancel *cancel, GError **errp);

#endif
