/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Chardev registry and spec parsing (-serial/-monitor specs and -chardev
 * options), input delivery under the BQL, and the bounded output queue
 * every fd back-end writes through. Also the null and memory back-ends.
 */
#include "qemu/osdep.h"

#include <poll.h>
#include <sys/socket.h>

#include "chardev/char.h"
#include "chardev/char-internal.h"
#include "qemu/bql.h"

/* Main thread only: every chardev created, and the -chardev ids. */
static GPtrArray *chardevs;
static GHashTable *chardev_ids;

Chardev *chardev_alloc(const ChardevOps *ops, const char *id, const char *label)
{
    Chardev *chr = g_new0(Chardev, 1);

    chr->ops = ops;
    chr->id = g_strdup(id);
    chr->label = g_strdup(label);
    if (!chardevs) {
        chardevs = g_ptr_array_new();
    }
    g_ptr_array_add(chardevs, chr);
    return chr;
}

static bool chardev_register_id(Chardev *chr, const char *id, GError **errp)
{
    if (!chardev_ids) {
        chardev_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
    if (g_hash_table_contains(chardev_ids, id)) {
        error_setg(errp, "chardev: duplicate id '%s'", id);
        return false;
    }
    g_hash_table_insert(chardev_ids, g_strdup(id), chr);
    return true;
}

Chardev *chardev_lookup(const char *id)
{
    return chardev_ids ? g_hash_table_lookup(chardev_ids, id) : NULL;
}

/* ---- input delivery ---- */

void chardev_be_deliver(Chardev *be, const uint8_t *buf, size_t len)
{
    /* The main loop may or may not already hold the BQL around dispatch. */
    bool take = !bql_locked();

    if (len == 0) {
        return;
    }
    if (take) {
        bql_lock();
    }
    if (be->mux) {
        char_mux_input(be->mux, buf, len);
    } else if (be->fe_read) {
        be->fe_read(be->fe_opaque, buf, len);
    }
    if (take) {
        bql_unlock();
    }
}

void chardev_be_event(Chardev *be, bool connected)
{
    bool take = !bql_locked();

    be->be_connected = connected;
    if (take) {
        bql_lock();
    }
    if (be->mux) {
        char_mux_event(be->mux, connected);
    } else if (be->fe_event) {
        be->fe_event(be->fe_opaque, connected);
    }
    if (take) {
        bql_unlock();
    }
}

/* ---- front-end API ---- */

void chardev_set_handlers(Chardev *chr, ChardevReadFn read, ChardevEventFn event,
                          void *opaque)
{
    Chardev *be;

    if (!chr) {
        return;
    }
    chr->fe_read = read;
    chr->fe_event = event;
    chr->fe_opaque = opaque;

    if (chr->mux && !chr->mux_parent) {
        /* Handlers on a muxed back-end itself: it becomes one of the slots. */
        char_mux_add_frontend(chr->mux, chr);
    }
    if (chr->mux_parent) {
        char_mux_frontend_attached(chr->mux_parent, chr);
        be = char_mux_backend(chr->mux_parent);
    } else {
        be = chr;
    }
    if (be->ops->attached) {
        be->ops->attached(be);
    }
    /* A client that connected before this front-end attached. */
    if (be->be_connected && event) {
        event(opaque, true);
    }
}

void chardev_set_frontend_is_monitor(Chardev *chr, bool on)
{
    if (chr) {
        chr->fe_is_monitor = on;
    }
}

bool chardev_is_mux_frontend(Chardev *chr)
{
    return chr && chr->mux_parent;
}

void chardev_write(Chardev *chr, const void *buf, size_t len)
{
    if (!chr || len == 0) {
        return;
    }
    if (chr->mux_parent) {
        char_mux_fe_write(chr->mux_parent, chr, buf, len);
    } else if (chr->ops->write) {
        chr->ops->write(chr, buf, len);
    }
}

void chardev_printf(Chardev *chr, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    chardev_write(chr, s, strlen(s));
    g_free(s);
}

const char *chardev_label(Chardev *chr)
{
    return chr ? chr->label : "none";
}

void chardev_drain_all(int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (guint i = 0; chardevs && i < chardevs->len; i++) {
        Chardev *chr = g_ptr_array_index(chardevs, i);
        gint64 left = (end - g_get_monotonic_time()) / 1000;

        if (chr->ops->drain) {
            chr->ops->drain(chr, (int)MAX(left, 0));
        }
    }
}

void chardev_cleanup_all(void)
{
    GPtrArray *all = chardevs;

    if (!all) {
        return;
    }
    chardevs = NULL;
    /* Newest first: mux front-ends go before their back-end. */
    for (guint i = all->len; i-- > 0;) {
        Chardev *chr = g_ptr_array_index(all, i);

        if (chr->ops->close) {
            chr->ops->close(chr);
        }
    }
    for (guint i = all->len; i-- > 0;) {
        Chardev *chr = g_ptr_array_index(all, i);

        if (chr->mux) {
            char_mux_free(chr->mux);
        }
        g_free(chr->id);
        g_free(chr->label);
        g_free(chr);
    }
    g_ptr_array_free(all, true);
    if (chardev_ids) {
        g_hash_table_destroy(chardev_ids);
        chardev_ids = NULL;
    }
}

/* ---- output queue ---- */

struct CharOut {
    GMutex lock;
    GCond cond;         /* writer: work or quit; drainers: became idle */
    int fd;             /* -1: no sink, output is dropped */
    bool is_socket;
    GByteArray *buf;    /* queued, not yet handed to the writer */
    size_t cap;
    bool busy;          /* writer is inside write() with a chunk */
    bool quit;
    uint64_t dropped;
    GThread *thread;
};

static void char_out_write_fd(int fd, bool is_socket, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = is_socket ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);

        if (n > 0) {
            p += n;
            len -= n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Somebody made the fd non-blocking (a shared tty): wait a bit. */
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };

            if (poll(&pfd, 1, 1000) <= 0) {
                return;
            }
        } else {
            /* EPIPE, EIO, a disconnected client...: the rest is lost. */
            return;
        }
    }
}

