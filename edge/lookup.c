/* lookup.c — see lookup.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/log.h"
#include "common/cc.h"
#include "common/path.h"
#include "common/sigv4.h"
#include "edge/fill.h"
#include "edge/lookup.h"
#include "edge/mesh.h"
#include "edge/pass.h"
#include "edge/prefetch.h"
#include "edge/segment.h"
#include "edge/vary.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int in_list(const char *list, const char *name, size_t nl)
{
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == nl && strncmp(p, name, nl) == 0)
            return 1;
        p += l + (e != NULL);
    }
    return 0;
}

/* The query as the behavior keys it: all, sorted, none, or listed names. */
static int key_query(const char *query, const mc_cache_policy *pol, mc_buf *out)
{
    mc_buf_reset(out);
    if (!query || pol->query == MC_QUERY_NONE)
        return 0;
    if (pol->query == MC_QUERY_ALL)
        return mc_buf_puts(out, query);
    char *copy = strdup(query), *save = NULL;
    const char *parts[256];
    size_t n = 0;
    if (!copy)
        return MC_E_NOMEM;
    for (char *t = strtok_r(copy, "&", &save); t && n < 256; t = strtok_r(NULL, "&", &save)) {
        size_t nl = strcspn(t, "=");
        if (pol->query == MC_QUERY_SORTED || in_list(pol->query_list, t, nl))
            parts[n++] = t;
    }
    if (pol->query == MC_QUERY_SORTED)
        qsort(parts, n, sizeof parts[0], cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = mc_buf_printf(out, "%s%s", i ? "&" : "", parts[i]);
    free(copy);
    return rc;
}

int mc_lookup_key(const char *path, const char *query, const mc_edge_config *cfg, mc_buf *keystr,
                  mc_buf *normpath, const mc_cache_policy **pol, char **upstream_query)
{
    int rc = mc_path_normalize(path, strlen(path), normpath);
    if (rc < 0)
        return rc;
    *pol = mc_edge_policy_for(cfg, normpath->data);
    mc_buf q = MC_BUF_INIT;
    *upstream_query = NULL;
    mc_buf_reset(keystr);
    if (key_query(query, *pol, &q) < 0 || mc_buf_append(keystr, normpath->data, normpath->len) < 0 ||
        (q.len && (mc_buf_putc(keystr, '?') < 0 || mc_buf_append(keystr, q.data, q.len) < 0))) {
        mc_buf_free(&q);
        return MC_E_NOMEM;
    }
    /* upstream: as received, except where the behavior drops parameters */
    if ((*pol)->query == MC_QUERY_ALL || (*pol)->query == MC_QUERY_SORTED)
        *upstream_query = query ? strdup(query) : NULL;
    else if (q.len)
        *upstream_query = strdup(q.data);
    mc_buf_free(&q);
    return 0;
}

/* ---------- hits ---------- */

static void pump_hit(mc_resp *r);

static void on_hit_drain(void *arg)
{
    pump_hit(arg);
}

static void on_resp_close(void *arg)
{
    mc_resp *r = arg;
    r->conn = NULL;
    mc_resp_free(r);
}

static void on_fill_drain(void *arg)
{
    mc_fill_drained(arg);
}

/* Per call of pump_hit, at most this many bytes go to the socket straight
 * from the map; then the connection waits for the loop's next turn (its
 * socket's next writable event), so one connection does not keep its loop
 * for a whole large body. */
#define DIRECT_BUDGET (4u * MC_STORE_CHUNK_SIZE)

/* Send chunks straight from the map to the socket while it takes them
 * (mc_resp_write_view: no copy in user space); when it is full, or after
 * DIRECT_BUDGET, go on once it is writable (mc_http_await_writable). Only
 * when the output buffer already holds bytes (headers the socket did not
 * take, a multipart answer's copies) are chunks copied into it, up to
 * about two chunks, and its draining calls pump_hit again. The read
 * transaction ends before this returns to the loop. */
static void pump_hit(mc_resp *r)
{
    uint64_t direct = 0;
    while (!r->done && !r->stalled && mc_http_backlog(r->conn) < 2 * MC_STORE_CHUNK_SIZE) {
        int view = mc_http_backlog(r->conn) == 0;
        if (view && direct >= DIRECT_BUDGET)
            break;
        uint32_t idx = (uint32_t)(r->pos / r->meta.chunk_size);
        const void *data = NULL;
        int n = mc_store_view_chunk(r->w->reader, r->skey, r->meta.seq, idx, &data);
        if (n < 0) {
            mc_store_view_end(r->w->reader);
            /* damaged (checksum) or replaced under us after the headers went
             * out: abort the connection, never a wrong or short body; a
             * damaged object is deleted so the next request refetches it */
            mc_log_warn("lookup", "key=\"%s\" msg=\"chunk unreadable\" chunk=%u error=%s", r->keystr, idx,
                        mc_err_name(n));
            if (n == MC_E_CHECKSUM)
                mc_store_delete(r->w->node->store, r->skey);
            mc_resp_fail(r, 502);
            return;
        }
        uint64_t pos0 = r->pos;
        int complete = view ? mc_resp_write_view(r, (uint64_t)idx * r->meta.chunk_size, data, (size_t)n)
                            : mc_resp_write(r, (uint64_t)idx * r->meta.chunk_size, data, (size_t)n);
        direct += r->pos - pos0;
        mc_store_view_end(r->w->reader);
        if (complete)
            break;
    }
    if (r->done) {
        mc_resp_finish(r);
    } else if (r->stalled || mc_http_backlog(r->conn) == 0) {
        r->stalled = 0;
        mc_http_await_writable(r->conn);
    }
}

static int64_t meta_age(const mc_object_meta *m)
{
    return m->initial_age_s + ((int64_t)time(NULL) - m->response_time);
}

static void serve_hit(mc_resp *r, mc_result result)
{
    int64_t age = meta_age(&r->meta);
    r->result = result;
    mc_store_touch(r->w->node->store, r->skey);   /* SIEVE's visited bit */
    mc_resp_plan(r, r->meta.status, r->meta.headers, (int64_t)r->meta.length);
    const void *first = NULL;
    int n = 0;
    uint32_t idx = (uint32_t)(r->first / (r->meta.chunk_size ? r->meta.chunk_size : 1));
    if (r->has_body && r->meta.nchunks > 1 && !r->pinned) {
        /* more than one chunk read: pinned before the first read, so the
         * evictor passes over it until the answer ends (evict.h); a pin
         * refused means it is being evicted now: fetched again below */
        r->pin_key = r->skey;
        n = mc_store_pin(r->w->node->store, r->pin_key, 1);
        r->pinned = n == 0;
    }
    if (r->has_body) {
        /* Read and verify the first chunk to send before the headers go out:
         * a damaged or vanished chunk here (most objects are one chunk) turns
         * the hit into a miss, and the viewer gets the origin's bytes. It is
         * copied from the map once, after the headers, in the same read
         * transaction. */
        if (n == 0)
            n = mc_store_view_chunk(r->w->reader, r->skey, r->meta.seq, idx, &first);
        if (n < 0) {
            mc_store_view_end(r->w->reader);
            if (n == MC_E_BUSY)
                mc_log_debug("lookup", "key=\"%s\" msg=\"being evicted, refetching\"", r->keystr);
            else
                mc_log_warn("lookup", "key=\"%s\" msg=\"chunk unreadable, refetching\" chunk=%u error=%s",
                            r->keystr, idx, mc_err_name(n));
            if (n == MC_E_CHECKSUM)
                mc_store_delete(r->w->node->store, r->skey);
            if (result == MC_RESULT_STALE && r->detail && strcmp(r->detail, "stale-if-error") == 0) {
                /* the fill that failed is calling us: no copy, no origin */
                mc_resp_fail(r, 502);
                return;
            }
            mc_object_meta_free(&r->meta);
            r->has_meta = 0;
            mc_http_owner o = {on_fill_drain, on_resp_close, r};
            mc_http_set_owner(r->conn, &o);
            mc_fill_join(r, 0);
            return;
        }
    }
    if (r->has_body && idx == 0)   /* a .gltf whose dependencies may have gone (prefetch.h) */
        mc_prefetch_hit(r->w, r->pol, r->key, r->keystr, &r->meta, first, (size_t)n);
    mc_resp_cache cache = {age, r->meta.lifetime_s - age, 0, 0};
    mc_resp_start(r, r->meta.headers, &cache);
    if (!r->has_body) {
        mc_resp_finish(r);
        return;
    }
    mc_http_owner o = {on_hit_drain, on_resp_close, r};
    mc_http_set_owner(r->conn, &o);
    mc_resp_write_view(r, (uint64_t)idx * r->meta.chunk_size, first, (size_t)n);
    mc_store_view_end(r->w->reader);
    pump_hit(r);
}

/* The viewer's own Cache-Control (RFC 9111 5.2.1), every line of it. */
static void request_cc(const mc_http_req *req, mc_cc *cc)
{
    mc_cc_init(cc);
    for (int i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, "Cache-Control") == 0)
            mc_cc_parse(cc, req->headers[i].value);
}

