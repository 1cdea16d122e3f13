/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vhost-user front-end: the connection to the back-end (client or
 * server, waiting for the first one at start-up, reconnecting later),
 * feature and protocol-feature negotiation, the memory table and the rings
 * on start, GET_VRING_BASE on stop, SEND_RARP. The dirty log and postcopy
 * live in vhost-user-log.c and vhost-user-postcopy.c.
 */
#include "qemu/osdep.h"
#include "qemu/sockets.h"
#include "hw/virtio/vhost-user-internal.h"
#include "sysemu/main-loop.h"
#include <fcntl.h>
#include <glib-unix.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Protocol features godwit uses (MQ, CONFIGURE_MEM_SLOTS and the rest: not). */
#define VU_PROTOCOL_FEATURES ((1ULL << VHOST_USER_PROTOCOL_F_LOG_SHMFD) | \
                              (1ULL << VHOST_USER_PROTOCOL_F_RARP) | \
                              (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
                              (1ULL << VHOST_USER_PROTOCOL_F_PAGEFAULT))

static gboolean vu_fd_event(gint fd, GIOCondition cond, gpointer opaque);
static gboolean vu_accept_event(gint fd, GIOCondition cond, gpointer opaque);
static gboolean vu_reconnect_timer(gpointer opaque);

/* ---- exchanges ---- */

bool vu_has_protocol_feature_locked(VhostUser *vu, unsigned bit)
{
    return (vu->protocol_features >> bit) & 1;
}

static gboolean vu_teardown_cb(gpointer opaque);

void vu_mark_broken_locked(VhostUser *vu)
{
    if (!vu->broken && vu->fd >= 0) {
        vu->broken = true;
        /* Whoever failed may not hold the BQL: the main loop tears down. */
        main_loop_schedule(vu_teardown_cb, vu);
    }
}

bool vu_send_locked(VhostUser *vu, VhostUserMsg *m, const int *fds, unsigned nfds,
                    GError **errp)
{
    if (vu->fd < 0 || vu->broken) {
        error_setg(errp, "vhost-user back-end '%s' is not connected", vu->name);
        return false;
    }
    if (!vhost_user_msg_send(vu->fd, m, fds, nfds, VHOST_USER_TIMEOUT_MS, errp)) {
        vu_mark_broken_locked(vu);
        return false;
    }
    return true;
}

static bool vu_recv_locked(VhostUser *vu, VhostUserMsg *reply, uint32_t request, int *fds,
                           unsigned *nfds, GError **errp)
{
    reply->request = request;
    if (!vhost_user_msg_recv(vu->fd, reply, fds, nfds, VHOST_USER_TIMEOUT_MS, errp)) {
        vu_mark_broken_locked(vu);
        return false;
    }
    return true;
}

bool vu_call_locked(VhostUser *vu, VhostUserMsg *m, VhostUserMsg *reply, uint32_t reply_size,
                    int *fds, unsigned *nfds, GError **errp)
{
    unsigned none = 0;

    if (!vu_send_locked(vu, m, NULL, 0, errp) ||
        !vu_recv_locked(vu, reply, m->request, fds, nfds ? nfds : &none, errp)) {
        return false;
    }
    if (!vhost_user_reply_check(reply, m->request, reply_size, errp)) {
        /* Out of step with the back-end: nothing after this can be trusted. */
        vu_mark_broken_locked(vu);
        for (unsigned i = 0; nfds && i < *nfds; i++) {
            close(fds[i]);
        }
        return false;
    }
    return true;
}

bool vu_send_ack_locked(VhostUser *vu, VhostUserMsg *m, const int *fds, unsigned nfds,
                        GError **errp)
{
    VhostUserMsg reply;

    if (!vu_has_protocol_feature_locked(vu, VHOST_USER_PROTOCOL_F_REPLY_ACK)) {
        return vu_send_locked(vu, m, fds, nfds, errp);
    }
    m->flags |= VHOST_USER_NEED_REPLY_MASK;
    if (!vu_send_locked(vu, m, fds, nfds, errp) ||
        !vu_recv_locked(vu, &reply, m->request, NULL, NULL, errp)) {
        return false;
    }
    if (!vhost_user_reply_check(&reply, m->request, sizeof(uint64_t), errp)) {
        vu_mark_broken_locked(vu);
        return false;
    }
    if (reply.payload.u64) {
        error_setg(errp, "vhost-user back-end '%s' refused %s (status %" PRIu64 ")", vu->name,
                   vhost_user_request_name(m->request), reply.payload.u64);
        return false;
    }
    return true;
}

