/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The HMP monitor: a line editor on a chardev (echo, backspace, C-u,
 * history with the arrow keys), command lookup in the tables generated from
 * hmp-commands*.hx, and output capture for QMP's human-monitor-command.
 * Output turns "\n" into "\r\n", as QEMU's monitor does.
 */
#include "qemu/osdep.h"

#include "chardev/char.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "monitor/qmp.h"
#include "qemu/bql.h"

#include "monitor/hmp-commands.h"
#include "monitor/hmp-commands-info.h"

const HMPCommand *const hmp_cmd_table = hmp_cmds;
const HMPCommand *const hmp_info_table = hmp_info_cmds;
const char *const hmp_cmd_help_text = hmp_cmds_help_text;
const char *const hmp_info_help_text = hmp_info_cmds_help_text;

#define HMP_HISTORY_MAX 64
#define HMP_LINE_MAX 4096

enum { ESC_NONE, ESC_GOT_ESC, ESC_CSI };

/* Everything here runs on the main thread with the BQL held. */
struct Monitor {
    Chardev *chr;               /* NULL: output goes to @capture */
    GString *capture;
    GString *line;              /* being edited */
    GString *pending;           /* input received while suspended */
    int suspend_count;
    bool greeted;               /* banner shown to the current client */
    bool at_prompt;             /* the last thing printed is the prompt */
    bool last_cr;               /* swallow the LF of a CR LF */
    int esc_state;
    guint poll_source;          /* "migrate" waiting for the end, or 0 */
    GPtrArray *history;         /* oldest first */
    int hist_pos;               /* history->len: editing a new line */
};

/* Every monitor on a chardev, for hmp_monitor_cleanup_all(). */
static GPtrArray *hmp_monitors;

/* The last xp format and unit size; global and sticky, as in QEMU. */
static char hmp_dump_format = 'x';
static int hmp_dump_size = 4;

static void monitor_puts_raw(Monitor *mon, const char *s, size_t len)
{
    if (mon->capture) {
        g_string_append_len(mon->capture, s, len);
    } else {
        chardev_write(mon->chr, s, len);
    }
}

static void monitor_puts(Monitor *mon, const char *s)
{
    GString *out = g_string_sized_new(strlen(s) + 16);

    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            g_string_append_c(out, '\r');
        }
        g_string_append_c(out, *p);
    }
    if (out->len) {
        mon->at_prompt = false;
        monitor_puts_raw(mon, out->str, out->len);
    }
    g_string_free(out, true);
}

void monitor_printf(Monitor *mon, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    monitor_puts(mon, s);
    g_free(s);
}

bool monitor_is_interactive(Monitor *mon)
{
    return mon->capture == NULL;
}

void monitor_get_dump_format(Monitor *mon, char *format, int *size)
{
    *format = hmp_dump_format;
    *size = hmp_dump_size;
}

void monitor_set_dump_format(Monitor *mon, char format, int size)
{
    hmp_dump_format = format;
    hmp_dump_size = size;
}

static void monitor_show_prompt(Monitor *mon)
{
    monitor_puts_raw(mon, HMP_PROMPT, strlen(HMP_PROMPT));
    mon->at_prompt = true;
}

void hmp_handle_error(Monitor *mon, GError *err)
{
    if (err) {
        monitor_printf(mon, "Error: %s\n", err->message);
        g_error_free(err);
    }
}

bool hmp_qmp(Monitor *mon, const char *name, JsonObject *args, JsonNode **ret)
{
    GError *err = NULL;
    JsonNode *r = qmp_dispatch(name, args, &err);

    if (err) {
        if (r) {
            json_node_unref(r);
        }
        hmp_handle_error(mon, err);
        return false;
    }
    if (ret) {
        *ret = r;
    } else if (r) {
        json_node_unref(r);
    }
    return true;
}

/* ---- help and dispatch ---- */

static void print_help_line(Monitor *mon, const char *prefix, const HMPCommand *c)
{
    monitor_printf(mon, "%s%s %s -- %s\n", prefix, c->name, c->params, c->help);
}

void hmp_help(Monitor *mon, JsonObject *args)
{
    const char *name = json_object_has_member(args, "name")
                       ? json_object_get_string_member(args, "name") : NULL;
    g_auto(GStrv) words = NULL;
    const HMPCommand *c;

    if (!name) {
        monitor_puts(mon, hmp_cmd_help_text);
        monitor_puts(mon, hmp_info_help_text);
        return;
    }
    words = g_strsplit_set(name, " \t", -1);
    c = hmp_find_command(hmp_cmd_table, words[0]);
    if (!c) {
        monitor_printf(mon, "unknown command: '%s'\n", words[0]);
        return;
    }
    if (c->handler == hmp_info) {
        const char *sub = NULL;

        for (int i = 1; words[i]; i++) {
            if (*words[i]) {
                sub = words[i];
                break;
            }
        }
        if (!sub) {
            monitor_puts(mon, hmp_info_help_text);
            return;
        }
        c = hmp_find_command(hmp_info_table, sub);
        if (!c) {
            monitor_printf(mon, "unknown command: 'info %s'\n", sub);
            return;
        }
        print_help_line(mon, "info ", c);
        return;
    }
    print_help_line(mon, "", c);
}

