/* upstream.c — see upstream.h. The libevent/libcurl glue follows curl's
 * multi_socket pattern (docs/examples/multi-event.c). */
#include <arpa/inet.h>
#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sigv4.h"
#include "edge/signer.h"
#include "edge/stats.h"
#include "edge/tier.h"
#include "edge/upstream.h"

#define MC_XFER_MAGIC 0x58464552u
#define MAX_UP_HEADERS 100

/* A TCP connection opened ahead of need (mc_upstream_preconnect), waiting
 * in its upstream's pool for curl to ask for a socket to the same address. */
typedef struct pre_sock {
    struct pre_sock *next;
    mc_upstream *u;
    int fd;
    int connected;                /* the handshake completed */
    long idle_ms;                 /* closed unused after this long connected */
    struct sockaddr_storage addr;
    socklen_t alen;
    struct event *ev;             /* connecting: EV_WRITE + connect timeout; idle: EV_READ + idle timeout */
} pre_sock;

/* An upstream host:port and the address curl last opened to it (so a name
 * is never resolved here: curl's resolver stays the only one). */
#define MC_ADDR_MEMO 8
typedef struct addr_memo {
    char authority[256];
    struct sockaddr_storage addr;
    socklen_t alen;
} addr_memo;

/* Connections to open on the next loop turn (after curl's own connect). */
#define MC_PRE_DEFER 8
typedef struct pre_req {
    struct sockaddr_storage addr;
    socklen_t alen;
    int n;
    int64_t idle_ms, connect_ms;
} pre_req;

struct mc_upstream {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    pre_sock *pool;               /* preconnected sockets, connecting or idle */
    int npool;
    pre_req defer[MC_PRE_DEFER];
    int ndefer;
    struct event *defer_ev;
    addr_memo memo[MC_ADDR_MEMO];
    int nmemo, memo_next;
};

/* Bound on preconnected sockets per worker, whatever the configuration. */
#define MC_PRECONNECT_MAX 64

static struct {
    _Atomic uint64_t opened, used, expired, failed;
} pre_stats;

/* What one attempt of a transfer goes to. */
enum { TARGET_PRIMARY = -2, TARGET_SECONDARY = -3 };

struct mc_upstream_xfer {
    uint32_t magic;
    mc_upstream *u;
    mc_edge_snap *snap;      /* the configuration it started with (a reference) */
    CURL *easy;
    struct curl_slist *hdrs;
    mc_upstream_cbs cbs;
    void *arg;
    mc_buf head;             /* header lines of the response being read */
    int status;
    int headers_done;
    int paused;
    int aborted;
    struct timespec started;
    struct timespec first;   /* the first attempt's start */
    char *url;
    /* failover (GETs through mc_upstream_get): the request, kept to be sent again */
    int failover_ok;
    int target;              /* parent index, TARGET_PRIMARY or TARGET_SECONDARY */
    int order[MC_MAX_PARENTS];
    int next_parent;         /* next index into order */
    int retry;               /* this attempt's response is not delivered: try the next target */
    char *path, *query;
    char **headers;          /* NULL-terminated copies */
    struct event *head_timer; /* a parent attempt: tier.response_timeout */
    char authority[256];      /* this attempt's host:port, as in its URL */
    curl_socket_t handed_fd;  /* a preconnected socket curl was given, or CURL_SOCKET_BAD */
    int preconnect_want;      /* connections to open once curl tells the address */
};

typedef struct sock_ctx {
    struct event *ev;
} sock_ctx;

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void attempt_clear(mc_upstream_xfer *x)
{
    if (x->head_timer)
        event_free(x->head_timer);
    x->head_timer = NULL;
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    mc_buf_free(&x->head);
    free(x->url);
    x->url = NULL;
    x->status = x->headers_done = x->paused = x->aborted = x->retry = 0;
    x->handed_fd = CURL_SOCKET_BAD;
    x->authority[0] = '\0';
}

