/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Destination side of postcopy RAM: the userfaultfd on guest RAM, the fault
 * thread turning missing-page faults into de-duplicated page requests,
 * atomic placement, discards, and blocktime / fault latency statistics.
 * The received bitmap is the one truth of which pages have arrived.
 */
#include "qemu/osdep.h"
#include "migration/postcopy-ram.h"
#include "migration/postcopy-notify.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>

#define BITS_PER_WORD      64
#define FAULT_BATCH        32      /* uffd_msg read per read() */
#define COPY_RETRY_MAX     10000   /* EAGAIN retries before giving up */

#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

/* What backs the block; decides features, discard method and zero pages. */
typedef enum PostcopyMemKind {
    PC_MEM_ANON_PRIVATE,
    PC_MEM_ANON_SHARED,   /* MAP_SHARED|MAP_ANONYMOUS: shmem without an fd */
    PC_MEM_SHMEM,         /* memfd or a file on tmpfs */
    PC_MEM_HUGETLB,
} PostcopyMemKind;

/*
 * Latency histogram for percentiles: values below 16 ns exact, above that
 * 16 sub-buckets per power of two (within ~6%). O(1) to add, fixed size,
 * readable while the migration runs.
 */
#define LAT_SUB_BITS  4
#define LAT_SUB       (1u << LAT_SUB_BITS)
#define LAT_NBUCKETS  (LAT_SUB + (64 - LAT_SUB_BITS) * LAT_SUB)

typedef struct PostcopyLatHist {
    uint64_t faults;
    uint64_t total_ns;
    uint64_t max_ns;
    uint64_t hist[LAT_NBUCKETS];
} PostcopyLatHist;

/* One thread waiting on a pending page. */
typedef struct PostcopyWaiter {
    int cpu;              /* vCPU index, -1 for any other thread */
    int64_t t_ns;         /* when we read its fault */
} PostcopyWaiter;

/* A host page that was requested (or will be on resume) and is not placed. */
typedef struct PostcopyPending {
    uint64_t offset;
    bool sent;            /* request_page succeeded at least once */
    unsigned nwait, cap;
    PostcopyWaiter *wait;
} PostcopyPending;

typedef struct PostcopyExternal {
    int fd;
    PostcopyExternalFaultFn handler;    /* either a raw handler... */
    const PostcopyExternalOps *ops;     /* ...or translate/wake callbacks */
    void *opaque;
} PostcopyExternal;

struct PostcopyIncoming {
    /* Set at creation, then read-only. */
    RAMBlock *rb;
    uint8_t *host;
    uint64_t size;
    size_t hps;                  /* host page size */
    PostcopyMemKind kind;
    unsigned long *received;     /* the RAM loader's bitmap; atomic, see header */
    size_t npages_target;
    PostcopyHooks hooks;
    void *opaque;
    uint64_t features;           /* negotiated UFFD features */
    void *zero_buf;              /* hugetlbfs: a zeroed host page to copy */

    /* Owned by the incoming/listen thread (state changes are not concurrent). */
    int uffd;                    /* -1 once closed */
    int efd;                     /* eventfd: wakes the fault thread to quit */
    bool registered;
    bool thread_started;
    bool nohugepage;             /* we cleared THP on the block */
    pthread_t fault_thread;
    GArray *externals;           /* PostcopyExternal; fixed once listening */
    int quit;                    /* atomic: fault thread must exit */

    /* Everything below is protected by @lock. */
    /*
     * One placement at a time, or a hold (postcopy_placement_hold): taken
     * around each placement by the placing thread, before @lock.
     */
    GMutex place_lock;
    GMutex lock;
    bool paused;
    GHashTable *pending;         /* host page offset -> PostcopyPending */
    uint64_t missing;            /* target pages whose received bit is clear */
    PostcopyStats st;            /* counters (latency fields filled on read) */
    PostcopyLatHist lat_vcpu, lat_other;

    /* Blocktime: per vCPU, and the time all vCPUs were blocked at once. */
    int nvcpus;
    GHashTable *tid_to_cpu;      /* tid -> vCPU index + 1 */
    unsigned *vcpu_nblocked;     /* faults outstanding for the vCPU */
    int64_t *vcpu_block_start;
    uint64_t *vcpu_blocked_ns;
    uint64_t *vcpu_lat_ns;       /* sum of per-fault latency */
    uint64_t *vcpu_faults;
    int nr_blocked;              /* vCPUs with vcpu_nblocked > 0 */
    int64_t all_blocked_since;
    uint64_t total_blocked_ns;
};

static inline int64_t postcopy_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- received bitmap (atomic words: readers may look without our lock) ---- */

static bool postcopy_host_page_received(PostcopyIncoming *pi, uint64_t offset)
{
    uint64_t first = offset / GW_PAGE_SIZE;
    uint64_t n = pi->hps / GW_PAGE_SIZE;

    for (uint64_t p = first; p < first + n; p++) {
        unsigned long w = __atomic_load_n(&pi->received[p / BITS_PER_WORD], __ATOMIC_ACQUIRE);
        if (!((w >> (p % BITS_PER_WORD)) & 1)) {
            return false;
        }
    }
    return true;
}

/* Set or clear bits for target pages [first, first + n); returns bits that changed. */
static uint64_t postcopy_bits_update(unsigned long *map, uint64_t first, uint64_t n, bool set)
{
    uint64_t changed = 0;

    while (n) {
        unsigned bit = first % BITS_PER_WORD;
        unsigned cnt = (unsigned)MIN(n, (uint64_t)(BITS_PER_WORD - bit));
        unsigned long mask = (cnt == BITS_PER_WORD ? ~0UL : ((1UL << cnt) - 1)) << bit;
        unsigned long *w = &map[first / BITS_PER_WORD];
        unsigned long old;

        if (set) {
            old = __atomic_fetch_or(w, mask, __ATOMIC_RELEASE);
            changed += (uint64_t)__builtin_popcountl(mask & ~old);
        } else {
            old = __atomic_fetch_and(w, ~mask, __ATOMIC_RELEASE);
            changed += (uint64_t)__builtin_popcountl(mask & old);
        }
        first += cnt;
        n -= cnt;
    }
    return changed;
}

/* Target pages whose received bit is clear. */
static uint64_t postcopy_count_missing(const unsigned long *map, size_t npages)
{
    uint64_t missing = npages;

    for (size_t w = 0; w < GW_DIV_ROUND_UP(npages, BITS_PER_WORD); w++) {
        unsigned long v = __atomic_load_n(&map[w], __ATOMIC_ACQUIRE);
        if ((w + 1) * BITS_PER_WORD > npages) {
            v &= (1UL << (npages % BITS_PER_WORD)) - 1;
        }
        missing -= (uint64_t)__builtin_popcountl(v);
    }
    return missing;
}

/* ---- latency ---- */

static unsigned lat_index(uint64_t v)
{
    if (v < LAT_SUB) {
        return (unsigned)v;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (e - LAT_SUB_BITS)) & (LAT_SUB - 1);
    return LAT_SUB + (e - LAT_SUB_BITS) * LAT_SUB + sub;
}

