/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the QMP input path. The input is what a client writes
 * on its socket: the streaming JSON splitter cuts it into messages, each is
 * checked as a request envelope and dispatched against the unit tests'
 * schema (tests/unit/qapi-schema-test.json: every kind of argument type),
 * and the reply is serialised, as the server does. Half the inputs are fed
 * in two pieces, as a socket may deliver them.
 */
#include "qemu/osdep.h"

#include "monitor/qmp.h"
#include "qapi/qmp-json.h"
#include "test-qapi-commands.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Handlers of the test schema: they accept whatever the checks let through. */
JsonNode *qmp_test_set_params(JsonObject *args, GError **errp)
{
    return NULL;
}

JsonNode *qmp_test_migrate(JsonObject *args, GError **errp)
{
    return NULL;
}

JsonNode *qmp_test_set_caps(JsonObject *args, GError **errp)
{
    return NULL;
}

JsonNode *qmp_test_child(JsonObject *args, GError **errp)
{
    return NULL;
}

JsonNode *qmp_test_noargs(JsonObject *args, GError **errp)
{
    JsonObject *ret = json_object_new();

    json_object_set_string_member(ret, "capability", "red");
    json_object_set_boolean_member(ret, "state", true);
    return qmp_node_object(ret);
}

JsonNode *qmp_test_fail(JsonObject *args, GError **errp)
{
    error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device 'x' not found");
    return NULL;
}

JsonNode *qmp_test_oob(JsonObject *args, GError **errp)
{
    return NULL;
}

void qmp_event_emit(const char *name, JsonObject *data)
{
    if (data) {
        json_object_unref(data);
    }
}

static void handle(void *opaque, JsonNode *value, const GError *err)
{
    g_autoptr(GError) perr = NULL;
    JsonNode *reply = NULL;
    QmpRequest req = { 0 };

    if (!value) {
        reply = qmp_response_error(err, NULL);      /* bad JSON: an error reply */
    } else if (!qmp_request_parse(value, true, &req, &perr)) {
        reply = qmp_response_error(perr, req.id);
    } else {
        JsonNode *ret = qapi_schema_dispatch(&test_qapi_schema, req.name, req.args, &perr);
        reply = perr ? qmp_response_error(perr, req.id) : qmp_response_return(ret, req.id);
    }
    g_free(qmp_json_to_string(reply));
    json_node_unref(reply);
    if (value) {
        json_node_unref(value);        /* ours: the streamer handed it over */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GError) err = NULL;
    QmpJsonStreamer *s = qmp_json_streamer_new(handle, NULL, QMP_JSON_MAX_MESSAGE,
                                               QMP_JSON_MAX_DEPTH);
    size_t cut = size && (data[0] & 1) ? size / 2 : size;

    if (qmp_json_streamer_feed(s, (const char *)data, cut, &err)) {
        qmp_json_streamer_feed(s, (const char *)data + cut, size - cut, &err);
    }
    qmp_json_streamer_free(s);
    return 0;
}
