/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-net-pci with a vhost-user back-end: the features and
 * configuration the guest sees (MAC, link status), starting the back-end
 * when the driver and the VM both run it and stopping it otherwise, the
 * interrupt path (call eventfds polled by the main loop set ISR and raise
 * INTx), the "virtio-net" migration record, and self-announcement after an
 * incoming migration.
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/virtio/vhost-user.h"
#include "hw/virtio/vhost-user-msg.h"
#include "hw/virtio/virtio-net.h"
#include "hw/virtio/virtio-pci.h"
#include "migration/misc.h"
#include "migration/register.h"
#include "sysemu/kvm.h"
#include "sysemu/runstate.h"
#include <glib-unix.h>
#include <sys/eventfd.h>

#define VIRTIO_ID_NET              1
#define PCI_CLASS_NETWORK_ETHERNET 0x020000

/* virtio-net feature bits. */
#define VIRTIO_NET_F_CSUM          0
#define VIRTIO_NET_F_GUEST_CSUM    1
#define VIRTIO_NET_F_MAC           5
#define VIRTIO_NET_F_GUEST_TSO4    7
#define VIRTIO_NET_F_GUEST_TSO6    8
#define VIRTIO_NET_F_GUEST_ECN     9
#define VIRTIO_NET_F_GUEST_UFO     10
#define VIRTIO_NET_F_HOST_TSO4     11
#define VIRTIO_NET_F_HOST_TSO6     12
#define VIRTIO_NET_F_HOST_ECN      13
#define VIRTIO_NET_F_HOST_UFO      14
#define VIRTIO_NET_F_MRG_RXBUF     15
#define VIRTIO_NET_F_STATUS        16
#define VIRTIO_NET_S_LINK_UP       1

#define BIT(n) (1ULL << (n))

/* Bits the back-end implements: offered only if it does, and passed on in SET_FEATURES. */
#define NET_BACKEND_FEATURES \
    (BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) | \
     BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) | BIT(VIRTIO_NET_F_GUEST_UFO) | \
     BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) | BIT(VIRTIO_NET_F_HOST_ECN) | \
     BIT(VIRTIO_NET_F_HOST_UFO) | BIT(VIRTIO_NET_F_MRG_RXBUF) | \
     BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1))
/* Bits the device model itself provides. */
#define NET_DEVICE_FEATURES (BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS))

#define NET_RXQ 0
#define NET_TXQ 1
#define NET_NQUEUES 2
#define NET_DEVCFG_LEN 10          /* mac[6], status, max_virtqueue_pairs */
#define NET_RECORD_VERSION 1

struct VirtIONetPCI {
    VirtIOPCI vp;
    Machine *ms;
    char *name;                     /* -device id, or "virtio-net-pci" */
    VhostUser *vu;
    uint8_t mac[6];
    uint16_t link_status;
    uint64_t offered;               /* features offered to the guest (fixed at creation) */
    int call_fds[NET_NQUEUES];
    bool vm_running;                /* BQL */
    bool started;                   /* the rings are with the back-end (BQL) */
    bool announced;                 /* the post-migration announcement began */
    uint64_t announce_left;
    bool rarp_warned;
};

static VirtIONetPCI *net_of(VirtIOPCI *vp)
{
    return vp->opaque;
}

static void net_update_config(VirtIONetPCI *n)
{
    memcpy(n->vp.devcfg, n->mac, 6);
    n->vp.devcfg[6] = (uint8_t)n->link_status;
    n->vp.devcfg[7] = (uint8_t)(n->link_status >> 8);
    n->vp.devcfg[8] = 1;            /* max_virtqueue_pairs (meaningful with MQ only) */
    n->vp.devcfg[9] = 0;
}

/* ---- starting and stopping the back-end ---- */

/* The next available index the back-end would have reached: the used ring's index. */
static uint16_t net_used_idx(VirtIONetPCI *n, unsigned q)
{
    uint16_t idx = n->vp.vq[q].last_avail;
    g_autoptr(GError) err = NULL;

    if (!machine_ram_read(n->ms, n->vp.vq[q].used + 2, &idx, sizeof(idx), &err)) {
        return n->vp.vq[q].last_avail;
    }
    return idx;
}

