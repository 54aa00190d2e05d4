/* sigv4.h — AWS Signature Version 4: signer and verifier.
 *
 * Used edge -> origin (service "s3", the way CloudFront's Origin Access
 * Control signs), operator -> admin/control APIs (service "meshcdn"), and by
 * the origin to verify. Pure functions: no I/O, no globals, thread-safe.
 *
 * Canonicalisation (the AWS spec, pinned by tests/data/sigv4/vectors.json):
 *  - canonical URI: for S3 (normalize_path = 0) the path as sent, decoded and
 *    re-encoded exactly once (unreserved A-Z a-z 0-9 - _ . ~ and '/' kept, every
 *    other byte %XX upper-case), no dot-segment removal, no slash collapsing.
 *    For other services (normalize_path = 1) dot segments and repeated
 *    slashes are removed and the path as sent is encoded again ("%" -> "%25").
 *  - canonical query: pairs split on '&', a name without '=' gets an empty
 *    value, each name and value decoded then encoded with the unreserved set,
 *    sorted by name then value; X-Amz-Signature is left out.
 *  - headers: names lower-cased, values trimmed with inner runs of spaces
 *    collapsed, repeated names joined with ',' in order, sorted by name.
 *  - payload: the x-amz-content-sha256 header value when present, else
 *    req->payload_hash when set, else SHA-256 of the body.
 *
 * Errors: MC_E_INVAL for unusable input, MC_E_NOMEM; the verifier returns
 * the MC_E_AUTH_* codes in err.h. Secrets and signatures never appear in
 * error messages.
 */
#ifndef MC_SIGV4_H
#define MC_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "common/buf.h"

typedef struct mc_sigv4_header {
    const char *name;   /* as sent, any case */
    const char *value;  /* as sent, untrimmed */
} mc_sigv4_header;

/* A request as it appears on the wire. Borrowed pointers: the caller owns. */
typedef struct mc_sigv4_request {
    const char *method;            /* "GET" */
    const char *path;              /* wire path, percent-encoded, no query */
    const char *query;             /* without '?', "" or NULL for none */
    const mc_sigv4_header *headers;
    size_t nheaders;
    const void *body;              /* may be NULL when body_len == 0 */
    size_t body_len;
    const char *payload_hash;      /* NULL: use x-amz-content-sha256 or hash the body */
} mc_sigv4_request;

/* Who signs, for what scope, when. */
typedef struct mc_sigv4_params {
    const char *access_key;
    const char *secret_key;
    const char *session_token;     /* NULL unless temporary credentials */
    const char *region;            /* "us-east-1" */
    const char *service;           /* "s3", "meshcdn" */
    const char *amz_date;          /* "20150830T123600Z" (UTC, basic format) */
    int normalize_path;            /* 0 for s3, 1 for other services */
} mc_sigv4_params;

/* Everything a signature is made of; fixed-size so it can live on a stack.
 * canonical_request and string_to_sign are heap strings (mc_sigv4_result_free). */
typedef struct mc_sigv4_result {
    char *canonical_request;
    char *string_to_sign;
    char signature[65];            /* lower-case hex */
    char signed_headers[1024];     /* "host;x-amz-date" */
    char authorization[2048];      /* full Authorization header value (header form) */
    char *presigned_query;         /* query form only: full query to append */
} mc_sigv4_result;

void mc_sigv4_result_free(mc_sigv4_result *r);

/* "YYYYMMDDTHHMMSSZ" for t (UTC) into out[17]. */
void mc_sigv4_amz_date(time_t t, char out[17]);
/* Parse "YYYYMMDDTHHMMSSZ"; returns 0 or MC_E_INVAL. */
int mc_sigv4_parse_amz_date(const char *s, time_t *out);

/* SHA-256 of data as lower-case hex into out[65]. */
void mc_sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* Encode bytes with the SigV4 unreserved set (A-Z a-z 0-9 - _ . ~); '/' is
 * kept when keep_slash. Appends to out. */
int mc_sigv4_uri_encode(mc_buf *out, const char *s, size_t len, int keep_slash);

/* The S3 canonical form of a wire path: decode once, encode once (keep '/').
 * This is also the form the edge sends upstream, so what is signed is what is
 * sent. Returns a heap string (caller frees) or NULL on NOMEM / bad escape. */
char *mc_sigv4_s3_path(const char *wire_path);

/* Sign in header form. Headers signed: every header in req->headers (the
 * caller includes Host and X-Amz-Date, plus X-Amz-Content-Sha256 and
 * X-Amz-Security-Token when wanted). Fills out (free with _result_free). */
int mc_sigv4_sign(const mc_sigv4_request *req, const mc_sigv4_params *p,
                  mc_sigv4_result *out);

/* Sign in presigned-URL (query) form: adds X-Amz-Algorithm, -Credential,
 * -Date, -Expires, -SignedHeaders (and -Security-Token) to req->query, signs
 * the headers in req->headers (at least Host) with payload UNSIGNED-PAYLOAD
 * unless req->payload_hash says otherwise; out->presigned_query receives the
 * full query including X-Amz-Signature. */
int mc_sigv4_presign(const mc_sigv4_request *req, const mc_sigv4_params *p,
                     int expires_s, mc_sigv4_result *out);

/* Secret lookup for the verifier: fill up to 2 secrets for access_key (two
 * are active during a rotation); return how many (0 = unknown key). */
typedef int (*mc_sigv4_secret_fn)(void *ud, const char *access_key,
                                  const char *secrets_out[2]);

typedef struct mc_sigv4_verify_opts {
    const char *service;           /* the expected service ("s3") */
    const char *region;            /* expected region, or NULL for any */
    int normalize_path;
    time_t now;                    /* current time */
    int max_skew_s;                /* 900: ±15 minutes */
    mc_sigv4_secret_fn secret;
    void *secret_ud;
} mc_sigv4_verify_opts;

/* What the verifier found, for logs (never the signature or secret). */
typedef struct mc_sigv4_verdict {
    char access_key[129];          /* from the credential, when parsed */
    char detail[256];              /* why it failed, for a person */
    int presigned;                 /* 1 when the query form was used */
} mc_sigv4_verdict;

/* Verify a request carrying either an Authorization header
 * ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...") or the
 * presigned query parameters. Only the headers named in SignedHeaders are
 * used; host must be among them. Signatures compare in constant time.
 * Returns 0 when valid, else:
 *   MC_E_AUTH_MISSING     neither form present
 *   MC_E_AUTH_MALFORMED   present but unparsable, wrong algorithm/service/scope,
 *                         date scope disagreeing with x-amz-date, host unsigned
 *   MC_E_AUTH_UNKNOWN_KEY access key not known
 *   MC_E_AUTH_SKEW        x-amz-date more than max_skew_s from now
 *   MC_E_AUTH_EXPIRED     presigned and past X-Amz-Expires
 *   MC_E_AUTH_MISMATCH    signature does not match any active secret
 *                         (also when x-amz-content-sha256 disagrees with a body)
 */
int mc_sigv4_verify(const mc_sigv4_request *req, const mc_sigv4_verify_opts *o,
                    mc_sigv4_verdict *v);

#endif
