/* http1.c — see http1.h. Parsing follows RFC 9112: request line, header
 * fields without obs-fold, no whitespace before the colon, and the
 * Content-Length / Transfer-Encoding rules of section 6. */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/random.h>
#include <unistd.h>
#include <xxhash.h>
#include "common/log.h"
#include "edge/http1.h"
#include "edge/stats.h"

#define MC_CONN_MAGIC 0x434f4e4eu
#define LOW_WATERMARK (256u * 1024u)
#define MAX_SINGLE_WRITE (1u << 20)

typedef enum {
    CONN_READING,     /* waiting for a request head */
    CONN_BODY,        /* reading the request body (opts.max_body > 0) */
    CONN_HANDLING,    /* handler owns the response */
    CONN_FLUSHING,    /* response ended; sending what is buffered */
    CONN_CLOSING,     /* close once the output is flushed */
} conn_state;

struct mc_http_conn {
    uint32_t magic;
    struct bufferevent *bev;
    conn_state state;
    mc_http_server_opts opts;
    mc_http_req req;
    char *head;                 /* owned copy of the request head, then req.headers' slots;
                                 * req points into it (one allocation, none while idle) */
    int max_headers;            /* slots after the head: as many as its bytes can hold */
    mc_http_owner owner;
    int has_owner;
    int started;                /* status line sent */
    int no_body;                /* HEAD / 204 / 304 */
    int chunked;
    int64_t remaining;          /* declared Content-Length left to send; -1 unknown */
    int close_after;            /* close after this response */
    int in_handler;             /* depth of opts.handler calls running on it */
    int free_deferred;          /* closed inside the handler: freed when it returns */
    int aborted;                /* closing after mc_http_abort: flush, then close without close_notify */
    mc_buf body;                /* request body being read (CONN_BODY) */
    int64_t body_left;          /* Content-Length bytes still to read, or chunk bytes left */
    int body_chunked;
    int chunk_state;            /* chunked decoding: 0 size line, 1 data, 2 CRLF after data, 3 trailers */
    struct event *head_timer;   /* opts.header_timeout_ms from a head's first byte */
    int plain_fd;               /* the socket when not TLS (written directly), else -1 */
    int peer_eof;               /* plain: the viewer closed its side while being answered */
    struct event *rev;          /* plain: read interest of our own (read_sock), else NULL */
    struct event *wev;          /* plain: one-shot write interest (mc_http_await_writable), or NULL */
    int counted;                /* holds one unit of *opts.open_count */
    int client_slot;            /* holds one unit of opts.clients->slot[client_slot]; -1: none */
    char peer[64];
    mc_http_conn *prev, *next;  /* in *opts.registry */
};

static void conn_destroy(mc_http_conn *c);

/* Close and free c. Inside its handler (an answer that ended at once on a
 * Connection: close request, an abort) the free waits for the handler to
 * return, so a handler may still read c and its request after answering. */
static void conn_free(mc_http_conn *c)
{
    assert(c->magic == MC_CONN_MAGIC);
    if (c->in_handler > 0) {
        c->free_deferred = 1;
        return;
    }
    conn_destroy(c);
}

static void conn_destroy(mc_http_conn *c)
{
    assert(c->magic == MC_CONN_MAGIC);
    if (c->has_owner && c->owner.on_close) {
        c->has_owner = 0;
        c->owner.on_close(c->owner.arg);
    }
    atomic_fetch_sub_explicit(&mc_stats_global.connections_open, 1, memory_order_relaxed);
    if (c->counted)
        atomic_fetch_sub_explicit(c->opts.open_count, 1, memory_order_relaxed);
    if (c->client_slot >= 0)
        atomic_fetch_sub_explicit(&c->opts.clients->slot[c->client_slot], 1, memory_order_relaxed);
    if (c->head_timer)
        event_free(c->head_timer);
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->prev)
        c->prev->next = c->next;
    else if (c->opts.registry)
        *c->opts.registry = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c->head);
    mc_buf_free(&c->body);
    c->magic = 0;
    free(c);
}

/* A close that is not an error. Over TLS: when the response is complete
 * and sent, say so with close_notify first (RFC 8446 6.1), so a client can
 * tell this close from a truncation (best effort, straight to the socket);
 * when the viewer has gone, mark the session closed quietly. Either way
 * OpenSSL keeps the session resumable, which it does not after an unclean
 * close. Never after a TLS error. */
static void conn_close_clean(mc_http_conn *c, int peer_gone)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    if (ssl && SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN)) {
        if (peer_gone)
            SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        else
            SSL_shutdown(ssl);
        ERR_clear_error();   /* the queue is per thread: leave nothing for the next connection */
    }
    conn_free(c);
}

