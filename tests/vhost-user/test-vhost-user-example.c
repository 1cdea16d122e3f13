/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Functional tests of the example back-end (godwit-vhost-user-net) as a
 * separate process, driven by the test's own front-end: the command line,
 * reflecting frames as server and as client, reconnecting, dirty logging
 * across processes, and the whole postcopy sequence with real
 * userfaultfds: ADVISE, LISTEN, the reply/ack memory table, the back-end
 * sleeping on missing pages until this test places them (UFFDIO_COPY into
 * its own mapping) and wakes it (UFFDIO_WAKE on the back-end's uffd), END.
 */
#include "net/numbered-frame.h"
#include "vu-frontend.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define RAM_SIZE (1024 * 1024)
#define PAGE 4096u
#define FRAME_LEN 128u
#define HDR_LEN VIRTIO_NET_HDR_LEN

/* Guest-physical layout: one page per structure, so faults can be counted exactly. */
enum {
    RX_DESC = 0x10000, RX_AVAIL = 0x11000, RX_USED = 0x12000,
    TX_DESC = 0x13000, TX_AVAIL = 0x14000, TX_USED = 0x15000,
    RX_BUF = 0x20000, TX_BUF = 0x30000,     /* 8 x 2048 and 8 x 256 bytes */
};

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

typedef struct Example {
    char *dir;
    char *sock;
    char *out;
    char *err;
    pid_t pid;
} Example;

static const char *example_binary(void)
{
    const char *b = g_getenv("GW_VHOST_USER_NET");

    if (!b || !g_file_test(b, G_FILE_TEST_IS_EXECUTABLE)) {
        g_error("GW_VHOST_USER_NET does not name the example back-end (meson sets it)");
    }
    return b;
}

/* Start the example with @args (space-separated) and wait for its ready line. */
static Example *example_start(const char *args)
{
    Example *ex = g_new0(Example, 1);
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) extra = NULL;

    ex->dir = g_dir_make_tmp("vub-XXXXXX", &err);
    g_assert_no_error(err);
    ex->sock = g_build_filename(ex->dir, "vhost.sock", NULL);
    ex->out = g_build_filename(ex->dir, "stdout.log", NULL);
    ex->err = g_build_filename(ex->dir, "stderr.log", NULL);
    g_assert_true(g_shell_parse_argv(args && *args ? args : "--interval 0", NULL, &extra, &err));
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, (char *)example_binary());
    g_ptr_array_add(argv, (char *)"--socket-path");
    g_ptr_array_add(argv, ex->sock);
    GPtrArray *owned = g_ptr_array_new_with_free_func(g_free);
    for (char **a = extra; *a; a++) {
        /* "@DIR@" is the back-end's private directory. */
        g_auto(GStrv) parts = g_strsplit(*a, "@DIR@", -1);
        char *arg = g_strjoinv(ex->dir, parts);
        g_ptr_array_add(owned, arg);
        g_ptr_array_add(argv, arg);
    }
    g_ptr_array_add(argv, NULL);
    ex->pid = vu_spawn((char *const *)argv->pdata, ex->out, ex->err);
    g_ptr_array_free(argv, true);
    g_ptr_array_free(owned, true);
    g_autofree char *ready = vu_wait_file_contains(ex->out, ": ready, ", 10000, ex->pid);
    if (!ready) {
        g_autofree char *e = NULL;
        g_file_get_contents(ex->err, &e, NULL, NULL);
        g_error("the example back-end did not get ready: %s", e ? e : "(no stderr)");
    }
    return ex;
}

/* SIGTERM it, expect exit status 0 and a final line; return stdout. */
static char *example_stop(Example *ex)
{
    int status = vu_stop_pid(ex->pid, 5000);
    g_autofree char *err_text = NULL;
    char *out = NULL;

    g_file_get_contents(ex->err, &err_text, NULL, NULL);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_error("the example back-end ended with status 0x%x: %s", status, err_text);
    }
    g_assert_true(g_file_get_contents(ex->out, &out, NULL, NULL));
    g_assert_nonnull(strstr(out, "godwit-vhost-user-net: final "));
    if (g_test_verbose()) {
        g_printerr("# example stderr:\n%s# example stdout:\n%s", err_text, out);
    }
    return out;
}

static void example_free(Example *ex)
{
    if (!g_getenv("GW_KEEP_TMP")) {
        unlink(ex->sock);
        unlink(ex->out);
        unlink(ex->err);
        g_rmdir(ex->dir);
    } else {
        g_printerr("# kept %s\n", ex->dir);
    }
    g_free(ex->dir);
    g_free(ex->sock);
    g_free(ex->out);
    g_free(ex->err);
    g_free(ex);
}

static gint64 stat_of(const char *out, const char *key)
{
    return vu_stat_value(out, "godwit-vhost-user-net: final", key);
}

