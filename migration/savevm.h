/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Records and commands of the migration stream, the registry of what takes
 * part in it (SaveStateHandler one-shot device records, SaveLiveOps
 * iterative sections such as RAM) and the destination's load loop.
 * Byte layouts: docs/devel/migration/stream.md.
 */
#ifndef GODWIT_MIGRATION_SAVEVM_H
#define GODWIT_MIGRATION_SAVEVM_H

#include "qemu/osdep.h"
#include "migration/format.h"
#include "migration/register.h"
#include "migration/stream.h"

/*
 * Iterative ("live") sections: bulk state sent while the guest runs (RAM).
 * Source: START (save_setup), PART (save_iterate, repeatedly), END
 * (save_complete). Each payload must be self-delimiting (RAM ends every
 * chunk with an EOS record), because the loader hands the stream to
 * load() and expects it to stop exactly at the section footer.
 *
 * Threads: save_* run in the source migration thread ("mig/src/main");
 * save_complete with the VM stopped. load_* run in whichever destination
 * thread reads the stream ("mig/dst/main", or "mig/dst/listen" in
 * postcopy). No lock is held by the stream layer.
 */
typedef struct SaveLiveOps {
    /* Write the START payload (e.g. the RAM block list). */
    bool (*save_setup)(MigStream *s, void *opaque, GError **errp);
    /*
     * Write one PART payload, bounded in time/bytes by the callee.
     * Return 1 if nothing is left to send right now, 0 if more remains,
     * -1 on error (with @errp set).
     */
    int (*save_iterate)(MigStream *s, void *opaque, GError **errp);
    /* Write the END payload: everything still pending (VM stopped). */
    bool (*save_complete)(MigStream *s, void *opaque, GError **errp);
    /* Optional: bytes still to send (for the convergence decision). */
    uint64_t (*save_pending)(void *opaque);
    /* Optional: release source resources (after success, failure or cancel). */
    void (*save_cleanup)(void *opaque);
    /* Optional: prepare to receive (called at the START record, once). */
    bool (*load_setup)(void *opaque, GError **errp);
    /*
     * Read one section payload (@type is START, PART or END) of version
     * @version. Must consume exactly the payload.
     */
    bool (*load)(MigStream *s, void *opaque, uint32_t version,
                 MigRecordType type, GError **errp);
    /* Optional: release destination resources. */
    void (*load_cleanup)(void *opaque);
} SaveLiveOps;

/*
 * Register an iterative section (main thread, before any migration). The
 * version is what save_* write; a loader accepts versions up to it.
 */
void register_savelive(const char *idstr, uint32_t instance_id,
                       uint32_t version, const SaveLiveOps *ops,
                       void *opaque);

/* Forget every registration (tests; process teardown). */
void savevm_unregister_all(void);

/* --- writing records (any thread owning @s; errors latch in @s) --- */

void savevm_put_header(MigStream *s);
void savevm_put_config(MigStream *s, const MigConfig *c);
void savevm_put_eof(MigStream *s);
void savevm_put_footer(MigStream *s, uint32_t section_id);
/* START/FULL headers carry the name; PART/END only the id. */
void savevm_put_section_header(MigStream *s, MigRecordType type,
                               uint32_t section_id, const char *idstr,
                               uint32_t instance_id, uint32_t version);
/* A complete SECTION_FULL record: header, length, payload, CRC, footer. */
void savevm_put_full(MigStream *s, uint32_t section_id, const char *idstr,
                     uint32_t instance_id, uint32_t version,
                     const uint8_t *payload, size_t len);

/* A COMMAND record; @len <= MIG_CMD_MAX_LEN. */
void savevm_put_command(MigStream *s, MigCommand cmd, const void *payload,
                        size_t len);
void savevm_send_open_return_path(MigStream *s);
void savevm_send_ping(MigStream *s, uint32_t value);
void savevm_send_postcopy_advise(MigStream *s, uint64_t pagesize_summary,
                                 uint64_t target_page_size);
void savevm_send_postcopy_listen(MigStream *s);
void savevm_send_postcopy_run(MigStream *s);
void savevm_send_postcopy_resume(MigStream *s);
bool savevm_send_postcopy_discard(MigStream *s, const char *block,
                                  const MigDiscardRange *r, unsigned n,
                                  GError **errp);
bool savevm_send_recv_bitmap(MigStream *s, const char *block, GError **errp);
/* PACKAGED command followed by @len bytes of stream body (no header). */
bool savevm_send_packaged(MigStream *s, const uint8_t *blob, size_t len,
                          GError **errp);

