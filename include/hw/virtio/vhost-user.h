/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vhost-user front-end: one connection to a back-end process that runs
 * a device's queues on guest RAM it maps itself. It connects (or listens),
 * negotiates, hands over the memory table and the rings when the device
 * starts, takes them back (GET_VRING_BASE) when it stops, reconnects a
 * back-end that went away, keeps a shared dirty log while a migration
 * tracks memory, and takes part in the destination's postcopy. Design,
 * threads and locks: docs/devel/vhost-user.md.
 */
#ifndef GODWIT_HW_VHOST_USER_H
#define GODWIT_HW_VHOST_USER_H

#include "qemu/osdep.h"
#include "hw/machine.h"
#include "sysemu/options.h"

#define VHOST_USER_RINGS_MAX 2

typedef struct VhostUser VhostUser;

/* What a start hands over for one ring. */
typedef struct VhostUserRing {
    bool enabled;              /* the driver enabled the queue */
    uint16_t num;              /* ring size */
    uint16_t base;             /* next available index to process */
    uint64_t desc_gpa, avail_gpa, used_gpa;
} VhostUserRing;

/*
 * Told on the main thread with the BQL held: a back-end is connected and
 * negotiated (start the device if it should run), or the connection ended
 * (the rings are no longer with a back-end, and GET_VRING_BASE can no
 * longer tell where it stopped).
 */
typedef struct VhostUserDeviceOps {
    void (*connected)(void *opaque);
    void (*disconnected)(void *opaque);
} VhostUserDeviceOps;

/*
 * Create the front-end for netdev @o with @nrings rings whose doorbell and
 * interrupt eventfds are @kick_fds / @call_fds (kept by the caller). Guest
 * RAM must be shared with an fd. Waits for the first back-end (client:
 * connect, retrying every reconnect seconds if set; server: listen and
 * accept) and negotiates. Registers the migration hooks. Main thread,
 * machine creation.
 */
VhostUser *vhost_user_new(Machine *ms, const NetdevOpts *o, unsigned nrings,
                          const int *kick_fds, const int *call_fds,
                          const VhostUserDeviceOps *ops, void *opaque, GError **errp);

/* The netdev id, for messages. */
const char *vhost_user_name(VhostUser *vu);
/* A negotiated back-end is connected. Any thread. */
bool vhost_user_connected(VhostUser *vu);
/* The back-end's virtio features (valid while connected; 0 otherwise). */
uint64_t vhost_user_backend_features(VhostUser *vu);
/* The back-end's features as seen at start-up (what the guest is offered). */
uint64_t vhost_user_initial_features(VhostUser *vu);
/* A protocol feature was negotiated. */
bool vhost_user_has_protocol_feature(VhostUser *vu, unsigned bit);

/*
 * Hand the rings over: SET_FEATURES (@features: the driver's accepted bits
 * the back-end knows), the memory table (the postcopy variant during a
 * destination's postcopy), each enabled ring, the dirty log while
 * migrating, SET_VRING_ENABLE. BQL held (vCPU or main thread).
 */
bool vhost_user_start(VhostUser *vu, uint64_t features, const VhostUserRing *rings,
                      GError **errp);
/*
 * Take the rings back: SET_VRING_ENABLE 0, GET_VRING_BASE; @bases gets each
 * ring's next available index. False if the back-end did not answer (the
 * connection is then given up). BQL held.
 */
bool vhost_user_stop(VhostUser *vu, uint16_t *bases, GError **errp);
/* Whether the rings are with the back-end. */
bool vhost_user_started(VhostUser *vu);
/*
 * Whether the device may start now: false during a destination's postcopy
 * for a back-end that did not LISTEN (it starts once postcopy has ended).
 */
bool vhost_user_may_start(VhostUser *vu);

/* SEND_RARP with @mac, if the back-end has the RARP protocol feature. BQL held. */
bool vhost_user_send_rarp(VhostUser *vu, const uint8_t mac[6], GError **errp);

#endif
