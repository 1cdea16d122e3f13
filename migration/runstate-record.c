/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "runstate" device record: the run state the destination should come
 * up in, and the source's wall-clock time of the stop request (for the
 * guest-visible downtime the destination reports).
 */
#include "qemu/osdep.h"
#include "migration/migration.h"
#include "migration/record.h"
#include "migration/savevm.h"
#include "sysemu/runstate.h"

/*
 * Version 2 adds the source's wall-clock time of the stop request, so the
 * destination can report the downtime the guest saw (stop request to its
 * own RESUME), pause of the vCPUs included. It assumes synchronised host
 * clocks (the same host in tests and benchmarks).
 */
#define RUNSTATE_RECORD_VERSION 2

typedef struct RunstateRecord {
    char state[32];               /* a RunState name */
    int64_t stop_realtime_us;     /* version 2 on */
} RunstateRecord;

static const RecordField runstate_record_fields[] = {
    RECORD_FIELD(RunstateRecord, state, RECORD_STR8),
    RECORD_FIELD_SINCE(RunstateRecord, stop_realtime_us, RECORD_BE64, 2),
};

static const RecordDesc runstate_record_desc = {
    .name = "runstate", .size = sizeof(RunstateRecord),
    .fields = runstate_record_fields, .n_fields = G_N_ELEMENTS(runstate_record_fields),
    .version_min = 1, .version_max = RUNSTATE_RECORD_VERSION,
};

/* Source side: set before the record is saved (migration thread). */
static RunstateRecord outgoing;
/* Destination side: what the last loaded record said. */
static RunstateRecord incoming;

static bool runstate_save(void *opaque, GByteArray *out, GError **errp)
{
    record_save(&runstate_record_desc, RUNSTATE_RECORD_VERSION, &outgoing, out);
    return true;
}

static bool runstate_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                          GError **errp)
{
    RunstateRecord rec = { .stop_realtime_us = 0 };

    if (!record_load(&runstate_record_desc, version, &rec, buf, len, errp)) {
        return false;
    }
    if (RunState_parse(rec.state) < 0) {
        error_setg(errp, "run state record names an unknown state '%s'", rec.state);
        return false;
    }
    incoming = rec;
    return true;
}

void runstate_record_set_outgoing(const char *runstate)
{
    g_strlcpy(outgoing.state, runstate, sizeof(outgoing.state));
}

void runstate_record_set_stop_time(int64_t realtime_us)
{
    outgoing.stop_realtime_us = realtime_us;
}

const char *runstate_record_incoming(void)
{
    return incoming.state;
}

int64_t runstate_record_incoming_stop_time(void)
{
    return incoming.stop_realtime_us;
}

void runstate_record_register(void)
{
    SaveStateHandler h = {
        .idstr = "runstate", .version = RUNSTATE_RECORD_VERSION, .priority = SAVESTATE_PRIO_RUNSTATE,
        .save = runstate_save, .load = runstate_load,
    };

    register_savestate(&h);
}
