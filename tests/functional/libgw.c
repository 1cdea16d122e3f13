/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libgw: functional-test library (see libgw.h). Child VMs are tracked in a
 * global table so that a failing test (abort) or a killed test binary never
 * leaves one running: a signal handler SIGKILLs them, and each child also
 * asks the kernel to kill it when the test process dies.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "libgw.h"

#define GW_MAX_CHILDREN 64
#define GW_POLL_US 5000
#define GW_QMP_DEFAULT_TIMEOUT_MS 30000
#define GW_START_TIMEOUT_MS 10000
#define GW_FREE_STEP_MS 5000

struct GwQmp {
    int fd;
    char *path;
    GwVM *vm;             /* for liveness checks and messages; may be NULL */
    GString *buf;         /* bytes read but not yet split into messages */
    GQueue events;        /* JsonNode *, oldest first */
    GQueue stray;         /* non-event messages no gw_qmp() waited for */
    guint next_id;
    bool eof;
    int timeout_ms;
    JsonNode *greeting;
};

struct GwHmp {
    int fd;
    GwVM *vm;
    GString *buf;
    char *banner;
    int timeout_ms;
};

struct GwVM {
    char *name;
    char *dir;
    pid_t pid;
    bool exited;
    int status;           /* waitpid() status once exited */
    GwQmp *qmp;
    char *qmp_path;
    char *serial_path;
    GString *serial;      /* cached copy of the serial log */
    guint memsave_seq;
};

/* ---------------------------------------------------------------------- */
/* Child bookkeeping and emergency cleanup */

/*
 * One slot per child directory: pid > 0 while the process may be alive,
 * -1 once reaped (the directory still needs removing), 0 for a free slot.
 * Slots are changed only by the main thread outside signal handlers; the
 * fatal-signal handler reads them, so they hold fixed-size strings and the
 * handler uses nothing but syscalls.
 */
typedef struct GwChild {
    volatile pid_t pid;
    char name[32];
    char dir[128];
} GwChild;

static GwChild gw_children[GW_MAX_CHILDREN];
static GwQmp *vm_qmp(GwVM *vm);
static GList *gw_live_vms;
static bool gw_handlers_installed;
static bool gw_keep_tmp;

static void gw_child_add(pid_t pid, const char *name, const char *dir)
{
    for (int i = 0; i < GW_MAX_CHILDREN; i++) {
        if (gw_children[i].pid == 0) {
            g_strlcpy(gw_children[i].name, name, sizeof(gw_children[i].name));
            g_strlcpy(gw_children[i].dir, dir, sizeof(gw_children[i].dir));
            gw_children[i].pid = pid;
            return;
        }
    }
    g_error("libgw: more than %d child processes", GW_MAX_CHILDREN);
}

/* The process was reaped: nothing to kill, but the directory remains. */
static void gw_child_reaped(pid_t pid)
{
    for (int i = 0; i < GW_MAX_CHILDREN; i++) {
        if (gw_children[i].pid == pid) {
            gw_children[i].pid = -1;
        }
    }
}

/* The directory is gone too: free the slot. */
static void gw_child_release(const char *dir)
{
    for (int i = 0; i < GW_MAX_CHILDREN; i++) {
        if (gw_children[i].pid != 0 && strcmp(gw_children[i].dir, dir) == 0) {
            gw_children[i].pid = 0;
        }
    }
}

/* Async-signal-safe output helpers for the fatal-signal path. */
static void sig_puts(const char *s)
{
    size_t len = strlen(s);

    while (len) {
        ssize_t n = write(2, s, len);
        if (n <= 0) {
            return;
        }
        s += n;
        len -= n;
    }
}

static void sig_putu(unsigned long v)
{
    char buf[24];
    int i = sizeof(buf) - 1;

    buf[i] = 0;
    do {
        buf[--i] = '0' + v % 10;
        v /= 10;
    } while (v && i > 0);
    sig_puts(buf + i);
}

/* Copy the last @max bytes of DIR/FILE to stderr. */
static void sig_dump_tail(const char *dir, const char *file, off_t max)
{
    char path[192], buf[1024];
    off_t end;
    ssize_t n;
    int fd;

    if (strlen(dir) + strlen(file) + 2 > sizeof(path)) {
        return;
    }
    strcpy(path, dir);
    strcat(path, "/");
    strcat(path, file);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    end = lseek(fd, 0, SEEK_END);
    lseek(fd, end > max ? end - max : 0, SEEK_SET);
    sig_puts("# ---- ");
    sig_puts(file);
    sig_puts(" (last bytes) ----\n");
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (write(2, buf, n) < 0) {
            break;
        }
    }
    sig_puts("\n");
    close(fd);
}

/* Remove a flat directory (VM dirs hold only files) with raw syscalls. */
static void sig_rm_dir(const char *dir)
{
    struct gw_dirent64 {
        uint64_t d_ino;
        int64_t d_off;
        unsigned short d_reclen;
        unsigned char d_type;
        char d_name[];
    };
    char buf[4096] __attribute__((aligned(8)));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    long n;

    if (fd < 0) {
        return;
    }
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
        for (long off = 0; off < n;) {
            struct gw_dirent64 *d = (struct gw_dirent64 *)(buf + off);
            if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0) {
                unlinkat(fd, d->d_name, 0);
            }
            off += d->d_reclen;
        }
    }
    close(fd);
    rmdir(dir);
}

/*
 * A test failed (abort) or the test binary was told to die (meson's
 * timeout sends SIGTERM): kill every child, show why they might have
 * misbehaved, remove their directories, then die of the same signal.
 */
