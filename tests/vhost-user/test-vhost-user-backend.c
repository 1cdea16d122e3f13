/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of libgwvhostuser: the library runs in this process on one end
 * of a socketpair, the test's own front-end and driver (vu-frontend.h) on
 * the other, with memfd guest RAM. Negotiation, ring processing (chains,
 * indirect tables, EVENT_IDX, stop/resume, enable), the dirty log, the
 * postcopy requests' replies, and hostile input: bad framing, sizes, fds,
 * memory tables, rings, and random messages.
 */
#include "vhost-user-backend.h"
#include "vu-frontend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIB (1024ull * 1024)
#define RAM_SIZE (4 * MIB)
#define ECHO_XOR 0x5a
#define TEST_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) | \
                       (1ull << VIRTIO_RING_F_EVENT_IDX))
#define PROTO_BASE ((1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD) | \
                    (1ull << VHOST_USER_PROTOCOL_F_RARP) | \
                    (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK))

typedef struct Fixture {
    VubDev *dev;
    VuFe *fe;
    VuGuestMem *mem;
    GMutex log_lock;
    GPtrArray *log;         /* every library log line */
    VubElem elem;           /* data thread only */
    unsigned rarps;
    uint8_t rarp_mac[6];
} Fixture;

/* ---- the device under test: echo every chain's out bytes, XORed, into its in buffers --- */

static void echo_kick(VubDev *dev, unsigned qidx, void *opaque)
{
    Fixture *f = opaque;
    VubElem *e = &f->elem;
    bool any = false;

    while (vub_queue_pop(dev, qidx, e)) {
        size_t n = vub_iov_size(e->out_sg, e->out_num);
        g_autofree uint8_t *buf = g_malloc(n + 1);
        vub_iov_to_buf(e->out_sg, e->out_num, 0, buf, n);
        for (size_t i = 0; i < n; i++) {
            buf[i] ^= ECHO_XOR;
        }
        size_t w = vub_iov_from_buf(e->in_sg, e->in_num, 0, buf, n);
        vub_queue_push(dev, qidx, e, (uint32_t)w);
        any = true;
    }
    if (any) {
        vub_queue_notify(dev, qidx);
    }
}

static void log_line(VubLogLevel level, const char *msg, void *opaque)
{
    Fixture *f = opaque;

    g_mutex_lock(&f->log_lock);
    g_ptr_array_add(f->log, g_strdup_printf("%d: %s", level, msg));
    g_mutex_unlock(&f->log_lock);
    if (g_test_verbose()) {
        g_printerr("# lib: %s\n", msg);
    }
}

static void rarp(VubDev *dev, const uint8_t mac[6], void *opaque)
{
    Fixture *f = opaque;

    memcpy(f->rarp_mac, mac, 6);
    f->rarps++;
}

static const VubOps echo_ops = {
    .log = log_line,
    .queue_kick = echo_kick,
    .send_rarp = rarp,
};

static Fixture *fx_new(bool postcopy)
{
    Fixture *f = g_new0(Fixture, 1);
    VubConfig cfg = {
        .num_queues = 2,
        .features = TEST_FEATURES,
        .postcopy = postcopy,
        .log_level = VUB_LOG_DEBUG,
        .ops = &echo_ops,
        .opaque = f,
    };
    VubError err = { "" };
    int sv[2];

    g_mutex_init(&f->log_lock);
    f->log = g_ptr_array_new_with_free_func(g_free);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    f->dev = vub_new(&cfg, &err);
    g_assert_nonnull(f->dev);
    g_assert_true(vub_adopt_fd(f->dev, sv[0], &err));
    g_assert_true(vub_start(f->dev, &err));
    f->fe = vufe_adopt(sv[1]);
    return f;
}

static void fx_free(Fixture *f)
{
    vufe_free(f->fe);
    g_assert_true(vub_wait_finished(f->dev, 5000));
    g_assert_true(vub_stop(f->dev));
    vub_free(f->dev);
    vu_guest_mem_free(f->mem);
    g_ptr_array_unref(f->log);
    g_mutex_clear(&f->log_lock);
    g_free(f);
}

static bool fx_logged(Fixture *f, const char *needle)
{
    bool found = false;

    g_mutex_lock(&f->log_lock);
    for (guint i = 0; i < f->log->len && !found; i++) {
        found = strstr(g_ptr_array_index(f->log, i), needle) != NULL;
    }
    g_mutex_unlock(&f->log_lock);
    return found;
}

static void fx_negotiate(Fixture *f, uint64_t features, uint64_t protocol)
{
    g_autoptr(GError) err = NULL;
    uint64_t v;

    g_assert_true(vufe_get_u64(f->fe, VHOST_USER_GET_FEATURES, &v, &err));
    vufe_must_u64(f->fe, VHOST_USER_SET_FEATURES,
                  features | (1ull << VHOST_USER_F_PROTOCOL_FEATURES), false);
    g_assert_true(vufe_get_u64(f->fe, VHOST_USER_GET_PROTOCOL_FEATURES, &v, &err));
    vufe_must_u64(f->fe, VHOST_USER_SET_PROTOCOL_FEATURES, protocol, false);
    vufe_must(f->fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, true);
}

/* One memfd, two regions: GPA [0, 2M) and [2M, 4M), front-end addresses = our mapping. */
static void fx_mem_table(Fixture *f)
{
    VhostUserMemTable t = { .nregions = 2 };
    int fds[2];

    f->mem = vu_guest_mem_new(RAM_SIZE);
    for (unsigned i = 0; i < 2; i++) {
        t.regions[i] = (VhostUserMemRegion){
            .guest_phys_addr = i * 2 * MIB,
            .memory_size = 2 * MIB,
            .userspace_addr = (uint64_t)(uintptr_t)f->mem->base + i * 2 * MIB,
            .mmap_offset = i * 2 * MIB,
        };
        fds[i] = f->mem->fd;
    }
    vufe_must(f->fe, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(2), fds, 2, true);
}

