/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vhost-user wire format and the split-virtqueue memory layout, as
 * plain constants and packed structs: one definition shared by the back-end
 * library, its tests' front-end and any front-end that wants it. Values are
 * the protocol's (docs/devel/vhost-user-backend.md has the table); the
 * channel is host byte order, the rings are little-endian (virtio 1.x).
 */
#ifndef VHOST_USER_PROTOCOL_H
#define VHOST_USER_PROTOCOL_H

#include <stdint.h>

/* ---- message header ---------------------------------------------------- */

#define VHOST_USER_HDR_SIZE          12u
#define VHOST_USER_VERSION           0x1u   /* flags bits 0-1 */
#define VHOST_USER_FLAG_VERSION_MASK 0x3u
#define VHOST_USER_FLAG_REPLY        0x4u
#define VHOST_USER_FLAG_NEED_REPLY   0x8u

/* SET_MEM_TABLE carries at most this many regions, one fd each. */
#define VHOST_USER_MEM_REGIONS_MAX   8u
/* No message carries more descriptors than this. */
#define VHOST_USER_MAX_FDS           8u

/* Payload of SET_VRING_KICK/CALL/ERR: ring index, and "no fd: poll". */
#define VHOST_USER_VRING_INDEX_MASK  0xffu
#define VHOST_USER_VRING_NOFD        0x100u

typedef enum VhostUserRequest {
    VHOST_USER_NONE = 0,
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
    VHOST_USER_SET_SLAVE_REQ_FD = 21,
    VHOST_USER_IOTLB_MSG = 22,
    VHOST_USER_SET_VRING_ENDIAN = 23,
    VHOST_USER_GET_CONFIG = 24,
    VHOST_USER_SET_CONFIG = 25,
    VHOST_USER_CREATE_CRYPTO_SESSION = 26,
    VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
    VHOST_USER_POSTCOPY_ADVISE = 28,
    VHOST_USER_POSTCOPY_LISTEN = 29,
    VHOST_USER_POSTCOPY_END = 30,
    VHOST_USER_GET_INFLIGHT_FD = 31,
    VHOST_USER_SET_INFLIGHT_FD = 32,
    VHOST_USER_GPU_SET_SOCKET = 33,
    VHOST_USER_RESET_DEVICE = 34,
    VHOST_USER_VRING_KICK = 35,
    VHOST_USER_GET_MAX_MEM_SLOTS = 36,
    VHOST_USER_ADD_MEM_REG = 37,
    VHOST_USER_REM_MEM_REG = 38,
    VHOST_USER_SET_STATUS = 39,
    VHOST_USER_GET_STATUS = 40,
    VHOST_USER_REQUEST_MAX_KNOWN = 40,
} VhostUserRequest;

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
enum {
    VHOST_USER_PROTOCOL_F_MQ = 0,
    VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1,
    VHOST_USER_PROTOCOL_F_RARP = 2,
    VHOST_USER_PROTOCOL_F_REPLY_ACK = 3,
    VHOST_USER_PROTOCOL_F_NET_MTU = 4,
    VHOST_USER_PROTOCOL_F_SLAVE_REQ = 5,
    VHOST_USER_PROTOCOL_F_CROSS_ENDIAN = 6,
    VHOST_USER_PROTOCOL_F_CRYPTO_SESSION = 7,
    VHOST_USER_PROTOCOL_F_PAGEFAULT = 8,
    VHOST_USER_PROTOCOL_F_CONFIG = 9,
    VHOST_USER_PROTOCOL_F_SLAVE_SEND_FD = 10,
    VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11,
    VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12,
    VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13,
    VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14,
    VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
    VHOST_USER_PROTOCOL_F_STATUS = 16,
};

/* Virtio feature bits the vhost-user layer itself cares about. */
enum {
    VIRTIO_F_NOTIFY_ON_EMPTY = 24,
    VHOST_F_LOG_ALL = 26,
    VIRTIO_F_ANY_LAYOUT = 27,
    VIRTIO_RING_F_INDIRECT_DESC = 28,
    VIRTIO_RING_F_EVENT_IDX = 29,
    VHOST_USER_F_PROTOCOL_FEATURES = 30,
    VIRTIO_F_VERSION_1 = 32,
    VIRTIO_F_ACCESS_PLATFORM = 33,
    VIRTIO_F_RING_PACKED = 34,
};

