/* test_path.c — common/path.h (normalise, decode) and the cache-key property
 * it exists for: two spellings of one path hash to one key (common/hash.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/path.h"

typedef struct path_case {
    const char *in;
    size_t len;          /* 0: strlen(in) */
    int rc;
    const char *want;    /* when rc == 0 */
} path_case;

#define OK(in, want) {in, 0, 0, want}
#define BAD(in) {in, 0, MC_E_INVAL, NULL}

static const path_case normalize_cases[] = {
    /* RFC 3986 5.2.4 dot-segment removal */
    OK("/", "/"),
    OK("/a/b/../c", "/a/c"),
    OK("/a/./b", "/a/b"),
    OK("/a/.", "/a/"),
    OK("/.", "/"),
    OK("/..", "/"),
    OK("/../..", "/"),
    OK("/../a", "/a"),
    OK("/a/..", "/"),
    OK("/a/b/..", "/a/"),
    OK("/a/b/../", "/a/"),
    OK("/a/b/../../../../c", "/c"),
    OK("/a/../b/./c/..", "/b/"),
    OK("/a/b/c/./../../g", "/a/g"),       /* RFC 3986 5.4.1 */
    OK("/a/..b/c", "/a/..b/c"),           /* not a dot segment */
    OK("/a/.b./c", "/a/.b./c"),
    OK("/a/.../c", "/a/.../c"),
    /* empty segments are distinct S3 keys: kept */
    OK("//x", "//x"),
    OK("/a//b", "/a//b"),
    OK("/a/", "/a/"),
    OK("/a//../b", "/a/b"),
    /* encoded dots are dot segments */
    OK("/a/%2e%2E/b", "/b"),
    OK("/a/%2E/b", "/a/b"),
    OK("/a/.%2e", "/"),
    OK("/%2e%2e/etc/passwd", "/etc/passwd"),
    /* unreserved escapes decoded, others upper-cased and kept */
    OK("/%41", "/A"),
    OK("/%7e%5F%2d%30", "/~_-0"),
    OK("/a%2fb", "/a%2Fb"),
    OK("/a%2F..%2Fb", "/a%2F..%2Fb"),    /* %2F is not a separator */
    OK("/a/%2f../b", "/a/%2F../b"),
    OK("/%25", "/%25"),
    OK("/%3f%23", "/%3F%23"),
    /* bytes outside the path set are encoded, upper-case hex */
    OK("/a b", "/a%20b"),
    OK("/caf\xc3\xa9.glb", "/caf%C3%A9.glb"),
    OK("/a\"<>\\^`{|}", "/a%22%3C%3E%5C%5E%60%7B%7C%7D"),
    OK("/a?b#c", "/a%3Fb%23c"),
    OK("/!$&'()*+,;=:@", "/!$&'()*+,;=:@"),
    OK("/models/chair.glb", "/models/chair.glb"),
    /* invalid */
    BAD(""),
    BAD("a/b"),
    BAD("%2Fa"),
    BAD("/a%00b"),
    BAD("/a%4"),
    BAD("/a%"),
    BAD("/a%zz"),
    BAD("/a%g1"),
    BAD("/a%1g"),
    BAD("/a\x01"),
    BAD("/a\tb"),
    BAD("/a\nb"),
    BAD("/a\x7f"),
    {"/a\0b", 4, MC_E_INVAL, NULL},      /* raw NUL inside the length */
    {"/a%41", 4, MC_E_INVAL, NULL},      /* escape cut by len */
    {"/a/..", 3, 0, "/a/"},              /* len is honoured */
};

static void test_normalize_table(void **state)
{
    (void)state;
    mc_buf b = MC_BUF_INIT;
    for (size_t i = 0; i < sizeof normalize_cases / sizeof normalize_cases[0]; i++) {
        const path_case *t = &normalize_cases[i];
        size_t len = t->len ? t->len : strlen(t->in);
        int rc = mc_path_normalize(t->in, len, &b);
        if (rc != t->rc)
            fail_msg("normalize(\"%s\"): rc %d, want %d", t->in, rc, t->rc);
        if (rc == 0) {
            if (!b.data || b.len != strlen(t->want) || memcmp(b.data, t->want, b.len + 1) != 0)
                fail_msg("normalize(\"%s\") = \"%.*s\", want \"%s\"", t->in, (int)b.len,
                         b.data ? b.data : "", t->want);
        }
    }
    mc_buf_free(&b);
}