/* Middle of bucket @idx. */
static uint64_t lat_value(unsigned idx)
{
    if (idx < LAT_SUB) {
        return idx;
    }
    unsigned e = (idx - LAT_SUB) / LAT_SUB + LAT_SUB_BITS;
    uint64_t sub = (idx - LAT_SUB) % LAT_SUB;
    uint64_t width = 1ULL << (e - LAT_SUB_BITS);
    return (1ULL << e) + sub * width + width / 2;
}

static void lat_add(PostcopyLatHist *h, uint64_t ns)
{
    h->faults++;
    h->total_ns += ns;
    h->max_ns = MAX(h->max_ns, ns);
    h->hist[lat_index(ns)]++;
}

static uint64_t lat_percentile(const PostcopyLatHist *a, const PostcopyLatHist *b, uint64_t count,
                               uint64_t max, unsigned pct)
{
    uint64_t rank = GW_DIV_ROUND_UP(count * pct, 100);
    uint64_t seen = 0;

    if (!count) {
        return 0;
    }
    rank = MAX(rank, 1);
    for (unsigned i = 0; i < LAT_NBUCKETS; i++) {
        seen += a->hist[i] + (b ? b->hist[i] : 0);
        if (seen >= rank) {
            return MIN(lat_value(i), max);
        }
    }
    return max;
}

static void lat_summary(const PostcopyLatHist *a, const PostcopyLatHist *b, PostcopyLatency *out)
{
    out->faults = a->faults + (b ? b->faults : 0);
    out->total_ns = a->total_ns + (b ? b->total_ns : 0);
    out->max_ns = MAX(a->max_ns, b ? b->max_ns : 0);
    out->avg_ns = out->faults ? out->total_ns / out->faults : 0;
    out->p50_ns = lat_percentile(a, b, out->faults, out->max_ns, 50);
    out->p99_ns = lat_percentile(a, b, out->faults, out->max_ns, 99);
}

/* ---- blocktime (lock held) ---- */

static int postcopy_tid_to_cpu_locked(PostcopyIncoming *pi, uint32_t tid)
{
    if (!tid || !pi->tid_to_cpu) {
        return -1;
    }
    return GPOINTER_TO_INT(g_hash_table_lookup(pi->tid_to_cpu, GUINT_TO_POINTER(tid))) - 1;
}

static void postcopy_block_begin_locked(PostcopyIncoming *pi, int cpu, int64_t now)
{
    if (cpu < 0) {
        return;
    }
    if (pi->vcpu_nblocked[cpu]++ == 0) {
        pi->vcpu_block_start[cpu] = now;
        if (++pi->nr_blocked == pi->nvcpus) {
            pi->all_blocked_since = now;
        }
    }
}

/* A waiter of a placed page is released: blocktime and latency. */
static void postcopy_block_end_locked(PostcopyIncoming *pi, const PostcopyWaiter *w, int64_t now)
{
    uint64_t lat = now > w->t_ns ? (uint64_t)(now - w->t_ns) : 0;
    uint64_t us = lat / 1000;
    unsigned b = us ? 63u - (unsigned)__builtin_clzll(us) : 0;

    pi->st.latency_dist[MIN(b, POSTCOPY_LATENCY_BUCKETS - 1)]++;
    if (w->cpu < 0 || w->cpu >= pi->nvcpus) {
        lat_add(&pi->lat_other, lat);
        return;
    }
    int cpu = w->cpu;
    lat_add(&pi->lat_vcpu, lat);
    pi->vcpu_lat_ns[cpu] += lat;
    pi->vcpu_faults[cpu]++;
    /*
     * A vCPU can have two faults on record: its first page is placed (the
     * kernel wakes it) and it faults again before we take the lock here.
     * It counts as blocked until the last one is accounted.
     */
    if (pi->vcpu_nblocked[cpu] && --pi->vcpu_nblocked[cpu] == 0) {
        pi->vcpu_blocked_ns[cpu] += (uint64_t)(now - pi->vcpu_block_start[cpu]);
        if (pi->nr_blocked == pi->nvcpus) {
            pi->total_blocked_ns += (uint64_t)(now - pi->all_blocked_since);
        }
        pi->nr_blocked--;
    }
}

static void postcopy_blocktime_free_locked(PostcopyIncoming *pi)
{
    g_clear_pointer(&pi->tid_to_cpu, g_hash_table_destroy);
    g_clear_pointer(&pi->vcpu_nblocked, g_free);
    g_clear_pointer(&pi->vcpu_block_start, g_free);
    g_clear_pointer(&pi->vcpu_blocked_ns, g_free);
    g_clear_pointer(&pi->vcpu_lat_ns, g_free);
    g_clear_pointer(&pi->vcpu_faults, g_free);
    pi->nvcpus = 0;
    pi->nr_blocked = 0;
    pi->total_blocked_ns = 0;
}

/* ---- userfaultfd plumbing ---- */

/*
 * A userfaultfd that also traps faults taken inside the kernel (KVM's
 * get_user_pages for a vCPU): never UFFD_USER_MODE_ONLY. The syscall needs
 * CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1; /dev/userfaultfd needs
 * only access to the device node.
 */
static int postcopy_uffd_open(GError **errp)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    int sys_err = errno;
    int dev_err = 0;

    if (fd < 0) {
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
            dev_err = fd < 0 ? errno : 0;
            close(dev);
        } else {
            dev_err = errno;
        }
    }
    if (fd < 0) {
        /* Name both ways in, so the user knows which one to open up. */
        error_setg(errp, "Postcopy is not supported: userfaultfd is not available (the "
                   "userfaultfd system call failed: %s; /dev/userfaultfd: %s); enable "
                   "vm.unprivileged_userfaultfd=1 or give this user access to /dev/userfaultfd",
                   g_strerror(sys_err), g_strerror(dev_err));
        return -1;
    }
    return fd;
}

/* UFFDIO_API with @features; the kernel's offered features in *@offered. */
static bool postcopy_uffd_api(int fd, uint64_t features, uint64_t *offered, GError **errp)
{
    struct uffdio_api api = { .api = UFFD_API, .features = features };

    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        error_setg(errp, "Postcopy is not supported: the userfaultfd API handshake failed "
                   "(%s)", g_strerror(errno));
        return false;
    }
    if (offered) {
        *offered = api.features;
    }
    return true;
}

static PostcopyMemKind postcopy_mem_kind(const RAMBlock *rb)
{
    if (rb->hugetlb) {
        return PC_MEM_HUGETLB;
    }
    if (rb->fd >= 0) {
        return PC_MEM_SHMEM;
    }
    return rb->shared ? PC_MEM_ANON_SHARED : PC_MEM_ANON_PRIVATE;
}

static const char *postcopy_backend_name(const RAMBlock *rb)
{
    return rb->backend_id ? rb->backend_id : rb->name;
}

/* The block itself: page size, file system. */
static bool postcopy_check_block(const RAMBlock *rb, GError **errp)
{
    struct statfs fs;

    if (!rb->host || !rb->page_size || rb->page_size % GW_PAGE_SIZE ||
        rb->size % rb->page_size) {
        error_setg(errp, "Postcopy is not supported for memory backend '%s': its size %"
                   PRIu64 " is not a multiple of its page size %zu", postcopy_backend_name(rb),
                   rb->size, rb->page_size);
        return false;
    }
    if (rb->fd >= 0 && fstatfs(rb->fd, &fs) == 0 && fs.f_type != TMPFS_MAGIC &&
        fs.f_type != HUGETLBFS_MAGIC) {
        error_setg(errp, "Postcopy is not supported for memory backend '%s': userfaultfd "
                   "cannot serve a file on a regular file system; use memory-backend-memfd "
                   "or hugetlbfs", postcopy_backend_name(rb));
        return false;
    }
    return true;
}

