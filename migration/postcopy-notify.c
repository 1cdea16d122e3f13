/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The destination's postcopy notifier list (include/migration/postcopy-notify.h).
 * Registered at start-up and read-only afterwards, so raising an event
 * from the incoming thread needs no lock.
 */
#include "qemu/osdep.h"
#include "migration/postcopy-notify.h"

typedef struct PostcopyNotifier {
    PostcopyNotifyFn fn;
    void *opaque;
} PostcopyNotifier;

static GArray *notifiers;   /* PostcopyNotifier */

void postcopy_add_notifier(PostcopyNotifyFn fn, void *opaque)
{
    PostcopyNotifier n = { fn, opaque };

    if (!notifiers) {
        notifiers = g_array_new(FALSE, TRUE, sizeof(PostcopyNotifier));
    }
    g_array_append_val(notifiers, n);
}

bool postcopy_notify(PostcopyNotifyEvent ev, PostcopyIncoming *pi, GError **errp)
{
    for (guint i = 0; notifiers && i < notifiers->len; i++) {
        PostcopyNotifier *n = &g_array_index(notifiers, PostcopyNotifier, i);
        if (!n->fn(n->opaque, ev, pi, errp)) {
            return false;
        }
    }
    return true;
}
