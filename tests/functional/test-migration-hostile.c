/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A destination, a source and the monitors under hostile input and races:
 * hand-built streams (records cut from a real stream, commands out of
 * order) played to a real destination on its socket, a fake destination's
 * return path to a real source, and the monitor polled hard while a
 * migration ends. Every refusal must be one clear sentence, and nothing may
 * crash, hang or run a guest from incomplete state.
 */
#include "qemu/osdep.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "migration-framework.h"
#include "mig-stream.h"

#define HOSTILE_RAM_MIB 64

/* A complete precopy stream of a small tick guest, captured once. */
static MigStreamFile *captured;

static const MigStreamFile *real_stream(void)
{
    static const MigTestConfig cfg = { .ram_mib = HOSTILE_RAM_MIB };
    g_autofree char *file = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *data = NULL;
    gsize len;
    GwVM *src;

    if (captured) {
        return captured;
    }
    src = mig_start_source(&cfg, "capture");
    mig_set_caps(src, "events", true);
    file = gw_vm_path(src, "stream.bin");
    uri = g_strdup_printf("exec:cat > %s", file);
    json_node_unref(gw_qmp_assert_success(src,
        "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", uri));
    mig_wait_status(src, "completed", MIG_DEFAULT_TIMEOUT_MS);
    g_assert_true(g_file_get_contents(file, &data, &len, NULL));
    gw_vm_free(src);
    captured = mig_stream_split(g_bytes_new_take(g_steal_pointer(&data), len));
    return captured;
}

/* A destination (no -S: "the guest never ran" then means something). */
static GwVM *hostile_dest(bool postcopy)
{
    g_autofree char *args = g_strdup_printf("-m %uM -incoming unix:@DIR@/mig.sock",
                                            HOSTILE_RAM_MIB);
    GwVMOpts o = { .name = "dst", .args = args };
    GwVM *dst = gw_vm_start(&o);

    mig_set_caps(dst, postcopy ? "events,postcopy-ram" : "events", true);
    return dst;
}

static MigRawSource *connect_dest(GwVM *dst)
{
    g_autofree char *path = gw_vm_path(dst, "mig.sock");

    return mig_raw_connect(path, 10000);
}

/*
 * The destination refuses: the return path carries an ERROR naming
 * @reason, it exits 1 with that one line on stderr, and its guest never ran.
 */
static void expect_refusal(GwVM *dst, MigRawSource *rs, const char *reason)
{
    g_autofree char *rp_error = mig_raw_wait_error(rs, 30000);
    g_autofree char *err = NULL;
    g_autofree char *serial = NULL;
    int status;

    g_test_message("return path ERROR: %s", rp_error ? rp_error : "(none)");
    g_assert_true(gw_vm_wait_exit(dst, gw_timeout(30000), &status));
    err = gw_vm_stderr(dst);
    serial = gw_serial_read_all(dst);
    {
        g_autofree char *how = gw_describe_status(status);
        g_test_message("destination %s; stderr: %s", how, err);
    }
    g_assert_nonnull(rp_error);
    g_assert_nonnull(strstr(rp_error, reason));
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    g_assert_true(g_str_has_prefix(err, "godwit: load of migration failed: "));
    g_assert_nonnull(strstr(err, reason));
    g_assert_true(strchr(err, '\n') == err + strlen(err) - 1);
    g_assert_cmpstr(serial, ==, "");
    mig_raw_close(rs);
    gw_vm_free(dst);
}

/* Header, CONFIG, OPEN_RETURN_PATH and PING 1 (answered once CONFIG is checked). */
static GByteArray *stream_start(const MigStreamFile *f)
{
    GByteArray *b = g_byte_array_new();

    mig_stream_append_prefix(b, f);
    mig_put_command(b, MIG_CMD_OPEN_RETURN_PATH, NULL, 0);
    mig_put_ping(b, 1);
    return b;
}

/* ... then ADVISE (4 KiB pages), PING 2 and the RAM setup section. */
static GByteArray *postcopy_start(const MigStreamFile *f)
{
    GByteArray *b = stream_start(f);

    mig_put_advise(b, 4096);
    mig_put_ping(b, 2);
    mig_stream_append(b, f, mig_stream_find(f, MIG_REC_SECTION_START, "ram"));
    return b;
}

