/* httpc.c — keep-alive HTTP/1.1 client connection; see httpc.h.
 *
 * Why not a bufferevent: at 64 KiB and up the load generator was the
 * bottleneck of the benchmarks (issue 10), and most of its time went to
 * copying every body byte into an evbuffer only to drain it. Here the status
 * line, headers and chunk framing go through one fixed buffer, and a body
 * that is not in it yet is discarded in the kernel: recv(MSG_TRUNC) on a TCP
 * socket drops up to that many queued bytes without copying them and says
 * how many. Per request in the steady state: one send, one or two recv, and
 * the epoll wake-ups; no event is re-armed (the read event is persistent and
 * the timeout timer re-arms itself lazily from a progress timestamp). */
#include "tests/load/httpc.h"

#include "common/err.h"

#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MC_HC_MAGIC 0x48435443u
#define RBUF_BYTES (16 * 1024)          /* longest status/header/chunk-size line */
#define PATH_MAX_BYTES 4096
#define HOST_MAX_BYTES 256
#define DISCARD_MAX (4u << 20)          /* bytes asked of one recv(MSG_TRUNC) */
#define COARSE_MS 5                     /* >= one tick of CLOCK_MONOTONIC_COARSE */

static const char req_mid[] = " HTTP/1.1\r\nHost: ";
static const char req_tail[] = "\r\nUser-Agent: meshcdn-load/" MESHCDN_VERSION "\r\nAccept: */*\r\n\r\n";

typedef enum hc_state {
    ST_CLOSED,          /* no socket */
    ST_IDLE,            /* connected, no request */
    ST_STATUS,          /* request sent (or waiting for the connect) */
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
    int fd;                      /* -1 when ST_CLOSED */
    struct event rev;            /* EV_READ | EV_PERSIST while connected */
    struct event wev;            /* the connect, a send that would block, a deferred failure */
    struct event tmo;            /* armed while a request is out; see on_timer */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[HOST_MAX_BYTES];
    size_t hostlen;
    int timeout_ms;
    mc_hc_done_cb done;
    void *arg;
    hc_state state;
    int connected;               /* the TCP handshake finished */
    int connect_err;             /* connect() failed at once: reported from the loop */
    int send_failed;             /* send() failed: reported from the loop */
    int got_bytes;               /* any byte of this response arrived */
    int keep_alive;
    int chunked;
    int no_trunc;                /* recv(MSG_TRUNC) refused: discard through rbuf */
    int64_t length;              /* Content-Length, -1 if none */
    uint64_t remaining;          /* of the body or the current chunk */
    uint64_t progress_ms;        /* CLOCK_MONOTONIC_COARSE at the last byte sent or received */
    int timer_armed;             /* tmo is pending (a flag: event_pending showed in a profile) */
    mc_hc_result res;
    size_t req_len, req_off;
    size_t rpos, rlen;           /* unparsed bytes are rbuf[rpos, rlen) */
    char req[PATH_MAX_BYTES + HOST_MAX_BYTES + 128];
    char rbuf[RBUF_BYTES];
};

_Static_assert(sizeof(((struct mc_hc_conn *)0)->req) >=
                   4 + PATH_MAX_BYTES + sizeof req_mid + HOST_MAX_BYTES + sizeof req_tail,
               "the longest request fits");

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

/* The coarse clock is a vDSO read of the last tick (1-4 ms): plenty for a
 * timeout, and cheap enough to take at every recv. */
static uint64_t coarse_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

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
    c->fd = -1;
    memcpy(&c->addr, addr, addrlen);
    c->addrlen = addrlen;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->hostlen = strlen(c->host);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    c->done = done;
    c->arg = arg;
    c->state = ST_CLOSED;
    evtimer_assign(&c->tmo, base, on_timer, c);
    return c;
}

static void hc_close(mc_hc_conn *c)
{
    if (c->fd >= 0) {
        event_del(&c->rev);
        event_del(&c->wev);
        close(c->fd);
    }
    c->fd = -1;
    c->state = ST_CLOSED;
    c->connected = c->connect_err = c->send_failed = 0;
    c->rpos = c->rlen = 0;
}

