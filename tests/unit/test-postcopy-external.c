/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit test for postcopy's external userfaultfds with translate/wake
 * callbacks (migration/postcopy-ram.c, postcopy_register_external_uffd_ops)
 * and the END notifier: a "back-end" thread reads guest RAM through its
 * own shared mapping of the memfd, registered with its own userfaultfd, as
 * a vhost-user back-end does. Its faults must be requested once per page,
 * answered with the right data, zero-filled when precopy left a received
 * page absent, and woken. Real userfaultfds, real faults; skips loudly
 * without userfaultfd.
 */
#include "qemu/osdep.h"
#include "migration/postcopy-notify.h"
#include "migration/postcopy-ram.h"
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define NPAGES 256
#define PAGE   4096

typedef struct Fx {
    RAMBlock rb;
    unsigned long received[NPAGES / 64];
    PostcopyIncoming *pi;
    uint8_t *be_map;               /* the back-end's own mapping */
    int be_uffd;
    GAsyncQueue *requests;         /* offsets the fault thread asked for (+1) */
    int translates, wakes, requested, ends;
    GMutex lock;
    GHashTable *requested_set;
    int dup_requests;
} Fx;

static Fx fx;

static uint8_t pattern(uint64_t page)
{
    return (uint8_t)(page * 7 + 3);
}

static bool fx_request(void *opaque, uint64_t offset, uint32_t len)
{
    g_mutex_lock(&fx.lock);
    fx.requested++;
    if (!g_hash_table_add(fx.requested_set, GSIZE_TO_POINTER(offset))) {
        fx.dup_requests++;
    }
    g_mutex_unlock(&fx.lock);
    g_async_queue_push(fx.requests, GSIZE_TO_POINTER(offset + 1));
    return true;
}

static const PostcopyHooks fx_hooks = { .request_page = fx_request };

static bool fx_translate(void *opaque, uint64_t addr, uint64_t *offset)
{
    __atomic_fetch_add(&fx.translates, 1, __ATOMIC_RELAXED);
    if (addr < (uintptr_t)fx.be_map || addr >= (uintptr_t)fx.be_map + NPAGES * PAGE) {
        return false;
    }
    *offset = addr - (uintptr_t)fx.be_map;
    return true;
}

static void fx_wake(void *opaque, uint64_t offset, uint64_t len)
{
    struct uffdio_range r = { .start = (uintptr_t)fx.be_map + offset, .len = len };

    __atomic_fetch_add(&fx.wakes, 1, __ATOMIC_RELAXED);
    ioctl(fx.be_uffd, UFFDIO_WAKE, &r);
}

static const PostcopyExternalOps fx_ext_ops = { .translate = fx_translate, .wake = fx_wake };

static bool fx_notify(void *opaque, PostcopyNotifyEvent ev, PostcopyIncoming *pi,
                      GError **errp)
{
    if (ev == POSTCOPY_NOTIFY_INBOUND_END) {
        g_assert_true(pi == fx.pi);
        fx.ends++;
    }
    return true;
}

/* The source: serves each request after a little while, as a network would. */
static gpointer placer(gpointer opaque)
{
    static uint8_t buf[PAGE];

    for (;;) {
        gsize v = GPOINTER_TO_SIZE(g_async_queue_pop(fx.requests));
        if (v == G_MAXSIZE) {
            break;                 /* the test is over */
        }
        uint64_t off = v - 1;
        g_usleep(2000);
        memset(buf, pattern(off / PAGE), sizeof(buf));
        GError *err = NULL;
        g_assert_true(postcopy_place_page(fx.pi, off, buf, &err));
    }
    return NULL;
}

/*
 * UFFDIO_COPY wakes the faulting reader before the placer has counted the
 * page as arrived: only after the placer is gone are the counts final.
 */
static void placer_stop(GThread *pl)
{
    g_async_queue_push(fx.requests, GSIZE_TO_POINTER(G_MAXSIZE));
    g_thread_join(pl);
}

static void fx_clear(void)
{
    g_hash_table_destroy(fx.requested_set);
    g_async_queue_unref(fx.requests);
    g_mutex_clear(&fx.lock);
}

typedef struct Reader {
    unsigned first, step, count;
    unsigned bad;
} Reader;

/* The back-end's data path: reads pages through its own mapping. */
static gpointer reader(gpointer opaque)
{
    Reader *r = opaque;

    for (unsigned i = 0; i < r->count; i++) {
        uint64_t p = r->first + (uint64_t)i * r->step;
        uint8_t v = __atomic_load_n(&fx.be_map[p * PAGE + 100], __ATOMIC_RELAXED);
        uint8_t want = p < 16 ? pattern(p) : (p < 32 ? 0 : pattern(p));
        if (v != want) {
            r->bad++;
        }
    }
    return NULL;
}