const char *mc_http_reason(int s)
{
    switch (s) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 508: return "Loop Detected";
    default: return "Unknown";
    }
}

const char *mc_http_req_header(const mc_http_req *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static int is_tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Does a comma-separated header list contain token (case-insensitive)? */
static int has_token(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0)
            return 1;
        p = e;
    }
    return 0;
}

/* Where the header slots start after a head of n bytes and its NUL. */
static size_t head_slots_at(size_t n)
{
    return (n + 1 + _Alignof(mc_http_header) - 1) & ~(_Alignof(mc_http_header) - 1);
}

/* Parse the head in c->head (NUL-terminated, CRLF lines, final blank line
 * removed). Returns 0 or an HTTP status to answer with. */
static int parse_head(mc_http_conn *c)
{
    mc_http_req *r = &c->req;
    memset(r, 0, sizeof *r);
    r->headers = (mc_http_header *)(void *)(c->head + head_slots_at(strlen(c->head)));
    char *line = c->head, *eol = strstr(line, "\r\n");
    if (eol)
        *eol = '\0';
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' '))
        return 400;
    *sp1 = *sp2 = '\0';
    r->method = line;
    r->target = sp1 + 1;
    for (const char *m = r->method; *m; m++)
        if (!is_tchar((unsigned char)*m))
            return 400;
    if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)sp2[8]) || sp2[9])
        return strncmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400;
    r->minor = sp2[8] - '0';
    if (!*r->target)
        return 400;
    for (const char *t = r->target; *t; t++)
        if ((unsigned char)*t <= 0x20 || *t == 0x7f)
            return 400;
    if (strlen(r->target) > 8192)
        return 414;
    char *p = eol ? eol + 2 : NULL;
    while (p && *p) {
        eol = strstr(p, "\r\n");
        if (eol)
            *eol = '\0';
        if (*p == ' ' || *p == '\t')
            return 400;                       /* obs-fold: RFC 9112 5.2 allows rejecting */
        char *colon = strchr(p, ':');
        if (!colon || colon == p)
            return 400;
        for (char *n = p; n < colon; n++)
            if (!is_tchar((unsigned char)*n))
                return 400;                   /* includes whitespace before ':' */
        if (r->nheaders == c->max_headers)
            return 431;
        *colon = '\0';
        char *v = colon + 1, *ve = v + strlen(v);
        while (*v == ' ' || *v == '\t')
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            *--ve = '\0';
        for (char *q = v; *q; q++)
            if ((unsigned char)*q < 0x20 && *q != '\t')
                return 400;
        r->headers[r->nheaders].name = p;
        r->headers[r->nheaders++].value = v;
        p = eol ? eol + 2 : NULL;
    }
    /* the target: origin-form, or absolute-form reduced to its path */
    char *t = (char *)r->target;
    if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
        char *slash = strchr(strstr(t, "://") + 3, '/');
        if (!slash)
            return 400;
        t = slash;
    } else if (t[0] != '/' && strcmp(t, "*") != 0) {
        return 400;
    }
    char *q = strchr(t, '?');
    char *frag = strchr(t, '#');
    if (frag)
        return 400;
    static char star[] = "*";
    r->path = t[0] == '*' ? star : t;
    if (q) {
        *q = '\0';   /* target keeps the full text before this point: copy first */
        r->query = q + 1;
    }
    if (r->minor >= 1 && !mc_http_req_header(r, "Host"))
        return 400;                           /* RFC 9112 3.2 */
    int nhost = 0;
    for (int i = 0; i < r->nheaders; i++)
        nhost += strcasecmp(r->headers[i].name, "Host") == 0;
    if (nhost > 1)
        return 400;
    const char *conn = mc_http_req_header(r, "Connection");
    r->keepalive = r->minor >= 1 ? !has_token(conn, "close") : has_token(conn, "keep-alive");
    const char *te = mc_http_req_header(r, "Transfer-Encoding");
    const char *cl = mc_http_req_header(r, "Content-Length");
    if (te && cl)
        return 400;                           /* RFC 9112 6.1: a smuggling vector */
    c->body_left = 0;
    if (cl) {
        for (const char *d = cl; *d; d++)
            if (!isdigit((unsigned char)*d))
                return 400;
        for (int i = 0; i < r->nheaders; i++)
            if (strcasecmp(r->headers[i].name, "Content-Length") == 0 && strcmp(r->headers[i].value, cl))
                return 400;
        if (strlen(cl) > 18)
            return 413;
        c->body_left = (int64_t)strtoll(cl, NULL, 10);
        r->has_body = c->body_left > 0;
    }
    if (te) {
        int nte = 0;
        for (int i = 0; i < r->nheaders; i++)
            nte += strcasecmp(r->headers[i].name, "Transfer-Encoding") == 0;
        if (nte > 1 || strcasecmp(te, "chunked") != 0)
            return strstr(te, "chunked") || nte > 1 ? 400 : 501;  /* only plain chunked is understood */
        if (r->minor < 1)
            return 400;
        r->has_body = 1;
        c->body_chunked = 1;
    }
    if (r->has_body && !c->opts.max_body)
        r->keepalive = 0;                     /* the body is not read: close after */
    else if (cl && c->body_left > (int64_t)c->opts.max_body)
        return 413;
    r->is_head = strcmp(r->method, "HEAD") == 0;
    return 0;
}