/* SET_VRING_ADDR flags: log used-ring writes at log_guest_addr. */
#define VHOST_VRING_F_LOG            0x1u
/* One bit of the dirty log covers this many bytes of guest-physical memory. */
#define VHOST_LOG_PAGE               4096u

typedef struct __attribute__((packed)) VhostUserHeader {
    uint32_t request;
    uint32_t flags;
    uint32_t size;          /* payload bytes after the header */
} VhostUserHeader;

typedef struct __attribute__((packed)) VhostUserVringState {
    uint32_t index;
    uint32_t num;
} VhostUserVringState;

typedef struct __attribute__((packed)) VhostUserVringAddr {
    uint32_t index;
    uint32_t flags;         /* VHOST_VRING_F_LOG */
    uint64_t desc_user_addr;    /* front-end virtual addresses ... */
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;    /* ... but this one is guest-physical */
} VhostUserVringAddr;

typedef struct __attribute__((packed)) VhostUserMemRegion {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;    /* front-end VA; postcopy reply: back-end VA */
    uint64_t mmap_offset;       /* where the region starts in its fd */
} VhostUserMemRegion;

typedef struct __attribute__((packed)) VhostUserMemTable {
    uint32_t nregions;
    uint32_t padding;
    VhostUserMemRegion regions[VHOST_USER_MEM_REGIONS_MAX];
} VhostUserMemTable;

typedef struct __attribute__((packed)) VhostUserLogArea {
    uint64_t mmap_size;
    uint64_t mmap_offset;
} VhostUserLogArea;

/* Payload size of a SET_MEM_TABLE with @n regions. */
#define VHOST_USER_MEM_TABLE_SIZE(n) (8u + 32u * (unsigned)(n))

/* ---- split virtqueue layout (virtio 1.x, little-endian) ----------------- */

#define VRING_DESC_F_NEXT            1u
#define VRING_DESC_F_WRITE           2u
#define VRING_DESC_F_INDIRECT        4u
#define VRING_USED_F_NO_NOTIFY       1u
#define VRING_AVAIL_F_NO_INTERRUPT   1u
#define VIRTQUEUE_MAX_SIZE           32768u

typedef struct VringDesc {
    uint64_t addr;          /* guest-physical */
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VringDesc;

typedef struct VringAvail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];        /* then u16 used_event (EVENT_IDX) */
} VringAvail;

typedef struct VringUsedElem {
    uint32_t id;
    uint32_t len;
} VringUsedElem;

typedef struct VringUsed {
    uint16_t flags;
    uint16_t idx;
    VringUsedElem ring[];   /* then u16 avail_event (EVENT_IDX) */
} VringUsed;

/*
 * The ring structures are not packed: their layout is natural anyway, and
 * vub_queue_try_start() refuses rings not aligned as the virtio spec requires
 * (16, 2, 4), so the natural alignment holds and atomic loads of the
 * indexes stay plain instructions (clang calls libatomic for a packed one).
 */
_Static_assert(sizeof(VringDesc) == 16, "virtio split ring descriptor");
_Static_assert(sizeof(VringAvail) == 4 && sizeof(VringUsedElem) == 8, "virtio ring layout");
_Static_assert(sizeof(VringUsed) == 4, "virtio used ring header");

/* Byte sizes of the three parts of a split ring of @num entries. */
#define VRING_DESC_SIZE(num)   (16u * (uint64_t)(num))
#define VRING_AVAIL_SIZE(num)  (6u + 2u * (uint64_t)(num))
#define VRING_USED_SIZE(num)   (6u + 8u * (uint64_t)(num))

/* virtio-net: the header in front of every frame with VERSION_1 or MRG_RXBUF. */
#define VIRTIO_NET_HDR_LEN           12u
#define VIRTIO_NET_HDR_LEN_LEGACY    10u
#define VIRTIO_NET_F_MRG_RXBUF       15

#endif
