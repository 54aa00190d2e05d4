/* test_common.c — the small common/ modules: range.h (RFC 9110 14.1.1/14.2),
 * httpdate.h (RFC 9110 5.6.7), cc.h (RFC 9111 5.2), mime.h, metrics.h, buf.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "common/buf.h"
#include "common/cc.h"
#include "common/err.h"
#include "common/httpdate.h"
#include "common/metrics.h"
#include "common/mime.h"
#include "common/range.h"

/* ---- range.h ----------------------------------------------------------- */

typedef struct range_case {
    const char *hdr;
    uint64_t size;
    int max;
    int rc;
    mc_range want[4];
} range_case;

#define SZ 10000

static const range_case range_cases[] = {
    /* RFC 9110 14.1.2 examples, 10000-byte representation */
    {"bytes=0-499", SZ, 4, 1, {{0, 499}}},
    {"bytes=500-999", SZ, 4, 1, {{500, 999}}},
    {"bytes=0-9", SZ, 4, 1, {{0, 9}}},
    {"bytes=9500-", SZ, 4, 1, {{9500, 9999}}},
    {"bytes=-500", SZ, 4, 1, {{9500, 9999}}},
    {"bytes=0-0,-1", SZ, 4, 2, {{0, 0}, {9999, 9999}}},
    {"bytes=500-600,601-999", SZ, 4, 2, {{500, 600}, {601, 999}}},
    {"bytes=500-700,601-999", SZ, 4, 2, {{500, 700}, {601, 999}}},   /* overlap is kept */
    /* suffix longer than the object selects all of it */
    {"bytes=-20000", SZ, 4, 1, {{0, 9999}}},
    {"bytes=-10000", SZ, 4, 1, {{0, 9999}}},
    /* last-pos beyond the end clamps */
    {"bytes=0-20000", SZ, 4, 1, {{0, 9999}}},
    {"bytes=9990-99999999999", SZ, 4, 1, {{9990, 9999}}},
    {"bytes=9999-", SZ, 4, 1, {{9999, 9999}}},
    {"bytes=9999-9999", SZ, 4, 1, {{9999, 9999}}},
    /* first-pos at or beyond the end: unsatisfiable (416) */
    {"bytes=10000-", SZ, 4, MC_E_UNSATISFIABLE, {{0, 0}}},
    {"bytes=10000-10005", SZ, 4, MC_E_UNSATISFIABLE, {{0, 0}}},
    {"bytes=20000-,30000-40000", SZ, 4, MC_E_UNSATISFIABLE, {{0, 0}}},
    {"bytes=-0", SZ, 4, MC_E_UNSATISFIABLE, {{0, 0}}},
    /* ...unless another range is satisfiable */
    {"bytes=20000-,0-1", SZ, 4, 1, {{0, 1}}},
    {"bytes=-0,5-5", SZ, 4, 1, {{5, 5}}},
    /* invalid: the header is ignored (0 => serve 200) */
    {"bytes=5-2", SZ, 4, 0, {{0, 0}}},
    {"bytes=0-1,5-2", SZ, 4, 0, {{0, 0}}},
    {"bytes=20000-,5-2", SZ, 4, 0, {{0, 0}}},
    {"items=0-1", SZ, 4, 0, {{0, 0}}},
    {"garbage", SZ, 4, 0, {{0, 0}}},
    {"", SZ, 4, 0, {{0, 0}}},
    {"bytes", SZ, 4, 0, {{0, 0}}},
    {"bytes=", SZ, 4, 0, {{0, 0}}},
    {"bytes=,", SZ, 4, 0, {{0, 0}}},
    {"bytes=-", SZ, 4, 0, {{0, 0}}},
    {"bytes=--1", SZ, 4, 0, {{0, 0}}},
    {"bytes=a-b", SZ, 4, 0, {{0, 0}}},
    {"bytes=1", SZ, 4, 0, {{0, 0}}},
    {"bytes=1-2-3", SZ, 4, 0, {{0, 0}}},
    {"bytes=0-9;x", SZ, 4, 0, {{0, 0}}},
    {"bytes=0x10-20", SZ, 4, 0, {{0, 0}}},
    {"bytes=+1-2", SZ, 4, 0, {{0, 0}}},
    {"bytes=0 -9", SZ, 4, 0, {{0, 0}}},
    {"bytes=0- 9", SZ, 4, 0, {{0, 0}}},
    {"bytes:0-9", SZ, 4, 0, {{0, 0}}},
    {"bytesx=0-9", SZ, 4, 0, {{0, 0}}},
    /* range units are case-insensitive (RFC 9110 14.1) */
    {"Bytes=0-9", SZ, 4, 1, {{0, 9}}},
    {"BYTES=0-9", SZ, 4, 1, {{0, 9}}},
    /* OWS around list commas; empty list elements (1#rule, RFC 9110 5.6.1) */
    {"bytes=0-9, 20-29", SZ, 4, 2, {{0, 9}, {20, 29}}},
    {"bytes=0-9 ,\t20-29", SZ, 4, 2, {{0, 9}, {20, 29}}},
    {"bytes=0-9,,20-29,", SZ, 4, 2, {{0, 9}, {20, 29}}},
    {"bytes=0-9 ", SZ, 4, 1, {{0, 9}}},
    /* too many satisfiable ranges */
    {"bytes=0-0,1-1,2-2", SZ, 2, MC_E_TOOBIG, {{0, 0}}},
    {"bytes=0-0,1-1", SZ, 2, 2, {{0, 0}, {1, 1}}},
    {"bytes=0-0,20000-,1-1", SZ, 2, 2, {{0, 0}, {1, 1}}},   /* unsatisfiable ones do not count */
    {"bytes=0-0,1-1,2-2,3-3", SZ, 4, 4, {{0, 0}, {1, 1}, {2, 2}, {3, 3}}},
    /* zero-length objects: no first-pos is satisfiable; a non-zero suffix is
     * satisfiable (RFC 9110 14.1.1) but selects nothing, so serve it whole */
    {"bytes=0-", 0, 4, MC_E_UNSATISFIABLE, {{0, 0}}},
    {"bytes=0-0", 0, 4, MC_E_UNSATISFIABLE, {{0, 0}}},
    {"bytes=-0", 0, 4, MC_E_UNSATISFIABLE, {{0, 0}}},
    {"bytes=-1", 0, 4, 0, {{0, 0}}},
    {"bytes=-500", 0, 4, 0, {{0, 0}}},
    {"bytes=5-2", 0, 4, 0, {{0, 0}}},
    /* one-byte objects */
    {"bytes=-1", 1, 4, 1, {{0, 0}}},
    {"bytes=0-", 1, 4, 1, {{0, 0}}},
    {"bytes=1-", 1, 4, MC_E_UNSATISFIABLE, {{0, 0}}},
    /* big objects */
    {"bytes=4294967296-", 8589934592ULL, 4, 1, {{4294967296ULL, 8589934591ULL}}},
    {"bytes=-1", UINT64_MAX, 4, 1, {{UINT64_MAX - 1, UINT64_MAX - 1}}},
};

