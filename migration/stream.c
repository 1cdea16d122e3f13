/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Buffered migration stream. Writers gather small items in a buffer and
 * guest pages by reference into an iovec list, so a page costs one writev
 * slot and no copy; readers fill a large buffer and hand big spans straight
 * to the caller's memory. See migration/stream.h for the contract.
 */
#include "qemu/osdep.h"

#include <sys/uio.h>

#include "migration/stream.h"
#include "qemu/byteorder.h"

/* Small items are copied into a buffer of this size. */
#define WBUF_SIZE (64 * 1024)
/* iovec slots per writev: each page costs up to two (header run + page). */
#define WIOV_MAX 256
/* Hand data to the kernel once this much is queued (keeps the pipe busy). */
#define WFLUSH_THRESHOLD (512 * 1024)
/* Reads at least this big skip the buffer and land in the caller's memory. */
#define RDIRECT_MIN (64 * 1024)

typedef enum StreamKind {
    STREAM_CHANNEL_WRITER,
    STREAM_CHANNEL_READER,
    STREAM_MEM_WRITER,
    STREAM_MEM_READER,
} StreamKind;

struct MigStream {
    StreamKind kind;
    QIOChannel *ch;
    GError *err;
    uint64_t bytes;

    /* channel writer */
    uint8_t *wbuf;
    size_t wused;          /* bytes in wbuf */
    size_t wseg;           /* start of the wbuf run not yet in wiov */
    struct iovec *wiov;
    int wniov;
    size_t wqueued;        /* bytes referenced by wiov + the open run */

    /* memory writer */
    GByteArray *mem;

    /* readers (channel: rbuf is ours; memory: rbuf is the input) */
    uint8_t *rbuf;
    size_t rpos;
    size_t rend;
    bool rowned;
};

static MigStream *stream_alloc(StreamKind kind, QIOChannel *ch)
{
    MigStream *s = g_new0(MigStream, 1);

    s->kind = kind;
    s->ch = ch ? qio_channel_ref(ch) : NULL;
    return s;
}

MigStream *stream_new_writer(QIOChannel *ch)
{
    MigStream *s = stream_alloc(STREAM_CHANNEL_WRITER, ch);

    s->wbuf = g_malloc(WBUF_SIZE);
    s->wiov = g_new(struct iovec, WIOV_MAX);
    return s;
}

MigStream *stream_new_reader(QIOChannel *ch)
{
    MigStream *s = stream_alloc(STREAM_CHANNEL_READER, ch);

    s->rbuf = g_malloc(STREAM_BUF_SIZE);
    s->rowned = true;
    return s;
}

MigStream *stream_new_mem_writer(void)
{
    MigStream *s = stream_alloc(STREAM_MEM_WRITER, NULL);

    s->mem = g_byte_array_new();
    return s;
}

MigStream *stream_new_mem_reader(const uint8_t *buf, size_t len, bool owned)
{
    MigStream *s = stream_alloc(STREAM_MEM_READER, NULL);

    s->rbuf = (uint8_t *)buf;
    s->rend = len;
    s->rowned = owned;
    return s;
}

void stream_free(MigStream *s)
{
    if (!s) {
        return;
    }
    if (s->rowned) {
        g_free(s->rbuf);
    }
    g_free(s->wbuf);
    g_free(s->wiov);
    if (s->mem) {
        g_byte_array_unref(s->mem);
    }
    if (s->err) {
        g_error_free(s->err);
    }
    qio_channel_unref(s->ch);
    g_free(s);
}

QIOChannel *stream_channel(MigStream *s)
{
    return s->ch;
}

/* --- error latch --- */

bool stream_has_error(MigStream *s)
{
    return s->err != NULL;
}

const GError *stream_get_error(MigStream *s)
{
    return s->err;
}

void stream_set_error(MigStream *s, GError *err)
{
    if (s->err) {
        g_error_free(err);
        return;
    }
    s->err = err;
}

void stream_set_error_msg(MigStream *s, const char *fmt, ...)
{
    va_list ap;

    if (s->err) {
        return;
    }
    va_start(ap, fmt);
    s->err = g_error_new_valist(GW_ERROR, ERROR_CLASS_GENERIC_ERROR, fmt, ap);
    va_end(ap);
}

bool stream_check(MigStream *s, GError **errp)
{
    if (!s->err) {
        return true;
    }
    if (errp) {
        g_propagate_error(errp, g_error_copy(s->err));
    }
    return false;
}

void stream_shutdown(MigStream *s)
{
    if (s->ch) {
        qio_channel_shutdown(s->ch, QIO_CHANNEL_SHUTDOWN_BOTH);
    }
}

/* --- writing --- */

