/* client.h — meshcdnctl's signed HTTP: one request at a time, libcurl easy.
 *
 * Every request is signed with AWS SigV4 the way `curl --aws-sigv4
 * "aws:amz:REGION:meshcdn"` signs (spec-control.md): service "meshcdn",
 * normalize_path = 1, signed headers host and x-amz-date, no
 * x-amz-content-sha256 header, the payload hash being the SHA-256 of the
 * body. A fresh signature per request, so --wait polling for minutes never
 * trips the server's clock-skew window.
 *
 * Ownership: mc_ctl_client copies the URL parts and the key; the caller's
 * strings may go away after mc_ctl_client_new. A reply's body is owned by
 * the reply (mc_ctl_reply_free). One easy handle per client, so polling
 * reuses the connection.
 * Threads: one client per thread. curl_global_init is the caller's (main).
 * Errors: 0 or a negative MC_E_* with err filled for a person; secrets never
 * appear in a message.
 */
#ifndef MC_CTL_CLIENT_H
#define MC_CTL_CLIENT_H

#include <stddef.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/keys.h"

typedef struct mc_ctl_client mc_ctl_client;

/* An HTTP answer: status and body (NUL-terminated, possibly empty). */
typedef struct mc_ctl_reply {
    long status;
    mc_buf body;
} mc_ctl_reply;

#define MC_CTL_MAX_REPLY (64u << 20)   /* a longer answer is an error (MC_E_TOOBIG) */

/* Where the signing key comes from, first found wins: file (--credentials),
 * $MESHCDN_CREDENTIALS (a file), $AWS_ACCESS_KEY_ID with
 * $AWS_SECRET_ACCESS_KEY. A file must be a credentials file (one pair, mode
 * 0600: keys.h). *source receives "FILE", "$MESHCDN_CREDENTIALS" or
 * "$AWS_ACCESS_KEY_ID" for messages. Returns 0, or MC_E_NOTFOUND (none
 * given), MC_E_PERM / MC_E_IO / MC_E_INVAL from the file, with err filled. */
int mc_ctl_creds_load(mc_keys *out, const char *file, const char **source, mc_err *err);

/* base_url: "http://HOST:PORT" with an optional path prefix ("/ctl"), no
 * query. Returns 0, MC_E_INVAL (not an http(s) URL, err says why) or
 * MC_E_NOMEM. */
int mc_ctl_client_new(mc_ctl_client **out, const char *base_url, const mc_key *key,
                      const char *region, mc_err *err);
void mc_ctl_client_free(mc_ctl_client *c);

/* While *flag is non-zero, requests are cut short (MC_E_IO) within about a
 * second: lets a thread blocked in a long poll stop (the edge's follower). */
void mc_ctl_client_set_abort(mc_ctl_client *c, const _Atomic int *flag);

/* The base URL as given (for messages). */
const char *mc_ctl_client_url(const mc_ctl_client *c);

/* Send METHOD base+path[?query] with body (NULL: none; sent as
 * application/json) and wait at most timeout_ms for the whole answer.
 * path starts with '/' and is sent as written (already encoded).
 * Returns 0 when an HTTP answer arrived, whatever its status (r filled; free
 * it with mc_ctl_reply_free), or MC_E_IO when the server could not be
 * reached or did not answer in time, MC_E_TOOBIG for an answer over
 * MC_CTL_MAX_REPLY, MC_E_NOMEM; err says what happened. */
int mc_ctl_request(mc_ctl_client *c, const char *method, const char *path, const char *query,
                   const char *body, long timeout_ms, mc_ctl_reply *r, mc_err *err);
void mc_ctl_reply_free(mc_ctl_reply *r);

/* A one-line description of an error answer for stderr:
 * "403 SignatureDoesNotMatch: The request signature ..." from the spec's
 * {"error","message"} body, else the status and the start of the body. */
void mc_ctl_reply_describe(const mc_ctl_reply *r, char *out, size_t len);

#endif
