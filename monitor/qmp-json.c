/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Streaming JSON splitter and writer for QMP. The splitter runs a small
 * lexer and grammar check itself, so that it knows where each value ends,
 * can bound size and depth while bytes arrive, reports errors with QEMU's
 * wording, and turns QEMU's single-quoted strings into standard JSON before
 * json-glib parses the finished value.
 */
#include "qemu/osdep.h"
#include <math.h>
#include "qapi/qmp-json.h"

typedef enum LexState {
    LEX_IDLE,
    LEX_STRING,
    LEX_NUMBER,
    LEX_KEYWORD,
} LexState;

/* Grammar position inside one container. */
typedef enum GramState {
    GRAM_OBJ_KEY_OR_END,    /* after '{' */
    GRAM_OBJ_KEY,           /* after ',' in an object */
    GRAM_OBJ_COLON,
    GRAM_OBJ_VALUE,
    GRAM_OBJ_COMMA_OR_END,
    GRAM_ARR_VALUE_OR_END,  /* after '[' */
    GRAM_ARR_VALUE,         /* after ',' in an array */
    GRAM_ARR_COMMA_OR_END,
} GramState;

typedef struct Level {
    GramState state;
    GHashTable *keys;       /* objects: keys seen so far (duplicate check) */
} Level;

struct QmpJsonStreamer {
    QmpJsonEmitFn emit;
    void *opaque;
    size_t max_message;
    int max_depth;

    /* Lexer */
    LexState lex;
    char quote;             /* LEX_STRING: ' or " */
    bool escape;            /* LEX_STRING: after a backslash */
    int uni_left;           /* LEX_STRING: hex digits still expected after \u */
    unsigned uni_val;
    unsigned pending_high;  /* a high surrogate waiting for its low half */
    bool pending_low_expected;
    /*
     * LEX_STRING: first error seen in this string. The string is still
     * scanned to its closing quote, so its remaining bytes are not taken
     * for tokens; the error is reported there.
     */
    const char *str_err;
    GString *tok;           /* current token text, normalised */

    /* Value being assembled */
    GString *msg;           /* normalised text of the current top-level value */
    GArray *stack;          /* of Level */
    size_t raw_len;         /* raw bytes consumed by the current value */

    /*
     * After an error inside a value we skip the rest of it: the lexer keeps
     * running (so brackets in strings do not count) and only depth is
     * tracked, until the broken value closes.
     */
    bool discarding;
    int discard_depth;
};

static void level_clear(gpointer p)
{
    Level *l = p;
    if (l->keys) {
        g_hash_table_destroy(l->keys);
    }
}

QmpJsonStreamer *qmp_json_streamer_new(QmpJsonEmitFn emit, void *opaque,
                                       size_t max_message, int max_depth)
{
    QmpJsonStreamer *s = g_new0(QmpJsonStreamer, 1);

    s->emit = emit;
    s->opaque = opaque;
    s->max_message = max_message;
    s->max_depth = max_depth;
    s->tok = g_string_new(NULL);
    s->msg = g_string_new(NULL);
    s->stack = g_array_new(FALSE, TRUE, sizeof(Level));
    g_array_set_clear_func(s->stack, level_clear);
    return s;
}

void qmp_json_streamer_reset(QmpJsonStreamer *s)
{
    s->lex = LEX_IDLE;
    s->escape = false;
    s->uni_left = 0;
    s->pending_high = 0;
    s->pending_low_expected = false;
    g_string_truncate(s->tok, 0);
    g_string_truncate(s->msg, 0);
    g_array_set_size(s->stack, 0);
    s->raw_len = 0;
    s->discarding = false;
    s->discard_depth = 0;
}

void qmp_json_streamer_free(QmpJsonStreamer *s)
{
    if (!s) {
        return;
    }
    g_string_free(s->tok, TRUE);
    g_string_free(s->msg, TRUE);
    g_array_free(s->stack, TRUE);
    g_free(s);
}

