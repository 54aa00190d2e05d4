/* gltf.c — glTF 2.0 writers sized to a byte target, and GLB/JSON checks;
 * see gltf.h. Section numbers refer to the glTF 2.0 specification. */
#include "tests/load/gltf.h"

#include "common/err.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MESHCDN_VERSION
#define MESHCDN_VERSION "0.0.0"
#endif

#define GLB_MAGIC 0x46546C67u      /* "glTF" */
#define GLB_CHUNK_JSON 0x4E4F534Au
#define GLB_CHUNK_BIN 0x004E4942u
#define GLB_HEADER 12u
#define GLB_CHUNK_HEADER 8u

#define GL_ARRAY_BUFFER 34962
#define GL_ELEMENT_ARRAY_BUFFER 34963
#define GL_UNSIGNED_SHORT 5123
#define GL_UNSIGNED_INT 5125
#define GL_FLOAT 5126
#define GL_TRIANGLES 4

/* Interleaved vertex: POSITION 12 + NORMAL 12 (+ TEXCOORD_0 8 when textured:
 * an untextured GLB would only carry an unused accessor). */
#define STRIDE_UV 32u
#define STRIDE_PLAIN 24u
#define WBUF_CAP (1u << 20)
_Static_assert(sizeof(float) == 4, "glTF FLOAT is IEEE 754 binary32");
#define NAME_MAX_BYTES 200u
#define PI 3.14159265358979323846

/* JSON placeholders wider than any real value: an integer of 11 digits and a
 * double whose %.17g form is the longest possible. The JSON built with them
 * bounds the real JSON's length before the mesh (and its min/max) exists. */
#define WIDE_INT 99999999999LL
#define WIDE_REAL (-1.2345678901234567e+300)
#define WIDE_SLACK 16u


/* ---- the lathe surface ------------------------------------------------ */

/* Per-column and per-ring terms of the surface, so a vertex costs a few
 * multiplies; owned by the writer call that builds it. */
typedef struct lathe {
    uint32_t nu, nv;
    double height;
    double *cu, *su, *lu, *dlu;    /* [nu]: cos u, sin u, L(u), L'(u) */
    double *y, *r, *dr;            /* [nv]: height, R(v), R'(v) */
} lathe;

static void lathe_free(lathe *g)
{
    free(g->cu);
    memset(g, 0, sizeof *g);
}

static int lathe_build(lathe *g, const mc_gltf_shape *s, uint32_t nu, uint32_t nv)
{
    memset(g, 0, sizeof *g);
    g->cu = malloc(sizeof(double) * (4 * (size_t)nu + 3 * (size_t)nv));
    if (g->cu == NULL)
        return MC_E_NOMEM;
    g->nu = nu;
    g->nv = nv;
    g->height = s->height_m;
    g->su = g->cu + nu;
    g->lu = g->su + nu;
    g->dlu = g->lu + nu;
    g->y = g->dlu + nu;
    g->r = g->y + nv;
    g->dr = g->r + nv;
    for (uint32_t i = 0; i < nu; i++) {
        /* the last column repeats the first so the UV seam has its own vertices */
        double u = i == nu - 1 ? 0.0 : 2.0 * PI * i / (nu - 1);
        double m = (double)s->lobe_count;
        g->cu[i] = cos(u);
        g->su[i] = sin(u);
        g->lu[i] = 1.0 + s->lobe_amp * cos(m * u);
        g->dlu[i] = -s->lobe_amp * m * sin(m * u);
    }
    for (uint32_t j = 0; j < nv; j++) {
        double v = (double)j / (nv - 1);
        double wave = 0.0, dwave = 0.0;
        for (int k = 0; k < 2; k++) {
            double w = 2.0 * PI * s->wave_freq[k];
            wave += s->wave_amp[k] * sin(w * v + s->wave_phase[k]);
            dwave += s->wave_amp[k] * w * cos(w * v + s->wave_phase[k]);
        }
        double t = 1.0 - s->taper * v;
        g->y[j] = s->height_m * (v - 0.5);
        g->r[j] = s->radius_m * t * (1.0 + wave);
        g->dr[j] = s->radius_m * (-s->taper * (1.0 + wave) + t * dwave);
    }
    return 0;
}

