/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * RAM record encoding and decoding (see ram-format.h). The writer elides
 * repeated block names with CONTINUE and turns consecutive pages into one
 * run record, so a run of data pages costs one header and one iovec.
 */
#include "qemu/osdep.h"
#include "qemu/buffer-is-zero.h"

#include "migration/ram-format.h"

void ram_writer_reset(RamWriter *w)
{
    w->have_last = false;
    w->last[0] = '\0';
}

void ram_reader_reset(RamReader *r)
{
    r->have_last = false;
    r->last[0] = '\0';
}

void ram_put_mem_size(MigStream *s, const MigRamBlockInfo *blocks, unsigned n)
{
    uint64_t total = 0;

    for (unsigned i = 0; i < n; i++) {
        g_assert(blocks[i].size % RAM_REC_PAGE_SIZE == 0);
        total += blocks[i].size;
    }
    stream_put_be64(s, total | RAM_REC_MEM_SIZE);
    for (unsigned i = 0; i < n; i++) {
        stream_put_cstr(s, blocks[i].name);
        stream_put_be64(s, blocks[i].size);
        stream_put_be64(s, blocks[i].page_size);
    }
}

/* The offset word, plus the block name when it changed. */
static void put_head(MigStream *s, RamWriter *w, const char *block,
                     uint64_t offset, uint64_t flags)
{
    g_assert(offset % RAM_REC_PAGE_SIZE == 0);
    if (w->have_last && !strcmp(w->last, block)) {
        stream_put_be64(s, offset | flags | RAM_REC_CONTINUE);
        return;
    }
    stream_put_be64(s, offset | flags);
    stream_put_cstr(s, block);
    g_strlcpy(w->last, block, sizeof(w->last));
    w->have_last = true;
}

void ram_put_zero(MigStream *s, RamWriter *w, const char *block,
                  uint64_t offset, uint32_t npages)
{
    while (npages) {
        uint32_t n = MIN(npages, RAM_REC_MAX_RUN);
        if (n == 1) {
            put_head(s, w, block, offset, RAM_REC_ZERO);
        } else {
            put_head(s, w, block, offset, RAM_REC_ZERO_RUN);
            stream_put_be32(s, n);
        }
        offset += (uint64_t)n * RAM_REC_PAGE_SIZE;
        npages -= n;
    }
}

void ram_put_pages(MigStream *s, RamWriter *w, const char *block,
                   uint64_t offset, const void *host, uint32_t npages)
{
    const uint8_t *p = host;

    while (npages) {
        uint32_t n = MIN(npages, RAM_REC_MAX_RUN);
        size_t bytes = (size_t)n * RAM_REC_PAGE_SIZE;
        if (n == 1) {
            put_head(s, w, block, offset, RAM_REC_PAGE);
        } else {
            put_head(s, w, block, offset, RAM_REC_PAGE_RUN);
            stream_put_be32(s, n);
        }
        stream_put_page(s, p, bytes);
        offset += bytes;
        p += bytes;
        npages -= n;
    }
}

void ram_put_eos(MigStream *s)
{
    stream_put_be64(s, RAM_REC_EOS);
}

bool ram_buffer_is_zero(const void *p, size_t len)
{
    return buffer_is_zero(p, len);
}