static void emit_error(QmpJsonStreamer *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void emit_error(QmpJsonStreamer *s, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *detail = NULL;
    GError *err;

    va_start(ap, fmt);
    detail = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    err = g_error_new(GW_ERROR, ERROR_CLASS_GENERIC_ERROR, "JSON parse error, %s", detail);
    s->emit(s->opaque, NULL, err);
    g_error_free(err);
}

/* Abandon the current value after a syntax error inside it. */
static void fail_value(QmpJsonStreamer *s)
{
    int depth = s->stack->len;

    g_string_truncate(s->msg, 0);
    g_array_set_size(s->stack, 0);
    s->raw_len = 0;
    if (depth > 0) {
        s->discarding = true;
        s->discard_depth = depth;
    }
}

static void finish_value(QmpJsonStreamer *s)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;

    if (!g_utf8_validate(s->msg->str, s->msg->len, NULL)) {
        emit_error(s, "invalid UTF-8 sequence in string");
    } else if (!json_parser_load_from_data(parser, s->msg->str, s->msg->len, &err)) {
        /* Our grammar check should make this unreachable; report it anyway. */
        emit_error(s, "%s", err->message);
    } else {
        JsonNode *root = json_parser_steal_root(parser);
        if (root) {
            s->emit(s->opaque, root, NULL);
        }
    }
    g_string_truncate(s->msg, 0);
    s->raw_len = 0;
}

/* A value (scalar or a closed container) was completed at the current level. */
static void value_done(QmpJsonStreamer *s)
{
    Level *top;

    if (s->stack->len == 0) {
        finish_value(s);
        return;
    }
    top = &g_array_index(s->stack, Level, s->stack->len - 1);
    top->state = top->state == GRAM_OBJ_VALUE ? GRAM_OBJ_COMMA_OR_END : GRAM_ARR_COMMA_OR_END;
}

static bool expecting_value(Level *top)
{
    return !top || top->state == GRAM_OBJ_VALUE || top->state == GRAM_ARR_VALUE ||
           top->state == GRAM_ARR_VALUE_OR_END;
}

/*
 * One complete token. @kind is the first character for punctuation, 's'
 * for a string, 'v' for a number or keyword. Returns false if a limit was hit.
 */
static bool token(QmpJsonStreamer *s, char kind, const char *text, GError **errp)
{
    Level *top = s->stack->len ? &g_array_index(s->stack, Level, s->stack->len - 1) : NULL;

    if (s->discarding) {
        if (kind == '{' || kind == '[') {
            s->discard_depth++;
        } else if (kind == '}' || kind == ']') {
            if (--s->discard_depth == 0) {
                s->discarding = false;
            }
        }
        return true;
    }

    switch (kind) {
    case '{':
    case '[': {
        Level l = { 0 };
        if (!expecting_value(top)) {
            goto unexpected;
        }
        if ((int)s->stack->len >= s->max_depth) {
            g_set_error(errp, GW_ERROR, ERROR_CLASS_GENERIC_ERROR,
                        "JSON parse error, nesting deeper than %d levels", s->max_depth);
            return false;
        }
        l.state = kind == '{' ? GRAM_OBJ_KEY_OR_END : GRAM_ARR_VALUE_OR_END;
        g_array_append_val(s->stack, l);
        g_string_append_c(s->msg, kind);
        return true;
    }
    case '}':
    case ']':
        if (!top) {
            emit_error(s, "expecting value");
            return true;
        }
        if (kind == '}' && top->state != GRAM_OBJ_KEY_OR_END &&
            top->state != GRAM_OBJ_COMMA_OR_END) {
            goto unexpected;
        }
        if (kind == ']' && top->state != GRAM_ARR_VALUE_OR_END &&
            top->state != GRAM_ARR_COMMA_OR_END) {
            goto unexpected;
        }
        g_string_append_c(s->msg, kind);
        g_array_set_size(s->stack, s->stack->len - 1);
        value_done(s);
        return true;
    case ':':
        if (!top || top->state != GRAM_OBJ_COLON) {
            goto unexpected;
        }
        top->state = GRAM_OBJ_VALUE;
        g_string_append_c(s->msg, ':');
        return true;
    case ',':
        if (!top || (top->state != GRAM_OBJ_COMMA_OR_END &&
                     top->state != GRAM_ARR_COMMA_OR_END)) {
            goto unexpected;
        }
        top->state = top->state == GRAM_OBJ_COMMA_OR_END ? GRAM_OBJ_KEY : GRAM_ARR_VALUE;
        g_string_append_c(s->msg, ',');
        return true;
    case 's':
        if (top && (top->state == GRAM_OBJ_KEY_OR_END || top->state == GRAM_OBJ_KEY)) {
            if (!top->keys) {
                top->keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
            }
            if (!g_hash_table_add(top->keys, g_strdup(text))) {
                emit_error(s, "duplicate key");
                fail_value(s);
                return true;
            }
            top->state = GRAM_OBJ_COLON;
            g_string_append(s->msg, text);
            return true;
        }
        /* fall through */
    default:
        if (!expecting_value(top)) {
            goto unexpected;
        }
        g_string_append(s->msg, text);
        value_done(s);
        return true;
    }

unexpected:
    if (top && (top->state == GRAM_OBJ_KEY_OR_END || top->state == GRAM_OBJ_KEY)) {
        emit_error(s, "key is not a string in object");
    } else if (top && top->state == GRAM_OBJ_COLON) {
        emit_error(s, "missing : in object pair");
    } else if (top && top->state == GRAM_OBJ_COMMA_OR_END) {
        emit_error(s, "expected separator in dict");
    } else if (top && top->state == GRAM_ARR_COMMA_OR_END) {
        emit_error(s, "expected separator in list");
    } else {
        emit_error(s, "expecting value");
    }
    fail_value(s);
    /* The offending token may itself open or close a level being skipped. */
    if (s->discarding) {
        if (kind == '{' || kind == '[') {
            s->discard_depth++;
        } else if ((kind == '}' || kind == ']') && --s->discard_depth == 0) {
            s->discarding = false;
        }
    }
    return true;
}