int mc_lookup_stale_allowed(mc_resp *r, int for_error)
{
    if (!r->has_meta || r->bypass_stale)
        return 0;
    mc_fresh fr;
    mc_fill_freshness(r->meta.status, r->meta.headers, r->meta.response_time, r->meta.response_time,
                      r->pol, &fr);
    if (fr.no_stale || fr.no_cache)
        return 0;
    if ((r->meta.flags & MC_META_F_INVALIDATED) && !for_error)
        return 0;   /* soft-purged: revalidated before use, served stale only on error */
    int64_t staleness = meta_age(&r->meta) - r->meta.lifetime_s;
    mc_cc cc;
    request_cc(r->req, &cc);
    if (cc.max_stale >= 0 && staleness <= cc.max_stale)
        return 1;
    int64_t window = for_error ? fr.sie_s : fr.swr_s;
    return window > 0 && staleness <= window;
}

void mc_lookup_serve_stale(mc_resp *r, const char *detail)
{
    r->detail = detail;
    serve_hit(r, MC_RESULT_STALE);
}

/* Is the stored copy fresh enough for this request? */
static int usable_fresh(mc_resp *r, const mc_cc *req_cc)
{
    int64_t age = meta_age(&r->meta), left = r->meta.lifetime_s - age;
    if (left <= 0 || (r->meta.flags & MC_META_F_INVALIDATED))
        return 0;   /* expired, or soft-purged: revalidate first */
    if (req_cc->max_age >= 0 && age > req_cc->max_age)
        return 0;
    if (req_cc->min_fresh >= 0 && left < req_cc->min_fresh)
        return 0;
    if (req_cc->no_cache && r->pol->honor_viewer_no_cache)
        return 0;
    /* a stored no-cache response is validated before each use; the full
     * parse only when the text is there, so a plain hit parses nothing */
    if ((r->meta.flags & MC_META_F_NOCACHE_KNOWN) ? !(r->meta.flags & MC_META_F_NOCACHE_TEXT)
                                                  : !strcasestr(r->meta.headers, "no-cache"))
        return 1;
    mc_fresh fr;
    mc_fill_freshness(r->meta.status, r->meta.headers, r->meta.response_time, r->meta.response_time,
                      r->pol, &fr);
    return !fr.no_cache;
}

