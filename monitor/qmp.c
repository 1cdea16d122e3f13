/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP server: listening sockets and chardev monitors, one session per
 * client (greeting, capability negotiation, request handling under the BQL),
 * events fanned out from any thread, fd passing over unix sockets, and the
 * session-control commands (qmp_capabilities, query-version, query-commands,
 * getfd, closefd). Everything here runs on the main thread's default
 * GMainContext except qmp_event_emit(), which any thread may call.
 */
#include "qemu/osdep.h"
#include "qemu/sockets.h"
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <glib-unix.h>

#include "monitor/qmp.h"
#include "qapi/qmp-json.h"
#include "qapi/qapi-commands.h"
#include "qemu/bql.h"
#include "chardev/char.h"

/* A client that stops reading is dropped once this much output is queued. */
#define QMP_MAX_PENDING_OUTPUT  (16 * 1024 * 1024)
#define QMP_READ_CHUNK          65536
#define QMP_MAX_FDS_PER_READ    16

typedef struct QmpClient {
    int refcnt;
    int fd;                     /* socket, or -1 for a chardev monitor */
    Chardev *chr;               /* chardev monitor, or NULL */
    char *label;                /* for messages: "unix:/path" */
    guint in_watch;
    guint out_watch;
    GByteArray *out;            /* socket output not yet written */
    QmpJsonStreamer *js;
    bool negotiated;
    bool oob;
    bool dead;                  /* disconnected or dropped; freed at refcnt 0 */
    int pending_fd;             /* last fd received via SCM_RIGHTS, not yet named */
} QmpClient;

typedef struct QmpListener {
    int fd;
    guint watch;
    char *unix_path;            /* unlinked at cleanup */
    char *label;
} QmpListener;

/* All of these belong to the main thread. */
static GList *qmp_clients;
static GList *qmp_listeners;
static QmpClient *qmp_cur_client;   /* client whose command is being run */
static GHashTable *qmp_fds;         /* getfd name -> fd (GINT_TO_POINTER) */

/* Events from other threads wait here until the main loop sends them. */
static GMutex qmp_event_lock;
static GQueue qmp_event_queue = G_QUEUE_INIT;    /* of char * (formatted lines) */
static bool qmp_event_flush_scheduled;

static void client_destroy(QmpClient *c);
static void client_feed(QmpClient *c, const char *buf, size_t len);

/* ---- clients --------------------------------------------------------------- */

static QmpClient *client_ref(QmpClient *c)
{
    c->refcnt++;
    return c;
}

static void client_unref(QmpClient *c)
{
    if (--c->refcnt > 0) {
        return;
    }
    g_assert(c->dead);
    if (c->pending_fd >= 0) {
        close(c->pending_fd);
    }
    qmp_json_streamer_free(c->js);
    g_byte_array_free(c->out, TRUE);
    g_free(c->label);
    g_free(c);
}

