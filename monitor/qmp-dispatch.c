/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The schema-driven half of QMP: checking a command's arguments against the
 * generated type tables (with QEMU's error messages), calling the handler,
 * and validating/answering the request envelope. No sockets and no locks
 * here, so unit tests link this with a schema of their own.
 */
#include "qemu/osdep.h"
#include "qapi/qapi-desc.h"
#include "qapi/qmp-json.h"
#include "monitor/qmp.h"

JsonNode *qmp_node_object(JsonObject *obj)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(node, obj);
    return node;
}

const QapiCommand *qapi_schema_find_command(const QapiSchema *schema, const char *name)
{
    for (int i = 0; i < schema->n_commands; i++) {
        if (strcmp(schema->commands[i].name, name) == 0) {
            return &schema->commands[i];
        }
    }
    return NULL;
}

/* ---- argument checking -------------------------------------------------- */

/*
 * QEMU words type errors in two ways, depending on the visitor function
 * that catches them; we keep both so clients see the same text:
 *   "Invalid parameter type for 'P', expected: T"  (JSON type is wrong)
 *   "Parameter 'P' expects T"                      (number out of range)
 */
static void type_error(const char *path, const char *expected, GError **errp)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s", path, expected);
}

static void range_error(const char *path, const char *expected, GError **errp)
{
    error_setg(errp, "Parameter '%s' expects %s", path, expected);
}

static bool node_is(JsonNode *node, GType t)
{
    return JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == t;
}

/* Signed integer kinds: the JSON value must be an integer within range. */
static bool check_signed(const QapiType *type, JsonNode *node, const char *path, GError **errp)
{
    static const struct { QapiKind kind; gint64 min, max; const char *name; } ranges[] = {
        { QAPI_KIND_INT8, INT8_MIN, INT8_MAX, "int8_t" },
        { QAPI_KIND_INT16, INT16_MIN, INT16_MAX, "int16_t" },
        { QAPI_KIND_INT32, INT32_MIN, INT32_MAX, "int32_t" },
    };
    gint64 v;

    if (!node_is(node, G_TYPE_INT64)) {
        type_error(path, "integer", errp);
        return false;
    }
    v = json_node_get_int(node);
    for (size_t i = 0; i < G_N_ELEMENTS(ranges); i++) {
        if (ranges[i].kind == type->kind && (v < ranges[i].min || v > ranges[i].max)) {
            range_error(path, ranges[i].name, errp);
            return false;
        }
    }
    return true;
}

/*
 * Unsigned kinds. As in QEMU, a negative integer is taken as its two's
 * complement for uint64 (clients have long sent -1 for "unlimited"), so
 * only smaller widths can fail their range check on it.
 */
static bool check_unsigned(const QapiType *type, JsonNode *node, const char *path, GError **errp)
{
    guint64 v;
    guint64 max = UINT64_MAX;
    const char *name = NULL;

    if (!node_is(node, G_TYPE_INT64)) {
        range_error(path, "uint64", errp);
        return false;
    }
    v = (guint64)json_node_get_int(node);
    switch (type->kind) {
    case QAPI_KIND_UINT8: max = UINT8_MAX; name = "uint8_t"; break;
    case QAPI_KIND_UINT16: max = UINT16_MAX; name = "uint16_t"; break;
    case QAPI_KIND_UINT32: max = UINT32_MAX; name = "uint32_t"; break;
    default: break;
    }
    if (name && v > max) {
        range_error(path, name, errp);
        return false;
    }
    return true;
}

static bool check_struct(const QapiType *type, JsonObject *obj, const char *path, GError **errp)
{
    JsonObjectIter it;
    const char *name;
    JsonNode *member;

    /* Members in schema order first (missing and type errors), then extras. */
    for (int i = 0; i < type->n_members; i++) {
        const QapiMember *m = &type->members[i];
        g_autofree char *sub = path ? g_strdup_printf("%s.%s", path, m->name) : g_strdup(m->name);
        JsonNode *val = json_object_get_member(obj, m->name);

        if (!val) {
            if (!m->optional) {
                error_setg(errp, "Parameter '%s' is missing", sub);
                return false;
            }
            continue;
        }
        if (m->type->kind == QAPI_KIND_ENUM) {
            /* QEMU names only the member itself in enum value errors. */
            if (!node_is(val, G_TYPE_STRING)) {
                type_error(sub, "string", errp);
                return false;
            }
            const char *s = json_node_get_string(val);
            bool found = false;
            for (int j = 0; j < m->type->n_members && !found; j++) {
                found = strcmp(m->type->enum_values[j], s) == 0;
            }
            if (!found) {
                error_setg(errp, "Parameter '%s' does not accept value '%s'", m->name, s);
                return false;
            }
            continue;
        }
        if (!qapi_check_value(m->type, val, sub, errp)) {
            return false;
        }
    }
    json_object_iter_init_ordered(&it, obj);
    while (json_object_iter_next_ordered(&it, &name, &member)) {
        bool known = false;
        for (int i = 0; i < type->n_members && !known; i++) {
            known = strcmp(type->members[i].name, name) == 0;
        }
        if (!known) {
            if (path) {
                error_setg(errp, "Parameter '%s.%s' is unexpected", path, name);
            } else {
                error_setg(errp, "Parameter '%s' is unexpected", name);
            }
            return false;
        }
    }
    return true;
}

