/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The buffered migration stream (QEMU's QEMUFile role): typed big-endian
 * put/get over a channel or a memory buffer, a first-error latch, byte
 * counters, and zero-copy page sends. Wire layout: docs/devel/migration/stream.md.
 */
#ifndef GODWIT_MIGRATION_STREAM_H
#define GODWIT_MIGRATION_STREAM_H

#include "qemu/osdep.h"
#include "io/channel.h"

/*
 * A MigStream is either a writer or a reader, over a channel or memory.
 * One thread uses a stream at a time; only stream_shutdown() may be called
 * from another thread.
 *
 * Error latch: the first failure (I/O error, EOF, bound exceeded, or one
 * set by a caller with stream_set_error) is kept; after it every put is
 * dropped and every get returns zeros. Callers therefore check
 * stream_check() at record boundaries instead of after every call.
 */
typedef struct MigStream MigStream;

/* Longest span stream_get_ptr() can return (also the read buffer size). */
#define STREAM_BUF_SIZE (256 * 1024)
/* Longest counted string: its length is one byte. */
#define STREAM_MAX_CSTR 255

/* Writer/reader over @ch (the stream takes a reference). */
MigStream *stream_new_writer(QIOChannel *ch);
MigStream *stream_new_reader(QIOChannel *ch);
/* Writer that appends to memory (the postcopy package). */
MigStream *stream_new_mem_writer(void);
/*
 * Reader over @len bytes at @buf. With @owned the stream g_free()s @buf
 * when freed; otherwise @buf must outlive the stream.
 */
MigStream *stream_new_mem_reader(const uint8_t *buf, size_t len, bool owned);

/*
 * Free the stream (does not flush: call stream_flush first). Drops the
 * channel reference; the last reference closes the fd.
 */
void stream_free(MigStream *s);

/* The channel (NULL for memory streams); borrowed. */
QIOChannel *stream_channel(MigStream *s);

/* --- error latch --- */

/* True once an error is latched. */
bool stream_has_error(MigStream *s);
/* The latched error (borrowed) or NULL. */
const GError *stream_get_error(MigStream *s);
/* Latch @err (takes ownership) unless an error is already latched. */
void stream_set_error(MigStream *s, GError *err);
/* Latch a formatted GenericError unless one is latched. */
void stream_set_error_msg(MigStream *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/*
 * Return true if no error is latched; otherwise copy it into @errp (if
 * non-NULL) and return false.
 */
bool stream_check(MigStream *s, GError **errp);

/*
 * Interrupt the stream from any thread: shuts the channel down so a
 * blocked read/write returns, and the stream latches an error.
 */
void stream_shutdown(MigStream *s);

/* --- writing --- */

void stream_put_u8(MigStream *s, uint8_t v);
void stream_put_be16(MigStream *s, uint16_t v);
void stream_put_be32(MigStream *s, uint32_t v);
void stream_put_be64(MigStream *s, uint64_t v);
void stream_put_buffer(MigStream *s, const void *buf, size_t len);
/* u8 length + bytes (no NUL). Latches an error if longer than 255. */
void stream_put_cstr(MigStream *s, const char *str);
/*
 * Queue @len bytes at @buf without copying them (a guest page). The memory
 * must stay mapped until the next flush; its content is read at flush time
 * (precopy's dirty tracking makes a late change harmless). Memory writers
 * copy.
 */
void stream_put_page(MigStream *s, const void *buf, size_t len);
/*
 * Push everything queued to the channel. Returns false (and latches) on
 * error. A writer also flushes by itself whenever its queue is full.
 */
bool stream_flush(MigStream *s, GError **errp);

/* Memory writer: the bytes written so far (borrowed) and their count. */
const uint8_t *stream_mem_data(MigStream *s, size_t *len);

/* --- reading --- */

uint8_t stream_get_u8(MigStream *s);
uint16_t stream_get_be16(MigStream *s);
uint32_t stream_get_be32(MigStream *s);
uint64_t stream_get_be64(MigStream *s);
/* Read exactly @len bytes into @buf (zeroed on error). Large reads bypass the buffer. */
void stream_get_buffer(MigStream *s, void *buf, size_t len);
/*
 * Zero-copy read: a pointer to the next @len bytes inside the stream's
 * buffer, valid until the next get. @len must be <= STREAM_BUF_SIZE.
 * Returns NULL (error latched) on failure.
 */
const uint8_t *stream_get_ptr(MigStream *s, size_t len);
/*
 * Read a counted string into @out (NUL-terminated, at least
 * STREAM_MAX_CSTR + 1 bytes). Returns false on error (out = "").
 */
bool stream_get_cstr(MigStream *s, char *out);
/*
 * Read @len bytes into a new allocation, growing it as data arrives so a
 * hostile length cannot make us allocate more than was actually sent
 * (beyond one chunk). The caller bounds @len first. NULL on error.
 */
uint8_t *stream_get_alloc(MigStream *s, size_t len);
/* Skip @len bytes. */
void stream_skip(MigStream *s, size_t len);
/*
 * Peek whether the reader is at a clean end of input (no buffered bytes
 * and the channel / memory says EOF). May block to find out. Does not
 * latch an error for EOF.
 */
bool stream_at_eof(MigStream *s);

/* --- accounting --- */

/*
 * Bytes put (writer: including ones still queued) or got (reader) since
 * creation. Monotonic; the caller derives bandwidth and rate-limit windows
 * from differences of it.
 */
uint64_t stream_bytes(MigStream *s);
/* Writer: bytes queued but not yet handed to the channel. */
size_t stream_pending(MigStream *s);

#endif