static void play(GwVM *dst, MigRawSource *rs, GByteArray *b)
{
    /* The destination may close the connection before it has read it all. */
    if (!mig_raw_write(rs, b->data, b->len)) {
        g_test_message("the destination closed the connection early");
    }
    g_byte_array_unref(b);
}

/* ---------------------------------------------------------------------- */
/* The postcopy handshake out of order */

/*
 * LISTEN on the main stream would start the listen thread on the stream
 * the incoming thread goes on reading.
 */
static void test_listen_outside_package(void)
{
    const MigStreamFile *f;
    GByteArray *b;
    GwVM *dst;
    MigRawSource *rs;

    if (!mig_require(true)) {
        return;
    }
    f = real_stream();
    dst = hostile_dest(true);
    rs = connect_dest(dst);
    b = postcopy_start(f);
    mig_put_command(b, MIG_CMD_POSTCOPY_LISTEN, NULL, 0);
    mig_stream_append_devices(b, f);
    mig_stream_append(b, f, mig_stream_find(f, MIG_REC_EOF, NULL));
    play(dst, rs, b);
    expect_refusal(dst, rs, "POSTCOPY_LISTEN outside the postcopy package");
}

/* A package that listened but holds no RUN: the incoming thread must not read on. */
static void test_package_without_run(void)
{
    const MigStreamFile *f;
    g_autoptr(GByteArray) pk = g_byte_array_new();
    GByteArray *b;
    GwVM *dst;
    MigRawSource *rs;

    if (!mig_require(true)) {
        return;
    }
    f = real_stream();
    dst = hostile_dest(true);
    rs = connect_dest(dst);
    b = postcopy_start(f);
    mig_put_command(pk, MIG_CMD_POSTCOPY_LISTEN, NULL, 0);
    mig_stream_append_devices(pk, f);
    mig_put_packaged(b, pk);
    /* Nothing follows: the listen thread waits on the main stream meanwhile. */
    play(dst, rs, b);
    expect_refusal(dst, rs, "The postcopy package ended without POSTCOPY_RUN");
}

/* RAM inside the package would load on the incoming thread beside the listen thread. */
static void test_ram_in_package(void)
{
    const MigStreamFile *f;
    g_autoptr(GByteArray) pk = g_byte_array_new();
    GByteArray *b;
    GwVM *dst;
    MigRawSource *rs;

    if (!mig_require(true)) {
        return;
    }
    f = real_stream();
    dst = hostile_dest(true);
    rs = connect_dest(dst);
    b = postcopy_start(f);
    mig_put_command(pk, MIG_CMD_POSTCOPY_LISTEN, NULL, 0);
    mig_stream_append(pk, f, mig_stream_find(f, MIG_REC_SECTION_PART, NULL));
    mig_stream_append_devices(pk, f);
    mig_put_command(pk, MIG_CMD_POSTCOPY_RUN, NULL, 0);
    mig_put_packaged(b, pk);
    play(dst, rs, b);
    expect_refusal(dst, rs, "In the postcopy package: SECTION_PART record is not allowed");
}

/* A package of device records and RUN, without LISTEN: no postcopy switch at all. */
static void test_package_without_listen(void)
{
    const MigStreamFile *f;
    g_autoptr(GByteArray) pk = g_byte_array_new();
    GByteArray *b;
    GwVM *dst;
    MigRawSource *rs;

    if (!mig_require(true)) {
        return;
    }
    f = real_stream();
    dst = hostile_dest(true);
    rs = connect_dest(dst);
    b = postcopy_start(f);
    mig_stream_append_devices(pk, f);
    mig_put_command(pk, MIG_CMD_POSTCOPY_RUN, NULL, 0);
    mig_put_packaged(b, pk);
    mig_stream_append(b, f, mig_stream_find(f, MIG_REC_EOF, NULL));
    play(dst, rs, b);
    expect_refusal(dst, rs, "In the postcopy package: device record before POSTCOPY_LISTEN");
}

/*
 * Both loaders fail at once: the incoming thread inside the package, the
 * listen thread (started by LISTEN) on the main stream. One failure is
 * reported, once: one ERROR on the return path, one line on stderr.
 */