/* Normalising a normalised path changes nothing. */
static void test_normalize_idempotent(void **state)
{
    (void)state;
    mc_buf a = MC_BUF_INIT, b = MC_BUF_INIT;
    for (size_t i = 0; i < sizeof normalize_cases / sizeof normalize_cases[0]; i++) {
        const path_case *t = &normalize_cases[i];
        if (t->rc != 0)
            continue;
        assert_int_equal(mc_path_normalize(t->want, strlen(t->want), &a), 0);
        assert_int_equal(mc_path_normalize(a.data, a.len, &b), 0);
        if (strcmp(a.data, t->want) != 0 || strcmp(b.data, a.data) != 0)
            fail_msg("normalize not idempotent on \"%s\": \"%s\" then \"%s\"", t->want, a.data, b.data);
    }
    mc_buf_free(&a);
    mc_buf_free(&b);
}

/* The output buffer is reset, not appended to, and reused across calls. */
/* The already-normal fast path agrees with the full passes: a path of
 * plain characters and dots, and the same path with one unreserved
 * character written as an escape (which takes the full passes), normalise
 * alike. Deterministic pseudo-random paths. */
static void test_normalize_fast_path_agrees(void **state)
{
    (void)state;
    static const char alpha[] = "ab.Z9-_~/!$&'()*+,;=:@";
    uint32_t x = 12345;
    mc_buf a = MC_BUF_INIT, b = MC_BUF_INIT;
    for (int round = 0; round < 20000; round++) {
        char p[40], q[48];
        size_t n = 1 + (x % 20);
        p[0] = '/';
        for (size_t i = 1; i < n; i++) {
            x = x * 1103515245u + 12345u;
            p[i] = alpha[(x >> 16) % (sizeof alpha - 1)];
        }
        p[n] = 0;
        x = x * 1103515245u + 12345u;
        /* escape the first unreserved character after the root, if any */
        size_t at = 0;
        for (size_t i = 1; i < n && !at; i++)
            if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
                p[i] == '-' || p[i] == '.' || p[i] == '_' || p[i] == '~')
                at = i;
        if (!at)
            continue;
        snprintf(q, sizeof q, "%.*s%%%02X%s", (int)at, p, (unsigned char)p[at], p + at + 1);
        assert_int_equal(mc_path_normalize(p, n, &a), 0);
        assert_int_equal(mc_path_normalize(q, strlen(q), &b), 0);
        if (strcmp(a.data, b.data) != 0)
            fail_msg("%s -> %s but %s -> %s", p, a.data, q, b.data);
    }
    mc_buf_free(&a);
    mc_buf_free(&b);
}

static void test_normalize_reuses_buffer(void **state)
{
    (void)state;
    mc_buf b = MC_BUF_INIT;
    assert_int_equal(mc_buf_puts(&b, "stale"), 0);
    assert_int_equal(mc_path_normalize("/x", 2, &b), 0);
    assert_string_equal(b.data, "/x");
    assert_int_equal(mc_path_normalize("nope", 4, &b), MC_E_INVAL);
    assert_int_equal(mc_path_normalize("/y/../z", 7, &b), 0);
    assert_string_equal(b.data, "/z");
    mc_buf_free(&b);
}

static const path_case decode_cases[] = {
    OK("", ""),
    OK("/a/b", "/a/b"),
    OK("/%41%62", "/Ab"),
    OK("/a%2fb", "/a/b"),
    OK("/a%2Fb", "/a/b"),
    OK("/a+b", "/a+b"),                  /* '+' is not a space in paths */
    OK("/a%20b", "/a b"),
    OK("/caf%C3%A9", "/caf\xc3\xa9"),
    OK("%25%32%35", "%25"),              /* decoded once, not twice */
    OK("/%2e%2e/x", "/../x"),            /* containment is the caller's job */
    BAD("/a%00"),
    BAD("/a%"),
    BAD("/a%4"),
    BAD("/a%zz"),
    BAD("/a%%41"),
    {"/a\0b", 4, MC_E_INVAL, NULL},
    {"/a%41", 4, MC_E_INVAL, NULL},
    {"/a%41zz", 5, 0, "/aA"},
};

