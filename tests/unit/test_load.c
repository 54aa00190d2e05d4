/* test_load.c — meshcdn-load run/simulate building blocks: the Zipf and
 * uniform generators against their formulas, determinism and the shift, the
 * latency histogram on known data, every cache policy on hand-computed
 * traces, trace and option parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "tests/load/histo.h"
#include "tests/load/httpc.h"
#include "tests/load/run.h"
#include "tests/load/scrape.h"
#include "tests/load/optimum.h"
#include "tests/load/opts.h"
#include "tests/load/sim.h"
#include "tests/load/workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Zipf ------------------------------------------------------------------ */

/* Draws `samples` ranks over n objects and checks them against
 * P(r) = r^-alpha / H(n, alpha): Pearson's chi-square over all n ranks must
 * stay under the 99.9% critical value of chi2(n-1) (Wilson-Hilferty), and
 * each of the top 10 ranks within 4% of its expected count (>= 4 sigma at
 * these sample sizes). The seed is fixed, so a pass is deterministic; the
 * bounds say how far from the formula a broken sampler would have to stray. */
static void check_zipf(double alpha, size_t n, size_t samples)
{
    mc_wl w;
    char why[256];
    assert_int_equal(mc_wl_init(&w, MC_WL_ZIPF, n, alpha, 42, MC_WL_NO_SHIFT, why, sizeof why), 0);
    uint64_t *count = calloc(n + 1, sizeof *count);
    assert_non_null(count);
    for (size_t i = 0; i < samples; i++) {
        uint64_t r = mc_wl_zipf_rank(&w);
        assert_true(r >= 1 && r <= n);
        count[r]++;
    }
    double h = 0;
    for (size_t r = 1; r <= n; r++)
        h += pow((double)r, -alpha);
    double chi2 = 0;
    for (size_t r = 1; r <= n; r++) {
        double expect = (double)samples * pow((double)r, -alpha) / h;
        chi2 += ((double)count[r] - expect) * ((double)count[r] - expect) / expect;
        if (r <= 10) {
            double rel = fabs((double)count[r] / expect - 1);
            if (rel > 0.04)
                fail_msg("alpha %g rank %zu: %llu draws, expected %.0f (%.1f%% off)", alpha, r,
                         (unsigned long long)count[r], expect, rel * 100);
        }
    }
    double k = (double)(n - 1), z = 3.09;   /* 99.9% one-sided */
    double crit = k * pow(1 - 2 / (9 * k) + z * sqrt(2 / (9 * k)), 3);
    if (chi2 > crit)
        fail_msg("alpha %g: chi-square %.1f over %zu ranks > %.1f", alpha, chi2, n, crit);
    free(count);
    mc_wl_free(&w);
}

static void zipf_matches_formula(void **state)
{
    check_zipf(0.9, 100, 1000000);
    check_zipf(0.6, 1000, 1000000);
    check_zipf(1.0, 50, 500000);     /* the harmonic case: H's closed form differs */
    check_zipf(1.3, 200, 500000);
    check_zipf(0.0, 20, 200000);     /* alpha 0: uniform */
}

static void zipf_is_deterministic_by_seed(void **state)
{
    mc_wl a, b, c;
    assert_int_equal(mc_wl_init(&a, MC_WL_ZIPF, 1000, 0.9, 7, MC_WL_NO_SHIFT, NULL, 0), 0);
    assert_int_equal(mc_wl_init(&b, MC_WL_ZIPF, 1000, 0.9, 7, MC_WL_NO_SHIFT, NULL, 0), 0);
    assert_int_equal(mc_wl_init(&c, MC_WL_ZIPF, 1000, 0.9, 8, MC_WL_NO_SHIFT, NULL, 0), 0);
    int same = 1, differs = 0;
    for (int i = 0; i < 10000; i++) {
        uint32_t x = mc_wl_next(&a, 0), y = mc_wl_next(&b, 0), z = mc_wl_next(&c, 0);
        same &= x == y;
        differs |= x != z;
    }
    assert_true(same);
    assert_true(differs);
    /* the permutation is seeded: rank 1 is not object 0 for every seed */
    assert_int_not_equal(mc_wl_object_at_rank(&a, 0, 1), mc_wl_object_at_rank(&c, 0, 1));
    mc_wl_free(&a);
    mc_wl_free(&b);
    mc_wl_free(&c);
}

