/* http1.h — the HTTP/1.1 server side of a connection (viewer and admin).
 *
 * A connection reads one request head at a time (pipelined requests wait in
 * the input buffer), hands it to the listener's handler, and lets the handler
 * answer at its own pace: all at once, or streamed as an upstream delivers.
 * Keep-alive per RFC 9112 9.3. The head must arrive within
 * opts.header_timeout_ms of its first byte, and opts.max_open caps the
 * connections open at once, opts.max_per_client those of one client (see
 * mc_http_server_opts). Request bodies (Content-Length or chunked)
 * are read whole before the handler runs when the server allows them
 * (opts.max_body > 0): a larger body gets 413, a malformed chunked body 400,
 * and Expect: 100-continue is answered. With max_body = 0 a body is not read:
 * the request is handled and the connection closed after the response.
 * A connection runs over a plain socket or any ready bufferevent (TLS: a
 * bufferevent_openssl); over TLS a clean close sends close_notify and
 * mc_http_abort does not, so a cut body stays visibly cut.
 * Cost: a plain socket reads with one recv per wakeup, keeps its read
 * interest while a request is handled, and writes a finished answer at once
 * (one writev), so a keep-alive hit makes no epoll_ctl; write interest is
 * on only while output waits (the loops use epoll's changelist).
 *
 * Threads: a connection lives on one worker's event loop; every function
 * here must be called on that loop.
 * Ownership: the connection owns the request (valid until the response
 * completes or the connection closes) and its buffers. A handler that answers
 * later registers an mc_http_owner; the connection calls owner->on_close if
 * it dies first, after which the handler must not touch it again.
 * Memory: the output backlog is the handler's to bound: check
 * mc_http_backlog() and wait for on_drain before writing more.
 */
#ifndef MC_HTTP1_H
#define MC_HTTP1_H

#include <stdatomic.h>
#include <stdint.h>
#include <event2/event.h>
#include <sys/socket.h>
#include "common/buf.h"

#define MC_HTTP_MAX_HEAD 16384
#define MC_HTTP_MAX_HEADERS 100

typedef struct mc_http_conn mc_http_conn;

typedef struct mc_http_header {
    const char *name;
    const char *value;    /* trimmed */
} mc_http_header;

typedef struct mc_http_req {
    const char *method;
    const char *target;   /* as received */
    const char *path;     /* target's path part (no query), as received */
    const char *query;    /* after '?', or NULL */
    int minor;            /* HTTP/1.<minor> */
    int is_head;
    int keepalive;        /* the connection may be reused after this response */
    mc_http_header *headers;   /* nheaders of them (at most MC_HTTP_MAX_HEADERS), owned by the connection */
    int nheaders;
    int has_body;         /* Content-Length > 0 or Transfer-Encoding: chunked */
    const unsigned char *body;  /* the body read (opts.max_body > 0), else NULL */
    size_t body_len;
} mc_http_req;

/* First header value with this name (case-insensitive), or NULL. */
const char *mc_http_req_header(const mc_http_req *r, const char *name);

/* Called for each request. The handler must eventually end the response
 * (mc_http_respond_end / mc_http_abort) unless on_close is called first. */
typedef void (*mc_http_handler)(mc_http_conn *c, mc_http_req *req, void *ud);

typedef struct mc_http_owner {
    void (*on_drain)(void *arg);   /* output fell below the low watermark */
    void (*on_close)(void *arg);   /* the connection died mid-response */
    void *arg;
} mc_http_owner;

typedef struct mc_http_server_opts {
    mc_http_handler handler;
    void *ud;
    int64_t timeout_ms;            /* idle keep-alive, header read, stalled write */
    const char *server_name;       /* "Server" header value, or NULL */
    mc_http_conn **registry;       /* list head of this server's open connections */
    size_t max_body;               /* request bodies read up to this size; 0: not read */
    /* Slowloris: a request head must be complete this long after its first
     * byte (the idle timeout restarts on every byte), else 408 and close;
     * 0: no limit. */
    int64_t header_timeout_ms;
    /* Connection cap: *open_count counts this server's open connections
     * (shared by every loop that serves it); a new one beyond max_open is
     * closed at once and counted in connections_refused. NULL / 0: no cap. */
    atomic_int *open_count;
    int max_open;
    /* Per-client cap: a client may hold at most max_per_client connections
     * of this server at once (counted in *clients, shared by every loop); the
     * next one is closed at accept. A client is an IPv4 address, or an IPv6
     * /64 (one host usually has a whole /64; IPv4-mapped addresses count as
     * IPv4). NULL / 0: no cap. */
    struct mc_http_clients *clients;
    int max_per_client;
    /* Which refusal counters to bump (mc_stats connections_refused[listener]). */
    int listener;
} mc_http_server_opts;

