/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of the migration state machines (source.c, incoming.c,
 * migration-qmp.c) on a machine whose RAM is plain
 * memory (migration-harness.h): the real source thread, return-path
 * reader and QMP commands, against a destination played by the test on a
 * real unix socket. The peer parses the stream with the same decoders a
 * destination uses, answers PINGs, and may send hostile return-path
 * messages. Each test runs in a subprocess (one migration state per
 * process, as in godwit).
 */
#include "qemu/osdep.h"
#include "migration-harness.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <glib/gstdio.h>

#include "migration/migration.h"
#include "migration/misc.h"
#include "migration/ram-format.h"
#include "migration/savevm.h"
#include "monitor/qmp.h"
#include "qapi/qapi-commands.h"
#include "qemu/bql.h"
#include "sysemu/runstate.h"

#define MIB (1024 * 1024)
#define WAIT_MS 30000

#define SUBPROCESS(body) do {                                             \
        if (g_test_subprocess()) {                                        \
            body;                                                         \
            return;                                                       \
        }                                                                 \
        g_test_trap_subprocess(NULL, 240 * G_USEC_PER_SEC,                \
                               G_TEST_SUBPROCESS_INHERIT_STDOUT |         \
                               G_TEST_SUBPROCESS_INHERIT_STDERR);         \
        g_test_trap_assert_passed();                                      \
    } while (0)

/* ---------------------------------------------------------------------- */
/* The destination, played by the test */

typedef struct Peer {
    char *dir, *path;
    int lfd;
    GThread *thread;
    /* Sent on the return path right after PONG 1 (hostile messages), or NULL. */
    const guint8 *inject;
    size_t inject_len;
    /* At the postcopy package: answer ERROR with this reason and hang up, or NULL. */
    const char *error_at_package;
    /* Filled by the peer thread. */
    bool got_eof;             /* the whole stream arrived: SHUT(0) was sent */
    uint64_t pages;           /* target pages received (data and zero) */
    uint64_t bytes;           /* stream bytes received up to EOF */
    char *failure;            /* why the peer stopped reading early */
} Peer;

static void peer_send(QIOChannel *ch, const MigRpMsg *m)
{
    uint8_t buf[MIG_RP_HDR_LEN + MIG_RP_MAX_LEN];
    size_t n = mig_rp_encode(m, buf);

    g_assert_cmpuint(n, >, 0);
    qio_channel_write_all(ch, buf, n, NULL);
}

/* Skip one RAM payload, counting the pages. */
static bool peer_ram(Peer *p, MigStream *s, RamReader *rr, GError **errp)
{
    RamRecord rec;

    for (;;) {
        if (!ram_get_record(s, rr, &rec, errp)) {
            return false;
        }
        if (rec.type == RAM_RECORD_EOS) {
            return true;
        }
        if (rec.type == RAM_RECORD_MEM_SIZE) {
            g_autofree MigRamBlockInfo *b = NULL;
            unsigned n;
            if (!ram_get_mem_size_blocks(s, rec.offset, &b, &n, errp)) {
                return false;
            }
            continue;
        }
        p->pages += rec.npages;
        if (rec.type == RAM_RECORD_PAGES) {
            stream_skip(s, (size_t)rec.npages * GW_PAGE_SIZE);
        }
    }
}

