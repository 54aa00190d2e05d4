/* main.c — meshcdn-load: dispatch to catalog, run and simulate.
 * Exit status: 0 done, 1 the work failed (I/O), 2 bad usage. */
#include "common/err.h"
#include "tests/load/catalog.h"
#include "tests/load/opts.h"
#include "tests/load/runcli.h"
#include "tests/load/simulate.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

static const char usage_top[] =
    "usage: meshcdn-load COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  catalog    write a deterministic synthetic 3D catalog (an origin bucket)\n"
    "  run        drive Zipf load against edges; hit ratio next to the simulated\n"
    "             optimum at the edge's cache size; JSON and HTML reports\n"
    "  simulate   replay a trace against cache policies and Belady's optimum\n"
    "\n"
    "  meshcdn-load COMMAND --help   options of one command\n"
    "  meshcdn-load --version\n";

static const char usage_catalog[] =
    "usage: meshcdn-load catalog --out DIR --count N [OPTIONS]\n"
    "\n"
    "  --out DIR         bucket directory to fill (created if missing)\n"
    "  --count N         number of assets (1..10000000)\n"
    "  --seed S          PRNG seed, 0..2^53-1 (default 1); same options, same bytes\n"
    "  --sizes SPEC      fixed:SIZE, or lognormal:median=SIZE[,sigma=S][,min=SIZE][,max=SIZE]\n"
    "                    (default lognormal:median=200k,sigma=1.0,min=16k,max=64M)\n"
    "                    SIZE takes k, M, G suffixes (powers of 1024)\n"
    "  --gltf-count K    assets written as .gltf + .bin + PNG texture instead of\n"
    "                    .glb (default max(1, N/10))\n"
    "  --prefix P        key prefix under DIR (default models/)\n"
    "\n"
    "writes DIR/<prefix><id>/<name>.glb (or .gltf, .bin, _basecolor.png) and\n"
    "DIR/index.json listing every file with its size and type.\n";

static int usage_error(const char *fmt, const char *flag, const char *value)
{
    fprintf(stderr, "meshcdn-load: ");
    fprintf(stderr, fmt, flag, value);
    fprintf(stderr, "\n(meshcdn-load catalog --help for usage)\n");
    return EXIT_USAGE;
}

static int cmd_catalog(int argc, char **argv)
{
    enum { OPT_OUT = 1, OPT_COUNT, OPT_SEED, OPT_SIZES, OPT_GLTF, OPT_PREFIX, OPT_HELP };
    static const struct option longopts[] = {
        {"out", required_argument, NULL, OPT_OUT},
        {"count", required_argument, NULL, OPT_COUNT},
        {"seed", required_argument, NULL, OPT_SEED},
        {"sizes", required_argument, NULL, OPT_SIZES},
        {"gltf-count", required_argument, NULL, OPT_GLTF},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    mc_catalog_opts o;
    mc_catalog_opts_init(&o);
    char why[512];
    char prefix[256];
    int have_count = 0;
    opterr = 0;
    optind = 1;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case OPT_OUT:
            o.out_dir = optarg;
            break;
        case OPT_COUNT:
            if (mc_opt_u64(optarg, MC_CATALOG_COUNT_MAX, &o.count) < 0 || o.count == 0)
                return usage_error("%s: \"%s\" is not a count in 1..10000000", "--count", optarg);
            have_count = 1;
            break;
        case OPT_SEED:
            if (mc_opt_u64(optarg, MC_CATALOG_SEED_MAX, &o.seed) < 0)
                return usage_error("%s: \"%s\" is not an integer in 0..9007199254740991", "--seed", optarg);
            break;
        case OPT_SIZES:
            if (mc_catalog_parse_sizes(optarg, &o.sizes, why, sizeof why) < 0)
                return usage_error("%s%s", why, "");
            break;
        case OPT_GLTF:
            if (mc_opt_u64(optarg, MC_CATALOG_COUNT_MAX, &o.gltf_count) < 0)
                return usage_error("%s: \"%s\" is not a count in 0..10000000", "--gltf-count", optarg);
            break;
        case OPT_PREFIX: {
            size_t n = strlen(optarg);
            if (n + 2 > sizeof prefix)
                return usage_error("%s: \"%.60s...\" is too long", "--prefix", optarg);
            /* "models" and "models/" mean the same prefix */
            snprintf(prefix, sizeof prefix, "%s%s", optarg, n > 0 && optarg[n - 1] != '/' ? "/" : "");
            o.prefix = prefix;
            break;
        }
        case 'h':
        case OPT_HELP:
            fputs(usage_catalog, stdout);
            return 0;
        case ':':
            return usage_error("%s: missing value%s", argv[optind - 1], "");
        default:
            return usage_error("%s: unknown option%s", argv[optind - 1], "");
        }
    }
    if (optind < argc)
        return usage_error("%s: unexpected argument%s", argv[optind], "");
    if (o.out_dir == NULL)
        return usage_error("%s: required%s", "--out", "");
    if (!have_count)
        return usage_error("%s: required%s", "--count", "");
    if (mc_catalog_check_opts(&o, why, sizeof why) < 0)
        return usage_error("%s%s", why, "");

    mc_catalog_stats st;
    if (mc_catalog_generate(&o, &st, why, sizeof why) < 0) {
        fprintf(stderr, "meshcdn-load: catalog: %s\n", why);
        return 1;
    }
    printf("meshcdn-load: catalog: %" PRIu64 " assets, %" PRIu64 " files, %" PRIu64
           " bytes in %s (index.json)\n", st.assets, st.files, st.bytes, o.out_dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_top, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_top, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("meshcdn-load " MESHCDN_VERSION "\n");
        return 0;
    }
    if (strcmp(cmd, "catalog") == 0)
        return cmd_catalog(argc - 1, argv + 1);
    if (strcmp(cmd, "simulate") == 0)
        return mc_simulate_main(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return mc_runcli_main(argc - 1, argv + 1);
    fprintf(stderr, "meshcdn-load: unknown command \"%s\"\n%s", cmd, usage_top);
    return EXIT_USAGE;
}
