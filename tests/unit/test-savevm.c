/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for migration/savevm.c and migration/format.c: golden bytes
 * of every record, command and return-path message, a full save/load
 * round trip through the registry, the postcopy package, the CONFIG check,
 * and hostile input (every truncation, every single-byte corruption,
 * oversized lengths, unknown and missing records).
 */
#include "qemu/osdep.h"

#include "migration/ram-format.h"
#include "migration/savevm.h"

/* --- test handlers --- */

typedef struct Dev {
    const char *payload;
    GString *loaded;        /* what load() received */
    uint32_t loaded_version;
    int post_load;
} Dev;

static bool dev_save(void *opaque, GByteArray *out, GError **errp)
{
    Dev *d = opaque;

    g_byte_array_append(out, (const guint8 *)d->payload, strlen(d->payload));
    return true;
}

static bool dev_load(void *opaque, const uint8_t *buf, size_t len,
                     uint32_t version, GError **errp)
{
    Dev *d = opaque;

    if (len > 64) {
        error_setg(errp, "too long");
        return false;
    }
    g_string_truncate(d->loaded, 0);
    g_string_append_len(d->loaded, (const char *)buf, len);
    d->loaded_version = version;
    return true;
}

static void dev_post_load(void *opaque)
{
    ((Dev *)opaque)->post_load++;
}

typedef struct Live {
    int iterations;
    GString *log;
    bool setup_called;
    int cleanup_called;
} Live;

static void live_put(MigStream *s, const char *what)
{
    stream_put_be32(s, strlen(what));
    stream_put_buffer(s, what, strlen(what));
}

static bool live_save_setup(MigStream *s, void *opaque, GError **errp)
{
    live_put(s, "SETUP");
    return true;
}

static int live_save_iterate(MigStream *s, void *opaque, GError **errp)
{
    Live *l = opaque;

    live_put(s, l->iterations++ ? "P2" : "P1");
    return l->iterations >= 2;
}

static bool live_save_complete(MigStream *s, void *opaque, GError **errp)
{
    live_put(s, "END");
    return true;
}

static uint64_t live_pending(void *opaque)
{
    return 4096;
}

static bool live_load_setup(void *opaque, GError **errp)
{
    ((Live *)opaque)->setup_called = true;
    return true;
}

static bool live_load(MigStream *s, void *opaque, uint32_t version,
                      MigRecordType type, GError **errp)
{
    Live *l = opaque;
    char buf[16];
    uint32_t n = stream_get_be32(s);

    if (!stream_check(s, errp)) {
        return false;
    }
    if (n >= sizeof(buf)) {
        error_setg(errp, "live chunk too long");
        return false;
    }
    stream_get_buffer(s, buf, n);
    buf[n] = '\0';
    g_string_append_printf(l->log, "%s:%s/v%" PRIu32 ";",
                           mig_record_name(type), buf, version);
    return stream_check(s, errp);
}

static void live_load_cleanup(void *opaque)
{
    ((Live *)opaque)->cleanup_called++;
}

static const SaveLiveOps live_ops = {
    .save_setup = live_save_setup,
    .save_iterate = live_save_iterate,
    .save_complete = live_save_complete,
    .save_pending = live_pending,
    .load_setup = live_load_setup,
    .load = live_load,
    .load_cleanup = live_load_cleanup,
};

static Dev dev_cpu0, dev_cpu1, dev_irq;
static Live live;

/* Registers (in a shuffled order): live "ram", cpu/0, cpu/1, irqchip. */
static void setup_registry(void)
{
    savevm_unregister_all();
    dev_cpu0 = (Dev){ .payload = "cpu0-regs", .loaded = g_string_new("") };
    dev_cpu1 = (Dev){ .payload = "cpu1-regs", .loaded = g_string_new("") };
    dev_irq = (Dev){ .payload = "ioapic", .loaded = g_string_new("") };
    live = (Live){ .log = g_string_new("") };

    register_savelive("ram", 0, 1, &live_ops, &live);
    SaveStateHandler h = {
        .idstr = "cpu", .instance_id = 0, .version = 1,
        .priority = SAVESTATE_PRIO_CPU, .save = dev_save, .load = dev_load,
        .post_load_all = dev_post_load, .opaque = &dev_cpu0,
    };
    register_savestate(&h);
    h.instance_id = 1;
    h.opaque = &dev_cpu1;
    register_savestate(&h);
    h = (SaveStateHandler){
        .idstr = "irqchip", .instance_id = 0, .version = 2,
        .priority = SAVESTATE_PRIO_IRQCHIP, .save = dev_save,
        .load = dev_load, .opaque = &dev_irq,
    };
    register_savestate(&h);
}

static void teardown_registry(void)
{
    g_string_free(dev_cpu0.loaded, TRUE);
    g_string_free(dev_cpu1.loaded, TRUE);
    g_string_free(dev_irq.loaded, TRUE);
    g_string_free(live.log, TRUE);
    savevm_unregister_all();
}

static MigConfig *test_config(void)
{
    MigConfig *c = mig_config_new();
    MigCpuidEntry e = { 1, 0, 0x11, 0x22, 0x33, 0x44 };

    g_strlcpy(c->machine, "gw", sizeof(c->machine));
    c->vcpus = 1;
    c->target_page_size = 4096;
    mig_config_add_block(c, "ram", 0x10000, 0x1000);
    mig_config_add_cpuid(c, &e);
    return c;
}

static GBytes *take_mem(MigStream *s)
{
    size_t len;
    const uint8_t *d = stream_mem_data(s, &len);
    GBytes *b = g_bytes_new(d, len);

    stream_free(s);
    return b;
}

static void assert_bytes(GBytes *b, const uint8_t *exp, size_t len)
{
    gsize n;
    const uint8_t *d = g_bytes_get_data(b, &n);

    g_assert_cmpmem(d, n, exp, len);
}

/* --- golden bytes --- */

static void test_golden_header_config(void)
{
    static const uint8_t exp[] = {
        'G', 'D', 'W', 'T', 0, 0, 0, 1,
        0x07, 0, 0, 0, 0x43,
        0, 0, 0, 1,                         /* version */
        2, 'g', 'w',                        /* machine */
        0, 0, 0, 1,                         /* vCPUs */
        0, 0, 0x10, 0,                      /* target page size */
        0, 0, 0, 1,                         /* blocks */
        3, 'r', 'a', 'm', 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0,
        0, 0, 0, 1,                         /* CPUID entries */
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x11, 0, 0, 0, 0x22,
        0, 0, 0, 0x33, 0, 0, 0, 0x44,
        0x00,                               /* EOF */
    };
    MigStream *s = stream_new_mem_writer();
    g_autoptr(MigConfig) c = NULL;

    c = test_config();
    savevm_put_header(s);
    savevm_put_config(s, c);
    savevm_put_eof(s);
    g_autoptr(GBytes) b = take_mem(s);
    assert_bytes(b, exp, sizeof(exp));
}

