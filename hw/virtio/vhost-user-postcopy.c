/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user in a destination's postcopy: the PAGEFAULT probe, ADVISE (the
 * back-end's userfaultfd comes back), LISTEN, the postcopy memory table
 * (the back-end's own addresses), and the callbacks the fault thread uses
 * to turn a back-end fault into a page request and to wake the back-end
 * once the page is placed; POSTCOPY_END when every page has arrived.
 * Sequence: FACTS.md 4.4; threads and locks: docs/devel/vhost-user.md.
 */
#include "qemu/osdep.h"
#include "hw/virtio/vhost-user-internal.h"
#include "migration/postcopy-notify.h"
#include "migration/postcopy-ram.h"
#include "sysemu/main-loop.h"
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

/* ---- the fault thread's and the placing thread's callbacks (pc_lock only) ---- */

static bool vu_pc_translate(void *opaque, uint64_t addr, uint64_t *offset)
{
    VhostUser *vu = opaque;
    const VhostUserMemory *mem = &vu->mem_table.payload.memory;
    bool found = false;

    g_mutex_lock(&vu->pc_lock);
    for (unsigned i = 0; i < vu->pc_nregions && !found; i++) {
        uint64_t base = vu->pc_client_base[i], size = mem->regions[i].memory_size;
        if (addr >= base && addr - base < size) {
            *offset = vu->region_offset[i] + (addr - base);
            found = true;
        }
    }
    if (found) {
        /* Timed until the wake that resolves it (several faults on a page: the first). */
        gpointer key = GSIZE_TO_POINTER(GW_ROUND_DOWN(*offset, GW_PAGE_SIZE));
        if (!g_hash_table_contains(vu->pc_waiting, key)) {
            g_hash_table_insert(vu->pc_waiting, key,
                                GSIZE_TO_POINTER((gsize)g_get_monotonic_time()));
        }
    }
    g_mutex_unlock(&vu->pc_lock);
    __atomic_fetch_add(&vu->pc_faults, 1, __ATOMIC_RELAXED);
    return found;
}

static void vu_pc_wake(void *opaque, uint64_t offset, uint64_t len)
{
    VhostUser *vu = opaque;
    const VhostUserMemory *mem = &vu->mem_table.payload.memory;

    g_mutex_lock(&vu->pc_lock);
    for (unsigned i = 0; i < vu->pc_nregions; i++) {
        uint64_t start = vu->region_offset[i], size = mem->regions[i].memory_size;
        if (offset >= start && offset - start < size && vu->pc_uffd >= 0) {
            struct uffdio_range r = {
                .start = vu->pc_client_base[i] + (offset - start),
                .len = MIN(len, size - (offset - start)),
            };
            /*
             * Errors are harmless: ENOENT before the back-end registered its
             * mapping (nobody can be asleep there yet), or a back-end gone.
             */
            ioctl(vu->pc_uffd, UFFDIO_WAKE, &r);
        }
    }
    for (uint64_t p = offset; g_hash_table_size(vu->pc_waiting) && p < offset + len;
         p += GW_PAGE_SIZE) {
        gpointer t0;
        if (g_hash_table_steal_extended(vu->pc_waiting, GSIZE_TO_POINTER(p), NULL, &t0)) {
            uint32_t us = (uint32_t)MIN(g_get_monotonic_time() - (int64_t)GPOINTER_TO_SIZE(t0),
                                        (int64_t)UINT32_MAX);
            g_array_append_val(vu->pc_latency_us, us);
        }
    }
    g_mutex_unlock(&vu->pc_lock);
}

static int cmp_u32(gconstpointer a, gconstpointer b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* p-th percentile (0..100) of the back-end's fault latencies, us. pc_lock held. */
static uint32_t vu_pc_percentile_locked(VhostUser *vu, unsigned p)
{
    GArray *a = vu->pc_latency_us;

    if (!a->len) {
        return 0;
    }
    g_array_sort(a, cmp_u32);
    return g_array_index(a, uint32_t, MIN((size_t)a->len * p / 100, (size_t)a->len - 1));
}

static gboolean vu_pc_restart_device(gpointer opaque)
{
    VhostUser *vu = opaque;

    if (vhost_user_connected(vu) && vu->ops->connected) {
        vu->ops->connected(vu->opaque);
    }
    return G_SOURCE_REMOVE;
}

/* Every page arrived (listen thread, no BQL): POSTCOPY_END, then forget the fd. Lock held. */
static void vu_pc_end_locked(VhostUser *vu, PostcopyIncoming *pi)
{
    g_autoptr(GError) err = NULL;

    if (vu->pc_backend_listening) {
        /* For the operator and the tests: what the back-end's faults cost. */
        g_mutex_lock(&vu->pc_lock);
        fprintf(stderr, "godwit: vhost-user back-end '%s': postcopy ended: %" PRIu64
                " page faults, %u pages woken after %u us (p50), %u us (p99), %u still "
                "waiting\n", vu->name, __atomic_load_n(&vu->pc_faults, __ATOMIC_RELAXED),
                vu->pc_latency_us->len, vu_pc_percentile_locked(vu, 50),
                vu_pc_percentile_locked(vu, 99), g_hash_table_size(vu->pc_waiting));
        g_mutex_unlock(&vu->pc_lock);
    }

    if (vu->pc_backend_listening && vu->connected) {
        VhostUserMsg m, reply;
        vhost_user_msg_init(&m, VHOST_USER_POSTCOPY_END, 0);
        m.flags |= VHOST_USER_NEED_REPLY_MASK;
        if (!vu_call_locked(vu, &m, &reply, sizeof(uint64_t), NULL, NULL, &err)) {
            fprintf(stderr, "godwit: vhost-user back-end '%s': %s\n", vu->name, err->message);
        } else if (reply.payload.u64) {
            fprintf(stderr, "godwit: vhost-user back-end '%s' refused POSTCOPY_END (status %"
                    PRIu64 ")\n", vu->name, reply.payload.u64);
        }
    }
    vu->pc_listening = false;
    vu->pc_backend_listening = false;
    vu->pc_active = false;
    vu->pc = NULL;
    g_mutex_lock(&vu->pc_lock);
    if (vu->pc_uffd >= 0) {
        close(vu->pc_uffd);
        vu->pc_uffd = -1;
    }
    vu->pc_nregions = 0;
    g_mutex_unlock(&vu->pc_lock);
    if (vu->connected && !vu->started) {
        /* A device held back during postcopy (a back-end that came or failed late). */
        main_loop_schedule(vu_pc_restart_device, vu);
    }
}

static const PostcopyExternalOps vu_pc_ops = {
    .translate = vu_pc_translate,
    .wake = vu_pc_wake,
};

/* ---- the notifier (incoming thread, or the main thread for PROBE) ---- */

static bool vu_pc_capable_locked(VhostUser *vu, GError **errp)
{
    if (!vu->connected) {
        error_setg(errp, "vhost-user back-end '%s' is not connected, so it cannot take part "
                   "in postcopy", vu->name);
        return false;
    }
    if (!vu_has_protocol_feature_locked(vu, VHOST_USER_PROTOCOL_F_PAGEFAULT)) {
        error_setg(errp, "vhost-user backend not capable of postcopy");
        return false;
    }
    return true;
}

static bool vu_pc_advise_locked(VhostUser *vu, GError **errp)
{
    VhostUserMsg m, reply;
    int fd = -1;
    unsigned nfds = 1;

    if (!vu_pc_capable_locked(vu, errp)) {
        return false;
    }
    vhost_user_msg_init(&m, VHOST_USER_POSTCOPY_ADVISE, 0);
    if (!vu_call_locked(vu, &m, &reply, 0, &fd, &nfds, errp)) {
        return false;
    }
    if (nfds != 1) {
        error_setg(errp, "vhost-user back-end '%s' answered POSTCOPY_ADVISE without its "
                   "userfaultfd", vu->name);
        return false;
    }
    /* Read by our fault thread next to our own fd: never block it. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    g_mutex_lock(&vu->pc_lock);
    if (vu->pc_uffd >= 0) {
        close(vu->pc_uffd);           /* a previous ADVISE that no postcopy followed */
    }
    vu->pc_uffd = fd;
    g_mutex_unlock(&vu->pc_lock);
    return true;
}

static void vu_pc_listen_locked(VhostUser *vu, PostcopyIncoming *pi)
{
    g_autoptr(GError) err = NULL;
    VhostUserMsg m, reply;

    vu->pc_active = true;
    vu->pc = pi;
    if (!vu->connected || vu->pc_uffd < 0) {
        fprintf(stderr, "godwit: vhost-user back-end '%s' is not ready for postcopy; its "
                "network device starts once postcopy has ended\n", vu->name);
        return;
    }
    if (!postcopy_register_external_uffd_ops(pi, vu->pc_uffd, &vu_pc_ops, vu, &err)) {
        goto fail;
    }
    /* Always awaited, REPLY_ACK or not. */
    vhost_user_msg_init(&m, VHOST_USER_POSTCOPY_LISTEN, 0);
    m.flags |= VHOST_USER_NEED_REPLY_MASK;
    if (!vu_call_locked(vu, &m, &reply, sizeof(uint64_t), NULL, NULL, &err)) {
        goto fail;
    }
    vu->pc_backend_listening = true;
    if (reply.payload.u64) {
        error_setg(&err, "it refused POSTCOPY_LISTEN (status %" PRIu64 ")", reply.payload.u64);
        goto fail;
    }
    vu->pc_listening = true;
    return;
fail:
    /* The guest must not pay for it: the NIC waits for the end of postcopy instead. */
    fprintf(stderr, "godwit: vhost-user back-end '%s' cannot take part in postcopy (%s); its "
            "network device starts once postcopy has ended\n", vu->name, err->message);
}

static bool vu_pc_notify(void *opaque, PostcopyNotifyEvent ev, PostcopyIncoming *pi,
                         GError **errp)
{
    VhostUser *vu = opaque;
    bool ok = true;

    g_mutex_lock(&vu->lock);
    switch (ev) {
    case POSTCOPY_NOTIFY_PROBE:
        ok = vu_pc_capable_locked(vu, errp);
        break;
    case POSTCOPY_NOTIFY_INBOUND_ADVISE:
        ok = vu_pc_advise_locked(vu, errp);
        break;
    case POSTCOPY_NOTIFY_INBOUND_LISTEN:
        vu_pc_listen_locked(vu, pi);
        break;
    case POSTCOPY_NOTIFY_INBOUND_END:
        vu_pc_end_locked(vu, pi);
        break;
    }
    g_mutex_unlock(&vu->lock);
    return ok;
}

void vu_postcopy_register(VhostUser *vu)
{
    vu->pc_waiting = g_hash_table_new(g_direct_hash, g_direct_equal);
    vu->pc_latency_us = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    postcopy_add_notifier(vu_pc_notify, vu);
}

/* ---- the postcopy memory table (lock held, device start) ---- */

/* The exchange itself: table, the back-end's addresses back, our ack. */
static bool vu_pc_mem_table_exchange_locked(VhostUser *vu, GError **errp)
{
    VhostUserMsg m = vu->mem_table, reply, ack;
    uint64_t bases[VHOST_USER_REGIONS_MAX];
    unsigned n = m.payload.memory.nregions;

    /* Not need_reply: the reply is the table with the back-end's own addresses. */
    if (!vu_send_locked(vu, &m, vu->mem_fds, n, errp)) {
        return false;
    }
    reply.request = m.request;
    if (!vhost_user_msg_recv(vu->fd, &reply, NULL, NULL, VHOST_USER_TIMEOUT_MS, errp)) {
        vu_mark_broken_locked(vu);
        return false;
    }
    if (!vhost_user_parse_postcopy_mem_reply(&m, &reply, bases, errp)) {
        vu_mark_broken_locked(vu);
        return false;
    }
    /* Faults may come as soon as the back-end has our ack: translate from now on. */
    g_mutex_lock(&vu->pc_lock);
    memcpy(vu->pc_client_base, bases, sizeof(bases[0]) * n);
    vu->pc_nregions = n;
    g_mutex_unlock(&vu->pc_lock);
    vhost_user_msg_init(&ack, VHOST_USER_SET_MEM_TABLE, sizeof(uint64_t));
    ack.payload.u64 = 0;
    return vu_send_locked(vu, &ack, NULL, 0, errp);
}

bool vu_postcopy_set_mem_table_locked(VhostUser *vu, GError **errp)
{
    g_autoptr(GError) err = NULL;

    /*
     * A back-end that locks its memory (mlockall) populates guest RAM when
     * it maps it: pages that have not arrived become zero pages in the
     * shared file, which nobody would ever fault on. Hold placement while
     * it maps, then make whatever it populated missing again.
     */
    postcopy_placement_hold(vu->pc);
    bool ok = vu_pc_mem_table_exchange_locked(vu, errp);
    int64_t dropped = ok ? postcopy_drop_unreceived(vu->pc, &err) : 0;
    postcopy_placement_release(vu->pc);
    if (!ok) {
        return false;
    }
    if (dropped < 0) {
        g_propagate_error(errp, g_steal_pointer(&err));
        return false;
    }
    if (dropped > 0) {
        /* Its faults cannot be taken: its rings wait for the end of postcopy. */
        vu->pc_listening = false;
        error_setg(errp, "vhost-user back-end '%s' pre-faulted guest RAM when it mapped it "
                   "(e.g. with mlockall), so it cannot take postcopy faults: its network "
                   "device stays stopped until postcopy ends (%" PRId64 " pages it populated "
                   "before they arrived were dropped again)", vu->name, dropped);
        return false;
    }
    return true;
}

void vu_postcopy_disconnected_locked(VhostUser *vu)
{
    /*
     * Its faults end with it. A new connection knows nothing of ADVISE and
     * LISTEN, so it waits for the end of postcopy (pc_active stays set).
     */
    vu->pc_listening = false;
    vu->pc_backend_listening = false;
    g_mutex_lock(&vu->pc_lock);
    vu->pc_nregions = 0;
    g_mutex_unlock(&vu->pc_lock);
}

void vu_postcopy_drop_unused_locked(VhostUser *vu)
{
    /* The device starts normally: an ADVISE without postcopy left its fd with us. */
    if (!vu->pc_active && vu->pc_uffd >= 0) {
        g_mutex_lock(&vu->pc_lock);
        close(vu->pc_uffd);
        vu->pc_uffd = -1;
        g_mutex_unlock(&vu->pc_lock);
    }
}