static void xfer_free(mc_upstream_xfer *x)
{
    attempt_clear(x);
    free(x->path);
    free(x->query);
    for (char **h = x->headers; h && *h; h++)
        free(*h);
    free(x->headers);
    mc_snap_unref(x->snap);
    x->magic = 0;
    free(x);
}

static int start_attempt(mc_upstream_xfer *x, const mc_upstream_req *rq);

/* The target after the current one: the next usable parent in rendezvous
 * order, then the primary origin, then the secondary. -1: none. */
static int next_target(mc_upstream_xfer *x, int peek)
{
    const mc_edge_config *cfg = &x->snap->cfg;
    if (x->target >= 0 || x->target == -1) {
        for (int k = x->next_parent; k < cfg->nparents; k++)
            if (mc_tier_usable(x->snap->parent_slot[x->order[k]])) {
                if (!peek)
                    x->next_parent = k + 1;
                return x->order[k];
            }
        return TARGET_PRIMARY;
    }
    if (x->target == TARGET_PRIMARY && cfg->secondary_base[0])
        return TARGET_SECONDARY;
    return -1;
}

/* Whether a response head of the current target moves the GET on. */
static int fails_over(mc_upstream_xfer *x, int status)
{
    if (!x->failover_ok)
        return 0;
    if (x->target >= 0)   /* a parent: 5xx, but 508 (a loop) is an answer */
        return status >= 500 && status != 508;
    const mc_edge_config *cfg = &x->snap->cfg;
    if (x->target == TARGET_PRIMARY && cfg->secondary_base[0]) {
        for (int i = 0; i < cfg->nfailover_statuses; i++)
            if (cfg->failover_statuses[i] == status)
                return 1;
    }
    return 0;
}

/* The attempt ended with rc (before on_done): health and counts. Returns 1
 * when the transfer goes on with the next target. */
static int attempt_ended(mc_upstream_xfer *x, int rc)
{
    int code = x->headers_done ? x->status : 0;
    int failed = x->retry || (rc < 0 && rc != MC_E_STATE) || (x->target >= 0 && code >= 500 && code != 508);
    const mc_edge_config *cfg = &x->snap->cfg;
    if (x->target >= 0) {
        mc_tier_count(x->snap->parent_slot[x->target], code);
        mc_tier_result(cfg, x->snap->parent_slot[x->target], !failed);
    } else if (x->target == TARGET_SECONDARY) {
        mc_tier_count(MC_TIER_SECONDARY, code);
        mc_tier_origin_result(cfg, 1, !(failed || code >= 500));
    } else {
        mc_stats_upstream(code, since(&x->started));
        mc_tier_origin_result(cfg, 0, !(failed || code >= 500));
    }
    /* a failure before any header was delivered may go on */
    int before_body = x->retry || (!x->headers_done && (rc == MC_E_IO || rc == MC_E_BUSY));
    if (!x->failover_ok || !before_body)
        return 0;
    int t = next_target(x, 0);
    if (t == -1)
        return 0;
    const char *from = x->target >= 0 ? cfg->parents[x->target].name
                       : x->target == TARGET_PRIMARY ? "origin" : "origin-secondary";
    const char *to = t >= 0 ? cfg->parents[t].name : t == TARGET_PRIMARY ? "origin" : "origin-secondary";
    mc_log_warn("upstream", "msg=failover from=%s to=%s url=%s status=%d", from, to, x->url, x->status);
    x->target = t;
    attempt_clear(x);
    mc_upstream_req rq = {NULL, x->path, x->query, (const char *const *)x->headers, NULL, 0, 0};
    if (start_attempt(x, &rq) == 0)
        return 1;
    return 0;
}

/* The current attempt ended with rc: the next target, or on_done. */
static void finish_attempt(mc_upstream_xfer *x, int rc, const char *why)
{
    if (rc < 0)
        mc_log_warn("upstream", "msg=\"fetch failed\" url=%s error=\"%s\" status=%d", x->url, why, x->status);
    if (attempt_ended(x, rc))
        return;
    if (!x->easy) {   /* the next attempt could not start */
        x->cbs.on_done(x->arg, MC_E_IO, "no upstream left");
        xfer_free(x);
        return;
    }
    x->cbs.on_done(x->arg, rc, why);
    xfer_free(x);
}