void mc_hc_free(mc_hc_conn *c)
{
    if (c == NULL)
        return;
    assert(c->magic == MC_HC_MAGIC);
    hc_close(c);
    event_del(&c->tmo);
    c->magic = 0;
    free(c);
}

int mc_hc_busy(const mc_hc_conn *c)
{
    return c->state != ST_CLOSED && c->state != ST_IDLE;
}

static int hc_open(mc_hc_conn *c)
{
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return MC_E_IO;
    int one = 1;
    if (c->addr.ss_family == AF_INET || c->addr.ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* one write per request anyway */
    c->fd = fd;
    event_assign(&c->rev, c->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, c->base, fd, EV_WRITE, on_write, c);
    c->connected = 0;
    c->rpos = c->rlen = 0;
    if (connect(fd, (struct sockaddr *)&c->addr, c->addrlen) == 0) {
        c->connected = 1;
        event_add(&c->rev, NULL);
    } else if (errno == EINPROGRESS) {
        event_add(&c->wev, NULL);
    } else {
        c->connect_err = errno ? errno : ECONNREFUSED;   /* done runs from the loop, like any failure */
        event_active(&c->wev, EV_WRITE, 1);
    }
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
        c->rpos = c->rlen = 0;   /* bytes past the response are nobody's: no pipelining */
    }
    mc_hc_result r = c->res;
    c->done(c, &r, c->arg);
}

/* The connection ended (EOF, reset or a send failure) while a request was out. */
static void ended(mc_hc_conn *c)
{
    if (c->state == ST_BODY_EOF)
        finish(c, MC_HC_OK);
    else
        finish(c, c->got_bytes ? MC_HC_TRUNCATED : MC_HC_CLOSED);
}

/* The timer is armed once per busy period and not moved on progress: when
 * it fires it compares the last progress with the clock and re-arms for
 * the rest, so a request costs no timer operation. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mc_hc_conn *c = arg;
    assert(c->magic == MC_HC_MAGIC);
    c->timer_armed = 0;
    if (!mc_hc_busy(c))
        return;                   /* idle: wait as long as the server lets us */
    uint64_t idle = coarse_ms() - c->progress_ms;
    if (idle < (uint64_t)c->timeout_ms) {
        uint64_t left = (uint64_t)c->timeout_ms - idle;
        if (left < COARSE_MS)
            left = COARSE_MS;     /* the coarse clock lags a tick: no spinning until it moves */
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        evtimer_add(&c->tmo, &tv);
        c->timer_armed = 1;
        return;
    }
    finish(c, c->connected ? MC_HC_TIMEOUT : MC_HC_CONNECT);
}

/* Sends what is left of the request; a send that would block waits for
 * EV_WRITE, one that fails is reported from the loop (mc_hc_get must not
 * call done). */
static void send_rest(mc_hc_conn *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->req_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(&c->wev, NULL);
            return;
        }
        c->send_failed = 1;
        event_active(&c->wev, EV_WRITE, 1);
        return;
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    mc_hc_conn *c = arg;
    assert(c->magic == MC_HC_MAGIC);
    if (c->fd != fd || !mc_hc_busy(c))
        return;
    if (!c->connected) {
        int err = c->connect_err;
        socklen_t len = sizeof err;
        if (err == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            finish(c, MC_HC_CONNECT);
            return;
        }
        c->connected = 1;
        c->progress_ms = coarse_ms();
        event_add(&c->rev, NULL);
    }
    if (c->send_failed) {
        ended(c);
        return;
    }
    send_rest(c);
}

int mc_hc_get(mc_hc_conn *c, const char *path)
{
    assert(c->magic == MC_HC_MAGIC);
    if (mc_hc_busy(c))
        return MC_E_STATE;
    size_t plen = strlen(path);
    if (plen > PATH_MAX_BYTES)
        return MC_E_TOOBIG;
    if (c->state == ST_CLOSED && hc_open(c) < 0)
        return MC_E_IO;
    char *p = c->req;
    memcpy(p, "GET ", 4);
    p += 4;
    memcpy(p, path, plen);
    p += plen;
    memcpy(p, req_mid, sizeof req_mid - 1);
    p += sizeof req_mid - 1;
    memcpy(p, c->host, c->hostlen);
    p += c->hostlen;
    memcpy(p, req_tail, sizeof req_tail - 1);
    p += sizeof req_tail - 1;
    c->req_len = (size_t)(p - c->req);
    c->req_off = 0;
    memset(&c->res, 0, sizeof c->res);
    c->got_bytes = 0;
    c->state = ST_STATUS;
    c->progress_ms = coarse_ms();
    if (!c->timer_armed) {
        struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
        evtimer_add(&c->tmo, &tv);
        c->timer_armed = 1;
    }
    if (c->connected)
        send_rest(c);
    return 0;
}

