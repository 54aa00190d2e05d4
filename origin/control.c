/* control.c — see control.h. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "origin/control.h"
#include "origin/guard.h"

#define MC_CONTROL_MAGIC 0x4354524cu
#define CHECK(c) assert((c) != NULL && (c)->magic == MC_CONTROL_MAGIC)

typedef struct route {
    char *path;
    size_t len;
    bool prefix;
    unsigned methods;
    mc_control_handler fn;
    void *ud;
} route;

struct mc_control {
    uint32_t magic;
    struct evhttp *http;          /* borrowed */
    mc_control_metrics *metrics;  /* borrowed */
    route *routes;
    size_t nroutes;
    struct { mc_control_render_fn fn; void *ud; } renderers[MC_CONTROL_MAX_RENDERERS];
    size_t nrenderers;
};

static const char *const method_labels[MC_CTL_METHODS] = {
    "GET", "HEAD", "PUT", "DELETE", "POST", "OTHER",
};
static const char *const reason_labels[MC_CTL_AUTH_REASONS] = {
    "missing", "malformed", "unknown_key", "mismatch", "skew", "expired", "other",
};

/* ---- counters ------------------------------------------------------------- */

void mc_control_count_request(mc_control_metrics *m, const char *method, int status,
                              uint64_t bytes)
{
    int mi = MC_CTL_OTHER;
    for (int i = 0; i < MC_CTL_OTHER; i++)
        if (strcmp(method, method_labels[i]) == 0)
            mi = i;
    if (status < MC_CTL_STATUS_MIN || status > MC_CTL_STATUS_MAX)
        status = 500;
    mc_counter_add(&m->requests[mi][status - MC_CTL_STATUS_MIN], 1);
    mc_counter_add(&m->bytes_sent, bytes);
}

void mc_control_count_auth_failure(mc_control_metrics *m, const char *reason)
{
    int ri = MC_CTL_AUTH_OTHER;
    for (int i = 0; i < MC_CTL_AUTH_OTHER; i++)
        if (strcmp(reason, reason_labels[i]) == 0)
            ri = i;
    mc_counter_add(&m->auth_failures[ri], 1);
}

int mc_control_render_metrics(mc_control_metrics *m, mc_buf *out)
{
    char labels[96];
    int rc = mc_metrics_header(out, "meshcdn_origin_requests_total", "counter",
                               "S3 requests answered, by method and status code.");
    for (int mi = 0; mi < MC_CTL_METHODS && rc == 0; mi++)
        for (int s = MC_CTL_STATUS_MIN; s <= MC_CTL_STATUS_MAX && rc == 0; s++) {
            uint64_t v = mc_counter_get(&m->requests[mi][s - MC_CTL_STATUS_MIN]);
            if (v == 0)
                continue;
            snprintf(labels, sizeof labels, "method=\"%s\",code=\"%d\"", method_labels[mi], s);
            rc = mc_metrics_value(out, "meshcdn_origin_requests_total", labels, (double)v);
        }
    if (rc == 0)
        rc = mc_metrics_header(out, "meshcdn_origin_bytes_sent_total", "counter",
                               "Response body bytes queued for sending on the S3 listener.");
    if (rc == 0)
        rc = mc_metrics_value(out, "meshcdn_origin_bytes_sent_total", NULL,
                              (double)mc_counter_get(&m->bytes_sent));
    if (rc == 0)
        rc = mc_metrics_header(out, "meshcdn_origin_auth_failures_total", "counter",
                               "Requests refused by SigV4 verification, by reason.");
    for (int ri = 0; ri < MC_CTL_AUTH_REASONS && rc == 0; ri++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", reason_labels[ri]);
        rc = mc_metrics_value(out, "meshcdn_origin_auth_failures_total", labels,
                              (double)mc_counter_get(&m->auth_failures[ri]));
    }
    return rc;
}

/* ---- routes --------------------------------------------------------------- */

static void reply_text(struct evhttp_request *req, int status, const char *reason,
                       const char *ctype, const char *text, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    if (b && len)
        evbuffer_add(b, text, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, status, reason, b);
    if (b)
        evbuffer_free(b);
}

static void on_healthz(struct evhttp_request *req, void *ud)
{
    (void)ud;
    reply_text(req, 200, "OK", "text/plain; charset=utf-8", "ok\n", 3);
}

