/* runcli.c — `meshcdn-load run`; see runcli.h. */
#include "tests/load/runcli.h"

#include "common/err.h"
#include "tests/load/optimum.h"
#include "tests/load/opts.h"
#include "tests/load/report.h"
#include "tests/load/run.h"
#include "tests/load/workload.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_USAGE 2

static const char usage[] =
    "usage: meshcdn-load run [--target URL[,WEIGHT]]... (--index FILE | --trace FILE) [OPTIONS]\n"
    "\n"
    "  --target URL[,W]    http://HOST:PORT[/PREFIX], repeatable, weight W (default 1);\n"
    "                      default http://127.0.0.1:8080\n"
    "  --metrics URL       the target's edge admin /metrics (repeat in --target order);\n"
    "                      read after warm-up and at the end for the edge's counts and\n"
    "                      origin offload\n"
    "  --index FILE        object paths from a catalog index.json, drawn by\n"
    "    --zipf ALPHA      Zipf popularity (default 0.9), or --uniform\n"
    "    --shift-at T      a new popularity permutation from time T on (e.g. 20s)\n"
    "  --trace FILE        replay \"PATH [SIZE]\" lines in order (wrapping)\n"
    "  --seed S            PRNG seed (default 1)\n"
    "  --duration T        measured time (default 10s; units us ms s m h), or\n"
    "  --requests N        measured requests\n"
    "  --warmup T          sent but not counted, before the measurement (default 0)\n"
    "  --rate R            open loop: R requests/s in total, latency from the intended\n"
    "                      send time; --connections caps connections per target (default 64)\n"
    "  --connections N     closed loop (no --rate): N connections in total (default 16)\n"
    "  --timeout T         per request, no progress for T fails it (default 10s)\n"
    "  --cache-size SIZE   compare the hit ratio with Belady, S3-FIFO, SIEVE and LRU\n"
    "                      simulated on the same requests at SIZE (512M, 2G); without\n"
    "                      it, --metrics gives the edge's store size (compared at the\n"
    "                      80% where the edge evicts, and at the whole size)\n"
    "  --no-optimum        do not record the requests sent nor simulate\n"
    "  --json FILE         JSON report\n"
    "  --html FILE         self-contained HTML report (inline SVG charts)\n"
    "  --quiet             no progress line (it shows only when stderr is a terminal)\n";

typedef struct cli {
    mc_run_opts run;
    const char *index, *trace, *json, *html;
    const char *metrics[MC_RUN_TARGETS_MAX];
    size_t n_metrics;
    int uniform, quiet, have_conns, no_optimum;
    double alpha;
    uint64_t seed, shift_at_us, timeout_us, cache_size;
} cli;

static int bad(const char *flag, const char *value, const char *what)
{
    fprintf(stderr, "meshcdn-load: run: %s%s%s%s %s\n(meshcdn-load run --help for usage)\n", flag,
            value ? ": \"" : "", value ? value : "", value ? "\"" : "", what);
    return EXIT_USAGE;
}

