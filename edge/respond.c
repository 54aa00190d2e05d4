/* respond.c — see respond.h. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/httpdate.h"
#include "common/log.h"
#include "common/range.h"
#include "edge/fill.h"
#include "edge/mesh.h"
#include "edge/respond.h"
#include "edge/segment.h"

mc_resp *mc_resp_new(mc_worker *w, mc_http_conn *c, mc_http_req *req)
{
    mc_resp *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->magic = MC_RESP_MAGIC;
    r->w = w;
    r->snap = mc_snap_ref(w->snap);   /* adopted by lookup for this request */
    r->conn = c;
    r->req = req;
    r->length = -1;
    r->up_s = -1;
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    return r;
}

void mc_resp_free(mc_resp *r)
{
    assert(r && r->magic == MC_RESP_MAGIC);
    if (r->fill || r->follow)
        mc_fill_leave(r);
    if (r->seg)
        mc_segment_leave(r);
    if (r->pinned)
        mc_store_pin(r->w->node->store, r->pin_key, 0);
    if (r->has_meta)
        mc_object_meta_free(&r->meta);
    free(r->keystr);
    free(r->skeystr);
    free(r->s3path);
    free(r->query);
    mc_snap_unref(r->snap);
    r->magic = 0;
    free(r);
}

const char *mc_hdr_find(const char *block, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *p = block; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = ll - (size_t)(v - p);
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        p = eol ? eol + 2 : NULL;
    }
    return NULL;
}

/* RFC 9110 13.1.2: weak comparison; "*" matches any current representation. */
static int etag_matches(const char *list, const char *etag)
{
    const char *e = strncmp(etag, "W/", 2) == 0 ? etag + 2 : etag;
    size_t el = strlen(e);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*')
            return 1;
        const char *t = strncmp(p, "W/", 2) == 0 ? p + 2 : p;
        if (*t != '"')
            return 0;
        const char *q = strchr(t + 1, '"');
        if (!q)
            return 0;
        if ((size_t)(q + 1 - t) == el && strncmp(t, e, el) == 0)
            return 1;
        p = q + 1;
    }
    return 0;
}

static int not_modified(const mc_resp *r, const char *hdrs)
{
    char etag[256], lm[64];
    const char *inm = mc_http_req_header(r->req, "If-None-Match");
    if (inm)
        return mc_hdr_find(hdrs, "ETag", etag, sizeof etag) && etag_matches(inm, etag);
    const char *ims = mc_http_req_header(r->req, "If-Modified-Since");
    time_t since, modified;
    if (ims && mc_hdr_find(hdrs, "Last-Modified", lm, sizeof lm) && mc_httpdate_parse(ims, &since) == 0 &&
        mc_httpdate_parse(lm, &modified) == 0)
        return modified <= since;
    return 0;
}

/* If-Range (RFC 9110 13.1.5): the range applies only if the validator matches
 * (strong comparison for entity tags, exact date for Last-Modified). */
static int if_range_ok(const mc_resp *r, const char *hdrs)
{
    const char *ir = mc_http_req_header(r->req, "If-Range");
    char v[256];
    if (!ir)
        return 1;
    if (ir[0] == '"')
        return mc_hdr_find(hdrs, "ETag", v, sizeof v) && strcmp(v, ir) == 0;
    return mc_hdr_find(hdrs, "Last-Modified", v, sizeof v) && strcmp(v, ir) == 0;
}

