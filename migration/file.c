/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * file: transport: the stream goes to (or comes from) a plain file, for
 * saving a migration to disk and for scripts/analyze-migration.py.
 */
#include "qemu/osdep.h"

#include <fcntl.h>

#include "migration/transport.h"

QIOChannel *file_transport_open(const char *path, bool writing,
                                QIOCancel *cancel, GError **errp)
{
    int fd;

    if (!path[0]) {
        error_setg(errp, "Parameter 'uri' expects a valid migration protocol");
        return NULL;
    }
    if (writing) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        error_setg(errp, "Could not open '%s': %s", path, g_strerror(errno));
        return NULL;
    }
    g_autofree char *name = g_strdup_printf("file:%s", path);
    return qio_channel_new_fd(fd, QIO_CHANNEL_FILE, name, cancel);
}