static gpointer char_out_thread(gpointer opaque)
{
    CharOut *out = opaque;
    GByteArray *chunk = g_byte_array_new();

    g_mutex_lock(&out->lock);
    for (;;) {
        GByteArray *tmp;
        int fd;

        while (!out->quit && (out->buf->len == 0 || out->fd < 0)) {
            g_cond_wait(&out->cond, &out->lock);
        }
        if (out->buf->len == 0 || out->fd < 0) {
            break;              /* quit with nothing left to write */
        }
        tmp = out->buf;
        out->buf = chunk;
        chunk = tmp;
        fd = out->fd;
        out->busy = true;
        g_mutex_unlock(&out->lock);

        char_out_write_fd(fd, out->is_socket, chunk->data, chunk->len);
        g_byte_array_set_size(chunk, 0);

        g_mutex_lock(&out->lock);
        out->busy = false;
        g_cond_broadcast(&out->cond);
    }
    g_mutex_unlock(&out->lock);
    g_byte_array_free(chunk, true);
    return NULL;
}

CharOut *char_out_new(int fd, bool is_socket, size_t cap)
{
    CharOut *out = g_new0(CharOut, 1);

    g_mutex_init(&out->lock);
    g_cond_init(&out->cond);
    out->fd = fd;
    out->is_socket = is_socket;
    out->buf = g_byte_array_new();
    out->cap = cap ? cap : CHAR_OUT_DEFAULT_CAP;
    out->thread = g_thread_new("chr/out", char_out_thread, out);
    return out;
}

void char_out_write(CharOut *out, const uint8_t *buf, size_t len)
{
    size_t room;

    g_mutex_lock(&out->lock);
    if (out->fd < 0 || out->quit) {
        out->dropped += len;
        g_mutex_unlock(&out->lock);
        return;
    }
    room = out->cap > out->buf->len ? out->cap - out->buf->len : 0;
    if (len > room) {
        out->dropped += len - room;
        len = room;
    }
    if (len) {
        g_byte_array_append(out->buf, buf, len);
        g_cond_broadcast(&out->cond);
    }
    g_mutex_unlock(&out->lock);
}

void char_out_set_fd(CharOut *out, int fd)
{
    g_mutex_lock(&out->lock);
    while (out->busy) {
        g_cond_wait(&out->cond, &out->lock);
    }
    out->fd = fd;
    g_byte_array_set_size(out->buf, 0);
    g_cond_broadcast(&out->cond);
    g_mutex_unlock(&out->lock);
}

bool char_out_drain(CharOut *out, int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    bool done;

    g_mutex_lock(&out->lock);
    while ((out->busy || (out->buf->len && out->fd >= 0)) &&
           g_cond_wait_until(&out->cond, &out->lock, end)) {
        /* woken: re-check */
    }
    done = !out->busy && (out->buf->len == 0 || out->fd < 0);
    g_mutex_unlock(&out->lock);
    return done;
}

