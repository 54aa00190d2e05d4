/* test_segment.c — segment arithmetic (segment.h): which segments a Range
 * needs, their bounds, the probe index, Content-Range and the stored line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "edge/segment.h"

#define K 1024ull
#define SEG (256 * K)

static void count_and_bounds(void **state)
{
    (void)state;
    uint64_t s, e;
    assert_int_equal(mc_segment_count(0, SEG), 0);
    assert_int_equal(mc_segment_count(1, SEG), 1);
    assert_int_equal(mc_segment_count(SEG, SEG), 1);
    assert_int_equal(mc_segment_count(SEG + 1, SEG), 2);
    assert_int_equal(mc_segment_count(4 * SEG, SEG), 4);
    assert_int_equal(mc_segment_count(1ull << 32, 8 * K * K), 512);   /* 4 GiB in 8 MiB segments */
    assert_int_equal(mc_segment_count(100, 0), 0);
    /* exact multiple: the last segment is full */
    assert_int_equal(mc_segment_bounds(4 * SEG, SEG, 3, &s, &e), 0);
    assert_true(s == 3 * SEG && e == 4 * SEG - 1);
    /* the last one is short */
    assert_int_equal(mc_segment_bounds(3 * SEG + 10, SEG, 3, &s, &e), 0);
    assert_true(s == 3 * SEG && e == 3 * SEG + 9);
    assert_int_equal(mc_segment_bounds(3 * SEG + 10, SEG, 4, &s, &e), MC_E_INVAL);
    assert_int_equal(mc_segment_bounds(4 * SEG, SEG, 4, &s, &e), MC_E_INVAL);
    assert_int_equal(mc_segment_bounds(0, SEG, 0, &s, &e), MC_E_INVAL);
    /* past 2^32 */
    assert_int_equal(mc_segment_bounds(1ull << 33, 8 * K * K, 1000, &s, &e), 0);
    assert_true(s == 1000ull * 8 * K * K && e == 1001ull * 8 * K * K - 1);
}

typedef struct need_case {
    const char *range;      /* NULL: no Range header */
    uint64_t total;
    int n;                  /* expected count (or error) */
    uint32_t segs[8];
} need_case;

