/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A machine for unit tests of migration/ram.c and the migration state machines:
 * guest RAM is plain memory in this process, and the few machine, vCPU,
 * KVM and main-loop calls those files make are stood in for here. The
 * dirty log is a bitmap the test writes (the pages "the guest" touched),
 * events are recorded, and main-loop callbacks run when the test waits.
 * No kernel interface is faked except KVM's: userfaultfd, sockets and
 * threads are real.
 */
#ifndef GODWIT_TESTS_MIGRATION_HARNESS_H
#define GODWIT_TESTS_MIGRATION_HARNESS_H

#include "qemu/osdep.h"
#include "hw/machine.h"
#include <json-glib/json-glib.h>

/*
 * Create current_machine with @ram_size bytes of private anonymous RAM
 * presented with @page_size pages (a 2 MiB "huge page" block is plain
 * memory too: postcopy on it places 2 MiB at a time) and @ncpus vCPUs, and
 * register the migration records (migration_init). The calling thread is
 * the main thread and holds the BQL from now on, as godwit's does.
 */
Machine *harness_init(uint64_t ram_size, size_t page_size, int ncpus);
/*
 * The same with RAM backed by @fd (mapped shared, 4 KiB pages), as a
 * memory-backend-file is: @zero_at_start says whether godwit would have
 * created it empty (RAMBlock.zero_at_start).
 */
Machine *harness_init_fd(int fd, uint64_t ram_size, bool zero_at_start);

/* Mark target pages as written by the guest (seen by the next dirty-log read). */
void harness_dirty(uint64_t first_page, uint64_t npages);
/* How many KVM_GET_DIRTY_LOG reads and whether logging is on. */
unsigned harness_dirty_log_reads(void);
bool harness_dirty_logging(void);

/*
 * Run main-loop callbacks scheduled by other threads, releasing the BQL
 * while sleeping, until an event @name (with data member @key equal to
 * @value, when @key is not NULL) has been emitted, or @timeout_ms passed.
 * Returns the event's data (json_object_unref) or NULL on timeout.
 */
JsonObject *harness_wait_event(const char *name, const char *key, const char *value,
                               int timeout_ms);
/* Events emitted so far with that name (any data). */
guint harness_event_count(const char *name);
/* Run scheduled main-loop callbacks for @ms without waiting for anything. */
void harness_run_main_loop(int ms);
/* The status qemu_system_exit_request() asked for, or -1. */
int harness_exit_status(void);

#endif