static void check_done(mc_upstream *u)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(u->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        mc_upstream_xfer *x;
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        assert(x && x->magic == MC_XFER_MAGIC);
        curl_multi_remove_handle(u->multi, easy);
        int rc = 0;
        const char *why = "ok";
        if (x->retry) {
            rc = MC_E_IO;
            why = "failover status";
        } else if (res != CURLE_OK) {
            why = curl_easy_strerror(res);
            switch (res) {
            case CURLE_PARTIAL_FILE:
            case CURLE_RECV_ERROR:
                rc = x->headers_done ? MC_E_TRUNCATED : MC_E_IO;
                break;
            case CURLE_OPERATION_TIMEDOUT:
                rc = MC_E_BUSY;
                break;
            case CURLE_WRITE_ERROR:
                rc = x->aborted ? MC_E_STATE : MC_E_IO;
                break;
            default:
                rc = x->headers_done ? MC_E_TRUNCATED : MC_E_IO;
            }
        }
        finish_attempt(x, rc, why);
    }
}

/* A parent sent no response head within tier.response_timeout. Runs from
 * the loop, outside curl's callbacks. */
static void on_head_timeout(evutil_socket_t fd, short what, void *arg)
{
    mc_upstream_xfer *x = arg;
    (void)fd, (void)what;
    if (x->headers_done)
        return;
    curl_multi_remove_handle(x->u->multi, x->easy);
    finish_attempt(x, MC_E_BUSY, "no response head in time");
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    mc_upstream *u = arg;
    int running;
    int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(u->multi, fd, action, &running);
    check_done(u);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    mc_upstream *u = arg;
    int running;
    (void)fd, (void)what;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(u);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    mc_upstream *u = userp;
    sock_ctx *sc = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            event_free(sc->ev);
            free(sc);
            curl_multi_assign(u->multi, s, NULL);
        }
        return 0;
    }
    if (!sc) {
        sc = calloc(1, sizeof *sc);
        if (!sc)
            return -1;
        curl_multi_assign(u->multi, s, sc);
    } else {
        event_free(sc->ev);
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    sc->ev = event_new(u->base, s, kind, on_socket_event, u);
    event_add(sc->ev, NULL);
    return 0;
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    mc_upstream *u = userp;
    (void)m;
    if (timeout_ms < 0) {
        evtimer_del(u->timer);
    } else {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(u->timer, &tv);
    }
    return 0;
}

/* ---------- preconnected sockets ---------- */

static int same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return 0;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 &&
               x->sin6_scope_id == y->sin6_scope_id;
    }
    return 0;
}