static void test_two_loaders_fail(void)
{
    const MigStreamFile *f;
    g_autoptr(GByteArray) pk = g_byte_array_new();
    g_autoptr(GByteArray) p = g_byte_array_new();
    static const guint8 junk[] = { 0x55, 0x55, 0x55, 0x55 };
    GByteArray *b;
    GwVM *dst;
    MigRawSource *rs;
    g_autofree char *err = NULL;
    g_autofree char *rp_error = NULL;
    guint errors = 0;
    guint16 type;
    int status;

    if (!mig_require(true)) {
        return;
    }
    f = real_stream();
    dst = hostile_dest(true);
    rs = connect_dest(dst);
    b = postcopy_start(f);
    mig_put_command(pk, MIG_CMD_POSTCOPY_LISTEN, NULL, 0);
    mig_stream_append_devices(pk, f);
    g_byte_array_append(pk, junk, sizeof(junk));
    mig_put_packaged(b, pk);
    g_byte_array_append(b, junk, sizeof(junk));
    play(dst, rs, b);
    while (mig_raw_read_rp(rs, &type, p, 30000)) {
        if (type == MIG_RP_MSG_ERROR) {
            errors++;
            g_free(rp_error);
            rp_error = g_strndup((const char *)p->data + 1, p->len - 1);
            g_test_message("return path ERROR: %s", rp_error);
        }
    }
    g_assert_true(gw_vm_wait_exit(dst, gw_timeout(30000), &status));
    err = gw_vm_stderr(dst);
    g_test_message("destination stderr: %s", err);
    g_assert_cmpuint(errors, ==, 1);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    g_assert_true(g_str_has_prefix(err, "godwit: load of migration failed: "));
    g_assert_nonnull(strstr(err, "Unknown migration record type 0x55"));
    g_assert_true(strchr(err, '\n') == err + strlen(err) - 1);
    /* The source hears the reason the destination reports. */
    g_assert_nonnull(strstr(err, rp_error));
    mig_raw_close(rs);
    gw_vm_free(dst);
}

/* ---------------------------------------------------------------------- */
/* Incomplete state */

/* Every device record and EOF, but no RAM section: the guest would run on empty RAM. */
static void test_no_ram(void)
{
    const MigStreamFile *f;
    GByteArray *b;
    GwVM *dst;
    MigRawSource *rs;

    if (!mig_require(false)) {
        return;
    }
    f = real_stream();
    dst = hostile_dest(false);
    rs = connect_dest(dst);
    b = stream_start(f);
    mig_stream_append_devices(b, f);
    mig_stream_append(b, f, mig_stream_find(f, MIG_REC_EOF, NULL));
    play(dst, rs, b);
    expect_refusal(dst, rs, "Missing migration section 'ram' instance 0");
}

/* The RAM section started and a first part, never its end. */
static void test_ram_not_ended(void)
{
    const MigStreamFile *f;
    GByteArray *b;
    GwVM *dst;
    MigRawSource *rs;

    if (!mig_require(false)) {
        return;
    }
    f = real_stream();
    dst = hostile_dest(false);
    rs = connect_dest(dst);
    b = stream_start(f);
    mig_stream_append(b, f, mig_stream_find(f, MIG_REC_SECTION_START, "ram"));
    mig_stream_append(b, f, mig_stream_find(f, MIG_REC_SECTION_PART, NULL));
    mig_stream_append_devices(b, f);
    mig_stream_append(b, f, mig_stream_find(f, MIG_REC_EOF, NULL));
    play(dst, rs, b);
    expect_refusal(dst, rs, "Migration section 'ram' instance 0 did not end");
}

/* A complete, valid postcopy switch: LISTEN, the device records, RUN. */
static void put_switch(GByteArray *b, const MigStreamFile *f)
{
    g_autoptr(GByteArray) pk = g_byte_array_new();

    mig_put_command(pk, MIG_CMD_POSTCOPY_LISTEN, NULL, 0);
    mig_stream_append_devices(pk, f);
    mig_put_command(pk, MIG_CMD_POSTCOPY_RUN, NULL, 0);
    mig_put_packaged(b, pk);
}

/*
 * After RUN the guest runs on the destination; a device record on the main
 * stream would be loaded by the listen thread into live vCPU state without
 * the BQL. The destination must refuse it and pause (the guest lives here
 * now: it is kept, not killed).
 */
