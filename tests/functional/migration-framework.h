/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The two-VM framework every migration test shares: a config struct says
 * what to run (RAM, vCPUs, backend, tick range, transport, capabilities,
 * parameters, when to switch to postcopy, the expected outcome); mig_run()
 * starts the source (tick guest) and the destination, migrates, waits for
 * the outcome and checks guest memory byte for byte. Tests with their own
 * choreography use the pieces (mig_start_*, mig_migrate, mig_wait_status,
 * mig_check_*) directly.
 */
#ifndef GODWIT_TESTS_MIGRATION_FRAMEWORK_H
#define GODWIT_TESTS_MIGRATION_FRAMEWORK_H

#include "libgw.h"
#include "tick-invariant.h"

#define MIG_BOOT_TIMEOUT_MS     60000
#define MIG_PASS_TIMEOUT_MS     30000
#define MIG_EVENT_TIMEOUT_MS    10000
#define MIG_DEFAULT_TIMEOUT_MS  60000

typedef enum MigTransport {
    MIG_UNIX,       /* -incoming unix:DSTDIR/mig.sock */
    MIG_TCP,        /* -incoming tcp:127.0.0.1:0, port from query-migrate */
    MIG_FD,         /* socketpair, getfd on both sides, -incoming defer */
    MIG_EXEC,       /* a FIFO: exec:cat > FIFO / -incoming exec:cat FIFO */
    MIG_DEFER,      /* -incoming defer, then migrate-incoming unix:... */
} MigTransport;

typedef enum MigBackend {
    MIG_BACKEND_DEFAULT,    /* private anonymous memory */
    MIG_BACKEND_MEMFD,      /* memory-backend-memfd,share=on */
    MIG_BACKEND_HUGETLB,    /* memory-backend-memfd,hugetlb=on,hugetlbsize=2M */
    MIG_BACKEND_HUGETLBFS,  /* memory-backend-file on a hugetlbfs mount */
} MigBackend;

typedef enum MigPostcopy {
    MIG_PC_NONE,            /* precopy only */
    MIG_PC_AFTER_PASS,      /* migrate-start-postcopy at MIGRATION_PASS n */
    MIG_PC_IMMEDIATE,       /* migrate-start-postcopy right after migrate */
    MIG_PC_AUTO,            /* x-postcopy-after-passes: no command, expect it */
} MigPostcopy;

typedef struct MigTest MigTest;
typedef void (*MigHook)(MigTest *t);

typedef struct MigTestConfig {
    unsigned ram_mib;           /* default 128 */
    unsigned smp;               /* default 1 */
    MigBackend backend;
    /* hugetlbfs mount point (MIG_BACKEND_HUGETLBFS only). */
    const char *hugetlbfs_path;
    /* Tick guest command line, e.g. "rate=64 end=64M". */
    const char *tick_append;
    MigTransport transport;
    /*
     * Capabilities, comma-separated, set to true; "events" is always on.
     * caps: both sides; src_caps / dst_caps: one side only.
     */
    const char *caps;
    const char *src_caps;
    const char *dst_caps;
    /*
     * migrate-set-parameters members as JSON text (single quotes allowed),
     * e.g. "'downtime-limit': 1, 'max-bandwidth': 8388608". NULL: none.
     */
    const char *src_params;
    const char *dst_params;
    MigPostcopy postcopy;
    unsigned postcopy_pass;     /* MIG_PC_AFTER_PASS / MIG_PC_AUTO: pass n */
    /*
     * Destination started without -S: it runs as soon as the load (or the
     * postcopy RUN) is done, so faults really happen; the byte-exact check
     * is then impossible and only the tick invariant is checked.
     */
    bool dst_autostart;
    /* Expected final source status; NULL = "completed". */
    const char *expect_status;
    /* How long the migration may take (ms, unscaled); 0 = 60 s. */
    int timeout_ms;
    /* Called after both VMs are up and configured, before migrate. */
    MigHook start_hook;
    /* Called after migrate (and the postcopy switch), before the wait. */
    MigHook migrate_hook;
    /* Called at the end, with both VMs still there. */
    MigHook end_hook;
    gpointer opaque;
} MigTestConfig;

struct MigTest {
    const MigTestConfig *cfg;
    GwVM *src;
    GwVM *dst;
    char *uri;                  /* what the source was told to migrate to */
    char *incoming;             /* the destination's -incoming argument */
    int fds[2];                 /* MIG_FD: the socketpair, -1 when closed */
    char *fifo_dir;             /* MIG_EXEC: the directory of the FIFO */
    /* Filled by mig_run(): */
    gint64 src_stop_us;         /* source STOP timestamp */
    gint64 dst_resume_us;       /* destination RESUME timestamp */
    gint64 dst_done_us;         /* destination MIGRATION completed */
    JsonNode *src_info;         /* final query-migrate on the source */
    JsonNode *dst_info;         /* final query-migrate on the destination */
    TickMailbox src_mb;         /* the source's mailbox after migration */
    gpointer opaque;
};

