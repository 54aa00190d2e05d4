/* guard.c — see guard.h. Parsing follows RFC 9112 (message syntax) and
 * RFC 9110 (field syntax); where the RFCs allow a recipient to be lenient
 * (obs-fold, bare LF, repeated identical Content-Length) the guard refuses. */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <xxhash.h>
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "origin/guard.h"

#define GUARD_MAGIC 0x47524431u
#define GCONN_MAGIC 0x47434f4eu
#define CLIENT_SLOTS 65536
#define MAX_CHUNK_LINE 1024     /* a size and extensions */
#define MAX_TRAILERS 8192

/* The refusals counted in meshcdn_origin_guard_refusals_total{code}. */
static const int statuses[] = {400, 408, 413, 414, 431, 501, 503, 505};
#define NSTATUS (sizeof statuses / sizeof statuses[0])

static _Atomic uint64_t refusals[MC_GUARD_LISTENERS][NSTATUS];
static _Atomic uint64_t conns_refused[MC_GUARD_LISTENERS][2];   /* [total, per_client] */
static _Atomic uint64_t header_timeouts[MC_GUARD_LISTENERS];

/* A refusal travels to evhttp as this request, so evhttp answers it in
 * order after the requests before it, through mc_guard_answer. The token
 * (random per process) keeps a client from forging one. */
#define GUARD_PATH "/.meshcdn-guard"
#define GUARD_HEADER "X-Meshcdn-Guard"
static char token[33];

struct mc_guard {
    uint32_t magic;
    struct event_base *base;
    mc_guard_config cfg;
    int open;                     /* connections open now (one loop: no atomics) */
    uint64_t seed;
    int *clients;                 /* [CLIENT_SLOTS] open per client slot, or NULL */
};

typedef enum {
    G_HEAD, G_BODY, G_CHUNK_SIZE, G_CHUNK_DATA, G_CHUNK_CRLF, G_TRAILER, G_DEAD
} gstate;

typedef struct gconn {
    uint32_t magic;
    mc_guard *g;
    struct bufferevent *filter;   /* what evhttp reads and writes */
    struct bufferevent *under;    /* the socket */
    gstate state;
    uint64_t left;                /* body or chunk bytes still to pass */
    size_t trailer_bytes;
    struct event *head_timer;     /* header_timeout from a head's first byte */
    struct event *kick;           /* deferred work: the caps check, output flush */
    int checked;                  /* caps applied (the socket is known) */
    int counted;                  /* holds one unit of g->open */
    int slot;                     /* holds one unit of g->clients[slot]; -1 none */
    int owed;                     /* output moved but not yet all written to the socket */
    int in_output;                /* out_filter is writing: on_under_output stays out */
} gconn;

static int status_index(int status)
{
    for (size_t i = 0; i < NSTATUS; i++)
        if (statuses[i] == status)
            return (int)i;
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* ---- the head check ------------------------------------------------------ */

static int is_tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int ieq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* Host = uri-host [ ":" port ] (RFC 9110 7.2): reg-name, IPv4 or [IPv6]. */
static int host_ok(const char *v, size_t n)
{
    if (n == 0 || n > 255)
        return 0;
    size_t i = 0;
    if (v[0] == '[') {
        while (i < n && v[i] != ']')
            i++;
        if (i == n)
            return 0;
        for (size_t k = 1; k < i; k++)
            if (!isxdigit((unsigned char)v[k]) && v[k] != ':' && v[k] != '.')
                return 0;
        i++;
    } else {
        for (; i < n && v[i] != ':'; i++)
            if (!isalnum((unsigned char)v[i]) && !strchr("-._~%!$&'()*+,;=", v[i]))
                return 0;
        if (i == 0)
            return 0;
    }
    if (i == n)
        return 1;
    if (v[i] != ':')
        return 0;
    for (size_t k = i + 1; k < n; k++)
        if (!isdigit((unsigned char)v[k]))
            return 0;
    return n - i - 1 <= 5;
}

static int method_known(const char *m, size_t n)
{
    static const char *const known[] = {"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS",
                                        "PATCH", "TRACE", "CONNECT"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i]) == n && memcmp(known[i], m, n) == 0)
            return 1;
    return 0;
}