static void test_range_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof range_cases / sizeof range_cases[0]; i++) {
        const range_case *t = &range_cases[i];
        mc_range out[4];
        memset(out, 0xee, sizeof out);
        int rc = mc_range_parse(t->hdr, t->size, out, t->max);
        if (rc != t->rc)
            fail_msg("range \"%s\" size %llu: rc %d, want %d", t->hdr, (unsigned long long)t->size, rc, t->rc);
        for (int k = 0; k < rc; k++)
            if (out[k].start != t->want[k].start || out[k].end != t->want[k].end)
                fail_msg("range \"%s\" [%d] = %llu-%llu, want %llu-%llu", t->hdr, k,
                         (unsigned long long)out[k].start, (unsigned long long)out[k].end,
                         (unsigned long long)t->want[k].start, (unsigned long long)t->want[k].end);
        for (int k = 0; k < rc; k++)
            assert_true(out[k].start <= out[k].end && out[k].end < t->size);
    }
    mc_range r;
    assert_int_equal(mc_range_parse(NULL, SZ, &r, 1), 0);
}

/* ---- httpdate.h -------------------------------------------------------- */

static const struct { time_t t; const char *s; } dates[] = {
    {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
    {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
    {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},    /* RFC 9110 5.6.7 */
    {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
    {1078012800, "Sun, 29 Feb 2004 00:00:00 GMT"},
    {1700000000, "Tue, 14 Nov 2023 22:13:20 GMT"},
    {2147483648LL, "Tue, 19 Jan 2038 03:14:08 GMT"},  /* past 32-bit time_t */
    {253402300799LL, "Fri, 31 Dec 9999 23:59:59 GMT"},
};

static void test_httpdate_format(void **state)
{
    (void)state;
    char out[MC_HTTPDATE_LEN];
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++) {
        memset(out, 'Z', sizeof out);
        mc_httpdate_format(dates[i].t, out);
        if (strcmp(out, dates[i].s) != 0)
            fail_msg("format(%lld) = \"%.*s\", want \"%s\"", (long long)dates[i].t, MC_HTTPDATE_LEN, out,
                     dates[i].s);
        assert_int_equal(strlen(out), MC_HTTPDATE_LEN - 1);
    }
    /* beyond year 9999 (and beyond gmtime's range): clamp, never overflow */
    static const time_t far[] = {253402300800LL, (time_t)INT64_MAX};
    for (size_t i = 0; i < 2; i++) {
        mc_httpdate_format(far[i], out);
        assert_string_equal(out, "Fri, 31 Dec 9999 23:59:59 GMT");
    }
}

static void test_httpdate_parse(void **state)
{
    (void)state;
    static const struct { const char *s; time_t t; } ok[] = {
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},      /* IMF-fixdate */
        {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777},     /* RFC 850 */
        {"Sun Nov  6 08:49:37 1994", 784111777},           /* asctime */
        {"Sun Nov 06 08:49:37 1994", 784111777},
        {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
        {"Thursday, 01-Jan-70 00:00:00 GMT", 0},
        {"Saturday, 01-Jan-00 00:00:00 GMT", 946684800},   /* two-digit year near now */
        {"Tue, 29 Feb 2000 00:00:00 GMT", 951782400},
        {"Tue Feb 29 00:00:00 2000", 951782400},
        {"Tue, 19 Jan 2038 03:14:08 GMT", 2147483648LL},
        {"Fri, 31 Dec 9999 23:59:59 GMT", 253402300799LL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        time_t t = 12345;
        int rc = mc_httpdate_parse(ok[i].s, &t);
        if (rc != 0 || t != ok[i].t)
            fail_msg("parse(\"%s\"): rc %d, t %lld, want %lld", ok[i].s, rc, (long long)t, (long long)ok[i].t);
    }
    static const char *const bad[] = {
        "", "garbage", "0", "784111777",
        "Sun, 06 Nov 1994 08:49:37",          /* no GMT */
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",      /* month names are case-sensitive */
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 -1:49:37 GMT",
        "Sun, 06 Nov 1994 08:-1:37 GMT",
        "Sun, 06 Nov 1994 08:49:-1 GMT",
        "Sun, 06 Nov 1899 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 06-Xyz-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37",
        "Sun Nov 32 08:49:37 1994",
        "Sun Nov  6 25:49:37 1994",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        time_t t = 12345;
        if (mc_httpdate_parse(bad[i], &t) != MC_E_INVAL)
            fail_msg("parse(\"%s\") accepted: %lld", bad[i], (long long)t);
    }
    time_t t;
    assert_int_equal(mc_httpdate_parse(NULL, &t), MC_E_INVAL);
}

static void test_httpdate_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++) {
        char out[MC_HTTPDATE_LEN];
        time_t t = 0;
        mc_httpdate_format(dates[i].t, out);
        assert_int_equal(mc_httpdate_parse(out, &t), 0);
        assert_true(t == dates[i].t);
    }
    /* one step per ~13 days across 1970..2100 */
    for (time_t t0 = 0; t0 < 4102444800LL; t0 += 1111111) {
        char out[MC_HTTPDATE_LEN];
        time_t t = -1;
        mc_httpdate_format(t0, out);
        if (mc_httpdate_parse(out, &t) != 0 || t != t0)
            fail_msg("round trip %lld -> \"%s\" -> %lld", (long long)t0, out, (long long)t);
    }
}

/* ---- cc.h ------------------------------------------------------------- */

enum {
    NO_STORE = 1 << 0, NO_CACHE = 1 << 1, PRIVATE = 1 << 2, PUBLIC = 1 << 3, MUST_REVAL = 1 << 4,
    PROXY_REVAL = 1 << 5, IMMUTABLE = 1 << 6, NO_TRANSFORM = 1 << 7, ONLY_IF_CACHED = 1 << 8,
    MUST_UNDERSTAND = 1 << 9,
};

typedef struct cc_case {
    const char *lines[3];
    int64_t max_age, s_maxage, swr, sie;
    unsigned flags;
} cc_case;

#define NA -1

static const cc_case cc_cases[] = {
    {{""}, NA, NA, NA, NA, 0},
    {{"max-age=3600"}, 3600, NA, NA, NA, 0},
    {{"max-age=0"}, 0, NA, NA, NA, 0},
    {{"s-maxage=60, max-age=600"}, 600, 60, NA, NA, 0},
    {{"stale-while-revalidate=30, stale-if-error=86400"}, NA, NA, 30, 86400, 0},
    /* quoted values are tolerated */
    {{"max-age=\"120\""}, 120, NA, NA, NA, 0},
    {{"s-maxage=\"7\", public"}, NA, 7, NA, NA, PUBLIC},
    /* duplicates keep the smallest, in either order, across lines too */
    {{"max-age=600, max-age=60"}, 60, NA, NA, NA, 0},
    {{"max-age=60, max-age=600"}, 60, NA, NA, NA, 0},
    {{"max-age=300", "max-age=100"}, 100, NA, NA, NA, 0},
    {{"s-maxage=5, s-maxage=9"}, NA, 5, NA, NA, 0},
    /* malformed delta-seconds count as present with 0 */
    {{"max-age=abc"}, 0, NA, NA, NA, 0},
    {{"max-age="}, 0, NA, NA, NA, 0},
    {{"max-age"}, 0, NA, NA, NA, 0},
    {{"max-age=-5"}, 0, NA, NA, NA, 0},
    {{"max-age=1.5"}, 0, NA, NA, NA, 0},
    {{"max-age=12abc"}, 0, NA, NA, NA, 0},
    {{"max-age=\"60"}, 0, NA, NA, NA, 0},
    {{"max-age=600, max-age=bogus"}, 0, NA, NA, NA, 0},
    {{"s-maxage=x, max-age=10"}, 10, 0, NA, NA, 0},
    /* RFC 9111 1.2.2: cap at 2^31 */
    {{"max-age=2147483648"}, 2147483648LL, NA, NA, NA, 0},
    {{"max-age=99999999999999999999999"}, 2147483648LL, NA, NA, NA, 0},
    /* boolean directives */
    {{"no-store"}, NA, NA, NA, NA, NO_STORE},
    {{"no-cache"}, NA, NA, NA, NA, NO_CACHE},
    {{"private"}, NA, NA, NA, NA, PRIVATE},
    {{"public"}, NA, NA, NA, NA, PUBLIC},
    {{"must-revalidate"}, NA, NA, NA, NA, MUST_REVAL},
    {{"proxy-revalidate"}, NA, NA, NA, NA, PROXY_REVAL},
    {{"immutable"}, NA, NA, NA, NA, IMMUTABLE},
    {{"no-transform"}, NA, NA, NA, NA, NO_TRANSFORM},
    {{"only-if-cached"}, NA, NA, NA, NA, ONLY_IF_CACHED},
    {{"max-age=3600, must-understand, no-store"}, 3600, NA, NA, NA, MUST_UNDERSTAND | NO_STORE},
    {{"public, max-age=31536000, immutable"}, 31536000, NA, NA, NA, PUBLIC | IMMUTABLE},
    {{"no-cache, no-store, must-revalidate"}, NA, NA, NA, NA, NO_CACHE | NO_STORE | MUST_REVAL},
    /* several header lines add up */
    {{"public", "max-age=300", "must-revalidate"}, 300, NA, NA, NA, PUBLIC | MUST_REVAL},
    {{"no-store", "", "private"}, NA, NA, NA, NA, NO_STORE | PRIVATE},
    /* directive names are case-insensitive */
    {{"MAX-AGE=10, No-Store, PUBLIC, S-MaxAge=3"}, 10, 3, NA, NA, NO_STORE | PUBLIC},
    /* unknown directives (with or without values) are ignored */
    {{"foo, bar=baz, max-age=5, x-y=\"1,2\", community=\"UCI\""}, 5, NA, NA, NA, 0},
    {{"no-storex, xno-cache, max-agex=5, public-ish"}, NA, NA, NA, NA, 0},
    /* commas inside quoted values do not split directives */
    {{"private=\"set-cookie, x-foo\", max-age=30"}, 30, NA, NA, NA, PRIVATE},
    {{"no-cache=\"a,b\", s-maxage=5"}, NA, 5, NA, NA, NO_CACHE},
    {{"ext=\"a, max-age=1, no-store\", max-age=50"}, 50, NA, NA, NA, 0},
    {{"ext=\"a\\\", max-age=1\", max-age=7"}, 7, NA, NA, NA, 0},   /* escaped quote */
    /* stray separators and whitespace */
    {{"  ,, max-age=30 ,\t public  ,"}, 30, NA, NA, NA, PUBLIC},
    {{","}, NA, NA, NA, NA, 0},
    {{"=5, max-age=9"}, 9, NA, NA, NA, 0},
    {{"\"quoted\", public"}, NA, NA, NA, NA, PUBLIC},
};

static unsigned cc_flags(const mc_cc *cc)
{
    return (cc->no_store ? NO_STORE : 0) | (cc->no_cache ? NO_CACHE : 0) | (cc->private_ ? PRIVATE : 0) |
           (cc->public_ ? PUBLIC : 0) | (cc->must_revalidate ? MUST_REVAL : 0) |
           (cc->proxy_revalidate ? PROXY_REVAL : 0) | (cc->immutable ? IMMUTABLE : 0) |
           (cc->no_transform ? NO_TRANSFORM : 0) | (cc->only_if_cached ? ONLY_IF_CACHED : 0) |
           (cc->must_understand ? MUST_UNDERSTAND : 0);
}

static void test_cc_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cc_cases / sizeof cc_cases[0]; i++) {
        const cc_case *t = &cc_cases[i];
        mc_cc cc;
        mc_cc_init(&cc);
        for (int l = 0; l < 3 && t->lines[l]; l++)
            mc_cc_parse(&cc, t->lines[l]);
        if (cc.max_age != t->max_age || cc.s_maxage != t->s_maxage || cc.stale_while_revalidate != t->swr ||
            cc.stale_if_error != t->sie || cc_flags(&cc) != t->flags)
            fail_msg("cc case %zu (\"%s\"...): max-age %lld s-maxage %lld swr %lld sie %lld flags %#x; "
                     "want %lld %lld %lld %lld %#x",
                     i, t->lines[0], (long long)cc.max_age, (long long)cc.s_maxage,
                     (long long)cc.stale_while_revalidate, (long long)cc.stale_if_error, cc_flags(&cc),
                     (long long)t->max_age, (long long)t->s_maxage, (long long)t->swr, (long long)t->sie,
                     t->flags);
    }
}