/* Ring 0 of @num entries at GPA 0x10000 (desc), 0x11000 (avail), 0x12000 (used). */
static void fx_ring(Fixture *f, VuRing *r, uint32_t num, uint64_t log_gpa)
{
    vu_ring_init(r, f->mem->base, num, 0x10000, 0x11000, 0x12000);
    vufe_setup_ring(f->fe, 0, r, (uint64_t)(uintptr_t)f->mem->base, log_gpa);
}

static Fixture *fx_ready(VuRing *r, uint32_t num)
{
    Fixture *f = fx_new(false);

    fx_negotiate(f, TEST_FEATURES, PROTO_BASE);
    fx_mem_table(f);
    fx_ring(f, r, num, 0);
    return f;
}

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed + i * 7);
    }
}

/* The in bytes of a chain must be the XORed out bytes. */
static void check_echo(const uint8_t *out, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (in[i] != (out[i] ^ ECHO_XOR)) {
            g_error("echo byte %zu: 0x%02x, want 0x%02x", i, in[i], out[i] ^ ECHO_XOR);
        }
    }
}

/* ---- negotiation ------------------------------------------------------- */

static void test_negotiation(void)
{
    for (int pc = 0; pc < 2; pc++) {
        Fixture *f = fx_new(pc);
        g_autoptr(GError) err = NULL;
        uint64_t v;

        g_assert_true(vufe_get_u64(f->fe, VHOST_USER_GET_FEATURES, &v, &err));
        g_assert_cmphex(v, ==, TEST_FEATURES | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
                        (1ull << VHOST_F_LOG_ALL));
        g_assert_true(vufe_get_u64(f->fe, VHOST_USER_GET_PROTOCOL_FEATURES, &v, &err));
        g_assert_cmphex(v, ==, PROTO_BASE | (pc ? 1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT : 0));
        g_assert_true(vufe_get_u64(f->fe, VHOST_USER_GET_QUEUE_NUM, &v, &err));
        g_assert_cmpuint(v, ==, 2);
        /* A feature we never offered is refused (REPLY_ACK 1), the rest still works. */
        vufe_must_u64(f->fe, VHOST_USER_SET_PROTOCOL_FEATURES, PROTO_BASE, false);
        uint64_t bad = 1ull << 40, ack = 0;
        g_assert_true(vufe_request(f->fe, VHOST_USER_SET_FEATURES, &bad, 8, NULL, 0, true,
                                   &ack, &err));
        g_assert_cmpuint(ack, ==, 1);
        g_assert_true(fx_logged(f, "did not offer"));
        vufe_must_u64(f->fe, VHOST_USER_SET_FEATURES, TEST_FEATURES, true);
        vufe_must(f->fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, true);
        uint64_t mac = 0x665544332211ull;
        vufe_must(f->fe, VHOST_USER_SEND_RARP, &mac, 8, NULL, 0, true);
        g_assert_cmpuint(f->rarps, ==, 1);
        g_assert_cmpuint(f->rarp_mac[0], ==, 0x11);
        g_assert_cmpuint(f->rarp_mac[5], ==, 0x66);
        fx_free(f);
    }
}

/* ---- rings ------------------------------------------------------------- */

static void test_ring_echo(void)
{
    VuRing r;
    Fixture *f = fx_ready(&r, 16);
    uint8_t *ram = f->mem->base;
    uint16_t used = 0;

    /* (a) one readable + one writable buffer */
    fill_pattern(ram + 0x20000, 100, 1);
    vu_ring_set_desc(&r, 0, 0x20000, 100, VRING_DESC_F_NEXT, 1);
    vu_ring_set_desc(&r, 1, 0x21000, 200, VRING_DESC_F_WRITE, 0);
    /* (b) three readable pieces, two writable; the second writable one crosses
     *     the boundary between the regions at 2 MiB (two iovecs for us). */
    fill_pattern(ram + 0x30000, 300, 2);
    vu_ring_set_desc(&r, 2, 0x30000, 100, VRING_DESC_F_NEXT, 3);
    vu_ring_set_desc(&r, 3, 0x30064, 150, VRING_DESC_F_NEXT, 4);
    vu_ring_set_desc(&r, 4, 0x300fa, 50, VRING_DESC_F_NEXT, 5);
    vu_ring_set_desc(&r, 5, 2 * MIB - 0x3000, 0x2f00, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 6);
    vu_ring_set_desc(&r, 6, 2 * MIB - 0x100, 0x200, VRING_DESC_F_WRITE, 0);
    /* (c) an indirect table with one readable and one writable buffer */
    fill_pattern(ram + 0x50000, 64, 3);
    VringDesc ind[2] = {
        { .addr = 0x50000, .len = 64, .flags = VRING_DESC_F_NEXT, .next = 1 },
        { .addr = 0x51000, .len = 64, .flags = VRING_DESC_F_WRITE },
    };
    memcpy(ram + 0x40000, ind, sizeof(ind));
    vu_ring_set_desc(&r, 7, 0x40000, sizeof(ind), VRING_DESC_F_INDIRECT, 0);

    vu_ring_publish(&r, 0);
    vu_ring_publish(&r, 2);
    vu_ring_publish(&r, 7);
    vu_ring_kick(&r);
    g_assert_true(vu_ring_wait_used(&r, 3, 5000));
    used = vu_ring_used_idx(&r);
    g_assert_cmpuint(used, ==, 3);

    VringUsedElem e0 = vu_ring_used_elem(&r, 0);
    VringUsedElem e1 = vu_ring_used_elem(&r, 1);
    VringUsedElem e2 = vu_ring_used_elem(&r, 2);
    g_assert_cmpuint(e0.id, ==, 0);
    g_assert_cmpuint(e0.len, ==, 100);
    check_echo(ram + 0x20000, ram + 0x21000, 100);
    g_assert_cmpuint(e1.id, ==, 2);
    g_assert_cmpuint(e1.len, ==, 300);
    /* 300 bytes fit in the first writable piece (0x2f00 bytes). */
    check_echo(ram + 0x30000, ram + 2 * MIB - 0x3000, 300);
    g_assert_cmpuint(e2.id, ==, 7);
    g_assert_cmpuint(e2.len, ==, 64);
    check_echo(ram + 0x50000, ram + 0x51000, 64);
    g_assert_cmpuint(vu_ring_take_calls(&r), >=, 1);

    /* A chain whose writable part spans the region boundary. */
    fill_pattern(ram + 0x60000, 0x3000, 4);
    vu_ring_set_desc(&r, 8, 0x60000, 0x3000, VRING_DESC_F_NEXT, 9);
    vu_ring_set_desc(&r, 9, 2 * MIB - 0x1000, 0x3000, VRING_DESC_F_WRITE, 0);
    vu_ring_publish(&r, 8);
    vu_ring_kick(&r);
    g_assert_true(vu_ring_wait_used(&r, 4, 5000));
    g_assert_cmpuint(vu_ring_used_elem(&r, 3).len, ==, 0x3000);
    check_echo(ram + 0x60000, ram + 2 * MIB - 0x1000, 0x3000);

    vu_ring_cleanup(&r);
    fx_free(f);
}

