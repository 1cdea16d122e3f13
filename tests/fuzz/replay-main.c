/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Replays fuzz inputs without libFuzzer, as a TAP test: every file of the
 * directories given runs once through the target's LLVMFuzzerTestOneInput.
 * Built in every build with the normal compiler, so the committed corpora
 * (seeds, and the crashes kept as regression inputs) run with the unit
 * tests, and under ASan/UBSan in a sanitizer build.
 */
#include "qemu/osdep.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gint cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);

    if (LLVMFuzzerInitialize) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            continue;           /* --tap and the like */
        }
        g_autoptr(GDir) d = g_dir_open(argv[i], 0, NULL);
        const char *name;
        if (!d) {
            g_ptr_array_add(files, g_strdup(argv[i]));
            continue;
        }
        while ((name = g_dir_read_name(d))) {
            g_ptr_array_add(files, g_build_filename(argv[i], name, NULL));
        }
    }
    g_ptr_array_sort(files, cmp_str);
    printf("1..%u\n", files->len);
    for (guint i = 0; i < files->len; i++) {
        g_autofree char *data = NULL;
        gsize len;
        const char *path = files->pdata[i];

        if (!g_file_get_contents(path, &data, &len, NULL)) {
            printf("not ok %u %s # cannot read\n", i + 1, path);
            continue;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
        printf("ok %u %s\n", i + 1, path);
        fflush(stdout);
    }
    return 0;
}