/* A lexical error: report it (unless we are skipping) and drop the value. */
static void lex_error(QmpJsonStreamer *s, const char *msg)
{
    if (!s->discarding) {
        emit_error(s, "%s", msg);
        fail_value(s);
    }
    g_string_truncate(s->tok, 0);
    s->lex = LEX_IDLE;
}

static bool number_valid(const char *t)
{
    const char *p = t;

    if (*p == '-') {
        p++;
    }
    if (*p == '0') {
        p++;
    } else if (g_ascii_isdigit(*p)) {
        while (g_ascii_isdigit(*p)) {
            p++;
        }
    } else {
        return false;
    }
    if (*p == '.') {
        p++;
        if (!g_ascii_isdigit(*p)) {
            return false;
        }
        while (g_ascii_isdigit(*p)) {
            p++;
        }
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') {
            p++;
        }
        if (!g_ascii_isdigit(*p)) {
            return false;
        }
        while (g_ascii_isdigit(*p)) {
            p++;
        }
    }
    return *p == '\0';
}

static bool end_number(QmpJsonStreamer *s, GError **errp)
{
    const char *t = s->tok->str;
    bool ok = true;

    s->lex = LEX_IDLE;
    if (!number_valid(t)) {
        g_autofree char *msg = g_strdup_printf("invalid number '%s'", t);
        lex_error(s, msg);
        return true;
    }
    if (!strpbrk(t, ".eE")) {
        /*
         * json-glib reads integers as gint64 and wraps silently. Integers up
         * to UINT64_MAX are kept (they wrap to the same bits, which is what a
         * uint64 member wants); anything bigger becomes a float, so integer
         * members reject it instead of seeing a wrapped value.
         */
        errno = 0;
        if (t[0] == '-') {
            g_ascii_strtoll(t, NULL, 10);
        } else {
            g_ascii_strtoull(t, NULL, 10);
        }
        if (errno == ERANGE) {
            g_string_append(s->tok, ".0");
        }
    }
    ok = token(s, 'v', s->tok->str, errp);
    g_string_truncate(s->tok, 0);
    return ok;
}

static bool end_keyword(QmpJsonStreamer *s, GError **errp)
{
    const char *t = s->tok->str;
    bool ok = true;

    s->lex = LEX_IDLE;
    if (strcmp(t, "true") && strcmp(t, "false") && strcmp(t, "null")) {
        g_autofree char *msg = g_strdup_printf("invalid keyword '%s'", t);
        lex_error(s, msg);
        return true;
    }
    ok = token(s, 'v', t, errp);
    g_string_truncate(s->tok, 0);
    return ok;
}

static void append_utf8(GString *out, gunichar c)
{
    char buf[8];
    int n = g_unichar_to_utf8(c, buf);

    /* Escape what JSON requires; everything else goes in as UTF-8. */
    if (c == '"' || c == '\\') {
        g_string_append_c(out, '\\');
        g_string_append_c(out, (char)c);
    } else if (c < 0x20) {
        g_string_append_printf(out, "\\u%04x", c);
    } else {
        g_string_append_len(out, buf, n);
    }
}

static void string_bad(QmpJsonStreamer *s, const char *msg)
{
    if (!s->str_err) {
        s->str_err = msg;
    }
    s->uni_left = 0;
    s->pending_low_expected = false;
}