uint64_t char_out_dropped(CharOut *out)
{
    uint64_t n;

    g_mutex_lock(&out->lock);
    n = out->dropped;
    g_mutex_unlock(&out->lock);
    return n;
}

void char_out_free(CharOut *out)
{
    bool idle;

    if (!out) {
        return;
    }
    idle = char_out_drain(out, 2000);
    g_mutex_lock(&out->lock);
    out->quit = true;
    g_byte_array_set_size(out->buf, 0);
    g_cond_broadcast(&out->cond);
    g_mutex_unlock(&out->lock);
    if (!idle) {
        /*
         * The writer is stuck in write() on a sink that does not drain (a
         * suspended terminal). Leave it, and the queue it uses, to exit.
         */
        return;
    }
    g_thread_join(out->thread);
    g_byte_array_free(out->buf, true);
    g_mutex_clear(&out->lock);
    g_cond_clear(&out->cond);
    g_free(out);
}

/* ---- null and memory back-ends ---- */

static const ChardevOps null_ops = {
    .name = "null",
};

typedef struct MemoryState {
    GMutex lock;
    GString *data;
} MemoryState;

static void memory_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    MemoryState *s = chr->be_opaque;

    g_mutex_lock(&s->lock);
    g_string_append_len(s->data, (const char *)buf, len);
    g_mutex_unlock(&s->lock);
}

static void memory_close(Chardev *chr)
{
    MemoryState *s = chr->be_opaque;

    g_string_free(s->data, true);
    g_mutex_clear(&s->lock);
    g_free(s);
}

static const ChardevOps memory_ops = {
    .name = "memory",
    .write = memory_write,
    .close = memory_close,
};

Chardev *chardev_memory_new(const char *id)
{
    Chardev *chr = chardev_alloc(&memory_ops, id, "memory");
    MemoryState *s = g_new0(MemoryState, 1);

    g_mutex_init(&s->lock);
    s->data = g_string_new(NULL);
    chr->be_opaque = s;
    if (id) {
        chardev_register_id(chr, id, NULL);
    }
    return chr;
}

char *chardev_memory_take(Chardev *chr)
{
    MemoryState *s = chr->be_opaque;
    char *r;

    g_mutex_lock(&s->lock);
    r = g_strdup(s->data->str);
    g_string_truncate(s->data, 0);
    g_mutex_unlock(&s->lock);
    return r;
}

/* ---- spec / option parsing ---- */

typedef struct CharOpts {
    char *backend;
    char *id;
    char *path;
    char *host;
    char *port;
    bool server;
    bool wait;
    bool wait_given;
    bool mux;
    bool signals;
} CharOpts;

static void char_opts_clear(CharOpts *o)
{
    g_free(o->backend);
    g_free(o->id);
    g_free(o->path);
    g_free(o->host);
    g_free(o->port);
}

static bool parse_onoff(const char *key, const char *val, bool *out, GError **errp)
{
    if (!val || !strcmp(val, "on") || !strcmp(val, "yes") || !strcmp(val, "true")) {
        *out = true;
    } else if (!strcmp(val, "off") || !strcmp(val, "no") || !strcmp(val, "false")) {
        *out = false;
    } else {
        error_setg(errp, "chardev: option '%s' expects 'on' or 'off', not '%s'",
                   key, val);
        return false;
    }
    return true;
}

/*
 * Parse the ",key=value" list after the first item. @allowed is a
 * space-separated list of the keys this back-end takes.
 */
