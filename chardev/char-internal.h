/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Private to chardev/: the Chardev structure, the back-end operations and
 * the helpers back-ends share (the output queue, input delivery). Unit
 * tests include it to drive a mux with a memory back-end.
 */
#ifndef GODWIT_CHAR_INTERNAL_H
#define GODWIT_CHAR_INTERNAL_H

#include "qemu/osdep.h"
#include "chardev/char.h"

typedef struct CharMux CharMux;
typedef struct CharOut CharOut;

typedef struct ChardevOps {
    const char *name;
    /* Queue @buf for output; any thread; must not block. NULL drops. */
    void (*write)(Chardev *chr, const uint8_t *buf, size_t len);
    /* Wait up to @timeout_ms until queued output is written; optional. */
    bool (*drain)(Chardev *chr, int timeout_ms);
    /* A front-end attached (main thread); optional. */
    void (*attached)(Chardev *chr);
    /* Release back-end resources (main thread, from chardev_cleanup_all). */
    void (*close)(Chardev *chr);
} ChardevOps;

struct Chardev {
    const ChardevOps *ops;
    char *id;                   /* -chardev id, or NULL */
    char *label;                /* for messages: "stdio", "unix:/p", ... */
    void *be_opaque;            /* back-end private state */

    /* Front-end: set and used on the main thread only. */
    ChardevReadFn fe_read;
    ChardevEventFn fe_event;
    void *fe_opaque;
    bool fe_is_monitor;
    bool fe_claimed;            /* handed out by "chardev:ID" already */

    /* Back-end: a client is connected (sockets; always false otherwise). */
    bool be_connected;

    /* A back-end shared by several front-ends owns a mux... */
    CharMux *mux;
    /* ...and each front-end handle of that mux points back to it. */
    CharMux *mux_parent;
    unsigned mux_slot;
};

/* Allocate and register a Chardev (id may be NULL). */
Chardev *chardev_alloc(const ChardevOps *ops, const char *id, const char *label);

/*
 * Hand input that a back-end read on the main loop to its front-end (through
 * the mux when there is one). Takes the BQL unless this thread holds it.
 */
void chardev_be_deliver(Chardev *be, const uint8_t *buf, size_t len);
/* Report (dis)connection of a socket back-end to its front-end(s). */
void chardev_be_event(Chardev *be, bool connected);

/*
 * Output queue: a bounded buffer drained by a writer thread, so that a
 * vCPU writing a byte never waits for a terminal, file or slow client.
 * When the buffer is full, new bytes are dropped (and counted).
 */
#define CHAR_OUT_DEFAULT_CAP (64 * 1024)

CharOut *char_out_new(int fd, bool is_socket, size_t cap);
void char_out_write(CharOut *out, const uint8_t *buf, size_t len);
/*
 * Change the fd (-1: none; output is then dropped). Waits until a write in
 * progress on the old fd has finished, so the caller may close it after.
 */
void char_out_set_fd(CharOut *out, int fd);
/* Wait (up to @timeout_ms) until everything queued has been written. */
bool char_out_drain(CharOut *out, int timeout_ms);
uint64_t char_out_dropped(CharOut *out);
/* Drain briefly, stop the writer thread and free; does not close the fd. */
void char_out_free(CharOut *out);

/* Back-end constructors (chardev/char-*.c). */
Chardev *chardev_stdio_get(bool force_mux, bool signals, GError **errp);
Chardev *chardev_file_new(const char *id, const char *path, GError **errp);
Chardev *chardev_socket_new(const char *id, bool is_unix, const char *path,
                            const char *host, const char *port, bool wait,
                            GError **errp);

/*
 * Memory back-end for tests: output is appended to a string, input is
 * injected with chardev_be_deliver().
 */
Chardev *chardev_memory_new(const char *id);
/* Return and clear what was written so far (caller frees). */
char *chardev_memory_take(Chardev *chr);

/* Mux (chardev/char-mux.c). */
#define MUX_ESCAPE_CHAR 0x01    /* C-a */
#define MUX_MAX_FRONTENDS 4
#define MUX_HELD_CAP (64 * 1024)

/* Put a mux on back-end @be (idempotent); @force enables escapes now. */
CharMux *char_mux_attach(Chardev *be, bool force);
/* New front-end handle on @be's mux, or NULL with @errp set when full. */
Chardev *char_mux_new_frontend(Chardev *be, GError **errp);
/* Make @fe (a front-end handle or the back-end itself) one of the slots. */
void char_mux_add_frontend(CharMux *mux, Chardev *fe);
/* @fe got handlers: maybe give it the initial focus. Main thread. */
void char_mux_frontend_attached(CharMux *mux, Chardev *fe);
Chardev *char_mux_backend(CharMux *mux);
/* Output from front-end @fe: shown if it has the focus, else held. */
void char_mux_fe_write(CharMux *mux, Chardev *fe, const uint8_t *buf, size_t len);
/* Back-end input through the escape processor. Main thread, BQL held. */
void char_mux_input(CharMux *mux, const uint8_t *buf, size_t len);
void char_mux_event(CharMux *mux, bool connected);
/* Index of the front-end that has the focus, or -1. */
int char_mux_focus(CharMux *mux);
bool char_mux_escapes_enabled(CharMux *mux);
void char_mux_free(CharMux *mux);

#endif
