/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Character devices: the byte streams behind -serial, -monitor and -chardev.
 * Back-ends: stdio, file:PATH, unix:PATH,server=on,wait=off (one client at a
 * time), tcp:HOST:PORT,server=on,wait=off, null, and "mux" (stdio shared by
 * the serial port and the HMP monitor under -nographic, switched with C-a c).
 *
 * Input is delivered on the main loop to the front-end's handler with the
 * BQL held. Output may be written from any thread (a vCPU thread emulating
 * the UART); it never blocks for long: with no client connected, output is
 * dropped, and a slow client loses bytes rather than stall a vCPU.
 */
#ifndef GODWIT_CHAR_H
#define GODWIT_CHAR_H

#include "qemu/osdep.h"

typedef struct Chardev Chardev;

typedef void (*ChardevReadFn)(void *opaque, const uint8_t *buf, size_t len);
/* Connected (true) / disconnected (false) for socket back-ends. */
typedef void (*ChardevEventFn)(void *opaque, bool connected);

/*
 * Create from a QEMU-style -serial / -monitor spec ("stdio", "file:P",
 * "unix:P,server=on,wait=off", "tcp:H:P,server=on,wait=off", "null", "none"
 * -> NULL with no error, "chardev:ID") or from -chardev options
 * ("socket,id=X,path=P,server=on,wait=off", "file,id=X,path=P", "stdio,id=X").
 * QEMU's old "server,nowait" spelling is accepted; wait=on (the default for
 * a server) blocks until the first client connects. Client sockets are not
 * supported.
 *
 * Sharing: "stdio" is one back-end per process; every "stdio" spec (and
 * every "chardev:ID" of a stdio or mux=on chardev) returns a new front-end
 * handle on its mux, so -serial and -monitor get one each. C-a escapes are
 * active once two front-ends are attached, or from the start with the
 * "mon:" prefix ("mon:stdio": the caller attaches the monitor itself) or
 * mux=on. A "chardev:ID" of a non-mux chardev returns that chardev, once.
 * Errors: "chardev: unknown backend 'foo'", "chardev 'x' not found", ...
 */
Chardev *chardev_new_from_spec(const char *spec, GError **errp);
Chardev *chardev_new_from_opts(const char *opts, GError **errp);
Chardev *chardev_lookup(const char *id);

/*
 * A front-end attaches with this. For the stdio mux, each front-end that
 * attaches gets its own focus slot; C-a c cycles between them.
 */
void chardev_set_handlers(Chardev *chr, ChardevReadFn read, ChardevEventFn event,
                          void *opaque);
/* Write all of @buf, or drop it when nobody listens. Any thread. */
void chardev_write(Chardev *chr, const void *buf, size_t len);
void chardev_printf(Chardev *chr, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * Mark @chr's front-end as a monitor before attaching. On a mux the initial
 * focus then goes to the other front-end (the guest serial), as with
 * QEMU's -nographic.
 */
void chardev_set_frontend_is_monitor(Chardev *chr, bool on);
/* True for a handle that shares its back-end with other front-ends. */
bool chardev_is_mux_frontend(Chardev *chr);
/* Short description for messages ("stdio", "unix:/tmp/m.sock", ...). */
const char *chardev_label(Chardev *chr);

/*
 * Wait until the output every chardev has queued so far is written (at
 * most @timeout_ms for all of them together). After a VM stop this makes
 * the files and terminals hold everything the guest wrote before the stop,
 * as QEMU's synchronous writes do. Any thread; the chardev list is only
 * changed at startup and exit.
 */
void chardev_drain_all(int timeout_ms);

/*
 * Close every chardev (restores the terminal for stdio; queued output is
 * flushed for up to 2 s per chardev). Main thread, at exit, after
 * hmp_monitor_cleanup_all().
 */
void chardev_cleanup_all(void);

#endif
