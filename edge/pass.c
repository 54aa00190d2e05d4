/* pass.c — see pass.h. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/invspec.h"
#include "common/log.h"
#include "common/path.h"
#include "common/sigv4.h"
#include "edge/fill.h"
#include "edge/lookup.h"
#include "edge/pass.h"
#include "edge/stats.h"
#include "edge/upstream.h"

#define MC_PASS_MAGIC 0x50415353u
#define MAX_TARGETS 3

typedef struct mc_pass {
    uint32_t magic;
    mc_worker *w;
    mc_edge_snap *snap;          /* the configuration it started with (a reference) */
    mc_http_conn *conn;          /* NULL once the response ended or the viewer left */
    mc_http_req *req;            /* the connection's; valid while conn is set */
    mc_upstream_xfer *xfer;      /* NULL once the transfer ended */
    char *keystr;                /* the target's key string (owned) */
    char *targets[MAX_TARGETS];  /* key strings to purge (owned) */
    int ntargets;
    char *hdrs;                  /* the answer's headers for the viewer (owned) */
    const char *fwd;             /* Cache-Status fwd: "method", or "bypass" (a GET/HEAD with credentials) */
    int status;
    int64_t length;
    int started;                 /* the viewer's response has begun */
    int purging;                 /* a purge is queued and not answered yet */
    int purge_ok;                /* written by the writer before the post */
    mc_mail purged;
    int upstream_done, upstream_rc;
    uint64_t sent;
    struct timespec t0;
    double up_ms;                /* upstream time once the transfer ended, else < 0 */
} mc_pass;

int mc_pass_method_cacheable(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static void pass_free(mc_pass *p)
{
    assert(p->magic == MC_PASS_MAGIC && !p->conn && !p->xfer && !p->purging);
    for (int i = 0; i < p->ntargets; i++)
        free(p->targets[i]);
    free(p->keystr);
    free(p->hdrs);
    mc_snap_unref(p->snap);
    p->magic = 0;
    free(p);
}

static void maybe_free(mc_pass *p)
{
    if (!p->conn && !p->xfer && !p->purging)
        pass_free(p);
}

static void access_log(mc_pass *p, int status)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double ms = (double)(t.tv_sec - p->t0.tv_sec) * 1e3 + (double)(t.tv_nsec - p->t0.tv_nsec) / 1e6;
    mc_access a = {p->w->node->cfg->node_id, mc_http_peer(p->conn), p->req->method, p->keystr,
                   mc_http_req_header(p->req, "Range"), status, p->sent, "pass", ms,
                   p->up_ms >= 0 ? p->up_ms : p->xfer ? mc_upstream_elapsed(p->xfer) * 1e3 : -1};
    mc_access_log(&a);
}

/* ---------- the viewer side ---------- */

static void fail(mc_pass *p, int status)
{
    mc_http_conn *c = p->conn;
    access_log(p, p->started ? 0 : status);
    p->conn = NULL;
    if (p->started) {
        mc_stats_request(MC_RESULT_PASS, 0);
        mc_http_abort(c);   /* never a short body presented as complete */
        return;
    }
    mc_stats_request(MC_RESULT_ERROR, status);
    char body[96], hdrs[160];
    int n = snprintf(body, sizeof body, "%d %s\n", status, mc_http_reason(status));
    snprintf(hdrs, sizeof hdrs, "Cache-Control: no-store\r\nCache-Status: meshcdn-%s; fwd=%s\r\n",
             p->w->node->cfg->node_id, p->fwd);
    mc_http_respond(c, status, NULL, hdrs, "text/plain; charset=utf-8", body, (size_t)n);
}

static void finish(mc_pass *p)
{
    mc_http_conn *c = p->conn;
    mc_stats_request(MC_RESULT_PASS, p->status);
    access_log(p, p->status);
    p->conn = NULL;
    mc_http_respond_end(c);
}

static void start(mc_pass *p)
{
    const mc_edge_config *cfg = p->w->node->cfg;
    mc_buf h = MC_BUF_INIT;
    mc_buf_printf(&h, "%sCache-Status: meshcdn-%s; fwd=%s; fwd-status=%d\r\n"
                      "X-Cache: Miss from meshcdn\r\nVia: 1.1 meshcdn-%s (meshcdn/%s)\r\n",
                  p->hdrs, cfg->node_id, p->fwd, p->status, cfg->node_id, MESHCDN_VERSION);
    p->started = 1;
    mc_http_respond_start(p->conn, p->status, NULL, h.data, p->length);
    mc_buf_free(&h);
}

