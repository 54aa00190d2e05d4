/* auth.c — see auth.h. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "common/err.h"
#include "common/sigv4.h"
#include "origin/auth.h"

void mc_auth_init(mc_auth *a, const mc_keys *keys, bool anonymous_read)
{
    memset(a, 0, sizeof *a);
    a->magic = MC_AUTH_MAGIC;
    a->keys = keys;
    a->region = "us-east-1";
    a->service = "s3";
    a->max_skew_s = 900;
    a->anonymous_read = anonymous_read;
    a->max_body_bytes = 1u << 20;
}

const char *mc_auth_reason(int rc)
{
    switch (rc) {
    case MC_E_AUTH_MISSING: return "missing";
    case MC_E_AUTH_MALFORMED: return "malformed";
    case MC_E_AUTH_UNKNOWN_KEY: return "unknown_key";
    case MC_E_AUTH_MISMATCH: return "mismatch";
    case MC_E_AUTH_SKEW: return "skew";
    case MC_E_AUTH_EXPIRED: return "expired";
    default: return "other";
    }
}

static mc_s3_error error_for(int rc)
{
    switch (rc) {
    case MC_E_AUTH_MISSING: return MC_S3_ACCESS_DENIED;
    case MC_E_AUTH_UNKNOWN_KEY: return MC_S3_INVALID_ACCESS_KEY_ID;
    case MC_E_AUTH_MISMATCH: return MC_S3_SIGNATURE_DOES_NOT_MATCH;
    case MC_E_AUTH_SKEW: return MC_S3_REQUEST_TIME_TOO_SKEWED;
    case MC_E_AUTH_EXPIRED: return MC_S3_REQUEST_EXPIRED;
    case MC_E_AUTH_MALFORMED: return MC_S3_AUTH_HEADER_MALFORMED;
    default: return MC_S3_INTERNAL_ERROR;
    }
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "UNKNOWN";
    }
}

/* The input headers as a borrowed array, in arrival order (heap; caller frees). */
static mc_sigv4_header *collect_headers(struct evhttp_request *req, size_t *n_out)
{
    struct evkeyvalq *q = evhttp_request_get_input_headers(req);
    size_t n = 0;
    for (struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next)
        n++;
    mc_sigv4_header *h = calloc(n ? n : 1, sizeof *h);
    if (!h)
        return NULL;
    size_t i = 0;
    for (struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next, i++) {
        h[i].name = kv->key;
        h[i].value = kv->value;
    }
    *n_out = n;
    return h;
}

static int fail(mc_auth_result *out, int rc, const char *detail)
{
    out->error = error_for(rc);
    out->reason = mc_auth_reason(rc);
    const char *base = mc_s3xml_info(out->error)->message;
    if (rc == MC_E_AUTH_MALFORMED && detail && *detail)
        snprintf(out->message, sizeof out->message, "%s %s", base, detail);
    else
        snprintf(out->message, sizeof out->message, "%s", base);
    return rc;
}

static int verify(const mc_auth *a, const mc_sigv4_request *sr, time_t now, mc_auth_result *out)
{
    static const mc_keys no_keys = {NULL, 0};   /* anonymous-only: every key is unknown */
    mc_sigv4_verify_opts o = {
        .service = a->service,
        .region = a->region,
        .normalize_path = strcmp(a->service, "s3") != 0,
        .now = now,
        .max_skew_s = a->max_skew_s,
        .secret = mc_keys_secret_fn,
        .secret_ud = (void *)(a->keys ? a->keys : &no_keys),
    };
    mc_sigv4_verdict v;
    memset(&v, 0, sizeof v);
    int rc = mc_sigv4_verify(sr, &o, &v);
    if (v.access_key[0])
        snprintf(out->access_key, sizeof out->access_key, "%s", v.access_key);
    if (rc == MC_E_AUTH_MISSING && a->anonymous_read &&
        (strcmp(sr->method, "GET") == 0 || strcmp(sr->method, "HEAD") == 0))
        return 0;
    if (rc == MC_E_NOMEM) {
        out->error = MC_S3_INTERNAL_ERROR;
        out->reason = "other";
        snprintf(out->message, sizeof out->message, "%s", mc_s3xml_info(out->error)->message);
        return rc;
    }
    if (rc == MC_E_INVAL)   /* input the signer cannot canonicalise (a bad escape) */
        rc = MC_E_AUTH_MALFORMED;
    return rc < 0 ? fail(out, rc, v.detail) : 0;
}

static int check(const mc_auth *a, struct evhttp_request *req, const char *raw_path,
                 const char *raw_query, time_t now, const void *body, size_t body_len,
                 const char *payload_hash, mc_auth_result *out)
{
    mc_sigv4_request sr = {
        .method = method_name(evhttp_request_get_command(req)),
        .path = raw_path,
        .query = raw_query,
        .body = body,
        .body_len = body_len,
        .payload_hash = payload_hash,
    };
    mc_sigv4_header *hdrs = collect_headers(req, &sr.nheaders);
    if (!hdrs)
        return MC_E_NOMEM;
    sr.headers = hdrs;
    int rc = verify(a, &sr, now, out);
    free(hdrs);
    return rc;
}

int mc_auth_check(const mc_auth *a, struct evhttp_request *req, const char *raw_path,
                  const char *raw_query, time_t now, mc_auth_result *out)
{
    assert(a && a->magic == MC_AUTH_MAGIC);
    memset(out, 0, sizeof *out);
    strcpy(out->access_key, "-");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t body_len = in ? evbuffer_get_length(in) : 0;
    if (body_len > a->max_body_bytes)
        return fail(out, MC_E_AUTH_MALFORMED, "The request body is too large to verify.");
    return check(a, req, raw_path, raw_query, now, body_len ? evbuffer_pullup(in, -1) : NULL,
                 body_len, NULL, out);
}

int mc_auth_check_payload(const mc_auth *a, struct evhttp_request *req, const char *raw_path,
                          const char *raw_query, time_t now, const char *body_sha256,
                          mc_auth_result *out)
{
    assert(a && a->magic == MC_AUTH_MAGIC);
    memset(out, 0, sizeof *out);
    strcpy(out->access_key, "-");
    return check(a, req, raw_path, raw_query, now, NULL, 0, body_sha256, out);
}