static void gw_fatal_signal(int sig)
{
    for (int i = 0; i < GW_MAX_CHILDREN; i++) {
        if (gw_children[i].pid > 0) {
            kill(gw_children[i].pid, SIGKILL);
        }
    }
    for (int i = 0; i < GW_MAX_CHILDREN; i++) {
        GwChild *c = &gw_children[i];
        if (c->pid == 0) {
            continue;
        }
        int status = 0;

        if (c->pid > 0) {
            waitpid(c->pid, &status, 0);
        }
        sig_puts("# ==== libgw: test aborted, cleaning up ");
        sig_puts(c->name);
        sig_puts(" (pid ");
        sig_putu(c->pid > 0 ? c->pid : 0);
        sig_puts(", dir ");
        sig_puts(c->dir);
        if (c->pid > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
            sig_puts(", was running");
        } else {
            /* It had exited on its own; the parent may not know yet. */
            sig_puts(", had exited: ");
            if (c->pid > 0 && WIFSIGNALED(status)) {
                sig_puts("signal ");
                sig_putu(WTERMSIG(status));
            } else if (c->pid > 0) {
                sig_puts("status ");
                sig_putu(WEXITSTATUS(status));
            } else {
                sig_puts("reaped");
            }
        }
        sig_puts(") ====\n");
        sig_dump_tail(c->dir, "stderr.log", 2048);
        sig_dump_tail(c->dir, "serial.log", 4096);
        if (!gw_keep_tmp) {
            sig_rm_dir(c->dir);
        }
        c->pid = 0;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void gw_atexit(void)
{
    /* Tests that forget gw_vm_free() (or return early) still clean up. */
    while (gw_live_vms) {
        gw_vm_free(gw_live_vms->data);
    }
}

static void gw_install_handlers(void)
{
    /* g_error() ends a test with SIGTRAP, g_assert() with SIGABRT. */
    static const int sigs[] = { SIGABRT, SIGTRAP, SIGTERM, SIGINT, SIGHUP };
    struct sigaction sa = { .sa_handler = gw_fatal_signal };

    if (gw_handlers_installed) {
        return;
    }
    gw_handlers_installed = true;
    gw_keep_tmp = g_getenv("GW_KEEP_TMP") != NULL;
    sigemptyset(&sa.sa_mask);
    /* SIGSEGV is left to the sanitizers; PR_SET_PDEATHSIG covers it. */
    for (size_t i = 0; i < G_N_ELEMENTS(sigs); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
    atexit(gw_atexit);
}

/*
 * Fail the current test. GLib prints the message and aborts; the SIGABRT
 * handler then kills the VMs and prints what they said.
 */
static void G_GNUC_PRINTF(1, 2) G_GNUC_NORETURN gw_fail(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_assertion_message(G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC, msg);
    /* Reached only with non-fatal assertions: we cannot go on. */
    abort();
}

/* ---------------------------------------------------------------------- */
/* Binary selection, timeouts, skips */

static char *gw_bin_path;
static GwFlavour gw_bin_flavour;
static bool gw_bin_chosen;

void gw_set_binary(const char *path, GwFlavour flavour)
{
    g_free(gw_bin_path);
    gw_bin_path = g_strdup(path);
    gw_bin_flavour = flavour;
    gw_bin_chosen = true;
}

static void gw_choose_binary(void)
{
    const char *qemu = g_getenv("GW_QEMU_BINARY");
    const char *want_qemu = g_getenv("GW_TEST_QEMU");
    const char *godwit = g_getenv("GODWIT_BINARY");

    if (gw_bin_chosen) {
        return;
    }
    gw_bin_chosen = true;
    if ((want_qemu && *want_qemu && strcmp(want_qemu, "0") != 0) ||
        (qemu && *qemu)) {
        gw_bin_flavour = GW_FLAVOUR_QEMU;
        if (qemu && *qemu) {
            gw_bin_path = g_strdup(qemu);
        } else {
            gw_bin_path = g_find_program_in_path("qemu-system-x86_64");
        }
    } else if (godwit && *godwit) {
        gw_bin_flavour = GW_FLAVOUR_GODWIT;
        gw_bin_path = g_strdup(godwit);
    }
}

const char *gw_binary(void)
{
    gw_choose_binary();
    return gw_bin_path;
}

GwFlavour gw_flavour(void)
{
    gw_choose_binary();
    return gw_bin_flavour;
}

const char *gw_flavour_name(void)
{
    return gw_flavour() == GW_FLAVOUR_QEMU ? "qemu" : "godwit";
}

static double timeout_scale(void)
{
    static double scale;

    if (scale == 0) {
        const char *s = g_getenv("GW_TIMEOUT_SCALE");
        scale = s ? g_ascii_strtod(s, NULL) : 1.0;
        if (scale <= 0) {
            scale = 1.0;
        }
    }
    return scale;
}

int gw_timeout(int ms)
{
    return (int)(ms * timeout_scale());
}

double gw_slow_factor(void)
{
    return MAX(timeout_scale(), 1.0);
}

int gw_marker_hz(void)
{
    const char *s = g_getenv("GW_MARKER_HZ");
    gint64 hz = s ? g_ascii_strtoll(s, NULL, 10) : 1000;

    return hz >= 1 && hz <= 10000 ? (int)hz : 1000;
}

static void G_GNUC_PRINTF(1, 2) gw_skip(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* Loud on purpose: a skipped test must not look like a passed one. */
    g_printerr("\n*** SKIP: %s ***\n", msg);
    g_test_skip(msg);
}

bool gw_require_binary(void)
{
    const char *bin = gw_binary();

    if (!bin) {
        gw_skip("no binary to test: set GODWIT_BINARY (or GW_TEST_QEMU=1)");
        return false;
    }
    if (!g_file_test(bin, G_FILE_TEST_IS_EXECUTABLE)) {
        gw_skip("binary under test is not executable: %s", bin);
        return false;
    }
    return true;
}

bool gw_require_kvm(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int version;

    if (fd < 0) {
        gw_skip("/dev/kvm not available: %s", g_strerror(errno));
        return false;
    }
    version = ioctl(fd, KVM_GET_API_VERSION, 0);
    close(fd);
    if (version != KVM_API_VERSION) {
        gw_skip("/dev/kvm not usable: KVM_GET_API_VERSION returned %d", version);
        return false;
    }
    return gw_require_binary();
}

static int gw_uffd_try_open(void)
{
    int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    if (fd < 0 && errno == EPERM) {
        /* vm.unprivileged_userfaultfd=0: the device node may still work. */
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
            close(dev);
        }
    }
    return fd;
}

bool gw_require_uffd(void)
{
    struct uffdio_api api = { .api = UFFD_API };
    int fd = gw_uffd_try_open();

    if (fd < 0) {
        gw_skip("userfaultfd not available: %s", g_strerror(errno));
        return false;
    }
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        int err = errno;
        close(fd);
        gw_skip("userfaultfd not usable: UFFDIO_API: %s", g_strerror(err));
        return false;
    }
    close(fd);
    return true;
}

const char *gw_require_guest(const char *env_var)
{
    const char *path = g_getenv(env_var);

    if (!path || !*path) {
        gw_skip("test guest not configured: %s is not set", env_var);
        return NULL;
    }
    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
        gw_skip("test guest %s=%s does not exist", env_var, path);
        return NULL;
    }
    return path;
}

/* ---------------------------------------------------------------------- */
/* Small helpers */

static gint64 gw_deadline(int timeout_ms)
{
    return g_get_monotonic_time() + (gint64)timeout_ms * 1000;
}

static int gw_remaining_ms(gint64 deadline)
{
    gint64 left = deadline - g_get_monotonic_time();

    if (left <= 0) {
        return 0;
    }
    return (int)((left + 999) / 1000);
}

static const char *obj_str(JsonObject *o, const char *key)
{
    JsonNode *n = o ? json_object_get_member(o, key) : NULL;

    if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_STRING) {
        return NULL;
    }
    return json_node_get_string(n);
}

static JsonObject *node_obj(JsonNode *n)
{
    return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

static char *node_to_str(JsonNode *n)
{
    return n ? json_to_string(n, false) : g_strdup("(null)");
}

/* The last @max bytes of @s, for failure messages. */
static const char *str_tail(const char *s, size_t max)
{
    size_t len = strlen(s);

    return len > max ? s + len - max : s;
}

/*
 * Turn the single-quoted strings QEMU's QMP accepts (and tests like to
 * write in C) into standard double-quoted JSON strings.
 */
static char *json_fix_quotes(const char *in)
{
    GString *out = g_string_sized_new(strlen(in) + 16);
    const char *p = in;

    while (*p) {
        char q = *p;

        if (q != '\'' && q != '"') {
            g_string_append_c(out, *p++);
            continue;
        }
        g_string_append_c(out, '"');
        p++;
        while (*p && *p != q) {
            if (*p == '\\' && p[1]) {
                if (q == '\'' && p[1] == '\'') {
                    g_string_append_c(out, '\'');
                } else {
                    g_string_append_len(out, p, 2);
                }
                p += 2;
                continue;
            }
            if (q == '\'' && *p == '"') {
                g_string_append(out, "\\\"");
            } else {
                g_string_append_c(out, *p);
            }
            p++;
        }
        if (*p) {
            p++;
        }
        g_string_append_c(out, '"');
    }
    return g_string_free(out, false);
}

static int unix_connect(const char *path, GError **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG,
                    "socket path too long: %s", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        g_set_error(errp, G_IO_ERROR, g_io_error_from_errno(errno),
                    "socket: %s", g_strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int err = errno;
        close(fd);
        g_set_error(errp, G_IO_ERROR, g_io_error_from_errno(err),
                    "connect to %s: %s", path, g_strerror(err));
        return -1;
    }
    return fd;
}

/*
 * Connect to @path, retrying while the server has not created it yet.
 * Gives up early if @vm exits.
 */
static int unix_connect_retry(const char *path, GwVM *vm, int timeout_ms,
                              GError **errp)
{
    gint64 deadline = gw_deadline(timeout_ms);

    for (;;) {
        g_autoptr(GError) err = NULL;
        int fd = unix_connect(path, &err);

        if (fd >= 0) {
            return fd;
        }
        if (vm && !gw_vm_running(vm)) {
            g_autofree char *st = gw_describe_status(vm->status);
            g_set_error(errp, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "%s exited (%s) before %s accepted connections",
                        vm->name, st, path);
            return -1;
        }
        if (g_get_monotonic_time() >= deadline) {
            g_set_error(errp, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                        "timed out after %d ms connecting to %s (%s)",
                        timeout_ms, path, err->message);
            return -1;
        }
        g_usleep(GW_POLL_US);
    }
}

static bool write_all(int fd, const void *buf, size_t len, GError **errp)
{
    const char *p = buf;

    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                poll(&pfd, 1, 100);
                continue;
            }
            g_set_error(errp, G_IO_ERROR, g_io_error_from_errno(errno),
                        "write: %s", g_strerror(errno));
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}