static void test_cc_init_and_null(void **state)
{
    (void)state;
    mc_cc cc;
    memset(&cc, 0xff, sizeof cc);
    mc_cc_init(&cc);
    assert_int_equal(cc.max_age, -1);
    assert_int_equal(cc.s_maxage, -1);
    assert_int_equal(cc.stale_while_revalidate, -1);
    assert_int_equal(cc.stale_if_error, -1);
    assert_int_equal(cc_flags(&cc), 0);
    mc_cc_parse(&cc, NULL);
    assert_int_equal(cc.max_age, -1);
}

/* ---- mime.h ----------------------------------------------------------- */

static void test_mime(void **state)
{
    (void)state;
    static const char *const octet = "application/octet-stream";
    static const struct { const char *path, *type; } cases[] = {
        {"/models/chair.glb", "model/gltf-binary"},
        {"/models/chair.gltf", "model/gltf+json"},
        {"/models/chair.bin", octet},
        {"/textures/wood.png", "image/png"},
        {"/textures/wood.jpg", "image/jpeg"},
        {"/textures/wood.jpeg", "image/jpeg"},
        {"/textures/wood.ktx2", "image/ktx2"},
        {"/textures/wood.webp", "image/webp"},
        {"/models/chair.usdz", "model/vnd.usdz+zip"},
        {"/models/chair.drc", octet},
        {"chair.glb", "model/gltf-binary"},                  /* no directory */
        /* case-insensitive */
        {"/MODELS/CHAIR.GLB", "model/gltf-binary"},
        {"/textures/Wood.PnG", "image/png"},
        {"/textures/wood.KTX2", "image/ktx2"},
        /* no extension */
        {"/models/chair", octet},
        {"/models.v2/chair", octet},                         /* a dot in a directory only */
        {"/models/chair.", octet},
        {"/models/", octet},
        {"/", octet},
        {"", octet},
        /* dotfiles have no extension; a dotfile may have one */
        {"/models/.glb", octet},
        {"/.png", octet},
        {".gltf", octet},
        {"/models/.hidden.png", "image/png"},
        /* only the last extension counts; unknown ones are octet-stream */
        {"/models/chair.glb.png", "image/png"},
        {"/models/chair.png.gz", octet},
        {"/models/chair.glbx", octet},
        {"/models/chair.gl", octet},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = mc_mime_for_path(cases[i].path);
        if (strcmp(got, cases[i].type) != 0)
            fail_msg("mime(\"%s\") = %s, want %s", cases[i].path, got, cases[i].type);
    }
}

