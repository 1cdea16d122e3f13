/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * HMP argument parsing: the typed argument list of a command (from its
 * .hx "args" string), integer expressions, memory dump formats and sizes.
 * Pure code with no machine dependency, so unit tests drive it directly.
 */
#include "qemu/osdep.h"

#include "monitor/hmp.h"

/* ---- expressions ---- */

/*
 * Parentheses and unary operators recurse; the input comes from a monitor
 * (human-monitor-command takes up to 1 MiB), so the nesting is bounded well
 * below what the stack holds.
 */
#define EXPR_MAX_DEPTH 64

typedef struct ExprParser {
    const char *p;
    GError **errp;
    bool failed;
    unsigned depth;
} ExprParser;

static void expr_error(ExprParser *e, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void expr_error(ExprParser *e, const char *fmt, ...)
{
    va_list ap;

    if (e->failed) {
        return;
    }
    e->failed = true;
    va_start(ap, fmt);
    if (e->errp) {
        char *msg = g_strdup_vprintf(fmt, ap);

        g_set_error_literal(e->errp, GW_ERROR, ERROR_CLASS_GENERIC_ERROR, msg);
        g_free(msg);
    }
    va_end(ap);
}

static void expr_skip_spaces(ExprParser *e)
{
    while (g_ascii_isspace(*e->p)) {
        e->p++;
    }
}

static uint64_t expr_sum(ExprParser *e);

static uint64_t expr_unary(ExprParser *e);

static uint64_t expr_unary_nested(ExprParser *e)
{
    uint64_t n;
    char *end;
    char c;

    if (e->failed) {
        return 0;
    }
    c = *e->p;
    switch (c) {
    case '+':
        e->p++;
        expr_skip_spaces(e);
        return expr_unary(e);
    case '-':
        e->p++;
        expr_skip_spaces(e);
        return -expr_unary(e);
    case '~':
        e->p++;
        expr_skip_spaces(e);
        return ~expr_unary(e);
    case '(':
        e->p++;
        expr_skip_spaces(e);
        n = expr_sum(e);
        if (e->failed) {
            return 0;
        }
        if (*e->p != ')') {
            expr_error(e, "')' expected");
            return 0;
        }
        e->p++;
        expr_skip_spaces(e);
        return n;
    case '$':
        expr_error(e, "register values are not supported in expressions");
        return 0;
    case '\0':
        expr_error(e, "unexpected end of expression");
        return 0;
    default:
        if (!g_ascii_isdigit(c)) {
            expr_error(e, "invalid char '%c' in expression", c);
            return 0;
        }
        errno = 0;
        n = g_ascii_strtoull(e->p, &end, 0);
        if (errno == ERANGE) {
            expr_error(e, "number too large");
            return 0;
        }
        e->p = end;
        /* Size suffixes, right after the digits. */
        switch (*e->p) {
        case 'k':
        case 'K':
            n <<= 10;
            e->p++;
            break;
        case 'M':
            n <<= 20;
            e->p++;
            break;
        case 'G':
            n <<= 30;
            e->p++;
            break;
        case 'T':
            n <<= 40;
            e->p++;
            break;
        default:
            break;
        }
        expr_skip_spaces(e);
        return n;
    }
}

static uint64_t expr_unary(ExprParser *e)
{
    uint64_t n;

    if (e->depth >= EXPR_MAX_DEPTH) {
        expr_error(e, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
        return 0;
    }
    e->depth++;
    n = expr_unary_nested(e);
    e->depth--;
    return n;
}

static uint64_t expr_prod(ExprParser *e)
{
    uint64_t a = expr_unary(e);

    while (!e->failed && (*e->p == '*' || *e->p == '/' || *e->p == '%')) {
        char op = *e->p++;
        int64_t b;

        expr_skip_spaces(e);
        b = expr_unary(e);
        if (e->failed) {
            return 0;
        }
        if (op == '*') {
            a *= (uint64_t)b;
        } else if (b == 0) {
            expr_error(e, "division by zero");
            return 0;
        } else if (b == -1) {
            /* INT64_MIN / -1 overflows in C; wrap like the rest. */
            a = op == '/' ? -a : 0;
        } else {
            a = op == '/' ? (uint64_t)((int64_t)a / b) : (uint64_t)((int64_t)a % b);
        }
    }
    return a;
}

static uint64_t expr_logic(ExprParser *e)
{
    uint64_t a = expr_prod(e);

    while (!e->failed && (*e->p == '&' || *e->p == '|' || *e->p == '^')) {
        char op = *e->p++;
        uint64_t b;

        expr_skip_spaces(e);
        b = expr_prod(e);
        a = op == '&' ? a & b : op == '|' ? a | b : a ^ b;
    }
    return a;
}

static uint64_t expr_sum(ExprParser *e)
{
    uint64_t a = expr_logic(e);

    while (!e->failed && (*e->p == '+' || *e->p == '-')) {
        char op = *e->p++;
        uint64_t b;

        expr_skip_spaces(e);
        b = expr_logic(e);
        a = op == '+' ? a + b : a - b;
    }
    return a;
}

bool hmp_parse_expr(const char **pp, int64_t *val, GError **errp)
{
    ExprParser e = { .p = *pp, .errp = errp };
    uint64_t v;

    expr_skip_spaces(&e);
    v = expr_sum(&e);
    if (e.failed) {
        return false;
    }
    *val = (int64_t)v;
    *pp = e.p;
    return true;
}

/* ---- sizes ---- */

bool hmp_parse_size(const char *str, uint64_t default_unit, uint64_t *out)
{
    const char *p = str;
    char *end;
    uint64_t mult = default_unit;
    double d;
    uint64_t whole;

    while (g_ascii_isspace(*p)) {
        p++;
    }
    if (!g_ascii_isdigit(*p) && *p != '.') {
        return false;
    }
    errno = 0;
    whole = g_ascii_strtoull(p, &end, 10);
    if (errno == ERANGE) {
        return false;
    }
    d = (double)whole;
    if (*end == '.') {
        /* A fraction ("1.5G") is only meaningful with a unit. */
        d = g_ascii_strtod(p, &end);
    }
    switch (*end) {
    case 'b': case 'B': mult = 1; end++; break;
    case 'k': case 'K': mult = 1ULL << 10; end++; break;
    case 'm': case 'M': mult = 1ULL << 20; end++; break;
    case 'g': case 'G': mult = 1ULL << 30; end++; break;
    case 't': case 'T': mult = 1ULL << 40; end++; break;
    case 'p': case 'P': mult = 1ULL << 50; end++; break;
    case 'e': case 'E': mult = 1ULL << 60; end++; break;
    default: break;
    }
    if (*end != '\0' || end == p) {
        return false;
    }
    if (d != (double)whole) {
        if (mult == 1 || d * (double)mult >= 18446744073709551616.0) {
            return false;
        }
        *out = (uint64_t)(d * (double)mult);
        return true;
    }
    if (whole != 0 && mult > UINT64_MAX / whole) {
        return false;
    }
    *out = whole * mult;
    return true;
}

/* ---- typed argument lists ---- */

typedef struct ArgSpec {
    char name[64];
    char type;          /* s F S l b / or '-' for a flag */
    char flag;          /* for '-' */
    bool optional;
} ArgSpec;

static GArray *parse_arg_specs(const char *args_type)
{
    GArray *specs = g_array_new(false, true, sizeof(ArgSpec));
    g_auto(GStrv) items = NULL;

    if (!args_type || !*args_type) {
        return specs;
    }
    items = g_strsplit(args_type, ",", -1);
    for (char **it = items; *it; it++) {
        const char *colon = strchr(*it, ':');
        ArgSpec a = { 0 };
        const char *t;

        if (!colon) {
            continue;   /* hxtool.py validated the table */
        }
        g_strlcpy(a.name, *it, MIN(sizeof(a.name), (size_t)(colon - *it + 1)));
        t = colon + 1;
        if (*t == '-') {
            a.type = '-';
            a.flag = t[1];
            t += 2;
        } else {
            a.type = *t++;
        }
        a.optional = *t == '?';
        g_array_append_val(specs, a);
    }
    return specs;
}

static const char *skip_spaces(const char *p)
{
    while (g_ascii_isspace(*p)) {
        p++;
    }
    return p;
}

/* A word, or a double-quoted string with \n \r \t \\ \" \' escapes. */
static char *parse_string(const char **pp, GError **errp)
{
    const char *p = *pp;
    GString *s = g_string_new(NULL);

    if (*p == '"') {
        p++;
        while (*p && *p != '"') {
            if (*p == '\\') {
                p++;
                switch (*p) {
                case 'n': g_string_append_c(s, '\n'); break;
                case 'r': g_string_append_c(s, '\r'); break;
                case 't': g_string_append_c(s, '\t'); break;
                case '\\': case '"': case '\'': g_string_append_c(s, *p); break;
                case '\0':
                    error_setg(errp, "unterminated string");
                    g_string_free(s, true);
                    return NULL;
                default:
                    error_setg(errp, "unsupported escape code: '\\%c'", *p);
                    g_string_free(s, true);
                    return NULL;
                }
                p++;
            } else {
                g_string_append_c(s, *p++);
            }
        }
        if (*p != '"') {
            error_setg(errp, "unterminated string");
            g_string_free(s, true);
            return NULL;
        }
        p++;
    } else {
        while (*p && !g_ascii_isspace(*p)) {
            g_string_append_c(s, *p++);
        }
    }
    *pp = p;
    return g_string_free(s, false);
}

static bool parse_format(const char **pp, JsonObject *obj, GError **errp)
{
    const char *p = *pp;
    int64_t count = 1;
    char format = 0;
    int size = 0;

    if (*p != '/') {
        json_object_set_int_member(obj, "count", 1);
        return true;
    }
    p++;
    if (g_ascii_isdigit(*p)) {
        char *end;

        count = g_ascii_strtoll(p, &end, 10);
        p = end;
    }
    while (*p && !g_ascii_isspace(*p)) {
        switch (*p) {
        case 'o': case 'd': case 'u': case 'x': case 'c': case 'i':
            format = *p;
            break;
        case 'b': size = 1; break;
        case 'h': size = 2; break;
        case 'w': size = 4; break;
        case 'g': size = 8; break;
        default:
            error_setg(errp, "invalid char in format: '%c'", *p);
            return false;
        }
        p++;
    }
    json_object_set_int_member(obj, "count", count);
    if (format) {
        char f[2] = { format, 0 };

        json_object_set_string_member(obj, "format", f);
    }
    if (size) {
        json_object_set_int_member(obj, "size", size);
    }
    *pp = p;
    return true;
}

/* Options -x for the run of flag arguments starting at specs[i]. */
static bool parse_flags(const char *cmdname, GArray *specs, guint *i,
                        const char **pp, JsonObject *obj, GError **errp)
{
    guint first = *i, last = *i;
    const char *p = *pp;

    while (last + 1 < specs->len && g_array_index(specs, ArgSpec, last + 1).type == '-') {
        last++;
    }
    for (;;) {
        bool matched = false;

        p = skip_spaces(p);
        if (p[0] != '-' || !g_ascii_isalpha(p[1])) {
            break;
        }
        for (guint k = first; k <= last; k++) {
            ArgSpec *a = &g_array_index(specs, ArgSpec, k);

            if (a->flag == p[1]) {
                matched = true;
                json_object_set_boolean_member(obj, a->name, true);
            }
        }
        if (!matched) {
            error_setg(errp, "%s: unsupported option -%c", cmdname, p[1]);
            return false;
        }
        p += 2;
        if (*p && !g_ascii_isspace(*p)) {
            error_setg(errp, "%s: extraneous characters at the end of line", cmdname);
            return false;
        }
    }
    *i = last;
    *pp = p;
    return true;
}

JsonObject *hmp_parse_arguments(const HMPCommand *cmd, const char *line,
                                GError **errp)
{
    g_autoptr(GArray) specs = parse_arg_specs(cmd->args_type);
    JsonObject *obj = json_object_new();
    const char *p = line ? line : "";

    for (guint i = 0; i < specs->len; i++) {
        ArgSpec *a = &g_array_index(specs, ArgSpec, i);

        if (a->type == '-') {
            if (!parse_flags(cmd->name, specs, &i, &p, obj, errp)) {
                goto fail;
            }
            continue;
        }
        p = skip_spaces(p);
        switch (a->type) {
        case 's':
        case 'F': {
            char *s;

            if (!*p) {
                if (a->optional) {
                    break;
                }
                error_setg(errp, "%s: %s expected", cmd->name,
                           a->type == 'F' ? "filename" : "string");
                goto fail;
            }
            s = parse_string(&p, errp);
            if (!s) {
                goto fail;
            }
            json_object_set_string_member(obj, a->name, s);
            g_free(s);
            break;
        }
        case 'S': {
            g_autofree char *rest = g_strchomp(g_strdup(p));

            if (!*rest) {
                if (a->optional) {
                    break;
                }
                error_setg(errp, "%s: string expected", cmd->name);
                goto fail;
            }
            json_object_set_string_member(obj, a->name, rest);
            p += strlen(p);
            break;
        }
        case 'l': {
            int64_t v;

            if (!*p && a->optional) {
                break;
            }
            if (!hmp_parse_expr(&p, &v, errp)) {
                goto fail;
            }
            json_object_set_int_member(obj, a->name, v);
            break;
        }
        case 'b': {
            g_autofree char *w = NULL;

            if (!*p && a->optional) {
                break;
            }
            w = parse_string(&p, NULL);
            if (w && !strcmp(w, "on")) {
                json_object_set_boolean_member(obj, a->name, true);
            } else if (w && !strcmp(w, "off")) {
                json_object_set_boolean_member(obj, a->name, false);
            } else {
                error_setg(errp, "Expected 'on' or 'off'");
                goto fail;
            }
            break;
        }
        case '/':
            if (!parse_format(&p, obj, errp)) {
                goto fail;
            }
            break;
        default:
            error_setg(errp, "%s: bad argument type '%c' in the command table",
                       cmd->name, a->type);
            goto fail;
        }
    }
    p = skip_spaces(p);
    if (*p) {
        error_setg(errp, "%s: extraneous characters at the end of line", cmd->name);
        goto fail;
    }
    return obj;

fail:
    json_object_unref(obj);
    return NULL;
}

const HMPCommand *hmp_find_command(const HMPCommand *table, const char *name)
{
    for (const HMPCommand *c = table; c->name; c++) {
        const char *n = c->name;

        /* Match "cont|c" against each '|'-separated alias. */
        while (n && *n) {
            const char *bar = strchr(n, '|');
            size_t len = bar ? (size_t)(bar - n) : strlen(n);

            if (strlen(name) == len && !strncmp(n, name, len)) {
                return c;
            }
            n = bar ? bar + 1 : NULL;
        }
    }
    return NULL;
}