/*
 * Read what is available into @buf, waiting until @deadline.
 * Returns 1 on data, 0 on timeout, -1 on EOF or error.
 */
static int read_some(int fd, GString *buf, gint64 deadline)
{
    char tmp[65536];

    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int r = poll(&pfd, 1, gw_remaining_ms(deadline));
        ssize_t n;

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r == 0) {
            return 0;
        }
        n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        g_string_append_len(buf, tmp, n);
        return 1;
    }
}

/* ---------------------------------------------------------------------- */
/* QMP */

static bool qmp_is_event(JsonNode *msg)
{
    return obj_str(node_obj(msg), "event") != NULL;
}

/* Split one complete line off the buffer and parse it, or return NULL. */
static JsonNode *qmp_take_line(GwQmp *q)
{
    for (;;) {
        char *nl = memchr(q->buf->str, '\n', q->buf->len);
        g_autofree char *line = NULL;
        g_autoptr(GError) err = NULL;
        JsonNode *node;

        if (!nl) {
            return NULL;
        }
        line = g_strndup(q->buf->str, nl - q->buf->str);
        g_string_erase(q->buf, 0, nl - q->buf->str + 1);
        g_strstrip(line);
        if (!*line) {
            continue;
        }
        node = json_from_string(line, &err);
        if (!node || !JSON_NODE_HOLDS_OBJECT(node)) {
            gw_fail("QMP %s: server sent something that is not a JSON object "
                    "(%s): %.200s", q->path, err ? err->message : "not an object",
                    line);
        }
        return node;
    }
}

/*
 * The next message from the server, waiting until @deadline. NULL with
 * @errp set on timeout or EOF.
 */
static JsonNode *qmp_read_msg(GwQmp *q, gint64 deadline, GError **errp)
{
    for (;;) {
        JsonNode *n = qmp_take_line(q);
        int r;

        if (n) {
            return n;
        }
        if (q->eof) {
            g_set_error(errp, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                        "QMP connection %s closed by the server", q->path);
            return NULL;
        }
        r = read_some(q->fd, q->buf, deadline);
        if (r < 0) {
            q->eof = true;
        } else if (r == 0) {
            g_set_error(errp, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                        "timed out");
            return NULL;
        }
    }
}

/* Queue a message nobody asked for yet. */
static void qmp_stash(GwQmp *q, JsonNode *msg)
{
    g_queue_push_tail(qmp_is_event(msg) ? &q->events : &q->stray, msg);
}

static char *qmp_queued_event_names(GwQmp *q)
{
    GString *s = g_string_new(NULL);

    for (GList *l = q->events.head; l; l = l->next) {
        g_string_append_printf(s, "%s%s", s->len ? " " : "",
                               gw_event_name(l->data));
    }
    return g_string_free(s, false);
}

GwQmp *gw_qmp_try_open(const char *path, GwVM *vm, bool negotiate,
                       int timeout_ms, GError **errp)
{
    GwQmp *q;
    int fd = unix_connect_retry(path, vm, gw_timeout(timeout_ms), errp);
    JsonNode *reply;

    if (fd < 0) {
        return NULL;
    }
    q = g_new0(GwQmp, 1);
    q->fd = fd;
    q->path = g_strdup(path);
    q->vm = vm;
    q->buf = g_string_new(NULL);
    q->timeout_ms = GW_QMP_DEFAULT_TIMEOUT_MS;
    g_queue_init(&q->events);
    g_queue_init(&q->stray);

    q->greeting = qmp_read_msg(q, gw_deadline(gw_timeout(timeout_ms)), errp);
    if (!q->greeting) {
        g_prefix_error(errp, "no QMP greeting on %s: ", path);
        gw_qmp_close(q);
        return NULL;
    }
    if (!json_object_has_member(node_obj(q->greeting), "QMP")) {
        g_autofree char *s = node_to_str(q->greeting);
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "bad QMP greeting on %s: %s", path, s);
        gw_qmp_close(q);
        return NULL;
    }
    if (negotiate) {
        reply = gw_qmp_conn_try(q, errp, "{'execute': 'qmp_capabilities'}");
        if (!reply) {
            gw_qmp_close(q);
            return NULL;
        }
        if (gw_reply_is_error(reply)) {
            g_set_error(errp, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "qmp_capabilities failed: %s",
                        gw_reply_error_desc(reply));
            json_node_unref(reply);
            gw_qmp_close(q);
            return NULL;
        }
        json_node_unref(reply);
    }
    return q;
}

GwQmp *gw_qmp_open(const char *path, GwVM *vm, bool negotiate, int timeout_ms)
{
    g_autoptr(GError) err = NULL;
    GwQmp *q = gw_qmp_try_open(path, vm, negotiate, timeout_ms, &err);

    if (!q) {
        gw_fail("QMP: %s", err->message);
    }
    return q;
}

void gw_qmp_close(GwQmp *q)
{
    if (!q) {
        return;
    }
    if (q->fd >= 0) {
        close(q->fd);
    }
    g_queue_clear_full(&q->events, (GDestroyNotify)json_node_unref);
    g_queue_clear_full(&q->stray, (GDestroyNotify)json_node_unref);
    g_string_free(q->buf, true);
    if (q->greeting) {
        json_node_unref(q->greeting);
    }
    g_free(q->path);
    g_free(q);
}

JsonNode *gw_qmp_greeting(GwQmp *q)
{
    return q->greeting;
}

void gw_qmp_set_timeout(GwQmp *q, int timeout_ms)
{
    q->timeout_ms = timeout_ms;
}

bool gw_qmp_conn_closed(GwQmp *q)
{
    return q->eof && !memchr(q->buf->str, '\n', q->buf->len);
}

/*
 * Format, check and send a command; returns its id (a new reference), or
 * NULL with @errp set.
 */
static JsonNode *qmp_send_cmd(GwQmp *q, const char *fmt, va_list ap,
                              char **text, GError **errp)
{
    g_autofree char *raw = g_strdup_vprintf(fmt, ap);
    g_autofree char *fixed = json_fix_quotes(raw);
    g_autoptr(GError) perr = NULL;
    JsonNode *cmd = json_from_string(fixed, &perr);
    JsonObject *o = node_obj(cmd);
    JsonNode *id;
    g_autofree char *wire = NULL;

    if (!o) {
        /* A bug in the test, not in the VM: say so plainly. */
        gw_fail("gw_qmp: command is not a JSON object (%s): %s",
                perr ? perr->message : "not an object", fixed);
    }
    if (!json_object_has_member(o, "id")) {
        g_autofree char *gen = g_strdup_printf("gw-%u", ++q->next_id);
        json_object_set_string_member(o, "id", gen);
    }
    id = json_node_copy(json_object_get_member(o, "id"));
    *text = json_to_string(cmd, false);
    json_node_unref(cmd);
    /*
     * One write with the newline included: a server may act on the
     * complete object at once, and after "quit" a second write would
     * find the socket closed.
     */
    wire = g_strconcat(*text, "\n", NULL);
    if (!write_all(q->fd, wire, strlen(wire), errp)) {
        json_node_unref(id);
        return NULL;
    }
    return id;
}