static void test_device_after_switch(void)
{
    const MigStreamFile *f;
    GByteArray *b;
    GwVM *dst;
    MigRawSource *rs;
    g_autofree char *err = NULL;
    const char *desc;

    if (!mig_require(true)) {
        return;
    }
    f = real_stream();
    dst = hostile_dest(true);
    rs = connect_dest(dst);
    b = postcopy_start(f);
    put_switch(b, f);
    play(dst, rs, b);
    mig_wait_status(dst, "postcopy-active", MIG_EVENT_TIMEOUT_MS);
    json_node_unref(gw_qmp_wait_event(dst, "RESUME", MIG_EVENT_TIMEOUT_MS));

    b = g_byte_array_new();
    mig_stream_append(b, f, mig_stream_find(f, MIG_REC_SECTION_FULL, "cpu"));
    play(dst, rs, b);
    mig_wait_status(dst, "postcopy-paused", MIG_EVENT_TIMEOUT_MS);
    desc = mig_query_str(dst, "error-desc");
    g_test_message("destination error-desc: %s", desc);
    g_assert_cmpstr(desc, ==, "SECTION_FULL record after the postcopy switch (only RAM may "
                    "follow the package)");
    err = gw_vm_stderr(dst);
    g_assert_cmpstr(err, ==, "godwit: Detected IO failure for postcopy. Migration paused: "
                    "SECTION_FULL record after the postcopy switch (only RAM may follow "
                    "the package)\n");
    g_assert_true(gw_vm_running(dst));
    mig_raw_close(rs);
    gw_vm_free(dst);
}

/* ---------------------------------------------------------------------- */
/* A hostile destination: the return path to a real source */

/* Listen on a unix socket in @vm's directory, as a destination would. */
static int fake_dest_listen(GwVM *vm, char **path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    *path = gw_vm_path(vm, "fake-dst.sock");
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpuint(strlen(*path), <, sizeof(sa.sun_path));
    strcpy(sa.sun_path, *path);
    unlink(*path);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(fd, 1), ==, 0);
    return fd;
}

/*
 * Migrate @src to a fake destination that answers with one return-path
 * ERROR message whose payload is @text (@len bytes); returns the source's
 * error-desc (g_free).
 */
static char *migrate_to_rp_error(GwVM *src, const char *text, gsize len)
{
    g_autofree char *path = NULL;
    int lfd = fake_dest_listen(src, &path);
    g_autoptr(GByteArray) msg = g_byte_array_new();
    guint8 hdr[5] = { 0, MIG_RP_MSG_ERROR, 0, (guint8)(len + 1), (guint8)len };
    guint8 junk[4096];
    int fd;

    g_assert_cmpuint(len, <=, 255);
    json_node_unref(gw_qmp_assert_success(src,
        "{'execute': 'migrate', 'arguments': {'uri': 'unix:%s'}}", path));
    fd = accept(lfd, NULL, NULL);
    g_assert_cmpint(fd, >=, 0);
    /* The source's header and CONFIG, then it waits for PONG 1. */
    g_assert_cmpint(recv(fd, junk, sizeof(junk), 0), >, 8);
    g_byte_array_append(msg, hdr, sizeof(hdr));
    g_byte_array_append(msg, (const guint8 *)text, len);
    g_assert_cmpint(send(fd, msg->data, msg->len, MSG_NOSIGNAL), ==, (gssize)msg->len);
    mig_wait_status(src, "failed", MIG_EVENT_TIMEOUT_MS);
    close(fd);
    close(lfd);
    return g_strdup(mig_query_str(src, "error-desc"));
}

/*
 * The destination's ERROR text is the peer's: it must reach error-desc and
 * stderr without its control bytes, and a NUL in it is refused as in any
 * name on the forward stream.
 */