static void test_golden_sections(void)
{
    static const uint8_t exp[] = {
        0x01, 0, 0, 0, 5, 3, 'r', 'a', 'm', 0, 0, 0, 0, 0, 0, 0, 1, 0xaa,
        0x7e, 0, 0, 0, 5,
        0x02, 0, 0, 0, 5, 0xbb, 0x7e, 0, 0, 0, 5,
        0x03, 0, 0, 0, 5, 0xcc, 0x7e, 0, 0, 0, 5,
        0x04, 0, 0, 0, 9, 3, 'c', 'p', 'u', 0, 0, 0, 2, 0, 0, 0, 3,
        0, 0, 0, 3, 'a', 'b', 'c', 0x35, 0x24, 0x41, 0xc2,
        0x7e, 0, 0, 0, 9,
    };
    MigStream *s = stream_new_mem_writer();

    savevm_put_section_header(s, MIG_REC_SECTION_START, 5, "ram", 0, 1);
    stream_put_u8(s, 0xaa);
    savevm_put_footer(s, 5);
    savevm_put_section_header(s, MIG_REC_SECTION_PART, 5, NULL, 0, 0);
    stream_put_u8(s, 0xbb);
    savevm_put_footer(s, 5);
    savevm_put_section_header(s, MIG_REC_SECTION_END, 5, NULL, 0, 0);
    stream_put_u8(s, 0xcc);
    savevm_put_footer(s, 5);
    savevm_put_full(s, 9, "cpu", 2, 3, (const uint8_t *)"abc", 3);
    g_autoptr(GBytes) b = take_mem(s);
    assert_bytes(b, exp, sizeof(exp));
    g_assert_cmphex(mig_crc32(0, "123456789", 9), ==, 0xcbf43926);
}

static void test_golden_commands(void)
{
    static const uint8_t exp[] = {
        0x08, 0, 1, 0, 0,                               /* OPEN_RETURN_PATH */
        0x08, 0, 2, 0, 4, 0, 0, 0, 1,                   /* PING 1 */
        0x08, 0, 3, 0, 16, 0, 0, 0, 0, 0, 0, 0x30, 0,
        0, 0, 0, 0, 0, 0, 0x10, 0,                      /* ADVISE */
        0x08, 0, 4, 0, 0,                               /* LISTEN */
        0x08, 0, 5, 0, 0,                               /* RUN */
        0x08, 0, 9, 0, 0,                               /* RESUME */
        0x08, 0, 6, 0, 0x17, 6, 'p', 'c', '.', 'r', 'a', 'm',
        0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0, /* DISCARD */
        0x08, 0, 10, 0, 7, 6, 'p', 'c', '.', 'r', 'a', 'm', /* RECV_BITMAP */
        0x08, 0, 7, 0, 4, 0, 0, 0, 2, 0x08, 0, 4,       /* PACKAGED + blob */
    };
    MigStream *s = stream_new_mem_writer();
    MigDiscardRange r = { 0x10000, 0x3000 };

    savevm_send_open_return_path(s);
    savevm_send_ping(s, 1);
    savevm_send_postcopy_advise(s, 0x3000, 0x1000);
    savevm_send_postcopy_listen(s);
    savevm_send_postcopy_run(s);
    savevm_send_postcopy_resume(s);
    g_assert_true(savevm_send_postcopy_discard(s, "pc.ram", &r, 1, NULL));
    g_assert_true(savevm_send_recv_bitmap(s, "pc.ram", NULL));
    g_assert_true(savevm_send_packaged(s, (const uint8_t *)"\x08\x00", 2,
                                       NULL));
    /* A package with a partial command: fine to write, golden only. */
    stream_put_u8(s, 4);
    g_autoptr(GBytes) b = take_mem(s);
    assert_bytes(b, exp, sizeof(exp));

    for (unsigned c = 0; c < MIG_CMD__MAX + 2; c++) {
        g_assert_nonnull(mig_command_name(c));
    }
    g_assert_cmpint(mig_command_fixed_len(MIG_CMD_RESERVED_8), ==, -2);
}