static JsonNode *qmp_cmd_wait(GwQmp *q, JsonNode *id, const char *text,
                              GError **errp)
{
    int timeout_ms = gw_timeout(q->timeout_ms);
    gint64 deadline = gw_deadline(timeout_ms);

    for (;;) {
        g_autoptr(GError) err = NULL;
        JsonNode *msg = qmp_read_msg(q, deadline, &err);
        JsonNode *mid;

        if (!msg) {
            g_autofree char *evs = qmp_queued_event_names(q);
            g_autofree char *first = q->stray.head ?
                node_to_str(q->stray.head->data) : NULL;
            bool closed = err->code == G_IO_ERROR_CONNECTION_CLOSED;
            g_autofree char *why = closed ?
                g_strdup("connection closed by the server before the reply") :
                g_strdup_printf("no reply within %d ms", timeout_ms);

            g_set_error(errp, G_IO_ERROR, err->code,
                        "%s to %s (queued events: [%s]; %u replies without "
                        "our id%s%.300s)", why, text, evs, q->stray.length,
                        first ? ", first: " : "", first ? first : "");
            return NULL;
        }
        mid = qmp_is_event(msg) ? NULL :
            json_object_get_member(node_obj(msg), "id");
        if (mid && json_node_equal(mid, id)) {
            return msg;
        }
        qmp_stash(q, msg);
    }
}

static JsonNode *gw_qmp_conn_tryv(GwQmp *q, GError **errp, const char *fmt,
                                  va_list ap)
{
    g_autofree char *text = NULL;
    JsonNode *id = qmp_send_cmd(q, fmt, ap, &text, errp);
    JsonNode *reply;

    if (!id) {
        return NULL;
    }
    reply = qmp_cmd_wait(q, id, text, errp);
    json_node_unref(id);
    return reply;
}

JsonNode *gw_qmp_conn_try(GwQmp *q, GError **errp, const char *fmt, ...)
{
    va_list ap;
    JsonNode *r;

    va_start(ap, fmt);
    r = gw_qmp_conn_tryv(q, errp, fmt, ap);
    va_end(ap);
    return r;
}

JsonNode *gw_qmp_connv(GwQmp *q, const char *fmt, va_list ap)
{
    g_autoptr(GError) err = NULL;
    JsonNode *r = gw_qmp_conn_tryv(q, &err, fmt, ap);

    if (!r) {
        gw_fail("QMP %s: %s", q->path, err->message);
    }
    return r;
}

JsonNode *gw_qmp_conn(GwQmp *q, const char *fmt, ...)
{
    va_list ap;
    JsonNode *r;

    va_start(ap, fmt);
    r = gw_qmp_connv(q, fmt, ap);
    va_end(ap);
    return r;
}

/*
 * Send @text (one JSON command, newline added) with @fd attached as
 * SCM_RIGHTS ancillary data on the first byte, the way a QMP client hands a
 * descriptor to getfd.
 */
static bool qmp_send_with_fd(GwQmp *q, const char *text, int fd, GError **errp)
{
    g_autofree char *wire = g_strconcat(text, "\n", NULL);
    size_t len = strlen(wire);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = wire, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    struct cmsghdr *c;
    ssize_t n;

    memset(&ctl, 0, sizeof(ctl));
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    do {
        n = sendmsg(q->fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        g_set_error(errp, G_IO_ERROR, g_io_error_from_errno(errno),
                    "sendmsg: %s", g_strerror(errno));
        return false;
    }
    /* The descriptor went with the first chunk; the rest is plain bytes. */
    return write_all(q->fd, wire + n, len - n, errp);
}

JsonNode *gw_qmp_conn_getfd(GwQmp *q, const char *fdname, int fd)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *id_str = g_strdup_printf("gw-%u", ++q->next_id);
    g_autofree char *text = NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) cmd = NULL;
    g_autoptr(JsonNode) id = json_node_init_string(json_node_alloc(), id_str);
    JsonNode *reply;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "execute");
    json_builder_add_string_value(b, "getfd");
    json_builder_set_member_name(b, "arguments");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "fdname");
    json_builder_add_string_value(b, fdname);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, id_str);
    json_builder_end_object(b);
    cmd = json_builder_get_root(b);
    text = json_to_string(cmd, false);
    if (!qmp_send_with_fd(q, text, fd, &err)) {
        gw_fail("QMP %s: getfd: %s", q->path, err->message);
    }
    reply = qmp_cmd_wait(q, id, text, &err);
    if (!reply) {
        gw_fail("QMP %s: %s", q->path, err->message);
    }
    return reply;
}

JsonNode *gw_qmp_getfd(GwVM *vm, const char *fdname, int fd)
{
    return gw_qmp_conn_getfd(vm_qmp(vm), fdname, fd);
}

void gw_qmp_conn_raw_send(GwQmp *q, const void *buf, size_t len)
{
    g_autoptr(GError) err = NULL;

    if (!write_all(q->fd, buf, len, &err)) {
        gw_fail("QMP %s: raw send of %zu bytes failed: %s", q->path, len,
                err->message);
    }
}

JsonNode *gw_qmp_conn_try_receive(GwQmp *q, int timeout_ms)
{
    gint64 deadline = gw_deadline(gw_timeout(timeout_ms));

    for (;;) {
        JsonNode *msg;

        if (!g_queue_is_empty(&q->stray)) {
            return g_queue_pop_head(&q->stray);
        }
        msg = qmp_read_msg(q, deadline, NULL);
        if (!msg) {
            return NULL;
        }
        qmp_stash(q, msg);
    }
}

JsonNode *gw_qmp_conn_receive(GwQmp *q, int timeout_ms)
{
    JsonNode *msg = gw_qmp_conn_try_receive(q, timeout_ms);

    if (!msg) {
        gw_fail("QMP %s: no message within %d ms%s", q->path,
                gw_timeout(timeout_ms),
                q->eof ? " (connection closed)" : "");
    }
    return msg;
}

static JsonNode *qmp_find_event(GwQmp *q, const char *name,
                                GwEventPredicate pred, gpointer opaque)
{
    for (GList *l = q->events.head; l; l = l->next) {
        JsonNode *ev = l->data;
        if (g_strcmp0(gw_event_name(ev), name) == 0 &&
            (!pred || pred(ev, opaque))) {
            g_queue_delete_link(&q->events, l);
            return ev;
        }
    }
    return NULL;
}

JsonNode *gw_qmp_conn_poll_event(GwQmp *q, const char *name,
                                 GwEventPredicate pred, gpointer opaque,
                                 int timeout_ms)
{
    gint64 deadline = gw_deadline(gw_timeout(timeout_ms));

    for (;;) {
        JsonNode *ev = qmp_find_event(q, name, pred, opaque);
        JsonNode *msg;

        if (ev) {
            return ev;
        }
        msg = qmp_read_msg(q, deadline, NULL);
        if (!msg) {
            return NULL;
        }
        qmp_stash(q, msg);
    }
}

JsonNode *gw_qmp_conn_wait_event(GwQmp *q, const char *name,
                                 GwEventPredicate pred, gpointer opaque,
                                 int timeout_ms)
{
    JsonNode *ev = gw_qmp_conn_poll_event(q, name, pred, opaque, timeout_ms);

    if (!ev) {
        g_autofree char *evs = qmp_queued_event_names(q);
        gw_fail("QMP %s: event %s%s did not arrive within %d ms%s "
                "(other events queued: [%s])", q->path, name,
                pred ? " (with the expected data)" : "",
                gw_timeout(timeout_ms),
                q->eof ? "; the connection was closed" : "", evs);
    }
    return ev;
}

bool gw_qmp_conn_wait_closed(GwQmp *q, int timeout_ms)
{
    gint64 deadline = gw_deadline(gw_timeout(timeout_ms));

    while (!q->eof) {
        JsonNode *msg = qmp_read_msg(q, deadline, NULL);
        if (!msg) {
            break;
        }
        qmp_stash(q, msg);
    }
    /* Keep what arrived before EOF. */
    for (JsonNode *msg; (msg = qmp_take_line(q));) {
        qmp_stash(q, msg);
    }
    return q->eof;
}