/* ---- metrics.h --------------------------------------------------------- */

static void assert_contains(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing \"%s\" in:\n%s", line, text);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    mc_histo h;
    mc_histo_init_latency(&h);
    assert_int_equal(h.nbuckets, 14);
    for (int i = 1; i < h.nbuckets; i++)
        assert_true(h.bounds[i - 1] < h.bounds[i]);

    mc_histo_observe(&h, 0.0005);   /* le 0.001 */
    mc_histo_observe(&h, 0.001);    /* a bound belongs to its own bucket (le = "<=") */
    mc_histo_observe(&h, 0.003);    /* le 0.005 */
    mc_histo_observe(&h, 0.2);      /* le 0.25 */
    mc_histo_observe(&h, 100);      /* +Inf */
    mc_histo_observe(&h, 0);        /* le 0.001 */
    assert_int_equal(mc_counter_get(&h.counts[0]), 3);
    assert_int_equal(mc_counter_get(&h.counts[2]), 1);
    assert_int_equal(mc_counter_get(&h.counts[7]), 1);
    assert_int_equal(mc_counter_get(&h.counts[h.nbuckets]), 1);

    mc_buf b = MC_BUF_INIT;
    assert_int_equal(mc_metrics_header(&b, "meshcdn_latency_seconds", "histogram", "Request latency."), 0);
    assert_int_equal(mc_metrics_histo(&b, "meshcdn_latency_seconds", "route=\"get\"", &h), 0);
    const char *text = b.data;
    static const char head[] = "# HELP meshcdn_latency_seconds Request latency.\n"
                               "# TYPE meshcdn_latency_seconds histogram\n";
    assert_memory_equal(text, head, sizeof head - 1);
    /* cumulative buckets */
    assert_contains(text, "meshcdn_latency_seconds_bucket{route=\"get\",le=\"0.001\"} 3\n");
    assert_contains(text, "meshcdn_latency_seconds_bucket{route=\"get\",le=\"0.0025\"} 3\n");
    assert_contains(text, "meshcdn_latency_seconds_bucket{route=\"get\",le=\"0.005\"} 4\n");
    assert_contains(text, "meshcdn_latency_seconds_bucket{route=\"get\",le=\"0.1\"} 4\n");
    assert_contains(text, "meshcdn_latency_seconds_bucket{route=\"get\",le=\"0.25\"} 5\n");
    assert_contains(text, "meshcdn_latency_seconds_bucket{route=\"get\",le=\"1\"} 5\n");
    assert_contains(text, "meshcdn_latency_seconds_bucket{route=\"get\",le=\"30\"} 5\n");
    assert_contains(text, "meshcdn_latency_seconds_bucket{route=\"get\",le=\"+Inf\"} 6\n");
    assert_contains(text, "meshcdn_latency_seconds_count{route=\"get\"} 6\n");
    assert_contains(text, "meshcdn_latency_seconds_sum{route=\"get\"} 100.20");

    /* every bucket line, in order, never decreasing; then _sum and _count */
    int nlines = 0, nbucket = 0;
    unsigned long long prev = 0;
    for (const char *p = text; *p; nlines++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        if (strncmp(p, "meshcdn_latency_seconds_bucket{", 31) == 0) {
            const char *sp = memchr(p, ' ', (size_t)(nl - p));
            assert_non_null(sp);
            unsigned long long v = strtoull(sp + 1, NULL, 10);
            assert_true(v >= prev);
            prev = v;
            nbucket++;
        }
        p = nl + 1;
    }
    assert_int_equal(nbucket, h.nbuckets + 1);
    assert_int_equal(nlines, 2 + h.nbuckets + 1 + 2);
    const char *sum = strstr(text, "_sum{route=\"get\"} ");
    assert_non_null(sum);
    double s = strtod(sum + strlen("_sum{route=\"get\"} "), NULL);
    assert_true(s > 100.2044 && s < 100.2046);

    /* without labels */
    mc_buf_reset(&b);
    assert_int_equal(mc_metrics_histo(&b, "x", NULL, &h), 0);
    assert_contains(b.data, "x_bucket{le=\"0.001\"} 3\n");
    assert_contains(b.data, "x_bucket{le=\"+Inf\"} 6\n");
    assert_contains(b.data, "\nx_sum 100.20");
    assert_contains(b.data, "\nx_count 6\n");
    mc_buf_reset(&b);
    assert_int_equal(mc_metrics_histo(&b, "x", "", &h), 0);
    assert_contains(b.data, "x_bucket{le=\"0.001\"} 3\n");
    assert_contains(b.data, "\nx_count 6\n");

    /* an empty histogram renders zeros */
    mc_histo e;
    mc_histo_init_latency(&e);
    mc_buf_reset(&b);
    assert_int_equal(mc_metrics_histo(&b, "e", NULL, &e), 0);
    assert_contains(b.data, "e_bucket{le=\"+Inf\"} 0\n");
    assert_contains(b.data, "e_sum 0.000000\ne_count 0\n");
    mc_buf_free(&b);
}

