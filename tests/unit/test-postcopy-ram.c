/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of the destination postcopy machinery on plain anonymous and
 * memfd memory, without KVM: "faulter" threads stand in for vCPUs, a fake
 * source answers page requests from a reference buffer. Skips loudly when
 * userfaultfd is not available.
 */
#include "qemu/osdep.h"
#include "migration/postcopy-ram.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>

#define PAGE         4096u
#define WAIT_MS      5000

#define WAIT_FOR(cond) do {                                         \
        int64_t deadline_ = g_get_monotonic_time() + WAIT_MS * 1000; \
        while (!(cond) && g_get_monotonic_time() < deadline_) {     \
            g_usleep(500);                                          \
        }                                                           \
        g_assert(cond);                                             \
    } while (0)

static char *uffd_missing;   /* why userfaultfd is unavailable, or NULL */

typedef struct Fx {
    RAMBlock rb;
    size_t npages;
    uint8_t *ref;                 /* what the source holds */
    unsigned long *received;
    PostcopyIncoming *pi;
    GAsyncQueue *reqs;            /* requested offsets + 1 */
    int *req_count;               /* per page, atomic */
    bool auto_place;
    unsigned delay_us;
    GThread *placer;
    int stop;
    int placed_hook;              /* page_placed calls, atomic */
    int ext_fd;                   /* test_external: the "back-end" uffd */
    uint8_t *ext_map;
} Fx;

static bool fx_request(void *opaque, uint64_t offset, uint32_t len)
{
    Fx *fx = opaque;

    g_assert_cmpuint(len, ==, fx->rb.page_size);
    g_assert_cmpuint(offset % len, ==, 0);
    __atomic_fetch_add(&fx->req_count[offset / PAGE], 1, __ATOMIC_RELAXED);
    g_async_queue_push(fx->reqs, GSIZE_TO_POINTER(offset + 1));
    return true;
}

static void fx_placed(void *opaque, uint64_t offset, uint32_t len)
{
    Fx *fx = opaque;

    __atomic_fetch_add(&fx->placed_hook, 1, __ATOMIC_RELAXED);
    if (fx->ext_fd >= 0) {
        /* The vhost-user waker: the back-end sleeps on its own uffd. */
        struct uffdio_range r = { .start = (uintptr_t)(fx->ext_map + offset), .len = len };
        ioctl(fx->ext_fd, UFFDIO_WAKE, &r);
    }
}

static const PostcopyHooks fx_hooks = { .request_page = fx_request, .page_placed = fx_placed };

static void fx_place(Fx *fx, uint64_t off)
{
    g_autoptr(GError) err = NULL;

    g_assert(postcopy_place_page(fx->pi, off, fx->ref + off, &err));
    g_assert_no_error(err);
}

static gpointer placer_thread(gpointer opaque)
{
    Fx *fx = opaque;

    while (!__atomic_load_n(&fx->stop, __ATOMIC_ACQUIRE)) {
        gpointer p = g_async_queue_timeout_pop(fx->reqs, 10000);
        if (!p) {
            continue;
        }
        if (fx->delay_us) {
            g_usleep(fx->delay_us);
        }
        fx_place(fx, GPOINTER_TO_SIZE(p) - 1);
    }
    return NULL;
}

/* Pop the next request (manual placement), or fail after WAIT_MS. */
static uint64_t fx_pop(Fx *fx)
{
    gpointer p = g_async_queue_timeout_pop(fx->reqs, WAIT_MS * 1000);

    g_assert(p);
    return GPOINTER_TO_SIZE(p) - 1;
}

static void fill_ref(uint8_t *buf, size_t npages, unsigned seed)
{
    for (size_t i = 0; i < npages * PAGE / 8; i++) {
        uint64_t v = (i * 0x9e3779b97f4a7c15ULL) ^ seed;
        memcpy(buf + i * 8, &v, 8);
    }
}

/* Guest RAM of @npages: private anonymous, or a shared memfd. */
static void fx_init(Fx *fx, size_t npages, bool memfd)
{
    memset(fx, 0, sizeof(*fx));
    fx->npages = npages;
    fx->ext_fd = -1;
    g_strlcpy(fx->rb.name, "pc.ram", sizeof(fx->rb.name));
    fx->rb.size = npages * PAGE;
    fx->rb.page_size = PAGE;
    fx->rb.fd = -1;
    if (memfd) {
        fx->rb.fd = memfd_create("test-pc", MFD_CLOEXEC);
        g_assert_cmpint(fx->rb.fd, >=, 0);
        g_assert_cmpint(ftruncate(fx->rb.fd, (off_t)fx->rb.size), ==, 0);
        fx->rb.shared = true;
    }
    fx->rb.host = mmap(NULL, fx->rb.size, PROT_READ | PROT_WRITE,
                       memfd ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, fx->rb.fd, 0);
    g_assert(fx->rb.host != MAP_FAILED);
    fx->ref = g_malloc(fx->rb.size);
    fill_ref(fx->ref, npages, 1);
    fx->received = g_new0(unsigned long, GW_DIV_ROUND_UP(npages, 64));
    fx->req_count = g_new0(int, npages);
    fx->reqs = g_async_queue_new();
}