/* ---------------------------------------------------------------------- */
/* Reply and event helpers */

bool gw_reply_is_error(JsonNode *reply)
{
    return json_object_has_member(node_obj(reply), "error");
}

const char *gw_reply_error_class(JsonNode *reply)
{
    JsonObject *o = node_obj(reply);
    JsonNode *e = o ? json_object_get_member(o, "error") : NULL;

    return obj_str(node_obj(e), "class");
}

const char *gw_reply_error_desc(JsonNode *reply)
{
    JsonObject *o = node_obj(reply);
    JsonNode *e = o ? json_object_get_member(o, "error") : NULL;

    return obj_str(node_obj(e), "desc");
}

JsonNode *gw_reply_return(JsonNode *reply)
{
    JsonObject *o = node_obj(reply);

    return o ? json_object_get_member(o, "return") : NULL;
}

const char *gw_event_name(JsonNode *ev)
{
    return obj_str(node_obj(ev), "event");
}

JsonObject *gw_event_data(JsonNode *ev)
{
    JsonObject *o = node_obj(ev);

    return o ? node_obj(json_object_get_member(o, "data")) : NULL;
}

gint64 gw_event_timestamp_us(JsonNode *ev)
{
    JsonObject *o = node_obj(ev);
    JsonObject *ts = o ? node_obj(json_object_get_member(o, "timestamp")) : NULL;

    if (!ts || !json_object_has_member(ts, "seconds") ||
        !json_object_has_member(ts, "microseconds")) {
        g_autofree char *s = node_to_str(ev);
        gw_fail("event without a valid timestamp: %s", s);
    }
    return json_object_get_int_member(ts, "seconds") * G_USEC_PER_SEC +
           json_object_get_int_member(ts, "microseconds");
}

/* ---------------------------------------------------------------------- */
/* VM wrappers around the main QMP connection */

static GwQmp *vm_qmp(GwVM *vm)
{
    if (!vm->qmp) {
        gw_fail("%s: no QMP connection (started with no_qmp?)", vm->name);
    }
    return vm->qmp;
}

JsonNode *gw_qmp(GwVM *vm, const char *fmt, ...)
{
    va_list ap;
    JsonNode *r;

    va_start(ap, fmt);
    r = gw_qmp_connv(vm_qmp(vm), fmt, ap);
    va_end(ap);
    return r;
}

JsonNode *gw_qmp_assert_success(GwVM *vm, const char *fmt, ...)
{
    va_list ap;
    JsonNode *r, *ret;

    va_start(ap, fmt);
    r = gw_qmp_connv(vm_qmp(vm), fmt, ap);
    va_end(ap);
    ret = gw_reply_return(r);
    if (!ret) {
        g_autofree char *s = node_to_str(r);
        gw_fail("%s: QMP command failed (format \"%s\"): %s", vm->name, fmt, s);
    }
    json_node_ref(ret);
    json_node_unref(r);
    return ret;
}

void gw_qmp_expect_error(GwVM *vm, const char *cls, const char *desc_substring,
                         const char *fmt, ...)
{
    va_list ap;
    JsonNode *r;
    const char *rc, *rd;

    va_start(ap, fmt);
    r = gw_qmp_connv(vm_qmp(vm), fmt, ap);
    va_end(ap);
    rc = gw_reply_error_class(r);
    rd = gw_reply_error_desc(r);
    if (!rc || !rd ||
        (cls && strcmp(rc, cls) != 0) ||
        (desc_substring && !strstr(rd, desc_substring))) {
        g_autofree char *s = node_to_str(r);
        gw_fail("%s: expected error class %s with desc containing \"%s\" "
                "for \"%s\", got %s", vm->name, cls ? cls : "(any)",
                desc_substring ? desc_substring : "", fmt, s);
    }
    json_node_unref(r);
}

void gw_qmp_raw_send(GwVM *vm, const void *buf, size_t len)
{
    gw_qmp_conn_raw_send(vm_qmp(vm), buf, len);
}

JsonNode *gw_qmp_receive(GwVM *vm, int timeout_ms)
{
    return gw_qmp_conn_receive(vm_qmp(vm), timeout_ms);
}

JsonNode *gw_qmp_wait_event(GwVM *vm, const char *name, int timeout_ms)
{
    return gw_qmp_conn_wait_event(vm_qmp(vm), name, NULL, NULL, timeout_ms);
}

JsonNode *gw_qmp_wait_event_match(GwVM *vm, const char *name,
                                  GwEventPredicate pred, gpointer opaque,
                                  int timeout_ms)
{
    return gw_qmp_conn_wait_event(vm_qmp(vm), name, pred, opaque, timeout_ms);
}

typedef struct {
    const char *key;
    const char *value;
} EventDataMatch;

static bool event_data_matches(JsonNode *ev, gpointer opaque)
{
    EventDataMatch *m = opaque;

    return g_strcmp0(obj_str(gw_event_data(ev), m->key), m->value) == 0;
}

JsonNode *gw_qmp_wait_event_data(GwVM *vm, const char *name, const char *key,
                                 const char *value, int timeout_ms)
{
    EventDataMatch m = { key, value };
    GwQmp *q = vm_qmp(vm);
    JsonNode *ev = gw_qmp_conn_poll_event(q, name, event_data_matches, &m,
                                          timeout_ms);

    if (!ev) {
        g_autofree char *evs = qmp_queued_event_names(q);
        gw_fail("%s: event %s with %s=\"%s\" did not arrive within %d ms "
                "(other events queued: [%s])", vm->name, name, key, value,
                gw_timeout(timeout_ms), evs);
    }
    return ev;
}

JsonNode *gw_qmp_poll_event(GwVM *vm, const char *name, int timeout_ms)
{
    return gw_qmp_conn_poll_event(vm_qmp(vm), name, NULL, NULL, timeout_ms);
}

void gw_qmp_clear_events(GwVM *vm)
{
    GwQmp *q = vm_qmp(vm);

    while (!q->eof) {
        JsonNode *msg = qmp_read_msg(q, g_get_monotonic_time(), NULL);
        if (!msg) {
            break;
        }
        qmp_stash(q, msg);
    }
    g_queue_clear_full(&q->events, (GDestroyNotify)json_node_unref);
}

char *gw_vm_query_status(GwVM *vm)
{
    JsonNode *ret = gw_qmp_assert_success(vm, "{'execute': 'query-status'}");
    const char *s = obj_str(node_obj(ret), "status");
    char *status;

    if (!s) {
        g_autofree char *t = node_to_str(ret);
        gw_fail("%s: query-status without a status: %s", vm->name, t);
    }
    status = g_strdup(s);
    json_node_unref(ret);
    return status;
}

char *gw_hmp(GwVM *vm, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *line = NULL;
    g_autofree char *cmd = NULL;
    JsonNode *reply, *ret;
    char *text;

    va_start(ap, fmt);
    line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* Build the JSON with json-glib so any quote in the line is escaped. */
    {
        JsonBuilder *b = json_builder_new();
        JsonNode *root;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "execute");
        json_builder_add_string_value(b, "human-monitor-command");
        json_builder_set_member_name(b, "arguments");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "command-line");
        json_builder_add_string_value(b, line);
        json_builder_end_object(b);
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        cmd = json_to_string(root, false);
        json_node_unref(root);
        g_object_unref(b);
    }
    /* cmd is plain double-quoted JSON: json_fix_quotes leaves it alone. */
    reply = gw_qmp(vm, "%s", cmd);
    ret = gw_reply_return(reply);
    if (!ret || !JSON_NODE_HOLDS_VALUE(ret) ||
        json_node_get_value_type(ret) != G_TYPE_STRING) {
        g_autofree char *s = node_to_str(reply);
        gw_fail("%s: human-monitor-command \"%s\" failed: %s", vm->name,
                line, s);
    }
    text = g_strdup(json_node_get_string(ret));
    json_node_unref(reply);
    return text;
}

/* ---------------------------------------------------------------------- */
/* HMP over a socket */

#define HMP_PROMPT "(qemu) "

