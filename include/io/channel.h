/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small byte channel over file descriptors (socket, pipe pair, file):
 * blocking full-read/full-write helpers that a canceller on another thread
 * can interrupt. The migration stream (migration/stream.c) sits on top.
 */
#ifndef GODWIT_IO_CHANNEL_H
#define GODWIT_IO_CHANNEL_H

#include "qemu/osdep.h"
#include <sys/uio.h>

/*
 * QIOCancel: a one-shot "stop waiting" token (an eventfd). Every blocking
 * wait in this layer (connect, accept, read, write) polls it next to the
 * fd, so triggering it from any thread makes those calls fail promptly with
 * "... cancelled". Refcounted so that a connect and the channel it produces
 * can share one token (no window where a cancel is lost).
 */
typedef struct QIOCancel QIOCancel;

QIOCancel *qio_cancel_new(void);
QIOCancel *qio_cancel_ref(QIOCancel *c);
void qio_cancel_unref(QIOCancel *c);
/* Thread-safe, idempotent, async-signal-safe apart from the first call. */
void qio_cancel_trigger(QIOCancel *c);
bool qio_cancel_is_set(QIOCancel *c);
/* The eventfd to poll for POLLIN; readable once triggered. */
int qio_cancel_fd(QIOCancel *c);

/*
 * Wait until @fd is ready for @events (POLLIN/POLLOUT) or @c is triggered.
 * @c may be NULL. Returns true when ready; false with @errp set (naming
 * @what) when cancelled or poll fails.
 */
bool qio_wait_fd(int fd, short events, QIOCancel *c, const char *what,
                 GError **errp);

typedef enum QIOChannelKind {
    QIO_CHANNEL_SOCKET,   /* one fd, both directions, shutdown(2) works */
    QIO_CHANNEL_PIPE,     /* rfd and/or wfd (pipes, a child's stdio) */
    QIO_CHANNEL_FILE,     /* regular file: one fd, one direction in practice */
} QIOChannelKind;

typedef enum QIOChannelShutdown {
    QIO_CHANNEL_SHUTDOWN_READ = 1,
    QIO_CHANNEL_SHUTDOWN_WRITE = 2,
    QIO_CHANNEL_SHUTDOWN_BOTH = 3,
} QIOChannelShutdown;

/*
 * A channel. Refcounted: the migration stream and the return path use the
 * same socket from two threads (one reads, one writes), which is safe; two
 * threads must not read (or write) the same channel at once.
 */
typedef struct QIOChannel QIOChannel;

/*
 * Wrap @fd (takes ownership). Sockets/pipes are switched to O_NONBLOCK so
 * that every wait goes through poll() with the cancel token; callers still
 * see blocking semantics. @cancel may be NULL (a private token is made);
 * the channel takes its own reference. @name is for error messages.
 */
QIOChannel *qio_channel_new_fd(int fd, QIOChannelKind kind, const char *name,
                               QIOCancel *cancel);
/*
 * Wrap a read fd and a write fd (either may be -1), e.g. a child's stdout
 * and stdin. Takes ownership of both. @child_pid, if > 0, is reaped on close.
 */
QIOChannel *qio_channel_new_pipes(int rfd, int wfd, GPid child_pid,
                                  const char *name, QIOCancel *cancel);

QIOChannel *qio_channel_ref(QIOChannel *ch);
/* Drops a reference; the last one closes the fds (and reaps a child). */
void qio_channel_unref(QIOChannel *ch);

const char *qio_channel_name(QIOChannel *ch);
QIOChannelKind qio_channel_kind(QIOChannel *ch);
/* The read / write fds (-1 if that direction does not exist). */
int qio_channel_rfd(QIOChannel *ch);
int qio_channel_wfd(QIOChannel *ch);
QIOCancel *qio_channel_cancel(QIOChannel *ch);
/*
 * Replace the channel's cancel token (takes a reference on @cancel). Only
 * while a single thread knows the channel, e.g. when handing a channel
 * that was opened early (exec:, fd:) to the thread that will use it.
 */
void qio_channel_set_cancel(QIOChannel *ch, QIOCancel *cancel);

/*
 * Read up to @len bytes, waiting until at least one is available.
 * Returns the count, 0 at end of file, -1 with @errp set on error or cancel.
 */
ssize_t qio_channel_read(QIOChannel *ch, void *buf, size_t len, GError **errp);

/*
 * Read exactly @len bytes. Returns 1 on success, 0 if end of file came
 * before the first byte (clean EOF), -1 with @errp set otherwise
 * (including EOF in the middle).
 */
int qio_channel_read_all_eof(QIOChannel *ch, void *buf, size_t len,
                             GError **errp);
/* Read exactly @len bytes; any EOF is an error. */
bool qio_channel_read_all(QIOChannel *ch, void *buf, size_t len, GError **errp);

/* Write all of @buf / all of @iov (the iovec array may be modified). */
bool qio_channel_write_all(QIOChannel *ch, const void *buf, size_t len,
                           GError **errp);
bool qio_channel_writev_all(QIOChannel *ch, struct iovec *iov, int niov,
                            GError **errp);

/*
 * Interrupt blocked and future I/O. Thread-safe: this is how a cancel from
 * the main thread reaches a migration thread stuck in read/write. For a
 * socket, shutdown(2) in the given direction(s) also tells the peer. The
 * cancel token is triggered for BOTH, and for any direction on non-sockets
 * (pipes have no half-shutdown), so after that every op fails.
 */
void qio_channel_shutdown(QIOChannel *ch, QIOChannelShutdown how);

#endif
