/* httpc.c — keep-alive HTTP/1.1 client connection; see httpc.h. */
#include "tests/load/httpc.h"

#include "common/err.h"

#include <assert.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MC_HC_MAGIC 0x48435443u
#define LINE_MAX_BYTES 8192
#define PATH_MAX_BYTES 4096

typedef enum hc_state {
    ST_CLOSED,          /* no socket */
    ST_IDLE,            /* connected, no request */
    ST_STATUS,          /* request sent (or queued behind the connect) */
    ST_HEADERS,
    ST_BODY_LENGTH,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_CRLF,
    ST_TRAILERS,
    ST_BODY_EOF,        /* no length: the body ends at close */
} hc_state;

struct mc_hc_conn {
    uint32_t magic;
    struct event_base *base;
    struct bufferevent *bev;     /* owned; NULL when ST_CLOSED */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[256];
    struct timeval timeout;
    mc_hc_done_cb done;
    void *arg;
    hc_state state;
    int connected;               /* the TCP handshake finished */
    int got_bytes;               /* any byte of this response arrived */
    int keep_alive;
    int chunked;
    int64_t length;              /* Content-Length, -1 if none */
    uint64_t remaining;          /* of the body or the current chunk */
    mc_hc_result res;
    char line[LINE_MAX_BYTES];
};

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

mc_hc_conn *mc_hc_new(struct event_base *base, const struct sockaddr *addr, socklen_t addrlen, const char *host,
                      int timeout_ms, mc_hc_done_cb done, void *arg)
{
    mc_hc_conn *c = calloc(1, sizeof *c);
    if (c == NULL || addrlen > sizeof c->addr) {
        free(c);
        return NULL;
    }
    c->magic = MC_HC_MAGIC;
    c->base = base;
    memcpy(&c->addr, addr, addrlen);
    c->addrlen = addrlen;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->timeout.tv_sec = timeout_ms / 1000;
    c->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    c->done = done;
    c->arg = arg;
    c->state = ST_CLOSED;
    return c;
}

static void hc_close(mc_hc_conn *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    c->state = ST_CLOSED;
    c->connected = 0;
}

void mc_hc_free(mc_hc_conn *c)
{
    if (c == NULL)
        return;
    assert(c->magic == MC_HC_MAGIC);
    hc_close(c);
    c->magic = 0;
    free(c);
}

int mc_hc_busy(const mc_hc_conn *c)
{
    return c->state != ST_CLOSED && c->state != ST_IDLE;
}

static int hc_open(mc_hc_conn *c)
{
    c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL)
        return MC_E_IO;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->addr, (int)c->addrlen) < 0) {
        hc_close(c);
        return MC_E_IO;
    }
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

int mc_hc_get(mc_hc_conn *c, const char *path)
{
    assert(c->magic == MC_HC_MAGIC);
    if (mc_hc_busy(c))
        return MC_E_STATE;
    if (strlen(path) > PATH_MAX_BYTES)
        return MC_E_TOOBIG;
    if (c->state == ST_CLOSED && hc_open(c) < 0)
        return MC_E_IO;
    memset(&c->res, 0, sizeof c->res);
    c->got_bytes = 0;
    c->state = ST_STATUS;
    bufferevent_set_timeouts(c->bev, &c->timeout, &c->timeout);
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meshcdn-load/" MESHCDN_VERSION
                        "\r\nAccept: */*\r\n\r\n", path, c->host);
    return 0;
}

/* ---- finishing ------------------------------------------------------------- */

