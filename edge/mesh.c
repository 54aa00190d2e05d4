/* mesh.c — see mesh.h. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <brotli/encode.h>
#include <zlib.h>
#include "common/err.h"
#include "common/metrics.h"
#include "edge/edgecfg.h"
#include "edge/mesh.h"
#include "edge/respond.h"
#include "edge/vary.h"

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

/* ---------- a streaming JSON checker ---------- */

enum { J_VALUE, J_KEY_OR_END, J_KEY, J_COLON, J_COMMA_OR_END, J_STRING, J_ESC, J_HEX, J_NUMBER, J_LITERAL,
       J_AFTER };
/* number sub-states */
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static int ws(unsigned char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }
static int digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

/* Where the value about to start sits: notes what glTF needs. */
static void value_starts(mc_mesh_json *j, unsigned char ch)
{
    j->num_wanted = 0;
    /* {"asset": {"version": "..."}} */
    if (j->depth == 2 && j->stack[0] == '{' && j->stack[1] == '{' && strcmp(j->keys[1], "asset") == 0 &&
        strcmp(j->keys[2], "version") == 0 && ch == '"')
        j->has_version = 1;
    /* {"buffers": [{...}]}: the first element */
    int in_buffers = j->stack[0] == '{' && strcmp(j->keys[1], "buffers") == 0 && j->depth >= 2 && j->stack[1] == '[' &&
                     j->index[2] == 0;
    if (in_buffers && j->depth == 2 && ch == '{')
        j->has_buffer0 = 1;
    if (in_buffers && j->depth == 3 && j->stack[2] == '{') {
        if (strcmp(j->keys[3], "uri") == 0)
            j->buffer0_uri = 1;
        if (strcmp(j->keys[3], "byteLength") == 0 && digit(ch)) {
            j->num_wanted = 1;
            j->num = 0;
        }
    }
}

static void open_container(mc_mesh_json *j, char kind)
{
    if (j->depth == MC_MESH_JSON_DEPTH) {
        j->bad = 1;
        return;
    }
    j->stack[j->depth++] = kind;
    if (j->depth < 4) {
        j->index[j->depth] = 0;
        j->keys[j->depth][0] = '\0';
    }
    j->state = kind == '{' ? J_KEY_OR_END : J_VALUE;
    j->sub = kind == '[';   /* an array may close at once: "[]" */
}

/* A value ended: what may follow depends on the container. */
static void value_ends(mc_mesh_json *j)
{
    if (j->depth == 0) {
        j->done = 1;
        j->state = J_AFTER;
    } else {
        j->state = J_COMMA_OR_END;
    }
}

static void close_container(mc_mesh_json *j, char kind)
{
    if (j->depth == 0 || j->stack[j->depth - 1] != kind) {
        j->bad = 1;
        return;
    }
    j->depth--;
    value_ends(j);
}

static void json_byte(mc_mesh_json *j, unsigned char ch);

/* ch ends a number: check it is complete, then let the container read ch. */
static void number_ends(mc_mesh_json *j, unsigned char ch)
{
    if (j->sub == N_MINUS || j->sub == N_DOT || j->sub == N_E || j->sub == N_ESIGN) {
        j->bad = 1;
        return;
    }
    if (j->num_wanted && (j->sub == N_ZERO || j->sub == N_INT)) {
        j->has_bytelength = 1;
        j->buffer0_length = j->num;
    }
    value_ends(j);
    json_byte(j, ch);
}

