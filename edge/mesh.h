/* mesh.h — 3D-asset rules of the edge: validation of glTF assets before
 * they are stored, and the per-behavior CORS answers web 3D viewers need.
 *
 * Validation (issue #11): a response whose Content-Type is model/gltf-binary
 * (or, when it has none or application/octet-stream, whose path ends in
 * .glb) must be a well-formed GLB 2.0 container: magic "glTF", version 2,
 * the header's length equal to the body's size, a first chunk of type JSON
 * whose length is a multiple of 4, every chunk inside the body, the JSON
 * chunk valid JSON with asset.version, and a BIN chunk present (and long
 * enough) when buffers[0] has no uri (the GLB-stored buffer). A
 * model/gltf+json (.gltf) response must be a JSON object with a string
 * asset.version. Every check runs incrementally while the body streams, in
 * constant memory and without allocating: the JSON (a .gltf, or a GLB's
 * JSON chunk) goes through a streaming syntax checker (RFC 8259 grammar,
 * nesting up to 64; UTF-8 inside strings is not checked) that notes
 * asset.version and buffers[0]'s uri and byteLength on the way. A body
 * the origin sent with a Content-Encoding (other than identity) is not
 * checked (fill.c): the checks read plain bytes.
 *
 * CORS: mc_mesh_cors_* compute the Access-Control-* answers from a
 * behavior's cors_* keys (edgecfg.h) at response time, so one stored copy
 * serves every page origin.
 *
 * Compression: mc_mesh_ae_pick / _compressible / _ae_normalise decide which
 * responses fill.c compresses and fold Accept-Encoding into one Vary
 * variant per encoding (br, gzip, identity); mc_mesh_encoder_* stream the
 * gzip (zlib) and brotli (libbrotlienc) encodings.
 *
 * Threads: the validators and encoders are plain state on the caller's thread; the
 * invalid counters are process-wide relaxed atomics.
 */
#ifndef MC_MESH_H
#define MC_MESH_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"

typedef enum { MC_MESH_NONE = 0, MC_MESH_GLB, MC_MESH_GLTF } mc_mesh_format;

/* Which validator applies: by content_type (may be NULL; parameters are
 * ignored), else, when it is missing or application/octet-stream, by the
 * path's extension (a query after '?' is ignored). */
mc_mesh_format mc_mesh_format_of(const char *content_type, const char *path);
const char *mc_mesh_format_name(mc_mesh_format f);   /* "glb", "gltf" */

/* Verdicts. */
#define MC_MESH_VALID 0
#define MC_MESH_INVALID 1

/* The streaming JSON checker's state (mesh.c). */
#define MC_MESH_JSON_DEPTH 64
typedef struct mc_mesh_json {
    int state, sub;                /* where in the grammar; inside a token */
    int depth;
    char stack[MC_MESH_JSON_DEPTH];   /* '{' or '[' per open container */
    uint32_t index[4];             /* element index in the arrays at depth 1..3 */
    char keys[4][12];              /* the current key at depth 1..3 (truncated) */
    char key[12];                  /* the key being read */
    size_t keylen;
    int is_key;
    const char *lit;               /* the literal being matched ("true" ...) */
    uint64_t num;                  /* an integer being read (byteLength) */
    int num_wanted;
    int done;                      /* the top-level object closed */
    int bad;
    int has_version;               /* asset.version is a string */
    int has_buffer0, buffer0_uri;  /* buffers[0] is an object; it has a uri */
    int has_bytelength;
    uint64_t buffer0_length;       /* buffers[0].byteLength */
} mc_mesh_json;

typedef struct mc_mesh_check {
    mc_mesh_format fmt;
    uint64_t total;           /* body bytes fed */
    const char *why;          /* first reason it is invalid (static), or NULL */
    /* GLB */
    uint8_t head[12];
    uint32_t declared;        /* the header's length */
    uint8_t chdr[8];          /* the chunk header being read */
    unsigned chdr_len;
    uint64_t chunk_left;      /* bytes of the current chunk still to come */
    uint32_t chunk_type;
    int nchunks;
    uint64_t bin_len;         /* length of the first BIN chunk (second chunk) */
    int has_bin;
    mc_mesh_json json;        /* the JSON chunk, or the whole .gltf */
} mc_mesh_check;

void mc_mesh_check_init(mc_mesh_check *c, mc_mesh_format fmt);
void mc_mesh_check_feed(mc_mesh_check *c, const void *data, size_t len);
/* The verdict once the whole body was fed; *why names the defect (static). */
int mc_mesh_check_finish(mc_mesh_check *c, const char **why);

/* One-shot validators over a whole body (the same rules). */
int mc_mesh_glb_validate(const void *data, size_t len, const char **why);
int mc_mesh_gltf_validate(const void *data, size_t len, const char **why);

/* Count an invalid asset of format f; render the counters (admin.c). */
void mc_mesh_count_invalid(mc_mesh_format f);
uint64_t mc_mesh_invalid_count(mc_mesh_format f);
void mc_mesh_metrics(mc_buf *b);

/* ---------- compression for compressible types ---------- */

/* Content codings the edge produces (MC_MESH_ENC_*) and a behavior's set
 * of them (mc_cache_policy.compress, MC_MESH_COMPRESS_* bits; 0 = off). */
