/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "runstate" device record: the run state the destination should come
 * up in, and the source's wall-clock time of the stop request (for the
 * guest-visible downtime the destination reports).
 */
#include "qemu/osdep.h"
#include "migration/migration.h"
#include "migration/savevm.h"
#include "sysemu/runstate.h"

/* Run state the destination should end up in (source side). */
static char outgoing_runstate[32];


/*
 * Version 2 adds the source's wall-clock time of the stop request, so the
 * destination can report the downtime the guest saw (stop request to its
 * own RESUME), pause of the vCPUs included. It assumes synchronised host
 * clocks (the same host in tests and benchmarks).
 */
#define RUNSTATE_RECORD_VERSION 2
static int64_t outgoing_stop_realtime_us;

static bool runstate_save(void *opaque, GByteArray *out, GError **errp)
{
    uint8_t len = (uint8_t)strlen(outgoing_runstate);
    uint64_t t = GUINT64_TO_BE((uint64_t)outgoing_stop_realtime_us);

    g_byte_array_append(out, &len, 1);
    g_byte_array_append(out, (const guint8 *)outgoing_runstate, len);
    g_byte_array_append(out, (const guint8 *)&t, sizeof(t));
    return true;
}

static char incoming_runstate[32];
static int64_t incoming_stop_realtime_us;

static bool runstate_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                          GError **errp)
{
    size_t tail = version >= 2 ? 8 : 0;

    if (version < 1 || version > RUNSTATE_RECORD_VERSION || len < 1 ||
        len != 1u + buf[0] + tail || buf[0] >= sizeof(incoming_runstate)) {
        error_setg(errp, "run state record (version %u, %zu bytes) is malformed", version, len);
        return false;
    }
    memcpy(incoming_runstate, buf + 1, buf[0]);
    incoming_runstate[buf[0]] = '\0';
    if (RunState_parse(incoming_runstate) < 0) {
        error_setg(errp, "run state record names an unknown state '%s'", incoming_runstate);
        return false;
    }
    incoming_stop_realtime_us = 0;
    if (tail) {
        uint64_t t;
        memcpy(&t, buf + 1 + buf[0], 8);
        incoming_stop_realtime_us = (int64_t)GUINT64_FROM_BE(t);
    }
    return true;
}


void runstate_record_set_outgoing(const char *runstate)
{
    g_strlcpy(outgoing_runstate, runstate, sizeof(outgoing_runstate));
}

void runstate_record_set_stop_time(int64_t realtime_us)
{
    outgoing_stop_realtime_us = realtime_us;
}

const char *runstate_record_incoming(void)
{
    return incoming_runstate;
}

int64_t runstate_record_incoming_stop_time(void)
{
    return incoming_stop_realtime_us;
}

void runstate_record_register(void)
{
    SaveStateHandler h = {
        .idstr = "runstate", .version = RUNSTATE_RECORD_VERSION, .priority = SAVESTATE_PRIO_RUNSTATE,
        .save = runstate_save, .load = runstate_load,
    };

    register_savestate(&h);
}