static void pre_drop(mc_upstream *u, pre_sock *p, int close_fd)
{
    for (pre_sock **pp = &u->pool; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    u->npool--;
    if (p->ev)
        event_free(p->ev);
    if (close_fd)
        close(p->fd);
    free(p);
}

static void on_pre_event(evutil_socket_t fd, short what, void *arg)
{
    pre_sock *p = arg;
    mc_upstream *u = p->u;
    if (!p->connected) {
        int err = 0;
        socklen_t l = sizeof err;
        if ((what & EV_TIMEOUT) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err) {
            mc_log_debug("upstream", "msg=\"preconnect failed\" error=\"%s\"",
                         (what & EV_TIMEOUT) ? "timeout" : strerror(err ? err : errno));
            mc_counter_add(&pre_stats.failed, 1);
            pre_drop(u, p, 1);
            return;
        }
        event_free(p->ev);
        p->connected = 1;
        p->ev = event_new(u->base, fd, EV_READ, on_pre_event, p);
        struct timeval tv = {p->idle_ms / 1000, (suseconds_t)(p->idle_ms % 1000) * 1000};
        if (!p->ev || event_add(p->ev, &tv) < 0) {
            mc_counter_add(&pre_stats.failed, 1);
            pre_drop(u, p, 1);
        }
        return;
    }
    /* idle too long, or the peer closed it (or sent something unasked) */
    mc_counter_add(&pre_stats.expired, 1);
    pre_drop(u, p, 1);
}

/* Open connections to addr until n are pooled for it (bounded per worker). */
static void pool_fill(mc_upstream *u, const pre_req *rq)
{
    const struct sockaddr *addr = (const struct sockaddr *)&rq->addr;
    socklen_t alen = rq->alen;
    int n = rq->n;
    int have = 0;
    for (pre_sock *p = u->pool; p; p = p->next)
        have += same_addr((const struct sockaddr *)&p->addr, addr);
    while (have < n && u->npool < MC_PRECONNECT_MAX) {
        int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0) {
            mc_counter_add(&pre_stats.failed, 1);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int rc = connect(fd, addr, alen);
        pre_sock *p = (rc == 0 || errno == EINPROGRESS) ? calloc(1, sizeof *p) : NULL;
        if (!p) {
            mc_log_debug("upstream", "msg=\"preconnect failed\" error=\"%s\"", strerror(errno));
            close(fd);
            mc_counter_add(&pre_stats.failed, 1);
            return;
        }
        p->u = u;
        p->fd = fd;
        p->connected = rc == 0;
        memcpy(&p->addr, addr, alen);
        p->alen = alen;
        p->idle_ms = (long)rq->idle_ms;
        long ms = (long)(p->connected ? rq->idle_ms : rq->connect_ms);
        struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
        p->next = u->pool;
        u->pool = p;
        u->npool++;
        p->ev = event_new(u->base, fd, p->connected ? EV_READ : EV_WRITE, on_pre_event, p);
        if (!p->ev || event_add(p->ev, &tv) < 0) {
            mc_counter_add(&pre_stats.failed, 1);
            pre_drop(u, p, 1);
            return;
        }
        mc_counter_add(&pre_stats.opened, 1);
        have++;
    }
}

/* A connected, still open pooled socket to addr (taken out of the pool),
 * or -1. */
static int pool_take(mc_upstream *u, const struct sockaddr *addr)
{
    pre_sock *p = u->pool;
    while (p) {
        pre_sock *next = p->next;
        if (p->connected && same_addr((const struct sockaddr *)&p->addr, addr)) {
            char c;
            ssize_t r = recv(p->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                int fd = p->fd;
                pre_drop(u, p, 0);
                mc_counter_add(&pre_stats.used, 1);
                return fd;
            }
            mc_counter_add(&pre_stats.expired, 1);   /* closed (or talking) before use */
            pre_drop(u, p, 1);
        }
        p = next;
    }
    return -1;
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    mc_upstream *u = arg;
    (void)fd, (void)what;
    for (int i = 0; i < u->ndefer; i++)
        pool_fill(u, &u->defer[i]);
    u->ndefer = 0;
}

/* Preconnect n to addr shortly (1 ms): the transfer that asked goes first,
 * so its SYN is not queued behind them at the upstream. */
static void pool_fill_soon(mc_upstream *u, const mc_edge_config *cfg, const struct sockaddr *addr, socklen_t alen,
                           int n)
{
    pre_req *rq = NULL;
    for (int i = 0; i < u->ndefer && !rq; i++)
        if (same_addr((const struct sockaddr *)&u->defer[i].addr, addr))
            rq = &u->defer[i];
    if (!rq) {
        if (u->ndefer == MC_PRE_DEFER)
            return;
        rq = &u->defer[u->ndefer++];
        memcpy(&rq->addr, addr, alen);
        rq->alen = alen;
        rq->n = 0;
    }
    rq->n = n > rq->n ? n : rq->n;
    rq->idle_ms = cfg->preconnect_idle_ms;
    rq->connect_ms = cfg->connect_timeout_ms;
    struct timeval tv = {0, 1000};
    evtimer_add(u->defer_ev, &tv);
}

static addr_memo *memo_find(mc_upstream *u, const char *authority)
{
    for (int i = 0; i < u->nmemo; i++)
        if (strcmp(u->memo[i].authority, authority) == 0)
            return &u->memo[i];
    return NULL;
}

static void memo_learn(mc_upstream *u, const char *authority, const struct sockaddr *addr, socklen_t alen)
{
    addr_memo *m = memo_find(u, authority);
    if (!m) {
        m = &u->memo[u->memo_next];
        u->memo_next = (u->memo_next + 1) % MC_ADDR_MEMO;
        if (u->nmemo < MC_ADDR_MEMO)
            u->nmemo++;
        snprintf(m->authority, sizeof m->authority, "%s", authority);
    }
    memcpy(&m->addr, addr, alen);
    m->alen = alen;
}

/* curl wants a socket for a new connection: a preconnected one to the same
 * address when the pool has one (on_sockopt then tells curl it is
 * connected), else a fresh one as curl would make it. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    mc_upstream_xfer *x = clientp;
    mc_upstream *u = x->u;
    x->handed_fd = CURL_SOCKET_BAD;   /* a socket of curl's own may reuse a closed handed one's number */
    if (purpose == CURLSOCKTYPE_IPCXN && a->socktype == SOCK_STREAM && x->authority[0] &&
        a->addrlen <= sizeof(struct sockaddr_storage) &&
        (a->family == AF_INET || a->family == AF_INET6)) {
        memo_learn(u, x->authority, &a->addr, a->addrlen);
        int fd = pool_take(u, &a->addr);
        if (fd >= 0) {
            mc_log_debug("upstream", "msg=\"preconnected socket used\" url=%s", x->url);
            x->handed_fd = fd;
            return fd;
        }
        if (x->preconnect_want > 0) {
            int n = x->preconnect_want;
            x->preconnect_want = 0;
            pool_fill_soon(u, &x->snap->cfg, &a->addr, a->addrlen, n);
        }
    }
    return socket(a->family, a->socktype, a->protocol);
}