/* The JSON class of @node, as an alternate branch would need it. */
static int alternate_match(const QapiType *type, JsonNode *node)
{
    for (int i = 0; i < type->n_members; i++) {
        const QapiType *b = type->members[i].type;
        bool match;

        switch (b->kind) {
        case QAPI_KIND_STR:
        case QAPI_KIND_ENUM:
            match = node_is(node, G_TYPE_STRING);
            break;
        case QAPI_KIND_BOOL:
            match = node_is(node, G_TYPE_BOOLEAN);
            break;
        case QAPI_KIND_NULL:
            match = JSON_NODE_HOLDS_NULL(node);
            break;
        case QAPI_KIND_STRUCT:
            match = JSON_NODE_HOLDS_OBJECT(node);
            break;
        case QAPI_KIND_LIST:
            match = JSON_NODE_HOLDS_ARRAY(node);
            break;
        case QAPI_KIND_NUMBER:
            match = node_is(node, G_TYPE_INT64) || node_is(node, G_TYPE_DOUBLE);
            break;
        default:        /* integer kinds */
            match = node_is(node, G_TYPE_INT64) || node_is(node, G_TYPE_DOUBLE);
            break;
        }
        if (match) {
            return i;
        }
    }
    return -1;
}

bool qapi_check_value(const QapiType *type, JsonNode *node, const char *path, GError **errp)
{
    const char *shown = path ? path : "null";

    switch (type->kind) {
    case QAPI_KIND_ANY:
        return true;
    case QAPI_KIND_STR:
        if (!node_is(node, G_TYPE_STRING)) {
            type_error(shown, "string", errp);
            return false;
        }
        return true;
    case QAPI_KIND_BOOL:
        if (!node_is(node, G_TYPE_BOOLEAN)) {
            type_error(shown, "boolean", errp);
            return false;
        }
        return true;
    case QAPI_KIND_NULL:
        if (!JSON_NODE_HOLDS_NULL(node)) {
            type_error(shown, "null", errp);
            return false;
        }
        return true;
    case QAPI_KIND_NUMBER:
        if (!node_is(node, G_TYPE_INT64) && !node_is(node, G_TYPE_DOUBLE)) {
            type_error(shown, "number", errp);
            return false;
        }
        return true;
    case QAPI_KIND_INT:
    case QAPI_KIND_INT8:
    case QAPI_KIND_INT16:
    case QAPI_KIND_INT32:
    case QAPI_KIND_INT64:
        return check_signed(type, node, shown, errp);
    case QAPI_KIND_UINT8:
    case QAPI_KIND_UINT16:
    case QAPI_KIND_UINT32:
    case QAPI_KIND_UINT64:
    case QAPI_KIND_SIZE:
        return check_unsigned(type, node, shown, errp);
    case QAPI_KIND_ENUM: {
        const char *s;
        if (!node_is(node, G_TYPE_STRING)) {
            type_error(shown, "string", errp);
            return false;
        }
        s = json_node_get_string(node);
        for (int i = 0; i < type->n_members; i++) {
            if (strcmp(type->enum_values[i], s) == 0) {
                return true;
            }
        }
        error_setg(errp, "Parameter '%s' does not accept value '%s'", shown, s);
        return false;
    }
    case QAPI_KIND_STRUCT:
        if (!JSON_NODE_HOLDS_OBJECT(node)) {
            type_error(shown, "object", errp);
            return false;
        }
        return check_struct(type, json_node_get_object(node), path, errp);
    case QAPI_KIND_LIST: {
        JsonArray *arr;
        if (!JSON_NODE_HOLDS_ARRAY(node)) {
            type_error(shown, "array", errp);
            return false;
        }
        arr = json_node_get_array(node);
        for (guint i = 0; i < json_array_get_length(arr); i++) {
            g_autofree char *sub = g_strdup_printf("%s[%u]", shown, i);
            if (!qapi_check_value(type->element, json_array_get_element(arr, i), sub, errp)) {
                return false;
            }
        }
        return true;
    }
    case QAPI_KIND_ALTERNATE: {
        int branch = alternate_match(type, node);
        if (branch < 0) {
            type_error(shown, type->name, errp);
            return false;
        }
        return qapi_check_value(type->members[branch].type, node, path, errp);
    }
    }
    type_error(shown, type->name, errp);
    return false;
}

