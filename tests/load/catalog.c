/* catalog.c — the synthetic catalog: options, per-asset draws, files and
 * index.json; see catalog.h. */
#include "tests/load/catalog.h"

#include "common/err.h"
#include "tests/load/png.h"
#include "tests/load/workload.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define SIZE_PARSE_MAX (1ull << 62)
#define PREFIX_MAX 200u
#define LOGNORMAL_TRIES 64
#define TEXTURE_SIDE_MIN 8u


/* PRNG: workload.h's mc_rng (splitmix64 seeds xoshiro256**). Stream 0 is
 * catalog-wide draws; stream n is asset n, so an asset does not change when
 * the count does. */

/* ---- options ------------------------------------------------------------- */

void mc_catalog_opts_init(mc_catalog_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->seed = 1;
    opts->gltf_count = MC_CATALOG_GLTF_DEFAULT;
    opts->prefix = "models/";
    opts->sizes.dist = MC_CATALOG_LOGNORMAL;
    opts->sizes.median_bytes = 200 * KIB;
    opts->sizes.sigma = 1.0;
    opts->sizes.min_bytes = 16 * KIB;
    opts->sizes.max_bytes = 64 * MIB;
}

int mc_catalog_parse_size(const char *text, uint64_t *bytes)
{
    if (text == NULL || *text < '0' || *text > '9')
        return MC_E_INVAL;
    uint64_t v = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > SIZE_PARSE_MAX)
            return MC_E_INVAL;
    }
    uint64_t unit = 1;
    switch (*p) {
    case '\0': break;
    case 'k': case 'K': unit = KIB; p++; break;
    case 'M': unit = MIB; p++; break;
    case 'G': unit = KIB * MIB; p++; break;
    default: return MC_E_INVAL;
    }
    if (*p != '\0' || v > SIZE_PARSE_MAX / unit)
        return MC_E_INVAL;
    *bytes = v * unit;
    return 0;
}

static int size_field(const char *spec, const char *key, const char *val, uint64_t *out,
                      char *why, size_t whylen)
{
    if (mc_catalog_parse_size(val, out) < 0)
        return mc_err_why(why, whylen, MC_E_INVAL,
                       "--sizes \"%s\": %s \"%s\" is not a size (use 200k, 64M, 1G)", spec, key, val);
    if (*out > MC_GLTF_MAX_BYTES)
        return mc_err_why(why, whylen, MC_E_INVAL,
                       "--sizes \"%s\": %s %s is above the GLB limit of %llu bytes", spec, key, val,
                       MC_GLTF_MAX_BYTES);
    if (*out == 0)
        return mc_err_why(why, whylen, MC_E_INVAL, "--sizes \"%s\": %s must be above 0", spec, key);
    return 0;
}

static int parse_lognormal(const char *spec, const char *params, mc_catalog_sizes *s,
                           char *why, size_t whylen)
{
    char buf[256];
    if (strlen(params) >= sizeof buf)
        return mc_err_why(why, whylen, MC_E_INVAL, "--sizes: \"%.40s...\" is too long", spec);
    strcpy(buf, params);
    int have_median = 0;
    char *save = NULL;
    for (char *kv = strtok_r(buf, ",", &save); kv != NULL; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (eq == NULL)
            return mc_err_why(why, whylen, MC_E_INVAL, "--sizes \"%s\": \"%s\" is not key=value", spec, kv);
        *eq = '\0';
        const char *val = eq + 1;
        int rc = 0;
        if (strcmp(kv, "median") == 0) {
            rc = size_field(spec, kv, val, &s->median_bytes, why, whylen);
            have_median = 1;
        } else if (strcmp(kv, "min") == 0) {
            rc = size_field(spec, kv, val, &s->min_bytes, why, whylen);
        } else if (strcmp(kv, "max") == 0) {
            rc = size_field(spec, kv, val, &s->max_bytes, why, whylen);
        } else if (strcmp(kv, "sigma") == 0) {
            char *end = NULL;
            errno = 0;
            s->sigma = strtod(val, &end);
            if (*val == '\0' || *end != '\0' || errno != 0 || !(s->sigma > 0.0 && s->sigma <= 4.0))
                rc = mc_err_why(why, whylen, MC_E_INVAL,
                             "--sizes \"%s\": sigma \"%s\" is not a number in (0, 4]", spec, val);
        } else {
            rc = mc_err_why(why, whylen, MC_E_INVAL,
                         "--sizes \"%s\": unknown key \"%s\" (median, sigma, min, max)", spec, kv);
        }
        if (rc < 0)
            return rc;
    }
    if (!have_median)
        return mc_err_why(why, whylen, MC_E_INVAL, "--sizes \"%s\": median=SIZE is required", spec);
    if (s->max_bytes < MC_CATALOG_SIZE_FLOOR)
        return mc_err_why(why, whylen, MC_E_INVAL, "--sizes \"%s\": max must be at least %lluk",
                       spec, MC_CATALOG_SIZE_FLOOR / KIB);
    if (s->min_bytes > s->median_bytes || s->median_bytes > s->max_bytes)
        return mc_err_why(why, whylen, MC_E_INVAL, "--sizes \"%s\": want min <= median <= max "
                       "(min %" PRIu64 ", median %" PRIu64 ", max %" PRIu64 ")",
                       spec, s->min_bytes, s->median_bytes, s->max_bytes);
    return 0;
}