/* Position, outward unit normal (dP/dv x dP/du) and UV of grid vertex (i, j).
 * The min/max pass and the write pass both call this, so the JSON bounds are
 * the exact floats in the buffer. */
static void lathe_vertex(const lathe *g, uint32_t i, uint32_t j, float out[8])
{
    double c = g->cu[i], s = g->su[i], l = g->lu[i], dl = g->dlu[i];
    double r = g->r[j], dr = g->dr[j];
    double bx = r * (dl * c - l * s), bz = r * (dl * s + l * c);   /* dP/du */
    double ax = dr * l * c, ay = g->height, az = dr * l * s;       /* dP/dv */
    double nx = ay * bz, ny = az * bx - ax * bz, nz = -ay * bx;
    double n = sqrt(nx * nx + ny * ny + nz * nz);
    out[0] = (float)(r * l * c);
    out[1] = (float)g->y[j];
    out[2] = (float)(r * l * s);
    out[3] = (float)(nx / n);
    out[4] = (float)(ny / n);
    out[5] = (float)(nz / n);
    out[6] = (float)i / (float)(g->nu - 1);
    out[7] = (float)j / (float)(g->nv - 1);
}

/* ---- choosing the grid ------------------------------------------------ */

typedef struct grid {
    uint32_t nu, nv;
    int u16;
    uint64_t bin;      /* vertex view + index view */
} grid;

static uint64_t grid_bin(uint64_t nu, uint64_t nv, int u16, uint64_t stride)
{
    return stride * nu * nv + (u16 ? 12u : 24u) * (nu - 1) * (nv - 1);
}

/* Largest grid whose binary payload fits budget, columns between nv and 4*nv
 * (a recognisable shape, not a ribbon). UNSIGNED_SHORT needs fewer than
 * 65535 vertices (65535 is the primitive restart value, section 3.7.2.1);
 * it is preferred when it gets within 1% of the budget, and UNSIGNED_INT
 * covers the rest, including the gap above the largest 16-bit grid. */
static grid plan_grid(uint64_t budget, uint64_t stride)
{
    grid best[2] = {{0, 0, 1, 0}, {0, 0, 0, 0}};
    for (uint64_t nv = MC_GLTF_NV_MIN;; nv++) {
        uint64_t lo = nv > MC_GLTF_NU_MIN ? nv : MC_GLTF_NU_MIN;
        if (grid_bin(lo, nv, 1, stride) > budget)
            break;
        for (int k = 0; k < 2; k++) {
            int u16 = k == 0;
            uint64_t per = u16 ? 12u : 24u;
            uint64_t nu = (budget + per * (nv - 1)) / (stride * nv + per * (nv - 1));
            if (nu > 4 * nv)
                nu = 4 * nv;
            if (u16 && nu * nv > 65535)
                nu = 65535 / nv;
            if (nu < lo || nu * nv > 0xFFFFFFFEull)
                continue;
            uint64_t bin = grid_bin(nu, nv, u16, stride);
            if (bin <= budget && bin > best[k].bin)
                best[k] = (grid){(uint32_t)nu, (uint32_t)nv, u16, bin};
        }
    }
    if (best[0].bin > 0 && best[0].bin >= budget - budget / 100)
        return best[0];
    if (best[1].bin > best[0].bin)
        return best[1];
    if (best[0].bin > 0)
        return best[0];
    grid g = {MC_GLTF_NU_MIN, MC_GLTF_NV_MIN, 1, 0};
    g.bin = grid_bin(g.nu, g.nv, 1, stride);
    return g;
}

/* ---- the JSON document ------------------------------------------------ */