bool qapi_check_args(const QapiCommand *cmd, JsonObject *args, GError **errp)
{
    g_autoptr(JsonObject) empty = NULL;

    if (!cmd->args) {
        if (args && json_object_get_size(args) > 0) {
            GList *names = json_object_get_members(args);
            error_setg(errp, "Parameter '%s' is unexpected", (const char *)names->data);
            g_list_free(names);
            return false;
        }
        return true;
    }
    if (!args) {
        empty = json_object_new();
        args = empty;
    }
    return check_struct(cmd->args, args, NULL, errp);
}

JsonNode *qapi_schema_dispatch(const QapiSchema *schema, const char *name,
                               JsonObject *args, GError **errp)
{
    const QapiCommand *cmd = qapi_schema_find_command(schema, name);
    g_autoptr(JsonObject) empty = NULL;
    GError *local_err = NULL;
    JsonNode *ret;

    if (!cmd) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "The command %s has not been found", name);
        return NULL;
    }
    if (!qapi_check_args(cmd, args, errp)) {
        return NULL;
    }
    /* Handlers always get an object, so they need no NULL checks. */
    if (!args) {
        empty = json_object_new();
        args = empty;
    }
    ret = cmd->fn(args, &local_err);
    if (local_err) {
        if (ret) {
            json_node_unref(ret);
        }
        g_propagate_error(errp, local_err);
        return NULL;
    }
    if (!ret) {
        ret = qmp_node_object(json_object_new());
    }
    return ret;
}

/* ---- request envelope and responses ------------------------------------- */

bool qmp_request_parse(JsonNode *msg, bool oob_enabled, QmpRequest *req, GError **errp)
{
    JsonObject *obj;
    JsonObjectIter it;
    const char *member;
    JsonNode *val;
    const char *exec = NULL, *exec_oob = NULL;

    memset(req, 0, sizeof(*req));
    if (!msg || !JSON_NODE_HOLDS_OBJECT(msg)) {
        error_setg(errp, "QMP input must be a JSON object");
        return false;
    }
    obj = json_node_get_object(msg);
    /* Pick up the id first so that every error can still echo it. */
    req->id = json_object_get_member(obj, "id");

    json_object_iter_init_ordered(&it, obj);
    while (json_object_iter_next_ordered(&it, &member, &val)) {
        if (strcmp(member, "execute") == 0 || (oob_enabled && strcmp(member, "exec-oob") == 0)) {
            if (!node_is(val, G_TYPE_STRING)) {
                error_setg(errp, "QMP input member '%s' must be a string", member);
                return false;
            }
            if (member[4] == '-') {
                exec_oob = json_node_get_string(val);
            } else {
                exec = json_node_get_string(val);
            }
        } else if (strcmp(member, "arguments") == 0) {
            if (!JSON_NODE_HOLDS_OBJECT(val)) {
                error_setg(errp, "QMP input member 'arguments' must be an object");
                return false;
            }
            req->args = json_node_get_object(val);
        } else if (strcmp(member, "id") != 0) {
            error_setg(errp, "QMP input member '%s' is unexpected", member);
            return false;
        }
    }
    if (exec && exec_oob) {
        error_setg(errp, "QMP input must not have both 'execute' and 'exec-oob'");
        return false;
    }
    if (!exec && !exec_oob) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return false;
    }
    req->name = exec ? exec : exec_oob;
    req->oob = exec_oob != NULL;
    return true;
}

static JsonNode *add_id(JsonObject *resp, JsonNode *id)
{
    if (id) {
        json_object_set_member(resp, "id", json_node_copy(id));
    }
    return qmp_node_object(resp);
}

JsonNode *qmp_response_error(const GError *err, JsonNode *id)
{
    JsonObject *resp = json_object_new();
    JsonObject *e = json_object_new();
    ErrorClass cls = err->domain == GW_ERROR ? (ErrorClass)err->code : ERROR_CLASS_GENERIC_ERROR;

    json_object_set_string_member(e, "class", error_class_name(cls));
    json_object_set_string_member(e, "desc", err->message);
    json_object_set_object_member(resp, "error", e);
    return add_id(resp, id);
}

JsonNode *qmp_response_return(JsonNode *ret, JsonNode *id)
{
    JsonObject *resp = json_object_new();

    json_object_set_member(resp, "return", ret ? ret : qmp_node_object(json_object_new()));
    return add_id(resp, id);
}
