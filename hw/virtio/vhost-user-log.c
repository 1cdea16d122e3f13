/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vhost-user dirty log: while a migration tracks dirty memory, the
 * back-end marks every guest page it writes in a memfd bitmap we share
 * with it (SET_LOG_BASE, VHOST_F_LOG_ALL, the rings' LOG flag). At each
 * dirty sync the migration thread moves those bits into migration's dirty
 * bitmap (an "extra dirty source" of migration/ram.c).
 */
#include "qemu/osdep.h"
#include "hw/virtio/vhost-user-internal.h"
#include "migration/misc.h"
#include <sys/mman.h>

#define BITS_PER_WORD 64

static void vu_log_free_locked(VhostUser *vu)
{
    if (vu->log) {
        munmap(vu->log, vu->log_bytes);
        vu->log = NULL;
    }
    if (vu->log_fd >= 0) {
        close(vu->log_fd);
        vu->log_fd = -1;
    }
}

bool vu_log_send_base_locked(VhostUser *vu, GError **errp)
{
    VhostUserMsg m, reply;

    vhost_user_msg_init(&m, VHOST_USER_SET_LOG_BASE, sizeof(VhostUserLog));
    m.payload.log.mmap_size = vu->log_bytes;
    m.payload.log.mmap_offset = 0;
    /* With LOG_SHMFD a back-end always answers (DPDK: a u64 0), REPLY_ACK or not. */
    if (!vu_send_locked(vu, &m, &vu->log_fd, 1, errp)) {
        return false;
    }
    reply.request = m.request;
    if (!vhost_user_msg_recv(vu->fd, &reply, NULL, NULL, VHOST_USER_TIMEOUT_MS, errp)) {
        vu_mark_broken_locked(vu);
        return false;
    }
    if (reply.request != VHOST_USER_SET_LOG_BASE ||
        reply.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK) ||
        (reply.size != 0 && reply.size != sizeof(uint64_t))) {
        error_setg(errp, "vhost-user back-end '%s' answered SET_LOG_BASE with %s (flags 0x%x, "
                   "%u bytes)", vu->name, vhost_user_request_name(reply.request), reply.flags,
                   reply.size);
        vu_mark_broken_locked(vu);
        return false;
    }
    if (reply.size && reply.payload.u64) {
        error_setg(errp, "vhost-user back-end '%s' refused the dirty log (status %" PRIu64 ")",
                   vu->name, reply.payload.u64);
        return false;
    }
    return true;
}

/* Logging on or off for a running back-end: features and the rings' LOG flag. */
static bool vu_log_apply_locked(VhostUser *vu, GError **errp)
{
    if (!vu->started) {
        return true;        /* the next start sends it all */
    }
    if (vu->logging && !vu_log_send_base_locked(vu, errp)) {
        return false;
    }
    if (!vu_set_features_locked(vu, errp)) {
        return false;
    }
    for (unsigned i = 0; i < vu->nrings; i++) {
        if (vu->rings[i].enabled && !vu_set_vring_addr_locked(vu, i, errp)) {
            return false;
        }
    }
    return true;
}

static bool vu_log_start(void *opaque, GError **errp)
{
    VhostUser *vu = opaque;
    bool ok = false;

    g_mutex_lock(&vu->lock);
    if (vu->connected && !vu_has_protocol_feature_locked(vu, VHOST_USER_PROTOCOL_F_LOG_SHMFD)) {
        /* QEMU's sentence: without a shared log its writes would be lost. */
        error_setg(errp, "Migration disabled: vhost-user backend lacks "
                   "VHOST_USER_PROTOCOL_F_LOG_SHMFD feature.");
        goto out;
    }
    vu->log_fd = memfd_create("vhost-log", MFD_CLOEXEC);
    if (vu->log_fd < 0 || ftruncate(vu->log_fd, (off_t)vu->log_bytes) < 0) {
        error_setg_errno(errp, errno, "vhost-user '%s': cannot create the dirty log", vu->name);
        goto out;
    }
    vu->log = mmap(NULL, vu->log_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vu->log_fd, 0);
    if (vu->log == MAP_FAILED) {
        vu->log = NULL;
        error_setg_errno(errp, errno, "vhost-user '%s': cannot map the dirty log", vu->name);
        goto out;
    }
    vu->logging = true;
    __atomic_store_n(&vu->log_lost, false, __ATOMIC_RELEASE);
    if (!vu_log_apply_locked(vu, errp)) {
        g_prefix_error(errp, "cannot start dirty logging in the vhost-user back-end: ");
        vu->logging = false;
        goto out;
    }
    ok = true;
out:
    if (!ok) {
        vu_log_free_locked(vu);
    }
    g_mutex_unlock(&vu->lock);
    return ok;
}

/*
 * Move the log's bits for the slot at guest-physical @gpa into block pages
 * from @block_off. Both start on 64-page boundaries (0, 4 GiB; the RAM split
 * at 3 GiB), so whole words move; the tail word is masked to the slot.
 */
static void vu_log_harvest_slot(VhostUser *vu, unsigned long *bitmap, uint64_t gpa,
                                uint64_t size, uint64_t block_off)
{
    uint64_t gpage = gpa / VHOST_LOG_PAGE, bpage = block_off / GW_PAGE_SIZE;
    uint64_t npages = size / VHOST_LOG_PAGE;

    g_assert(gpage % BITS_PER_WORD == 0 && bpage % BITS_PER_WORD == 0);
    for (uint64_t w = 0; w < GW_DIV_ROUND_UP(npages, BITS_PER_WORD); w++) {
        uint64_t v = __atomic_exchange_n(&vu->log[gpage / BITS_PER_WORD + w], 0,
                                         __ATOMIC_ACQ_REL);
        uint64_t left = npages - w * BITS_PER_WORD;
        if (left < BITS_PER_WORD) {
            v &= (1ULL << left) - 1;
        }
        if (v) {
            __atomic_fetch_or(&bitmap[bpage / BITS_PER_WORD + w], (unsigned long)v,
                              __ATOMIC_RELAXED);
        }
    }
}

static bool vu_log_sync(void *opaque, unsigned long *bitmap, uint64_t npages, GError **errp)
{
    VhostUser *vu = opaque;
    Machine *ms = vu->ms;

    /* The migration thread owns the log's lifetime (start/stop): no lock to read it. */
    for (int i = 0; vu->log && i < ms->nr_slots; i++) {
        vu_log_harvest_slot(vu, bitmap, ms->slots[i].gpa, ms->slots[i].size,
                            ms->slots[i].block_offset);
    }
    if (__atomic_load_n(&vu->log_lost, __ATOMIC_ACQUIRE)) {
        error_setg(errp, "vhost-user back-end '%s' disconnected during the migration: pages "
                   "it wrote may be missing from its dirty log", vu->name);
        return false;
    }
    return true;
}

static void vu_log_stop(void *opaque)
{
    VhostUser *vu = opaque;
    g_autoptr(GError) err = NULL;

    g_mutex_lock(&vu->lock);
    vu->logging = false;
    if (vu->connected && !vu_log_apply_locked(vu, &err)) {
        fprintf(stderr, "godwit: cannot stop dirty logging in vhost-user back-end '%s': %s\n",
                vu->name, err->message);
    }
    vu_log_free_locked(vu);
    g_mutex_unlock(&vu->lock);
}

void vu_log_register(VhostUser *vu)
{
    RamDirtySource src = {
        .name = vu->name, .start = vu_log_start, .sync = vu_log_sync, .stop = vu_log_stop,
        .opaque = vu,
    };
    ram_add_dirty_source(&src);
}
