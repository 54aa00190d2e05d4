/* main.c — meshcdn-origin: configuration, start-up, the S3 request entry
 * point (auth -> method -> objects), access log, and clean shutdown.
 *
 * SIGHUP reloads the key files (origin.keys, control.operator_keys,
 * control.edge_keys) and the log level from the same --config file and
 * flags; a file that does not load keeps every key in use (logged), and
 * other changed settings are logged as needing a restart.
 *
 * Shutdown: SIGTERM stops accepting S3 connections and lets the responses
 * already being written finish, then exits: at once when none are, else when
 * the last is written or after DRAIN_TIMEOUT_S (a client that went away
 * mid-response is never counted down, so it can hold the stop that long). An
 * edge or tier fetching from it then never gets a body cut short by a planned
 * stop. SIGINT, or a second signal, stops at once.
 * Exit status: 0 after SIGINT/SIGTERM (everything freed, so a leak checker
 * sees nothing), 1 when start-up fails (keys, root, a port in use), 2 for a
 * usage or config error.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <event2/event.h>
#include <event2/http.h>
#include "common/config.h"
#include "common/err.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/path.h"
#include "origin/auth.h"
#include "origin/control.h"
#include "origin/ctlapi.h"
#include "origin/guard.h"
#include "origin/invlog.h"
#include "origin/list.h"
#include "origin/multipart.h"
#include "origin/objects.h"
#include "origin/query.h"
#include "origin/s3xml.h"
#include "origin/upload.h"

#ifndef MESHCDN_VERSION
#define MESHCDN_VERSION "0.0.0"
#endif

#define PROG "meshcdn-origin"
#define SYNOPSIS "[--config FILE] [--listen ADDR:PORT] [--control ADDR:PORT] [--root DIR]\n" \
                 "               [--keys FILE] [--anonymous-read]"
#define ORIGIN_MAGIC 0x4f524947u
/* Bodies are read whole before the handler runs (upload.h says why); the
 * control listener and non-PUT S3 requests (CompleteMultipartUpload XML)
 * need little, PUT bodies are bounded by origin.max_put_size. */
#define MAX_BODY_BYTES (1u << 20)
/* An invalidation may carry 3000 paths of up to 1 KiB (ctlapi.h). */
#define MAX_CONTROL_BODY_BYTES (4u << 20)
#define MAX_HEADER_BYTES (64u << 10)

