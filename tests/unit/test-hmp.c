/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * HMP tests: expression and argument parsing, the generated help text,
 * command dispatch to QMP (through a fake qmp_dispatch that records calls
 * and returns canned results), output formats, xp on a fake guest RAM, and
 * the line editor on a memory chardev, including suspension by "migrate".
 */
#include "qemu/osdep.h"

#include "chardev/char.h"
#include "chardev/char-internal.h"
#include "hw/machine.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "monitor/qmp.h"
#include "qemu/bql.h"
#include "sysemu/cpus.h"
#include "sysemu/runstate.h"

JsonNode *qmp_human_monitor_command(JsonObject *args, GError **errp);

/* ---- test-local stand-ins ---- */

static GMutex test_bql;
static __thread bool test_bql_held;

void bql_lock(void)
{
    g_mutex_lock(&test_bql);
    test_bql_held = true;
}

void bql_unlock(void)
{
    test_bql_held = false;
    g_mutex_unlock(&test_bql);
}

bool bql_locked(void)
{
    return test_bql_held;
}

void qemu_system_shutdown_request(const char *reason)
{
}

Machine *current_machine;
static uint8_t fake_ram[256];

bool machine_ram_read(Machine *ms, uint64_t gpa, void *buf, uint64_t len, GError **errp)
{
    if (gpa >= sizeof(fake_ram) || len > sizeof(fake_ram) - gpa) {
        error_setg(errp, "not RAM");
        return false;
    }
    memcpy(buf, fake_ram + gpa, len);
    return true;
}

void cpu_dump_state(CPUState *cpu, GString *out)
{
    g_string_append_printf(out, "RAX=%016x\n", cpu->index);
}

/* Fake QMP: calls are logged as "name {json args}"; results are canned. */
static GPtrArray *qmp_log;
static GHashTable *qmp_results;     /* name -> JSON text, or "!desc" for an error */
static GQueue migrate_statuses = G_QUEUE_INIT;

JsonNode *qmp_dispatch(const char *name, JsonObject *args, GError **errp)
{
    const char *canned;
    g_autofree char *json = NULL;

    /* QMP handlers run with the BQL held. */
    g_assert_true(bql_locked());
    if (args) {
        JsonNode *n = json_node_new(JSON_NODE_OBJECT);

        json_node_set_object(n, args);
        json = json_to_string(n, false);
        json_node_unref(n);
    }
    g_ptr_array_add(qmp_log, g_strdup_printf("%s %s", name, json ? json : "-"));

    if (!strcmp(name, "query-migrate") && !g_queue_is_empty(&migrate_statuses)) {
        g_autofree char *st = g_queue_pop_head(&migrate_statuses);

        return json_from_string(st, NULL);
    }
    canned = g_hash_table_lookup(qmp_results, name);
    if (!canned) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "The command %s has not been found", name);
        return NULL;
    }
    if (canned[0] == '!') {
        error_setg(errp, "%s", canned + 1);
        return NULL;
    }
    return canned[0] ? json_from_string(canned, NULL) : NULL;
}

static void fake_reset(void)
{
    if (qmp_log) {
        g_ptr_array_free(qmp_log, true);
    }
    if (qmp_results) {
        g_hash_table_destroy(qmp_results);
    }
    qmp_log = g_ptr_array_new_with_free_func(g_free);
    qmp_results = g_hash_table_new(g_str_hash, g_str_equal);
    for (const char *const *c = (const char *const[]){
             "stop", "cont", "quit", "system_reset", "pmemsave", "migrate",
             "migrate-incoming", "migrate_cancel", "migrate-continue",
             "migrate-set-capabilities", "migrate-set-parameters",
             "migrate-start-postcopy", "migrate-pause", "migrate-recover", NULL }; *c; c++) {
        g_hash_table_insert(qmp_results, (gpointer)*c, (gpointer)"");
    }
}

static const char *last_call(void)
{
    g_assert_cmpuint(qmp_log->len, >, 0);
    return g_ptr_array_index(qmp_log, qmp_log->len - 1);
}

static char *run(const char *line)
{
    char *out;

    bql_lock();
    out = hmp_run_command_line(line);
    bql_unlock();
    return out;
}

#define assert_run(line, expected) do {         \
        g_autofree char *out_ = run(line);      \
        g_assert_cmpstr(out_, ==, expected);    \
    } while (0)