static void test_golden_return_path(void)
{
    static const uint8_t req_id[] = {
        0, 3, 0, 0x13, 0, 0, 0, 0, 0, 0, 0x50, 0, 0, 0, 0x10, 0,
        6, 'p', 'c', '.', 'r', 'a', 'm',
    };
    static const uint8_t req[] = {
        0, 4, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0, 0x10, 0,
    };
    static const uint8_t pong[] = { 0, 2, 0, 4, 0, 0, 0, 3 };
    static const uint8_t shut[] = { 0, 1, 0, 4, 0, 0, 0, 0 };
    static const uint8_t ack[] = { 0, 6, 0, 4, 0, 0, 0, 1 };
    static const uint8_t bitmap[] = { 0, 5, 0, 4, 3, 'r', 'a', 'm' };
    uint8_t buf[MIG_RP_HDR_LEN + MIG_RP_MAX_LEN];
    MigRpMsg m = { .type = MIG_RP_MSG_REQ_PAGES_ID, .start = 0x5000,
                   .len = 0x1000, .block = "pc.ram" };
    MigRpMsg d;
    GError *err = NULL;

    size_t n = mig_rp_encode(&m, buf);
    g_assert_cmpmem(buf, n, req_id, sizeof(req_id));
    g_assert_true(mig_rp_decode(3, buf + 4, n - 4, &d, &err));
    g_assert_cmpuint(d.start, ==, 0x5000);
    g_assert_cmpuint(d.len, ==, 0x1000);
    g_assert_cmpstr(d.block, ==, "pc.ram");

    m = (MigRpMsg){ .type = MIG_RP_MSG_REQ_PAGES, .start = 0x6000,
                    .len = 0x1000 };
    n = mig_rp_encode(&m, buf);
    g_assert_cmpmem(buf, n, req, sizeof(req));
    g_assert_true(mig_rp_decode(4, buf + 4, n - 4, &d, &err));
    g_assert_cmpuint(d.start, ==, 0x6000);

    m = (MigRpMsg){ .type = MIG_RP_MSG_PONG, .value = 3 };
    n = mig_rp_encode(&m, buf);
    g_assert_cmpmem(buf, n, pong, sizeof(pong));
    m = (MigRpMsg){ .type = MIG_RP_MSG_SHUT, .value = 0 };
    n = mig_rp_encode(&m, buf);
    g_assert_cmpmem(buf, n, shut, sizeof(shut));
    m = (MigRpMsg){ .type = MIG_RP_MSG_RESUME_ACK, .value = 1 };
    n = mig_rp_encode(&m, buf);
    g_assert_cmpmem(buf, n, ack, sizeof(ack));
    g_assert_true(mig_rp_decode(6, buf + 4, 4, &d, &err));
    g_assert_cmpuint(d.value, ==, 1);
    m = (MigRpMsg){ .type = MIG_RP_MSG_RECV_BITMAP, .block = "ram" };
    n = mig_rp_encode(&m, buf);
    g_assert_cmpmem(buf, n, bitmap, sizeof(bitmap));
    g_assert_no_error(err);

    /* Invalid encodes. */
    m = (MigRpMsg){ .type = MIG_RP_MSG_INVALID };
    g_assert_cmpuint(mig_rp_encode(&m, buf), ==, 0);
    m = (MigRpMsg){ .type = MIG_RP_MSG_REQ_PAGES_ID, .len = 1 };
    g_assert_cmpuint(mig_rp_encode(&m, buf), ==, 0);

    /* Hostile decodes. */
    static const struct {
        unsigned type;
        const uint8_t *p;
        size_t len;
        const char *msg;
    } bad[] = {
        { 0, pong + 4, 4, "invalid message" },
        { 7, pong + 4, 4, "invalid message" },
        { 0xffff, pong + 4, 4, "invalid message" },
        { 2, pong + 4, 3, "bad length" },
        { 2, pong + 4, 5, "bad length" },
        { 4, req + 4, 11, "bad length" },
        { 3, req_id + 4, 12, "Malformed" },
        { 3, req_id + 4, 18, "Malformed" },
        { 3, req, 600, "bad length" },
        { 5, bitmap + 4, 3, "Malformed" },
        { 4, (const uint8_t *)"\0\0\0\0\0\0\0\0\0\0\0\0", 12, "bad range" },
        { 4, (const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\0\0\x10\0",
          12, "bad range" },
        /* NUL inside a name or text, refused as on the forward stream. */
        { 8, (const uint8_t *)"\x03" "a\0b", 4, "(NUL byte in its text)" },
        { 5, (const uint8_t *)"\x04" "ra\0m", 5, "(NUL byte in its text)" },
        { 3, (const uint8_t *)"\0\0\0\0\0\0\x50\0\0\0\x10\0\x06" "pc\0ram", 19,
          "(NUL byte in its text)" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(mig_rp_decode(bad[i].type, bad[i].p, bad[i].len, &d,
                                     &err));
        g_assert_nonnull(err);
        if (!strstr(err->message, bad[i].msg)) {
            g_error("case %zu: '%s' lacks '%s'", i, err->message, bad[i].msg);
        }
        g_clear_error(&err);
    }
}

/* Peer text is shown as printable UTF-8; everything else as \\xNN. */
static void test_text_sanitize(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "RAM size mismatch: source has 1 bytes", "RAM size mismatch: source has 1 bytes" },
        { "\x1b[2J\x07gone\nline 2\r", "\\x1b[2J\\x07gone\\x0aline 2\\x0d" },
        { "tab\there\x7f", "tab\\x09here\\x7f" },
        { "back\\slash", "back\\x5cslash" },
        { "caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac" },   /* valid UTF-8 */
        { "bad \xc3 \xff\xfe", "bad \\xc3 \\xff\\xfe" },            /* invalid UTF-8 */
        { "\xc2\x9b" "31m", "\\xc2\\x9b31m" },                          /* C1 CSI */
        { "", "" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = mig_text_sanitize(cases[i].in);
        g_assert_cmpstr(got, ==, cases[i].out);
        g_assert_true(g_utf8_validate(got, -1, NULL));
    }
}

/* --- full round trip --- */

static GBytes *make_precopy_stream(void)
{
    MigStream *s = stream_new_mem_writer();
    g_autoptr(MigConfig) c = test_config();
    GError *err = NULL;

    savevm_put_header(s);
    savevm_put_config(s, c);
    g_assert_true(savevm_live_setup(s, &err));
    g_assert_cmpint(savevm_live_iterate(s, &err), ==, 0);
    g_assert_cmpint(savevm_live_iterate(s, &err), ==, 1);
    g_assert_cmpuint(savevm_live_pending(), ==, 4096);
    g_assert_true(savevm_save_complete_precopy(s, &err));
    g_assert_no_error(err);
    savevm_live_cleanup();
    return take_mem(s);
}

static LoadVMResult load_bytes(const uint8_t *d, size_t len,
                               const MigConfig *local,
                               const LoadVMCommandOps *ops, void *opaque,
                               GError **errp)
{
    MigStream *s = stream_new_mem_reader(d, len, false);
    LoadVMState *st = loadvm_state_new(local, ops, opaque);
    LoadVMResult r = LOADVM_ERROR;

    if (loadvm_read_header(st, s, errp)) {
        r = loadvm_main(st, s, errp);
        if (r == LOADVM_EOF) {
            loadvm_post_load_all(st);
        }
    }
    loadvm_state_free(st);
    stream_free(s);
    return r;
}

static void test_roundtrip(void)
{
    GError *err = NULL;

    setup_registry();
    g_autoptr(GBytes) b = make_precopy_stream();
    g_autoptr(MigConfig) local = test_config();
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);

    g_assert_cmpint(load_bytes(d, len, local, NULL, NULL, &err), ==,
                    LOADVM_EOF);
    g_assert_no_error(err);
    g_assert_cmpstr(live.log->str, ==,
                    "SECTION_START:SETUP/v1;SECTION_PART:P1/v1;"
                    "SECTION_PART:P2/v1;SECTION_END:END/v1;");
    g_assert_true(live.setup_called);
    g_assert_cmpint(live.cleanup_called, ==, 1);
    g_assert_cmpstr(dev_cpu0.loaded->str, ==, "cpu0-regs");
    g_assert_cmpstr(dev_cpu1.loaded->str, ==, "cpu1-regs");
    g_assert_cmpstr(dev_irq.loaded->str, ==, "ioapic");
    g_assert_cmpuint(dev_irq.loaded_version, ==, 2);
    g_assert_cmpint(dev_cpu0.post_load, ==, 1);

    /* Priority order on the wire: irqchip (10) before cpu (40). */
    const char *irq = memmem(d, len, "irqchip", 7);
    const char *cpu = memmem(d, len, "\x03" "cpu", 4);
    g_assert_true(irq && cpu && irq < cpu);
    teardown_registry();
}

/* Every strict prefix of a valid stream fails cleanly with an error. */
static void test_truncated(void)
{
    setup_registry();
    g_autoptr(GBytes) b = make_precopy_stream();
    g_autoptr(MigConfig) local = test_config();
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);

    for (gsize n = 0; n < len; n++) {
        GError *err = NULL;
        /* An exact-size heap copy lets ASan catch any read past the end. */
        g_autofree uint8_t *copy = g_memdup2(d, n ? n : 1);
        LoadVMResult r = load_bytes(copy, n, local, NULL, NULL, &err);
        if (r != LOADVM_ERROR || !err) {
            g_error("prefix of %zu/%zu bytes did not fail", n, len);
        }
        g_error_free(err);
    }
    teardown_registry();
}

/* Flipping any byte never crashes; most flips must be detected. */
static void test_corrupt_every_byte(void)
{
    setup_registry();
    g_autoptr(GBytes) b = make_precopy_stream();
    g_autoptr(MigConfig) local = test_config();
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);
    unsigned detected = 0;

    for (gsize i = 0; i < len; i++) {
        GError *err = NULL;
        g_autofree uint8_t *copy = g_memdup2(d, len);
        copy[i] ^= 0x5a;
        if (load_bytes(copy, len, local, NULL, NULL, &err) == LOADVM_ERROR) {
            g_assert_nonnull(err);
            detected++;
        }
        g_clear_error(&err);
    }
    /* Only live-payload characters can slip through (the test loader accepts any). */
    g_assert_cmpuint(detected, >=, len - 20);
    teardown_registry();
}

/* Build: header, config, then @body. */
static GBytes *with_header(void (*body)(MigStream *s))
{
    MigStream *s = stream_new_mem_writer();
    g_autoptr(MigConfig) c = test_config();

    savevm_put_header(s);
    savevm_put_config(s, c);
    body(s);
    return take_mem(s);
}

static void body_unknown_record(MigStream *s)
{
    savevm_put_full(s, 1, "nosuch", 0, 1, (const uint8_t *)"x", 1);
}

static void body_missing_record(MigStream *s)
{
    g_assert_true(savevm_live_setup(s, NULL));
    g_assert_true(savevm_live_complete(s, NULL));
    savevm_put_full(s, 1, "cpu", 0, 1, (const uint8_t *)"x", 1);
    savevm_put_eof(s);
}

/* Every device record, but no RAM at all: the guest would start on empty RAM. */
static void body_no_live_section(MigStream *s)
{
    g_assert_true(savevm_save_devices(s, NULL));
    savevm_put_eof(s);
}

static void body_live_not_ended(MigStream *s)
{
    g_assert_true(savevm_live_setup(s, NULL));
    g_assert_cmpint(savevm_live_iterate(s, NULL), >=, 0);
    g_assert_true(savevm_save_devices(s, NULL));
    savevm_put_eof(s);
}

static void body_part_after_end(MigStream *s)
{
    g_assert_true(savevm_live_setup(s, NULL));
    g_assert_true(savevm_live_complete(s, NULL));
    g_assert_cmpint(savevm_live_iterate(s, NULL), >=, 0);
}