void hmp_info(Monitor *mon, JsonObject *args)
{
    /* Subcommands are dispatched by hmp_execute_line; bare "info" lists them. */
    monitor_puts(mon, hmp_info_help_text);
}

/* Split the command name: up to a space or '/' ("xp/8xb 0" works). */
static const char *get_command_name(const char *p, char *name, size_t size)
{
    const char *start;
    size_t len;

    p = p + strspn(p, " \t");
    start = p;
    while (*p && *p != '/' && !g_ascii_isspace(*p)) {
        p++;
    }
    len = MIN((size_t)(p - start), size - 1);
    memcpy(name, start, len);
    name[len] = '\0';
    return p;
}

void hmp_execute_line(Monitor *mon, const char *line)
{
    char name[128];
    char sub[128];
    g_autofree char *typed = NULL;
    const char *p = get_command_name(line, name, sizeof(name));
    const HMPCommand *cmd;
    JsonObject *args;
    GError *err = NULL;

    if (!name[0]) {
        return;
    }
    cmd = hmp_find_command(hmp_cmd_table, name);
    if (!cmd) {
        monitor_printf(mon, "unknown command: '%s'\n", name);
        return;
    }
    typed = g_strdup(name);
    if (cmd->handler == hmp_info) {
        const char *q = get_command_name(p, sub, sizeof(sub));

        if (sub[0]) {
            cmd = hmp_find_command(hmp_info_table, sub);
            if (!cmd) {
                monitor_printf(mon, "unknown command: 'info %s'\n", sub);
                return;
            }
            g_free(typed);
            typed = g_strdup_printf("info %s", sub);
            p = q;
        }
    }
    args = hmp_parse_arguments(cmd, p, &err);
    if (!args) {
        monitor_printf(mon, "%s\n", err->message);
        monitor_printf(mon, "Try \"help %s\" for more information\n", typed);
        g_error_free(err);
        return;
    }
    cmd->handler(mon, args);
    json_object_unref(args);
}

/* ---- suspend / resume ---- */

static void hmp_feed(Monitor *mon, const uint8_t *buf, size_t len);

void monitor_suspend(Monitor *mon)
{
    mon->suspend_count++;
}

void monitor_resume(Monitor *mon)
{
    if (mon->suspend_count == 0 || --mon->suspend_count > 0) {
        return;
    }
    if (mon->capture) {
        return;
    }
    monitor_show_prompt(mon);
    if (mon->pending->len) {
        /* What was typed meanwhile: run it now, in order. */
        GString *p = mon->pending;

        mon->pending = g_string_new(NULL);
        hmp_feed(mon, (const uint8_t *)p->str, p->len);
        g_string_free(p, true);
    }
}

/* ---- line editor ---- */

static void line_replace(Monitor *mon, const char *text)
{
    /* Erase what is shown, then show @text. */
    for (gsize i = 0; i < mon->line->len; i++) {
        monitor_puts_raw(mon, "\b \b", 3);
    }
    g_string_assign(mon->line, text);
    monitor_puts_raw(mon, mon->line->str, mon->line->len);
}

static void history_add(Monitor *mon, const char *line)
{
    GPtrArray *h = mon->history;

    if (!*line || (h->len && !strcmp(g_ptr_array_index(h, h->len - 1), line))) {
        return;
    }
    if (h->len >= HMP_HISTORY_MAX) {
        g_ptr_array_remove_index(h, 0);
    }
    g_ptr_array_add(h, g_strdup(line));
}

static void history_move(Monitor *mon, int dir)
{
    int pos = mon->hist_pos + dir;

    if (pos < 0 || pos > (int)mon->history->len) {
        return;
    }
    mon->hist_pos = pos;
    line_replace(mon, pos == (int)mon->history->len ? ""
                 : (const char *)g_ptr_array_index(mon->history, pos));
}

static void hmp_enter(Monitor *mon)
{
    g_autofree char *line = g_string_free(mon->line, false);

    mon->line = g_string_new(NULL);
    monitor_puts_raw(mon, "\r\n", 2);
    mon->at_prompt = false;
    history_add(mon, line);
    mon->hist_pos = mon->history->len;
    hmp_execute_line(mon, line);
    if (mon->suspend_count == 0) {
        monitor_show_prompt(mon);
    }
}

