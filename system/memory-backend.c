/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest RAM backends. The mapping is aligned to 2 MiB so that guest-physical
 * and host-virtual addresses agree in their low 21 bits and KVM (and THP)
 * can use huge pages.
 */
#include "qemu/osdep.h"
#include "sysemu/memory-backend.h"
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <linux/memfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#define RAM_ALIGN (2ULL << 20)

/* Reserve an aligned window of address space and map @fd (or anon) into it. */
static uint8_t *map_aligned(uint64_t size, size_t align, int fd, uint64_t off,
                            bool shared, GError **errp)
{
    uint64_t total = size + align;
    uint8_t *resv = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
                         MAP_NORESERVE, -1, 0);
    if (resv == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot reserve %" PRIu64 " bytes of address space",
                         total);
        return NULL;
    }
    uint8_t *base = (uint8_t *)GW_ROUND_UP((uintptr_t)resv, align);
    int flags = MAP_FIXED | MAP_NORESERVE | (shared ? MAP_SHARED : MAP_PRIVATE);
    if (fd < 0) {
        flags |= MAP_ANONYMOUS;
    }
    void *p = mmap(base, size, PROT_READ | PROT_WRITE, flags, fd, (off_t)off);
    if (p == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot map %" PRIu64 " bytes of guest RAM", size);
        munmap(resv, total);
        return NULL;
    }
    if (base > resv) {
        munmap(resv, (size_t)(base - resv));
    }
    uint8_t *end = base + size;
    if (resv + total > end) {
        munmap(end, (size_t)(resv + total - end));
    }
    return base;
}

static bool open_backend_file(RAMBlock *rb, const MemBackendOpts *o, GError **errp)
{
    struct stat st;
    struct statfs fs;
    int fd;

    if (stat(o->mem_path, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* A directory (e.g. a hugetlbfs mount): make an unlinked file in it. */
        g_autofree char *tmpl = g_build_filename(o->mem_path, "godwit_back_mem.XXXXXX", NULL);
        fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
            error_setg_errno(errp, errno, "cannot create a file in mem-path '%s'", o->mem_path);
            return false;
        }
        unlink(tmpl);
        rb->zero_at_start = true;
    } else {
        struct stat fst;

        fd = open(o->mem_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            error_setg_errno(errp, errno, "cannot open mem-path '%s'", o->mem_path);
            return false;
        }
        /* An existing file keeps its content: only an empty one reads as zero. */
        rb->zero_at_start = fstat(fd, &fst) == 0 && fst.st_size == 0;
    }
    if (fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC) {
        rb->hugetlb = true;
        rb->page_size = (size_t)fs.f_bsize;
    }
    rb->fd = fd;
    rb->mem_path = g_strdup(o->mem_path);
    return true;
}

RAMBlock *ram_block_create(const char *name, uint64_t size, const MemBackendOpts *o,
                           GError **errp)
{
    g_autofree RAMBlock *rb = g_new0(RAMBlock, 1);
    size_t align = RAM_ALIGN;

    g_strlcpy(rb->name, name, sizeof(rb->name));
    rb->size = size;
    rb->fd = -1;
    rb->page_size = (size_t)sysconf(_SC_PAGESIZE);

    if (!o || o->type == MEM_BACKEND_RAM) {
        rb->shared = o && o->share;
        rb->zero_at_start = true;
    } else if (o->type == MEM_BACKEND_MEMFD) {
        rb->zero_at_start = true;
        unsigned int flags = MFD_CLOEXEC;
        if (o->hugetlb) {
            flags |= MFD_HUGETLB;
            if (o->hugetlbsize) {
                flags |= (unsigned int)(__builtin_ctzll(o->hugetlbsize) << MFD_HUGE_SHIFT);
            }
        }
        rb->fd = memfd_create(name, flags);
        if (rb->fd < 0) {
            error_setg_errno(errp, errno, "memory-backend-memfd '%s': memfd_create failed",
                             o->id);
            return NULL;
        }
        rb->shared = o->share;
        if (o->hugetlb) {
            struct statfs fs;
            rb->hugetlb = true;
            rb->page_size = o->hugetlbsize ? (size_t)o->hugetlbsize :
                            (fstatfs(rb->fd, &fs) == 0 ? (size_t)fs.f_bsize : 2u << 20);
        }
    } else {
        if (!open_backend_file(rb, o, errp)) {
            g_prefix_error(errp, "memory-backend-file '%s': ", o->id);
            return NULL;
        }
        rb->shared = o->share;
    }
    if (o) {
        rb->backend_id = g_strdup(o->id);
    }
    if (rb->fd >= 0) {
        if (size % rb->page_size) {
            error_setg(errp, "memory backend '%s': size %" PRIu64
                       " is not a multiple of its page size %zu", o->id, size, rb->page_size);
            close(rb->fd);
            return NULL;
        }
        if (ftruncate(rb->fd, (off_t)size) < 0) {
            error_setg_errno(errp, errno, "memory backend '%s': cannot size it to %" PRIu64
                             " bytes", o->id, size);
            close(rb->fd);
            return NULL;
        }
        align = MAX(align, rb->page_size);
    }
    rb->host = map_aligned(size, align, rb->fd, 0, rb->shared, errp);
    if (!rb->host) {
        if (rb->fd >= 0) {
            close(rb->fd);
        }
        return NULL;
    }
    if (rb->fd < 0 && !rb->shared) {
        /* As QEMU: anonymous RAM may use transparent huge pages. */
        madvise(rb->host, size, MADV_HUGEPAGE);
    }
    /* Guest RAM is not worth a core dump of many GiB. */
    madvise(rb->host, size, MADV_DONTDUMP);
    if (o && o->prealloc) {
        if (madvise(rb->host, size, 23 /* MADV_POPULATE_WRITE */) < 0) {
            for (uint64_t off = 0; off < size; off += rb->page_size) {
                rb->host[off] = 0;
            }
        }
    }
    return g_steal_pointer(&rb);
}