static void on_read(struct bufferevent *bev, void *arg);
static void dispatch(mc_http_conn *c);
static void read_body(mc_http_conn *c);

/* Forget the last exchange: an error answered before the next head is parsed
 * must not inherit its framing (HEAD, chunked, Content-Length). */
static void reset_exchange(mc_http_conn *c)
{
    if (c->wev)
        event_del(c->wev);                    /* a write wait the last answer left armed */
    c->started = c->no_body = c->chunked = c->close_after = c->has_owner = 0;
    c->remaining = -1;
    c->body_left = 0;
    c->body_chunked = c->chunk_state = 0;
    mc_buf_free(&c->body);                    /* a big body's memory is not kept per connection */
    memset(&c->req, 0, sizeof c->req);
    c->req.minor = 1;
    free(c->head);
    c->head = NULL;
}

/* Read interest on or off. A plain socket reads through its own event
 * (read_sock); re-adding it while pending only restarts the idle timeout
 * (no syscall). A TLS connection reads through its bufferevent. */
static void read_on(mc_http_conn *c)
{
    if (c->rev) {
        struct timeval tv = {c->opts.timeout_ms / 1000, (c->opts.timeout_ms % 1000) * 1000};
        event_add(c->rev, c->opts.timeout_ms > 0 ? &tv : NULL);
    } else {
        bufferevent_enable(c->bev, EV_READ);
    }
}

static void read_off(mc_http_conn *c)
{
    if (c->rev)
        event_del(c->rev);
    else
        bufferevent_disable(c->bev, EV_READ);
}

/* A plain socket's answer goes out now, in one writev, rather than on the
 * loop's next turn: a hit then costs no write interest at all (switched on
 * by mc_http_respond_start, off again here before the loop applies it).
 * Whatever the socket does not take (full, or an error) stays for the
 * bufferevent, which reports errors through on_event as before. */
static void write_now(mc_http_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->plain_fd < 0)
        return;
    if (evbuffer_get_length(out) > 0) {
        evbuffer_unfreeze(out, 1);            /* a bufferevent keeps its output's start frozen */
        evbuffer_write(out, c->plain_fd);
        evbuffer_freeze(out, 1);
    }
    if (evbuffer_get_length(out) == 0)        /* (also after mc_http_respond_body_direct sent it all) */
        bufferevent_disable(c->bev, EV_WRITE);
}

static void finish_or_next(mc_http_conn *c)
{
    write_now(c);
    if (c->close_after) {
        c->state = CONN_CLOSING;
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
            conn_close_clean(c, 0);
        }
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
        c->state = CONN_FLUSHING;
        return;
    }
    c->state = CONN_READING;
    reset_exchange(c);
    if (!c->peer_eof)
        read_on(c);                           /* a plain socket's still is: no syscall */
    else if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
        conn_close_clean(c, 1);
        return;
    }
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        on_read(c->bev, c);                   /* a pipelined request is waiting */
}