static int on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    mc_upstream_xfer *x = clientp;
    (void)purpose;
    return fd == x->handed_fd ? CURL_SOCKOPT_ALREADY_CONNECTED : CURL_SOCKOPT_OK;
}

void mc_upstream_preconnect(mc_upstream_xfer *x, int n)
{
    assert(x && x->magic == MC_XFER_MAGIC);
    if (n <= 0 || !x->easy || !x->authority[0])
        return;
    if (n > MC_PRECONNECT_MAX)
        n = MC_PRECONNECT_MAX;
    addr_memo *m = memo_find(x->u, x->authority);
    if (m)
        pool_fill_soon(x->u, &x->snap->cfg, (const struct sockaddr *)&m->addr, m->alen, n);
    else
        x->preconnect_want = n;   /* curl's resolver tells the address: on_open_socket */
}

void mc_upstream_metrics(mc_buf *b)
{
    static const char *const names[] = {"used", "expired", "failed"};
    _Atomic uint64_t *v[] = {&pre_stats.used, &pre_stats.expired, &pre_stats.failed};
    mc_metrics_header(b, "meshcdn_edge_upstream_preconnects_total", "counter",
                      "upstream TCP connections opened ahead of a .gltf's prefetch fills, by outcome "
                      "(used: handed to a fill; expired: idle too long or closed by the peer; failed: connect error)");
    for (int i = 0; i < 3; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "result=\"%s\"", names[i]);
        mc_metrics_value(b, "meshcdn_edge_upstream_preconnects_total", labels, (double)mc_counter_get(v[i]));
    }
    mc_metrics_header(b, "meshcdn_edge_upstream_preconnects_opened_total", "counter",
                      "upstream TCP connections opened ahead of need");
    mc_metrics_value(b, "meshcdn_edge_upstream_preconnects_opened_total", NULL, (double)mc_counter_get(&pre_stats.opened));
}

int mc_upstream_new(mc_upstream **out, struct event_base *base)
{
    mc_upstream *u = calloc(1, sizeof *u);
    if (!u)
        return MC_E_NOMEM;
    u->base = base;
    u->multi = curl_multi_init();
    u->timer = evtimer_new(base, on_timeout, u);
    u->defer_ev = evtimer_new(base, on_defer, u);
    if (!u->multi || !u->timer || !u->defer_ev) {
        mc_upstream_free(u);
        return MC_E_NOMEM;
    }
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 256L);
    *out = u;
    return 0;
}

