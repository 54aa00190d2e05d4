/* mesh.c — see mesh.h. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "common/metrics.h"
#include "edge/edgecfg.h"
#include "edge/mesh.h"

#define GLB_MAGIC 0x46546C67u   /* "glTF" */
#define CHUNK_JSON 0x4E4F534Au  /* "JSON" */
#define CHUNK_BIN 0x004E4942u   /* "BIN\0" */

static _Atomic uint64_t invalid_counts[3];

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int ends_with(const char *s, size_t n, const char *ext)
{
    size_t el = strlen(ext);
    return n > el && strncasecmp(s + n - el, ext, el) == 0 && s[n - el - 1] != '/';
}

mc_mesh_format mc_mesh_format_of(const char *content_type, const char *path)
{
    if (content_type) {
        size_t tl = strcspn(content_type, "; \t");
        if (tl == 17 && strncasecmp(content_type, "model/gltf-binary", 17) == 0)
            return MC_MESH_GLB;
        if (tl == 15 && strncasecmp(content_type, "model/gltf+json", 15) == 0)
            return MC_MESH_GLTF;
        if (!(tl == 24 && strncasecmp(content_type, "application/octet-stream", 24) == 0) && tl > 0)
            return MC_MESH_NONE;   /* the origin said what it is */
    }
    if (!path)
        return MC_MESH_NONE;
    size_t n = strcspn(path, "?");
    if (ends_with(path, n, ".glb"))
        return MC_MESH_GLB;
    if (ends_with(path, n, ".gltf"))
        return MC_MESH_GLTF;
    return MC_MESH_NONE;
}

const char *mc_mesh_format_name(mc_mesh_format f)
{
    return f == MC_MESH_GLB ? "glb" : f == MC_MESH_GLTF ? "gltf" : "none";
}

void mc_mesh_check_init(mc_mesh_check *c, mc_mesh_format fmt, uint64_t max_json)
{
    memset(c, 0, sizeof *c);
    c->fmt = fmt;
    c->max_json = max_json;
}

void mc_mesh_check_free(mc_mesh_check *c)
{
    mc_buf_free(&c->json);
}

static void bad(mc_mesh_check *c, const char *why)
{
    if (!c->why)
        c->why = why;
}

static void keep_json(mc_mesh_check *c, const uint8_t *p, size_t n)
{
    if (c->json_over)
        return;
    if (c->json.len + n > c->max_json) {
        c->json_over = 1;
        mc_buf_free(&c->json);
        return;
    }
    if (mc_buf_append(&c->json, p, n) < 0) {
        c->json_over = 1;
        mc_buf_free(&c->json);
    }
}

/* A chunk header is complete: check it against the declared length. */
static void glb_chunk_start(mc_mesh_check *c)
{
    uint32_t clen = le32(c->chdr), ctype = le32(c->chdr + 4);
    uint64_t start = c->total;   /* offset of the chunk's data */
    c->nchunks++;
    c->chunk_type = ctype;
    c->chunk_left = clen;
    if (start + clen > c->declared)
        bad(c, "chunk extends past the declared length");
    if (clen % 4)   /* chunks start and end 4-byte aligned (glTF 2.0 4.4.3) */
        bad(c, c->nchunks == 1 ? "JSON chunk length not a multiple of 4" : "chunk length not a multiple of 4");
    if (c->nchunks == 1) {
        if (ctype != CHUNK_JSON)
            bad(c, "first chunk is not JSON");
        if (clen == 0)
            bad(c, "empty JSON chunk");
    } else if (c->nchunks == 2 && ctype == CHUNK_BIN) {
        c->has_bin = 1;
        c->bin_len = clen;
    } else if (ctype == CHUNK_JSON) {
        bad(c, "second JSON chunk");
    }
}

