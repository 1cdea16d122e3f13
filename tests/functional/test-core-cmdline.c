/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Core functional test of command-line errors: each bad option makes the
 * binary exit with status 1 and one line on stderr that names the problem,
 * never a crash or a hang.
 */
#include "qemu/osdep.h"

#include <sys/wait.h>

#include "libgw.h"

typedef struct BadCase {
    const char *args;       /* the bad part; "@K@" = a valid kernel */
    const char *mentions;   /* stderr must contain this */
    const char *qemu_mentions;  /* what QEMU says instead, if different */
} BadCase;

static const BadCase bad_cases[] = {
    { "-no-such-option @K@", "-no-such-option" },
    { "-m foo @K@", "foo" },
    { "-m 4Q @K@", "4Q" },
    { "-kernel /nonexistent/gw-no-such-kernel", "/nonexistent/gw-no-such-kernel" },
    { "-smp foo @K@", "smp" },
    { "-object no-such-type,id=x @K@", "no-such-type" },
    { "-object memory-backend-ram,id=x @K@", "size" },
    { "-machine no-such-machine @K@", "no-such-machine",
      "unsupported machine type" },
    { "-m", "-m" },
};

static guint count_lines(const char *s)
{
    guint n = 0;

    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

static void test_cmdline_bad(void)
{
    const char *idle = gw_require_guest("GW_IDLE_GUEST");
    g_autofree char *kernel = NULL;

    if (!idle || !gw_require_kvm()) {
        return;
    }
    kernel = g_strdup_printf("-kernel '%s'", idle);
    for (size_t i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        const BadCase *c = &bad_cases[i];
        g_auto(GStrv) parts = g_strsplit(c->args, "@K@", -1);
        g_autofree char *bad = g_strjoinv(kernel, parts);
        g_autofree char *args = g_strdup_printf(
            "-nodefaults -display none -serial none %s", bad);
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;
        g_autofree char *st = NULL;
        int status = gw_run(args, 10000, &out, &err);
        guint lines = count_lines(err);

        st = gw_describe_status(status);
        g_test_message("%s %s -> %s, stderr: %s", gw_flavour_name(), c->args,
                       st, err);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 1) {
            g_test_message("\"%s\": wanted exit status 1, got %s", c->args, st);
            g_assert_not_reached();
        }
        if (gw_flavour() == GW_FLAVOUR_QEMU && c->qemu_mentions) {
            g_assert_nonnull(strstr(err, c->qemu_mentions));
        } else {
            g_assert_nonnull(strstr(err, c->mentions));
        }
        if (lines != 1) {
            if (gw_flavour() == GW_FLAVOUR_QEMU) {
                /* QEMU adds help lines after some errors (e.g. -m). */
                g_test_message("QEMU printed %u lines for \"%s\"", lines,
                               c->args);
            } else {
                g_test_message("\"%s\": wanted one line on stderr, got %u",
                               c->args, lines);
                g_assert_cmpuint(lines, ==, 1);
            }
        }
        g_assert_true(g_str_has_suffix(err, "\n"));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/core/cmdline/bad", test_cmdline_bad);
    return g_test_run();
}