static bool vu_get_u64_locked(VhostUser *vu, VhostUserRequest req, uint64_t *out,
                              GError **errp)
{
    VhostUserMsg m, reply;

    vhost_user_msg_init(&m, req, 0);
    if (!vu_call_locked(vu, &m, &reply, sizeof(uint64_t), NULL, NULL, errp)) {
        return false;
    }
    *out = reply.payload.u64;
    return true;
}

static bool vu_set_u64_locked(VhostUser *vu, VhostUserRequest req, uint64_t v, GError **errp)
{
    VhostUserMsg m;

    vhost_user_msg_init(&m, req, sizeof(uint64_t));
    m.payload.u64 = v;
    return vu_send_ack_locked(vu, &m, NULL, 0, errp);
}

static bool vu_vring_fd_locked(VhostUser *vu, VhostUserRequest req, unsigned i, int fd,
                               GError **errp)
{
    VhostUserMsg m;

    vhost_user_msg_init(&m, req, sizeof(uint64_t));
    m.payload.u64 = i;
    return vu_send_ack_locked(vu, &m, &fd, 1, errp);
}

static bool vu_vring_state_locked(VhostUser *vu, VhostUserRequest req, unsigned i,
                                  uint32_t num, GError **errp)
{
    VhostUserMsg m;

    vhost_user_msg_init(&m, req, sizeof(VhostUserVringState));
    m.payload.state.index = i;
    m.payload.state.num = num;
    return vu_send_ack_locked(vu, &m, NULL, 0, errp);
}

bool vu_set_features_locked(VhostUser *vu, GError **errp)
{
    uint64_t f = vu->acked_features;

    if (vu->backend_features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)) {
        f |= 1ULL << VHOST_USER_F_PROTOCOL_FEATURES;
    }
    if (vu->logging) {
        f |= 1ULL << VHOST_F_LOG_ALL;
    }
    return vu_set_u64_locked(vu, VHOST_USER_SET_FEATURES, f, errp);
}

/* Guest-physical [gpa, gpa + len) as godwit's virtual address, or 0. */
static uint64_t vu_gpa_to_hva(VhostUser *vu, uint64_t gpa, uint64_t len)
{
    return (uint64_t)(uintptr_t)machine_gpa_to_hva(vu->ms, gpa, len);
}

bool vu_set_vring_addr_locked(VhostUser *vu, unsigned i, GError **errp)
{
    VhostUserRing *r = &vu->rings[i];
    VhostUserMsg m;
    uint64_t n = r->num;
    uint64_t desc = vu_gpa_to_hva(vu, r->desc_gpa, 16 * n);
    uint64_t avail = vu_gpa_to_hva(vu, r->avail_gpa, 6 + 2 * n);
    uint64_t used = vu_gpa_to_hva(vu, r->used_gpa, 6 + 8 * n);

    if (!desc || !avail || !used) {
        error_setg(errp, "vhost-user '%s': ring %u lies outside guest RAM (desc 0x%" PRIx64
                   ", avail 0x%" PRIx64 ", used 0x%" PRIx64 ")", vu->name, i, r->desc_gpa,
                   r->avail_gpa, r->used_gpa);
        return false;
    }
    vhost_user_msg_init(&m, VHOST_USER_SET_VRING_ADDR, sizeof(VhostUserVringAddr));
    m.payload.addr = (VhostUserVringAddr){
        .index = i,
        .flags = vu->logging ? VHOST_VRING_F_LOG : 0,
        .desc_user_addr = desc,
        .used_user_addr = used,
        .avail_user_addr = avail,
        .log_guest_addr = r->used_gpa,
    };
    return vu_send_ack_locked(vu, &m, NULL, 0, errp);
}

/* ---- negotiation ---- */

