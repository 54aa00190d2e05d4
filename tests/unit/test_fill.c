/* test_fill.c — RFC 9111 storability, freshness and Age arithmetic as the
 * fill and the lookup apply them (mc_fill_freshness). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "common/httpdate.h"
#include "edge/fill.h"

#define NOW 1000000000LL

static const mc_cache_policy policy = {
    .prefix = "/", .max_ttl_s = -1, .default_ttl_s = -1, .heuristic_percent = 10,
    .heuristic_max_s = 86400, .honor_viewer_no_cache = 1};

typedef struct fresh_case {
    const char *name;
    int status;
    const char *hdrs;      /* extra header lines; "Date" is added = NOW */
    int storable;
    int64_t lifetime;
    int no_stale, no_cache, heuristic;
} fresh_case;

static void storability_and_lifetime_table(void **state)
{
    (void)state;
    char lm_10d[MC_HTTPDATE_LEN], lm_100d[MC_HTTPDATE_LEN], exp_5m[MC_HTTPDATE_LEN];
    mc_httpdate_format(NOW - 10 * 86400, lm_10d);
    mc_httpdate_format(NOW - 100 * 86400, lm_100d);
    mc_httpdate_format(NOW + 300, exp_5m);
    char lm10[80], lm100[80], exp5[80];
    snprintf(lm10, sizeof lm10, "Last-Modified: %s\r\n", lm_10d);
    snprintf(lm100, sizeof lm100, "Last-Modified: %s\r\n", lm_100d);
    snprintf(exp5, sizeof exp5, "Expires: %s\r\n", exp_5m);
    char h1[256], h2[256], h3[256], h4[256], h5[256];
    snprintf(h1, sizeof h1, "%s", lm10);
    snprintf(h2, sizeof h2, "%s", lm100);
    snprintf(h3, sizeof h3, "Cache-Control: public\r\n%s", lm10);
    snprintf(h4, sizeof h4, "%s", exp5);
    snprintf(h5, sizeof h5, "Cache-Control: max-age=60\r\n%s", exp5);
    const fresh_case cases[] = {
        {"max-age", 200, "Cache-Control: public, max-age=86400\r\n", 1, 86400, 0, 0, 0},
        {"s-maxage wins, implies proxy-revalidate", 200, "Cache-Control: max-age=60, s-maxage=600\r\n", 1, 600, 1, 0, 0},
        {"max-age wins over Expires", 200, h5, 1, 60, 0, 0, 0},
        {"Expires - Date", 200, h4, 1, 300, 0, 0, 0},
        {"invalid Expires is expired", 200, "Expires: 0\r\n", 0, 0, 0, 0, 0},
        {"heuristic 10% of 10 days", 200, h1, 1, 86400, 0, 0, 1},
        {"heuristic capped at 1 day", 200, h2, 1, 86400, 0, 0, 1},
        {"404 is heuristically cacheable", 404, h1, 1, 86400, 0, 0, 1},
        {"302 needs explicit freshness", 302, h1, 0, 0, 0, 0, 0},
        {"302 with max-age", 302, "Cache-Control: max-age=30\r\n", 1, 30, 0, 0, 0},
        {"public makes 302 heuristic", 302, h3, 1, 86400, 0, 0, 1},
        {"no freshness, no validator", 200, "", 0, 0, 0, 0, 0},
        {"206 never stored", 206, "Cache-Control: max-age=60\r\n", 0, 60, 0, 0, 0},
        {"no-store", 200, "Cache-Control: no-store, max-age=60\r\n", 0, 60, 0, 0, 0},
        {"private", 200, "Cache-Control: private, max-age=60\r\n", 0, 60, 0, 0, 0},
        {"no-cache with ETag: stored, always validated", 200, "Cache-Control: no-cache, max-age=60\r\nETag: \"a\"\r\n", 1, 60, 0, 1, 0},
        {"no-cache without validator", 200, "Cache-Control: no-cache, max-age=60\r\n", 0, 60, 0, 1, 0},
        {"max-age=0 with ETag: stored stale", 200, "Cache-Control: max-age=0\r\nETag: \"a\"\r\n", 1, 0, 0, 0, 0},
        {"max-age=0 without validator", 200, "Cache-Control: max-age=0\r\n", 0, 0, 0, 0, 0},
        {"malformed max-age reads 0", 200, "Cache-Control: max-age=abc\r\n", 0, 0, 0, 0, 0},
        {"duplicate max-age keeps the smallest", 200, "Cache-Control: max-age=600\r\nCache-Control: max-age=60\r\n", 1, 60, 0, 0, 0},
        {"must-revalidate", 200, "Cache-Control: max-age=60, must-revalidate\r\n", 1, 60, 1, 0, 0},
        {"proxy-revalidate", 200, "Cache-Control: max-age=60, proxy-revalidate\r\n", 1, 60, 1, 0, 0},
        {"Set-Cookie is not stored by default", 200, "Cache-Control: max-age=60\r\nSet-Cookie: a=b\r\n", 0, 60, 0, 0, 0},
        {"quoted max-age", 200, "Cache-Control: max-age=\"60\"\r\n", 1, 60, 0, 0, 0},
        {"huge max-age capped at 2^31", 200, "Cache-Control: max-age=99999999999999999999\r\n", 1, 2147483648LL, 0, 0, 0},
    };
    char date[MC_HTTPDATE_LEN], hdrs[1024];
    mc_httpdate_format(NOW, date);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fresh_case *c = &cases[i];
        snprintf(hdrs, sizeof hdrs, "Date: %s\r\n%s", date, c->hdrs);
        mc_fresh f;
        mc_fill_freshness(c->status, hdrs, NOW, NOW, &policy, &f);
        if (f.storable != c->storable || f.lifetime_s != c->lifetime || f.no_stale != c->no_stale ||
            f.no_cache != c->no_cache || f.heuristic != c->heuristic)
            fail_msg("%s: storable %d lifetime %lld no_stale %d no_cache %d heuristic %d (%s)", c->name,
                     f.storable, (long long)f.lifetime_s, f.no_stale, f.no_cache, f.heuristic,
                     f.why_not ? f.why_not : "-");
    }
}