static void on_metrics(struct evhttp_request *req, void *ud)
{
    mc_control *c = ud;
    mc_buf out = MC_BUF_INIT;
    int rc = mc_control_render_metrics(c->metrics, &out);
    for (size_t i = 0; i < c->nrenderers && rc == 0; i++)
        rc = c->renderers[i].fn(c->renderers[i].ud, &out);
    if (rc < 0)
        reply_text(req, 500, "Internal Server Error", "text/plain; charset=utf-8",
                   "out of memory\n", 14);
    else
        reply_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    mc_buf_free(&out);
}

static bool route_matches(const route *r, const char *path, size_t plen)
{
    if (r->prefix)
        return plen >= r->len && memcmp(path, r->path, r->len) == 0;
    return plen == r->len && memcmp(path, r->path, plen) == 0;
}

static void allow_header(struct evhttp_request *req, unsigned methods)
{
    static const struct { unsigned bit; const char *name; } names[] = {
        {EVHTTP_REQ_GET, "GET"}, {EVHTTP_REQ_HEAD, "HEAD"}, {EVHTTP_REQ_POST, "POST"},
        {EVHTTP_REQ_PUT, "PUT"}, {EVHTTP_REQ_DELETE, "DELETE"},
    };
    char allow[64] = "";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (methods & names[i].bit) {
            if (allow[0])
                strcat(allow, ", ");
            strcat(allow, names[i].name);
        }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
}

static void on_request(struct evhttp_request *req, void *ud)
{
    mc_control *c = ud;
    CHECK(c);
    if (mc_guard_answer(req))
        return;
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = strcspn(uri, "?");
    unsigned method = (unsigned)evhttp_request_get_command(req), allowed = 0;
    for (size_t i = 0; i < c->nroutes; i++) {
        const route *r = &c->routes[i];
        if (!route_matches(r, uri, plen))
            continue;
        if (r->methods & method) {
            r->fn(req, r->ud);
            return;
        }
        allowed |= r->methods;
    }
    if (allowed) {
        allow_header(req, allowed);
        reply_text(req, 405, "Method Not Allowed", "text/plain; charset=utf-8",
                   "method not allowed\n", 19);
    } else {
        reply_text(req, 404, "Not Found", "text/plain; charset=utf-8", "not found\n", 10);
    }
    mc_log_debug("control", "path=%.*s status=%d", (int)(plen < 256 ? plen : 256), uri,
                 allowed ? 405 : 404);
}

int mc_control_route(mc_control *c, const char *path, bool prefix, unsigned methods,
                     mc_control_handler fn, void *ud)
{
    CHECK(c);
    if (!path || path[0] != '/' || !fn || !methods)
        return MC_E_INVAL;
    route *v = realloc(c->routes, (c->nroutes + 1) * sizeof *v);
    if (!v)
        return MC_E_NOMEM;
    c->routes = v;
    route r = {strdup(path), strlen(path), prefix, methods, fn, ud};
    if (!r.path)
        return MC_E_NOMEM;
    c->routes[c->nroutes++] = r;
    return 0;
}

int mc_control_add_metrics(mc_control *c, mc_control_render_fn fn, void *ud)
{
    CHECK(c);
    if (c->nrenderers == MC_CONTROL_MAX_RENDERERS)
        return MC_E_TOOBIG;
    c->renderers[c->nrenderers].fn = fn;
    c->renderers[c->nrenderers].ud = ud;
    c->nrenderers++;
    return 0;
}

int mc_control_new(mc_control **out, struct evhttp *http, mc_control_metrics *m)
{
    *out = NULL;
    mc_control *c = calloc(1, sizeof *c);
    if (!c)
        return MC_E_NOMEM;
    c->magic = MC_CONTROL_MAGIC;
    c->http = http;
    c->metrics = m;
    unsigned get = EVHTTP_REQ_GET | EVHTTP_REQ_HEAD;
    int rc = mc_control_route(c, "/healthz", false, get, on_healthz, c);
    if (rc == 0)
        rc = mc_control_route(c, "/metrics", false, get, on_metrics, c);
    if (rc < 0) {
        mc_control_free(c);
        return rc;
    }
    evhttp_set_gencb(http, on_request, c);
    *out = c;
    return 0;
}

void mc_control_free(mc_control *c)
{
    if (!c)
        return;
    CHECK(c);
    if (c->http)
        evhttp_set_gencb(c->http, NULL, NULL);
    for (size_t i = 0; i < c->nroutes; i++)
        free(c->routes[i].path);
    free(c->routes);
    c->magic = 0;
    free(c);
}