/* Disconnect: stop all I/O now, free once nobody on the stack uses it. */
static void client_destroy(QmpClient *c)
{
    if (c->dead) {
        return;
    }
    c->dead = true;
    if (c->in_watch) {
        g_source_remove(c->in_watch);
        c->in_watch = 0;
    }
    if (c->out_watch) {
        g_source_remove(c->out_watch);
        c->out_watch = 0;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    qmp_clients = g_list_remove(qmp_clients, c);
    client_unref(c);
}

static gboolean client_writable(gint fd, GIOCondition cond, gpointer opaque);

static void client_flush(QmpClient *c)
{
    while (c->out->len > 0) {
        ssize_t n = send(c->fd, c->out->data, c->out->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            client_destroy(c);      /* peer went away */
            return;
        }
        g_byte_array_remove_range(c->out, 0, n);
    }
    if (c->out->len > 0 && !c->out_watch) {
        c->out_watch = g_unix_fd_add(c->fd, G_IO_OUT, client_writable, c);
    } else if (c->out->len == 0 && c->out_watch) {
        g_source_remove(c->out_watch);
        c->out_watch = 0;
    }
}

static gboolean client_writable(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpClient *c = opaque;

    c->out_watch = 0;
    client_flush(c);
    return G_SOURCE_REMOVE;     /* client_flush re-arms it if needed */
}

/* Queue one formatted line (without the CRLF) for @c. */
static void client_send_line(QmpClient *c, const char *line)
{
    if (c->dead) {
        return;
    }
    if (c->chr) {
        chardev_write(c->chr, line, strlen(line));
        chardev_write(c->chr, "\r\n", 2);
        return;
    }
    if (c->out->len + strlen(line) > QMP_MAX_PENDING_OUTPUT) {
        g_warning("QMP client on %s does not read its output; dropping it", c->label);
        client_destroy(c);
        return;
    }
    g_byte_array_append(c->out, (const guint8 *)line, strlen(line));
    g_byte_array_append(c->out, (const guint8 *)"\r\n", 2);
    client_flush(c);
}

static void client_send(QmpClient *c, JsonNode *msg)
{
    g_autofree char *line = qmp_json_to_string(msg);

    client_send_line(c, line);
    json_node_unref(msg);
}

static JsonNode *version_info(void)
{
    JsonObject *triple = json_object_new();
    JsonObject *info = json_object_new();

    json_object_set_int_member(triple, "major", GW_VERSION_MAJOR);
    json_object_set_int_member(triple, "minor", GW_VERSION_MINOR);
    json_object_set_int_member(triple, "micro", GW_VERSION_MICRO);
    json_object_set_object_member(info, "qemu", triple);
    json_object_set_string_member(info, "package", "godwit " GW_VERSION_STRING);
    return qmp_node_object(info);
}

static void client_greet(QmpClient *c)
{
    JsonObject *qmp = json_object_new();
    JsonObject *greeting = json_object_new();
    JsonArray *caps = json_array_new();

    json_array_add_string_element(caps, "oob");
    json_object_set_member(qmp, "version", version_info());
    json_object_set_array_member(qmp, "capabilities", caps);
    json_object_set_object_member(greeting, "QMP", qmp);
    client_send(c, qmp_node_object(greeting));
}

/* Run one request of @c and send the reply. */
static void client_handle(QmpClient *c, JsonNode *msg)
{
    g_autoptr(GError) err = NULL;
    QmpRequest req;
    const QapiCommand *cmd;
    JsonNode *ret;
    bool took_bql = false;

    if (!qmp_request_parse(msg, c->oob, &req, &err)) {
        client_send(c, qmp_response_error(err, req.id));
        return;
    }
    if (!c->negotiated && strcmp(req.name, "qmp_capabilities") != 0) {
        error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Expecting capabilities negotiation with 'qmp_capabilities'");
        client_send(c, qmp_response_error(err, req.id));
        return;
    }
    cmd = qapi_schema_find_command(&qapi_schema, req.name);
    if (!cmd) {
        error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "The command %s has not been found", req.name);
        client_send(c, qmp_response_error(err, req.id));
        return;
    }
    if (req.oob && !cmd->allow_oob) {
        error_setg(&err, "The command %s does not support OOB", req.name);
        client_send(c, qmp_response_error(err, req.id));
        return;
    }

    /*
     * Out-of-band commands exist to get through while something holds the
     * BQL (e.g. to pause a stuck postcopy), so they run without it and
     * must be written to need no lock. The BQL is taken only if this thread
     * does not already hold it (the main loop may dispatch with it held).
     */
    if (!req.oob && !bql_locked()) {
        bql_lock();
        took_bql = true;
    }
    qmp_cur_client = c;
    ret = qmp_dispatch(req.name, req.args, &err);
    qmp_cur_client = NULL;
    if (took_bql) {
        bql_unlock();
    }
    if (c->dead) {
        if (ret) {
            json_node_unref(ret);
        }
        return;         /* disconnected meanwhile: nobody to answer */
    }
    if (!ret) {
        client_send(c, qmp_response_error(err, req.id));
    } else {
        client_send(c, qmp_response_return(ret, req.id));
    }
}

static void client_emit(void *opaque, JsonNode *value, const GError *err)
{
    QmpClient *c = opaque;

    if (c->dead) {
        if (value) {
            json_node_unref(value);
        }
        return;
    }
    if (err) {
        client_send(c, qmp_response_error(err, NULL));
        return;
    }
    client_handle(c, value);
    json_node_unref(value);
}

static void client_feed(QmpClient *c, const char *buf, size_t len)
{
    g_autoptr(GError) err = NULL;

    client_ref(c);
    if (!qmp_json_streamer_feed(c->js, buf, len, &err) && !c->dead) {
        /* Over a limit: there is no safe place to resume, so hang up. */
        g_warning("QMP client on %s: %s; disconnecting it", c->label, err->message);
        client_send(c, qmp_response_error(err, NULL));
        if (c->chr) {
            qmp_json_streamer_reset(c->js);
        } else {
            client_destroy(c);
        }
    }
    client_unref(c);
}