void mc_resp_plan(mc_resp *r, int status, const char *hdrs, int64_t length)
{
    r->status = status;
    r->length = length;
    r->has_body = !r->req->is_head;
    r->first = 0;
    r->last = length > 0 ? (uint64_t)length - 1 : length < 0 ? UINT64_MAX : 0;
    if (length == 0)
        r->has_body = 0;
    if (status != 200)
        return;
    if (not_modified(r, hdrs)) {
        r->status = 304;
        r->has_body = 0;
        return;
    }
    const char *range = mc_http_req_header(r->req, "Range");
    if (!range || length < 0 || !if_range_ok(r, hdrs))
        return;
    mc_range rg[MC_RESP_MAX_PARTS];
    int n = mc_range_parse(range, (uint64_t)length, rg, MC_RESP_MAX_PARTS);
    if (n == MC_E_UNSATISFIABLE) {
        r->status = 416;
        r->has_body = 0;
        return;
    }
    for (int i = 1; i < n; i++)
        if (rg[i].start <= rg[i - 1].end)
            return;                 /* overlapping or out of order: the whole body */
    if (n >= 1) {
        r->status = 206;
        r->first = rg[0].start;
        r->last = rg[n - 1].end;
    }
    if (n > 1) {
        memcpy(r->parts, rg, (size_t)n * sizeof rg[0]);
        r->nparts = n;
        snprintf(r->boundary, sizeof r->boundary, "meshcdn-%016llx",
                 (unsigned long long)(r->key.lo ^ (uint64_t)r->t0.tv_nsec));
        if (!mc_hdr_find(hdrs, "Content-Type", r->part_type, sizeof r->part_type))
            snprintf(r->part_type, sizeof r->part_type, "application/octet-stream");
    }
}

/* "\r\n" between parts, then "--B\r\nContent-Type: T\r\nContent-Range: ...\r\n\r\n". */
static int part_head(const mc_resp *r, int i, char *out, size_t n)
{
    return snprintf(out, n, "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes %llu-%llu/%lld\r\n\r\n",
                    i ? "\r\n" : "", r->boundary, r->part_type, (unsigned long long)r->parts[i].start,
                    (unsigned long long)r->parts[i].end, (long long)r->length);
}

static int64_t multipart_length(const mc_resp *r)
{
    char tmp[512];
    int64_t total = 0;
    for (int i = 0; i < r->nparts; i++)
        total += part_head(r, i, tmp, sizeof tmp) + (int64_t)(r->parts[i].end - r->parts[i].start + 1);
    return total + (int64_t)snprintf(tmp, sizeof tmp, "\r\n--%s--\r\n", r->boundary);
}

/* Headers we compute ourselves and never replay from the stored block. */
static int replaced_here(const char *line)
{
    switch (line[0] | 0x20) {   /* one compare per stored line on a hit, not six */
    case 'a':
        return strncasecmp(line, "Age:", 4) == 0 || strncasecmp(line, "Accept-Ranges:", 14) == 0;
    case 'c':
        return strncasecmp(line, "Cache-Status:", 13) == 0 || strncasecmp(line, "Content-Range:", 14) == 0 ||
               strncasecmp(line, "Content-Length:", 15) == 0;
    case 'x':
        return strncasecmp(line, "X-Cache:", 8) == 0;
    default:
        return 0;
    }
}

/* Surrogate-Key and Surrogate-Control are for CDNs: a viewer never sees
 * them; another meshcdn node (a child tier, which sends CDN-Loop naming
 * meshcdn) does, so it can purge by surrogate key too. */
static int surrogate_hidden(const mc_resp *r, const char *line)
{
    if ((line[0] | 0x20) != 's' || strncasecmp(line, "Surrogate-", 10) != 0)
        return 0;
    for (int i = 0; i < r->req->nheaders; i++)
        if (strcasecmp(r->req->headers[i].name, "CDN-Loop") == 0 && strstr(r->req->headers[i].value, "meshcdn-"))
            return 0;
    return 1;
}