/* Request line: method SP target SP HTTP-version (RFC 9112 3). */
static int check_request_line(const char *p, size_t n, int *minor)
{
    const char *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p)
        return 400;
    for (const char *m = p; m < sp1; m++)
        if (!is_tchar((unsigned char)*m))
            return 400;
    const char *t = sp1 + 1, *end = p + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t || memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)))
        return 400;
    if ((size_t)(sp2 - t) > MC_GUARD_MAX_TARGET)
        return 414;
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '#')
            return 400;
    if (t[0] != '/' && !(sp2 - t == 1 && t[0] == '*') && strncasecmp(t, "http://", 7) != 0 &&
        strncasecmp(t, "https://", 8) != 0)
        return 400;
    const char *v = sp2 + 1;
    size_t vl = (size_t)(end - v);
    if (vl == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1'))
        *minor = v[7] - '0';
    else if (vl >= 5 && memcmp(v, "HTTP/", 5) == 0)
        return 505;
    else
        return 400;
    return method_known(p, (size_t)(sp1 - p)) ? 0 : 501;
}

int mc_guard_check_head(const char *head, size_t len, uint64_t max_body, uint64_t *body_length,
                        int *chunked)
{
    *body_length = 0;
    *chunked = 0;
    if (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0)
        return 400;
    if (len > MC_GUARD_MAX_HEAD)
        return 431;
    const char *end = head + len - 2;            /* the blank line's CRLF */
    const char *eol = memchr(head, '\n', len);
    if (!eol || eol == head || eol[-1] != '\r')
        return 400;                              /* bare LF */
    int minor = 1;
    int st = check_request_line(head, (size_t)(eol - 1 - head), &minor);
    if (st)
        return st;
    int nfields = 0, nhost = 0, ncl = 0, nte = 0, te_chunked = 0, te_other = 0;
    uint64_t cl = 0;
    int cl_too_big = 0;
    for (const char *line = eol + 1; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl || nl == line || nl[-1] != '\r')
            return 400;                          /* bare LF or CR */
        const char *le = nl - 1;                 /* at the CR */
        if (*line == ' ' || *line == '\t')
            return 400;                          /* obs-fold (RFC 9112 5.2) */
        if (++nfields > MC_GUARD_MAX_HEADERS)
            return 431;
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon || colon == line)
            return 400;
        for (const char *c = line; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                return 400;                      /* also whitespace before the colon */
        const char *v = colon + 1, *ve = le;
        for (const char *c = v; c < ve; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
                return 400;                      /* NUL, CR, LF, CTL */
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nl_name = (size_t)(colon - line), vn = (size_t)(ve - v);
        if (ieq(line, nl_name, "Host")) {
            if (++nhost > 1 || !host_ok(v, vn))
                return 400;
        } else if (ieq(line, nl_name, "Content-Length")) {
            if (++ncl > 1 || vn == 0)
                return 400;                      /* even repeated identical values */
            for (size_t k = 0; k < vn; k++)
                if (!isdigit((unsigned char)v[k]))
                    return 400;                  /* signs, lists, hex, spaces */
            if (vn > 18)
                cl_too_big = 1;
            else
                cl = strtoull(v, NULL, 10);
        } else if (ieq(line, nl_name, "Transfer-Encoding")) {
            if (++nte > 1)
                return 400;
            if (ieq(v, vn, "chunked"))
                te_chunked = 1;
            else if (memmem(v, vn, "chunked", 7) || memmem(v, vn, "CHUNKED", 7))
                return 400;                      /* chunked with other codings */
            else
                te_other = 1;
        }
        line = nl + 1;
    }
    if (minor == 1 && nhost == 0)
        return 400;                              /* RFC 9112 3.2 */
    if (nte && ncl)
        return 400;                              /* RFC 9112 6.1: a smuggling vector */
    if (nte && minor == 0)
        return 400;
    if (te_other)
        return 501;
    if (cl_too_big || (ncl && cl > max_body))
        return 413;
    *body_length = cl;
    *chunked = te_chunked;
    return 0;
}

/* ---- per connection ---------------------------------------------------- */