static void net_stop(VirtIONetPCI *n)
{
    uint16_t bases[NET_NQUEUES];
    g_autoptr(GError) err = NULL;

    if (!n->started) {
        return;
    }
    n->started = false;
    if (vhost_user_stop(n->vu, bases, &err)) {
        for (unsigned q = 0; q < NET_NQUEUES; q++) {
            n->vp.vq[q].last_avail = bases[q];
        }
        return;
    }
    /* The back-end did not say where it stopped: resume from what it completed. */
    fprintf(stderr, "godwit: %s: %s; the rings resume from their used index\n", n->name,
            err->message);
    for (unsigned q = 0; q < NET_NQUEUES; q++) {
        if (n->vp.vq[q].enabled) {
            n->vp.vq[q].last_avail = net_used_idx(n, q);
        }
    }
}

static bool net_should_run(VirtIONetPCI *n)
{
    uint8_t st = n->vp.status;

    return (st & VIRTIO_CONFIG_S_DRIVER_OK) &&
           !(st & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)) &&
           n->vm_running && vhost_user_may_start(n->vu);
}

static void net_start(VirtIONetPCI *n)
{
    VhostUserRing rings[NET_NQUEUES];
    g_autoptr(GError) err = NULL;

    for (unsigned q = 0; q < NET_NQUEUES; q++) {
        VirtQueueConf *vq = &n->vp.vq[q];
        bool ok = vq->enabled && vq->size && !(vq->size & (vq->size - 1));
        if (vq->enabled && !ok) {
            fprintf(stderr, "godwit: %s: queue %u has size %u (a power of two is needed)\n",
                    n->name, q, vq->size);
            virtio_pci_set_needs_reset(&n->vp);
            return;
        }
        rings[q] = (VhostUserRing){
            .enabled = vq->enabled, .num = vq->size, .base = vq->last_avail,
            .desc_gpa = vq->desc, .avail_gpa = vq->avail, .used_gpa = vq->used,
        };
    }
    if (vhost_user_start(n->vu, n->vp.driver_features & NET_BACKEND_FEATURES, rings, &err)) {
        n->started = true;
        return;
    }
    fprintf(stderr, "godwit: %s: cannot start the vhost-user back-end: %s\n", n->name,
            err->message);
    /*
     * A refusal leaves the connection up: only a reset can help. A lost
     * connection comes back; a back-end held back during postcopy starts
     * when it ends.
     */
    if (vhost_user_connected(n->vu) && vhost_user_may_start(n->vu)) {
        virtio_pci_set_needs_reset(&n->vp);
    }
}

/* Bring the back-end in line with the driver, the run state and the connection. BQL held. */
static void net_update(VirtIONetPCI *n)
{
    bool run = net_should_run(n);

    if (run && !n->started) {
        net_start(n);
    } else if (!run && n->started) {
        net_stop(n);
    }
}

/* ---- the transport's callbacks (vCPU threads, BQL) ---- */

static uint64_t net_get_features(VirtIOPCI *vp)
{
    return net_of(vp)->offered;
}

static void net_status_changed(VirtIOPCI *vp, uint8_t old)
{
    net_update(net_of(vp));
}

static void net_reset(VirtIOPCI *vp)
{
    VirtIONetPCI *n = net_of(vp);

    net_stop(n);
}

static const VirtioPCIOps net_vp_ops = {
    .get_features = net_get_features,
    .status_changed = net_status_changed,
    .reset = net_reset,
};

/* ---- the back-end's calls: interrupts (main loop, BQL) ---- */

static gboolean net_call_event(gint fd, GIOCondition cond, gpointer opaque)
{
    VirtIONetPCI *n = opaque;
    uint64_t v;

    if (read(fd, &v, sizeof(v)) != sizeof(v)) {
        return G_SOURCE_CONTINUE;
    }
    if (n->vp.status & VIRTIO_CONFIG_S_DRIVER_OK) {
        virtio_pci_notify_queue(&n->vp, fd == n->call_fds[NET_RXQ] ? NET_RXQ : NET_TXQ);
    }
    return G_SOURCE_CONTINUE;
}

