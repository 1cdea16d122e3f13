/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for vhost-user framing (hw/virtio/vhost-user-msg.c) over a
 * socketpair: header and payload bytes on the wire, descriptors with
 * SCM_RIGHTS, deadlines, oversized and truncated messages, reply checks,
 * and the postcopy memory-table reply.
 */
#include "qemu/osdep.h"
#include "hw/virtio/vhost-user-msg.h"
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>

static void pair(int sv[2])
{
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), ==, 0);
}

static void test_wire(void)
{
    int sv[2], fds[2], got[8];
    unsigned n = 8;
    VhostUserMsg m, r;
    uint8_t raw[64];
    GError *err = NULL;

    pair(sv);
    vhost_user_msg_init(&m, VHOST_USER_SET_VRING_NUM, sizeof(VhostUserVringState));
    m.payload.state.index = 1;
    m.payload.state.num = 256;
    g_assert_true(vhost_user_msg_send(sv[0], &m, NULL, 0, 1000, &err));
    /* Host byte order, 12-byte header, then exactly the payload. */
    g_assert_cmpint(read(sv[1], raw, sizeof(raw)), ==, 20);
    static const uint8_t want[20] = { 8, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0,
                                      1, 0, 0, 0, 0, 1, 0, 0 };
    g_assert_cmpmem(raw, 20, want, 20);

    /* Two descriptors ride with the message and arrive as new fds. */
    g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
    vhost_user_msg_init(&m, VHOST_USER_SET_VRING_KICK, sizeof(uint64_t));
    m.payload.u64 = 0;
    int two[2] = { fds[0], fds[1] };
    g_assert_true(vhost_user_msg_send(sv[0], &m, two, 2, 1000, &err));
    r.request = 0;
    g_assert_true(vhost_user_msg_recv(sv[1], &r, got, &n, 1000, &err));
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmpuint(r.request, ==, VHOST_USER_SET_VRING_KICK);
    g_assert_cmpuint(r.size, ==, 8);
    struct stat a, b;
    g_assert_cmpint(fstat(got[1], &a), ==, 0);
    g_assert_cmpint(fstat(fds[1], &b), ==, 0);
    g_assert_cmpuint(a.st_ino, ==, b.st_ino);
    close(got[0]);
    close(got[1]);
    /* More descriptors than the receiver wants: the extra are closed, not leaked. */
    n = 1;
    g_assert_true(vhost_user_msg_send(sv[0], &m, two, 2, 1000, &err));
    g_assert_true(vhost_user_msg_recv(sv[1], &r, got, &n, 1000, &err));
    g_assert_cmpuint(n, ==, 1);
    close(got[0]);
    close(fds[0]);
    close(fds[1]);
    close(sv[0]);
    close(sv[1]);
}

static void test_bad_input(void)
{
    int sv[2];
    VhostUserMsg r;
    GError *err = NULL;
    gint64 t0;

    pair(sv);
    /* Nothing comes: the deadline ends the wait, naming the request. */
    r.request = VHOST_USER_GET_VRING_BASE;
    t0 = g_get_monotonic_time();
    g_assert_false(vhost_user_msg_recv(sv[1], &r, NULL, NULL, 200, &err));
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 190000);
    g_assert_nonnull(strstr(err->message, "GET_VRING_BASE"));
    g_clear_error(&err);
    /* A payload larger than any message we know: refused before reading it. */
    uint32_t hdr[3] = { VHOST_USER_GET_FEATURES, 0x5, 100000 };
    g_assert_cmpint(write(sv[0], hdr, sizeof(hdr)), ==, sizeof(hdr));
    g_assert_false(vhost_user_msg_recv(sv[1], &r, NULL, NULL, 1000, &err));
    g_assert_nonnull(strstr(err->message, "100000-byte payload"));
    g_clear_error(&err);
    /* A truncated message, then EOF. */
    close(sv[0]);
    close(sv[1]);
    pair(sv);
    uint32_t hdr2[4] = { VHOST_USER_GET_FEATURES, 0x5, 8, 0 };
    g_assert_cmpint(write(sv[0], hdr2, 14), ==, 14);
    close(sv[0]);
    g_assert_false(vhost_user_msg_recv(sv[1], &r, NULL, NULL, 1000, &err));
    g_assert_nonnull(strstr(err->message, "closed the connection"));
    g_clear_error(&err);
    close(sv[1]);
    /* Sending to a peer that left is an error, not a SIGPIPE. */
    pair(sv);
    close(sv[1]);
    VhostUserMsg m;
    vhost_user_msg_init(&m, VHOST_USER_SET_OWNER, 0);
    g_assert_false(vhost_user_msg_send(sv[0], &m, NULL, 0, 1000, &err));
    g_assert_nonnull(strstr(err->message, "SET_OWNER"));
    g_clear_error(&err);
    close(sv[0]);
}

