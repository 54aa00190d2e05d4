/* test_catalog.c — meshcdn-load catalog: options, every written file checked
 * against the glTF 2.0 and PNG specs, determinism, and the GLB validator. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "tests/load/catalog.h"
#include "tests/load/gltf.h"
#include "tests/load/png.h"

#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char root_dir[PATH_MAX];   /* the mkdtemp dir of this run */

/* ---- helpers ------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static float f32_at(const uint8_t *p)
{
    uint32_t v = le32(p);
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

static json_int_t jint(json_t *obj, const char *key, json_int_t dflt)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return dflt;
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_join(char *dst, const char *a, const char *b)
{
    int n = snprintf(dst, PATH_MAX, "%s%s", a, b);
    assert_true(n > 0 && n < PATH_MAX);
}

typedef struct run {
    char dir[PATH_MAX];
    mc_catalog_opts opts;
} run;

/* Generates a catalog into root_dir/<tag>. */
static void generate(run *r, const char *tag, uint64_t count, uint64_t seed,
                     const char *sizes, uint64_t gltf_count)
{
    char why[512] = "";
    int n = snprintf(r->dir, sizeof r->dir, "%s/%s", root_dir, tag);
    assert_true(n > 0 && (size_t)n < sizeof r->dir);
    mc_catalog_opts_init(&r->opts);
    r->opts.out_dir = r->dir;
    r->opts.count = count;
    r->opts.seed = seed;
    r->opts.gltf_count = gltf_count;
    assert_int_equal(mc_catalog_parse_sizes(sizes, &r->opts.sizes, why, sizeof why), 0);
    int rc = mc_catalog_generate(&r->opts, NULL, why, sizeof why);
    if (rc != 0)
        fail_msg("generate %s: %s", tag, why);
}

/* ---- deep glTF checks ---------------------------------------------------- */

static size_t component_bytes(json_int_t type)
{
    switch (type) {
    case 5120: case 5121: return 1;
    case 5122: case 5123: return 2;
    case 5125: case 5126: return 4;
    default: fail_msg("componentType %lld", (long long)type);
    }
    return 0;
}

static size_t type_components(const char *type)
{
    static const struct { const char *name; size_t n; } types[] = {
        {"SCALAR", 1}, {"VEC2", 2}, {"VEC3", 3}, {"VEC4", 4}, {"MAT4", 16},
    };
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        if (strcmp(type, types[k].name) == 0)
            return types[k].n;
    fail_msg("accessor type %s", type);
    return 0;
}

/* One accessor resolved against its bufferView and the buffer bytes. */
typedef struct view {
    const uint8_t *base;  /* first element */
    size_t count, stride, elem;
    json_int_t ctype;
} view;

static view resolve(json_t *doc, json_int_t index, const uint8_t *bin, size_t bin_len)
{
    json_t *acc = json_array_get(json_object_get(doc, "accessors"), (size_t)index);
    assert_non_null(acc);
    json_t *bv = json_array_get(json_object_get(doc, "bufferViews"), (size_t)jint(acc, "bufferView", -1));
    assert_non_null(bv);
    assert_int_equal(jint(bv, "buffer", -1), 0);
    json_int_t bv_off = jint(bv, "byteOffset", 0), bv_len = jint(bv, "byteLength", -1);
    assert_true(bv_off >= 0 && bv_len > 0 && (uint64_t)(bv_off + bv_len) <= bin_len);
    assert_true(jint(bv, "target", 0) == 34962 || jint(bv, "target", 0) == 34963);

    view v;
    v.ctype = jint(acc, "componentType", -1);
    v.elem = component_bytes(v.ctype) * type_components(json_string_value(json_object_get(acc, "type")));
    v.stride = (size_t)jint(bv, "byteStride", (json_int_t)v.elem);
    v.count = (size_t)jint(acc, "count", -1);
    json_int_t acc_off = jint(acc, "byteOffset", 0);
    assert_true(v.count > 0 && v.stride >= v.elem);
    if (json_object_get(bv, "byteStride") != NULL)   /* vertex attributes only */
        assert_true(v.stride % 4 == 0 && jint(bv, "target", 0) == 34962);
    /* the last element ends inside its bufferView */
    assert_true((uint64_t)acc_off + (v.count - 1) * v.stride + v.elem <= (uint64_t)bv_len);
    v.base = bin + bv_off + acc_off;
    return v;
}