static bool hmp_read_prompt(GwHmp *h, GString *out)
{
    gint64 deadline = gw_deadline(gw_timeout(h->timeout_ms));

    for (;;) {
        char *p = g_strstr_len(h->buf->str, h->buf->len, HMP_PROMPT);
        if (p) {
            g_string_append_len(out, h->buf->str, p - h->buf->str);
            g_string_erase(h->buf, 0, p - h->buf->str + strlen(HMP_PROMPT));
            return true;
        }
        if (read_some(h->fd, h->buf, deadline) <= 0) {
            return false;
        }
    }
}

/* Drop terminal escape sequences and carriage returns. */
static char *hmp_clean(const char *s)
{
    GString *o = g_string_new(NULL);

    while (*s) {
        if (*s == '\033') {
            s++;
            if (*s == '[') {
                s++;
                while (*s && !g_ascii_isalpha(*s)) {
                    s++;
                }
            }
            if (*s) {
                s++;
            }
            continue;
        }
        if (*s != '\r') {
            g_string_append_c(o, *s);
        }
        s++;
    }
    return g_string_free(o, false);
}

GwHmp *gw_hmp_open(const char *path, GwVM *vm, int timeout_ms)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GString) banner = g_string_new(NULL);
    int fd = unix_connect_retry(path, vm, gw_timeout(timeout_ms), &err);
    GwHmp *h;

    if (fd < 0) {
        gw_fail("HMP: %s", err->message);
    }
    h = g_new0(GwHmp, 1);
    h->fd = fd;
    h->vm = vm;
    h->buf = g_string_new(NULL);
    h->timeout_ms = timeout_ms;
    if (!hmp_read_prompt(h, banner)) {
        gw_fail("HMP %s: no \"%s\" prompt within %d ms (got \"%s\")", path,
                HMP_PROMPT, gw_timeout(timeout_ms), h->buf->str);
    }
    h->banner = hmp_clean(banner->str);
    return h;
}

const char *gw_hmp_banner(GwHmp *h)
{
    return h->banner;
}

char *gw_hmp_conn(GwHmp *h, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *line = NULL;
    g_autofree char *wire = NULL;
    g_autoptr(GString) out = g_string_new(NULL);
    g_autoptr(GError) err = NULL;
    char *text, *nl;

    va_start(ap, fmt);
    line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    wire = g_strconcat(line, "\n", NULL);
    if (!write_all(h->fd, wire, strlen(wire), &err)) {
        gw_fail("HMP: sending \"%s\": %s", line, err->message);
    }
    if (!hmp_read_prompt(h, out)) {
        gw_fail("HMP: no prompt after \"%s\" within %d ms (got \"%s\")", line,
                gw_timeout(h->timeout_ms), h->buf->str);
    }
    text = hmp_clean(out->str);
    /*
     * A monitor with line editing echoes the command, redrawing the line
     * after each character (QEMU does); the echo ends with the whole
     * command and has no newline before Enter. Drop that first line.
     */
    nl = strchr(text, '\n');
    if (nl && (size_t)(nl - text) >= strlen(line) &&
        strncmp(nl - strlen(line), line, strlen(line)) == 0) {
        memmove(text, nl + 1, strlen(nl + 1) + 1);
    }
    return text;
}

void gw_hmp_close(GwHmp *h)
{
    if (!h) {
        return;
    }
    close(h->fd);
    g_string_free(h->buf, true);
    g_free(h->banner);
    g_free(h);
}

/* ---------------------------------------------------------------------- */
/* Processes */

char *gw_describe_status(int status)
{
    if (WIFEXITED(status)) {
        return g_strdup_printf("exit status %d", WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return g_strdup_printf("killed by signal %d (%s)%s", WTERMSIG(status),
                               g_strsignal(WTERMSIG(status)),
                               WCOREDUMP(status) ? ", core dumped" : "");
    }
    return g_strdup_printf("wait status 0x%x", status);
}

/* A tmp dir short enough for unix socket paths inside it. */
static char *gw_make_dir(const char *name, GError **errp)
{
    g_autofree char *tmpl = g_strdup_printf("gw-%s-XXXXXX", name);
    char *dir = g_dir_make_tmp(tmpl, errp);

    if (dir && strlen(dir) > 80) {
        /* $TMPDIR is too deep for sun_path: fall back to /tmp. */
        g_autofree char *t = g_build_filename("/tmp", tmpl, NULL);
        g_rmdir(dir);
        g_free(dir);
        dir = g_mkdtemp(g_steal_pointer(&t));
        if (!dir) {
            g_set_error(errp, G_IO_ERROR, g_io_error_from_errno(errno),
                        "mkdtemp in /tmp: %s", g_strerror(errno));
        }
    }
    return dir;
}

static void gw_rm_rf(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *ent;

    if (!d) {
        return;
    }
    while ((ent = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, ent, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR) &&
            !g_file_test(p, G_FILE_TEST_IS_SYMLINK)) {
            gw_rm_rf(p);
        } else {
            g_unlink(p);
        }
    }
    g_dir_close(d);
    g_rmdir(dir);
}

/*
 * fork + exec @argv with stdin from /dev/null and stdout/stderr into the
 * given files. The child dies with us (PR_SET_PDEATHSIG).
 */
static pid_t gw_spawn(char **argv, const char *name, const char *dir,
                      GError **errp)
{
    g_autofree char *out_path = g_build_filename(dir, "stdout.log", NULL);
    g_autofree char *err_path = g_build_filename(dir, "stderr.log", NULL);
    pid_t parent = getpid();
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_t pid;

    if (in < 0 || out < 0 || err < 0) {
        g_set_error(errp, G_IO_ERROR, g_io_error_from_errno(errno),
                    "opening child stdio files: %s", g_strerror(errno));
        pid = -1;
        goto out;
    }
    gw_install_handlers();
    pid = fork();
    if (pid < 0) {
        g_set_error(errp, G_IO_ERROR, g_io_error_from_errno(errno),
                    "fork: %s", g_strerror(errno));
        goto out;
    }
    if (pid == 0) {
        static const char msg[] = "libgw: exec failed\n";
        sigset_t none;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);     /* the test died before prctl took effect */
        }
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], argv);
        if (write(2, msg, sizeof(msg) - 1) < 0) {
            /* nothing more we can do */
        }
        _exit(127);
    }
    gw_child_add(pid, name, dir);
out:
    if (in >= 0) {
        close(in);
    }
    if (out >= 0) {
        close(out);
    }
    if (err >= 0) {
        close(err);
    }
    return pid;
}

static char *replace_dir(const char *arg, const char *dir)
{
    g_auto(GStrv) parts = g_strsplit(arg, "@DIR@", -1);

    return g_strjoinv(dir, parts);
}

static bool args_have(GPtrArray *args, const char *const *names)
{
    for (guint i = 0; i < args->len; i++) {
        const char *a = g_ptr_array_index(args, i);
        for (const char *const *n = names; *n; n++) {
            if (strstr(a, *n)) {
                return true;
            }
        }
    }
    return false;
}

/* True if some "-machine" argument selects machine type none. */
static bool args_machine_none(GPtrArray *args)
{
    for (guint i = 0; i + 1 < args->len; i++) {
        const char *v = g_ptr_array_index(args, i + 1);
        if (strcmp(g_ptr_array_index(args, i), "-machine") == 0 &&
            (strcmp(v, "none") == 0 || g_str_has_prefix(v, "none,") ||
             strstr(v, "type=none"))) {
            return true;
        }
    }
    return false;
}

static bool args_have_exact(GPtrArray *args, const char *name)
{
    for (guint i = 0; i < args->len; i++) {
        if (strcmp(g_ptr_array_index(args, i), name) == 0) {
            return true;
        }
    }
    return false;
}