static void test_metrics_values(void **state)
{
    (void)state;
    _Atomic uint64_t c = 0;
    mc_counter_add(&c, 40);
    mc_counter_add(&c, 2);
    assert_int_equal(mc_counter_get(&c), 42);

    mc_buf b = MC_BUF_INIT;
    assert_int_equal(mc_metrics_header(&b, "meshcdn_requests_total", "counter", "Requests served."), 0);
    assert_int_equal(mc_metrics_value(&b, "meshcdn_requests_total", "code=\"200\",cache=\"hit\"",
                                      (double)mc_counter_get(&c)), 0);
    assert_int_equal(mc_metrics_value(&b, "meshcdn_requests_total", NULL, 7), 0);
    assert_int_equal(mc_metrics_value(&b, "meshcdn_ratio", "", 0.5), 0);
    assert_int_equal(mc_metrics_value(&b, "meshcdn_bytes", NULL, 8589934592.0), 0);
    assert_string_equal(b.data,
                        "# HELP meshcdn_requests_total Requests served.\n"
                        "# TYPE meshcdn_requests_total counter\n"
                        "meshcdn_requests_total{code=\"200\",cache=\"hit\"} 42\n"
                        "meshcdn_requests_total 7\n"
                        "meshcdn_ratio 0.5\n"
                        "meshcdn_bytes 8589934592\n");
    mc_buf_free(&b);
}