static void fx_new_pi(Fx *fx)
{
    g_autoptr(GError) err = NULL;

    fx->pi = postcopy_incoming_new(&fx->rb, fx->received, fx->npages, &fx_hooks, fx, &err);
    g_assert_no_error(err);
    g_assert(fx->pi);
}

static void fx_listen(Fx *fx, bool auto_place, unsigned delay_us)
{
    g_autoptr(GError) err = NULL;

    g_assert(postcopy_listen(fx->pi, &err));
    g_assert_no_error(err);
    fx->auto_place = auto_place;
    fx->delay_us = delay_us;
    if (auto_place) {
        fx->placer = g_thread_new("test-placer", placer_thread, fx);
    }
}

static void fx_stop_placer(Fx *fx)
{
    if (fx->placer) {
        __atomic_store_n(&fx->stop, 1, __ATOMIC_RELEASE);
        g_thread_join(fx->placer);
        fx->placer = NULL;
    }
}

/* Place every page not received yet (as the background sweep would). */
static void fx_sweep(Fx *fx)
{
    for (size_t i = 0; i < fx->npages; i++) {
        if (!((fx->received[i / 64] >> (i % 64)) & 1)) {
            fx_place(fx, i * PAGE);
        }
    }
}

static void fx_finish(Fx *fx)
{
    g_autoptr(GError) err = NULL;

    fx_stop_placer(fx);
    if (fx->pi) {
        g_assert(postcopy_incoming_finish(fx->pi, &err));
        g_assert_no_error(err);
        g_assert_cmpint(postcopy_incoming_uffd(fx->pi), ==, -1);
        postcopy_incoming_free(fx->pi);
    }
    munmap(fx->rb.host, fx->rb.size);
    if (fx->rb.fd >= 0) {
        close(fx->rb.fd);
    }
    g_free(fx->ref);
    g_free(fx->received);
    g_free(fx->req_count);
    g_async_queue_unref(fx->reqs);
}

static PostcopyStats fx_stats(Fx *fx)
{
    PostcopyStats st;

    postcopy_get_stats(fx->pi, &st);
    return st;
}

static bool is_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

static bool need_uffd(void)
{
    if (uffd_missing) {
        g_test_skip(uffd_missing);
        return false;
    }
    return true;
}

/* ---- faulters ---- */

typedef struct Faulter {
    Fx *fx;
    const uint64_t *offs;     /* page offsets to touch, in order */
    size_t n;
    bool write;
    int tid;                  /* published before touching anything */
    GMutex gate_lock;
    GCond gate;
    bool go;
    int done;                 /* atomic */
    int mismatches;
    GThread *th;
    int64_t *times_ns;        /* optional: duration of each access */
} Faulter;