int mc_catalog_parse_sizes(const char *spec, mc_catalog_sizes *out, char *why, size_t whylen)
{
    mc_catalog_opts defaults;
    mc_catalog_opts_init(&defaults);
    mc_catalog_sizes s = defaults.sizes;
    int rc;
    if (spec == NULL)
        return mc_err_why(why, whylen, MC_E_INVAL, "--sizes: missing value");
    if (strncmp(spec, "fixed:", 6) == 0) {
        s.dist = MC_CATALOG_FIXED;
        rc = size_field(spec, "size", spec + 6, &s.fixed_bytes, why, whylen);
    } else if (strncmp(spec, "lognormal:", 10) == 0) {
        rc = parse_lognormal(spec, spec + 10, &s, why, whylen);
    } else {
        rc = mc_err_why(why, whylen, MC_E_INVAL,
                     "--sizes \"%s\": want fixed:SIZE or lognormal:median=SIZE[,sigma=S][,min=SIZE][,max=SIZE]",
                     spec);
    }
    if (rc == 0)
        *out = s;
    return rc;
}

static int prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0)
        return 1;
    if (n > PREFIX_MAX || p[0] == '/' || p[n - 1] != '/')
        return 0;
    for (const char *seg = p; *seg;) {
        size_t len = strcspn(seg, "/");
        if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        for (size_t k = 0; k < len; k++) {
            char c = seg[k];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-'))
                return 0;
        }
        seg += len + 1;
    }
    return 1;
}

int mc_catalog_check_opts(const mc_catalog_opts *o, char *why, size_t whylen)
{
    if (o->out_dir == NULL || o->out_dir[0] == '\0')
        return mc_err_why(why, whylen, MC_E_INVAL, "--out: a directory is required");
    if (strlen(o->out_dir) > PATH_MAX - 512)
        return mc_err_why(why, whylen, MC_E_INVAL, "--out: \"%.40s...\" is too long", o->out_dir);
    if (o->count < 1 || o->count > MC_CATALOG_COUNT_MAX)
        return mc_err_why(why, whylen, MC_E_INVAL, "--count: %" PRIu64 " is not in 1..%llu",
                       o->count, MC_CATALOG_COUNT_MAX);
    if (o->seed > MC_CATALOG_SEED_MAX)
        return mc_err_why(why, whylen, MC_E_INVAL, "--seed: %" PRIu64 " is above %llu",
                       o->seed, MC_CATALOG_SEED_MAX);
    if (o->gltf_count != MC_CATALOG_GLTF_DEFAULT && o->gltf_count > o->count)
        return mc_err_why(why, whylen, MC_E_INVAL, "--gltf-count: %" PRIu64 " is above --count %" PRIu64,
                       o->gltf_count, o->count);
    if (o->prefix == NULL || !prefix_ok(o->prefix))
        return mc_err_why(why, whylen, MC_E_INVAL, "--prefix: \"%s\" is not a relative path of "
                       "[A-Za-z0-9._-] segments ending in '/'", o->prefix ? o->prefix : "");
    const mc_catalog_sizes *s = &o->sizes;
    int sizes_ok = s->dist == MC_CATALOG_FIXED
        ? s->fixed_bytes > 0 && s->fixed_bytes <= MC_GLTF_MAX_BYTES
        : s->dist == MC_CATALOG_LOGNORMAL && s->sigma > 0.0 && s->sigma <= 4.0 &&
          s->max_bytes >= MC_CATALOG_SIZE_FLOOR && s->max_bytes <= MC_GLTF_MAX_BYTES &&
          s->min_bytes <= s->median_bytes && s->median_bytes <= s->max_bytes;
    if (!sizes_ok)
        return mc_err_why(why, whylen, MC_E_INVAL, "--sizes: out of range");
    return 0;
}

