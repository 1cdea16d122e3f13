/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Common includes every godwit source file starts with, so that feature
 * macros and the basic types are the same everywhere.
 */
#ifndef GODWIT_OSDEP_H
#define GODWIT_OSDEP_H

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "qemu/error.h"

#define GW_VERSION_MAJOR 0
#define GW_VERSION_MINOR 1
#define GW_VERSION_MICRO 0
#define GW_VERSION_STRING "0.1.0"

#define GW_PAGE_SIZE 4096ULL
#define GW_PAGE_SHIFT 12

#define GW_ROUND_UP(n, d) (((n) + (d) - 1) / (d) * (d))
#define GW_ROUND_DOWN(n, d) ((n) / (d) * (d))
#define GW_DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))

/* Thread names (Linux allows 15 characters); see docs/devel/architecture.md. */
#define GW_THREAD_VCPU_FMT       "vcpu/%d"
#define GW_THREAD_MIG_SRC_MAIN   "mig/src/main"
#define GW_THREAD_MIG_SRC_RETURN "mig/src/return"
#define GW_THREAD_MIG_DST_MAIN   "mig/dst/main"
#define GW_THREAD_MIG_DST_LISTEN "mig/dst/listen"
#define GW_THREAD_MIG_DST_FAULT  "mig/dst/fault"

/* Monotonic clock in nanoseconds / milliseconds, for durations. */
static inline int64_t gw_clock_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

static inline int64_t gw_clock_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

#endif