static void test_ring_event_idx(void)
{
    VuRing r;
    Fixture *f = fx_ready(&r, 8);
    uint8_t *ram = f->mem->base;

    for (uint16_t i = 0; i < 8; i++) {
        vu_ring_set_desc(&r, i, 0x20000 + i * 0x100, 16, 0, 0);
    }
    /* The driver wants an interrupt only once used passes entry 2 (used_event = 2). */
    vu_ring_set_used_event(&r, 2);
    vu_ring_publish(&r, 0);
    vu_ring_publish(&r, 1);
    vu_ring_kick(&r);
    g_assert_true(vu_ring_wait_used(&r, 2, 5000));
    g_usleep(50000);
    /* The first notify after a start always signals; after it the event index rules. */
    g_assert_cmpuint(vu_ring_take_calls(&r), ==, 1);
    vu_ring_publish(&r, 2);
    vu_ring_kick(&r);
    g_assert_true(vu_ring_wait_used(&r, 3, 5000));
    g_usleep(50000);
    g_assert_cmpuint(vu_ring_take_calls(&r), ==, 1);    /* used went 2 -> 3: crossed 2 */
    /* With used_event far ahead, no interrupt. */
    vu_ring_set_used_event(&r, 100);
    vu_ring_publish(&r, 3);
    vu_ring_kick(&r);
    g_assert_true(vu_ring_wait_used(&r, 4, 5000));
    g_usleep(50000);
    g_assert_cmpuint(vu_ring_take_calls(&r), ==, 0);
    /* Having drained the ring the device asks for a kick at the next buffer. */
    g_assert_cmpuint(vu_ring_avail_event(&r), ==, 4);
    (void)ram;
    vu_ring_cleanup(&r);
    fx_free(f);
}

