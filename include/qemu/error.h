/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Errors travel as GError in the GW_ERROR domain; the code is the QMP error
 * class, so a failure deep in a subsystem reaches the QMP client with the
 * class QEMU would give it. Fallible functions take GError **errp last.
 */
#ifndef GODWIT_ERROR_H
#define GODWIT_ERROR_H

#include <glib.h>

typedef enum ErrorClass {
    ERROR_CLASS_GENERIC_ERROR = 0,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
    ERROR_CLASS_KVM_MISSING_CAP,
    ERROR_CLASS__MAX,
} ErrorClass;

#define GW_ERROR (gw_error_quark())
GQuark gw_error_quark(void);

/* QMP name of an error class ("GenericError", ...). */
const char *error_class_name(ErrorClass cls);

#define error_setg(errp, ...) \
    g_set_error((errp), GW_ERROR, ERROR_CLASS_GENERIC_ERROR, __VA_ARGS__)
#define error_set(errp, cls, ...) \
    g_set_error((errp), GW_ERROR, (cls), __VA_ARGS__)
/* Like error_setg, appending ": strerror(err)". */
#define error_setg_errno(errp, err, fmt, ...) \
    g_set_error((errp), GW_ERROR, ERROR_CLASS_GENERIC_ERROR, fmt ": %s", \
                ##__VA_ARGS__, g_strerror(err))

#endif