/* How r's stored copy serves it, for a whole object as for a segmented
 * one's head (segment.h's modes): MC_SEGMENT_FRESH as it is (a copy
 * revalidated for this very request even when the request or the response
 * says no-cache); MC_SEGMENT_STALE now, refreshed in the background
 * (stale-while-revalidate or the viewer's max-stale: r->detail says which);
 * MC_SEGMENT_REVALIDATE after a revalidation the viewer waits for. */
static int stored_use(mc_resp *r, const mc_cc *cc)
{
    if (r->refreshed || usable_fresh(r, cc))
        return MC_SEGMENT_FRESH;
    if (cc->no_cache || !mc_lookup_stale_allowed(r, 0))
        return MC_SEGMENT_REVALIDATE;
    r->detail = cc->max_stale >= 0 ? "max-stale" : "stale-while-revalidate";
    return MC_SEGMENT_STALE;
}

/* Read r's metadata; when the URL varies (a marker at its key), read the
 * variant that matches r's request instead. */
static int read_variant(mc_resp *r)
{
    r->skey = r->key;
    free(r->skeystr);
    r->skeystr = NULL;
    int rc = mc_store_read_meta(r->w->reader, r->key, &r->meta);
    if (rc < 0 || r->meta.status != MC_META_VARY_MARKER || strcmp(r->meta.key, r->keystr) != 0)
        return rc;
    char names[512];
    mc_buf block = MC_BUF_INIT, suffix = MC_BUF_INIT;
    int v = mc_vary_names(r->meta.headers, names, sizeof names);
    mc_object_meta_free(&r->meta);
    rc = MC_E_NOTFOUND;
    if (v == 1 && mc_vary_req_block(r->req, &block) == 0 && (!r->pol->compress || mc_mesh_ae_normalise(&block, r->pol->compress, NULL) == 0) &&
        mc_vary_suffix(names, block.data, &suffix) == 0) {
        mc_buf full = MC_BUF_INIT;
        mc_buf_printf(&full, "%s%s", r->keystr, suffix.data);
        r->skeystr = mc_buf_steal(&full);
        if (r->skeystr) {
            r->skey = mc_hash_key(r->skeystr, strlen(r->skeystr));
            rc = mc_store_read_meta(r->w->reader, r->skey, &r->meta);
        }
    }
    mc_buf_free(&block);
    mc_buf_free(&suffix);
    return rc;
}