static void set_cookie_strip_policy_stores(void **state)
{
    (void)state;
    mc_cache_policy strip = policy;
    strip.set_cookie_strip = 1;
    mc_fresh f;
    mc_fill_freshness(200, "Cache-Control: max-age=60\r\nSet-Cookie: a=b\r\n", NOW, NOW, &strip, &f);
    assert_true(f.storable);
}

static void stale_windows_from_response_or_policy(void **state)
{
    (void)state;
    mc_fresh f;
    mc_fill_freshness(200, "Cache-Control: max-age=60, stale-while-revalidate=30, stale-if-error=600\r\n",
                      NOW, NOW, &policy, &f);
    assert_int_equal(f.swr_s, 30);
    assert_int_equal(f.sie_s, 600);
    mc_cache_policy p = policy;
    p.default_swr_s = 5;
    p.default_sie_s = 3600;
    mc_fill_freshness(200, "Cache-Control: max-age=60\r\n", NOW, NOW, &p, &f);
    assert_int_equal(f.swr_s, 5);
    assert_int_equal(f.sie_s, 3600);
    mc_fill_freshness(200, "Cache-Control: max-age=60, stale-if-error=0\r\n", NOW, NOW, &p, &f);
    assert_int_equal(f.sie_s, 0);   /* the response's own value wins over the default */
}