static bool peer_read(Peer *p, MigStream *s, QIOChannel *ch, GError **errp)
{
    RamReader rr;
    char name[256];

    ram_reader_reset(&rr);
    if (stream_get_be32(s) != MIG_MAGIC) {
        error_setg(errp, "bad magic");
        return false;
    }
    stream_get_be32(s);
    stream_get_u8(s);
    stream_skip(s, stream_get_be32(s));
    for (;;) {
        uint8_t type = stream_get_u8(s);
        if (!stream_check(s, errp)) {
            return false;
        }
        switch (type) {
        case MIG_REC_EOF: {
            MigRpMsg shut = { .type = MIG_RP_MSG_SHUT, .value = 0 };
            p->got_eof = true;
            p->bytes = stream_bytes(s);
            peer_send(ch, &shut);
            return true;
        }
        case MIG_REC_COMMAND: {
            uint16_t cmd = stream_get_be16(s);
            uint16_t len = stream_get_be16(s);
            const uint8_t *pl = stream_get_ptr(s, len);
            if (!stream_check(s, errp)) {
                return false;
            }
            if (cmd == MIG_CMD_PING) {
                uint32_t be;
                memcpy(&be, pl, 4);
                MigRpMsg pong = { .type = MIG_RP_MSG_PONG, .value = GUINT32_FROM_BE(be) };
                peer_send(ch, &pong);
                if (pong.value == 1 && p->inject) {
                    qio_channel_write_all(ch, p->inject, p->inject_len, NULL);
                }
            } else if (cmd == MIG_CMD_PACKAGED) {
                uint32_t be;
                memcpy(&be, pl, 4);
                if (p->error_at_package) {
                    /* A destination whose device load failed before RUN. */
                    MigRpMsg m = { .type = MIG_RP_MSG_ERROR };
                    g_strlcpy(m.block, p->error_at_package, sizeof(m.block));
                    peer_send(ch, &m);
                    qio_channel_shutdown(ch, QIO_CHANNEL_SHUTDOWN_BOTH);
                    error_setg(errp, "refused the package");
                    return false;
                }
                stream_skip(s, GUINT32_FROM_BE(be));
            }
            break;
        }
        case MIG_REC_SECTION_START:
        case MIG_REC_SECTION_PART:
        case MIG_REC_SECTION_END:
            stream_get_be32(s);
            if (type == MIG_REC_SECTION_START) {
                stream_get_cstr(s, name);
                stream_get_be32(s);
                stream_get_be32(s);
            }
            if (!peer_ram(p, s, &rr, errp)) {
                return false;
            }
            stream_skip(s, 5);
            break;
        case MIG_REC_SECTION_FULL:
            stream_get_be32(s);
            stream_get_cstr(s, name);
            stream_get_be32(s);
            stream_get_be32(s);
            stream_skip(s, stream_get_be32(s) + 4u + 5u);
            break;
        default:
            error_setg(errp, "record type 0x%02x", type);
            return false;
        }
    }
}

static gpointer peer_thread(gpointer opaque)
{
    Peer *p = opaque;
    g_autoptr(GError) err = NULL;
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    QIOChannel *ch = qio_channel_new_fd(fd, QIO_CHANNEL_SOCKET, "peer", NULL);
    MigStream *s = stream_new_reader(ch);
    if (!peer_read(p, s, ch, &err)) {
        p->failure = g_strdup(err->message);
    }
    stream_free(s);
    qio_channel_unref(ch);
    return NULL;
}

static Peer *peer_new(void)
{
    Peer *p = g_new0(Peer, 1);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    p->dir = g_dir_make_tmp("gw-test-mig-XXXXXX", NULL);
    p->path = g_build_filename(p->dir, "mig.sock", NULL);
    strcpy(sa.sun_path, p->path);
    p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(p->lfd, 1), ==, 0);
    return p;
}

static void peer_start(Peer *p)
{
    p->thread = g_thread_new("test-peer", peer_thread, p);
}

static void peer_free(Peer *p)
{
    if (p->thread) {
        g_thread_join(p->thread);
    }
    close(p->lfd);
    g_unlink(p->path);
    g_rmdir(p->dir);
    g_free(p->path);
    g_free(p->dir);
    g_free(p->failure);
    g_free(p);
}

/* ---------------------------------------------------------------------- */
/* Driving the source as QMP does (the test thread is the main thread) */

static JsonObject *json_args(const char *json)
{
    g_autoptr(JsonParser) jp = json_parser_new();

    g_assert_true(json_parser_load_from_data(jp, json, -1, NULL));
    return json_object_ref(json_node_get_object(json_parser_get_root(jp)));
}

static void qmp_ok(JsonNode *(*fn)(JsonObject *, GError **), const char *json)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) a = json_args(json);
    JsonNode *r = fn(a, &err);

    g_assert_no_error(err);
    if (r) {
        json_node_unref(r);
    }
}