static int parse_one(cli *c, int opt, const char *arg)
{
    mc_run_opts *o = &c->run;
    char why[MC_ERR_MSG_MAX];
    uint64_t v;
    switch (opt) {
    case 't':
        if (o->n_targets == MC_RUN_TARGETS_MAX)
            return bad("--target", arg, "one too many (16 at most)");
        if (mc_run_parse_target(arg, &o->targets[o->n_targets], why, sizeof why) < 0)
            return bad(why, NULL, "");
        o->n_targets++;
        return 0;
    case 'M':
        if (c->n_metrics == MC_RUN_TARGETS_MAX)
            return bad("--metrics", arg, "one too many");
        c->metrics[c->n_metrics++] = arg;
        return 0;
    case 'i': c->index = arg; return 0;
    case 'T': c->trace = arg; return 0;
    case 'j': c->json = arg; return 0;
    case 'H': c->html = arg; return 0;
    case 'u': c->uniform = 1; return 0;
    case 'q': c->quiet = 1; return 0;
    case 'O': c->no_optimum = 1; return 0;
    case 'C':
        return mc_opt_bytes(arg, &c->cache_size) < 0 || c->cache_size == 0
                   ? bad("--cache-size", arg, "is not a size (use 512M, 8G)") : 0;
    case 'z': return mc_opt_double(arg, 0, 20, &c->alpha) < 0 ? bad("--zipf", arg, "is not in [0, 20]") : 0;
    case 's': return mc_opt_u64(arg, UINT64_MAX, &c->seed) < 0 ? bad("--seed", arg, "is not an integer") : 0;
    case 'S': return mc_opt_duration_us(arg, &c->shift_at_us) < 0 ? bad("--shift-at", arg, "is not a duration") : 0;
    case 'd': return mc_opt_duration_us(arg, &o->duration_us) < 0 ? bad("--duration", arg, "is not a duration") : 0;
    case 'w': return mc_opt_duration_us(arg, &o->warmup_us) < 0 ? bad("--warmup", arg, "is not a duration") : 0;
    case 'o':
        return mc_opt_duration_us(arg, &c->timeout_us) < 0 || c->timeout_us < 1000 || c->timeout_us > 3600000000u
                   ? bad("--timeout", arg, "is not a duration in 1ms..1h") : 0;
    case 'n':
        return mc_opt_u64(arg, UINT64_MAX / 2, &o->requests) < 0 || o->requests == 0
                   ? bad("--requests", arg, "is not a count > 0") : 0;
    case 'r':
        return mc_opt_double(arg, 0.001, 1e7, &o->rate_per_s) < 0 ? bad("--rate", arg, "is not in 0.001..1e7") : 0;
    case 'c':
        if (mc_opt_u64(arg, MC_RUN_CONNECTIONS_MAX, &v) < 0 || v == 0)
            return bad("--connections", arg, "is not in 1..10000");
        o->connections = (unsigned)v;
        c->have_conns = 1;
        return 0;
    default:
        return bad(arg ? arg : "?", NULL, "is not an option");
    }
}

static int parse_args(int argc, char **argv, cli *c)
{
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'}, {"metrics", required_argument, NULL, 'M'},
        {"index", required_argument, NULL, 'i'}, {"trace", required_argument, NULL, 'T'},
        {"zipf", required_argument, NULL, 'z'}, {"uniform", no_argument, NULL, 'u'},
        {"shift-at", required_argument, NULL, 'S'}, {"seed", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'}, {"requests", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'}, {"rate", required_argument, NULL, 'r'},
        {"connections", required_argument, NULL, 'c'}, {"timeout", required_argument, NULL, 'o'},
        {"json", required_argument, NULL, 'j'}, {"html", required_argument, NULL, 'H'},
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},
        {"cache-size", required_argument, NULL, 'C'}, {"no-optimum", no_argument, NULL, 'O'}, {NULL, 0, NULL, 0},
    };
    memset(c, 0, sizeof *c);
    c->alpha = 0.9;
    c->seed = 1;
    c->shift_at_us = MC_WL_NO_SHIFT;
    c->timeout_us = 10000000;
    opterr = 0;
    optind = 1;
    for (int opt; (opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1;) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return -1;
        }
        if (opt == ':')
            return bad(argv[optind - 1], NULL, "needs a value");
        int rc = parse_one(c, opt == '?' ? 0 : opt, opt == '?' ? argv[optind - 1] : optarg);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return bad(argv[optind], NULL, "unexpected argument");
    if ((c->index != NULL) == (c->trace != NULL))
        return bad("--index/--trace", NULL, "give exactly one");
    if (c->n_metrics > c->run.n_targets && c->run.n_targets > 0)
        return bad("--metrics", NULL, "more than --target");
    if (c->run.n_targets == 0 && mc_run_parse_target("http://127.0.0.1:8080", &c->run.targets[0], NULL, 0) == 0)
        c->run.n_targets = 1;   /* loopback only: a default never reaches another host */
    for (size_t t = 0; t < c->n_metrics; t++)
        c->run.targets[t].metrics_url = c->metrics[t];
    if (!c->have_conns)
        c->run.connections = c->run.rate_per_s > 0 ? 64 : 16;
    if (c->run.duration_us == 0 && c->run.requests == 0)
        c->run.duration_us = 10000000;
    c->run.timeout_ms = (int)(c->timeout_us / 1000);
    c->run.progress = !c->quiet && isatty(2);
    /* no size to simulate at: nothing worth recording (the report says how to get one) */
    c->run.record_sent = !c->no_optimum && (c->cache_size > 0 || c->n_metrics > 0);
    return 0;
}