static void shift_changes_the_hot_set(void **state)
{
    mc_wl w;
    assert_int_equal(mc_wl_init(&w, MC_WL_ZIPF, 500, 1.0, 3, 1000, NULL, 0), 0);
    uint32_t hot0 = mc_wl_object_at_rank(&w, 0, 1), hot1 = mc_wl_object_at_rank(&w, 1, 1);
    assert_int_not_equal(hot0, hot1);
    unsigned before[2] = {0, 0}, after[2] = {0, 0};
    for (uint64_t clock = 0; clock < 2000; clock++) {
        uint32_t id = mc_wl_next(&w, clock);
        unsigned *c = clock < 1000 ? before : after;
        c[0] += id == hot0;
        c[1] += id == hot1;
    }
    /* rank 1 takes ~15% of the draws at alpha 1 over 500 objects */
    assert_true(before[0] > 100 && before[1] < 30);
    assert_true(after[1] > 100 && after[0] < 30);
    mc_wl_free(&w);
}

static void drift_moves_the_hot_set_step_by_step(void **state)
{
    (void)state;
    mc_wl w;
    /* alpha 20: rank 1 takes all but ~1e-6 of the draws, so a draw is rank 1 */
    assert_int_equal(mc_wl_init(&w, MC_WL_ZIPF, 50, 20.0, 3, MC_WL_NO_SHIFT, NULL, 0), 0);
    assert_int_equal(mc_wl_set_drift(&w, 100, 3), 0);
    for (uint64_t p = 0; p < 40; p++) {
        /* period p: rank 1 is the object that was rank 3p+1 at the start,
         * counted from the cold end (the coldest become the hottest) */
        uint32_t want = mc_wl_object_at_rank(&w, 0, (50 - p * 3 % 50) % 50 + 1);
        assert_int_equal(mc_wl_next(&w, p * 100), want);
        assert_int_equal(mc_wl_next(&w, p * 100 + 99), want);
    }
    /* last period's hottest is now rank 4 (moved down by the step) */
    uint32_t hot = mc_wl_next(&w, 0);
    assert_int_not_equal(mc_wl_next(&w, 100), hot);
    assert_int_equal(mc_wl_set_drift(&w, 10, 0), MC_E_INVAL);
    assert_int_equal(mc_wl_set_drift(&w, 0, 0), 0);
    assert_int_equal(mc_wl_next(&w, 12345), hot);
    mc_wl_free(&w);
}

static void uniform_and_bad_parameters(void **state)
{
    mc_wl w;
    char why[256];
    assert_int_equal(mc_wl_init(&w, MC_WL_UNIFORM, 10, 0, 1, MC_WL_NO_SHIFT, why, sizeof why), 0);
    unsigned count[10] = {0};
    for (int i = 0; i < 100000; i++)
        count[mc_wl_next(&w, 0)]++;
    for (int i = 0; i < 10; i++)
        assert_true(count[i] > 9500 && count[i] < 10500);
    mc_wl_free(&w);
    assert_int_equal(mc_wl_init(&w, MC_WL_ZIPF, 0, 0.9, 1, MC_WL_NO_SHIFT, why, sizeof why), MC_E_INVAL);
    assert_int_equal(mc_wl_init(&w, MC_WL_ZIPF, 10, -1, 1, MC_WL_NO_SHIFT, why, sizeof why), MC_E_INVAL);
    assert_non_null(strstr(why, "--zipf"));
}

/* ---- traces ---------------------------------------------------------------- */

static void trace_parses_paths_sizes_and_comments(void **state)
{
    static const char text[] = "# a comment\n\n/a 10\n/b\r\n  /a\t5\n/c 7";
    mc_trace t;
    char why[256];
    assert_int_equal(mc_trace_parse(&t, text, sizeof text - 1, "t", why, sizeof why), 0);
    assert_int_equal(t.n, 4);
    assert_int_equal(t.objs.n, 3);
    assert_string_equal(t.objs.paths[0], "/a");
    assert_int_equal(t.objs.sizes[0], 10);   /* first size wins */
    assert_int_equal(t.objs.sizes[1], 0);    /* unknown */
    assert_int_equal(t.objs.sizes[2], 7);
    uint32_t ids[] = {0, 1, 0, 2};
    assert_memory_equal(t.ids, ids, sizeof ids);
    mc_wl w;
    assert_int_equal(mc_wl_init_trace(&w, &t), 0);
    for (int i = 0; i < 6; i++)   /* wraps */
        assert_int_equal(mc_wl_next(&w, 0), ids[i % 4]);
    mc_trace_free(&t);
}