/* Everything the test knows about a mesh beyond mc_gltf_check_glb. */
static void check_mesh(json_t *doc, const uint8_t *bin, size_t bin_len, int want_uv)
{
    json_t *asset = json_object_get(doc, "asset");
    assert_string_equal(json_string_value(json_object_get(asset, "version")), "2.0");
    json_t *buf0 = json_array_get(json_object_get(doc, "buffers"), 0);
    assert_true((size_t)jint(buf0, "byteLength", -1) <= bin_len);
    assert_true(bin_len - (size_t)jint(buf0, "byteLength", -1) < 4);
    assert_int_equal(json_array_size(json_object_get(doc, "scenes")), 1);
    assert_int_equal(jint(json_array_get(json_object_get(doc, "nodes"), 0), "mesh", -1), 0);
    json_t *mat = json_array_get(json_object_get(doc, "materials"), 0);
    json_t *pbr = json_object_get(mat, "pbrMetallicRoughness");
    assert_int_equal(json_array_size(json_object_get(pbr, "baseColorFactor")), 4);

    json_t *prim = json_array_get(json_object_get(json_array_get(json_object_get(doc, "meshes"), 0),
                                                  "primitives"), 0);
    assert_non_null(prim);
    assert_int_equal(jint(prim, "mode", 4), 4);
    json_t *attrs = json_object_get(prim, "attributes");
    view pos = resolve(doc, jint(attrs, "POSITION", -1), bin, bin_len);
    view nrm = resolve(doc, jint(attrs, "NORMAL", -1), bin, bin_len);
    view idx = resolve(doc, jint(prim, "indices", -1), bin, bin_len);
    assert_int_equal(pos.ctype, 5126);
    assert_int_equal(pos.elem, 12);
    assert_int_equal(nrm.count, pos.count);
    if (want_uv) {
        view uv = resolve(doc, jint(attrs, "TEXCOORD_0", -1), bin, bin_len);
        assert_int_equal(uv.count, pos.count);
        assert_non_null(json_object_get(pbr, "baseColorTexture"));
    }

    /* POSITION min/max: required, and exactly the float32 extremes (3.6.2.5) */
    float mn[3] = {INFINITY, INFINITY, INFINITY}, mx[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (size_t i = 0; i < pos.count; i++) {
        for (int k = 0; k < 3; k++) {
            float p = f32_at(pos.base + i * pos.stride + 4 * k);
            mn[k] = p < mn[k] ? p : mn[k];
            mx[k] = p > mx[k] ? p : mx[k];
        }
        float n[3];
        for (int k = 0; k < 3; k++)
            n[k] = f32_at(nrm.base + i * nrm.stride + 4 * k);
        double len = sqrt((double)n[0] * n[0] + (double)n[1] * n[1] + (double)n[2] * n[2]);
        if (fabs(len - 1.0) > 1e-5)
            fail_msg("normal %zu has length %.9f", i, len);
    }
    json_t *acc = json_array_get(json_object_get(doc, "accessors"), (size_t)jint(attrs, "POSITION", -1));
    for (int k = 0; k < 3; k++) {
        double jmin = json_number_value(json_array_get(json_object_get(acc, "min"), (size_t)k));
        double jmax = json_number_value(json_array_get(json_object_get(acc, "max"), (size_t)k));
        assert_true(jmin == (double)mn[k]);
        assert_true(jmax == (double)mx[k]);
    }

    assert_true(idx.ctype == 5123 || idx.ctype == 5125);
    assert_int_equal(idx.count % 3, 0);
    if (idx.ctype == 5123)
        assert_true(pos.count <= 65535);
    for (size_t i = 0; i < idx.count; i++) {
        const uint8_t *p = idx.base + i * idx.stride;
        uint32_t v = idx.ctype == 5123 ? (uint32_t)(p[0] | p[1] << 8) : le32(p);
        if (v >= pos.count)
            fail_msg("index %zu is %u, only %zu vertices", i, v, pos.count);
    }
}

static void check_glb_file(const char *path)
{
    size_t len;
    uint8_t *data = slurp(path, &len);
    char why[256] = "";
    int rc = mc_gltf_check_glb(data, len, why, sizeof why);
    if (rc != 0)
        fail_msg("%s: %s", path, why);
    uint32_t json_len = le32(data + 12);
    assert_int_equal(le32(data + 16), 0x4E4F534A);
    for (uint32_t k = json_len; k > 0 && data[20 + k - 1] != '}'; k--)
        assert_int_equal(data[20 + k - 1], ' ');   /* JSON padding is spaces */
    const uint8_t *bin_chunk = data + 20 + json_len;
    assert_int_equal(le32(bin_chunk + 4), 0x004E4942);
    json_t *doc = json_loadb((const char *)data + 20, json_len, 0, NULL);
    assert_non_null(doc);
    check_mesh(doc, bin_chunk + 8, le32(bin_chunk), 0);
    json_decref(doc);
    free(data);
}

/* The .gltf, its .bin (buffers[0].uri) and its image (images[0].uri). */
static void check_png_file(const char *path, uint32_t *width_out);

static void check_gltf_file(const char *path, const char *dir_of_path)
{
    size_t len, bin_len;
    uint8_t *data = slurp(path, &len);
    char why[256] = "", bin_path[PATH_MAX], img_path[PATH_MAX];
    int rc = mc_gltf_check_json(data, len, why, sizeof why);
    if (rc != 0)
        fail_msg("%s: %s", path, why);
    json_t *doc = json_loadb((const char *)data, len, 0, NULL);
    assert_non_null(doc);
    json_t *buf0 = json_array_get(json_object_get(doc, "buffers"), 0);
    const char *uri = json_string_value(json_object_get(buf0, "uri"));
    const char *img = json_string_value(json_object_get(json_array_get(json_object_get(doc, "images"), 0), "uri"));
    assert_non_null(uri);
    assert_non_null(img);
    assert_null(strchr(uri, '/'));
    path_join(bin_path, dir_of_path, uri);
    path_join(img_path, dir_of_path, img);
    uint8_t *bin = slurp(bin_path, &bin_len);
    assert_int_equal(bin_len, jint(buf0, "byteLength", -1));
    check_mesh(doc, bin, bin_len, 1);
    uint32_t side = 0;
    check_png_file(img_path, &side);
    assert_int_equal(side & (side - 1), 0);   /* power of two: mipmaps */
    json_decref(doc);
    free(bin);
    free(data);
}

static void check_png_file(const char *path, uint32_t *width_out)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t len;
    uint8_t *data = slurp(path, &len);
    assert_true(len > 8 + 25 + 12);
    assert_memory_equal(data, sig, 8);
    uint32_t w = 0, h = 0;
    uint8_t *idat = NULL;
    size_t idat_len = 0, off = 8;
    int chunks = 0, ended = 0;
    while (off < len) {
        assert_true(len - off >= 12);
        uint32_t clen = be32(data + off);
        assert_true(clen <= len - off - 12);
        const uint8_t *type = data + off + 4, *body = data + off + 8;
        uLong crc = crc32(crc32(0L, Z_NULL, 0), type, 4 + clen);
        assert_int_equal(be32(body + clen), (uint32_t)crc);
        if (chunks == 0) {
            assert_memory_equal(type, "IHDR", 4);
            assert_int_equal(clen, 13);
            w = be32(body);
            h = be32(body + 4);
            assert_int_equal(body[8], 8);   /* bit depth */
            assert_int_equal(body[9], 2);   /* RGB */
        } else if (memcmp(type, "IDAT", 4) == 0) {
            idat = realloc(idat, idat_len + clen + 1);
            assert_non_null(idat);
            memcpy(idat + idat_len, body, clen);
            idat_len += clen;
        } else if (memcmp(type, "IEND", 4) == 0) {
            assert_int_equal(clen, 0);
            ended = 1;
        }
        chunks++;
        off += 12 + clen;
    }
    assert_true(ended);
    assert_int_equal(off, len);
    assert_true(w > 0 && h > 0);
    uLongf want = (uLongf)h * (1 + (uLongf)w * 3), got = want + 16;
    uint8_t *raw = malloc(got);
    assert_non_null(raw);
    assert_int_equal(uncompress(raw, &got, idat, idat_len), Z_OK);
    assert_int_equal(got, want);
    for (uint32_t y = 0; y < h; y++)
        assert_int_equal(raw[(size_t)y * (1 + w * 3)], 0);   /* filter byte */
    *width_out = w;
    free(raw);
    free(idat);
    free(data);
}

