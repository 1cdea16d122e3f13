/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for the QMP streaming JSON splitter and writer: concatenated
 * and split input, QEMU's single-quoted strings, syntax errors and recovery,
 * the size and nesting limits, and the output format.
 */
#include "qemu/osdep.h"
#include "qapi/qmp-json.h"

typedef struct Collect {
    GPtrArray *out;     /* "value text" or "ERR: message" */
} Collect;

static void collect(void *opaque, JsonNode *value, const GError *err)
{
    Collect *c = opaque;

    if (err) {
        g_ptr_array_add(c->out, g_strdup_printf("ERR: %s", err->message));
    } else {
        g_ptr_array_add(c->out, qmp_json_to_string(value));
        json_node_unref(value);
    }
}

/* Feed @text in pieces of @chunk bytes (0 = all at once); return the outputs joined by '|'. */
static char *split_run(const char *text, size_t len, size_t chunk, bool *limit_hit)
{
    Collect c = { g_ptr_array_new_with_free_func(g_free) };
    QmpJsonStreamer *s = qmp_json_streamer_new(collect, &c, QMP_JSON_MAX_MESSAGE,
                                               QMP_JSON_MAX_DEPTH);
    char *joined;
    bool ok = true;

    if (chunk == 0) {
        chunk = len ? len : 1;
    }
    for (size_t off = 0; off < len && ok; off += chunk) {
        GError *err = NULL;
        ok = qmp_json_streamer_feed(s, text + off, MIN(chunk, len - off), &err);
        if (!ok) {
            g_ptr_array_add(c.out, g_strdup_printf("LIMIT: %s", err->message));
            g_error_free(err);
        }
    }
    if (limit_hit) {
        *limit_hit = !ok;
    }
    g_ptr_array_add(c.out, NULL);
    joined = g_strjoinv("|", (char **)c.out->pdata);
    g_ptr_array_free(c.out, TRUE);
    qmp_json_streamer_free(s);
    return joined;
}

static void expect(const char *input, const char *want)
{
    g_autofree char *got = split_run(input, strlen(input), 0, NULL);

    g_assert_cmpstr(got, ==, want);
}

static void test_concatenated(void)
{
    expect("{\"a\": 1}{\"b\": 2} \r\n{\"c\":[3]}", "{\"a\": 1}|{\"b\": 2}|{\"c\": [3]}");
    expect("{\"execute\":\"qmp_capabilities\"}\n", "{\"execute\": \"qmp_capabilities\"}");
    /* Scalars at top level are values too (the server rejects them later). */
    expect("5 \"s\" [1] true null ", "5|\"s\"|[1]|true|null");
    expect("", "");
    expect("   \n\t", "");
}

static void test_split_everywhere(void)
{
    const char *msg =
        "{\"execute\": \"x\", \"arguments\": {\"s\": \"}{\\\"][\\\\'\", "
        "\"n\": [1, 2.5, -3e2, true, false, null, {}, []], "
        "\"u\": \"\\u00e9\\ud83d\\ude00\\n\", 'q': 'it\\'s \"quoted\"'}, \"id\": [1]}";
    g_autofree char *whole = split_run(msg, strlen(msg), 0, NULL);

    g_assert_cmpstr(whole, ==,
        "{\"execute\": \"x\", \"arguments\": {\"s\": \"}{\\\"][\\\\'\", "
        "\"n\": [1, 2.5, -300.0, true, false, null, {}, []], "
        "\"u\": \"\xc3\xa9\xf0\x9f\x98\x80\\n\", \"q\": \"it's \\\"quoted\\\"\"}, \"id\": [1]}");
    /* Every chunk size gives the same single value. */
    for (size_t chunk = 1; chunk <= strlen(msg); chunk++) {
        g_autofree char *got = split_run(msg, strlen(msg), chunk, NULL);
        g_assert_cmpstr(got, ==, whole);
    }
}

static void test_single_quotes(void)
{
    expect("{'execute': 'query-status'}", "{\"execute\": \"query-status\"}");
    expect("{'a': 'say \"hi\"', \"b\": \"it's\"}", "{\"a\": \"say \\\"hi\\\"\", \"b\": \"it's\"}");
}