uint64_t mc_catalog_gltf_count(const mc_catalog_opts *o)
{
    if (o->gltf_count != MC_CATALOG_GLTF_DEFAULT)
        return o->gltf_count;
    return o->count / 10 > 0 ? o->count / 10 : 1;
}

/* ---- per-asset draws ----------------------------------------------------- */

static const char *const categories[] = {
    "chair", "table", "lamp", "vase", "sofa", "shelf", "stool", "bottle",
    "bowl", "desk", "bench", "cabinet", "mug", "planter", "speaker", "helmet",
};
static const char *const styles[] = {
    "oak", "walnut", "steel", "brass", "linen", "marble", "velvet", "ceramic",
    "glass", "cedar", "copper", "concrete",
};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The K glTF assets are spread evenly over the N numbers, rotated by a
 * seed-derived offset: exactly K of them, decidable for one asset alone. */
static int asset_is_gltf(const mc_catalog_opts *o, uint64_t number)
{
    uint64_t k = mc_catalog_gltf_count(o), n = o->count;
    mc_rng r;
    mc_rng_seed(&r, o->seed, 0);
    uint64_t pos = ((number - 1) + mc_rng_next(&r) % n) % n;
    /* n <= 1e7 and k <= n, so the products stay far below 2^64 */
    return (pos + 1) * k / n != pos * k / n;
}

static uint64_t draw_size(const mc_catalog_sizes *s, mc_rng *r)
{
    if (s->dist == MC_CATALOG_FIXED)
        return s->fixed_bytes;
    double v = (double)s->median_bytes;
    for (int t = 0; t < LOGNORMAL_TRIES; t++) {
        double u1 = 1.0 - mc_rng_unit(r), u2 = mc_rng_unit(r);     /* u1 in (0, 1] */
        double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        v = (double)s->median_bytes * exp(s->sigma * z);
        if (v >= (double)s->min_bytes && v <= (double)s->max_bytes)
            break;
    }
    if (v < (double)s->min_bytes)
        v = (double)s->min_bytes;
    if (v > (double)s->max_bytes)
        v = (double)s->max_bytes;
    return (uint64_t)v;
}

static void draw_shape(mc_gltf_shape *g, mc_rng *r)
{
    g->height_m = 0.3 + 1.7 * mc_rng_unit(r);
    g->radius_m = g->height_m * (0.15 + 0.35 * mc_rng_unit(r));
    g->taper = 0.5 * mc_rng_unit(r);
    for (int k = 0; k < 2; k++) {
        g->wave_amp[k] = 0.3 * mc_rng_unit(r);
        g->wave_freq[k] = 0.5 + (1.5 + 2.0 * k) * mc_rng_unit(r);
        g->wave_phase[k] = 2.0 * M_PI * mc_rng_unit(r);
    }
    g->lobe_amp = 0.25 * mc_rng_unit(r);
    g->lobe_count = 2 + (uint32_t)mc_rng_below(r, 7);
    /* multiples of 1/256 and 1/4 print exactly and briefly in the JSON */
    for (int k = 0; k < 3; k++)
        g->base_color[k] = (double)(64 + mc_rng_below(r, 192)) / 256.0;
    g->base_color[3] = 1.0;
    g->metallic = (double)mc_rng_below(r, 5) / 4.0;
    g->roughness = (double)(1 + mc_rng_below(r, 4)) / 4.0;
}