static void set_caps(const char *caps)
{
    g_auto(GStrv) names = g_strsplit(caps, ",", -1);
    GString *json = g_string_new("{\"capabilities\": [");

    for (int i = 0; names[i]; i++) {
        g_string_append_printf(json, "%s{\"capability\": \"%s\", \"state\": true}",
                               i ? ", " : "", names[i]);
    }
    g_string_append(json, "]}");
    qmp_ok(qmp_migrate_set_capabilities, json->str);
    g_string_free(json, TRUE);
}

static void migrate_to(Peer *p)
{
    g_autofree char *args = g_strdup_printf("{\"uri\": \"unix:%s\"}", p->path);

    peer_start(p);
    qmp_ok(qmp_migrate, args);
}

/* query-migrate's "return" as a JSON object (unref). */
static JsonObject *query_migrate(void)
{
    g_autoptr(GError) err = NULL;
    JsonNode *n = qmp_query_migrate(NULL, &err);
    JsonObject *o;

    g_assert_no_error(err);
    o = json_object_ref(json_node_get_object(n));
    json_node_unref(n);
    return o;
}

/* Wait for the source's MIGRATION event with @status; fail on another end state. */
static void wait_status(const char *status)
{
    g_autoptr(JsonObject) ev = harness_wait_event("MIGRATION", "status", status, WAIT_MS);

    if (!ev) {
        g_autoptr(JsonObject) q = query_migrate();
        g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), q);
        g_autofree char *text = json_to_string(n, false);
        g_error("no MIGRATION %s within %d ms; query-migrate: %s", status, WAIT_MS, text);
    }
}

/* ---------------------------------------------------------------------- */
/* The destination: the incoming thread */

/* Connect to the destination's unix socket at @path. */
static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    strcpy(sa.sun_path, path);
    for (int i = 0; i < 500; i++) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            return fd;
        }
        g_usleep(10000);
    }
    g_error("cannot connect to %s", path);
}

/*
 * A source whose CONFIG does not match: the incoming thread refuses it
 * before writing anything, tells the source why in an ERROR message, and
 * the main loop reports it once and asks the process to exit with 1.
 */