static gpointer faulter_thread(gpointer opaque)
{
    Faulter *f = opaque;
    Fx *fx = f->fx;

    __atomic_store_n(&f->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
    g_mutex_lock(&f->gate_lock);
    while (!f->go) {
        g_cond_wait(&f->gate, &f->gate_lock);
    }
    g_mutex_unlock(&f->gate_lock);
    for (size_t i = 0; i < f->n; i++) {
        uint8_t *p = fx->rb.host + f->offs[i];
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (f->write) {
            __atomic_fetch_add(p + 17, 0, __ATOMIC_RELAXED);   /* a write fault */
        } else {
            (void)*(volatile uint8_t *)p;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (f->times_ns) {
            f->times_ns[i] = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
        }
        if (memcmp(p, fx->ref + f->offs[i], PAGE) != 0) {
            f->mismatches++;
        }
    }
    __atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void faulter_start(Faulter *f, Fx *fx, const uint64_t *offs, size_t n, bool write)
{
    memset(f, 0, sizeof(*f));
    f->fx = fx;
    f->offs = offs;
    f->n = n;
    f->write = write;
    g_mutex_init(&f->gate_lock);
    g_cond_init(&f->gate);
    f->th = g_thread_new("test-faulter", faulter_thread, f);
    WAIT_FOR(__atomic_load_n(&f->tid, __ATOMIC_ACQUIRE) != 0);
}

static void faulter_go(Faulter *f)
{
    g_mutex_lock(&f->gate_lock);
    f->go = true;
    g_cond_signal(&f->gate);
    g_mutex_unlock(&f->gate_lock);
}

static bool faulter_done(Faulter *f)
{
    return __atomic_load_n(&f->done, __ATOMIC_ACQUIRE);
}

static void faulter_join(Faulter *f)
{
    g_thread_join(f->th);
    g_mutex_clear(&f->gate_lock);
    g_cond_clear(&f->gate);
    g_assert_cmpint(f->mismatches, ==, 0);
}

static uint64_t *page_list(size_t npages, size_t first, size_t count, int order)
{
    uint64_t *o = g_new(uint64_t, count);

    for (size_t i = 0; i < count; i++) {
        size_t k = order == 0 ? i : order == 1 ? count - 1 - i : (i * 7) % count;
        o[i] = (first + k) * PAGE;
        g_assert_cmpuint(first + k, <, npages);
    }
    return o;
}

/* ---- tests ---- */

static void test_supported(void)
{
    g_autoptr(GError) err = NULL;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, 16, true);
    g_assert(postcopy_ram_supported(&fx.rb, &err));
    g_assert_no_error(err);
    fx_finish(&fx);

    /* A size that is not a multiple of the page size. */
    fx_init(&fx, 16, false);
    fx.rb.page_size = 2u << 20;
    g_assert(!postcopy_ram_supported(&fx.rb, &err));
    g_assert_nonnull(strstr(err->message, "not a multiple of its page size"));
    g_clear_error(&err);
    fx.rb.page_size = PAGE;
    fx_finish(&fx);

    /* A memory-backend-file on a regular file system. */
    char path[] = "/var/tmp/test-postcopy-XXXXXX";
    int fd = g_mkstemp(path);
    struct statfs fs;
    g_assert_cmpint(fd, >=, 0);
    unlink(path);
    if (fstatfs(fd, &fs) == 0 && fs.f_type != TMPFS_MAGIC) {
        RAMBlock rb = { .name = "pc.ram", .size = 16 * PAGE, .page_size = PAGE, .fd = fd,
                        .shared = true, .backend_id = (char *)"mem0" };
        g_assert_cmpint(ftruncate(fd, 16 * PAGE), ==, 0);
        rb.host = mmap(NULL, rb.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        g_assert(rb.host != MAP_FAILED);
        g_assert(!postcopy_ram_supported(&rb, &err));
        g_assert_cmpstr(err->message, ==, "Postcopy is not supported for memory backend "
                        "'mem0': userfaultfd cannot serve a file on a regular file system; "
                        "use memory-backend-memfd or hugetlbfs");
        munmap(rb.host, rb.size);
    }
    close(fd);
}

/* Several faulters over all pages; a delayed fake source. */
static void test_basic(gconstpointer data)
{
    bool memfd = GPOINTER_TO_INT(data);
    const size_t np = 512;
    Faulter f[4];
    uint64_t *lists[4];
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, np, memfd);
    fx_new_pi(&fx);
    g_assert(!postcopy_all_received(fx.pi));
    fx_listen(&fx, true, 50);
    for (int i = 0; i < 4; i++) {
        lists[i] = page_list(np, 0, np, i % 3);
        faulter_start(&f[i], &fx, lists[i], np, i == 3);
    }
    for (int i = 0; i < 4; i++) {
        faulter_go(&f[i]);
    }
    for (int i = 0; i < 4; i++) {
        faulter_join(&f[i]);
        g_free(lists[i]);
    }
    fx_stop_placer(&fx);
    g_assert_cmpint(memcmp(fx.rb.host, fx.ref, fx.rb.size), ==, 0);

    PostcopyStats st = fx_stats(&fx);
    uint64_t sum = 0;
    for (size_t i = 0; i < np; i++) {
        g_assert_cmpint(fx.req_count[i], ==, 1);    /* every page, exactly once */
        sum += (uint64_t)fx.req_count[i];
    }
    g_assert_cmpuint(st.requests, ==, sum);
    g_assert_cmpuint(st.pages_placed, ==, np);
    g_assert_cmpuint(st.duplicates, ==, 0);
    g_assert_cmpuint(st.pending, ==, 0);
    g_assert_cmpuint(st.missing_pages, ==, 0);
    g_assert_cmpuint(st.faults, >=, np);
    g_assert_cmpint(fx.placed_hook, ==, (int)np);
    g_assert(postcopy_all_received(fx.pi));

    /* Latency: every waiting thread counted once; no vCPU tids given. */
    g_assert_cmpuint(st.all.faults, ==, st.faults - st.faults_received);
    g_assert_cmpuint(st.non_vcpu.faults, ==, st.all.faults);
    g_assert_cmpuint(st.vcpu.faults, ==, 0);
    /* The placer sleeps 50 us before each placement: a page's first waiter waits that long. */
    g_assert_cmpuint(st.all.max_ns, >=, 50 * 1000);
    g_assert_cmpuint(st.all.p50_ns, <=, st.all.p99_ns);
    g_assert_cmpuint(st.all.p99_ns, <=, st.all.max_ns);
    g_assert_cmpuint(st.all.avg_ns, <=, st.all.max_ns);
    g_assert_cmpuint(st.all.max_ns, <, 10ULL * 1000 * 1000 * 1000);
    uint64_t dist = 0;
    for (int i = 0; i < POSTCOPY_LATENCY_BUCKETS; i++) {
        dist += st.latency_dist[i];
    }
    g_assert_cmpuint(dist, ==, st.all.faults);
    fx_finish(&fx);
}

/* Pages loaded by precopy are never requested; received-but-untouched read as zero. */
static void test_precopied(void)
{
    const size_t np = 128;
    Faulter f;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, np, false);
    memset(fx.ref + 32 * PAGE, 0, 32 * PAGE);   /* zero pages precopy never wrote */
    memcpy(fx.rb.host, fx.ref, 32 * PAGE);      /* data pages precopy wrote */
    for (size_t i = 0; i < 64; i++) {
        fx.received[i / 64] |= 1UL << (i % 64);
    }
    fx_new_pi(&fx);
    fx_listen(&fx, true, 0);
    g_autofree uint64_t *all = page_list(np, 0, np, 0);
    faulter_start(&f, &fx, all, np, false);
    faulter_go(&f);
    faulter_join(&f);
    fx_stop_placer(&fx);

    PostcopyStats st = fx_stats(&fx);
    for (size_t i = 0; i < np; i++) {
        g_assert_cmpint(fx.req_count[i], ==, i < 64 ? 0 : 1);
    }
    g_assert_cmpuint(st.local_zero_fills, ==, 32);
    g_assert_cmpuint(st.requests, ==, 64);
    g_assert_cmpint(memcmp(fx.rb.host, fx.ref, fx.rb.size), ==, 0);
    fx_finish(&fx);
}

/* Four threads on one page: one request. */
static void test_dedup(void)
{
    const uint64_t off = 5 * PAGE;
    Faulter f[4];
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, 16, false);
    fx_new_pi(&fx);
    fx_listen(&fx, false, 0);
    for (int i = 0; i < 4; i++) {
        faulter_start(&f[i], &fx, &off, 1, i & 1);
        faulter_go(&f[i]);
    }
    WAIT_FOR(fx_stats(&fx).faults >= 4);
    g_usleep(20 * 1000);
    PostcopyStats st = fx_stats(&fx);
    g_assert_cmpuint(st.requests, ==, 1);
    g_assert_cmpuint(st.faults_pending, ==, 3);
    g_assert_cmpuint(st.pending, ==, 1);
    g_assert_cmpint(fx.req_count[5], ==, 1);
    g_assert_cmpuint(fx_pop(&fx), ==, off);
    fx_place(&fx, off);
    for (int i = 0; i < 4; i++) {
        faulter_join(&f[i]);
    }
    st = fx_stats(&fx);
    g_assert_cmpuint(st.all.faults, ==, 4);
    g_assert_cmpuint(st.pending, ==, 0);
    fx_sweep(&fx);
    fx_finish(&fx);
}