static void json_byte(mc_mesh_json *j, unsigned char ch)
{
    if (j->bad)
        return;
    switch (j->state) {
    case J_AFTER:
        if (!ws(ch))
            j->bad = 1;
        return;
    case J_KEY_OR_END:
    case J_KEY:
        if (ws(ch))
            return;
        if (ch == '}' && j->state == J_KEY_OR_END) {
            close_container(j, '{');
            return;
        }
        if (ch != '"') {
            j->bad = 1;
            return;
        }
        j->is_key = 1;
        j->keylen = 0;
        j->state = J_STRING;
        return;
    case J_COLON:
        if (ws(ch))
            return;
        if (ch != ':')
            j->bad = 1;
        else
            j->state = J_VALUE, j->sub = 0;
        return;
    case J_COMMA_OR_END:
        if (ws(ch))
            return;
        if (ch == ',') {
            if (j->stack[j->depth - 1] == '{') {
                j->state = J_KEY;
            } else {
                if (j->depth < 4)
                    j->index[j->depth]++;
                j->state = J_VALUE;
                j->sub = 0;
            }
        } else if (ch == '}' || ch == ']') {
            close_container(j, ch == '}' ? '{' : '[');
        } else {
            j->bad = 1;
        }
        return;
    case J_VALUE:
        if (ws(ch))
            return;
        if (ch == ']' && j->sub == 1) {   /* "[]" */
            close_container(j, '[');
            return;
        }
        if (j->depth == 0 && ch != '{') {   /* glTF: the document is an object */
            j->bad = 1;
            return;
        }
        value_starts(j, ch);
        if (ch == '{' || ch == '[') {
            open_container(j, (char)ch);
        } else if (ch == '"') {
            j->is_key = 0;
            j->state = J_STRING;
        } else if (ch == '-' || digit(ch)) {
            j->state = J_NUMBER;
            j->sub = ch == '-' ? N_MINUS : ch == '0' ? N_ZERO : N_INT;
            j->num = (uint64_t)(ch - '0');
        } else if (ch == 't' || ch == 'f' || ch == 'n') {
            j->lit = ch == 't' ? "rue" : ch == 'f' ? "alse" : "ull";
            j->state = J_LITERAL;
        } else {
            j->bad = 1;
        }
        return;
    case J_LITERAL:
        if (ch != (unsigned char)*j->lit++)
            j->bad = 1;
        else if (!*j->lit)
            value_ends(j);
        return;
    case J_STRING:
        if (ch == '"') {
            if (j->is_key) {
                j->key[j->keylen < sizeof j->key ? j->keylen : sizeof j->key - 1] = '\0';
                if (j->keylen >= sizeof j->key)
                    j->key[0] = '\0';   /* a long key matches none we look for */
                if (j->depth < 4)
                    memcpy(j->keys[j->depth], j->key, sizeof j->key);
                j->state = J_COLON;
            } else {
                value_ends(j);
            }
        } else if (ch == '\\') {
            j->state = J_ESC;
        } else if (ch < 0x20) {
            j->bad = 1;
        } else if (j->is_key && j->keylen < sizeof j->key) {
            j->key[j->keylen++] = (char)ch;
        } else if (j->is_key) {
            j->keylen = sizeof j->key;
        }
        return;
    case J_ESC:
        if (ch == 'u') {
            j->state = J_HEX;
            j->sub = 0;
        } else if (strchr("\"\\/bfnrt", ch) && ch) {
            j->state = J_STRING;
        } else {
            j->bad = 1;
        }
        if (j->is_key)
            j->keylen = sizeof j->key;   /* escaped keys are none of ours */
        return;
    case J_HEX:
        if (!(digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            j->bad = 1;
        else if (++j->sub == 4)
            j->state = J_STRING;
        return;
    case J_NUMBER:
        switch (j->sub) {
        case N_MINUS:
            if (ch == '0') j->sub = N_ZERO;
            else if (digit(ch)) j->sub = N_INT;
            else j->bad = 1;
            j->num_wanted = 0;   /* a negative length is no length */
            return;
        case N_ZERO:
        case N_INT:
            if (digit(ch) && j->sub == N_INT) {
                j->num = j->num > UINT64_MAX / 10 - 1 ? UINT64_MAX : j->num * 10 + (uint64_t)(ch - '0');
                return;
            }
            if (ch == '.') { j->sub = N_DOT; j->num_wanted = 0; return; }
            if (ch == 'e' || ch == 'E') { j->sub = N_E; j->num_wanted = 0; return; }
            if (digit(ch)) { j->bad = 1; return; }   /* "01" */
            number_ends(j, ch);
            return;
        case N_DOT:
            if (digit(ch)) j->sub = N_FRAC;
            else j->bad = 1;
            return;
        case N_FRAC:
            if (digit(ch)) return;
            if (ch == 'e' || ch == 'E') { j->sub = N_E; return; }
            number_ends(j, ch);
            return;
        case N_E:
            if (ch == '+' || ch == '-') j->sub = N_ESIGN;
            else if (digit(ch)) j->sub = N_EXP;
            else j->bad = 1;
            return;
        case N_ESIGN:
            if (digit(ch)) j->sub = N_EXP;
            else j->bad = 1;
            return;
        case N_EXP:
            if (digit(ch)) return;
            number_ends(j, ch);
            return;
        }
        return;
    }
}

void mc_mesh_check_init(mc_mesh_check *c, mc_mesh_format fmt)
{
    memset(c, 0, sizeof *c);
    c->fmt = fmt;
    c->json.state = J_VALUE;
}

static void bad(mc_mesh_check *c, const char *why)
{
    if (!c->why)
        c->why = why;
}

static void feed_json(mc_mesh_check *c, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && !c->json.bad; i++)
        json_byte(&c->json, p[i]);
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
            feed_json(c, p, n);
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
        feed_json(c, data, len);
    c->total += len;
}

/* The glTF JSON: an object with a string asset.version. For a GLB, a
 * buffer stored in the container (buffers[0] without uri) needs the BIN
 * chunk, at least byteLength long. */
static const char *check_json(const mc_mesh_check *c)
{
    const mc_mesh_json *j = &c->json;
    if (j->bad || !j->done)
        return c->fmt == MC_MESH_GLB ? "JSON chunk is not valid JSON" : "not valid JSON";
    if (!j->has_version)
        return "no asset.version";
    if (c->fmt == MC_MESH_GLB && j->has_buffer0 && !j->buffer0_uri) {
        if (!c->has_bin)
            return "BIN chunk missing";
        if (j->has_bytelength && c->bin_len < j->buffer0_length)
            return "BIN chunk shorter than buffers[0].byteLength";
    }
    return NULL;
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
        if (!c->why)
            c->why = check_json(c);
        *why = c->why;
        return c->why ? MC_MESH_INVALID : MC_MESH_VALID;
    }
    if (c->fmt == MC_MESH_GLTF) {
        *why = check_json(c);
        return *why ? MC_MESH_INVALID : MC_MESH_VALID;
    }
    return MC_MESH_VALID;
}

