/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP commands about the machine itself: status, stop/cont, reset, quit,
 * vCPU and KVM queries, pmemsave. Main thread, BQL held (see qmp.h).
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/machine.h"
#include "monitor/qmp.h"
#include "qapi/qapi-commands.h"
#include "sysemu/cpus.h"
#include "sysemu/main-loop.h"
#include "sysemu/runstate.h"
#include <fcntl.h>

JsonNode *qmp_query_status(JsonObject *args, GError **errp)
{
    JsonObject *r = json_object_new();
    RunState s = runstate_get();

    json_object_set_string_member(r, "status", runstate_name(s));
    json_object_set_boolean_member(r, "singlestep", FALSE);
    json_object_set_boolean_member(r, "running", s == RUN_STATE_RUNNING);
    return qmp_node_object(r);
}

JsonNode *qmp_stop(JsonObject *args, GError **errp)
{
    RunState s = runstate_get();

    if (s == RUN_STATE_INMIGRATE) {
        /* As QEMU: the guest will not start when the migration completes. */
        autostart = false;
    } else if (s == RUN_STATE_RUNNING) {
        vm_stop(RUN_STATE_PAUSED);
    }
    return NULL;
}

JsonNode *qmp_cont(JsonObject *args, GError **errp)
{
    switch (runstate_get()) {
    case RUN_STATE_INMIGRATE:
        autostart = true;
        return NULL;
    case RUN_STATE_INTERNAL_ERROR:
    case RUN_STATE_SHUTDOWN:
        error_setg(errp, "Resetting the Virtual Machine is required");
        return NULL;
    case RUN_STATE_FINISH_MIGRATE:
        error_setg(errp, "Migration is not finalized yet");
        return NULL;
    default:
        break;
    }
    if (current_machine->smp_cpus == 0) {
        error_setg(errp, "The machine has no vCPUs (-machine none)");
        return NULL;
    }
    vm_start();
    return NULL;
}

JsonNode *qmp_system_reset(JsonObject *args, GError **errp)
{
    qemu_system_reset_request_host();
    return NULL;
}

JsonNode *qmp_quit(JsonObject *args, GError **errp)
{
    qemu_system_shutdown_request("host-qmp-quit");
    return NULL;
}

JsonNode *qmp_query_name(JsonObject *args, GError **errp)
{
    JsonObject *r = json_object_new();

    if (current_machine->name) {
        json_object_set_string_member(r, "name", current_machine->name);
    }
    return qmp_node_object(r);
}

JsonNode *qmp_query_cpus_fast(JsonObject *args, GError **errp)
{
    Machine *ms = current_machine;
    JsonArray *a = json_array_new();

    for (int i = 0; i < ms->smp_cpus; i++) {
        JsonObject *c = json_object_new();
        JsonObject *props = json_object_new();
        g_autofree char *path = g_strdup_printf("/machine/unattached/device[%d]", i);

        json_object_set_int_member(c, "cpu-index", i);
        json_object_set_string_member(c, "qom-path", path);
        json_object_set_int_member(c, "thread-id", ms->cpus[i]->tid);
        json_object_set_int_member(props, "core-id", 0);
        json_object_set_int_member(props, "thread-id", 0);
        json_object_set_int_member(props, "node-id", 0);
        json_object_set_int_member(props, "socket-id", i);
        json_object_set_object_member(c, "props", props);
        json_object_set_string_member(c, "target", "x86_64");
        json_array_add_object_element(a, c);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

JsonNode *qmp_query_kvm(JsonObject *args, GError **errp)
{
    JsonObject *r = json_object_new();

    json_object_set_boolean_member(r, "enabled", TRUE);
    json_object_set_boolean_member(r, "present", TRUE);
    return qmp_node_object(r);
}

JsonNode *qmp_pmemsave(JsonObject *args, GError **errp)
{
    Machine *ms = current_machine;
    int64_t addr = json_object_get_int_member(args, "val");
    int64_t size = json_object_get_int_member(args, "size");
    const char *filename = json_object_get_string_member(args, "filename");
    g_autofree uint8_t *buf = NULL;
    const uint64_t chunk = 1 << 20;
    int fd;

    if (size < 0 || addr < 0 || (uint64_t)addr + (uint64_t)size < (uint64_t)addr) {
        error_setg(errp, "Invalid addr 0x%" PRIx64 "/size %" PRId64 " specified",
                   (uint64_t)addr, size);
        return NULL;
    }
    /* Check the whole range first: no partial file for a bad request. */
    for (uint64_t off = 0; off < (uint64_t)size; ) {
        uint64_t n = MIN(chunk, (uint64_t)size - off);
        uint64_t gpa = (uint64_t)addr + off;
        uint64_t first = gpa, last = gpa + n - 1, o1, o2;
        if (!machine_gpa_to_offset(ms, first, &o1) || !machine_gpa_to_offset(ms, last, &o2)) {
            error_setg(errp, "Invalid addr 0x%" PRIx64 "/size %" PRId64 " specified",
                       (uint64_t)addr, size);
            return NULL;
        }
        off += n;
    }
    fd = open(filename, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        error_setg(errp, "Could not open '%s': %s", filename, g_strerror(errno));
        return NULL;
    }
    buf = g_malloc(MIN(chunk, (uint64_t)MAX(size, 1)));
    for (uint64_t off = 0; off < (uint64_t)size; ) {
        uint64_t n = MIN(chunk, (uint64_t)size - off);
        if (!machine_ram_read(ms, (uint64_t)addr + off, buf, n, errp)) {
            close(fd);
            return NULL;
        }
        for (uint64_t w = 0; w < n; ) {
            ssize_t r = write(fd, buf + w, n - w);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                error_setg(errp, "Error writing memory to file '%s': %s", filename,
                           g_strerror(r < 0 ? errno : ENOSPC));
                close(fd);
                return NULL;
            }
            w += (uint64_t)r;
        }
        off += n;
    }
    if (close(fd) < 0) {
        error_setg(errp, "Error writing memory to file '%s': %s", filename, g_strerror(errno));
        return NULL;
    }
    return NULL;
}