static void glb_feed(mc_mesh_check *c, const uint8_t *p, size_t len)
{
    while (len > 0 && !c->why) {
        if (c->total < 12) {
            size_t n = 12 - (size_t)c->total < len ? 12 - (size_t)c->total : len;
            memcpy(c->head + c->total, p, n);
            c->total += n;
            p += n;
            len -= n;
            if (c->total == 12) {
                c->declared = le32(c->head + 8);
                if (le32(c->head) != GLB_MAGIC)
                    bad(c, "magic is not glTF");
                else if (le32(c->head + 4) != 2)
                    bad(c, "version is not 2");
                else if (c->declared < 20)
                    bad(c, "declared length below 20");
            }
            continue;
        }
        if (c->total >= c->declared) {
            bad(c, "body longer than the declared length");
            return;
        }
        if (c->chunk_left == 0) {      /* reading a chunk header */
            size_t n = 8 - c->chdr_len < len ? 8 - c->chdr_len : len;
            memcpy(c->chdr + c->chdr_len, p, n);
            c->chdr_len += (unsigned)n;
            c->total += n;
            p += n;
            len -= n;
            if (c->total > c->declared)
                bad(c, "chunk header past the declared length");
            else if (c->chdr_len == 8) {
                c->chdr_len = 0;
                glb_chunk_start(c);
            }
            continue;
        }
        size_t n = c->chunk_left < len ? (size_t)c->chunk_left : len;
        if (c->nchunks == 1)
            keep_json(c, p, n);
        c->chunk_left -= n;
        c->total += n;
        p += n;
        len -= n;
    }
    c->total += len;   /* after a defect: only count */
}

void mc_mesh_check_feed(mc_mesh_check *c, const void *data, size_t len)
{
    if (c->fmt == MC_MESH_GLB) {
        glb_feed(c, data, len);
        return;
    }
    if (c->fmt == MC_MESH_GLTF)
        keep_json(c, data, len);
    c->total += len;
}

/* The glTF JSON: an object with a string asset.version. For a GLB, buffers
 * stored in the container (buffers[0] without uri) need the BIN chunk. */
static const char *check_json(const mc_mesh_check *c)
{
    json_error_t e;
    /* a GLB's JSON chunk ends in spaces (padding), which json_loadb accepts */
    json_t *root = json_loadb(c->json.data ? c->json.data : "", c->json.len, 0, &e);
    if (!root)
        return c->fmt == MC_MESH_GLB ? "JSON chunk is not valid JSON" : "not valid JSON";
    const char *why = NULL;
    json_t *asset = json_object_get(root, "asset");
    if (!json_is_object(root))
        why = "JSON is not an object";
    else if (!json_is_object(asset) || !json_is_string(json_object_get(asset, "version")))
        why = "no asset.version";
    else if (c->fmt == MC_MESH_GLB) {
        json_t *b0 = json_array_get(json_object_get(root, "buffers"), 0);
        if (b0 && !json_object_get(b0, "uri")) {
            json_t *bl = json_object_get(b0, "byteLength");
            if (!c->has_bin)
                why = "BIN chunk missing";
            else if (json_is_integer(bl) && (json_int_t)c->bin_len < json_integer_value(bl))
                why = "BIN chunk shorter than buffers[0].byteLength";
        }
    }
    json_decref(root);
    return why;
}

int mc_mesh_check_finish(mc_mesh_check *c, const char **why)
{
    *why = NULL;
    if (c->fmt == MC_MESH_GLB) {
        if (!c->why && c->total < 12)
            bad(c, "shorter than the GLB header");
        else if (!c->why && c->total != c->declared)
            bad(c, c->total < c->declared ? "body shorter than the declared length"
                                          : "body longer than the declared length");
        else if (!c->why && (c->chunk_left || c->chdr_len))
            bad(c, "last chunk cut short");
        else if (!c->why && c->nchunks == 0)
            bad(c, "no JSON chunk");
        if (!c->why && !c->json_over)
            c->why = check_json(c);
        *why = c->why;
        return c->why ? MC_MESH_INVALID : MC_MESH_VALID;
    }
    if (c->fmt == MC_MESH_GLTF) {
        if (c->json_over)
            return MC_MESH_UNCHECKED;
        *why = check_json(c);
        return *why ? MC_MESH_INVALID : MC_MESH_VALID;
    }
    return MC_MESH_VALID;
}

static int validate(mc_mesh_format fmt, const void *data, size_t len, uint64_t max_json, const char **why)
{
    mc_mesh_check c;
    mc_mesh_check_init(&c, fmt, max_json);
    mc_mesh_check_feed(&c, data, len);
    int v = mc_mesh_check_finish(&c, why);
    mc_mesh_check_free(&c);
    return v;
}

int mc_mesh_glb_validate(const void *data, size_t len, uint64_t max_json, const char **why)
{
    return validate(MC_MESH_GLB, data, len, max_json, why);
}

int mc_mesh_gltf_validate(const void *data, size_t len, uint64_t max_json, const char **why)
{
    return validate(MC_MESH_GLTF, data, len, max_json, why);
}

