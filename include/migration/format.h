/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * godwit's migration wire format: magic, version, record types, command
 * ids, return-path messages, the CONFIG record and their limits, in one
 * place. docs/devel/migration/stream.md describes every byte; keep the two
 * (and scripts/analyze-migration.py) in sync. All integers are big-endian.
 */
#ifndef GODWIT_MIGRATION_FORMAT_H
#define GODWIT_MIGRATION_FORMAT_H

#include "qemu/osdep.h"

/* Stream header: be32 magic, be32 version. */
#define MIG_MAGIC          0x47445754u   /* "GDWT" */
#define MIG_VERSION        1u            /* what we write */
#define MIG_VERSION_MIN    1u            /* oldest we can load */

/* Top-level records: one type byte, then the layout in stream.md. */
typedef enum MigRecordType {
    MIG_REC_EOF = 0x00,
    MIG_REC_SECTION_START = 0x01,  /* iterative section setup (RAM) */
    MIG_REC_SECTION_PART = 0x02,   /* iterative section chunk */
    MIG_REC_SECTION_END = 0x03,    /* iterative section completion */
    MIG_REC_SECTION_FULL = 0x04,   /* one-shot device state */
    /* 0x05, 0x06: reserved, never sent (QEMU: subsection, VM description) */
    MIG_REC_CONFIG = 0x07,         /* machine layout, first after the header */
    MIG_REC_COMMAND = 0x08,
    MIG_REC_FOOTER = 0x7e,         /* be32 section id after every section */
} MigRecordType;

/* Commands: be16 id, be16 len, len bytes. Ids never change meaning. */
typedef enum MigCommand {
    MIG_CMD_INVALID = 0,
    MIG_CMD_OPEN_RETURN_PATH = 1,     /* len 0 */
    MIG_CMD_PING = 2,                 /* len 4: be32 value, answered by PONG */
    MIG_CMD_POSTCOPY_ADVISE = 3,      /* len 16: be64 page-size summary, be64 target page size */
    MIG_CMD_POSTCOPY_LISTEN = 4,      /* len 0 */
    MIG_CMD_POSTCOPY_RUN = 5,         /* len 0 */
    MIG_CMD_POSTCOPY_RAM_DISCARD = 6, /* cstr block, n x (be64 start, be64 length) */
    MIG_CMD_PACKAGED = 7,             /* len 4: be32 blob length; blob follows */
    MIG_CMD_RESERVED_8 = 8,           /* reserved (QEMU: COLO), never sent */
    MIG_CMD_POSTCOPY_RESUME = 9,      /* len 0 */
    MIG_CMD_RECV_BITMAP = 10,         /* cstr block */
    MIG_CMD__MAX,
} MigCommand;

/* Return-path messages (destination -> source): be16 type, be16 len, payload. */
typedef enum MigRpMsgType {
    MIG_RP_MSG_INVALID = 0,
    MIG_RP_MSG_SHUT = 1,          /* len 4: be32 status (0 = ok) */
    MIG_RP_MSG_PONG = 2,          /* len 4: be32 value from PING */
    MIG_RP_MSG_REQ_PAGES_ID = 3,  /* be64 start, be32 len, cstr block */
    MIG_RP_MSG_REQ_PAGES = 4,     /* len 12: be64 start, be32 len (block as last time) */
    MIG_RP_MSG_RECV_BITMAP = 5,   /* cstr block; bitmap follows (stream.md) */
    MIG_RP_MSG_RESUME_ACK = 6,    /* len 4: be32 1 */
    /* 7: reserved (QEMU 8.1+: SWITCHOVER_ACK), never sent */
    MIG_RP_MSG_ERROR = 8,         /* cstr: why the destination gives up (godwit) */
    MIG_RP_MSG__MAX,
} MigRpMsgType;

/* Limits the loader enforces on hostile input. */
#define MIG_RP_MAX_LEN          512
#define MIG_RP_HDR_LEN          4
#define MIG_CMD_MAX_LEN         0xffff          /* be16 */
#define MIG_FULL_MAX_LEN        (16u << 20)     /* one device record */
#define MIG_PACKAGED_MAX_LEN    (64u << 20)     /* the postcopy package */
#define MIG_CONFIG_MAX_LEN      (64u << 10)
#define MIG_CONFIG_MAX_BLOCKS   64
#define MIG_CONFIG_MAX_CPUID    512
#define MIG_DISCARD_MAX_RANGES  1024            /* per DISCARD command */
#define MIG_RECV_BITMAP_END     0x0123456789abcdefULL