typedef struct doc {
    const char *name;
    const char *bin_uri;     /* NULL for GLB */
    const char *image_uri;   /* NULL for GLB */
    const mc_gltf_shape *shape;
    json_int_t vertices, indices, vertex_bytes, index_bytes;
    int u16;
    int uv;                  /* TEXCOORD_0 present (the .gltf, textured) */
    double min[3], max[3];
} doc;

static json_t *jreal3(const double v[3])
{
    return json_pack("[fff]", v[0], v[1], v[2]);
}

static json_t *build_material(const doc *d)
{
    const mc_gltf_shape *s = d->shape;
    json_t *pbr = json_pack("{s:[ffff],s:f,s:f}", "baseColorFactor",
                            s->base_color[0], s->base_color[1], s->base_color[2],
                            s->base_color[3], "metallicFactor", s->metallic,
                            "roughnessFactor", s->roughness);
    if (pbr != NULL && d->image_uri != NULL)
        json_object_set_new(pbr, "baseColorTexture", json_pack("{s:i}", "index", 0));
    return json_pack("{s:s,s:o}", "name", d->name, "pbrMetallicRoughness", pbr);
}

static json_t *build_accessors(const doc *d)
{
    json_t *a = json_array();
    json_array_append_new(a, json_pack("{s:i,s:i,s:i,s:I,s:s,s:o,s:o}",
        "bufferView", 0, "byteOffset", 0, "componentType", GL_FLOAT,
        "count", d->vertices, "type", "VEC3", "min", jreal3(d->min), "max", jreal3(d->max)));
    json_array_append_new(a, json_pack("{s:i,s:i,s:i,s:I,s:s}",
        "bufferView", 0, "byteOffset", 12, "componentType", GL_FLOAT,
        "count", d->vertices, "type", "VEC3"));
    if (d->uv)
        json_array_append_new(a, json_pack("{s:i,s:i,s:i,s:I,s:s}",
            "bufferView", 0, "byteOffset", 24, "componentType", GL_FLOAT,
            "count", d->vertices, "type", "VEC2"));
    json_array_append_new(a, json_pack("{s:i,s:i,s:i,s:I,s:s}",
        "bufferView", 1, "byteOffset", 0,
        "componentType", d->u16 ? GL_UNSIGNED_SHORT : GL_UNSIGNED_INT,
        "count", d->indices, "type", "SCALAR"));
    if (json_array_size(a) != (d->uv ? 4u : 3u)) {
        json_decref(a);   /* an accessor failed to build (out of memory) */
        return NULL;
    }
    return a;
}

static json_t *build_doc(const doc *d)
{
    json_t *root = json_pack("{s:{s:s,s:s},s:i,s:[{s:[i]}],s:[{s:s,s:i}]}",
        "asset", "version", "2.0", "generator", "meshcdn-load " MESHCDN_VERSION,
        "scene", 0, "scenes", "nodes", 0, "nodes", "name", d->name, "mesh", 0);
    if (root == NULL)
        return NULL;
    json_t *attrs = json_pack("{s:i,s:i}", "POSITION", 0, "NORMAL", 1);
    if (attrs != NULL && d->uv)
        json_object_set_new(attrs, "TEXCOORD_0", json_integer(2));
    json_object_set_new(root, "meshes", json_pack("[{s:s,s:[{s:o,s:i,s:i,s:i}]}]",
        "name", d->name, "primitives", "attributes", attrs, "indices", d->uv ? 3 : 2,
        "material", 0, "mode", GL_TRIANGLES));
    json_object_set_new(root, "materials", json_pack("[o]", build_material(d)));
    if (d->image_uri != NULL) {
        /* LINEAR / LINEAR_MIPMAP_LINEAR / REPEAT */
        json_object_set_new(root, "samplers", json_pack("[{s:i,s:i,s:i,s:i}]",
            "magFilter", 9729, "minFilter", 9987, "wrapS", 10497, "wrapT", 10497));
        json_object_set_new(root, "images", json_pack("[{s:s}]", "uri", d->image_uri));
        json_object_set_new(root, "textures", json_pack("[{s:i,s:i}]", "sampler", 0, "source", 0));
    }
    json_t *buf = json_pack("{s:I}", "byteLength", d->vertex_bytes + d->index_bytes);
    if (buf != NULL && d->bin_uri != NULL)
        json_object_set_new(buf, "uri", json_string(d->bin_uri));
    json_object_set_new(root, "buffers", json_pack("[o]", buf));
    json_object_set_new(root, "bufferViews", json_pack("[{s:i,s:i,s:I,s:i,s:i},{s:i,s:I,s:I,s:i}]",
        "buffer", 0, "byteOffset", 0, "byteLength", d->vertex_bytes, "byteStride", d->uv ? (int)STRIDE_UV : (int)STRIDE_PLAIN,
        "target", GL_ARRAY_BUFFER,
        "buffer", 0, "byteOffset", d->vertex_bytes, "byteLength", d->index_bytes,
        "target", GL_ELEMENT_ARRAY_BUFFER));
    json_object_set_new(root, "accessors", build_accessors(d));
    if (json_object_size(root) != (d->image_uri != NULL ? 12u : 9u)) {
        json_decref(root);   /* a member failed to build (out of memory) */
        return NULL;
    }
    return root;
}