void mc_resp_start(mc_resp *r, const char *hdrs, const mc_resp_cache *cache)
{
    const mc_edge_config *cfg = r->w->node->cfg;
    /* the edge answers CORS itself: the origin's Access-Control-* are not
     * replayed, the page's Origin decides at response time (mesh.h) */
    int cors = r->pol && r->pol->cors_origins[0];
    mc_buf h = MC_BUF_INIT;
    mc_buf_reserve(&h, (hdrs ? strlen(hdrs) : 0) + 384);   /* one allocation for the whole block */
    size_t hl = hdrs ? strlen(hdrs) : 0;
    for (const char *p = hdrs, *end = hdrs + hl; p && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (!replaced_here(p) && !surrogate_hidden(r, p) && !((r->status == 304 || r->nparts) && strncasecmp(p, "Content-Type:", 13) == 0) &&
            !(cors && (p[0] | 0x20) == 'a' && strncasecmp(p, "Access-Control-", 15) == 0))
            mc_buf_append(&h, p, ll);
        p += ll;
    }
    if (cors)
        mc_mesh_cors_actual(r->pol, mc_http_req_header(r->req, "Origin"), &h);
    int hit = r->result == MC_RESULT_HIT || r->result == MC_RESULT_STALE;
    int refreshed = r->result == MC_RESULT_REVALIDATED;
    /* no printf on this path: it runs once per hit */
    mc_buf_puts(&h, "Age: ");
    mc_buf_put_i64(&h, (long long)(cache->age_s > 0 ? cache->age_s : 0));
    /* RFC 9211: a revalidated copy is "fwd=stale; fwd-status=304" */
    mc_buf_puts(&h, "\r\nCache-Status: meshcdn-");
    mc_buf_puts(&h, cfg->node_id);
    mc_buf_puts(&h, hit ? "; hit"
                    : (refreshed || r->result == MC_RESULT_EXPIRED) ? "; fwd=stale"
                    : r->partial ? "; fwd=partial" : "; fwd=miss");
    if (refreshed) {
        mc_buf_puts(&h, "; fwd-status=304");
    } else if (!hit && cache->fwd_status) {
        mc_buf_puts(&h, "; fwd-status=");
        mc_buf_put_i64(&h, cache->fwd_status);
    }
    if (cache->stored || hit || refreshed) {
        mc_buf_puts(&h, "; ttl=");
        mc_buf_put_i64(&h, (long long)cache->ttl_s);
    }
    if (!hit && cache->stored)
        mc_buf_puts(&h, "; stored");
    if (r->result == MC_RESULT_COLLAPSED)
        mc_buf_puts(&h, "; collapsed");
    if (r->detail) {
        mc_buf_puts(&h, "; detail=");
        mc_buf_puts(&h, r->detail);
    }
    mc_buf_puts(&h, hit ? "\r\nX-Cache: Hit from meshcdn\r\nVia: 1.1 meshcdn-"
                        : refreshed ? "\r\nX-Cache: RefreshHit from meshcdn\r\nVia: 1.1 meshcdn-"
                                    : "\r\nX-Cache: Miss from meshcdn\r\nVia: 1.1 meshcdn-");
    mc_buf_puts(&h, cfg->node_id);
    mc_buf_puts(&h, " (meshcdn/" MESHCDN_VERSION ")\r\n");
    if (r->length >= 0 && (r->status == 200 || r->status == 206))
        mc_buf_puts(&h, "Accept-Ranges: bytes\r\n");
    int64_t clen = r->length;
    if (r->nparts) {
        mc_buf_printf(&h, "Content-Type: multipart/byteranges; boundary=%s\r\n", r->boundary);
        clen = multipart_length(r);
    } else if (r->status == 206) {
        mc_buf_printf(&h, "Content-Range: bytes %llu-%llu/%lld\r\n", (unsigned long long)r->first,
                      (unsigned long long)r->last, (long long)r->length);
        clen = (int64_t)(r->last - r->first + 1);
    } else if (r->status == 416) {
        mc_buf_printf(&h, "Content-Range: bytes */%lld\r\n", (long long)r->length);
        clen = 0;
    } else if (r->status == 304) {
        clen = -1;
    }
    r->pos = r->first;
    r->started = 1;
    r->done = !r->has_body;
    mc_http_respond_start(r->conn, r->status, NULL, h.data, r->status == 304 ? 0 : clen);
    mc_buf_free(&h);
}

mc_shared *mc_shared_new(const void *data, size_t len)
{
    mc_shared *b = malloc(sizeof *b + len);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = len;
    memcpy(b->data, data, len);
    return b;
}

void mc_shared_release(mc_shared *b)
{
    if (b && --b->refs == 0)
        free(b);
}

