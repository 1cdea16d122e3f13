/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Destination postcopy notifiers: other parts of godwit (a vhost-user
 * back-end's front-end) take part in postcopy without migration/ knowing
 * them. Generic on purpose: an event, the postcopy state when it exists,
 * and a way to refuse with one sentence.
 */
#ifndef GODWIT_MIGRATION_POSTCOPY_NOTIFY_H
#define GODWIT_MIGRATION_POSTCOPY_NOTIFY_H

#include "qemu/osdep.h"

typedef struct PostcopyIncoming PostcopyIncoming;

typedef enum PostcopyNotifyEvent {
    /*
     * Can postcopy work here? migrate-set-capabilities turning postcopy-ram
     * on while the VM waits for an incoming migration. Main thread, BQL.
     */
    POSTCOPY_NOTIFY_PROBE,
    /*
     * The source's POSTCOPY_ADVISE arrived (check again, prepare).
     * Incoming thread, no lock held.
     */
    POSTCOPY_NOTIFY_INBOUND_ADVISE,
    /*
     * LISTEN: @pi exists and our own RAM is not registered yet; the time to
     * hand over external userfaultfds (postcopy_register_external_uffd_ops).
     * Incoming thread, no lock held.
     */
    POSTCOPY_NOTIFY_INBOUND_LISTEN,
    /*
     * Every page has arrived (postcopy_incoming_finish): the fault thread
     * has stopped, our own RAM is still registered. Refusals are ignored.
     * Listen thread, no lock held.
     */
    POSTCOPY_NOTIFY_INBOUND_END,
} PostcopyNotifyEvent;

/* Return false with @errp set to refuse; @pi is NULL before LISTEN. */
typedef bool (*PostcopyNotifyFn)(void *opaque, PostcopyNotifyEvent ev, PostcopyIncoming *pi,
                                 GError **errp);

/* Register (main thread, at start-up). */
void postcopy_add_notifier(PostcopyNotifyFn fn, void *opaque);
/* Call every notifier in registration order; the first refusal wins. */
bool postcopy_notify(PostcopyNotifyEvent ev, PostcopyIncoming *pi, GError **errp);

#endif
