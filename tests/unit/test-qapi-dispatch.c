/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for schema-driven QMP dispatch: argument checks with QEMU's
 * error messages (nested structs, lists, enums, alternates, integer ranges,
 * boxed commands), handler calls, the request envelope, replies, and the
 * generated enum helpers and event emitters. Uses tests/unit/qapi-schema-test.json.
 */
#include "qemu/osdep.h"
#include "monitor/qmp.h"
#include "qapi/qmp-json.h"
#include "test-qapi-commands.h"
#include "test-qapi-events.h"

/* ---- handlers of the test schema ----------------------------------------- */

static int handler_calls;
static char *handler_args;      /* arguments the last handler saw, as text */

static void record_call(JsonObject *args)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_set_object(node, args);
    handler_calls++;
    g_free(handler_args);
    handler_args = qmp_json_to_string(node);
    json_node_unref(node);
}

JsonNode *qmp_test_set_params(JsonObject *args, GError **errp)
{
    record_call(args);
    return NULL;
}

JsonNode *qmp_test_migrate(JsonObject *args, GError **errp)
{
    record_call(args);
    return NULL;
}

JsonNode *qmp_test_set_caps(JsonObject *args, GError **errp)
{
    record_call(args);
    return NULL;
}

JsonNode *qmp_test_child(JsonObject *args, GError **errp)
{
    record_call(args);
    return NULL;
}

JsonNode *qmp_test_noargs(JsonObject *args, GError **errp)
{
    JsonObject *ret = json_object_new();

    record_call(args);
    json_object_set_string_member(ret, "capability", "red");
    json_object_set_boolean_member(ret, "state", true);
    return qmp_node_object(ret);
}

JsonNode *qmp_test_fail(JsonObject *args, GError **errp)
{
    record_call(args);
    error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device 'x' not found");
    return NULL;
}

JsonNode *qmp_test_oob(JsonObject *args, GError **errp)
{
    record_call(args);
    return NULL;
}

/* Events from the generated emitters land here instead of a server. */
static char *last_event;

void qmp_event_emit(const char *name, JsonObject *data)
{
    g_autoptr(JsonNode) node = NULL;
    g_autofree char *text = NULL;

    if (data) {
        node = qmp_node_object(data);
        text = qmp_json_to_string(node);
    }
    g_free(last_event);
    last_event = g_strdup_printf("%s %s", name, text ? text : "-");
}

/* ---- helpers --------------------------------------------------------------- */

static JsonNode *parse(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;

    g_assert_true(json_parser_load_from_data(p, text, -1, &err));
    return json_parser_steal_root(p);
}

/*
 * Run @cmd with @args (JSON text or NULL). Expect the error @want_err, or
 * success when NULL. Returns the result text on success.
 */
static char *run(const char *cmd, const char *args, const char *want_err)
{
    g_autoptr(JsonNode) node = args ? parse(args) : NULL;
    g_autoptr(GError) err = NULL;
    int calls_before = handler_calls;
    JsonNode *ret;
    char *text = NULL;

    ret = test_qapi_dispatch(cmd, node ? json_node_get_object(node) : NULL, &err);
    if (want_err) {
        if (!err) {
            g_test_message("%s %s: expected error \"%s\", got success", cmd, args, want_err);
        }
        g_assert_nonnull(err);
        g_assert_null(ret);
        g_assert_cmpstr(err->message, ==, want_err);
        /* Checks happen before the handler runs: no side effects. */
        if (strcmp(cmd, "test-fail") != 0) {
            g_assert_cmpint(handler_calls, ==, calls_before);
        }
        return NULL;
    }
    if (err) {
        g_test_message("%s %s: unexpected error \"%s\"", cmd, args, err->message);
    }
    g_assert_no_error(err);
    g_assert_nonnull(ret);
    g_assert_cmpint(handler_calls, ==, calls_before + 1);
    text = qmp_json_to_string(ret);
    json_node_unref(ret);
    return text;
}

static void run_ok(const char *cmd, const char *args)
{
    g_free(run(cmd, args, NULL));
}

/* ---- tests ------------------------------------------------------------------ */

static void test_missing_unexpected(void)
{
    run("test-migrate", "{}", "Parameter 'uri' is missing");
    run("test-migrate", NULL, "Parameter 'uri' is missing");
    run("test-migrate", "{\"uri\": \"x\", \"bogus\": 1}", "Parameter 'bogus' is unexpected");
    run("test-noargs", "{\"x\": 1}", "Parameter 'x' is unexpected");
    run("test-set-params", "{\"bogus\": 5}", "Parameter 'bogus' is unexpected");
    run_ok("test-migrate", "{\"uri\": \"tcp:0:4444\"}");
    g_assert_cmpstr(handler_args, ==, "{\"uri\": \"tcp:0:4444\"}");
}