static bool vu_negotiate_locked(VhostUser *vu, GError **errp)
{
    uint64_t features, again;

    vu->protocol_features = 0;
    if (!vu_get_u64_locked(vu, VHOST_USER_GET_FEATURES, &features, errp)) {
        return false;
    }
    if (features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)) {
        uint64_t theirs;
        if (!vu_get_u64_locked(vu, VHOST_USER_GET_PROTOCOL_FEATURES, &theirs, errp)) {
            return false;
        }
        /* Not acked: REPLY_ACK is only in force once both sides know about it. */
        VhostUserMsg m;
        vhost_user_msg_init(&m, VHOST_USER_SET_PROTOCOL_FEATURES, sizeof(uint64_t));
        m.payload.u64 = theirs & VU_PROTOCOL_FEATURES;
        if (!vu_send_locked(vu, &m, NULL, 0, errp)) {
            return false;
        }
        vu->protocol_features = theirs & VU_PROTOCOL_FEATURES;
    }
    VhostUserMsg owner;
    vhost_user_msg_init(&owner, VHOST_USER_SET_OWNER, 0);
    if (!vu_send_ack_locked(vu, &owner, NULL, 0, errp) ||
        !vu_get_u64_locked(vu, VHOST_USER_GET_FEATURES, &again, errp)) {
        return false;
    }
    if (again != features) {
        error_setg(errp, "vhost-user back-end '%s' changed its features from 0x%" PRIx64
                   " to 0x%" PRIx64 " after SET_OWNER", vu->name, features, again);
        return false;
    }
    /* A guest already using the device needs every bit it accepted. */
    uint64_t missing = vu->acked_features & ~features;
    if (missing) {
        error_setg(errp, "vhost-user back-end '%s' lacks virtio features 0x%" PRIx64
                   " the guest uses", vu->name, missing);
        return false;
    }
    for (unsigned i = 0; i < vu->nrings; i++) {
        if (!vu_vring_fd_locked(vu, VHOST_USER_SET_VRING_CALL, i, vu->call_fds[i], errp)) {
            return false;
        }
    }
    vu->backend_features = features;
    return true;
}

/* A new connection on @fd: negotiate and watch it. Lock held. */
static bool vu_adopt_locked(VhostUser *vu, int fd, GError **errp)
{
    vu->fd = fd;
    vu->broken = false;
    if (!vu_negotiate_locked(vu, errp)) {
        g_prefix_error(errp, "vhost-user back-end '%s': ", vu->name);
        close(vu->fd);
        vu->fd = -1;
        vu->broken = false;
        return false;
    }
    __atomic_store_n(&vu->connected, true, __ATOMIC_RELEASE);
    return true;
}

/* ---- connecting ---- */

static int vu_connect_unix(const char *path, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create a socket");
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg_errno(errp, errno, "Failed to connect to '%s'", path);
        close(fd);
        return -1;
    }
    /* Replies are awaited with poll and a deadline. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void vu_watch(VhostUser *vu)
{
    vu->watch_id = g_unix_fd_add(vu->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, vu_fd_event, vu);
}

/* Main thread, BQL held: a negotiated back-end is here (again). */
static void vu_now_connected(VhostUser *vu, bool first)
{
    vu_watch(vu);
    if (!first) {
        fprintf(stderr, "godwit: vhost-user back-end '%s' connected on %s\n", vu->name,
                vu->path);
    }
    vu->reported_down = false;
    if (vu->ops->connected) {
        vu->ops->connected(vu->opaque);
    }
}