static const mc_cfg_opt schema[] = {
    {"origin", "listen", "listen", MC_CFG_ADDR, "127.0.0.1:9000",
     "S3 object listener", NULL, 0, 0},
    {"control", "listen", "control", MC_CFG_ADDR, "127.0.0.1:9001",
     "control listener: /healthz, /metrics, the fleet invalidation API", NULL, 0, 0},
    {"control", "operator_keys", NULL, MC_CFG_STR, NULL,
     "key file of who may create and read invalidations (unset: nobody)", NULL, 0, 0},
    {"control", "edge_keys", NULL, MC_CFG_STR, NULL,
     "key file of the edges that follow the log (default: origin.keys)", NULL, 0, 0},
    {"control", "db", NULL, MC_CFG_STR, NULL,
     "directory of the invalidation log (LMDB; default ROOT/.meshcdn-control)", NULL, 0, 0},
    {"control", "backend", NULL, MC_CFG_ENUM, "lmdb",
     "where the invalidation log and membership live: lmdb (embedded, db) or etcd "
     "(endpoints; shared by several origins)", "lmdb|etcd", 0, 0},
    {"control", "endpoints", NULL, MC_CFG_STR, NULL,
     "etcd client URLs, comma-separated (backend = etcd)", NULL, 0, 0},
    {"control", "cacert", NULL, MC_CFG_STR, NULL,
     "PEM CA bundle that signed the etcd members' certificates (https endpoints)", NULL, 0, 0},
    {"control", "cert", NULL, MC_CFG_STR, NULL,
     "PEM client certificate for etcd (with key)", NULL, 0, 0},
    {"control", "key", NULL, MC_CFG_STR, NULL,
     "PEM private key of cert", NULL, 0, 0},
    {"control", "prefix", NULL, MC_CFG_STR, "/meshcdn/",
     "etcd key prefix of this fleet's log", NULL, 0, 0},
    {"control", "keep", NULL, MC_CFG_INT, "1000",
     "etcd: log entries kept after every registered edge acknowledged them", NULL, 0,
     1000000000},
    {"control", "etcd_timeout", NULL, MC_CFG_DURATION, "2s",
     "etcd: one request's time limit (without quorum, calls fail after it: 503)", NULL, 0, 0},
    {"control", "unreachable_after", NULL, MC_CFG_DURATION, "30s",
     "an edge silent this long is unreachable (does not block completion)", NULL, 0, 0},
    {"control", "invalidate_on_write", NULL, MC_CFG_BOOL, "false",
     "a PUT, DELETE or completed multipart upload of /BUCKET/KEY invalidates /KEY on the "
     "fleet", NULL, 0, 0},
    {"origin", "root", "root", MC_CFG_STR, NULL,
     "directory served as /BUCKET/KEY from DIR/BUCKET/KEY (required)", NULL, 0, 0},
    {"origin", "keys", "keys", MC_CFG_STR, NULL,
     "key file: ACCESS_KEY_ID SECRET per line, mode 0600", NULL, 0, 0},
    {"origin", "anonymous_read", "anonymous-read", MC_CFG_BOOL, "false",
     "allow unsigned GET/HEAD (signed requests are still verified)", NULL, 0, 0},
    {"origin", "region", NULL, MC_CFG_STR, "us-east-1",
     "SigV4 region requests must be signed for", NULL, 0, 0},
    {"origin", "max_skew", NULL, MC_CFG_DURATION, "15m",
     "largest accepted x-amz-date distance from now", NULL, 0, 0},
    {"origin", "cache_control", NULL, MC_CFG_STR, "public, max-age=86400",
     "Cache-Control when no [cache-control] prefix matches", NULL, 0, 0},
    {"origin", "max_put_size", NULL, MC_CFG_SIZE, "64M",
     "largest PUT body (an object or one multipart part), held in memory while it "
     "arrives; more gets 413", NULL, 0, 0},
    {"origin", "max_object_size", NULL, MC_CFG_SIZE, "5G",
     "largest object, single PUT or assembled from parts (400 EntityTooLarge)", NULL, 0, 0},
    {"origin", "etag_md5_max", NULL, MC_CFG_SIZE, "256M",
     "files up to this size get S3's MD5 ETag; larger ones an ETag from mtime, size and inode "
     "(hashing gigabytes would stall the server)", NULL, 0, 0},
    {"origin", "etag_cache_entries", NULL, MC_CFG_INT, "4096",
     "ETags kept in memory (one MD5 per file version)", NULL, 16, 16777216},
    {"origin", "timeout", NULL, MC_CFG_DURATION, "60s",
     "connection read/write timeout", NULL, 0, 0},
    {"origin", "header_timeout", NULL, MC_CFG_DURATION, "10s",
     "a request head must be complete this long after its first byte, else 408 and close "
     "(both listeners; 0: no limit)", NULL, 0, 0},
    {"origin", "max_connections", NULL, MC_CFG_INT, "4096",
     "connections open at once, per listener (S3, control); more get 503 and are closed",
     NULL, 1, 10000000},
    {"origin", "max_connections_per_client", NULL, MC_CFG_INT, "0",
     "connections one client (an IPv4 address or an IPv6 /64) may hold open at once, per "
     "listener; more get 503 and are closed; 0: no cap", NULL, 0, 10000000},
    {"origin", "log_level", NULL, MC_CFG_ENUM, "info",
     "debug|info|warn|error (reloaded on SIGHUP, with the key files)", "debug|info|warn|error", 0, 0},
    {"cache-control", "*", NULL, MC_CFG_MAP, NULL,
     "Cache-Control for /BUCKET/KEY paths starting with PREFIX; longest wins", NULL, 0, 0},
    {"surrogate-keys", "*", NULL, MC_CFG_MAP, NULL,
     "Surrogate-Key tokens for paths starting with PREFIX; every match adds", NULL, 0, 0},
    {NULL, NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
};

/* Everything the daemon owns; torn down in reverse by origin_free. */
typedef struct origin {
    uint32_t magic;
    mc_config *cfg;
    mc_keys keys;
    mc_auth auth;
    mc_objects *objects;
    mc_control_metrics *metrics;
    mc_control *control;
    mc_keys operator_keys;
    mc_keys edge_keys;
    mc_invlog *invlog;
    mc_ctlapi *ctlapi;
    bool invalidate_on_write;
    struct event_base *base;
    struct evhttp *s3_http;
    struct evhttp *ctl_http;
    mc_guard *s3_guard;           /* freed after its evhttp */
    mc_guard *ctl_guard;
    struct event *sig_int;
    struct event *sig_term;
    struct event *sig_hup;
    int argc;                  /* kept for SIGHUP: the same file and flags */
    char **argv;
    struct evhttp_bound_socket *s3_bound;
    struct event *drain_timer;
    int s3_inflight;     /* S3 requests whose response is not yet written */
    bool draining;
} origin;

#define DRAIN_TIMEOUT_S 3

/* ---- the S3 listener ------------------------------------------------------ */

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    default: return "OTHER";
    }
}

static void reply_error(struct evhttp_request *req, mc_s3_error e, const char *message,
                        const char *resource, const char *reqid, mc_obj_reply *r)
{
    r->status = mc_s3xml_info(e)->status;
    r->bytes = mc_s3xml_send(req, e, message, resource, reqid);
}