static void body_duplicate_record(MigStream *s)
{
    savevm_put_full(s, 1, "cpu", 0, 1, (const uint8_t *)"x", 1);
    savevm_put_full(s, 1, "cpu", 0, 1, (const uint8_t *)"x", 1);
}

static void body_newer_version(MigStream *s)
{
    savevm_put_full(s, 1, "cpu", 1, 2, (const uint8_t *)"x", 1);
}

static void body_huge_full(MigStream *s)
{
    savevm_put_section_header(s, MIG_REC_SECTION_FULL, 1, "cpu", 0, 1);
    stream_put_be32(s, 0xffffffff);
}

static void body_bad_crc(MigStream *s)
{
    savevm_put_section_header(s, MIG_REC_SECTION_FULL, 1, "cpu", 0, 1);
    stream_put_be32(s, 1);
    stream_put_u8(s, 'x');
    stream_put_be32(s, 0x12345678);
    savevm_put_footer(s, 1);
}

static void body_footer_mismatch(MigStream *s)
{
    uint8_t x = 'x';

    savevm_put_section_header(s, MIG_REC_SECTION_FULL, 1, "cpu", 0, 1);
    stream_put_be32(s, 1);
    stream_put_u8(s, x);
    stream_put_be32(s, mig_crc32(0, &x, 1));
    savevm_put_footer(s, 2);
}

static void body_missing_footer(MigStream *s)
{
    savevm_put_section_header(s, MIG_REC_SECTION_START, 4, "ram", 0, 1);
    live_put(s, "SETUP");
    savevm_put_eof(s);
}

static void body_unknown_part(MigStream *s)
{
    savevm_put_section_header(s, MIG_REC_SECTION_PART, 77, NULL, 0, 0);
}

static void body_unknown_type(MigStream *s)
{
    stream_put_u8(s, 0x55);
}

static void body_unknown_cmd(MigStream *s)
{
    savevm_put_command(s, 0x1234, NULL, 0);
}

static void body_reserved_cmd(MigStream *s)
{
    savevm_put_command(s, MIG_CMD_RESERVED_8, NULL, 0);
}

static void body_bad_cmd_len(MigStream *s)
{
    savevm_put_command(s, MIG_CMD_PING, "\0\0\0\0\0", 5);
}

static void body_unsupported_cmd(MigStream *s)
{
    savevm_send_postcopy_listen(s);
}

/* Postcopy recovery is not implemented: its commands are refused by name. */
static void body_resume(MigStream *s)
{
    savevm_send_postcopy_resume(s);
}

static void body_recv_bitmap(MigStream *s)
{
    g_assert_true(savevm_send_recv_bitmap(s, "ram", NULL));
}

static void body_huge_package(MigStream *s)
{
    uint32_t be = GUINT32_TO_BE(0xfffffff0);
    savevm_put_command(s, MIG_CMD_PACKAGED, &be, 4);
}

static void body_short_package(MigStream *s)
{
    uint32_t be = GUINT32_TO_BE(100);
    savevm_put_command(s, MIG_CMD_PACKAGED, &be, 4);
    stream_put_buffer(s, "\x08\x00\x02", 3);
}

static void body_bad_discard(MigStream *s)
{
    savevm_put_command(s, MIG_CMD_POSTCOPY_RAM_DISCARD,
                       "\x03ram\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
}

static void body_long_name(MigStream *s)
{
    /* A 200-byte name announced with only 5 bytes present. */
    stream_put_u8(s, MIG_REC_SECTION_FULL);
    stream_put_be32(s, 1);
    stream_put_u8(s, 200);
    stream_put_buffer(s, "abcde", 5);
}

static void test_hostile(void)
{
    static const struct {
        void (*body)(MigStream *s);
        const char *msg;
    } cases[] = {
        { body_unknown_record, "Unknown migration record 'nosuch' instance 0" },
        { body_missing_record, "Missing migration record 'irqchip' instance 0" },
        { body_no_live_section, "Missing migration section 'ram' instance 0" },
        { body_live_not_ended, "Migration section 'ram' instance 0 did not end (no "
          "SECTION_END before EOF)" },
        { body_part_after_end, "SECTION_PART record for migration section 'ram' after "
          "its end" },
        { body_duplicate_record, "Duplicate migration record 'cpu' instance 0" },
        { body_newer_version, "Unsupported version 2 of migration record 'cpu'" },
        { body_huge_full, "is too large (4294967295 bytes" },
        { body_bad_crc, "Checksum mismatch in migration record 'cpu'" },
        { body_footer_mismatch, "Section footer mismatch for 'cpu'" },
        { body_missing_footer, "Missing section footer for 'ram'" },
        { body_unknown_part, "Unknown section id 77 in SECTION_PART record" },
        { body_unknown_type, "Unknown migration record type 0x55" },
        { body_unknown_cmd, "Unknown migration command 0x1234" },
        { body_reserved_cmd, "Unknown migration command 0x0008" },
        { body_bad_cmd_len, "PING has bad length 5 (expected 4)" },
        { body_unsupported_cmd, "POSTCOPY_LISTEN is not supported" },
        { body_resume, "Migration command POSTCOPY_RESUME is not supported by this "
          "destination" },
        { body_recv_bitmap, "Migration command RECV_BITMAP is not supported by this "
          "destination" },
        { body_huge_package, "Postcopy package too large" },
        { body_short_package, "Unexpected end of migration stream" },
        { body_bad_discard, "Malformed POSTCOPY_RAM_DISCARD range" },
        { body_long_name, "Unexpected end of migration stream" },
    };

    setup_registry();
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;
        g_autoptr(GBytes) b = with_header(cases[i].body);
        gsize len;
        const uint8_t *d = g_bytes_get_data(b, &len);
        g_autofree uint8_t *copy = g_memdup2(d, len);
        g_assert_cmpint(load_bytes(copy, len, NULL, NULL, NULL, &err), ==,
                        LOADVM_ERROR);
        g_assert_nonnull(err);
        if (!strstr(err->message, cases[i].msg)) {
            g_error("case %zu: '%s' lacks '%s'", i, err->message,
                    cases[i].msg);
        }
        g_error_free(err);
    }
    teardown_registry();
}

static void test_bad_header(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *msg;
    } cases[] = {
        { "QEVM\0\0\0\3", 8, "Not a godwit migration stream" },
        { "GDWT\0\0\0\2", 8, "Unsupported migration stream version 2" },
        { "GDWT\0\0\0\1\x08", 9, "Reading the CONFIG record" },
        { "GDWT\0\0\0\1\x01\0\0\0\0", 13, "Expected a CONFIG record" },
        { "GDWT\0\0\0\1\x07\xff\0\0\0", 13, "CONFIG record too long" },
        { "GDWT\0\0\0\1\x07\0\0\0\x04\0\0\0\1", 17, "Malformed CONFIG" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;
        g_autofree uint8_t *copy = g_memdup2(cases[i].bytes, cases[i].len);
        g_assert_cmpint(load_bytes(copy, cases[i].len, NULL, NULL, NULL,
                                   &err), ==, LOADVM_ERROR);
        if (!strstr(err->message, cases[i].msg)) {
            g_error("case %zu: '%s' lacks '%s'", i, err->message,
                    cases[i].msg);
        }
        g_error_free(err);
    }
}

/* --- CONFIG compatibility --- */

static void expect_mismatch(MigConfig *src, MigConfig *dst, const char *msg)
{
    GError *err = NULL;

    g_assert_false(mig_config_compare(src, dst, &err));
    g_assert_cmpstr(err->message, ==, msg);
    g_error_free(err);
}

