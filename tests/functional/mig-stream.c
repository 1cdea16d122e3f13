/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Record splitter and raw source for hostile-stream tests (see
 * mig-stream.h). The splitter walks the stream with the same record and
 * RAM-record decoders the destination uses (libgwmigcore), so a stream it
 * accepts is one the loader frames the same way.
 */
#include "qemu/osdep.h"
#include "qemu/byteorder.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "mig-stream.h"
#include "migration/ram-format.h"
#include "migration/stream.h"

/* Skip one RAM payload (records up to and including EOS). */
static void skip_ram_payload(MigStream *s, RamReader *rr)
{
    RamRecord rec;
    g_autoptr(GError) err = NULL;

    for (;;) {
        if (!ram_get_record(s, rr, &rec, &err)) {
            g_error("stream file: bad RAM record: %s", err->message);
        }
        switch (rec.type) {
        case RAM_RECORD_EOS:
            return;
        case RAM_RECORD_MEM_SIZE: {
            g_autofree MigRamBlockInfo *b = NULL;
            unsigned n;
            if (!ram_get_mem_size_blocks(s, rec.offset, &b, &n, &err)) {
                g_error("stream file: bad RAM block list: %s", err->message);
            }
            break;
        }
        case RAM_RECORD_PAGES:
            stream_skip(s, (size_t)rec.npages * RAM_REC_PAGE_SIZE);
            break;
        case RAM_RECORD_ZERO:
            break;
        }
    }
}

MigStreamFile *mig_stream_split(GBytes *bytes)
{
    MigStreamFile *f = g_new0(MigStreamFile, 1);
    gsize len;
    const guint8 *d = g_bytes_get_data(bytes, &len);
    MigStream *s = stream_new_mem_reader(d, len, false);
    g_autoptr(GError) err = NULL;
    RamReader rr;

    f->bytes = g_bytes_ref(bytes);
    f->recs = g_array_new(FALSE, TRUE, sizeof(MigRec));
    ram_reader_reset(&rr);
    g_assert_cmphex(stream_get_be32(s), ==, MIG_MAGIC);
    stream_get_be32(s);
    g_assert_cmpuint(stream_get_u8(s), ==, MIG_REC_CONFIG);
    stream_skip(s, stream_get_be32(s));
    f->prefix_len = stream_bytes(s);
    for (;;) {
        MigRec r = { .off = stream_bytes(s) };
        r.type = stream_get_u8(s);
        switch (r.type) {
        case MIG_REC_EOF:
            break;
        case MIG_REC_SECTION_START:
        case MIG_REC_SECTION_FULL:
            stream_get_be32(s);
            stream_get_cstr(s, r.name);
            stream_get_be32(s);
            stream_get_be32(s);
            if (r.type == MIG_REC_SECTION_FULL) {
                stream_skip(s, stream_get_be32(s) + 4u);
            } else {
                skip_ram_payload(s, &rr);
            }
            stream_skip(s, 5);
            break;
        case MIG_REC_SECTION_PART:
        case MIG_REC_SECTION_END:
            stream_get_be32(s);
            skip_ram_payload(s, &rr);
            stream_skip(s, 5);
            break;
        case MIG_REC_COMMAND: {
            r.cmd = stream_get_be16(s);
            guint16 n = stream_get_be16(s);
            const uint8_t *p = stream_get_ptr(s, n);
            if (r.cmd == MIG_CMD_PACKAGED && p) {
                stream_skip(s, be32_load(p));
            }
            break;
        }
        default:
            g_error("stream file: unexpected record type 0x%02x at %zu", r.type, r.off);
        }
        if (!stream_check(s, &err)) {
            g_error("stream file: %s", err->message);
        }
        r.len = stream_bytes(s) - r.off;
        g_array_append_val(f->recs, r);
        if (r.type == MIG_REC_EOF) {
            break;
        }
    }
    stream_free(s);
    return f;
}

void mig_stream_file_free(MigStreamFile *f)
{
    if (f) {
        g_bytes_unref(f->bytes);
        g_array_free(f->recs, TRUE);
        g_free(f);
    }
}

const MigRec *mig_stream_find(const MigStreamFile *f, guint8 type, const char *name)
{
    for (guint i = 0; i < f->recs->len; i++) {
        const MigRec *r = &g_array_index(f->recs, MigRec, i);
        if (r->type == type && (!name || !strcmp(r->name, name))) {
            return r;
        }
    }
    return NULL;
}

void mig_stream_append(GByteArray *out, const MigStreamFile *f, const MigRec *r)
{
    const guint8 *d = g_bytes_get_data(f->bytes, NULL);

    g_byte_array_append(out, d + r->off, r->len);
}

void mig_stream_append_prefix(GByteArray *out, const MigStreamFile *f)
{
    g_byte_array_append(out, g_bytes_get_data(f->bytes, NULL), f->prefix_len);
}