/* Is the decoded path "/", "/BUCKET" or "/BUCKET/" (a service or bucket
 * request rather than an object one)? */
static bool bucket_level(const char *raw_path)
{
    mc_buf p = MC_BUF_INIT;
    bool yes = false;
    if (mc_path_decode(raw_path, strlen(raw_path), &p) == 0 && p.len > 0) {
        const char *slash = strchr(p.data + 1, '/');
        yes = !slash || slash[1] == '\0';
    }
    mc_buf_free(&p);
    return yes;
}

typedef struct s3_call {
    origin *o;
    struct evhttp_request *req;
    const char *raw_path;
    const char *raw_query;
    const mc_query *query;
    const char *reqid;
    mc_auth_result *ar;
    mc_obj_reply *r;
} s3_call;

static void not_implemented(const s3_call *c, const char *what)
{
    reply_error(c->req, MC_S3_NOT_IMPLEMENTED, what, c->raw_path, c->reqid, c->r);
}

/* PUT: the body is hashed first so the signature can cover it (when the
 * client sent no x-amz-content-sha256) and checked before any byte is stored. */
static void handle_put(const s3_call *c)
{
    origin *o = c->o;
    mc_body_digest d;
    mc_s3_error e;
    const char *msg;
    if (mc_upload_digest(evhttp_request_get_input_buffer(c->req), &d) < 0) {
        reply_error(c->req, MC_S3_INTERNAL_ERROR, NULL, c->raw_path, c->reqid, c->r);
        return;
    }
    int rc = mc_auth_check_payload(&o->auth, c->req, c->raw_path, c->raw_query, time(NULL),
                                   d.sha256_hex, c->ar);
    if (rc < 0) {
        mc_control_count_auth_failure(o->metrics, c->ar->reason ? c->ar->reason : "other");
        reply_error(c->req, c->ar->error, c->ar->message, c->raw_path, c->reqid, c->r);
    } else if (!mc_upload_check_body(c->req, &d, &e, &msg)) {
        reply_error(c->req, e, msg, c->raw_path, c->reqid, c->r);
    } else if (mc_query_get(c->query, "uploadId")) {
        mc_multipart_part(o->objects, c->req, c->raw_path, c->query, &d, c->reqid, c->r);
    } else if (c->query->n > 0 || bucket_level(c->raw_path)) {
        not_implemented(c, "Only PutObject and UploadPart are implemented by this origin "
                           "(buckets are directories the operator creates).");
    } else {
        uint64_t max = mc_config_size(o->cfg, "origin", "max_object_size");
        mc_upload_put(o->objects, c->req, c->raw_path, &d, max, c->reqid, c->r);
    }
}

static void handle_read(const s3_call *c)
{
    if (bucket_level(c->raw_path))
        mc_list_serve(c->o->objects, c->req, c->raw_path, c->query, c->o->auth.region,
                      c->reqid, c->r);
    else if (mc_query_get(c->query, "uploadId"))
        not_implemented(c, "ListParts is not implemented by this origin.");
    else
        mc_objects_serve(c->o->objects, c->req, c->raw_path, c->reqid, c->r);
}

static void handle_post(const s3_call *c)
{
    uint64_t max = mc_config_size(c->o->cfg, "origin", "max_object_size");
    if (bucket_level(c->raw_path)) {
        not_implemented(c, "DeleteObjects and other bucket POSTs are not implemented by "
                           "this origin.");
    } else if (mc_query_get(c->query, "uploads")) {
        mc_multipart_create(c->o->objects, c->req, c->raw_path, c->reqid, c->r);
    } else if (mc_query_get(c->query, "uploadId")) {
        mc_multipart_complete(c->o->objects, c->req, c->raw_path, c->query, max, c->reqid,
                              c->r);
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Allow",
                          "GET, HEAD, PUT, DELETE");
        reply_error(c->req, MC_S3_METHOD_NOT_ALLOWED, NULL, c->raw_path, c->reqid, c->r);
    }
}

/* Everything but PUT is verified with its (small) body in memory. */
static void dispatch(const s3_call *c)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(c->req);
    if (m == EVHTTP_REQ_PUT) {
        handle_put(c);
        return;
    }
    int rc = mc_auth_check(&c->o->auth, c->req, c->raw_path, c->raw_query, time(NULL), c->ar);
    if (rc < 0) {
        mc_control_count_auth_failure(c->o->metrics, c->ar->reason ? c->ar->reason : "other");
        reply_error(c->req, c->ar->error, c->ar->message, c->raw_path, c->reqid, c->r);
    } else if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) {
        handle_read(c);
    } else if (m == EVHTTP_REQ_DELETE && mc_query_get(c->query, "uploadId")) {
        mc_multipart_abort(c->o->objects, c->req, c->raw_path, c->query, c->reqid, c->r);
    } else if (m == EVHTTP_REQ_DELETE && bucket_level(c->raw_path)) {
        not_implemented(c, "DeleteBucket is not implemented by this origin.");
    } else if (m == EVHTTP_REQ_DELETE) {
        mc_upload_delete(c->o->objects, c->req, c->raw_path, c->reqid, c->r);
    } else if (m == EVHTTP_REQ_POST) {
        handle_post(c);
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Allow",
                          "GET, HEAD, PUT, DELETE, POST");
        reply_error(c->req, MC_S3_METHOD_NOT_ALLOWED, NULL, c->raw_path, c->reqid, c->r);
    }
}

