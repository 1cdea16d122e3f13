/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fd: transport. "fd:NAME" uses a descriptor the management passed with
 * the QMP getfd command; "fd:N" (a number) uses an inherited descriptor,
 * as QEMU's -incoming fd:N does.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "migration/transport.h"

/*
 * Provided by the monitor (include/monitor/qmp.h): remove the descriptor
 * stored under @name by getfd and hand it over, or fail. The weak
 * definition below only exists so that libgwmigcore links without the
 * monitor (unit tests, which may provide their own).
 */
int monitor_fd_take(const char *name, GError **errp);

__attribute__((weak)) int monitor_fd_take(const char *name, GError **errp)
{
    error_setg(errp, "File descriptor named '%s' not found", name);
    return -1;
}

int fd_transport_take(const char *name, GError **errp)
{
    if (!name[0]) {
        error_setg(errp, "Parameter 'uri' expects a valid migration protocol");
        return -1;
    }
    if (g_ascii_isdigit(name[0])) {
        char *end;
        long n = strtol(name, &end, 10);
        if (*end || n < 0 || n > INT_MAX) {
            error_setg(errp, "Invalid file descriptor number '%s'", name);
            return -1;
        }
        if (fcntl((int)n, F_GETFD) < 0) {
            error_setg(errp, "File descriptor %ld is not open", n);
            return -1;
        }
        return (int)n;
    }
    return monitor_fd_take(name, errp);
}

QIOChannelKind fd_transport_kind(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0) {
        if (S_ISSOCK(st.st_mode)) {
            return QIO_CHANNEL_SOCKET;
        }
        if (S_ISREG(st.st_mode)) {
            return QIO_CHANNEL_FILE;
        }
    }
    return QIO_CHANNEL_PIPE;
}