static int validate(mc_mesh_format fmt, const void *data, size_t len, const char **why)
{
    mc_mesh_check c;
    mc_mesh_check_init(&c, fmt);
    mc_mesh_check_feed(&c, data, len);
    return mc_mesh_check_finish(&c, why);
}

int mc_mesh_glb_validate(const void *data, size_t len, const char **why)
{
    return validate(MC_MESH_GLB, data, len, why);
}

int mc_mesh_gltf_validate(const void *data, size_t len, const char **why)
{
    return validate(MC_MESH_GLTF, data, len, why);
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

/* ---------- compression for compressible types ---------- */

const char *mc_mesh_enc_name(int enc)
{
    return enc == MC_MESH_ENC_BR ? "br" : enc == MC_MESH_ENC_GZIP ? "gzip" : "identity";
}

int mc_mesh_compress_parse(const char *v, unsigned *out)
{
    unsigned set = 0;
    int off = 0, n = 0;
    for (const char *p = v ? v : ""; *p;) {
        p += strspn(p, " ,\t");
        size_t l = strcspn(p, " ,\t");
        if (!l)
            break;
        n++;
        if (l == 4 && strncasecmp(p, "gzip", 4) == 0)
            set |= MC_MESH_COMPRESS_GZIP;
        else if (l == 2 && strncasecmp(p, "br", 2) == 0)
            set |= MC_MESH_COMPRESS_BR;
        else if (l == 3 && strncasecmp(p, "off", 3) == 0)
            off = 1;
        else
            return -1;
        p += l;
    }
    if (n == 0 || (off && n > 1))
        return -1;   /* "off" stands alone */
    *out = set;
    return 0;
}

/* Is the weight after ';' (params, len bytes) q=0 (RFC 9110 12.4.2:
 * "0", "0.", "0.0" .. "0.000")? Other parameters are ignored. */
static int weight_zero(const char *params, size_t len)
{
    const char *end = params + len;
    for (const char *p = params; p < end;) {
        p += strspn(p, " \t;");
        if (p + 2 <= end && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            const char *q = p + 2;
            if (q >= end || *q != '0')
                return 0;
            for (q++; q < end && (*q == '.' || *q == '0'); q++)
                ;
            return q >= end || *q == ' ' || *q == '\t' || *q == ';';
        }
        while (p < end && *p != ';')
            p++;
    }
    return 0;
}

int mc_mesh_accepts(const char *ae, const char *coding)
{
    int explicit_ = -1, alias = -1, star = 0;
    size_t cl = strlen(coding);
    int is_gzip = cl == 4 && strncasecmp(coding, "gzip", 4) == 0;
    for (const char *p = ae ? ae : ""; *p;) {
        p += strspn(p, " ,\t");
        size_t l = strcspn(p, ",");
        size_t nl = strcspn(p, " ;,\t");
        if (nl > l)
            nl = l;
        const char *semi = memchr(p, ';', l);
        int ok = !(semi && weight_zero(semi + 1, (size_t)(p + l - semi - 1)));
        if (nl == cl && strncasecmp(p, coding, cl) == 0)
            explicit_ = ok;
        else if (is_gzip && nl == 6 && strncasecmp(p, "x-gzip", 6) == 0)
            alias = ok;   /* RFC 9110 8.4.1.3: the same coding */
        else if (nl == 1 && *p == '*')
            star = ok;
        p += l;
    }
    return explicit_ >= 0 ? explicit_ : alias >= 0 ? alias : star;
}

int mc_mesh_accepts_gzip(const char *ae)
{
    return mc_mesh_accepts(ae, "gzip");
}

int mc_mesh_ae_pick(const char *ae, unsigned compress)
{
    if ((compress & MC_MESH_COMPRESS_BR) && mc_mesh_accepts(ae, "br"))
        return MC_MESH_ENC_BR;
    if ((compress & MC_MESH_COMPRESS_GZIP) && mc_mesh_accepts(ae, "gzip"))
        return MC_MESH_ENC_GZIP;
    return MC_MESH_ENC_IDENTITY;
}

int mc_mesh_compressible(const char *ct)
{
    if (!ct)
        return 0;
    size_t tl = strcspn(ct, "; \t");
    static const char *const types[] = {"model/gltf+json", "model/obj", "model/mtl", "application/json",
                                        "application/xml", "image/svg+xml", NULL};
    for (int i = 0; types[i]; i++)
        if (tl == strlen(types[i]) && strncasecmp(ct, types[i], tl) == 0)
            return 1;
    return tl > 5 && strncasecmp(ct, "text/", 5) == 0;
}

int mc_mesh_ae_set(mc_buf *block, int enc)
{
    mc_buf out = MC_BUF_INIT;
    for (const char *p = block->data; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) + 2 : strlen(p);
        if (strncasecmp(p, "Accept-Encoding:", 16) != 0)
            mc_buf_append(&out, p, ll);
        p += ll;
    }
    mc_buf_printf(&out, "Accept-Encoding: %s\r\n", mc_mesh_enc_name(enc));
    if (!out.data)
        return MC_E_NOMEM;
    mc_buf_free(block);
    *block = out;
    return 0;
}

