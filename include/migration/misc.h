/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the rest of godwit calls in migration/. */
#ifndef GODWIT_MIGRATION_MISC_H
#define GODWIT_MIGRATION_MISC_H

#include "qemu/osdep.h"

/* Register RAM and the run-state record (main thread, after the machine is built). */
void migration_init(void);

/*
 * -incoming URI: start listening (or, for "defer", wait for
 * migrate-incoming). Main thread, BQL held, before the main loop runs.
 */
bool migration_incoming_from_cmdline(const char *uri, GError **errp);

#endif
