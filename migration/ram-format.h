/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Encoding of RAM records inside the payload of the "ram" section (START,
 * PART, END): a be64 word holding the page-aligned offset in its block and
 * flags in the low 12 bits, then a block name unless CONTINUE, then the
 * record's data. Pure: no knowledge of guest memory or KVM; ram.c uses it.
 * Byte layouts: docs/devel/migration/stream.md, "RAM records".
 */
#ifndef GODWIT_MIGRATION_RAM_FORMAT_H
#define GODWIT_MIGRATION_RAM_FORMAT_H

#include "qemu/osdep.h"
#include "migration/format.h"
#include "migration/stream.h"

/* The unit of RAM records (target page); offsets are multiples of it. */
#define RAM_REC_PAGE_SIZE   GW_PAGE_SIZE

/* Flags in the low bits of the offset word. Exactly one type flag is set. */
#define RAM_REC_ZERO        0x002  /* one zero page, no data */
#define RAM_REC_MEM_SIZE    0x004  /* setup: offset word = total bytes; block list */
#define RAM_REC_PAGE        0x008  /* one page of data follows */
#define RAM_REC_EOS         0x010  /* end of this section payload */
#define RAM_REC_CONTINUE    0x020  /* modifier: same block as the previous record */
#define RAM_REC_ZERO_RUN    0x040  /* be32 n: n consecutive zero pages */
#define RAM_REC_PAGE_RUN    0x080  /* be32 n: n consecutive pages of data follow */
#define RAM_REC_FLAGS_MASK  0xfffULL
#define RAM_REC_TYPE_MASK   (RAM_REC_ZERO | RAM_REC_MEM_SIZE | RAM_REC_PAGE | \
                             RAM_REC_EOS | RAM_REC_ZERO_RUN | RAM_REC_PAGE_RUN)
/* Longest run a loader accepts (1 GiB of 4 KiB pages). */
#define RAM_REC_MAX_RUN     (1u << 18)
/* The version of the "ram" section these records belong to. */
#define RAM_SECTION_VERSION 1

/* --- source --- */

/*
 * Per-channel writer state: the block named by the previous record, so
 * the next one for the same block can use CONTINUE. Reset it whenever the
 * reader may have lost track (new channel, recovery).
 */
typedef struct RamWriter {
    char last[STREAM_MAX_CSTR + 1];
    bool have_last;
} RamWriter;

void ram_writer_reset(RamWriter *w);
/* Setup record: every block's name, size and page size (sizes page-aligned). */
void ram_put_mem_size(MigStream *s, const MigRamBlockInfo *blocks, unsigned n);
/* @npages zero pages from @offset: ZERO for one, ZERO_RUN for more. */
void ram_put_zero(MigStream *s, RamWriter *w, const char *block,
                  uint64_t offset, uint32_t npages);
/*
 * @npages pages of data at @host (guest memory, not copied: it must stay
 * mapped until the stream's next flush). PAGE for one, PAGE_RUN for more,
 * which costs one header and one iovec for the whole run.
 */
void ram_put_pages(MigStream *s, RamWriter *w, const char *block,
                   uint64_t offset, const void *host, uint32_t npages);
void ram_put_eos(MigStream *s);

/* True if @len bytes at @p are all zero (fast; @len a multiple of 64). */
bool ram_buffer_is_zero(const void *p, size_t len);

/* --- destination --- */

typedef enum RamRecordType {
    RAM_RECORD_ZERO,        /* npages zero pages at offset */
    RAM_RECORD_PAGES,       /* npages pages of data follow in the stream */
    RAM_RECORD_EOS,
    RAM_RECORD_MEM_SIZE,    /* total in .offset; call ram_get_mem_size_blocks */
} RamRecordType;

typedef struct RamRecord {
    RamRecordType type;
    const char *block;      /* points into the RamReader; valid until the next record */
    uint64_t offset;        /* bytes, page-aligned */
    uint32_t npages;        /* ZERO/PAGES: >= 1 */
} RamRecord;

typedef struct RamReader {
    char last[STREAM_MAX_CSTR + 1];
    bool have_last;
} RamReader;

void ram_reader_reset(RamReader *r);
/*
 * Read one record header (hostile input: flags, names and run lengths are
 * checked). For RAM_RECORD_PAGES the caller must then consume exactly
 * npages * RAM_REC_PAGE_SIZE bytes (stream_get_buffer straight into guest
 * memory, or stream_get_ptr page by page for UFFDIO_COPY) after checking
 * the range with ram_record_check_range().
 */
bool ram_get_record(MigStream *s, RamReader *r, RamRecord *rec, GError **errp);
/* The block list of a MEM_SIZE record of @total bytes (g_free the array). */
bool ram_get_mem_size_blocks(MigStream *s, uint64_t total,
                             MigRamBlockInfo **blocks, unsigned *n,
                             GError **errp);
/* The record fits in a block of @block_size bytes. */
bool ram_record_check_range(const RamRecord *rec, uint64_t block_size,
                            GError **errp);
/*
 * Make @len bytes at @host read as zero without needlessly touching them.
 * Destination RAM that this process created empty (anonymous, a new memfd
 * or file: RAMBlock.zero_at_start) already reads as zero where it was
 * never written: if the loader knows that of the range (@known_untouched,
 * from zero_at_start and its own "received" bitmap) nothing is done and no
 * memory gets populated. A reused file's pages hold old data: never pass
 * true for them. Otherwise the pages are read first and
 * only written if not already zero. Must not be used on ranges registered
 * with userfaultfd (a read would fault): use UFFDIO_ZEROPAGE there.
 * Returns true if anything was written.
 */
bool ram_zero_pages(void *host, size_t len, bool known_untouched);

#endif