#define MC_MESH_ENC_IDENTITY 0
#define MC_MESH_ENC_GZIP 1
#define MC_MESH_ENC_BR 2
#define MC_MESH_COMPRESS_GZIP (1u << MC_MESH_ENC_GZIP)
#define MC_MESH_COMPRESS_BR (1u << MC_MESH_ENC_BR)
#define MC_MESH_GZIP_LEVEL 6
#define MC_MESH_BR_QUALITY 6     /* as nginx's brotli module by default */
#define MC_MESH_BR_LGWIN 20      /* 1 MiB window: the encoder's memory per fill stays a few MiB */

const char *mc_mesh_enc_name(int enc);   /* "identity", "gzip", "br" */
/* A compress setting: "off", or codings among "br" and "gzip" separated by
 * spaces or commas ("br gzip", "br,gzip", "gzip"); order does not matter
 * (br is preferred). 0 with *out set, or -1. */
int mc_mesh_compress_parse(const char *v, unsigned *out);

/* Does an Accept-Encoding value (may be NULL) accept coding ("gzip", "br")
 * (RFC 9110 12.5.3)? Its own member decides when present (q=0 refuses;
 * x-gzip counts as gzip when gzip itself is absent), else "*", else no.
 * Names and q are case-insensitive; OWS around ';' and ',' is allowed;
 * other parameters are ignored. */
int mc_mesh_accepts(const char *accept_encoding, const char *coding);
int mc_mesh_accepts_gzip(const char *accept_encoding);
/* The encoding a viewer gets from a behavior with the set compress: br
 * when compress has it and the viewer accepts br, else gzip likewise,
 * else identity (also when identity;q=0: a coding the viewer accepts is
 * preferred, and identity is what is left; relative q-values among
 * accepted codings are not weighed: br beats gzip). */
int mc_mesh_ae_pick(const char *accept_encoding, unsigned compress);
/* Is a Content-Type (may be NULL; parameters ignored) worth compressing:
 * model/gltf+json, model/obj, model/mtl, application/json, application/xml,
 * image/svg+xml, text/ *. (ASCII STL and PLY cannot be told from binary ones
 * by their type: not compressed.) */
int mc_mesh_compressible(const char *content_type);
/* Replace the Accept-Encoding line of a request block (vary.h) by
 * "Accept-Encoding: br", "...: gzip" or "...: identity" (mc_mesh_ae_pick
 * with compress; the pick in *enc when enc is not NULL), so that every
 * spelling of the header maps to one Vary variant per encoding.
 * mc_mesh_ae_set writes the line for enc. 0 or MC_E_NOMEM. */
int mc_mesh_ae_normalise(mc_buf *block, unsigned compress, int *enc);
int mc_mesh_ae_set(mc_buf *block, int enc);

/* The stored headers (*hdrs, a "Name: value\r\n" block, replaced) of a
 * response with status and upstream fields h[n], for its variant in
 * encoding enc, on a behavior that compresses: a 200 of a compressible
 * type without Content-Encoding gets Vary: Accept-Encoding and, for gzip
 * or br, Content-Encoding and a weak ETag (W/"x": equivalent, not
 * byte-identical; the same tag for both encodings, so If-None-Match with
 * either revalidates); returns 1 then ("encodable"). A 304 refreshing a
 * stored gzip or br copy (stale_hdrs, may be NULL) gets its ETag weakened;
 * returns 0 then and for everything else; MC_E_NOMEM. */
struct mc_http_header;
int mc_mesh_encode_headers(int status, const struct mc_http_header *h, int n, int enc, const char *stale_hdrs,
                           char **hdrs);

/* A streaming encoder for enc (identity passes bytes through): feed body
 * bytes, then once with finish = 1 (len may be 0); what comes out goes to
 * sink, synchronously. size_hint (-1 unknown) lets brotli size its
 * buffers. Returns 0 or MC_E_NOMEM / MC_E_STATE. */
typedef void (*mc_mesh_sink)(void *arg, const void *data, size_t len);
typedef struct mc_mesh_encoder {
    int enc;
    void *state;       /* z_stream * or BrotliEncoderState * */
    uint64_t in;       /* bytes fed */
    int done;          /* finished */
} mc_mesh_encoder;
int mc_mesh_encoder_init(mc_mesh_encoder *e, int enc, int64_t size_hint);
int mc_mesh_encoder_feed(mc_mesh_encoder *e, const void *data, size_t len, int finish, mc_mesh_sink sink,
                         void *arg);
void mc_mesh_encoder_free(mc_mesh_encoder *e);

/* ---------- CORS ---------- */

/* Is origin allowed by list ("*", or names separated by spaces or commas,
 * compared exactly, case-insensitively)? Returns the Access-Control-Allow-
 * Origin value to send ("*" or origin itself), or NULL. */
const char *mc_mesh_cors_allow(const char *list, const char *origin);

/* The headers of a preflight answer (204) for origin asking for method and
 * headers (may be NULL): "Access-Control-Allow-Origin: ...\r\n..." appended
 * to out, and 1; 0 (nothing appended but Vary) when the origin or the method
 * is not allowed. */
struct mc_cache_policy;
int mc_mesh_cors_preflight(const struct mc_cache_policy *pol, const char *origin, const char *method,
                           const char *req_headers, mc_buf *out);
/* The headers an actual response gets (appended to out; none when origin
 * is NULL or not allowed). */
void mc_mesh_cors_actual(const struct mc_cache_policy *pol, const char *origin, mc_buf *out);

#endif
