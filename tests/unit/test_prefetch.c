/* test_prefetch.c — edge/prefetch.h's pure part: which glTF references are
 * prefetched and under which path (the one a viewer's request normalises
 * to), and which are refused (data:, absolute, outside the .gltf's
 * directory, invalid), plus the per-document limit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/path.h"
#include "edge/prefetch.h"

typedef struct resolve_case {
    const char *base;
    const char *uri;
    int rc;                 /* 0 or a skip reason */
    const char *path;       /* when rc == 0 */
    const char *query;      /* when rc == 0; NULL: none */
} resolve_case;

#define B "/models/chair/chair.gltf"
#define OK(u, p, q) {B, u, 0, p, q}
#define NO(u, why) {B, u, MC_PREFETCH_SKIP_##why, NULL, NULL}

static const resolve_case cases[] = {
    /* relative references */
    OK("chair.bin", "/models/chair/chair.bin", NULL),
    OK("./chair.bin", "/models/chair/chair.bin", NULL),
    OK("textures/wood.png", "/models/chair/textures/wood.png", NULL),
    OK("textures//wood.png", "/models/chair/textures//wood.png", NULL),   /* S3 keys keep empty segments */
    OK("a/../chair.bin", "/models/chair/chair.bin", NULL),
    OK("../chair/chair.bin", "/models/chair/chair.bin", NULL),           /* leaves and comes back */
    OK("/models/chair/abs.bin", "/models/chair/abs.bin", NULL),          /* absolute path, same directory */
    {"/models/chair/chair.gltf?v=3", "chair.bin", 0, "/models/chair/chair.bin", NULL},  /* base query ignored */
    {"/x.gltf", "x.bin", 0, "/x.bin", NULL},
    /* percent-encoding: as common/path normalises a viewer's request */
    OK("wood%20grain.png", "/models/chair/wood%20grain.png", NULL),
    OK("wood grain.png", "/models/chair/wood%20grain.png", NULL),        /* a browser encodes the space */
    OK("t%65x.png", "/models/chair/tex.png", NULL),                      /* unreserved escape decoded */
    OK("a%2fb.png", "/models/chair/a%2Fb.png", NULL),                    /* other escapes upper-cased */
    OK("caf\xc3\xa9.png", "/models/chair/caf%C3%A9.png", NULL),          /* UTF-8 encoded */
    /* query strings and fragments */
    OK("chair.bin?v=2", "/models/chair/chair.bin", "v=2"),
    OK("chair.bin?a=1&b=x y", "/models/chair/chair.bin", "a=1&b=x%20y"),
    OK("chair.bin#frag", "/models/chair/chair.bin", NULL),
    OK("chair.bin?v=2#f", "/models/chair/chair.bin", "v=2"),
    OK("chair.bin?", "/models/chair/chair.bin", NULL),
    /* data: and other origins */
    NO("data:application/octet-stream;base64,AAAA", DATA),
    NO("DATA:image/png;base64,iVBORw0KGgo=", DATA),
    NO("http://evil.example/x.bin", ABSOLUTE),
    NO("https://cdn.example/models/chair/chair.bin", ABSOLUTE),
    NO("HTTP://x/y", ABSOLUTE),
    NO("//evil.example/x.bin", ABSOLUTE),
    NO("file:///etc/passwd", ABSOLUTE),
    NO("javascript:alert(1)", ABSOLUTE),
    /* escaping the asset's directory */
    NO("../table/table.bin", OUTSIDE),
    NO("../../secret.bin", OUTSIDE),
    NO("../../../../../../etc/passwd", OUTSIDE),
    NO("%2e%2e/other.bin", OUTSIDE),                  /* encoded dot segments */
    NO(".%2E/%2e%2E/x.bin", OUTSIDE),
    NO("a/../../x.bin", OUTSIDE),
    NO("/other/x.bin", OUTSIDE),
    NO("..", OUTSIDE),
    /* not usable */
    NO("", INVALID),
    NO("#x", INVALID),
    NO("?v=1", INVALID),
    NO("chair.gltf", INVALID),                        /* itself */
    NO("\\\\evil.example\\x.bin", INVALID),
    NO("a\\..\\..\\x.bin", INVALID),
    NO("bad%zz.bin", INVALID),
    NO("nul%00.bin", INVALID),
    NO("ctl\x01.bin", INVALID),
};

static void test_resolve_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const resolve_case *c = &cases[i];
        char *path = NULL, *query = NULL;
        int rc = mc_prefetch_resolve(c->base, c->uri, &path, &query);
        if (rc != c->rc)
            fail_msg("case %zu \"%s\": rc %d, want %d (%s)", i, c->uri, rc, c->rc, path ? path : "");
        if (rc == 0) {
            if (strcmp(path, c->path) != 0)
                fail_msg("case %zu \"%s\": path \"%s\", want \"%s\"", i, c->uri, path, c->path);
            if ((query == NULL) != (c->query == NULL) || (query && strcmp(query, c->query) != 0))
                fail_msg("case %zu \"%s\": query \"%s\", want \"%s\"", i, c->uri, query ? query : "(none)",
                         c->query ? c->query : "(none)");
        } else {
            assert_null(path);
            assert_null(query);
        }
        free(path);
        free(query);
    }
}

