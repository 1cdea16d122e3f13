/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Writes the seed corpora of the fuzz targets into DIR/<target>/ with
 * godwit's own encoders and loaders' machine (fuzz-machine.c): a precopy
 * and a postcopy stream of the fuzz machine, return-path messages, QMP
 * requests, HMP lines and command lines. Run it to regenerate
 * tests/fuzz/corpus after a format change:
 *   build-fuzz/tests/fuzz/fuzz-gen-seeds tests/fuzz/corpus
 */
#include "qemu/osdep.h"
#include "fuzz-machine.h"

#include <glib/gstdio.h>

#include "migration/migration.h"
#include "migration/savevm.h"

static const char *outdir;

static void put(const char *target, const char *name, const void *data, size_t len)
{
    g_autofree char *dir = g_build_filename(outdir, target, NULL);
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GError) err = NULL;

    g_mkdir_with_parents(dir, 0755);
    if (!g_file_set_contents(path, data, (gssize)len, &err)) {
        g_printerr("gen-seeds: %s\n", err->message);
        exit(1);
    }
}

static void put_str(const char *target, const char *name, const char *s)
{
    put(target, name, s, strlen(s));
}

/* ---- streams ---- */

static unsigned budget_calls;

static bool budget_after_two(void *opaque)
{
    return ++budget_calls > 2;
}

static void stream_prefix(MigStream *w, const MigConfig *c)
{
    savevm_put_header(w);
    savevm_put_config(w, c);
    savevm_send_open_return_path(w);
    savevm_send_ping(w, 1);
}

static void put_stream(const char *name, MigStream *w)
{
    size_t len;
    const uint8_t *d = stream_mem_data(w, &len);

    put("stream-load", name, d, len);
    stream_free(w);
}

static void gen_streams(void)
{
    Machine *m = fuzz_machine();
    g_autoptr(MigConfig) c = fuzz_machine_config();
    g_autoptr(GError) err = NULL;
    uint64_t dirty;

    /* A few data pages, one run of them; everything else reads as zero. */
    for (int p = 0; p < 6; p++) {
        memset(m->ram->host + (uint64_t)(p < 3 ? p : 100 + p) * GW_PAGE_SIZE, 0x41 + p,
               GW_PAGE_SIZE);
    }

    /* Precopy: setup, a pass, completion (END, device records, EOF). */
    MigStream *w = stream_new_mem_writer();
    stream_prefix(w, c);
    g_assert_true(ram_start_tracking(&err));
    g_assert_true(ram_sync(&dirty, &err));
    g_assert_true(savevm_live_setup(w, &err));
    while (!ram_sweep_done()) {
        g_assert_cmpint(savevm_live_iterate(w, &err), >=, 0);
    }
    g_assert_true(ram_sync(&dirty, &err));
    g_assert_true(savevm_save_complete_precopy(w, &err));
    ram_stop_tracking();
    put_stream("precopy", w);

    /* Postcopy: part of a pass, the switch (discard, package), the rest. */
    w = stream_new_mem_writer();
    stream_prefix(w, c);
    savevm_send_postcopy_advise(w, GW_PAGE_SIZE, GW_PAGE_SIZE);
    savevm_send_ping(w, 2);
    g_assert_true(ram_start_tracking(&err));
    g_assert_true(ram_sync(&dirty, &err));
    g_assert_true(savevm_live_setup(w, &err));
    ram_set_budget(budget_after_two, NULL);
    g_assert_cmpint(savevm_live_iterate(w, &err), >=, 0);
    ram_set_budget(NULL, NULL);
    g_assert_true(ram_sync(&dirty, &err));
    g_assert_true(ram_postcopy_send_discard(w, &err));
    MigStream *pk = stream_new_mem_writer();
    savevm_send_postcopy_listen(pk);
    g_assert_true(savevm_save_devices(pk, &err));
    savevm_send_ping(pk, 3);
    savevm_send_postcopy_run(pk);
    size_t pklen;
    const uint8_t *pkd = stream_mem_data(pk, &pklen);
    g_assert_true(savevm_send_packaged(w, pkd, pklen, &err));
    stream_free(pk);
    ram_postcopy_switch();
    for (int i = 0; i < 100000; i++) {
        int r = savevm_live_iterate(w, &err);
        g_assert_cmpint(r, >=, 0);
        if (r == 1) {
            break;
        }
    }
    g_assert_true(savevm_live_complete(w, &err));
    savevm_put_eof(w);
    ram_stop_tracking();
    put_stream("postcopy", w);

    /* The shortest stream that gets past the CONFIG: EOF at once. */
    w = stream_new_mem_writer();
    stream_prefix(w, c);
    savevm_put_eof(w);
    put_stream("config-eof", w);
}

/* ---- return path ---- */