static bool parse_char_options(char **items, const char *backend,
                               const char *allowed, CharOpts *o, GError **errp)
{
    g_auto(GStrv) allowed_v = g_strsplit(allowed, " ", -1);

    for (char **it = items; *it; it++) {
        g_autofree char *key = NULL;
        const char *eq = strchr(*it, '=');
        const char *val = eq ? eq + 1 : NULL;

        key = eq ? g_strndup(*it, eq - *it) : g_strdup(*it);
        if (!**it) {
            continue;
        }
        /* QEMU's old spellings: "server", "nowait", "wait". */
        if (!strcmp(key, "nowait") && !val) {
            g_free(key);
            key = g_strdup("wait");
            val = "off";
        }
        if (!g_strv_contains((const char *const *)allowed_v, key)) {
            error_setg(errp, "chardev: unknown option '%s' for backend '%s'",
                       key, backend);
            return false;
        }
        if (!strcmp(key, "id")) {
            g_free(o->id);
            o->id = g_strdup(val ? val : "");
        } else if (!strcmp(key, "path")) {
            g_free(o->path);
            o->path = g_strdup(val ? val : "");
        } else if (!strcmp(key, "host")) {
            g_free(o->host);
            o->host = g_strdup(val ? val : "");
        } else if (!strcmp(key, "port")) {
            g_free(o->port);
            o->port = g_strdup(val ? val : "");
        } else if (!strcmp(key, "server")) {
            if (!parse_onoff(key, val, &o->server, errp)) {
                return false;
            }
        } else if (!strcmp(key, "wait")) {
            if (!parse_onoff(key, val, &o->wait, errp)) {
                return false;
            }
            o->wait_given = true;
        } else if (!strcmp(key, "mux")) {
            if (!parse_onoff(key, val, &o->mux, errp)) {
                return false;
            }
        } else if (!strcmp(key, "signal")) {
            if (!parse_onoff(key, val, &o->signals, errp)) {
                return false;
            }
        } else if (!strcmp(key, "nodelay") || !strcmp(key, "ipv4") ||
                   !strcmp(key, "ipv6")) {
            bool ignored;

            /* Accepted for compatibility; no effect on a loopback monitor. */
            if (!parse_onoff(key, val, &ignored, errp)) {
                return false;
            }
        }
    }
    return true;
}

#define SOCKET_KEYS "server wait nodelay ipv4 ipv6 mux"

static Chardev *chardev_socket_from_opts(CharOpts *o, const char *label,
                                         GError **errp)
{
    bool is_unix = o->path != NULL;

    if (!o->server) {
        error_setg(errp, "chardev: '%s' must be a listening socket (server=on); "
                   "client sockets are not supported", label);
        return NULL;
    }
    if (!is_unix && (!o->port || !*o->port)) {
        error_setg(errp, "chardev: '%s' needs a path or a port", label);
        return NULL;
    }
    return chardev_socket_new(o->id, is_unix, o->path, o->host, o->port,
                              o->wait_given ? o->wait : true, errp);
}

/* Split "host:port" (host may be empty or "[v6]"). */
static bool split_host_port(const char *s, char **host, char **port, GError **errp)
{
    const char *colon = strrchr(s, ':');

    if (!colon || !colon[1]) {
        error_setg(errp, "chardev: 'tcp:%s' needs HOST:PORT", s);
        return false;
    }
    if (s[0] == '[' && colon > s && colon[-1] == ']') {
        *host = g_strndup(s + 1, colon - s - 2);
    } else {
        *host = g_strndup(s, colon - s);
    }
    *port = g_strdup(colon + 1);
    return true;
}

static Chardev *frontend_of(Chardev *be, GError **errp)
{
    if (be->mux) {
        return char_mux_new_frontend(be, errp);
    }
    return be;
}