static void test_ring_stop_resume(void)
{
    VuRing r;
    Fixture *f = fx_ready(&r, 8);
    g_autoptr(GError) err = NULL;
    VhostUserVringState st = { .index = 0 };
    VhostUserHeader hdr;

    for (uint16_t i = 0; i < 8; i++) {
        vu_ring_set_desc(&r, i, 0x20000 + i * 0x100, 16, 0, 0);
    }
    vu_ring_publish(&r, 0);
    vu_ring_publish(&r, 1);
    vu_ring_kick(&r);
    g_assert_true(vu_ring_wait_used(&r, 2, 5000));

    g_assert_true(vufe_send(f->fe, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &st,
                            sizeof(st), NULL, 0, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &st, sizeof(st), NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_GET_VRING_BASE);
    g_assert_cmphex(hdr.flags, ==, 0x5);
    g_assert_cmpuint(st.index, ==, 0);
    g_assert_cmpuint(st.num, ==, 2);

    /* Stopped: a new buffer and a kick are not processed. */
    vu_ring_publish(&r, 2);
    vu_ring_kick(&r);
    g_usleep(100000);
    g_assert_cmpuint(vu_ring_used_idx(&r), ==, 2);

    /* Restart at the saved index: the waiting buffer is taken. */
    uint64_t idx = 0;
    vufe_must_state(f->fe, VHOST_USER_SET_VRING_BASE, 0, st.num);
    vufe_must(f->fe, VHOST_USER_SET_VRING_KICK, &idx, 8, &r.kick_fd, 1, true);
    g_assert_true(vu_ring_wait_used(&r, 3, 5000));
    g_assert_cmpuint(vu_ring_used_elem(&r, 2).id, ==, 2);
    vu_ring_cleanup(&r);
    fx_free(f);
}

static void test_ring_enable(void)
{
    VuRing r;
    Fixture *f = fx_ready(&r, 8);

    vufe_must_state(f->fe, VHOST_USER_SET_VRING_ENABLE, 0, 0);
    vu_ring_set_desc(&r, 0, 0x20000, 16, 0, 0);
    vu_ring_publish(&r, 0);
    vu_ring_kick(&r);
    g_usleep(100000);
    g_assert_cmpuint(vu_ring_used_idx(&r), ==, 0);
    /* Enabling looks at the ring without a new kick. */
    vufe_must_state(f->fe, VHOST_USER_SET_VRING_ENABLE, 0, 1);
    g_assert_true(vu_ring_wait_used(&r, 1, 5000));
    vu_ring_cleanup(&r);
    fx_free(f);
}

/* ---- dirty log --------------------------------------------------------- */

static bool log_bit(const uint8_t *log, uint64_t gpa)
{
    uint64_t page = gpa / VHOST_LOG_PAGE;

    return log[page / 8] & (1u << (page % 8));
}

static void test_dirty_log(void)
{
    Fixture *f = fx_new(false);
    g_autoptr(GError) err = NULL;
    VhostUserHeader hdr;
    uint64_t reply;
    VuRing r;

    fx_negotiate(f, TEST_FEATURES, PROTO_BASE);
    fx_mem_table(f);
    /* Log the used ring at its GPA. */
    fx_ring(f, &r, 8, 0x12000);

    /* The log: 4 MiB of guest = 1024 pages = 128 bytes; give it a page. */
    int log_fd = memfd_create("vu-log", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(log_fd, 4096), ==, 0);
    uint8_t *log = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, log_fd, 0);
    VhostUserLogArea area = { .mmap_size = 128, .mmap_offset = 0 };
    g_assert_true(vufe_send(f->fe, VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, &area,
                            sizeof(area), &log_fd, 1, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &reply, 8, NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_SET_LOG_BASE);
    g_assert_cmphex(hdr.flags, ==, 0x5);
    g_assert_cmpuint(hdr.size, ==, 8);
    g_assert_cmpuint(reply, ==, 0);

    /* Logging off: nothing is marked. */
    vu_ring_set_desc(&r, 0, 0x20000, 32, VRING_DESC_F_NEXT, 1);
    vu_ring_set_desc(&r, 1, 0x33f00, 0x200, VRING_DESC_F_WRITE, 0);
    vu_ring_publish(&r, 0);
    vu_ring_kick(&r);
    g_assert_true(vu_ring_wait_used(&r, 1, 5000));
    for (unsigned i = 0; i < 128; i++) {
        g_assert_cmpuint(log[i], ==, 0);
    }

    /* Logging on: the written bytes (32 bytes from 0x33f00: one page) and the used ring. */
    vufe_must_u64(f->fe, VHOST_USER_SET_FEATURES, TEST_FEATURES |
                  (1ull << VHOST_USER_F_PROTOCOL_FEATURES) | (1ull << VHOST_F_LOG_ALL), true);
    vu_ring_set_desc(&r, 2, 0x20000, 0x180, VRING_DESC_F_NEXT, 3);
    vu_ring_set_desc(&r, 3, 0x44f00, 0x200, VRING_DESC_F_WRITE, 0);
    vu_ring_publish(&r, 2);
    vu_ring_kick(&r);
    g_assert_true(vu_ring_wait_used(&r, 2, 5000));
    g_usleep(20000);
    /* 0x180 bytes from 0x44f00 cross into page 0x45000. */
    g_assert_true(log_bit(log, 0x44000));
    g_assert_true(log_bit(log, 0x45000));
    g_assert_true(log_bit(log, 0x12000));
    unsigned bits = 0;
    for (unsigned i = 0; i < 128; i++) {
        bits += (unsigned)__builtin_popcount(log[i]);
    }
    g_assert_cmpuint(bits, ==, 3);

    munmap(log, 4096);
    close(log_fd);
    vu_ring_cleanup(&r);
    fx_free(f);
}

/* ---- postcopy requests ---------------------------------------------------- */

static void test_postcopy_requests(void)
{
    g_autoptr(GError) err = NULL;
    VhostUserHeader hdr;
    uint64_t v;
    int fd;

    /* Without PAGEFAULT: ADVISE answers without a userfaultfd. */
    Fixture *f = fx_new(false);
    fx_negotiate(f, TEST_FEATURES, PROTO_BASE);
    g_assert_true(vufe_send(f->fe, VHOST_USER_POSTCOPY_ADVISE, 1, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &v, 8, &fd, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_POSTCOPY_ADVISE);
    g_assert_cmpuint(hdr.size, ==, 0);
    g_assert_cmpint(fd, ==, -1);
    g_assert_true(fx_logged(f, "without the PAGEFAULT protocol feature"));
    fx_free(f);

    f = fx_new(true);
    fx_negotiate(f, TEST_FEATURES, PROTO_BASE | (1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT));
    /* LISTEN before ADVISE is refused with a non-zero u64. */
    g_assert_true(vufe_send(f->fe, VHOST_USER_POSTCOPY_LISTEN, 9, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &v, 8, NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_POSTCOPY_LISTEN);
    g_assert_cmpuint(v, !=, 0);
    /* ADVISE hands over a userfaultfd. */
    g_assert_true(vufe_send(f->fe, VHOST_USER_POSTCOPY_ADVISE, 1, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &v, 8, &fd, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.size, ==, 0);
    g_assert_cmpint(fd, >=, 0);
    g_autofree char *fd_path = g_strdup_printf("/proc/self/fd/%d", fd);
    g_autofree char *link = g_file_read_link(fd_path, NULL);
    g_assert_nonnull(strstr(link, "userfaultfd"));
    close(fd);
    /* With a memory table mapped, LISTEN is refused. */
    fx_mem_table(f);
    g_assert_true(vufe_send(f->fe, VHOST_USER_POSTCOPY_LISTEN, 9, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &v, 8, NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(v, !=, 0);
    g_assert_true(fx_logged(f, "already mapped"));
    g_assert_true(vufe_send(f->fe, VHOST_USER_POSTCOPY_END, 9, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &v, 8, NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_POSTCOPY_END);
    g_assert_cmpuint(v, ==, 0);
    fx_free(f);

    /* A fresh device: ADVISE, LISTEN, then the postcopy memory table exchange. */
    f = fx_new(true);
    fx_negotiate(f, TEST_FEATURES, PROTO_BASE | (1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT));
    g_assert_true(vufe_send(f->fe, VHOST_USER_POSTCOPY_ADVISE, 1, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &v, 8, &fd, 5000, &err), ==, 1);
    g_assert_cmpint(fd, >=, 0);
    g_assert_true(vufe_send(f->fe, VHOST_USER_POSTCOPY_LISTEN, 9, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &v, 8, NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(v, ==, 0);
    f->mem = vu_guest_mem_new(RAM_SIZE);
    VhostUserMemTable t = { .nregions = 1 };
    t.regions[0] = (VhostUserMemRegion){ .guest_phys_addr = 0x100000, .memory_size = RAM_SIZE,
                                         .userspace_addr = (uintptr_t)f->mem->base };
    VhostUserMemTable rt;
    g_assert_true(vufe_send(f->fe, VHOST_USER_SET_MEM_TABLE, 1, &t, VHOST_USER_MEM_TABLE_SIZE(1),
                            &f->mem->fd, 1, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &rt, sizeof(rt), NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_SET_MEM_TABLE);
    g_assert_cmphex(hdr.flags, ==, 0x5);
    g_assert_cmpuint(hdr.size, ==, VHOST_USER_MEM_TABLE_SIZE(1));
    g_assert_cmpuint(rt.nregions, ==, 1);
    g_assert_cmphex(rt.regions[0].guest_phys_addr, ==, 0x100000);
    g_assert_cmpuint(rt.regions[0].memory_size, ==, RAM_SIZE);
    g_assert_cmphex(rt.regions[0].userspace_addr, !=, (uintptr_t)f->mem->base);
    g_assert_cmphex(rt.regions[0].userspace_addr % 4096, ==, 0);
    /* Anything but the ack ends the conversation. */
    uint64_t wrong = 7;
    g_assert_true(vufe_send(f->fe, VHOST_USER_SET_MEM_TABLE, 1, &wrong, 8, NULL, 0, &err));
    g_assert_true(vufe_wait_closed(f->fe, 5000));
    g_assert_true(fx_logged(f, "expected the front-end's ack"));
    close(fd);
    fx_free(f);
}

/* ---- hostile input ------------------------------------------------------ */

/* After a bad message the back-end still answers (GET_FEATURES). */
static void assert_alive(Fixture *f)
{
    g_autoptr(GError) err = NULL;
    uint64_t v;

    if (!vufe_get_u64(f->fe, VHOST_USER_GET_FEATURES, &v, &err)) {
        g_error("the back-end stopped answering: %s", err->message);
    }
}

static void expect_rejected(Fixture *f, uint32_t req, const void *payload, uint32_t size,
                            const int *fds, unsigned nfds, const char *log_needle)
{
    g_autoptr(GError) err = NULL;
    uint64_t ack = 0;

    if (!vufe_request(f->fe, req, payload, size, fds, nfds, true, &ack, &err)) {
        g_error("request %u: %s", req, err->message);
    }
    g_assert_cmpuint(ack, ==, 1);
    if (log_needle && !fx_logged(f, log_needle)) {
        g_error("no log line containing '%s'", log_needle);
    }
    assert_alive(f);
}

static void test_hostile_framing(void)
{
    static const struct { uint32_t flags; uint32_t size; const char *log; } cases[] = {
        { 0x2, 0, "protocol version 2" },           /* version 2 */
        { 0x0, 0, "protocol version 0" },
        { 0x5, 0, "sent a reply" },                 /* a reply where a request is due */
        { 0x1, 5000, "5000-byte payload" },         /* beyond any request */
        { 0x1, 0xffffffffu, "payload" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        Fixture *f = fx_new(false);
        g_autoptr(GError) err = NULL;
        VhostUserHeader hdr = { VHOST_USER_GET_FEATURES, cases[i].flags, cases[i].size };
        g_assert_cmpint(send(f->fe->sock, &hdr, sizeof(hdr), MSG_NOSIGNAL), ==, sizeof(hdr));
        g_assert_true(vufe_wait_closed(f->fe, 5000));
        if (!fx_logged(f, cases[i].log)) {
            g_error("case %u: no log line containing '%s'", i, cases[i].log);
        }
        fx_free(f);
    }

    /* A message cut short: the session ends, nothing breaks. */
    Fixture *f = fx_new(false);
    VhostUserHeader hdr = { VHOST_USER_SET_FEATURES, 1, 8 };
    g_assert_cmpint(send(f->fe->sock, &hdr, sizeof(hdr), MSG_NOSIGNAL), ==, sizeof(hdr));
    g_assert_cmpint(send(f->fe->sock, "abc", 3, MSG_NOSIGNAL), ==, 3);
    shutdown(f->fe->sock, SHUT_WR);
    g_assert_true(vub_wait_finished(f->dev, 5000));
    g_assert_true(fx_logged(f, "in the middle of a message"));
    fx_free(f);
}

static void test_hostile_requests(void)
{
    Fixture *f = fx_new(false);
    g_autoptr(GError) err = NULL;
    uint64_t v = 0;
    int efd = eventfd(0, EFD_CLOEXEC);
    int fds[12];

    fx_negotiate(f, TEST_FEATURES, PROTO_BASE);
    /* Sizes. */
    expect_rejected(f, VHOST_USER_SET_FEATURES, &v, 4, NULL, 0, "4 payload bytes instead of 8");
    uint8_t twelve[12] = { 0, 0, 0, 0, 8 };
    expect_rejected(f, VHOST_USER_SET_VRING_NUM, twelve, 12, NULL, 0, "instead of 8");
    VhostUserVringState st;
    /* Unknown and unsupported requests. */
    expect_rejected(f, 99, &v, 8, NULL, 0, "unknown request 99");
    expect_rejected(f, VHOST_USER_SET_CONFIG, &v, 8, NULL, 0, "SET_CONFIG (25) is not supported");
    expect_rejected(f, VHOST_USER_ADD_MEM_REG, &v, 8, NULL, 0, "ADD_MEM_REG");
    /* An unknown request without need_reply gets no answer at all. */
    g_assert_true(vufe_send(f->fe, 77, 1, &v, 8, NULL, 0, &err));
    g_assert_true(vufe_quiet(f->fe, 100));
    assert_alive(f);
    /* Ring indexes and sizes. */
    st = (VhostUserVringState){ 5, 8 };
    expect_rejected(f, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0, "names ring 5");
    st = (VhostUserVringState){ 0, 12 };
    expect_rejected(f, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0, "not a power of two");
    st = (VhostUserVringState){ 0, 65536 };
    expect_rejected(f, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0, "not a power of two");
    st = (VhostUserVringState){ 0, 0x10000 };
    expect_rejected(f, VHOST_USER_SET_VRING_BASE, &st, 8, NULL, 0, "16-bit index");
    VhostUserVringAddr a = { .index = 0, .flags = 2 };
    expect_rejected(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, "unknown address flags");
    /* Kick/call: the fd must be there unless the no-fd bit says otherwise. */
    v = 0;
    expect_rejected(f, VHOST_USER_SET_VRING_KICK, &v, 8, NULL, 0, "must carry one file descriptor");
    v = 0x200;
    expect_rejected(f, VHOST_USER_SET_VRING_CALL, &v, 8, &efd, 1, "beyond the index");
    v = VHOST_USER_VRING_NOFD | 1;
    vufe_must(f->fe, VHOST_USER_SET_VRING_CALL, &v, 8, NULL, 0, true);
    /* Too many fds for any message. */
    for (unsigned i = 0; i < 12; i++) {
        fds[i] = efd;
    }
    expect_rejected(f, VHOST_USER_SET_OWNER, NULL, 0, fds, 12, "more than 8 file descriptors");
    /* fds on a request that takes none are closed, the request still works. */
    g_assert_true(vufe_request(f->fe, VHOST_USER_SET_OWNER, NULL, 0, fds, 3, true, &v, &err));
    g_assert_cmpuint(v, ==, 0);
    g_assert_true(fx_logged(f, "it does not use; closed"));
    /* SET_LOG_BASE: without a usable fd the front-end still gets its reply, a failing one. */
    VhostUserLogArea la = { .mmap_size = 1ull << 40 };
    VhostUserHeader hdr;
    g_assert_true(vufe_send(f->fe, VHOST_USER_SET_LOG_BASE, 1, &la, sizeof(la), &efd, 1, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &v, 8, NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_SET_LOG_BASE);
    g_assert_cmpuint(v, ==, 1);
    assert_alive(f);
    close(efd);
    fx_free(f);
}

static void test_hostile_mem_table(void)
{
    Fixture *f = fx_new(false);
    VuGuestMem *mem = vu_guest_mem_new(RAM_SIZE);
    VhostUserMemTable t = { 0 };
    int pipefd[2];
    int fds[9];

    g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
    fx_negotiate(f, TEST_FEATURES, PROTO_BASE);
    for (unsigned i = 0; i < 9; i++) {
        fds[i] = mem->fd;
        t.regions[i % 8] = (VhostUserMemRegion){ .guest_phys_addr = i * MIB, .memory_size = MIB,
                                                 .userspace_addr = 0x10000000 + i * MIB,
                                                 .mmap_offset = (i % 4) * MIB };
    }
    /* Region count: 0, 9. */
    t.nregions = 0;
    expect_rejected(f, VHOST_USER_SET_MEM_TABLE, &t, 8, NULL, 0, "0 regions");
    t.nregions = 9;
    expect_rejected(f, VHOST_USER_SET_MEM_TABLE, &t, 8, fds, 8, "9 regions");
    /* Size disagreeing with the count, fds disagreeing with the count. */
    t.nregions = 2;
    expect_rejected(f, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(3), fds, 2,
                    "instead of 72");
    expect_rejected(f, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(2), fds, 1,
                    "carries 1 file descriptors");
    /* An fd that is not a memory file. */
    t.nregions = 1;
    expect_rejected(f, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(1), pipefd, 1,
                    "not a shared memory file");
    /* A region past the end of its file. */
    t.regions[0].mmap_offset = 3 * MIB + 4096;
    expect_rejected(f, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(1), fds, 1,
                    "which is only");
    /* Wrap-around and empty regions. */
    t.regions[0] = (VhostUserMemRegion){ .guest_phys_addr = UINT64_MAX - 4095,
                                         .memory_size = 2 * 4096 };
    expect_rejected(f, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(1), fds, 1,
                    "wraps around");
    t.regions[0] = (VhostUserMemRegion){ .memory_size = 0 };
    expect_rejected(f, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(1), fds, 1,
                    "is empty");
    /* Overlapping regions. */
    t.nregions = 2;
    t.regions[0] = (VhostUserMemRegion){ .guest_phys_addr = 0, .memory_size = 2 * MIB,
                                         .userspace_addr = 0x10000000 };
    t.regions[1] = (VhostUserMemRegion){ .guest_phys_addr = MIB, .memory_size = MIB,
                                         .userspace_addr = 0x20000000 };
    expect_rejected(f, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(2), fds, 2,
                    "overlap");
    /* A good table after all that. */
    t.regions[1].guest_phys_addr = 2 * MIB;
    vufe_must(f->fe, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(2), fds, 2, true);
    close(pipefd[0]);
    close(pipefd[1]);
    vu_guest_mem_free(mem);
    fx_free(f);
}

/* Publish one chain on a fresh ring and expect the queue to break with @needle. */
static void expect_broken(void (*setup)(VuRing *r, uint8_t *ram), const char *needle)
{
    VuRing r;
    Fixture *f = fx_ready(&r, 8);

    setup(&r, f->mem->base);
    vu_ring_kick(&r);
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!fx_logged(f, needle)) {
        if (g_get_monotonic_time() > deadline) {
            g_error("no log line containing '%s'", needle);
        }
        g_usleep(5000);
    }
    g_assert_cmpuint(vu_ring_used_idx(&r), ==, 0);
    assert_alive(f);
    /* Set up again, with a good chain waiting: the queue works. */
    vu_ring_set_desc(&r, 0, 0x20000, 16, VRING_DESC_F_NEXT, 1);
    vu_ring_set_desc(&r, 1, 0x21000, 16, VRING_DESC_F_WRITE, 0);
    VringAvail *avail = (VringAvail *)(f->mem->base + r.avail_gpa);
    avail->ring[0] = 0;
    avail->idx = 1;
    r.avail_idx = 1;
    uint64_t idx = 0;
    VhostUserHeader hdr;
    VhostUserVringState st = { 0, 0 };
    g_autoptr(GError) err = NULL;
    g_assert_true(vufe_send(f->fe, VHOST_USER_GET_VRING_BASE, 1, &st, 8, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(f->fe, &hdr, &st, 8, NULL, 5000, &err), ==, 1);
    vufe_must_state(f->fe, VHOST_USER_SET_VRING_BASE, 0, 0);
    vufe_must(f->fe, VHOST_USER_SET_VRING_KICK, &idx, 8, &r.kick_fd, 1, true);
    g_assert_true(vu_ring_wait_used(&r, 1, 5000));
    vu_ring_cleanup(&r);
    fx_free(f);
}

static void ring_loop(VuRing *r, uint8_t *ram)
{
    vu_ring_set_desc(r, 0, 0x20000, 16, VRING_DESC_F_NEXT, 1);
    vu_ring_set_desc(r, 1, 0x20100, 16, VRING_DESC_F_NEXT, 0);
    vu_ring_publish(r, 0);
}

static void ring_outside(VuRing *r, uint8_t *ram)
{
    vu_ring_set_desc(r, 0, 64 * MIB, 16, 0, 0);
    vu_ring_publish(r, 0);
}

static void ring_bad_next(VuRing *r, uint8_t *ram)
{
    vu_ring_set_desc(r, 0, 0x20000, 16, VRING_DESC_F_NEXT, 200);
    vu_ring_publish(r, 0);
}

static void ring_bad_head(VuRing *r, uint8_t *ram)
{
    vu_ring_publish(r, 9);
}

static void ring_avail_jump(VuRing *r, uint8_t *ram)
{
    VringAvail *a = (VringAvail *)(ram + r->avail_gpa);

    a->idx = 100;
}

static void ring_read_after_write(VuRing *r, uint8_t *ram)
{
    vu_ring_set_desc(r, 0, 0x20000, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    vu_ring_set_desc(r, 1, 0x21000, 16, 0, 0);
    vu_ring_publish(r, 0);
}

static void ring_nested_indirect(VuRing *r, uint8_t *ram)
{
    VringDesc ind[1] = { { .addr = 0x40000, .len = 16, .flags = VRING_DESC_F_INDIRECT } };

    memcpy(ram + 0x40000, ind, sizeof(ind));
    vu_ring_set_desc(r, 0, 0x40000, 16, VRING_DESC_F_INDIRECT, 0);
    vu_ring_publish(r, 0);
}

static void ring_indirect_size(VuRing *r, uint8_t *ram)
{
    vu_ring_set_desc(r, 0, 0x40000, 20, VRING_DESC_F_INDIRECT, 0);
    vu_ring_publish(r, 0);
}

static void ring_huge_buffer(VuRing *r, uint8_t *ram)
{
    /* 4 GiB - 1 bytes from near the end of guest memory. */
    vu_ring_set_desc(r, 0, RAM_SIZE - 16, 0xffffffffu, VRING_DESC_F_WRITE, 0);
    vu_ring_publish(r, 0);
}

static void test_hostile_rings(void)
{
    expect_broken(ring_loop, "loops");
    expect_broken(ring_outside, "outside guest memory");
    expect_broken(ring_bad_next, "descriptor index 200");
    expect_broken(ring_bad_head, "descriptor index 9");
    expect_broken(ring_avail_jump, "more than the ring holds");
    expect_broken(ring_read_after_write, "device-readable buffer follows");
    expect_broken(ring_nested_indirect, "inside an indirect table");
    expect_broken(ring_indirect_size, "not a whole number");
    expect_broken(ring_huge_buffer, "outside guest memory");

    /* Ring addresses outside the memory table: the start is refused, loudly. */
    Fixture *f = fx_new(false);
    VuRing r;
    fx_negotiate(f, TEST_FEATURES, PROTO_BASE);
    fx_mem_table(f);
    vu_ring_init(&r, f->mem->base, 8, 0x10000, 0x11000, 0x12000);
    vufe_setup_ring(f->fe, 1, &r, 0x7000000000ull, 0);
    g_assert_true(fx_logged(f, "is not inside the memory table"));
    assert_alive(f);
    vu_ring_cleanup(&r);
    fx_free(f);
}

static unsigned count_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    g_assert_nonnull(d);
    while ((e = readdir(d))) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* Random messages: the back-end must neither crash nor hang; it answers or hangs up. */
static void test_hostile_fuzz(void)
{
    unsigned before = count_fds();
    Fixture *f = fx_new(false);
    VuGuestMem *mem = vu_guest_mem_new(MIB);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    unsigned closed = 0, iterations = g_test_slow() ? 20000 : 3000;
    uint8_t payload[512];

    for (unsigned it = 0; it < iterations; it++) {
        g_autoptr(GError) err = NULL;
        uint32_t req = (uint32_t)g_test_rand_int_range(0, 45);
        uint32_t flags = g_test_rand_bit() ? 0x9 : 0x1;
        uint32_t size = (uint32_t)g_test_rand_int_range(0, (int)sizeof(payload));
        /* Now and then a header that breaks the framing. */
        bool wild = g_test_rand_int_range(0, 32) == 0;
        uint32_t wild_flags = (uint32_t)g_test_rand_int(), wild_size = (uint32_t)g_test_rand_int();
        int fds[3] = { mem->fd, efd, mem->fd };
        unsigned nfds = (unsigned)g_test_rand_int_range(0, 4);

        for (unsigned i = 0; i < size; i++) {
            payload[i] = (uint8_t)g_test_rand_int();
        }
        /* Small numbers in the first words, so ring and region indexes are often valid. */
        if (g_test_rand_bit()) {
            payload[0] &= 3;
            memset(payload + 1, 0, MIN(size, 8u) > 1 ? MIN(size, 8u) - 1 : 0);
        }
        if (req == VHOST_USER_POSTCOPY_ADVISE || req == VHOST_USER_POSTCOPY_LISTEN) {
            req = VHOST_USER_GET_FEATURES;      /* this device offers no PAGEFAULT anyway */
        }
        if (wild) {
            VhostUserHeader hdr = { req, wild_flags, wild_size };
            if (send(f->fe->sock, &hdr, sizeof(hdr), MSG_NOSIGNAL) != sizeof(hdr) ||
                (wild_size <= sizeof(payload) &&
                 send(f->fe->sock, payload, wild_size, MSG_NOSIGNAL) < 0)) {
                closed++;
                g_assert_true(vub_wait_finished(f->dev, 5000));
                fx_free(f);
                f = fx_new(false);
                continue;
            }
            if (wild_size > sizeof(payload) && (wild_flags & 3) == 1 && !(wild_flags & 4) &&
                wild_size <= 4096) {
                /* A sane header waiting for a payload we will not send: end it here. */
                closed++;
                fx_free(f);
                f = fx_new(false);
                continue;
            }
        }
        if (!wild && !vufe_send(f->fe, req, flags, payload, size, fds, nfds, &err)) {
            closed++;
        } else {
            /* Skip whatever it answers, then make sure it still answers. */
            VhostUserHeader hdr;
            uint8_t buf[4096];
            int fd = -1;
            while (vufe_recv(f->fe, &hdr, buf, sizeof(buf), &fd, 2, NULL) == 1) {
                if (fd >= 0) {
                    close(fd);
                }
            }
            uint64_t v;
            g_clear_error(&err);
            if (vufe_get_u64(f->fe, VHOST_USER_GET_FEATURES, &v, &err)) {
                continue;
            }
            /* A reply still in flight confuses the check: drain and ask again once. */
            while (vufe_recv(f->fe, &hdr, buf, sizeof(buf), &fd, 50, NULL) == 1) {
                if (fd >= 0) {
                    close(fd);
                }
            }
            g_clear_error(&err);
            if (vufe_get_u64(f->fe, VHOST_USER_GET_FEATURES, &v, &err)) {
                continue;
            }
            closed++;
        }
        /* It hung up (framing broken): that is allowed; it must have ended cleanly. */
        g_assert_true(vub_wait_finished(f->dev, 5000));
        fx_free(f);
        f = fx_new(false);
    }
    g_test_message("%u random messages, %u ended the connection", iterations, closed);
    fx_free(f);
    vu_guest_mem_free(mem);
    close(efd);
    /* Every fd the back-end received was closed or kept by a device that is gone. */
    g_assert_cmpuint(count_fds(), ==, before);
}

static void test_fd_leaks(void)
{
    unsigned before = count_fds();

    for (int round = 0; round < 3; round++) {
        VuRing r;
        Fixture *f = fx_ready(&r, 8);
        vu_ring_set_desc(&r, 0, 0x20000, 16, VRING_DESC_F_NEXT, 1);
        vu_ring_set_desc(&r, 1, 0x21000, 16, VRING_DESC_F_WRITE, 0);
        vu_ring_publish(&r, 0);
        vu_ring_kick(&r);
        g_assert_true(vu_ring_wait_used(&r, 1, 5000));
        /* Replace the kick and call fds, and the memory table, while running. */
        uint64_t idx = 0;
        int kick2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int call2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        vufe_must(f->fe, VHOST_USER_SET_VRING_CALL, &idx, 8, &call2, 1, true);
        vufe_must(f->fe, VHOST_USER_SET_VRING_KICK, &idx, 8, &kick2, 1, true);
        close(kick2);
        close(call2);
        VuGuestMem *old = f->mem;
        f->mem = NULL;
        fx_mem_table(f);
        vu_guest_mem_free(old);
        vu_ring_cleanup(&r);
        fx_free(f);
    }
    g_assert_cmpuint(count_fds(), ==, before);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vhost-user-backend/negotiation", test_negotiation);
    g_test_add_func("/vhost-user-backend/ring/echo", test_ring_echo);
    g_test_add_func("/vhost-user-backend/ring/event-idx", test_ring_event_idx);
    g_test_add_func("/vhost-user-backend/ring/stop-resume", test_ring_stop_resume);
    g_test_add_func("/vhost-user-backend/ring/enable", test_ring_enable);
    g_test_add_func("/vhost-user-backend/dirty-log", test_dirty_log);
    g_test_add_func("/vhost-user-backend/postcopy/requests", test_postcopy_requests);
    g_test_add_func("/vhost-user-backend/hostile/framing", test_hostile_framing);
    g_test_add_func("/vhost-user-backend/hostile/requests", test_hostile_requests);
    g_test_add_func("/vhost-user-backend/hostile/mem-table", test_hostile_mem_table);
    g_test_add_func("/vhost-user-backend/hostile/rings", test_hostile_rings);
    g_test_add_func("/vhost-user-backend/hostile/fuzz", test_hostile_fuzz);
    g_test_add_func("/vhost-user-backend/fd-leaks", test_fd_leaks);
    return g_test_run();
}