/* Loads objects and builds the generator; describes it into desc. */
static int load_workload(cli *c, mc_trace *t, mc_wl *w, char *desc, size_t desclen, char *why, size_t whylen)
{
    int rc;
    if (c->trace) {
        rc = mc_trace_load(t, c->trace, why, whylen);
        if (rc == 0)
            rc = mc_wl_init_trace(w, t);
        snprintf(desc, desclen, "trace %s (%zu requests, %zu objects)", c->trace, t->n, t->objs.n);
    } else {
        memset(t, 0, sizeof *t);
        rc = mc_objset_load_index(&t->objs, c->index, why, whylen);
        if (rc == 0)
            rc = mc_wl_init(w, c->uniform ? MC_WL_UNIFORM : MC_WL_ZIPF, t->objs.n, c->alpha, c->seed, c->shift_at_us,
                            why, whylen);
        int n = snprintf(desc, desclen, "%s over %zu objects of %s", c->uniform ? "uniform" : "zipf", t->objs.n,
                         c->index);
        if (!c->uniform && n > 0 && (size_t)n < desclen)
            snprintf(desc + n, desclen - (size_t)n, " (alpha %g)", c->alpha);
        if (c->shift_at_us != MC_WL_NO_SHIFT && n > 0)
            snprintf(desc + strlen(desc), desclen - strlen(desc), ", popularity shift at %.1f s",
                     (double)c->shift_at_us / 1e6);
    }
    c->run.objs = &t->objs;
    c->run.wl = w;
    return rc;
}

/* The object sizes the simulation uses: as `simulate` does, an index's
 * empty objects take 1 byte; a trace's objects without a size take the body
 * size of a 200 answer seen during the run (0 if none: not simulated). */
static uint64_t *sim_sizes(const cli *c, const mc_objset *objs, const uint64_t *observed)
{
    uint64_t *sz = malloc((objs->n ? objs->n : 1) * sizeof *sz);
    for (size_t i = 0; sz && i < objs->n; i++)
        sz[i] = objs->sizes[i] ? objs->sizes[i] : c->trace ? (observed ? observed[i] : 0) : 1;
    return sz;
}

int mc_runcli_main(int argc, char **argv)
{
    cli *c = calloc(1, sizeof *c);
    if (c == NULL)
        return 1;
    int rc = parse_args(argc, argv, c);
    if (rc != 0) {
        free(c);
        return rc < 0 ? 0 : rc;
    }
    char why[MC_ERR_MSG_MAX], desc[1200];
    mc_trace t;
    mc_wl w;
    memset(&t, 0, sizeof t);
    memset(&w, 0, sizeof w);
    mc_run_result *res = calloc(1, sizeof *res);
    uint64_t *observed = NULL, *sizes = NULL;
    mc_optimum_report *opt = NULL;
    rc = res ? load_workload(c, &t, &w, desc, sizeof desc, why, sizeof why)
             : mc_err_why(why, sizeof why, MC_E_NOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && c->trace && c->run.record_sent && i < t.objs.n && !observed; i++)
        if (t.objs.sizes[i] == 0 && (observed = calloc(t.objs.n, sizeof *observed)) == NULL)
            rc = mc_err_why(why, sizeof why, MC_E_NOMEM, "out of memory");
    c->run.observed_sizes = observed;
    if (rc == 0)
        rc = mc_run_execute(&c->run, res, why, sizeof why);
    if (rc == 0 && !c->no_optimum) {
        /* after the run, from the recorded sequence: nothing of this runs in the hot loop */
        sizes = sim_sizes(c, &t.objs, observed);
        opt = calloc(1, sizeof *opt);
        if (!sizes || !opt || mc_optimum_compute(&c->run, res, sizes, t.objs.n, c->cache_size, opt) < 0) {
            fprintf(stderr, "meshcdn-load: run: out of memory for the simulated optimum (--no-optimum skips it)\n");
            free(opt);
            opt = NULL;
        }
    }
    mc_report_meta meta = {.workload = desc, .seed = c->seed, .optimum = opt};
    if (rc == 0) {
        mc_report_text(stdout, &c->run, &meta, res);
        if (c->json)
            rc = mc_report_json(c->json, &c->run, &meta, res, why, sizeof why);
        if (rc == 0 && c->html)
            rc = mc_report_html(c->html, &c->run, &meta, res, why, sizeof why);
    }
    if (rc < 0)
        fprintf(stderr, "meshcdn-load: run: %s\n", why);
    if (res)
        mc_run_result_free(res);
    free(res);
    free(opt);
    free(sizes);
    free(observed);
    if (w.kind == MC_WL_ZIPF || w.kind == MC_WL_UNIFORM)
        mc_wl_free(&w);
    mc_trace_free(&t);
    free(c);
    return rc < 0 ? 1 : 0;
}