/* The compact JSON text of d, or NULL (out of memory). Caller frees. */
static char *dump_doc(const doc *d, size_t *len)
{
    json_t *root = build_doc(d);
    char *text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text != NULL)
        *len = strlen(text);
    return text;
}

static size_t json_upper_bound(const doc *real, int *ok)
{
    doc wide = *real;
    wide.vertices = wide.indices = wide.vertex_bytes = wide.index_bytes = WIDE_INT;
    for (int k = 0; k < 3; k++)
        wide.min[k] = wide.max[k] = WIDE_REAL;
    size_t len = 0;
    char *text = dump_doc(&wide, &len);
    *ok = text != NULL;
    free(text);
    return len + WIDE_SLACK;
}

/* ---- streaming output ------------------------------------------------- */

typedef struct wbuf {
    FILE *f;
    uint8_t *p;
    size_t len;
    uint64_t total;
    int err;
} wbuf;

static void wb_flush(wbuf *w)
{
    if (w->len > 0 && !w->err && fwrite(w->p, 1, w->len, w->f) != w->len)
        w->err = errno != 0 ? errno : EIO;
    w->len = 0;
}

/* Room for n (<= 64) more bytes, already counted as written. */
static uint8_t *wb_reserve(wbuf *w, size_t n)
{
    if (w->len + n > WBUF_CAP)
        wb_flush(w);
    uint8_t *q = w->p + w->len;
    w->len += n;
    w->total += n;
    return q;
}

static void put_le32(uint8_t *q, uint32_t v)
{
    q[0] = (uint8_t)v;
    q[1] = (uint8_t)(v >> 8);
    q[2] = (uint8_t)(v >> 16);
    q[3] = (uint8_t)(v >> 24);
}

static void wb_u32(wbuf *w, uint32_t v)
{
    put_le32(wb_reserve(w, 4), v);
}

static void wb_fill(wbuf *w, const void *data, uint8_t fill, size_t n)
{
    const uint8_t *src = data;
    while (n > 0) {
        if (w->len == WBUF_CAP)
            wb_flush(w);
        size_t k = WBUF_CAP - w->len < n ? WBUF_CAP - w->len : n;
        if (src != NULL) {
            memcpy(w->p + w->len, src, k);
            src += k;
        } else {
            memset(w->p + w->len, fill, k);
        }
        w->len += k;
        w->total += k;
        n -= k;
    }
}