/* Main thread: the connection is gone. Stop watching, close, tell the device, retry. */
static void vu_teardown(VhostUser *vu, const char *why)
{
    g_mutex_lock(&vu->lock);
    if (vu->fd < 0) {
        g_mutex_unlock(&vu->lock);
        return;
    }
    if (vu->watch_id) {
        g_source_remove(vu->watch_id);
        vu->watch_id = 0;
    }
    close(vu->fd);
    vu->fd = -1;
    vu->broken = false;
    __atomic_store_n(&vu->connected, false, __ATOMIC_RELEASE);
    vu->started = false;
    if (vu->logging) {
        /* It may have written a page without marking it yet (the write comes first). */
        __atomic_store_n(&vu->log_lost, true, __ATOMIC_RELEASE);
    }
    vu_postcopy_disconnected_locked(vu);
    g_mutex_unlock(&vu->lock);

    if (!vu->reported_down) {
        fprintf(stderr, "godwit: vhost-user back-end '%s' disconnected (%s); %s\n", vu->name,
                why, vu->server ? "waiting for it to connect again" :
                vu->reconnect ? "reconnecting" : "its network device stays stopped");
        vu->reported_down = true;
    }
    if (vu->ops->disconnected) {
        vu->ops->disconnected(vu->opaque);
    }
    if (vu->server && !vu->listen_id) {
        vu->listen_id = g_unix_fd_add(vu->listen_fd, G_IO_IN, vu_accept_event, vu);
    } else if (!vu->server && vu->reconnect && !vu->reconnect_id) {
        vu->reconnect_id = g_timeout_add_seconds(vu->reconnect, vu_reconnect_timer, vu);
    }
}

static gboolean vu_teardown_cb(gpointer opaque)
{
    vu_teardown(opaque, "it stopped answering");
    return G_SOURCE_REMOVE;
}

/*
 * The connection is readable or hung up while nobody waits for a reply:
 * EOF, or a message nobody asked for (we do not offer a back-end channel).
 */
static gboolean vu_fd_event(gint fd, GIOCondition cond, gpointer opaque)
{
    VhostUser *vu = opaque;
    uint8_t b;
    ssize_t r;

    g_mutex_lock(&vu->lock);
    if (fd != vu->fd) {
        g_mutex_unlock(&vu->lock);
        return G_SOURCE_REMOVE;
    }
    /* An exchange may just have taken what woke us: look again under the lock. */
    r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    int err = errno;
    g_mutex_unlock(&vu->lock);
    if (r < 0 && (err == EAGAIN || err == EINTR)) {
        return G_SOURCE_CONTINUE;
    }
    vu->watch_id = 0;
    vu_teardown(vu, r == 0 ? "connection closed" :
                r > 0 ? "it sent a message nobody asked for" : g_strerror(err));
    return G_SOURCE_REMOVE;
}

static gboolean vu_accept_event(gint lfd, GIOCondition cond, gpointer opaque)
{
    VhostUser *vu = opaque;
    g_autoptr(GError) err = NULL;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        return G_SOURCE_CONTINUE;
    }
    g_mutex_lock(&vu->lock);
    bool ok = vu->fd < 0 && vu_adopt_locked(vu, fd, &err);
    g_mutex_unlock(&vu->lock);
    if (!ok) {
        if (err) {
            fprintf(stderr, "godwit: %s\n", err->message);
        } else {
            close(fd);      /* one back-end at a time */
        }
        return G_SOURCE_CONTINUE;
    }
    vu->listen_id = 0;
    vu_now_connected(vu, false);
    return G_SOURCE_REMOVE;
}

static gboolean vu_reconnect_timer(gpointer opaque)
{
    VhostUser *vu = opaque;
    g_autoptr(GError) err = NULL;
    int fd = vu_connect_unix(vu->path, &err);

    if (fd < 0) {
        return G_SOURCE_CONTINUE;
    }
    g_mutex_lock(&vu->lock);
    bool ok = vu->fd < 0 && vu_adopt_locked(vu, fd, &err);
    g_mutex_unlock(&vu->lock);
    if (!ok) {
        if (err) {
            fprintf(stderr, "godwit: %s\n", err->message);
        } else {
            close(fd);
        }
        return G_SOURCE_CONTINUE;
    }
    vu->reconnect_id = 0;
    vu_now_connected(vu, false);
    return G_SOURCE_REMOVE;
}