/* One character inside a string; at the closing quote, s->lex becomes LEX_IDLE. */
static void string_char(QmpJsonStreamer *s, char c)
{
    unsigned char uc = (unsigned char)c;

    if (s->str_err) {
        /* Already broken: just find the end, honouring backslashes. */
        if (s->escape) {
            s->escape = false;
        } else if (c == '\\') {
            s->escape = true;
        } else if (c == s->quote) {
            s->lex = LEX_IDLE;
        }
        return;
    }

    if (s->uni_left > 0) {
        if (!g_ascii_isxdigit(c)) {
            string_bad(s, "invalid escape sequence in string");
            string_char(s, c);      /* @c may be the closing quote */
            return;
        }
        s->uni_val = s->uni_val * 16 + g_ascii_xdigit_value(c);
        if (--s->uni_left > 0) {
            return;
        }
        if (s->pending_low_expected) {
            if (s->uni_val < 0xdc00 || s->uni_val > 0xdfff) {
                string_bad(s, "invalid \\u escape (not a valid surrogate pair)");
                return;
            }
            append_utf8(s->tok, 0x10000 + ((s->pending_high - 0xd800) << 10) +
                        (s->uni_val - 0xdc00));
            s->pending_low_expected = false;
        } else if (s->uni_val >= 0xd800 && s->uni_val <= 0xdbff) {
            s->pending_high = s->uni_val;
            s->pending_low_expected = true;
        } else if (s->uni_val >= 0xdc00 && s->uni_val <= 0xdfff) {
            string_bad(s, "invalid \\u escape (not a valid surrogate pair)");
            return;
        } else if (s->uni_val == 0) {
            string_bad(s, "\\u0000 is not supported");
            return;
        } else {
            append_utf8(s->tok, s->uni_val);
        }
        return;
    }
    if (s->pending_low_expected && !s->escape && c != '\\') {
        string_bad(s, "invalid \\u escape (not a valid surrogate pair)");
        string_char(s, c);          /* @c may be the closing quote */
        return;
    }
    if (s->escape) {
        s->escape = false;
        if (s->pending_low_expected && c != 'u') {
            string_bad(s, "invalid \\u escape (not a valid surrogate pair)");
            return;
        }
        switch (c) {
        case '"': g_string_append(s->tok, "\\\""); break;
        case '\'': g_string_append_c(s->tok, '\''); break;
        case '\\': g_string_append(s->tok, "\\\\"); break;
        case '/': g_string_append_c(s->tok, '/'); break;
        case 'b': g_string_append(s->tok, "\\b"); break;
        case 'f': g_string_append(s->tok, "\\f"); break;
        case 'n': g_string_append(s->tok, "\\n"); break;
        case 'r': g_string_append(s->tok, "\\r"); break;
        case 't': g_string_append(s->tok, "\\t"); break;
        case 'u':
            s->uni_left = 4;
            s->uni_val = 0;
            break;
        default:
            string_bad(s, "invalid escape sequence in string");
            return;
        }
        return;
    }
    if (c == '\\') {
        s->escape = true;
        return;
    }
    if (c == s->quote) {
        g_string_append_c(s->tok, '"');
        s->lex = LEX_IDLE;
        return;        /* caller emits the token */
    }
    if (uc < 0x20) {
        string_bad(s, "control character in string");
        return;
    }
    if (c == '"') {
        g_string_append(s->tok, "\\\"");   /* inside a single-quoted string */
    } else {
        g_string_append_c(s->tok, c);
    }
    return;
}