/* Features a block of @kind needs; THREAD_ID is added when offered. */
static bool postcopy_features_for(const RAMBlock *rb, uint64_t offered, uint64_t *want,
                            GError **errp)
{
    uint64_t need = 0;

    switch (postcopy_mem_kind(rb)) {
    case PC_MEM_ANON_PRIVATE:
        break;
    case PC_MEM_ANON_SHARED:
    case PC_MEM_SHMEM:
        need = UFFD_FEATURE_MISSING_SHMEM;
        break;
    case PC_MEM_HUGETLB:
        need = UFFD_FEATURE_MISSING_HUGETLBFS;
        break;
    }
    if ((offered & need) != need) {
        error_setg(errp, "Postcopy is not supported for memory backend '%s': this kernel's "
                   "userfaultfd cannot handle %s memory (needs a kernel with %s)",
                   postcopy_backend_name(rb), need == UFFD_FEATURE_MISSING_SHMEM ? "shared" :
                   "hugetlbfs", need == UFFD_FEATURE_MISSING_SHMEM ?
                   "UFFD_FEATURE_MISSING_SHMEM" : "UFFD_FEATURE_MISSING_HUGETLBFS");
        return false;
    }
    *want = need | (offered & UFFD_FEATURE_THREAD_ID);
    return true;
}

/* Open a userfaultfd and negotiate what @rb needs. */
static int postcopy_uffd_for_block(const RAMBlock *rb, uint64_t *features, GError **errp)
{
    uint64_t offered = 0;
    int fd = postcopy_uffd_open(errp);

    if (fd < 0) {
        return -1;
    }
    /* Features can be negotiated once per fd: ask on a throwaway one first. */
    if (!postcopy_uffd_api(fd, 0, &offered, errp)) {
        close(fd);
        return -1;
    }
    close(fd);
    if (!postcopy_features_for(rb, offered, features, errp)) {
        return -1;
    }
    fd = postcopy_uffd_open(errp);
    if (fd < 0) {
        return -1;
    }
    if (!postcopy_uffd_api(fd, *features, NULL, errp)) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * The one place where ioctl errnos of UFFDIO_COPY / UFFDIO_ZEROPAGE are
 * sorted:
 *  EEXIST - the page is present already: it arrived twice (requested and
 *           also sent by the background sweep) or a fault-side zero fill of
 *           a received-but-untouched page raced with us. Never overwritten,
 *           and its data is right: success.
 *  EAGAIN - the address space changed under the ioctl (mremap, fork,
 *           a concurrent (un)registration) or the copy was partial: retry
 *           what is left.
 *  EINTR  - a signal: retry.
 *  others - ENOENT (range not registered / VMA gone), EFAULT (bad source),
 *           ENOMEM, ESRCH (mm exiting), EINVAL: fatal for the migration.
 */
typedef enum PostcopyIoctlResult {
    PC_IOCTL_DONE,
    PC_IOCTL_PRESENT,
    PC_IOCTL_RETRY,
    PC_IOCTL_FATAL,
} PostcopyIoctlResult;

static PostcopyIoctlResult postcopy_classify_errno(int err)
{
    switch (err) {
    case 0:
        return PC_IOCTL_DONE;
    case EEXIST:
        return PC_IOCTL_PRESENT;
    case EAGAIN:
    case EINTR:
        return PC_IOCTL_RETRY;
    default:
        return PC_IOCTL_FATAL;
    }
}

/*
 * Fill [dst, dst + len) of a registered range with a copy of @src, or with
 * zeros when @src is NULL (UFFDIO_ZEROPAGE). Wakes waiters. Returns DONE,
 * PRESENT or FATAL (errno in *@err).
 */
static PostcopyIoctlResult postcopy_uffd_fill(int uffd, uint8_t *dst, const void *src, uint64_t len,
                                  int *err)
{
    uint64_t done = 0;

    for (unsigned tries = 0; done < len; tries++) {
        int64_t moved;
        int e = 0;

        if (src) {
            struct uffdio_copy c = {
                .dst = (uintptr_t)(dst + done),
                .src = (uintptr_t)((const uint8_t *)src + done),
                .len = len - done,
            };
            if (ioctl(uffd, UFFDIO_COPY, &c) < 0) {
                e = errno;
            }
            moved = c.copy;
        } else {
            struct uffdio_zeropage z = {
                .range = { .start = (uintptr_t)(dst + done), .len = len - done },
            };
            if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) < 0) {
                e = errno;
            }
            moved = z.zeropage;
        }
        if (moved > 0) {
            done += (uint64_t)moved;
        }
        switch (postcopy_classify_errno(e)) {
        case PC_IOCTL_DONE:
            if (moved <= 0) {
                done = len;   /* defensive: success always means the whole rest */
            }
            break;
        case PC_IOCTL_PRESENT:
            return done ? PC_IOCTL_DONE : PC_IOCTL_PRESENT;
        case PC_IOCTL_RETRY:
            if (tries >= COPY_RETRY_MAX) {
                *err = e;
                return PC_IOCTL_FATAL;
            }
            sched_yield();
            break;
        case PC_IOCTL_FATAL:
            *err = e;
            return PC_IOCTL_FATAL;
        }
    }
    return PC_IOCTL_DONE;
}

static void postcopy_uffd_wake(int uffd, void *addr, uint64_t len)
{
    struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

    /* Only fails if the range is not registered any more: nobody to wake. */
    (void)ioctl(uffd, UFFDIO_WAKE, &r);
}

/* ---- probe ---- */