/* --- source: the registry drives these (migration thread) --- */

/* START of every live section. */
bool savevm_live_setup(MigStream *s, GError **errp);
/* PART of every live section: 1 = all idle, 0 = more to send, -1 error. */
int savevm_live_iterate(MigStream *s, GError **errp);
/* Sum of save_pending over live sections. */
uint64_t savevm_live_pending(void);
/* END of every live section (VM stopped). */
bool savevm_live_complete(MigStream *s, GError **errp);
/* Call save_cleanup of every live section. */
void savevm_live_cleanup(void);
/*
 * A SECTION_FULL record for every SaveStateHandler, in priority order
 * (VM stopped, BQL held by the caller).
 */
bool savevm_save_devices(MigStream *s, GError **errp);
/*
 * Precopy completion: live END sections, device records, EOF, flush.
 */
bool savevm_save_complete_precopy(MigStream *s, GError **errp);

/* --- destination --- */

typedef enum LoadVMResult {
    LOADVM_ERROR = -1,
    LOADVM_EOF = 0,         /* EOF record (all device records checked) */
    LOADVM_QUIT = 1,        /* a command handler asked to stop reading */
    LOADVM_END_OF_PACKAGE = 2, /* internal: a package body was consumed */
} LoadVMResult;

/*
 * What the destination does with commands. Each returns 0 to go on,
 * LOADVM_QUIT to stop the load loop (and every loop it is nested in, as
 * for a package), or -1 with @errp set. A NULL member means the command is
 * refused ("... is not supported").
 */
typedef struct LoadVMCommandOps {
    int (*open_return_path)(void *opaque, GError **errp);
    int (*ping)(void *opaque, uint32_t value, GError **errp);
    int (*postcopy_advise)(void *opaque, uint64_t pagesize_summary,
                           uint64_t target_page_size, GError **errp);
    int (*postcopy_listen)(void *opaque, GError **errp);
    int (*postcopy_run)(void *opaque, GError **errp);
    int (*postcopy_discard)(void *opaque, const char *block,
                            const MigDiscardRange *r, unsigned n,
                            GError **errp);
    int (*postcopy_resume)(void *opaque, GError **errp);
    int (*recv_bitmap)(void *opaque, const char *block, GError **errp);
    /*
     * Optional: called with true before and false after each device
     * record's load() and around post_load_all (the destination passes
     * the BQL here; the stream layer cannot link it).
     */
    void (*device_lock)(void *opaque, bool lock);
} LoadVMCommandOps;

typedef struct LoadVMState LoadVMState;

/*
 * @local: the destination's own CONFIG to compare with the source's
 * (copied; NULL skips the comparison, e.g. for the analyser or tests).
 * @ops may be NULL (every command refused).
 */
LoadVMState *loadvm_state_new(const MigConfig *local,
                              const LoadVMCommandOps *ops, void *opaque);
/*
 * A second view of @st for the postcopy listen thread, which goes on reading
 * the main stream (RAM sections started on @st) while the incoming thread
 * loads the package's device records through @st. It accepts only what
 * may follow the package: PART/END of those sections, PING and EOF; a
 * device record (SECTION_FULL), SECTION_START or PACKAGED is an error.
 * Its EOF does not check device records. Free it with loadvm_state_free
 * (its own cleanup only).
 */
LoadVMState *loadvm_state_fork(LoadVMState *st, const LoadVMCommandOps *ops,
                               void *opaque);
/* Calls load_cleanup of live sections that were set up. */
void loadvm_state_free(LoadVMState *st);

/*
 * Read and check the header and the CONFIG record; compares with the
 * local config. Nothing is written to guest state before this succeeds.
 */
bool loadvm_read_header(LoadVMState *st, MigStream *s, GError **errp);
/* The source's CONFIG (valid after loadvm_read_header). */
const MigConfig *loadvm_source_config(LoadVMState *st);

/*
 * Load records until EOF (returns LOADVM_EOF after checking that every
 * registered device record arrived and every registered live section was
 * started and ended), a QUIT from a command, or an error (LOADVM_ERROR,
 * @errp set). Packages are loaded in nested loops.
 */
LoadVMResult loadvm_main(LoadVMState *st, MigStream *s, GError **errp);

/*
 * Every registered SaveStateHandler has been loaded exactly once and every
 * registered live section has started (postcopy RUN; EOF also wants them
 * ended)?
 */
bool loadvm_check_all_loaded(LoadVMState *st, GError **errp);
/* Run post_load_all of every handler in priority order. */
void loadvm_post_load_all(LoadVMState *st);

#endif