/* ---- the catalog as a whole ---------------------------------------------- */

static int count_files_dir_total;
static int count_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)st;
    (void)ftw;
    count_files_dir_total += flag == FTW_F;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Checks index.json against the files, every file against its format, and
 * each asset's size against the target mc_catalog_asset_at drew. */
static void check_catalog(const run *r)
{
    char path[PATH_MAX];
    path_join(path, r->dir, "/index.json");
    json_error_t jerr;
    json_t *ix = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (ix == NULL)
        fail_msg("index.json: %s", jerr.text);
    assert_int_equal(jint(ix, "seed", -1), r->opts.seed);
    assert_int_equal(jint(ix, "count", -1), r->opts.count);
    json_t *objects = json_object_get(ix, "objects");
    size_t n = json_array_size(objects), k = 0;
    uint64_t gltfs = 0;
    const mc_catalog_sizes *sz = &r->opts.sizes;

    for (uint64_t num = 1; num <= r->opts.count; num++) {
        mc_catalog_asset a;
        mc_catalog_asset_at(&r->opts, num, &a);
        gltfs += a.is_gltf;
        uint64_t asset_bytes = 0;
        for (int f = 0; f < (a.is_gltf ? 3 : 1); f++, k++) {
            json_t *o = json_array_get(objects, k);
            assert_non_null(o);
            const char *rel = json_string_value(json_object_get(o, "path"));
            const char *type = json_string_value(json_object_get(o, "type"));
            json_int_t size = jint(o, "size", -1);
            assert_non_null(rel);
            assert_non_null(type);
            assert_true(rel[0] == '/' && strncmp(rel + 1, r->opts.prefix, strlen(r->opts.prefix)) == 0);
            assert_non_null(strstr(rel, a.id));
            path_join(path, r->dir, rel);
            struct stat st;
            if (stat(path, &st) != 0)
                fail_msg("%s is in index.json but missing", rel);
            assert_int_equal(st.st_size, size);
            if (sz->dist == MC_CATALOG_LOGNORMAL)
                assert_true((uint64_t)size <= sz->max_bytes);

            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') + 1 - path), path);
            if (ends_with(rel, ".glb")) {
                assert_false(a.is_gltf);
                assert_string_equal(type, "model/gltf-binary");
                check_glb_file(path);
                asset_bytes += (uint64_t)size;
            } else if (ends_with(rel, ".gltf")) {
                assert_true(a.is_gltf);
                assert_string_equal(type, "model/gltf+json");
                check_gltf_file(path, dir);
                asset_bytes += (uint64_t)size;
            } else if (ends_with(rel, ".bin")) {
                assert_string_equal(type, "application/octet-stream");
                asset_bytes += (uint64_t)size;
            } else {
                assert_true(ends_with(rel, "_basecolor.png"));
                assert_string_equal(type, "image/png");
            }
        }
        /* the model hits its target exactly (the defaults keep targets above
         * the minimal mesh) */
        assert_int_equal(asset_bytes, a.target_bytes);
    }
    assert_int_equal(k, n);
    assert_int_equal(gltfs, mc_catalog_gltf_count(&r->opts));

    /* index.json lists every file written, and nothing else is there */
    count_files_dir_total = 0;
    nftw(r->dir, count_file, 16, FTW_PHYS);
    assert_int_equal(count_files_dir_total, (int)n + 1);
    json_decref(ix);
}