/* A two-page scratch area of the same kind as @rb, or NULL (errno set). */
static uint8_t *postcopy_scratch_map(const RAMBlock *rb, size_t hps, int *fdp)
{
    int fd = -1, flags;
    void *p;

    *fdp = -1;
    switch (postcopy_mem_kind(rb)) {
    case PC_MEM_ANON_PRIVATE:
        p = mmap(NULL, 2 * hps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    case PC_MEM_ANON_SHARED:
        p = mmap(NULL, 2 * hps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    case PC_MEM_SHMEM:
        fd = memfd_create("godwit-uffd-probe", MFD_CLOEXEC);
        break;
    case PC_MEM_HUGETLB:
        fd = memfd_create("godwit-uffd-probe", MFD_CLOEXEC | MFD_HUGETLB |
                          ((unsigned)__builtin_ctzll(hps) << MFD_HUGE_SHIFT));
        break;
    }
    if (fd < 0) {
        return NULL;
    }
    if (ftruncate(fd, (off_t)(2 * hps)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    flags = rb->shared ? MAP_SHARED : MAP_PRIVATE;
    p = mmap(NULL, 2 * hps, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    *fdp = fd;
    return p;
}

bool postcopy_ram_supported(const RAMBlock *rb, GError **errp)
{
    bool hugetlb = postcopy_mem_kind(rb) == PC_MEM_HUGETLB;
    size_t hps = rb->page_size;
    uint64_t features = 0;
    uint8_t *area = NULL;
    void *src = NULL;
    int sfd = -1, uffd;
    bool ok = false;

    if (!postcopy_check_block(rb, errp)) {
        return false;
    }
    uffd = postcopy_uffd_for_block(rb, &features, errp);
    if (uffd < 0) {
        return false;
    }
    area = postcopy_scratch_map(rb, hps, &sfd);
    if (!area) {
        if (hugetlb) {
            /*
             * A scratch huge page needs a free one besides guest RAM's;
             * without it trust the negotiated feature bit.
             */
            ok = true;
        } else {
            error_setg_errno(errp, errno, "Postcopy is not supported: cannot map a "
                             "userfaultfd test area");
        }
        goto out;
    }
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)area, .len = 2 * hps },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        error_setg(errp, "Postcopy is not supported for memory backend '%s': userfaultfd "
                   "cannot register this kind of memory (%s)", postcopy_backend_name(rb),
                   g_strerror(errno));
        goto out;
    }
    uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_WAKE) |
                    (hugetlb ? 0 : 1ULL << _UFFDIO_ZEROPAGE);
    if ((reg.ioctls & need) != need) {
        error_setg(errp, "Postcopy is not supported for memory backend '%s': userfaultfd "
                   "does not offer page copy and zero-page for this memory",
                   postcopy_backend_name(rb));
        goto out;
    }
    src = mmap(NULL, hps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (src == MAP_FAILED) {
        src = NULL;
        error_setg_errno(errp, errno, "Postcopy is not supported: cannot map a test page");
        goto out;
    }
    memset(src, 0x5a, hps);
    int err = 0;
    if (postcopy_uffd_fill(uffd, area, src, hps, &err) != PC_IOCTL_DONE ||
        (!hugetlb && postcopy_uffd_fill(uffd, area + hps, NULL, hps, &err) != PC_IOCTL_DONE)) {
        error_setg(errp, "Postcopy is not supported for memory backend '%s': a userfaultfd "
                   "test page copy failed (%s)", postcopy_backend_name(rb), g_strerror(err));
        goto out;
    }
    if (area[0] != 0x5a || area[hps - 1] != 0x5a || (!hugetlb && area[hps] != 0)) {
        error_setg(errp, "Postcopy is not supported: userfaultfd placed wrong data in a "
                   "test page");
        goto out;
    }
    ok = true;
out:
    if (src) {
        munmap(src, hps);
    }
    if (area) {
        munmap(area, 2 * hps);    /* also unregisters */
    }
    if (sfd >= 0) {
        close(sfd);
    }
    close(uffd);
    return ok;
}

/* ---- lifecycle ---- */

static void postcopy_pending_free(gpointer p)
{
    PostcopyPending *pp = p;

    g_free(pp->wait);
    g_free(pp);
}

PostcopyIncoming *postcopy_incoming_new(RAMBlock *rb, unsigned long *received,
                                        size_t npages_target,
                                        const PostcopyHooks *hooks, void *opaque,
                                        GError **errp)
{
    uint64_t features = 0;

    if (!postcopy_check_block(rb, errp)) {
        return NULL;
    }
    if (npages_target != rb->size / GW_PAGE_SIZE || !received || !hooks ||
        !hooks->request_page) {
        error_setg(errp, "postcopy: received bitmap of %zu pages does not match block '%s' "
                   "of %" PRIu64 " bytes", npages_target, rb->name, rb->size);
        return NULL;
    }
    int uffd = postcopy_uffd_for_block(rb, &features, errp);
    if (uffd < 0) {
        return NULL;
    }
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        error_setg_errno(errp, errno, "postcopy: cannot create an eventfd");
        close(uffd);
        return NULL;
    }

    PostcopyIncoming *pi = g_new0(PostcopyIncoming, 1);
    pi->rb = rb;
    pi->host = rb->host;
    pi->size = rb->size;
    pi->hps = rb->page_size;
    pi->kind = postcopy_mem_kind(rb);
    pi->received = received;
    pi->npages_target = npages_target;
    pi->hooks = *hooks;
    pi->opaque = opaque;
    pi->features = features;
    pi->uffd = uffd;
    pi->efd = efd;
    pi->externals = g_array_new(FALSE, TRUE, sizeof(PostcopyExternal));
    g_mutex_init(&pi->lock);
    g_mutex_init(&pi->place_lock);
    pi->pending = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, postcopy_pending_free);
    pi->missing = postcopy_count_missing(received, npages_target);
    if (pi->kind == PC_MEM_HUGETLB) {
        pi->zero_buf = g_malloc0(pi->hps);
    }
    return pi;
}

void postcopy_set_vcpu_tids(PostcopyIncoming *pi, const int *tids, int n)
{
    g_mutex_lock(&pi->lock);
    postcopy_blocktime_free_locked(pi);
    if (n > 0) {
        pi->nvcpus = n;
        pi->tid_to_cpu = g_hash_table_new(g_direct_hash, g_direct_equal);
        for (int i = 0; i < n; i++) {
            g_hash_table_insert(pi->tid_to_cpu, GUINT_TO_POINTER((unsigned)tids[i]),
                                GINT_TO_POINTER(i + 1));
        }
        pi->vcpu_nblocked = g_new0(unsigned, n);
        pi->vcpu_block_start = g_new0(int64_t, n);
        pi->vcpu_blocked_ns = g_new0(uint64_t, n);
        pi->vcpu_lat_ns = g_new0(uint64_t, n);
        pi->vcpu_faults = g_new0(uint64_t, n);
    }
    g_mutex_unlock(&pi->lock);
}

bool postcopy_discard_range(PostcopyIncoming *pi, uint64_t offset, uint64_t len,
                            GError **errp)
{
    const RAMBlock *rb = pi->rb;

    if (pi->registered) {
        error_setg(errp, "postcopy: discard of block '%s' after LISTEN", rb->name);
        return false;
    }
    if (offset % pi->hps || len % pi->hps || offset > pi->size || len > pi->size - offset) {
        error_setg(errp, "postcopy: discard range 0x%" PRIx64 "+0x%" PRIx64 " is outside "
                   "block '%s' or not aligned to its %zu-byte pages", offset, len, rb->name,
                   pi->hps);
        return false;
    }
    if (!len) {
        return true;
    }
    /*
     * Transparent huge pages would turn the 4 KiB holes back into a huge
     * page made of fresh zero pages the first time a neighbour is touched.
     */
    if (!pi->nohugepage && pi->kind != PC_MEM_HUGETLB) {
        madvise(pi->host, pi->size, MADV_NOHUGEPAGE);
        pi->nohugepage = true;
    }

    uint8_t *addr = pi->host + offset;
    uint64_t *counter = NULL;

    g_mutex_lock(&pi->lock);
    pi->missing += postcopy_bits_update(pi->received, offset / GW_PAGE_SIZE, len / GW_PAGE_SIZE,
                                  false);
    g_mutex_unlock(&pi->lock);

    switch (pi->kind) {
    case PC_MEM_ANON_PRIVATE:
        if (madvise(addr, len, MADV_DONTNEED) < 0) {
            goto fail;
        }
        counter = &pi->st.discard_dontneed;
        break;
    case PC_MEM_ANON_SHARED:
        if (madvise(addr, len, MADV_REMOVE) < 0) {
            goto fail;
        }
        counter = &pi->st.discard_remove;
        break;
    case PC_MEM_SHMEM:
    case PC_MEM_HUGETLB:
        /*
         * MADV_DONTNEED only drops our PTEs of a shared page: the data stays
         * in the file and the next access maps it again without a fault.
         * Free it in the file so it is missing for real.
         */
        if (fallocate(rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)(rb->fd_offset + offset), (off_t)len) < 0) {
            goto fail;
        }
        counter = &pi->st.discard_punch_hole;
        /* A private mapping may hold copies of its own on top of the file. */
        if (!rb->shared && madvise(addr, len, MADV_DONTNEED) < 0) {
            goto fail;
        }
        break;
    }
    g_mutex_lock(&pi->lock);
    (*counter)++;
    g_mutex_unlock(&pi->lock);
    return true;