/* ---- buf.h ------------------------------------------------------------ */

static void test_buf_basics(void **state)
{
    (void)state;
    mc_buf b = MC_BUF_INIT;
    assert_null(b.data);
    mc_buf_reset(&b);                       /* fine on an empty buffer */
    assert_null(b.data);

    assert_int_equal(mc_buf_reserve(&b, 0), 0);
    assert_non_null(b.data);
    assert_int_equal(b.data[0], '\0');       /* NUL-terminated once allocated */
    assert_int_equal(b.len, 0);

    assert_int_equal(mc_buf_append(&b, "ab", 2), 0);
    assert_int_equal(mc_buf_append(&b, NULL, 0), 0);
    assert_int_equal(mc_buf_puts(&b, "cd"), 0);
    assert_int_equal(mc_buf_putc(&b, 'e'), 0);
    assert_int_equal(mc_buf_printf(&b, "-%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "abcde-42-x");
    assert_int_equal(b.len, 10);
    assert_true(b.cap > b.len);

    size_t cap = b.cap;
    mc_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");

    /* growth past the first allocation, by every appender */
    char big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    assert_int_equal(mc_buf_append(&b, big, sizeof big), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(mc_buf_putc(&b, 'z'), 0);
    assert_int_equal(mc_buf_printf(&b, "%0500d", 7), 0);
    assert_int_equal(b.len, 1600);
    assert_int_equal(strlen(b.data), 1600);
    assert_memory_equal(b.data, big, sizeof big);
    assert_int_equal(b.data[1099], 'z');
    assert_int_equal(b.data[1599], '7');
    assert_true(b.cap >= 1601);

    /* a request that cannot fit in size_t fails cleanly and changes nothing */
    assert_int_equal(mc_buf_reserve(&b, SIZE_MAX), MC_E_NOMEM);
    assert_int_equal(mc_buf_reserve(&b, SIZE_MAX - b.len), MC_E_NOMEM);
    assert_int_equal(b.len, 1600);
    assert_int_equal(mc_buf_append(&b, "x", SIZE_MAX), MC_E_NOMEM);
    assert_int_equal(b.len, 1600);
    mc_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    mc_buf_free(&b);                        /* twice is harmless */
}

/* mc_fmt_i64 / mc_buf_put_i64 agree with printf's %lld, extremes included */
static void test_buf_i64(void **state)
{
    (void)state;
    const long long v[] = {0, 1, -1, 9, 10, 99, 100, 4096, -4096, 1234567890123LL, LLONG_MAX, LLONG_MIN};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char want[32], got[32];
        snprintf(want, sizeof want, "%lld", v[i]);
        size_t n = mc_fmt_i64(got, v[i]);
        got[n] = 0;
        assert_string_equal(got, want);
        mc_buf b = MC_BUF_INIT;
        assert_int_equal(mc_buf_puts(&b, "x"), 0);
        assert_int_equal(mc_buf_put_i64(&b, v[i]), 0);
        assert_string_equal(b.data + 1, want);
        mc_buf_free(&b);
    }
}

static void test_buf_steal(void **state)
{
    (void)state;
    mc_buf b = MC_BUF_INIT;
    char *s = mc_buf_steal(&b);             /* never NULL: an empty buffer yields "" */
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    assert_int_equal(mc_buf_puts(&b, "chair.glb"), 0);
    s = mc_buf_steal(&b);
    assert_string_equal(s, "chair.glb");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);

    /* the emptied buffer is reusable */
    assert_int_equal(mc_buf_puts(&b, "x"), 0);
    assert_string_equal(b.data, "x");
    mc_buf_free(&b);
}

static void test_hex(void **state)
{
    (void)state;
    static const unsigned char in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof in + 1];
    memset(out, 'Z', sizeof out);
    mc_hex(in, sizeof in, out);
    assert_string_equal(out, "00017f80abff");
    char empty[1] = {'Z'};
    mc_hex(in, 0, empty);
    assert_string_equal(empty, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_table),
        cmocka_unit_test(test_httpdate_format),
        cmocka_unit_test(test_httpdate_parse),
        cmocka_unit_test(test_httpdate_round_trip),
        cmocka_unit_test(test_cc_table),
        cmocka_unit_test(test_cc_init_and_null),
        cmocka_unit_test(test_mime),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_metrics_values),
        cmocka_unit_test(test_buf_basics),
        cmocka_unit_test(test_buf_steal),
        cmocka_unit_test(test_buf_i64),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
