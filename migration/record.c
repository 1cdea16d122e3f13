/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The saver and loader of field-table device records (record.h): one walk
 * over the table each way, so a device declares its layout once and every
 * record gets the same length and bounds checks.
 */
#include "qemu/osdep.h"

#include "migration/record.h"
#include "qemu/byteorder.h"

/* Bytes per element of an integer field; 0 for the other types. */
static size_t int_width(RecordFieldType type)
{
    switch (type) {
    case RECORD_U8:
        return 1;
    case RECORD_BE16:
    case RECORD_LE16:
        return 2;
    case RECORD_BE32:
    case RECORD_LE32:
        return 4;
    case RECORD_BE64:
    case RECORD_LE64:
        return 8;
    default:
        return 0;
    }
}

static bool field_present(const RecordField *f, uint32_t version)
{
    return (!f->first_version || version >= f->first_version) &&
           (!f->last_version || version <= f->last_version);
}

/* Host-order integer at @src to wire order at @dst. */
static void int_to_wire(RecordFieldType type, uint8_t *dst, const uint8_t *src)
{
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;

    switch (type) {
    case RECORD_BE16:
    case RECORD_LE16:
        memcpy(&v16, src, 2);
        if (type == RECORD_BE16) {
            be16_store(dst, v16);
        } else {
            le16_store(dst, v16);
        }
        return;
    case RECORD_BE32:
    case RECORD_LE32:
        memcpy(&v32, src, 4);
        if (type == RECORD_BE32) {
            be32_store(dst, v32);
        } else {
            le32_store(dst, v32);
        }
        return;
    case RECORD_BE64:
    case RECORD_LE64:
        memcpy(&v64, src, 8);
        if (type == RECORD_BE64) {
            be64_store(dst, v64);
        } else {
            le64_store(dst, v64);
        }
        return;
    default:
        *dst = *src;
        return;
    }
}

/* Wire-order integer at @src to host order at @dst. */
static void int_from_wire(RecordFieldType type, uint8_t *dst, const uint8_t *src)
{
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;

    switch (type) {
    case RECORD_BE16:
    case RECORD_LE16:
        v16 = type == RECORD_BE16 ? be16_load(src) : le16_load(src);
        memcpy(dst, &v16, 2);
        return;
    case RECORD_BE32:
    case RECORD_LE32:
        v32 = type == RECORD_BE32 ? be32_load(src) : le32_load(src);
        memcpy(dst, &v32, 4);
        return;
    case RECORD_BE64:
    case RECORD_LE64:
        v64 = type == RECORD_BE64 ? be64_load(src) : le64_load(src);
        memcpy(dst, &v64, 8);
        return;
    default:
        *dst = *src;
        return;
    }
}

static void save_fields(const RecordDesc *desc, uint32_t version, const uint8_t *obj,
                        GByteArray *out)
{
    for (size_t i = 0; i < desc->n_fields; i++) {
        const RecordField *f = &desc->fields[i];
        const uint8_t *member = obj + f->offset;
        size_t width = int_width(f->type);

        if (!field_present(f, version)) {
            continue;
        }
        if (width) {
            uint8_t wire[8];

            g_assert(f->size % width == 0);
            for (size_t off = 0; off < f->size; off += width) {
                int_to_wire(f->type, wire, member + off);
                g_byte_array_append(out, wire, (guint)width);
            }
            continue;
        }
        switch (f->type) {
        case RECORD_STRUCT:
            g_assert(f->sub && f->size % f->sub->size == 0);
            for (size_t off = 0; off < f->size; off += f->sub->size) {
                save_fields(f->sub, version, member + off, out);
            }
            break;
        case RECORD_STR8: {
            size_t n = strnlen((const char *)member, f->size);
            uint8_t n8 = (uint8_t)n;

            g_assert(n < f->size && n <= UINT8_MAX);
            g_byte_array_append(out, &n8, 1);
            g_byte_array_append(out, member, (guint)n);
            break;
        }
        case RECORD_BUF8:
        case RECORD_BUF16: {
            uint32_t n;
            uint8_t wire[2];

            memcpy(&n, obj + f->len_offset, sizeof(n));
            g_assert(n <= f->size && n <= (f->type == RECORD_BUF8 ? UINT8_MAX : UINT16_MAX));
            if (f->type == RECORD_BUF8) {
                wire[0] = (uint8_t)n;
            } else {
                be16_store(wire, (uint16_t)n);
            }
            g_byte_array_append(out, wire, f->type == RECORD_BUF8 ? 1 : 2);
            g_byte_array_append(out, member, n);
            break;
        }
        default:
            g_assert_not_reached();
        }
    }
}

