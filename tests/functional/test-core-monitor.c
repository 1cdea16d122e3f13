/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Core functional tests of the monitors: QMP protocol errors (bad commands,
 * bad JSON, huge input, clients that go away, several clients) and HMP via
 * human-monitor-command and via a -monitor socket.
 */
#include "qemu/osdep.h"

#include "libgw.h"

#define BOOT_TIMEOUT_MS 60000
#define HUGE_TIMEOUT_MS 60000

/*
 * The idle guest with a second QMP socket (one client per socket, as in
 * QEMU) and an HMP socket.
 */
static GwVM *start_idle(const char *idle)
{
    GwVM *vm = gw_vm_startf("-m 32M -kernel '%s' "
                            "-qmp unix:@DIR@/qmp2.sock,server=on,wait=off "
                            "-monitor unix:@DIR@/hmp.sock,server=on,wait=off",
                            idle);
    gw_serial_wait_for(vm, "idle: ready", BOOT_TIMEOUT_MS);
    return vm;
}

static GwQmp *open_qmp2(GwVM *vm, bool negotiate)
{
    g_autofree char *path = gw_vm_path(vm, "qmp2.sock");

    return gw_qmp_open(path, vm, negotiate, 10000);
}

/* The VM still answers on the main connection. */
static void assert_alive(GwVM *vm)
{
    JsonNode *r = gw_qmp_assert_success(vm, "{'execute': 'query-status'}");
    g_assert_true(JSON_NODE_HOLDS_OBJECT(r));
    json_node_unref(r);
}

/* Raw bytes in, one error message out (no id: nothing to match it by). */
static void raw_expect_error(GwVM *vm, const char *raw, const char *desc)
{
    JsonNode *m;

    gw_qmp_raw_send(vm, raw, strlen(raw));
    m = gw_qmp_receive(vm, 10000);
    g_assert_cmpstr(gw_reply_error_class(m), ==, "GenericError");
    if (!strstr(gw_reply_error_desc(m), desc)) {
        g_test_message("for %s: got \"%s\", wanted \"%s\"", raw,
                       gw_reply_error_desc(m), desc);
        g_assert_not_reached();
    }
    json_node_unref(m);
}

static void test_greeting_and_negotiation(GwVM *vm)
{
    GwQmp *q = open_qmp2(vm, false);
    JsonObject *g = json_node_get_object(gw_qmp_greeting(q));
    JsonObject *qmp = json_object_get_object_member(g, "QMP");
    JsonObject *ver = json_object_get_object_member(qmp, "version");
    JsonNode *r;

    g_assert_nonnull(json_object_get_object_member(ver, "qemu"));
    g_assert_true(json_object_has_member(ver, "package"));
    g_assert_nonnull(json_object_get_array_member(qmp, "capabilities"));

    r = gw_qmp_conn(q, "{'execute': 'query-status'}");
    g_assert_cmpstr(gw_reply_error_class(r), ==, "CommandNotFound");
    g_assert_nonnull(strstr(gw_reply_error_desc(r),
                            "Expecting capabilities negotiation with "
                            "'qmp_capabilities'"));
    json_node_unref(r);

    r = gw_qmp_conn(q, "{'execute': 'qmp_capabilities'}");
    g_assert_nonnull(gw_reply_return(r));
    json_node_unref(r);
    r = gw_qmp_conn(q, "{'execute': 'qmp_capabilities'}");
    g_assert_cmpstr(gw_reply_error_class(r), ==, "CommandNotFound");
    g_assert_nonnull(strstr(gw_reply_error_desc(r),
                            "Capabilities negotiation is already complete"));
    json_node_unref(r);

    /* Any JSON value is a valid id and comes back verbatim. */
    r = gw_qmp_conn(q, "{'execute': 'query-status', 'id': {'a': [1, 'x']}}");
    g_assert_nonnull(gw_reply_return(r));
    json_node_unref(r);
    gw_qmp_close(q);
}