/* ---- expressions and arguments ---- */

/*
 * Nesting is bounded: parentheses and unary operators recurse, and a
 * monitor line can be 1 MiB long. Before the bound a few thousand levels
 * were fine and a million overflowed the stack.
 */
static void test_expr_depth(void)
{
    static const char unary[] = { '(', '-', '~', '+' };
    GError *err = NULL;
    int64_t v;

    for (size_t k = 0; k < G_N_ELEMENTS(unary); k++) {
        for (size_t depth = 63; depth <= 64; depth++) {
            GString *in = g_string_new(NULL);
            const char *p;

            for (size_t i = 0; i < depth; i++) {
                g_string_append_c(in, unary[k]);
            }
            g_string_append(in, "5");
            for (size_t i = 0; unary[k] == '(' && i < depth; i++) {
                g_string_append_c(in, ')');
            }
            p = in->str;
            if (depth == 63) {
                /* Deepest accepted: the innermost number is level 64. */
                g_assert_true(hmp_parse_expr(&p, &v, &err));
                g_assert_no_error(err);
                g_assert_cmpint(v, ==, unary[k] == '-' ? -5 : unary[k] == '~' ? ~5 : 5);
            } else {
                g_assert_false(hmp_parse_expr(&p, &v, &err));
                g_assert_cmpstr(err->message, ==,
                                "expression nested too deeply (more than 64 levels)");
                g_clear_error(&err);
            }
            g_string_free(in, TRUE);
        }
    }
    /* What human-monitor-command can carry: 1 MiB of each. */
    for (size_t k = 0; k < G_N_ELEMENTS(unary); k++) {
        g_autofree char *in = g_malloc(1 << 20);
        const char *p = in;

        memset(in, unary[k], (1 << 20) - 1);
        in[(1 << 20) - 1] = '\0';
        g_assert_false(hmp_parse_expr(&p, &v, &err));
        g_assert_cmpstr(err->message, ==, "expression nested too deeply (more than 64 levels)");
        g_clear_error(&err);
    }
}

