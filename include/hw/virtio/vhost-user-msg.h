/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user on the wire, front-end side: request numbers, payload layouts,
 * sending a message with file descriptors (SCM_RIGHTS) and receiving a
 * reply with a deadline, and the checks every reply must pass (the peer is
 * another process: everything it sends is hostile until checked). Values
 * from FACTS.md section 4 and the vhost-user specification.
 */
#ifndef GODWIT_HW_VHOST_USER_MSG_H
#define GODWIT_HW_VHOST_USER_MSG_H

#include "qemu/osdep.h"

typedef enum VhostUserRequest {
    VHOST_USER_GET_FEATURES = 1,
    VHOST_USER_SET_FEATURES = 2,
    VHOST_USER_SET_OWNER = 3,
    VHOST_USER_RESET_OWNER = 4,
    VHOST_USER_SET_MEM_TABLE = 5,
    VHOST_USER_SET_LOG_BASE = 6,
    VHOST_USER_SET_LOG_FD = 7,
    VHOST_USER_SET_VRING_NUM = 8,
    VHOST_USER_SET_VRING_ADDR = 9,
    VHOST_USER_SET_VRING_BASE = 10,
    VHOST_USER_GET_VRING_BASE = 11,
    VHOST_USER_SET_VRING_KICK = 12,
    VHOST_USER_SET_VRING_CALL = 13,
    VHOST_USER_SET_VRING_ERR = 14,
    VHOST_USER_GET_PROTOCOL_FEATURES = 15,
    VHOST_USER_SET_PROTOCOL_FEATURES = 16,
    VHOST_USER_GET_QUEUE_NUM = 17,
    VHOST_USER_SET_VRING_ENABLE = 18,
    VHOST_USER_SEND_RARP = 19,
    VHOST_USER_NET_SET_MTU = 20,
    VHOST_USER_POSTCOPY_ADVISE = 28,
    VHOST_USER_POSTCOPY_LISTEN = 29,
    VHOST_USER_POSTCOPY_END = 30,
    VHOST_USER_GET_MAX_MEM_SLOTS = 36,
    VHOST_USER_MAX_REQUEST = 41,
} VhostUserRequest;

/* Header flags. */
#define VHOST_USER_VERSION          0x1
#define VHOST_USER_VERSION_MASK     0x3
#define VHOST_USER_REPLY_MASK       0x4
#define VHOST_USER_NEED_REPLY_MASK  0x8

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
#define VHOST_USER_PROTOCOL_F_MQ                  0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD           1
#define VHOST_USER_PROTOCOL_F_RARP                2
#define VHOST_USER_PROTOCOL_F_REPLY_ACK           3
#define VHOST_USER_PROTOCOL_F_PAGEFAULT           8
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15

/* Virtio feature bits vhost-user itself uses. */
#define VHOST_USER_F_PROTOCOL_FEATURES  30
#define VHOST_F_LOG_ALL                 26

#define VHOST_VRING_F_LOG               0x1
#define VHOST_USER_VRING_NOFD_MASK      0x100
#define VHOST_USER_MEMORY_MAX_NREGIONS  8
#define VHOST_USER_MAX_FDS              8
#define VHOST_USER_HDR_SIZE             12
/* The dirty log: one bit per 4 KiB guest-physical page. */
#define VHOST_LOG_PAGE                  0x1000

typedef struct VhostUserVringState {
    uint32_t index;
    uint32_t num;
} VhostUserVringState;

typedef struct VhostUserVringAddr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
} VhostUserVringAddr;

typedef struct VhostUserMemRegion {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
} VhostUserMemRegion;

typedef struct VhostUserMemory {
    uint32_t nregions;
    uint32_t padding;
    VhostUserMemRegion regions[VHOST_USER_MEMORY_MAX_NREGIONS];
} VhostUserMemory;

typedef struct VhostUserLog {
    uint64_t mmap_size;
    uint64_t mmap_offset;
} VhostUserLog;

/* The payloads are naturally aligned, so the C layout is the wire layout (checked below). */
_Static_assert(sizeof(VhostUserVringAddr) == 40, "vring address payload");
_Static_assert(sizeof(VhostUserMemRegion) == 32, "memory region");
_Static_assert(sizeof(VhostUserMemory) == 8 + 32 * VHOST_USER_MEMORY_MAX_NREGIONS,
               "memory table payload");

typedef struct VhostUserMsg {
    uint32_t request;
    uint32_t flags;
    uint32_t size;              /* payload bytes */
    union {
        uint64_t u64;
        VhostUserVringState state;
        VhostUserVringAddr addr;
        VhostUserMemory memory;
        VhostUserLog log;
        uint8_t raw[sizeof(VhostUserMemory)];
    } payload;
} VhostUserMsg;

#define VHOST_USER_PAYLOAD_MAX  sizeof(((VhostUserMsg *)0)->payload)

/* "SET_MEM_TABLE" for 5, "request 99" for numbers we do not name. */
const char *vhost_user_request_name(uint32_t request);

/* A request with @size payload bytes (version flag set). */
void vhost_user_msg_init(VhostUserMsg *m, VhostUserRequest req, uint32_t size);

/*
 * Send @m (header + payload) and @nfds descriptors with it, within
 * @timeout_ms. A peer that went away is an error (no SIGPIPE). Any thread.
 */
bool vhost_user_msg_send(int fd, const VhostUserMsg *m, const int *fds, unsigned nfds,
                         int timeout_ms, GError **errp);

/*
 * Receive one message within @timeout_ms: the header, then exactly its
 * payload (at most VHOST_USER_PAYLOAD_MAX, else an error). Descriptors that
 * arrive with it go to @fds (up to *nfds; *nfds gets the count); extra or
 * unexpected ones are closed. EOF, a short read, or the deadline: false.
 * @fds may be NULL (then any descriptor is closed). On entry m->request
 * names the request whose reply we wait for (used in error messages only).
 */
bool vhost_user_msg_recv(int fd, VhostUserMsg *m, int *fds, unsigned *nfds, int timeout_ms,
                         GError **errp);

/*
 * Check that @reply answers @request: same request number, flags exactly
 * version 1 + reply, and a payload of @size bytes. One sentence otherwise.
 */
bool vhost_user_reply_check(const VhostUserMsg *reply, uint32_t request, uint32_t size,
                            GError **errp);

/*
 * The postcopy memory-table reply (FACTS 4.4, 3c): @sent is what we sent,
 * @reply the back-end's answer; for each region of @sent, in order, the
 * back-end's own address of its start goes to @client_base[i]. Every region
 * must come back, matched by guest-physical address, with the same size.
 */
bool vhost_user_parse_postcopy_mem_reply(const VhostUserMsg *sent, const VhostUserMsg *reply,
                                         uint64_t *client_base, GError **errp);

#endif