static void test_bad_commands(GwVM *vm)
{
    gw_qmp_expect_error(vm, "CommandNotFound",
                        "The command no-such-command has not been found",
                        "{'execute': 'no-such-command'}");
    gw_qmp_expect_error(vm, "GenericError", "Parameter 'filename' is missing",
                        "{'execute': 'pmemsave', "
                        "'arguments': {'val': 0, 'size': 4096}}");
    gw_qmp_expect_error(vm, "GenericError", "Parameter 'bogus' is unexpected",
                        "{'execute': 'query-status', "
                        "'arguments': {'bogus': 1}}");
    /* QEMU: "Invalid parameter type for 'val', expected: integer" */
    gw_qmp_expect_error(vm, "GenericError", "'val'",
                        "{'execute': 'pmemsave', 'arguments': "
                        "{'val': 'zero', 'size': 4096, 'filename': '/dev/null'}}");
    gw_qmp_expect_error(vm, "GenericError", "'size'",
                        "{'execute': 'pmemsave', 'arguments': "
                        "{'val': 0, 'size': true, 'filename': '/dev/null'}}");
    gw_qmp_expect_error(vm, "GenericError",
                        "QMP input member 'bogus' is unexpected",
                        "{'execute': 'query-status', 'bogus': 1}");
    gw_qmp_expect_error(vm, "GenericError",
                        "QMP input member 'arguments' must be an object",
                        "{'execute': 'query-status', 'arguments': [1]}");
    gw_qmp_expect_error(vm, "GenericError",
                        "QMP input member 'execute' must be a string",
                        "{'execute': 42}");
    gw_qmp_expect_error(vm, "GenericError", "QMP input lacks member 'execute'",
                        "{'arguments': {}}");
    assert_alive(vm);
}

static void test_bad_json(GwVM *vm)
{
    raw_expect_error(vm, "garbage\n", "JSON parse error");
    raw_expect_error(vm, "[1, 2]\n", "QMP input must be a JSON object");
    raw_expect_error(vm, "\"just a string\"\n",
                     "QMP input must be a JSON object");
    raw_expect_error(vm, "42\n", "QMP input must be a JSON object");
    assert_alive(vm);
}

/*
 * Send @len raw bytes of oversized input. The VM may reject it with an
 * error (QEMU accepts messages up to 64 MiB and complains about their
 * content) or drop the client (a size limit); either way it must not
 * crash or hang, and must answer afterwards, on a new connection if it
 * closed this one.
 */
static void send_huge(GwVM *vm, const char *buf, size_t len, const char *what)
{
    GwQmp *q = gw_vm_qmp(vm);
    JsonNode *m;

    gw_qmp_raw_send(vm, buf, len);
    m = gw_qmp_conn_try_receive(q, HUGE_TIMEOUT_MS);
    if (m) {
        g_assert_cmpstr(gw_reply_error_class(m), ==, "GenericError");
        g_test_message("%s: %.200s", what, gw_reply_error_desc(m));
        json_node_unref(m);
    } else {
        g_assert_true(gw_qmp_conn_closed(q));
    }
    if (gw_qmp_conn_closed(q) || gw_qmp_conn_wait_closed(q, 200)) {
        g_test_message("%s: the VM closed the connection", what);
        gw_vm_qmp_reconnect(vm);
    }
    g_assert_true(gw_vm_running(vm));
    assert_alive(vm);
}

static void test_huge_input(GwVM *vm)
{
    static const char head[] =
        "{\"execute\": \"query-status\", \"arguments\": {\"x\": \"";
    static const char tail[] = "\"}}\n";
    gsize len = 1 << 20;
    g_autoptr(GString) big = g_string_new(head);

    /* A command with a 1 MiB argument. */
    for (gsize i = 0; i < len; i++) {
        g_string_append_c(big, 'A');
    }
    g_string_append(big, tail);
    send_huge(vm, big->str, big->len, "1 MiB argument");

    /* A 1 MiB line of one bad token. */
    g_string_truncate(big, 0);
    for (gsize i = 0; i < len; i++) {
        g_string_append_c(big, 'x');
    }
    g_string_append_c(big, '\n');
    send_huge(vm, big->str, big->len, "1 MiB bad token");
}

static void test_client_disconnect(GwVM *vm)
{
    static const char half[] = "{\"execute\": \"query-st";
    static const char whole[] = "{\"execute\": \"query-status\"}\n";
    GwQmp *q;
    JsonNode *r;

    /* Half a command, then gone. */
    q = open_qmp2(vm, true);
    gw_qmp_conn_raw_send(q, half, strlen(half));
    gw_qmp_close(q);
    /* A new client starts from a clean parser and a fresh negotiation. */
    q = open_qmp2(vm, true);
    r = gw_qmp_conn(q, "{'execute': 'query-status'}");
    g_assert_nonnull(gw_reply_return(r));
    json_node_unref(r);
    /* A whole command whose reply nobody reads. */
    gw_qmp_conn_raw_send(q, whole, strlen(whole));
    gw_qmp_close(q);
    q = open_qmp2(vm, true);
    r = gw_qmp_conn(q, "{'execute': 'query-status'}");
    g_assert_nonnull(gw_reply_return(r));
    json_node_unref(r);
    gw_qmp_close(q);

    /* The main connection can go away and come back too. */
    gw_qmp_raw_send(vm, half, strlen(half));
    gw_vm_qmp_reconnect(vm);
    assert_alive(vm);
}