fail:
    error_setg_errno(errp, errno, "postcopy: cannot discard 0x%" PRIx64 "+0x%" PRIx64
                     " of block '%s'", offset, len, rb->name);
    return false;
}

bool postcopy_register_external_uffd(PostcopyIncoming *pi, int fd,
                                     PostcopyExternalFaultFn handler, void *opaque,
                                     GError **errp)
{
    if (pi->thread_started) {
        error_setg(errp, "postcopy: an external userfaultfd must be registered before LISTEN");
        return false;
    }
    if (fd < 0 || !handler) {
        error_setg(errp, "postcopy: invalid external userfaultfd");
        return false;
    }
    PostcopyExternal e = { .fd = fd, .handler = handler, .opaque = opaque };
    g_array_append_val(pi->externals, e);
    return true;
}

bool postcopy_register_external_uffd_ops(PostcopyIncoming *pi, int fd,
                                         const PostcopyExternalOps *ops, void *opaque,
                                         GError **errp)
{
    if (pi->thread_started) {
        error_setg(errp, "postcopy: an external userfaultfd must be registered before LISTEN");
        return false;
    }
    if (fd < 0 || !ops || !ops->translate || !ops->wake) {
        error_setg(errp, "postcopy: invalid external userfaultfd");
        return false;
    }
    PostcopyExternal e = { .fd = fd, .ops = ops, .opaque = opaque };
    g_array_append_val(pi->externals, e);
    return true;
}

/*
 * Host page @hp_off became present in the shared memory: wake whoever
 * sleeps on it behind an external userfaultfd (our UFFDIO_COPY only wakes
 * sleepers on our own). The externals array is fixed once listening.
 */
static void postcopy_wake_externals(PostcopyIncoming *pi, uint64_t hp_off)
{
    for (guint i = 0; i < pi->externals->len; i++) {
        PostcopyExternal *e = &g_array_index(pi->externals, PostcopyExternal, i);
        if (e->ops) {
            e->ops->wake(e->opaque, hp_off, pi->hps);
        }
    }
}

/* ---- faults ---- */

typedef enum PostcopyAction {
    PC_ACT_NONE,     /* already requested: wait for the page */
    PC_ACT_SEND,     /* first fault on the page: request it */
    PC_ACT_LOCAL,    /* received already: make sure it is present and wake */
} PostcopyAction;

/* Decide what a fault on host page @hp_off needs; records its waiter. */
static PostcopyAction postcopy_fault_locked(PostcopyIncoming *pi, uint64_t hp_off, uint32_t tid,
                                int64_t now)
{
    if (postcopy_host_page_received(pi, hp_off)) {
        pi->st.faults_received++;
        return PC_ACT_LOCAL;
    }
    PostcopyPending *p = g_hash_table_lookup(pi->pending, &hp_off);
    PostcopyAction act = PC_ACT_NONE;
    if (!p) {
        p = g_new0(PostcopyPending, 1);
        p->offset = hp_off;
        g_hash_table_insert(pi->pending, &p->offset, p);
        act = pi->paused ? PC_ACT_NONE : PC_ACT_SEND;
    } else {
        pi->st.faults_pending++;
    }
    if (p->nwait == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 2;
        p->wait = g_renew(PostcopyWaiter, p->wait, p->cap);
    }
    int cpu = postcopy_tid_to_cpu_locked(pi, tid);
    p->wait[p->nwait++] = (PostcopyWaiter){ .cpu = cpu, .t_ns = now };
    postcopy_block_begin_locked(pi, cpu, now);
    return act;
}

/*
 * A received page faulted. Normally it was placed between the fault and
 * our read, and only needs a wake. But precopy leaves zero pages it never
 * had to write absent while marking them received; those must become zero
 * pages now, or the thread would fault again forever. ZEROPAGE never
 * overwrites (EEXIST), so trying it is safe either way.
 */
static void postcopy_fault_local(PostcopyIncoming *pi, uint64_t hp_off)
{
    uint8_t *addr = pi->host + hp_off;
    int err = 0;
    PostcopyIoctlResult r = postcopy_uffd_fill(pi->uffd, addr, pi->zero_buf, pi->hps, &err);

    if (r == PC_IOCTL_DONE) {
        g_mutex_lock(&pi->lock);
        pi->st.local_zero_fills++;
        g_mutex_unlock(&pi->lock);
        if (pi->hooks.page_placed) {
            pi->hooks.page_placed(pi->opaque, hp_off, (uint32_t)pi->hps);
        }
        postcopy_wake_externals(pi, hp_off);
    } else {
        postcopy_uffd_wake(pi->uffd, addr, pi->hps);
    }
}

static void postcopy_send_requests(PostcopyIncoming *pi, const uint64_t *offs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        bool ok = pi->hooks.request_page(pi->opaque, offs[i], (uint32_t)pi->hps);

        g_mutex_lock(&pi->lock);
        PostcopyPending *p = g_hash_table_lookup(pi->pending, &offs[i]);
        if (ok) {
            pi->st.requests++;
            if (p) {
                p->sent = true;
            }
        } else {
            pi->st.request_failures++;
        }
        g_mutex_unlock(&pi->lock);
    }
}

bool postcopy_fault_external(PostcopyIncoming *pi, uint64_t offset, uint32_t tid)
{
    if (offset >= pi->size) {
        return true;      /* not ours: let the caller wake it rather than hang */
    }
    uint64_t hp_off = GW_ROUND_DOWN(offset, pi->hps);
    g_mutex_lock(&pi->lock);
    pi->st.external_faults++;
    PostcopyAction act = postcopy_fault_locked(pi, hp_off, tid, postcopy_now_ns());
    g_mutex_unlock(&pi->lock);

    if (act == PC_ACT_SEND) {
        postcopy_send_requests(pi, &hp_off, 1);
    } else if (act == PC_ACT_LOCAL) {
        postcopy_fault_local(pi, hp_off);   /* present in the shared memory for the back-end */
        return true;
    }
    return false;
}

/*
 * Read and handle one batch of our own faults: 1 if a batch was handled,
 * 0 if there was nothing to read, -1 if the fd is dead.
 */
