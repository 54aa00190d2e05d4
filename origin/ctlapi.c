/* ctlapi.c — see ctlapi.h. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include "common/err.h"
#include "common/inval.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/path.h"
#include "origin/auth.h"
#include "origin/ctlapi.h"
#include "origin/query.h"

#define MC_CTLAPI_MAGIC 0x43544c41u
#define PARKED_MAGIC 0x5041524bu
#define CHECK(a) assert((a) != NULL && (a)->magic == MC_CTLAPI_MAGIC)
#define ALL_METHODS (~0u)
/* A parked poll's connection may stay quiet this much longer than its wait
 * before evhttp's own timeout may close it. */
#define PARK_TIMEOUT_SLACK_S 30

/* Labels of meshcdn_origin_control_auth_failures_total: mc_auth_reason()'s,
 * plus no_keys (that side has no key file configured). */
static const char *const refused_labels[] = {
    "missing", "malformed", "unknown_key", "mismatch", "skew", "expired", "other", "no_keys",
};
#define REFUSED_REASONS (sizeof refused_labels / sizeof refused_labels[0])

/* A GET /log held until an entry arrives or its timer fires. Owned by the
 * api's list; req stays evhttp's (we answer it) unless the client goes away
 * first. libevent 2.1 stops reading a connection while its request is
 * being handled, so it would notice a hang-up only when the answer fails,
 * up to 60 s later: `watch` polls the socket for EOF meanwhile
 * (on_parked_readable), and the close callback covers the connection
 * dying any other way. */
typedef struct parked {
    uint32_t magic;
    mc_ctlapi *api;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct event *timer;
    struct event *watch;          /* EV_READ on the connection's socket; NULL if none */
    uint64_t after;
    char node[MC_EDGE_NODE_MAX + 1];
    struct parked *prev, *next;
} parked;

struct mc_ctlapi {
    uint32_t magic;
    mc_ctlapi_config cfg;
    struct event_base *base;
    mc_invlog *log;               /* borrowed */
    mc_auth op_auth;
    mc_auth edge_auth;
    struct event *wake;           /* made active by an append: answers parked polls */
    struct event *remote;         /* the log's wake fd: appends by other origins */
    parked *parked;               /* list head */
    size_t nparked;
    uint64_t created_api;         /* invalidations created, by source */
    uint64_t created_write;
    uint64_t refused[REFUSED_REASONS];   /* authentication failures, by reason */
};

enum side { OPERATOR, EDGE };

/* ---- answers ----------------------------------------------------------------- */

static const char *reason_for(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* Send body (consumed) as the answer. */
static void reply_json(struct evhttp_request *req, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        status = 500;
        s = strdup("{\"error\":\"InternalError\",\"message\":\"out of memory\"}");
    }
    struct evbuffer *b = evbuffer_new();
    if (b && s) {
        evbuffer_add(b, s, strlen(s));
        evbuffer_add(b, "\n", 1);
    }
    free(s);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, status, reason_for(status), b);
    if (b)
        evbuffer_free(b);
}

static void reply_error(struct evhttp_request *req, int status, const char *code,
                        const char *message)
{
    reply_json(req, status, json_pack("{s:s, s:s}", "error", code, "message", message));
}