/* ---- parsing --------------------------------------------------------------- */

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

static int parse_status(mc_hc_conn *c, const char *l)
{
    if (strncmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ' || l[9] < '1' ||
        l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' || (l[12] != ' ' && l[12]))
        return -1;
    c->res.status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    c->keep_alive = l[7] == '1';
    c->chunked = 0;
    c->length = -1;
    return 0;
}

/* Whether v holds word, any case (strcasestr's two-way search costs more
 * than the whole value on these short headers). */
static int has_word(const char *v, const char *word)
{
    size_t wl = strlen(word);
    for (; *v; v++)
        if (strncasecmp(v, word, wl) == 0)
            return 1;
    return 0;
}

/* The header names that matter differ in length: one compare each. */
static int parse_header(mc_hc_conn *c, char *line)
{
    char *colon = strchr(line, ':');
    if (colon == NULL || colon == line)
        return -1;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    const char *name = line;
    switch (colon - line) {
    case 14:
        if (strcasecmp(name, "content-length") == 0) {
            char *end;
            long long n = strtoll(v, &end, 10);
            if (end == v || n < 0 || (*end && *end != ' ' && *end != '\t'))
                return -1;
            c->length = n;
        }
        return 0;
    case 17:
        if (strcasecmp(name, "transfer-encoding") == 0)
            c->chunked = has_word(v, "chunked");
        return 0;
    case 10:
        if (strcasecmp(name, "connection") == 0) {
            if (has_word(v, "close"))
                c->keep_alive = 0;
            else if (has_word(v, "keep-alive"))
                c->keep_alive = 1;
        }
        return 0;
    case 7:    /* x-cache */
    case 12: { /* cache-status */
        mc_hc_cache k = mc_hc_classify(name, v);
        /* X-Cache and Cache-Status agree on meshcdn; a hit in either counts */
        if (k != MC_HC_UNKNOWN && c->res.cache != MC_HC_HIT)
            c->res.cache = k;
        return 0;
    }
    default:
        return 0;
    }
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

/* Counts up to c->remaining buffered body bytes; 1 when they are all in. */
static int take_body(mc_hc_conn *c)
{
    size_t have = c->rlen - c->rpos;
    size_t n = have < c->remaining ? have : (size_t)c->remaining;
    c->rpos += n;
    c->remaining -= n;
    c->res.body_bytes += n;
    return c->remaining == 0;
}

/* One parsing step over rbuf[rpos, rlen). Returns 1 to continue, 0 to wait
 * for bytes, 2 when the response is complete, -1 on a protocol error. */
static int step(mc_hc_conn *c)
{
    switch (c->state) {
    case ST_BODY_LENGTH:
        return take_body(c) ? 2 : 0;
    case ST_CHUNK_DATA:
        if (!take_body(c))
            return 0;
        c->state = ST_CHUNK_CRLF;
        return 1;
    case ST_BODY_EOF:
        c->res.body_bytes += c->rlen - c->rpos;
        c->rpos = c->rlen;
        return 0;
    case ST_STATUS:
    case ST_HEADERS:
    case ST_CHUNK_SIZE:
    case ST_CHUNK_CRLF:
    case ST_TRAILERS:
        break;
    default:
        c->rpos = c->rlen;        /* bytes nobody asked for */
        return 0;
    }
    /* a CRLF (or LF) line, terminated in place */
    char *line = c->rbuf + c->rpos;
    char *eol = memchr(line, '\n', c->rlen - c->rpos);
    if (eol == NULL)
        return c->rpos == 0 && c->rlen == sizeof c->rbuf ? -1 : 0;   /* a line longer than the buffer */
    size_t n = (size_t)(eol - line);
    c->rpos += n + 1;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    switch (c->state) {
    case ST_STATUS:
        if (parse_status(c, line) < 0)
            return -1;
        c->res.cache = MC_HC_UNKNOWN;
        c->state = ST_HEADERS;
        return 1;
    case ST_HEADERS:
        if (n > 0)
            return parse_header(c, line) < 0 ? -1 : 1;
        if (c->res.status < 200) {           /* 1xx: the real response follows */
            c->state = ST_STATUS;
            return 1;
        }
        return body_start(c) ? 2 : 1;
    case ST_CHUNK_SIZE: {
        char *end;
        unsigned long long sz = strtoull(line, &end, 16);
        if (end == line || (*end && *end != ';' && *end != ' '))
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

/* Parses what rbuf holds. 0 = wait for bytes (rbuf compacted), 2 = the
 * response is complete, -1 = protocol error. */
static int parse(mc_hc_conn *c)
{
    int r;
    while ((r = step(c)) == 1)
        ;
    if (r == 0) {
        if (c->rpos == c->rlen) {
            c->rpos = c->rlen = 0;
        } else if (c->rpos > 0) {   /* a partial line: move it to the front */
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
    }
    return r;
}

/* A body part the buffer does not hold: 1 if the next bytes are body bytes
 * that can be dropped in the kernel. */
static int discarding(const mc_hc_conn *c)
{
    return c->rlen == 0 && (c->state == ST_BODY_LENGTH || c->state == ST_CHUNK_DATA || c->state == ST_BODY_EOF);
}

/* Drops up to *want queued body bytes: their count, 0 at EOF, -1 with
 * errno. The fallback reads them into rbuf (sockets that refuse MSG_TRUNC)
 * and lowers *want to what it asked for. */
static ssize_t discard(mc_hc_conn *c, size_t *want)
{
    if (!c->no_trunc) {
        ssize_t n = recv(c->fd, NULL, *want, MSG_TRUNC | MSG_DONTWAIT);
        if (n >= 0 || (errno != EINVAL && errno != EOPNOTSUPP && errno != EFAULT))
            return n;
        c->no_trunc = 1;
    }
    if (*want > sizeof c->rbuf)
        *want = sizeof c->rbuf;
    return recv(c->fd, c->rbuf, *want, MSG_DONTWAIT);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    mc_hc_conn *c = arg;
    assert(c->magic == MC_HC_MAGIC);
    if (c->fd != fd)
        return;
    for (;;) {
        if (c->state == ST_IDLE) {
            /* the server closed a kept-alive connection (or sent bytes nobody asked for) */
            ssize_t n = recv(fd, c->rbuf, sizeof c->rbuf, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                hc_close(c);
            return;
        }
        ssize_t n;
        size_t want;
        if (discarding(c)) {
            want = c->state == ST_BODY_EOF || c->remaining > DISCARD_MAX ? DISCARD_MAX : (size_t)c->remaining;
            n = discard(c, &want);
            if (n > 0) {
                c->got_bytes = 1;
                c->progress_ms = coarse_ms();
                c->res.body_bytes += (uint64_t)n;
                if (c->state != ST_BODY_EOF && (c->remaining -= (uint64_t)n) == 0) {
                    if (c->state == ST_BODY_LENGTH) {
                        finish(c, MC_HC_OK);
                        return;   /* one request at a time: nothing else is ours */
                    }
                    c->state = ST_CHUNK_CRLF;
                    continue;
                }
            }
        } else {
            want = sizeof c->rbuf - c->rlen;
            n = recv(fd, c->rbuf + c->rlen, want, MSG_DONTWAIT);
            if (n > 0) {
                c->got_bytes = 1;
                c->progress_ms = coarse_ms();
                c->rlen += (size_t)n;
                int r = parse(c);
                if (r < 0) {
                    finish(c, MC_HC_PROTOCOL);
                    return;
                }
                if (r == 2) {
                    finish(c, MC_HC_OK);
                    return;
                }
            }
        }
        if (n == 0) {
            ended(c);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                ended(c);   /* reset */
            return;
        }
        if ((size_t)n < want)
            return;   /* the queue is empty: the (level-triggered) read event says when more arrives */
    }
}