static void test_rp_error_text(void)
{
    static const char evil[] = "\x1b[2J\x07gone\nsecond line \xc2\x9b" "31m";
    static const char nul[] = "abc\0def";
    static const MigTestConfig cfg = { .ram_mib = HOSTILE_RAM_MIB };
    g_autofree char *desc1 = NULL;
    g_autofree char *desc2 = NULL;
    g_autofree char *err = NULL;
    GwVM *src;

    if (!mig_require(false)) {
        return;
    }
    src = mig_start_source(&cfg, "src");
    mig_set_caps(src, "events", true);

    desc1 = migrate_to_rp_error(src, evil, sizeof(evil) - 1);
    g_test_message("error-desc: %s", desc1);
    g_assert_cmpstr(desc1, ==, "The destination refused the migration: \\x1b[2J\\x07gone"
                    "\\x0asecond line \\xc2\\x9b31m");

    desc2 = migrate_to_rp_error(src, nul, sizeof(nul) - 1);
    g_test_message("error-desc: %s", desc2);
    g_assert_cmpstr(desc2, ==, "The destination refused the migration: Malformed ERROR "
                    "message on the return path (NUL byte in its text)");

    /* One line per failure on stderr, the same clean text. */
    err = gw_vm_stderr(src);
    g_test_message("source stderr: %s", err);
    {
        g_autofree char *want = g_strdup_printf("godwit: migration failed: %s\n"
                                                "godwit: migration failed: %s\n",
                                                desc1, desc2);
        g_assert_cmpstr(err, ==, want);
    }
    /* The source guest never stopped and still runs. */
    g_assert_null(gw_qmp_poll_event(src, "STOP", 200));
    {
        g_autofree char *st = gw_vm_query_status(src);
        g_assert_cmpstr(st, ==, "running");
    }
    gw_vm_free(src);
}

/* ---------------------------------------------------------------------- */
/* The monitor polled hard while a migration ends */

/*
 * A management tool polls query-migrate on both sides while the migration
 * threads finish and free their streams (without the BQL): the replies
 * must stay well-formed and the processes alive. Run under ASan (build-san)
 * a read of freed memory kills the VM and fails the test.
 */
static void test_query_while_ending(void)
{
    static const MigTestConfig cfg = { .ram_mib = HOSTILE_RAM_MIB, .tick_append = "rate=128" };

    if (!mig_require(false)) {
        return;
    }
    for (int round = 0; round < 4; round++) {
        MigTest *t = g_new0(MigTest, 1);
        guint queries = 0;
        bool src_done = false, dst_done = false;

        t->cfg = &cfg;
        t->fds[0] = t->fds[1] = -1;
        mig_start_dest(t, "dst", true);
        t->src = mig_start_source(&cfg, "src");
        mig_configure(t);
        mig_migrate(t);
        while (!src_done || !dst_done) {
            g_autoptr(JsonNode) qs = mig_query(t->src);
            g_autoptr(JsonNode) qd = mig_query(t->dst);
            const char *ss = json_object_get_string_member(json_node_get_object(qs), "status");
            JsonObject *od = json_node_get_object(qd);
            const char *ds = json_object_has_member(od, "status") ?
                             json_object_get_string_member(od, "status") : "none";

            queries += 2;
            g_assert_cmpstr(ss, !=, "failed");
            g_assert_cmpstr(ds, !=, "failed");
            src_done = !strcmp(ss, "completed");
            dst_done = !strcmp(ds, "completed");
            if (src_done) {
                /* Once completed the statistics are final and whole. */
                g_assert_cmpfloat(mig_num(qs, "ram.transferred"), >=, HOSTILE_RAM_MIB << 20);
                g_assert_cmpfloat(mig_num(qs, "ram.remaining"), ==, 0);
            }
        }
        g_test_message("round %d: %u queries", round, queries);
        g_assert_true(gw_vm_running(t->src));
        g_assert_true(gw_vm_running(t->dst));
        mig_check_same_memory(t->src, t->dst, HOSTILE_RAM_MIB, &t->src_mb);
        mig_test_free(t);
    }
}

int main(int argc, char **argv)
{
    int r;

    g_test_init(&argc, &argv, NULL);
    mig_add_test("/migration/hostile/listen-outside-package",
                 test_listen_outside_package, false);
    mig_add_test("/migration/hostile/package-without-run", test_package_without_run, false);
    mig_add_test("/migration/hostile/ram-in-package", test_ram_in_package, false);
    mig_add_test("/migration/hostile/package-without-listen", test_package_without_listen,
                 false);
    mig_add_test("/migration/hostile/device-after-switch", test_device_after_switch, false);
    mig_add_test("/migration/hostile/two-loaders-fail", test_two_loaders_fail, false);
    mig_add_test("/migration/hostile/no-ram", test_no_ram, false);
    mig_add_test("/migration/hostile/ram-not-ended", test_ram_not_ended, false);
    mig_add_test("/migration/hostile/rp-error-text", test_rp_error_text, false);
    mig_add_test("/migration/hostile/query-while-ending", test_query_while_ending, false);
    r = g_test_run();
    mig_stream_file_free(captured);
    return r;
}
