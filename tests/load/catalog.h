/* catalog.h — a deterministic synthetic 3D catalog: the origin bucket that
 * meshcdn-load runs against.
 *
 * mc_catalog_generate writes, under opts->out_dir:
 *   <prefix><id>/<name>.glb                         (count - gltf_count assets)
 *   <prefix><id>/<name>.gltf, <name>.bin,
 *               <name>_basecolor.png                (gltf_count assets)
 *   index.json  {"seed":S,"count":N,"objects":[{"path":"/<prefix>...","size":B,
 *               "type":"model/gltf-binary"}, ...]}   every file written, in
 *               asset order, one object per line
 * ids are "<category>-<NNNN>" (NNNN = asset number from 1, so unique), names
 * "<style>-<category>"; both, the sizes, the shapes and the textures are a
 * pure function of (seed, asset number, sizes, count, gltf_count): same
 * options, byte-identical output; no clock, no rand().
 *
 * Sizes: each asset draws a target; a .glb is exactly that size, a .gltf and
 * its .bin together are (gltf.h), the PNG is extra and kept under the cap
 * (max, or the fixed size). Targets are rounded down to a multiple of 4, and
 * a target below the minimal mesh gets the minimal mesh (a few KiB).
 *   fixed:SIZE                       every asset SIZE
 *   lognormal:median=M[,sigma=S][,min=A][,max=B]
 *                                    median*exp(sigma*Z), Z standard normal,
 *                                    redrawn until within [min, max]
 *                                    (defaults: sigma 1.0, min 16k, max 64M)
 * SIZE is a byte count with an optional k, M or G suffix (powers of 1024).
 *
 * Memory stays at a few MiB whatever the sizes or count: files and the index
 * are streamed. Existing files of the same names are overwritten; index.json
 * is replaced atomically (written to index.json.tmp, then renamed).
 *
 * Errors: functions return 0 or a negative MC_E_* (common/err.h) and write a
 * one-line reason for a person into why[whylen] (if why is not NULL):
 *   MC_E_INVAL  a malformed or out-of-range option; the reason names it
 *   MC_E_IO     creating a directory or writing a file failed
 *   MC_E_NOMEM  allocation failed
 * Threads: no shared state; call from any thread.
 */
#ifndef MC_LOAD_CATALOG_H
#define MC_LOAD_CATALOG_H

#include "tests/load/gltf.h"

#include <stddef.h>
#include <stdint.h>

#define MC_CATALOG_SEED_MAX 9007199254740991ull  /* 2^53-1: exact in any JSON reader */
#define MC_CATALOG_COUNT_MAX 10000000ull
#define MC_CATALOG_SIZE_FLOOR (8ull * 1024)      /* smallest allowed max: a minimal mesh fits */
#define MC_CATALOG_GLTF_DEFAULT UINT64_MAX       /* gltf_count: max(1, count/10) */
#define MC_CATALOG_TEXTURE_SIDE 256u             /* PNG side unless the cap forces smaller */

typedef enum mc_catalog_dist {
    MC_CATALOG_FIXED = 1,
    MC_CATALOG_LOGNORMAL = 2,
} mc_catalog_dist;

typedef struct mc_catalog_sizes {
    mc_catalog_dist dist;
    uint64_t fixed_bytes;       /* FIXED */
    uint64_t median_bytes;      /* LOGNORMAL */
    uint64_t min_bytes;
    uint64_t max_bytes;
    double sigma;
} mc_catalog_sizes;

typedef struct mc_catalog_opts {
    const char *out_dir;        /* created (with parents) if missing */
    uint64_t count;             /* assets, 1 .. MC_CATALOG_COUNT_MAX */
    uint64_t seed;              /* 0 .. MC_CATALOG_SEED_MAX */
    mc_catalog_sizes sizes;
    uint64_t gltf_count;        /* 0 .. count, or MC_CATALOG_GLTF_DEFAULT */
    const char *prefix;         /* "models/": [A-Za-z0-9._-] segments ending in '/', or "" */
} mc_catalog_opts;

/* One asset as the generator sees it; a value, nothing to free. */
typedef struct mc_catalog_asset {
    uint64_t number;            /* 1-based */
    char id[48];                /* "chair-0007" */
    char name[48];              /* "walnut-chair" */
    int is_gltf;                /* 1: .gltf + .bin + .png, 0: .glb */
    uint64_t target_bytes;      /* .glb size, or .gltf + .bin size */
    mc_gltf_shape shape;
    uint8_t color_a[3], color_b[3];  /* texture colours */
    uint32_t texture_period;    /* checker period in pixels at side 256 */
} mc_catalog_asset;

/* What mc_catalog_generate wrote. */
typedef struct mc_catalog_stats {
    uint64_t assets;
    uint64_t files;             /* entries in index.json */
    uint64_t bytes;             /* their total size */
} mc_catalog_stats;

/* Defaults: prefix "models/", gltf_count default, lognormal median 200k,
 * sigma 1, min 16k, max 64M; out_dir NULL, count 0, seed 1. */
void mc_catalog_opts_init(mc_catalog_opts *opts);

/* "64M" -> 67108864. Digits with an optional k/K, M or G suffix; no sign,
 * no spaces. MC_E_INVAL on anything else or above 2^62. */
int mc_catalog_parse_size(const char *text, uint64_t *bytes);

/* "fixed:64M" or "lognormal:median=200k,max=64M" (see above) into *out.
 * Checks ranges: sizes at most MC_GLTF_MAX_BYTES, max at least
 * MC_CATALOG_SIZE_FLOOR, min <= median <= max, 0 < sigma <= 4. */
int mc_catalog_parse_sizes(const char *spec, mc_catalog_sizes *out, char *why, size_t whylen);

/* Checks every field of opts; the reason names the flag ("--count"). */
int mc_catalog_check_opts(const mc_catalog_opts *opts, char *why, size_t whylen);

/* The gltf_count opts resolve to (the default made concrete). */
uint64_t mc_catalog_gltf_count(const mc_catalog_opts *opts);

/* Asset number (1 .. count) of a checked opts, as mc_catalog_generate
 * writes it. */
void mc_catalog_asset_at(const mc_catalog_opts *opts, uint64_t number, mc_catalog_asset *out);

/* Write the catalog. stats may be NULL. Checks opts first. On failure files
 * already written stay, but index.json is not replaced. */
int mc_catalog_generate(const mc_catalog_opts *opts, mc_catalog_stats *stats,
                        char *why, size_t whylen);

#endif
