/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest memory: mapping the regions of a memory table from the fds the
 * front-end sent (checked against the files' sizes, so a lying table cannot
 * make us fault past the end of a file), and translating guest-physical and
 * front-end virtual addresses to ours.
 */
#include "vub-internal.h"

#include <errno.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static bool range_ok(uint64_t start, uint64_t len, uint64_t *end)
{
    if (len == 0 || start > UINT64_MAX - len) {
        return false;
    }
    *end = start + len;
    return true;
}

void *vub_gpa_to_host_partial(VubDev *dev, uint64_t gpa, uint64_t *contig, VubRegion **region)
{
    for (unsigned i = 0; i < dev->nregions; i++) {
        VubRegion *r = &dev->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size) {
            *contig = r->size - (gpa - r->gpa);
            if (region) {
                *region = r;
            }
            return r->host + (gpa - r->gpa);
        }
    }
    *contig = 0;
    return NULL;
}

void *vub_gpa_to_host(VubDev *dev, uint64_t gpa, uint64_t len, VubRegion **region)
{
    uint64_t contig;
    void *p = vub_gpa_to_host_partial(dev, gpa, &contig, region);

    if (!p || len > contig) {
        return NULL;
    }
    return p;
}

void *vub_uva_to_host(VubDev *dev, uint64_t uva, uint64_t len, VubRegion **region)
{
    for (unsigned i = 0; i < dev->nregions; i++) {
        VubRegion *r = &dev->regions[i];
        if (uva >= r->uva && uva - r->uva < r->size) {
            if (len > r->size - (uva - r->uva)) {
                return NULL;
            }
            if (region) {
                *region = r;
            }
            return r->host + (uva - r->uva);
        }
    }
    return NULL;
}

void vub_regions_unmap(VubRegion *regions, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (regions[i].map_addr) {
            munmap(regions[i].map_addr, regions[i].map_len);
        }
        free(regions[i].seen);
        memset(&regions[i], 0, sizeof(regions[i]));
    }
}

/* The page size mappings of @fd use: the huge page size on hugetlbfs. */
static size_t fd_page_size(int fd)
{
    struct statfs fs;
    long ps = sysconf(_SC_PAGESIZE);

    if (fstatfs(fd, &fs) == 0 && (unsigned long)fs.f_type == HUGETLBFS_MAGIC && fs.f_bsize > 0) {
        return (size_t)fs.f_bsize;
    }
    return ps > 0 ? (size_t)ps : 4096;
}

static bool map_one(VubDev *dev, unsigned i, const VhostUserMemRegion *in, int fd,
                    bool postcopy, VubRegion *r, VubError *err)
{
    uint64_t gpa_end, file_end;
    struct stat st;

    /* Ranges were checked by vub_regions_map. */
    gpa_end = in->guest_phys_addr + in->memory_size;
    file_end = in->mmap_offset + in->memory_size;
    if (fstat(fd, &st) < 0) {
        vub_error_set(err, "region %u: fd %d is not usable: %s", i, fd, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        vub_error_set(err, "region %u: its fd is not a shared memory file (memfd, shm,"
                      " hugetlbfs), so it cannot be mapped", i);
        return false;
    }
    if ((uint64_t)st.st_size < file_end) {
        vub_error_set(err, "region %u ends at offset 0x%" PRIx64 " of its file, which is only"
                      " 0x%" PRIx64 " bytes long", i, file_end, (uint64_t)st.st_size);
        return false;
    }
    size_t ps = fd_page_size(fd);
    uint64_t map_off = in->mmap_offset & ~((uint64_t)ps - 1);
    uint64_t map_len = file_end - map_off;
    map_len = (map_len + ps - 1) & ~((uint64_t)ps - 1);
    if (map_len > SIZE_MAX || (off_t)map_off < 0) {
        vub_error_set(err, "region %u is too large to map", i);
        return false;
    }
    /*
     * Postcopy: nothing may touch the region before it is registered with our
     * userfaultfd (after the front-end's ack), so it starts inaccessible.
     */
    void *p = mmap(NULL, (size_t)map_len, postcopy ? PROT_NONE : PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_NORESERVE, fd, (off_t)map_off);
    if (p == MAP_FAILED) {
        vub_error_set(err, "region %u: mapping 0x%" PRIx64 " bytes at offset 0x%" PRIx64
                      " failed: %s", i, map_len, map_off, strerror(errno));
        return false;
    }
    r->gpa = in->guest_phys_addr;
    r->size = in->memory_size;
    r->uva = in->userspace_addr;
    r->mmap_offset = in->mmap_offset;
    r->map_addr = p;
    r->map_len = (size_t)map_len;
    r->host = (uint8_t *)p + (in->mmap_offset - map_off);
    r->page_size = ps;
    vub_log(dev, VUB_LOG_INFO, "region %u: guest 0x%" PRIx64 "-0x%" PRIx64 ", %" PRIu64
            " MiB, front-end 0x%" PRIx64 ", ours %p%s", i, r->gpa, gpa_end - 1,
            r->size >> 20, r->uva, (void *)r->host,
            postcopy ? " (postcopy, not yet accessible)" : "");
    return true;
}

bool vub_regions_map(VubDev *dev, const VhostUserMemTable *table, const int *fds,
                     bool postcopy, VubRegion *out, VubError *err)
{
    unsigned n = table->nregions;
    bool ok = true;

    memset(out, 0, sizeof(*out) * VHOST_USER_MEM_REGIONS_MAX);
    for (unsigned i = 0; i < n && ok; i++) {
        const VhostUserMemRegion *a = &table->regions[i];
        uint64_t end;
        if (!range_ok(a->guest_phys_addr, a->memory_size, &end) ||
            !range_ok(a->userspace_addr, a->memory_size, &end) ||
            !range_ok(a->mmap_offset, a->memory_size, &end)) {
            vub_error_set(err, "region %u (guest 0x%" PRIx64 ", size 0x%" PRIx64 ", offset 0x%"
                          PRIx64 ") is empty or wraps around the address space", i,
                          a->guest_phys_addr, a->memory_size, a->mmap_offset);
            ok = false;
        }
    }
    for (unsigned i = 0; i < n && ok; i++) {
        const VhostUserMemRegion *a = &table->regions[i];
        for (unsigned j = 0; j < i; j++) {
            const VhostUserMemRegion *b = &table->regions[j];
            if (a->guest_phys_addr < b->guest_phys_addr + b->memory_size &&
                b->guest_phys_addr < a->guest_phys_addr + a->memory_size) {
                vub_error_set(err, "regions %u and %u overlap in guest-physical space", j, i);
                ok = false;
                break;
            }
        }
        if (ok) {
            ok = map_one(dev, i, a, fds[i], postcopy, &out[i], err);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        close(fds[i]);
    }
    if (!ok) {
        vub_regions_unmap(out, n);
    }
    return ok;
}