static void test_external_ops(void)
{
    GError *err = NULL;
    int memfd = memfd_create("guest", MFD_CLOEXEC);
    int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    if (uffd < 0) {
        g_test_skip("userfaultfd is not available");
        fprintf(stderr, "*** SKIP: userfaultfd is not available: %s ***\n", g_strerror(errno));
        return;
    }
    g_assert_cmpint(memfd, >=, 0);
    g_assert_cmpint(ftruncate(memfd, NPAGES * PAGE), ==, 0);
    memset(&fx, 0, sizeof(fx));
    g_mutex_init(&fx.lock);
    fx.requested_set = g_hash_table_new(g_direct_hash, g_direct_equal);
    fx.requests = g_async_queue_new();
    g_strlcpy(fx.rb.name, "pc.ram", sizeof(fx.rb.name));
    fx.rb.size = NPAGES * PAGE;
    fx.rb.page_size = PAGE;
    fx.rb.fd = memfd;
    fx.rb.shared = true;
    fx.rb.host = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    g_assert_true(fx.rb.host != MAP_FAILED);
    /* Precopy: pages 0-15 arrived with data, 16-31 as zero pages left absent. */
    for (uint64_t p = 0; p < 16; p++) {
        memset(fx.rb.host + p * PAGE, pattern(p), PAGE);
    }
    for (uint64_t p = 0; p < 32; p++) {
        fx.received[p / 64] |= 1UL << (p % 64);
    }

    /* The back-end: its own mapping, its own userfaultfd (shmem: MISSING_SHMEM). */
    fx.be_map = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    g_assert_true(fx.be_map != MAP_FAILED);
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
    g_assert_cmpint(ioctl(uffd, UFFDIO_API, &api), ==, 0);
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)fx.be_map, .len = NPAGES * PAGE },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    g_assert_cmpint(ioctl(uffd, UFFDIO_REGISTER, &reg), ==, 0);
    fx.be_uffd = uffd;

    postcopy_add_notifier(fx_notify, NULL);
    fx.pi = postcopy_incoming_new(&fx.rb, fx.received, NPAGES, &fx_hooks, NULL, &err);
    g_assert_no_error(err);
    g_assert_true(postcopy_register_external_uffd_ops(fx.pi, uffd, &fx_ext_ops, NULL, &err));
    g_assert_true(postcopy_listen(fx.pi, &err));
    /* Only before LISTEN. */
    g_assert_false(postcopy_register_external_uffd_ops(fx.pi, uffd, &fx_ext_ops, NULL, &err));
    g_clear_error(&err);
    GThread *pl = g_thread_new("placer", placer, NULL);

    /* Two back-end threads touch overlapping pages: each missing page asked for once. */
    Reader a = { 0, 1, 96 }, b = { 32, 2, 32 };
    GThread *ta = g_thread_new("be-a", reader, &a), *tb = g_thread_new("be-b", reader, &b);
    g_thread_join(ta);
    g_thread_join(tb);
    placer_stop(pl);
    g_assert_cmpuint(a.bad, ==, 0);
    g_assert_cmpuint(b.bad, ==, 0);
    g_assert_cmpint(fx.dup_requests, ==, 0);
    /* Pages 32..95 were missing and touched: requested exactly once each. */
    g_assert_cmpint(fx.requested, ==, 64);
    for (uint64_t p = 32; p < 96; p++) {
        g_assert_true(g_hash_table_contains(fx.requested_set, GSIZE_TO_POINTER(p * PAGE)));
    }
    /* Pages 16..31 were received but absent: zero-filled locally, never requested. */
    for (uint64_t p = 16; p < 32; p++) {
        g_assert_false(g_hash_table_contains(fx.requested_set, GSIZE_TO_POINTER(p * PAGE)));
        g_assert_cmpuint(fx.rb.host[p * PAGE], ==, 0);
    }
    g_assert_cmpint(__atomic_load_n(&fx.translates, __ATOMIC_RELAXED), >=, 80);
    PostcopyStats st;
    postcopy_get_stats(fx.pi, &st);
    g_assert_cmpuint(st.external_faults, >=, 80);
    g_assert_cmpuint(st.local_zero_fills, ==, 16);

    /* The rest arrives unasked (the background sweep); every page placed wakes. */
    int wakes_before = __atomic_load_n(&fx.wakes, __ATOMIC_RELAXED);
    for (uint64_t p = 96; p < NPAGES; p++) {
        uint8_t buf[PAGE];
        memset(buf, pattern(p), PAGE);
        g_assert_true(postcopy_place_page(fx.pi, p * PAGE, buf, &err));
    }
    g_assert_cmpint(__atomic_load_n(&fx.wakes, __ATOMIC_RELAXED) - wakes_before, ==,
                    NPAGES - 96);
    Reader c = { 96, 1, NPAGES - 96 };
    reader(&c);
    g_assert_cmpuint(c.bad, ==, 0);
    g_assert_cmpint(fx.requested, ==, 64);

    /* Every page is here: END is raised once, the fault thread is gone. */
    g_assert_true(postcopy_all_received(fx.pi));
    g_assert_true(postcopy_incoming_finish(fx.pi, &err));
    g_assert_no_error(err);
    g_assert_cmpint(fx.ends, ==, 1);
    postcopy_incoming_free(fx.pi);
    fx_clear();
    close(uffd);
    munmap(fx.be_map, NPAGES * PAGE);
    munmap(fx.rb.host, NPAGES * PAGE);
    close(memfd);
}