int mc_mesh_ae_normalise(mc_buf *block, unsigned compress, int *enc)
{
    char v[1024];
    int e = mc_mesh_ae_pick(mc_hdr_find(block->data ? block->data : "", "Accept-Encoding", v, sizeof v), compress);
    if (enc)
        *enc = e;
    return mc_mesh_ae_set(block, e);
}

/* "ETag: \"x\"" -> "ETag: W/\"x\"": a gzip variant is not byte-identical to
 * the origin's representation, but equivalent (as nginx does it); a weak tag
 * still revalidates with If-None-Match (weak comparison). */
static int weaken_etag(char **hdrs)
{
    mc_buf b = MC_BUF_INIT;
    for (const char *p = *hdrs; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) + 2 : strlen(p);
        const char *v = p + 5;
        int etag = strncasecmp(p, "ETag:", 5) == 0;
        while (etag && *v == ' ')
            v++;
        if (etag && *v == '"')
            mc_buf_printf(&b, "ETag: W/%.*s", (int)(ll - (size_t)(v - p)), v);
        else
            mc_buf_append(&b, p, ll);
        p += ll;
    }
    if (!b.data)
        return MC_E_NOMEM;
    free(*hdrs);
    *hdrs = mc_buf_steal(&b);
    return 0;
}