static int wb_open(wbuf *w, const char *path, char *why, size_t whylen)
{
    memset(w, 0, sizeof *w);
    w->p = malloc(WBUF_CAP);
    if (w->p == NULL)
        return mc_err_why(why, whylen, MC_E_NOMEM, "%s: out of memory", path);
    w->f = fopen(path, "wb");
    if (w->f == NULL) {
        int e = errno;
        free(w->p);
        w->p = NULL;
        return mc_err_why(why, whylen, MC_E_IO, "%s: %s", path, strerror(e));
    }
    return 0;
}

/* Flushes, closes and frees; on any error removes the file. */
static int wb_close(wbuf *w, const char *path, char *why, size_t whylen)
{
    if (w->f == NULL)
        return 0;
    wb_flush(w);
    if (fclose(w->f) != 0 && !w->err)
        w->err = errno != 0 ? errno : EIO;
    w->f = NULL;
    free(w->p);
    w->p = NULL;
    if (w->err) {
        remove(path);
        return mc_err_why(why, whylen, MC_E_IO, "%s: %s", path, strerror(w->err));
    }
    return 0;
}

/* ---- mesh data ---------------------------------------------------------- */

static void mesh_bounds(const lathe *g, double min[3], double max[3])
{
    float v[8];
    for (int k = 0; k < 3; k++) {
        min[k] = INFINITY;
        max[k] = -INFINITY;
    }
    for (uint32_t j = 0; j < g->nv; j++) {
        for (uint32_t i = 0; i < g->nu; i++) {
            lathe_vertex(g, i, j, v);
            for (int k = 0; k < 3; k++) {
                min[k] = v[k] < min[k] ? v[k] : min[k];
                max[k] = v[k] > max[k] ? v[k] : max[k];
            }
        }
    }
}

/* Vertices interleaved (bufferView 0), then indices (bufferView 1), with
 * triangles wound counter-clockwise seen from outside (section 3.7.2.1). */
static void mesh_write(wbuf *w, const lathe *g, int u16, int uv)
{
    float v[8];
    int floats = uv ? 8 : 6;
    for (uint32_t j = 0; j < g->nv; j++) {
        for (uint32_t i = 0; i < g->nu; i++) {
            lathe_vertex(g, i, j, v);
            uint32_t bits[8];
            memcpy(bits, v, sizeof bits);
            uint8_t *q = wb_reserve(w, 4 * (size_t)floats);
            for (int k = 0; k < floats; k++)
                put_le32(q + 4 * k, bits[k]);
        }
    }
    for (uint32_t j = 0; j + 1 < g->nv; j++) {
        for (uint32_t i = 0; i + 1 < g->nu; i++) {
            uint32_t a = j * g->nu + i, b = a + 1, c = a + g->nu, d = c + 1;
            uint32_t tri[6] = {a, c, b, b, c, d};
            uint8_t *q = wb_reserve(w, u16 ? 12 : 24);
            for (int k = 0; k < 6; k++) {
                if (u16) {
                    q[2 * k] = (uint8_t)tri[k];
                    q[2 * k + 1] = (uint8_t)(tri[k] >> 8);
                } else {
                    put_le32(q + 4 * k, tri[k]);
                }
            }
        }
    }
}

/* ---- writers ------------------------------------------------------------ */

/* Everything both writers share: argument checks, the grid, the surface and
 * the JSON text. json_bound, an upper bound of the JSON length, is reserved
 * from the target before the grid is chosen; owned by the writer call. */
typedef struct job {
    doc d;
    grid g;
    lathe surf;
    char *json;
    size_t json_len;
    size_t json_bound;
} job;

static void job_free(job *j)
{
    lathe_free(&j->surf);
    free(j->json);
}

static int name_ok(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > NAME_MAX_BYTES)
        return 0;
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return 0;
    return 1;
}