void record_save(const RecordDesc *desc, uint32_t version, const void *obj, GByteArray *out)
{
    save_fields(desc, version, obj, out);
}

/* The part of a payload still to be read, and what to name in an error. */
typedef struct RecordReader {
    const RecordDesc *top;
    uint32_t version;
    size_t len;
    const uint8_t *p;
    size_t left;
} RecordReader;

static const uint8_t *take(RecordReader *r, const RecordField *f, size_t n, GError **errp)
{
    const uint8_t *p = r->p;

    if (n > r->left) {
        error_setg(errp, "%s state (version %u, %zu bytes) ends inside its field '%s'",
                   r->top->name, r->version, r->len, f->name);
        return NULL;
    }
    r->p += n;
    r->left -= n;
    return p;
}

static bool load_fields(RecordReader *r, const RecordDesc *desc, uint8_t *obj, GError **errp)
{
    for (size_t i = 0; i < desc->n_fields; i++) {
        const RecordField *f = &desc->fields[i];
        uint8_t *member = obj + f->offset;
        size_t width = int_width(f->type);
        const uint8_t *p;

        if (!field_present(f, r->version)) {
            continue;
        }
        if (width) {
            p = take(r, f, f->size, errp);
            if (!p) {
                return false;
            }
            for (size_t off = 0; off < f->size; off += width) {
                int_from_wire(f->type, member + off, p + off);
            }
            continue;
        }
        switch (f->type) {
        case RECORD_STRUCT:
            for (size_t off = 0; off < f->size; off += f->sub->size) {
                if (!load_fields(r, f->sub, member + off, errp)) {
                    return false;
                }
            }
            break;
        case RECORD_STR8: {
            p = take(r, f, 1, errp);
            if (!p) {
                return false;
            }
            size_t n = *p;
            if (n >= f->size) {
                error_setg(errp, "%s state has a %zu-byte field '%s' where at most %zu fit",
                           r->top->name, n, f->name, f->size - 1);
                return false;
            }
            p = take(r, f, n, errp);
            if (!p) {
                return false;
            }
            memcpy(member, p, n);
            member[n] = '\0';
            break;
        }
        case RECORD_BUF8:
        case RECORD_BUF16: {
            p = take(r, f, f->type == RECORD_BUF8 ? 1 : 2, errp);
            if (!p) {
                return false;
            }
            uint32_t n = f->type == RECORD_BUF8 ? *p : be16_load(p);
            if (n > f->size) {
                error_setg(errp, "%s state has %u bytes in its field '%s' where at most %zu fit",
                           r->top->name, n, f->name, f->size);
                return false;
            }
            p = take(r, f, n, errp);
            if (!p) {
                return false;
            }
            memcpy(member, p, n);
            memcpy(obj + f->len_offset, &n, sizeof(n));
            break;
        }
        default:
            g_assert_not_reached();
        }
    }
    return true;
}

bool record_load(const RecordDesc *desc, uint32_t version, void *obj, const uint8_t *buf,
                 size_t len, GError **errp)
{
    RecordReader r = { .top = desc, .version = version, .len = len, .p = buf, .left = len };

    if (version < desc->version_min || version > desc->version_max) {
        error_setg(errp, "%s state version %u is not supported (this build loads %u to %u)",
                   desc->name, version, desc->version_min, desc->version_max);
        return false;
    }
    if (!load_fields(&r, desc, obj, errp)) {
        return false;
    }
    if (r.left) {
        error_setg(errp, "%s state (version %u, %zu bytes) is %zu byte%s too long",
                   desc->name, version, len, r.left, r.left == 1 ? "" : "s");
        return false;
    }
    return true;
}