static void incoming_refusal_body(void)
{
    g_autofree char *dir = g_dir_make_tmp("gw-test-mig-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "mig.sock", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(GError) err = NULL;
    g_autoptr(MigConfig) c = mig_config_new();
    MigCpuidEntry e = { .function = 1, .eax = 0x806f0 };
    guint8 rp[MIG_RP_HDR_LEN + MIG_RP_MAX_LEN];
    size_t len;

    harness_init(4 * MIB, GW_PAGE_SIZE, 1);
    runstate_set(RUN_STATE_INMIGRATE);
    set_caps("events");
    g_assert_true(migration_incoming_from_cmdline(uri, &err));
    g_autoptr(JsonObject) setup = harness_wait_event("MIGRATION", "status", "setup", WAIT_MS);
    g_assert_nonnull(setup);

    /* What a source with twice the RAM would send. */
    g_strlcpy(c->machine, "pc", sizeof(c->machine));
    c->vcpus = 1;
    c->target_page_size = GW_PAGE_SIZE;
    mig_config_add_block(c, "pc.ram", 8 * MIB, GW_PAGE_SIZE);
    mig_config_add_cpuid(c, &e);
    MigStream *w = stream_new_mem_writer();
    savevm_put_header(w);
    savevm_put_config(w, c);
    savevm_send_open_return_path(w);
    savevm_send_ping(w, 1);
    const uint8_t *d = stream_mem_data(w, &len);
    int fd = connect_unix(path);
    g_assert_cmpint(write(fd, d, len), ==, (ssize_t)len);
    stream_free(w);

    g_autoptr(JsonObject) failed = harness_wait_event("MIGRATION", "status", "failed", WAIT_MS);
    g_assert_nonnull(failed);
    g_assert_cmpint(harness_exit_status(), ==, 1);
    /* The one message on the return path: ERROR with the reason (no PONG: CONFIG came first). */
    ssize_t n = read(fd, rp, sizeof(rp));
    g_assert_cmpint(n, >, MIG_RP_HDR_LEN);
    MigRpMsg m;
    g_assert_true(mig_rp_decode((unsigned)(rp[0] << 8 | rp[1]), rp + MIG_RP_HDR_LEN,
                                (size_t)(rp[2] << 8 | rp[3]), &m, &err));
    g_assert_cmpint(m.type, ==, MIG_RP_MSG_ERROR);
    g_assert_cmpstr(m.block, ==, "RAM size mismatch: source has 8388608 bytes, destination "
                    "4194304");
    g_autoptr(JsonObject) q = query_migrate();
    g_assert_cmpstr(json_object_get_string_member(q, "status"), ==, "failed");
    g_assert_cmpstr(json_object_get_string_member(q, "error-desc"), ==, m.block);
    /* Nothing was loaded: RAM is as it started, untouched. */
    unsigned char vec[1024];
    g_assert_cmpint(mincore(current_machine->ram->host, 4 * MIB, vec), ==, 0);
    for (unsigned i = 0; i < 1024; i++) {
        g_assert_cmpuint(vec[i] & 1, ==, 0);
    }
    close(fd);
    g_unlink(path);
    g_rmdir(dir);
}

static void test_incoming_refusal(void)
{
    SUBPROCESS(incoming_refusal_body());
}

/*
 * A destination that fails while loading the postcopy package never ran
 * the guest and says ERROR: the source does not pause (nobody else has the
 * guest), it takes the guest back and the migration fails with the reason.
 */
static void dest_fails_before_run_body(void)
{
    harness_init(4 * MIB, GW_PAGE_SIZE, 1);
    runstate_set(RUN_STATE_RUNNING);
    set_caps("events,postcopy-ram");
    Peer *p = peer_new();
    p->error_at_package = "device 'serial' failed to load";
    migrate_to(p);
    qmp_ok(qmp_migrate_start_postcopy, "{}");
    wait_status("failed");
    g_autoptr(JsonObject) q = query_migrate();
    const char *desc = json_object_get_string_member(q, "error-desc");
    g_test_message("error-desc: %s", desc);
    g_assert_nonnull(strstr(desc, "device 'serial' failed to load"));
    g_assert_cmpint(runstate_get(), ==, RUN_STATE_RUNNING);
    g_assert_false(harness_dirty_logging());
    g_assert_nonnull(p->failure);
    peer_free(p);
}

static void test_dest_fails_before_run(void)
{
    SUBPROCESS(dest_fails_before_run_body());
}

/* ---------------------------------------------------------------------- */
/* The return path: hostile messages from the destination */

typedef struct RpCase {
    const char *what;
    const guint8 *bytes;
    size_t len;
    const char *error;        /* error-desc must contain this */
} RpCase;

/*
 * The source's return-path reader takes whatever the destination writes:
 * malformed, unknown, oversized and out-of-place messages end the
 * migration with their reason in error-desc, the source guest keeps
 * running, and the next (clean) migration completes.
 */
static void return_path_body(void)
{
    static const guint8 pong_short[] = { 0, 2, 0, 3, 0, 0, 1 };
    static const guint8 unknown[] = { 0, 0x99, 0, 0 };
    static const guint8 too_long[] = { 0, 2, 0x02, 0x58 };
    static const guint8 req_early[] = { 0, 3, 0, 0x13, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x10, 0,
                                        6, 'p', 'c', '.', 'r', 'a', 'm' };
    static const guint8 req_no_name[] = { 0, 4, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0,
                                          0, 0, 0x10, 0 };
    static const guint8 resume_ack[] = { 0, 6, 0, 4, 0, 0, 0, 1 };
    static const guint8 shut_bad[] = { 0, 1, 0, 4, 0, 0, 0, 7 };
    static const RpCase cases[] = {
        { "short PONG", pong_short, sizeof(pong_short),
          "Received PONG message with bad length 3 on the return path" },
        { "unknown type", unknown, sizeof(unknown),
          "Received invalid message 0x0099 on the return path" },
        { "600 bytes", too_long, sizeof(too_long),
          "return path message of 600 bytes is too long" },
        { "request before the switch", req_early, sizeof(req_early),
          "page request before the postcopy switch" },
        { "request without a name", req_no_name, sizeof(req_no_name),
          "page request without a RAM block name" },
        { "RESUME_ACK", resume_ack, sizeof(resume_ack),
          "unexpected return path message RESUME_ACK" },
        { "SHUT(7)", shut_bad, sizeof(shut_bad),
          "The destination failed to load the migration (status 7)" },
    };

    harness_init(4 * MIB, GW_PAGE_SIZE, 1);
    runstate_set(RUN_STATE_RUNNING);
    set_caps("events");
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        Peer *p = peer_new();
        p->inject = cases[i].bytes;
        p->inject_len = cases[i].len;
        migrate_to(p);
        wait_status("failed");
        g_autoptr(JsonObject) q = query_migrate();
        const char *desc = json_object_get_string_member(q, "error-desc");
        g_test_message("%s: %s", cases[i].what, desc);
        if (!strstr(desc, cases[i].error)) {
            g_error("%s: error-desc '%s' lacks '%s'", cases[i].what, desc, cases[i].error);
        }
        /* The source takes its guest back as it was. */
        g_assert_cmpint(runstate_get(), ==, RUN_STATE_RUNNING);
        g_assert_false(harness_dirty_logging());
        peer_free(p);
    }
    Peer *p = peer_new();
    migrate_to(p);
    wait_status("completed");
    g_assert_true(p->got_eof);
    g_assert_cmpuint(p->pages, ==, 1024);
    peer_free(p);
}