static void error_response(mc_http_conn *c, int status)
{
    c->close_after = 1;
    c->state = CONN_HANDLING;
    mc_stats_request(MC_RESULT_ERROR, status);
    char body[128];
    int n = snprintf(body, sizeof body, "%d %s\n", status, mc_http_reason(status));
    mc_http_respond(c, status, NULL, NULL, "text/plain; charset=utf-8", body, (size_t)n);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    mc_http_conn *c = arg;
    assert(c->magic == MC_CONN_MAGIC);
    if (c->state == CONN_BODY) {
        read_body(c);
        return;
    }
    if (c->state != CONN_READING)
        return;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->head_timer && !evtimer_pending(c->head_timer, NULL) && evbuffer_get_length(in) > 0) {
        struct timeval tv = {c->opts.header_timeout_ms / 1000, (c->opts.header_timeout_ms % 1000) * 1000};
        evtimer_add(c->head_timer, &tv);      /* from the first byte, not reset by later ones */
    }
    /* tolerate blank lines before a request (RFC 9112 2.2) */
    while (evbuffer_get_length(in) >= 2) {
        unsigned char two[2];
        evbuffer_copyout(in, two, 2);
        if (two[0] != '\r' || two[1] != '\n')
            break;
        evbuffer_drain(in, 2);
    }
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) > MC_HTTP_MAX_HEAD)
            error_response(c, 431);
        else if (c->peer_eof)
            conn_close_clean(c, 1);           /* the rest of this head will never come */
        return;
    }
    if ((size_t)end.pos + 4 > MC_HTTP_MAX_HEAD) {
        error_response(c, 431);
        return;
    }
    if (c->head_timer)
        evtimer_del(c->head_timer);
    size_t n = (size_t)end.pos + 2;           /* keep the last header's CRLF */
    /* a header line is at least "a:" CRLF: a head of n bytes has at most n/4 */
    c->max_headers = n / 4 + 1 < MC_HTTP_MAX_HEADERS ? (int)(n / 4 + 1) : MC_HTTP_MAX_HEADERS;
    c->head = malloc(head_slots_at(n) + (size_t)c->max_headers * sizeof(mc_http_header));
    if (!c->head) {
        conn_free(c);
        return;
    }
    evbuffer_remove(in, c->head, n);
    evbuffer_drain(in, 2);
    c->head[n] = '\0';
    /* a NUL would end the string parse early and hide the headers after it
     * (a smuggling vector): refuse the request */
    int status = memchr(c->head, '\0', n) ? 400 : parse_head(c);
    if (status) {
        error_response(c, status);
        return;
    }
    c->close_after = !c->req.keepalive;
    if (c->req.has_body && c->opts.max_body) {
        c->state = CONN_BODY;
        const char *expect = mc_http_req_header(&c->req, "Expect");
        if (expect && strcasecmp(expect, "100-continue") == 0 && c->req.minor >= 1) {
            evbuffer_add_printf(bufferevent_get_output(bev), "HTTP/1.1 100 Continue\r\n\r\n");
            bufferevent_enable(bev, EV_WRITE);
        }
        read_body(c);
        return;
    }
    dispatch(c);
}

static void dispatch(mc_http_conn *c)
{
    c->state = CONN_HANDLING;
    /* One request at a time. A plain socket keeps its read interest (turning
     * it off and on costs two epoll_ctl per request): what arrives meanwhile
     * waits in the input buffer (bounded by its high watermark), and an EOF
     * or the idle timeout is only noted (on_event) until the answer is out. */
    if (c->plain_fd < 0)
        bufferevent_disable(c->bev, EV_READ);
    c->in_handler++;
    c->opts.handler(c, &c->req, c->opts.ud);
    if (--c->in_handler == 0 && c->free_deferred)
        conn_destroy(c);
}

/* Append up to want bytes of input to the body; returns how many. */
static size_t take_body(mc_http_conn *c, struct evbuffer *in, size_t want)
{
    size_t n = evbuffer_get_length(in);
    if (n > want)
        n = want;
    if (n && mc_buf_reserve(&c->body, n) == 0) {
        evbuffer_remove(in, c->body.data + c->body.len, n);
        c->body.len += n;
        return n;
    }
    return 0;
}

/* Read the request body (Content-Length or chunked, RFC 9112 6 and 7.1) as
 * far as the input allows; dispatch when complete. Chunk extensions are
 * ignored, trailers are read and dropped. */
static void read_body(mc_http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (!c->body_chunked) {
        c->body_left -= (int64_t)take_body(c, in, (size_t)c->body_left);
        if (c->body_left > 0)
            return;
    } else {
        for (;;) {
            if (c->chunk_state == 1) {
                c->body_left -= (int64_t)take_body(c, in, (size_t)c->body_left);
                if (c->body_left > 0)
                    return;
                c->chunk_state = 2;
            }
            size_t len = 0;
            char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF_STRICT);
            if (!line) {
                if (evbuffer_get_length(in) > 4096) {
                    error_response(c, 400);   /* an endless size or trailer line */
                    return;
                }
                return;
            }
            int bad = 0;
            if (c->chunk_state == 0) {
                char *end = NULL;
                errno = 0;
                unsigned long long sz = strtoull(line, &end, 16);
                /* chunk-size = 1*HEXDIG: strtoull's "0x" prefix is not one */
                bad = end == line || errno || (*end && *end != ';' && *end != ' ' && *end != '\t') ||
                      strspn(line, "0123456789abcdefABCDEF") != (size_t)(end - line);
                if (!bad && sz > c->opts.max_body - c->body.len) {
                    free(line);
                    error_response(c, 413);
                    return;
                }
                c->body_left = (int64_t)sz;
                c->chunk_state = sz ? 1 : 3;
            } else if (c->chunk_state == 2) {
                bad = len != 0;               /* the CRLF after the chunk data */
                c->chunk_state = 0;
            } else if (len == 0) {
                free(line);
                break;                        /* end of trailers: the body is complete */
            }
            free(line);
            if (bad) {
                error_response(c, 400);
                return;
            }
        }
    }
    c->req.body = c->body.data ? (const unsigned char *)c->body.data : (const unsigned char *)"";
    c->req.body_len = c->body.len;
    dispatch(c);
}