/* RFC 9111 4.2.3: corrected_initial_age = max(apparent_age, age_value + response_delay). */
static void age_arithmetic(void **state)
{
    (void)state;
    char date[MC_HTTPDATE_LEN], hdrs[256];
    mc_fresh f;
    mc_httpdate_format(NOW, date);
    snprintf(hdrs, sizeof hdrs, "Date: %s\r\nAge: 100\r\nCache-Control: max-age=600\r\n", date);
    mc_fill_freshness(200, hdrs, NOW - 2, NOW, &policy, &f);
    assert_int_equal(f.initial_age_s, 102);                  /* Age + response delay */
    mc_httpdate_format(NOW - 50, date);
    snprintf(hdrs, sizeof hdrs, "Date: %s\r\nCache-Control: max-age=600\r\n", date);
    mc_fill_freshness(200, hdrs, NOW, NOW, &policy, &f);
    assert_int_equal(f.initial_age_s, 50);                   /* apparent age from Date */
    mc_httpdate_format(NOW + 50, date);                      /* a Date in the future */
    snprintf(hdrs, sizeof hdrs, "Date: %s\r\nCache-Control: max-age=600\r\n", date);
    mc_fill_freshness(200, hdrs, NOW, NOW, &policy, &f);
    assert_int_equal(f.initial_age_s, 0);
    /* an Age that is not one non-negative integer: stale at once (2^31) */
    static const char *const bad[] = {"-5", "abc", "7200.0", "0, 0", "0,7200", "7200;foo=bar", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(hdrs, sizeof hdrs, "Age: %s\r\nCache-Control: max-age=600\r\n", bad[i]);
        mc_fill_freshness(200, hdrs, NOW, NOW, &policy, &f);
        assert_int_equal(f.initial_age_s, 2147483648LL);
    }
    snprintf(hdrs, sizeof hdrs, "Age:  5 \r\nCache-Control: max-age=600\r\n");
    mc_fill_freshness(200, hdrs, NOW, NOW, &policy, &f);
    assert_int_equal(f.initial_age_s, 5);
    snprintf(hdrs, sizeof hdrs, "Age: 99999999999999999999\r\nCache-Control: max-age=600\r\n");
    mc_fill_freshness(200, hdrs, NOW, NOW, &policy, &f);
    assert_int_equal(f.initial_age_s, 2147483648LL);
}

/* CloudFront-style behavior TTLs on top of the RFC rules. */
static void behavior_ttls(void **state)
{
    (void)state;
    mc_cache_policy p = policy;
    mc_fresh f;
    p.min_ttl_s = 30;
    p.max_ttl_s = 600;
    mc_fill_freshness(200, "Cache-Control: max-age=5\r\n", NOW, NOW, &p, &f);
    assert_int_equal(f.lifetime_s, 30);
    mc_fill_freshness(200, "Cache-Control: max-age=86400\r\n", NOW, NOW, &p, &f);
    assert_int_equal(f.lifetime_s, 600);
    mc_fill_freshness(200, "Cache-Control: no-store, max-age=86400\r\n", NOW, NOW, &p, &f);
    assert_false(f.storable);                    /* min_ttl never overrides no-store */
    p = policy;
    p.default_ttl_s = 120;
    mc_fill_freshness(200, "", NOW, NOW, &p, &f);
    assert_true(f.storable);
    assert_int_equal(f.lifetime_s, 120);
    mc_fill_freshness(302, "", NOW, NOW, &p, &f);
    assert_false(f.storable);                    /* default_ttl: heuristically cacheable statuses only */
    p = policy;
    p.negative_ttl_s = 10;
    mc_fill_freshness(404, "", NOW, NOW, &p, &f);
    assert_true(f.storable);
    assert_int_equal(f.lifetime_s, 10);
    mc_fill_freshness(404, "Cache-Control: max-age=3\r\n", NOW, NOW, &p, &f);
    assert_int_equal(f.lifetime_s, 3);           /* explicit freshness wins */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(storability_and_lifetime_table),
        cmocka_unit_test(set_cookie_strip_policy_stores),
        cmocka_unit_test(stale_windows_from_response_or_policy),
        cmocka_unit_test(age_arithmetic),
        cmocka_unit_test(behavior_ttls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