/* The response can go (no purge to wait for): start it, and end it if the
 * transfer is already over. */
static void go(mc_pass *p)
{
    if (p->upstream_done && p->upstream_rc < 0) {
        fail(p, p->upstream_rc == MC_E_BUSY ? 504 : 502);
        return;
    }
    start(p);
    if (p->upstream_done)
        finish(p);
    else
        mc_upstream_resume(p->xfer);
}

static void on_drain(void *arg)
{
    mc_pass *p = arg;
    if (p->xfer && p->started)
        mc_upstream_resume(p->xfer);
}

static void on_close(void *arg)
{
    mc_pass *p = arg;
    p->conn = NULL;   /* the request (and its body) goes with it: stop sending it */
    if (p->xfer) {
        mc_upstream_cancel(p->xfer);
        p->xfer = NULL;
    }
    maybe_free(p);
}

/* ---------- invalidation ---------- */

static void on_purged_main(void *arg)
{
    mc_pass *p = arg;
    assert(p->magic == MC_PASS_MAGIC && p->purging);
    p->purging = 0;
    if (!p->purge_ok)
        mc_log_warn("pass", "key=\"%s\" msg=\"invalidation failed\"", p->keystr);
    if (p->conn)
        go(p);
    maybe_free(p);
}

/* Writer thread: hand the answer to the pass's worker. */
static void on_purged(void *arg, int ok, uint64_t affected)
{
    mc_pass *p = arg;
    (void)affected;
    p->purge_ok = ok;
    mc_worker_post_mail(p->w, &p->purged, on_purged_main, p);
}

static int host_is(const char *h, size_t hl, const char *want)
{
    return want && strlen(want) == hl && strncasecmp(h, want, hl) == 0;
}

/* The key string of a Location / Content-Location value when it names this
 * host (RFC 9111 4.4: never another host's URI), else NULL. */
static char *same_host_key(mc_pass *p, const char *uri)
{
    const mc_edge_config *cfg = &p->snap->cfg;
    const char *origin_host = strstr(cfg->origin_base, "://") + 3;
    mc_buf path = MC_BUF_INIT, key = MC_BUF_INIT, norm = MC_BUF_INIT;
    const char *rest = uri;
    int origin_named = 0;
    if (strncasecmp(uri, "http://", 7) == 0 || strncasecmp(uri, "https://", 8) == 0 || strncmp(uri, "//", 2) == 0) {
        const char *h = strncmp(uri, "//", 2) == 0 ? uri + 2 : strstr(uri, "://") + 3;
        size_t hl = strcspn(h, "/?#");
        origin_named = host_is(h, hl, origin_host);
        if (!origin_named && !host_is(h, hl, mc_http_req_header(p->req, "Host")))
            return NULL;
        rest = h + hl;
    }
    size_t rl = strcspn(rest, "#");
    if (rest[0] == '/' || rl == 0) {
        mc_buf_append(&path, rl ? rest : "/", rl ? rl : 1);
    } else if (rest[0] == '?') {   /* the target with another query */
        mc_buf_puts(&path, p->req->path);
        mc_buf_append(&path, rest, rl);
    } else {   /* relative to the target's directory (RFC 3986 5.2.3) */
        const char *slash = strrchr(p->req->path, '/');
        mc_buf_append(&path, p->req->path, slash ? (size_t)(slash - p->req->path) + 1 : 0);
        mc_buf_append(&path, rest, rl);
    }
    char *q = path.data ? strchr(path.data, '?') : NULL;
    if (q)
        *q++ = '\0';
    const char *pth = path.data;
    size_t opl = strlen(cfg->origin_path);
    if (pth && origin_named && opl && strncmp(pth, cfg->origin_path, opl) == 0 && pth[opl] == '/')
        pth += opl;   /* the origin's own URL for it: its bucket is not in our keys */
    const mc_cache_policy *pol;
    char *upq = NULL;
    char *out = NULL;
    if (pth && mc_lookup_key(pth, q, cfg, &key, &norm, &pol, &upq) == 0)
        out = mc_buf_steal(&key);
    free(upq);
    mc_buf_free(&path);
    mc_buf_free(&key);
    mc_buf_free(&norm);
    return out;
}