/* ---- tests --------------------------------------------------------------- */

static void parse_size_table(void **state)
{
    (void)state;
    static const struct { const char *in; int rc; uint64_t bytes; } cases[] = {
        {"0", 0, 0}, {"4096", 0, 4096}, {"200k", 0, 204800}, {"16K", 0, 16384},
        {"64M", 0, 67108864}, {"1G", 0, 1073741824}, {"3M", 0, 3145728},
        {"", MC_E_INVAL, 0}, {"k", MC_E_INVAL, 0}, {"-1", MC_E_INVAL, 0},
        {" 1k", MC_E_INVAL, 0}, {"1k ", MC_E_INVAL, 0}, {"1.5M", MC_E_INVAL, 0},
        {"1m", MC_E_INVAL, 0}, {"1T", MC_E_INVAL, 0}, {"1kk", MC_E_INVAL, 0},
        {"99999999999999999999", MC_E_INVAL, 0}, {"9999999999G", MC_E_INVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 12345;
        int rc = mc_catalog_parse_size(cases[i].in, &v);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].bytes))
            fail_msg("\"%s\": rc %d value %llu", cases[i].in, rc, (unsigned long long)v);
    }
}

static void parse_sizes_table(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        int rc;
        mc_catalog_dist dist;
        uint64_t fixed, median, min, max;
        double sigma;
    } cases[] = {
        {"fixed:64M", 0, MC_CATALOG_FIXED, 64u << 20, 0, 0, 0, 0},
        {"fixed:1k", 0, MC_CATALOG_FIXED, 1024, 0, 0, 0, 0},
        {"lognormal:median=200k,max=64M", 0, MC_CATALOG_LOGNORMAL, 0, 200 << 10, 16 << 10, 64u << 20, 1.0},
        {"lognormal:median=200k,sigma=1.0,min=16k,max=64M", 0, MC_CATALOG_LOGNORMAL, 0,
         200 << 10, 16 << 10, 64u << 20, 1.0},
        {"lognormal:median=64k,max=2M", 0, MC_CATALOG_LOGNORMAL, 0, 64 << 10, 16 << 10, 2 << 20, 1.0},
        {"lognormal:median=1M,sigma=0.25,min=1M,max=1M", 0, MC_CATALOG_LOGNORMAL, 0,
         1 << 20, 1 << 20, 1 << 20, 0.25},
        {"fixed:", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"fixed:0", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"fixed:4G", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"fixed:12X", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"uniform:1M", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"lognormal:max=64M", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"lognormal:median=200k,max=4k", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"lognormal:median=100M,max=64M", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"lognormal:median=200k,min=300k", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"lognormal:median=200k,sigma=0", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"lognormal:median=200k,sigma=x", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"lognormal:median=200k,mean=1M", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"lognormal:median", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
        {"", MC_E_INVAL, 0, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_catalog_sizes s;
        char why[512] = "";
        int rc = mc_catalog_parse_sizes(cases[i].spec, &s, why, sizeof why);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d (%s)", cases[i].spec, rc, why);
        if (rc < 0) {
            assert_non_null(strstr(why, "--sizes"));   /* errors name the flag */
            continue;
        }
        assert_int_equal(s.dist, cases[i].dist);
        if (s.dist == MC_CATALOG_FIXED) {
            assert_int_equal(s.fixed_bytes, cases[i].fixed);
        } else {
            assert_int_equal(s.median_bytes, cases[i].median);
            assert_int_equal(s.min_bytes, cases[i].min);
            assert_int_equal(s.max_bytes, cases[i].max);
            assert_true(s.sigma == cases[i].sigma);
        }
    }
}

static void check_opts_table(void **state)
{
    (void)state;
    static const struct {
        const char *out, *prefix;
        uint64_t count, seed, gltf;
        const char *flag;   /* NULL: valid */
    } cases[] = {
        {"/tmp/x", "models/", 10, 7, MC_CATALOG_GLTF_DEFAULT, NULL},
        {"/tmp/x", "", 1, 0, 0, NULL},
        {"/tmp/x", "a/b-c_d.e/", 1, MC_CATALOG_SEED_MAX, 1, NULL},
        {NULL, "models/", 10, 7, 1, "--out"},
        {"/tmp/x", "models/", 0, 7, 0, "--count"},
        {"/tmp/x", "models/", MC_CATALOG_COUNT_MAX + 1, 7, 0, "--count"},
        {"/tmp/x", "models/", 10, MC_CATALOG_SEED_MAX + 1, 0, "--seed"},
        {"/tmp/x", "models/", 10, 7, 11, "--gltf-count"},
        {"/tmp/x", "/models/", 10, 7, 1, "--prefix"},
        {"/tmp/x", "models", 10, 7, 1, "--prefix"},
        {"/tmp/x", "../models/", 10, 7, 1, "--prefix"},
        {"/tmp/x", "a//b/", 10, 7, 1, "--prefix"},
        {"/tmp/x", "mo dels/", 10, 7, 1, "--prefix"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_catalog_opts o;
        mc_catalog_opts_init(&o);
        o.out_dir = cases[i].out;
        o.prefix = cases[i].prefix;
        o.count = cases[i].count;
        o.seed = cases[i].seed;
        o.gltf_count = cases[i].gltf;
        char why[512] = "";
        int rc = mc_catalog_check_opts(&o, why, sizeof why);
        if (cases[i].flag == NULL) {
            if (rc != 0)
                fail_msg("case %zu: %s", i, why);
        } else {
            assert_int_equal(rc, MC_E_INVAL);
            if (strstr(why, cases[i].flag) == NULL)
                fail_msg("case %zu: \"%s\" does not name %s", i, why, cases[i].flag);
        }
    }
    mc_catalog_opts o;
    mc_catalog_opts_init(&o);
    static const uint64_t counts[][2] = {{1, 1}, {9, 1}, {10, 1}, {12, 1}, {25, 2}, {1000, 100}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        o.count = counts[i][0];
        assert_int_equal(mc_catalog_gltf_count(&o), counts[i][1]);
    }
}

static void catalog_lognormal_is_valid(void **state)
{
    (void)state;
    run r;
    generate(&r, "lognormal", 12, 7, "lognormal:median=64k,max=2M", MC_CATALOG_GLTF_DEFAULT);
    check_catalog(&r);
}

static void catalog_lognormal_many_gltf(void **state)
{
    (void)state;
    run r;
    generate(&r, "mixed", 8, 11, "lognormal:median=32k,sigma=2,min=8k,max=1M", 4);
    check_catalog(&r);
}

static void catalog_fixed_3M_is_valid(void **state)
{
    (void)state;
    run r;
    generate(&r, "fixed3M", 3, 7, "fixed:3M", 1);
    check_catalog(&r);
}

/* Below the minimal mesh: the minimal mesh, still valid, still small. */
static void catalog_tiny_target_gets_minimal_mesh(void **state)
{
    (void)state;
    run r;
    generate(&r, "tiny", 2, 3, "fixed:1k", 1);
    char path[PATH_MAX];
    path_join(path, r.dir, "/index.json");
    json_t *ix = json_load_file(path, 0, NULL);
    assert_non_null(ix);
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(ix, "objects"), i, o) {
        const char *rel = json_string_value(json_object_get(o, "path"));
        path_join(path, r.dir, rel);
        assert_true(jint(o, "size", -1) < 8 * 1024);
        if (ends_with(rel, ".glb")) {
            check_glb_file(path);
        } else if (ends_with(rel, ".gltf")) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') + 1 - path), path);
            check_gltf_file(path, dir);
        }
    }
    json_decref(ix);
}

