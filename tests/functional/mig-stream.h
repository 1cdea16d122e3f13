/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hostile-stream tests: cut a real godwit migration stream (captured with
 * exec:cat > FILE) into its records, and play the source's part on a
 * destination's socket with a stream assembled from those records and
 * hand-built commands, reading the return path as a source would.
 */
#ifndef GODWIT_TESTS_MIG_STREAM_H
#define GODWIT_TESTS_MIG_STREAM_H

#include "libgw.h"

/* The wire constants (MIG_REC_*, MIG_CMD_*, MIG_RP_MSG_*). */
#include "migration/format.h"

/* One top-level record of a stream file: its bytes are [off, off + len). */
typedef struct MigRec {
    guint8 type;            /* MIG_REC_* */
    char name[256];         /* START/FULL: the section name; else "" */
    guint16 cmd;            /* COMMAND: the command id */
    gsize off, len;
} MigRec;

typedef struct MigStreamFile {
    GBytes *bytes;
    gsize prefix_len;       /* header + CONFIG */
    GArray *recs;           /* MigRec, in stream order, CONFIG excluded */
} MigStreamFile;

/* Cut @bytes (a whole precopy stream) into records; fails the test if malformed. */
MigStreamFile *mig_stream_split(GBytes *bytes);
void mig_stream_file_free(MigStreamFile *f);
/* The first record of @type (and @name unless NULL), or NULL. */
const MigRec *mig_stream_find(const MigStreamFile *f, guint8 type, const char *name);
/* Append the bytes of @r / of the header and CONFIG to @out. */
void mig_stream_append(GByteArray *out, const MigStreamFile *f, const MigRec *r);
void mig_stream_append_prefix(GByteArray *out, const MigStreamFile *f);
/* Append every SECTION_FULL record (the device state) to @out. */
void mig_stream_append_devices(GByteArray *out, const MigStreamFile *f);

/* Encoders for hand-built records (big-endian, as stream.md). */
void mig_put_command(GByteArray *out, guint16 cmd, const void *payload, guint16 len);
void mig_put_ping(GByteArray *out, guint32 value);
void mig_put_advise(GByteArray *out, guint64 page_size);
void mig_put_packaged(GByteArray *out, const GByteArray *blob);

/*
 * The source's end of a connection to a destination's unix socket: write
 * a stream, read return-path messages.
 */
typedef struct MigRawSource MigRawSource;
MigRawSource *mig_raw_connect(const char *path, int timeout_ms);
/* Write all of @buf; false if the destination closed the connection. */
bool mig_raw_write(MigRawSource *rs, const void *buf, gsize len);
/*
 * The next return-path message: its type, and its payload in @payload
 * (may be NULL). False on EOF or after @timeout_ms.
 */
bool mig_raw_read_rp(MigRawSource *rs, guint16 *type, GByteArray *payload,
                     int timeout_ms);
/* Read return-path messages until an ERROR: its text (g_free), or NULL. */
char *mig_raw_wait_error(MigRawSource *rs, int timeout_ms);
/* Read until PONG @value arrives; fails the test on anything else but PONG. */
void mig_raw_wait_pong(MigRawSource *rs, guint32 value, int timeout_ms);
void mig_raw_close(MigRawSource *rs);

#endif