static void test_return_path(void)
{
    SUBPROCESS(return_path_body());
}

/* ---------------------------------------------------------------------- */
/* Rate limits at the edges of their range */

/*
 * max-bandwidth and max-postcopy-bandwidth accept up to INT64_MAX bytes/s.
 * A window's budget (bandwidth x 100 ms) used to wrap: at 2^62 it was 0,
 * so the budget read as spent before the first byte and the migration sat
 * in 'active' for ever. Every edge must move all 4096 pages and complete.
 */
static void bandwidth_edges_body(void)
{
    static const char *const limits[] = {
        "4611686018427387904",      /* 2^62 */
        "9223372036854775807",      /* INT64_MAX */
        "184467440737095517",       /* the smallest that wrapped (to 84 bytes a window) */
        "1000000000",               /* an ordinary 1 GB/s */
    };

    harness_init(16 * MIB, GW_PAGE_SIZE, 1);
    runstate_set(RUN_STATE_RUNNING);
    set_caps("events");
    for (size_t i = 0; i < G_N_ELEMENTS(limits); i++) {
        g_autofree char *params = g_strdup_printf("{\"max-bandwidth\": %s}", limits[i]);
        Peer *p = peer_new();

        qmp_ok(qmp_migrate_set_parameters, params);
        migrate_to(p);
        wait_status("completed");
        g_assert_null(p->failure);
        g_assert_true(p->got_eof);
        g_assert_cmpuint(p->pages, ==, 4096);
        peer_free(p);
        runstate_set(RUN_STATE_RUNNING);      /* as if the user ran cont */
    }
    /* The same after a postcopy switch, for max-postcopy-bandwidth. */
    set_caps("events,postcopy-ram");
    qmp_ok(qmp_migrate_set_parameters, "{\"max-bandwidth\": 0, "
           "\"max-postcopy-bandwidth\": 4611686018427387904}");
    Peer *p = peer_new();
    migrate_to(p);
    qmp_ok(qmp_migrate_start_postcopy, "{}");
    wait_status("completed");
    g_assert_null(p->failure);
    g_assert_true(p->got_eof);
    g_assert_cmpuint(p->pages, ==, 4096);
    peer_free(p);
}

static void test_bandwidth_edges(void)
{
    SUBPROCESS(bandwidth_edges_body());
}

/* ---------------------------------------------------------------------- */
/* query-migrate while a migration ends */

static const char *obj_status(JsonObject *q)
{
    return json_object_get_string_member(q, "status");
}

/*
 * A management tool polls query-migrate (main thread, BQL held) while the
 * migration thread finishes, which frees its stream without the BQL. The
 * query must never read the stream: run many migrations to their end under
 * a stream of queries (with ASan, in build-san, a read of freed memory
 * fails the test), and the final "transferred" must be exactly the bytes
 * the destination received.
 */