static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    uint8_t *pa = slurp(a, &la), *pb = slurp(b, &lb);
    int same = la == lb && memcmp(pa, pb, la) == 0;
    free(pa);
    free(pb);
    return same;
}

static void catalog_is_deterministic(void **state)
{
    (void)state;
    run a, b, c;
    const char *sizes = "lognormal:median=64k,max=2M";
    generate(&a, "det-a", 6, 99, sizes, 2);
    generate(&b, "det-b", 6, 99, sizes, 2);
    generate(&c, "det-c", 6, 100, sizes, 2);
    char pa[PATH_MAX], pb[PATH_MAX], pc[PATH_MAX];
    path_join(pa, a.dir, "/index.json");
    path_join(pb, b.dir, "/index.json");
    path_join(pc, c.dir, "/index.json");
    assert_true(same_file(pa, pb));
    assert_false(same_file(pa, pc));

    json_t *ix = json_load_file(pa, 0, NULL);
    assert_non_null(ix);
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(ix, "objects"), i, o) {
        const char *rel = json_string_value(json_object_get(o, "path"));
        path_join(pa, a.dir, rel);
        path_join(pb, b.dir, rel);
        if (!same_file(pa, pb))
            fail_msg("%s differs between two runs with the same seed", rel);
    }
    json_decref(ix);

    /* a different seed changes the content too, not just the names */
    mc_catalog_asset x, y;
    mc_catalog_asset_at(&a.opts, 1, &x);
    mc_catalog_asset_at(&c.opts, 1, &y);
    assert_true(x.target_bytes != y.target_bytes || x.shape.height_m != y.shape.height_m);
}