void mc_upstream_free(mc_upstream *u)
{
    if (!u)
        return;
    if (u->multi)
        curl_multi_cleanup(u->multi);
    while (u->pool) {
        mc_counter_add(&pre_stats.expired, 1);
        pre_drop(u, u->pool, 1);
    }
    if (u->defer_ev)
        event_free(u->defer_ev);
    if (u->timer)
        event_free(u->timer);
    free(u);
}

double mc_upstream_elapsed(const mc_upstream_xfer *x)
{
    return since(&x->first);
}

/* Parse the collected head: "HTTP/1.1 200 OK\r\nName: v\r\n..." */
static int deliver_headers(mc_upstream_xfer *x)
{
    mc_http_header h[MAX_UP_HEADERS];
    int n = 0;
    int64_t clen = -1;
    char *p = x->head.data;
    char *eol = p ? strstr(p, "\r\n") : NULL;
    if (!eol)
        return -1;
    p = eol + 2;
    while (*p && n < MAX_UP_HEADERS) {
        eol = strstr(p, "\r\n");
        if (!eol)
            break;
        *eol = '\0';
        char *colon = strchr(p, ':');
        if (colon && colon != p) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            char *ve = v + strlen(v);
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                *--ve = '\0';
            h[n].name = p;
            h[n++].value = v;
            if (strcasecmp(p, "Content-Length") == 0)
                clen = strtoll(v, NULL, 10);
        }
        p = eol + 2;
    }
    if (clen < 0) {
        curl_off_t cl = -1;
        if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
            clen = cl;
    }
    /* 204 and 304 have no body whatever Content-Length says: on a 304 it is
     * the selected representation's (RFC 9112 6.3, RFC 9110 8.6) */
    if (x->status == 204 || x->status == 304)
        clen = 0;
    return x->cbs.on_headers(x->arg, x->status, h, n, clen);
}

static size_t on_curl_header(char *data, size_t size, size_t nitems, void *arg)
{
    mc_upstream_xfer *x = arg;
    size_t len = size * nitems;
    if (x->retry)
        return 0;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        mc_buf_reset(&x->head);                  /* a new response (after 1xx) */
        const char *sp = memchr(data, ' ', len);
        x->status = sp ? atoi(sp + 1) : 0;
    }
    if (x->head.len + len > 64 * 1024)
        return 0;                                /* absurd head: abort */
    mc_buf_append(&x->head, data, len);
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n') && x->status >= 200) {
        x->headers_done = 1;
        if (x->head_timer)
            evtimer_del(x->head_timer);
        if (fails_over(x, x->status) && next_target(x, 1) != -1) {
            x->retry = 1;    /* not delivered: check_done moves on */
            return 0;
        }
        if (deliver_headers(x) < 0) {
            x->aborted = 1;
            return 0;
        }
    }
    return len;
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *arg)
{
    mc_upstream_xfer *x = arg;
    size_t len = size * nmemb;
    int rc = x->cbs.on_body(x->arg, data, len);
    if (rc == MC_UPSTREAM_PAUSE) {
        mc_log_debug("upstream", "msg=pause url=%s", x->url);
        x->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (rc < 0) {
        x->aborted = 1;
        return 0;
    }
    mc_counter_add(&mc_stats_global.upstream_bytes, len);
    return len;
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
    char line[4096];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n)
        return MC_E_NOMEM;
    *l = n;
    return 0;
}

/* SigV4 headers for METHOD path?query (signer.h says what is signed): the
 * payload UNSIGNED-PAYLOAD for a request without a body, else the body's
 * SHA-256 (what an S3 origin checks a PUT against). */