static void net_link_set(VirtIONetPCI *n, bool up)
{
    uint16_t st = up ? VIRTIO_NET_S_LINK_UP : 0;

    if (n->link_status != st) {
        n->link_status = st;
        net_update_config(n);
        if (n->vp.status & VIRTIO_CONFIG_S_DRIVER_OK) {
            virtio_pci_notify_config(&n->vp);
        }
    }
}

static void net_backend_connected(void *opaque)
{
    VirtIONetPCI *n = opaque;

    net_link_set(n, true);
    net_update(n);
}

static void net_backend_disconnected(void *opaque)
{
    VirtIONetPCI *n = opaque;

    if (n->started) {
        n->started = false;
        for (unsigned q = 0; q < NET_NQUEUES; q++) {
            if (n->vp.vq[q].enabled) {
                n->vp.vq[q].last_avail = net_used_idx(n, q);
            }
        }
    }
    net_link_set(n, false);
}

static const VhostUserDeviceOps net_vu_ops = {
    .connected = net_backend_connected,
    .disconnected = net_backend_disconnected,
};

/* ---- self-announcement after an incoming migration (main loop) ---- */

static gboolean net_announce_round(gpointer opaque)
{
    VirtIONetPCI *n = opaque;
    MigrationAnnounceParams p;
    g_autoptr(GError) err = NULL;

    if (!n->announce_left) {
        return G_SOURCE_REMOVE;
    }
    if (!vhost_user_send_rarp(n->vu, n->mac, &err) && !n->rarp_warned) {
        n->rarp_warned = true;
        fprintf(stderr, "godwit: %s: cannot announce the MAC after the migration: %s\n",
                n->name, err->message);
    }
    if (--n->announce_left) {
        migration_announce_params(&p);
        uint64_t delay = p.initial + (p.rounds - n->announce_left - 1) * p.step;
        g_timeout_add((guint)MIN(delay, p.max), net_announce_round, n);
    }
    return G_SOURCE_REMOVE;
}

static void net_announce(VirtIONetPCI *n)
{
    MigrationAnnounceParams p;

    migration_announce_params(&p);
    n->announced = true;
    n->announce_left = p.rounds;
    net_announce_round(n);
}

/* ---- the VM's run state (any thread calling vm_start/vm_stop, BQL) ---- */

static void net_vm_state(void *opaque, bool running, RunState state)
{
    VirtIONetPCI *n = opaque;

    n->vm_running = running;
    net_update(n);
    /* A guest that arrived by migration tells the network where its MAC is now. */
    if (running && n->ms->incoming && !n->announced) {
        net_announce(n);
    }
}

/* ---- migration record "virtio-net" ---- */

static bool net_save(void *opaque, GByteArray *out, GError **errp)
{
    VirtIONetPCI *n = opaque;
    uint8_t tail[8];

    /* The VM is stopped, so is the back-end: last_avail is where it stopped. */
    virtio_pci_save(&n->vp, out);
    memcpy(tail, n->mac, 6);
    tail[6] = (uint8_t)n->link_status;
    tail[7] = (uint8_t)(n->link_status >> 8);
    g_byte_array_append(out, tail, sizeof(tail));
    return true;
}

static bool net_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                     GError **errp)
{
    VirtIONetPCI *n = opaque;
    size_t used;

    if (version != NET_RECORD_VERSION) {
        error_setg(errp, "%s: state version %u is not supported (expected %d)", n->name,
                   version, NET_RECORD_VERSION);
        return false;
    }
    if (!virtio_pci_load(&n->vp, buf, len, &used, errp)) {
        return false;
    }
    if (len - used != 8) {
        error_setg(errp, "%s: state has %zu bytes after the transport's, expected 8", n->name,
                   len - used);
        return false;
    }
    uint64_t extra = n->vp.driver_features & ~n->offered;
    if (extra) {
        error_setg(errp, "%s: the guest uses virtio features 0x%" PRIx64 " that this "
                   "destination (its vhost-user back-end) does not offer", n->name, extra);
        return false;
    }
    for (unsigned q = 0; q < NET_NQUEUES; q++) {
        VirtQueueConf *vq = &n->vp.vq[q];
        uint64_t sz = vq->size;
        if (vq->enabled && (n->vp.status & VIRTIO_CONFIG_S_DRIVER_OK) &&
            (!machine_gpa_to_hva(n->ms, vq->desc, 16 * sz) ||
             !machine_gpa_to_hva(n->ms, vq->avail, 6 + 2 * sz) ||
             !machine_gpa_to_hva(n->ms, vq->used, 6 + 8 * sz))) {
            error_setg(errp, "%s: queue %u's rings lie outside guest RAM", n->name, q);
            return false;
        }
    }
    memcpy(n->mac, buf + used, 6);
    n->link_status = (uint16_t)(buf[used + 6] | buf[used + 7] << 8);
    if (!vhost_user_connected(n->vu)) {
        n->link_status = 0;
    }
    net_update_config(n);
    return true;
}