static void test_decode_table(void **state)
{
    (void)state;
    mc_buf b = MC_BUF_INIT;
    for (size_t i = 0; i < sizeof decode_cases / sizeof decode_cases[0]; i++) {
        const path_case *t = &decode_cases[i];
        size_t len = t->len ? t->len : strlen(t->in);
        int rc = mc_path_decode(t->in, len, &b);
        if (rc != t->rc)
            fail_msg("decode(\"%s\"): rc %d, want %d", t->in, rc, t->rc);
        if (rc == 0) {
            /* an empty result is still a NUL-terminated string */
            if (b.data && b.data[b.len] != '\0')
                fail_msg("decode(\"%s\"): result is not NUL-terminated", t->in);
            if (!b.data || b.len != strlen(t->want) || memcmp(b.data, t->want, b.len + 1) != 0)
                fail_msg("decode(\"%s\") = \"%.*s\", want \"%s\"", t->in, (int)b.len,
                         b.data ? b.data : "", t->want);
        }
    }
    mc_buf_free(&b);
}

static mc_hash128 key_of(const char *path)
{
    mc_buf b = MC_BUF_INIT;
    assert_int_equal(mc_path_normalize(path, strlen(path), &b), 0);
    mc_hash128 h = mc_hash_key(b.data, b.len);
    mc_buf_free(&b);
    return h;
}

static int hash_eq(mc_hash128 a, mc_hash128 b) { return a.hi == b.hi && a.lo == b.lo; }

/* What the cache relies on: spellings of one path share one key. */
static void test_cache_key_same_path(void **state)
{
    (void)state;
    static const char *const spellings[][2] = {
        {"/models/%63hair.glb", "/models/chair.glb"},
        {"/models/./chair.glb", "/models/chair.glb"},
        {"/models/x/../chair.glb", "/models/chair.glb"},
        {"/models/%2e/chair.glb", "/models/chair.glb"},
        {"/a%2fb", "/a%2Fb"},
        {"/caf\xc3\xa9", "/caf%c3%a9"},
        {"/a b", "/a%20b"},
    };
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++)
        if (!hash_eq(key_of(spellings[i][0]), key_of(spellings[i][1])))
            fail_msg("\"%s\" and \"%s\" hash differently", spellings[i][0], spellings[i][1]);
}

static void test_cache_key_different_paths(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"/models/chair.glb", "/models/Chair.glb"},
        {"/models/chair.glb", "/models/chair.gltf"},
        {"/a/b", "/a%2Fb"},          /* an encoded slash is not a separator */
        {"//x", "/x"},
        {"/a/", "/a"},
        {"/", "/a"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (hash_eq(key_of(pairs[i][0]), key_of(pairs[i][1])))
            fail_msg("\"%s\" and \"%s\" hash equal", pairs[i][0], pairs[i][1]);
}

static void test_hash_hex_and_bytes(void **state)
{
    (void)state;
    mc_hash128 h = mc_hash_key("/models/chair.glb", 17);
    char hex[33];
    memset(hex, 'Z', sizeof hex);
    mc_hash128_hex(h, hex);
    assert_int_equal(strlen(hex), 32);
    for (int i = 0; i < 32; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            fail_msg("hex[%d] = '%c' in %s", i, hex[i], hex);

    /* deterministic, and big-endian hi then lo */
    mc_hash128 again = mc_hash_key("/models/chair.glb", 17);
    assert_true(hash_eq(h, again));
    unsigned char bytes[16];
    mc_hash128_bytes(h, bytes);
    assert_int_equal(bytes[0], (unsigned)(h.hi >> 56));
    assert_int_equal(bytes[7], (unsigned)(h.hi & 0xff));
    assert_int_equal(bytes[8], (unsigned)(h.lo >> 56));
    assert_int_equal(bytes[15], (unsigned)(h.lo & 0xff));

    mc_hash128 k = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
    mc_hash128_hex(k, hex);
    assert_string_equal(hex, "0123456789abcdeffedcba9876543210");

    assert_true(mc_hash_checksum("abc", 3) == mc_hash_checksum("abc", 3));
    assert_true(mc_hash_checksum("abc", 3) != mc_hash_checksum("abd", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_table),
        cmocka_unit_test(test_normalize_idempotent),
        cmocka_unit_test(test_normalize_reuses_buffer),
        cmocka_unit_test(test_normalize_fast_path_agrees),
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_cache_key_same_path),
        cmocka_unit_test(test_cache_key_different_paths),
        cmocka_unit_test(test_hash_hex_and_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
