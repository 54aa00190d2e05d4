/* auth.h — SigV4 verification of requests arriving on an evhttp listener.
 *
 * Turns an evhttp request into an mc_sigv4_request exactly as it came off the
 * wire (raw path and query, every header with repeated names in order, the
 * body) and verifies it with mc_sigv4_verify against a key file. The result
 * says which S3 error to send when verification fails:
 *
 *   MC_E_AUTH_MISSING     403 AccessDenied
 *   MC_E_AUTH_UNKNOWN_KEY 403 InvalidAccessKeyId
 *   MC_E_AUTH_MISMATCH    403 SignatureDoesNotMatch
 *   MC_E_AUTH_SKEW        403 RequestTimeTooSkewed
 *   MC_E_AUTH_EXPIRED     403 AccessDenied "Request has expired"
 *   MC_E_AUTH_MALFORMED   400 AuthorizationHeaderMalformed
 *
 * With anonymous_read, an unsigned GET or HEAD passes as access key "-"; a
 * request that carries a signature is verified all the same (a wrong
 * signature is never waved through just because anonymity was allowed).
 *
 * Threads: an mc_auth is immutable after mc_auth_init; mc_auth_check may run
 * on any thread that owns the request.
 * Ownership: mc_auth borrows keys, region and service; they must outlive it.
 * Errors: mc_auth_check returns 0 or one of the MC_E_AUTH_* codes above, or
 * MC_E_NOMEM (send 500).
 */
#ifndef MC_AUTH_H
#define MC_AUTH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "common/keys.h"
#include "origin/s3xml.h"

struct evhttp_request;

#define MC_AUTH_MAGIC 0x41555448u

typedef struct mc_auth {
    uint32_t magic;
    const mc_keys *keys;      /* borrowed; may be NULL only with anonymous_read */
    const char *region;       /* expected region ("us-east-1") */
    const char *service;      /* "s3" on the object listener */
    int max_skew_s;           /* 900 */
    bool anonymous_read;      /* unsigned GET/HEAD allowed */
    size_t max_body_bytes;    /* bodies beyond this are refused before hashing */
} mc_auth;

/* What a check found; for the reply, the access log and the metrics. */
typedef struct mc_auth_result {
    mc_s3_error error;        /* meaningful when the check failed */
    const char *reason;       /* metric label: "missing", "mismatch", ... */
    char message[320];        /* S3 <Message>; never a secret or signature */
    char access_key[129];     /* the key that signed, "-" when anonymous/unknown */
} mc_auth_result;

/* Fill a with defaults (service "s3", region "us-east-1", skew 900 s). */
void mc_auth_init(mc_auth *a, const mc_keys *keys, bool anonymous_read);

/* Verify req, whose raw request target has been split into raw_path (up to
 * '?') and raw_query (after it, "" when none). now is the current time. */
int mc_auth_check(const mc_auth *a, struct evhttp_request *req, const char *raw_path,
                  const char *raw_query, time_t now, mc_auth_result *out);

/* The same for a request whose body the caller checks itself (PUT bodies of
 * any size): the body is not read here. body_sha256 (lower-case hex of the
 * body the caller holds) is the signed payload when the request has no
 * x-amz-content-sha256 header; when it has one, the signature covers that
 * header and the caller must compare it with the body (mc_upload does).
 * Unsigned requests never pass (anonymous_read covers GET/HEAD only). */
int mc_auth_check_payload(const mc_auth *a, struct evhttp_request *req, const char *raw_path,
                          const char *raw_query, time_t now, const char *body_sha256,
                          mc_auth_result *out);

/* The metric label for an MC_E_AUTH_* code ("other" for anything else). */
const char *mc_auth_reason(int rc);

#endif