static void net_post_load(void *opaque)
{
    VirtIONetPCI *n = opaque;

    /* Started by the VM start that follows (in postcopy: after RUN). */
    virtio_pci_post_load(&n->vp);
}

/* ---- creation ---- */

static bool net_ioeventfd(void *opaque, int fd, uint64_t gpa, bool assign, GError **errp)
{
    VirtIONetPCI *n = opaque;
    return kvm_set_ioeventfd_mmio(n->ms, fd, gpa, assign, errp);
}

VirtIONetPCI *virtio_net_pci_create(Machine *ms, PCIBus *bus, const NetDeviceOpts *d,
                                    const NetdevOpts *nd, GError **errp)
{
    VirtIONetPCI *n = g_new0(VirtIONetPCI, 1);
    const uint16_t qmax[NET_NQUEUES] = { d->rx_queue_size, d->tx_queue_size };
    int kick_fds[NET_NQUEUES];

    n->ms = ms;
    n->name = g_strdup_printf("virtio-net-pci '%s'", d->id ? d->id : d->netdev);
    memcpy(n->mac, d->mac, 6);
    n->link_status = VIRTIO_NET_S_LINK_UP;
    if (!virtio_pci_init(&n->vp, "virtio-net-pci", VIRTIO_ID_NET, PCI_CLASS_NETWORK_ETHERNET,
                         NET_NQUEUES, qmax, NET_DEVCFG_LEN, &net_vp_ops, n, errp)) {
        return NULL;
    }
    for (unsigned q = 0; q < NET_NQUEUES; q++) {
        n->call_fds[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (n->call_fds[q] < 0) {
            error_setg_errno(errp, errno, "%s: cannot create a call eventfd", n->name);
            return NULL;
        }
        kick_fds[q] = n->vp.vq[q].kick_fd;
    }
    n->vu = vhost_user_new(ms, nd, NET_NQUEUES, kick_fds, n->call_fds, &net_vu_ops, n, errp);
    if (!n->vu) {
        return NULL;
    }
    uint64_t be = vhost_user_initial_features(n->vu);
    if (!(be & BIT(VIRTIO_F_VERSION_1))) {
        error_setg(errp, "%s: the vhost-user back-end does not offer VIRTIO_F_VERSION_1, which "
                   "this virtio 1.x device needs", n->name);
        return NULL;
    }
    n->offered = NET_DEVICE_FEATURES | (be & NET_BACKEND_FEATURES);
    net_update_config(n);
    if (!pci_bus_add_device(bus, &n->vp.pci, d->slot, errp)) {
        return NULL;
    }
    virtio_pci_set_ioeventfd_fn(&n->vp, net_ioeventfd, n);
    for (unsigned q = 0; q < NET_NQUEUES; q++) {
        g_unix_fd_add(n->call_fds[q], G_IO_IN, net_call_event, n);
    }
    vm_state_add_notifier(net_vm_state, n);
    SaveStateHandler h = {
        .idstr = "virtio-net", .instance_id = n->vp.pci.devfn, .version = NET_RECORD_VERSION,
        .priority = SAVESTATE_PRIO_DEVICE, .save = net_save, .load = net_load,
        .post_load_all = net_post_load, .opaque = n,
    };
    register_savestate(&h);
    return n;
}