/* ---- the validator ------------------------------------------------------- */

typedef enum mutation {
    M_NONE, M_TRUNC_4, M_TRUNC_HEADER, M_EMPTY, M_MAGIC, M_VERSION, M_LEN_PLUS, M_LEN_MINUS,
    M_JSON_LEN_LIES, M_BIN_LEN_LIES, M_JSON_LEN_SHORT, M_FIRST_NOT_JSON, M_BAD_JSON,
    M_NO_VERSION, M_BUFFER_TOO_BIG, M_UNALIGNED_CHUNK,
} mutation;

/* Applies m to a copy of glb; returns the length of the mutated copy. */
static size_t mutate(uint8_t *p, size_t len, mutation m)
{
    uint32_t jlen = le32(p + 12);
    uint8_t *json = p + 20, *bin = p + 20 + jlen;
    char *s;
    switch (m) {
    case M_NONE: break;
    case M_TRUNC_4: return len - 4;
    case M_TRUNC_HEADER: return 11;
    case M_EMPTY: return 0;
    case M_MAGIC: p[0] = 'G'; break;
    case M_VERSION: put_le32(p + 4, 1); break;
    case M_LEN_PLUS: put_le32(p + 8, (uint32_t)len + 4); break;
    case M_LEN_MINUS: put_le32(p + 8, (uint32_t)len - 4); break;
    case M_JSON_LEN_LIES: put_le32(p + 12, (uint32_t)len); break;
    case M_BIN_LEN_LIES: put_le32(bin, le32(bin) + 4); break;
    case M_JSON_LEN_SHORT: put_le32(p + 12, jlen - 4); break;
    case M_FIRST_NOT_JSON: put_le32(p + 16, 0x004E4942); break;
    case M_BAD_JSON: json[0] = '['; break;
    case M_NO_VERSION:
        s = memmem(json, jlen, "\"version\"", 9);
        assert_non_null(s);
        s[1] = 'V';
        break;
    case M_BUFFER_TOO_BIG:
        /* BIN 8 bytes shorter, followed by an empty unknown chunk */
        put_le32(bin, le32(bin) - 8);
        put_le32(bin + 8 + le32(bin), 0);
        put_le32(bin + 12 + le32(bin), 0x54534554);
        break;
    case M_UNALIGNED_CHUNK: put_le32(bin, le32(bin) - 1); break;
    }
    return len;
}

