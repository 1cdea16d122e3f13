/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pure helpers for the wire format: names, CRC-32, the CONFIG record and
 * its compatibility check, return-path messages and variable-length command
 * payloads. Byte layouts: docs/devel/migration/stream.md.
 */
#include "qemu/osdep.h"

#include "migration/format.h"
#include "migration/stream.h"
#include "qemu/byteorder.h"

const char *mig_record_name(unsigned type)
{
    switch (type) {
    case MIG_REC_EOF: return "EOF";
    case MIG_REC_SECTION_START: return "SECTION_START";
    case MIG_REC_SECTION_PART: return "SECTION_PART";
    case MIG_REC_SECTION_END: return "SECTION_END";
    case MIG_REC_SECTION_FULL: return "SECTION_FULL";
    case MIG_REC_CONFIG: return "CONFIG";
    case MIG_REC_COMMAND: return "COMMAND";
    case MIG_REC_FOOTER: return "FOOTER";
    default: return "unknown";
    }
}

const char *mig_command_name(unsigned cmd)
{
    static const char *const names[MIG_CMD__MAX] = {
        [MIG_CMD_INVALID] = "INVALID",
        [MIG_CMD_OPEN_RETURN_PATH] = "OPEN_RETURN_PATH",
        [MIG_CMD_PING] = "PING",
        [MIG_CMD_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
        [MIG_CMD_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
        [MIG_CMD_POSTCOPY_RUN] = "POSTCOPY_RUN",
        [MIG_CMD_POSTCOPY_RAM_DISCARD] = "POSTCOPY_RAM_DISCARD",
        [MIG_CMD_PACKAGED] = "PACKAGED",
        [MIG_CMD_RESERVED_8] = "RESERVED_8",
        [MIG_CMD_POSTCOPY_RESUME] = "POSTCOPY_RESUME",
        [MIG_CMD_RECV_BITMAP] = "RECV_BITMAP",
    };
    return cmd < MIG_CMD__MAX ? names[cmd] : "unknown";
}

const char *mig_rp_msg_name(unsigned type)
{
    static const char *const names[MIG_RP_MSG__MAX] = {
        [MIG_RP_MSG_INVALID] = "INVALID",
        [MIG_RP_MSG_SHUT] = "SHUT",
        [MIG_RP_MSG_PONG] = "PONG",
        [MIG_RP_MSG_REQ_PAGES_ID] = "REQ_PAGES_ID",
        [MIG_RP_MSG_REQ_PAGES] = "REQ_PAGES",
        [MIG_RP_MSG_RECV_BITMAP] = "RECV_BITMAP",
        [MIG_RP_MSG_RESUME_ACK] = "RESUME_ACK",
        [MIG_RP_MSG_ERROR] = "ERROR",
    };
    return type < MIG_RP_MSG__MAX && names[type] ? names[type] : "unknown";
}

int mig_command_fixed_len(unsigned cmd)
{
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
    case MIG_CMD_POSTCOPY_LISTEN:
    case MIG_CMD_POSTCOPY_RUN:
    case MIG_CMD_POSTCOPY_RESUME:
        return 0;
    case MIG_CMD_PING:
    case MIG_CMD_PACKAGED:
        return 4;
    case MIG_CMD_POSTCOPY_ADVISE:
        return 16;
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
    case MIG_CMD_RECV_BITMAP:
        return -1;
    default:
        return -2;
    }
}

uint32_t mig_crc32(uint32_t crc, const void *buf, size_t len)
{
    static uint32_t table[256];
    static gsize init;
    const uint8_t *p = buf;

    if (g_once_init_enter(&init)) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) {
                c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            }
            table[i] = c;
        }
        g_once_init_leave(&init, 1);
    }
    crc = ~crc;
    while (len--) {
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

/* --- CONFIG --- */

MigConfig *mig_config_new(void)
{
    MigConfig *c = g_new0(MigConfig, 1);

    c->version = MIG_VERSION;
    return c;
}

void mig_config_free(MigConfig *c)
{
    if (c) {
        g_free(c->blocks);
        g_free(c->cpuid);
        g_free(c);
    }
}

void mig_config_add_block(MigConfig *c, const char *name, uint64_t size,
                          uint64_t page_size)
{
    c->blocks = g_renew(MigRamBlockInfo, c->blocks, c->nr_blocks + 1);
    MigRamBlockInfo *b = &c->blocks[c->nr_blocks++];
    memset(b, 0, sizeof(*b));
    g_strlcpy(b->name, name, sizeof(b->name));
    b->size = size;
    b->page_size = page_size;
}

void mig_config_add_cpuid(MigConfig *c, const MigCpuidEntry *e)
{
    c->cpuid = g_renew(MigCpuidEntry, c->cpuid, c->nr_cpuid + 1);
    c->cpuid[c->nr_cpuid++] = *e;
}

static void ba_be32(GByteArray *out, uint32_t v)
{
    uint8_t b[4];

    be32_store(b, v);
    g_byte_array_append(out, b, sizeof(b));
}

static void ba_be64(GByteArray *out, uint64_t v)
{
    uint8_t b[8];

    be64_store(b, v);
    g_byte_array_append(out, b, sizeof(b));
}

static void ba_cstr(GByteArray *out, const char *s)
{
    uint8_t n = MIN(strlen(s), STREAM_MAX_CSTR);
    g_byte_array_append(out, &n, 1);
    g_byte_array_append(out, (const guint8 *)s, n);
}

void mig_config_encode(const MigConfig *c, GByteArray *out)
{
    ba_be32(out, MIG_VERSION);
    ba_cstr(out, c->machine);
    ba_be32(out, c->vcpus);
    ba_be32(out, c->target_page_size);
    ba_be32(out, c->nr_blocks);
    for (uint32_t i = 0; i < c->nr_blocks; i++) {
        ba_cstr(out, c->blocks[i].name);
        ba_be64(out, c->blocks[i].size);
        ba_be64(out, c->blocks[i].page_size);
    }
    ba_be32(out, c->nr_cpuid);
    for (uint32_t i = 0; i < c->nr_cpuid; i++) {
        const MigCpuidEntry *e = &c->cpuid[i];
        ba_be32(out, e->function);
        ba_be32(out, e->index);
        ba_be32(out, e->eax);
        ba_be32(out, e->ebx);
        ba_be32(out, e->ecx);
        ba_be32(out, e->edx);
    }
}

MigConfig *mig_config_decode(const uint8_t *buf, size_t len, GError **errp)
{
    g_autoptr(GError) err = NULL;
    MigStream *s = stream_new_mem_reader(buf, len, false);
    MigConfig *c = mig_config_new();

    c->version = stream_get_be32(s);
    stream_get_cstr(s, c->machine);
    c->vcpus = stream_get_be32(s);
    c->target_page_size = stream_get_be32(s);
    uint32_t nb = stream_get_be32(s);
    if (nb > MIG_CONFIG_MAX_BLOCKS) {
        stream_set_error_msg(s, "too many RAM blocks (%" PRIu32 ")", nb);
    }
    for (uint32_t i = 0; i < nb && !stream_has_error(s); i++) {
        char name[STREAM_MAX_CSTR + 1];
        stream_get_cstr(s, name);
        uint64_t size = stream_get_be64(s);
        uint64_t psize = stream_get_be64(s);
        mig_config_add_block(c, name, size, psize);
    }
    uint32_t nc = stream_get_be32(s);
    if (nc > MIG_CONFIG_MAX_CPUID) {
        stream_set_error_msg(s, "too many CPUID entries (%" PRIu32 ")", nc);
    }
    for (uint32_t i = 0; i < nc && !stream_has_error(s); i++) {
        MigCpuidEntry e;
        e.function = stream_get_be32(s);
        e.index = stream_get_be32(s);
        e.eax = stream_get_be32(s);
        e.ebx = stream_get_be32(s);
        e.ecx = stream_get_be32(s);
        e.edx = stream_get_be32(s);
        mig_config_add_cpuid(c, &e);
    }
    if (!stream_has_error(s) && !stream_at_eof(s)) {
        stream_set_error_msg(s, "%zu trailing bytes",
                             len - (size_t)stream_bytes(s));
    }
    if (!stream_check(s, &err)) {
        error_setg(errp, "Malformed CONFIG record: %s", err->message);
        stream_free(s);
        mig_config_free(c);
        return NULL;
    }
    stream_free(s);
    return c;
}

static const MigRamBlockInfo *find_block(const MigConfig *c, const char *name)
{
    for (uint32_t i = 0; i < c->nr_blocks; i++) {
        if (!strcmp(c->blocks[i].name, name)) {
            return &c->blocks[i];
        }
    }
    return NULL;
}

static uint64_t total_ram(const MigConfig *c)
{
    uint64_t t = 0;

    for (uint32_t i = 0; i < c->nr_blocks; i++) {
        t += c->blocks[i].size;
    }
    return t;
}

bool mig_config_compare(const MigConfig *src, const MigConfig *dst,
                        GError **errp)
{
    if (src->version != dst->version) {
        error_setg(errp, "Migration format version mismatch: source has %"
                   PRIu32 ", destination %" PRIu32, src->version,
                   dst->version);
        return false;
    }
    if (strcmp(src->machine, dst->machine)) {
        error_setg(errp, "Machine type mismatch: source has '%s', "
                   "destination '%s'", src->machine, dst->machine);
        return false;
    }
    if (src->vcpus != dst->vcpus) {
        error_setg(errp, "vCPU count mismatch: source has %" PRIu32
                   ", destination %" PRIu32, src->vcpus, dst->vcpus);
        return false;
    }
    if (src->target_page_size != dst->target_page_size) {
        error_setg(errp, "Target page size mismatch: source has %" PRIu32
                   " bytes, destination %" PRIu32, src->target_page_size,
                   dst->target_page_size);
        return false;
    }
    if (total_ram(src) != total_ram(dst)) {
        error_setg(errp, "RAM size mismatch: source has %" PRIu64
                   " bytes, destination %" PRIu64, total_ram(src),
                   total_ram(dst));
        return false;
    }
    for (uint32_t i = 0; i < src->nr_blocks; i++) {
        const MigRamBlockInfo *s = &src->blocks[i];
        const MigRamBlockInfo *d = find_block(dst, s->name);
        if (!d) {
            error_setg(errp, "RAM block '%s' of the source does not exist "
                       "on the destination", s->name);
            return false;
        }
        if (s->size != d->size) {
            error_setg(errp, "RAM block '%s' size mismatch: source has %"
                       PRIu64 " bytes, destination %" PRIu64, s->name,
                       s->size, d->size);
            return false;
        }
        if (s->page_size != d->page_size) {
            error_setg(errp, "RAM block '%s' page size mismatch: source has %"
                       PRIu64 " bytes, destination %" PRIu64, s->name,
                       s->page_size, d->page_size);
            return false;
        }
    }
    if (src->nr_blocks != dst->nr_blocks) {
        error_setg(errp, "RAM block count mismatch: source has %" PRIu32
                   ", destination %" PRIu32, src->nr_blocks, dst->nr_blocks);
        return false;
    }
    if (src->nr_cpuid != dst->nr_cpuid) {
        error_setg(errp, "CPUID mismatch: source has %" PRIu32
                   " entries, destination %" PRIu32, src->nr_cpuid,
                   dst->nr_cpuid);
        return false;
    }
    for (uint32_t i = 0; i < src->nr_cpuid; i++) {
        const MigCpuidEntry *a = &src->cpuid[i], *b = &dst->cpuid[i];
        if (memcmp(a, b, sizeof(*a))) {
            error_setg(errp, "CPUID mismatch at leaf 0x%" PRIx32 " index %"
                       PRIu32 ": source has %08" PRIx32 " %08" PRIx32
                       " %08" PRIx32 " %08" PRIx32 ", destination leaf 0x%"
                       PRIx32 " index %" PRIu32 " %08" PRIx32 " %08" PRIx32
                       " %08" PRIx32 " %08" PRIx32,
                       a->function, a->index, a->eax, a->ebx, a->ecx, a->edx,
                       b->function, b->index, b->eax, b->ebx, b->ecx, b->edx);
            return false;
        }
    }
    return true;
}

/* --- return path --- */

/* Store and advance: the encoder below writes a message front to back. */
static uint8_t *put16(uint8_t *p, uint16_t v)
{
    be16_store(p, v);
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    be32_store(p, v);
    return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
    be64_store(p, v);
    return p + 8;
}

size_t mig_rp_encode(const MigRpMsg *m, uint8_t *buf)
{
    uint8_t *p = buf + MIG_RP_HDR_LEN;
    size_t nlen = strnlen(m->block, sizeof(m->block));

    switch (m->type) {
    case MIG_RP_MSG_SHUT:
    case MIG_RP_MSG_PONG:
    case MIG_RP_MSG_RESUME_ACK:
        p = put32(p, m->value);
        break;
    case MIG_RP_MSG_REQ_PAGES_ID:
    case MIG_RP_MSG_REQ_PAGES:
        p = put64(p, m->start);
        p = put32(p, m->len);
        if (m->type == MIG_RP_MSG_REQ_PAGES) {
            break;
        }
        /* fall through: the _ID form appends the block name */
    case MIG_RP_MSG_RECV_BITMAP:
    case MIG_RP_MSG_ERROR:
        if (nlen > STREAM_MAX_CSTR || nlen == 0) {
            return 0;
        }
        *p++ = nlen;
        memcpy(p, m->block, nlen);
        p += nlen;
        break;
    default:
        return 0;
    }
    size_t len = p - (buf + MIG_RP_HDR_LEN);
    put16(put16(buf, m->type), len);
    return len + MIG_RP_HDR_LEN;
}

static bool rp_cstr(const uint8_t *p, size_t len, char *out, const char *what,
                    GError **errp)
{
    if (len < 1 || p[0] == 0 || (size_t)p[0] + 1 != len) {
        error_setg(errp, "Malformed %s message on the return path", what);
        return false;
    }
    /* As on the forward stream: names are C strings, a NUL would alias another. */
    if (memchr(p + 1, 0, p[0])) {
        error_setg(errp, "Malformed %s message on the return path (NUL byte in its text)",
                   what);
        return false;
    }
    memcpy(out, p + 1, p[0]);
    out[p[0]] = '\0';
    return true;
}

bool mig_rp_decode(unsigned type, const uint8_t *p, size_t len, MigRpMsg *m,
                   GError **errp)
{
    static const int fixed[MIG_RP_MSG__MAX] = {
        [MIG_RP_MSG_INVALID] = -2,
        [MIG_RP_MSG_SHUT] = 4,
        [MIG_RP_MSG_PONG] = 4,
        [MIG_RP_MSG_REQ_PAGES_ID] = -1,
        [MIG_RP_MSG_REQ_PAGES] = 12,
        [MIG_RP_MSG_RECV_BITMAP] = -1,
        [MIG_RP_MSG_RESUME_ACK] = 4,
        [7] = -2,
        [MIG_RP_MSG_ERROR] = -1,
    };

    memset(m, 0, sizeof(*m));
    if (type >= MIG_RP_MSG__MAX || fixed[type] == -2) {
        error_setg(errp, "Received invalid message 0x%04x on the return path",
                   type);
        return false;
    }
    if (len > MIG_RP_MAX_LEN ||
        (fixed[type] >= 0 && len != (size_t)fixed[type])) {
        error_setg(errp, "Received %s message with bad length %zu on the "
                   "return path", mig_rp_msg_name(type), len);
        return false;
    }
    m->type = type;
    switch (type) {
    case MIG_RP_MSG_SHUT:
    case MIG_RP_MSG_PONG:
    case MIG_RP_MSG_RESUME_ACK:
        m->value = be32_load(p);
        return true;
    case MIG_RP_MSG_REQ_PAGES:
    case MIG_RP_MSG_REQ_PAGES_ID:
        if (len < 12) {
            error_setg(errp, "Received %s message with bad length %zu on the "
                       "return path", mig_rp_msg_name(type), len);
            return false;
        }
        m->start = be64_load(p);
        m->len = be32_load(p + 8);
        if (m->len == 0 || m->start + m->len < m->start) {
            error_setg(errp, "Received page request with bad range "
                       "0x%" PRIx64 "+0x%" PRIx32 " on the return path",
                       m->start, m->len);
            return false;
        }
        if (type == MIG_RP_MSG_REQ_PAGES) {
            return true;
        }
        return rp_cstr(p + 12, len - 12, m->block, "REQ_PAGES_ID", errp);
    case MIG_RP_MSG_RECV_BITMAP:
        return rp_cstr(p, len, m->block, "RECV_BITMAP", errp);
    case MIG_RP_MSG_ERROR:
        return rp_cstr(p, len, m->block, "ERROR", errp);
    }
    return false;
}

/* --- DISCARD --- */

bool mig_cmd_discard_encode(const char *block, const MigDiscardRange *r,
                            unsigned n, GByteArray *out, GError **errp)
{
    size_t nlen = strlen(block);

    if (nlen == 0 || nlen > STREAM_MAX_CSTR) {
        error_setg(errp, "Invalid RAM block name '%s' for discard", block);
        return false;
    }
    if (n == 0 || n > MIG_DISCARD_MAX_RANGES) {
        error_setg(errp, "Invalid discard range count %u", n);
        return false;
    }
    ba_cstr(out, block);
    for (unsigned i = 0; i < n; i++) {
        ba_be64(out, r[i].start);
        ba_be64(out, r[i].length);
    }
    return true;
}

int mig_cmd_discard_decode(const uint8_t *p, size_t len, char *block,
                           MigDiscardRange *r, GError **errp)
{
    if (len < 1 || p[0] == 0 || len < 1u + p[0] + 16 ||
        (len - 1 - p[0]) % 16 != 0 ||
        (len - 1 - p[0]) / 16 > MIG_DISCARD_MAX_RANGES) {
        error_setg(errp, "Malformed POSTCOPY_RAM_DISCARD command (length %zu)",
                   len);
        return -1;
    }
    size_t nlen = p[0];
    if (memchr(p + 1, 0, nlen)) {
        error_setg(errp, "Malformed POSTCOPY_RAM_DISCARD command (NUL byte in the block "
                   "name)");
        return -1;
    }
    memcpy(block, p + 1, nlen);
    block[nlen] = '\0';
    const uint8_t *q = p + 1 + nlen;
    int n = (len - 1 - nlen) / 16;
    for (int i = 0; i < n; i++, q += 16) {
        r[i].start = be64_load(q);
        r[i].length = be64_load(q + 8);
        if (r[i].length == 0 || r[i].start + r[i].length < r[i].start) {
            error_setg(errp, "Malformed POSTCOPY_RAM_DISCARD range "
                       "0x%" PRIx64 "+0x%" PRIx64 " for '%s'", r[i].start,
                       r[i].length, block);
            return -1;
        }
    }
    return n;
}

/* --- text from the peer --- */

char *mig_text_sanitize(const char *text)
{
    GString *out = g_string_new(NULL);
    const char *p = text;

    while (*p) {
        gunichar c = g_utf8_get_char_validated(p, -1);
        if (c != (gunichar)-1 && c != (gunichar)-2 && c != '\\' && g_unichar_isprint(c)) {
            const char *next = g_utf8_next_char(p);
            g_string_append_len(out, p, next - p);
            p = next;
        } else {
            /* One byte at a time: control bytes, invalid UTF-8, the escape itself. */
            g_string_append_printf(out, "\\x%02x", (unsigned char)*p);
            p++;
        }
    }
    return g_string_free(out, FALSE);
}