static void test_config_compare(void)
{
    g_autoptr(MigConfig) a = test_config();
    g_autoptr(MigConfig) b = test_config();
    GError *err = NULL;

    g_assert_true(mig_config_compare(a, b, &err));
    g_assert_no_error(err);

    /* Encode / decode round trip. */
    g_autoptr(GByteArray) enc = g_byte_array_new();
    mig_config_encode(a, enc);
    g_autoptr(MigConfig) dec = mig_config_decode(enc->data, enc->len, &err);
    g_assert_nonnull(dec);
    g_assert_true(mig_config_compare(dec, b, &err));
    /* Trailing garbage and truncation are rejected. */
    g_byte_array_append(enc, (const guint8 *)"x", 1);
    g_assert_null(mig_config_decode(enc->data, enc->len, &err));
    g_assert_nonnull(strstr(err->message, "1 trailing bytes"));
    g_clear_error(&err);
    for (guint n = 0; n + 1 < enc->len; n++) {
        g_autofree uint8_t *copy = g_memdup2(enc->data, n ? n : 1);
        g_assert_null(mig_config_decode(copy, n, &err));
        g_clear_error(&err);
    }

    b->blocks[0].size = 0x8000;
    expect_mismatch(a, b, "RAM size mismatch: source has 65536 bytes, "
                    "destination 32768");
    b->blocks[0].size = 0x10000;
    g_strlcpy(b->machine, "other", sizeof(b->machine));
    expect_mismatch(a, b, "Machine type mismatch: source has 'gw', "
                    "destination 'other'");
    g_strlcpy(b->machine, "gw", sizeof(b->machine));
    b->vcpus = 2;
    expect_mismatch(a, b, "vCPU count mismatch: source has 1, destination 2");
    b->vcpus = 1;
    b->blocks[0].page_size = 0x200000;
    expect_mismatch(a, b, "RAM block 'ram' page size mismatch: source has "
                    "4096 bytes, destination 2097152");
    b->blocks[0].page_size = 0x1000;
    g_strlcpy(b->blocks[0].name, "pc.ram", sizeof(b->blocks[0].name));
    expect_mismatch(a, b, "RAM block 'ram' of the source does not exist on "
                    "the destination");
    g_strlcpy(b->blocks[0].name, "ram", sizeof(b->blocks[0].name));
    b->cpuid[0].ecx = 0;
    expect_mismatch(a, b, "CPUID mismatch at leaf 0x1 index 0: source has "
                    "00000011 00000022 00000033 00000044, destination leaf "
                    "0x1 index 0 00000011 00000022 00000000 00000044");

    /* Through the loader: nothing loaded, one clear sentence. */
    setup_registry();
    b->cpuid[0].ecx = 0x33;
    b->blocks[0].size = 0x20000;
    g_autoptr(GBytes) s = make_precopy_stream();
    gsize len;
    const uint8_t *d = g_bytes_get_data(s, &len);
    g_assert_cmpint(load_bytes(d, len, b, NULL, NULL, &err), ==, LOADVM_ERROR);
    g_assert_cmpstr(err->message, ==, "RAM size mismatch: source has 65536 "
                    "bytes, destination 131072");
    g_clear_error(&err);
    g_assert_cmpstr(live.log->str, ==, "");
    g_assert_cmpstr(dev_cpu0.loaded->str, ==, "");
    teardown_registry();
}

/* --- commands and the postcopy package --- */

typedef struct CmdLog {
    GString *log;
} CmdLog;

static int c_orp(void *o, GError **errp)
{
    g_string_append(((CmdLog *)o)->log, "orp;");
    return 0;
}

static int c_ping(void *o, uint32_t v, GError **errp)
{
    g_string_append_printf(((CmdLog *)o)->log, "ping%" PRIu32 ";", v);
    return 0;
}

static int c_advise(void *o, uint64_t a, uint64_t b, GError **errp)
{
    g_string_append_printf(((CmdLog *)o)->log, "advise%" PRIx64 ",%" PRIx64
                           ";", a, b);
    return 0;
}

static int c_listen(void *o, GError **errp)
{
    g_string_append(((CmdLog *)o)->log, "listen;");
    return 0;
}

static int c_run(void *o, GError **errp)
{
    g_string_append(((CmdLog *)o)->log, "run;");
    return LOADVM_QUIT;
}

static int c_discard(void *o, const char *block, const MigDiscardRange *r,
                     unsigned n, GError **errp)
{
    g_string_append_printf(((CmdLog *)o)->log, "discard %s %u %" PRIx64
                           "+%" PRIx64 ";", block, n, r[n - 1].start,
                           r[n - 1].length);
    return 0;
}

static void c_lock(void *o, bool lock)
{
    g_string_append(((CmdLog *)o)->log, lock ? "[" : "]");
}

static const LoadVMCommandOps cmd_ops = {
    .open_return_path = c_orp, .ping = c_ping, .postcopy_advise = c_advise,
    .postcopy_listen = c_listen, .postcopy_run = c_run,
    .postcopy_discard = c_discard, .device_lock = c_lock,
    /* No postcopy_resume or recv_bitmap: recovery is not implemented. */
};

static void test_postcopy_package(void)
{
    GError *err = NULL;
    CmdLog cl = { g_string_new("") };
    MigDiscardRange r[3] = { { 0, 0x1000 }, { 0x4000, 0x2000 },
                             { 0x8000, 0x1000 } };

    setup_registry();
    /* Package: LISTEN, devices, PING 3, RUN. */
    MigStream *pk = stream_new_mem_writer();
    savevm_send_postcopy_listen(pk);
    g_assert_true(savevm_save_devices(pk, &err));
    savevm_send_ping(pk, 3);
    savevm_send_postcopy_run(pk);
    size_t pklen;
    const uint8_t *pkdata = stream_mem_data(pk, &pklen);

    MigStream *s = stream_new_mem_writer();
    g_autoptr(MigConfig) c = test_config();
    savevm_put_header(s);
    savevm_put_config(s, c);
    savevm_send_open_return_path(s);
    savevm_send_ping(s, 1);
    savevm_send_postcopy_advise(s, 0x1000, 0x1000);
    g_assert_true(savevm_live_setup(s, &err));
    g_assert_cmpint(savevm_live_iterate(s, &err), ==, 0);
    g_assert_true(savevm_send_postcopy_discard(s, "ram", r, 3, &err));
    g_assert_true(savevm_send_packaged(s, pkdata, pklen, &err));
    /* After RUN the main loop stops; what follows is for the listen thread. */
    savevm_put_eof(s);
    stream_free(pk);
    g_autoptr(GBytes) b = take_mem(s);
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);

    g_assert_cmpint(load_bytes(d, len, c, &cmd_ops, &cl, &err), ==,
                    LOADVM_QUIT);
    g_assert_no_error(err);
    g_assert_cmpstr(cl.log->str, ==,
                    "orp;ping1;advise1000,1000;discard ram 3 8000+1000;"
                    "listen;[][][]ping3;run;");
    g_assert_cmpstr(dev_cpu1.loaded->str, ==, "cpu1-regs");
    g_assert_cmpstr(live.log->str, ==,
                    "SECTION_START:SETUP/v1;SECTION_PART:P1/v1;");
    g_string_free(cl.log, TRUE);
    teardown_registry();
}

/* A package blob: LISTEN (optional), the device records, RUN (optional). */
static GBytes *make_package(bool listen, bool run)
{
    MigStream *pk = stream_new_mem_writer();
    GError *err = NULL;

    if (listen) {
        savevm_send_postcopy_listen(pk);
    }
    g_assert_true(savevm_save_devices(pk, &err));
    if (run) {
        savevm_send_postcopy_run(pk);
    }
    return take_mem(pk);
}