static void add_target(mc_pass *p, char *k)
{
    if (!k)
        return;
    for (int i = 0; i < p->ntargets; i++)
        if (strcmp(p->targets[i], k) == 0) {
            free(k);
            return;
        }
    p->targets[p->ntargets++] = k;
}

/* Queue the purge of the target and the same-host Location and
 * Content-Location; 1 when queued. */
static int invalidate(mc_pass *p, const mc_http_header *h, int n)
{
    add_target(p, strdup(p->keystr));
    for (int i = 0; i < n && p->ntargets < MAX_TARGETS; i++)
        if (strcasecmp(h[i].name, "Location") == 0 || strcasecmp(h[i].name, "Content-Location") == 0)
            add_target(p, same_host_key(p, h[i].value));
    /* nothing stored and nothing being filled under these keys: no purge,
     * so that API traffic does not bump the purge generation (each bump
     * costs fills in flight a check, and too many make them unstorable) */
    int needed = 0;
    for (int i = 0; i < p->ntargets && !needed; i++) {
        mc_hash128 k = mc_hash_key(p->targets[i], strlen(p->targets[i]));
        mc_object_meta m;
        if (mc_store_read_meta(p->w->reader, k, &m) == 0) {
            mc_object_meta_free(&m);
            needed = 1;
        }
        needed |= mc_fill_running(k);
    }
    if (!needed)
        return 0;
    mc_invspec spec = {0};
    spec.paths = p->targets;
    spec.npaths = (size_t)p->ntargets;
    mc_log_debug("pass", "key=\"%s\" msg=invalidate targets=%d", p->keystr, p->ntargets);
    if (mc_store_purge(p->w->node->store, &spec, NULL, on_purged, p) < 0) {
        mc_log_warn("pass", "key=\"%s\" msg=\"invalidation refused by the store\"", p->keystr);
        return 0;
    }
    return 1;
}

/* ---------- the upstream side ---------- */

static int on_up_headers(void *arg, int status, const mc_http_header *h, int n, int64_t clen)
{
    mc_pass *p = arg;
    const char *connection = NULL;
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Connection") == 0)
            connection = h[i].value;
    mc_buf b = MC_BUF_INIT;
    mc_buf_puts(&b, "");
    for (int i = 0; i < n; i++)
        if (!mc_fill_drop_header(h[i].name, connection))
            mc_buf_printf(&b, "%s: %s\r\n", h[i].name, h[i].value);
    if (!(p->hdrs = mc_buf_steal(&b)))
        return -1;
    p->status = status;
    p->length = clen;
    /* RFC 9111 4.4: a non-error answer to an unsafe method invalidates */
    if (status >= 200 && status < 400 && strcmp(p->req->method, "OPTIONS") != 0 &&
        !mc_pass_method_cacheable(p->req->method) && invalidate(p, h, n)) {
        p->purging = 1;
        return 0;
    }
    start(p);
    return 0;
}

static int on_up_body(void *arg, const void *data, size_t len)
{
    mc_pass *p = arg;
    if (!p->started || mc_http_backlog(p->conn) > p->snap->cfg.max_fill_buffer)
        return MC_UPSTREAM_PAUSE;   /* the purge first, or a slow viewer */
    mc_http_respond_body(p->conn, data, len);
    p->sent += len;
    return 0;
}

static void on_up_done(void *arg, int rc, const char *why)
{
    mc_pass *p = arg;
    (void)why;
    p->up_ms = mc_upstream_elapsed(p->xfer) * 1e3;
    p->xfer = NULL;
    p->upstream_done = 1;
    p->upstream_rc = rc;
    if (p->purging)
        return;   /* on_purged_main answers */
    if (rc < 0)
        fail(p, rc == MC_E_BUSY ? 504 : 502);
    else
        finish(p);
    maybe_free(p);
}

static const mc_upstream_cbs pass_cbs = {on_up_headers, on_up_body, on_up_done};

/* ---------- the request ---------- */