static void reply_errorf(struct evhttp_request *req, int status, const char *code,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reply_errorf(struct evhttp_request *req, int status, const char *code,
                         const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_error(req, status, code, msg);
}

static void reply_log_failure(struct evhttp_request *req, int rc)
{
    reply_errorf(req, 503, "Unavailable", "The invalidation log cannot be used right now (%s); "
                 "retry later.", mc_err_name(rc));
}

static void reply_ok(struct evhttp_request *req)
{
    reply_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static void iso8601(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        memset(&tm, 0, sizeof tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- authentication ---------------------------------------------------------- */

static bool method_is(struct evhttp_request *req, enum evhttp_cmd_type m, const char *allow)
{
    if (evhttp_request_get_command(req) == m)
        return true;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_error(req, 405, "MethodNotAllowed", "This method is not allowed here.");
    return false;
}

/* Verify req for side; answers it and returns false when refused. */
static bool authorize(mc_ctlapi *api, struct evhttp_request *req, enum side side)
{
    const char *uri = evhttp_request_get_uri(req);
    const char *q = strchr(uri, '?');
    char *raw_path = strndup(uri, q ? (size_t)(q - uri) : strlen(uri));
    if (!raw_path) {
        reply_error(req, 500, "InternalError", "out of memory");
        return false;
    }
    mc_auth_result ar;
    const mc_auth *a = side == EDGE ? &api->edge_auth : &api->op_auth;
    int rc = mc_auth_check(a, req, raw_path, q ? q + 1 : "", time(NULL), &ar);
    free(raw_path);
    if (rc == 0 && !api->log) {
        reply_error(req, 503, "Unavailable", "This origin runs without an invalidation log "
                    "(see its start-up log; set [control] db to a writable directory).");
        return false;
    }
    if (rc == 0)
        return true;
    const char *who = side == EDGE ? "edge_keys" : "operator_keys";
    const char *reason = rc != MC_E_AUTH_MISSING && !a->keys ? "no_keys" : mc_auth_reason(rc);
    for (size_t i = 0; i < REFUSED_REASONS; i++)
        if (strcmp(reason, refused_labels[i]) == 0)
            api->refused[i]++;
    if (rc == MC_E_AUTH_MISSING)
        reply_errorf(req, 401, "MissingAuthentication", "The request is not signed: sign it "
                     "with AWS SigV4, service \"meshcdn\", region \"%s\".", a->region);
    else if (!a->keys)
        reply_errorf(req, 403, "AccessDenied", "No [control] %s are configured on this "
                     "origin, so nobody may call this.", who);
    else if (rc == MC_E_AUTH_UNKNOWN_KEY)
        reply_errorf(req, 403, "InvalidAccessKeyId", "The access key \"%s\" is not in the "
                     "control API's %s.", ar.access_key, who);
    else if (rc == MC_E_AUTH_MISMATCH)
        reply_error(req, 403, "SignatureDoesNotMatch", ar.message);
    else if (rc == MC_E_AUTH_SKEW)
        reply_error(req, 403, "RequestTimeTooSkewed", ar.message);
    else if (rc == MC_E_NOMEM)
        reply_error(req, 500, "InternalError", "out of memory");
    else
        reply_error(req, 403, "AccessDenied", ar.message);
    int plen = (int)strcspn(uri, "?");   /* a presigned query holds a signature */
    mc_log_info("ctlapi", "msg=refused path=%.*s side=%s reason=%s key=%s", plen < 256 ? plen : 256,
                uri, side == EDGE ? "edge" : "operator", reason, ar.access_key);
    return false;
}

/* ---- bodies ------------------------------------------------------------------ */

/* A node id or region: printable ASCII without spaces, 1..max bytes. */
static bool token_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static int check_node(const char *node, const char *region, mc_inval_error *e)
{
    if (!node)
        return mc_inval_error_set(e, 400, "BadRequest",
                                  "\"node\" is required: the edge's node id.");
    if (!token_ok(node, MC_EDGE_NODE_MAX))
        return mc_inval_error_set(e, 400, "BadRequest",
                                  "\"node\" must be 1..%d printable characters "
                                  "without spaces.", MC_EDGE_NODE_MAX);
    if (region && region[0] && !token_ok(region, MC_EDGE_REGION_MAX))
        return mc_inval_error_set(e, 400, "BadRequest",
                                  "\"region\" must be 1..%d printable characters "
                                  "without spaces.", MC_EDGE_REGION_MAX);
    return 0;
}

static const char *body_of(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    *len = in ? evbuffer_get_length(in) : 0;
    return *len ? (const char *)evbuffer_pullup(in, -1) : "";
}

/* ---- rendering --------------------------------------------------------------- */

static char *id_of(uint64_t seq, char out[24])
{
    snprintf(out, 24, "I%" PRIu64, seq);
    return out;
}

static json_t *strings(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* The entry fields in the spec's order: id, seq, created, [status,] paths,
 * surrogate_keys, all, soft. status NULL leaves it out. */
static json_t *entry_json(const mc_inval *in, const char *status)
{
    char id[24], created[32];
    iso8601(in->created_s, created);
    json_t *o = json_pack("{s:s, s:I, s:s}", "id", id_of(in->seq, id), "seq",
                          (json_int_t)in->seq, "created", created);
    if (o && status)
        json_object_set_new(o, "status", json_string(status));
    if (o) {
        json_object_set_new(o, "paths", strings(in->paths, in->npaths));
        json_object_set_new(o, "surrogate_keys", strings(in->keys, in->nkeys));
        json_object_set_new(o, "all", json_boolean(in->all));
        json_object_set_new(o, "soft", json_boolean(in->soft));
    }
    return o;
}

static bool is_parked(const mc_ctlapi *api, const char *node)
{
    for (const parked *p = api->parked; p; p = p->next)
        if (strcmp(p->node, node) == 0)
            return true;
    return false;
}

/* The fleet as the log has it, with an edge that holds a parked poll seen now. */
static int load_edges(mc_ctlapi *api, int64_t now, mc_edge_list *out)
{
    int rc = mc_invlog_edges(api->log, out);
    for (size_t i = 0; rc == 0 && i < out->n; i++)
        if (is_parked(api, out->v[i].node))
            out->v[i].last_seen_s = now;
    return rc;
}

static const char *status_of(mc_ctlapi *api, const mc_edge_list *edges, uint64_t seq,
                             int64_t now)
{
    return mc_inval_completed(edges, seq, now, api->cfg.unreachable_after_s) ? "Completed"
                                                                             : "InProgress";
}

/* ---- operator routes --------------------------------------------------------- */

static int create(mc_ctlapi *api, mc_inval *in, bool from_write)
{
    int rc = mc_invlog_append(api->log, in);
    if (rc < 0)
        return rc;
    if (from_write)
        api->created_write++;
    else
        api->created_api++;
    mc_log_info("ctlapi", "msg=invalidation seq=%" PRIu64 " paths=%zu keys=%zu all=%d soft=%d "
                "source=%s first=%.256s", in->seq, in->npaths, in->nkeys, in->all, in->soft,
                from_write ? "write" : "api", in->npaths ? in->paths[0] : "-");
    return 0;
}

static void post_invalidation(mc_ctlapi *api, struct evhttp_request *req)
{
    size_t len;
    const char *body = body_of(req, &len);
    mc_inval in;
    mc_inval_error e;
    if (mc_inval_parse(body, len, &in, &e) < 0) {
        reply_error(req, e.status, e.code, e.message);
        return;
    }
    int rc = create(api, &in, false);
    if (rc < 0) {
        reply_log_failure(req, rc);
        mc_inval_free(&in);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    mc_edge_list edges = {NULL, 0};
    const char *status = load_edges(api, now, &edges) == 0 ? status_of(api, &edges, in.seq, now)
                                                           : "InProgress";
    char id[24], created[32], loc[48];
    iso8601(in.created_s, created);
    id_of(in.seq, id);
    snprintf(loc, sizeof loc, "/invalidations/%s", id);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
    reply_json(req, 201, json_pack("{s:s, s:I, s:s, s:s}", "id", id, "seq", (json_int_t)in.seq,
                                   "created", created, "status", status));
    mc_edge_list_free(&edges);
    mc_inval_free(&in);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || strlen(s) > 20)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

/* The query of req, decoded; answers 400 and returns false when it is not. */
static bool query_of(struct evhttp_request *req, mc_query *q)
{
    const char *qs = strchr(evhttp_request_get_uri(req), '?');
    int rc = mc_query_parse(q, qs ? qs + 1 : "");
    if (rc == 0)
        return true;
    if (rc == MC_E_NOMEM)
        reply_error(req, 500, "InternalError", "out of memory");
    else
        reply_error(req, 400, "BadRequest", "The query string cannot be decoded.");
    return false;
}

static void list_invalidations(mc_ctlapi *api, struct evhttp_request *req)
{
    mc_query q = MC_QUERY_INIT;
    if (!query_of(req, &q))
        return;
    uint64_t limit = MC_CTLAPI_DEFAULT_LIMIT;
    const char *ls = mc_query_get(&q, "limit");
    bool ok = !ls || (parse_u64(ls, &limit) && limit >= 1 && limit <= MC_CTLAPI_MAX_LIMIT);
    mc_query_free(&q);
    if (!ok) {
        reply_errorf(req, 400, "BadRequest", "\"limit\" must be a whole number from 1 to %d.",
                     MC_CTLAPI_MAX_LIMIT);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    mc_inval_list l = {NULL, 0};
    mc_edge_list edges = {NULL, 0};
    int rc = mc_invlog_read_recent(api->log, (size_t)limit, &l);
    if (rc == 0)
        rc = load_edges(api, now, &edges);
    if (rc < 0) {
        reply_log_failure(req, rc);
    } else {
        json_t *a = json_array();
        for (size_t i = 0; a && i < l.n; i++)
            json_array_append_new(a, entry_json(&l.v[i], status_of(api, &edges, l.v[i].seq, now)));
        reply_json(req, 200, json_pack("{s:o}", "invalidations", a));
    }
    mc_inval_list_free(&l);
    mc_edge_list_free(&edges);
}

static void on_invalidations(struct evhttp_request *req, void *ud)
{
    mc_ctlapi *api = ud;
    CHECK(api);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_POST) {
        method_is(req, EVHTTP_REQ_GET, "GET, POST");
        return;
    }
    if (!authorize(api, req, OPERATOR))
        return;
    if (m == EVHTTP_REQ_POST)
        post_invalidation(api, req);
    else
        list_invalidations(api, req);
}

static void on_invalidation(struct evhttp_request *req, void *ud)
{
    mc_ctlapi *api = ud;
    CHECK(api);
    if (!method_is(req, EVHTTP_REQ_GET, "GET") || !authorize(api, req, OPERATOR))
        return;
    const char *uri = evhttp_request_get_uri(req);
    const char *idp = uri + strlen("/invalidations/");
    size_t idlen = strcspn(idp, "?");
    char id[32];
    snprintf(id, sizeof id, "%.*s", (int)(idlen < 31 ? idlen : 31), idp);
    uint64_t seq = 0;
    const char *digits = id[0] == 'I' ? id + 1 : id;
    mc_inval in;
    int rc = idlen < sizeof id && parse_u64(digits, &seq) && seq > 0
                 ? mc_invlog_get(api->log, seq, &in) : MC_E_NOTFOUND;
    if (rc == MC_E_NOTFOUND) {
        reply_errorf(req, 404, "NoSuchInvalidation", "There is no invalidation \"%.32s\".",
                     id);
        return;
    }
    if (rc < 0) {
        reply_log_failure(req, rc);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    mc_edge_list edges = {NULL, 0};
    if ((rc = load_edges(api, now, &edges)) < 0) {
        reply_log_failure(req, rc);
        mc_inval_free(&in);
        return;
    }
    json_t *o = entry_json(&in, NULL);
    json_t *ea = json_array();
    for (size_t i = 0; o && ea && i < edges.n; i++) {
        const mc_edge *e = &edges.v[i];
        char seen[32];
        iso8601(e->last_seen_s, seen);
        mc_edge_state st = mc_edge_state_for(e, seq, now, api->cfg.unreachable_after_s);
        json_array_append_new(ea, json_pack("{s:s, s:s, s:s, s:I, s:s}", "node", e->node,
                                            "region", e->region, "state", mc_edge_state_name(st),
                                            "acked", (json_int_t)e->acked, "last_seen", seen));
    }
    if (o) {
        json_object_set_new(o, "status", json_string(status_of(api, &edges, seq, now)));
        json_object_set_new(o, "edges", ea);
    } else {
        json_decref(ea);
    }
    reply_json(req, 200, o);
    mc_edge_list_free(&edges);
    mc_inval_free(&in);
}

static void on_edges(struct evhttp_request *req, void *ud)
{
    mc_ctlapi *api = ud;
    CHECK(api);
    if (!method_is(req, EVHTTP_REQ_GET, "GET") || !authorize(api, req, OPERATOR))
        return;
    int64_t now = (int64_t)time(NULL);
    mc_edge_list edges = {NULL, 0};
    int rc = load_edges(api, now, &edges);
    if (rc < 0) {
        reply_log_failure(req, rc);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; a && i < edges.n; i++) {
        const mc_edge *e = &edges.v[i];
        char seen[32];
        iso8601(e->last_seen_s, seen);
        bool gone = mc_edge_unreachable(e, now, api->cfg.unreachable_after_s);
        json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:s, s:s}", "node", e->node,
                                           "region", e->region, "acked", (json_int_t)e->acked,
                                           "last_seen", seen, "state",
                                           gone ? "unreachable" : "live"));
    }
    reply_json(req, 200, json_pack("{s:o}", "edges", a));
    mc_edge_list_free(&edges);
}

/* ---- edge routes: the log and its long-poll ---------------------------------- */

/* Answer req with the entries after `after`. Returns how many were sent, or
 * a negative code (answered with 503). */
static int answer_log(mc_ctlapi *api, struct evhttp_request *req, uint64_t after)
{
    mc_inval_list l = {NULL, 0};
    uint64_t last = 0;
    int rc = mc_invlog_read_after(api->log, after, MC_INVLOG_MAX_READ, &l);
    if (rc == 0)
        rc = mc_invlog_last_seq(api->log, &last);
    if (rc < 0) {
        reply_log_failure(req, rc);
        mc_inval_list_free(&l);
        return rc;
    }
    json_t *a = json_array();
    for (size_t i = 0; a && i < l.n; i++)
        json_array_append_new(a, entry_json(&l.v[i], NULL));
    reply_json(req, 200, json_pack("{s:o, s:I}", "entries", a, "last", (json_int_t)last));
    int n = (int)l.n;
    mc_inval_list_free(&l);
    return n;
}

/* Unlink p and release what it owns; p->req is not touched. */
static void parked_drop(parked *p)
{
    assert(p && p->magic == PARKED_MAGIC);
    mc_ctlapi *api = p->api;
    if (p->prev)
        p->prev->next = p->next;
    else
        api->parked = p->next;
    if (p->next)
        p->next->prev = p->prev;
    api->nparked--;
    if (p->timer)
        event_free(p->timer);
    if (p->watch)
        event_free(p->watch);
    p->magic = 0;
    free(p);
}

/* Give the connection back to evhttp's normal handling before answering. */
static void parked_release_conn(parked *p)
{
    if (p->watch) {
        event_free(p->watch);
        p->watch = NULL;
    }
    if (p->conn) {
        evhttp_connection_set_closecb(p->conn, NULL, NULL);
        if (p->api->cfg.conn_timeout_s > 0)
            evhttp_connection_set_timeout(p->conn, (int)p->api->cfg.conn_timeout_s);
    }
}

static void on_parked_timeout(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    parked *p = ud;
    assert(p && p->magic == PARKED_MAGIC);
    parked_release_conn(p);
    answer_log(p->api, p->req, p->after);
    parked_drop(p);
}

/* The client went away while parked: evhttp has detached the request from
 * the dying connection (it is ours now, evhttp_connection_incoming_fail), or
 * it is about to free it with the connection (evhttp_free at shutdown). */
static void on_parked_close(struct evhttp_connection *conn, void *ud)
{
    (void)conn;
    parked *p = ud;
    assert(p && p->magic == PARKED_MAGIC);
    mc_log_debug("ctlapi", "msg=\"poll client went away\" node=%s", p->node);
    if (evhttp_request_get_connection(p->req) == NULL)
        evhttp_request_free(p->req);
    parked_drop(p);
}

static void on_parked_readable(evutil_socket_t fd, short what, void *ud)
{
    (void)what;
    parked *p = ud;
    assert(p && p->magic == PARKED_MAGIC);
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n > 0) {   /* a pipelined request: leave it to evhttp, stop watching */
        event_del(p->watch);
        return;
    }
    /* EOF or a reset: nobody will read the answer. Freeing the connection
     * frees the request evhttp still holds in its queue. */
    struct evhttp_connection *conn = p->conn;
    mc_log_debug("ctlapi", "msg=\"poll client went away\" node=%s", p->node);
    evhttp_connection_set_closecb(conn, NULL, NULL);
    parked_drop(p);
    evhttp_connection_free(conn);
}

static void on_wake(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    mc_ctlapi *api = ud;
    CHECK(api);
    uint64_t last = 0;
    if (mc_invlog_last_seq(api->log, &last) < 0)
        return;   /* the timers still answer them */
    parked *next;
    for (parked *p = api->parked; p; p = next) {
        next = p->next;
        if (p->after >= last)
            continue;
        parked_release_conn(p);
        answer_log(api, p->req, p->after);
        parked_drop(p);
    }
}

static void on_append(void *ud, uint64_t last_seq)
{
    (void)last_seq;
    mc_ctlapi *api = ud;
    CHECK(api);
    if (api->parked)   /* answered from the loop, after the appender has answered */
        event_active(api->wake, 0, 0);
}

/* Another origin appended to the shared log (or the backend's watch
 * reconnected): the same path as a local append. */
static void on_remote(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    mc_ctlapi *api = ud;
    CHECK(api);
    mc_invlog_wake_drain(api->log);
    mc_invlog_notify(api->log, 0);
}

static int park(mc_ctlapi *api, struct evhttp_request *req, const char *node, uint64_t after,
                int wait_s)
{
    parked *p = calloc(1, sizeof *p);
    if (!p)
        return MC_E_NOMEM;
    p->magic = PARKED_MAGIC;
    p->api = api;
    p->req = req;
    p->after = after;
    p->conn = evhttp_request_get_connection(req);
    snprintf(p->node, sizeof p->node, "%s", node);
    p->timer = evtimer_new(api->base, on_parked_timeout, p);
    struct timeval tv = {wait_s, 0};
    if (!p->timer || !p->conn || evtimer_add(p->timer, &tv) < 0) {
        if (p->timer)
            event_free(p->timer);
        free(p);
        return MC_E_NOMEM;
    }
    p->next = api->parked;
    if (api->parked)
        api->parked->prev = p;
    api->parked = p;
    api->nparked++;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(p->conn);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0 && (p->watch = event_new(api->base, fd, EV_READ | EV_PERSIST,
                                         on_parked_readable, p)) != NULL)
        event_add(p->watch, NULL);
    evhttp_connection_set_timeout(p->conn, wait_s + PARK_TIMEOUT_SLACK_S);
    evhttp_connection_set_closecb(p->conn, on_parked_close, p);
    return 0;
}

static void on_log(struct evhttp_request *req, void *ud)
{
    mc_ctlapi *api = ud;
    CHECK(api);
    if (!method_is(req, EVHTTP_REQ_GET, "GET") || !authorize(api, req, EDGE))
        return;
    mc_query q = MC_QUERY_INIT;
    if (!query_of(req, &q))
        return;
    mc_inval_error e;
    char node[MC_EDGE_NODE_MAX + 1] = "", region[MC_EDGE_REGION_MAX + 1] = "";
    const char *n = mc_query_get(&q, "node"), *r = mc_query_get(&q, "region");
    const char *as = mc_query_get(&q, "after"), *ws = mc_query_get(&q, "wait");
    uint64_t after = 0, wait = 0;
    int rc = check_node(n, r, &e);
    if (rc == 0 && as && !parse_u64(as, &after))
        rc = mc_inval_error_set(&e, 400, "BadRequest",
                                "\"after\" must be a sequence number (0 or more).");
    if (rc == 0 && ws && !parse_u64(ws, &wait))
        rc = mc_inval_error_set(&e, 400, "BadRequest",
                                "\"wait\" must be a number of seconds (0 to %d).",
                                MC_CTLAPI_MAX_WAIT_S);
    if (rc == 0) {
        snprintf(node, sizeof node, "%s", n);
        snprintf(region, sizeof region, "%s", r ? r : "");
    }
    mc_query_free(&q);
    if (rc < 0) {
        reply_error(req, e.status, e.code, e.message);
        return;
    }
    if (wait > MC_CTLAPI_MAX_WAIT_S)
        wait = MC_CTLAPI_MAX_WAIT_S;
    int64_t now = (int64_t)time(NULL);
    uint64_t last = 0;
    if ((rc = mc_invlog_heartbeat(api->log, node, region, now)) == 0)
        rc = mc_invlog_last_seq(api->log, &last);
    /* The cursor is what the edge has applied. One beyond the log is from
     * another log (the db was replaced): it proves nothing here. */
    if (rc == 0 && after > 0 && after <= last)
        rc = mc_invlog_ack(api->log, node, after, now);
    if (rc < 0) {
        reply_log_failure(req, rc);
        return;
    }
    if (after >= last && wait > 0) {
        if (park(api, req, node, after, (int)wait) == 0)
            return;
    }
    answer_log(api, req, after);
}

/* The prelude of an edge's POST: method, edge signature, and a JSON object
 * with only the allowed names. Returns the object (the caller decrefs) or
 * NULL when the request was answered here. */
static json_t *edge_post_object(mc_ctlapi *api, struct evhttp_request *req, const char *const *allowed,
                                const char *expected)
{
    CHECK(api);
    if (!method_is(req, EVHTTP_REQ_POST, "POST") || !authorize(api, req, EDGE))
        return NULL;
    size_t len;
    const char *body = body_of(req, &len);
    mc_inval_error e;
    json_t *o;
    if (mc_inval_load_object(body, len, allowed, expected, &o, &e) < 0) {
        reply_error(req, e.status, e.code, e.message);
        return NULL;
    }
    return o;
}

static void on_ack(struct evhttp_request *req, void *ud)
{
    static const char *const allowed[] = {"node", "seq", NULL};
    mc_ctlapi *api = ud;
    json_t *o = edge_post_object(api, req, allowed, "node, seq");
    if (!o)
        return;
    mc_inval_error e;
    json_t *s = json_object_get(o, "seq");
    int rc = check_node(json_string_value(json_object_get(o, "node")), NULL, &e);
    if (rc == 0 && (!json_is_integer(s) || json_integer_value(s) < 0))
        rc = mc_inval_error_set(&e, 400, "BadRequest",
                                "\"seq\" is required: the highest sequence number "
                                "applied (0 or more).");
    uint64_t seq = rc == 0 ? (uint64_t)json_integer_value(s) : 0, last = 0;
    char node[MC_EDGE_NODE_MAX + 1] = "";
    if (rc == 0)
        snprintf(node, sizeof node, "%s", json_string_value(json_object_get(o, "node")));
    json_decref(o);
    if (rc == 0 && (rc = mc_invlog_last_seq(api->log, &last)) < 0) {
        reply_log_failure(req, rc);
        return;
    }
    if (rc == 0 && seq > last)
        rc = mc_inval_error_set(&e, 400, "BadRequest",
                                "\"seq\" %" PRIu64 " is beyond the last entry of the "
                                "log (%" PRIu64 ").", seq, last);
    if (rc < 0) {
        reply_error(req, e.status, e.code, e.message);
        return;
    }
    if ((rc = mc_invlog_ack(api->log, node, seq, (int64_t)time(NULL))) < 0) {
        reply_log_failure(req, rc);
        return;
    }
    reply_ok(req);
}

static void on_heartbeat(struct evhttp_request *req, void *ud)
{
    static const char *const allowed[] = {"node", "region", NULL};
    mc_ctlapi *api = ud;
    json_t *o = edge_post_object(api, req, allowed, "node, region");
    if (!o)
        return;
    mc_inval_error e;
    json_t *r = json_object_get(o, "region");
    int rc = r && !json_is_string(r) && !json_is_null(r)
                 ? mc_inval_error_set(&e, 400, "BadRequest",
                                      "\"region\" must be a string.")
                                      : check_node(json_string_value(json_object_get(o, "node")),
                                      json_string_value(r), &e);
    if (rc == 0)
        rc = mc_invlog_heartbeat(api->log, json_string_value(json_object_get(o, "node")),
                                 json_string_value(r), (int64_t)time(NULL));
    json_decref(o);
    if (rc == MC_E_INVAL)
        reply_error(req, e.status, e.code, e.message);
    else if (rc < 0)
        reply_log_failure(req, rc);
    else
        reply_ok(req);
}

/* ---- metrics ----------------------------------------------------------------- */

static int render_metrics(void *ud, mc_buf *out)
{
    mc_ctlapi *api = ud;
    CHECK(api);
    int64_t now = (int64_t)time(NULL);
    uint64_t last = 0;
    size_t live = 0, gone = 0;
    mc_edge_list edges = {NULL, 0};
    if (api->log && mc_invlog_last_seq(api->log, &last) == 0 && load_edges(api, now, &edges) == 0)
        for (size_t i = 0; i < edges.n; i++) {
            if (mc_edge_unreachable(&edges.v[i], now, api->cfg.unreachable_after_s))
                gone++;
            else
                live++;
        }
    mc_edge_list_free(&edges);
    const char *n1 = "meshcdn_origin_invalidations_total", *n2 = "meshcdn_origin_control_edges",
               *n3 = "meshcdn_origin_control_log_last_seq",
               *n4 = "meshcdn_origin_control_polls_parked";
    int rc = mc_metrics_header(out, n1, "counter", "Invalidations appended to the fleet log, "
                               "by source (api: POST /invalidations, write: a PUT/DELETE).");
    if (rc == 0)
        rc = mc_metrics_value(out, n1, "source=\"api\"", (double)api->created_api);
    if (rc == 0)
        rc = mc_metrics_value(out, n1, "source=\"write\"", (double)api->created_write);
    if (rc == 0)
        rc = mc_metrics_header(out, n2, "gauge", "Registered edges, by state (unreachable: "
                               "silent longer than unreachable_after).");
    if (rc == 0)
        rc = mc_metrics_value(out, n2, "state=\"live\"", (double)live);
    if (rc == 0)
        rc = mc_metrics_value(out, n2, "state=\"unreachable\"", (double)gone);
    if (rc == 0)
        rc = mc_metrics_header(out, n3, "gauge", "Sequence number of the newest log entry.");
    if (rc == 0)
        rc = mc_metrics_value(out, n3, NULL, (double)last);
    if (rc == 0)
        rc = mc_metrics_header(out, n4, "gauge", "GET /log long-polls waiting for an entry.");
    if (rc == 0)
        rc = mc_metrics_value(out, n4, NULL, (double)api->nparked);
    const char *n5 = "meshcdn_origin_control_auth_failures_total";
    if (rc == 0)
        rc = mc_metrics_header(out, n5, "counter", "Control API requests refused by SigV4 "
                               "verification, by reason (no_keys: no key file for that side).");
    for (size_t i = 0; i < REFUSED_REASONS && rc == 0; i++) {
        char labels[48];
        snprintf(labels, sizeof labels, "reason=\"%s\"", refused_labels[i]);
        rc = mc_metrics_value(out, n5, labels, (double)api->refused[i]);
    }
    return rc;
}

/* ---- life cycle -------------------------------------------------------------- */

int mc_ctlapi_invalidate_path(mc_ctlapi *api, const char *viewer_path)
{
    CHECK(api);
    if (!api->log)
        return MC_E_STATE;
    mc_inval in;
    memset(&in, 0, sizeof in);
    int rc = mc_inval_add_path(&in, viewer_path);
    if (rc == 0)
        rc = create(api, &in, true);
    mc_inval_free(&in);
    return rc;
}

int mc_ctlapi_viewer_path(const char *s3_raw_path, mc_buf *out)
{
    mc_buf norm = MC_BUF_INIT;
    int rc = mc_path_normalize(s3_raw_path, strlen(s3_raw_path), &norm);
    if (rc == 0) {
        const char *slash = norm.len > 1 ? strchr(norm.data + 1, '/') : NULL;
        if (!slash || !slash[1])
            rc = MC_E_INVAL;
        else if (strlen(slash) > MC_INVAL_MAX_STRING)
            rc = MC_E_TOOBIG;
        else
            rc = mc_buf_puts(out, slash);
    }
    mc_buf_free(&norm);
    return rc;
}

int mc_ctlapi_new(mc_ctlapi **out, struct event_base *base, mc_control *ctl, mc_invlog *log,
                  const mc_ctlapi_config *cfg)
{
    *out = NULL;
    mc_ctlapi *api = calloc(1, sizeof *api);
    if (!api)
        return MC_E_NOMEM;
    api->magic = MC_CTLAPI_MAGIC;
    api->cfg = *cfg;
    api->base = base;
    api->log = log;
    mc_auth *auths[2] = {&api->op_auth, &api->edge_auth};
    const mc_keys *keys[2] = {cfg->operator_keys, cfg->edge_keys};
    for (int i = 0; i < 2; i++) {
        mc_auth_init(auths[i], keys[i], false);
        auths[i]->service = "meshcdn";
        auths[i]->region = cfg->region;
        auths[i]->max_skew_s = cfg->max_skew_s;
        auths[i]->max_body_bytes = cfg->max_body_bytes;
    }
    api->wake = event_new(base, -1, 0, on_wake, api);
    int rc = api->wake ? 0 : MC_E_NOMEM;
    static const struct {
        const char *path;
        bool prefix;
        mc_control_handler fn;
    } routes[] = {
        {"/invalidations", false, on_invalidations},
        {"/invalidations/", true, on_invalidation},
        {"/edges", false, on_edges},
        {"/log", false, on_log},
        {"/ack", false, on_ack},
        {"/heartbeat", false, on_heartbeat},
    };
    for (size_t i = 0; rc == 0 && i < sizeof routes / sizeof routes[0]; i++)
        rc = mc_control_route(ctl, routes[i].path, routes[i].prefix, ALL_METHODS, routes[i].fn,
                              api);
    if (rc == 0)
        rc = mc_control_add_metrics(ctl, render_metrics, api);
    if (rc < 0) {
        mc_ctlapi_free(api);
        return rc;
    }
    int wfd = log ? mc_invlog_wake_fd(log) : -1;
    if (rc == 0 && wfd >= 0 &&
        (!(api->remote = event_new(base, wfd, EV_READ | EV_PERSIST, on_remote, api)) ||
         event_add(api->remote, NULL) < 0))
        rc = MC_E_NOMEM;
    if (rc < 0) {
        mc_ctlapi_free(api);
        return rc;
    }
    if (log)
        mc_invlog_set_notify(log, on_append, api);
    *out = api;
    return 0;
}

void mc_ctlapi_free(mc_ctlapi *api)
{
    if (!api)
        return;
    CHECK(api);
    while (api->parked) {
        parked *p = api->parked;
        parked_release_conn(p);
        reply_error(p->req, 503, "Unavailable", "The control API is shutting down.");
        parked_drop(p);
    }
    if (api->log)
        mc_invlog_set_notify(api->log, NULL, NULL);
    if (api->wake)
        event_free(api->wake);
    if (api->remote)
        event_free(api->remote);
    api->magic = 0;
    free(api);
}