static void test_several_clients(GwVM *vm)
{
    GwQmp *q2 = open_qmp2(vm, true);
    GwQmp *q1 = gw_vm_qmp(vm);
    JsonNode *r, *e1, *e2;

    gw_qmp_clear_events(vm);
    g_assert_nonnull(gw_qmp_greeting(q2));

    /* A command on one client: its events reach both. */
    r = gw_qmp_conn(q1, "{'execute': 'stop'}");
    g_assert_nonnull(gw_reply_return(r));
    json_node_unref(r);
    e1 = gw_qmp_conn_wait_event(q1, "STOP", NULL, NULL, 5000);
    e2 = gw_qmp_conn_wait_event(q2, "STOP", NULL, NULL, 5000);
    g_assert_cmpint(gw_event_timestamp_us(e1), ==, gw_event_timestamp_us(e2));
    json_node_unref(e1);
    json_node_unref(e2);

    r = gw_qmp_conn(q2, "{'execute': 'cont'}");
    g_assert_nonnull(gw_reply_return(r));
    json_node_unref(r);
    json_node_unref(gw_qmp_conn_wait_event(q1, "RESUME", NULL, NULL, 5000));
    json_node_unref(gw_qmp_conn_wait_event(q2, "RESUME", NULL, NULL, 5000));

    /* Interleaved commands get their own replies. */
    r = gw_qmp_conn(q2, "{'execute': 'query-status', 'id': 'two'}");
    g_assert_nonnull(gw_reply_return(r));
    json_node_unref(r);
    r = gw_qmp_conn(q1, "{'execute': 'query-status', 'id': 'one'}");
    g_assert_nonnull(gw_reply_return(r));
    json_node_unref(r);
    gw_qmp_close(q2);
}

static void test_qmp_errors(void)
{
    const char *idle = gw_require_guest("GW_IDLE_GUEST");
    GwVM *vm;

    if (!idle || !gw_require_kvm()) {
        return;
    }
    vm = start_idle(idle);
    test_greeting_and_negotiation(vm);
    test_bad_commands(vm);
    test_bad_json(vm);
    test_huge_input(vm);
    test_client_disconnect(vm);
    test_several_clients(vm);
    g_assert_true(gw_vm_running(vm));
    gw_vm_free(vm);
}

/* "0000000000100000: 0x1badb002 0x..." -> the words after the colon. */
static void check_xp_words(const char *text, const guint8 *mem, int n)
{
    const char *p = strchr(text, ':');
    int i;

    g_assert_nonnull(p);
    p++;
    for (i = 0; i < n; i++) {
        char *end;
        guint32 want;
        guint64 got = g_ascii_strtoull(p, &end, 16);

        g_assert_true(end != p);
        memcpy(&want, mem + 4 * i, 4);
        g_assert_cmphex(got, ==, GUINT32_FROM_LE(want));
        p = end;
    }
}