static void test_expr(void)
{
    static const struct {
        const char *in;
        int64_t val;
        const char *rest;
    } ok[] = {
        { "0x1000", 0x1000, "" },
        { "  42  ", 42, "" },
        { "1+2*3", 7, "" },
        { "(1+2)*3", 9, "" },
        { "10 - 4 - 3", 3, "" },
        { "17 % 5", 2, "" },
        { "-8 / 2", -4, "" },
        { "4k", 4096, "" },
        { "2M+1", 2 * 1024 * 1024 + 1, "" },
        { "1G", 1LL << 30, "" },
        { "0x10 | 1 ^ 3", 0x12, "" },
        { "~0", -1, "" },
        { "010", 8, "" },
        { "4096 \"/tmp/x\"", 4096, "\"/tmp/x\"" },
        { "0xffffffffffffffff + 1", 0, "" },
    };
    static const struct {
        const char *in;
        const char *msg;
    } bad[] = {
        { "4096 /tmp/out", "invalid char 't' in expression" },
        { "", "unexpected end of expression" },
        { "1+", "unexpected end of expression" },
        { "(1", "')' expected" },
        { "1/0", "division by zero" },
        { "5%0", "division by zero" },
        { "99999999999999999999", "number too large" },
        { "$eax", "register values are not supported in expressions" },
        { "\"abc\"", "invalid char '\"' in expression" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        const char *p = ok[i].in;
        int64_t v = -12345;
        GError *err = NULL;

        g_assert_true(hmp_parse_expr(&p, &v, &err));
        g_assert_no_error(err);
        g_assert_cmpint(v, ==, ok[i].val);
        g_assert_cmpstr(p, ==, ok[i].rest);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        const char *p = bad[i].in;
        int64_t v;
        GError *err = NULL;

        g_assert_false(hmp_parse_expr(&p, &v, &err));
        g_assert_cmpstr(err->message, ==, bad[i].msg);
        g_error_free(err);
    }
}

static void test_size(void)
{
    uint64_t v;

    g_assert_true(hmp_parse_size("10", 1 << 20, &v));
    g_assert_cmpuint(v, ==, 10485760);
    g_assert_true(hmp_parse_size("10", 1, &v));
    g_assert_cmpuint(v, ==, 10);
    g_assert_true(hmp_parse_size("1G", 1 << 20, &v));
    g_assert_cmpuint(v, ==, 1ULL << 30);
    g_assert_true(hmp_parse_size("512k", 1, &v));
    g_assert_cmpuint(v, ==, 512 * 1024);
    g_assert_true(hmp_parse_size("1.5M", 1, &v));
    g_assert_cmpuint(v, ==, 1536 * 1024);
    g_assert_true(hmp_parse_size("100B", 1 << 20, &v));
    g_assert_cmpuint(v, ==, 100);
    g_assert_false(hmp_parse_size("1x", 1, &v));
    g_assert_false(hmp_parse_size("abc", 1, &v));
    g_assert_false(hmp_parse_size("", 1, &v));
    g_assert_false(hmp_parse_size("-1", 1, &v));
    g_assert_false(hmp_parse_size("99999999999E", 1, &v));
}

static char *parse_to_json(const char *cmdname, const char *line, GError **errp)
{
    const HMPCommand *c = hmp_find_command(hmp_cmd_table, cmdname);
    JsonObject *o;
    JsonNode *n;
    char *s;

    if (!c) {
        c = hmp_find_command(hmp_info_table, cmdname);
    }
    g_assert_nonnull(c);
    o = hmp_parse_arguments(c, line, errp);
    if (!o) {
        return NULL;
    }
    n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    s = json_to_string(n, false);
    json_node_unref(n);
    return s;
}

static void test_arguments(void)
{
    static const struct {
        const char *cmd, *line, *json, *err;
    } cases[] = {
        { "pmemsave", "0x1000 4096 \"/tmp/out\"",
          "{\"val\":4096,\"size\":4096,\"filename\":\"/tmp/out\"}", NULL },
        { "pmemsave", "0 4k out.bin", "{\"val\":0,\"size\":4096,\"filename\":\"out.bin\"}", NULL },
        { "pmemsave", "0 4096 /tmp/out", NULL, "invalid char 't' in expression" },
        { "pmemsave", "0 4096", NULL, "pmemsave: filename expected" },
        { "pmemsave", "0 1 \"a\\\"b\"", "{\"val\":0,\"size\":1,\"filename\":\"a\\\"b\"}", NULL },
        { "pmemsave", "0 1 \"abc", NULL, "unterminated string" },
        { "migrate", "-d tcp:1.2.3.4:5", "{\"detach\":true,\"uri\":\"tcp:1.2.3.4:5\"}", NULL },
        { "migrate", "-r -d unix:/s", "{\"resume\":true,\"detach\":true,\"uri\":\"unix:/s\"}", NULL },
        { "migrate", "tcp:h:1", "{\"uri\":\"tcp:h:1\"}", NULL },
        { "migrate", "-x tcp:h:1", NULL, "migrate: unsupported option -x" },
        { "migrate", "", NULL, "migrate: string expected" },
        { "migrate", "a b", NULL, "migrate: extraneous characters at the end of line" },
        { "xp", "/8xb 0x1000", "{\"count\":8,\"format\":\"x\",\"size\":1,\"addr\":4096}", NULL },
        { "xp", "0x10", "{\"count\":1,\"addr\":16}", NULL },
        { "xp", "/2g 8", "{\"count\":2,\"size\":8,\"addr\":8}", NULL },
        { "xp", "/q 0", NULL, "invalid char in format: 'q'" },
        { "xp", "", NULL, "unexpected end of expression" },
        { "migrate_set_capability", "events on",
          "{\"capability\":\"events\",\"state\":true}", NULL },
        { "migrate_set_capability", "events maybe", NULL, "Expected 'on' or 'off'" },
        { "migrate_set_capability", "events", NULL, "Expected 'on' or 'off'" },
        { "help", "info   status ", "{\"name\":\"info   status\"}", NULL },
        { "help", "", "{}", NULL },
        { "cont", " ", "{}", NULL },
        { "cont", "x", NULL, "cont|c: extraneous characters at the end of line" },
        { "registers", "-a", "{\"cpustate_all\":true}", NULL },
        { "registers", "-z", NULL, "registers: unsupported option -z" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;
        g_autofree char *json = parse_to_json(cases[i].cmd, cases[i].line, &err);

        if (cases[i].json) {
            g_assert_no_error(err);
            g_assert_cmpstr(json, ==, cases[i].json);
        } else {
            g_assert_null(json);
            g_assert_nonnull(err);
            g_assert_cmpstr(err->message, ==, cases[i].err);
            g_error_free(err);
        }
    }
}

static void test_find_command(void)
{
    g_assert_cmpstr(hmp_find_command(hmp_cmd_table, "c")->name, ==, "cont|c");
    g_assert_cmpstr(hmp_find_command(hmp_cmd_table, "cont")->name, ==, "cont|c");
    g_assert_cmpstr(hmp_find_command(hmp_cmd_table, "?")->name, ==, "help|?");
    g_assert_null(hmp_find_command(hmp_cmd_table, "con"));
    g_assert_null(hmp_find_command(hmp_cmd_table, "cont|c"));
    g_assert_nonnull(hmp_find_command(hmp_info_table, "migrate_parameters"));
}

/* ---- help ---- */

static void test_help(void)
{
    g_autofree char *all = run("help");
    g_autoptr(GString) expect = g_string_new(NULL);
    g_auto(GStrv) lines = NULL;

    /* The generated text: sorted "NAME PARAMS -- HELP" lines, info ones after. */
    g_assert_true(g_str_has_prefix(hmp_cmd_help_text,
                                   "cont|c  -- resume the guest (QMP cont)\n"));
    g_assert_nonnull(strstr(hmp_cmd_help_text,
                            "\nmigrate [-d] [-b] [-i] [-r] uri -- migrate to uri"));
    g_assert_nonnull(strstr(hmp_cmd_help_text,
                            "\npmemsave addr size file -- "));
    g_assert_nonnull(strstr(hmp_info_help_text,
                            "info migrate_parameters  -- show the migration parameters\n"));
    lines = g_strsplit(hmp_cmd_help_text, "\n", -1);
    for (int i = 1; lines[i] && *lines[i]; i++) {
        g_assert_cmpint(strcmp(lines[i - 1], lines[i]), <, 0);
    }

    /* "help" prints both tables, with CR LF line ends. */
    for (const char *p = hmp_cmd_help_text; *p; p++) {
        if (*p == '\n') {
            g_string_append_c(expect, '\r');
        }
        g_string_append_c(expect, *p);
    }
    g_assert_true(g_str_has_prefix(all, expect->str));
    g_assert_nonnull(strstr(all, "info status  -- show the VM run state"));

    assert_run("help c", "cont|c  -- resume the guest (QMP cont)\r\n");
    assert_run("? cont", "cont|c  -- resume the guest (QMP cont)\r\n");
    assert_run("help info status", "info status  -- show the VM run state (running, paused, ...)\r\n");
    assert_run("help foo", "unknown command: 'foo'\r\n");
    assert_run("help info foo", "unknown command: 'info foo'\r\n");
    {
        g_autofree char *info = run("info");
        g_autofree char *help_info = run("help info");

        g_assert_true(g_str_has_prefix(info, "info cpus  -- "));
        g_assert_cmpstr(info, ==, help_info);
    }
}

/* ---- dispatch to QMP ---- */

static void test_dispatch(void)
{
    fake_reset();
    assert_run("stop", "");
    g_assert_cmpstr(last_call(), ==, "stop -");
    assert_run("  c  ", "");
    g_assert_cmpstr(last_call(), ==, "cont -");
    assert_run("q", "");
    g_assert_cmpstr(last_call(), ==, "quit -");
    assert_run("", "");
    assert_run("foo bar", "unknown command: 'foo'\r\n");
    assert_run("info foo", "unknown command: 'info foo'\r\n");
    assert_run("cont extra",
               "cont|c: extraneous characters at the end of line\r\n"
               "Try \"help cont\" for more information\r\n");
    assert_run("pmemsave 0 4096 /tmp/out",
               "invalid char 't' in expression\r\n"
               "Try \"help pmemsave\" for more information\r\n");
    assert_run("info registers -z",
               "registers: unsupported option -z\r\n"
               "Try \"help info registers\" for more information\r\n");

    assert_run("pmemsave 0x1000 2*4096 \"/tmp/m.bin\"", "");
    g_assert_cmpstr(last_call(), ==,
                    "pmemsave {\"val\":4096,\"size\":8192,\"filename\":\"/tmp/m.bin\"}");

    g_hash_table_insert(qmp_results, (gpointer)"cont",
                        (gpointer)"!Migration is not finalized yet");
    assert_run("cont", "Error: Migration is not finalized yet\r\n");
}

static void test_migration_commands(void)
{
    fake_reset();
    assert_run("migrate -d tcp:127.0.0.1:4444", "");
    g_assert_cmpstr(last_call(), ==, "migrate {\"uri\":\"tcp:127.0.0.1:4444\"}");
    assert_run("migrate -b -i tcp:h:1", "terminal does not allow synchronous migration, "
               "continuing detached\r\n");
    g_assert_cmpstr(last_call(), ==, "migrate {\"uri\":\"tcp:h:1\",\"blk\":true,\"inc\":true}");
    assert_run("migrate_incoming unix:/tmp/m", "");
    g_assert_cmpstr(last_call(), ==, "migrate-incoming {\"uri\":\"unix:/tmp/m\"}");
    assert_run("migrate_cancel", "");
    g_assert_cmpstr(last_call(), ==, "migrate_cancel -");
    assert_run("migrate_start_postcopy", "");
    g_assert_cmpstr(last_call(), ==, "migrate-start-postcopy -");
    assert_run("migrate_pause", "");
    g_assert_cmpstr(last_call(), ==, "migrate-pause -");
    assert_run("migrate_recover tcp:0:4444", "");
    g_assert_cmpstr(last_call(), ==, "migrate-recover {\"uri\":\"tcp:0:4444\"}");
    assert_run("migrate -d -r tcp:h:2", "");
    g_assert_cmpstr(last_call(), ==, "migrate {\"uri\":\"tcp:h:2\",\"resume\":true}");
    assert_run("migrate_continue pre-switchover", "");
    g_assert_cmpstr(last_call(), ==, "migrate-continue {\"state\":\"pre-switchover\"}");
    assert_run("migrate_continue bogus", "Error: invalid parameter value: bogus\r\n");

    assert_run("migrate_set_capability postcopy-ram on", "");
    g_assert_cmpstr(last_call(), ==, "migrate-set-capabilities "
                    "{\"capabilities\":[{\"capability\":\"postcopy-ram\",\"state\":true}]}");
    assert_run("migrate_set_capability bogus on", "Error: invalid parameter value: bogus\r\n");
    assert_run("migrate_set_capability events yes",
               "Expected 'on' or 'off'\r\n"
               "Try \"help migrate_set_capability\" for more information\r\n");

    static const struct {
        const char *line, *call, *out;
    } params[] = {
        { "max-bandwidth 10", "{\"max-bandwidth\":10485760}", "" },
        { "max-bandwidth 1G", "{\"max-bandwidth\":1073741824}", "" },
        { "max-bandwidth 1x", NULL, "Error: Invalid size 1x\r\n" },
        { "max-postcopy-bandwidth 10", "{\"max-postcopy-bandwidth\":10}", "" },
        { "xbzrle-cache-size 1M", "{\"xbzrle-cache-size\":1048576}", "" },
        { "downtime-limit 500", "{\"downtime-limit\":500}", "" },
        { "downtime-limit abc", NULL,
          "Error: Parameter 'downtime-limit' expects a non-negative number below 2^64\r\n" },
        { "announce-initial 1k", "{\"announce-initial\":1024}", "" },
        { "cpu-throttle-initial 30", "{\"cpu-throttle-initial\":30}", "" },
        { "cpu-throttle-initial 300", NULL,
          "Error: Parameter 'cpu-throttle-initial' expects uint8_t\r\n" },
        { "x-checkpoint-delay 2000", "{\"x-checkpoint-delay\":2000}", "" },
        { "block-incremental on", "{\"block-incremental\":true}", "" },
        { "cpu-throttle-tailslow off", "{\"cpu-throttle-tailslow\":false}", "" },
        { "block-incremental maybe", NULL,
          "Error: Parameter 'block-incremental' expects 'on' or 'off'\r\n" },
        { "tls-creds abc", "{\"tls-creds\":\"abc\"}", "" },
        { "multifd-compression zstd", "{\"multifd-compression\":\"zstd\"}", "" },
        { "block-bitmap-mapping x", NULL,
          "Error: The block-bitmap-mapping parameter can only be set through QMP\r\n" },
        { "foo 1", NULL, "Error: invalid parameter value: foo\r\n" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(params); i++) {
        g_autofree char *line = g_strdup_printf("migrate_set_parameter %s", params[i].line);
        guint before = qmp_log->len;

        assert_run(line, params[i].out);
        if (params[i].call) {
            g_autofree char *call = g_strdup_printf("migrate-set-parameters %s",
                                                    params[i].call);
            g_assert_cmpstr(last_call(), ==, call);
        } else {
            g_assert_cmpuint(qmp_log->len, ==, before);
        }
    }
}

/* ---- output formats ---- */

static void test_info_formats(void)
{
    fake_reset();
    g_hash_table_insert(qmp_results, (gpointer)"query-status",
        (gpointer)"{\"status\": \"running\", \"singlestep\": false, \"running\": true}");
    assert_run("info status", "VM status: running\r\n");
    g_hash_table_insert(qmp_results, (gpointer)"query-status",
        (gpointer)"{\"status\": \"paused\", \"singlestep\": false, \"running\": false}");
    assert_run("info status", "VM status: paused\r\n");
    g_hash_table_insert(qmp_results, (gpointer)"query-status",
        (gpointer)"{\"status\": \"postmigrate\", \"singlestep\": false, \"running\": false}");
    assert_run("info status", "VM status: paused (postmigrate)\r\n");

    g_hash_table_insert(qmp_results, (gpointer)"query-version",
        (gpointer)"{\"qemu\": {\"major\": 0, \"minor\": 1, \"micro\": 0}, \"package\": \" godwit\"}");
    assert_run("info version", "0.1.0 godwit\r\n");
    g_hash_table_insert(qmp_results, (gpointer)"query-name", (gpointer)"{\"name\": \"vm1\"}");
    assert_run("info name", "vm1\r\n");
    g_hash_table_insert(qmp_results, (gpointer)"query-name", (gpointer)"{}");
    assert_run("info name", "");
    g_hash_table_insert(qmp_results, (gpointer)"query-kvm",
                        (gpointer)"{\"enabled\": true, \"present\": true}");
    assert_run("info kvm", "kvm support: enabled\r\n");
    g_hash_table_insert(qmp_results, (gpointer)"query-cpus-fast",
        (gpointer)"[{\"cpu-index\": 0, \"thread-id\": 1234}, {\"cpu-index\": 1, \"thread-id\": 1235}]");
    assert_run("info cpus", "* CPU #0: thread_id=1234\r\n  CPU #1: thread_id=1235\r\n");

    g_hash_table_insert(qmp_results, (gpointer)"query-migrate-capabilities",
        (gpointer)"[{\"state\": false, \"capability\": \"xbzrle\"},"
                  " {\"state\": true, \"capability\": \"postcopy-ram\"}]");
    assert_run("info migrate_capabilities", "xbzrle: off\r\npostcopy-ram: on\r\n");

    g_hash_table_insert(qmp_results, (gpointer)"query-migrate-parameters",
        (gpointer)"{\"announce-initial\": 50, \"announce-rounds\": 5, \"compress-wait-thread\": true,"
                  " \"tls-creds\": \"\", \"max-bandwidth\": 134217728, \"downtime-limit\": 300,"
                  " \"x-checkpoint-delay\": 20000, \"multifd-compression\": \"none\","
                  " \"multifd-zlib-level\": 1, \"xbzrle-cache-size\": 67108864,"
                  " \"max-postcopy-bandwidth\": 0, \"tls-authz\": null, \"x-godwit-policy\": 3}");
    assert_run("info migrate_parameters",
               "announce-initial: 50 ms\r\n"
               "announce-rounds: 5\r\n"
               "compress-wait-thread: on\r\n"
               "tls-creds: ''\r\n"
               "max-bandwidth: 134217728 bytes/second\r\n"
               "downtime-limit: 300 ms\r\n"
               "x-checkpoint-delay: 20000 ms\r\n"
               "multifd-compression: none\r\n"
               "xbzrle-cache-size: 67108864 bytes\r\n"
               "max-postcopy-bandwidth: 0\r\n"
               "tls-authz: ''\r\n"
               "x-godwit-policy: 3\r\n");

    g_hash_table_insert(qmp_results, (gpointer)"query-migrate", (gpointer)"{}");
    assert_run("info migrate", "");
    g_hash_table_insert(qmp_results, (gpointer)"query-migrate",
        (gpointer)"{\"status\": \"completed\", \"total-time\": 16841, \"downtime\": 3,"
                  " \"setup-time\": 1, \"ram\": {\"transferred\": 666007552, \"mbps\": 316.4,"
                  " \"remaining\": 0, \"total\": 537403392, \"duplicate\": 1101, \"skipped\": 0,"
                  " \"normal\": 162280, \"normal-bytes\": 664698880, \"dirty-sync-count\": 2,"
                  " \"page-size\": 4096, \"multifd-bytes\": 0, \"pages-per-second\": 10230,"
                  " \"dirty-pages-rate\": 0, \"postcopy-requests\": 841,"
                  " \"precopy-bytes\": 132206592, \"downtime-bytes\": 0,"
                  " \"postcopy-bytes\": 533800960, \"dirty-sync-missed-zero-copy\": 0}}");
    assert_run("info migrate",
               "Migration status: completed\r\n"
               "total time: 16841 ms\r\n"
               "downtime: 3 ms\r\n"
               "setup: 1 ms\r\n"
               "transferred ram: 650398 kbytes\r\n"
               "throughput: 316.40 mbps\r\n"
               "remaining ram: 0 kbytes\r\n"
               "total ram: 524808 kbytes\r\n"
               "duplicate: 1101 pages\r\n"
               "skipped: 0 pages\r\n"
               "normal: 162280 pages\r\n"
               "normal bytes: 649120 kbytes\r\n"
               "dirty sync count: 2\r\n"
               "page size: 4 kbytes\r\n"
               "multifd bytes: 0 kbytes\r\n"
               "pages-per-second: 10230\r\n"
               "postcopy request count: 841\r\n"
               "precopy ram: 129108 kbytes\r\n"
               "postcopy ram: 521290 kbytes\r\n");
    g_hash_table_insert(qmp_results, (gpointer)"query-migrate",
        (gpointer)"{\"status\": \"failed\", \"error-desc\": \"Connection refused\"}");
    assert_run("info migrate", "Migration status: failed (Connection refused)\r\n");
    g_hash_table_insert(qmp_results, (gpointer)"query-migrate",
        (gpointer)"{\"status\": \"completed\", \"postcopy-blocktime\": 0,"
                  " \"postcopy-vcpu-blocktime\": [0, 9366],"
                  " \"socket-address\": [{\"port\": \"44460\", \"ipv4\": true,"
                  " \"host\": \"127.0.0.1\", \"type\": \"inet\"}]}");
    assert_run("info migrate",
               "Migration status: completed\r\n"
               "postcopy blocktime: 0\r\n"
               "postcopy vcpu blocktime: 0,9366\r\n"
               "socket address: [\r\n"
               "\ttcp:127.0.0.1:44460\r\n"
               "]\r\n");
}

static void test_xp(void)
{
    Machine m = { 0 };
    CPUState cpu0 = { .index = 0 };
    CPUState *cpus[1] = { &cpu0 };

    for (int i = 0; i < (int)sizeof(fake_ram); i++) {
        fake_ram[i] = i;
    }
    assert_run("xp 0", "Error: no guest memory\r\n");
    m.smp_cpus = 1;
    m.cpus = cpus;
    current_machine = &m;
    assert_run("xp /8xb 0x10",
               "0000000000000010: 0x10 0x11 0x12 0x13 0x14 0x15 0x16 0x17\r\n");
    assert_run("xp /2xg 0", "0000000000000000: 0x0706050403020100 0x0f0e0d0c0b0a0908\r\n");
    /* Size sticks from the last command (g), format changes. */
    assert_run("xp /3u 0",
               "0000000000000000:   506097522914230528  1084818905618843912\r\n"
               "0000000000000010:  1663540288323457296\r\n");
    /* A line that runs past the end of RAM fails as a whole. */
    assert_run("xp /2dh 0xfe", "00000000000000fe: Cannot access memory\r\n");
    fake_ram[0xf0] = 0xff;
    fake_ram[0xf1] = 0xff;
    assert_run("xp /2dh 0xf0", "00000000000000f0:    -1 -3086\r\n");
    assert_run("xp /3c 0x41", "0000000000000041: 'A' 'B' 'C'\r\n");
    assert_run("xp /1c 10", "000000000000000a: '\\n'\r\n");
    assert_run("xp /2ob 8", "0000000000000008: 010 011\r\n");
    assert_run("xp /4xw 0x1000", "0000000000001000: Cannot access memory\r\n");
    assert_run("xp /2i 0", "Error: instruction dumps (/i) are not supported\r\n");
    assert_run("info registers", "RAX=0000000000000000\r\n");
    current_machine = NULL;
}

/* ---- line editor on a chardev ---- */

static bool log_has(const char *entry)
{
    for (guint i = 0; i < qmp_log->len; i++) {
        if (!strcmp(g_ptr_array_index(qmp_log, i), entry)) {
            return true;
        }
    }
    return false;
}

static void type(Chardev *be, const char *s)
{
    chardev_be_deliver(be, (const uint8_t *)s, strlen(s));
}

static void test_line_editor(void)
{
    Chardev *be = chardev_memory_new("hmp-mem");
    GError *err = NULL;
    Monitor *mon;
    g_autofree char *out = NULL;
    gint64 end;

    fake_reset();
    mon = hmp_monitor_new(be, &err);
    g_assert_no_error(err);
    g_assert_nonnull(mon);
    out = chardev_memory_take(be);
    g_assert_cmpstr(out, ==,
                    "godwit 0.1.0 monitor - type 'help' for more information\r\n(qemu) ");
    g_free(out);

    /* Backspace, CR LF, echo. */
    type(be, "stx\x7fop\r\n");
    g_assert_true(log_has("stop -"));
    out = chardev_memory_take(be);
    g_assert_cmpstr(out, ==, "stx\b \bop\r\n(qemu) ");
    g_free(out);

    /* C-u kills the line; history recalls "stop" with the up arrow. */
    type(be, "abc\x15\x1b[A\r");
    g_assert_cmpuint(qmp_log->len, ==, 2);
    g_assert_cmpstr(last_call(), ==, "stop -");

    /* Unknown command, LF only. */
    g_free(chardev_memory_take(be));
    type(be, "nope\n");
    out = chardev_memory_take(be);
    g_assert_cmpstr(out, ==, "nope\r\nunknown command: 'nope'\r\n(qemu) ");
    g_free(out);

    /* migrate without -d: input typed meanwhile waits for the migration. */
    g_queue_push_tail(&migrate_statuses, g_strdup("{\"status\": \"setup\"}"));
    g_queue_push_tail(&migrate_statuses, g_strdup("{\"status\": \"active\"}"));
    g_queue_push_tail(&migrate_statuses,
                      g_strdup("{\"status\": \"failed\", \"error-desc\": \"boom\"}"));
    type(be, "migrate tcp:127.0.0.1:1\rcont\r");
    g_assert_true(log_has("migrate {\"uri\":\"tcp:127.0.0.1:1\"}"));
    g_assert_false(log_has("cont -"));
    end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!log_has("cont -")) {
        g_assert_cmpint(g_get_monotonic_time(), <, end);
        g_main_context_iteration(NULL, true);
    }
    g_assert_true(g_queue_is_empty(&migrate_statuses));
    out = chardev_memory_take(be);
    g_assert_cmpstr(out, ==, "migrate tcp:127.0.0.1:1\r\nError: boom\r\n(qemu) cont\r\n(qemu) ");
    hmp_monitor_cleanup_all();
    chardev_cleanup_all();
}

static void test_human_monitor_command(void)
{
    JsonObject *args = json_object_new();
    JsonNode *r;

    fake_reset();
    json_object_set_string_member(args, "command-line", "help cont");
    bql_lock();
    r = qmp_human_monitor_command(args, NULL);
    bql_unlock();
    g_assert_cmpstr(json_node_get_string(r), ==, "cont|c  -- resume the guest (QMP cont)\r\n");
    json_node_unref(r);
    json_object_unref(args);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    fake_reset();
    g_test_add_func("/hmp/parse/expr", test_expr);
    g_test_add_func("/hmp/parse/expr-depth", test_expr_depth);
    g_test_add_func("/hmp/parse/size", test_size);
    g_test_add_func("/hmp/parse/arguments", test_arguments);
    g_test_add_func("/hmp/table/find", test_find_command);
    g_test_add_func("/hmp/help", test_help);
    g_test_add_func("/hmp/dispatch", test_dispatch);
    g_test_add_func("/hmp/migration", test_migration_commands);
    g_test_add_func("/hmp/info-formats", test_info_formats);
    g_test_add_func("/hmp/xp", test_xp);
    g_test_add_func("/hmp/line-editor", test_line_editor);
    g_test_add_func("/hmp/human-monitor-command", test_human_monitor_command);
    return g_test_run();
}