static int job_prepare(job *j, const doc *d, uint64_t target, size_t fixed_overhead,
                       int pad4, char *why, size_t whylen)
{
    memset(j, 0, sizeof *j);
    j->d = *d;
    if (target > MC_GLTF_MAX_BYTES)
        return mc_err_why(why, whylen, MC_E_INVAL, "target %llu bytes above the glTF limit %llu",
                       (unsigned long long)target, MC_GLTF_MAX_BYTES);
    if (!name_ok(d->name) || (d->bin_uri != NULL && !name_ok(d->bin_uri)) ||
        (d->image_uri != NULL && !name_ok(d->image_uri)))
        return mc_err_why(why, whylen, MC_E_INVAL, "name or uri is empty, too long or not printable ASCII");
    int ok;
    j->json_bound = json_upper_bound(d, &ok);
    if (!ok)
        return mc_err_why(why, whylen, MC_E_NOMEM, "out of memory building JSON");
    if (pad4)
        j->json_bound = (j->json_bound + 3) & ~(size_t)3;
    uint64_t overhead = fixed_overhead + j->json_bound;
    j->g = plan_grid(target > overhead ? target - overhead : 0, d->uv ? STRIDE_UV : STRIDE_PLAIN);
    if (lathe_build(&j->surf, d->shape, j->g.nu, j->g.nv) < 0)
        return mc_err_why(why, whylen, MC_E_NOMEM, "out of memory for a %ux%u grid", j->g.nu, j->g.nv);
    j->d.vertices = (json_int_t)j->g.nu * j->g.nv;
    j->d.indices = (json_int_t)6 * (j->g.nu - 1) * (j->g.nv - 1);
    j->d.vertex_bytes = j->d.vertices * (d->uv ? STRIDE_UV : STRIDE_PLAIN);
    j->d.index_bytes = j->d.indices * (j->g.u16 ? 2 : 4);
    j->d.u16 = j->g.u16;
    mesh_bounds(&j->surf, j->d.min, j->d.max);
    j->json = dump_doc(&j->d, &j->json_len);
    if (j->json == NULL)
        return mc_err_why(why, whylen, MC_E_NOMEM, "out of memory building JSON");
    if (j->json_len > j->json_bound)   /* the placeholders are too narrow: a bug */
        return mc_err_why(why, whylen, MC_E_INVAL, "JSON is %zu bytes, bound was %zu",
                       j->json_len, j->json_bound);
    return 0;
}

static void fill_result(mc_gltf_result *res, const job *j, uint64_t file_bytes)
{
    if (res == NULL)
        return;
    res->file_bytes = file_bytes;
    res->bin_bytes = j->g.bin;
    res->grid_u = j->g.nu;
    res->grid_v = j->g.nv;
    res->vertex_count = (uint32_t)j->d.vertices;
    res->index_count = (uint32_t)j->d.indices;
    res->index_u16 = j->g.u16;
}

int mc_gltf_write_glb(const char *path, const char *name, const mc_gltf_shape *shape,
                      uint64_t target_bytes, mc_gltf_result *res,
                      char *why, size_t whylen)
{
    doc d = {.name = name, .shape = shape};
    job j;
    uint64_t target = target_bytes & ~3ull;
    int rc = job_prepare(&j, &d, target, GLB_HEADER + 2 * GLB_CHUNK_HEADER, 1, why, whylen);
    if (rc < 0) {
        job_free(&j);
        return rc;
    }
    uint64_t fixed = GLB_HEADER + 2 * GLB_CHUNK_HEADER;
    uint64_t json_chunk = (j.json_len + 3) & ~(size_t)3;
    if (fixed + j.json_bound + j.g.bin <= target)
        json_chunk = target - fixed - j.g.bin;   /* absorb the remainder in spaces */
    uint64_t total = fixed + json_chunk + j.g.bin;
    if (total > MC_GLTF_MAX_BYTES || json_chunk % 4 != 0) {
        job_free(&j);
        return mc_err_why(why, whylen, MC_E_INVAL, "GLB layout error (total %llu)",
                       (unsigned long long)total);
    }

    wbuf w;
    rc = wb_open(&w, path, why, whylen);
    if (rc == 0) {
        wb_u32(&w, GLB_MAGIC);
        wb_u32(&w, 2);
        wb_u32(&w, (uint32_t)total);
        wb_u32(&w, (uint32_t)json_chunk);
        wb_u32(&w, GLB_CHUNK_JSON);
        wb_fill(&w, j.json, 0, j.json_len);
        wb_fill(&w, NULL, ' ', json_chunk - j.json_len);
        wb_u32(&w, (uint32_t)j.g.bin);
        wb_u32(&w, GLB_CHUNK_BIN);
        mesh_write(&w, &j.surf, j.g.u16, j.d.uv);
        if (w.total != total && !w.err)
            w.err = EIO;                      /* layout and data disagree: a bug */
        rc = wb_close(&w, path, why, whylen);
    }
    if (rc == 0)
        fill_result(res, &j, total);
    job_free(&j);
    return rc;
}