static void finish(mc_hc_conn *c, mc_hc_error err)
{
    c->res.error = err;
    if (err != MC_HC_OK || !c->keep_alive || c->state == ST_BODY_EOF) {
        hc_close(c);
    } else {
        c->state = ST_IDLE;
        bufferevent_set_timeouts(c->bev, NULL, NULL);   /* idle: wait as long as the server lets us */
    }
    mc_hc_result r = c->res;
    c->done(c, &r, c->arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    mc_hc_conn *c = arg;
    assert(c->magic == MC_HC_MAGIC);
    if (what & BEV_EVENT_CONNECTED) {
        c->connected = 1;
        return;
    }
    if (c->state == ST_IDLE) {           /* the server closed a kept-alive connection */
        hc_close(c);
        return;
    }
    if (c->state == ST_BODY_EOF && (what & BEV_EVENT_EOF)) {
        on_read(bev, arg);               /* whatever arrived with the close */
        finish(c, MC_HC_OK);
        return;
    }
    mc_hc_error err = !c->connected ? MC_HC_CONNECT
                    : (what & BEV_EVENT_TIMEOUT) ? MC_HC_TIMEOUT
                    : c->got_bytes ? MC_HC_TRUNCATED : MC_HC_CLOSED;
    finish(c, err);
}

/* ---- parsing --------------------------------------------------------------- */

/* One CRLF (or LF) line into c->line: its length, -1 if incomplete, -2 if
 * longer than the buffer. */
static int read_line(mc_hc_conn *c, struct evbuffer *in)
{
    size_t eol_len = 0;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
    if (p.pos < 0)
        return evbuffer_get_length(in) >= LINE_MAX_BYTES ? -2 : -1;
    if ((size_t)p.pos >= LINE_MAX_BYTES)
        return -2;
    evbuffer_remove(in, c->line, (size_t)p.pos);
    c->line[p.pos] = '\0';
    evbuffer_drain(in, eol_len);
    return (int)p.pos;
}

mc_hc_cache mc_hc_classify(const char *name, const char *v)
{
    if (strcasecmp(name, "x-cache") == 0) {
        if (strncasecmp(v, "hit", 3) == 0)
            return MC_HC_HIT;
        return strncasecmp(v, "miss", 4) == 0 || strncasecmp(v, "refresh", 7) == 0 ? MC_HC_MISS : MC_HC_UNKNOWN;
    }
    if (strcasecmp(name, "cache-status") != 0)
        return MC_HC_UNKNOWN;
    const char *last = strrchr(v, ',');          /* the cache nearest the client is last */
    last = last ? last + 1 : v;
    for (const char *p = strchr(last, ';'); p; p = strchr(p + 1, ';')) {
        p += strspn(p, "; \t");
        if (strncasecmp(p, "hit", 3) == 0 && (p[3] == '\0' || p[3] == ';' || p[3] == ' ' || p[3] == '='))
            return MC_HC_HIT;
        if (strncasecmp(p, "fwd=", 4) == 0)
            return MC_HC_MISS;
        p--;
    }
    return MC_HC_UNKNOWN;
}

static int parse_status(mc_hc_conn *c)
{
    const char *l = c->line;
    if (strncmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ' || l[9] < '1' ||
        l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' || (l[12] != ' ' && l[12]))
        return -1;
    c->res.status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    c->keep_alive = l[7] == '1';
    c->chunked = 0;
    c->length = -1;
    return 0;
}

static int parse_header(mc_hc_conn *c)
{
    char *colon = strchr(c->line, ':');
    if (colon == NULL || colon == c->line)
        return -1;
    *colon = '\0';
    char *v = colon + 1 + strspn(colon + 1, " \t");
    const char *name = c->line;
    if (strcasecmp(name, "content-length") == 0) {
        char *end;
        long long n = strtoll(v, &end, 10);
        if (end == v || n < 0 || (*end && *end != ' ' && *end != '\t'))
            return -1;
        c->length = n;
    } else if (strcasecmp(name, "transfer-encoding") == 0) {
        c->chunked = strcasestr(v, "chunked") != NULL;
    } else if (strcasecmp(name, "connection") == 0) {
        if (strcasestr(v, "close"))
            c->keep_alive = 0;
        else if (strcasestr(v, "keep-alive"))
            c->keep_alive = 1;
    } else {
        mc_hc_cache k = mc_hc_classify(name, v);
        /* X-Cache and Cache-Status agree on meshcdn; a hit in either counts */
        if (k != MC_HC_UNKNOWN && c->res.cache != MC_HC_HIT)
            c->res.cache = k;
    }
    return 0;
}

/* Headers are complete: pick how the body ends. 1 = response done. */
static int body_start(mc_hc_conn *c)
{
    int st = c->res.status;
    if (st == 204 || st == 304 || st < 200)
        return 1;
    if (c->chunked) {
        c->state = ST_CHUNK_SIZE;
    } else if (c->length >= 0) {
        c->remaining = (uint64_t)c->length;
        c->state = ST_BODY_LENGTH;
        return c->remaining == 0;
    } else {
        c->state = ST_BODY_EOF;
        c->keep_alive = 0;
    }
    return 0;
}

/* Drains up to c->remaining body bytes; returns 1 when they are all in. */
static int take_body(mc_hc_conn *c, struct evbuffer *in)
{
    size_t have = evbuffer_get_length(in);
    size_t n = have < c->remaining ? have : (size_t)c->remaining;
    evbuffer_drain(in, n);
    c->remaining -= n;
    c->res.body_bytes += n;
    return c->remaining == 0;
}

/* One parsing step. Returns 1 to continue, 0 to wait for bytes, 2 when the
 * response is complete, -1 on a protocol error. */
static int step(mc_hc_conn *c, struct evbuffer *in)
{
    int n;
    switch (c->state) {
    case ST_STATUS:
    case ST_HEADERS:
    case ST_CHUNK_SIZE:
    case ST_CHUNK_CRLF:
    case ST_TRAILERS:
        if ((n = read_line(c, in)) == -1)
            return 0;
        if (n == -2)
            return -1;
        break;
    case ST_BODY_LENGTH:
        return take_body(c, in) ? 2 : 0;
    case ST_CHUNK_DATA:
        if (!take_body(c, in))
            return 0;
        c->state = ST_CHUNK_CRLF;
        return 1;
    case ST_BODY_EOF:
        c->res.body_bytes += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        return 0;
    default:
        evbuffer_drain(in, evbuffer_get_length(in));   /* bytes nobody asked for */
        return 0;
    }
    switch (c->state) {
    case ST_STATUS:
        if (parse_status(c) < 0)
            return -1;
        c->res.cache = MC_HC_UNKNOWN;
        c->state = ST_HEADERS;
        return 1;
    case ST_HEADERS:
        if (n > 0)
            return parse_header(c) < 0 ? -1 : 1;
        if (c->res.status < 200) {           /* 1xx: the real response follows */
            c->state = ST_STATUS;
            return 1;
        }
        return body_start(c) ? 2 : 1;
    case ST_CHUNK_SIZE: {
        char *end;
        unsigned long long sz = strtoull(c->line, &end, 16);
        if (end == c->line || (*end && *end != ';' && *end != ' '))
            return -1;
        c->remaining = sz;
        c->state = sz ? ST_CHUNK_DATA : ST_TRAILERS;
        return 1;
    }
    case ST_CHUNK_CRLF:
        if (n != 0)
            return -1;
        c->state = ST_CHUNK_SIZE;
        return 1;
    default:   /* ST_TRAILERS */
        return n == 0 ? 2 : 1;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    mc_hc_conn *c = arg;
    assert(c->magic == MC_HC_MAGIC);
    struct evbuffer *in = bufferevent_get_input(bev);
    if (evbuffer_get_length(in) > 0)
        c->got_bytes = 1;
    for (;;) {
        if (c->state == ST_IDLE || c->state == ST_CLOSED) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        int r = step(c, in);
        if (r == 0)
            return;
        if (r < 0) {
            finish(c, MC_HC_PROTOCOL);
            return;
        }
        if (r == 2) {
            finish(c, MC_HC_OK);
            return;   /* one request per connection at a time: nothing else is ours */
        }
    }
}