/* A page arriving twice (swept and requested) is fine; zero pages. */
static void test_double_place(void)
{
    g_autoptr(GError) err = NULL;
    const uint64_t off5 = 5 * PAGE;
    Faulter f;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, 16, false);
    fx_new_pi(&fx);
    fx_listen(&fx, false, 0);
    fx_place(&fx, 3 * PAGE);
    fx_place(&fx, 3 * PAGE);
    PostcopyStats st = fx_stats(&fx);
    g_assert_cmpuint(st.pages_placed, ==, 1);
    g_assert_cmpuint(st.duplicates, ==, 1);
    g_assert_cmpuint(st.duplicates_unexpected, ==, 0);
    g_assert_cmpint(memcmp(fx.rb.host + 3 * PAGE, fx.ref + 3 * PAGE, PAGE), ==, 0);

    faulter_start(&f, &fx, &off5, 1, false);
    faulter_go(&f);
    g_assert_cmpuint(fx_pop(&fx), ==, off5);
    fx_place(&fx, off5);        /* the requested copy */
    fx_place(&fx, off5);        /* the sweep's copy, late */
    faulter_join(&f);
    g_assert_cmpuint(fx_stats(&fx).duplicates, ==, 2);

    memset(fx.ref + 7 * PAGE, 0, PAGE);
    g_assert(postcopy_place_zero_page(fx.pi, 7 * PAGE, &err));
    g_assert_no_error(err);
    g_assert(is_zero(fx.rb.host + 7 * PAGE, PAGE));
    g_assert_cmpuint(fx_stats(&fx).zero_pages_placed, ==, 1);

    /* Misaligned and out-of-range placements are errors, not crashes. */
    g_assert(!postcopy_place_page(fx.pi, 100, fx.ref, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert(!postcopy_place_page(fx.pi, 16 * PAGE, fx.ref, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);

    fx_sweep(&fx);
    g_assert_cmpint(memcmp(fx.rb.host, fx.ref, fx.rb.size), ==, 0);
    fx_finish(&fx);
}

/*
 * A page present before it arrived, never received nor discarded (a
 * shared file that held data): placing over it would keep the old data,
 * so the placement fails instead of passing for a duplicate.
 */
static void test_present_not_received(void)
{
    g_autoptr(GError) err = NULL;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, 16, true);
    /* Old content of the backing file, written behind the loader's back. */
    memset(fx.rb.host + 4 * PAGE, 0xaa, PAGE);
    fx_new_pi(&fx);
    fx_listen(&fx, false, 0);
    g_assert_false(postcopy_place_page(fx.pi, 4 * PAGE, fx.ref + 4 * PAGE, &err));
    g_assert_cmpstr(err->message, ==, "postcopy: the page at 0x4000 of block 'pc.ram' was "
                    "present before it arrived (its memory was neither empty nor discarded "
                    "there)");
    g_clear_error(&err);
    g_assert_false(postcopy_place_zero_page(fx.pi, 4 * PAGE, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    PostcopyStats st = fx_stats(&fx);
    g_assert_cmpuint(st.duplicates, ==, 0);
    g_assert_cmpuint(st.duplicates_unexpected, ==, 2);
    g_assert_cmpuint(st.missing_pages, ==, 16);
    /* The rest places normally; that page stays as the file had it, unreceived. */
    for (uint64_t p = 0; p < 16; p++) {
        if (p != 4) {
            fx_place(&fx, p * PAGE);
        }
    }
    g_assert_cmpuint(fx_stats(&fx).missing_pages, ==, 1);
    g_assert_false(postcopy_incoming_finish(fx.pi, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    postcopy_incoming_free(fx.pi);
    fx.pi = NULL;
    fx_finish(&fx);
}

/*
 * Discard: the pages fault again and are requested. On shared memory the
 * hole must be punched in the file: MADV_DONTNEED alone keeps the data.
 */
static void test_discard(gconstpointer data)
{
    bool memfd = GPOINTER_TO_INT(data);
    const size_t np = 64;
    g_autoptr(GError) err = NULL;
    Faulter f;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, np, memfd);
    memcpy(fx.rb.host, fx.ref, fx.rb.size);          /* precopy loaded everything */
    memset(fx.received, 0xff, GW_DIV_ROUND_UP(np, 64) * sizeof(unsigned long));
    if (memfd) {
        /* The reason for punching holes: DONTNEED keeps shared data. */
        g_assert_cmpint(madvise(fx.rb.host, PAGE, MADV_DONTNEED), ==, 0);
        g_assert_cmpint(memcmp(fx.rb.host, fx.ref, PAGE), ==, 0);
    }
    fx_new_pi(&fx);
    g_assert(postcopy_all_received(fx.pi));
    /* The source has newer data for the discarded pages. */
    fill_ref(fx.ref + 8 * PAGE, 8, 2);
    fill_ref(fx.ref + 40 * PAGE, 8, 3);
    g_assert(postcopy_discard_range(fx.pi, 8 * PAGE, 8 * PAGE, &err));
    g_assert(postcopy_discard_range(fx.pi, 40 * PAGE, 8 * PAGE, &err));
    g_assert_no_error(err);
    g_assert(!postcopy_discard_range(fx.pi, 40 * PAGE + 1, PAGE, &err));
    g_clear_error(&err);
    g_assert(!postcopy_discard_range(fx.pi, 60 * PAGE, 8 * PAGE, &err));
    g_clear_error(&err);
    g_assert(!postcopy_all_received(fx.pi));
    PostcopyStats st = fx_stats(&fx);
    g_assert_cmpuint(st.discard_punch_hole, ==, memfd ? 2 : 0);
    g_assert_cmpuint(st.discard_dontneed, ==, memfd ? 0 : 2);
    g_assert_cmpuint(st.missing_pages, ==, 16);
    g_assert(fx.received[0] == ~(0xff00UL | (0xffUL << 40)));

    fx_listen(&fx, true, 0);
    g_assert(!postcopy_discard_range(fx.pi, 0, PAGE, &err));    /* after LISTEN */
    g_clear_error(&err);
    g_autofree uint64_t *all = page_list(np, 0, np, 1);
    faulter_start(&f, &fx, all, np, false);
    faulter_go(&f);
    faulter_join(&f);
    fx_stop_placer(&fx);
    for (size_t i = 0; i < np; i++) {
        bool discarded = (i >= 8 && i < 16) || (i >= 40 && i < 48);
        g_assert_cmpint(fx.req_count[i], ==, discarded ? 1 : 0);
    }
    g_assert_cmpint(memcmp(fx.rb.host, fx.ref, fx.rb.size), ==, 0);
    if (memfd) {
        /* The new data is in the file, not only in our mapping. */
        uint8_t buf[PAGE];
        g_assert_cmpint(pread(fx.rb.fd, buf, PAGE, 8 * PAGE), ==, PAGE);
        g_assert_cmpint(memcmp(buf, fx.ref + 8 * PAGE, PAGE), ==, 0);
    }
    g_assert(postcopy_all_received(fx.pi));
    fx_finish(&fx);
}

/*
 * Blocktime: vCPU0 blocks at t0, vCPU1 at t1, page A placed at t2, B at t3.
 * Per vCPU ~ t2-t0 and t3-t1; the total only the overlap t2-t1.
 */
static void test_blocktime(void)
{
    const int64_t step_ms = 60;
    const uint64_t offa = 2 * PAGE, offb = 9 * PAGE, offc = 12 * PAGE;
    uint32_t total, per[3];
    Faulter v[2], other;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, 16, false);
    fx_new_pi(&fx);
    faulter_start(&v[0], &fx, &offa, 1, false);
    faulter_start(&v[1], &fx, &offb, 1, true);
    int tids[2] = { v[0].tid, v[1].tid };
    postcopy_set_vcpu_tids(fx.pi, tids, 2);
    fx_listen(&fx, false, 0);

    faulter_go(&v[0]);
    WAIT_FOR(fx_stats(&fx).faults == 1);
    g_usleep(step_ms * 1000);
    faulter_go(&v[1]);
    WAIT_FOR(fx_stats(&fx).faults == 2);
    g_usleep(step_ms * 1000);

    /* Live, while both are still blocked. */
    postcopy_get_blocktime(fx.pi, &total, per, 2);
    g_assert_cmpuint(total, >=, step_ms * 3 / 4);
    g_assert_cmpuint(per[0], >=, 2 * step_ms * 3 / 4);
    g_assert_cmpuint(per[1], >=, step_ms * 3 / 4);
    g_assert(!faulter_done(&v[0]) && !faulter_done(&v[1]));

    fx_place(&fx, offa);
    faulter_join(&v[0]);
    g_usleep(step_ms * 1000);
    fx_place(&fx, offb);
    faulter_join(&v[1]);

    /* A non-vCPU thread: latency, but no blocktime. */
    faulter_start(&other, &fx, &offc, 1, false);
    faulter_go(&other);
    g_assert_cmpuint(fx_pop(&fx), ==, offa);
    g_assert_cmpuint(fx_pop(&fx), ==, offb);
    g_assert_cmpuint(fx_pop(&fx), ==, offc);
    fx_place(&fx, offc);
    faulter_join(&other);

    postcopy_get_blocktime(fx.pi, &total, per, 3);
    g_test_message("blocktime: total %u ms, vcpu %u, %u ms", total, per[0], per[1]);
    g_assert_cmpuint(per[2], ==, 0);                      /* no such vCPU */
    g_assert_cmpuint(total, >=, step_ms * 3 / 4);
    g_assert_cmpuint(total, <=, step_ms * 2);
    for (int i = 0; i < 2; i++) {
        g_assert_cmpuint(per[i], >=, 2 * step_ms * 3 / 4);
        g_assert_cmpuint(per[i], <=, 2 * step_ms * 4);
        g_assert_cmpuint(total + step_ms / 2, <, per[i]);
    }
    PostcopyStats st = fx_stats(&fx);
    g_assert_cmpuint(st.vcpu.faults, ==, 2);
    g_assert_cmpuint(st.non_vcpu.faults, ==, 1);
    g_assert_cmpuint(st.vcpu.p50_ns, >=, 2 * step_ms * 1000000 * 3 / 4);
    uint64_t lat[2];
    postcopy_get_vcpu_latency(fx.pi, lat, 2);
    g_assert_cmpuint(lat[0], >=, 2 * step_ms * 1000000 * 3 / 4);
    g_assert_cmpuint(lat[1], >=, 2 * step_ms * 1000000 * 3 / 4);
    /* ~120 ms: bucket [65536 us, 131072 us) or the next one. */
    g_assert_cmpuint(st.latency_dist[16] + st.latency_dist[17], ==, 2);
    fx_sweep(&fx);
    fx_finish(&fx);
}

/* Latency percentiles against a source that takes >= 1 ms per page. */
static void test_latency(void)
{
    const size_t np = 24;
    Faulter f;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, np, false);
    fx_new_pi(&fx);
    fx_listen(&fx, true, 1000);
    g_autofree uint64_t *all = page_list(np, 0, np, 2);
    faulter_start(&f, &fx, all, np, false);
    faulter_go(&f);
    faulter_join(&f);
    PostcopyStats st = fx_stats(&fx);
    g_assert_cmpuint(st.all.faults, ==, np);
    g_assert_cmpuint(st.all.p50_ns, >=, 1000 * 1000);
    g_assert_cmpuint(st.all.p50_ns, <=, st.all.p99_ns);
    g_assert_cmpuint(st.all.p99_ns, <=, st.all.max_ns);
    g_assert_cmpuint(st.all.avg_ns, >=, 1000 * 1000);
    for (int i = 0; i < 9; i++) {            /* nothing under 512 us */
        g_assert_cmpuint(st.latency_dist[i], ==, 0);
    }
    g_test_message("latency with a 1 ms source: p50 %" PRIu64 " us, p99 %" PRIu64
                   " us, max %" PRIu64 " us", st.all.p50_ns / 1000, st.all.p99_ns / 1000,
                   st.all.max_ns / 1000);
    fx_finish(&fx);
}

/*
 * Connection failure: the faulters stay blocked, requests are kept and sent
 * again on recovery; finish refuses while pages are missing.
 */
static void test_pause(void)
{
    g_autoptr(GError) err = NULL;
    const uint64_t off1 = 1 * PAGE, off2 = 2 * PAGE;
    Faulter a, b;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, 8, false);
    fx_new_pi(&fx);
    fx_listen(&fx, false, 0);
    faulter_start(&a, &fx, &off1, 1, false);
    faulter_go(&a);
    g_assert_cmpuint(fx_pop(&fx), ==, off1);

    postcopy_incoming_pause(fx.pi);
    faulter_start(&b, &fx, &off2, 1, true);
    faulter_go(&b);
    WAIT_FOR(fx_stats(&fx).faults == 2);
    g_usleep(100 * 1000);
    PostcopyStats st = fx_stats(&fx);
    g_assert_cmpuint(st.requests, ==, 1);      /* nothing sent while paused */
    g_assert_cmpuint(st.pending, ==, 2);
    g_assert(!faulter_done(&a) && !faulter_done(&b));
    g_assert(!postcopy_incoming_finish(fx.pi, &err));
    g_assert_nonnull(strstr(err->message, "have not arrived"));
    g_clear_error(&err);
    g_usleep(20 * 1000);
    g_assert(!faulter_done(&a) && !faulter_done(&b));   /* still registered */

    g_assert(postcopy_incoming_resume(fx.pi, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(fx_stats(&fx).resent, ==, 2);
    g_assert_cmpint(fx.req_count[1], ==, 2);
    g_assert_cmpint(fx.req_count[2], ==, 1);
    for (int i = 0; i < 2; i++) {
        fx_place(&fx, fx_pop(&fx));
    }
    faulter_join(&a);
    faulter_join(&b);
    fx_sweep(&fx);
    g_assert_cmpint(memcmp(fx.rb.host, fx.ref, fx.rb.size), ==, 0);
    fx_finish(&fx);
}

/* Freeing an incomplete migration must not unregister: no zeros handed out. */
static void test_free_incomplete(void)
{
    const uint64_t off = 3 * PAGE;
    Faulter f;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, 8, false);
    fx_new_pi(&fx);
    fx_listen(&fx, false, 0);
    faulter_start(&f, &fx, &off, 1, false);
    faulter_go(&f);
    g_assert_cmpuint(fx_pop(&fx), ==, off);
    int uffd = postcopy_incoming_uffd(fx.pi);
    postcopy_incoming_free(fx.pi);
    fx.pi = NULL;
    g_assert_cmpint(fcntl(uffd, F_GETFD), >=, 0);       /* deliberately left open */
    g_usleep(50 * 1000);
    g_assert(!faulter_done(&f));

    /* Resolve it by hand so the thread can end. */
    struct uffdio_copy c = { .dst = (uintptr_t)(fx.rb.host + off),
                             .src = (uintptr_t)(fx.ref + off), .len = PAGE };
    g_assert_cmpint(ioctl(uffd, UFFDIO_COPY, &c), ==, 0);
    faulter_join(&f);
    close(uffd);
    fx_finish(&fx);
}

/* A second mapping of the same memfd with its own uffd: a vhost-user back-end. */
static void ext_fault(PostcopyIncoming *pi, void *opaque, const struct uffd_msg *msg)
{
    Fx *fx = opaque;
    uint64_t off = msg->arg.pagefault.address - (uintptr_t)fx->ext_map;

    if (postcopy_fault_external(pi, off, msg->arg.pagefault.feat.ptid)) {
        struct uffdio_range r = { .start = (uintptr_t)fx->ext_map + GW_ROUND_DOWN(off, PAGE),
                                  .len = PAGE };
        ioctl(fx->ext_fd, UFFDIO_WAKE, &r);
    }
}

static gpointer ext_reader(gpointer opaque)
{
    Fx *fx = opaque;
    size_t bad = 0;

    for (size_t i = 0; i < fx->npages; i++) {
        bad += memcmp(fx->ext_map + i * PAGE, fx->ref + i * PAGE, PAGE) != 0;
    }
    return GSIZE_TO_POINTER(bad);
}

static void test_external(void)
{
    g_autoptr(GError) err = NULL;
    const size_t np = 32;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, np, true);
    memcpy(fx.rb.host, fx.ref, 8 * PAGE);           /* precopy: first 8 pages */
    fx.received[0] = 0xff;
    fx.ext_map = mmap(NULL, fx.rb.size, PROT_READ | PROT_WRITE, MAP_SHARED, fx.rb.fd, 0);
    g_assert(fx.ext_map != MAP_FAILED);
    fx.ext_fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    g_assert_cmpint(fx.ext_fd, >=, 0);
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
    g_assert_cmpint(ioctl(fx.ext_fd, UFFDIO_API, &api), ==, 0);
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)fx.ext_map, .len = fx.rb.size },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    g_assert_cmpint(ioctl(fx.ext_fd, UFFDIO_REGISTER, &reg), ==, 0);

    fx_new_pi(&fx);
    g_assert(postcopy_register_external_uffd(fx.pi, fx.ext_fd, ext_fault, &fx, &err));
    g_assert_no_error(err);
    fx_listen(&fx, true, 20);
    g_assert(!postcopy_register_external_uffd(fx.pi, fx.ext_fd, ext_fault, &fx, &err));
    g_clear_error(&err);

    GThread *t = g_thread_new("test-backend", ext_reader, &fx);
    g_assert_cmpuint(GPOINTER_TO_SIZE(g_thread_join(t)), ==, 0);
    PostcopyStats st = fx_stats(&fx);
    g_assert_cmpuint(st.external_faults, >=, np - 8);
    g_assert_cmpuint(st.requests, ==, np - 8);
    fx_stop_placer(&fx);
    g_assert(postcopy_fault_external(fx.pi, 0, 0));   /* received: caller wakes */
    g_assert(postcopy_all_received(fx.pi));
    fx_finish(&fx);
    close(fx.ext_fd);
    munmap(fx.ext_map, np * PAGE);
}