GwVM *gw_vm_start(const GwVMOpts *o)
{
    static const char *const accel_opts[] = {
        "-accel", "accel=", "-enable-kvm", NULL
    };
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) user = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    GwVM *vm;

    if (!gw_binary()) {
        gw_fail("no binary to test: set GODWIT_BINARY or GW_TEST_QEMU=1 "
                "(tests should call gw_require_kvm() first)");
    }
    vm = g_new0(GwVM, 1);
    vm->name = g_strdup(o->name ? o->name : "vm");
    vm->dir = gw_make_dir(vm->name, &err);
    if (!vm->dir) {
        gw_fail("%s: cannot create a private directory: %s", vm->name,
                err->message);
    }
    vm->qmp_path = g_build_filename(vm->dir, "qmp.sock", NULL);
    vm->serial_path = g_build_filename(vm->dir, "serial.log", NULL);
    vm->serial = g_string_new(NULL);

    if (o->args && *o->args) {
        int argc;
        char **v;
        if (!g_shell_parse_argv(o->args, &argc, &v, &err)) {
            gw_fail("%s: cannot split arguments \"%s\": %s", vm->name,
                    o->args, err->message);
        }
        for (int i = 0; i < argc; i++) {
            g_ptr_array_add(user, replace_dir(v[i], vm->dir));
        }
        g_strfreev(v);
    }
    for (const char *const *a = o->argv; a && *a; a++) {
        g_ptr_array_add(user, replace_dir(*a, vm->dir));
    }

    for (const char *const *w = o->wrapper; w && *w; w++) {
        g_ptr_array_add(argv, replace_dir(*w, vm->dir));
    }
    g_ptr_array_add(argv, g_strdup(gw_binary()));
    g_ptr_array_add(argv, g_strdup("-nodefaults"));
    g_ptr_array_add(argv, g_strdup("-display"));
    g_ptr_array_add(argv, g_strdup("none"));
    if (!args_have(user, accel_opts)) {
        g_ptr_array_add(argv, g_strdup("-accel"));
        g_ptr_array_add(argv, g_strdup("kvm"));
    }
    g_ptr_array_add(argv, g_strdup("-qmp"));
    g_ptr_array_add(argv, g_strdup_printf("unix:%s,server=on,wait=off",
                                          vm->qmp_path));
    if (!args_have_exact(user, "-serial")) {
        g_ptr_array_add(argv, g_strdup("-serial"));
        g_ptr_array_add(argv, g_strdup_printf("file:%s", vm->serial_path));
    }
    if (gw_flavour() == GW_FLAVOUR_QEMU) {
        /* What godwit has built in: host CPUID and the exit port. */
        if (!args_have_exact(user, "-cpu")) {
            g_ptr_array_add(argv, g_strdup("-cpu"));
            g_ptr_array_add(argv, g_strdup("host"));
        }
        if (!args_machine_none(user)) {
            g_ptr_array_add(argv, g_strdup("-device"));
            g_ptr_array_add(argv, g_strdup("isa-debug-exit,iobase=0x501"));
        }
    }
    for (guint i = 0; i < user->len; i++) {
        g_ptr_array_add(argv, g_strdup(g_ptr_array_index(user, i)));
    }
    g_ptr_array_add(argv, NULL);

    if (g_test_verbose() || g_getenv("GW_VERBOSE")) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv->pdata);
        g_printerr("# %s: %s\n", vm->name, cmd);
    }

    vm->pid = gw_spawn((char **)argv->pdata, vm->name, vm->dir, &err);
    if (vm->pid < 0) {
        gw_fail("%s: cannot start %s: %s", vm->name, gw_binary(),
                err->message);
    }
    gw_live_vms = g_list_prepend(gw_live_vms, vm);

    if (!o->no_qmp) {
        int t = o->start_timeout_ms ? o->start_timeout_ms : GW_START_TIMEOUT_MS;
        vm->qmp = gw_qmp_try_open(vm->qmp_path, vm, true, t, &err);
        if (!vm->qmp) {
            g_autofree char *se = NULL;
            /* Give a dying VM a moment so its stderr is complete. */
            gw_vm_wait_exit(vm, 1000, NULL);
            se = gw_vm_stderr(vm);
            gw_fail("%s did not come up: %s; stderr: %s", vm->name,
                    err->message, str_tail(se, 2000));
        }
    }
    return vm;
}

GwVM *gw_vm_startf(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *args = NULL;
    GwVMOpts o = { 0 };

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    o.args = args;
    return gw_vm_start(&o);
}

const char *gw_vm_name(GwVM *vm)
{
    return vm->name;
}

const char *gw_vm_dir(GwVM *vm)
{
    return vm->dir;
}

char *gw_vm_path(GwVM *vm, const char *file)
{
    return g_build_filename(vm->dir, file, NULL);
}

GwQmp *gw_vm_qmp(GwVM *vm)
{
    return vm_qmp(vm);
}

void gw_vm_qmp_reconnect(GwVM *vm)
{
    gw_qmp_close(vm->qmp);
    vm->qmp = NULL;
    vm->qmp = gw_qmp_open(vm->qmp_path, vm, true, GW_START_TIMEOUT_MS);
}

pid_t gw_vm_pid(GwVM *vm)
{
    return vm->pid;
}

static void gw_vm_reaped(GwVM *vm, int status)
{
    vm->exited = true;
    vm->status = status;
    gw_child_reaped(vm->pid);
}

bool gw_vm_running(GwVM *vm)
{
    int status;
    pid_t r;

    if (vm->exited) {
        return false;
    }
    do {
        r = waitpid(vm->pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == vm->pid) {
        gw_vm_reaped(vm, status);
        return false;
    }
    return true;
}

bool gw_vm_wait_exit(GwVM *vm, int timeout_ms, int *status)
{
    gint64 deadline = gw_deadline(gw_timeout(timeout_ms));

    while (gw_vm_running(vm)) {
        if (g_get_monotonic_time() >= deadline) {
            return false;
        }
        g_usleep(GW_POLL_US);
    }
    if (status) {
        *status = vm->status;
    }
    return true;
}

void gw_vm_kill(GwVM *vm, int sig)
{
    if (gw_vm_running(vm)) {
        kill(vm->pid, sig);
    }
}

guint64 gw_vm_rss_kib(GwVM *vm)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)vm->pid);
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents(path, &text, NULL, NULL) ||
        !(p = strstr(text, "\nVmRSS:"))) {
        gw_fail("%s: cannot read VmRSS from %s", vm->name, path);
    }
    return g_ascii_strtoull(p + strlen("\nVmRSS:"), NULL, 10);
}

char *gw_vm_stderr(GwVM *vm)
{
    g_autofree char *path = g_build_filename(vm->dir, "stderr.log", NULL);
    char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return g_strdup("");
    }
    return text;
}

void gw_vm_free(GwVM *vm)
{
    if (!vm) {
        return;
    }
    if (gw_vm_running(vm) && vm->qmp && !vm->qmp->eof) {
        JsonNode *r;
        gw_qmp_set_timeout(vm->qmp, GW_FREE_STEP_MS);
        r = gw_qmp_conn_try(vm->qmp, NULL, "{'execute': 'quit'}");
        if (r) {
            json_node_unref(r);
        }
        gw_vm_wait_exit(vm, GW_FREE_STEP_MS, NULL);
    }
    if (gw_vm_running(vm)) {
        kill(vm->pid, SIGTERM);
        if (!gw_vm_wait_exit(vm, GW_FREE_STEP_MS, NULL)) {
            int status;
            g_printerr("# %s: did not exit on SIGTERM, sending SIGKILL\n",
                       vm->name);
            kill(vm->pid, SIGKILL);
            while (waitpid(vm->pid, &status, 0) < 0 && errno == EINTR) {
                /* retry */
            }
            gw_vm_reaped(vm, status);
        }
    }
    gw_live_vms = g_list_remove(gw_live_vms, vm);
    gw_qmp_close(vm->qmp);
    if (gw_keep_tmp) {
        g_printerr("# %s: keeping %s\n", vm->name, vm->dir);
    } else {
        gw_rm_rf(vm->dir);
    }
    gw_child_release(vm->dir);
    g_string_free(vm->serial, true);
    g_free(vm->qmp_path);
    g_free(vm->serial_path);
    g_free(vm->dir);
    g_free(vm->name);
    g_free(vm);
}