static void hmp_feed(Monitor *mon, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];
        bool was_cr = mon->last_cr;

        if (mon->suspend_count > 0) {
            g_string_append_len(mon->pending, (const char *)buf + i, len - i);
            return;
        }
        mon->last_cr = false;
        if (mon->esc_state == ESC_GOT_ESC) {
            mon->esc_state = (c == '[' || c == 'O') ? ESC_CSI : ESC_NONE;
            continue;
        }
        if (mon->esc_state == ESC_CSI) {
            if (g_ascii_isdigit(c) || c == ';') {
                continue;
            }
            mon->esc_state = ESC_NONE;
            if (c == 'A') {
                history_move(mon, -1);
            } else if (c == 'B') {
                history_move(mon, +1);
            }
            continue;   /* other keys (left, right, ...) are ignored */
        }
        switch (c) {
        case '\r':
            mon->last_cr = true;
            hmp_enter(mon);
            break;
        case '\n':
            if (!was_cr) {
                hmp_enter(mon);
            }
            break;
        case 0x1b:
            mon->esc_state = ESC_GOT_ESC;
            break;
        case 0x7f:
        case '\b':
            if (mon->line->len) {
                g_string_truncate(mon->line, mon->line->len - 1);
                monitor_puts_raw(mon, "\b \b", 3);
            }
            break;
        case 0x15:      /* C-u: kill the line */
            line_replace(mon, "");
            break;
        default:
            if (c >= 0x20 && mon->line->len < HMP_LINE_MAX) {
                char ch = c;

                g_string_append_c(mon->line, ch);
                monitor_puts_raw(mon, &ch, 1);
            }
            break;
        }
    }
}

static void hmp_chr_read(void *opaque, const uint8_t *buf, size_t len)
{
    hmp_feed(opaque, buf, len);
}

static void hmp_greet(Monitor *mon)
{
    monitor_puts(mon, HMP_BANNER);
    monitor_show_prompt(mon);
    mon->greeted = true;
}

static void hmp_chr_event(void *opaque, bool connected)
{
    Monitor *mon = opaque;

    if (!connected) {
        mon->greeted = false;
        g_string_truncate(mon->line, 0);
        mon->esc_state = ESC_NONE;
        return;
    }
    if (chardev_is_mux_frontend(mon->chr) && mon->greeted) {
        /* Back in front after C-a c: show the prompt and the line so far. */
        if (!mon->at_prompt) {
            monitor_puts_raw(mon, "\r\n", 2);
            monitor_show_prompt(mon);
            monitor_puts_raw(mon, mon->line->str, mon->line->len);
        }
        return;
    }
    /* A new client on a socket: it gets its own banner. */
    hmp_greet(mon);
}

static Monitor *monitor_alloc(void)
{
    Monitor *mon = g_new0(Monitor, 1);

    mon->line = g_string_new(NULL);
    mon->pending = g_string_new(NULL);
    mon->history = g_ptr_array_new_with_free_func(g_free);
    return mon;
}

static void monitor_free(Monitor *mon)
{
    g_string_free(mon->line, true);
    g_string_free(mon->pending, true);
    g_ptr_array_free(mon->history, true);
    if (mon->capture) {
        g_string_free(mon->capture, true);
    }
    g_free(mon);
}

Monitor *hmp_monitor_new(Chardev *chr, GError **errp)
{
    Monitor *mon;

    if (!chr) {
        error_setg(errp, "monitor: no character device");
        return NULL;
    }
    mon = monitor_alloc();
    mon->chr = chr;
    chardev_set_frontend_is_monitor(chr, true);
    /* May greet at once, when a socket client is already connected. */
    chardev_set_handlers(chr, hmp_chr_read, hmp_chr_event, mon);
    if (!mon->greeted) {
        hmp_greet(mon);
    }
    if (!hmp_monitors) {
        hmp_monitors = g_ptr_array_new();
    }
    g_ptr_array_add(hmp_monitors, mon);
    return mon;
}

void monitor_set_poll_source(Monitor *mon, guint id)
{
    mon->poll_source = id;
}

void hmp_monitor_cleanup_all(void)
{
    if (!hmp_monitors) {
        return;
    }
    for (guint i = 0; i < hmp_monitors->len; i++) {
        Monitor *mon = g_ptr_array_index(hmp_monitors, i);

        if (mon->poll_source) {
            g_source_remove(mon->poll_source);
        }
        chardev_set_handlers(mon->chr, NULL, NULL, NULL);
        monitor_free(mon);
    }
    g_ptr_array_free(hmp_monitors, true);
    hmp_monitors = NULL;
}

char *hmp_run_command_line(const char *line)
{
    Monitor *mon = monitor_alloc();
    char *out;

    mon->capture = g_string_new(NULL);
    hmp_execute_line(mon, line ? line : "");
    out = g_string_free(mon->capture, false);
    mon->capture = NULL;
    monitor_free(mon);
    return out;
}

JsonNode *qmp_human_monitor_command(JsonObject *args, GError **errp);

JsonNode *qmp_human_monitor_command(JsonObject *args, GError **errp)
{
    const char *line = json_object_get_string_member(args, "command-line");
    g_autofree char *out = hmp_run_command_line(line);
    JsonNode *node = json_node_new(JSON_NODE_VALUE);

    json_node_set_string(node, out);
    return node;
}