static void dispatch(mc_resp *r)
{
    if (r->has_meta) {
        mc_object_meta_free(&r->meta);
        r->has_meta = 0;
    }
    mc_cc cc;
    request_cc(r->req, &cc);
    int rc = read_variant(r);
    int expired = 0;
    if (rc == 0 && strcmp(r->meta.key, r->skeystr ? r->skeystr : r->keystr) != 0) {
        /* a 128-bit hash collision: treat as a miss, never serve it */
        mc_log_error("lookup", "msg=\"key hash collision\" key=\"%s\" stored=\"%s\"", r->keystr, r->meta.key);
        mc_object_meta_free(&r->meta);
    } else if (rc == 0 && (r->meta.flags & MC_META_F_SEGMENTED) && !r->no_segments && !r->skeystr) {
        r->has_meta = 1;   /* a segmented object's head (segment.h) */
        if (cc.only_if_cached)
            mc_resp_fail_detail(r, 504, "only-if-cached");   /* its segments may be missing */
        else
            mc_segment_serve(r, stored_use(r, &cc));
        return;
    } else if (rc == 0 && (r->meta.flags & MC_META_F_SEGMENTED)) {
        mc_object_meta_free(&r->meta);   /* fetched whole instead: the head is no copy of it */
        rc = MC_E_NOTFOUND;
    } else if (rc == 0) {
        r->has_meta = 1;
        int use = r->bypass_stale ? MC_SEGMENT_REVALIDATE : stored_use(r, &cc);
        if (use == MC_SEGMENT_FRESH) {
            serve_hit(r, r->refreshed ? MC_RESULT_REVALIDATED : MC_RESULT_HIT);
            return;
        }
        if (use == MC_SEGMENT_STALE) {
            mc_fill_background(r);
            serve_hit(r, MC_RESULT_STALE);   /* r->detail set by stored_use */
            return;
        }
        expired = 1;
    } else if (rc != MC_E_NOTFOUND) {
        mc_log_warn("lookup", "key=\"%s\" msg=\"store read failed\" error=%s", r->keystr, mc_err_name(rc));
    }
    if (cc.only_if_cached) {   /* RFC 9111 5.2.1.7 */
        mc_resp_fail_detail(r, 504, "only-if-cached");
        return;
    }
    if (rc == MC_E_NOTFOUND && mc_segment_probe_wanted(r)) {
        mc_segment_serve(r, 0);
        return;
    }
    mc_http_owner o = {on_fill_drain, on_resp_close, r};
    mc_http_set_owner(r->conn, &o);
    mc_fill_join(r, expired || r->stale_replaced);
}

void mc_lookup_retry(mc_resp *r)
{
    dispatch(r);
}

static int loop_detected(const mc_http_req *req, const char *node_id)
{
    char me[96];
    snprintf(me, sizeof me, "meshcdn-%s", node_id);
    size_t ml = strlen(me);
    for (int i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, "CDN-Loop") != 0)
            continue;
        for (const char *p = req->headers[i].value; (p = strstr(p, me)) != NULL; p += ml)
            if ((p == req->headers[i].value || p[-1] == ' ' || p[-1] == ',') &&
                (!p[ml] || p[ml] == ',' || p[ml] == ' ' || p[ml] == ';'))
                return 1;
    }
    return 0;
}

static void respond_error(mc_worker *w, mc_http_conn *c, mc_http_req *req, int status, const char *hdrs,
                          const char *msg)
{
    {
        mc_access a = {w->node->cfg->node_id, mc_http_peer(c), req->method, req->path,
                       mc_http_req_header(req, "Range"), status, 0, mc_result_name(MC_RESULT_ERROR), 0.0, -1};
        mc_access_log(&a);
    }
    mc_stats_request(MC_RESULT_ERROR, status);
    mc_buf b = MC_BUF_INIT;
    mc_buf_printf(&b, "%d %s: %s\n", status, mc_http_reason(status), msg);
    mc_buf h = MC_BUF_INIT;
    mc_buf_printf(&h, "Cache-Control: no-store\r\n%s", hdrs ? hdrs : "");
    mc_http_respond(c, status, NULL, h.data, "text/plain; charset=utf-8", b.data, b.len);
    mc_buf_free(&b);
    mc_buf_free(&h);
}

