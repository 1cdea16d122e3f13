/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dirty log for precopy migration: a bitmap the front-end shares with
 * SET_LOG_BASE (LOG_SHMFD), one bit per 4 KiB of guest-physical memory.
 * While VHOST_F_LOG_ALL is negotiated every guest page the back-end writes
 * is marked, after the write, with an atomic OR (the front-end clears bits
 * concurrently while it sends pages).
 */
#include "vub-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

bool vub_log_set_base(VubDev *dev, const VhostUserLogArea *area, int fd, VubError *err)
{
    struct stat st;
    long ps = sysconf(_SC_PAGESIZE);
    uint64_t page = ps > 0 ? (uint64_t)ps : 4096;

    if (area->mmap_size == 0 || area->mmap_size > VUB_LOG_MAX_SIZE) {
        vub_error_set(err, "a dirty log of %" PRIu64 " bytes is outside 1..%llu", area->mmap_size,
                      VUB_LOG_MAX_SIZE);
        return false;
    }
    if (area->mmap_offset > UINT64_MAX - area->mmap_size) {
        vub_error_set(err, "the dirty log's offset 0x%" PRIx64 " wraps around", area->mmap_offset);
        return false;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        vub_error_set(err, "the dirty log's fd is not a shared memory file");
        return false;
    }
    if ((uint64_t)st.st_size < area->mmap_offset + area->mmap_size) {
        vub_error_set(err, "the dirty log (offset 0x%" PRIx64 ", %" PRIu64 " bytes) ends past its"
                      " file (%" PRIu64 " bytes)", area->mmap_offset, area->mmap_size,
                      (uint64_t)st.st_size);
        return false;
    }
    uint64_t map_off = area->mmap_offset & ~(page - 1);
    uint64_t map_len = area->mmap_offset - map_off + area->mmap_size;
    void *p = mmap(NULL, (size_t)map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map_off);
    if (p == MAP_FAILED) {
        vub_error_set(err, "mapping the dirty log (%" PRIu64 " bytes) failed: %s", map_len,
                      strerror(errno));
        return false;
    }

    void *old_map;
    size_t old_len;
    pthread_mutex_lock(&dev->dp_lock);
    old_map = dev->log_map;
    old_len = dev->log_map_len;
    dev->log_map = p;
    dev->log_map_len = (size_t)map_len;
    dev->log = (uint8_t *)p + (area->mmap_offset - map_off);
    dev->log_size = area->mmap_size;
    dev->log_overflow_warned = false;
    pthread_mutex_unlock(&dev->dp_lock);
    if (old_map) {
        munmap(old_map, old_len);
    }
    vub_log(dev, VUB_LOG_INFO, "dirty log: %" PRIu64 " bytes, covers %" PRIu64
            " MiB of guest memory",
            area->mmap_size, area->mmap_size * 8 * VHOST_LOG_PAGE >> 20);
    return true;
}

/* dp_lock held (or the data thread gone). */
void vub_log_drop(VubDev *dev)
{
    if (dev->log_map) {
        munmap(dev->log_map, dev->log_map_len);
    }
    dev->log_map = NULL;
    dev->log_map_len = 0;
    dev->log = NULL;
    dev->log_size = 0;
}

bool vub_log_active(VubDev *dev)
{
    return dev->log && (dev->features & (1ull << VHOST_F_LOG_ALL));
}

void vub_log_write(VubDev *dev, uint64_t gpa, uint64_t len)
{
    if (!vub_log_active(dev) || len == 0) {
        return;
    }
    /* The guest data must be visible before the bit that makes it be sent. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    uint64_t first = gpa / VHOST_LOG_PAGE;
    uint64_t last = (len - 1 > UINT64_MAX - gpa ? UINT64_MAX : gpa + len - 1) / VHOST_LOG_PAGE;
    for (uint64_t page = first; page <= last; page++) {
        uint64_t byte = page / 8;
        if (byte >= dev->log_size) {
            if (!dev->log_overflow_warned) {
                vub_log(dev, VUB_LOG_WARNING, "guest page 0x%" PRIx64 " is beyond the %" PRIu64
                        "-byte dirty log; its writes cannot be reported", page * VHOST_LOG_PAGE,
                        dev->log_size);
                dev->log_overflow_warned = true;
            }
            break;
        }
        __atomic_fetch_or(&dev->log[byte], (uint8_t)(1u << (page % 8)), __ATOMIC_RELAXED);
    }
    atomic_fetch_add_explicit(&dev->st_log_writes, 1, memory_order_relaxed);
}