void mc_catalog_asset_at(const mc_catalog_opts *o, uint64_t number, mc_catalog_asset *a)
{
    mc_rng r;
    mc_rng_seed(&r, o->seed, number);
    memset(a, 0, sizeof *a);
    a->number = number;
    const char *cat = categories[(uint32_t)mc_rng_below(&r, NELEM(categories))];
    const char *style = styles[(uint32_t)mc_rng_below(&r, NELEM(styles))];
    snprintf(a->id, sizeof a->id, "%s-%04" PRIu64, cat, number);
    snprintf(a->name, sizeof a->name, "%s-%s", style, cat);
    draw_shape(&a->shape, &r);
    for (int k = 0; k < 3; k++) {
        a->color_a[k] = (uint8_t)mc_rng_below(&r, 256);
        a->color_b[k] = (uint8_t)mc_rng_below(&r, 256);
    }
    a->texture_period = 8u << (uint32_t)mc_rng_below(&r, 4);
    a->is_gltf = asset_is_gltf(o, number);
    a->target_bytes = draw_size(&o->sizes, &r) & ~3ull;   /* draws last: retries vary */
}

/* ---- texture ------------------------------------------------------------- */

typedef struct texture {
    const mc_catalog_asset *a;
    uint32_t side, period;
} texture;

/* A checkerboard of the asset's two colours under a diagonal gradient with
 * thin stripes: integer arithmetic only, so identical everywhere. */
static void texture_row(void *ctx, uint32_t y, uint8_t *rgb, uint32_t width)
{
    const texture *t = ctx;
    for (uint32_t x = 0; x < width; x++) {
        const uint8_t *c = ((x / t->period + y / t->period) & 1) ? t->a->color_a : t->a->color_b;
        uint32_t shade = 160 + (x + y) * 95 / (2 * (t->side - 1) + 1);
        if ((x * 7 + y * 3) % (t->period * 2 + 1) == 0)
            shade /= 2;
        for (int k = 0; k < 3; k++)
            rgb[3 * x + k] = (uint8_t)(c[k] * shade / 255);
    }
}

static uint32_t texture_side(uint64_t cap)
{
    uint32_t side = MC_CATALOG_TEXTURE_SIDE;
    while (side > TEXTURE_SIDE_MIN && mc_png_size_bound(side, side) > cap)
        side /= 2;
    return side;
}

/* ---- files and index ----------------------------------------------------- */