/* invalidate_on_write: a write that succeeded invalidates its viewer path. */
static void invalidate_written(origin *o, enum evhttp_cmd_type m, const char *raw_path,
                               const mc_query *query, int status)
{
    bool put = m == EVHTTP_REQ_PUT && status == 200 && query->n == 0;
    bool del = m == EVHTTP_REQ_DELETE && status == 204 && query->n == 0;
    bool completed = m == EVHTTP_REQ_POST && status == 200 && mc_query_get(query, "uploadId");
    if (!o->invalidate_on_write || !(put || del || completed))
        return;
    mc_buf path = MC_BUF_INIT;
    int rc = mc_ctlapi_viewer_path(raw_path, &path);
    if (rc == 0)
        rc = mc_ctlapi_invalidate_path(o->ctlapi, path.data);
    if (rc < 0)
        mc_log_error("main", "msg=\"cannot invalidate a written object\" path=%.512s error=%s",
                     raw_path, mc_err_name(rc));
    mc_buf_free(&path);
}

/* evhttp calls this once the response has been written out (not when the
 * client went away first: the drain timeout covers those). */
static void on_s3_written(struct evhttp_request *req, void *ud)
{
    (void)req;
    origin *o = ud;
    o->s3_inflight--;
    if (o->draining && o->s3_inflight <= 0)
        event_base_loopbreak(o->base);
}

static void on_s3_request(struct evhttp_request *req, void *ud)
{
    origin *o = ud;
    assert(o && o->magic == ORIGIN_MAGIC);
    if (mc_guard_answer(req))
        return;
    o->s3_inflight++;
    evhttp_request_set_on_complete_cb(req, on_s3_written, o);
    char reqid[MC_S3_REQID_LEN];
    mc_s3xml_request_id(reqid);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Server", PROG);

    const char *uri = evhttp_request_get_uri(req);
    const char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    char *raw_path = strndup(uri, plen);
    const char *method = method_name(evhttp_request_get_command(req));
    mc_obj_reply r = {0, 0};
    mc_auth_result ar;
    memset(&ar, 0, sizeof ar);
    strcpy(ar.access_key, "-");

    mc_query query = MC_QUERY_INIT;
    int qrc = raw_path ? mc_query_parse(&query, q ? q + 1 : "") : 0;
    if (!raw_path || qrc == MC_E_NOMEM) {
        reply_error(req, MC_S3_INTERNAL_ERROR, NULL, "", reqid, &r);
    } else if (raw_path[0] != '/') {
        reply_error(req, MC_S3_INVALID_URI, NULL, raw_path, reqid, &r);
    } else if (qrc < 0) {
        reply_error(req, MC_S3_INVALID_ARGUMENT, "The query string cannot be decoded.",
                    raw_path, reqid, &r);
    } else {
        s3_call c = {o, req, raw_path, q ? q + 1 : "", &query, reqid, &ar, &r};
        dispatch(&c);
        invalidate_written(o, evhttp_request_get_command(req), raw_path, &query, r.status);
    }
    mc_query_free(&query);
    mc_control_count_request(o->metrics, method, r.status, r.bytes);
    mc_log_info("access", "method=%s path=%.512s status=%d bytes=%" PRIu64 " key=%s req_id=%s",
                method, raw_path ? raw_path : "-", r.status, r.bytes, ar.access_key, reqid);
    free(raw_path);
}

/* ---- start-up -------------------------------------------------------------- */

/* Bind addr_text (section.listen) and log the real address (port 0 works). */
static int bind_listener(origin *o, struct evhttp *http, const char *name, const char *section,
                         struct evhttp_bound_socket **bound, mc_err *err)
{
    const char *text = mc_config_str(o->cfg, section, "listen");
    char host[256];
    int port = 0;
    if (mc_parse_addr(text, host, sizeof host, &port) < 0)
        return mc_config_fail(o->cfg, err, MC_E_INVAL, section, "listen", "\"%s\" is not HOST:PORT",
                              text);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (!bs)
        return mc_config_fail(o->cfg, err, MC_E_IO, section, "listen", "cannot listen on %s: %s",
                              text, strerror(errno));
    if (bound)
        *bound = bs;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
            port = ntohs(s6->sin6_port);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
            port = ntohs(s4->sin_port);
        }
    }
    if (ss.ss_family == AF_INET6)
        mc_log_info("main", "msg=listening listener=%s addr=[%s]:%d", name, ip, port);
    else
        mc_log_info("main", "msg=listening listener=%s addr=%s:%d", name, ip, port);
    return 0;
}