void mc_mesh_count_invalid(mc_mesh_format f)
{
    atomic_fetch_add_explicit(&invalid_counts[f], 1, memory_order_relaxed);
}

uint64_t mc_mesh_invalid_count(mc_mesh_format f)
{
    return atomic_load_explicit(&invalid_counts[f], memory_order_relaxed);
}

void mc_mesh_metrics(mc_buf *b)
{
    mc_metrics_header(b, "meshcdn_edge_mesh_invalid_total", "counter",
                      "glTF assets that failed validation and were not stored, by format");
    mc_metrics_value(b, "meshcdn_edge_mesh_invalid_total", "format=\"glb\"", (double)mc_mesh_invalid_count(MC_MESH_GLB));
    mc_metrics_value(b, "meshcdn_edge_mesh_invalid_total", "format=\"gltf\"", (double)mc_mesh_invalid_count(MC_MESH_GLTF));
}

/* ---------- CORS ---------- */

const char *mc_mesh_cors_allow(const char *list, const char *origin)
{
    if (!list || !*list || !origin)
        return NULL;
    size_t ol = strlen(origin);
    for (const char *p = list; *p;) {
        p += strspn(p, " ,\t");
        size_t l = strcspn(p, " ,\t");
        if (l == 1 && *p == '*')
            return "*";
        if (l && l == ol && strncasecmp(p, origin, l) == 0)
            return origin;
        p += l;
    }
    return NULL;
}

static int token_in(const char *list, const char *tok, size_t tl)
{
    for (const char *p = list; *p;) {
        p += strspn(p, " ,\t");
        size_t l = strcspn(p, " ,\t");
        if ((l == 1 && *p == '*') || (l && l == tl && strncasecmp(p, tok, l) == 0))
            return 1;
        p += l;
    }
    return 0;
}

/* "a, b" -> "a, b" with the separators of the list made ", ". */
static void put_list(mc_buf *out, const char *name, const char *list)
{
    int first = 1;
    for (const char *p = list; *p;) {
        p += strspn(p, " ,\t");
        size_t l = strcspn(p, " ,\t");
        if (l) {
            mc_buf_printf(out, "%s%.*s", first ? name : ", ", (int)l, p);
            first = 0;
        }
        p += l;
    }
    if (!first)
        mc_buf_puts(out, "\r\n");
}

int mc_mesh_cors_preflight(const mc_cache_policy *pol, const char *origin, const char *method,
                           const char *req_headers, mc_buf *out)
{
    const char *allow = mc_mesh_cors_allow(pol->cors_origins, origin);
    if (strcmp(pol->cors_origins, "*") != 0)
        mc_buf_puts(out, "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\n");
    if (!allow || !method || !token_in(pol->cors_methods, method, strlen(method)))
        return 0;
    /* every requested header must be allowed (a "*" list allows any) */
    for (const char *p = req_headers ? req_headers : ""; *p;) {
        p += strspn(p, " ,\t");
        size_t l = strcspn(p, " ,\t");
        if (l && !token_in(pol->cors_headers, p, l))
            return 0;
        p += l;
    }
    mc_buf_printf(out, "Access-Control-Allow-Origin: %s\r\n", allow);
    put_list(out, "Access-Control-Allow-Methods: ", pol->cors_methods);
    if (req_headers && *req_headers) {
        /* echo what was asked: "*" is not a wildcard for every header
         * when credentials are involved (Fetch 3.2.5), echoing always is */
        put_list(out, "Access-Control-Allow-Headers: ", req_headers);
    }
    if (pol->cors_max_age_s >= 0)
        mc_buf_printf(out, "Access-Control-Max-Age: %lld\r\n", (long long)pol->cors_max_age_s);
    return 1;
}

void mc_mesh_cors_actual(const mc_cache_policy *pol, const char *origin, mc_buf *out)
{
    if (!pol->cors_origins[0])
        return;
    const char *allow = mc_mesh_cors_allow(pol->cors_origins, origin);
    if (strcmp(pol->cors_origins, "*") != 0)
        mc_buf_puts(out, "Vary: Origin\r\n");   /* the answer depends on it (for the viewer's caches) */
    if (!allow)
        return;
    mc_buf_printf(out, "Access-Control-Allow-Origin: %s\r\n", allow);
    put_list(out, "Access-Control-Expose-Headers: ", pol->cors_expose);
}