static void test_reply_check(void)
{
    VhostUserMsg r = { .request = VHOST_USER_GET_FEATURES, .flags = 0x5, .size = 8 };
    GError *err = NULL;

    g_assert_true(vhost_user_reply_check(&r, VHOST_USER_GET_FEATURES, 8, &err));
    r.flags = 0xd;                                  /* need_reply on a reply */
    g_assert_false(vhost_user_reply_check(&r, VHOST_USER_GET_FEATURES, 8, &err));
    g_assert_nonnull(strstr(err->message, "flags 0xd"));
    g_clear_error(&err);
    r.flags = 0x1;                                  /* not a reply */
    g_assert_false(vhost_user_reply_check(&r, VHOST_USER_GET_FEATURES, 8, &err));
    g_clear_error(&err);
    r.flags = 0x5;
    r.size = 4;
    g_assert_false(vhost_user_reply_check(&r, VHOST_USER_GET_FEATURES, 8, &err));
    g_assert_nonnull(strstr(err->message, "4 payload bytes"));
    g_clear_error(&err);
    r.size = 8;
    r.request = VHOST_USER_GET_PROTOCOL_FEATURES;
    g_assert_false(vhost_user_reply_check(&r, VHOST_USER_GET_FEATURES, 8, &err));
    g_assert_nonnull(strstr(err->message, "answered GET_FEATURES with GET_PROTOCOL_FEATURES"));
    g_clear_error(&err);
    g_assert_cmpstr(vhost_user_request_name(99), ==, "request 99");
}

static void mem_table(VhostUserMsg *m, unsigned n)
{
    vhost_user_msg_init(m, VHOST_USER_SET_MEM_TABLE, 8 + 32 * n);
    m->payload.memory.nregions = n;
    m->payload.memory.regions[0] = (VhostUserMemRegion){ 0, 3ULL << 30, 0x7f0000000000, 0 };
    if (n > 1) {
        m->payload.memory.regions[1] = (VhostUserMemRegion){ 4ULL << 30, 1ULL << 30,
                                                             0x7f00c0000000, 3ULL << 30 };
    }
}

static void test_postcopy_reply(void)
{
    VhostUserMsg sent, reply;
    uint64_t base[2];
    GError *err = NULL;

    mem_table(&sent, 2);
    /* The back-end answers with its own addresses, in the other order: matched by GPA. */
    reply = sent;
    reply.flags = 0x5;
    reply.payload.memory.regions[0] = sent.payload.memory.regions[1];
    reply.payload.memory.regions[1] = sent.payload.memory.regions[0];
    reply.payload.memory.regions[0].userspace_addr = 0x5000000000;
    reply.payload.memory.regions[1].userspace_addr = 0x6000000000;
    g_assert_true(vhost_user_parse_postcopy_mem_reply(&sent, &reply, base, &err));
    g_assert_cmphex(base[0], ==, 0x6000000000);
    g_assert_cmphex(base[1], ==, 0x5000000000);

    VhostUserMsg bad = reply;
    bad.payload.memory.regions[0].guest_phys_addr = 8ULL << 30;      /* a region lost */
    g_assert_false(vhost_user_parse_postcopy_mem_reply(&sent, &bad, base, &err));
    g_assert_nonnull(strstr(err->message, "lacks region 0x100000000"));
    g_clear_error(&err);
    bad = reply;
    bad.payload.memory.regions[1].memory_size = 4096;                /* resized */
    g_assert_false(vhost_user_parse_postcopy_mem_reply(&sent, &bad, base, &err));
    g_clear_error(&err);
    bad = reply;
    bad.payload.memory.regions[1].userspace_addr = UINT64_MAX - 100; /* wraps */
    g_assert_false(vhost_user_parse_postcopy_mem_reply(&sent, &bad, base, &err));
    g_clear_error(&err);
    bad = reply;
    bad.payload.memory.nregions = 1;
    g_assert_false(vhost_user_parse_postcopy_mem_reply(&sent, &bad, base, &err));
    g_clear_error(&err);
    bad = reply;
    bad.size = 8 + 32;                                               /* shorter than sent */
    g_assert_false(vhost_user_parse_postcopy_mem_reply(&sent, &bad, base, &err));
    g_clear_error(&err);
    bad = reply;
    bad.request = VHOST_USER_SET_VRING_NUM;
    g_assert_false(vhost_user_parse_postcopy_mem_reply(&sent, &bad, base, &err));
    g_clear_error(&err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vhost-user-msg/wire", test_wire);
    g_test_add_func("/vhost-user-msg/bad-input", test_bad_input);
    g_test_add_func("/vhost-user-msg/reply-check", test_reply_check);
    g_test_add_func("/vhost-user-msg/postcopy-reply", test_postcopy_reply);
    return g_test_run();
}