static void validator_table(void **state)
{
    (void)state;
    run r;
    generate(&r, "validator", 1, 5, "fixed:20k", 0);
    mc_catalog_asset a;
    mc_catalog_asset_at(&r.opts, 1, &a);
    char path[PATH_MAX];
    int plen = snprintf(path, sizeof path, "%s/models/%s/%s.glb", r.dir, a.id, a.name);
    assert_true(plen > 0 && (size_t)plen < sizeof path);
    size_t len;
    uint8_t *glb = slurp(path, &len);

    static const struct { mutation m; int rc; const char *why; } cases[] = {
        {M_NONE, 0, ""},
        {M_TRUNC_4, MC_E_TRUNCATED, "declares"},
        {M_TRUNC_HEADER, MC_E_TRUNCATED, "header"},
        {M_EMPTY, MC_E_TRUNCATED, "header"},
        {M_MAGIC, MC_E_INVAL, "magic"},
        {M_VERSION, MC_E_INVAL, "version"},
        {M_LEN_PLUS, MC_E_TRUNCATED, "declares"},
        {M_LEN_MINUS, MC_E_INVAL, "declares"},
        {M_JSON_LEN_LIES, MC_E_INVAL, "chunk 0"},
        {M_BIN_LEN_LIES, MC_E_INVAL, "chunk 1"},
        {M_JSON_LEN_SHORT, MC_E_INVAL, ""},
        {M_FIRST_NOT_JSON, MC_E_INVAL, "JSON"},
        {M_BAD_JSON, MC_E_INVAL, "JSON chunk"},
        {M_NO_VERSION, MC_E_INVAL, "asset.version"},
        {M_BUFFER_TOO_BIG, MC_E_INVAL, "byteLength"},
        {M_UNALIGNED_CHUNK, MC_E_INVAL, "multiple of 4"},
    };
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(copy, glb, len);
        size_t n = mutate(copy, len, cases[i].m);
        char why[256] = "";
        int rc = mc_gltf_check_glb(copy, n, why, sizeof why);
        if (rc != cases[i].rc || strstr(why, cases[i].why) == NULL)
            fail_msg("mutation %d: rc %d \"%s\", want %d \"%s\"", (int)cases[i].m, rc, why,
                     cases[i].rc, cases[i].why);
        if (rc < 0)
            assert_true(why[0] != '\0');
    }

    /* an unknown chunk after BIN is skipped (section 4.4.3.1) */
    uint8_t *more = malloc(len + 16);
    assert_non_null(more);
    memcpy(more, glb, len);
    put_le32(more + 8, (uint32_t)len + 16);
    put_le32(more + len, 8);
    put_le32(more + len + 4, 0x54534554);
    memset(more + len + 8, 0, 8);
    assert_int_equal(mc_gltf_check_glb(more, len + 16, NULL, 0), 0);
    free(more);
    free(copy);
    free(glb);
}