static int postcopy_handle_own_faults(PostcopyIncoming *pi)
{
    struct uffd_msg msg[FAULT_BATCH];
    uint64_t send[FAULT_BATCH], local[FAULT_BATCH];
    unsigned nsend = 0, nlocal = 0;
    ssize_t r = read(pi->uffd, msg, sizeof(msg));

    if (r < 0) {
        /* EAGAIN: the fault was resolved before we read it (a concurrent COPY). */
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    }
    unsigned n = (unsigned)((size_t)r / sizeof(msg[0]));
    int64_t now = postcopy_now_ns();

    g_mutex_lock(&pi->lock);
    for (unsigned i = 0; i < n; i++) {
        if (msg[i].event != UFFD_EVENT_PAGEFAULT) {
            continue;
        }
        uint64_t addr = msg[i].arg.pagefault.address;
        pi->st.faults++;
        if (addr < (uintptr_t)pi->host || addr >= (uintptr_t)pi->host + pi->size) {
            continue;    /* cannot happen: only the block is registered */
        }
        uint64_t hp_off = GW_ROUND_DOWN(addr - (uintptr_t)pi->host, pi->hps);
        uint32_t tid = (pi->features & UFFD_FEATURE_THREAD_ID) ?
                       msg[i].arg.pagefault.feat.ptid : 0;
        switch (postcopy_fault_locked(pi, hp_off, tid, now)) {
        case PC_ACT_SEND:
            send[nsend++] = hp_off;
            break;
        case PC_ACT_LOCAL:
            local[nlocal++] = hp_off;
            break;
        case PC_ACT_NONE:
            break;
        }
    }
    g_mutex_unlock(&pi->lock);

    for (unsigned i = 0; i < nlocal; i++) {
        postcopy_fault_local(pi, local[i]);
    }
    postcopy_send_requests(pi, send, nsend);
    return n == FAULT_BATCH ? 1 : 0;
}

/*
 * A fault on an external userfaultfd with translate/wake callbacks: to a
 * block offset, then exactly what a vCPU fault gets (request, or wait for a
 * page already requested, or wake at once if it is here).
 */
static void postcopy_external_fault(PostcopyIncoming *pi, const PostcopyExternal *e,
                              const struct uffd_msg *msg)
{
    uint64_t addr = msg->arg.pagefault.address;
    uint64_t offset;

    if (!e->ops->translate(e->opaque, addr, &offset) || offset >= pi->size) {
        /* Not guest RAM we know: wake it rather than leave the thread asleep for good. */
        postcopy_uffd_wake(e->fd, (void *)(uintptr_t)GW_ROUND_DOWN(addr, GW_PAGE_SIZE), GW_PAGE_SIZE);
        return;
    }
    uint32_t tid = msg->arg.pagefault.feat.ptid;
    if (postcopy_fault_external(pi, offset, tid)) {
        e->ops->wake(e->opaque, GW_ROUND_DOWN(offset, pi->hps), pi->hps);
    }
}

static void postcopy_handle_external(PostcopyIncoming *pi, const PostcopyExternal *e)
{
    struct uffd_msg msg[FAULT_BATCH];
    ssize_t r = read(e->fd, msg, sizeof(msg));

    for (ssize_t i = 0; r > 0 && i < r / (ssize_t)sizeof(msg[0]); i++) {
        if (msg[i].event != UFFD_EVENT_PAGEFAULT) {
            continue;
        }
        if (e->ops) {
            postcopy_external_fault(pi, e, &msg[i]);
        } else {
            e->handler(pi, e->opaque, &msg[i]);
        }
    }
}

static void *postcopy_fault_thread(void *opaque)
{
    PostcopyIncoming *pi = opaque;
    unsigned next = 2 + pi->externals->len;
    g_autofree struct pollfd *pfd = g_new0(struct pollfd, next);

    pthread_setname_np(pthread_self(), GW_THREAD_MIG_DST_FAULT);
    pfd[0] = (struct pollfd){ .fd = pi->efd, .events = POLLIN };
    pfd[1] = (struct pollfd){ .fd = pi->uffd, .events = POLLIN };
    for (unsigned i = 0; i < pi->externals->len; i++) {
        pfd[2 + i] = (struct pollfd){
            .fd = g_array_index(pi->externals, PostcopyExternal, i).fd, .events = POLLIN,
        };
    }

    while (!__atomic_load_n(&pi->quit, __ATOMIC_ACQUIRE)) {
        if (poll(pfd, next, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            g_warning("postcopy fault thread: poll failed: %s", g_strerror(errno));
            break;
        }
        if (pfd[0].revents) {
            uint64_t v;
            (void)!read(pi->efd, &v, sizeof(v));
            continue;          /* re-check quit */
        }
        if (pfd[1].revents & POLLIN) {
            int r;
            /* A full batch: there may be more; read again before polling. */
            while ((r = postcopy_handle_own_faults(pi)) > 0) {
            }
            if (r < 0) {
                g_warning("postcopy fault thread: cannot read the userfaultfd: %s",
                          g_strerror(errno));
                pfd[1].fd = -1;
            }
        } else if (pfd[1].revents & (POLLERR | POLLNVAL)) {
            g_warning("postcopy fault thread: userfaultfd error");
            pfd[1].fd = -1;
        }
        for (unsigned i = 2; i < next; i++) {
            if (pfd[i].revents & (POLLERR | POLLNVAL | POLLHUP)) {
                pfd[i].fd = -1;    /* the back-end went away: stop polling it */
            } else if (pfd[i].revents & POLLIN) {
                postcopy_handle_external(pi, &g_array_index(pi->externals, PostcopyExternal, i - 2));
            }
        }
    }
    return NULL;
}

bool postcopy_listen(PostcopyIncoming *pi, GError **errp)
{
    if (pi->registered) {
        error_setg(errp, "postcopy: block '%s' is already listening", pi->rb->name);
        return false;
    }
    if (pi->kind == PC_MEM_ANON_PRIVATE && !pi->nohugepage) {
        madvise(pi->host, pi->size, MADV_NOHUGEPAGE);
        pi->nohugepage = true;
    }
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)pi->host, .len = pi->size },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(pi->uffd, UFFDIO_REGISTER, &reg) < 0) {
        error_setg_errno(errp, errno, "postcopy: cannot register block '%s' with userfaultfd",
                         pi->rb->name);
        return false;
    }
    pi->registered = true;
    uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_WAKE) |
                    (pi->kind == PC_MEM_HUGETLB ? 0 : 1ULL << _UFFDIO_ZEROPAGE);
    if ((reg.ioctls & need) != need) {
        error_setg(errp, "postcopy: userfaultfd does not offer page copy, zero-page and wake "
                   "for block '%s'", pi->rb->name);
        goto fail;
    }

    /* The RAM loader may have set bits since we were created. */
    g_mutex_lock(&pi->lock);
    pi->missing = postcopy_count_missing(pi->received, pi->npages_target);
    g_mutex_unlock(&pi->lock);

    int err = pthread_create(&pi->fault_thread, NULL, postcopy_fault_thread, pi);
    if (err) {
        error_setg(errp, "postcopy: cannot start the fault thread: %s", g_strerror(err));
        goto fail;
    }
    pi->thread_started = true;
    return true;

fail:
    {
        struct uffdio_range r = { .start = (uintptr_t)pi->host, .len = pi->size };
        ioctl(pi->uffd, UFFDIO_UNREGISTER, &r);
        pi->registered = false;
    }
    return false;
}