/*
 * Register a test. When the environment variable GW_MIG_SUITE is "quick"
 * only tests with !slow are added, when "slow" only the slow ones; unset,
 * all. meson runs each program twice so the sanitizer run can leave the
 * slow half out (suite 'slow').
 */
void mig_add_test(const char *path, void (*fn)(void), bool slow);
/* g_test_add_data_func with the same filter. */
void mig_add_test_data(const char *path, gconstpointer data,
                       void (*fn)(gconstpointer), bool slow);

/*
 * Skips: the tick guest, /dev/kvm and (for postcopy) userfaultfd. Returns
 * the tick guest path or NULL after a loud skip.
 */
const char *mig_require(bool postcopy);

/* The source / destination command line for @cfg (g_free). */
char *mig_src_args(const MigTestConfig *cfg, const char *tick);
char *mig_dst_args(const MigTestConfig *cfg, const char *incoming, bool paused);

/*
 * Start the source with the tick guest and wait until it has printed its
 * first pass marker (so the invariant holds from then on).
 */
GwVM *mig_start_source(const MigTestConfig *cfg, const char *name);
/* Wait until the VM prints the marker of a pass after the current one. */
void mig_wait_new_pass(GwVM *vm);
/*
 * Start a destination for @t (transport from t->cfg): sets t->dst,
 * t->incoming and t->uri. @paused adds -S.
 */
void mig_start_dest(MigTest *t, const char *name, bool paused);

/* tcp:HOST:PORT a destination listens on (query-migrate's socket-address; g_free). */
char *mig_dst_tcp_uri(GwVM *dst);

/* Turn on capabilities (comma-separated) / set parameters (JSON members). */
void mig_set_caps(GwVM *vm, const char *caps, bool on);
void mig_set_params(GwVM *vm, const char *params);
/* "events" plus the configured capabilities and parameters on both sides. */
void mig_configure(MigTest *t);

/* migrate t->uri (for MIG_FD: hands the socket to both sides first). */
void mig_migrate(MigTest *t);

/*
 * Wait for a MIGRATION event whose status is @want or terminal (completed,
 * failed, cancelled, postcopy-paused); fail unless it is @want (with the
 * error-desc from query-migrate). Returns the event's timestamp (us).
 */
gint64 mig_wait_status(GwVM *vm, const char *want, int timeout_ms);
/* query-migrate's "return" object (json_node_unref). */
JsonNode *mig_query(GwVM *vm);
/* A member of query-migrate's result: "status", "ram.transferred"... */
const char *mig_query_str(GwVM *vm, const char *member);
/* Poll query-migrate until status is @want, or fail after @timeout_ms. */
void mig_poll_status(GwVM *vm, const char *want, int timeout_ms);
/*
 * A bounded pause that keeps reading the VM's QMP socket (events queue up
 * as usual): polls for an event that never comes.
 */
void mig_sleep_events(GwVM *vm, int ms);
/* Number member at a dotted path in @obj, or -1 when absent. */
double mig_num(JsonNode *obj, const char *path);

/*
 * Byte-exact check: both VMs paused (source postmigrate or paused), the
 * whole RAM dumped from each and compared; the tick invariant is checked
 * on the source dump and its mailbox returned in @mb.
 */
void mig_check_same_memory(GwVM *src, GwVM *dst, unsigned ram_mib,
                           TickMailbox *mb);
/*
 * The byte-exact comparison alone, for guests other than tick (the caller
 * has both VMs stopped): the whole RAM of each, below 3 GiB and from 4 GiB.
 */
void mig_compare_memory(GwVM *src, GwVM *dst, unsigned ram_mib);
/* Stop (if running), dump, check the tick invariant; mailbox in @mb. */
void mig_check_invariant(GwVM *vm, unsigned ram_mib, TickMailbox *mb);
/*
 * The tick guest's count of mailbox writes, read from the running VM (its
 * magic checked): a count that grows means the guest is writing memory.
 */
guint64 mig_mailbox_writes(GwVM *vm);
/*
 * Every "tick: pass N" marker across the serial logs of @vms (in order of
 * migration, concatenated) is N = 1, 2, ... without a gap or a repeat, and
 * no error or exception was printed. Returns the last N.
 */
guint64 mig_check_markers(GwVM *const *vms, size_t n);

/*
 * The whole flow for @cfg: start both, configure, migrate, switch to
 * postcopy as asked, wait for the expected status on the source; on
 * "completed": destination completed, memory byte-exact (or, with
 * dst_autostart, the invariant), cont, markers continue on the
 * destination, invariant on a later dump, the STOP->RESUME gap reported.
 * Frees everything unless @keep is non-NULL (then the caller frees it with
 * mig_test_free).
 */
void mig_run(const MigTestConfig *cfg, MigTest **keep);
void mig_test_free(MigTest *t);

/* After completion, with t->dst paused: cont, new markers, invariant. */
void mig_finish_dest(MigTest *t);

#endif