/* The resolved path is the key a viewer's request for the same object
 * produces: normalising it again (what lookup does) changes nothing, and
 * a viewer spelling it differently lands on the same string. */
static void test_resolve_is_viewer_key(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"t%65xtures/w%6Fod.png", "/models/chair/textures/wood.png"},
        {"textures/./wood%20grain.png", "/models/chair/textures/wood%20grain.png"},
        {"x/../%7Etilde.bin", "/models/chair/~tilde.bin"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char *path, *query;
        assert_int_equal(mc_prefetch_resolve(B, pairs[i][0], &path, &query), 0);
        mc_buf again = MC_BUF_INIT, viewer = MC_BUF_INIT;
        assert_int_equal(mc_path_normalize(path, strlen(path), &again), 0);
        assert_int_equal(mc_path_normalize(pairs[i][1], strlen(pairs[i][1]), &viewer), 0);
        assert_string_equal(again.data, path);
        assert_string_equal(viewer.data, path);
        mc_buf_free(&again);
        mc_buf_free(&viewer);
        free(path);
        free(query);
    }
}

static const char doc[] =
    "{\"asset\":{\"version\":\"2.0\"},"
    "\"buffers\":[{\"uri\":\"chair.bin\",\"byteLength\":1024},"
    "{\"byteLength\":16},"                                            /* GLB-style: no uri */
    "{\"uri\":\"data:application/octet-stream;base64,AAAA\",\"byteLength\":3}],"
    "\"images\":[{\"uri\":\"textures/wood.png\"},{\"uri\":\"https://evil.example/x.png\"},"
    "{\"uri\":\"../../secret.png\"},{\"uri\":\"chair.bin\"},"         /* a duplicate */
    "{\"bufferView\":3,\"mimeType\":\"image/png\"},"                  /* embedded */
    "{\"uri\":\"textures/metal.ktx2?v=7\"},{\"uri\":42}]}";

static void test_extract(void **state)
{
    (void)state;
    mc_prefetch_refs r;
    assert_int_equal(mc_prefetch_extract(doc, sizeof doc - 1, B, 32, &r), 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.v[0].path, "/models/chair/chair.bin");
    assert_null(r.v[0].query);
    assert_string_equal(r.v[1].path, "/models/chair/textures/wood.png");
    assert_string_equal(r.v[2].path, "/models/chair/textures/metal.ktx2");
    assert_string_equal(r.v[2].query, "v=7");
    assert_int_equal(r.skipped[MC_PREFETCH_SKIP_DATA], 1);
    assert_int_equal(r.skipped[MC_PREFETCH_SKIP_ABSOLUTE], 1);
    assert_int_equal(r.skipped[MC_PREFETCH_SKIP_OUTSIDE], 1);
    assert_int_equal(r.skipped[MC_PREFETCH_SKIP_LIMIT], 0);
    mc_prefetch_refs_free(&r);
}

static void test_extract_limit(void **state)
{
    (void)state;
    mc_buf d = MC_BUF_INIT;
    mc_buf_puts(&d, "{\"asset\":{\"version\":\"2.0\"},\"images\":[");
    for (int i = 0; i < 100; i++)
        mc_buf_printf(&d, "%s{\"uri\":\"t%03d.png\"}", i ? "," : "", i);
    mc_buf_puts(&d, "]}");
    mc_prefetch_refs r;
    assert_int_equal(mc_prefetch_extract(d.data, d.len, B, 8, &r), 0);
    assert_int_equal(r.n, 8);
    assert_string_equal(r.v[7].path, "/models/chair/t007.png");
    assert_int_equal(r.skipped[MC_PREFETCH_SKIP_LIMIT], 92);
    mc_prefetch_refs_free(&r);
    assert_int_equal(mc_prefetch_extract(d.data, d.len, B, 0, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.skipped[MC_PREFETCH_SKIP_LIMIT], 100);
    mc_prefetch_refs_free(&r);
    mc_buf_free(&d);
}

static void test_extract_not_gltf(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "[1,2]", "{\"buffers\":[{\"uri\":\"a.bin\"}", "not json", "\"str\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mc_prefetch_refs r;
        assert_int_equal(mc_prefetch_extract(bad[i], strlen(bad[i]), B, 32, &r), MC_E_INVAL);
        assert_int_equal(r.n, 0);
        assert_null(r.v);
    }
    /* no buffers or images, or of the wrong type: nothing, no error */
    static const char none[] = "{\"asset\":{\"version\":\"2.0\"},\"buffers\":{\"uri\":\"a.bin\"},\"images\":7}";
    mc_prefetch_refs r;
    assert_int_equal(mc_prefetch_extract(none, sizeof none - 1, B, 32, &r), 0);
    assert_int_equal(r.n, 0);
    mc_prefetch_refs_free(&r);
}

static void test_skip_names(void **state)
{
    (void)state;
    assert_string_equal(mc_prefetch_skip_name(MC_PREFETCH_SKIP_DATA), "data");
    assert_string_equal(mc_prefetch_skip_name(MC_PREFETCH_SKIP_DOCUMENT), "document");
    assert_string_equal(mc_prefetch_skip_name(MC_PREFETCH_SKIP_N), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_table),
        cmocka_unit_test(test_resolve_is_viewer_key),
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_extract_limit),
        cmocka_unit_test(test_extract_not_gltf),
        cmocka_unit_test(test_skip_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