/* ---- a guest's view: rings and one numbered frame ------------------------ */

typedef struct Guest {
    uint8_t *image;         /* where the rings are written (shared RAM, or a source image) */
    VuRing rx, tx;
    uint64_t seq;
} Guest;

static void guest_init(Guest *g, uint8_t *image)
{
    memset(g, 0, sizeof(*g));
    g->image = image;
    vu_ring_init(&g->rx, image, 8, RX_DESC, RX_AVAIL, RX_USED);
    vu_ring_init(&g->tx, image, 8, TX_DESC, TX_AVAIL, TX_USED);
}

static void guest_cleanup(Guest *g)
{
    vu_ring_cleanup(&g->rx);
    vu_ring_cleanup(&g->tx);
}

/* Offer an RX buffer and transmit numbered frame g->seq (descriptor slot = seq % 8). */
static void guest_send(Guest *g)
{
    uint16_t slot = (uint16_t)(g->seq % 8);

    vu_ring_set_desc(&g->rx, slot, RX_BUF + slot * 2048u, 2048, VRING_DESC_F_WRITE, 0);
    vu_ring_publish(&g->rx, slot);
    memset(g->image + TX_BUF + slot * 256u, 0, HDR_LEN);
    nf_fill(g->image + TX_BUF + slot * 256u + HDR_LEN, FRAME_LEN, guest_mac, 7, g->seq, 0);
    vu_ring_set_desc(&g->tx, slot, TX_BUF + slot * 256u, HDR_LEN + FRAME_LEN, 0, 0);
    vu_ring_publish(&g->tx, slot);
    g->seq++;
}

/* The reflection of the last frame sent arrived, intact, with a proper header. */
static void guest_check_reflected(Guest *g, uint8_t *ram)
{
    uint16_t n = g->rx.avail_idx;
    VringUsedElem e = vu_ring_used_elem(&g->rx, (uint16_t)(n - 1));
    uint16_t slot = (uint16_t)((g->seq - 1) % 8);
    const uint8_t *buf = ram + RX_BUF + slot * 2048u;
    uint16_t stream = 0;
    uint64_t seq = 0;

    g_assert_cmpuint(vu_ring_used_idx(&g->rx), ==, n);
    g_assert_cmpuint(e.id, ==, slot);
    g_assert_cmpuint(e.len, ==, HDR_LEN + FRAME_LEN);
    g_assert_cmpuint(buf[10], ==, 1);           /* num_buffers */
    g_assert_cmpint(nf_check(buf + HDR_LEN, FRAME_LEN, &stream, &seq), ==, NF_OK);
    g_assert_cmpuint(stream, ==, 7);
    g_assert_cmpuint(seq, ==, g->seq - 1);
    g_assert_cmpuint(vu_ring_used_idx(&g->tx), ==, g->tx.avail_idx);
}

static void negotiate(VuFe *fe, uint64_t want_protocol)
{
    g_autoptr(GError) err = NULL;
    uint64_t f, p;

    g_assert_true(vufe_get_u64(fe, VHOST_USER_GET_FEATURES, &f, &err));
    g_assert_true(f & (1ull << VIRTIO_F_VERSION_1));
    g_assert_true(f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
    g_assert_true(vufe_get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &p, &err));
    g_assert_cmphex(p & want_protocol, ==, want_protocol);
    vufe_must_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, want_protocol, false);
    vufe_must_u64(fe, VHOST_USER_SET_FEATURES,
                  (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES), true);
    vufe_must(fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, true);
}

static void send_mem_table(VuFe *fe, VuGuestMem *mem)
{
    VhostUserMemTable t = { .nregions = 1 };

    t.regions[0] = (VhostUserMemRegion){ .guest_phys_addr = 0, .memory_size = mem->size,
                                         .userspace_addr = (uintptr_t)mem->base };
    vufe_must(fe, VHOST_USER_SET_MEM_TABLE, &t, VHOST_USER_MEM_TABLE_SIZE(1), &mem->fd, 1, true);
}

