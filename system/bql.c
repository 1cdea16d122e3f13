/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The big lock (see include/qemu/bql.h for what it protects). */
#include "qemu/osdep.h"
#include "qemu/bql.h"

static GMutex bql;
/* Which thread holds it: lets bql_locked() answer for the calling thread. */
static __thread bool bql_held;

void bql_lock(void)
{
    g_mutex_lock(&bql);
    bql_held = true;
}

void bql_unlock(void)
{
    bql_held = false;
    g_mutex_unlock(&bql);
}

bool bql_locked(void)
{
    return bql_held;
}

void bql_cond_wait(GCond *cond)
{
    bql_held = false;
    g_cond_wait(cond, &bql);
    bql_held = true;
}

gboolean bql_cond_wait_until(GCond *cond, gint64 end_time_us)
{
    gboolean r;

    bql_held = false;
    r = g_cond_wait_until(cond, &bql, end_time_us);
    bql_held = true;
    return r;
}
