/* test_etcdjson.c — etcd v3 JSON gateway bodies and answers
 * (origin/etcdjson.h): base64 both ways, prefix range ends, the exact
 * request JSON the etcd backend sends, and answers as etcd 3.4.23 wrote
 * them (captured with curl against a real member). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "common/buf.h"
#include "common/err.h"
#include "origin/etcdjson.h"

static char *dump(json_t *o)
{
    assert_non_null(o);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    assert_non_null(s);
    return s;
}

static void expect_json(json_t *o, const char *want)
{
    char *s = dump(o);
    assert_string_equal(s, want);
    free(s);
}

static void test_base64(void **state)
{
    (void)state;
    static const struct {
        const char *plain;
        const char *b64;
    } cases[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"/meshcdn/seq", "L21lc2hjZG4vc2Vx"}, {"/m/seq", "L20vc2Vx"},
    };
    mc_buf b = MC_BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_buf_reset(&b);
        assert_int_equal(mc_etcd_b64(cases[i].plain, strlen(cases[i].plain), &b), 0);
        assert_string_equal(b.data ? b.data : "", cases[i].b64);
        assert_int_equal(mc_etcd_unb64(cases[i].b64, &b), 0);
        assert_int_equal(b.len, strlen(cases[i].plain));
        assert_memory_equal(b.data, cases[i].plain, b.len);
    }
    const unsigned char bin[] = {0, 0xff, 0x10, 0};
    mc_buf_reset(&b);
    assert_int_equal(mc_etcd_b64(bin, sizeof bin, &b), 0);
    mc_buf back = MC_BUF_INIT;
    assert_int_equal(mc_etcd_unb64(b.data, &back), 0);
    assert_int_equal(back.len, sizeof bin);
    assert_memory_equal(back.data, bin, sizeof bin);
    assert_int_equal(mc_etcd_unb64("Zm9", &back), MC_E_INVAL);     /* not padded */
    assert_int_equal(mc_etcd_unb64("Zm9*", &back), MC_E_INVAL);    /* not base64 */
    mc_buf_free(&b);
    mc_buf_free(&back);
}

static void test_prefix_end(void **state)
{
    (void)state;
    mc_buf b = MC_BUF_INIT;
    assert_int_equal(mc_etcd_prefix_end("/meshcdn/log/", &b), 0);
    assert_string_equal(b.data, "/meshcdn/log0");
    assert_int_equal(b.len, 13);
    assert_int_equal(mc_etcd_prefix_end("a\xff", &b), 0);   /* 0xff carries */
    assert_string_equal(b.data, "b");
    assert_int_equal(mc_etcd_prefix_end("", &b), 0);        /* every key: "\0" */
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 0);
    mc_buf_free(&b);
}

static void test_requests(void **state)
{
    (void)state;
    expect_json(mc_etcd_range("/m/seq", NULL, 0, false), "{\"key\":\"L20vc2Vx\"}");
    expect_json(mc_etcd_range("/m/log/", "/m/log0", 10, true),
                "{\"key\":\"L20vbG9nLw==\",\"limit\":\"10\",\"range_end\":\"L20vbG9nMA==\","
                "\"sort_order\":\"DESCEND\",\"sort_target\":\"KEY\"}");
    expect_json(mc_etcd_op_put("/m/seq", "5", 0),
                "{\"request_put\":{\"key\":\"L20vc2Vx\",\"value\":\"NQ==\"}}");
    expect_json(mc_etcd_op_put("/m/a", "", 7587880447616395529),
                "{\"request_put\":{\"key\":\"L20vYQ==\",\"lease\":\"7587880447616395529\","
                "\"value\":\"\"}}");
    expect_json(mc_etcd_op_delete("/m/log/1", "/m/log/3"),
                "{\"request_delete_range\":{\"key\":\"L20vbG9nLzE=\",\"range_end\":"
                "\"L20vbG9nLzM=\"}}");
    expect_json(mc_etcd_cmp("/m/seq", "MOD", "EQUAL", 0, NULL),
                "{\"key\":\"L20vc2Vx\",\"mod_revision\":\"0\",\"result\":\"EQUAL\","
                "\"target\":\"MOD\"}");
    expect_json(mc_etcd_cmp("/m/seq", "VALUE", "LESS", 0, "7"),
                "{\"key\":\"L20vc2Vx\",\"result\":\"LESS\",\"target\":\"VALUE\","
                "\"value\":\"Nw==\"}");
    assert_null(mc_etcd_cmp("/m/seq", "LEASE", "EQUAL", 0, NULL));   /* not supported */
    json_t *cmp = json_array(), *ok = json_array();
    json_array_append_new(cmp, mc_etcd_cmp("/m/seq", "VERSION", "EQUAL", 0, NULL));
    json_array_append_new(ok, mc_etcd_op_range(mc_etcd_range("/m/seq", NULL, 0, false)));
    expect_json(mc_etcd_txn(cmp, ok, NULL),
                "{\"compare\":[{\"key\":\"L20vc2Vx\",\"result\":\"EQUAL\",\"target\":"
                "\"VERSION\",\"version\":\"0\"}],\"success\":[{\"request_range\":{\"key\":"
                "\"L20vc2Vx\"}}]}");
}

static void test_answers(void **state)
{
    (void)state;
    /* a failed txn with its failure branch's range, as etcd 3.4.23 sent it:
     * "succeeded" absent (false), int64s as strings */
    const char *txn =
        "{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":"
        "\"3319814642761637952\",\"revision\":\"2\",\"raft_term\":\"2\"},\"responses\":"
        "[{\"response_range\":{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":"
        "\"L20vc2Vx\",\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
        "\"value\":\"NQ==\"}],\"count\":\"1\"}}]}";
    json_t *a = json_loads(txn, 0, NULL);
    assert_non_null(a);
    assert_false(json_is_true(json_object_get(a, "succeeded")));
    mc_etcd_kv *kv;
    size_t n;
    assert_int_equal(mc_etcd_kvs(mc_etcd_txn_range(a, 0), &kv, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(kv[0].key, "/m/seq");
    assert_string_equal(kv[0].value, "5");
    assert_int_equal(kv[0].vlen, 1);
    assert_int_equal(kv[0].mod_revision, 2);
    assert_int_equal(kv[0].version, 1);
    assert_int_equal(kv[0].lease, 0);
    mc_etcd_kvs_free(kv, n);
    assert_null(mc_etcd_txn_range(a, 1));
    assert_int_equal(mc_etcd_int(json_object_get(a, "header"), "raft_term"), 2);
    json_decref(a);

    /* an empty range: no "kvs" at all */
    a = json_loads("{\"header\":{\"revision\":\"2\"}}", 0, NULL);
    assert_int_equal(mc_etcd_kvs(a, &kv, &n), 0);
    assert_int_equal(n, 0);
    assert_null(kv);
    json_decref(a);
    /* not base64: refused */
    a = json_loads("{\"kvs\":[{\"key\":\"@@@@\",\"value\":\"NQ==\"}]}", 0, NULL);
    assert_int_equal(mc_etcd_kvs(a, &kv, &n), MC_E_INVAL);
    json_decref(a);
    /* a lease grant: {"ID":"...","TTL":"5"} */
    a = json_loads("{\"ID\":\"2324035605356375561\",\"TTL\":\"5\"}", 0, NULL);
    assert_int_equal(mc_etcd_int(a, "ID"), 2324035605356375561);
    assert_int_equal(mc_etcd_int(a, "TTL"), 5);
    assert_int_equal(mc_etcd_int(a, "missing"), 0);
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_prefix_end),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
