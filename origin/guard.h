/* guard.h — strict HTTP/1.1 request framing, limits, timeouts and connection
 * caps in front of the origin's evhttp listeners (S3 and control).
 *
 * libevent 2.1's evhttp is lenient where a server behind or beside other
 * HTTP parsers must not be (measured: tests/e2e/test_origin_hostile.py):
 * it takes duplicate and signed Content-Length, obs-fold, header names with
 * any byte, NUL and control bytes in values, bare-LF lines, no or several
 * Host headers, any HTTP/1.x version, any Transfer-Encoding (as no body),
 * "0x"-prefixed chunk sizes, and has no head deadline (a client dribbling a
 * byte per read timeout holds a connection for ever) and no connection cap.
 *
 * The guard sits between the socket and evhttp as a bufferevent filter
 * (evhttp_set_bevcb), reads the byte stream of every connection and passes
 * it on only once each request head is complete and valid, and each body
 * chunk is well framed; evhttp never sees a byte the guard did not check.
 * Chunk extensions, which evhttp refuses, are dropped on the way (RFC 9112
 * 7.1.1: a recipient ignores them); nothing else is changed.
 * A refused request is answered in order, after the responses to the
 * requests before it, with Connection: close:
 *   400  ambiguous or malformed framing or head (RFC 9112 2-7): CL with TE,
 *        duplicate or non-digit CL, duplicate TE, chunked in HTTP/1.0, obs-fold,
 *        invalid header name, NUL/CR/LF/CTL in a value or the target, a
 *        fragment, no or several Host headers or an invalid Host, a bad chunk
 *        size line or chunk terminator (mid-body: evhttp answers the 400)
 *   408  head not complete within header_timeout_ms of its first byte
 *   413  Content-Length beyond max_body (evhttp also stops a long chunked body)
 *   414  request target longer than MC_GUARD_MAX_TARGET
 *   431  head larger than MC_GUARD_MAX_HEAD or more than MC_GUARD_MAX_HEADERS
 *   501  a method the origin does not know, a Transfer-Encoding other than chunked
 *   505  an HTTP version other than 1.0 and 1.1
 *   503  over max_connections (this listener) or max_per_client (one IPv4
 *        address or IPv6 /64), answered at once and closed
 * The idle keep-alive and stalled-write limits stay evhttp's own
 * (evhttp_set_timeout_tv, [origin] timeout).
 *
 * Threads: everything on the evhttp's event loop.
 * Ownership: the guard borrows the evhttp and is freed by mc_guard_free
 * after the evhttp and the event base (the connections' guard state is freed
 * by libevent's finalizers, which point back to the guard).
 */
#ifndef MC_GUARD_H
#define MC_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"

#define MC_GUARD_MAX_HEAD 65536
#define MC_GUARD_MAX_HEADERS 100
#define MC_GUARD_MAX_TARGET 8192

struct event_base;
struct evhttp;
struct evhttp_request;

typedef enum { MC_GUARD_S3 = 0, MC_GUARD_CONTROL, MC_GUARD_LISTENERS } mc_guard_listener;

typedef struct mc_guard_config {
    mc_guard_listener listener;   /* metrics label */
    int64_t header_timeout_ms;    /* 0: none */
    uint64_t max_body;            /* Content-Length beyond: 413 */
    int max_connections;          /* 0: no cap */
    int max_per_client;           /* 0: no cap */
} mc_guard_config;

typedef struct mc_guard mc_guard;

/* Put a guard in front of every connection http accepts from now on. */
int mc_guard_new(mc_guard **out, struct event_base *base, struct evhttp *http,
                 const mc_guard_config *cfg);
/* After evhttp_free(http). NULL is fine. */
void mc_guard_free(mc_guard *g);

/* First thing in every evhttp callback of a guarded listener: answers the
 * guard's own refusals (408, 414, 431, 501, 505, 503 ...) and returns true;
 * false for an ordinary request. */
bool mc_guard_answer(struct evhttp_request *req);

/* Check one complete request head (request line to the blank line) as the
 * guard does. Returns 0 or the status to refuse it with; *body_length gets
 * the Content-Length (0 without), *chunked 1 for a chunked body. */
int mc_guard_check_head(const char *head, size_t len, uint64_t max_body, uint64_t *body_length,
                        int *chunked);

/* Prometheus text of the guards' counters (mc_control_render_fn). */
int mc_guard_render_metrics(void *ud, mc_buf *out);

#endif
