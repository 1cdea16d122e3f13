/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * JSON plumbing for QMP: a streaming splitter that cuts a byte stream into
 * top-level JSON values (concatenated, split across reads, with QEMU's
 * single-quoted strings) and hands each to json-glib, and a writer that
 * prints values the way QEMU's QMP does ({"a": 1, "b": [1, 2]}).
 */
#ifndef GODWIT_QMP_JSON_H
#define GODWIT_QMP_JSON_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>

/* Limits the QMP server uses for one client message. */
#define QMP_JSON_MAX_MESSAGE   (1024 * 1024)
#define QMP_JSON_MAX_DEPTH     1024

typedef struct QmpJsonStreamer QmpJsonStreamer;

/*
 * Called once per top-level value: either @value (the callee takes
 * ownership) or @err ("JSON parse error, ..."; borrowed) is non-NULL.
 */
typedef void (*QmpJsonEmitFn)(void *opaque, JsonNode *value, const GError *err);

QmpJsonStreamer *qmp_json_streamer_new(QmpJsonEmitFn emit, void *opaque,
                                       size_t max_message, int max_depth);
void qmp_json_streamer_free(QmpJsonStreamer *s);

/*
 * Feed @len bytes. Complete values are emitted before this returns (from
 * inside this call). Returns false, with @errp set, when a message exceeds
 * the size or nesting limit: the stream cannot be resynchronised and the
 * caller should drop the peer. Syntax errors are emitted, not returned, and
 * the splitter recovers at the end of the broken value.
 */
bool qmp_json_streamer_feed(QmpJsonStreamer *s, const char *buf, size_t len,
                            GError **errp);

/* Forget any partial value (a new client on a reused chardev). */
void qmp_json_streamer_reset(QmpJsonStreamer *s);

/* Append @node to @out in QMP's style; NULL prints as null. */
void qmp_json_append(GString *out, JsonNode *node);
/* @node as a newly allocated string in QMP's style. */
char *qmp_json_to_string(JsonNode *node);

#endif