static struct evhttp *new_http(origin *o)
{
    struct evhttp *h = evhttp_new(o->base);
    if (!h)
        return NULL;
    int64_t timeout_ms = mc_config_duration_ms(o->cfg, "origin", "timeout");
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(h, &tv);
    evhttp_set_max_headers_size(h, MAX_HEADER_BYTES);
    evhttp_set_max_body_size(h, MAX_BODY_BYTES);
    /* Every method reaches our callback, so unknown ones get S3's 405. */
    evhttp_set_allowed_methods(h, 0xffff);
    return h;
}

typedef struct rule_ctx {
    mc_objects *objects;
    int (*add)(mc_objects *, const char *, const char *, mc_err *);
    const char *section;
    mc_err *err;
} rule_ctx;

static int add_rule(void *ud, const char *key, const char *value, const char *where)
{
    rule_ctx *x = ud;
    mc_err e = {0, ""};
    int rc = x->add(x->objects, key, value, &e);
    if (rc < 0)
        return mc_err_set(x->err, rc, "%s: %s.%s: %s", where, x->section, key, e.msg);
    return 0;
}

static int load_rules(origin *o, mc_err *err)
{
    rule_ctx cc = {o->objects, mc_objects_add_cache_rule, "cache-control", err};
    int rc = mc_config_each(o->cfg, "cache-control", add_rule, &cc);
    if (rc < 0)
        return rc;
    rule_ctx sk = {o->objects, mc_objects_add_surrogate_rule, "surrogate-keys", err};
    return mc_config_each(o->cfg, "surrogate-keys", add_rule, &sk);
}

/* Keys, auth settings and the object root, all checked before any socket. */
static int setup_serving(origin *o, mc_err *err)
{
    mc_config *c = o->cfg;
    const char *root = mc_config_str(c, "origin", "root");
    const char *keys = mc_config_str(c, "origin", "keys");
    bool anon = mc_config_bool(c, "origin", "anonymous_read");
    if (!root)
        return mc_err_set(err, MC_E_INVAL, "origin.root: required: the directory to serve "
                                           "(--root DIR)");
    if (!keys && !anon)
        return mc_err_set(err, MC_E_INVAL, "origin.keys: required: a key file (--keys FILE), "
                                           "unless --anonymous-read allows unsigned reads");
    mc_err e = {0, ""};
    int rc;
    if (keys && (rc = mc_keys_load(&o->keys, keys, &e)) < 0)
        return mc_config_fail(c, err, rc, "origin", "keys", "%s", e.msg);
    mc_auth_init(&o->auth, keys ? &o->keys : NULL, anon);
    o->auth.region = mc_config_str(c, "origin", "region");
    o->auth.max_skew_s = (int)(mc_config_duration_ms(c, "origin", "max_skew") / 1000);
    o->auth.max_body_bytes = MAX_BODY_BYTES;
    mc_objects_config oc = {
        .root = root,
        .default_cache_control = mc_config_str(c, "origin", "cache_control"),
        .etag_cache_entries = (size_t)mc_config_int(c, "origin", "etag_cache_entries"),
        .etag_md5_max = mc_config_size(c, "origin", "etag_md5_max"),
        .write_timeout_ms = mc_config_duration_ms(c, "origin", "timeout"),
    };
    if ((rc = mc_objects_open(&o->objects, &oc, &e)) < 0)
        return mc_config_fail(c, err, rc, "origin", "root", "%s", e.msg);
    /* The default is the rule for "/": checked like any rule, and a
     * [cache-control] "/" entry replaces it. */
    if ((rc = mc_objects_add_cache_rule(o->objects, "/", oc.default_cache_control, &e)) < 0)
        return mc_config_fail(c, err, rc, "origin", "cache_control", "%s", e.msg);
    return load_rules(o, err);
}

