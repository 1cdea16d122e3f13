/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fault injection for /migration/source/query-while-ending (LD_PRELOAD):
 * every g_free() made by the source migration thread sleeps 3 ms after
 * freeing, so a reader that still holds a pointer the thread just freed
 * reads freed memory almost every time instead of once in a million
 * (with MALLOC_PERTURB_ the bytes it reads are obviously wrong).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

void g_free(void *p);

void g_free(void *p)
{
    static void (*real)(void *);
    char name[16];

    if (!real) {
        real = (void (*)(void *))dlsym(RTLD_NEXT, "g_free");
    }
    real(p);
    if (p && pthread_getname_np(pthread_self(), name, sizeof(name)) == 0 &&
        !strcmp(name, "mig/src/main")) {
        usleep(3000);
    }
}