Chardev *chardev_new_from_spec(const char *spec, GError **errp)
{
    g_auto(GStrv) items = NULL;
    const char *first;
    const char *colon;
    g_autofree char *backend = NULL;
    const char *rest;
    CharOpts o = { 0 };
    Chardev *chr = NULL;
    bool force_mux = false;

    if (!spec || !*spec) {
        error_setg(errp, "chardev: empty specification");
        return NULL;
    }
    if (g_str_has_prefix(spec, "mon:")) {
        /* The caller attaches a monitor too; escapes are on from the start. */
        spec += 4;
        force_mux = true;
    }
    if (!strcmp(spec, "none")) {
        return NULL;
    }
    items = g_strsplit(spec, ",", -1);
    first = items[0];
    colon = strchr(first, ':');
    backend = colon ? g_strndup(first, colon - first) : g_strdup(first);
    rest = colon ? colon + 1 : NULL;

    if (!strcmp(backend, "stdio") && !rest) {
        o.signals = true;
        if (!parse_char_options(items + 1, "stdio", "signal mux", &o, errp)) {
            goto out;
        }
        chr = chardev_stdio_get(force_mux || o.mux, o.signals, errp);
        if (chr) {
            chr = char_mux_new_frontend(chr, errp);
        }
    } else if (!strcmp(backend, "null") && !rest) {
        if (!parse_char_options(items + 1, "null", "", &o, errp)) {
            goto out;
        }
        chr = chardev_alloc(&null_ops, NULL, "null");
    } else if (!strcmp(backend, "file") && rest) {
        if (!*rest) {
            error_setg(errp, "chardev: 'file:' needs a path");
            goto out;
        }
        if (!parse_char_options(items + 1, "file", "mux", &o, errp)) {
            goto out;
        }
        chr = chardev_file_new(NULL, rest, errp);
    } else if (!strcmp(backend, "unix") && rest) {
        if (!*rest) {
            error_setg(errp, "chardev: 'unix:' needs a path");
            goto out;
        }
        if (!parse_char_options(items + 1, "unix", SOCKET_KEYS, &o, errp)) {
            goto out;
        }
        o.path = g_strdup(rest);
        chr = chardev_socket_from_opts(&o, spec, errp);
    } else if (!strcmp(backend, "tcp") && rest) {
        if (!split_host_port(rest, &o.host, &o.port, errp) ||
            !parse_char_options(items + 1, "tcp", SOCKET_KEYS, &o, errp)) {
            goto out;
        }
        chr = chardev_socket_from_opts(&o, spec, errp);
    } else if (!strcmp(backend, "chardev") && rest) {
        Chardev *be = chardev_lookup(rest);

        if (items[1]) {
            error_setg(errp, "chardev: unexpected options after 'chardev:%s'", rest);
            goto out;
        }
        if (!be) {
            error_setg(errp, "chardev '%s' not found", rest);
            goto out;
        }
        if (force_mux) {
            char_mux_attach(be, true);
        }
        if (!be->mux) {
            if (be->fe_claimed) {
                error_setg(errp, "chardev '%s' is already in use "
                           "(add mux=on to share it)", rest);
                goto out;
            }
            be->fe_claimed = true;
        }
        chr = frontend_of(be, errp);
        goto out;
    } else {
        error_setg(errp, "chardev: unknown backend '%s'", backend);
        goto out;
    }

    if (chr && (force_mux || o.mux) && !chr->mux_parent) {
        char_mux_attach(chr, true);
        chr = char_mux_new_frontend(chr, errp);
    }
out:
    char_opts_clear(&o);
    return chr;
}

Chardev *chardev_new_from_opts(const char *opts, GError **errp)
{
    g_auto(GStrv) items = NULL;
    CharOpts o = { 0 };
    Chardev *chr = NULL;
    const char *backend;

    if (!opts || !*opts) {
        error_setg(errp, "chardev: empty option string");
        return NULL;
    }
    items = g_strsplit(opts, ",", -1);
    backend = items[0];
    o.signals = true;

    if (!strcmp(backend, "socket")) {
        if (!parse_char_options(items + 1, backend,
                                "id path host port " SOCKET_KEYS, &o, errp)) {
            goto out;
        }
    } else if (!strcmp(backend, "file")) {
        if (!parse_char_options(items + 1, backend, "id path mux", &o, errp)) {
            goto out;
        }
    } else if (!strcmp(backend, "stdio")) {
        if (!parse_char_options(items + 1, backend, "id signal mux", &o, errp)) {
            goto out;
        }
    } else if (!strcmp(backend, "null")) {
        if (!parse_char_options(items + 1, backend, "id mux", &o, errp)) {
            goto out;
        }
    } else {
        error_setg(errp, "chardev: unknown backend '%s'", backend);
        goto out;
    }
    if (!o.id || !*o.id) {
        error_setg(errp, "chardev: '%s' needs an id", backend);
        goto out;
    }
    if (chardev_lookup(o.id)) {
        error_setg(errp, "chardev: duplicate id '%s'", o.id);
        goto out;
    }

    if (!strcmp(backend, "socket")) {
        if (o.path && (o.host || o.port)) {
            error_setg(errp, "chardev: '%s' has both path and host/port", o.id);
            goto out;
        }
        chr = chardev_socket_from_opts(&o, opts, errp);
    } else if (!strcmp(backend, "file")) {
        if (!o.path || !*o.path) {
            error_setg(errp, "chardev: '%s' needs path=", o.id);
            goto out;
        }
        chr = chardev_file_new(o.id, o.path, errp);
    } else if (!strcmp(backend, "stdio")) {
        /* stdio is one back-end per process; it is always able to mux. */
        chr = chardev_stdio_get(o.mux, o.signals, errp);
    } else {
        chr = chardev_alloc(&null_ops, o.id, "null");
    }
    if (!chr) {
        goto out;
    }
    if (o.mux) {
        char_mux_attach(chr, true);
    }
    if (!chardev_register_id(chr, o.id, errp)) {
        chr = NULL;
    }
out:
    char_opts_clear(&o);
    return chr;
}
