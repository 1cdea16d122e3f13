/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Listening sockets, shared by the QMP server, socket chardevs and the
 * migration transports so that all three bind, reuse and report errors
 * the same way. The fds are non-blocking and close-on-exec.
 */
#ifndef GODWIT_SOCKETS_H
#define GODWIT_SOCKETS_H

#include "qemu/osdep.h"

/* Listen on a unix socket at @path (a stale socket file is replaced). */
int gw_listen_unix(const char *path, int backlog, GError **errp);

/*
 * Listen on @host:@port (@host "" or NULL: every address, dual-stack).
 * Port "0" picks a free port: @port_out gets the bound port and @actual
 * (if non-NULL) "HOST:PORT" with the host as given (IPv6 in brackets).
 */
int gw_listen_tcp(const char *host, const char *port, int backlog, char **actual,
                  int *port_out, GError **errp);

#endif