/* Names for messages and the analyser ("SECTION_FULL", "PING", "PONG"). */
const char *mig_record_name(unsigned type);
const char *mig_command_name(unsigned cmd);
const char *mig_rp_msg_name(unsigned type);

/*
 * Payload length a command must have, or -1 if it is variable (checked by
 * its decoder). MIG_CMD_INVALID/RESERVED return -2 (never valid).
 */
int mig_command_fixed_len(unsigned cmd);

/* CRC-32 (IEEE 802.3, as zlib.crc32) of a device record's payload. */
uint32_t mig_crc32(uint32_t crc, const void *buf, size_t len);

/* --- CONFIG record --- */

typedef struct MigRamBlockInfo {
    char name[256];
    uint64_t size;          /* bytes */
    uint64_t page_size;     /* host page size backing the block */
} MigRamBlockInfo;

typedef struct MigCpuidEntry {
    uint32_t function, index;
    uint32_t eax, ebx, ecx, edx;
} MigCpuidEntry;

/*
 * What the source tells the destination before anything else, so the
 * destination can refuse an incompatible stream before it writes a byte of
 * guest state. Encoded as the CONFIG record payload.
 */
typedef struct MigConfig {
    uint32_t version;           /* stream format version (set by the encoder) */
    char machine[256];          /* machine type name */
    uint32_t vcpus;
    uint32_t target_page_size;
    uint32_t nr_blocks;
    MigRamBlockInfo *blocks;
    uint32_t nr_cpuid;
    MigCpuidEntry *cpuid;       /* as given to KVM_SET_CPUID2, in order */
} MigConfig;

MigConfig *mig_config_new(void);
void mig_config_free(MigConfig *c);
/* Append a RAM block / CPUID entry. */
void mig_config_add_block(MigConfig *c, const char *name, uint64_t size,
                          uint64_t page_size);
void mig_config_add_cpuid(MigConfig *c, const MigCpuidEntry *e);
/* Encode the payload (without the record type and be32 length). */
void mig_config_encode(const MigConfig *c, GByteArray *out);
/* Decode a hostile payload; NULL with @errp set if malformed. */
MigConfig *mig_config_decode(const uint8_t *buf, size_t len, GError **errp);
/*
 * Compare what the source sent (@src) with the destination's own (@dst).
 * On a mismatch set @errp to one sentence naming it, e.g.
 * "RAM size mismatch: source has 268435456 bytes, destination 134217728".
 */
bool mig_config_compare(const MigConfig *src, const MigConfig *dst,
                        GError **errp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigConfig, mig_config_free)

/* --- return-path messages (pure encode/decode) --- */

typedef struct MigRpMsg {
    MigRpMsgType type;
    uint32_t value;     /* SHUT status, PONG value, RESUME_ACK value */
    uint64_t start;     /* REQ_PAGES(_ID): byte offset in the block */
    uint32_t len;       /* REQ_PAGES(_ID): bytes */
    char block[256];    /* REQ_PAGES_ID, RECV_BITMAP; ERROR: the reason */
} MigRpMsg;

/*
 * Encode @m with its header into @buf (MIG_RP_HDR_LEN + MIG_RP_MAX_LEN bytes).
 * Returns the byte count, or 0 if @m is invalid (unknown type, name too long).
 */
size_t mig_rp_encode(const MigRpMsg *m, uint8_t *buf);
/*
 * Decode the payload of a message whose header said @type and @len.
 * Rejects unknown types, wrong lengths and malformed payloads.
 */
bool mig_rp_decode(unsigned type, const uint8_t *payload, size_t len,
                   MigRpMsg *m, GError **errp);

/*
 * Text that came from the peer (an ERROR reason, a name in a message) made
 * safe for a terminal, a log line and a JSON string: printable UTF-8 stays,
 * every other byte (control bytes, invalid UTF-8) and the backslash become
 * "\xNN". Newly allocated.
 */
char *mig_text_sanitize(const char *text);

/* --- command payloads (pure encode/decode) --- */

typedef struct MigDiscardRange {
    uint64_t start;     /* byte offset in the block */
    uint64_t length;    /* bytes */
} MigDiscardRange;

/* POSTCOPY_RAM_DISCARD: encode; @n in 1..MIG_DISCARD_MAX_RANGES. */
bool mig_cmd_discard_encode(const char *block, const MigDiscardRange *r,
                            unsigned n, GByteArray *out, GError **errp);
/*
 * Decode; @block gets the name (256 bytes), @r (MIG_DISCARD_MAX_RANGES
 * entries) the ranges, returns the range count or -1 on error.
 */
int mig_cmd_discard_decode(const uint8_t *p, size_t len, char *block,
                           MigDiscardRange *r, GError **errp);

#endif
