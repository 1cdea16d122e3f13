/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * exec: transport: run "/bin/sh -c CMD" with its stdin and stdout piped
 * to us. The source writes the stream into the command's stdin, the
 * destination reads it from its stdout; stderr is inherited. The child is
 * reaped when the channel closes.
 */
#include "qemu/osdep.h"

#include "migration/transport.h"

QIOChannel *exec_transport_spawn(const char *cmd, QIOCancel *cancel,
                                 GError **errp)
{
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    GError *err = NULL;
    GPid pid;
    int in_fd, out_fd;

    if (!cmd[0]) {
        error_setg(errp, "Parameter 'uri' expects a valid migration protocol");
        return NULL;
    }
    if (!g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                  G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                  &pid, &in_fd, &out_fd, NULL, &err)) {
        error_setg(errp, "Failed to run '%s': %s", cmd, err->message);
        g_error_free(err);
        return NULL;
    }
    g_autofree char *name = g_strdup_printf("exec:%s", cmd);
    return qio_channel_new_pipes(out_fd, in_fd, pid, name, cancel);
}