static void wclose_run(MigStream *s)
{
    if (s->wused > s->wseg) {
        s->wiov[s->wniov].iov_base = s->wbuf + s->wseg;
        s->wiov[s->wniov].iov_len = s->wused - s->wseg;
        s->wniov++;
        s->wseg = s->wused;
    }
}

bool stream_flush(MigStream *s, GError **errp)
{
    if (s->kind == STREAM_CHANNEL_WRITER && !s->err) {
        GError *err = NULL;

        wclose_run(s);
        if (s->wniov &&
            !qio_channel_writev_all(s->ch, s->wiov, s->wniov, &err)) {
            stream_set_error(s, err);
        }
        s->wused = s->wseg = 0;
        s->wniov = 0;
        s->wqueued = 0;
    }
    return stream_check(s, errp);
}

static void wmaybe_flush(MigStream *s)
{
    if (s->wqueued >= WFLUSH_THRESHOLD || s->wniov >= WIOV_MAX - 2) {
        stream_flush(s, NULL);
    }
}

void stream_put_buffer(MigStream *s, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    if (s->err) {
        return;
    }
    s->bytes += len;
    if (s->kind == STREAM_MEM_WRITER) {
        g_byte_array_append(s->mem, p, len);
        return;
    }
    g_assert(s->kind == STREAM_CHANNEL_WRITER);
    while (len && !s->err) {
        if (s->wused == WBUF_SIZE) {
            stream_flush(s, NULL);
            continue;
        }
        size_t n = MIN(len, WBUF_SIZE - s->wused);
        memcpy(s->wbuf + s->wused, p, n);
        s->wused += n;
        s->wqueued += n;
        p += n;
        len -= n;
    }
    wmaybe_flush(s);
}

void stream_put_u8(MigStream *s, uint8_t v)
{
    /* The common tiny case without the generic loop. */
    if (s->kind == STREAM_CHANNEL_WRITER && !s->err && s->wused < WBUF_SIZE) {
        s->wbuf[s->wused++] = v;
        s->wqueued++;
        s->bytes++;
        return;
    }
    stream_put_buffer(s, &v, 1);
}

void stream_put_be16(MigStream *s, uint16_t v)
{
    uint8_t be[2];

    be16_store(be, v);
    stream_put_buffer(s, be, sizeof(be));
}

void stream_put_be32(MigStream *s, uint32_t v)
{
    uint8_t be[4];

    be32_store(be, v);
    stream_put_buffer(s, be, sizeof(be));
}

void stream_put_be64(MigStream *s, uint64_t v)
{
    uint8_t be[8];

    be64_store(be, v);
    stream_put_buffer(s, be, sizeof(be));
}

void stream_put_cstr(MigStream *s, const char *str)
{
    size_t len = strlen(str);

    if (len > STREAM_MAX_CSTR) {
        stream_set_error_msg(s, "String '%.32s...' is too long for the "
                             "migration stream (%zu bytes, max %d)",
                             str, len, STREAM_MAX_CSTR);
        return;
    }
    stream_put_u8(s, len);
    stream_put_buffer(s, str, len);
}

void stream_put_page(MigStream *s, const void *buf, size_t len)
{
    if (s->err) {
        return;
    }
    if (s->kind != STREAM_CHANNEL_WRITER) {
        stream_put_buffer(s, buf, len);
        return;
    }
    wclose_run(s);
    s->wiov[s->wniov].iov_base = (void *)buf;
    s->wiov[s->wniov].iov_len = len;
    s->wniov++;
    s->wqueued += len;
    s->bytes += len;
    wmaybe_flush(s);
}

const uint8_t *stream_mem_data(MigStream *s, size_t *len)
{
    g_assert(s->kind == STREAM_MEM_WRITER);
    *len = s->mem->len;
    return s->mem->data;
}

/* --- reading --- */

static void set_eof_error(MigStream *s)
{
    stream_set_error_msg(s, "Unexpected end of migration stream");
}

/*
 * One read into the free tail of the buffer. Returns bytes added, 0 at
 * EOF, -1 on error (latched).
 */
static ssize_t rfill_once(MigStream *s)
{
    GError *err = NULL;

    if (s->kind == STREAM_MEM_READER) {
        return 0;
    }
    if (s->rpos == s->rend) {
        s->rpos = s->rend = 0;
    }
    ssize_t n = qio_channel_read(s->ch, s->rbuf + s->rend,
                                 STREAM_BUF_SIZE - s->rend, &err);
    if (n < 0) {
        stream_set_error(s, err);
        return -1;
    }
    s->rend += n;
    return n;
}