static int mkdir_p(const char *path, char *why, size_t whylen)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return mc_err_why(why, whylen, MC_E_INVAL, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return mc_err_why(why, whylen, MC_E_IO, "%s: %s", buf, strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return mc_err_why(why, whylen, MC_E_IO, "%s: not a directory", buf);
    return 0;
}

typedef struct index_writer {
    FILE *f;
    uint64_t entries;
    mc_catalog_stats *stats;
} index_writer;

static void index_add(index_writer *ix, const char *rel, uint64_t size, const char *type)
{
    fprintf(ix->f, "%s\n{\"path\":\"/%s\",\"size\":%" PRIu64 ",\"type\":\"%s\"}",
            ix->entries == 0 ? "" : ",", rel, size, type);
    ix->entries++;
    ix->stats->files++;
    ix->stats->bytes += size;
}

static int path_fmt(char *dst, size_t n, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* snprintf that reports truncation as MC_E_INVAL. */
static int path_fmt(char *dst, size_t n, char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= n)
        return mc_err_why(why, whylen, MC_E_INVAL, "path too long: %.60s...", dst);
    return 0;
}

static int write_asset(const mc_catalog_opts *o, const mc_catalog_asset *a, index_writer *ix,
                       char *why, size_t whylen)
{
    char rel_dir[PATH_MAX], dir[PATH_MAX], path[3][PATH_MAX], rel[3][PATH_MAX];
    int rc = path_fmt(rel_dir, sizeof rel_dir, why, whylen, "%s%s", o->prefix, a->id);
    if (rc == 0)
        rc = path_fmt(dir, sizeof dir, why, whylen, "%s/%s", o->out_dir, rel_dir);
    if (rc == 0)
        rc = mkdir_p(dir, why, whylen);
    if (rc < 0)
        return rc;
    static const char *const glb_ext[1] = {".glb"};
    static const char *const gltf_ext[3] = {".gltf", ".bin", "_basecolor.png"};
    int nfiles = a->is_gltf ? 3 : 1;
    for (int k = 0; k < nfiles && rc == 0; k++) {
        const char *ext = a->is_gltf ? gltf_ext[k] : glb_ext[k];
        rc = path_fmt(rel[k], sizeof rel[k], why, whylen, "%s/%s%s", rel_dir, a->name, ext);
        if (rc == 0)
            rc = path_fmt(path[k], sizeof path[k], why, whylen, "%s/%s", o->out_dir, rel[k]);
    }
    if (rc < 0)
        return rc;
    mc_gltf_result res;
    if (!a->is_gltf) {
        rc = mc_gltf_write_glb(path[0], a->name, &a->shape, a->target_bytes, &res, why, whylen);
        if (rc == 0)
            index_add(ix, rel[0], res.file_bytes, "model/gltf-binary");
        return rc;
    }
    char bin_uri[64], png_uri[64];
    snprintf(bin_uri, sizeof bin_uri, "%s.bin", a->name);
    snprintf(png_uri, sizeof png_uri, "%s_basecolor.png", a->name);
    rc = mc_gltf_write_gltf(path[0], path[1], a->name, bin_uri, png_uri, &a->shape,
                            a->target_bytes, &res, why, whylen);
    if (rc < 0)
        return rc;
    uint64_t cap = o->sizes.dist == MC_CATALOG_FIXED ? o->sizes.fixed_bytes : o->sizes.max_bytes;
    texture t = {.a = a, .side = texture_side(cap)};
    t.period = a->texture_period * t.side / MC_CATALOG_TEXTURE_SIDE;
    t.period = t.period < 2 ? 2 : t.period;
    uint64_t png_bytes = 0;
    rc = mc_png_write_rgb(path[2], t.side, t.side, texture_row, &t, &png_bytes, why, whylen);
    if (rc < 0)
        return rc;
    index_add(ix, rel[0], res.file_bytes, "model/gltf+json");
    index_add(ix, rel[1], res.bin_bytes, "application/octet-stream");
    index_add(ix, rel[2], png_bytes, "image/png");
    return 0;
}

int mc_catalog_generate(const mc_catalog_opts *o, mc_catalog_stats *stats,
                        char *why, size_t whylen)
{
    mc_catalog_stats local;
    stats = stats != NULL ? stats : &local;
    memset(stats, 0, sizeof *stats);
    int rc = mc_catalog_check_opts(o, why, whylen);
    if (rc < 0)
        return rc;
    char index_path[PATH_MAX], tmp_path[PATH_MAX];
    rc = path_fmt(index_path, sizeof index_path, why, whylen, "%s/index.json", o->out_dir);
    if (rc == 0)
        rc = path_fmt(tmp_path, sizeof tmp_path, why, whylen, "%s/index.json.tmp", o->out_dir);
    if (rc == 0)
        rc = mkdir_p(o->out_dir, why, whylen);
    if (rc < 0)
        return rc;

    index_writer ix = {.stats = stats};
    ix.f = fopen(tmp_path, "w");
    if (ix.f == NULL)
        return mc_err_why(why, whylen, MC_E_IO, "%s: %s", tmp_path, strerror(errno));
    fprintf(ix.f, "{\"seed\":%" PRIu64 ",\"count\":%" PRIu64 ",\"objects\":[", o->seed, o->count);
    for (uint64_t n = 1; n <= o->count && rc == 0; n++) {
        mc_catalog_asset a;
        mc_catalog_asset_at(o, n, &a);
        rc = write_asset(o, &a, &ix, why, whylen);
        stats->assets += rc == 0;
    }
    fprintf(ix.f, "\n]}\n");
    int failed = ferror(ix.f);
    if (fclose(ix.f) != 0)
        failed = 1;
    if (rc == 0 && failed)
        rc = mc_err_why(why, whylen, MC_E_IO, "%s: write failed", tmp_path);
    if (rc == 0 && rename(tmp_path, index_path) != 0)
        rc = mc_err_why(why, whylen, MC_E_IO, "%s: %s", index_path, strerror(errno));
    if (rc < 0)
        remove(tmp_path);
    return rc;
}