static void client_take_fds(QmpClient *c, struct msghdr *msg)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        size_t n;
        int *fds;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        fds = (int *)CMSG_DATA(cm);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, &fds[i], sizeof(fd));
            /* Only the most recent descriptor can be named by getfd. */
            if (c->pending_fd >= 0) {
                close(c->pending_fd);
            }
            c->pending_fd = fd;
        }
    }
}

static gboolean client_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpClient *c = opaque;
    char buf[QMP_READ_CHUNK];
    union {
        char buf[CMSG_SPACE(sizeof(int) * QMP_MAX_FDS_PER_READ)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
    };
    ssize_t n;

    do {
        n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        c->in_watch = 0;
        client_destroy(c);
        return G_SOURCE_REMOVE;
    }
    client_take_fds(c, &msg);
    client_ref(c);
    client_feed(c, buf, n);
    if (c->dead) {
        /* client_destroy already removed this source. */
        client_unref(c);
        return G_SOURCE_REMOVE;
    }
    client_unref(c);
    return G_SOURCE_CONTINUE;
}

static QmpClient *client_new(const char *label)
{
    QmpClient *c = g_new0(QmpClient, 1);

    c->refcnt = 1;
    c->fd = -1;
    c->pending_fd = -1;
    c->label = g_strdup(label);
    c->out = g_byte_array_new();
    c->js = qmp_json_streamer_new(client_emit, c, QMP_JSON_MAX_MESSAGE, QMP_JSON_MAX_DEPTH);
    qmp_clients = g_list_append(qmp_clients, c);
    return c;
}

static void client_new_socket(int fd, const char *label)
{
    QmpClient *c = client_new(label);

    c->fd = fd;
    c->in_watch = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, client_readable, c);
    client_greet(c);
}

/* ---- listeners -------------------------------------------------------------- */

static gboolean listener_accept(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpListener *l = opaque;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (cfd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            g_warning("QMP: accept on %s failed: %s", l->label, g_strerror(errno));
        }
        return G_SOURCE_CONTINUE;
    }
    client_new_socket(cfd, l->label);
    return G_SOURCE_CONTINUE;
}

/* "on"/"off"/"yes"/"no"/"true"/"false", as QEMU's option parser accepts. */
static bool parse_onoff(const char *name, const char *val, bool *out, GError **errp)
{
    if (!strcmp(val, "on") || !strcmp(val, "yes") || !strcmp(val, "true")) {
        *out = true;
    } else if (!strcmp(val, "off") || !strcmp(val, "no") || !strcmp(val, "false")) {
        *out = false;
    } else {
        error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
        return false;
    }
    return true;
}

bool qmp_server_add(const char *spec, GError **errp)
{
    g_auto(GStrv) parts = g_strsplit(spec, ",", -1);
    bool server = false, wait = true;
    const char *addr = parts[0] ? parts[0] : "";
    QmpListener *l;
    int fd;

    for (int i = 1; parts[i]; i++) {
        char *eq = strchr(parts[i], '=');
        const char *key = parts[i];
        const char *val = eq ? eq + 1 : NULL;
        if (eq) {
            *eq = '\0';
        }
        if (!strcmp(key, "server")) {
            if (!parse_onoff(key, val ? val : "on", &server, errp)) {
                return false;
            }
        } else if (!strcmp(key, "wait")) {
            if (!parse_onoff(key, val ? val : "on", &wait, errp)) {
                return false;
            }
        } else if (!strcmp(key, "nowait") && !val) {
            wait = false;
        } else if (!strcmp(key, "nodelay")) {
            /* accepted for compatibility; QMP replies are whole lines anyway */
        } else {
            error_setg(errp, "Invalid parameter '%s'", key);
            return false;
        }
    }
    if (!server) {
        error_setg(errp, "QMP socket '%s' must be a server (add server=on)", spec);
        return false;
    }

    l = g_new0(QmpListener, 1);
    if (g_str_has_prefix(addr, "unix:")) {
        fd = gw_listen_unix(addr + 5, 8, errp);
        if (fd >= 0) {
            l->unix_path = g_strdup(addr + 5);
        }
    } else if (g_str_has_prefix(addr, "tcp:")) {
        const char *hostport = addr + 4;
        const char *colon = strrchr(hostport, ':');
        g_autofree char *host = NULL;
        if (!colon) {
            error_setg(errp, "TCP address '%s' lacks a port", hostport);
            g_free(l);
            return false;
        }
        host = g_strndup(hostport, colon - hostport);
        /* Allow [v6addr]:port */
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            memmove(host, host + 1, strlen(host) - 2);
            host[strlen(host) - 2] = '\0';
        }
        fd = gw_listen_tcp(host, colon + 1, 8, NULL, NULL, errp);
    } else {
        error_setg(errp, "QMP socket '%s' is not of the form unix:PATH or tcp:HOST:PORT", spec);
        g_free(l);
        return false;
    }
    if (fd < 0) {
        g_free(l->unix_path);
        g_free(l);
        return false;
    }
    l->fd = fd;
    l->label = g_strdup(addr);
    qmp_listeners = g_list_append(qmp_listeners, l);

    if (wait) {
        /* Like QEMU: block until the first client arrives before going on. */
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int cfd;
        fprintf(stderr, "godwit: info: waiting for a QMP connection on %s,server=on\n", addr);
        for (;;) {
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
                error_setg_errno(errp, errno, "Failed to wait for a QMP connection on %s", addr);
                return false;
            }
            cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (cfd >= 0) {
                break;
            }
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                error_setg_errno(errp, errno, "Failed to accept a QMP connection on %s", addr);
                return false;
            }
        }
        client_new_socket(cfd, l->label);
    }
    l->watch = g_unix_fd_add(fd, G_IO_IN, listener_accept, l);
    return true;
}