static void add_sentinel(struct evbuffer *to, int status)
{
    evbuffer_add_printf(to, "GET " GUARD_PATH " HTTP/1.1\r\nHost: guard\r\nConnection: close\r\n"
                        GUARD_HEADER ": %s %d\r\n\r\n", token, status);
}

/* Refuse at a request boundary: evhttp gets the sentinel, the rest of the
 * stream is dropped. */
static void log_refusal(gconn *c, int status, const char *where)
{
    static const char *const names[] = {"s3", "control"};
    mc_log_info("guard", "msg=refused listener=%s status=%d at=%s", names[c->g->cfg.listener], status,
                where);
}

static void refuse(gconn *c, struct evbuffer *src, struct evbuffer *dst, int status)
{
    log_refusal(c, status, "head");
    atomic_fetch_add_explicit(&refusals[c->g->cfg.listener][status_index(status)], 1,
                              memory_order_relaxed);
    add_sentinel(dst, status);
    evbuffer_drain(src, evbuffer_get_length(src));
    c->state = G_DEAD;
    if (c->head_timer)
        evtimer_del(c->head_timer);
}

/* Refuse in the middle of a body: evhttp is reading it, so the 400 goes
 * straight to the socket (after what is queued there: evhttp only reads a
 * request once the previous response left its buffer) and evhttp is told
 * the connection failed, which frees it. */