int mc_gltf_write_gltf(const char *gltf_path, const char *bin_path,
                       const char *name, const char *bin_uri, const char *image_uri,
                       const mc_gltf_shape *shape, uint64_t target_bytes,
                       mc_gltf_result *res, char *why, size_t whylen)
{
    if (bin_uri == NULL || image_uri == NULL)
        return mc_err_why(why, whylen, MC_E_INVAL, "a .gltf needs a bin uri and an image uri");
    doc d = {.name = name, .bin_uri = bin_uri, .image_uri = image_uri, .shape = shape, .uv = 1};
    job j;
    uint64_t target = target_bytes & ~3ull;
    int rc = job_prepare(&j, &d, target, 0, 0, why, whylen);
    if (rc < 0) {
        job_free(&j);
        return rc;
    }
    uint64_t json_file = j.json_len;
    if (j.json_bound + j.g.bin <= target)
        json_file = target - j.g.bin;

    wbuf w;
    rc = wb_open(&w, gltf_path, why, whylen);
    if (rc == 0) {
        wb_fill(&w, j.json, 0, j.json_len);
        wb_fill(&w, NULL, ' ', json_file - j.json_len);
        rc = wb_close(&w, gltf_path, why, whylen);
    }
    if (rc == 0)
        rc = wb_open(&w, bin_path, why, whylen);
    if (rc == 0) {
        mesh_write(&w, &j.surf, j.g.u16, j.d.uv);
        if (w.total != j.g.bin && !w.err)
            w.err = EIO;
        rc = wb_close(&w, bin_path, why, whylen);
        if (rc < 0)
            remove(gltf_path);
    }
    if (rc == 0)
        fill_result(res, &j, json_file);
    job_free(&j);
    return rc;
}

/* ---- checks ------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Parses a glTF JSON document and checks asset.version; *root_out (if not
 * NULL) receives the document on success, the caller decrefs it. */
static int check_doc(const void *data, size_t len, json_t **root_out,
                     const char *what, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return mc_err_why(why, whylen, MC_E_INVAL, "%s: %s (line %d, column %d)",
                       what, jerr.text, jerr.line, jerr.column);
    const char *version = json_string_value(json_object_get(json_object_get(root, "asset"), "version"));
    int rc = 0;
    if (!json_is_object(root))
        rc = mc_err_why(why, whylen, MC_E_INVAL, "%s: not a JSON object", what);
    else if (version == NULL)
        rc = mc_err_why(why, whylen, MC_E_INVAL, "%s: no asset.version string", what);
    else if (strncmp(version, "2.", 2) != 0)
        rc = mc_err_why(why, whylen, MC_E_INVAL, "%s: asset.version \"%.16s\", want 2.x", what, version);
    if (rc == 0 && root_out != NULL)
        *root_out = root;
    else
        json_decref(root);
    return rc;
}

int mc_gltf_check_json(const void *data, size_t len, char *why, size_t whylen)
{
    if (data == NULL && len > 0)
        return mc_err_why(why, whylen, MC_E_INVAL, "no data");
    return check_doc(data, len, NULL, "glTF JSON", why, whylen);
}