/* The control API's keys and log; before any socket, like the rest. */
static int setup_control(origin *o, mc_err *err)
{
    mc_config *c = o->cfg;
    mc_err e = {0, ""};
    int rc;
    const char *opk = mc_config_str(c, "control", "operator_keys");
    const char *edk = mc_config_str(c, "control", "edge_keys");
    if (opk && (rc = mc_keys_load(&o->operator_keys, opk, &e)) < 0)
        return mc_config_fail(c, err, rc, "control", "operator_keys", "%s", e.msg);
    if (edk && (rc = mc_keys_load(&o->edge_keys, edk, &e)) < 0)
        return mc_config_fail(c, err, rc, "control", "edge_keys", "%s", e.msg);
    if (strcmp(mc_config_str(c, "control", "backend"), "etcd") == 0) {
        mc_invlog_etcd_config ec = {
            .endpoints = mc_config_str(c, "control", "endpoints"),
            .cacert = mc_config_str(c, "control", "cacert"),
            .cert = mc_config_str(c, "control", "cert"),
            .key = mc_config_str(c, "control", "key"),
            .prefix = mc_config_str(c, "control", "prefix"),
            .lease_ttl_s = mc_config_duration_ms(c, "control", "unreachable_after") / 1000,
            .keep = (uint64_t)mc_config_int(c, "control", "keep"),
            .timeout_ms = (long)mc_config_duration_ms(c, "control", "etcd_timeout"),
        };
        if ((rc = mc_invlog_open_etcd(&o->invlog, &ec, &e)) < 0)
            return mc_config_fail(c, err, rc, "control", "endpoints", "%s", e.msg);
        o->invalidate_on_write = mc_config_bool(c, "control", "invalidate_on_write");
        return 0;
    }
    char dflt[4096];
    const char *db = mc_config_str(c, "control", "db");
    if (!db) {
        snprintf(dflt, sizeof dflt, "%s/%scontrol", mc_config_str(c, "origin", "root"),
                 MC_OBJECTS_RESERVED);
        db = dflt;
    }
    if ((rc = mc_invlog_open_lmdb(&o->invlog, db, &e)) < 0) {
        if (db != dflt)
            return mc_config_fail(c, err, rc, "control", "db", "%s", e.msg);
        /* A read-only root served before the control API existed: keep
         * serving it, and say why the control API answers 503. */
        mc_log_warn("main", "msg=\"control API disabled: no invalidation log\" error=\"%s\" "
                    "hint=\"set [control] db to a writable directory\"", e.msg);
    }
    o->invalidate_on_write = mc_config_bool(c, "control", "invalidate_on_write");
    return 0;
}

static int setup_ctlapi(origin *o, mc_err *err)
{
    mc_config *c = o->cfg;
    bool edge_default = !mc_config_str(c, "control", "edge_keys") &&
                        mc_config_str(c, "origin", "keys");
    mc_ctlapi_config cc = {
        .operator_keys = mc_config_str(c, "control", "operator_keys") ? &o->operator_keys : NULL,
        .edge_keys = edge_default ? &o->keys
                   : mc_config_str(c, "control", "edge_keys") ? &o->edge_keys : NULL,
        .region = o->auth.region,
        .max_skew_s = o->auth.max_skew_s,
        .unreachable_after_s = mc_config_duration_ms(c, "control", "unreachable_after") / 1000,
        .max_body_bytes = MAX_CONTROL_BODY_BYTES,
        .conn_timeout_s = mc_config_duration_ms(c, "origin", "timeout") / 1000,
    };
    if (mc_ctlapi_new(&o->ctlapi, o->base, o->control, o->invlog, &cc) < 0)
        return mc_err_set(err, MC_E_NOMEM, "cannot set up the control API");
    uint64_t last = 0;
    if (o->invlog)
        mc_invlog_last_seq(o->invlog, &last);
    mc_log_info("main", "msg=\"control API\" backend=%s last_seq=%" PRIu64 " operator_keys=%d "
                "edge_keys=%d invalidate_on_write=%s",
                o->invlog ? mc_invlog_backend(o->invlog) : "none", last,
                cc.operator_keys ? cc.operator_keys->n : 0, cc.edge_keys ? cc.edge_keys->n : 0,
                o->invalidate_on_write ? "true" : "false");
    return 0;
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    origin *o = ud;
    mc_log_info("main", "msg=\"drain timeout\" unfinished=%d", o->s3_inflight);
    event_base_loopbreak(o->base);
}

static void on_signal(evutil_socket_t sig, short what, void *ud)
{
    (void)what;
    origin *o = ud;
    if (sig == SIGTERM && !o->draining && o->s3_inflight > 0 && o->s3_bound) {
        const struct timeval tv = {DRAIN_TIMEOUT_S, 0};
        o->draining = true;
        evhttp_del_accept_socket(o->s3_http, o->s3_bound);
        o->s3_bound = NULL;
        o->drain_timer = evtimer_new(o->base, on_drain_timeout, o);
        if (o->drain_timer && evtimer_add(o->drain_timer, &tv) == 0) {
            mc_log_info("main", "msg=draining signal=%d inflight=%d", (int)sig, o->s3_inflight);
            return;
        }
    }
    mc_log_info("main", "msg=stopping signal=%d", (int)sig);
    event_base_loopbreak(o->base);
}

/* Load the key file named by section.key in c into *out when one is
 * named. Returns 1 loaded, 0 none named, < 0 (err names the file). */
