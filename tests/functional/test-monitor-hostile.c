/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The monitors under hostile input: one QMP or HMP command must never
 * take the VMM down. Each test checks the error a correct monitor gives,
 * then that the VM still answers.
 */
#include "qemu/osdep.h"

#include "libgw.h"

#define BOOT_TIMEOUT_MS 60000

static GwVM *start_idle(void)
{
    const char *idle = gw_require_guest("GW_IDLE_GUEST");
    GwVM *vm;

    if (!idle || !gw_require_kvm()) {
        return NULL;
    }
    vm = gw_vm_startf("-m 32M -kernel '%s'", idle);
    gw_serial_wait_for(vm, "idle: ready", BOOT_TIMEOUT_MS);
    return vm;
}

static void assert_alive(GwVM *vm)
{
    g_autofree char *st = gw_vm_query_status(vm);

    g_assert_cmpstr(st, ==, "running");
    g_assert_true(gw_vm_running(vm));
}

/*
 * The HMP expression parser recurses per '(' and unary operator; 50,000
 * of them (100 KB, well under the 1 MiB a QMP command may be) through
 * human-monitor-command used to overflow the main thread's stack.
 */
static void test_hmp_deep_expression(void)
{
    static const char ops[] = { '(', '-', '~' };
    GwVM *vm = start_idle();

    if (!vm) {
        return;
    }
    for (size_t k = 0; k < G_N_ELEMENTS(ops); k++) {
        g_autofree char *deep = g_malloc(50001);
        g_autofree char *out = NULL;

        memset(deep, ops[k], 50000);
        deep[50000] = '\0';
        out = gw_hmp(vm, "xp /1xw %s0", deep);
        g_test_message("'%c' x 50000: %s", ops[k], out);
        if (gw_flavour() == GW_FLAVOUR_GODWIT) {
            g_assert_cmpstr(out, ==, "expression nested too deeply (more than 64 levels)\r\n"
                            "Try \"help xp\" for more information\r\n");
        }
        assert_alive(vm);
    }
    /* Sixty-four levels are still fine. */
    {
        g_autofree char *minus = g_strnfill(62, '-');
        g_autofree char *out = gw_hmp(vm, "xp /1xw %s0x1000", minus);
        g_test_message("62 x '-' then 0x1000: %s", out);
        g_assert_true(g_str_has_prefix(out, "0000000000001000: 0x"));
    }
    assert_alive(vm);
    gw_vm_free(vm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/monitor/hostile/hmp-deep-expression", test_hmp_deep_expression);
    return g_test_run();
}