static void validator_json_table(void **state)
{
    (void)state;
    static const struct { const char *doc; int rc; } cases[] = {
        {"{\"asset\":{\"version\":\"2.0\"}}", 0},
        {"{\"asset\":{\"version\":\"2.1\"}}   ", 0},
        {"{\"asset\":{\"version\":\"1.0\"}}", MC_E_INVAL},
        {"{\"asset\":{\"version\":2.0}}", MC_E_INVAL},
        {"{\"asset\":{}}", MC_E_INVAL},
        {"[]", MC_E_INVAL},
        {"{\"asset\":{\"version\":\"2.0\"}", MC_E_INVAL},
        {"", MC_E_INVAL},
        {"{\"asset\":{\"version\":\"2.0\"},\"asset\":{}}", MC_E_INVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256] = "";
        int rc = mc_gltf_check_json(cases[i].doc, strlen(cases[i].doc), why, sizeof why);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d (%s)", i, rc, why);
    }
}

/* The writers alone: exact sizes across the 16/32-bit index boundary. */
static void writer_hits_targets(void **state)
{
    (void)state;
    static const uint64_t targets[] = {
        4096, 16384, 65536, 1000000, 2400000, 2900000, 3145728, 3800000,
    };
    mc_catalog_opts o;
    mc_catalog_opts_init(&o);
    o.count = 1;
    mc_catalog_asset a;
    mc_catalog_asset_at(&o, 1, &a);
    char glb[PATH_MAX], gltf[PATH_MAX], bin[PATH_MAX];
    path_join(glb, root_dir, "/w.glb");
    path_join(gltf, root_dir, "/w.gltf");
    path_join(bin, root_dir, "/w.bin");
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        mc_gltf_result res;
        char why[256] = "";
        assert_int_equal(mc_gltf_write_glb(glb, "w", &a.shape, targets[i], &res, why, sizeof why), 0);
        assert_int_equal(res.file_bytes, targets[i] & ~3ull);
        if (res.index_u16)
            assert_true(res.vertex_count <= 65535);
        check_glb_file(glb);
        assert_int_equal(mc_gltf_write_gltf(gltf, bin, "w", "w.bin", "w.png", &a.shape, targets[i],
                                            &res, why, sizeof why), 0);
        assert_int_equal(res.file_bytes + res.bin_bytes, targets[i] & ~3ull);
    }
    char why[256] = "";
    assert_int_equal(mc_gltf_write_glb(glb, "w", &a.shape, MC_GLTF_MAX_BYTES + 4, NULL, why, sizeof why),
                     MC_E_INVAL);
    assert_int_equal(mc_gltf_write_glb(glb, "bad\nname", &a.shape, 4096, NULL, why, sizeof why),
                     MC_E_INVAL);
    remove(glb);
    remove(gltf);
    remove(bin);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(root_dir, sizeof root_dir, "%s/test_catalog.XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    return mkdtemp(root_dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(root_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_size_table),
        cmocka_unit_test(parse_sizes_table),
        cmocka_unit_test(check_opts_table),
        cmocka_unit_test(catalog_lognormal_is_valid),
        cmocka_unit_test(catalog_lognormal_many_gltf),
        cmocka_unit_test(catalog_fixed_3M_is_valid),
        cmocka_unit_test(catalog_tiny_target_gets_minimal_mesh),
        cmocka_unit_test(catalog_is_deterministic),
        cmocka_unit_test(validator_table),
        cmocka_unit_test(validator_json_table),
        cmocka_unit_test(writer_hits_targets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