/* ---- placement ---- */

/* After a page became present: the bitmap, the pending set, statistics. */
static void postcopy_page_arrived(PostcopyIncoming *pi, uint64_t offset, PostcopyIoctlResult r,
                            bool zero)
{
    int64_t now = postcopy_now_ns();

    g_mutex_lock(&pi->lock);
    pi->missing -= postcopy_bits_update(pi->received, offset / GW_PAGE_SIZE,
                                  pi->hps / GW_PAGE_SIZE, true);
    if (r == PC_IOCTL_PRESENT) {
        pi->st.duplicates++;      /* received before: postcopy_place() checked */
    } else if (zero) {
        pi->st.zero_pages_placed++;
    } else {
        pi->st.pages_placed++;
    }
    PostcopyPending *p = g_hash_table_lookup(pi->pending, &offset);
    if (p) {
        for (unsigned i = 0; i < p->nwait; i++) {
            postcopy_block_end_locked(pi, &p->wait[i], now);
        }
        g_hash_table_remove(pi->pending, &offset);
    }
    g_mutex_unlock(&pi->lock);

    if (r == PC_IOCTL_DONE) {
        if (pi->hooks.page_placed) {
            pi->hooks.page_placed(pi->opaque, offset, (uint32_t)pi->hps);
        }
        postcopy_wake_externals(pi, offset);
    }
}

static bool postcopy_place_locked(PostcopyIncoming *pi, uint64_t offset, const void *src, bool zero,
                            GError **errp)
{
    int err = 0;

    if (!pi->registered || pi->uffd < 0) {
        error_setg(errp, "postcopy: page placed in block '%s' while not listening",
                   pi->rb->name);
        return false;
    }
    if (offset % pi->hps || offset >= pi->size) {
        error_setg(errp, "postcopy: page offset 0x%" PRIx64 " is not a %zu-byte page of "
                   "block '%s'", offset, pi->hps, pi->rb->name);
        return false;
    }
    PostcopyIoctlResult r = postcopy_uffd_fill(pi->uffd, pi->host + offset, src, pi->hps, &err);
    if (r == PC_IOCTL_FATAL) {
        error_setg(errp, "postcopy: cannot place the page at 0x%" PRIx64 " of block '%s': %s",
                   offset, pi->rb->name, g_strerror(err));
        return false;
    }
    /*
     * Present but never received: something other than this module put
     * data there (memory that did not start empty and was not discarded).
     * The page keeps that data, not the source's: fail rather than count
     * it as a harmless duplicate.
     */
    if (r == PC_IOCTL_PRESENT && !postcopy_host_page_received(pi, offset)) {
        g_mutex_lock(&pi->lock);
        pi->st.duplicates_unexpected++;
        g_mutex_unlock(&pi->lock);
        error_setg(errp, "postcopy: the page at 0x%" PRIx64 " of block '%s' was present before "
                   "it arrived (its memory was neither empty nor discarded there)", offset,
                   pi->rb->name);
        return false;
    }
    postcopy_page_arrived(pi, offset, r, zero);
    return true;
}

static bool postcopy_place(PostcopyIncoming *pi, uint64_t offset, const void *src, bool zero,
                     GError **errp)
{
    g_mutex_lock(&pi->place_lock);
    bool ok = postcopy_place_locked(pi, offset, src, zero, errp);
    g_mutex_unlock(&pi->place_lock);
    return ok;
}

bool postcopy_place_page(PostcopyIncoming *pi, uint64_t offset, const void *host_page,
                         GError **errp)
{
    return postcopy_place(pi, offset, host_page, false, errp);
}

bool postcopy_place_zero_page(PostcopyIncoming *pi, uint64_t offset, GError **errp)
{
    /* hugetlbfs has no UFFDIO_ZEROPAGE: copy a zeroed huge page instead. */
    return postcopy_place(pi, offset, pi->zero_buf, true, errp);
}

bool postcopy_place_pages(PostcopyIncoming *pi, uint64_t offset, const void *src,
                          uint32_t npages, GError **errp)
{
    const uint8_t *p = src;

    /*
     * One UFFDIO_COPY for a run of 4 KiB pages: a syscall per page is the
     * destination's main cost once the link is fast. Pages already present
     * (requested and placed meanwhile) stop the batch; the rest goes page by
     * page so each gets its EEXIST handling.
     */
    g_mutex_lock(&pi->place_lock);
    if (pi->hps == GW_PAGE_SIZE && npages > 1 && pi->registered && pi->uffd >= 0 &&
        offset % GW_PAGE_SIZE == 0 && offset < pi->size &&
        (uint64_t)npages * GW_PAGE_SIZE <= pi->size - offset) {
        struct uffdio_copy c = {
            .dst = (uintptr_t)(pi->host + offset),
            .src = (uintptr_t)src,
            .len = (uint64_t)npages * GW_PAGE_SIZE,
        };
        int r = ioctl(pi->uffd, UFFDIO_COPY, &c);
        uint32_t done = c.copy > 0 ? (uint32_t)((uint64_t)c.copy / GW_PAGE_SIZE) : 0;
        if (r == 0) {
            done = npages;
        }
        for (uint32_t i = 0; i < done; i++) {
            postcopy_page_arrived(pi, offset + (uint64_t)i * GW_PAGE_SIZE, PC_IOCTL_DONE, false);
        }
        offset += (uint64_t)done * GW_PAGE_SIZE;
        p += (size_t)done * GW_PAGE_SIZE;
        npages -= done;
    }
    for (uint32_t i = 0; i < npages; i++) {
        if (!postcopy_place_locked(pi, offset + (uint64_t)i * pi->hps, p + (size_t)i * pi->hps,
                             false, errp)) {
            g_mutex_unlock(&pi->place_lock);
            return false;
        }
    }
    g_mutex_unlock(&pi->place_lock);
    return true;
}

void postcopy_placement_hold(PostcopyIncoming *pi)
{
    g_mutex_lock(&pi->place_lock);
}

void postcopy_placement_release(PostcopyIncoming *pi)
{
    g_mutex_unlock(&pi->place_lock);
}

/* Drop one present host page so that it is missing again (shared memory kinds). */
static bool postcopy_drop_page(PostcopyIncoming *pi, uint64_t offset)
{
    const RAMBlock *rb = pi->rb;

    switch (pi->kind) {
    case PC_MEM_ANON_PRIVATE:
        return madvise(pi->host + offset, pi->hps, MADV_DONTNEED) == 0;
    case PC_MEM_ANON_SHARED:
        return madvise(pi->host + offset, pi->hps, MADV_REMOVE) == 0;
    case PC_MEM_SHMEM:
    case PC_MEM_HUGETLB:
        return fallocate(rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                         (off_t)(rb->fd_offset + offset), (off_t)pi->hps) == 0;
    }
    return false;
}