static void put_package(MigStream *s, GBytes *pk)
{
    gsize len;
    const uint8_t *d = g_bytes_get_data(pk, &len);

    g_assert_true(savevm_send_packaged(s, d, len, NULL));
}

/* Header, CONFIG, ORP, then @advise, the RAM setup, then @body. */
static GBytes *postcopy_stream(bool advise, void (*body)(MigStream *s))
{
    MigStream *s = stream_new_mem_writer();
    g_autoptr(MigConfig) c = test_config();
    GError *err = NULL;

    savevm_put_header(s);
    savevm_put_config(s, c);
    savevm_send_open_return_path(s);
    if (advise) {
        savevm_send_postcopy_advise(s, 0x1000, 0x1000);
    }
    g_assert_true(savevm_live_setup(s, &err));
    body(s);
    savevm_put_eof(s);
    return take_mem(s);
}

static void pc_listen_at_top(MigStream *s)
{
    savevm_send_postcopy_listen(s);
}

static void pc_package_no_run(MigStream *s)
{
    g_autoptr(GBytes) pk = make_package(true, false);
    put_package(s, pk);
}

static void pc_full_package(MigStream *s)
{
    g_autoptr(GBytes) pk = make_package(true, true);
    put_package(s, pk);
}

static void pc_run_at_top(MigStream *s)
{
    savevm_send_postcopy_run(s);
}

static void pc_second_advise(MigStream *s)
{
    savevm_send_postcopy_advise(s, 0x1000, 0x1000);
}

static void pc_second_listen(MigStream *s)
{
    MigStream *pk = stream_new_mem_writer();

    savevm_send_postcopy_listen(pk);
    savevm_send_postcopy_listen(pk);
    savevm_send_postcopy_run(pk);
    g_autoptr(GBytes) b = take_mem(pk);
    put_package(s, b);
}

/*
 * LISTEN hands the main stream to a second thread: it is accepted only
 * inside the package (which the loader reads whole first), after ADVISE,
 * once, and a package that listened must end in RUN. Nothing may reach a
 * handler out of order.
 */
