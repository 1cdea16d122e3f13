/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Runs scripts/qapi-gen.py on malformed schemas and checks that each is
 * rejected with a message naming the file, the line and the problem; and on
 * a good schema, that it succeeds (so a broken interpreter cannot pass).
 */
#include "qemu/osdep.h"
#include <glib/gstdio.h>

typedef struct BadSchema {
    const char *name;
    const char *text;
    const char *message;    /* expected on stderr, after "qapi-gen: " */
} BadSchema;

static const BadSchema bad_schemas[] = {
    { "unknown-type", "{ 'command': 'x', 'data': { 'a': 'NoSuchType' } }\n",
      "bad.json:1: member 'a' of 'x' uses unknown type 'NoSuchType'" },
    { "double-quotes", "\n{ \"command\": \"x\" }\n",
      "bad.json:2: strings must use single quotes" },
    { "enum-clash", "{ 'enum': 'E', 'data': [ 'a-b', 'a_b' ] }\n",
      "bad.json:1: enum 'E' value 'a_b' clashes with another value" },
    { "duplicate", "{ 'command': 'x' }\n{ 'command': 'x' }\n",
      "bad.json:2: command 'x' is already defined at" },
    { "unknown-key", "{ 'struct': 'S', 'data': {}, 'bogus': true }\n",
      "bad.json:1: struct has unknown key 'bogus'" },
    { "boxed-not-struct", "{ 'command': 'x', 'boxed': true, 'data': { 'a': 'int' } }\n",
      "bad.json:1: 'data' of boxed command 'x' must name a struct type" },
    { "ambiguous-alternate", "{ 'alternate': 'A', 'data': { 'a': 'int', 'b': 'number' } }\n",
      "bad.json:1: alternate 'A' branches 'a' and 'b' cannot be told apart" },
    { "unterminated", "{ 'command': 'x',\n  'data': { 'a': 'int' }\n",
      "bad.json:3: expected ',' or '}'" },
    { "missing-include", "{ 'include': 'missing.json' }\n",
      "bad.json:1: included file 'missing.json' does not exist" },
    { "base-cycle", "{ 'struct': 'S', 'base': 'S', 'data': {} }\n",
      "bad.json:1: struct 'S' has a base cycle" },
    { "no-meta", "{ 'data': {} }\n",
      "bad.json:1: expression must have exactly one of the keys" },
    { "unclosed-doc", "##\n# @x:\n",
      "bad.json:1: doc comment is not closed with '##'" },
    { "code-in-doc", "##\n# @x:\n{ 'command': 'x' }\n",
      "bad.json:3: doc comment lines must start with '#'" },
};

static bool run_gen(const char *dir, const char *schema_text, char **err_out)
{
    g_autofree char *path = g_build_filename(dir, "bad.json", NULL);
    g_autofree char *outdir = g_build_filename(dir, "out", NULL);
    const char *argv[] = {
        PYTHON3, QAPI_GEN, "-o", outdir, "--prefix", "bad", "bad.json", NULL,
    };
    g_autoptr(GError) err = NULL;
    int status = 0;

    g_assert_true(g_file_set_contents(path, schema_text, -1, NULL));
    g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               NULL, err_out, &status, &err));
    g_assert_no_error(err);
    return g_spawn_check_wait_status(status, NULL);
}

static void test_bad(gconstpointer opaque)
{
    const BadSchema *b = opaque;
    g_autofree char *dir = g_dir_make_tmp("qapi-gen-XXXXXX", NULL);
    g_autofree char *stderr_text = NULL;
    g_autofree char *want = g_strdup_printf("qapi-gen: %s", b->message);

    g_assert_nonnull(dir);
    g_assert_false(run_gen(dir, b->text, &stderr_text));
    if (!g_str_has_prefix(stderr_text, want)) {
        g_test_message("stderr: %s", stderr_text);
    }
    g_assert_true(g_str_has_prefix(stderr_text, want));
    /* One line, one message: no Python traceback. */
    g_assert_null(strstr(stderr_text, "Traceback"));
    g_assert_cmpint(strchr(stderr_text, '\n') - stderr_text, ==, strlen(stderr_text) - 1);

    {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        g_assert_cmpint(system(cmd), ==, 0);
    }
}

static void test_good(void)
{
    g_autofree char *dir = g_dir_make_tmp("qapi-gen-XXXXXX", NULL);
    g_autofree char *stderr_text = NULL;
    g_autofree char *hdr = g_build_filename(dir, "out", "bad-commands.h", NULL);
    g_autofree char *md = g_build_filename(dir, "out", "bad-reference.md", NULL);
    g_autofree char *text = NULL;
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);

    g_assert_true(run_gen(dir,
        "##\n# @x:\n#\n# Does x.\n#\n# @a: the a\n##\n"
        "{ 'command': 'x', 'data': { 'a': 'int' }, 'returns': [ 'str' ] }\n", &stderr_text));
    g_assert_cmpstr(stderr_text, ==, "");
    g_assert_true(g_file_get_contents(hdr, &text, NULL, NULL));
    g_assert_nonnull(strstr(text, "JsonNode *qmp_x(JsonObject *args, GError **errp);"));
    g_free(text);
    g_assert_true(g_file_get_contents(md, &text, NULL, NULL));
    g_assert_nonnull(strstr(text, "| `a` | `int` | no | the a |"));
    g_assert_nonnull(strstr(text, "Does x."));
    g_assert_cmpint(system(cmd), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/gen/good", test_good);
    for (size_t i = 0; i < G_N_ELEMENTS(bad_schemas); i++) {
        g_autofree char *path = g_strdup_printf("/qapi/gen/reject/%s", bad_schemas[i].name);
        g_test_add_data_func(path, &bad_schemas[i], test_bad);
    }
    return g_test_run();
}
