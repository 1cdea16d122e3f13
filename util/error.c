/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The GW_ERROR domain and the QMP names of its error classes. */
#include "qemu/osdep.h"

G_DEFINE_QUARK(godwit-error-quark, gw_error)

const char *error_class_name(ErrorClass cls)
{
    static const char *const names[ERROR_CLASS__MAX] = {
        [ERROR_CLASS_GENERIC_ERROR] = "GenericError",
        [ERROR_CLASS_COMMAND_NOT_FOUND] = "CommandNotFound",
        [ERROR_CLASS_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
        [ERROR_CLASS_DEVICE_NOT_FOUND] = "DeviceNotFound",
        [ERROR_CLASS_KVM_MISSING_CAP] = "KVMMissingCap",
    };
    if ((unsigned)cls >= ERROR_CLASS__MAX) {
        return names[ERROR_CLASS_GENERIC_ERROR];
    }
    return names[cls];
}