static void on_shared_sent(const void *data, size_t len, void *arg)
{
    (void)data, (void)len;
    mc_shared_release(arg);
}

static void access_log(mc_resp *r, int status);

/* An answer's request counter and access log line. */
static void account(mc_resp *r, int status)
{
    mc_stats_request(r->result, status);
    access_log(r, status);
}

/* How write_window hands bytes to the connection. */
#define VIA_VIEW ((mc_shared *)1)   /* a view: sent now as far as the socket takes it */

/* Write what [off, end) has of the window [pos, limit); 1 when it is
 * complete. data is shared's bytes when shared is set (sent by reference),
 * a view into the map when it is VIA_VIEW. */
static int write_window(mc_resp *r, uint64_t off, const void *data, uint64_t end, uint64_t limit,
                        mc_shared *shared)
{
    if (end > r->pos && off <= r->pos && r->pos < limit) {
        uint64_t take_end = end < limit ? end : limit;
        size_t n = (size_t)(take_end - r->pos);
        const char *p = (const char *)data + (r->pos - off);
        if (shared == VIA_VIEW) {
            if (take_end >= limit && !r->nparts && !r->accounted) {
                /* the last bytes leave now, before mc_resp_finish: count and
                 * log the answer first, as a copied answer is (its bytes go
                 * out after the log line), so a viewer holding the whole body
                 * finds it in the metrics and the log; once, though the
                 * tail is offered again after the socket stalled */
                r->sent += n;
                account(r, r->status);
                r->sent -= n;
                r->accounted = 1;
            }
            size_t took = mc_http_respond_body_direct(r->conn, p, n);
            if (took < n && r->pinned) {
                r->stalled = 1;      /* the socket is full: read again when it is writable */
                n = took;
            } else if (took < n) {
                /* not pinned (a one-chunk hit): it may be evicted before
                 * the socket is writable, so the rest is copied now */
                mc_http_respond_body(r->conn, p + took, n - took);
            }
        } else if (shared) {
            shared->refs++;
            mc_http_respond_body_ref(r->conn, p, n, on_shared_sent, shared);
        } else {
            mc_http_respond_body(r->conn, p, n);
        }
        r->pos += n;
        r->sent += n;
    }
    return r->pos >= limit;
}

static int resp_write(mc_resp *r, uint64_t off, const void *data, size_t len, mc_shared *shared);

int mc_resp_write(mc_resp *r, uint64_t off, const void *data, size_t len)
{
    return resp_write(r, off, data, len, NULL);
}

int mc_resp_write_view(mc_resp *r, uint64_t off, const void *data, size_t len)
{
    return resp_write(r, off, data, len, VIA_VIEW);
}

int mc_resp_write_shared(mc_resp *r, uint64_t off, mc_shared *b)
{
    return resp_write(r, off, b->data, b->len, b);
}

static int resp_write(mc_resp *r, uint64_t off, const void *data, size_t len, mc_shared *shared)
{
    if (shared == VIA_VIEW && r->nparts)
        shared = NULL;   /* multipart: copied (parts interleave with their heads) */
    if (r->done || !r->has_body)
        return 1;
    uint64_t end = off + len;   /* exclusive */
    if (!r->nparts) {
        uint64_t limit = r->last == UINT64_MAX ? UINT64_MAX : r->last + 1;
        return r->done = write_window(r, off, data, end, limit, shared);
    }
    char head[512];
    while (r->cur_part < r->nparts) {
        mc_range *p = &r->parts[r->cur_part];
        if (r->pos == p->start && r->pos >= off && r->pos < end) {
            int n = part_head(r, r->cur_part, head, sizeof head);
            mc_http_respond_body(r->conn, head, (size_t)n);
        }
        if (!write_window(r, off, data, end, p->end + 1, shared))
            return 0;                 /* the rest of this part is in later bytes */
        if (++r->cur_part < r->nparts)
            r->pos = r->parts[r->cur_part].start;
    }
    int n = snprintf(head, sizeof head, "\r\n--%s--\r\n", r->boundary);
    mc_http_respond_body(r->conn, head, (size_t)n);
    return r->done = 1;
}