static int sign_request(mc_signer *signer, const mc_upstream_req *rq, const char *path, struct curl_slist **l)
{
    char sha[65] = "UNSIGNED-PAYLOAD";
    if (rq->has_body)
        mc_sigv4_sha256_hex(rq->body, rq->body_len, sha);
    mc_signed sg;
    int rc = mc_signer_sign(signer, rq->method ? rq->method : "GET", path, rq->query, sha, time(NULL), &sg);
    if (rc == 0) {
        rc = add_header(l, "X-Amz-Content-Sha256", sha);
        if (!rc) rc = add_header(l, "X-Amz-Date", sg.amz_date);
        if (!rc && sg.session_token) rc = add_header(l, "X-Amz-Security-Token", sg.session_token);
        if (!rc) rc = add_header(l, "Authorization", sg.authorization);
    }
    mc_signed_free(&sg);
    return rc;
}

static char *dup_or_null(const char *s, int *fail)
{
    char *d = s ? strdup(s) : NULL;
    *fail |= s && !d;
    return d;
}

static mc_upstream_xfer *xfer_new(mc_upstream *u, mc_edge_snap *snap, const mc_upstream_cbs *cbs, void *arg)
{
    mc_upstream_xfer *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->magic = MC_XFER_MAGIC;
    x->u = u;
    x->snap = mc_snap_ref(snap);
    clock_gettime(CLOCK_MONOTONIC, &x->first);
    x->cbs = *cbs;
    x->arg = arg;
    x->handed_fd = CURL_SOCKET_BAD;
    return x;
}

mc_upstream_xfer *mc_upstream_get(mc_upstream *u, mc_edge_snap *snap, const char *path, const char *query,
                                  const char *const *extra_headers, const mc_upstream_cbs *cbs,
                                  void *arg)
{
    mc_upstream_xfer *x = xfer_new(u, snap, cbs, arg);
    if (!x)
        return NULL;
    x->failover_ok = 1;
    int fail = 0, n = 0;
    x->path = dup_or_null(path, &fail);
    x->query = dup_or_null(query, &fail);
    while (extra_headers && extra_headers[n])
        n++;
    x->headers = calloc((size_t)n + 1, sizeof *x->headers);
    fail |= !x->headers;
    for (int i = 0; !fail && i < n; i++)
        x->headers[i] = dup_or_null(extra_headers[i], &fail);
    x->target = -1;
    if (!fail && snap->cfg.nparents) {
        mc_buf key = MC_BUF_INIT;   /* the cache key's URL part */
        mc_buf_printf(&key, "%s%s%s", path, query ? "?" : "", query ? query : "");
        fail |= !key.data;
        if (key.data)
            mc_tier_rank(&snap->cfg, key.data, key.len, x->order);
        mc_buf_free(&key);
    }
    if (!fail)
        x->target = next_target(x, 0);
    mc_upstream_req rq = {NULL, x->path, x->query, (const char *const *)x->headers, NULL, 0, 0};
    if (fail || start_attempt(x, &rq) < 0) {
        xfer_free(x);
        return NULL;
    }
    return x;
}

mc_upstream_xfer *mc_upstream_send(mc_upstream *u, mc_edge_snap *snap, const mc_upstream_req *rq,
                                   const mc_upstream_cbs *cbs, void *arg)
{
    mc_upstream_xfer *x = xfer_new(u, snap, cbs, arg);
    if (!x)
        return NULL;
    x->target = TARGET_PRIMARY;
    if (start_attempt(x, rq) < 0) {
        xfer_free(x);
        return NULL;
    }
    return x;
}