/* Make at least @n (<= STREAM_BUF_SIZE) bytes available at rbuf + rpos. */
static bool rensure(MigStream *s, size_t n)
{
    if (s->err) {
        return false;
    }
    if (s->rend - s->rpos >= n) {
        return true;
    }
    if (s->kind == STREAM_MEM_READER) {
        set_eof_error(s);
        return false;
    }
    if (s->rpos + n > STREAM_BUF_SIZE) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rend - s->rpos);
        s->rend -= s->rpos;
        s->rpos = 0;
    }
    while (s->rend - s->rpos < n) {
        ssize_t r = rfill_once(s);
        if (r < 0) {
            return false;
        }
        if (r == 0) {
            set_eof_error(s);
            return false;
        }
    }
    return true;
}

const uint8_t *stream_get_ptr(MigStream *s, size_t len)
{
    if (len > STREAM_BUF_SIZE) {
        stream_set_error_msg(s, "Stream read of %zu bytes exceeds the "
                             "buffer", len);
        return NULL;
    }
    if (!rensure(s, len)) {
        return NULL;
    }
    const uint8_t *p = s->rbuf + s->rpos;
    s->rpos += len;
    s->bytes += len;
    return p;
}

void stream_get_buffer(MigStream *s, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t left = len;

    while (left && !s->err) {
        size_t have = s->rend - s->rpos;
        if (have) {
            size_t n = MIN(have, left);
            memcpy(p, s->rbuf + s->rpos, n);
            s->rpos += n;
            s->bytes += n;
            p += n;
            left -= n;
            continue;
        }
        if (s->kind == STREAM_MEM_READER) {
            set_eof_error(s);
            break;
        }
        if (left >= RDIRECT_MIN) {
            /* Big span (a run of pages): straight into the destination. */
            GError *err = NULL;
            ssize_t n = qio_channel_read(s->ch, p, left, &err);
            if (n < 0) {
                stream_set_error(s, err);
            } else if (n == 0) {
                set_eof_error(s);
            } else {
                p += n;
                left -= n;
                s->bytes += n;
            }
            continue;
        }
        ssize_t r = rfill_once(s);
        if (r == 0) {
            set_eof_error(s);
        }
    }
    if (s->err) {
        memset(buf, 0, len);
    }
}

uint8_t stream_get_u8(MigStream *s)
{
    if (s->rpos < s->rend && !s->err) {
        s->bytes++;
        return s->rbuf[s->rpos++];
    }
    const uint8_t *p = stream_get_ptr(s, 1);
    return p ? p[0] : 0;
}

uint16_t stream_get_be16(MigStream *s)
{
    const uint8_t *p = stream_get_ptr(s, 2);

    return p ? be16_load(p) : 0;
}

uint32_t stream_get_be32(MigStream *s)
{
    const uint8_t *p = stream_get_ptr(s, 4);

    return p ? be32_load(p) : 0;
}

uint64_t stream_get_be64(MigStream *s)
{
    const uint8_t *p = stream_get_ptr(s, 8);

    return p ? be64_load(p) : 0;
}

bool stream_get_cstr(MigStream *s, char *out)
{
    uint8_t len = stream_get_u8(s);
    const uint8_t *p = stream_get_ptr(s, len);

    if (!p) {
        out[0] = '\0';
        return false;
    }
    if (memchr(p, 0, len)) {
        /* Names are compared as C strings: a NUL would alias another name. */
        stream_set_error_msg(s, "Invalid NUL byte in a string of the "
                             "migration stream");
        out[0] = '\0';
        return false;
    }
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

uint8_t *stream_get_alloc(MigStream *s, size_t len)
{
    const size_t chunk = 1024 * 1024;
    size_t cap = MIN(len, chunk);
    size_t done = 0;
    uint8_t *buf = g_malloc(MAX(cap, 1));

    while (done < len && !s->err) {
        if (done == cap) {
            cap = MIN(len, cap * 2);
            buf = g_realloc(buf, cap);
        }
        size_t n = cap - done;
        stream_get_buffer(s, buf + done, n);
        done += n;
    }
    if (s->err) {
        g_free(buf);
        return NULL;
    }
    return buf;
}

void stream_skip(MigStream *s, size_t len)
{
    while (len && !s->err) {
        size_t n = MIN(len, STREAM_BUF_SIZE);
        stream_get_ptr(s, n);
        len -= n;
    }
}

bool stream_at_eof(MigStream *s)
{
    if (s->err || s->rpos < s->rend) {
        return false;
    }
    if (s->kind == STREAM_MEM_READER) {
        return true;
    }
    return rfill_once(s) == 0;
}

/* --- accounting --- */

uint64_t stream_bytes(MigStream *s)
{
    return s->bytes;
}

size_t stream_pending(MigStream *s)
{
    return s->kind == STREAM_CHANNEL_WRITER ? s->wqueued : 0;
}