static void test_scalar_types(void)
{
    run("test-migrate", "{\"uri\": 5}", "Invalid parameter type for 'uri', expected: string");
    run("test-migrate", "{\"uri\": null}", "Invalid parameter type for 'uri', expected: string");
    run("test-migrate", "{\"uri\": \"x\", \"blk\": \"yes\"}",
        "Invalid parameter type for 'blk', expected: boolean");
    run("test-migrate", "{\"uri\": \"x\", \"count\": 1.5}",
        "Invalid parameter type for 'count', expected: integer");
    run("test-migrate", "{\"uri\": \"x\", \"count\": \"1\"}",
        "Invalid parameter type for 'count', expected: integer");
    run_ok("test-migrate", "{\"uri\": \"x\", \"blk\": false, \"count\": -7}");

    run("test-set-params", "{\"num\": \"x\"}", "Invalid parameter type for 'num', expected: number");
    run_ok("test-set-params", "{\"num\": 1}");
    run_ok("test-set-params", "{\"num\": 1.5}");
    run("test-set-params", "{\"flag\": 1}", "Invalid parameter type for 'flag', expected: boolean");
    run_ok("test-set-params", "{\"anything\": [1, {\"a\": null}]}");
    run_ok("test-set-params", "{\"nothing\": null}");
    run("test-set-params", "{\"nothing\": 0}", "Invalid parameter type for 'nothing', expected: null");
}

static void test_integer_ranges(void)
{
    /* uint64 and size: QEMU's words, negative numbers wrap as in QEMU. */
    run("test-set-params", "{\"u64\": \"x\"}", "Parameter 'u64' expects uint64");
    run("test-set-params", "{\"u64\": 1.5}", "Parameter 'u64' expects uint64");
    run_ok("test-set-params", "{\"u64\": -1}");
    run("test-set-params", "{\"sz\": \"5\"}", "Parameter 'sz' expects uint64");
    run_ok("test-set-params", "{\"sz\": 1048576}");

    run("test-set-params", "{\"u8\": 256}", "Parameter 'u8' expects uint8_t");
    run("test-set-params", "{\"u8\": -1}", "Parameter 'u8' expects uint8_t");
    run("test-set-params", "{\"u8\": \"1\"}", "Parameter 'u8' expects uint64");
    run_ok("test-set-params", "{\"u8\": 255}");
    run("test-set-params", "{\"u16\": 65536}", "Parameter 'u16' expects uint16_t");
    run_ok("test-set-params", "{\"u16\": 65535}");
    run("test-set-params", "{\"u32\": 4294967296}", "Parameter 'u32' expects uint32_t");
    run_ok("test-set-params", "{\"u32\": 4294967295}");

    run("test-set-params", "{\"i8\": 128}", "Parameter 'i8' expects int8_t");
    run("test-set-params", "{\"i8\": -129}", "Parameter 'i8' expects int8_t");
    run("test-set-params", "{\"i8\": \"x\"}", "Invalid parameter type for 'i8', expected: integer");
    run_ok("test-set-params", "{\"i8\": -128}");
    run("test-set-params", "{\"i16\": 32768}", "Parameter 'i16' expects int16_t");
    run("test-set-params", "{\"i32\": 2147483648}", "Parameter 'i32' expects int32_t");
    run_ok("test-set-params", "{\"i32\": -2147483648}");
    run("test-set-params", "{\"i64\": 1.0}", "Invalid parameter type for 'i64', expected: integer");
    run_ok("test-set-params", "{\"i64\": -9223372036854775808}");
}

static void test_enums_alternates(void)
{
    run("test-set-params", "{\"color\": \"purple\"}",
        "Parameter 'color' does not accept value 'purple'");
    run("test-set-params", "{\"color\": 5}", "Invalid parameter type for 'color', expected: string");
    run_ok("test-set-params", "{\"color\": \"blue-green\"}");

    run_ok("test-set-params", "{\"creds\": null}");
    run_ok("test-set-params", "{\"creds\": \"tls0\"}");
    run("test-set-params", "{\"creds\": 5}",
        "Invalid parameter type for 'creds', expected: TestStrOrNull");
    run("test-set-params", "{\"creds\": []}",
        "Invalid parameter type for 'creds', expected: TestStrOrNull");
}

