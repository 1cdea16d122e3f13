/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The shape of the tables scripts/qapi-gen.py generates from a QMP schema,
 * and the runtime that walks them: argument checking and dispatch. One
 * schema = one QapiSchema (the VMM's is qapi_schema; unit tests build their
 * own under another prefix).
 */
#ifndef GODWIT_QAPI_DESC_H
#define GODWIT_QAPI_DESC_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>

typedef enum QapiKind {
    QAPI_KIND_STR,
    QAPI_KIND_INT,          /* same as int64 */
    QAPI_KIND_INT8,
    QAPI_KIND_INT16,
    QAPI_KIND_INT32,
    QAPI_KIND_INT64,
    QAPI_KIND_UINT8,
    QAPI_KIND_UINT16,
    QAPI_KIND_UINT32,
    QAPI_KIND_UINT64,
    QAPI_KIND_SIZE,         /* checked like uint64, as QEMU's QMP input does */
    QAPI_KIND_NUMBER,
    QAPI_KIND_BOOL,
    QAPI_KIND_ANY,
    QAPI_KIND_NULL,
    QAPI_KIND_ENUM,
    QAPI_KIND_STRUCT,
    QAPI_KIND_LIST,
    QAPI_KIND_ALTERNATE,
} QapiKind;

typedef struct QapiType QapiType;

typedef struct QapiMember {
    const char *name;
    const QapiType *type;
    bool optional;
} QapiMember;

struct QapiType {
    QapiKind kind;
    const char *name;                   /* schema name ("[T]" for lists) */
    const char *const *enum_values;     /* ENUM: wire names, n_members of them */
    const QapiMember *members;          /* STRUCT: members (base first); ALTERNATE: branches */
    int n_members;
    const QapiType *element;            /* LIST */
};

typedef JsonNode *(*QapiCommandFn)(JsonObject *args, GError **errp);

typedef struct QapiCommand {
    const char *name;
    QapiCommandFn fn;
    const QapiType *args;               /* STRUCT, or NULL when it takes none */
    const QapiType *returns;            /* NULL: returns {} */
    bool allow_oob;
    bool boxed;
} QapiCommand;

typedef struct QapiEvent {
    const char *name;
    const QapiType *data;               /* STRUCT or NULL */
} QapiEvent;

typedef struct QapiSchema {
    const QapiCommand *commands;
    int n_commands;
    const QapiEvent *events;
    int n_events;
} QapiSchema;

/* The command called @name, or NULL. */
const QapiCommand *qapi_schema_find_command(const QapiSchema *schema, const char *name);

/*
 * Check @args (may be NULL = no arguments) against @cmd's argument type,
 * with QEMU's messages ("Parameter 'x' is missing", ...). No side effects.
 */
bool qapi_check_args(const QapiCommand *cmd, JsonObject *args, GError **errp);

/*
 * Check @node against @type; @path names it in messages ("a[0].b").
 * Exposed for tests and for checking event data.
 */
bool qapi_check_value(const QapiType *type, JsonNode *node, const char *path,
                      GError **errp);

/*
 * Look up @name (CommandNotFound: "The command X has not been found"),
 * check @args, run the handler. Returns the result, "{}" when the handler
 * returned NULL without error, or NULL with @errp set. The caller takes the
 * BQL if the command needs it; this function takes no locks.
 */
JsonNode *qapi_schema_dispatch(const QapiSchema *schema, const char *name,
                               JsonObject *args, GError **errp);

#endif