/* ---- chardev monitors -------------------------------------------------------- */

static void chardev_client_read(void *opaque, const uint8_t *buf, size_t len)
{
    client_feed(opaque, (const char *)buf, len);
}

static void chardev_client_event(void *opaque, bool connected)
{
    QmpClient *c = opaque;

    /* Each connection is a new session on the same monitor. */
    qmp_json_streamer_reset(c->js);
    c->negotiated = false;
    c->oob = false;
    if (connected) {
        client_greet(c);
    }
}

bool qmp_server_add_chardev(const char *chardev_id, GError **errp)
{
    Chardev *chr = chardev_lookup(chardev_id);
    QmpClient *c;
    g_autofree char *label = NULL;

    if (!chr) {
        error_setg(errp, "Chardev '%s' not found", chardev_id);
        return false;
    }
    label = g_strdup_printf("chardev %s", chardev_id);
    c = client_new(label);
    c->chr = chr;
    chardev_set_handlers(chr, chardev_client_read, chardev_client_event, c);
    /* Back-ends without connect events (stdio, file) get the greeting now. */
    client_greet(c);
    return true;
}

void qmp_server_cleanup(void)
{
    while (qmp_clients) {
        QmpClient *c = qmp_clients->data;
        if (c->chr) {
            chardev_set_handlers(c->chr, NULL, NULL, NULL);
        }
        client_destroy(c);
    }
    for (GList *it = qmp_listeners; it; it = it->next) {
        QmpListener *l = it->data;
        g_source_remove(l->watch);
        close(l->fd);
        if (l->unix_path) {
            unlink(l->unix_path);
        }
        g_free(l->unix_path);
        g_free(l->label);
        g_free(l);
    }
    g_list_free(qmp_listeners);
    qmp_listeners = NULL;
    if (qmp_fds) {
        GHashTableIter it;
        gpointer fd;
        g_hash_table_iter_init(&it, qmp_fds);
        while (g_hash_table_iter_next(&it, NULL, &fd)) {
            close(GPOINTER_TO_INT(fd));
        }
        g_hash_table_destroy(qmp_fds);
        qmp_fds = NULL;
    }
    g_mutex_lock(&qmp_event_lock);
    g_queue_clear_full(&qmp_event_queue, g_free);
    g_mutex_unlock(&qmp_event_lock);
}

/* ---- events ------------------------------------------------------------------ */

static void event_broadcast(const char *line)
{
    /* Copy: a client whose buffer overflows is removed from the list. */
    g_autoptr(GList) list = g_list_copy(qmp_clients);

    for (GList *it = list; it; it = it->next) {
        QmpClient *c = it->data;
        if (c->negotiated && !c->dead) {
            client_send_line(c, line);
        }
    }
}

