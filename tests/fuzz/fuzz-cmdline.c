/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the command line parser (system/options.c). The input
 * is argv[1..] separated by NUL bytes; it is parsed as godwit's main() does
 * and the result freed.
 */
#include "qemu/osdep.h"

#include "sysemu/options.h"

#define FUZZ_MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *buf = g_malloc(size + 1);
    char *argv[FUZZ_MAX_ARGS + 2] = { (char *)"godwit" };
    int argc = 1;
    g_autoptr(GError) err = NULL;
    bool exit_now = false;

    memcpy(buf, data, size);
    buf[size] = '\0';
    for (size_t i = 0; i <= size && argc <= FUZZ_MAX_ARGS; ) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    GodwitOptions *o = godwit_options_parse(argc, argv, &exit_now, &err);
    if (o) {
        godwit_options_free(o);
    }
    return 0;
}