void mc_lookup_handle(mc_http_conn *c, mc_http_req *req, void *ud)
{
    mc_worker *w = ud;
    /* the configuration this request keeps to its end (a reload meanwhile
     * is for the next request) */
    const mc_edge_config *cfg = &mc_worker_snap(w)->cfg;
    int cacheable = mc_pass_method_cacheable(req->method);
    if (strcmp(req->method, "CONNECT") == 0 || strcmp(req->method, "TRACE") == 0) {
        respond_error(w, c, req, 405, "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n",
                      "CONNECT and TRACE are not served");
        return;
    }
    if (strcmp(req->path, "*") == 0) {   /* OPTIONS * (RFC 9110 9.3.7): about this server */
        const char *allow = "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\nCache-Control: no-store\r\n";
        if (strcmp(req->method, "OPTIONS") == 0)
            mc_http_respond(c, 200, NULL, allow, NULL, "", 0);
        else
            respond_error(w, c, req, 400, NULL, "\"*\" is a target for OPTIONS only");
        return;
    }
    if (loop_detected(req, cfg->node_id)) {
        mc_counter_add(&mc_stats_global.loops_detected, 1);
        respond_error(w, c, req, 508, NULL, "this request already passed through this node (CDN-Loop)");
        return;
    }
    mc_buf keystr = MC_BUF_INIT, norm = MC_BUF_INIT;
    const mc_cache_policy *pol;
    char *upq = NULL;
    if (mc_lookup_key(req->path, req->query, cfg, &keystr, &norm, &pol, &upq) < 0) {
        mc_buf_free(&keystr);
        mc_buf_free(&norm);
        respond_error(w, c, req, 400, NULL, "bad request path");
        return;
    }
    if (strcmp(req->method, "OPTIONS") == 0 && pol->cors_origins[0] && mc_http_req_header(req, "Origin") &&
        mc_http_req_header(req, "Access-Control-Request-Method")) {
        /* a CORS preflight for a behavior that does CORS: answered here,
         * before methods=read or the pass to the origin (mesh.h) */
        mc_buf h = MC_BUF_INIT;
        mc_buf_puts(&h, "Cache-Control: no-store\r\n");
        mc_mesh_cors_preflight(pol, mc_http_req_header(req, "Origin"),
                               mc_http_req_header(req, "Access-Control-Request-Method"),
                               mc_http_req_header(req, "Access-Control-Request-Headers"), &h);
        mc_http_respond(c, 204, NULL, h.data, NULL, "", 0);
        mc_buf_free(&h);
        free(upq);
        mc_buf_free(&keystr);
        mc_buf_free(&norm);
        return;
    }
    /* credentials for an unsigned origin: passed, never cached (pass.h) */
    int credentialed = cacheable && !cfg->origin_sign && mc_http_req_header(req, "Authorization");
    if (!cacheable || credentialed) {
        if (!cacheable && !pol->pass_unsafe) {
            respond_error(w, c, req, 405, "Allow: GET, HEAD\r\n", "only GET and HEAD are served here");
        } else {
            /* what is signed is what is sent (S3 encoding); else as received */
            char *up = cfg->origin_sign ? mc_sigv4_s3_path(norm.data) : strdup(req->path);
            if (up)
                mc_pass_handle(c, req, w, keystr.data, up);
            else
                respond_error(w, c, req, 400, NULL, "bad request path");
            free(up);
        }
        free(upq);
        mc_buf_free(&keystr);
        mc_buf_free(&norm);
        return;
    }
    mc_resp *r = mc_resp_new(w, c, req);
    int nomem = !r;
    if (r) {
        /* a signed (S3) origin gets the canonical S3 encoding, so what is signed
         * is what is sent; a plain HTTP origin gets the path as received */
        r->s3path = cfg->origin_sign ? mc_sigv4_s3_path(norm.data) : strdup(req->path);
        r->keystr = mc_buf_steal(&keystr);
        r->query = upq;
        r->pol = pol;
        nomem = !r->s3path || !r->keystr;
    } else {
        free(upq);
    }
    mc_buf_free(&keystr);
    mc_buf_free(&norm);
    if (nomem) {
        if (r)
            mc_resp_free(r);
        respond_error(w, c, req, 500, NULL, "out of memory");
        return;
    }
    r->key = r->skey = mc_hash_key(r->keystr, strlen(r->keystr));
    dispatch(r);
}