/* The head did not arrive within header_timeout of its first byte. */
static void on_head_timeout(evutil_socket_t fd, short what, void *arg)
{
    mc_http_conn *c = arg;
    (void)fd, (void)what;
    assert(c->magic == MC_CONN_MAGIC);
    if (c->state != CONN_READING)
        return;
    mc_counter_add(&mc_stats_global.header_timeouts, 1);
    read_off(c);
    error_response(c, 408);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    mc_http_conn *c = arg;
    assert(c->magic == MC_CONN_MAGIC);
    if (c->state == CONN_HANDLING) {
        if (c->has_owner && c->owner.on_drain)
            c->owner.on_drain(c->owner.arg);
    } else if (c->state == CONN_FLUSHING && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        finish_or_next(c);
    } else if (c->state == CONN_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        if (c->aborted)
            conn_free(c);                     /* no close_notify after a cut body */
        else
            conn_close_clean(c, 0);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    mc_http_conn *c = arg;
    (void)bev;
    if (c->state != CONN_READING && c->state != CONN_BODY && (what & BEV_EVENT_READING) &&
        !(what & BEV_EVENT_ERROR)) {
        /* a plain socket reading while it answers (see dispatch): the read
         * side is off now; an EOF closes once the answer and the pipelined
         * requests before it are done, an idle read timeout is not one */
        if (what & BEV_EVENT_EOF)
            c->peer_eof = 1;
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (c->state == CONN_HANDLING)
            mc_counter_add(&mc_stats_global.client_aborts, 1);
        if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
            conn_free(c);
        else
            conn_close_clean(c, 1);
    }
}

/* A plain socket's reads: one recv into the input buffer, no FIONREAD
 * first (what evbuffer_read does on every read), then on_read as the
 * bufferevent would call it; EOF, errors and the idle timeout go to
 * on_event as the bufferevent would report them. */
#define READ_SIZE (4096u - 128u)   /* with libevent's chain header: one 4 KiB block */
static void read_sock(evutil_socket_t fd, short what, void *arg)
{
    mc_http_conn *c = arg;
    assert(c->magic == MC_CONN_MAGIC);
    if (what & EV_TIMEOUT) {
        if (c->state == CONN_READING || c->state == CONN_BODY)
            on_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, c);
        return;                               /* answering: not idle */
    }
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;
    ssize_t n = -1;
    int err = ENOMEM;
    evbuffer_unfreeze(in, 0);                 /* a bufferevent keeps its input's end frozen */
    if (evbuffer_reserve_space(in, READ_SIZE, &v, 1) >= 1) {
        n = recv(fd, v.iov_base, v.iov_len, 0);
        err = errno;
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(in, &v, 1);
        }
    }
    evbuffer_freeze(in, 0);
    if (n > 0) {
        /* answering a request: what a pipelining client sends meanwhile
         * waits, up to a bound (finish_or_next reads on) */
        if (c->state != CONN_READING && c->state != CONN_BODY && evbuffer_get_length(in) > MC_HTTP_MAX_HEAD * 4)
            event_del(c->rev);
        on_read(c->bev, c);
        return;
    }
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
        return;
    event_del(c->rev);
    on_event(c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
}

int mc_http_conn_new(struct event_base *base, int fd, const mc_http_server_opts *opts)
{
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        close(fd);
        return -1;
    }
    return mc_http_conn_new_bev(bev, opts);
}

mc_http_clients *mc_http_clients_new(void)
{
    mc_http_clients *t = calloc(1, sizeof *t);
    if (t && getrandom(&t->seed, sizeof t->seed, 0) != (ssize_t)sizeof t->seed)
        t->seed = (uint64_t)(uintptr_t)t ^ (uint64_t)time(NULL);   /* no entropy yet: still unguessable enough */
    return t;
}

unsigned mc_http_client_slot(const mc_http_clients *t, const struct sockaddr *sa)
{
    const unsigned char *key = NULL;
    size_t n = 0;
    if (sa->sa_family == AF_INET) {
        key = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        n = 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        key = a->s6_addr;
        n = 8;                                /* the /64 */
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            key = a->s6_addr + 12;            /* the same client as over IPv4 */
            n = 4;
        }
    }
    return (unsigned)(XXH3_64bits_withSeed(key, n, t->seed) % MC_HTTP_CLIENT_SLOTS);
}

static void refuse(struct bufferevent *bev, const mc_http_server_opts *opts, int reason)
{
    mc_counter_add(&mc_stats_global.connections_refused[opts->listener][reason], 1);
    bufferevent_free(bev);                    /* closed at once: no answer costs less */
}

