/* test_inval.c — the invalidation body shared by POST /purge and POST
 * /invalidations (common/inval.h): accepted shapes, and each refusal's code
 * and exact message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/inval.h"

static void test_parse_body_table(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *code;      /* NULL: accepted */
        const char *message;   /* exact message when refused */
    } cases[] = {
        {"{\"paths\":[\"/a.glb\",\"/models/chair/*\"],\"surrogate_keys\":[\"chair\"],"
         "\"all\":false,\"soft\":true}", NULL, NULL},
        {"{\"all\":true}", NULL, NULL},
        {"{\"surrogate_keys\":[\"sku-123\"]}", NULL, NULL},
        {"{\"paths\":[\"/x\"],\"surrogate_keys\":null}", NULL, NULL},
        {"{\"paths\":[\"/a\"", "MalformedJSON", NULL},
        {"", "MalformedJSON", NULL},
        {"[\"/a\"]", "MalformedJSON", "The body must be a JSON object."},
        {"{\"paths\":[\"/a\"],\"path\":[]}", "UnknownField",
         "Unknown field \"path\"; expected paths, surrogate_keys, all, soft."},
        {"{}", "EmptyInvalidation", "Nothing to invalidate: give at least one path, one "
         "surrogate key, or \"all\": true."},
        {"{\"paths\":[],\"surrogate_keys\":[],\"all\":false}", "EmptyInvalidation", NULL},
        {"{\"paths\":[\"a.glb\"]}", "InvalidPath", "Path \"a.glb\" does not start with '/'."},
        {"{\"paths\":[\"\"]}", "InvalidPath", "Path \"\" does not start with '/'."},
        {"{\"paths\":[\"/a*b\"]}", "InvalidPath",
         "Path \"/a*b\": '*' is only allowed as the last character (a prefix)."},
        {"{\"paths\":[\"/a\\nb\"]}", "InvalidPath", NULL},
        {"{\"paths\":\"/a\"}", "BadRequest", "\"paths\" must be an array of strings."},
        {"{\"paths\":[1]}", "BadRequest", "\"paths\" must be an array of strings."},
        {"{\"surrogate_keys\":[\"a b\"]}", "BadRequest", "Surrogate key \"a b\" contains a "
         "space or control character (keys are tokens)."},
        {"{\"surrogate_keys\":[\"\"]}", "BadRequest", "A surrogate key is empty."},
        {"{\"all\":\"yes\"}", "BadRequest", "\"all\" must be true or false."},
        {"{\"all\":true,\"soft\":1}", "BadRequest", "\"soft\" must be true or false."},
        {"{\"all\":true,\"all\":false}", "MalformedJSON", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_inval in;
        mc_inval_error e;
        int rc = mc_inval_parse(cases[i].body, strlen(cases[i].body), &in, &e);
        if (!cases[i].code) {
            if (rc != 0)
                fail_msg("case %zu refused: %s %s", i, e.code, e.message);
            mc_inval_free(&in);
            continue;
        }
        if (rc != MC_E_INVAL)
            fail_msg("case %zu accepted: %s", i, cases[i].body);
        assert_int_equal(e.status, 400);
        if (strcmp(e.code, cases[i].code) != 0)
            fail_msg("case %zu: code %s, want %s (%s)", i, e.code, cases[i].code, e.message);
        if (cases[i].message && strcmp(e.message, cases[i].message) != 0)
            fail_msg("case %zu: message \"%s\"", i, e.message);
        assert_null(in.paths);
    }
}

static void test_parse_body_limits(void **state)
{
    (void)state;
    mc_buf b = MC_BUF_INIT;
    mc_buf_puts(&b, "{\"paths\":[");
    for (int i = 0; i < 3000; i++)
        mc_buf_printf(&b, "%s\"/p%d\"", i ? "," : "", i);
    mc_buf_puts(&b, "],\"surrogate_keys\":[]}");
    mc_inval in;
    mc_inval_error e;
    assert_int_equal(mc_inval_parse(b.data, b.len, &in, &e), 0);
    assert_int_equal(in.npaths, 3000);
    mc_inval_free(&in);
    /* one more, as a key: 3001 in all */
    b.len -= 3;
    mc_buf_puts(&b, "[\"k\"]}");
    assert_int_equal(mc_inval_parse(b.data, b.len, &in, &e), MC_E_INVAL);
    assert_string_equal(e.code, "BadRequest");
    assert_string_equal(e.message, "Too many paths and surrogate keys: at most 3000 in one "
                                   "invalidation.");
    mc_buf_reset(&b);
    mc_buf_puts(&b, "{\"paths\":[\"/");
    for (int i = 0; i < 1024; i++)
        mc_buf_putc(&b, 'x');
    mc_buf_puts(&b, "\"]}");
    assert_int_equal(mc_inval_parse(b.data, b.len, &in, &e), MC_E_INVAL);
    assert_string_equal(e.code, "InvalidPath");
    mc_buf_free(&b);
}

static void test_parse_keeps_values(void **state)
{
    (void)state;
    const char *body = "{\"paths\":[\"/a.glb\",\"/m/*\"],\"surrogate_keys\":[\"chair\"],"
                       "\"all\":true,\"soft\":true}";
    mc_inval in;
    mc_inval_error e;
    assert_int_equal(mc_inval_parse(body, strlen(body), &in, &e), 0);
    assert_int_equal(in.npaths, 2);
    assert_string_equal(in.paths[1], "/m/*");
    assert_int_equal(in.nkeys, 1);
    assert_string_equal(in.keys[0], "chair");
    assert_true(in.all);
    assert_true(in.soft);
    assert_int_equal(in.seq, 0);
    mc_inval_free(&in);
    mc_inval_free(&in);   /* idempotent */
}

static void test_load_object_for_other_bodies(void **state)
{
    (void)state;
    static const char *const allowed[] = {"node", "seq", NULL};
    json_t *o = NULL;
    mc_inval_error e;
    const char *ok = "{\"node\":\"edge-a\",\"seq\":3}";
    assert_int_equal(mc_inval_load_object(ok, strlen(ok), allowed, "node, seq", &o, &e), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 3);
    json_decref(o);
    const char *bad = "{\"node\":\"edge-a\",\"sequence\":3}";
    assert_int_equal(mc_inval_load_object(bad, strlen(bad), allowed, "node, seq", &o, &e),
                     MC_E_INVAL);
    assert_null(o);
    assert_string_equal(e.code, "UnknownField");
    assert_string_equal(e.message, "Unknown field \"sequence\"; expected node, seq.");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_body_table),
        cmocka_unit_test(test_parse_body_limits),
        cmocka_unit_test(test_parse_keeps_values),
        cmocka_unit_test(test_load_object_for_other_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