static void trace_errors_name_the_line(void **state)
{
    static const struct { const char *text; size_t len; const char *want; } cases[] = {
        {"/a 1\nb 2\n", 9, "t:2: path must start with '/'"},
        {"/a 1x\n", 6, "t:1: unexpected text after the size"},
        {"/a x\n", 5, "t:1: size is not a decimal byte count"},
        {"/a 1 2\n", 7, "t:1: unexpected text after the size"},
        {"/a 99999999999999999999999\n", 27, "t:1: size too large"},
        {"# only\n\n", 8, "t: no requests"},
        {"", 0, "t: no requests"},
        {"/a\0b\n", 5, "t:1: NUL byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_trace t;
        char why[256] = "";
        assert_int_equal(mc_trace_parse(&t, cases[i].text, cases[i].len, "t", why, sizeof why), MC_E_INVAL);
        if (strcmp(why, cases[i].want) != 0)
            fail_msg("case %zu: \"%s\", want \"%s\"", i, why, cases[i].want);
        assert_null(t.ids);
    }
    char *long_path = malloc(MC_WL_PATH_MAX + 3);
    assert_non_null(long_path);
    memset(long_path, 'x', MC_WL_PATH_MAX + 2);
    long_path[0] = '/';
    mc_trace t;
    char why[256];
    assert_int_equal(mc_trace_parse(&t, long_path, MC_WL_PATH_MAX + 2, "t", why, sizeof why), MC_E_INVAL);
    assert_non_null(strstr(why, "longer than"));
    free(long_path);
    assert_int_equal(mc_trace_load(&t, "/nonexistent/trace", why, sizeof why), MC_E_IO);
}

static void index_file_loads(void **state)
{
    char path[] = "/tmp/test_load_index_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char body[] = "{\"seed\":1,\"count\":2,\"objects\":[{\"path\":\"/m/a.glb\",\"size\":100,"
                               "\"type\":\"model/gltf-binary\"},\n{\"path\":\"/m/b.bin\",\"size\":7}]}";
    assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    mc_objset s;
    char why[256];
    assert_int_equal(mc_objset_load_index(&s, path, why, sizeof why), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.paths[1], "/m/b.bin");
    assert_int_equal(s.sizes[0], 100);
    mc_objset_free(&s);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"objects\":[{\"path\":\"x\",\"size\":1}]}", f);
    fclose(f);
    assert_int_equal(mc_objset_load_index(&s, path, why, sizeof why), MC_E_INVAL);
    assert_non_null(strstr(why, "objects[0]"));
    unlink(path);
}

/* ---- histogram ------------------------------------------------------------- */

static void histo_percentiles_on_known_data(void **state)
{
    mc_histo_us h, lo, hi;
    mc_histo_us_init(&h);
    mc_histo_us_init(&lo);
    mc_histo_us_init(&hi);
    assert_int_equal(mc_histo_us_percentile(&h, 50), 0);
    for (uint64_t v = 1; v <= 100000; v++) {
        mc_histo_us_record(&h, v);
        mc_histo_us_record(v <= 50000 ? &lo : &hi, v);
    }
    static const struct { double q, want; } cases[] = {
        {50, 50000}, {90, 90000}, {99, 99000}, {99.9, 99900}, {0.1, 100},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got = (double)mc_histo_us_percentile(&h, cases[i].q);
        if (fabs(got / cases[i].want - 1) > 0.005)
            fail_msg("p%g = %.0f, want %.0f within 0.5%%", cases[i].q, got, cases[i].want);
    }
    assert_int_equal(mc_histo_us_percentile(&h, 100), 100000);
    assert_int_equal(h.min_us, 1);
    assert_true(fabs(mc_histo_us_mean(&h) - 50000.5) < 1e-6);
    mc_histo_us_merge(&lo, &hi);
    assert_memory_equal(&lo, &h, sizeof h);
    /* exact below 256 us: 1..200 -> p50 is 100 exactly */
    mc_histo_us_init(&h);
    for (uint64_t v = 1; v <= 200; v++)
        mc_histo_us_record(&h, v);
    assert_int_equal(mc_histo_us_percentile(&h, 50), 100);
    /* 60 s and beyond the range: max exact, percentile within a bucket */
    mc_histo_us_init(&h);
    mc_histo_us_record(&h, 60000000);
    mc_histo_us_record(&h, MC_HISTO_MAX_US * 4);
    assert_int_equal(mc_histo_us_percentile(&h, 100), MC_HISTO_MAX_US * 4);
    assert_true(fabs((double)mc_histo_us_percentile(&h, 50) / 60e6 - 1) < 0.005);
}

static void histo_buckets_are_contiguous_and_narrow(void **state)
{
    uint64_t prev_hi = 0;
    for (unsigned b = 1; b < MC_HISTO_BUCKETS; b++) {
        uint64_t lo, hi;
        mc_histo_us_range(b, &lo, &hi);
        assert_int_equal(lo, prev_hi + 1);
        assert_int_equal(mc_histo_us_bucket(lo), b);
        assert_int_equal(mc_histo_us_bucket(hi), b);
        assert_true((double)(hi - lo) <= (double)lo / 128);
        prev_hi = hi;
    }
    assert_int_equal(prev_hi, MC_HISTO_MAX_US - 1);
}

/* ---- simulators ------------------------------------------------------------ */

typedef struct sim_case {
    const char *name;
    const char *trace;          /* object letters, one request each */
    uint64_t sizes[26];         /* by letter; 0 = 1 */
    uint64_t capacity;
    uint64_t hits[MC_SIM_POLICY_COUNT];       /* lru fifo sieve s3fifo belady */
    uint64_t hit_bytes_belady;
} sim_case;

/* Hand-computed; the comments give the reasoning. */
static const sim_case sim_cases[] = {
    /* The textbook 3-frame string 1 2 3 4 1 2 5 1 2 3 4 5: LRU 10 faults,
     * FIFO 9 (Belady's anomaly example), OPT 7. SIEVE: the hand evicts 1, 2,
     * 3, 4 unvisited; 1 and 2 are hit and spared once, then 5, 1, 2 go.
     * S3-FIFO: small = 0 bytes, so every object goes to main, a FIFO with
     * reinsertion: 1 and 2, hit at t7 and t8, are reinserted once when 3
     * arrives (5 goes), then 4 and 5 push them out: 2 hits. */
    {"classic", "ABCDABEABCDE", {0}, 3, {2, 3, 2, 2, 5}, 5},
    /* Mixed sizes, capacity 100: A50 B50 C100. LRU and FIFO thrash (C
     * pushes both out, A and B push C out); Belady refuses C (its next use
     * is the furthest) and hits A, B twice; SIEVE never sees a hit, so it
     * thrashes too; S3-FIFO: every object is larger than small (10 bytes)
     * and main's FIFO thrashes the same way. */
    {"mixed", "ABCABCAB", {50, 50, 100}, 100, {0, 0, 0, 0, 4}, 200},
    /* An object larger than the cache is never admitted. */
    {"too-big", "ZZZ", {['Z' - 'A'] = 200}, 100, {0, 0, 0, 0, 0}, 0},
    /* S3-FIFO scan resistance, capacity 10 unit objects (small 1, main 9):
     * A is hit while in small and survives the scan B..K in main; LRU
     * loses A to the scan (A is least recent when K arrives). */
    {"scan", "AABCDEFGHIJKA", {0}, 10, {1, 1, 2, 2, 2}, 2},
};

static void sims_match_hand_computed_traces(void **state)
{
    for (size_t i = 0; i < sizeof sim_cases / sizeof sim_cases[0]; i++) {
        const sim_case *c = &sim_cases[i];
        size_t n = strlen(c->trace);
        uint32_t ids[64];
        uint64_t sizes[26];
        for (size_t k = 0; k < n; k++)
            ids[k] = (uint32_t)(c->trace[k] - 'A');
        for (int k = 0; k < 26; k++)
            sizes[k] = c->sizes[k] ? c->sizes[k] : 1;
        mc_sim_input in = {.n_objects = 26, .sizes = sizes, .n_requests = n, .ids = ids, .capacity = c->capacity};
        for (int p = 0; p < MC_SIM_POLICY_COUNT; p++) {
            mc_sim_result r;
            assert_int_equal(mc_sim_run(&in, (mc_sim_policy)p, &r), 0);
            assert_int_equal(r.requests, n);
            if (r.hits != c->hits[p])
                fail_msg("%s: %s hits %llu, want %llu", c->name, mc_sim_policy_name((mc_sim_policy)p),
                         (unsigned long long)r.hits, (unsigned long long)c->hits[p]);
            if (p == MC_SIM_BELADY)
                assert_int_equal(r.hit_bytes, c->hit_bytes_belady);
        }
    }
}

/* On a random Zipf trace with unit sizes Belady is optimal, so it must beat
 * or equal every online policy; warm-up requests are not counted. */
static void belady_bounds_online_policies_on_unit_sizes(void **state)
{
    enum { N = 2000, R = 50000 };
    uint64_t *sizes = malloc(N * sizeof *sizes);
    uint32_t *ids = malloc(R * sizeof *ids);
    assert_true(sizes && ids);
    mc_wl w;
    assert_int_equal(mc_wl_init(&w, MC_WL_ZIPF, N, 0.8, 5, MC_WL_NO_SHIFT, NULL, 0), 0);
    for (int i = 0; i < N; i++)
        sizes[i] = 1;
    for (int i = 0; i < R; i++)
        ids[i] = mc_wl_next(&w, (uint64_t)i);
    mc_sim_input in = {.n_objects = N, .sizes = sizes, .n_requests = R, .ids = ids, .capacity = 100,
                       .warmup = 1000};
    mc_sim_result res[MC_SIM_POLICY_COUNT];
    for (int p = 0; p < MC_SIM_POLICY_COUNT; p++) {
        assert_int_equal(mc_sim_run(&in, (mc_sim_policy)p, &res[p]), 0);
        assert_int_equal(res[p].requests, R - 1000);
    }
    for (int p = 0; p < MC_SIM_BELADY; p++)
        assert_true(res[MC_SIM_BELADY].hits >= res[p].hits);
    assert_true(res[MC_SIM_LRU].hits > res[MC_SIM_FIFO].hits);
    assert_true(res[MC_SIM_SIEVE].hits > res[MC_SIM_LRU].hits);   /* the SIEVE paper's claim on Zipf */
    mc_wl_free(&w);
    free(sizes);
    free(ids);
    mc_sim_input bad = in;
    bad.capacity = 0;
    assert_int_equal(mc_sim_run(&bad, MC_SIM_LRU, &res[0]), MC_E_INVAL);
}

/* ---- the optimum next to a run ----------------------------------------------- */

/* Sets target t's recorded sequence to the letters of seq (A = object 0). */
static void set_sent(mc_run_result *r, size_t t, const char *seq, size_t warmup)
{
    size_t n = strlen(seq);
    r->targets[t].sent = calloc(n, sizeof *r->targets[t].sent);
    assert_non_null(r->targets[t].sent);
    for (size_t k = 0; k < n; k++)
        r->targets[t].sent[k] = (uint32_t)(seq[k] - 'A');
    r->targets[t].n_sent = r->targets[t].cap_sent = n;
    r->targets[t].sent_warmup = warmup;
}

static uint64_t opt_hits(const mc_optimum_size *s, mc_sim_policy p)
{
    for (int i = 0; i < MC_OPTIMUM_N; i++)
        if (mc_optimum_policies[i] == p)
            return s->res[i].hits;
    fail_msg("policy %d not compared", (int)p);
    return 0;
}

/* Pins what `run` prints next to its hit ratio, on sequences small enough
 * to compute by hand, as the run records them (per target, warm-up first). */
static void optimum_of_recorded_sequences(void **state)
{
    static char p0[] = "/a", p1[] = "/b", p2[] = "/c";
    char *paths[26];
    uint64_t sizes[26];
    for (int k = 0; k < 26; k++) {
        paths[k] = k == 0 ? p0 : k == 1 ? p1 : p2;
        sizes[k] = 1;
    }
    mc_objset objs = {.n = 26, .paths = paths, .sizes = sizes};
    mc_run_opts o = {.n_targets = 2, .objs = &objs};
    strcpy(o.targets[0].url, "http://127.0.0.1:1");
    strcpy(o.targets[1].url, "http://127.0.0.1:2");
    mc_run_result *r = calloc(1, sizeof *r);
    mc_optimum_report *opt = calloc(1, sizeof *opt);
    assert_true(r && opt);

    /* --cache-size 3 (unit objects). Target 0: the textbook string
     * ABCDABEABCDE (see sim_cases): Belady 5 hits, LRU, SIEVE, S3-FIFO 2.
     * Target 1: AB warm-up then ABAB: 4 measured hits for every policy. */
    set_sent(r, 0, "ABCDABEABCDE", 0);
    set_sent(r, 1, "ABABAB", 2);
    assert_int_equal(mc_optimum_compute(&o, r, sizes, 26, 3, opt), 0);
    assert_true(opt->targets[0].done && opt->targets[1].done && opt->total.done);
    assert_false(opt->total.from_metrics || opt->total.have_full);
    assert_int_equal(opt->targets[0].at.cache_size, 3);
    assert_int_equal(opt_hits(&opt->targets[0].at, MC_SIM_BELADY), 5);
    assert_int_equal(opt_hits(&opt->targets[0].at, MC_SIM_LRU), 2);
    assert_int_equal(opt_hits(&opt->targets[0].at, MC_SIM_SIEVE), 2);
    assert_int_equal(opt_hits(&opt->targets[0].at, MC_SIM_S3FIFO), 2);
    assert_int_equal(opt->targets[1].at.res[0].requests, 4);
    assert_int_equal(opt_hits(&opt->targets[1].at, MC_SIM_LRU), 4);
    assert_int_equal(opt->total.requests, 18);
    assert_int_equal(opt->total.warmup, 2);
    assert_int_equal(opt->total.at.res[0].requests, 16);
    assert_int_equal(opt_hits(&opt->total.at, MC_SIM_BELADY), 9);
    assert_int_equal(opt_hits(&opt->total.at, MC_SIM_LRU), 6);
    assert_int_equal(opt->total.at.cache_size, 3);
    assert_string_equal(mc_optimum_policy_label(0), "Belady");

    /* From /metrics: a 1000-byte store, 100-byte objects. The edge evicts
     * above 80%, so 8 objects fit there and 10 in the whole store. A cyclic
     * scan of 10 objects twice: at 8, LRU, SIEVE and S3-FIFO (objects
     * larger than its 80-byte small queue go to main, a FIFO without hits)
     * miss everything; Belady bypasses I and J and hits A..H in the second
     * pass (8). At the whole 1000, every policy hits the second pass (10). */
    for (int k = 0; k < 26; k++)
        sizes[k] = 100;
    mc_run_result_free(r);
    memset(r, 0, sizeof *r);
    o.n_targets = 1;
    set_sent(r, 0, "ABCDEFGHIJABCDEFGHIJ", 0);
    r->targets[0].have_metrics = 1;
    mc_scrape_parse("meshcdn_edge_store_size_bytes 1000\n", &r->targets[0].after);
    assert_int_equal(mc_optimum_effective_size(1000), 800);
    assert_int_equal(mc_optimum_compute(&o, r, sizes, 26, 0, opt), 0);
    const mc_optimum_target *t = &opt->total;
    assert_true(t->done && t->from_metrics && t->have_full);
    assert_int_equal(t->store_size, 1000);
    assert_int_equal(t->at.cache_size, 800);
    assert_int_equal(t->full.cache_size, 1000);
    assert_int_equal(opt_hits(&t->at, MC_SIM_BELADY), 8);
    assert_int_equal(opt_hits(&t->at, MC_SIM_LRU), 0);
    assert_int_equal(opt_hits(&t->at, MC_SIM_SIEVE), 0);
    assert_int_equal(opt_hits(&t->at, MC_SIM_S3FIFO), 0);
    for (int i = 0; i < MC_OPTIMUM_N; i++)
        assert_int_equal(t->full.res[i].hits, 10);
    assert_int_equal(t->at.res[0].hit_bytes, 800);
    /* --cache-size wins over the store size; no "whole store" then */
    assert_int_equal(mc_optimum_compute(&o, r, sizes, 26, 900, opt), 0);
    assert_true(opt->total.done && !opt->total.from_metrics && !opt->total.have_full);
    assert_int_equal(opt_hits(&opt->total.at, MC_SIM_BELADY), 9);

    /* Not simulated, with the reason: no size known, no metrics, an object
     * of unknown size (a trace line without SIZE), an incomplete record. */
    r->targets[0].have_metrics = 0;
    assert_int_equal(mc_optimum_compute(&o, r, sizes, 26, 0, opt), 0);
    assert_false(opt->total.done);
    assert_non_null(strstr(opt->total.why, "--cache-size"));
    assert_null(strstr(opt->total.why, "http://"));   /* the HTML report shows it and links to nothing */
    sizes[1] = 0;
    assert_int_equal(mc_optimum_compute(&o, r, sizes, 26, 500, opt), 0);
    assert_false(opt->total.done);
    assert_non_null(strstr(opt->total.why, "/b: size unknown"));
    sizes[1] = 100;
    r->targets[0].sent_overflow = 1;
    assert_int_equal(mc_optimum_compute(&o, r, sizes, 26, 500, opt), 0);
    assert_false(opt->total.done);
    r->targets[0].sent_overflow = 0;
    /* a target that was sent nothing measured does not hold up the total */
    o.n_targets = 2;
    set_sent(r, 1, "AB", 2);
    assert_int_equal(mc_optimum_compute(&o, r, sizes, 26, 500, opt), 0);
    assert_true(opt->total.done && opt->targets[0].done && !opt->targets[1].done);
    assert_int_equal(opt->total.requests, 20);
    assert_int_equal(opt_hits(&opt->total.at, MC_SIM_LRU), 0);
    r->targets[0].n_sent = 0;
    assert_int_equal(mc_optimum_compute(&o, r, sizes, 26, 500, opt), 0);
    assert_false(opt->total.done);
    mc_run_result_free(r);
    free(r);
    free(opt);
}

/* ---- response classification, metrics, targets ---------------------------- */

static void cache_headers_classify(void **state)
{
    static const struct { const char *name, *value; mc_hc_cache want; } cases[] = {
        {"X-Cache", "Hit from meshcdn", MC_HC_HIT},
        {"x-cache", "Miss from cloudfront", MC_HC_MISS},
        {"X-Cache", "RefreshHit from cloudfront", MC_HC_MISS},   /* revalidated upstream */
        {"Cache-Status", "meshcdn-a1; hit; ttl=86400", MC_HC_HIT},
        {"Cache-Status", "meshcdn-a1; fwd=miss; fwd-status=200; stored", MC_HC_MISS},
        {"Cache-Status", "parent; hit, meshcdn-a1; fwd=miss", MC_HC_MISS},   /* the last cache decides */
        {"Cache-Status", "parent; fwd=miss, meshcdn-a1; hit", MC_HC_HIT},
        {"Cache-Status", "meshcdn-a1; hitchhiker", MC_HC_UNKNOWN},
        {"Age", "3", MC_HC_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (mc_hc_classify(cases[i].name, cases[i].value) != cases[i].want)
            fail_msg("%s: %s", cases[i].name, cases[i].value);
}

static void metrics_page_sums(void **state)
{
    static const char page[] =
        "# TYPE meshcdn_edge_requests_total counter\n"
        "meshcdn_edge_requests_total{result=\"hit\",code=\"200\"} 90\n"
        "meshcdn_edge_requests_total{result=\"miss\",code=\"200\"} 9\n"
        "meshcdn_edge_requests_total{result=\"hit\",code=\"206\"} 1\n"
        "meshcdn_edge_requests_total_bogus 1000\n"
        "meshcdn_edge_upstream_requests_total{upstream=\"origin\",code=\"200\"} 9\n"
        "meshcdn_edge_bytes_sent_total 12345\n"
        "# TYPE meshcdn_edge_store_size_bytes gauge\n"
        "meshcdn_edge_store_size_bytes 67108864\n";
    mc_scrape s;
    mc_scrape_parse(page, &s);
    assert_true(s.requests == 100 && s.hits == 91 && s.upstream == 9 && s.bytes_sent == 12345);
    assert_true(s.store_size == 67108864);
}

static void targets_parse(void **state)
{
    mc_run_target t;
    char why[256];
    assert_int_equal(mc_run_parse_target("http://127.0.0.1:8080/b/,2.5", &t, why, sizeof why), 0);
    assert_string_equal(t.host, "127.0.0.1");
    assert_string_equal(t.port, "8080");
    assert_string_equal(t.prefix, "/b");
    assert_true(t.weight == 2.5);
    assert_int_equal(mc_run_parse_target("http://[::1]:80", &t, why, sizeof why), 0);
    assert_string_equal(t.host, "::1");
    assert_true(t.weight == 1);
    assert_int_equal(mc_run_parse_target("http://example.com", &t, why, sizeof why), MC_E_INVAL);  /* port required */
    assert_int_equal(mc_run_parse_target("https://h:1", &t, why, sizeof why), MC_E_INVAL);
    assert_int_equal(mc_run_parse_target("http://h:1,0", &t, why, sizeof why), MC_E_INVAL);
    assert_int_equal(mc_run_parse_target("http://h:99999", &t, why, sizeof why), MC_E_INVAL);
}

/* ---- options --------------------------------------------------------------- */

static void options_parse(void **state)
{
    uint64_t v;
    assert_int_equal(mc_opt_duration_us("30s", &v), 0);
    assert_int_equal(v, 30000000);
    assert_int_equal(mc_opt_duration_us("1.5", &v), 0);
    assert_int_equal(v, 1500000);
    assert_int_equal(mc_opt_duration_us("250ms", &v), 0);
    assert_int_equal(v, 250000);
    assert_int_equal(mc_opt_duration_us("2m", &v), 0);
    assert_int_equal(v, 120000000);
    assert_int_equal(mc_opt_duration_us("5x", &v), MC_E_INVAL);
    assert_int_equal(mc_opt_duration_us("-1s", &v), MC_E_INVAL);
    assert_int_equal(mc_opt_bytes("512M", &v), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(mc_opt_bytes("8G", &v), 0);
    assert_int_equal(v, 8ull << 30);
    assert_int_equal(mc_opt_bytes("8X", &v), MC_E_INVAL);
    assert_int_equal(mc_opt_bytes("99999999999T", &v), MC_E_INVAL);
    double d;
    assert_int_equal(mc_opt_double("0.9", 0, 20, &d), 0);
    assert_true(d == 0.9);
    assert_int_equal(mc_opt_double("21", 0, 20, &d), MC_E_INVAL);
    assert_int_equal(mc_opt_double("nan", 0, 20, &d), MC_E_INVAL);
    assert_int_equal(mc_opt_u64("12", 100, &v), 0);
    assert_int_equal(mc_opt_u64("101", 100, &v), MC_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zipf_matches_formula),
        cmocka_unit_test(zipf_is_deterministic_by_seed),
        cmocka_unit_test(shift_changes_the_hot_set),
        cmocka_unit_test(drift_moves_the_hot_set_step_by_step),
        cmocka_unit_test(uniform_and_bad_parameters),
        cmocka_unit_test(trace_parses_paths_sizes_and_comments),
        cmocka_unit_test(trace_errors_name_the_line),
        cmocka_unit_test(index_file_loads),
        cmocka_unit_test(histo_percentiles_on_known_data),
        cmocka_unit_test(histo_buckets_are_contiguous_and_narrow),
        cmocka_unit_test(sims_match_hand_computed_traces),
        cmocka_unit_test(belady_bounds_online_policies_on_unit_sizes),
        cmocka_unit_test(optimum_of_recorded_sequences),
        cmocka_unit_test(cache_headers_classify),
        cmocka_unit_test(metrics_page_sums),
        cmocka_unit_test(targets_parse),
        cmocka_unit_test(options_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