bool qmp_json_streamer_feed(QmpJsonStreamer *s, const char *buf, size_t len,
                            GError **errp)
{
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];

        if (s->stack->len > 0 || s->lex != LEX_IDLE || s->discarding) {
            if (++s->raw_len > s->max_message) {
                g_set_error(errp, GW_ERROR, ERROR_CLASS_GENERIC_ERROR,
                            "JSON parse error, message larger than %zu bytes",
                            s->max_message);
                return false;
            }
        }

        switch (s->lex) {
        case LEX_STRING:
            string_char(s, c);
            if (s->lex == LEX_IDLE) {
                if (s->str_err) {
                    lex_error(s, s->str_err);
                } else if (!token(s, 's', s->tok->str, errp)) {
                    return false;
                }
                g_string_truncate(s->tok, 0);
            }
            continue;
        case LEX_NUMBER:
            if (g_ascii_isdigit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
                g_string_append_c(s->tok, c);
                if (s->tok->len > 512) {
                    lex_error(s, "number too long");
                }
                continue;
            }
            if (!end_number(s, errp)) {
                return false;
            }
            break;
        case LEX_KEYWORD:
            if (g_ascii_isalnum(c) || c == '_') {
                g_string_append_c(s->tok, c);
                if (s->tok->len > 64) {
                    g_autofree char *msg = g_strdup_printf("invalid keyword '%s'", s->tok->str);
                    lex_error(s, msg);
                }
                continue;
            }
            if (!end_keyword(s, errp)) {
                return false;
            }
            break;
        case LEX_IDLE:
            break;
        }

        /* LEX_IDLE: start of a token */
        switch (c) {
        case ' ': case '\t': case '\r': case '\n':
            break;
        case '{': case '}': case '[': case ']': case ':': case ',': {
            char t[2] = { c, 0 };
            if (s->stack->len == 0 && !s->discarding && (c == '{' || c == '[')) {
                s->raw_len = 1;
            }
            if (!token(s, c, t, errp)) {
                return false;
            }
            break;
        }
        case '"': case '\'':
            s->lex = LEX_STRING;
            s->quote = c;
            s->escape = false;
            s->uni_left = 0;
            s->pending_low_expected = false;
            s->str_err = NULL;
            g_string_assign(s->tok, "\"");
            break;
        default:
            if (c == '-' || g_ascii_isdigit(c)) {
                s->lex = LEX_NUMBER;
                g_string_assign(s->tok, (char[]){ c, 0 });
            } else if (g_ascii_isalpha(c)) {
                s->lex = LEX_KEYWORD;
                g_string_assign(s->tok, (char[]){ c, 0 });
            } else {
                char bad[8];
                if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f) {
                    g_snprintf(bad, sizeof(bad), "\\x%02x", (unsigned char)c);
                } else {
                    g_snprintf(bad, sizeof(bad), "%c", c);
                }
                g_autofree char *msg = g_strdup_printf("stray '%s'", bad);
                lex_error(s, msg);
            }
            break;
        }
        if (s->stack->len == 0 && s->lex == LEX_IDLE && !s->discarding) {
            s->raw_len = 0;
        }
    }
    return true;
}

/* ---- writer ------------------------------------------------------------ */

static void append_string(GString *out, const char *str)
{
    g_string_append_c(out, '"');
    for (const char *p = str; *p; p++) {
        unsigned char c = (unsigned char)*p;
        switch (c) {
        case '"': g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                g_string_append_printf(out, "\\u%04x", c);
            } else {
                g_string_append_c(out, (char)c);
            }
        }
    }
    g_string_append_c(out, '"');
}

static void append_double(GString *out, double d)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    if (!isfinite(d)) {
        /* JSON has no spelling for these; QEMU prints them bare too. */
        g_string_append(out, isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
        return;
    }
    /* Shortest precision that reads back as the same double. */
    for (int prec = 15; prec <= 17; prec++) {
        g_ascii_formatd(buf, sizeof(buf), prec == 15 ? "%.15g" : prec == 16 ? "%.16g" : "%.17g", d);
        if (g_ascii_strtod(buf, NULL) == d) {
            break;
        }
    }
    g_string_append(out, buf);
    if (!strpbrk(buf, ".eE")) {
        g_string_append(out, ".0");
    }
}

void qmp_json_append(GString *out, JsonNode *node)
{
    if (!node || JSON_NODE_HOLDS_NULL(node)) {
        g_string_append(out, "null");
        return;
    }
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT: {
        JsonObjectIter it;
        const char *name;
        JsonNode *member;
        bool first = true;

        g_string_append_c(out, '{');
        json_object_iter_init_ordered(&it, json_node_get_object(node));
        while (json_object_iter_next_ordered(&it, &name, &member)) {
            if (!first) {
                g_string_append(out, ", ");
            }
            first = false;
            append_string(out, name);
            g_string_append(out, ": ");
            qmp_json_append(out, member);
        }
        g_string_append_c(out, '}');
        break;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *arr = json_node_get_array(node);
        guint n = json_array_get_length(arr);

        g_string_append_c(out, '[');
        for (guint i = 0; i < n; i++) {
            if (i) {
                g_string_append(out, ", ");
            }
            qmp_json_append(out, json_array_get_element(arr, i));
        }
        g_string_append_c(out, ']');
        break;
    }
    case JSON_NODE_VALUE: {
        GType t = json_node_get_value_type(node);
        if (t == G_TYPE_INT64) {
            g_string_append_printf(out, "%" G_GINT64_FORMAT, json_node_get_int(node));
        } else if (t == G_TYPE_DOUBLE) {
            append_double(out, json_node_get_double(node));
        } else if (t == G_TYPE_BOOLEAN) {
            g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
        } else if (t == G_TYPE_STRING) {
            append_string(out, json_node_get_string(node));
        } else {
            g_string_append(out, "null");
        }
        break;
    }
    case JSON_NODE_NULL:
        g_string_append(out, "null");
        break;
    }
}

char *qmp_json_to_string(JsonNode *node)
{
    GString *out = g_string_new(NULL);

    qmp_json_append(out, node);
    return g_string_free(out, FALSE);
}