static void test_hmp_via_qmp(GwVM *vm)
{
    JsonObject *g = json_node_get_object(gw_qmp_greeting(gw_vm_qmp(vm)));
    JsonObject *v = json_object_get_object_member(
        json_object_get_object_member(json_object_get_object_member(g, "QMP"),
                                      "version"), "qemu");
    g_autofree char *ver = g_strdup_printf("%" G_GINT64_FORMAT ".%"
        G_GINT64_FORMAT ".%" G_GINT64_FORMAT,
        json_object_get_int_member(v, "major"),
        json_object_get_int_member(v, "minor"),
        json_object_get_int_member(v, "micro"));
    g_autofree char *save = gw_vm_path(vm, "hmp-save.bin");
    g_autoptr(GBytes) mem = NULL;
    g_autofree char *contents = NULL;
    gsize len;
    char *t;

    t = gw_hmp(vm, "info status");
    g_assert_cmpstr(t, ==, "VM status: running\r\n");
    g_free(t);

    /* info version starts with the version the greeting announces. */
    t = gw_hmp(vm, "info version");
    g_assert_true(g_str_has_prefix(t, ver));
    g_assert_true(g_str_has_suffix(t, "\r\n"));
    g_free(t);

    t = gw_hmp(vm, "help");
    g_assert_nonnull(strstr(t, "\r\ninfo "));
    g_assert_nonnull(strstr(t, "\r\npmemsave "));
    g_assert_nonnull(strstr(t, "\r\nxp "));
    g_free(t);

    t = gw_hmp(vm, "help pmemsave");
    g_assert_true(g_str_has_prefix(t, "pmemsave addr size file -- "));
    g_free(t);

    /* HMP errors are text in a successful reply. */
    t = gw_hmp(vm, "no-such-hmp-command");
    g_assert_cmpstr(t, ==, "unknown command: 'no-such-hmp-command'\r\n");
    g_free(t);

    /* An unquoted path is an expression: '/' divides, 't' is no digit. */
    t = gw_hmp(vm, "pmemsave 0 4096 /tmp/gw-should-not-exist");
    g_assert_true(g_str_has_prefix(t, "invalid char 't' in expression\r\n"));
    g_free(t);
    g_assert_false(g_file_test("/tmp/gw-should-not-exist", G_FILE_TEST_EXISTS));

    t = gw_hmp(vm, "pmemsave 0x100000 4096 \"%s\"", save);
    g_assert_cmpstr(t, ==, "");
    g_free(t);
    g_assert_true(g_file_get_contents(save, &contents, &len, NULL));
    g_assert_cmpuint(len, ==, 4096);

    /* xp agrees with pmemsave (the Multiboot image is at 1 MiB). */
    mem = gw_memsave(vm, 0x100000, 16);
    g_assert_cmpmem(g_bytes_get_data(mem, NULL), 16, contents, 16);
    t = gw_hmp(vm, "xp /4xw 0x100000");
    g_assert_true(g_str_has_prefix(t, "0000000000100000: 0x"));
    check_xp_words(t, g_bytes_get_data(mem, NULL), 4);
    g_free(t);

    t = gw_hmp(vm, "stop");
    g_assert_cmpstr(t, ==, "");
    g_free(t);
    json_node_unref(gw_qmp_wait_event(vm, "STOP", 5000));
    t = gw_hmp(vm, "info status");
    g_assert_cmpstr(t, ==, "VM status: paused\r\n");
    g_free(t);
    t = gw_hmp(vm, "cont");
    g_free(t);
    json_node_unref(gw_qmp_wait_event(vm, "RESUME", 5000));
}

static void test_hmp_via_socket(GwVM *vm)
{
    g_autofree char *path = gw_vm_path(vm, "hmp.sock");
    GwHmp *h = gw_hmp_open(path, vm, 10000);
    char *t;

    g_assert_nonnull(strstr(gw_hmp_banner(h), "monitor - type 'help'"));
    t = gw_hmp_conn(h, "info status");
    g_assert_cmpstr(t, ==, "VM status: running\n");
    g_free(t);
    t = gw_hmp_conn(h, "no-such-hmp-command");
    g_assert_cmpstr(t, ==, "unknown command: 'no-such-hmp-command'\n");
    g_free(t);
    t = gw_hmp_conn(h, "pmemsave 0 4096 /tmp/gw-should-not-exist");
    g_assert_true(g_str_has_prefix(t, "invalid char 't' in expression\n"));
    g_free(t);
    t = gw_hmp_conn(h, "xp /1xw 0x100000");
    g_assert_true(g_str_has_prefix(t, "0000000000100000: 0x"));
    g_free(t);
    /* Monitor commands change the machine, and QMP sees it. */
    t = gw_hmp_conn(h, "stop");
    g_free(t);
    json_node_unref(gw_qmp_wait_event(vm, "STOP", 5000));
    t = gw_hmp_conn(h, "info status");
    g_assert_cmpstr(t, ==, "VM status: paused\n");
    g_free(t);
    t = gw_hmp_conn(h, "cont");
    g_free(t);
    json_node_unref(gw_qmp_wait_event(vm, "RESUME", 5000));
    gw_hmp_close(h);

    /* Reconnecting gets a fresh banner and a working monitor. */
    h = gw_hmp_open(path, vm, 10000);
    t = gw_hmp_conn(h, "info status");
    g_assert_cmpstr(t, ==, "VM status: running\n");
    g_free(t);
    gw_hmp_close(h);
}

static void test_hmp(void)
{
    const char *idle = gw_require_guest("GW_IDLE_GUEST");
    GwVM *vm;

    if (!idle || !gw_require_kvm()) {
        return;
    }
    vm = start_idle(idle);
    test_hmp_via_qmp(vm);
    test_hmp_via_socket(vm);
    gw_vm_free(vm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/core/qmp/errors", test_qmp_errors);
    g_test_add_func("/core/hmp/basics", test_hmp);
    return g_test_run();
}
