/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Postcopy (protocol feature PAGEFAULT): the back-end's own userfaultfd,
 * handed to the front-end at POSTCOPY_ADVISE; registering the mapped
 * regions once the front-end has acknowledged our addresses; and fault
 * accounting. We never read the userfaultfd: the front-end polls it,
 * fetches each missing page from the source, places it through its own
 * mapping of the shared file and wakes us with UFFDIO_WAKE. The data
 * thread simply sleeps in the fault meanwhile.
 *
 * Accounting: before the data path first uses a page of guest memory it
 * asks mincore() whether the page is in the shared file (for shmem that is
 * page-cache residency, exactly "will this access raise a userfault"),
 * then reads one byte of it under a clock. A page that was missing counts
 * as a fault, the time as its resolution latency.
 */
#include "vub-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static int open_uffd(int *why)
{
    int flags = O_CLOEXEC | O_NONBLOCK;
    int fd = (int)syscall(SYS_userfaultfd, flags);

    if (fd >= 0) {
        return fd;
    }
    *why = errno;
    /*
     * With vm.unprivileged_userfaultfd=0 an unprivileged process may still
     * handle faults raised in user mode, which is all the data path does
     * (it never passes guest memory to a system call).
     */
    fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
    if (fd >= 0) {
        return fd;
    }
    int dev_fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev_fd >= 0) {
        fd = ioctl(dev_fd, USERFAULTFD_IOC_NEW, flags);
        close(dev_fd);
    }
    return fd;
}

int vub_postcopy_advise(VubDev *dev, VubError *err)
{
    int why = 0;
    int fd = open_uffd(&why);
    struct uffdio_api api = { .api = UFFD_API, .features = 0 };

    if (fd < 0) {
        vub_error_set(err, "cannot create a userfaultfd (%s): postcopy needs the userfaultfd"
                      " system call (vm.unprivileged_userfaultfd=1 or CAP_SYS_PTRACE) or"
                      " access to /dev/userfaultfd", strerror(why));
        return -1;
    }
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        vub_error_set(err, "UFFDIO_API on our userfaultfd failed: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!(api.features & UFFD_FEATURE_MISSING_SHMEM)) {
        vub_error_set(err, "this kernel's userfaultfd cannot report missing pages of shared"
                      " memory, which vhost-user postcopy needs");
        close(fd);
        return -1;
    }
    return fd;
}

bool vub_postcopy_register(VubDev *dev, VubRegion *regions, unsigned n, VubError *err)
{
    for (unsigned i = 0; i < n; i++) {
        VubRegion *r = &regions[i];
        struct uffdio_register reg = {
            .range = { .start = (uintptr_t)r->map_addr, .len = r->map_len },
            .mode = UFFDIO_REGISTER_MODE_MISSING,
        };
        const uint64_t need = (1ull << _UFFDIO_WAKE) | (1ull << _UFFDIO_COPY);

        /*
         * Drop any page table entries of ours (the data stays in the file):
         * a page must fault until the front-end has placed it.
         */
        if (madvise(r->map_addr, r->map_len, MADV_DONTNEED) < 0) {
            vub_log(dev, VUB_LOG_WARNING, "region %u: MADV_DONTNEED failed (%s); pages this"
                    " process mapped before will not fault", i, strerror(errno));
        }
        (void)madvise(r->map_addr, r->map_len, MADV_NOHUGEPAGE);
        if (ioctl(dev->uffd, UFFDIO_REGISTER, &reg) < 0) {
            vub_error_set(err, "region %u: registering %zu bytes at %p with our userfaultfd"
                          " failed: %s", i, r->map_len, r->map_addr, strerror(errno));
            return false;
        }
        r->uffd_registered = true;
        if ((reg.ioctls & need) != need) {
            vub_error_set(err, "region %u: the kernel cannot resolve missing pages of this"
                          " memory type through userfaultfd (ioctls 0x%llx)", i,
                          (unsigned long long)reg.ioctls);
            return false;
        }
        if (mprotect(r->map_addr, r->map_len, PROT_READ | PROT_WRITE) < 0) {
            vub_error_set(err, "region %u: making it accessible failed: %s", i, strerror(errno));
            return false;
        }
        size_t pages = r->map_len / r->page_size + 1;
        r->seen = calloc((pages + 63) / 64, sizeof(uint64_t));
        if (!r->seen) {
            vub_error_set(err, "out of memory for the fault accounting of region %u", i);
            return false;
        }
    }
    pthread_mutex_lock(&dev->fault_lock);
    if (!dev->fault_samples) {
        dev->fault_samples = calloc(VUB_FAULT_SAMPLES, sizeof(uint64_t));
    }
    pthread_mutex_unlock(&dev->fault_lock);
    return true;
}

/* dp_lock held. */
void vub_fault_accounting_stop(VubDev *dev)
{
    dev->fault_accounting = false;
    for (unsigned i = 0; i < dev->nregions; i++) {
        free(dev->regions[i].seen);
        dev->regions[i].seen = NULL;
    }
}

void vub_postcopy_end(VubDev *dev)
{
    if (dev->uffd >= 0) {
        close(dev->uffd);
        dev->uffd = -1;
    }
    atomic_store(&dev->postcopy_listening, false);
    pthread_mutex_lock(&dev->dp_lock);
    vub_fault_accounting_stop(dev);
    pthread_mutex_unlock(&dev->dp_lock);
}

static void record_fault(VubDev *dev, uint64_t ns)
{
    pthread_mutex_lock(&dev->fault_lock);
    if (dev->fault_samples && dev->faults < VUB_FAULT_SAMPLES) {
        dev->fault_samples[dev->faults] = ns;
    }
    dev->faults++;
    dev->fault_ns_total += ns;
    if (ns > dev->fault_ns_max) {
        dev->fault_ns_max = ns;
    }
    pthread_mutex_unlock(&dev->fault_lock);
}

void vub_postcopy_touch(VubDev *dev, VubRegion *r, const void *p, uint64_t len)
{
    if (!dev->fault_accounting || !r || !r->seen || len == 0) {
        return;
    }
    uintptr_t base = (uintptr_t)r->map_addr;
    uintptr_t start = (uintptr_t)p;
    if (start < base || start - base >= r->map_len || len > r->map_len - (start - base)) {
        return;
    }
    size_t ps = r->page_size;
    size_t first = (start - base) / ps;
    size_t last = (start - base + len - 1) / ps;
    for (size_t i = first; i <= last; i++) {
        uint64_t bit = 1ull << (i % 64);
        if (r->seen[i / 64] & bit) {
            continue;
        }
        volatile const uint8_t *page = (const uint8_t *)(base + i * ps);
        unsigned char vec = 1;
        bool missing = mincore((void *)(uintptr_t)page, 1, &vec) == 0 && !(vec & 1);
        uint64_t t0 = vub_now_ns();
        (void)*page;        /* sleeps here until the front-end wakes us */
        uint64_t dt = vub_now_ns() - t0;
        r->seen[i / 64] |= bit;
        if (missing) {
            record_fault(dev, dt);
        }
    }
}
