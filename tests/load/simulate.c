/* simulate.c — `meshcdn-load simulate`; see simulate.h. */
#include "tests/load/simulate.h"

#include "common/err.h"
#include "tests/load/opts.h"
#include "tests/load/sim.h"
#include "tests/load/workload.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

static const char usage[] =
    "usage: meshcdn-load simulate --cache-size SIZE (--trace FILE | --index FILE [OPTIONS])\n"
    "\n"
    "  --cache-size SIZE        cache capacity in bytes (k, M, G, T suffixes: 512M)\n"
    "  --trace FILE             requests, one \"PATH SIZE\" per line (# comments)\n"
    "  --index FILE             a catalog index.json; requests drawn by:\n"
    "    --zipf ALPHA           Zipf popularity (default 0.9), or\n"
    "    --uniform              every object equally likely\n"
    "    --requests N           how many (default 1000000)\n"
    "    --seed S               PRNG seed (default 1); `run` with the same index, seed\n"
    "                           and popularity sends the same sequence\n"
    "    --shift-at-request K   new popularity permutation from request K on\n"
    "    --drift-every K        popularity keeps shifting: every K requests the\n"
    "    --drift-step S         S coldest objects (default 1% of them) become the\n"
    "                           hottest and the rest move S ranks down\n"
    "  --warmup-requests K      replay but do not count the first K requests\n"
    "  --json FILE              also write the results as JSON\n"
    "\n"
    "replays the requests against size-aware LRU, FIFO, SIEVE, S3-FIFO and Belady's\n"
    "offline optimum (furthest next use; exact for equal sizes, see sim.h) and prints\n"
    "hit ratio and byte hit ratio for each.\n";

typedef struct sim_opts {
    uint64_t cache_bytes;
    const char *trace, *index, *json;
    int uniform;
    double alpha;
    uint64_t requests, seed, shift_at, warmup, drift_every, drift_step;
} sim_opts;

static int bad(const char *flag, const char *value, const char *what)
{
    fprintf(stderr, "meshcdn-load: simulate: %s: \"%s\" %s\n(meshcdn-load simulate --help for usage)\n",
            flag, value ? value : "", what);
    return EXIT_USAGE;
}

static int parse_args(int argc, char **argv, sim_opts *o)
{
    enum { O_CACHE = 1, O_TRACE, O_INDEX, O_ZIPF, O_UNI, O_REQ, O_SEED, O_SHIFT, O_WARM, O_JSON, O_HELP, O_DEVERY, O_DSTEP };
    static const struct option longopts[] = {
        {"cache-size", required_argument, NULL, O_CACHE}, {"trace", required_argument, NULL, O_TRACE},
        {"index", required_argument, NULL, O_INDEX}, {"zipf", required_argument, NULL, O_ZIPF},
        {"uniform", no_argument, NULL, O_UNI}, {"requests", required_argument, NULL, O_REQ},
        {"seed", required_argument, NULL, O_SEED}, {"shift-at-request", required_argument, NULL, O_SHIFT},
        {"warmup-requests", required_argument, NULL, O_WARM}, {"json", required_argument, NULL, O_JSON},
        {"drift-every", required_argument, NULL, O_DEVERY}, {"drift-step", required_argument, NULL, O_DSTEP},
        {"help", no_argument, NULL, O_HELP}, {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->alpha = 0.9;
    o->requests = 1000000;
    o->seed = 1;
    o->shift_at = MC_WL_NO_SHIFT;
    opterr = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1;) {
        switch (c) {
        case O_CACHE:
            if (mc_opt_bytes(optarg, &o->cache_bytes) < 0 || o->cache_bytes == 0)
                return bad("--cache-size", optarg, "is not a size (use 512M, 8G)");
            break;
        case O_TRACE: o->trace = optarg; break;
        case O_INDEX: o->index = optarg; break;
        case O_JSON: o->json = optarg; break;
        case O_UNI: o->uniform = 1; break;
        case O_ZIPF:
            if (mc_opt_double(optarg, 0, 20, &o->alpha) < 0)
                return bad("--zipf", optarg, "is not an exponent in [0, 20]");
            break;
        case O_REQ:
            if (mc_opt_u64(optarg, MC_WL_REQUESTS_MAX, &o->requests) < 0 || o->requests == 0)
                return bad("--requests", optarg, "is not a count in 1..1000000000");
            break;
        case O_SEED:
            if (mc_opt_u64(optarg, UINT64_MAX, &o->seed) < 0)
                return bad("--seed", optarg, "is not an unsigned integer");
            break;
        case O_SHIFT:
            if (mc_opt_u64(optarg, MC_WL_REQUESTS_MAX, &o->shift_at) < 0)
                return bad("--shift-at-request", optarg, "is not a request number");
            break;
        case O_DEVERY:
            if (mc_opt_u64(optarg, MC_WL_REQUESTS_MAX, &o->drift_every) < 0 || o->drift_every == 0)
                return bad("--drift-every", optarg, "is not a request count in 1..1000000000");
            break;
        case O_DSTEP:
            if (mc_opt_u64(optarg, MC_WL_OBJECTS_MAX, &o->drift_step) < 0 || o->drift_step == 0)
                return bad("--drift-step", optarg, "is not an object count");
            break;
        case O_WARM:
            if (mc_opt_u64(optarg, MC_WL_REQUESTS_MAX, &o->warmup) < 0)
                return bad("--warmup-requests", optarg, "is not a count");
            break;
        case 'h':
        case O_HELP: fputs(usage, stdout); return -1;
        case ':': return bad(argv[optind - 1], NULL, "needs a value");
        default: return bad(argv[optind - 1], NULL, "is not an option");
        }
    }
    if (optind < argc)
        return bad(argv[optind], NULL, "unexpected argument");
    if (o->cache_bytes == 0)
        return bad("--cache-size", NULL, "is required");
    if ((o->trace != NULL) == (o->index != NULL))
        return bad("--trace/--index", NULL, "give exactly one");
    return 0;
}

/* Builds the request sequence into t (a trace, possibly synthetic). */
static int build_requests(const sim_opts *o, mc_trace *t, char *why, size_t whylen)
{
    if (o->trace) {
        int rc = mc_trace_load(t, o->trace, why, whylen);
        for (size_t i = 0; rc == 0 && i < t->objs.n; i++)
            if (t->objs.sizes[i] == 0)
                rc = mc_err_why(why, whylen, MC_E_INVAL, "%s: %s has no size (simulate needs \"PATH SIZE\" lines)",
                                o->trace, t->objs.paths[i]);
        return rc;
    }
    memset(t, 0, sizeof *t);
    int rc = mc_objset_load_index(&t->objs, o->index, why, whylen);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < t->objs.n; i++)
        if (t->objs.sizes[i] == 0)
            t->objs.sizes[i] = 1;   /* an empty object still takes a slot */
    mc_wl w;
    rc = mc_wl_init(&w, o->uniform ? MC_WL_UNIFORM : MC_WL_ZIPF, t->objs.n, o->alpha, o->seed, o->shift_at,
                    why, whylen);
    if (rc == 0 && o->drift_every)
        rc = mc_wl_set_drift(&w, o->drift_every,
                             o->drift_step ? o->drift_step : (t->objs.n + 99) / 100);
    if (rc == 0) {
        t->ids = malloc(o->requests * sizeof *t->ids);
        if (t->ids == NULL)
            rc = mc_err_why(why, whylen, MC_E_NOMEM, "out of memory for %" PRIu64 " requests", o->requests);
    }
    for (uint64_t i = 0; rc == 0 && i < o->requests; i++)
        t->ids[i] = mc_wl_next(&w, i);
    t->n = t->cap = rc == 0 ? o->requests : 0;
    mc_wl_free(&w);
    return rc;
}

