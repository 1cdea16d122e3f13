/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest RAM allocation: private anonymous memory by default, or a backend
 * another process can map (memfd, a file, hugetlbfs). Nothing here touches
 * the memory unless prealloc=on: a never-written page costs nothing.
 */
#ifndef GODWIT_MEMORY_BACKEND_H
#define GODWIT_MEMORY_BACKEND_H

#include "qemu/osdep.h"
#include "hw/machine.h"
#include "sysemu/options.h"

/* @opts NULL: the default backend (private anonymous, THP allowed). */
RAMBlock *ram_block_create(const char *name, uint64_t size, const MemBackendOpts *opts,
                           GError **errp);

#endif