int64_t postcopy_drop_unreceived(PostcopyIncoming *pi, GError **errp)
{
    const uint64_t chunk = 64ULL << 20;
    g_autofree unsigned char *vec = g_malloc(chunk / GW_PAGE_SIZE);
    int64_t dropped = 0;

    for (uint64_t base = 0; base < pi->size; base += chunk) {
        uint64_t len = MIN(chunk, pi->size - base);
        if (mincore(pi->host + base, len, vec) < 0) {
            error_setg_errno(errp, errno, "postcopy: cannot tell which pages of block '%s' "
                             "are present", pi->rb->name);
            return -1;
        }
        for (uint64_t off = 0; off < len; off += pi->hps) {
            uint64_t hp = base + off;
            if (!(vec[off / GW_PAGE_SIZE] & 1) || postcopy_host_page_received(pi, hp)) {
                continue;
            }
            if (!postcopy_drop_page(pi, hp)) {
                error_setg_errno(errp, errno, "postcopy: cannot drop the page at 0x%" PRIx64
                                 " of block '%s'", hp, pi->rb->name);
                return -1;
            }
            dropped++;
        }
    }
    return dropped;
}

bool postcopy_all_received(PostcopyIncoming *pi)
{
    g_mutex_lock(&pi->lock);
    bool all = pi->missing == 0;
    g_mutex_unlock(&pi->lock);
    return all;
}

/* ---- pause / resume / finish ---- */

void postcopy_incoming_pause(PostcopyIncoming *pi)
{
    g_mutex_lock(&pi->lock);
    pi->paused = true;
    g_mutex_unlock(&pi->lock);
}

bool postcopy_incoming_resume(PostcopyIncoming *pi, GError **errp)
{
    g_autoptr(GArray) offs = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    GHashTableIter it;
    gpointer key;

    g_mutex_lock(&pi->lock);
    pi->paused = false;
    g_hash_table_iter_init(&it, pi->pending);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        g_array_append_val(offs, *(uint64_t *)key);
    }
    g_mutex_unlock(&pi->lock);

    /*
     * The source lost its request queue with the old connection: ask for
     * every page still outstanding, sent before or not.
     */
    for (guint i = 0; i < offs->len; i++) {
        uint64_t off = g_array_index(offs, uint64_t, i);
        if (!pi->hooks.request_page(pi->opaque, off, (uint32_t)pi->hps)) {
            g_mutex_lock(&pi->lock);
            pi->paused = true;
            pi->st.request_failures++;
            g_mutex_unlock(&pi->lock);
            error_setg(errp, "postcopy: cannot re-send page requests after recovery");
            return false;
        }
        g_mutex_lock(&pi->lock);
        pi->st.resent++;
        PostcopyPending *p = g_hash_table_lookup(pi->pending, &off);
        if (p) {
            p->sent = true;
        }
        g_mutex_unlock(&pi->lock);
    }
    return true;
}

static void postcopy_stop_thread(PostcopyIncoming *pi)
{
    if (!pi->thread_started) {
        return;
    }
    uint64_t one = 1;
    __atomic_store_n(&pi->quit, 1, __ATOMIC_RELEASE);
    (void)!write(pi->efd, &one, sizeof(one));
    pthread_join(pi->fault_thread, NULL);
    pi->thread_started = false;
}

bool postcopy_incoming_finish(PostcopyIncoming *pi, GError **errp)
{
    g_mutex_lock(&pi->lock);
    uint64_t missing = pi->missing;
    g_mutex_unlock(&pi->lock);

    if (pi->registered && missing) {
        error_setg(errp, "postcopy: %" PRIu64 " pages of block '%s' have not arrived yet",
                   missing, pi->rb->name);
        return false;
    }
    postcopy_stop_thread(pi);
    /*
     * Every page is here and nobody polls the external fds any more: their
     * owners end their part (and may close them) before ours is unregistered.
     */
    g_array_set_size(pi->externals, 0);
    postcopy_notify(POSTCOPY_NOTIFY_INBOUND_END, pi, NULL);
    if (pi->registered) {
        struct uffdio_range r = { .start = (uintptr_t)pi->host, .len = pi->size };
        if (ioctl(pi->uffd, UFFDIO_UNREGISTER, &r) < 0) {
            error_setg_errno(errp, errno, "postcopy: cannot unregister block '%s'",
                             pi->rb->name);
            return false;
        }
        pi->registered = false;
    }
    if (pi->uffd >= 0) {
        close(pi->uffd);
        pi->uffd = -1;
    }
    if (pi->nohugepage && pi->kind == PC_MEM_ANON_PRIVATE) {
        madvise(pi->host, pi->size, MADV_HUGEPAGE);   /* as the backend set it up */
    }
    pi->nohugepage = false;
    return true;
}

void postcopy_incoming_free(PostcopyIncoming *pi)
{
    if (!pi) {
        return;
    }
    postcopy_stop_thread(pi);
    if (pi->uffd >= 0) {
        if (pi->registered && !postcopy_all_received(pi)) {
            /*
             * Closing would unregister the range and wake every blocked
             * thread onto a zero page where guest data belongs: leak the fd
             * so they stay blocked until the process exits.
             */
        } else {
            close(pi->uffd);
        }
    }
    close(pi->efd);
    g_array_free(pi->externals, TRUE);
    g_hash_table_destroy(pi->pending);
    postcopy_blocktime_free_locked(pi);
    g_mutex_clear(&pi->lock);
    g_mutex_clear(&pi->place_lock);
    g_free(pi->zero_buf);
    g_free(pi);
}

/* ---- statistics ---- */

void postcopy_get_blocktime(PostcopyIncoming *pi, uint32_t *total_ms,
                            uint32_t *per_vcpu_ms, int n)
{
    int64_t now = postcopy_now_ns();

    g_mutex_lock(&pi->lock);
    uint64_t total = pi->total_blocked_ns;
    if (pi->nvcpus && pi->nr_blocked == pi->nvcpus) {
        total += (uint64_t)(now - pi->all_blocked_since);
    }
    if (total_ms) {
        *total_ms = (uint32_t)(total / 1000000);
    }
    for (int i = 0; per_vcpu_ms && i < n; i++) {
        uint64_t t = 0;
        if (i < pi->nvcpus) {
            t = pi->vcpu_blocked_ns[i];
            if (pi->vcpu_nblocked[i]) {
                t += (uint64_t)(now - pi->vcpu_block_start[i]);
            }
        }
        per_vcpu_ms[i] = (uint32_t)(t / 1000000);
    }
    g_mutex_unlock(&pi->lock);
}

void postcopy_get_vcpu_latency(PostcopyIncoming *pi, uint64_t *avg_ns, int n)
{
    g_mutex_lock(&pi->lock);
    for (int i = 0; i < n; i++) {
        avg_ns[i] = i < pi->nvcpus && pi->vcpu_faults[i] ?
                    pi->vcpu_lat_ns[i] / pi->vcpu_faults[i] : 0;
    }
    g_mutex_unlock(&pi->lock);
}

void postcopy_get_stats(PostcopyIncoming *pi, PostcopyStats *st)
{
    g_mutex_lock(&pi->lock);
    *st = pi->st;
    st->pending = g_hash_table_size(pi->pending);
    st->missing_pages = pi->missing;
    lat_summary(&pi->lat_vcpu, NULL, &st->vcpu);
    lat_summary(&pi->lat_other, NULL, &st->non_vcpu);
    lat_summary(&pi->lat_vcpu, &pi->lat_other, &st->all);
    g_mutex_unlock(&pi->lock);
}

int postcopy_incoming_uffd(PostcopyIncoming *pi)
{
    return pi->uffd;
}
