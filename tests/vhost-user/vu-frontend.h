/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small vhost-user front-end and virtio driver for tests: raw messages
 * with fds (so tests can send hostile ones), the usual request/reply
 * helpers, memfd guest RAM, and the driver side of a split ring written
 * into any buffer (the shared mapping, or a private "source" image in
 * postcopy tests). GLib; failures are GErrors or test assertions.
 */
#ifndef VU_FRONTEND_H
#define VU_FRONTEND_H

#include "vhost-user-protocol.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct VuFe {
    int sock;
} VuFe;

/* Connect to a back-end listening on @path, retrying until @timeout_ms. */
VuFe *vufe_connect(const char *path, int timeout_ms, GError **errp);
/* Wrap a connected socket. */
VuFe *vufe_adopt(int fd);
void vufe_free(VuFe *fe);

/* One message, exactly as given (flags included), with up to 16 fds. */
bool vufe_send(VuFe *fe, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
               const int *fds, unsigned nfds, GError **errp);
/*
 * Receive one message within @timeout_ms into @hdr/@payload (at most @cap
 * bytes, the rest is an error); the fd it carried (or -1) into @fd if not
 * NULL. 1: a message; 0: the peer closed; -1: error or timeout (@errp).
 */
int vufe_recv(VuFe *fe, VhostUserHeader *hdr, void *payload, size_t cap, int *fd,
              int timeout_ms, GError **errp);
/* True if the peer closes the connection within @timeout_ms without sending anything. */
bool vufe_wait_closed(VuFe *fe, int timeout_ms);
/* True if nothing arrives within @timeout_ms (and the connection stays open). */
bool vufe_quiet(VuFe *fe, int timeout_ms);

/* Request with no payload, reply u64 (checks request id, flags 0x5 and size). */
bool vufe_get_u64(VuFe *fe, uint32_t request, uint64_t *out, GError **errp);
/*
 * Send @request with @payload; with @need_reply wait for the REPLY_ACK and
 * put its value in @ack (0 = success) if not NULL.
 */
bool vufe_request(VuFe *fe, uint32_t request, const void *payload, uint32_t size,
                  const int *fds, unsigned nfds, bool need_reply, uint64_t *ack, GError **errp);
/* The same, asserting success (ack 0 when @need_reply). */
void vufe_must(VuFe *fe, uint32_t request, const void *payload, uint32_t size,
               const int *fds, unsigned nfds, bool need_reply);
void vufe_must_u64(VuFe *fe, uint32_t request, uint64_t value, bool need_reply);
void vufe_must_state(VuFe *fe, uint32_t request, uint32_t index, uint32_t num);

/* ---- guest memory ------------------------------------------------------ */

typedef struct VuGuestMem {
    int fd;             /* memfd */
    uint8_t *base;      /* our shared mapping: GPA x is base + x (one flat file) */
    uint64_t size;
} VuGuestMem;

VuGuestMem *vu_guest_mem_new(uint64_t size);
void vu_guest_mem_free(VuGuestMem *m);

/* ---- driver side of a split ring --------------------------------------- */

typedef struct VuRing {
    uint8_t *image;     /* where GPA 0 is, for our own reads and writes */
    uint32_t num;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint16_t avail_idx; /* next avail index the driver publishes */
    uint16_t used_seen; /* used entries the test consumed */
    int kick_fd, call_fd;   /* eventfds (ours) */
} VuRing;

/* A ring of @num entries at the given GPAs, zeroed, with fresh eventfds. */
void vu_ring_init(VuRing *r, uint8_t *image, uint32_t num, uint64_t desc_gpa,
                  uint64_t avail_gpa, uint64_t used_gpa);
void vu_ring_cleanup(VuRing *r);
void vu_ring_set_desc(VuRing *r, uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags,
                      uint16_t next);
/* Publish chain @head in the available ring (release order, as a driver must). */
void vu_ring_publish(VuRing *r, uint16_t head);
/* Write used_event (EVENT_IDX). */
void vu_ring_set_used_event(VuRing *r, uint16_t v);
uint16_t vu_ring_avail_event(VuRing *r);
void vu_ring_kick(VuRing *r);
uint16_t vu_ring_used_idx(VuRing *r);
VringUsedElem vu_ring_used_elem(VuRing *r, uint16_t i);
/* Wait until the used index reaches @idx; false on timeout. */
bool vu_ring_wait_used(VuRing *r, uint16_t idx, int timeout_ms);
/* Interrupts since the last call (reads the call eventfd, 0 if none). */
uint64_t vu_ring_take_calls(VuRing *r);
/*
 * Wait until an interrupt is pending (the call eventfd is readable; not
 * consumed); false on timeout. The back-end signals after it publishes the
 * used index, so a used index seen does not mean the call has been made.
 */
bool vu_ring_wait_call(VuRing *r, int timeout_ms);

/*
 * Tell the back-end about ring @index: NUM, BASE 0, ADDR (front-end addresses
 * = @uva_base + GPA, @log_gpa logging if non-zero), CALL, KICK, ENABLE.
 */
void vufe_setup_ring(VuFe *fe, uint32_t index, VuRing *r, uint64_t uva_base, uint64_t log_gpa);

/* ---- processes ------------------------------------------------------------ */

/*
 * fork+exec @argv with stdout/stderr into @out_path/@err_path (NULL: ours),
 * dying with us (PR_SET_PDEATHSIG). Fails the test if exec is impossible.
 */
pid_t vu_spawn(char *const *argv, const char *out_path, const char *err_path);
/* Wait up to @timeout_ms for @pid; true and *status if it exited. */
bool vu_wait_pid(pid_t pid, int timeout_ms, int *status);
/* SIGTERM, then SIGKILL after @grace_ms; returns the status. */
int vu_stop_pid(pid_t pid, int grace_ms);
/* Wait until file @path contains @needle; returns the contents (g_free) or NULL on timeout. */
char *vu_wait_file_contains(const char *path, const char *needle, int timeout_ms, pid_t alive);
/* The value of " key=" in the last line of @text starting with @prefix; -1 if absent. */
gint64 vu_stat_value(const char *text, const char *prefix, const char *key);

#endif