/* Huge pages, when the host has a free one or more. */
static void test_hugetlb(void)
{
    const size_t hps = 2u << 20;
    g_autoptr(GError) err = NULL;
    RAMBlock rb = { .name = "pc.ram", .size = 2 * hps, .page_size = hps, .hugetlb = true,
                    .shared = true };

    if (!need_uffd()) {
        return;
    }
    rb.fd = memfd_create("test-pc-huge", MFD_CLOEXEC | MFD_HUGETLB);
    if (rb.fd < 0 || ftruncate(rb.fd, (off_t)rb.size) < 0) {
        g_test_skip("SKIP: no hugetlbfs memfd");
        goto out;
    }
    rb.host = mmap(NULL, rb.size, PROT_READ | PROT_WRITE, MAP_SHARED, rb.fd, 0);
    if (rb.host == MAP_FAILED) {
        g_test_skip("SKIP: cannot map huge pages");
        goto out;
    }
    /* mmap reserves the huge pages; without enough free ones it fails. */
    if (!postcopy_ram_supported(&rb, &err)) {
        g_test_skip(err->message);
        munmap(rb.host, rb.size);
        goto out;
    }
    unsigned long received[2 * (2u << 20) / PAGE / 64] = { 0 };
    uint8_t *ref = g_malloc(hps);
    memset(ref, 0xa5, hps);
    const PostcopyHooks hooks = { .request_page = fx_request };
    Fx fx = { .rb = rb, .npages = rb.size / PAGE, .reqs = g_async_queue_new(),
              .req_count = g_new0(int, rb.size / PAGE), .ext_fd = -1 };
    PostcopyIncoming *pi = postcopy_incoming_new(&rb, received, rb.size / PAGE, &hooks, &fx,
                                                 &err);
    g_assert_no_error(err);
    g_assert(postcopy_discard_range(pi, 0, hps, &err));
    g_assert(!postcopy_discard_range(pi, PAGE, PAGE, &err));   /* not a huge page */
    g_clear_error(&err);
    g_assert(postcopy_listen(pi, &err));
    g_assert_no_error(err);
    g_assert(postcopy_place_page(pi, 0, ref, &err));
    g_assert(postcopy_place_zero_page(pi, hps, &err));
    g_assert(postcopy_place_page(pi, hps, ref, &err));        /* present: duplicate */
    g_assert_no_error(err);
    g_assert_cmpint(memcmp(rb.host, ref, hps), ==, 0);
    g_assert(is_zero(rb.host + hps, hps));
    g_assert(postcopy_all_received(pi));
    g_assert_cmpuint(received[0], ==, ~0UL);
    g_assert(postcopy_incoming_finish(pi, &err));
    postcopy_incoming_free(pi);
    g_free(ref);
    g_free(fx.req_count);
    g_async_queue_unref(fx.reqs);
    munmap(rb.host, rb.size);
out:
    if (rb.fd >= 0) {
        close(rb.fd);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * The raw floor the benchmark compares against: one 4 KiB fault resolved
 * by a placer thread in this process (fault -> our fault thread -> request
 * hook -> placer -> UFFDIO_COPY -> wake), measured by the faulting thread.
 */
static void test_floor(void)
{
    const size_t np = 2000;
    Faulter f;
    Fx fx;

    if (!need_uffd()) {
        return;
    }
    fx_init(&fx, np, false);
    fx_new_pi(&fx);
    fx_listen(&fx, true, 0);
    g_autofree uint64_t *all = page_list(np, 0, np, 0);
    g_autofree int64_t *t = g_new0(int64_t, np);
    faulter_start(&f, &fx, all, np, false);
    f.times_ns = t;
    faulter_go(&f);
    faulter_join(&f);
    qsort(t, np, sizeof(t[0]), cmp_i64);
    PostcopyStats st = fx_stats(&fx);
    g_test_message("floor: one 4 KiB fault resolved in-process: median %.1f us, "
                   "p99 %.1f us (fault thread -> placer: p50 %.1f us)",
                   t[np / 2] / 1000.0, t[np * 99 / 100] / 1000.0, st.all.p50_ns / 1000.0);
    g_assert_cmpint(t[np / 2], <, 20 * 1000 * 1000);
    fx_finish(&fx);
}

int main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    RAMBlock probe = { .name = "probe", .size = PAGE, .page_size = PAGE, .fd = -1 };

    g_test_init(&argc, &argv, NULL);
    probe.host = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!postcopy_ram_supported(&probe, &err)) {
        uffd_missing = g_strdup_printf("SKIP: userfaultfd unavailable: %s", err->message);
        g_printerr("%s\n", uffd_missing);
    }
    munmap(probe.host, PAGE);

    g_test_add_func("/postcopy-ram/supported", test_supported);
    g_test_add_data_func("/postcopy-ram/anon/basic", GINT_TO_POINTER(0), test_basic);
    g_test_add_data_func("/postcopy-ram/memfd/basic", GINT_TO_POINTER(1), test_basic);
    g_test_add_func("/postcopy-ram/anon/precopied", test_precopied);
    g_test_add_func("/postcopy-ram/dedup", test_dedup);
    g_test_add_func("/postcopy-ram/double-place", test_double_place);
    g_test_add_func("/postcopy-ram/memfd/present-not-received", test_present_not_received);
    g_test_add_data_func("/postcopy-ram/anon/discard", GINT_TO_POINTER(0), test_discard);
    g_test_add_data_func("/postcopy-ram/memfd/discard", GINT_TO_POINTER(1), test_discard);
    g_test_add_func("/postcopy-ram/blocktime", test_blocktime);
    g_test_add_func("/postcopy-ram/latency", test_latency);
    g_test_add_func("/postcopy-ram/pause", test_pause);
    g_test_add_func("/postcopy-ram/free-incomplete", test_free_incomplete);
    g_test_add_func("/postcopy-ram/memfd/external-uffd", test_external);
    g_test_add_func("/postcopy-ram/hugetlb", test_hugetlb);
    g_test_add_func("/postcopy-ram/floor", test_floor);
    int ret = g_test_run();
    g_free(uffd_missing);
    return ret;
}
