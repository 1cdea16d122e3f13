/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The big lock: protects machine state (run state, device models, vCPU
 * stop/start handshakes). The main loop holds it while dispatching monitor
 * commands and chardev input; vCPU threads take it for device emulation;
 * the migration thread takes it to stop the VM.
 */
#ifndef GODWIT_BQL_H
#define GODWIT_BQL_H

#include "qemu/osdep.h"

void bql_lock(void);
void bql_unlock(void);
bool bql_locked(void);
/* Wait on @cond with the BQL as its mutex (the BQL must be held). */
void bql_cond_wait(GCond *cond);
gboolean bql_cond_wait_until(GCond *cond, gint64 end_time_us);

#endif