static json_t *result_json(const mc_sim_result *r)
{
    return json_pack("{s:f,s:f,s:I,s:I,s:I,s:I,s:I}", "hit_ratio", mc_sim_hit_ratio(r), "byte_hit_ratio",
                     mc_sim_byte_hit_ratio(r), "requests", (json_int_t)r->requests, "hits",
                     (json_int_t)r->hits, "bytes", (json_int_t)r->bytes, "hit_bytes", (json_int_t)r->hit_bytes,
                     "evictions", (json_int_t)r->evictions);
}

static int write_json(const sim_opts *o, const mc_trace *t, const mc_sim_result *res)
{
    json_t *pol = json_object();
    for (int p = 0; p < MC_SIM_POLICY_COUNT; p++)
        json_object_set_new(pol, mc_sim_policy_name((mc_sim_policy)p), result_json(&res[p]));
    json_t *root = json_pack("{s:I,s:I,s:I,s:I,s:o,s:s}", "cache_size", (json_int_t)o->cache_bytes, "requests",
                             (json_int_t)t->n, "warmup_requests", (json_int_t)o->warmup, "objects",
                             (json_int_t)t->objs.n, "policies", pol, "optimum", "belady");
    int rc = json_dump_file(root, o->json, JSON_INDENT(2)) == 0 ? 0 : MC_E_IO;
    json_decref(root);
    if (rc < 0)
        fprintf(stderr, "meshcdn-load: simulate: cannot write %s\n", o->json);
    return rc;
}

int mc_simulate_main(int argc, char **argv)
{
    sim_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    char why[MC_ERR_MSG_MAX];
    mc_trace t;
    if (build_requests(&o, &t, why, sizeof why) < 0) {
        fprintf(stderr, "meshcdn-load: simulate: %s\n", why);
        mc_trace_free(&t);
        return 1;
    }
    mc_sim_input in = {.n_objects = t.objs.n, .sizes = t.objs.sizes, .n_requests = t.n, .ids = t.ids,
                       .capacity = o.cache_bytes, .warmup = o.warmup};
    mc_sim_result res[MC_SIM_POLICY_COUNT];
    printf("requests %zu (warm-up %" PRIu64 " not counted), objects %zu, cache %" PRIu64 " bytes\n", t.n,
           o.warmup, t.objs.n, o.cache_bytes);
    printf("%-8s %10s %15s %12s\n", "policy", "hit_ratio", "byte_hit_ratio", "evictions");
    for (int p = 0; rc == 0 && p < MC_SIM_POLICY_COUNT; p++) {
        rc = mc_sim_run(&in, (mc_sim_policy)p, &res[p]);
        if (rc == 0)
            printf("%-8s %10.4f %15.4f %12" PRIu64 "\n", mc_sim_policy_name((mc_sim_policy)p),
                   mc_sim_hit_ratio(&res[p]), mc_sim_byte_hit_ratio(&res[p]), res[p].evictions);
    }
    if (rc < 0)
        fprintf(stderr, "meshcdn-load: simulate: %s\n", mc_err_name(rc));
    if (rc == 0 && o.json)
        rc = write_json(&o, &t, res);
    mc_trace_free(&t);
    return rc < 0 ? 1 : 0;
}