/* Take one unit of each cap (per client, then total), or refuse. */
static int admit(struct bufferevent *bev, const mc_http_server_opts *opts, const struct sockaddr_storage *ss,
                 int have_peer, int *slot_out)
{
    *slot_out = -1;
    if (opts->clients && opts->max_per_client > 0 && have_peer &&
        (ss->ss_family == AF_INET || ss->ss_family == AF_INET6)) {
        unsigned slot = mc_http_client_slot(opts->clients, (const struct sockaddr *)ss);
        if (atomic_fetch_add_explicit(&opts->clients->slot[slot], 1, memory_order_relaxed) >= opts->max_per_client) {
            atomic_fetch_sub_explicit(&opts->clients->slot[slot], 1, memory_order_relaxed);
            refuse(bev, opts, MC_REFUSED_PER_CLIENT);
            return -1;
        }
        *slot_out = (int)slot;
    }
    if (opts->open_count &&
        atomic_fetch_add_explicit(opts->open_count, 1, memory_order_relaxed) >= opts->max_open &&
        opts->max_open > 0) {
        atomic_fetch_sub_explicit(opts->open_count, 1, memory_order_relaxed);
        if (*slot_out >= 0)
            atomic_fetch_sub_explicit(&opts->clients->slot[*slot_out], 1, memory_order_relaxed);
        refuse(bev, opts, MC_REFUSED_TOTAL);
        return -1;
    }
    return 0;
}

