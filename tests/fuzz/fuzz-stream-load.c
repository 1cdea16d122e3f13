/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the destination's stream loader. The input is a whole
 * incoming stream (header, CONFIG, records, commands, packages); it is
 * loaded into a 1 MiB RAM block in plain memory with godwit's RAM and UART
 * loaders, through the same command checks and, after a postcopy RUN, the
 * listen thread's view of the rest. The postcopy commands are accepted
 * without userfaultfd (pages then load as in precopy): the target is the
 * parsing and the checks, not the kernel.
 */
#include "qemu/osdep.h"
#include "fuzz-machine.h"

#include "migration/savevm.h"

static MigConfig *local;

static int fz_open_return_path(void *opaque, GError **errp)
{
    return 0;
}

static int fz_ping(void *opaque, uint32_t value, GError **errp)
{
    return 0;
}

static int fz_advise(void *opaque, uint64_t summary, uint64_t target, GError **errp)
{
    if (summary != GW_PAGE_SIZE || target != GW_PAGE_SIZE) {
        error_setg(errp, "page size mismatch");
        return -1;
    }
    return 0;
}

static int fz_discard(void *opaque, const char *block, const MigDiscardRange *r,
                      unsigned n, GError **errp)
{
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(block, "pc.ram") || r[i].start >= FUZZ_RAM_SIZE ||
            r[i].length > FUZZ_RAM_SIZE - r[i].start) {
            error_setg(errp, "bad discard");
            return -1;
        }
    }
    return 0;
}

static int fz_listen(void *opaque, GError **errp)
{
    return 0;
}

static int fz_run(void *opaque, GError **errp)
{
    return LOADVM_QUIT;
}

static const LoadVMCommandOps incoming_ops = {
    .open_return_path = fz_open_return_path,
    .ping = fz_ping,
    .postcopy_advise = fz_advise,
    .postcopy_discard = fz_discard,
    .postcopy_listen = fz_listen,
    .postcopy_run = fz_run,
};

static const LoadVMCommandOps listen_ops = {
    .ping = fz_ping,
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_machine();
    local = fuzz_machine_config();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GError) err = NULL;
    MigStream *s = stream_new_mem_reader(data, size, false);
    LoadVMState *st = loadvm_state_new(local, &incoming_ops, NULL);

    if (loadvm_read_header(st, s, &err)) {
        LoadVMResult r = loadvm_main(st, s, &err);
        if (r == LOADVM_EOF) {
            loadvm_post_load_all(st);
        } else if (r == LOADVM_QUIT) {
            /* After RUN the listen thread reads on: its view of the load state. */
            LoadVMState *f = loadvm_state_fork(st, &listen_ops, NULL);
            g_clear_error(&err);
            loadvm_main(f, s, &err);
            loadvm_state_free(f);
        }
    }
    loadvm_state_free(st);
    stream_free(s);
    return 0;
}