static double ms_since(const struct timespec *t0, const struct timespec *t)
{
    return (double)(t->tv_sec - t0->tv_sec) * 1e3 + (double)(t->tv_nsec - t0->tv_nsec) / 1e6;
}

void mc_resp_upstream_ended(mc_resp *list)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    for (mc_resp *r = list; r; r = r->next)
        if (r->up_s < 0 && (r->up_t0.tv_sec || r->up_t0.tv_nsec))
            r->up_s = ms_since(&r->up_t0, &t) / 1e3;
}

/* A header value as one quoted, bounded field: no quotes or controls inside. */
static void log_field(char *out, size_t n, const char *v)
{
    size_t i = 0;
    for (const char *p = v; *p && i < n - 1; p++)
        out[i++] = *p == '"' ? '\'' : (unsigned char)*p < 0x20 ? '?' : *p;
    out[i] = '\0';
}

void mc_access_log(const mc_access *a)
{
    char rq[80] = "-", up[32] = "-";
    if (a->range)
        log_field(rq, sizeof rq, a->range);
    if (a->upstream_ms >= 0)
        snprintf(up, sizeof up, "%.1f", a->upstream_ms);
    mc_log_info("access", "node=%s client=%s method=%s path=\"%s\" range=\"%s\" status=%d bytes=%llu result=%s ms=%.1f upstream_ms=%s",
                a->node, a->client, a->method, a->path, rq, a->status, (unsigned long long)a->bytes, a->result,
                a->ms, up);
}

static void access_log(mc_resp *r, int status)
{
    if (mc_log_get_level() > MC_LOG_INFO)
        return;                 /* the line is not written: do none of its work */
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double up = -1;
    /* a hit is served from the store, even one that waited for another
     * worker's fill to publish first */
    if ((r->up_t0.tv_sec || r->up_t0.tv_nsec) && r->result != MC_RESULT_HIT)
        up = r->up_s >= 0 ? r->up_s * 1e3 : ms_since(&r->up_t0, &t);
    mc_access a = {r->w->node->cfg->node_id, mc_http_peer(r->conn), r->req->method,
                   r->keystr ? r->keystr : r->req->path, mc_http_req_header(r->req, "Range"), status, r->sent,
                   mc_result_name(r->result), ms_since(&r->t0, &t), up};
    mc_access_log(&a);
}

void mc_resp_finish(mc_resp *r)
{
    assert(r->started);
    if (!r->accounted)
        account(r, r->status);
    mc_http_conn *c = r->conn;
    r->conn = NULL;
    mc_resp_free(r);
    mc_http_respond_end(c);
}

void mc_resp_fail_detail(mc_resp *r, int status, const char *detail)
{
    r->detail = detail;
    mc_resp_fail(r, status);
}

void mc_resp_fail(mc_resp *r, int status)
{
    mc_http_conn *c = r->conn;
    access_log(r, r->started ? 0 : status);
    if (r->started) {
        mc_stats_request(r->result, 0);
        mc_resp_free(r);
        mc_http_abort(c);
        return;
    }
    mc_stats_request(MC_RESULT_ERROR, status);
    char body[96];
    mc_buf hdrs = MC_BUF_INIT;
    int n = snprintf(body, sizeof body, "%d %s\n", status, mc_http_reason(status));
    mc_buf_printf(&hdrs, "Cache-Control: no-store\r\nCache-Status: meshcdn-%s; fwd=%s%s%s\r\n",
                  r->w->node->cfg->node_id, r->partial ? "partial" : r->has_meta ? "stale" : "miss",
                  r->detail ? "; detail=" : "",
                  r->detail ? r->detail : "");
    if (r->pol && r->pol->cors_origins[0])   /* so a page's script can read the error */
        mc_mesh_cors_actual(r->pol, mc_http_req_header(r->req, "Origin"), &hdrs);
    mc_resp_free(r);
    mc_http_respond(c, status, NULL, hdrs.data ? hdrs.data : "", "text/plain; charset=utf-8", body, (size_t)n);
    mc_buf_free(&hdrs);
}