int mc_http_conn_new_bev(struct bufferevent *bev, const mc_http_server_opts *opts)
{
    int fd = (int)bufferevent_getfd(bev);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    int have_peer = getpeername(fd, (struct sockaddr *)&ss, &sl) == 0;
    int slot;
    if (admit(bev, opts, &ss, have_peer, &slot) < 0)
        return -1;
    mc_http_conn *c = calloc(1, sizeof *c);
    if (c && opts->header_timeout_ms > 0 &&
        !(c->head_timer = evtimer_new(bufferevent_get_base(bev), on_head_timeout, c))) {
        free(c);
        c = NULL;
    }
    if (c && !bufferevent_openssl_get_ssl(bev) &&
        !(c->rev = event_new(bufferevent_get_base(bev), bufferevent_getfd(bev), EV_READ | EV_PERSIST, read_sock, c))) {
        if (c->head_timer)
            event_free(c->head_timer);
        free(c);
        c = NULL;
    }
    if (!c) {
        if (opts->open_count)
            atomic_fetch_sub_explicit(opts->open_count, 1, memory_order_relaxed);
        if (slot >= 0)
            atomic_fetch_sub_explicit(&opts->clients->slot[slot], 1, memory_order_relaxed);
        bufferevent_free(bev);
        return -1;
    }
    c->counted = opts->open_count != NULL;
    c->client_slot = slot;
    c->magic = MC_CONN_MAGIC;
    c->opts = *opts;
    c->bev = bev;
    c->plain_fd = bufferevent_openssl_get_ssl(bev) ? -1 : fd;
    if (have_peer) {
        char ip[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    atomic_fetch_add_explicit(&mc_stats_global.connections_open, 1, memory_order_relaxed);
    mc_counter_add(&mc_stats_global.connections_total, 1);
    struct timeval tv = {opts->timeout_ms / 1000, (opts->timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, c->rev ? NULL : &tv, &tv);   /* plain: read_on's */
    bufferevent_setwatermark(c->bev, EV_WRITE, LOW_WATERMARK, 0);
    if (!c->rev)
        bufferevent_setwatermark(c->bev, EV_READ, 0, MC_HTTP_MAX_HEAD * 4);
    /* libevent writes at most 16 KiB per call by default: a 256 KiB chunk
     * took 16 syscalls and loop turns (1,000 viewers of one 4 MiB object:
     * 88 s before, see README "Coalescing") */
    bufferevent_set_max_single_write(c->bev, MAX_SINGLE_WRITE);
    reset_exchange(c);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    /* a plain socket's write interest is on only while an answer is out,
     * and it reads through read_sock */
    if (c->plain_fd < 0)
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    else
        read_on(c);
    if (opts->registry) {
        c->next = *opts->registry;
        if (c->next)
            c->next->prev = c;
        *opts->registry = c;
    }
    return 0;
}

void mc_http_drain(mc_http_conn **registry)
{
    for (mc_http_conn *c = *registry, *next; c; c = next) {
        next = c->next;
        if (c->state == CONN_READING && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
            conn_free(c);                /* idle keep-alive: nothing is lost */
        else
            c->close_after = 1;          /* answer what it asked, then close */
    }
}

void mc_http_close_all(mc_http_conn **registry)
{
    while (*registry)
        conn_free(*registry);
}

void mc_http_set_owner(mc_http_conn *c, const mc_http_owner *o)
{
    assert(c->magic == MC_CONN_MAGIC && c->state == CONN_HANDLING);
    c->owner = *o;
    c->has_owner = 1;
}

void mc_http_respond_start(mc_http_conn *c, int status, const char *reason, const char *hdrs,
                           int64_t content_length)
{
    assert(c->magic == MC_CONN_MAGIC && c->state == CONN_HANDLING && !c->started);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    c->started = 1;
    if (c->plain_fd >= 0)
        bufferevent_enable(c->bev, EV_WRITE);
    c->no_body = c->req.is_head || status == 204 || status == 304 || (status >= 100 && status < 200);
    /* no printf here: this runs once per hit (see tests/bench/README.md) */
    char line[384];
    size_t n = 0;
    const char *why = reason ? reason : mc_http_reason(status);
    size_t wl = strnlen(why, 200);
    memcpy(line, "HTTP/1.1 ", 9);
    n = 9 + mc_fmt_i64(line + 9, status);
    line[n++] = ' ';
    memcpy(line + n, why, wl);
    n += wl;
    line[n++] = '\r', line[n++] = '\n';
    if (c->opts.server_name) {
        size_t sl = strnlen(c->opts.server_name, 128);
        memcpy(line + n, "Server: ", 8);
        memcpy(line + n + 8, c->opts.server_name, sl);
        n += 8 + sl;
        line[n++] = '\r', line[n++] = '\n';
    }
    evbuffer_add(out, line, n);
    if (hdrs)
        evbuffer_add(out, hdrs, strlen(hdrs));
    n = 0;
    if (content_length >= 0) {
        if (status != 204 && status != 304) {
            memcpy(line, "Content-Length: ", 16);
            n = 16 + mc_fmt_i64(line + 16, (long long)content_length);
            line[n++] = '\r', line[n++] = '\n';
        }
        c->remaining = c->no_body ? 0 : content_length;
    } else if (!c->no_body && c->req.minor >= 1) {
        memcpy(line, "Transfer-Encoding: chunked\r\n", 28);
        n = 28;
        c->chunked = 1;
    } else if (!c->no_body) {
        c->close_after = 1;                   /* HTTP/1.0, unknown length: close-delimited */
    }
    if (c->close_after) {
        memcpy(line + n, "Connection: close\r\n", 19);
        n += 19;
    } else if (c->req.minor == 0) {
        memcpy(line + n, "Connection: keep-alive\r\n", 24);
        n += 24;
    }
    line[n++] = '\r', line[n++] = '\n';
    evbuffer_add(out, line, n);
}

void mc_http_respond_body(mc_http_conn *c, const void *data, size_t len)
{
    assert(c->magic == MC_CONN_MAGIC && c->state == CONN_HANDLING && c->started);
    if (c->no_body || len == 0)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->chunked) {
        evbuffer_add_printf(out, "%zx\r\n", len);
        evbuffer_add(out, data, len);
        evbuffer_add(out, "\r\n", 2);
    } else {
        /* never send more than declared: the framing is the client's only
         * way to tell a complete body from a truncated one */
        assert(c->remaining < 0 || (uint64_t)c->remaining >= len);
        evbuffer_add(out, data, len);
        if (c->remaining > 0)
            c->remaining -= (int64_t)len;
    }
    mc_stats_sent(len);
}

size_t mc_http_respond_body_direct(mc_http_conn *c, const void *data, size_t len)
{
    assert(c->magic == MC_CONN_MAGIC && c->state == CONN_HANDLING && c->started);
    if (c->no_body || len == 0)
        return len;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct evbuffer_iovec q[8];
    int nq = c->plain_fd >= 0 && !c->chunked ? evbuffer_peek(out, -1, NULL, q, 7) : 8;
    if (nq > 7) {                             /* TLS, chunked, or a long queue: copy */
        mc_http_respond_body(c, data, len);
        return len;
    }
    assert(c->remaining < 0 || (uint64_t)c->remaining >= len);
    struct iovec iov[8];
    size_t queued = 0;
    for (int i = 0; i < nq; i++) {
        iov[i].iov_base = q[i].iov_base;
        iov[i].iov_len = q[i].iov_len;
        queued += q[i].iov_len;
    }
    iov[nq].iov_base = (void *)data;
    iov[nq].iov_len = len;
    ssize_t w = writev(c->plain_fd, iov, nq + 1);
    size_t from_data = 0;
    if (w > 0) {
        size_t done_q = (size_t)w < queued ? (size_t)w : queued;
        evbuffer_unfreeze(out, 1);
        evbuffer_drain(out, done_q);
        evbuffer_freeze(out, 1);
        from_data = (size_t)w - done_q;
    }
    size_t took = from_data;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        /* copied after all: the bufferevent's write reports the error */
        evbuffer_add(out, (const char *)data + from_data, len - from_data);
        took = len;
    }
    if (c->remaining > 0)
        c->remaining -= (int64_t)took;
    mc_stats_sent(took);
    return took;
}

/* The socket can take more after mc_http_respond_body_direct took less
 * than offered, or the viewer took nothing for the write timeout. */
static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    mc_http_conn *c = arg;
    (void)fd;
    assert(c->magic == MC_CONN_MAGIC);
    if (what & EV_TIMEOUT)
        on_event(c->bev, BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT, c);
    else if (c->state == CONN_HANDLING && c->has_owner && c->owner.on_drain)
        c->owner.on_drain(c->owner.arg);
}

void mc_http_await_writable(mc_http_conn *c)
{
    assert(c->magic == MC_CONN_MAGIC && c->state == CONN_HANDLING);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return;                               /* on_write calls on_drain once it drains */
    if (!c->wev && c->plain_fd >= 0)
        c->wev = event_new(bufferevent_get_base(c->bev), c->plain_fd, EV_WRITE, on_writable, c);
    if (!c->wev) {                            /* (no memory, or not a plain socket: cannot happen) */
        mc_http_abort(c);
        return;
    }
    struct timeval tv = {c->opts.timeout_ms / 1000, (c->opts.timeout_ms % 1000) * 1000};
    event_add(c->wev, c->opts.timeout_ms > 0 ? &tv : NULL);
}

void mc_http_respond_body_ref(mc_http_conn *c, const void *data, size_t len, mc_http_release_fn release,
                              void *arg)
{
    assert(c->magic == MC_CONN_MAGIC && c->state == CONN_HANDLING && c->started);
    if (c->no_body || len == 0) {
        release(data, len, arg);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    assert(c->chunked || c->remaining < 0 || (uint64_t)c->remaining >= len);
    if (c->chunked)
        evbuffer_add_printf(out, "%zx\r\n", len);
    if (evbuffer_add_reference(out, data, len, release, arg) < 0) {
        evbuffer_add(out, data, len);   /* no memory for a reference: copy it after all */
        release(data, len, arg);
    }
    if (c->chunked)
        evbuffer_add(out, "\r\n", 2);
    else if (c->remaining > 0)
        c->remaining -= (int64_t)len;
    mc_stats_sent(len);
}

void mc_http_respond_end(mc_http_conn *c)
{
    assert(c->magic == MC_CONN_MAGIC && c->state == CONN_HANDLING && c->started);
    if (!c->no_body && c->remaining > 0) {    /* a handler bug must not look like success */
        mc_log_error("http", "msg=\"response ended short\" peer=%s missing=%lld", c->peer,
                     (long long)c->remaining);
        mc_http_abort(c);
        return;
    }
    if (c->chunked)
        evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
    c->has_owner = 0;
    finish_or_next(c);
}

void mc_http_respond(mc_http_conn *c, int status, const char *reason, const char *hdrs,
                     const char *ctype, const void *body, size_t len)
{
    char extra[256];
    mc_buf h = MC_BUF_INIT;
    if (hdrs)
        mc_buf_puts(&h, hdrs);
    if (ctype) {
        snprintf(extra, sizeof extra, "Content-Type: %s\r\n", ctype);
        mc_buf_puts(&h, extra);
    }
    mc_http_respond_start(c, status, reason, h.data, (int64_t)len);
    mc_buf_free(&h);
    mc_http_respond_body(c, body, len);
    mc_http_respond_end(c);
}

void mc_http_abort(mc_http_conn *c)
{
    assert(c->magic == MC_CONN_MAGIC);
    c->has_owner = 0;                         /* the owner asked for this: no callback */
    /* With Content-Length or chunked framing a FIN before the end is a clear
     * truncation; a close-delimited body (HTTP/1.0, unknown length) would look
     * complete, so there the connection is reset instead. */
    if (c->started && !c->chunked && c->remaining < 0) {
        struct linger lg = {1, 0};
        setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        conn_free(c);
        return;
    }
    /* Framed (Content-Length or chunked): what is already buffered (the
     * status line, part of the body) still goes out, then the connection
     * closes short of the framing, so the viewer sees a truncated 200, not
     * a connection closed before any answer. The write timeout bounds it. */
    if (c->started && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
        c->state = CONN_CLOSING;
        c->aborted = 1;
        read_off(c);
        return;
    }
    conn_free(c);
}

size_t mc_http_backlog(const mc_http_conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

const char *mc_http_peer(const mc_http_conn *c) { return c->peer; }