static void test_errors_and_recovery(void)
{
    /* QEMU reports two errors for this line: the keyword, then the brace. */
    expect("garbage}{\"a\": 1}",
           "ERR: JSON parse error, invalid keyword 'garbage'|"
           "ERR: JSON parse error, expecting value|{\"a\": 1}");
    /* An error inside a value skips to its end, then parsing resumes. */
    expect("{\"a\": tru}{\"b\": 2}", "ERR: JSON parse error, invalid keyword 'tru'|{\"b\": 2}");
    expect("{\"a\": \"}\", \"b\": [1, ]}{\"ok\": 1}",
           "ERR: JSON parse error, expecting value|{\"ok\": 1}");
    expect("{\"a\": 1, \"a\": 2}", "ERR: JSON parse error, duplicate key");
    expect("{\"a\" 1}", "ERR: JSON parse error, missing : in object pair");
    expect("{,}", "ERR: JSON parse error, key is not a string in object");
    expect("{1: 2}", "ERR: JSON parse error, key is not a string in object");
    expect("[1 2]", "ERR: JSON parse error, expected separator in list");
    expect("{\"a\": 1 \"b\": 2}", "ERR: JSON parse error, expected separator in dict");
    expect("{\"a\": \"\\x\"}", "ERR: JSON parse error, invalid escape sequence in string");
    /* The broken string is still read to its end, then the next value parses. */
    expect("{\"a\": \"\\x}{\"}{\"b\": 1}",
           "ERR: JSON parse error, invalid escape sequence in string|{\"b\": 1}");
    expect("[\"\\ud800\"][\"\\u12\"][1]",
           "ERR: JSON parse error, invalid \\u escape (not a valid surrogate pair)|"
           "ERR: JSON parse error, invalid escape sequence in string|[1]");
    expect("{\"a\": \"\\u0000\"}", "ERR: JSON parse error, \\u0000 is not supported");
    expect("{\"a\": \"\\udc00\"}",
           "ERR: JSON parse error, invalid \\u escape (not a valid surrogate pair)");
    expect("{\"a\": \"\xff\"}", "ERR: JSON parse error, invalid UTF-8 sequence in string");
    expect("{\"a\": \"line\nbreak\"}", "ERR: JSON parse error, control character in string");
    expect("{\"a\": 01}", "ERR: JSON parse error, invalid number '01'");
    expect("@", "ERR: JSON parse error, stray '@'");
    expect("]", "ERR: JSON parse error, expecting value");
    /* Brackets inside strings of a broken value do not confuse the skip. */
    expect("{\"a\": x, \"b\": \"}}}\"}{\"c\": 3}",
           "ERR: JSON parse error, invalid keyword 'x'|{\"c\": 3}");
}

static void test_big_integers(void)
{
    /* Up to UINT64_MAX integers keep their bits; beyond, they become floats. */
    expect("[9223372036854775807, -9223372036854775808, 18446744073709551615]",
           "[9223372036854775807, -9223372036854775808, -1]");
    expect("[18446744073709551616, -9223372036854775809]",
           "[1.8446744073709552e+19, -9.223372036854776e+18]");
}

static void test_huge(void)
{
    GString *big = g_string_new("{\"execute\": \"x\", \"arguments\": {\"s\": \"");
    g_autofree char *got = NULL;
    bool limit = false;

    while (big->len <= QMP_JSON_MAX_MESSAGE) {
        g_string_append(big, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    g_string_append(big, "\"}}");
    got = split_run(big->str, big->len, 4096, &limit);
    g_assert_true(limit);
    g_assert_true(g_str_has_prefix(got, "LIMIT: JSON parse error, message larger than"));
    g_free(g_steal_pointer(&got));

    /* Just below the limit still works. */
    g_string_truncate(big, 0);
    g_string_append(big, "{\"s\": \"");
    while (big->len < QMP_JSON_MAX_MESSAGE - 64) {
        g_string_append_c(big, 'y');
    }
    g_string_append(big, "\"}");
    got = split_run(big->str, big->len, 65536, &limit);
    g_assert_false(limit);
    g_assert_true(g_str_has_prefix(got, "{\"s\": \"yyy"));
    g_string_free(big, TRUE);
}

static void test_deep(void)
{
    GString *deep = g_string_new(NULL);
    g_autofree char *got = NULL;
    bool limit = false;

    for (int i = 0; i < QMP_JSON_MAX_DEPTH; i++) {
        g_string_append_c(deep, '[');
    }
    for (int i = 0; i < QMP_JSON_MAX_DEPTH; i++) {
        g_string_append_c(deep, ']');
    }
    got = split_run(deep->str, deep->len, 0, &limit);
    g_assert_false(limit);
    g_assert_true(g_str_has_prefix(got, "[[[["));
    g_free(g_steal_pointer(&got));

    g_string_prepend_c(deep, '[');
    g_string_append_c(deep, ']');
    got = split_run(deep->str, deep->len, 100, &limit);
    g_assert_true(limit);
    g_assert_cmpstr(got, ==, "LIMIT: JSON parse error, nesting deeper than 1024 levels");
    g_string_free(deep, TRUE);
}

static void test_writer(void)
{
    expect("[1.5, 1.0, 0.1, -0.0, 1e300]", "[1.5, 1.0, 0.1, -0.0, 1e+300]");
    expect("{\"s\": \"tab\\there\\u0001\\\\\"}", "{\"s\": \"tab\\there\\u0001\\\\\"}");
    expect("{\"nested\": {\"a\": [], \"b\": {}}}", "{\"nested\": {\"a\": [], \"b\": {}}}");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/json/concatenated", test_concatenated);
    g_test_add_func("/qmp/json/split-everywhere", test_split_everywhere);
    g_test_add_func("/qmp/json/single-quotes", test_single_quotes);
    g_test_add_func("/qmp/json/errors-and-recovery", test_errors_and_recovery);
    g_test_add_func("/qmp/json/big-integers", test_big_integers);
    g_test_add_func("/qmp/json/huge-message", test_huge);
    g_test_add_func("/qmp/json/deep-nesting", test_deep);
    g_test_add_func("/qmp/json/writer", test_writer);
    return g_test_run();
}