/* Start-up: block until a back-end is connected and negotiated, as QEMU does. */
static bool vu_first_connection(VhostUser *vu, GError **errp)
{
    bool told = false;

    for (;;) {
        g_autoptr(GError) err = NULL;
        int fd;

        if (vu->server) {
            if (!told) {
                fprintf(stderr, "godwit: -netdev vhost-user,id=%s: waiting for the back-end "
                        "to connect on %s\n", vu->name, vu->path);
                told = true;
            }
            struct pollfd p = { .fd = vu->listen_fd, .events = POLLIN };
            if (poll(&p, 1, -1) < 0) {
                continue;
            }
            fd = accept4(vu->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0) {
                continue;
            }
        } else {
            fd = vu_connect_unix(vu->path, &err);
            if (fd < 0) {
                if (!vu->reconnect) {
                    g_propagate_prefixed_error(errp, g_steal_pointer(&err),
                                               "-netdev vhost-user,id=%s: ", vu->name);
                    return false;
                }
                if (!told) {
                    fprintf(stderr, "godwit: -netdev vhost-user,id=%s: %s; retrying every "
                            "%u s\n", vu->name, err->message, vu->reconnect);
                    told = true;
                }
                g_usleep((gulong)vu->reconnect * G_USEC_PER_SEC);
                continue;
            }
        }
        g_mutex_lock(&vu->lock);
        bool ok = vu_adopt_locked(vu, fd, &err);
        g_mutex_unlock(&vu->lock);
        if (ok) {
            return true;
        }
        if (vu->server || !vu->reconnect) {
            g_propagate_error(errp, g_steal_pointer(&err));
            return false;
        }
        fprintf(stderr, "godwit: %s\n", err->message);
        g_usleep((gulong)vu->reconnect * G_USEC_PER_SEC);
    }
}

/* ---- creation ---- */

static bool vu_build_mem_table(VhostUser *vu, GError **errp)
{
    Machine *ms = vu->ms;
    RAMBlock *rb = ms->ram;
    VhostUserMemory *mem = &vu->mem_table.payload.memory;

    if (rb->fd < 0 || !rb->shared) {
        error_setg(errp, "-netdev vhost-user,id=%s: the back-end must map guest RAM, but it "
                   "is not shared with a file descriptor (use -object memory-backend-memfd,"
                   "id=mem,size=%" PRIu64 "M,share=on -machine memory-backend=mem)", vu->name,
                   rb->size >> 20);
        return false;
    }
    vhost_user_msg_init(&vu->mem_table, VHOST_USER_SET_MEM_TABLE, 0);
    for (int i = 0; i < ms->nr_slots; i++) {
        MemSlot *s = &ms->slots[i];
        mem->regions[i] = (VhostUserMemRegion){
            .guest_phys_addr = s->gpa,
            .memory_size = s->size,
            .userspace_addr = (uint64_t)(uintptr_t)(rb->host + s->block_offset),
            .mmap_offset = rb->fd_offset + s->block_offset,
        };
        vu->mem_fds[i] = rb->fd;
        vu->region_offset[i] = s->block_offset;
        vu->log_bytes = MAX(vu->log_bytes, s->gpa + s->size);
    }
    mem->nregions = (uint32_t)ms->nr_slots;
    vu->mem_table.size = (uint32_t)(8 + sizeof(VhostUserMemRegion) * mem->nregions);
    /* One bit per page, whole 64-bit words (the log is read and cleared a word at a time). */
    vu->log_bytes = GW_ROUND_UP(GW_DIV_ROUND_UP(vu->log_bytes, VHOST_LOG_PAGE), 64) / 8;
    return true;
}

VhostUser *vhost_user_new(Machine *ms, const NetdevOpts *o, unsigned nrings,
                          const int *kick_fds, const int *call_fds,
                          const VhostUserDeviceOps *ops, void *opaque, GError **errp)
{
    VhostUser *vu = g_new0(VhostUser, 1);

    g_assert(nrings <= VHOST_USER_RINGS_MAX);
    vu->ms = ms;
    vu->name = g_strdup(o->id);
    vu->path = g_strdup(o->path);
    vu->server = o->server;
    vu->reconnect = o->reconnect;
    vu->nrings = nrings;
    memcpy(vu->kick_fds, kick_fds, sizeof(int) * nrings);
    memcpy(vu->call_fds, call_fds, sizeof(int) * nrings);
    vu->ops = ops;
    vu->opaque = opaque;
    vu->fd = vu->listen_fd = vu->log_fd = vu->pc_uffd = -1;
    g_mutex_init(&vu->lock);
    g_mutex_init(&vu->pc_lock);

    if (!vu_build_mem_table(vu, errp)) {
        goto fail;
    }
    if (vu->server) {
        vu->listen_fd = gw_listen_unix(vu->path, 1, errp);
        if (vu->listen_fd < 0) {
            g_prefix_error(errp, "-netdev vhost-user,id=%s: ", vu->name);
            goto fail;
        }
    }
    if (!vu_first_connection(vu, errp)) {
        goto fail;
    }
    vu->initial_features = vu->backend_features;
    vu_watch(vu);
    vu_log_register(vu);
    vu_postcopy_register(vu);
    return vu;

fail:
    if (vu->listen_fd >= 0) {
        close(vu->listen_fd);
    }
    g_free(vu->name);
    g_free(vu->path);
    g_free(vu);
    return NULL;
}