static int in_connection(const char *connection, const char *name)
{
    size_t nl = strlen(name);
    for (const char *s = connection; s && *s;) {
        while (*s == ' ' || *s == ',' || *s == '\t')
            s++;
        if (strncasecmp(s, name, nl) == 0 && (s[nl] == ',' || s[nl] == ' ' || !s[nl]))
            return 1;
        while (*s && *s != ',')
            s++;
    }
    return 0;
}

/* Viewer fields that do not go upstream as they are: hop-by-hop (RFC 9110
 * 7.6.1), framing (curl sets it for the body it sends), what the edge adds
 * itself, and to a signed origin the viewer's own credentials. */
static int not_forwarded(const char *name, const char *connection, int signing)
{
    static const char *const no[] = {"host", "connection", "keep-alive", "proxy-connection", "te", "trailer",
                                     "transfer-encoding", "upgrade", "proxy-authorization", "content-length",
                                     "expect", "via", "cdn-loop", NULL};
    static const char *const sig[] = {"authorization", "x-amz-date", "x-amz-content-sha256",
                                      "x-amz-security-token", NULL};
    for (int i = 0; no[i]; i++)
        if (strcasecmp(name, no[i]) == 0)
            return 1;
    for (int i = 0; signing && sig[i]; i++)
        if (strcasecmp(name, sig[i]) == 0)
            return 1;
    return in_connection(connection, name);
}

void mc_pass_handle(mc_http_conn *c, mc_http_req *req, mc_worker *w, const char *keystr,
                    const char *upstream_path)
{
    const mc_edge_config *cfg = &w->snap->cfg;   /* adopted by lookup for this request */
    if (req->has_body && !req->body) {
        /* edge.max_request_body = 0: bodies are not read, so none is passed on */
        mc_stats_request(MC_RESULT_ERROR, 413);
        mc_http_respond(c, 413, NULL, "Cache-Control: no-store\r\n", "text/plain; charset=utf-8",
                        "request bodies are not accepted here\n", 37);
        return;
    }
    mc_pass *p = calloc(1, sizeof *p);
    if (!p || !(p->keystr = strdup(keystr))) {
        free(p);
        mc_stats_request(MC_RESULT_ERROR, 503);
        mc_http_respond(c, 503, NULL, "Cache-Control: no-store\r\n", "text/plain", "out of memory\n", 14);
        return;
    }
    p->magic = MC_PASS_MAGIC;
    p->w = w;
    p->snap = mc_snap_ref(w->snap);
    p->conn = c;
    p->req = req;
    p->length = -1;
    p->up_ms = -1;
    p->fwd = mc_pass_method_cacheable(req->method) ? "bypass" : "method";
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
    const char *connection = mc_http_req_header(req, "Connection");
    const char *via = mc_http_req_header(req, "Via"), *loop = mc_http_req_header(req, "CDN-Loop");
    char *lines[MC_HTTP_MAX_HEADERS + 3];
    int n = 0;
    mc_buf b = MC_BUF_INIT;
    mc_buf_printf(&b, "Via: %s%s1.1 meshcdn-%s", via ? via : "", via ? ", " : "", cfg->node_id);
    lines[n++] = mc_buf_steal(&b);
    mc_buf_printf(&b, "CDN-Loop: %s%smeshcdn-%s", loop ? loop : "", loop ? ", " : "", cfg->node_id);
    lines[n++] = mc_buf_steal(&b);
    for (int i = 0; i < req->nheaders; i++) {
        if (not_forwarded(req->headers[i].name, connection, cfg->origin_sign))
            continue;
        mc_buf_printf(&b, "%s: %s", req->headers[i].name, req->headers[i].value);
        lines[n++] = mc_buf_steal(&b);
    }
    lines[n] = NULL;
    int nomem = 0;
    for (int i = 0; i < n; i++)
        nomem |= lines[i] == NULL;
    mc_upstream_req rq = {req->method, upstream_path, req->query, (const char *const *)lines,
                          req->body, req->body_len, req->body != NULL};
    p->xfer = nomem ? NULL : mc_upstream_send(w->upstream, p->snap, &rq, &pass_cbs, p);
    for (int i = 0; i < n; i++)
        free(lines[i]);
    if (!p->xfer) {
        fail(p, 502);
        pass_free(p);
        return;
    }
    mc_http_owner o = {on_drain, on_close, p};
    mc_http_set_owner(c, &o);
}