static void gen_return_path(void)
{
    static const MigRpMsg msgs[][4] = {
        { { .type = MIG_RP_MSG_PONG, .value = 1 }, { .type = MIG_RP_MSG_PONG, .value = 2 },
          { .type = MIG_RP_MSG_SHUT, .value = 0 } },
        { { .type = MIG_RP_MSG_PONG, .value = 1 },
          { .type = MIG_RP_MSG_REQ_PAGES_ID, .start = 0x1000, .len = 0x1000, .block = "pc.ram" },
          { .type = MIG_RP_MSG_REQ_PAGES, .start = 0xff000, .len = 0x1000 },
          { .type = MIG_RP_MSG_SHUT, .value = 1 } },
        { { .type = MIG_RP_MSG_ERROR, .block = "RAM size mismatch: source has 1048576 bytes, "
            "destination 2097152" } },
        { { .type = MIG_RP_MSG_RECV_BITMAP, .block = "pc.ram" },
          { .type = MIG_RP_MSG_RESUME_ACK, .value = 1 } },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(msgs); i++) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        g_autofree char *name = g_strdup_printf("messages-%zu", i);
        for (int k = 0; k < 4 && msgs[i][k].type; k++) {
            uint8_t buf[MIG_RP_HDR_LEN + MIG_RP_MAX_LEN];
            size_t n = mig_rp_encode(&msgs[i][k], buf);
            g_assert_cmpuint(n, >, 0);
            g_byte_array_append(b, buf, n);
        }
        put("return-path", name, b->data, b->len);
    }
}

/* ---- monitors and the command line ---- */

static void gen_text(void)
{
    static const char *const qmp[] = {
        "{\"execute\": \"qmp_capabilities\"}\n",
        "{\"execute\": \"test-migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:4444\", "
        "\"blk\": false, \"count\": 3}, \"id\": \"a1\"}\n",
        "{\"execute\": \"test-set-params\", \"arguments\": {\"i8\": -128, \"u16\": 65535, "
        "\"i64\": -9223372036854775808, \"u64\": 18446744073709551615, \"sz\": 4096, "
        "\"num\": 1.5e3, \"flag\": true, \"creds\": null, \"anything\": [1, {\"x\": \"y\"}], "
        "\"nothing\": null, \"color\": \"blue-green\"}, \"id\": 7}\n",
        "{\"execute\": \"test-child\", \"arguments\": {\"child\": {\"base-member\": 1, "
        "\"child-member\": \"s\", \"inner\": [{\"capability\": \"red\", \"state\": true}]}, "
        "\"colors\": [\"red\", \"green\"]}}\n",
        "{\"execute\": \"test-set-caps\", \"arguments\": {\"capabilities\": []}}"
        "{\"exec-oob\": \"test-oob\", \"id\": [1]}{\"execute\": \"test-noargs\"}"
        "{\"execute\": \"test-fail\"}\n",
        "{\"execute\": \"test-migrate\", \"arguments\": {\"uri\": \"caf\\u00e9 \\\"q\\\"\\n\"}}",
    };
    static const char *const hmp[] = {
        "info status", "info version", "info migrate", "info migrate_parameters",
        "info migrate_capabilities", "info cpus", "info registers -a", "help info",
        "xp /4xw 0x100", "xp /10c (1+2)*3", "xp /2gx 0x1000 - 8 * 2", "xp /3i 0",
        "pmemsave 0 4096 \"/tmp/out\"", "migrate -d tcp:127.0.0.1:4444",
        "migrate_set_parameter max-bandwidth 100", "migrate_set_parameter downtime-limit 1",
        "migrate_set_capability postcopy-ram on", "migrate_continue pre-switchover",
        "migrate_incoming unix:/tmp/m.sock", "stop", "cont", "system_reset",
    };
    static const char *const cmdline[][12] = {
        { "-m", "1G", "-smp", "2", "-kernel", "/boot/k", "-append", "a=b c" },
        { "-object", "memory-backend-memfd,id=mem,size=1G,share=on", "-machine",
          "q35,memory-backend=mem", "-incoming", "defer", "-S" },
        { "-nodefaults", "-display", "none", "-qmp", "unix:/tmp/q.sock,server=on,wait=off",
          "-serial", "file:/tmp/s.log", "-monitor", "unix:/tmp/h.sock,server=on,wait=off" },
        { "-nographic", "-chardev", "socket,id=c0,path=/tmp/c.sock,server=on,wait=off",
          "-mon", "chardev=c0,mode=control", "-name", "vm1,debug-threads=on" },
        { "-object", "memory-backend-file,id=m,size=512M,mem-path=/dev/hugepages,share=on,"
          "prealloc=on", "-accel", "kvm", "-cpu", "host", "-m", "512M,slots=1,maxmem=2G" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(qmp); i++) {
        g_autofree char *name = g_strdup_printf("request-%zu", i);
        put_str("qmp", name, qmp[i]);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(hmp); i++) {
        g_autofree char *name = g_strdup_printf("line-%zu", i);
        put_str("hmp", name, hmp[i]);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(cmdline); i++) {
        g_autofree char *name = g_strdup_printf("argv-%zu", i);
        g_autoptr(GByteArray) b = g_byte_array_new();
        /* argv[1..], each ended by a NUL (the target splits at NULs). */
        for (int k = 0; k < 12 && cmdline[i][k]; k++) {
            g_byte_array_append(b, (const guint8 *)cmdline[i][k], strlen(cmdline[i][k]) + 1);
        }
        put("cmdline", name, b->data, b->len - 1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        g_printerr("usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    gen_streams();
    gen_return_path();
    gen_text();
    return 0;
}