/* ---- the device's calls ---- */

const char *vhost_user_name(VhostUser *vu)
{
    return vu->name;
}

bool vhost_user_connected(VhostUser *vu)
{
    return __atomic_load_n(&vu->connected, __ATOMIC_ACQUIRE);
}

uint64_t vhost_user_backend_features(VhostUser *vu)
{
    g_mutex_lock(&vu->lock);
    uint64_t f = vu->connected ? vu->backend_features : 0;
    g_mutex_unlock(&vu->lock);
    return f;
}

uint64_t vhost_user_initial_features(VhostUser *vu)
{
    return vu->initial_features;
}

bool vhost_user_has_protocol_feature(VhostUser *vu, unsigned bit)
{
    g_mutex_lock(&vu->lock);
    bool has = vu_has_protocol_feature_locked(vu, bit);
    g_mutex_unlock(&vu->lock);
    return has;
}

bool vhost_user_started(VhostUser *vu)
{
    g_mutex_lock(&vu->lock);
    bool s = vu->started;
    g_mutex_unlock(&vu->lock);
    return s;
}

bool vhost_user_may_start(VhostUser *vu)
{
    g_mutex_lock(&vu->lock);
    /* In a destination's postcopy only a back-end that listened can take the rings. */
    bool may = vu->connected && (!vu->pc_active || vu->pc_listening);
    g_mutex_unlock(&vu->lock);
    return may;
}

static bool vu_start_rings_locked(VhostUser *vu, GError **errp);

static bool vu_start_locked(VhostUser *vu, uint64_t features, const VhostUserRing *rings,
                            GError **errp)
{
    memcpy(vu->rings, rings, sizeof(VhostUserRing) * vu->nrings);
    vu->acked_features = features;
    if (!vu_set_features_locked(vu, errp)) {
        return false;
    }
    if (vu->pc_listening) {
        if (!vu_postcopy_set_mem_table_locked(vu, errp)) {
            return false;
        }
        /*
         * After our ack the back-end registers its mapping with its
         * userfaultfd. One that pre-faulted guest RAM (mlockall) gets EEXIST
         * there and drops the connection, which the next message finds.
         */
        return vu_start_rings_locked(vu, errp);
    }
    VhostUserMsg m = vu->mem_table;
    vu_postcopy_drop_unused_locked(vu);
    return vu_send_ack_locked(vu, &m, vu->mem_fds, m.payload.memory.nregions, errp) &&
           vu_start_rings_locked(vu, errp);
}

/* The rings, the log, enabling: the part of a start after the memory table. */
static bool vu_start_rings_locked(VhostUser *vu, GError **errp)
{
    bool proto = vu->backend_features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);

    for (unsigned i = 0; i < vu->nrings; i++) {
        const VhostUserRing *r = &vu->rings[i];
        if (!r->enabled) {
            continue;
        }
        if (!vu_vring_state_locked(vu, VHOST_USER_SET_VRING_NUM, i, r->num, errp) ||
            !vu_vring_state_locked(vu, VHOST_USER_SET_VRING_BASE, i, r->base, errp) ||
            !vu_set_vring_addr_locked(vu, i, errp) ||
            !vu_vring_fd_locked(vu, VHOST_USER_SET_VRING_KICK, i, vu->kick_fds[i], errp) ||
            !vu_vring_fd_locked(vu, VHOST_USER_SET_VRING_CALL, i, vu->call_fds[i], errp)) {
            return false;
        }
    }
    if (vu->logging && !vu_log_send_base_locked(vu, errp)) {
        return false;
    }
    /* With protocol features rings start disabled (without them, enabled). */
    for (unsigned i = 0; proto && i < vu->nrings; i++) {
        if (vu->rings[i].enabled &&
            !vu_vring_state_locked(vu, VHOST_USER_SET_VRING_ENABLE, i, 1, errp)) {
            return false;
        }
    }
    vu->started = true;
    return true;
}