static void refuse_body(gconn *c, struct evbuffer *src)
{
    log_refusal(c, 400, "body");
    atomic_fetch_add_explicit(&refusals[c->g->cfg.listener][status_index(400)], 1,
                              memory_order_relaxed);
    evbuffer_drain(src, evbuffer_get_length(src));
    c->state = G_DEAD;
    struct evbuffer *out = bufferevent_get_output(c->under);
    evbuffer_add_printf(out, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 16\r\nConnection: close\r\n\r\n400 Bad Request\n");
    evutil_socket_t fd = bufferevent_getfd(c->under);
    while (fd >= 0 && evbuffer_get_length(out) > 0 && evbuffer_write(out, fd) > 0)
        ;
    bufferevent_trigger_event(c->filter, BEV_EVENT_EOF | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
}

/* A line ending in CRLF at the start of src: its length without the CRLF,
 * or -1 (not complete yet), or -2 (a bare LF: malformed). */
static ssize_t line_len(struct evbuffer *src)
{
    struct evbuffer_ptr p = evbuffer_search(src, "\n", 1, NULL);
    if (p.pos < 0)
        return -1;
    if (p.pos == 0)
        return -2;
    char cr;
    struct evbuffer_ptr q;
    evbuffer_ptr_set(src, &q, (size_t)p.pos - 1, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(src, &q, &cr, 1);
    return cr == '\r' ? (ssize_t)p.pos - 1 : -2;
}

/* chunk-size [ chunk-ext ] (RFC 9112 7.1): 1*HEXDIG, then nothing, or BWS ";". */
static int chunk_size(const char *l, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n && isxdigit((unsigned char)l[i])) {
        if (i == 15)
            return -1;                           /* beyond 2^60: no body is that long */
        v = v * 16 + (uint64_t)(isdigit((unsigned char)l[i]) ? l[i] - '0' : (tolower(l[i]) - 'a' + 10));
        i++;
    }
    if (i == 0)
        return -1;
    size_t j = i;
    while (j < n && (l[j] == ' ' || l[j] == '\t'))
        j++;
    if (j < n && l[j] != ';')
        return -1;
    for (; j < n; j++)
        if (((unsigned char)l[j] < 0x20 && l[j] != '\t') || l[j] == 0x7f)
            return -1;
    *out = v;
    return 0;
}

static void pass(struct evbuffer *src, struct evbuffer *dst, size_t n)
{
    evbuffer_remove_buffer(src, dst, n);
}

static void start_head_timer(gconn *c)
{
    if (c->head_timer && !evtimer_pending(c->head_timer, NULL)) {
        int64_t ms = c->g->cfg.header_timeout_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(c->head_timer, &tv);
    }
}

/* One step on a request head; returns 1 to go on, 0 to wait for more. */
static int step_head(gconn *c, struct evbuffer *src, struct evbuffer *dst)
{
    unsigned char two[2];
    /* blank lines before a request (RFC 9112 2.2) */
    while (evbuffer_copyout(src, two, 2) == 2 && two[0] == '\r' && two[1] == '\n')
        evbuffer_drain(src, 2);
    size_t n = evbuffer_get_length(src);
    if (n == 0)
        return 0;
    start_head_timer(c);
    struct evbuffer_ptr e = evbuffer_search(src, "\r\n\r\n", 4, NULL);
    if (e.pos < 0) {
        struct evbuffer_ptr l = evbuffer_search(src, "\n", 1, NULL);
        if (evbuffer_search(src, "\n\n", 2, NULL).pos >= 0)
            refuse(c, src, dst, 400);            /* a head ended by bare LFs */
        else if (l.pos < 0 && n > MC_GUARD_MAX_TARGET + 64)
            refuse(c, src, dst, 414);
        else if (n > MC_GUARD_MAX_HEAD)
            refuse(c, src, dst, 431);
        return 0;
    }
    size_t hl = (size_t)e.pos + 4;
    uint64_t cl = 0;
    int chunked = 0;
    int st = hl > MC_GUARD_MAX_HEAD ? 431
           : mc_guard_check_head((const char *)evbuffer_pullup(src, (ev_ssize_t)hl), hl,
                                 c->g->cfg.max_body, &cl, &chunked);
    if (st) {
        refuse(c, src, dst, st);
        return 0;
    }
    if (c->head_timer)
        evtimer_del(c->head_timer);
    pass(src, dst, hl);
    c->left = cl;
    c->trailer_bytes = 0;
    c->state = chunked ? G_CHUNK_SIZE : cl ? G_BODY : G_HEAD;
    return 1;
}

/* One step inside a body; returns 1 to go on, 0 to wait for more. */
static int step_body(gconn *c, struct evbuffer *src, struct evbuffer *dst)
{
    size_t n = evbuffer_get_length(src);
    if (c->state == G_BODY || c->state == G_CHUNK_DATA) {
        size_t k = n < c->left ? n : (size_t)c->left;
        pass(src, dst, k);
        c->left -= k;
        if (c->left > 0)
            return 0;
        c->state = c->state == G_BODY ? G_HEAD : G_CHUNK_CRLF;
        return 1;
    }
    if (c->state == G_CHUNK_CRLF) {
        unsigned char two[2];
        if (n < 2)
            return 0;
        evbuffer_copyout(src, two, 2);
        if (two[0] != '\r' || two[1] != '\n') {
            refuse_body(c, src);
            return 0;
        }
        pass(src, dst, 2);
        c->state = G_CHUNK_SIZE;
        return 1;
    }
    ssize_t ll = line_len(src);
    size_t limit = c->state == G_CHUNK_SIZE ? MAX_CHUNK_LINE : MAX_TRAILERS;
    if (ll == -2 || (ll == -1 && n > limit) || (ll >= 0 && (size_t)ll > limit)) {
        refuse_body(c, src);
        return 0;
    }
    if (ll == -1)
        return 0;
    const char *l = (const char *)evbuffer_pullup(src, ll + 2);
    if (c->state == G_CHUNK_SIZE) {
        uint64_t sz;
        if (chunk_size(l, (size_t)ll, &sz) < 0) {
            refuse_body(c, src);
            return 0;
        }
        /* chunk extensions are dropped: RFC 9112 7.1.1 says to ignore
         * them, evhttp refuses them (413) */
        size_t digits = strspn(l, "0123456789abcdefABCDEF");
        evbuffer_add(dst, l, digits);
        evbuffer_add(dst, "\r\n", 2);
        evbuffer_drain(src, (size_t)ll + 2);
        c->left = sz;
        c->state = sz ? G_CHUNK_DATA : G_TRAILER;
        return 1;
    }
    /* a trailer field, or the blank line that ends the message */
    c->trailer_bytes += (size_t)ll + 2;
    int bad = c->trailer_bytes > MAX_TRAILERS;
    if (ll > 0) {
        const char *colon = memchr(l, ':', (size_t)ll);
        bad |= !colon || colon == l;
        for (const char *q = l; !bad && q < colon; q++)
            bad |= !is_tchar((unsigned char)*q);
        for (const char *q = colon ? colon : l; !bad && q < l + ll; q++)
            bad |= ((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f;
    }
    if (bad) {
        refuse_body(c, src);
        return 0;
    }
    pass(src, dst, (size_t)ll + 2);
    if (ll == 0)
        c->state = G_HEAD;
    return 1;
}

static enum bufferevent_filter_result in_filter(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                void *ctx)
{
    gconn *c = ctx;
    (void)limit, (void)mode;
    assert(c->magic == GCONN_MAGIC);
    for (;;) {
        if (c->state == G_DEAD) {
            evbuffer_drain(src, evbuffer_get_length(src));
            return BEV_OK;
        }
        int more = c->state == G_HEAD ? step_head(c, src, dst) : step_body(c, src, dst);
        if (!more || evbuffer_get_length(src) == 0)
            break;
    }
    /* BEV_OK with input left would be called again at once for nothing */
    return evbuffer_get_length(src) > 0 && c->state != G_DEAD ? BEV_NEED_MORE : BEV_OK;
}

/* Output: libevent 2.1's filter tells evhttp a response is written as soon
 * as it has moved into the socket's bufferevent, and evhttp then closes a
 * Connection: close connection (its own and the guard's refusals, HTTP/1.0):
 * what still waited there would be lost. So the filter owns up to progress
 * only when the socket's buffer is empty: until then it answers "need more"
 * (no write callback), and the socket buffer's drain completes it
 * (on_under_output). Output is moved whole (a file segment must not be
 * split) and written at once as far as the kernel takes it. */
static void write_now(gconn *c, struct evbuffer *dst)
{
    evutil_socket_t fd = bufferevent_getfd(c->under);
    c->in_output = 1;
    while (fd >= 0 && evbuffer_get_length(dst) > 0 && evbuffer_write(dst, fd) > 0)
        ;
    c->in_output = 0;
}

static enum bufferevent_filter_result out_filter(struct evbuffer *src, struct evbuffer *dst,
                                                 ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                 void *ctx)
{
    gconn *c = ctx;
    (void)limit, (void)mode;
    int moved = evbuffer_get_length(src) > 0;
    if (moved)
        evbuffer_add_buffer(dst, src);
    write_now(c, dst);
    if (evbuffer_get_length(dst) > 0) {
        c->owed = 1;                             /* on_under_output completes it */
    } else if (moved || c->owed) {
        /* Written. Said later, as a socket's bufferevent would: this runs
         * inside evhttp's evbuffer_add, before evhttp has set what it wants
         * done when the write completes (Expect: 100-continue). */
        c->owed = 0;
        bufferevent_trigger(c->filter, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
    }
    return BEV_NEED_MORE;                        /* the callback is ours to run, never the filter's */
}

/* The socket's bufferevent wrote some of its output: that is progress for
 * the filter's write timeout (which evhttp and objects.c set on the filter),
 * and once it is all written the response is, as far as evhttp knows. */
static void on_under_output(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    gconn *c = arg;
    if (c->in_output || !c->owed || !info->n_deleted)
        return;
    struct bufferevent *f = c->filter;
    if (evutil_timerisset(&f->timeout_write) && event_pending(&f->ev_write, EV_TIMEOUT, NULL))
        event_add(&f->ev_write, &f->timeout_write);
    if (evbuffer_get_length(b) == 0) {
        c->owed = 0;
        bufferevent_trigger(f, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
    }
}

/* evhttp queues a response, then enables writing; libevent 2.1's filter
 * only moves output that arrives while writing is enabled, so the move is
 * repeated once evhttp's call has returned. */
static void on_output(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    gconn *c = arg;
    (void)b;
    if (info->n_added && c->kick)
        event_active(c->kick, EV_TIMEOUT, 1);
}

static unsigned client_slot(uint64_t seed, const struct sockaddr_storage *ss)
{
    const unsigned char *key = NULL;
    size_t n = 0;
    if (ss->ss_family == AF_INET) {
        key = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
        n = 4;
    } else {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        key = a->s6_addr;
        n = 8;                                   /* one client: an IPv6 /64 */
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            key = a->s6_addr + 12;
            n = 4;
        }
    }
    return (unsigned)(XXH3_64bits_withSeed(key, n, seed) % CLIENT_SLOTS);
}

/* Refuse a whole connection over a cap: evhttp answers 503 and closes. */
static void refuse_conn(gconn *c, int reason_index)
{
    atomic_fetch_add_explicit(&conns_refused[c->g->cfg.listener][reason_index], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&refusals[c->g->cfg.listener][status_index(503)], 1, memory_order_relaxed);
    struct evbuffer *under_in = bufferevent_get_input(c->under);
    evbuffer_drain(under_in, evbuffer_get_length(under_in));
    c->state = G_DEAD;
    add_sentinel(bufferevent_get_input(c->filter), 503);
    bufferevent_trigger(c->filter, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

/* The caps, once evhttp has given the socket to the filter. */
static void check_caps(gconn *c)
{
    mc_guard *g = c->g;
    c->checked = 1;
    if (g->clients && g->cfg.max_per_client > 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        evutil_socket_t fd = bufferevent_getfd(c->under);
        if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
            (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
            unsigned s = client_slot(g->seed, &ss);
            if (g->clients[s] >= g->cfg.max_per_client) {
                refuse_conn(c, 1);
                return;
            }
            g->clients[s]++;
            c->slot = (int)s;
        }
    }
    if (g->cfg.max_connections > 0 && g->open >= g->cfg.max_connections) {
        refuse_conn(c, 0);
        return;
    }
    g->open++;
    c->counted = 1;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    gconn *c = arg;
    (void)fd, (void)what;
    assert(c->magic == GCONN_MAGIC);
    if (!c->checked) {
        check_caps(c);
        return;
    }
    bufferevent_flush(c->filter, EV_WRITE, BEV_NORMAL);
}

static void on_head_timeout(evutil_socket_t fd, short what, void *arg)
{
    gconn *c = arg;
    (void)fd, (void)what;
    assert(c->magic == GCONN_MAGIC);
    if (c->state != G_HEAD)
        return;
    atomic_fetch_add_explicit(&header_timeouts[c->g->cfg.listener], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&refusals[c->g->cfg.listener][status_index(408)], 1, memory_order_relaxed);
    struct evbuffer *under_in = bufferevent_get_input(c->under);
    evbuffer_drain(under_in, evbuffer_get_length(under_in));
    c->state = G_DEAD;
    add_sentinel(bufferevent_get_input(c->filter), 408);
    /* evhttp reads its input when it next waits for a request; only poke
     * it when it is waiting now (its read callback must not run mid-reply) */
    if (bufferevent_get_enabled(c->filter) & EV_READ)
        bufferevent_trigger(c->filter, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

static void gconn_free(void *arg)
{
    gconn *c = arg;
    assert(c->magic == GCONN_MAGIC);
    if (c->counted)
        c->g->open--;
    if (c->slot >= 0)
        c->g->clients[c->slot]--;
    if (c->head_timer)
        event_free(c->head_timer);
    if (c->kick)
        event_free(c->kick);
    c->magic = 0;
    free(c);
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    mc_guard *g = arg;
    assert(g->magic == GUARD_MAGIC);
    gconn *c = calloc(1, sizeof *c);
    struct bufferevent *under = c ? bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!under) {
        free(c);
        return NULL;                             /* evhttp makes a plain one: unguarded but alive */
    }
    c->magic = GCONN_MAGIC;
    c->g = g;
    c->slot = -1;
    c->under = under;
    c->kick = event_new(base, -1, 0, on_kick, c);
    if (g->cfg.header_timeout_ms > 0)
        c->head_timer = evtimer_new(base, on_head_timeout, c);
    c->filter = c->kick ? bufferevent_filter_new(under, in_filter, out_filter, BEV_OPT_CLOSE_ON_FREE,
                                                 gconn_free, c)
                        : NULL;
    if (!c->filter || (g->cfg.header_timeout_ms > 0 && !c->head_timer)) {
        if (c->filter) {
            bufferevent_free(c->filter);         /* frees c and under */
        } else {
            bufferevent_free(under);
            gconn_free(c);
        }
        return NULL;
    }
    evbuffer_add_cb(bufferevent_get_output(c->filter), on_output, c);
    evbuffer_add_cb(bufferevent_get_output(under), on_under_output, c);
    event_active(c->kick, EV_TIMEOUT, 1);        /* the caps, once evhttp set the socket */
    return c->filter;
}

/* ---- the guard ------------------------------------------------------------ */

int mc_guard_new(mc_guard **out, struct event_base *base, struct evhttp *http,
                 const mc_guard_config *cfg)
{
    if (!token[0]) {
        unsigned char r[16];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            for (size_t i = 0; i < sizeof r; i++)
                r[i] = (unsigned char)(rand() ^ time(NULL) >> (i % 8));
        for (size_t i = 0; i < sizeof r; i++)
            snprintf(token + 2 * i, 3, "%02x", r[i]);
    }
    mc_guard *g = calloc(1, sizeof *g);
    if (!g)
        return MC_E_NOMEM;
    g->magic = GUARD_MAGIC;
    g->base = base;
    g->cfg = *cfg;
    if (getrandom(&g->seed, sizeof g->seed, 0) != (ssize_t)sizeof g->seed)
        g->seed = (uint64_t)(uintptr_t)g ^ (uint64_t)time(NULL);
    if (cfg->max_per_client > 0 && !(g->clients = calloc(CLIENT_SLOTS, sizeof *g->clients))) {
        free(g);
        return MC_E_NOMEM;
    }
    evhttp_set_bevcb(http, make_bev, g);
    *out = g;
    return 0;
}

void mc_guard_free(mc_guard *g)
{
    if (!g)
        return;
    assert(g->magic == GUARD_MAGIC);
    free(g->clients);
    g->magic = 0;
    free(g);
}

bool mc_guard_answer(struct evhttp_request *req)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), GUARD_HEADER);
    size_t tl = strlen(token);
    if (!v || !token[0] || strncmp(v, token, tl) != 0 || v[tl] != ' ')
        return false;
    int status = atoi(v + tl + 1);
    if (status < 400 || status > 599)
        status = 400;
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add_printf(b, "%d %s\n", status, reason(status));
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(h, "Connection", "close");
    evhttp_send_reply(req, status, reason(status), b);
    if (b)
        evbuffer_free(b);
    return true;
}

int mc_guard_render_metrics(void *ud, mc_buf *out)
{
    (void)ud;
    static const char *const names[] = {"s3", "control"};
    char labels[96];
    mc_metrics_header(out, "meshcdn_origin_guard_refusals_total", "counter",
                      "requests and connections refused by the HTTP guard, by listener and status");
    for (int l = 0; l < MC_GUARD_LISTENERS; l++)
        for (size_t i = 0; i < NSTATUS; i++) {
            uint64_t v = atomic_load_explicit(&refusals[l][i], memory_order_relaxed);
            if (!v)
                continue;
            snprintf(labels, sizeof labels, "listener=\"%s\",code=\"%d\"", names[l], statuses[i]);
            mc_metrics_value(out, "meshcdn_origin_guard_refusals_total", labels, (double)v);
        }
    mc_metrics_header(out, "meshcdn_origin_connections_refused_total", "counter",
                      "connections refused (503) over max_connections (total) or "
                      "max_connections_per_client (per_client)");
    for (int l = 0; l < MC_GUARD_LISTENERS; l++)
        for (int r = 0; r < 2; r++) {
            snprintf(labels, sizeof labels, "listener=\"%s\",reason=\"%s\"", names[l],
                     r ? "per_client" : "total");
            mc_metrics_value(out, "meshcdn_origin_connections_refused_total", labels,
                             (double)atomic_load_explicit(&conns_refused[l][r], memory_order_relaxed));
        }
    mc_metrics_header(out, "meshcdn_origin_header_timeouts_total", "counter",
                      "request heads not complete within header_timeout (408)");
    for (int l = 0; l < MC_GUARD_LISTENERS; l++) {
        snprintf(labels, sizeof labels, "listener=\"%s\"", names[l]);
        mc_metrics_value(out, "meshcdn_origin_header_timeouts_total", labels,
                         (double)atomic_load_explicit(&header_timeouts[l], memory_order_relaxed));
    }
    return 0;
}