/* Connections per client, counted without a lock: a fixed table of atomic
 * counters indexed by a keyed hash of the client's address (random seed per
 * table, so nobody can aim at another client's slot). Two clients whose
 * hashes collide share one count: with 65,536 slots that needs ~300 distinct
 * busy clients before a collision is likely, and a collision can only make
 * the cap stricter for the pair, never looser. */
#define MC_HTTP_CLIENT_SLOTS 65536
typedef struct mc_http_clients {
    uint64_t seed;
    atomic_int slot[MC_HTTP_CLIENT_SLOTS];
} mc_http_clients;

/* A zeroed table with a fresh seed, or NULL without memory. Free with free(). */
mc_http_clients *mc_http_clients_new(void);
/* The slot an address counts in (exposed for tests). */
unsigned mc_http_client_slot(const mc_http_clients *t, const struct sockaddr *sa);

/* Close every connection in a registry (shutdown, after its loop stopped);
 * owners get on_close as if the peer had gone. */
void mc_http_close_all(mc_http_conn **registry);

/* Draining (shutdown): close the registry's connections that wait for a
 * request with nothing buffered; the others close once the response in
 * progress (or the one to the request already arriving) is complete. */
void mc_http_drain(mc_http_conn **registry);

/* Take ownership of an accepted socket. Returns -1 (the socket closed)
 * when out of memory or over opts.max_open or opts.max_per_client. */
int mc_http_conn_new(struct event_base *base, int fd, const mc_http_server_opts *opts);
/* Take ownership of a ready bufferevent over an accepted socket (e.g. a
 * bufferevent_openssl in the accepting state, BEV_OPT_CLOSE_ON_FREE): the
 * connection runs over whatever the bufferevent is. Freed on failure. */
struct bufferevent;
int mc_http_conn_new_bev(struct bufferevent *bev, const mc_http_server_opts *opts);

void mc_http_set_owner(mc_http_conn *c, const mc_http_owner *o);

/* Start the response. hdrs: "Name: value\r\n" lines (may be NULL); the
 * connection adds Content-Length (when content_length >= 0), Connection and
 * Transfer-Encoding: chunked (HTTP/1.1, unknown length). For HEAD, 204 and
 * 304 no body is sent whatever the handler writes. */
void mc_http_respond_start(mc_http_conn *c, int status, const char *reason, const char *hdrs,
                           int64_t content_length);
void mc_http_respond_body(mc_http_conn *c, const void *data, size_t len);
/* The same without copying: the connection keeps a reference to data and
 * calls release(data, len, arg) once when it no longer needs it (sent, or
 * the connection closed), on this loop — at once when nothing is sent (HEAD,
 * 204, 304). Lets one buffer go to many viewers (a fill's fan-out). */
typedef void (*mc_http_release_fn)(const void *data, size_t len, void *arg);
void mc_http_respond_body_ref(mc_http_conn *c, const void *data, size_t len, mc_http_release_fn release,
                              void *arg);
/* For bytes valid only during this call (a view into the store's map,
 * whose read transaction ends when the caller returns): on a plain socket
 * whose framing is Content-Length, what is queued and then data go out now
 * in one writev, straight from data, and what the socket does not take is
 * left to the caller, not copied. Returns the bytes of data taken: all of
 * len when it cannot write directly (TLS, chunked, a long queue: copied) or
 * on a socket error (copied; the connection reports the error as usual).
 * Less than len: call mc_http_await_writable and offer the rest from the
 * owner's on_drain. */
size_t mc_http_respond_body_direct(mc_http_conn *c, const void *data, size_t len);
/* Call the owner's on_drain once the socket can take more (a one-shot write
 * event with the connection's write timeout, which closes it as a stalled
 * viewer), or, when the output buffer still holds bytes, once it drains as
 * usual. */
void mc_http_await_writable(mc_http_conn *c);
/* The response is complete; a keep-alive connection reads the next request. */
void mc_http_respond_end(mc_http_conn *c);
/* One-shot: a complete response with a small body. */
void mc_http_respond(mc_http_conn *c, int status, const char *reason, const char *hdrs,
                     const char *ctype, const void *body, size_t len);
/* Abandon the response: the connection closes short of its framing, so a
 * client sees fewer bytes than Content-Length (or no last chunk), never a
 * short success. What is already buffered is sent first (a close-delimited
 * body is reset at once instead); the handler must not touch c again. */
void mc_http_abort(mc_http_conn *c);
/* Bytes written but not yet sent to the client. */
size_t mc_http_backlog(const mc_http_conn *c);
/* Peer address, for logs. */
const char *mc_http_peer(const mc_http_conn *c);

const char *mc_http_reason(int status);

#endif
