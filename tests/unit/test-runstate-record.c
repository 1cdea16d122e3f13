/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of the "runstate" migration record (migration/runstate-record.c)
 * through the stream layer: its exact bytes, a load back, version 1 records
 * (no stop time), and malformed payloads refused.
 */
#include "qemu/osdep.h"

#include "migration/migration.h"
#include "migration/savevm.h"

static void hexdump(const char *what, const guint8 *p, size_t len)
{
    g_printerr("%s (%zu bytes):", what, len);
    for (size_t i = 0; i < len; i++) {
        g_printerr("%s%02x", i % 16 ? " " : "\n  ", p[i]);
    }
    g_printerr("\n");
}

static void register_once(void)
{
    static bool done;

    if (!done) {
        runstate_record_register();
        done = true;
    }
}

static LoadVMResult load_stream(const guint8 *d, size_t len, GError **errp)
{
    MigStream *s = stream_new_mem_reader(d, len, false);
    LoadVMState *st = loadvm_state_new(NULL, NULL, NULL);
    LoadVMResult r = loadvm_main(st, s, errp);

    loadvm_state_free(st);
    stream_free(s);
    return r;
}

/* A stream holding one runstate record of @version with @payload. */
static LoadVMResult load_record(uint32_t version, const guint8 *payload, size_t len,
                                GError **errp)
{
    MigStream *w = stream_new_mem_writer();
    size_t n;

    savevm_put_full(w, 1, "runstate", 0, version, payload, len);
    savevm_put_eof(w);
    const uint8_t *d = stream_mem_data(w, &n);
    LoadVMResult r = load_stream(d, n, errp);
    stream_free(w);
    return r;
}

/*
 * The record's bytes do not change across builds (taken from the
 * hand-written encoder the field table replaced): u8 length and the state
 * name, then be64 stop time (version 2); framing, CRC and footer included.
 */
static void test_golden(void)
{
    static const guint8 golden[] = {
        0x04, 0x00, 0x00, 0x00, 0x01, 0x08, 'r', 'u', 'n', 's', 't', 'a', 't', 'e',
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x10,
        /* payload */
        0x07, 'r', 'u', 'n', 'n', 'i', 'n', 'g',
        0x00, 0x06, 0x1f, 0x3a, 0x5b, 0x7c, 0x9d, 0xbe,
        /* CRC-32, footer, EOF */
        0xeb, 0x87, 0x4a, 0xc6, 0x7e, 0x00, 0x00, 0x00, 0x01, 0x00,
    };
    GError *err = NULL;
    MigStream *w = stream_new_mem_writer();
    size_t len;

    register_once();
    runstate_record_set_outgoing("running");
    runstate_record_set_stop_time(0x00061f3a5b7c9dbeLL);
    g_assert_true(savevm_save_devices(w, &err));
    g_assert_no_error(err);
    savevm_put_eof(w);
    const uint8_t *d = stream_mem_data(w, &len);
    if (len != sizeof(golden) || memcmp(d, golden, len)) {
        hexdump("saved", d, len);
        hexdump("expected", golden, sizeof(golden));
        g_error("the runstate record's bytes changed");
    }
    g_assert_cmpint(load_stream(d, len, &err), ==, LOADVM_EOF);
    g_assert_no_error(err);
    g_assert_cmpstr(runstate_record_incoming(), ==, "running");
    g_assert_cmpint(runstate_record_incoming_stop_time(), ==, 0x00061f3a5b7c9dbeLL);
    stream_free(w);
}

/* Version 1: the name only; the stop time reads as 0. */
static void test_version1(void)
{
    GError *err = NULL;

    register_once();
    g_assert_cmpint(load_record(1, (const guint8 *)"\x06" "paused", 7, &err), ==,
                    LOADVM_EOF);
    g_assert_no_error(err);
    g_assert_cmpstr(runstate_record_incoming(), ==, "paused");
    g_assert_cmpint(runstate_record_incoming_stop_time(), ==, 0);
}

static void test_malformed(void)
{
    static const struct {
        uint32_t version;
        const char *payload;
        size_t len;
        const char *msg;
    } bad[] = {
        { 2, "", 0, "(version 2, 0 bytes) ends inside its field 'state'" },
        /* no stop time */
        { 2, "\x07running", 8, "ends inside its field 'stop_realtime_us'" },
        { 2, "\x07running\0\0\0\0\0\0\0\0\0", 17, "is 1 byte too long" },
        { 1, "\x07running\0", 9, "(version 1, 9 bytes) is 1 byte too long" },
        /* the name runs out */
        { 1, "\x08running", 8, "ends inside its field 'state'" },
        { 1, "\x20" "0123456789abcdef0123456789abcdef", 33,
          "has a 32-byte field 'state' where at most 31 fit" },
        { 1, "\x05" "dance", 6, "unknown state 'dance'" },
        { 3, "\x06paused\0\0\0\0\0\0\0\0", 15, "Unsupported version 3" },
    };
    GError *err = NULL;

    register_once();
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        if (load_record(bad[i].version, (const guint8 *)bad[i].payload, bad[i].len,
                        &err) != LOADVM_ERROR) {
            g_error("case %zu was accepted", i);
        }
        if (!strstr(err->message, bad[i].msg)) {
            g_error("case %zu: '%s' lacks '%s'", i, err->message, bad[i].msg);
        }
        g_clear_error(&err);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/runstate-record/golden", test_golden);
    g_test_add_func("/runstate-record/version1", test_version1);
    g_test_add_func("/runstate-record/malformed", test_malformed);
    return g_test_run();
}
