/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * HMP, the human monitor: a line-oriented shell over QMP commands, on a
 * chardev (-monitor) or through QMP's human-monitor-command.
 */
#ifndef GODWIT_MONITOR_H
#define GODWIT_MONITOR_H

#include "qemu/osdep.h"
#include "chardev/char.h"

typedef struct Monitor Monitor;

/* Start an HMP monitor on @chr (prints the banner and prompt). */
Monitor *hmp_monitor_new(Chardev *chr, GError **errp);

/*
 * Free every monitor (call before chardev_cleanup_all(), at exit). Main
 * thread.
 */
void hmp_monitor_cleanup_all(void);

/* Run one HMP command line and return its output (human-monitor-command). */
char *hmp_run_command_line(const char *line);

/* Output helper for HMP command implementations. */
void monitor_printf(Monitor *mon, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * Suspend/resume reading input (HMP "migrate" without -d waits until the
 * migration leaves setup/active, as QEMU's does).
 */
void monitor_suspend(Monitor *mon);
void monitor_resume(Monitor *mon);

#endif