static void event_flush_queue(void)
{
    for (;;) {
        char *line;
        g_mutex_lock(&qmp_event_lock);
        line = g_queue_pop_head(&qmp_event_queue);
        if (!line) {
            qmp_event_flush_scheduled = false;
        }
        g_mutex_unlock(&qmp_event_lock);
        if (!line) {
            return;
        }
        event_broadcast(line);
        g_free(line);
    }
}

static gboolean event_flush_cb(gpointer opaque)
{
    event_flush_queue();
    return G_SOURCE_REMOVE;
}

void qmp_event_emit(const char *name, JsonObject *data)
{
    gint64 now = g_get_real_time();
    JsonObject *ev = json_object_new();
    JsonObject *ts = json_object_new();
    g_autoptr(JsonNode) node = NULL;
    char *line;

    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    json_object_set_object_member(ev, "timestamp", ts);
    json_object_set_string_member(ev, "event", name);
    if (data) {
        json_object_set_object_member(ev, "data", data);
    }
    node = qmp_node_object(ev);
    line = qmp_json_to_string(node);

    if (g_main_context_is_owner(g_main_context_default())) {
        /*
         * On the main loop (e.g. STOP from the "stop" handler): send now, so
         * the event precedes the command's reply as with QEMU, but first
         * whatever other threads queued earlier, to keep the order.
         */
        event_flush_queue();
        event_broadcast(line);
        g_free(line);
        return;
    }
    g_mutex_lock(&qmp_event_lock);
    g_queue_push_tail(&qmp_event_queue, line);
    if (!qmp_event_flush_scheduled) {
        qmp_event_flush_scheduled = true;
        g_idle_add_full(G_PRIORITY_DEFAULT, event_flush_cb, NULL, NULL);
    }
    g_mutex_unlock(&qmp_event_lock);
}

/* ---- control commands -------------------------------------------------------- */

JsonNode *qmp_qmp_capabilities(JsonObject *args, GError **errp)
{
    QmpClient *c = qmp_cur_client;
    bool oob = false;

    if (!c || c->negotiated) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command ignored");
        return NULL;
    }
    if (json_object_has_member(args, "enable")) {
        JsonArray *caps = json_object_get_array_member(args, "enable");
        for (guint i = 0; i < json_array_get_length(caps); i++) {
            if (QMPCapability_parse(json_array_get_string_element(caps, i)) ==
                QMP_CAPABILITY_OOB) {
                oob = true;
            }
        }
    }
    c->oob = oob;
    c->negotiated = true;
    return NULL;
}

JsonNode *qmp_query_version(JsonObject *args, GError **errp)
{
    return version_info();
}

JsonNode *qmp_query_commands(JsonObject *args, GError **errp)
{
    JsonArray *list = json_array_new();
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);

    for (int i = 0; i < qapi_schema.n_commands; i++) {
        JsonObject *info = json_object_new();
        json_object_set_string_member(info, "name", qapi_schema.commands[i].name);
        json_array_add_object_element(list, info);
    }
    json_node_take_array(node, list);
    return node;
}

static GHashTable *fd_table(void)
{
    if (!qmp_fds) {
        qmp_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
    return qmp_fds;
}

JsonNode *qmp_getfd(JsonObject *args, GError **errp)
{
    const char *name = json_object_get_string_member(args, "fdname");
    QmpClient *c = qmp_cur_client;
    gpointer old;
    int fd;

    if (!c || c->pending_fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (g_ascii_isdigit(name[0])) {
        /* Numbers are reserved for fds the process got at start-up. */
        error_setg(errp, "Parameter 'fdname' expects a name not starting with a digit");
        return NULL;
    }
    fd = c->pending_fd;
    c->pending_fd = -1;
    if (g_hash_table_lookup_extended(fd_table(), name, NULL, &old)) {
        close(GPOINTER_TO_INT(old));
    }
    g_hash_table_insert(fd_table(), g_strdup(name), GINT_TO_POINTER(fd));
    return NULL;
}

int monitor_fd_take(const char *name, GError **errp)
{
    gpointer fd;

    if (!g_hash_table_lookup_extended(fd_table(), name, NULL, &fd)) {
        error_setg(errp, "File descriptor named '%s' not found", name);
        return -1;
    }
    g_hash_table_remove(fd_table(), name);
    return GPOINTER_TO_INT(fd);
}

JsonNode *qmp_closefd(JsonObject *args, GError **errp)
{
    int fd = monitor_fd_take(json_object_get_string_member(args, "fdname"), errp);

    if (fd < 0) {
        return NULL;
    }
    close(fd);
    return NULL;
}
