/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libgw: the functional-test library. Starts godwit (or QEMU, for
 * cross-checks) as a child process with a private directory, talks QMP and
 * HMP to it, watches its serial log and reads guest memory via pmemsave.
 * Every wait has a timeout; a timeout fails the test with a clear message.
 */
#ifndef GODWIT_TESTS_LIBGW_H
#define GODWIT_TESTS_LIBGW_H

#include <json-glib/json-glib.h>
#include <sys/types.h>

/*
 * Binary selection
 * ----------------
 * GW_TEST_QEMU=1 (or GW_QEMU_BINARY=path) runs the tests against QEMU
 * (qemu-system-x86_64 from PATH unless GW_QEMU_BINARY says otherwise);
 * otherwise GODWIT_BINARY names the godwit binary. QEMU mode adds the
 * options godwit has built in: -cpu host and an isa-debug-exit device at
 * port 0x501.
 */
typedef enum GwFlavour {
    GW_FLAVOUR_GODWIT,
    GW_FLAVOUR_QEMU,
} GwFlavour;

/* Force the binary and its flavour (overrides the environment). */
void gw_set_binary(const char *path, GwFlavour flavour);

/* The binary under test; NULL if none is configured. */
const char *gw_binary(void);
GwFlavour gw_flavour(void);
/* "godwit" or "qemu", for messages. */
const char *gw_flavour_name(void);

/*
 * Scale a timeout by GW_TIMEOUT_SCALE (a float, default 1), so slow
 * configurations (sanitizers, busy CI) can stretch every wait at once.
 */
int gw_timeout(int ms);

/*
 * GW_TIMEOUT_SCALE as a factor (>= 1) for rates: a lower bound on a rate
 * that holds on a real KVM (timer ticks per second, pages per second) is
 * divided by it on a slow host such as the nested test VM. Upper bounds and
 * invariants (nothing lost, nothing corrupt, the clock never goes back)
 * never scale.
 */
double gw_slow_factor(void);

/*
 * The serial marker rate a gwos test asks for ("marker=N"): 1000 Hz, or
 * GW_MARKER_HZ (1..10000). Each marker is port I/O of vCPU 0; the test VM
 * asks for fewer (tests/vm/functional.sh says why). Bounds on marker
 * counts are written in terms of it.
 */
int gw_marker_hz(void);

/*
 * Skips. Each returns true if the test may go on; otherwise it has called
 * g_test_skip() and printed a loud "SKIP: ..." line on stderr, and the
 * test must return at once:
 *     if (!gw_require_kvm()) { return; }
 */
bool gw_require_binary(void);
/* /dev/kvm usable (KVM_GET_API_VERSION), and a binary (gw_require_binary). */
bool gw_require_kvm(void);
/* userfaultfd usable: the syscall, or /dev/userfaultfd, plus UFFDIO_API. */
bool gw_require_uffd(void);
/*
 * The path in environment variable @env_var (e.g. "GW_TICK_GUEST", set by
 * meson), or NULL after a loud skip when it is unset or the file missing.
 */
const char *gw_require_guest(const char *env_var);

/* ---------------------------------------------------------------------- */
/* QMP connections */

typedef struct GwQmp GwQmp;
typedef struct GwVM GwVM;

/*
 * Connect to the QMP server at unix socket @path, retrying until it
 * appears or @timeout_ms passes, and read the greeting. If @negotiate,
 * also run qmp_capabilities. If @vm is given, a VM that exits while we
 * wait fails the test at once (with its stderr) instead of timing out.
 * Fails the test on error.
 */
GwQmp *gw_qmp_open(const char *path, GwVM *vm, bool negotiate, int timeout_ms);
/* As gw_qmp_open, but returns NULL and sets @errp instead of failing. */
GwQmp *gw_qmp_try_open(const char *path, GwVM *vm, bool negotiate,
                       int timeout_ms, GError **errp);
void gw_qmp_close(GwQmp *q);

/* The greeting object ({"QMP": {...}}), owned by the connection. */
JsonNode *gw_qmp_greeting(GwQmp *q);
/* Default time to wait for a command's reply (ms, before scaling). */
void gw_qmp_set_timeout(GwQmp *q, int timeout_ms);

/*
 * Send a command and wait for its reply, returning the whole reply object
 * ({"return": ...} or {"error": ...}); free with json_node_unref().
 *
 * @fmt is printf-style and produces one JSON object. Single-quoted strings
 * are accepted and turned into double-quoted ones before sending, so tests
 * can write "{'execute': 'stop'}" (substituted strings must therefore not
 * contain a single quote inside a single-quoted string). If the command has
 * no "id", one is added ("gw-N") and the reply is matched by it; events
 * arriving meanwhile are queued (see gw_qmp_wait_event), and replies
 * without an id (from raw garbage) are queued too (gw_qmp_receive).
 * Fails the test on timeout or if the connection closes.
 */