static void query_while_ending_body(void)
{
    harness_init(4 * MIB, GW_PAGE_SIZE, 1);
    runstate_set(RUN_STATE_RUNNING);
    set_caps("events");
    for (int i = 0; i < 150; i++) {
        Peer *p = peer_new();
        guint64 queries = 0;
        gint64 prev = 0;
        g_autoptr(JsonObject) last = NULL;

        migrate_to(p);
        for (;;) {
            g_clear_pointer(&last, json_object_unref);
            last = query_migrate();
            queries++;
            if (json_object_has_member(last, "ram")) {
                /* Bytes on the wire only grow, and never past RAM plus a margin. */
                gint64 t = json_object_get_int_member(
                    json_object_get_object_member(last, "ram"), "transferred");
                g_assert_cmpint(t, >=, prev);
                g_assert_cmpint(t, <=, 8 * MIB);
                prev = t;
            }
            if (!strcmp(obj_status(last), "completed")) {
                break;
            }
            g_assert_cmpstr(obj_status(last), !=, "failed");
            /* Between two commands the main loop lets others take the BQL. */
            bql_unlock();
            g_thread_yield();
            bql_lock();
        }
        g_assert_cmpuint(queries, >, 0);
        if (p->thread) {
            g_thread_join(p->thread);
            p->thread = NULL;
        }
        g_assert_true(p->got_eof);
        g_assert_cmpuint(p->pages, ==, 1024);
        JsonObject *ram = json_object_get_object_member(last, "ram");
        g_assert_cmpint(json_object_get_int_member(ram, "transferred"), ==, (gint64)p->bytes);
        peer_free(p);
        runstate_set(RUN_STATE_RUNNING);
    }
}

static void test_query_while_ending(void)
{
    SUBPROCESS(query_while_ending_body());
}

/* ---------------------------------------------------------------------- */
/* QMP shape */

static void qmp_err(JsonNode *(*fn)(JsonObject *, GError **), const char *json, const char *msg)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) a = json_args(json);
    JsonNode *r = fn(a, &err);

    g_assert_null(r);
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, msg);
}

static JsonObject *query_params(void)
{
    g_autoptr(GError) err = NULL;
    JsonNode *n = qmp_query_migrate_parameters(NULL, &err);
    JsonObject *o = json_object_ref(json_node_get_object(n));

    g_assert_no_error(err);
    json_node_unref(n);
    return o;
}

/*
 * query-migrate-parameters returns what QEMU 7.2 returns (libvirt looks
 * for tls-creds to learn whether TLS exists), with QEMU's defaults, plus
 * godwit's own; the compatibility members are accepted within QEMU's
 * ranges, and what godwit cannot do (TLS, block migration) is refused
 * rather than stored.
 */
