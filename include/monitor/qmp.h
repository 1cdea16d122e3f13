/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP: the server, command dispatch and events.
 *
 * Command handlers are generated from the schema in qapi/ as prototypes
 *     JsonNode *qmp_<name>(JsonObject *args, GError **errp);
 * (name with '-' turned into '_'). The dispatcher has already checked @args
 * against the schema (no missing, unknown or wrongly typed members), so a
 * handler may read them without further type checks. Return the result
 * (caller takes ownership), or NULL for "{}"; on failure set @errp and
 * return NULL. Handlers run on the main thread with the BQL held.
 */
#ifndef GODWIT_QMP_H
#define GODWIT_QMP_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>

/*
 * Check @args against the schema entry of @name and run it. Used by the QMP
 * server and by HMP (which is a thin skin over QMP). @args may be NULL.
 */
JsonNode *qmp_dispatch(const char *name, JsonObject *args, GError **errp);

/*
 * Send an event to every negotiated QMP client. Thread-safe: the timestamp is
 * taken now, delivery happens on the main loop. Takes ownership of @data
 * (may be NULL for events without data). Prefer the generated
 * qapi_event_send_<name>() wrappers.
 */
void qmp_event_emit(const char *name, JsonObject *data);

/* Listen for QMP clients on a -qmp spec ("unix:P,server=on,wait=off", "tcp:H:P,..."). */
bool qmp_server_add(const char *spec, GError **errp);
/* Serve QMP over an existing chardev (-mon chardev=ID,mode=control). */
bool qmp_server_add_chardev(const char *chardev_id, GError **errp);
void qmp_server_cleanup(void);

/*
 * The parts of a QMP request, borrowed from the message they were parsed
 * from. @id is set whenever the message is an object with an "id", even if
 * parsing then fails, so the error reply can echo it.
 */
typedef struct QmpRequest {
    const char *name;       /* "execute" or "exec-oob" value */
    JsonObject *args;       /* "arguments", or NULL */
    JsonNode *id;           /* "id", or NULL */
    bool oob;               /* sent with "exec-oob" */
} QmpRequest;

/*
 * Check the request envelope as QEMU does ("QMP input must be a JSON
 * object", "QMP input member 'foo' is unexpected", ...). "exec-oob" is only
 * known once the client enabled the oob capability.
 */
bool qmp_request_parse(JsonNode *msg, bool oob_enabled, QmpRequest *req, GError **errp);

/* {"return": RET, "id": ID} (takes @ret, NULL = {}); @id is copied, may be NULL. */
JsonNode *qmp_response_return(JsonNode *ret, JsonNode *id);
/* {"error": {"class": ..., "desc": ...}, "id": ID}; @id is copied, may be NULL. */
JsonNode *qmp_response_error(const GError *err, JsonNode *id);

/*
 * File descriptors passed with getfd (SCM_RIGHTS on the QMP unix socket).
 * Removes the descriptor named @name from the table and returns it (the
 * caller now owns it), or -1 with "File descriptor named 'x' not found".
 * Main thread (BQL held).
 */
int monitor_fd_take(const char *name, GError **errp);

/* Helpers for building results. */
JsonNode *qmp_node_object(JsonObject *obj);   /* takes ownership */

#endif