/*
 * A process that pre-faults the shared memory while mapping it (mlockall)
 * turns pages that have not arrived into zero pages nobody faults on.
 * With placement held, postcopy_drop_unreceived() makes exactly those
 * missing again; afterwards they fault, are requested and arrive intact.
 */
static void test_drop_prefaulted(void)
{
    GError *err = NULL;
    int memfd = memfd_create("guest", MFD_CLOEXEC);
    int probe = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    if (probe < 0) {
        g_test_skip("userfaultfd is not available");
        fprintf(stderr, "*** SKIP: userfaultfd is not available: %s ***\n", g_strerror(errno));
        return;
    }
    close(probe);
    g_assert_cmpint(ftruncate(memfd, NPAGES * PAGE), ==, 0);
    memset(&fx, 0, sizeof(fx));
    g_mutex_init(&fx.lock);
    fx.requested_set = g_hash_table_new(g_direct_hash, g_direct_equal);
    fx.requests = g_async_queue_new();
    g_strlcpy(fx.rb.name, "pc.ram", sizeof(fx.rb.name));
    fx.rb.size = NPAGES * PAGE;
    fx.rb.page_size = PAGE;
    fx.rb.fd = memfd;
    fx.rb.shared = true;
    fx.rb.host = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    g_assert_true(fx.rb.host != MAP_FAILED);
    for (uint64_t p = 0; p < 16; p++) {
        memset(fx.rb.host + p * PAGE, pattern(p), PAGE);
        fx.received[p / 64] |= 1UL << (p % 64);
    }
    fx.pi = postcopy_incoming_new(&fx.rb, fx.received, NPAGES, &fx_hooks, NULL, &err);
    g_assert_no_error(err);
    g_assert_true(postcopy_listen(fx.pi, &err));
    GThread *pl = g_thread_new("placer", placer, NULL);

    /* Nothing populated yet: nothing to drop. */
    postcopy_placement_hold(fx.pi);
    g_assert_cmpint(postcopy_drop_unreceived(fx.pi, &err), ==, 0);
    /* The "back-end" maps the memory populated (MAP_POPULATE), without a userfaultfd. */
    uint8_t *be = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                       memfd, 0);
    g_assert_true(be != MAP_FAILED);
    munmap(be, NPAGES * PAGE);
    /* MAP_POPULATE filled every page: all the unreceived ones are dropped, no received one. */
    g_assert_cmpint(postcopy_drop_unreceived(fx.pi, &err), ==, NPAGES - 16);
    g_assert_no_error(err);
    postcopy_placement_release(fx.pi);
    for (uint64_t p = 0; p < 16; p++) {
        g_assert_cmpuint(fx.rb.host[p * PAGE + 9], ==, pattern(p));
    }
    /* Dropped pages fault through our own mapping, are requested and arrive. */
    for (uint64_t p = 16; p < NPAGES; p++) {
        uint8_t v = __atomic_load_n(&fx.rb.host[p * PAGE + 9], __ATOMIC_RELAXED);
        g_assert_cmpuint(v, ==, pattern(p));
    }
    placer_stop(pl);
    g_assert_cmpint(fx.requested, ==, NPAGES - 16);
    g_assert_true(postcopy_incoming_finish(fx.pi, &err));
    g_assert_no_error(err);
    postcopy_incoming_free(fx.pi);
    fx_clear();
    munmap(fx.rb.host, NPAGES * PAGE);
    close(memfd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/postcopy-external/translate-wake-end", test_external_ops);
    g_test_add_func("/postcopy-external/drop-prefaulted", test_drop_prefaulted);
    return g_test_run();
}