void mig_stream_append_devices(GByteArray *out, const MigStreamFile *f)
{
    for (guint i = 0; i < f->recs->len; i++) {
        const MigRec *r = &g_array_index(f->recs, MigRec, i);
        if (r->type == MIG_REC_SECTION_FULL) {
            mig_stream_append(out, f, r);
        }
    }
}

void mig_put_command(GByteArray *out, guint16 cmd, const void *payload, guint16 len)
{
    guint8 h[5] = { MIG_REC_COMMAND, cmd >> 8, cmd & 0xff, len >> 8, len & 0xff };

    g_byte_array_append(out, h, sizeof(h));
    if (len) {
        g_byte_array_append(out, payload, len);
    }
}

void mig_put_ping(GByteArray *out, guint32 value)
{
    guint32 be = GUINT32_TO_BE(value);

    mig_put_command(out, MIG_CMD_PING, &be, 4);
}

void mig_put_advise(GByteArray *out, guint64 page_size)
{
    guint64 be[2] = { GUINT64_TO_BE(page_size), GUINT64_TO_BE(4096) };

    mig_put_command(out, MIG_CMD_POSTCOPY_ADVISE, be, sizeof(be));
}

void mig_put_packaged(GByteArray *out, const GByteArray *blob)
{
    guint32 be = GUINT32_TO_BE(blob->len);

    mig_put_command(out, MIG_CMD_PACKAGED, &be, 4);
    g_byte_array_append(out, blob->data, blob->len);
}

/* ---- the raw source ---- */

struct MigRawSource {
    int fd;
};

MigRawSource *mig_raw_connect(const char *path, int timeout_ms)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    gint64 deadline = g_get_monotonic_time() + (gint64)gw_timeout(timeout_ms) * 1000;
    MigRawSource *rs = g_new0(MigRawSource, 1);

    g_assert_cmpuint(strlen(path), <, sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    for (;;) {
        rs->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(rs->fd, >=, 0);
        if (connect(rs->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            return rs;
        }
        close(rs->fd);
        if (g_get_monotonic_time() > deadline) {
            g_error("cannot connect to the destination at %s: %s", path, g_strerror(errno));
        }
        g_usleep(20000);
    }
}

bool mig_raw_write(MigRawSource *rs, const void *buf, gsize len)
{
    const guint8 *p = buf;

    while (len) {
        ssize_t n = send(rs->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (gsize)n;
    }
    return true;
}

/* Read exactly @len bytes before @deadline (monotonic us). */
static bool read_full(int fd, guint8 *buf, gsize len, gint64 deadline)
{
    while (len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            return false;
        }
        ssize_t n = recv(fd, buf, len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        buf += n;
        len -= (gsize)n;
    }
    return true;
}

bool mig_raw_read_rp(MigRawSource *rs, guint16 *type, GByteArray *payload, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)gw_timeout(timeout_ms) * 1000;
    guint8 h[4];
    guint8 buf[65536];
    guint16 len;

    if (!read_full(rs->fd, h, 4, deadline)) {
        return false;
    }
    *type = be16_load(h);
    len = be16_load(h + 2);
    if (!read_full(rs->fd, buf, len, deadline)) {
        return false;
    }
    if (payload) {
        g_byte_array_set_size(payload, 0);
        g_byte_array_append(payload, buf, len);
    }
    return true;
}

char *mig_raw_wait_error(MigRawSource *rs, int timeout_ms)
{
    g_autoptr(GByteArray) p = g_byte_array_new();
    guint16 type;

    while (mig_raw_read_rp(rs, &type, p, timeout_ms)) {
        if (type == MIG_RP_MSG_ERROR && p->len >= 1 && p->data[0] + 1u == p->len) {
            return g_strndup((const char *)p->data + 1, p->data[0]);
        }
    }
    return NULL;
}

void mig_raw_wait_pong(MigRawSource *rs, guint32 value, int timeout_ms)
{
    g_autoptr(GByteArray) p = g_byte_array_new();
    guint16 type;

    for (;;) {
        if (!mig_raw_read_rp(rs, &type, p, timeout_ms)) {
            g_error("no PONG %u from the destination", value);
        }
        if (type == MIG_RP_MSG_ERROR) {
            g_error("the destination gave up instead of PONG %u: %.*s", value,
                    p->len ? (int)p->len - 1 : 0, (const char *)p->data + 1);
        }
        g_assert_cmpuint(type, ==, MIG_RP_MSG_PONG);
        g_assert_cmpuint(p->len, ==, 4);
        if (be32_load(p->data) == value) {
            return;
        }
    }
}

void mig_raw_close(MigRawSource *rs)
{
    if (rs) {
        close(rs->fd);
        g_free(rs);
    }
}