static int reload_keys(const mc_config *c, const char *section, const char *key, mc_keys *out, mc_err *err)
{
    const char *path = mc_config_str(c, section, key);
    if (!path)
        return 0;
    mc_err e = {0, ""};
    int rc = mc_keys_load(out, path, &e);
    if (rc < 0)
        return mc_config_fail(c, err, rc, section, key, "%s", e.msg);
    return 1;
}

static void swap_keys(mc_keys *live, mc_keys *fresh)
{
    mc_keys old = *live;
    *live = *fresh;
    memset(fresh, 0, sizeof *fresh);
    mc_keys_free(&old);
}

/* SIGHUP (see the top of this file). Everything runs on this one loop, so
 * a swap between two requests is all it takes; a key file that was not
 * configured at start stays unconfigured (that needs a restart). */
static void on_sighup(evutil_socket_t sig, short what, void *ud)
{
    (void)sig, (void)what;
    origin *o = ud;
    mc_config *c = NULL;
    mc_err err = {0, ""};
    mc_keys k[3];
    memset(k, 0, sizeof k);
    static const char *const names[3][2] = {{"origin", "keys"}, {"control", "operator_keys"}, {"control", "edge_keys"}};
    mc_keys *live[3] = {&o->keys, &o->operator_keys, &o->edge_keys};
    int loaded[3] = {0, 0, 0};
    int rc = mc_config_load(&c, schema, o->argc, o->argv, false, &err);
    for (int i = 0; rc == MC_CONFIG_RUN && i < 3; i++)
        if (mc_config_str(o->cfg, names[i][0], names[i][1]) && (loaded[i] = reload_keys(c, names[i][0], names[i][1], &k[i], &err)) < 0)
            rc = loaded[i];
    if (rc != MC_CONFIG_RUN) {
        mc_log_error("main", "msg=\"configuration reload refused; the keys in use stay\" error=\"%s\"",
                     rc < 0 ? err.msg : "not a configuration");
        for (int i = 0; i < 3; i++)
            mc_keys_free(&k[i]);
        mc_config_free(c);
        return;
    }
    char restart[512] = "";
    for (const mc_cfg_opt *opt = schema; opt->section; opt++) {
        if (opt->type == MC_CFG_MAP || strcmp(opt->key, "log_level") == 0 || strcmp(opt->key, "keys") == 0 ||
            strcmp(opt->key, "operator_keys") == 0 || strcmp(opt->key, "edge_keys") == 0)
            continue;
        const char *a = mc_config_str(o->cfg, opt->section, opt->key), *b = mc_config_str(c, opt->section, opt->key);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)) {
            size_t l = strlen(restart);
            snprintf(restart + l, sizeof restart - l, "%s%s.%s", l ? " " : "", opt->section, opt->key);
        }
    }
    if (restart[0])
        mc_log_warn("main", "msg=\"changed keys need a restart; not applied\" keys=\"%s\"", restart);
    char changed[128] = "";
    for (int i = 0; i < 3; i++)
        if (loaded[i] > 0) {
            size_t l = strlen(changed);
            snprintf(changed + l, sizeof changed - l, "%s%s.%s=%d", l ? " " : "", names[i][0], names[i][1], k[i].n);
            swap_keys(live[i], &k[i]);
        }
    mc_log_level lvl = MC_LOG_INFO;
    mc_log_level_parse(mc_config_str(c, "origin", "log_level"), &lvl);
    mc_log_info("main", "msg=\"configuration reloaded\" keys=\"%s\" log_level=%s", changed,
                mc_config_str(c, "origin", "log_level"));
    mc_log_set_level(lvl);
    mc_config_free(c);
}