static void test_nested(void)
{
    const char *caps = "test-set-caps";

    run(caps, "{\"capabilities\": [{\"capability\": \"nonexistent\", \"state\": true}]}",
        "Parameter 'capability' does not accept value 'nonexistent'");
    run(caps, "{\"capabilities\": [{\"capability\": \"red\"}]}",
        "Parameter 'capabilities[0].state' is missing");
    run(caps, "{\"capabilities\": [{\"state\": true}]}",
        "Parameter 'capabilities[0].capability' is missing");
    run(caps, "{\"capabilities\": [{\"capability\": \"red\", \"state\": 1}]}",
        "Invalid parameter type for 'capabilities[0].state', expected: boolean");
    run(caps, "{\"capabilities\": [{\"capability\": \"red\", \"state\": true},"
        " {\"capability\": \"red\", \"state\": true, \"x\": 1}]}",
        "Parameter 'capabilities[1].x' is unexpected");
    run(caps, "{\"capabilities\": [5]}",
        "Invalid parameter type for 'capabilities[0]', expected: object");
    run(caps, "{\"capabilities\": {}}",
        "Invalid parameter type for 'capabilities', expected: array");
    run(caps, "{\"capabilities\": [{\"capability\": 5, \"state\": true}]}",
        "Invalid parameter type for 'capabilities[0].capability', expected: string");
    run(caps, "{}", "Parameter 'capabilities' is missing");
    run_ok(caps, "{\"capabilities\": []}");
    run_ok(caps, "{\"capabilities\": [{\"capability\": \"green\", \"state\": false}]}");

    /* Inherited members from a base, lists inside nested structs. */
    run("test-child", "{\"child\": {}}", "Parameter 'child.base-member' is missing");
    run("test-child", "{\"child\": {\"base-member\": 1, \"inner\": "
        "[{\"capability\": \"red\", \"state\": true, \"y\": 0}]}}",
        "Parameter 'child.inner[0].y' is unexpected");
    run("test-child", "{\"child\": {\"base-member\": 1}, \"colors\": [\"red\", \"bad\"]}",
        "Parameter 'colors[1]' does not accept value 'bad'");
    run("test-child", "{\"child\": 3}", "Invalid parameter type for 'child', expected: object");
    run_ok("test-child", "{\"child\": {\"base-member\": 1, \"child-member\": \"x\"}}");
}

static void test_dispatch_results(void)
{
    g_autoptr(GError) err = NULL;
    char *ret;
    const QapiCommand *cmd;

    ret = run("test-noargs", NULL, NULL);
    g_assert_cmpstr(ret, ==, "{\"capability\": \"red\", \"state\": true}");
    g_free(ret);
    /* A handler returning NULL without error means {}. */
    ret = run("test-oob", "{}", NULL);
    g_assert_cmpstr(ret, ==, "{}");
    g_free(ret);

    run("test-fail", NULL, "Device 'x' not found");
    g_assert_null(test_qapi_dispatch("test-fail", NULL, &err));
    g_assert_error(err, GW_ERROR, ERROR_CLASS_DEVICE_NOT_FOUND);
    g_clear_error(&err);

    g_assert_null(test_qapi_dispatch("no-such-command", NULL, &err));
    g_assert_error(err, GW_ERROR, ERROR_CLASS_COMMAND_NOT_FOUND);
    g_assert_cmpstr(err->message, ==, "The command no-such-command has not been found");

    cmd = qapi_schema_find_command(&test_qapi_schema, "test-oob");
    g_assert_nonnull(cmd);
    g_assert_true(cmd->allow_oob);
    cmd = qapi_schema_find_command(&test_qapi_schema, "test-set-params");
    g_assert_true(cmd->boxed);
    g_assert_false(cmd->allow_oob);
    g_assert_cmpint(test_qapi_schema.n_commands, ==, 7);
    g_assert_cmpint(test_qapi_schema.n_events, ==, 2);
}

static void check_envelope(const char *msg, bool oob, const char *want_err, const char *want_id)
{
    g_autoptr(JsonNode) node = parse(msg);
    g_autoptr(GError) err = NULL;
    QmpRequest req;
    bool ok = qmp_request_parse(node, oob, &req, &err);

    if (want_err) {
        g_assert_false(ok);
        g_assert_cmpstr(err->message, ==, want_err);
    } else {
        g_assert_no_error(err);
        g_assert_true(ok);
    }
    if (want_id) {
        g_autofree char *id = qmp_json_to_string(req.id);
        g_assert_nonnull(req.id);
        g_assert_cmpstr(id, ==, want_id);
    } else {
        g_assert_null(req.id);
    }
}