/* A whole normal session: one frame reflected. */
static void reflect_one(VuFe *fe, VuGuestMem *mem, uint64_t seq)
{
    Guest g;

    memset(mem->base, 0, mem->size);
    guest_init(&g, mem->base);
    g.seq = seq;
    negotiate(fe, (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
    send_mem_table(fe, mem);
    vufe_setup_ring(fe, 0, &g.rx, (uintptr_t)mem->base, 0);
    vufe_setup_ring(fe, 1, &g.tx, (uintptr_t)mem->base, 0);
    guest_send(&g);
    vu_ring_kick(&g.tx);
    g_assert_true(vu_ring_wait_used(&g.rx, 1, 10000));
    guest_check_reflected(&g, mem->base);
    g_assert_true(vu_ring_wait_call(&g.rx, 10000));   /* in the test VM it came later */
    g_assert_cmpuint(vu_ring_take_calls(&g.rx), >=, 1);
    guest_cleanup(&g);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_cmdline(void)
{
    static const struct { const char *args; const char *err; } cases[] = {
        { "", "--socket-path is required" },
        { "--socket-path", "option '--socket-path' needs a value" },
        { "--socket-path /tmp/x --mode echo", "--mode: 'echo' is neither" },
        { "--socket-path /tmp/x --rate fast", "--rate: 'fast' is not a number" },
        { "--socket-path /tmp/x --frame-size 20000", "--frame-size: 20000 is outside 64..1514" },
        { "--socket-path /tmp/x --nonsense", "option '--nonsense' is not known" },
        { "--socket-path /tmp/x --connect-timeout 10", "only applies with --client" },
        { "--socket-path /etc/hostname", "exists and is not a socket" },
        { "--socket-path /nonexistent-dir/sock", "cannot bind '/nonexistent-dir/sock'" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *dir = g_dir_make_tmp("vub-XXXXXX", NULL);
        g_autofree char *out = g_build_filename(dir, "out", NULL);
        g_autofree char *errp = g_build_filename(dir, "err", NULL);
        g_auto(GStrv) extra = NULL;
        g_autofree char *text = NULL;
        GPtrArray *argv = g_ptr_array_new();
        int status;

        g_ptr_array_add(argv, (char *)example_binary());
        if (*cases[i].args) {
            g_assert_true(g_shell_parse_argv(cases[i].args, NULL, &extra, NULL));
            for (char **a = extra; *a; a++) {
                g_ptr_array_add(argv, *a);
            }
        }
        g_ptr_array_add(argv, NULL);
        pid_t pid = vu_spawn((char *const *)argv->pdata, out, errp);
        g_ptr_array_free(argv, true);
        g_assert_true(vu_wait_pid(pid, 5000, &status));
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 1);
        g_assert_true(g_file_get_contents(errp, &text, NULL, NULL));
        /* One line, naming the problem. */
        g_assert_true(g_str_has_suffix(text, "\n"));
        g_assert_null(strchr(text, '\n') + 1 < text + strlen(text) ? text : NULL);
        if (!strstr(text, cases[i].err)) {
            g_error("'%s': stderr '%s' does not say '%s'", cases[i].args, text, cases[i].err);
        }
        unlink(out);
        unlink(errp);
        g_rmdir(dir);
    }
}

static void test_reflect_server(void)
{
    Example *ex = example_start("--interval 0 --stats-file @DIR@/stats.json");
    g_autoptr(GError) err = NULL;
    VuGuestMem *mem = vu_guest_mem_new(RAM_SIZE);

    VuFe *fe = vufe_connect(ex->sock, 5000, &err);
    g_assert_no_error(err);
    reflect_one(fe, mem, 41);
    vufe_free(fe);
    /* Without --reconnect the back-end leaves when the front-end does. */
    int status;
    g_assert_true(vu_wait_pid(ex->pid, 5000, &status));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_autofree char *out = NULL;
    g_assert_true(g_file_get_contents(ex->out, &out, NULL, NULL));
    g_assert_cmpint(stat_of(out, "tx"), ==, 1);
    g_assert_cmpint(stat_of(out, "reflected"), ==, 1);
    g_assert_cmpint(stat_of(out, "nf_ok"), ==, 1);
    g_assert_cmpint(stat_of(out, "nf_before_first"), ==, 41);
    g_assert_cmpint(stat_of(out, "nf_corrupt"), ==, 0);
    g_assert_cmpint(stat_of(out, "dropped"), ==, 0);
    g_assert_cmpint(stat_of(out, "rejected"), ==, 0);
    /* The JSON file says the same, and that it is the final word. */
    g_autofree char *json_path = g_build_filename(ex->dir, "stats.json", NULL);
    g_autofree char *json = NULL;
    g_assert_true(g_file_get_contents(json_path, &json, NULL, NULL));
    g_assert_nonnull(strstr(json, "\"reflected\": 1,"));
    g_assert_nonnull(strstr(json, "\"nf_ok\": 1,"));
    g_assert_nonnull(strstr(json, "\"final\": true}"));
    unlink(json_path);
    vu_guest_mem_free(mem);
    example_free(ex);
}

/* --mac-swap: the reflection comes back addressed to the sender. */
static void test_reflect_mac_swap(void)
{
    Example *ex = example_start("--interval 0 --mac-swap");
    g_autoptr(GError) err = NULL;
    VuGuestMem *mem = vu_guest_mem_new(RAM_SIZE);

    VuFe *fe = vufe_connect(ex->sock, 5000, &err);
    g_assert_no_error(err);
    reflect_one(fe, mem, 3);
    const uint8_t *f = mem->base + RX_BUF + 3 * 2048u + HDR_LEN;
    g_assert_cmpmem(f, 6, guest_mac, 6);                /* to us */
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    g_assert_cmpmem(f + 6, 6, bcast, 6);                /* from where we sent it */
    vufe_free(fe);
    int status;
    g_assert_true(vu_wait_pid(ex->pid, 5000, &status));
    vu_guest_mem_free(mem);
    example_free(ex);
}

/* Generate mode, rate 0: exactly --count numbered frames, one per RX buffer offered. */
static void test_generate(void)
{
    Example *ex = example_start("--interval 0 --mode generate --rate 0 --count 5"
                                " --frame-size 100 --stream 9");
    g_autoptr(GError) err = NULL;
    VuGuestMem *mem = vu_guest_mem_new(RAM_SIZE);
    Guest g;

    VuFe *fe = vufe_connect(ex->sock, 5000, &err);
    g_assert_no_error(err);
    memset(mem->base, 0, mem->size);
    guest_init(&g, mem->base);
    negotiate(fe, (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
    send_mem_table(fe, mem);
    /* Three buffers first, then five more: five frames in all, then nothing. */
    for (uint16_t i = 0; i < 3; i++) {
        vu_ring_set_desc(&g.rx, i, RX_BUF + i * 2048u, 2048, VRING_DESC_F_WRITE, 0);
        vu_ring_publish(&g.rx, i);
    }
    vufe_setup_ring(fe, 0, &g.rx, (uintptr_t)mem->base, 0);
    vufe_setup_ring(fe, 1, &g.tx, (uintptr_t)mem->base, 0);
    g_assert_true(vu_ring_wait_used(&g.rx, 3, 10000));
    for (uint16_t i = 3; i < 8; i++) {
        vu_ring_set_desc(&g.rx, i, RX_BUF + i * 2048u, 2048, VRING_DESC_F_WRITE, 0);
        vu_ring_publish(&g.rx, i);
    }
    vu_ring_kick(&g.rx);
    g_assert_true(vu_ring_wait_used(&g.rx, 5, 10000));
    g_usleep(200000);
    g_assert_cmpuint(vu_ring_used_idx(&g.rx), ==, 5);
    for (uint16_t i = 0; i < 5; i++) {
        VringUsedElem e = vu_ring_used_elem(&g.rx, i);
        const uint8_t *buf = mem->base + RX_BUF + e.id * 2048u;
        uint16_t stream = 0;
        uint64_t seq = 0;
        g_assert_cmpuint(e.id, ==, i);
        g_assert_cmpuint(e.len, ==, HDR_LEN + 100);
        g_assert_cmpuint(buf[10], ==, 1);
        g_assert_cmpint(nf_check(buf + HDR_LEN, 100, &stream, &seq), ==, NF_OK);
        g_assert_cmpuint(stream, ==, 9);
        g_assert_cmpuint(seq, ==, i);
    }
    vufe_free(fe);
    int status;
    g_assert_true(vu_wait_pid(ex->pid, 5000, &status));
    g_autofree char *out = NULL;
    g_assert_true(g_file_get_contents(ex->out, &out, NULL, NULL));
    g_assert_cmpint(stat_of(out, "generated"), ==, 5);
    g_assert_cmpint(stat_of(out, "dropped"), ==, 0);
    guest_cleanup(&g);
    vu_guest_mem_free(mem);
    example_free(ex);
}

static void test_reflect_client(void)
{
    g_autofree char *dir = g_dir_make_tmp("vub-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "fe.sock", NULL);
    g_autofree char *out_path = g_build_filename(dir, "out", NULL);
    g_autofree char *err_path = g_build_filename(dir, "err", NULL);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    VuGuestMem *mem = vu_guest_mem_new(RAM_SIZE);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    /* The front-end listens (QEMU's server=on, DPDK's client=1 seen from the other side). */
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    g_assert_cmpint(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(lfd, 1), ==, 0);
    char *argv[] = { (char *)example_binary(), (char *)"--socket-path", path, (char *)"--client",
                     (char *)"--interval", (char *)"0", NULL };
    pid_t pid = vu_spawn(argv, out_path, err_path);
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    g_assert_cmpint(poll(&p, 1, 10000), ==, 1);
    VuFe *fe = vufe_adopt(accept4(lfd, NULL, NULL, SOCK_CLOEXEC));
    g_assert_cmpint(fe->sock, >=, 0);
    reflect_one(fe, mem, 0);
    vufe_free(fe);
    int status;
    g_assert_true(vu_wait_pid(pid, 5000, &status));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_autofree char *out = NULL;
    g_assert_true(g_file_get_contents(out_path, &out, NULL, NULL));
    g_assert_cmpint(stat_of(out, "reflected"), ==, 1);
    close(lfd);
    vu_guest_mem_free(mem);
    unlink(path);
    unlink(out_path);
    unlink(err_path);
    g_rmdir(dir);
}

static void test_reconnect(void)
{
    Example *ex = example_start("--interval 0 --reconnect");
    VuGuestMem *mem = vu_guest_mem_new(RAM_SIZE);

    for (int round = 0; round < 3; round++) {
        g_autoptr(GError) err = NULL;
        VuFe *fe = vufe_connect(ex->sock, 5000, &err);
        g_assert_no_error(err);
        reflect_one(fe, mem, (uint64_t)round);
        vufe_free(fe);
    }
    g_autofree char *out = example_stop(ex);
    g_assert_cmpint(stat_of(out, "sessions"), ==, 3);
    g_assert_cmpint(stat_of(out, "reflected"), ==, 3);
    /* Each session numbers from 0, 1, 2: seen as one stream going on. */
    g_assert_cmpint(stat_of(out, "nf_ok"), ==, 3);
    g_assert_cmpint(stat_of(out, "nf_gaps"), ==, 0);
    g_assert_cmpint(stat_of(out, "nf_dups"), ==, 0);
    vu_guest_mem_free(mem);
    example_free(ex);
}

static bool log_bit(const uint8_t *log, uint64_t gpa)
{
    uint64_t page = gpa / VHOST_LOG_PAGE;

    return log[page / 8] & (1u << (page % 8));
}

/* Pages the back-end writes appear in the shared log, and only those. */
static void test_dirty_log(void)
{
    Example *ex = example_start("--interval 0");
    g_autoptr(GError) err = NULL;
    VuGuestMem *mem = vu_guest_mem_new(RAM_SIZE);
    VhostUserHeader hdr;
    uint64_t v;
    Guest g;

    VuFe *fe = vufe_connect(ex->sock, 5000, &err);
    g_assert_no_error(err);
    guest_init(&g, mem->base);
    negotiate(fe, (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
              (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD));
    send_mem_table(fe, mem);
    vufe_setup_ring(fe, 0, &g.rx, (uintptr_t)mem->base, RX_USED);
    vufe_setup_ring(fe, 1, &g.tx, (uintptr_t)mem->base, TX_USED);

    int log_fd = memfd_create("vu-log", MFD_CLOEXEC);
    size_t log_size = RAM_SIZE / VHOST_LOG_PAGE / 8;
    g_assert_cmpint(ftruncate(log_fd, 4096), ==, 0);
    uint8_t *log = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, log_fd, 0);
    VhostUserLogArea area = { .mmap_size = log_size };
    g_assert_true(vufe_send(fe, VHOST_USER_SET_LOG_BASE, 1, &area, sizeof(area), &log_fd, 1,
                            &err));
    g_assert_cmpint(vufe_recv(fe, &hdr, &v, 8, NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_SET_LOG_BASE);
    g_assert_cmpuint(v, ==, 0);
    vufe_must_u64(fe, VHOST_USER_SET_FEATURES, (1ull << VIRTIO_F_VERSION_1) |
                  (1ull << VHOST_USER_F_PROTOCOL_FEATURES) | (1ull << VHOST_F_LOG_ALL), true);
    /* Re-send the ring addresses with logging, as QEMU does when migration starts. */
    for (uint32_t q = 0; q < 2; q++) {
        VuRing *r = q ? &g.tx : &g.rx;
        VhostUserVringAddr a = {
            .index = q, .flags = VHOST_VRING_F_LOG,
            .desc_user_addr = (uintptr_t)mem->base + r->desc_gpa,
            .used_user_addr = (uintptr_t)mem->base + r->used_gpa,
            .avail_user_addr = (uintptr_t)mem->base + r->avail_gpa,
            .log_guest_addr = r->used_gpa,
        };
        vufe_must(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true);
    }
    guest_send(&g);
    vu_ring_kick(&g.tx);
    g_assert_true(vu_ring_wait_used(&g.rx, 1, 10000));
    guest_check_reflected(&g, mem->base);
    /* Written: the RX buffer, the RX and TX used rings. Not the TX buffer (only read). */
    g_assert_true(log_bit(log, RX_BUF));
    g_assert_true(log_bit(log, RX_USED));
    g_assert_true(log_bit(log, TX_USED));
    unsigned bits = 0;
    for (size_t i = 0; i < log_size; i++) {
        bits += (unsigned)__builtin_popcount(log[i]);
    }
    g_assert_cmpuint(bits, ==, 3);
    vufe_free(fe);
    g_autofree char *out = NULL;
    int status;
    g_assert_true(vu_wait_pid(ex->pid, 5000, &status));
    g_assert_true(g_file_get_contents(ex->out, &out, NULL, NULL));
    g_assert_cmpint(stat_of(out, "dirty_log_writes"), >=, 3);
    munmap(log, 4096);
    close(log_fd);
    guest_cleanup(&g);
    vu_guest_mem_free(mem);
    example_free(ex);
}

/* ---- postcopy ------------------------------------------------------------------- */

typedef struct FaultServer {
    int uffd_backend;       /* the back-end's, from POSTCOPY_ADVISE */
    int uffd_ours;          /* ours, registered on our mapping of guest RAM */
    int stop_fd;
    uint8_t *our_base;
    uint64_t backend_base;  /* the back-end's address of GPA 0 (from the memory table reply) */
    const uint8_t *source;  /* what the pages must contain ("the source's RAM") */
    int hold_first_ms;
    GMutex lock;
    GArray *gpas;           /* faulted pages, in order */
    bool second_while_held; /* another fault arrived while the first was held */
    char *error;
} FaultServer;

static void fault_fail(FaultServer *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void fault_fail(FaultServer *s, const char *fmt, ...)
{
    va_list ap;

    g_mutex_lock(&s->lock);
    if (!s->error) {
        va_start(ap, fmt);
        s->error = g_strdup_vprintf(fmt, ap);
        va_end(ap);
    }
    g_mutex_unlock(&s->lock);
}

/*
 * The front-end's fault thread: read the back-end's faults, "fetch" each
 * page from the source image, place it through our own mapping (the file is
 * shared) and wake the back-end.
 */
static gpointer fault_thread(gpointer opaque)
{
    FaultServer *s = opaque;
    bool first = true;

    for (;;) {
        struct pollfd p[2] = {
            { .fd = s->uffd_backend, .events = POLLIN },
            { .fd = s->stop_fd, .events = POLLIN },
        };
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            fault_fail(s, "poll: %s", g_strerror(errno));
            return NULL;
        }
        if (p[1].revents) {
            return NULL;
        }
        if (!(p[0].revents & POLLIN)) {
            continue;
        }
        struct uffd_msg m;
        ssize_t n = read(s->uffd_backend, &m, sizeof(m));
        if (n < 0 && errno == EAGAIN) {
            continue;
        }
        if (n != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT) {
            fault_fail(s, "unexpected read from the back-end's userfaultfd (%zd bytes, event"
                       " 0x%x)", n, n == sizeof(m) ? m.event : 0);
            return NULL;
        }
        uint64_t page = m.arg.pagefault.address & ~(uint64_t)(PAGE - 1);
        if (page < s->backend_base || page - s->backend_base >= RAM_SIZE) {
            fault_fail(s, "fault at 0x%" G_GINT64_MODIFIER "x is outside the back-end's"
                       " mapping of guest RAM", page);
            return NULL;
        }
        uint64_t gpa = page - s->backend_base;
        g_mutex_lock(&s->lock);
        g_array_append_val(s->gpas, gpa);
        g_mutex_unlock(&s->lock);
        if (first) {
            /* Hold the page: a blocked back-end raises nothing else meanwhile. */
            struct pollfd q = { .fd = s->uffd_backend, .events = POLLIN };
            if (poll(&q, 1, s->hold_first_ms) > 0) {
                s->second_while_held = true;
            }
            first = false;
        }
        struct uffdio_copy c = {
            .dst = (uintptr_t)s->our_base + gpa,
            .src = (uintptr_t)s->source + gpa,
            .len = PAGE,
        };
        if (ioctl(s->uffd_ours, UFFDIO_COPY, &c) < 0 && errno != EEXIST) {
            fault_fail(s, "UFFDIO_COPY of GPA 0x%" G_GINT64_MODIFIER "x: %s", gpa,
                       g_strerror(errno));
            return NULL;
        }
        struct uffdio_range r = { .start = page, .len = PAGE };
        if (ioctl(s->uffd_backend, UFFDIO_WAKE, &r) < 0) {
            fault_fail(s, "UFFDIO_WAKE on the back-end's userfaultfd: %s", g_strerror(errno));
            return NULL;
        }
    }
}

static int make_uffd(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    if (fd < 0) {
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
            close(dev);
        }
    }
    if (fd >= 0) {
        struct uffdio_api api = { .api = UFFD_API };
        if (ioctl(fd, UFFDIO_API, &api) < 0) {
            close(fd);
            fd = -1;
        }
    }
    return fd;
}

static void test_postcopy(void)
{
    int probe = make_uffd();
    if (probe < 0) {
        g_printerr("\n*** SKIP: userfaultfd is not usable here (%s) ***\n", g_strerror(errno));
        g_test_skip("userfaultfd is not usable here");
        return;
    }
    close(probe);

    const int hold_ms = 300;
    Example *ex = example_start("--interval 0 --postcopy");
    g_autoptr(GError) err = NULL;
    VuGuestMem *mem = vu_guest_mem_new(RAM_SIZE);   /* mapped, never touched by us */
    g_autofree uint8_t *source = g_malloc0(RAM_SIZE);
    VhostUserHeader hdr;
    uint64_t v;
    int uffd_backend;
    Guest g;

    /* The source's RAM: rings with one RX buffer offered and one frame to transmit. */
    guest_init(&g, source);
    g.seq = 5;
    guest_send(&g);

    VuFe *fe = vufe_connect(ex->sock, 5000, &err);
    g_assert_no_error(err);
    negotiate(fe, (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
              (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD) |
              (1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT));

    /* ADVISE: the back-end's userfaultfd comes back. */
    g_assert_true(vufe_send(fe, VHOST_USER_POSTCOPY_ADVISE, 1, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(fe, &hdr, &v, 8, &uffd_backend, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_POSTCOPY_ADVISE);
    g_assert_cmphex(hdr.flags, ==, 0x5);
    g_assert_cmpuint(hdr.size, ==, 0);
    g_assert_cmpint(uffd_backend, >=, 0);

    /* LISTEN (need_reply, as QEMU sends it). */
    g_assert_true(vufe_send(fe, VHOST_USER_POSTCOPY_LISTEN, 9, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(fe, &hdr, &v, 8, NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_POSTCOPY_LISTEN);
    g_assert_cmpuint(v, ==, 0);

    /* Our own RAM is missing too: register it, as a postcopy destination does. */
    int uffd_ours = make_uffd();
    g_assert_cmpint(uffd_ours, >=, 0);
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)mem->base, .len = RAM_SIZE },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    g_assert_cmpint(ioctl(uffd_ours, UFFDIO_REGISTER, &reg), ==, 0);

    /* The postcopy memory table: the reply gives the back-end's addresses; then our ack. */
    VhostUserMemTable t = { .nregions = 1 }, reply;
    t.regions[0] = (VhostUserMemRegion){ .guest_phys_addr = 0, .memory_size = RAM_SIZE,
                                         .userspace_addr = (uintptr_t)mem->base };
    g_assert_true(vufe_send(fe, VHOST_USER_SET_MEM_TABLE, 1, &t, VHOST_USER_MEM_TABLE_SIZE(1),
                            &mem->fd, 1, &err));
    g_assert_cmpint(vufe_recv(fe, &hdr, &reply, sizeof(reply), NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_SET_MEM_TABLE);
    g_assert_cmpuint(hdr.size, ==, VHOST_USER_MEM_TABLE_SIZE(1));
    g_assert_cmpuint(reply.regions[0].guest_phys_addr, ==, 0);
    uint64_t backend_base = reply.regions[0].userspace_addr;
    g_assert_cmphex(backend_base % PAGE, ==, 0);

    FaultServer s = {
        .uffd_backend = uffd_backend, .uffd_ours = uffd_ours,
        .stop_fd = eventfd(0, EFD_CLOEXEC), .our_base = mem->base,
        .backend_base = backend_base, .source = source, .hold_first_ms = hold_ms,
        .gpas = g_array_new(false, false, sizeof(uint64_t)),
    };
    g_mutex_init(&s.lock);
    GThread *thread = g_thread_new("fault", fault_thread, &s);

    uint64_t ack = 0;
    g_assert_true(vufe_send(fe, VHOST_USER_SET_MEM_TABLE, 1, &ack, 8, NULL, 0, &err));

    /* Start both rings: the back-end now touches missing pages and sleeps on each. */
    vufe_setup_ring(fe, 0, &g.rx, (uintptr_t)mem->base, 0);
    vufe_setup_ring(fe, 1, &g.tx, (uintptr_t)mem->base, 0);
    vu_ring_kick(&g.tx);

    /* The reflected frame's interrupt: every page it needed was placed by us. */
    g_assert_true(vu_ring_wait_call(&g.rx, 20000));
    g_assert_null(s.error);
    g.image = mem->base;
    g.rx.image = mem->base;
    g.tx.image = mem->base;
    guest_check_reflected(&g, mem->base);

    /* Exactly the eight pages it touched, each once, and nothing while one was held. */
    /* Frame 5 uses descriptor slot 5: RX buffer 0x22800, TX buffer 0x30500. */
    static const uint64_t expect[] = { RX_DESC, RX_AVAIL, RX_USED, TX_DESC, TX_AVAIL, TX_USED,
                                       (RX_BUF + 5 * 2048) & ~(PAGE - 1), TX_BUF };
    g_mutex_lock(&s.lock);
    g_assert_cmpuint(s.gpas->len, ==, G_N_ELEMENTS(expect));
    for (unsigned i = 0; i < G_N_ELEMENTS(expect); i++) {
        unsigned seen = 0;
        for (unsigned j = 0; j < s.gpas->len; j++) {
            seen += g_array_index(s.gpas, uint64_t, j) == expect[i];
        }
        if (seen != 1) {
            g_error("page 0x%" G_GINT64_MODIFIER "x faulted %u times", expect[i], seen);
        }
    }
    g_mutex_unlock(&s.lock);
    g_assert_false(s.second_while_held);

    /* The rest of RAM arrives (the source's background stream), then the migration ends. */
    for (uint64_t gpa = 0; gpa < RAM_SIZE; gpa += PAGE) {
        struct uffdio_copy c = {
            .dst = (uintptr_t)mem->base + gpa, .src = (uintptr_t)source + gpa, .len = PAGE,
        };
        if (ioctl(uffd_ours, UFFDIO_COPY, &c) < 0) {
            g_assert_cmpint(errno, ==, EEXIST);
        }
    }
    g_mutex_lock(&s.lock);
    g_assert_cmpuint(s.gpas->len, ==, G_N_ELEMENTS(expect));
    g_mutex_unlock(&s.lock);
    uint64_t one = 1;
    g_assert_cmpint(write(s.stop_fd, &one, 8), ==, 8);
    g_thread_join(thread);

    /* END: the back-end lets go of its userfaultfd; so do we, as QEMU does. */
    g_assert_true(vufe_send(fe, VHOST_USER_POSTCOPY_END, 9, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(fe, &hdr, &v, 8, NULL, 5000, &err), ==, 1);
    g_assert_cmpuint(hdr.request, ==, VHOST_USER_POSTCOPY_END);
    g_assert_cmpuint(v, ==, 0);
    close(uffd_backend);

    /* After END, frames flow as usual. */
    guest_send(&g);
    vu_ring_kick(&g.tx);
    g_assert_true(vu_ring_wait_used(&g.rx, 2, 10000));
    guest_check_reflected(&g, mem->base);

    g_autofree char *out = example_stop(ex);
    g_assert_cmpint(stat_of(out, "faults"), ==, G_N_ELEMENTS(expect));
    g_assert_cmpint(stat_of(out, "reflected"), ==, 2);
    g_assert_cmpint(stat_of(out, "nf_ok"), ==, 2);
    g_assert_cmpint(stat_of(out, "nf_corrupt"), ==, 0);
    /* The held fault blocked the back-end for at least the hold. */
    const char *max = strstr(out, "final");
    max = strstr(max, " fault_max_us=");
    g_assert_nonnull(max);
    double max_us = g_ascii_strtod(max + strlen(" fault_max_us="), NULL);
    g_test_message("faults %u, longest %.0f us (held %d ms)", s.gpas->len, max_us, hold_ms);
    g_assert_cmpfloat(max_us, >=, hold_ms * 1000.0);

    vufe_free(fe);
    close(uffd_ours);
    close(s.stop_fd);
    g_array_free(s.gpas, true);
    g_mutex_clear(&s.lock);
    g.image = source;
    guest_cleanup(&g);
    vu_guest_mem_free(mem);
    example_free(ex);
}

/* Without --postcopy the back-end offers no PAGEFAULT and refuses ADVISE without a uffd. */
static void test_no_pagefault(void)
{
    Example *ex = example_start("--interval 0");
    g_autoptr(GError) err = NULL;
    VhostUserHeader hdr;
    uint64_t p, v;
    int fd;

    VuFe *fe = vufe_connect(ex->sock, 5000, &err);
    g_assert_no_error(err);
    g_assert_true(vufe_get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &p, &err));
    g_assert_false(p & (1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT));
    g_assert_true(vufe_send(fe, VHOST_USER_POSTCOPY_ADVISE, 1, NULL, 0, NULL, 0, &err));
    g_assert_cmpint(vufe_recv(fe, &hdr, &v, 8, &fd, 5000, &err), ==, 1);
    g_assert_cmpint(fd, ==, -1);
    vufe_free(fe);
    g_autofree char *e = vu_wait_file_contains(ex->err, "without the PAGEFAULT protocol feature",
                                               5000, 0);
    g_assert_nonnull(e);
    int status;
    g_assert_true(vu_wait_pid(ex->pid, 5000, &status));
    example_free(ex);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    g_test_add_func("/vhost-user/example/cmdline", test_cmdline);
    g_test_add_func("/vhost-user/example/reflect/server", test_reflect_server);
    g_test_add_func("/vhost-user/example/reflect/client", test_reflect_client);
    g_test_add_func("/vhost-user/example/reflect/mac-swap", test_reflect_mac_swap);
    g_test_add_func("/vhost-user/example/generate", test_generate);
    g_test_add_func("/vhost-user/example/reconnect", test_reconnect);
    g_test_add_func("/vhost-user/example/dirty-log", test_dirty_log);
    g_test_add_func("/vhost-user/example/postcopy", test_postcopy);
    g_test_add_func("/vhost-user/example/no-pagefault", test_no_pagefault);
    return g_test_run();
}