static void test_postcopy_order(void)
{
    static const struct {
        bool advise;
        void (*body)(MigStream *s);
        const char *msg;     /* NULL: loads, ending in RUN */
        const char *log;     /* what the command handlers saw */
    } cases[] = {
        { true, pc_listen_at_top, "POSTCOPY_LISTEN outside the postcopy package",
          "orp;advise1000,1000;" },
        { true, pc_package_no_run, "The postcopy package ended without POSTCOPY_RUN",
          "orp;advise1000,1000;listen;[][][]" },
        { false, pc_full_package, "POSTCOPY_LISTEN without POSTCOPY_ADVISE", "orp;" },
        { true, pc_run_at_top, "POSTCOPY_RUN outside the postcopy package",
          "orp;advise1000,1000;" },
        { true, pc_second_advise, "POSTCOPY_ADVISE is only valid once",
          "orp;advise1000,1000;" },
        { true, pc_second_listen, "Second POSTCOPY_LISTEN",
          "orp;advise1000,1000;listen;" },
        { true, pc_full_package, NULL, "orp;advise1000,1000;listen;[][][]run;" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;
        CmdLog cl = { g_string_new("") };

        setup_registry();
        g_autoptr(GBytes) b = postcopy_stream(cases[i].advise, cases[i].body);
        gsize len;
        const uint8_t *d = g_bytes_get_data(b, &len);
        LoadVMResult r = load_bytes(d, len, NULL, &cmd_ops, &cl, &err);
        if (cases[i].msg) {
            g_assert_cmpint(r, ==, LOADVM_ERROR);
            g_assert_nonnull(err);
            if (!strstr(err->message, cases[i].msg)) {
                g_error("case %zu: '%s' lacks '%s'", i, err->message, cases[i].msg);
            }
            g_clear_error(&err);
        } else {
            g_assert_no_error(err);
            g_assert_cmpint(r, ==, LOADVM_QUIT);
        }
        g_assert_cmpstr(cl.log->str, ==, cases[i].log);
        g_string_free(cl.log, TRUE);
        teardown_registry();
    }
}

static void pkg_no_listen(MigStream *s)
{
    g_autoptr(GBytes) pk = make_package(false, true);
    put_package(s, pk);
}

static void pkg_ram_after_listen(MigStream *s)
{
    MigStream *pk = stream_new_mem_writer();
    GError *err = NULL;

    savevm_send_postcopy_listen(pk);
    g_assert_cmpint(savevm_live_iterate(pk, &err), ==, 0);
    g_assert_true(savevm_save_devices(pk, &err));
    savevm_send_postcopy_run(pk);
    g_autoptr(GBytes) b = take_mem(pk);
    put_package(s, b);
}

static void pkg_after_run(MigStream *s)
{
    MigStream *pk = stream_new_mem_writer();
    GError *err = NULL;

    savevm_send_postcopy_listen(pk);
    g_assert_true(savevm_save_devices(pk, &err));
    savevm_send_postcopy_run(pk);
    savevm_send_ping(pk, 9);
    g_autoptr(GBytes) b = take_mem(pk);
    put_package(s, b);
}

static void pkg_discard_inside(MigStream *s)
{
    MigStream *pk = stream_new_mem_writer();
    MigDiscardRange r = { 0, 0x1000 };

    savevm_send_postcopy_listen(pk);
    g_assert_true(savevm_send_postcopy_discard(pk, "ram", &r, 1, NULL));
    savevm_send_postcopy_run(pk);
    g_autoptr(GBytes) b = take_mem(pk);
    put_package(s, b);
}

static void pkg_empty(MigStream *s)
{
    g_assert_true(savevm_send_packaged(s, NULL, 0, NULL));
}

/*
 * What the package may hold (stream.md): LISTEN first, then device records
 * and PINGs, RUN last. RAM in it would be loaded by the incoming thread
 * while the listen thread loads RAM too; a package without LISTEN and RUN
 * is not a postcopy switch at all.
 */
static void test_package_contents(void)
{
    static const struct {
        void (*body)(MigStream *s);
        const char *msg;
        const char *log;
        const char *live;    /* what the RAM stand-in loaded */
    } cases[] = {
        { pkg_no_listen, "In the postcopy package: device record before POSTCOPY_LISTEN", "orp;advise1000,1000;", "SECTION_START:SETUP/v1;" },
        { pkg_ram_after_listen, "In the postcopy package: SECTION_PART record is not allowed",
          "orp;advise1000,1000;listen;", "SECTION_START:SETUP/v1;" },
        { pkg_after_run, "In the postcopy package: POSTCOPY_RUN is not its last record",
          "orp;advise1000,1000;listen;[][][]", "SECTION_START:SETUP/v1;" },
        { pkg_discard_inside, "In the postcopy package: command POSTCOPY_RAM_DISCARD is not "
          "allowed there", "orp;advise1000,1000;listen;", "SECTION_START:SETUP/v1;" },
        { pkg_empty, "The postcopy package ended without POSTCOPY_RUN",
          "orp;advise1000,1000;", "SECTION_START:SETUP/v1;" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;
        CmdLog cl = { g_string_new("") };

        setup_registry();
        g_autoptr(GBytes) b = postcopy_stream(true, cases[i].body);
        gsize len;
        const uint8_t *d = g_bytes_get_data(b, &len);
        g_assert_cmpint(load_bytes(d, len, NULL, &cmd_ops, &cl, &err), ==, LOADVM_ERROR);
        g_assert_nonnull(err);
        if (!strstr(err->message, cases[i].msg)) {
            g_error("case %zu: '%s' lacks '%s'", i, err->message, cases[i].msg);
        }
        g_clear_error(&err);
        g_assert_cmpstr(cl.log->str, ==, cases[i].log);
        g_assert_cmpstr(live.log->str, ==, cases[i].live);
        g_string_free(cl.log, TRUE);
        teardown_registry();
    }
}

/*
 * After RUN the listen thread goes on with the main stream through a fork
 * of the load state, while the guest runs: a device record there would
 * rewrite live vCPU or device state without the BQL, so only RAM (PART,
 * END), PING and EOF are accepted.
 */
static void test_after_switch(void)
{
    static const struct {
        guint8 what;      /* record to put after the package */
        const char *msg;
    } cases[] = {
        { MIG_REC_SECTION_FULL, "SECTION_FULL record after the postcopy switch" },
        { MIG_REC_SECTION_START, "SECTION_START record after the postcopy switch" },
        { MIG_REC_COMMAND, "PACKAGED after the postcopy switch" },
        { MIG_REC_EOF, NULL },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;
        CmdLog cl = { g_string_new("") };

        setup_registry();
        g_autoptr(GBytes) b = postcopy_stream(true, pc_full_package);
        gsize len;
        const uint8_t *d = g_bytes_get_data(b, &len);
        MigStream *s = stream_new_mem_reader(d, len, false);
        LoadVMState *st = loadvm_state_new(NULL, &cmd_ops, &cl);
        g_assert_true(loadvm_read_header(st, s, &err));
        g_assert_cmpint(loadvm_main(st, s, &err), ==, LOADVM_QUIT);
        g_assert_cmpstr(dev_cpu0.loaded->str, ==, "cpu0-regs");

        /* What the listen thread reads next on the main stream. */
        MigStream *w = stream_new_mem_writer();
        g_assert_cmpint(savevm_live_iterate(w, &err), ==, 0);
        if (cases[i].what == MIG_REC_SECTION_FULL) {
            savevm_put_full(w, 2, "cpu", 0, 1, (const uint8_t *)"evil", 4);
        } else if (cases[i].what == MIG_REC_SECTION_START) {
            savevm_put_section_header(w, MIG_REC_SECTION_START, 1, "ram", 0, 1);
            live_put(w, "AGAIN");
            savevm_put_footer(w, 1);
        } else if (cases[i].what == MIG_REC_COMMAND) {
            g_autoptr(GBytes) pk = make_package(true, true);
            put_package(w, pk);
        }
        g_assert_true(savevm_live_complete(w, &err));
        savevm_put_eof(w);
        g_autoptr(GBytes) rest = take_mem(w);
        gsize rlen;
        const uint8_t *rd = g_bytes_get_data(rest, &rlen);
        MigStream *rs = stream_new_mem_reader(rd, rlen, false);
        LoadVMState *f = loadvm_state_fork(st, &cmd_ops, &cl);
        LoadVMResult r = loadvm_main(f, rs, &err);
        if (cases[i].msg) {
            g_assert_cmpint(r, ==, LOADVM_ERROR);
            g_assert_nonnull(err);
            if (!strstr(err->message, cases[i].msg)) {
                g_error("case %zu: '%s' lacks '%s'", i, err->message, cases[i].msg);
            }
            g_clear_error(&err);
            g_assert_cmpstr(live.log->str, ==,
                            "SECTION_START:SETUP/v1;SECTION_PART:P1/v1;");
        } else {
            g_assert_no_error(err);
            g_assert_cmpint(r, ==, LOADVM_EOF);
            g_assert_cmpstr(live.log->str, ==, "SECTION_START:SETUP/v1;SECTION_PART:P1/v1;"
                            "SECTION_END:END/v1;");
        }
        /* The device state is the package's, whatever followed. */
        g_assert_cmpstr(dev_cpu0.loaded->str, ==, "cpu0-regs");
        g_assert_cmpstr(cl.log->str, ==, "orp;advise1000,1000;listen;[][][]run;");
        loadvm_state_free(f);
        loadvm_state_free(st);
        stream_free(rs);
        stream_free(s);
        g_string_free(cl.log, TRUE);
        teardown_registry();
    }
}

/* NUL in a command's block name: refused, as in every other name. */
static void test_command_nul(void)
{
    GError *err = NULL;
    char block[256];
    MigDiscardRange r[1];
    static const uint8_t discard[] = {
        3, 'r', 0, 'm', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0,
    };

    g_assert_cmpint(mig_cmd_discard_decode(discard, sizeof(discard), block, r, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Malformed POSTCOPY_RAM_DISCARD command (NUL byte in "
                    "the block name)");
    g_clear_error(&err);

    setup_registry();
    MigStream *s = stream_new_mem_writer();
    g_autoptr(MigConfig) c = test_config();
    CmdLog cl = { g_string_new("") };
    savevm_put_header(s);
    savevm_put_config(s, c);
    savevm_put_command(s, MIG_CMD_RECV_BITMAP, "\x03r\0m", 4);
    g_autoptr(GBytes) b = take_mem(s);
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);
    g_assert_cmpint(load_bytes(d, len, NULL, &cmd_ops, &cl, &err), ==, LOADVM_ERROR);
    g_assert_cmpstr(err->message, ==, "Malformed RECV_BITMAP command (NUL byte in the block "
                    "name)");
    g_clear_error(&err);
    g_assert_cmpstr(cl.log->str, ==, "");
    g_string_free(cl.log, TRUE);
    teardown_registry();
}

/* Discard encode limits. */
static void test_discard_limits(void)
{
    GError *err = NULL;
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autofree MigDiscardRange *r = g_new0(MigDiscardRange,
                                           MIG_DISCARD_MAX_RANGES + 1);
    char block[256];
    g_autofree MigDiscardRange *back = g_new0(MigDiscardRange,
                                              MIG_DISCARD_MAX_RANGES);

    for (unsigned i = 0; i <= MIG_DISCARD_MAX_RANGES; i++) {
        r[i].start = i * 0x2000ULL;
        r[i].length = 0x1000;
    }
    g_assert_false(mig_cmd_discard_encode("ram", r, 0, out, &err));
    g_clear_error(&err);
    g_assert_false(mig_cmd_discard_encode("ram", r,
                                          MIG_DISCARD_MAX_RANGES + 1, out,
                                          &err));
    g_clear_error(&err);
    g_assert_false(mig_cmd_discard_encode("", r, 1, out, &err));
    g_clear_error(&err);
    g_assert_true(mig_cmd_discard_encode("ram", r, MIG_DISCARD_MAX_RANGES,
                                         out, &err));
    g_assert_cmpuint(out->len, <=, MIG_CMD_MAX_LEN);
    g_assert_cmpint(mig_cmd_discard_decode(out->data, out->len, block, back,
                                           &err), ==, MIG_DISCARD_MAX_RANGES);
    g_assert_cmpstr(block, ==, "ram");
    g_assert_cmpuint(back[100].start, ==, 100 * 0x2000ULL);
    /* Truncations. */
    for (guint n = 0; n < out->len; n++) {
        if (n >= 1 + 3 + 16 && (n - 4) % 16 == 0) {
            continue;   /* whole ranges: valid */
        }
        g_autofree uint8_t *copy = g_memdup2(out->data, n ? n : 1);
        g_assert_cmpint(mig_cmd_discard_decode(copy, n, block, back, &err),
                        ==, -1);
        g_clear_error(&err);
    }
}

/* --- a sample with a real "ram" section, checked by the analyser --- */

static uint8_t sample_ram[16 * 4096];
static RamWriter sample_w;

static bool ram_setup(MigStream *s, void *opaque, GError **errp)
{
    MigRamBlockInfo b = { .name = "pc.ram", .size = sizeof(sample_ram),
                          .page_size = 4096 };

    ram_writer_reset(&sample_w);
    ram_put_mem_size(s, &b, 1);
    ram_put_eos(s);
    return true;
}

static int ram_iterate(MigStream *s, void *opaque, GError **errp)
{
    ram_put_pages(s, &sample_w, "pc.ram", 0, sample_ram, 1);
    ram_put_zero(s, &sample_w, "pc.ram", 0x1000, 10);
    ram_put_pages(s, &sample_w, "pc.ram", 0xb000, sample_ram + 0xb000, 4);
    ram_put_eos(s);
    return 1;
}

static bool ram_complete(MigStream *s, void *opaque, GError **errp)
{
    ram_put_zero(s, &sample_w, "pc.ram", 0xf000, 1);
    ram_put_eos(s);
    return true;
}

static bool ram_load(MigStream *s, void *opaque, uint32_t version,
                     MigRecordType type, GError **errp)
{
    RamReader *r = opaque;
    RamRecord rec;

    for (;;) {
        if (!ram_get_record(s, r, &rec, errp)) {
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
        if (!ram_record_check_range(&rec, sizeof(sample_ram), errp)) {
            return false;
        }
        if (rec.type == RAM_RECORD_PAGES) {
            stream_skip(s, (size_t)rec.npages * RAM_REC_PAGE_SIZE);
        }
    }
}

static const SaveLiveOps ram_ops = {
    .save_setup = ram_setup, .save_iterate = ram_iterate,
    .save_complete = ram_complete, .load = ram_load,
};

static void test_analyzer(void)
{
#ifndef GW_SOURCE_ROOT
    g_test_skip("GW_SOURCE_ROOT not defined");
#else
    GError *err = NULL;
    RamReader rr;
    g_autofree char *dir = g_dir_make_tmp("gw-ana-XXXXXX", NULL);
    g_autofree char *path = g_strdup_printf("%s/stream", dir);
    g_autofree char *cut = g_strdup_printf("%s/cut", dir);

    setup_registry();
    savevm_unregister_all();
    ram_reader_reset(&rr);
    register_savelive("ram", 0, RAM_SECTION_VERSION, &ram_ops, &rr);
    SaveStateHandler h = {
        .idstr = "cpu", .version = 1, .save = dev_save, .load = dev_load,
        .opaque = &dev_cpu0,
    };
    register_savestate(&h);
    memset(sample_ram, 0x77, sizeof(sample_ram));

    MigStream *s = stream_new_mem_writer();
    g_autoptr(MigConfig) c = test_config();
    MigDiscardRange r = { 0x2000, 0x1000 };
    savevm_put_header(s);
    savevm_put_config(s, c);
    savevm_send_ping(s, 1);
    savevm_send_postcopy_advise(s, 0x1000, 0x1000);
    g_assert_true(savevm_live_setup(s, &err));
    g_assert_cmpint(savevm_live_iterate(s, &err), ==, 1);
    g_assert_true(savevm_send_postcopy_discard(s, "pc.ram", &r, 1, &err));
    MigStream *pk = stream_new_mem_writer();
    savevm_send_postcopy_listen(pk);
    savevm_send_postcopy_run(pk);
    size_t pklen;
    const uint8_t *pkd = stream_mem_data(pk, &pklen);
    g_assert_true(savevm_send_packaged(s, pkd, pklen, &err));
    stream_free(pk);
    g_assert_true(savevm_save_complete_precopy(s, &err));
    g_assert_no_error(err);
    size_t len;
    const uint8_t *d = stream_mem_data(s, &len);
    g_assert_true(g_file_set_contents(path, (const char *)d, len, NULL));
    g_assert_true(g_file_set_contents(cut, (const char *)d, len - 30, NULL));
    /* The C loader reads the same bytes (up to RUN, which quits). */
    CmdLog cl = { g_string_new("") };
    g_assert_cmpint(load_bytes(d, len, c, &cmd_ops, &cl, &err), ==,
                    LOADVM_QUIT);
    g_assert_no_error(err);
    g_assert_cmpstr(cl.log->str, ==, "ping1;advise1000,1000;discard pc.ram 1 2000+1000;"
                    "listen;run;");
    g_string_free(cl.log, TRUE);
    stream_free(s);

    const char *argv[] = { "python3",
                           GW_SOURCE_ROOT "/scripts/analyze-migration.py",
                           "--pages", path, NULL };
    g_autofree char *out = NULL;
    g_autofree char *errout = NULL;
    int status;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &errout, &status, &err));
    g_test_message("%s", out);
    g_assert_true(g_spawn_check_wait_status(status, NULL));
    static const char *const expect[] = {
        "header: GDWT version 1",
        "CONFIG version 1 machine 'gw', 1 vCPUs, target page 4096",
        "COMMAND PING 1",
        "SECTION_START id 1 'ram' instance 0 version 1",
        "ram setup: 65536 bytes: pc.ram 0x10000 (page 0x1000)",
        "data pc.ram 0xb000 +4 pages",
        "zero pc.ram 0x1000 +10 pages",
        "ram: 3 records, 5 data pages, 10 zero pages",
        "COMMAND POSTCOPY_RAM_DISCARD pc.ram: 0x2000+0x1000",
        "package of 10 bytes:",
        "COMMAND POSTCOPY_RUN",
        "SECTION_END id 1 'ram'",
        "SECTION_FULL id 2 'cpu' instance 0 version 1: 9 bytes, crc ok",
        "\nEOF\n",
        "total: 5 data pages, 11 zero pages in 4 RAM records",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(expect); i++) {
        if (!strstr(out, expect[i])) {
            g_error("analyser output lacks '%s'", expect[i]);
        }
    }
    /* A truncated file is reported, with a non-zero status. */
    argv[3] = cut;
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&errout, g_free);
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &errout, &status, &err));
    g_assert_false(g_spawn_check_wait_status(status, NULL));
    g_assert_nonnull(strstr(errout, "unexpected end of stream"));
    unlink(path);
    unlink(cut);
    rmdir(dir);
    teardown_registry();