int mc_gltf_check_glb(const void *data, size_t len, char *why, size_t whylen)
{
    const uint8_t *p = data;
    if (p == NULL && len > 0)
        return mc_err_why(why, whylen, MC_E_INVAL, "no data");
    if (len < GLB_HEADER)
        return mc_err_why(why, whylen, MC_E_TRUNCATED, "%zu bytes, shorter than the 12-byte GLB header", len);
    if (le32(p) != GLB_MAGIC)
        return mc_err_why(why, whylen, MC_E_INVAL, "magic 0x%08x is not \"glTF\"", le32(p));
    if (le32(p + 4) != 2)
        return mc_err_why(why, whylen, MC_E_INVAL, "GLB version %u, want 2", le32(p + 4));
    uint32_t total = le32(p + 8);
    if (total > len)
        return mc_err_why(why, whylen, MC_E_TRUNCATED, "header declares %u bytes, have %zu", total, len);
    if (total < len)
        return mc_err_why(why, whylen, MC_E_INVAL, "header declares %u bytes, have %zu", total, len);
    if (total % 4 != 0)
        return mc_err_why(why, whylen, MC_E_INVAL, "length %u is not a multiple of 4", total);

    size_t off = GLB_HEADER, json_off = 0, json_len = 0;
    int64_t bin_len = -1;
    for (unsigned n = 0; off < total; n++) {
        if (total - off < GLB_CHUNK_HEADER)
            return mc_err_why(why, whylen, MC_E_INVAL, "chunk %u header runs past the end", n);
        uint32_t clen = le32(p + off), ctype = le32(p + off + 4);
        size_t left = total - off - GLB_CHUNK_HEADER;
        if (clen > left)
            return mc_err_why(why, whylen, MC_E_INVAL, "chunk %u declares %u bytes, %zu left", n, clen, left);
        if (clen % 4 != 0)
            return mc_err_why(why, whylen, MC_E_INVAL, "chunk %u length %u is not a multiple of 4", n, clen);
        if (n == 0 && ctype != GLB_CHUNK_JSON)
            return mc_err_why(why, whylen, MC_E_INVAL, "first chunk type 0x%08x is not JSON", ctype);
        if (n > 0 && ctype == GLB_CHUNK_JSON)
            return mc_err_why(why, whylen, MC_E_INVAL, "chunk %u is a second JSON chunk", n);
        if (ctype == GLB_CHUNK_BIN && n != 1)
            return mc_err_why(why, whylen, MC_E_INVAL, "BIN chunk at position %u, must be second", n);
        if (n == 0) {
            json_off = off + GLB_CHUNK_HEADER;
            json_len = clen;
        } else if (ctype == GLB_CHUNK_BIN) {
            bin_len = clen;
        }   /* other types: ignored, as section 4.4.3.1 asks of clients */
        off += GLB_CHUNK_HEADER + (size_t)clen;
    }
    if (json_off == 0)
        return mc_err_why(why, whylen, MC_E_INVAL, "no JSON chunk");

    json_t *root = NULL;
    int rc = check_doc(p + json_off, json_len, &root, "JSON chunk", why, whylen);
    if (rc < 0)
        return rc;
    json_t *buf0 = json_array_get(json_object_get(root, "buffers"), 0);
    if (json_is_object(buf0) && json_object_get(buf0, "uri") == NULL) {
        json_t *bl = json_object_get(buf0, "byteLength");
        if (bin_len < 0)
            rc = mc_err_why(why, whylen, MC_E_INVAL, "buffers[0] has no uri and there is no BIN chunk");
        else if (!json_is_integer(bl) || json_integer_value(bl) < 0 ||
                 json_integer_value(bl) > bin_len)
            rc = mc_err_why(why, whylen, MC_E_INVAL, "buffers[0].byteLength does not fit the %lld-byte BIN chunk",
                         (long long)bin_len);
    }
    json_decref(root);
    return rc;
}