static void needed_table(void **state)
{
    (void)state;
    const uint64_t T = 4 * SEG;   /* 1 MiB: segments 0..3 */
    const need_case cases[] = {
        {NULL, T, 4, {0, 1, 2, 3}},
        {"bytes=0-0", T, 1, {0}},
        {"bytes=0-262143", T, 1, {0}},               /* exactly segment 0 */
        {"bytes=0-262144", T, 2, {0, 1}},            /* one byte over the boundary */
        {"bytes=262143-262144", T, 2, {0, 1}},       /* straddles it */
        {"bytes=262144-524287", T, 1, {1}},
        {"bytes=400000-700000", T, 2, {1, 2}},       /* the middle */
        {"bytes=-1", T, 1, {3}},                     /* suffix: the last byte */
        {"bytes=-262145", T, 2, {2, 3}},
        {"bytes=-9999999", T, 4, {0, 1, 2, 3}},      /* suffix longer than the object */
        {"bytes=1000000-", T, 1, {3}},               /* open range */
        {"bytes=0-", T, 4, {0, 1, 2, 3}},
        {"bytes=0-99999999", T, 4, {0, 1, 2, 3}},     /* end past the object: clipped */
        {"bytes=0-10,300000-300010,900000-900010", T, 3, {0, 1, 3}},   /* multi-range */
        {"bytes=0-10,20-30", T, 1, {0}},             /* two ranges, one segment */
        {"bytes=100-200,50-60", T, 4, {0, 1, 2, 3}}, /* out of order: served whole */
        {"bytes=100-200,150-300", T, 4, {0, 1, 2, 3}}, /* overlapping: whole */
        {"bytes=5-2", T, 4, {0, 1, 2, 3}},           /* invalid: ignored, whole */
        {"items=0-5", T, 4, {0, 1, 2, 3}},
        {"bytes=1048576-", T, 0, {0}},               /* unsatisfiable */
        {"bytes=1048575-1048575", T, 1, {3}},        /* the very last byte */
        {"bytes=0-10", 3 * SEG + 10, 1, {0}},
        {"bytes=786432-786441", 3 * SEG + 10, 1, {3}},   /* the short last segment */
        {"bytes=786442-", 3 * SEG + 10, 0, {0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t out[8];
        int n = mc_segment_needed(cases[i].range, cases[i].total, SEG, out, 8);
        if (n != cases[i].n)
            fail_msg("case %zu (%s): %d segments, want %d", i, cases[i].range ? cases[i].range : "none", n, cases[i].n);
        for (int j = 0; j < n; j++)
            if (out[j] != cases[i].segs[j])
                fail_msg("case %zu (%s): segment %d is %u, want %u", i, cases[i].range, j, out[j], cases[i].segs[j]);
    }
    uint32_t few[2];
    assert_int_equal(mc_segment_needed(NULL, T, SEG, few, 2), MC_E_TOOBIG);
    assert_int_equal(mc_segment_needed("bytes=0-1", 0, SEG, few, 2), 0);
}

static void probe_index(void **state)
{
    (void)state;
    assert_int_equal(mc_segment_probe_index(NULL, SEG), -1);
    assert_int_equal(mc_segment_probe_index("bytes=0-100", SEG), -1);          /* first segment: fetch whole */
    assert_int_equal(mc_segment_probe_index("bytes=262143-262144", SEG), -1);
    assert_int_equal(mc_segment_probe_index("bytes=262144-", SEG), 1);
    assert_int_equal(mc_segment_probe_index("bytes=400000-700000", SEG), 1);
    assert_int_equal(mc_segment_probe_index("bytes=700000-800000,0-5", SEG), 2);   /* the first range counts */
    assert_int_equal(mc_segment_probe_index(" bytes= 524288 -1", SEG), 2);
    assert_int_equal(mc_segment_probe_index("bytes=-500", SEG), -1);           /* suffix: position unknown */
    assert_int_equal(mc_segment_probe_index("bytes=999999999999999999999999-", SEG), -1);
    assert_int_equal(mc_segment_probe_index("bytes=300000", SEG), -1);         /* no dash: invalid */
    assert_int_equal(mc_segment_probe_index("items=300000-", SEG), -1);
    assert_int_equal(mc_segment_probe_index("bytes=300000-", 0), -1);
    assert_int_equal(mc_segment_probe_index("bytes=4294967296-", 8 * K * K), 512);
}

static void content_range(void **state)
{
    (void)state;
    uint64_t a, b, t;
    assert_int_equal(mc_segment_content_range("bytes 262144-524287/1048576", &a, &b, &t), 0);
    assert_true(a == 262144 && b == 524287 && t == 1048576);
    assert_int_equal(mc_segment_content_range("  bytes 0-0/1 ", &a, &b, &t), 0);
    assert_true(a == 0 && b == 0 && t == 1);
    assert_int_equal(mc_segment_content_range("bytes 0-9/*", &a, &b, &t), MC_E_INVAL);
    assert_int_equal(mc_segment_content_range("bytes */100", &a, &b, &t), MC_E_INVAL);
    assert_int_equal(mc_segment_content_range("bytes 5-4/100", &a, &b, &t), MC_E_INVAL);
    assert_int_equal(mc_segment_content_range("bytes 0-100/100", &a, &b, &t), MC_E_INVAL);
    assert_int_equal(mc_segment_content_range("bytes 0-9/100x", &a, &b, &t), MC_E_INVAL);
    assert_int_equal(mc_segment_content_range("items 0-9/100", &a, &b, &t), MC_E_INVAL);
    assert_int_equal(mc_segment_content_range("bytes 0-99999999999999999999999/1", &a, &b, &t), MC_E_INVAL);
    assert_int_equal(mc_segment_content_range("", &a, &b, &t), MC_E_INVAL);
}

static void keys_and_info(void **state)
{
    (void)state;
    char ks[64];
    mc_segment_keystr("/big/huge.glb", 7, ks, sizeof ks);
    assert_string_equal(ks, "/big/huge.glb\n#seg:7");
    uint64_t t, s;
    assert_int_equal(mc_segment_info("ETag: \"a\"\r\nMeshcdn-Segments: 1048576 262144\r\n", &t, &s), 0);
    assert_true(t == 1048576 && s == 262144);
    assert_int_equal(mc_segment_info("ETag: \"a\"\r\n", &t, &s), MC_E_INVAL);
    assert_int_equal(mc_segment_info("Meshcdn-Segments: 1048576 0\r\n", &t, &s), MC_E_INVAL);
    assert_int_equal(mc_segment_info("Meshcdn-Segments: 1048576 1000\r\n", &t, &s), MC_E_INVAL);   /* not whole chunks */
    assert_int_equal(mc_segment_info("Meshcdn-Segments: 1048576\r\n", &t, &s), MC_E_INVAL);
    assert_int_equal(mc_segment_info("Meshcdn-Segments: x 262144\r\n", &t, &s), MC_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(count_and_bounds), cmocka_unit_test(needed_table), cmocka_unit_test(probe_index),
        cmocka_unit_test(content_range), cmocka_unit_test(keys_and_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