static void parameters_body(void)
{
    /* QEMU 7.2's query-migrate-parameters of a fresh VM, godwit's max-bandwidth. */
    static const char want[] =
        "{\"announce-initial\":50,\"announce-max\":550,\"announce-rounds\":5,"
        "\"announce-step\":100,\"block-incremental\":false,\"compress-level\":1,"
        "\"compress-threads\":8,\"compress-wait-thread\":true,\"cpu-throttle-increment\":10,"
        "\"cpu-throttle-initial\":20,\"cpu-throttle-tailslow\":false,"
        "\"decompress-threads\":2,\"downtime-limit\":300,\"max-bandwidth\":0,"
        "\"max-cpu-throttle\":99,\"max-postcopy-bandwidth\":0,\"multifd-channels\":2,"
        "\"multifd-compression\":\"none\",\"multifd-zlib-level\":1,"
        "\"multifd-zstd-level\":1,\"throttle-trigger-threshold\":50,\"tls-authz\":\"\","
        "\"tls-creds\":\"\",\"tls-hostname\":\"\",\"x-checkpoint-delay\":20000,"
        "\"x-postcopy-after-passes\":0,\"xbzrle-cache-size\":67108864}";
    g_autoptr(JsonObject) q = NULL;

    harness_init(MIB, GW_PAGE_SIZE, 1);
    q = query_params();
    {
        /* Members sorted, so the comparison is of the whole shape. */
        GList *names = g_list_sort(json_object_get_members(q), (GCompareFunc)strcmp);
        g_autoptr(JsonObject) sorted = json_object_new();
        for (GList *l = names; l; l = l->next) {
            json_object_set_member(sorted, l->data,
                                   json_node_copy(json_object_get_member(q, l->data)));
        }
        g_list_free(names);
        g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), sorted);
        g_autofree char *got = json_to_string(n, false);
        g_assert_cmpstr(got, ==, want);
    }

    /* "No TLS" in both of QEMU's spellings is fine; a credential is not. */
    qmp_ok(qmp_migrate_set_parameters, "{\"tls-creds\": \"\", \"tls-hostname\": null, "
           "\"tls-authz\": \"\", \"block-incremental\": false}");
    qmp_err(qmp_migrate_set_parameters, "{\"tls-creds\": \"tls0\"}",
            "Parameter 'tls-creds': TLS is not supported by godwit (only an empty value is "
            "accepted)");
    qmp_err(qmp_migrate_set_parameters, "{\"tls-authz\": \"authz0\"}",
            "Parameter 'tls-authz': TLS is not supported by godwit (only an empty value is "
            "accepted)");
    qmp_err(qmp_migrate_set_parameters, "{\"block-incremental\": true}",
            "Block migration is not supported by godwit");
    qmp_err(qmp_migrate_set_parameters, "{\"compress-level\": 10}",
            "Parameter 'compress_level' expects an integer in the range of 0 to 9");
    qmp_err(qmp_migrate_set_parameters, "{\"multifd-zstd-level\": 21}",
            "Parameter 'multifd_zstd_level' expects an integer in the range of 0 to 20");
    /* A refused call changes nothing, not even its valid members. */
    qmp_err(qmp_migrate_set_parameters, "{\"compress-level\": 3, \"tls-creds\": \"x\"}",
            "Parameter 'tls-creds': TLS is not supported by godwit (only an empty value is "
            "accepted)");
    g_clear_pointer(&q, json_object_unref);
    q = query_params();
    g_assert_cmpint(json_object_get_int_member(q, "compress-level"), ==, 1);

    qmp_ok(qmp_migrate_set_parameters, "{\"compress-level\": 9, \"compress-threads\": 255, "
           "\"compress-wait-thread\": false, \"decompress-threads\": 1, "
           "\"x-checkpoint-delay\": 4294967295, \"multifd-compression\": \"zstd\", "
           "\"multifd-zlib-level\": 0, \"multifd-zstd-level\": 20}");
    g_clear_pointer(&q, json_object_unref);
    q = query_params();
    g_assert_cmpint(json_object_get_int_member(q, "compress-level"), ==, 9);
    g_assert_cmpint(json_object_get_int_member(q, "compress-threads"), ==, 255);
    g_assert_false(json_object_get_boolean_member(q, "compress-wait-thread"));
    g_assert_cmpint(json_object_get_int_member(q, "decompress-threads"), ==, 1);
    g_assert_cmpint(json_object_get_int_member(q, "x-checkpoint-delay"), ==, 4294967295LL);
    g_assert_cmpstr(json_object_get_string_member(q, "multifd-compression"), ==, "zstd");
    g_assert_cmpint(json_object_get_int_member(q, "multifd-zlib-level"), ==, 0);
    g_assert_cmpint(json_object_get_int_member(q, "multifd-zstd-level"), ==, 20);
    g_assert_cmpstr(json_object_get_string_member(q, "tls-creds"), ==, "");
}

static void test_parameters(void)
{
    SUBPROCESS(parameters_body());
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/destination/refusal", test_incoming_refusal);
    g_test_add_func("/migration/source/return-path", test_return_path);
    g_test_add_func("/migration/source/dest-fails-before-run", test_dest_fails_before_run);
    g_test_add_func("/migration/source/bandwidth-edges", test_bandwidth_edges);
    g_test_add_func("/migration/source/query-while-ending", test_query_while_ending);
    g_test_add_func("/migration/qmp/parameters", test_parameters);
    return g_test_run();
}
