/* httpc.h — one HTTP/1.1 keep-alive client connection on a nonblocking
 * socket with its own libevent events, for the load generator: GET a path,
 * parse the response (status, Content-Length or chunked or read-to-close,
 * X-Cache and Cache-Status), count and discard the body, report the outcome.
 *
 * One request at a time per connection (no pipelining). mc_hc_get on an
 * idle connection sends at once; on a closed one it connects first (the
 * request waits for the connect). When the response is complete, or the
 * request fails, the done callback runs once, from the event loop, after
 * which the connection is idle (or closed, reconnecting on the next
 * mc_hc_get). The callback may call mc_hc_get on the same connection. A
 * server closing an idle connection is not an error: the next request
 * reconnects. Bytes that arrive past a response (or on an idle connection)
 * are dropped.
 *
 * Errors in mc_hc_result.error (status codes are not errors here):
 *   MC_HC_CONNECT    the TCP connect failed or timed out
 *   MC_HC_TIMEOUT    no progress for timeout_ms while waiting on the server
 *                    (checked against a coarse clock: up to ~5 ms late)
 *   MC_HC_CLOSED     closed (or reset) before any byte of the response
 *   MC_HC_TRUNCATED  closed mid-response, or body shorter than declared
 *   MC_HC_PROTOCOL   unparsable status line, header or chunk size, or a
 *                    line longer than the 16 KiB read buffer
 * Memory: about 21 KiB per connection, fixed: a 16 KiB read buffer for the
 * status line, headers, chunk framing and whatever body bytes arrive with
 * them, and the request. The rest of a body is dropped in the kernel
 * without being copied (recv MSG_TRUNC on TCP; read into the buffer where
 * a socket refuses that). No allocation per request.
 * Threads: the connection belongs to its event_base's thread.
 * Ownership: the caller frees with mc_hc_free (not from within the done
 * callback); host and the sockaddr are copied.
 */
#ifndef MC_LOAD_HTTPC_H
#define MC_LOAD_HTTPC_H

#include <stdint.h>
#include <sys/socket.h>

struct event_base;

typedef enum mc_hc_error {
    MC_HC_OK = 0,
    MC_HC_CONNECT,
    MC_HC_TIMEOUT,
    MC_HC_CLOSED,
    MC_HC_TRUNCATED,
    MC_HC_PROTOCOL,
    MC_HC_ERROR_COUNT
} mc_hc_error;

typedef enum mc_hc_cache {
    MC_HC_UNKNOWN = 0,   /* neither X-Cache nor Cache-Status */
    MC_HC_HIT,
    MC_HC_MISS,
} mc_hc_cache;

typedef struct mc_hc_result {
    mc_hc_error error;
    int status;              /* 0 when no status line arrived */
    mc_hc_cache cache;
    uint64_t body_bytes;     /* received, also on a truncated response */
} mc_hc_result;

typedef struct mc_hc_conn mc_hc_conn;
typedef void (*mc_hc_done_cb)(mc_hc_conn *c, const mc_hc_result *r, void *arg);

/* A closed connection to addr (host is the Host header, "127.0.0.1:8080").
 * NULL on allocation failure. */
mc_hc_conn *mc_hc_new(struct event_base *base, const struct sockaddr *addr, socklen_t addrlen,
                      const char *host, int timeout_ms, mc_hc_done_cb done, void *arg);
/* Send GET path; the connection must be idle (mc_hc_busy() == 0). 0, or
 * MC_E_STATE (busy) / MC_E_IO (no socket) / MC_E_TOOBIG (path over 4 KiB)
 * without calling done. */
int mc_hc_get(mc_hc_conn *c, const char *path);
int mc_hc_busy(const mc_hc_conn *c);
void mc_hc_free(mc_hc_conn *c);

/* Classify one header value (for tests): X-Cache "Hit from ..." / "Miss
 * from ...", or the last member of a Cache-Status list with a "hit"
 * parameter (RFC 9211) or "fwd=". X-Cache "RefreshHit" (revalidated with the
 * upstream) counts as a miss: the upstream was asked. */
mc_hc_cache mc_hc_classify(const char *name, const char *value);

#endif