JsonNode *gw_qmp_conn(GwQmp *q, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
JsonNode *gw_qmp_connv(GwQmp *q, const char *fmt, va_list ap) G_GNUC_PRINTF(2, 0);
/* Non-fatal: NULL and @errp set on timeout / closed connection. */
JsonNode *gw_qmp_conn_try(GwQmp *q, GError **errp, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/*
 * Send @len raw bytes (no conversion, no id, no newline added). Used for
 * garbage tests; read what comes back with gw_qmp_conn_receive().
 */
void gw_qmp_conn_raw_send(GwQmp *q, const void *buf, size_t len);
/*
 * The next message that is neither an event nor a reply to a gw_qmp()
 * command (e.g. an error caused by raw garbage). Fails the test on timeout.
 */
JsonNode *gw_qmp_conn_receive(GwQmp *q, int timeout_ms);
/* Like gw_qmp_conn_receive, but NULL on timeout or closed connection. */
JsonNode *gw_qmp_conn_try_receive(GwQmp *q, int timeout_ms);

/*
 * Run "getfd" with @fd passed over the socket (SCM_RIGHTS) under the name
 * @fdname; returns the whole reply (the caller keeps @fd and may close it
 * afterwards). Fails the test on timeout or a closed connection.
 */
JsonNode *gw_qmp_conn_getfd(GwQmp *q, const char *fdname, int fd);

/* Events, per connection (see the GwVM wrappers below). */
typedef bool (*GwEventPredicate)(JsonNode *event, gpointer opaque);
JsonNode *gw_qmp_conn_wait_event(GwQmp *q, const char *name,
                                 GwEventPredicate pred, gpointer opaque,
                                 int timeout_ms);
JsonNode *gw_qmp_conn_poll_event(GwQmp *q, const char *name,
                                 GwEventPredicate pred, gpointer opaque,
                                 int timeout_ms);
/* True once EOF has been seen on the connection. */
bool gw_qmp_conn_closed(GwQmp *q);
/*
 * Read until the server closes the connection (queueing what comes).
 * Returns false on timeout.
 */
bool gw_qmp_conn_wait_closed(GwQmp *q, int timeout_ms);

/* ---------------------------------------------------------------------- */
/* VMs */

typedef struct GwVMOpts {
    /* Tag used in messages and the tmp dir name; default "vm". */
    const char *name;
    /*
     * Extra arguments as one string, split like a shell would
     * (g_shell_parse_argv). "@DIR@" is replaced by the VM's private
     * directory, e.g. "-incoming unix:@DIR@/mig.sock".
     */
    const char *args;
    /* More extra arguments, NULL-terminated; "@DIR@" replaced too. */
    const char *const *argv;
    /*
     * Do not connect to QMP (for VMs expected to fail at start). The
     * -qmp option is still passed.
     */
    bool no_qmp;
    /* Time allowed for the QMP socket to appear (ms); default 10000. */
    int start_timeout_ms;
    /*
     * A launcher put in front of the binary, NULL-terminated (e.g. a
     * program that sets up a namespace or seccomp filter and then execs
     * the rest of its arguments); "@DIR@" replaced too. NULL: none.
     */
    const char *const *wrapper;
} GwVMOpts;

/*
 * Start a VM: make a private directory, run the binary with
 *   -nodefaults -display none -accel kvm
 *   -qmp unix:DIR/qmp.sock,server=on,wait=off -serial file:DIR/serial.log
 * (-accel is left out when the extra args choose an accelerator, -serial
 * when they contain one), then the extra args. stdout and stderr go to
 * DIR/stdout.log and DIR/stderr.log. Connects to QMP and negotiates
 * capabilities. Fails the test if the VM does not come up.
 */
GwVM *gw_vm_start(const GwVMOpts *o);
/* gw_vm_start with the extra args as a printf-formatted string. */
GwVM *gw_vm_startf(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/*
 * Stop and free a VM, whatever its state: quit via QMP, then SIGTERM, then
 * SIGKILL, reap it and remove its directory (kept if GW_KEEP_TMP is set).
 * NULL is allowed.
 */
void gw_vm_free(GwVM *vm);

const char *gw_vm_name(GwVM *vm);
/* The VM's private directory, and a path inside it (g_free the latter). */
const char *gw_vm_dir(GwVM *vm);
char *gw_vm_path(GwVM *vm, const char *file);
/* The main QMP connection. */
GwQmp *gw_vm_qmp(GwVM *vm);
/* Drop the main QMP connection and connect again (negotiated). */
void gw_vm_qmp_reconnect(GwVM *vm);

pid_t gw_vm_pid(GwVM *vm);
/* VmRSS of the VM process in KiB; fails the test if it cannot be read. */
guint64 gw_vm_rss_kib(GwVM *vm);
/* True while the process has not exited (reaps it if it has). */
bool gw_vm_running(GwVM *vm);
/*
 * Wait up to @timeout_ms for the process to exit; on success store the
 * waitpid() status in @status (may be NULL) and return true. Returns false
 * on timeout (not a failure: the caller decides).
 */
bool gw_vm_wait_exit(GwVM *vm, int timeout_ms, int *status);
/* Send @sig to the process (no-op once it has been reaped). */
void gw_vm_kill(GwVM *vm, int sig);
/* What the VM wrote on stderr so far (g_free). */
char *gw_vm_stderr(GwVM *vm);
/* One-line description of a waitpid() status ("exit status 1", ...). */
char *gw_describe_status(int status);

/* QMP on the VM's main connection; see gw_qmp_conn(). */
JsonNode *gw_qmp(GwVM *vm, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Send a command, assert it succeeded, return the "return" member (ref'd). */
JsonNode *gw_qmp_assert_success(GwVM *vm, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
/*
 * Send a command and assert it fails with error class @cls (NULL: any) and
 * a desc containing @desc_substring (NULL: any). Returns nothing: the
 * assertions are the point.
 */
void gw_qmp_expect_error(GwVM *vm, const char *cls, const char *desc_substring,
                         const char *fmt, ...) G_GNUC_PRINTF(4, 5);
void gw_qmp_raw_send(GwVM *vm, const void *buf, size_t len);
/* gw_qmp_conn_getfd() on the VM's main connection. */
JsonNode *gw_qmp_getfd(GwVM *vm, const char *fdname, int fd);
JsonNode *gw_qmp_receive(GwVM *vm, int timeout_ms);

/*
 * Wait for event @name (and, for the _match variant, @pred true), taking it
 * off the queue; earlier events that do not match stay queued. Fails the
 * test on timeout, naming the event and what did arrive. Returns the whole
 * event object (json_node_unref it).
 */
JsonNode *gw_qmp_wait_event(GwVM *vm, const char *name, int timeout_ms);
JsonNode *gw_qmp_wait_event_match(GwVM *vm, const char *name,
                                  GwEventPredicate pred, gpointer opaque,
                                  int timeout_ms);
/* Wait for event @name whose data member @key is the string @value. */
JsonNode *gw_qmp_wait_event_data(GwVM *vm, const char *name, const char *key,
                                 const char *value, int timeout_ms);
/* Like gw_qmp_wait_event but returns NULL on timeout. */
JsonNode *gw_qmp_poll_event(GwVM *vm, const char *name, int timeout_ms);
/* Read whatever is pending, then drop all queued events. */
void gw_qmp_clear_events(GwVM *vm);

/* Event helpers. */
const char *gw_event_name(JsonNode *ev);
/* The "data" object, or NULL when the event has none. */
JsonObject *gw_event_data(JsonNode *ev);
/* The event's timestamp in microseconds since the epoch. */
gint64 gw_event_timestamp_us(JsonNode *ev);

/* Reply helpers. */
bool gw_reply_is_error(JsonNode *reply);
/* The error class / desc of an error reply, or NULL. */
const char *gw_reply_error_class(JsonNode *reply);
const char *gw_reply_error_desc(JsonNode *reply);
/* The "return" member, or NULL. Borrowed. */
JsonNode *gw_reply_return(JsonNode *reply);
/* query-status "status" string (g_free). */
char *gw_vm_query_status(GwVM *vm);

/* HMP through human-monitor-command; asserts success, returns the text. */
char *gw_hmp(GwVM *vm, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * HMP over a -monitor unix:PATH,server=on,wait=off socket. The monitor
 * prompt "(qemu) " ends each answer; echoed input and terminal escapes are
 * removed from the returned text.
 */
typedef struct GwHmp GwHmp;
GwHmp *gw_hmp_open(const char *path, GwVM *vm, int timeout_ms);
/* Text printed before the first prompt (the banner). */
const char *gw_hmp_banner(GwHmp *h);
char *gw_hmp_conn(GwHmp *h, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void gw_hmp_close(GwHmp *h);

/* ---------------------------------------------------------------------- */
/* Serial (COM1 is logged to DIR/serial.log) */

/* Everything the guest has printed so far (g_free). */
char *gw_serial_read_all(GwVM *vm);
/* Current length of the log: an offset for gw_serial_wait_for_from(). */
gsize gw_serial_offset(GwVM *vm);
/*
 * Wait until @needle appears in the log (at or after byte @from); returns
 * the offset just past it. Fails the test on timeout or if the VM exits
 * first, printing the tail of the log.
 */
gsize gw_serial_wait_for(GwVM *vm, const char *needle, int timeout_ms);
gsize gw_serial_wait_for_from(GwVM *vm, gsize from, const char *needle,
                              int timeout_ms);
/* How many times @needle occurs in the log. */
guint gw_serial_count(GwVM *vm, const char *needle);

/* ---------------------------------------------------------------------- */
/* Guest memory */

/*
 * Guest physical memory [gpa, gpa + size) via pmemsave into the VM's
 * directory. The file is mapped, then unlinked; the bytes live as long as
 * the GBytes. Fails the test on error.
 */
GBytes *gw_memsave(GwVM *vm, guint64 gpa, guint64 size);

/* ---------------------------------------------------------------------- */
/* Running the binary without the VM machinery (command-line tests) */

/*
 * Run the binary with exactly @args (shell-split, no defaults added),
 * stdin from /dev/null; collect stdout/stderr (either may be NULL). Kills
 * it and fails the test after @timeout_ms. Returns the waitpid() status.
 */
int gw_run(const char *args, int timeout_ms, char **out, char **err);

#endif