bool vhost_user_start(VhostUser *vu, uint64_t features, const VhostUserRing *rings,
                      GError **errp)
{
    g_mutex_lock(&vu->lock);
    bool ok;
    if (!vu->connected || vu->broken) {
        error_setg(errp, "vhost-user back-end '%s' is not connected", vu->name);
        ok = false;
    } else {
        ok = vu->started || vu_start_locked(vu, features, rings, errp);
    }
    g_mutex_unlock(&vu->lock);
    if (ok) {
        /* Buffers posted while nobody served the rings: make sure the back-end looks. */
        for (unsigned i = 0; i < vu->nrings; i++) {
            uint64_t one = 1;
            if (rings[i].enabled && write(vu->kick_fds[i], &one, sizeof(one)) < 0) {
                /* EAGAIN: a kick is pending already. */
            }
        }
    }
    return ok;
}

bool vhost_user_stop(VhostUser *vu, uint16_t *bases, GError **errp)
{
    bool ok = true;

    g_mutex_lock(&vu->lock);
    bool proto = vu->backend_features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
    for (unsigned i = 0; i < vu->nrings; i++) {
        bases[i] = vu->rings[i].base;
    }
    if (!vu->started) {
        g_mutex_unlock(&vu->lock);
        return true;
    }
    vu->started = false;
    for (unsigned i = 0; ok && i < vu->nrings; i++) {
        VhostUserRing *r = &vu->rings[i];
        VhostUserMsg m, reply;
        if (!r->enabled) {
            continue;
        }
        if (proto && !vu_vring_state_locked(vu, VHOST_USER_SET_VRING_ENABLE, i, 0, errp)) {
            ok = false;
            break;
        }
        vhost_user_msg_init(&m, VHOST_USER_GET_VRING_BASE, sizeof(VhostUserVringState));
        m.payload.state.index = i;
        if (!vu_call_locked(vu, &m, &reply, sizeof(VhostUserVringState), NULL, NULL, errp)) {
            ok = false;
            break;
        }
        if (reply.payload.state.index != i || reply.payload.state.num > UINT16_MAX) {
            error_setg(errp, "vhost-user back-end '%s' answered GET_VRING_BASE for ring %u "
                       "with ring %u, index %u", vu->name, i, reply.payload.state.index,
                       reply.payload.state.num);
            vu_mark_broken_locked(vu);
            ok = false;
            break;
        }
        bases[i] = r->base = (uint16_t)reply.payload.state.num;
    }
    if (!ok) {
        /* Where the back-end stopped is unknown: the connection is given up. */
        vu_mark_broken_locked(vu);
    }
    g_mutex_unlock(&vu->lock);
    return ok;
}

bool vhost_user_send_rarp(VhostUser *vu, const uint8_t mac[6], GError **errp)
{
    VhostUserMsg m;
    bool ok;

    g_mutex_lock(&vu->lock);
    if (!vu->connected) {
        error_setg(errp, "vhost-user back-end '%s' is not connected", vu->name);
        ok = false;
    } else if (!vu_has_protocol_feature_locked(vu, VHOST_USER_PROTOCOL_F_RARP)) {
        error_setg(errp, "vhost-user back-end '%s' lacks the RARP protocol feature", vu->name);
        ok = false;
    } else {
        vhost_user_msg_init(&m, VHOST_USER_SEND_RARP, sizeof(uint64_t));
        memcpy(&m.payload.u64, mac, 6);
        ok = vu_send_ack_locked(vu, &m, NULL, 0, errp);
    }
    g_mutex_unlock(&vu->lock);
    return ok;
}
