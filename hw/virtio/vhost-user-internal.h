/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Private to hw/virtio/vhost-user*.c: the front-end's state and the
 * helpers its three files share (the connection, the dirty log, postcopy).
 * Every field says who writes it and what protects it.
 */
#ifndef GODWIT_HW_VHOST_USER_INTERNAL_H
#define GODWIT_HW_VHOST_USER_INTERNAL_H

#include "qemu/osdep.h"
#include "hw/virtio/vhost-user.h"
#include "hw/virtio/vhost-user-msg.h"

/* Every reply is awaited this long; then the back-end is given up. */
#define VHOST_USER_TIMEOUT_MS 10000
#define VHOST_USER_REGIONS_MAX 2        /* RAM below and above 4 GiB */

typedef struct PostcopyIncoming PostcopyIncoming;

struct VhostUser {
    /* Set at creation, then read-only. */
    Machine *ms;
    char *name;                 /* netdev id */
    char *path;
    bool server;
    uint32_t reconnect;         /* client: seconds between attempts, 0 = never */
    unsigned nrings;
    int kick_fds[VHOST_USER_RINGS_MAX];
    int call_fds[VHOST_USER_RINGS_MAX];
    const VhostUserDeviceOps *ops;
    void *opaque;
    VhostUserMsg mem_table;     /* SET_MEM_TABLE as sent (regions; one fd each) */
    int mem_fds[VHOST_USER_REGIONS_MAX];
    uint64_t region_offset[VHOST_USER_REGIONS_MAX];  /* each region's RAMBlock offset */
    uint64_t initial_features;  /* the back-end's features at start-up (offered to the guest) */
    uint64_t log_bytes;         /* dirty log size: one bit per 4 KiB page up to the end of RAM */

    /*
     * Serialises every exchange with the back-end and the state below.
     * Taken after the BQL, never before it.
     */
    GMutex lock;
    int fd;                     /* the connection, -1 when none */
    bool connected;             /* negotiated; also read atomically without the lock */
    bool broken;                /* an exchange failed; the main loop tears the connection down */
    uint64_t backend_features;
    uint64_t protocol_features; /* negotiated */
    bool started;               /* the rings are with the back-end */
    uint64_t acked_features;    /* the driver's bits as last sent in SET_FEATURES */
    VhostUserRing rings[VHOST_USER_RINGS_MAX];   /* as last started */

    /* Dirty log (vhost-user-log.c); writes under @lock. */
    bool logging;               /* migration tracks dirty memory */
    bool log_lost;              /* the back-end went away while logging (atomic reads) */
    int log_fd;                 /* memfd, -1 when none */
    uint64_t *log;              /* its mapping (the migration thread reads it while logging) */

    /* Postcopy (vhost-user-postcopy.c); writes under @lock unless said. */
    int pc_uffd;                /* the back-end's userfaultfd after ADVISE, -1 */
    PostcopyIncoming *pc;       /* the destination's postcopy state, LISTEN .. END */
    bool pc_active;             /* a destination postcopy is running (LISTEN .. END) */
    bool pc_backend_listening;  /* this connection accepted POSTCOPY_LISTEN: END is owed */
    bool pc_listening;          /* ...and it may take the rings now (postcopy memory table) */
    /* Client bases: written at a postcopy start, read by the fault and listen threads. */
    GMutex pc_lock;
    unsigned pc_nregions;       /* pc_lock */
    uint64_t pc_client_base[VHOST_USER_REGIONS_MAX];  /* pc_lock */
    uint64_t pc_faults;         /* faults read from the back-end's fd (atomic) */
    GHashTable *pc_waiting;     /* pc_lock: block offset of a faulted page -> time (us) */
    GArray *pc_latency_us;      /* pc_lock: fault to wake, per page (uint32_t) */

    /* Main thread only. */
    int listen_fd;              /* server: -1 for a client */
    guint watch_id;             /* HUP/unsolicited data on @fd */
    guint listen_id;            /* accept while disconnected */
    guint reconnect_id;         /* client: retry timer */
    bool reported_down;
};

/* ---- vhost-user.c: exchanges (lock held) ---- */

/* Send @m; a transport failure marks the connection broken. */
bool vu_send_locked(VhostUser *vu, VhostUserMsg *m, const int *fds, unsigned nfds,
                    GError **errp);
/* Send @m and, when REPLY_ACK was negotiated, ask for and check its u64 status. */
bool vu_send_ack_locked(VhostUser *vu, VhostUserMsg *m, const int *fds, unsigned nfds,
                        GError **errp);
/* Send @m, receive its reply of @reply_size bytes (descriptors into @fds). */
bool vu_call_locked(VhostUser *vu, VhostUserMsg *m, VhostUserMsg *reply, uint32_t reply_size,
                    int *fds, unsigned *nfds, GError **errp);
/* The connection failed: tear it down from the main loop. */
void vu_mark_broken_locked(VhostUser *vu);
/* SET_FEATURES with the driver's bits, the protocol bit and LOG_ALL as logging says. */
bool vu_set_features_locked(VhostUser *vu, GError **errp);
/* SET_VRING_ADDR for ring @i, with the log flag as logging says. */
bool vu_set_vring_addr_locked(VhostUser *vu, unsigned i, GError **errp);
bool vu_has_protocol_feature_locked(VhostUser *vu, unsigned bit);

/* ---- vhost-user-log.c ---- */

/* Register the dirty source with migration/ram.c (creation). */
void vu_log_register(VhostUser *vu);
/* SET_LOG_BASE with the log memfd (lock held, logging, started). */
bool vu_log_send_base_locked(VhostUser *vu, GError **errp);

/* ---- vhost-user-postcopy.c ---- */

/* Register the postcopy notifier (creation). */
void vu_postcopy_register(VhostUser *vu);
/* The postcopy variant of SET_MEM_TABLE (lock held, pc_listening). */
bool vu_postcopy_set_mem_table_locked(VhostUser *vu, GError **errp);
/* A disconnect (lock held): forget the back-end's postcopy state. */
void vu_postcopy_disconnected_locked(VhostUser *vu);
/* Close a userfaultfd an ADVISE left behind when no postcopy followed (lock held). */
void vu_postcopy_drop_unused_locked(VhostUser *vu);

#endif
