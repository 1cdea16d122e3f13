/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Device records as data: a table of fields describing a C struct, and one
 * saver and one loader that walk it. The saver writes the fields in table
 * order; the loader checks every length and bound against the table and
 * refuses a short, long or malformed payload with one sentence naming the
 * record and the field. See docs/devel/migration/stream.md for the tables.
 */
#ifndef GODWIT_MIGRATION_RECORD_H
#define GODWIT_MIGRATION_RECORD_H

#include "qemu/osdep.h"

typedef enum RecordFieldType {
    /* Integers: @size bytes of the member hold size / width elements. */
    RECORD_U8,
    RECORD_BE16,
    RECORD_BE32,
    RECORD_BE64,
    /*
     * Little-endian integers: for Linux KVM structures, which the record
     * carries in the kernel's x86-64 layout.
     */
    RECORD_LE16,
    RECORD_LE32,
    RECORD_LE64,
    /* An array of structs described by @sub, @size / sub->size elements. */
    RECORD_STRUCT,
    /*
     * A NUL-terminated string in char[@size]; on the wire a u8 length and
     * that many bytes (no NUL). The loader refuses one that does not fit.
     */
    RECORD_STR8,
    /*
     * A byte buffer uint8_t[@size] whose used length is the uint32_t
     * member at @len_offset; on the wire the length (u8 for BUF8, be16 for
     * BUF16) followed by that many bytes.
     */
    RECORD_BUF8,
    RECORD_BUF16,
} RecordFieldType;

typedef struct RecordDesc RecordDesc;

typedef struct RecordField {
    const char *name;
    RecordFieldType type;
    size_t offset;                /* of the member in the struct */
    size_t size;                  /* sizeof the member */
    size_t len_offset;            /* BUF8/BUF16: the uint32_t length member */
    const RecordDesc *sub;        /* STRUCT: the element's table */
    /* Present in record versions first_version..last_version (0: unbounded). */
    uint32_t first_version;
    uint32_t last_version;
} RecordField;

struct RecordDesc {
    const char *name;             /* names the record in error sentences */
    size_t size;                  /* sizeof the struct the table describes */
    const RecordField *fields;
    size_t n_fields;
    /* Versions the loader accepts (a nested table leaves these 0). */
    uint32_t version_min;
    uint32_t version_max;
};

#define RECORD_MEMBER_SIZE(st, member) sizeof(((st *)NULL)->member)

/* A field of struct type @st present in every version. */
#define RECORD_FIELD(st, member, ft)                                        \
    { .name = #member, .type = (ft), .offset = offsetof(st, member),        \
      .size = RECORD_MEMBER_SIZE(st, member) }

/* A field present from record version @first on. */
#define RECORD_FIELD_SINCE(st, member, ft, first)                           \
    { .name = #member, .type = (ft), .offset = offsetof(st, member),        \
      .size = RECORD_MEMBER_SIZE(st, member), .first_version = (first) }

#define RECORD_STRUCT_FIELD(st, member, desc)                               \
    { .name = #member, .type = RECORD_STRUCT, .offset = offsetof(st, member), \
      .size = RECORD_MEMBER_SIZE(st, member), .sub = (desc) }

/* A counted buffer present in versions @first..@last (0: unbounded). */
#define RECORD_BUF_FIELD(st, member, len_member, ft, first, last)           \
    { .name = #member, .type = (ft), .offset = offsetof(st, member),        \
      .size = RECORD_MEMBER_SIZE(st, member),                               \
      .len_offset = offsetof(st, len_member),                               \
      .first_version = (first), .last_version = (last) }

/*
 * Append @obj, laid out as @desc says, for record @version to @out. Any
 * thread; @obj must be consistent (the caller holds what protects it). A
 * BUF length beyond its buffer or its wire width, or a string longer than
 * 255 bytes, is a programming error and aborts.
 */
void record_save(const RecordDesc *desc, uint32_t version, const void *obj, GByteArray *out);

/*
 * Fill @obj from @buf[0..@len) (hostile) written as record @version.
 * Refuses a version outside desc->version_min..version_max, a payload
 * that ends inside a field or has bytes after the last one, a counted
 * length beyond its buffer and a string that does not fit. On failure
 * @obj may be partly written: load into a scratch struct and apply it
 * only on success. Members the table does not name are left as they are.
 */
bool record_load(const RecordDesc *desc, uint32_t version, void *obj, const uint8_t *buf,
                 size_t len, GError **errp);

#endif
