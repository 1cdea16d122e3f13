/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * HMP internals: the command tables generated from hmp-commands*.hx, the
 * argument parser (typed arguments, integer expressions, /fmt) and helpers
 * the command handlers in monitor/hmp-cmds.c share.
 */
#ifndef GODWIT_HMP_H
#define GODWIT_HMP_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>

#include "monitor/monitor.h"

/* The prompt and banner. "(qemu) " so that scripts written for QEMU work. */
#define HMP_PROMPT "(qemu) "
#define HMP_BANNER "godwit " GW_VERSION_STRING " monitor - type 'help' for more information\n"

typedef void HMPHandler(Monitor *mon, JsonObject *args);

typedef struct HMPCommand {
    const char *name;           /* "cont|c": name and aliases */
    const char *args_type;      /* "val:l,size:l,filename:F" (scripts/hxtool.py) */
    const char *params;         /* "addr size file", for help */
    const char *help;
    HMPHandler *handler;
} HMPCommand;

/* Handler prototypes, generated from the .hx files. */
#include "monitor/hmp-commands-decls.h"
#include "monitor/hmp-commands-info-decls.h"

/* The tables (NULL-name terminated) and what "help" prints for each. */
extern const HMPCommand *const hmp_cmd_table;
extern const HMPCommand *const hmp_info_table;
extern const char *const hmp_cmd_help_text;
extern const char *const hmp_info_help_text;

/* Find @name (or one of its aliases) in @table; NULL if unknown. */
const HMPCommand *hmp_find_command(const HMPCommand *table, const char *name);

/*
 * Parse an integer expression at *@pp: + - * / % & | ^ ~, parentheses,
 * decimal / 0x hex / 0 octal numbers with an optional k/K/M/G/T suffix
 * (powers of 1024). Spaces between tokens are skipped; parsing stops at
 * the first character that cannot continue the expression, as QEMU's does
 * (so "4096 /tmp/x" fails with "invalid char 't' in expression").
 * Arithmetic wraps at 64 bits. On success *@pp points after the expression.
 */
bool hmp_parse_expr(const char **pp, int64_t *val, GError **errp);

/*
 * Parse the arguments of @cmd from @line (after the command name) into a
 * JSON object keyed by argument name: strings, integers, booleans; a /fmt
 * gives "count" and, when given, "format" (one-letter string) and "size".
 * Optional arguments that are absent are left out. Error messages are
 * QEMU's ("migrate: string expected", "Expected 'on' or 'off'", ...).
 */
JsonObject *hmp_parse_arguments(const HMPCommand *cmd, const char *line,
                                GError **errp);

/*
 * Parse a size such as "10", "1.5G", "512k" (suffixes B k K M G T P E,
 * powers of 1024) with @default_unit for a bare number (1 or 1 MiB).
 */
bool hmp_parse_size(const char *str, uint64_t default_unit, uint64_t *out);

/* Print "Error: <message>" for @err and free it (QEMU's HMP error form). */
void hmp_handle_error(Monitor *mon, GError *err);

/*
 * Run QMP command @name with @args (borrowed, may be NULL). On failure
 * print "Error: <desc>" and return false. On success store the result in
 * *@ret if @ret is non-NULL (caller unrefs; NULL for "{}").
 */
bool hmp_qmp(Monitor *mon, const char *name, JsonObject *args, JsonNode **ret);

/* Whether @mon can be suspended (false for human-monitor-command). */
bool monitor_is_interactive(Monitor *mon);

/* Sticky xp format and size (QEMU remembers the last ones, across monitors). */
void monitor_get_dump_format(Monitor *mon, char *format, int *size);
void monitor_set_dump_format(Monitor *mon, char format, int size);

/*
 * Remember the GSource that polls a synchronous "migrate" (0 when done),
 * so that cleanup can remove it.
 */
void monitor_set_poll_source(Monitor *mon, guint id);

/* Run one command line on @mon (what the line editor does on Enter). */
void hmp_execute_line(Monitor *mon, const char *line);

#endif