int mc_mesh_encode_headers(int status, const mc_http_header *h, int n, int enc, const char *stale_hdrs,
                           char **hdrs)
{
    char v[256];
    if (status == 304 && stale_hdrs && mc_hdr_find(stale_hdrs, "Content-Encoding", v, sizeof v) &&
        (strcasecmp(v, "gzip") == 0 || strcasecmp(v, "br") == 0))
        return weaken_etag(hdrs) < 0 ? MC_E_NOMEM : 0;   /* the 304's strong tag must not reach an encoded copy */
    if (status != 200)
        return 0;
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Content-Encoding") == 0 && strcasecmp(h[i].value, "identity") != 0)
            return 0;   /* the origin encoded it: kept as it is */
    if (!mc_mesh_compressible(mc_hdr_find(*hdrs, "Content-Type", v, sizeof v)))
        return 0;
    char names[512];
    int varies = mc_vary_names(*hdrs, names, sizeof names);
    if (varies < 0)
        return 0;   /* Vary: * */
    mc_buf b = MC_BUF_INIT;
    mc_buf_puts(&b, *hdrs);
    if (!(varies == 1 && strstr(names, "accept-encoding")))
        mc_buf_puts(&b, "Vary: Accept-Encoding\r\n");
    if (enc != MC_MESH_ENC_IDENTITY)
        mc_buf_printf(&b, "Content-Encoding: %s\r\n", mc_mesh_enc_name(enc));
    if (!b.data)
        return MC_E_NOMEM;
    free(*hdrs);
    *hdrs = mc_buf_steal(&b);
    if (enc != MC_MESH_ENC_IDENTITY && weaken_etag(hdrs) < 0)
        return MC_E_NOMEM;
    return 1;
}

/* ---------- streaming encoders ---------- */

int mc_mesh_encoder_init(mc_mesh_encoder *e, int enc, int64_t size_hint)
{
    memset(e, 0, sizeof *e);
    e->enc = enc;
    if (enc == MC_MESH_ENC_GZIP) {
        z_stream *z = calloc(1, sizeof *z);
        if (!z || deflateInit2(z, MC_MESH_GZIP_LEVEL, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            return MC_E_NOMEM;
        }
        e->state = z;
    } else if (enc == MC_MESH_ENC_BR) {
        BrotliEncoderState *b = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (!b)
            return MC_E_NOMEM;
        BrotliEncoderSetParameter(b, BROTLI_PARAM_QUALITY, MC_MESH_BR_QUALITY);
        BrotliEncoderSetParameter(b, BROTLI_PARAM_LGWIN, MC_MESH_BR_LGWIN);
        BrotliEncoderSetParameter(b, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT);
        if (size_hint > 0)   /* smaller buffers for a small body */
            BrotliEncoderSetParameter(b, BROTLI_PARAM_SIZE_HINT,
                                      size_hint < (1 << 30) ? (uint32_t)size_hint : (uint32_t)1 << 30);
        e->state = b;
    }
    return 0;
}

int mc_mesh_encoder_feed(mc_mesh_encoder *e, const void *data, size_t len, int finish, mc_mesh_sink sink,
                         void *arg)
{
    if (e->done)
        return len ? MC_E_STATE : 0;
    if (e->enc == MC_MESH_ENC_GZIP) {
        z_stream *z = e->state;
        unsigned char out[16384];
        int flush = finish ? Z_FINISH : Z_NO_FLUSH, zr;
        z->next_in = (Bytef *)(uintptr_t)data;
        z->avail_in = (uInt)len;
        do {
            z->next_out = out;
            z->avail_out = sizeof out;
            zr = deflate(z, flush);
            if (zr == Z_STREAM_ERROR)
                return MC_E_STATE;
            size_t n = sizeof out - z->avail_out;
            if (n)
                sink(arg, out, n);
        } while (z->avail_out == 0 || (finish && zr != Z_STREAM_END));
    } else if (e->enc == MC_MESH_ENC_BR) {
        BrotliEncoderState *b = e->state;
        const uint8_t *in = data;
        size_t avail_in = len;
        BrotliEncoderOperation op = finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS;
        for (;;) {
            size_t avail_out = 0;
            if (!BrotliEncoderCompressStream(b, op, &avail_in, &in, &avail_out, NULL, NULL))
                return MC_E_STATE;
            size_t n = 0;
            const uint8_t *out = BrotliEncoderTakeOutput(b, &n);
            if (n)
                sink(arg, out, n);
            if (avail_in == 0 && !BrotliEncoderHasMoreOutput(b) && (!finish || BrotliEncoderIsFinished(b)))
                break;
        }
    } else if (len) {
        sink(arg, data, len);
    }
    e->in += len;
    e->done = finish;
    return 0;
}

void mc_mesh_encoder_free(mc_mesh_encoder *e)
{
    if (e->enc == MC_MESH_ENC_GZIP && e->state) {
        deflateEnd(e->state);
        free(e->state);
    } else if (e->enc == MC_MESH_ENC_BR && e->state) {
        BrotliEncoderDestroyInstance(e->state);
    }
    e->state = NULL;
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