#endif
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/savevm/golden/header-config",
                    test_golden_header_config);
    g_test_add_func("/migration/savevm/golden/sections", test_golden_sections);
    g_test_add_func("/migration/savevm/golden/commands", test_golden_commands);
    g_test_add_func("/migration/savevm/golden/return-path",
                    test_golden_return_path);
    g_test_add_func("/migration/savevm/roundtrip", test_roundtrip);
    g_test_add_func("/migration/savevm/truncated", test_truncated);
    g_test_add_func("/migration/savevm/corrupt-every-byte",
                    test_corrupt_every_byte);
    g_test_add_func("/migration/savevm/hostile", test_hostile);
    g_test_add_func("/migration/savevm/bad-header", test_bad_header);
    g_test_add_func("/migration/savevm/config-compare", test_config_compare);
    g_test_add_func("/migration/savevm/postcopy-package",
                    test_postcopy_package);
    g_test_add_func("/migration/savevm/postcopy-order", test_postcopy_order);
    g_test_add_func("/migration/savevm/package-contents", test_package_contents);
    g_test_add_func("/migration/savevm/after-switch", test_after_switch);
    g_test_add_func("/migration/savevm/discard-limits", test_discard_limits);
    g_test_add_func("/migration/savevm/text-sanitize", test_text_sanitize);
    g_test_add_func("/migration/savevm/command-nul", test_command_nul);
    g_test_add_func("/migration/savevm/analyzer", test_analyzer);
    return g_test_run();
}
