/* purge.c — see purge.h. */
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/inval.h"
#include "common/invspec.h"
#include "common/log.h"
#include "common/sigv4.h"
#include "edge/purge.h"

void mc_purge_json_error(mc_http_conn *c, int status, const char *code, const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "error", code, "message", msg);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    mc_buf b = MC_BUF_INIT;
    mc_buf_printf(&b, "%s\n", text ? text : "{\"error\":\"InternalError\"}");
    free(text);
    mc_http_respond(c, status, NULL, "Cache-Control: no-store\r\n", "application/json", b.data, b.len);
    mc_buf_free(&b);
}

int mc_purge_authorize(mc_http_conn *c, const mc_http_req *req, const mc_keys *keys)
{
    if (!keys || keys->n == 0) {
        mc_purge_json_error(c, 403, "AccessDenied",
                            "no operator keys are configured on this node ([admin] keys = FILE)");
        return MC_E_AUTH_UNKNOWN_KEY;
    }
    mc_sigv4_header h[MC_HTTP_MAX_HEADERS];
    for (int i = 0; i < req->nheaders; i++) {
        h[i].name = req->headers[i].name;
        h[i].value = req->headers[i].value;
    }
    mc_sigv4_request sr = {req->method, req->path, req->query ? req->query : "", h, (size_t)req->nheaders,
                           req->body, req->body_len, NULL};
    mc_sigv4_verify_opts o = {"meshcdn", NULL, 1, time(NULL), 900, mc_keys_secret_fn, (void *)keys};
    mc_sigv4_verdict v;
    memset(&v, 0, sizeof v);
    int rc = mc_sigv4_verify(&sr, &o, &v);
    if (rc == 0)
        return 0;
    char msg[400];
    snprintf(msg, sizeof msg, "%s", v.detail[0] ? v.detail : "request not authorized");
    switch (rc) {
    case MC_E_AUTH_MISSING:
        mc_purge_json_error(c, 401, "MissingAuthentication",
                            "sign the request with SigV4 (service \"meshcdn\") using an operator key");
        break;
    case MC_E_AUTH_UNKNOWN_KEY:
        mc_purge_json_error(c, 403, "InvalidAccessKeyId", msg);
        break;
    case MC_E_AUTH_SKEW:
        mc_purge_json_error(c, 403, "RequestTimeTooSkewed", msg);
        break;
    case MC_E_AUTH_EXPIRED:
        mc_purge_json_error(c, 403, "AccessDenied", msg);
        break;
    case MC_E_AUTH_MALFORMED:
        mc_purge_json_error(c, 400, "AuthorizationHeaderMalformed", msg);
        break;
    default:
        mc_purge_json_error(c, 403, "SignatureDoesNotMatch", msg);
        break;
    }
    mc_log_warn("admin", "msg=\"request refused\" peer=%s key=\"%s\" why=\"%s\"", mc_http_peer(c),
                v.access_key, msg);
    return rc;
}

/* One purge between the request and the store's answer. The connection and
 * the writer thread both hold it: whichever is last frees it. */
typedef struct pending_purge {
    mc_http_conn *conn;         /* NULL once the client left */
    struct event *done_ev;      /* made active from the writer thread */
    int ok, soft;
    uint64_t affected;
    struct timespec t0;
    char summary[128];
} pending_purge;

static void pending_free(pending_purge *p)
{
    event_free(p->done_ev);
    free(p);
}

static void on_conn_close(void *arg)
{
    pending_purge *p = arg;
    p->conn = NULL;   /* the store still owes an answer: on_done frees */
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    pending_purge *p = arg;
    (void)fd, (void)what;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - p->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - p->t0.tv_nsec) / 1e6;
    mc_log_info("admin", "msg=\"purge\" %s soft=%d affected=%llu ok=%d ms=%.1f", p->summary, p->soft,
                (unsigned long long)p->affected, p->ok, ms);
    if (p->conn) {
        if (p->ok) {
            char body[96];
            int n = snprintf(body, sizeof body, "{\"purged\":%llu,\"soft\":%s}\n", (unsigned long long)p->affected,
                             p->soft ? "true" : "false");
            mc_http_respond(p->conn, 200, NULL, "Cache-Control: no-store\r\n", "application/json", body, (size_t)n);
        } else {
            mc_purge_json_error(p->conn, 500, "PurgeFailed", "the store could not apply the purge; see the node's log");
        }
    }
    pending_free(p);
}

/* Writer thread: record the result and wake the admin loop. */
static void on_store_done(void *arg, int ok, uint64_t affected)
{
    pending_purge *p = arg;
    p->ok = ok;
    p->affected = affected;
    event_active(p->done_ev, 0, 0);
}

void mc_purge_handle(mc_http_conn *c, mc_http_req *req, mc_node *node, struct event_base *base)
{
    if (strcmp(req->method, "POST") != 0) {
        mc_http_respond(c, 405, NULL, "Allow: POST\r\n", "text/plain", "method not allowed\n", 19);
        return;
    }
    if (mc_purge_authorize(c, req, &node->snap->cfg.admin_keys) != 0)
        return;
    mc_invspec spec;
    mc_inval_error e = {400, "BadRequest", "bad purge request"};
    if (mc_invspec_parse((const char *)req->body, req->body_len, &spec, &e) < 0) {
        mc_purge_json_error(c, e.status, e.code, e.message);
        return;
    }
    pending_purge *p = calloc(1, sizeof *p);
    if (!p || !(p->done_ev = event_new(base, -1, 0, on_done, p))) {
        free(p);
        mc_invspec_free(&spec);
        mc_purge_json_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    p->conn = c;
    p->soft = spec.soft;
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
    snprintf(p->summary, sizeof p->summary, "paths=%zu prefixes=%zu keys=%zu all=%d", spec.npaths,
             spec.nprefixes, spec.ntags, spec.all);
    mc_http_owner o = {NULL, on_conn_close, p};
    mc_http_set_owner(c, &o);
    int rc = mc_store_purge(node->store, &spec, NULL, on_store_done, p);
    mc_invspec_free(&spec);
    if (rc < 0) {
        p->ok = 0;
        event_active(p->done_ev, 0, 0);
    }
}