bool ram_get_record(MigStream *s, RamReader *r, RamRecord *rec, GError **errp)
{
    uint64_t word = stream_get_be64(s);

    memset(rec, 0, sizeof(*rec));
    if (!stream_check(s, errp)) {
        return false;
    }
    unsigned flags = word & RAM_REC_FLAGS_MASK;
    unsigned type = flags & RAM_REC_TYPE_MASK;
    uint64_t offset = word & ~RAM_REC_FLAGS_MASK;

    if (flags & ~(RAM_REC_TYPE_MASK | RAM_REC_CONTINUE)) {
        error_setg(errp, "Unknown RAM record flags 0x%x", flags);
        return false;
    }
    if (type == 0 || (type & (type - 1))) {
        error_setg(errp, "Invalid RAM record flags 0x%x", flags);
        return false;
    }
    if (type == RAM_REC_EOS || type == RAM_REC_MEM_SIZE) {
        if (flags & RAM_REC_CONTINUE) {
            error_setg(errp, "Invalid RAM record flags 0x%x", flags);
            return false;
        }
        if (type == RAM_REC_EOS && offset) {
            error_setg(errp, "Malformed RAM end-of-section record");
            return false;
        }
        rec->type = type == RAM_REC_EOS ? RAM_RECORD_EOS : RAM_RECORD_MEM_SIZE;
        rec->offset = offset;
        return true;
    }
    if (flags & RAM_REC_CONTINUE) {
        if (!r->have_last) {
            error_setg(errp, "RAM record continues a block but none was "
                       "named before");
            return false;
        }
    } else {
        if (!stream_get_cstr(s, r->last)) {
            stream_check(s, errp);
            return false;
        }
        if (!r->last[0]) {
            error_setg(errp, "RAM record with an empty block name");
            r->have_last = false;
            return false;
        }
        r->have_last = true;
    }
    rec->block = r->last;
    rec->offset = offset;
    rec->npages = 1;
    if (type == RAM_REC_ZERO_RUN || type == RAM_REC_PAGE_RUN) {
        rec->npages = stream_get_be32(s);
        if (!stream_check(s, errp)) {
            return false;
        }
        if (rec->npages < 2 || rec->npages > RAM_REC_MAX_RUN) {
            error_setg(errp, "Invalid RAM run length %" PRIu32 " in block '%s'",
                       rec->npages, r->last);
            return false;
        }
    }
    rec->type = (type == RAM_REC_ZERO || type == RAM_REC_ZERO_RUN) ?
                RAM_RECORD_ZERO : RAM_RECORD_PAGES;
    return true;
}

bool ram_get_mem_size_blocks(MigStream *s, uint64_t total,
                             MigRamBlockInfo **blocks, unsigned *n,
                             GError **errp)
{
    g_autofree MigRamBlockInfo *b = NULL;
    uint64_t sum = 0;
    unsigned cnt = 0;

    while (sum < total) {
        if (cnt == MIG_CONFIG_MAX_BLOCKS) {
            error_setg(errp, "Too many RAM blocks in the RAM setup record");
            return false;
        }
        b = g_renew(MigRamBlockInfo, b, cnt + 1);
        MigRamBlockInfo *bi = &b[cnt++];
        stream_get_cstr(s, bi->name);
        bi->size = stream_get_be64(s);
        bi->page_size = stream_get_be64(s);
        if (!stream_check(s, errp)) {
            return false;
        }
        if (bi->size == 0 || bi->size > total - sum) {
            error_setg(errp, "RAM block '%s' size %" PRIu64 " does not fit "
                       "the announced total of %" PRIu64 " bytes", bi->name,
                       bi->size, total);
            return false;
        }
        sum += bi->size;
    }
    *blocks = g_steal_pointer(&b);
    *n = cnt;
    return true;
}

bool ram_record_check_range(const RamRecord *rec, uint64_t block_size,
                            GError **errp)
{
    uint64_t len = (uint64_t)rec->npages * RAM_REC_PAGE_SIZE;

    if (rec->offset >= block_size || len > block_size - rec->offset) {
        error_setg(errp, "RAM record at 0x%" PRIx64 " (+%" PRIu32 " pages) is "
                   "outside block '%s' of %" PRIu64 " bytes", rec->offset,
                   rec->npages, rec->block ? rec->block : "?", block_size);
        return false;
    }
    return true;
}

bool ram_zero_pages(void *host, size_t len, bool known_untouched)
{
    if (known_untouched || ram_buffer_is_zero(host, len)) {
        return false;
    }
    memset(host, 0, len);
    return true;
}