/* Build and add the easy handle of x's current target. */
static int start_attempt(mc_upstream_xfer *x, const mc_upstream_req *rq)
{
    mc_upstream *u = x->u;
    const char *path = rq->path, *query = rq->query;
    const mc_edge_config *cfg = &x->snap->cfg;
    const char *base = cfg->origin_base, *prefix = cfg->origin_path, *host = x->snap->host;
    mc_signer *signer = x->snap->signer;
    char phost[512];
    if (x->target >= 0) {   /* a parent: the viewer path, unsigned (it signs to the origin itself) */
        base = cfg->parents[x->target].base;
        prefix = "";
        snprintf(phost, sizeof phost, "%s", strstr(base, "://") + 3);
        host = phost;
        signer = NULL;
    } else if (x->target == TARGET_SECONDARY) {
        base = cfg->secondary_base;
        prefix = cfg->secondary_path;
        host = x->snap->host2;
        signer = x->snap->signer2;
    }
    clock_gettime(CLOCK_MONOTONIC, &x->started);
    const char *auth = strstr(base, "://");
    auth = auth ? auth + 3 : base;
    snprintf(x->authority, sizeof x->authority, "%.*s", (int)strcspn(auth, "/?#"), auth);
    mc_buf url = MC_BUF_INIT, full = MC_BUF_INIT;
    mc_buf_printf(&full, "%s%s", prefix, path);
    mc_buf_printf(&url, "%s%s%s%s", base, full.data, query ? "?" : "", query ? query : "");
    x->url = mc_buf_steal(&url);
    x->easy = curl_easy_init();
    int rc = (x->url && x->easy) ? 0 : MC_E_NOMEM;
    if (!rc) rc = add_header(&x->hdrs, "Host", host);
    if (!rc) x->hdrs = curl_slist_append(x->hdrs, "Accept:");   /* drop curl's default */
    int has_type = 0;
    for (const char *const *e = rq->headers; !rc && e && *e; e++) {
        struct curl_slist *n = curl_slist_append(x->hdrs, *e);
        rc = n ? 0 : MC_E_NOMEM;
        x->hdrs = n ? n : x->hdrs;
        has_type |= strncasecmp(*e, "Content-Type:", 13) == 0;
    }
    if (!rc && rq->has_body) {   /* no form type or 100-continue of curl's own */
        struct curl_slist *n = curl_slist_append(x->hdrs, "Expect:");
        if (n && !has_type)
            n = curl_slist_append(n, "Content-Type:");
        rc = n ? 0 : MC_E_NOMEM;
        x->hdrs = n ? n : x->hdrs;
    }
    if (!rc && signer)
        rc = sign_request(signer, rq, full.data, &x->hdrs);
    mc_buf_free(&full);
    if (rc) {
        attempt_clear(x);
        return rc;
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)((cfg->upstream_idle_ms + 999) / 1000));
    curl_easy_setopt(e, CURLOPT_USERAGENT, "meshcdn/" MESHCDN_VERSION);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, x);
    /* HTTPS origins: verified unless the operator said origin.insecure */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, cfg->origin_insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, cfg->origin_insecure ? 0L : 2L);
    if (cfg->origin_ca_file[0])
        curl_easy_setopt(e, CURLOPT_CAINFO, cfg->origin_ca_file);
    if (cfg->origin_ca_dir[0])
        curl_easy_setopt(e, CURLOPT_CAPATH, cfg->origin_ca_dir);
    if (rq->method && strcmp(rq->method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method);
    if (rq->has_body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body_len ? (const char *)rq->body : "");
    }
    if (x->target >= 0 && cfg->tier_response_timeout_ms > 0) {
        struct timeval tv = {(time_t)(cfg->tier_response_timeout_ms / 1000),
                             (suseconds_t)(cfg->tier_response_timeout_ms % 1000) * 1000};
        x->head_timer = evtimer_new(u->base, on_head_timeout, x);
        if (!x->head_timer || evtimer_add(x->head_timer, &tv) < 0) {
            attempt_clear(x);
            return MC_E_NOMEM;
        }
    }
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
        attempt_clear(x);
        return MC_E_NOMEM;
    }
    return 0;
}

void mc_upstream_resume(mc_upstream_xfer *x)
{
    assert(x && x->magic == MC_XFER_MAGIC);
    if (!x->paused)
        return;
    x->paused = 0;
    mc_log_debug("upstream", "msg=resume url=%s", x->url);
    curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

void mc_upstream_cancel(mc_upstream_xfer *x)
{
    assert(x && x->magic == MC_XFER_MAGIC);
    curl_multi_remove_handle(x->u->multi, x->easy);
    xfer_free(x);
}