/* ---------------------------------------------------------------------- */
/* Serial */

/* Append what the VM wrote to the log since the last look. */
static void serial_refresh(GwVM *vm)
{
    int fd = open(vm->serial_path, O_RDONLY | O_CLOEXEC);
    char tmp[65536];
    ssize_t n;

    if (fd < 0) {
        return;
    }
    while ((n = pread(fd, tmp, sizeof(tmp), vm->serial->len)) > 0) {
        g_string_append_len(vm->serial, tmp, n);
    }
    close(fd);
}

char *gw_serial_read_all(GwVM *vm)
{
    serial_refresh(vm);
    return g_strndup(vm->serial->str, vm->serial->len);
}

gsize gw_serial_offset(GwVM *vm)
{
    serial_refresh(vm);
    return vm->serial->len;
}

static const char *serial_find(GwVM *vm, gsize from, const char *needle)
{
    if (from > vm->serial->len) {
        return NULL;
    }
    return memmem(vm->serial->str + from, vm->serial->len - from, needle,
                  strlen(needle));
}

/*
 * A guest that went quiet: print what its VMM says it is doing (run state,
 * vCPU registers) before the test fails, so a hang can be told from a slow
 * host. Best effort: a monitor that does not answer ends the report (the
 * failure message was printed before).
 */
static void vm_report_quiet_guest(GwVM *vm)
{
    static bool busy;

    if (busy || !vm->qmp || !gw_vm_running(vm)) {
        return;
    }
    busy = true;
    vm->qmp->timeout_ms = 5000;
    g_autofree char *status = gw_hmp(vm, "info status");
    g_test_message("%s: %s", vm->name, status);
    g_autofree char *regs = gw_hmp(vm, "info registers -a");
    g_test_message("%s: info registers -a:\n%s", vm->name, regs);
    busy = false;
}

gsize gw_serial_wait_for_from(GwVM *vm, gsize from, const char *needle,
                              int timeout_ms)
{
    int t = gw_timeout(timeout_ms);
    gint64 deadline = gw_deadline(t);

    for (;;) {
        bool alive = gw_vm_running(vm);
        const char *hit;

        /* Refresh after the liveness check so output before exit counts. */
        serial_refresh(vm);
        hit = serial_find(vm, from, needle);
        if (hit) {
            return hit - vm->serial->str + strlen(needle);
        }
        if (!alive) {
            g_autofree char *st = gw_describe_status(vm->status);
            gw_fail("%s exited (%s) before printing \"%s\" on the serial port",
                    vm->name, st, needle);
        }
        if (g_get_monotonic_time() >= deadline) {
            g_test_message("%s: \"%s\" did not appear on the serial port within %d ms",
                           vm->name, needle, t);
            vm_report_quiet_guest(vm);
            gw_fail("%s: \"%s\" did not appear on the serial port within %d ms "
                    "(log has %zu bytes, tail: \"%s\")", vm->name, needle, t,
                    vm->serial->len, str_tail(vm->serial->str, 300));
        }
        g_usleep(GW_POLL_US);
    }
}

gsize gw_serial_wait_for(GwVM *vm, const char *needle, int timeout_ms)
{
    return gw_serial_wait_for_from(vm, 0, needle, timeout_ms);
}

guint gw_serial_count(GwVM *vm, const char *needle)
{
    guint n = 0;
    gsize off = 0;
    const char *hit;

    serial_refresh(vm);
    while ((hit = serial_find(vm, off, needle))) {
        n++;
        off = hit - vm->serial->str + strlen(needle);
    }
    return n;
}

/* ---------------------------------------------------------------------- */
/* Guest memory */

GBytes *gw_memsave(GwVM *vm, guint64 gpa, guint64 size)
{
    g_autofree char *name = g_strdup_printf("mem-%u.bin", ++vm->memsave_seq);
    g_autofree char *path = g_build_filename(vm->dir, name, NULL);
    g_autoptr(GError) err = NULL;
    GMappedFile *mf;
    GBytes *bytes;
    JsonNode *r;
    int saved = 0;

    if (vm->qmp) {
        saved = vm->qmp->timeout_ms;
        /* A few hundred MiB may take a while on a slow disk. */
        gw_qmp_set_timeout(vm->qmp, MAX(saved, 120000));
    }
    r = gw_qmp_assert_success(vm,
        "{'execute': 'pmemsave', 'arguments': {'val': %" G_GUINT64_FORMAT
        ", 'size': %" G_GUINT64_FORMAT ", 'filename': '%s'}}", gpa, size, path);
    json_node_unref(r);
    gw_qmp_set_timeout(vm->qmp, saved);

    mf = g_mapped_file_new(path, false, &err);
    if (!mf) {
        gw_fail("%s: pmemsave succeeded but %s cannot be mapped: %s", vm->name,
                path, err->message);
    }
    if (g_mapped_file_get_length(mf) != size) {
        gw_fail("%s: pmemsave of %" G_GUINT64_FORMAT " bytes at 0x%"
                G_GINT64_MODIFIER "x wrote %zu bytes", vm->name, size, gpa,
                g_mapped_file_get_length(mf));
    }
    bytes = g_mapped_file_get_bytes(mf);
    g_mapped_file_unref(mf);
    g_unlink(path);
    return bytes;
}

/* ---------------------------------------------------------------------- */
/* Plain runs */

int gw_run(const char *args, int timeout_ms, char **out, char **err_text)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *dir = NULL;
    g_autofree char *out_path = NULL;
    g_autofree char *err_path = NULL;
    char **v = NULL;
    int argc = 0, status = 0, t = gw_timeout(timeout_ms);
    gint64 deadline = gw_deadline(t);
    pid_t pid, r;

    if (!gw_binary()) {
        gw_fail("no binary to test: set GODWIT_BINARY or GW_TEST_QEMU=1");
    }
    if (args && *args && !g_shell_parse_argv(args, &argc, &v, &err)) {
        gw_fail("gw_run: cannot split \"%s\": %s", args, err->message);
    }
    dir = gw_make_dir("run", &err);
    if (!dir) {
        gw_fail("gw_run: %s", err->message);
    }
    g_ptr_array_add(argv, g_strdup(gw_binary()));
    if (gw_flavour() == GW_FLAVOUR_QEMU) {
        /* QEMU defaults to TCG and warns about CPUID bits without these. */
        g_ptr_array_add(argv, g_strdup("-accel"));
        g_ptr_array_add(argv, g_strdup("kvm"));
        g_ptr_array_add(argv, g_strdup("-cpu"));
        g_ptr_array_add(argv, g_strdup("host"));
    }
    for (int i = 0; i < argc; i++) {
        g_ptr_array_add(argv, g_strdup(v[i]));
    }
    g_strfreev(v);
    g_ptr_array_add(argv, NULL);

    out_path = g_build_filename(dir, "stdout.log", NULL);
    err_path = g_build_filename(dir, "stderr.log", NULL);
    pid = gw_spawn((char **)argv->pdata, "run", dir, &err);
    if (pid < 0) {
        gw_fail("gw_run: cannot start %s: %s", gw_binary(), err->message);
    }
    for (;;) {
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            gw_fail("gw_run: waitpid: %s", g_strerror(errno));
        }
        if (g_get_monotonic_time() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            gw_child_reaped(pid);
            gw_fail("gw_run: \"%s\" still running after %d ms (killed)",
                    args, t);
        }
        g_usleep(GW_POLL_US);
    }
    gw_child_reaped(pid);
    if (out && !g_file_get_contents(out_path, out, NULL, NULL)) {
        *out = g_strdup("");
    }
    if (err_text && !g_file_get_contents(err_path, err_text, NULL, NULL)) {
        *err_text = g_strdup("");
    }
    gw_rm_rf(dir);
    gw_child_release(dir);
    return status;
}