static void test_envelope(void)
{
    g_autoptr(JsonNode) node = NULL;
    QmpRequest req;

    check_envelope("[1, 2]", false, "QMP input must be a JSON object", NULL);
    check_envelope("\"str\"", false, "QMP input must be a JSON object", NULL);
    check_envelope("{\"execute\": 5}", false, "QMP input member 'execute' must be a string", NULL);
    check_envelope("{\"execute\": \"x\", \"arguments\": 5}", false,
                   "QMP input member 'arguments' must be an object", NULL);
    check_envelope("{\"execute\": \"x\", \"arguments\": null}", false,
                   "QMP input member 'arguments' must be an object", NULL);
    check_envelope("{\"execute\": \"x\", \"foo\": 1}", false,
                   "QMP input member 'foo' is unexpected", NULL);
    check_envelope("{\"exec-oob\": \"x\"}", false, "QMP input member 'exec-oob' is unexpected", NULL);
    check_envelope("{}", false, "QMP input lacks member 'execute'", NULL);
    check_envelope("{\"id\": 3}", false, "QMP input lacks member 'execute'", "3");
    check_envelope("{\"execute\": \"a\", \"exec-oob\": \"b\"}", true,
                   "QMP input must not have both 'execute' and 'exec-oob'", NULL);
    check_envelope("{\"execute\": \"a\", \"id\": {\"a\": [1, \"x\"]}}", false, NULL,
                   "{\"a\": [1, \"x\"]}");
    check_envelope("{\"execute\": \"a\", \"id\": null}", false, NULL, "null");

    node = parse("{\"exec-oob\": \"migrate-pause\", \"arguments\": {\"a\": 1}}");
    g_assert_true(qmp_request_parse(node, true, &req, NULL));
    g_assert_cmpstr(req.name, ==, "migrate-pause");
    g_assert_true(req.oob);
    g_assert_nonnull(req.args);
    g_assert_cmpint(json_object_get_int_member(req.args, "a"), ==, 1);
}

static void test_responses(void)
{
    g_autoptr(JsonNode) id = parse("{\"a\": [1, 2]}");
    g_autoptr(GError) err = NULL;
    JsonNode *resp;
    char *text;

    resp = qmp_response_return(NULL, id);
    text = qmp_json_to_string(resp);
    g_assert_cmpstr(text, ==, "{\"return\": {}, \"id\": {\"a\": [1, 2]}}");
    g_free(text);
    json_node_unref(resp);

    error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND, "The command x has not been found");
    resp = qmp_response_error(err, NULL);
    text = qmp_json_to_string(resp);
    g_assert_cmpstr(text, ==, "{\"error\": {\"class\": \"CommandNotFound\", "
                    "\"desc\": \"The command x has not been found\"}}");
    g_free(text);
    json_node_unref(resp);

    g_clear_error(&err);
    error_setg(&err, "Parameter 'uri' is missing");
    resp = qmp_response_error(err, id);
    text = qmp_json_to_string(resp);
    g_assert_cmpstr(text, ==, "{\"error\": {\"class\": \"GenericError\", "
                    "\"desc\": \"Parameter 'uri' is missing\"}, \"id\": {\"a\": [1, 2]}}");
    g_free(text);
    json_node_unref(resp);
}

static void test_enum_helpers(void)
{
    g_assert_cmpint(TEST_COLOR__MAX, ==, 3);
    g_assert_cmpstr(TestColor_str(TEST_COLOR_BLUE_GREEN), ==, "blue-green");
    g_assert_cmpstr(TestColor_lookup[TEST_COLOR_RED], ==, "red");
    g_assert_null(TestColor_str((TestColor)7));
    g_assert_cmpint(TestColor_parse("green"), ==, TEST_COLOR_GREEN);
    g_assert_cmpint(TestColor_parse("blue_green"), ==, -1);
    g_assert_cmpint(TestColor_parse(NULL), ==, -1);
}

static void test_events(void)
{
    qapi_event_send_test_event(true, TEST_COLOR_BLUE_GREEN, "n", true, 5);
    g_assert_cmpstr(last_event, ==, "TEST_EVENT {\"guest\": true, \"reason\": \"blue-green\", "
                    "\"name\": \"n\", \"count\": 5}");
    qapi_event_send_test_event(false, TEST_COLOR_RED, NULL, false, 5);
    g_assert_cmpstr(last_event, ==, "TEST_EVENT {\"guest\": false, \"reason\": \"red\"}");
    qapi_event_send_test_nodata();
    g_assert_cmpstr(last_event, ==, "TEST_NODATA -");
}

int main(int argc, char **argv)
{
    int rc;

    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/dispatch/missing-unexpected", test_missing_unexpected);
    g_test_add_func("/qapi/dispatch/scalar-types", test_scalar_types);
    g_test_add_func("/qapi/dispatch/integer-ranges", test_integer_ranges);
    g_test_add_func("/qapi/dispatch/enums-alternates", test_enums_alternates);
    g_test_add_func("/qapi/dispatch/nested", test_nested);
    g_test_add_func("/qapi/dispatch/results", test_dispatch_results);
    g_test_add_func("/qapi/qmp/envelope", test_envelope);
    g_test_add_func("/qapi/qmp/responses", test_responses);
    g_test_add_func("/qapi/types/enum-helpers", test_enum_helpers);
    g_test_add_func("/qapi/events/emitters", test_events);
    rc = g_test_run();
    g_free(handler_args);
    g_free(last_event);
    return rc;
}