static int setup_loop(origin *o, mc_err *err)
{
    o->base = event_base_new();
    o->metrics = calloc(1, sizeof *o->metrics);
    if (!o->base || !o->metrics)
        return mc_err_set(err, MC_E_NOMEM, "cannot create the event loop");
    o->s3_http = new_http(o);
    o->ctl_http = new_http(o);
    o->sig_int = evsignal_new(o->base, SIGINT, on_signal, o);
    o->sig_term = evsignal_new(o->base, SIGTERM, on_signal, o);
    o->sig_hup = evsignal_new(o->base, SIGHUP, on_sighup, o);
    if (!o->s3_http || !o->ctl_http || !o->sig_int || !o->sig_term || !o->sig_hup ||
        evsignal_add(o->sig_int, NULL) < 0 || evsignal_add(o->sig_term, NULL) < 0 ||
        evsignal_add(o->sig_hup, NULL) < 0)
        return mc_err_set(err, MC_E_NOMEM, "cannot set up listeners");
    evhttp_set_gencb(o->s3_http, on_s3_request, o);
    evhttp_set_max_body_size(o->s3_http,
                             (ev_ssize_t)mc_config_size(o->cfg, "origin", "max_put_size"));
    evhttp_set_max_body_size(o->ctl_http, MAX_CONTROL_BODY_BYTES);
    mc_guard_config gc = {
        .listener = MC_GUARD_S3,
        .header_timeout_ms = mc_config_duration_ms(o->cfg, "origin", "header_timeout"),
        .max_body = mc_config_size(o->cfg, "origin", "max_put_size"),
        .max_connections = (int)mc_config_int(o->cfg, "origin", "max_connections"),
        .max_per_client = (int)mc_config_int(o->cfg, "origin", "max_connections_per_client"),
    };
    if (mc_guard_new(&o->s3_guard, o->base, o->s3_http, &gc) < 0)
        return mc_err_set(err, MC_E_NOMEM, "cannot set up the S3 listener");
    gc.listener = MC_GUARD_CONTROL;
    gc.max_body = MAX_CONTROL_BODY_BYTES;
    if (mc_guard_new(&o->ctl_guard, o->base, o->ctl_http, &gc) < 0)
        return mc_err_set(err, MC_E_NOMEM, "cannot set up the control listener");
    if (mc_control_new(&o->control, o->ctl_http, o->metrics) < 0 ||
        mc_control_add_metrics(o->control, mc_guard_render_metrics, NULL) < 0)
        return mc_err_set(err, MC_E_NOMEM, "cannot set up the control listener");
    int rc = setup_ctlapi(o, err);
    if (rc == 0)
        rc = bind_listener(o, o->s3_http, "s3", "origin", &o->s3_bound, err);
    if (rc == 0)
        rc = bind_listener(o, o->ctl_http, "control", "control", NULL, err);
    return rc;
}

static void origin_free(origin *o)
{
    mc_ctlapi_free(o->ctlapi);       /* answers parked polls: before the evhttp */
    mc_control_free(o->control);     /* before its evhttp */
    if (o->s3_http)
        evhttp_free(o->s3_http);
    if (o->ctl_http)
        evhttp_free(o->ctl_http);
    if (o->sig_int)
        event_free(o->sig_int);
    if (o->sig_term)
        event_free(o->sig_term);
    if (o->sig_hup)
        event_free(o->sig_hup);
    if (o->drain_timer)
        event_free(o->drain_timer);
    if (o->base) {
        /* A connection freed above may still have deferred callbacks queued
         * (each holds a reference to its bufferevents; a stop by signal
         * breaks the loop before they run): one more non-blocking turn runs
         * them so the last references drop, then the base runs the
         * finalizers. */
        event_base_loop(o->base, EVLOOP_NONBLOCK);
        event_base_free(o->base);
    }
    mc_guard_free(o->s3_guard);      /* after those: the connections point to it */
    mc_guard_free(o->ctl_guard);
    free(o->metrics);
    mc_invlog_close(o->invlog);
    mc_objects_close(o->objects);
    mc_keys_free(&o->keys);
    mc_keys_free(&o->operator_keys);
    mc_keys_free(&o->edge_keys);
    mc_config_free(o->cfg);
    o->magic = 0;
}

static int run(origin *o, int argc, char **argv)
{
    mc_err err = {0, ""};
    o->argc = argc;
    o->argv = argv;
    int rc = mc_config_load(&o->cfg, schema, argc, argv, false, &err);
    if (rc == MC_CONFIG_HELP) {
        mc_config_usage(schema, PROG, SYNOPSIS, stdout);
        return 0;
    }
    if (rc == MC_CONFIG_VERSION) {
        printf("%s %s\n", PROG, MESHCDN_VERSION);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", PROG, err.msg);
        return 2;
    }
    mc_log_level lvl = MC_LOG_INFO;
    mc_log_level_parse(mc_config_str(o->cfg, "origin", "log_level"), &lvl);
    mc_log_set_level(lvl);
    if ((rc = setup_serving(o, &err)) < 0 || (rc = setup_control(o, &err)) < 0 ||
        (rc = setup_loop(o, &err)) < 0) {
        fprintf(stderr, "%s: %s\n", PROG, err.msg);
        return rc == MC_E_INVAL ? 2 : 1;
    }
    mc_log_info("main", "msg=started version=%s root=%s anonymous_read=%s keys=%d", MESHCDN_VERSION,
                mc_config_str(o->cfg, "origin", "root"),
                o->auth.anonymous_read ? "true" : "false", o->keys.n);
    if (event_base_dispatch(o->base) < 0) {
        mc_log_error("main", "msg=\"event loop failed\"");
        return 1;
    }
    mc_log_info("main", "msg=stopped");
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);   /* a viewer that hangs up is an EPIPE, not a crash */
    origin o;
    memset(&o, 0, sizeof o);
    o.magic = ORIGIN_MAGIC;
    int status = run(&o, argc, argv);
    origin_free(&o);
    libevent_global_shutdown();
    return status;
}
