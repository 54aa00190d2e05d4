/* upstream.c — see upstream.h. The libevent/libcurl glue follows curl's
 * multi_socket pattern (docs/examples/multi-event.c). */
#include <assert.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/sigv4.h"
#include "edge/signer.h"
#include "edge/stats.h"
#include "edge/upstream.h"

#define MC_XFER_MAGIC 0x58464552u
#define MAX_UP_HEADERS 100

struct mc_upstream {
    struct event_base *base;
    const mc_edge_config *cfg;
    mc_signer *signer;       /* shared by the node's workers; NULL: unsigned */
    CURLM *multi;
    struct event *timer;
    char host[512];          /* Host header value, signed as sent */
};

struct mc_upstream_xfer {
    uint32_t magic;
    mc_upstream *u;
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
    char *url;
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

static void xfer_free(mc_upstream_xfer *x)
{
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    mc_buf_free(&x->head);
    free(x->url);
    x->magic = 0;
    free(x);
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
        if (res != CURLE_OK) {
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
        mc_stats_upstream(x->headers_done ? x->status : 0, since(&x->started));
        if (rc < 0)
            mc_log_warn("upstream", "msg=\"fetch failed\" url=%s error=\"%s\" status=%d", x->url, why, x->status);
        x->cbs.on_done(x->arg, rc, why);
        xfer_free(x);
    }
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

int mc_upstream_new(mc_upstream **out, struct event_base *base, const mc_edge_config *cfg,
                    mc_signer *signer)
{
    assert(!cfg->origin_sign || signer);
    mc_upstream *u = calloc(1, sizeof *u);
    if (!u)
        return MC_E_NOMEM;
    u->base = base;
    u->cfg = cfg;
    u->signer = cfg->origin_sign ? signer : NULL;
    u->multi = curl_multi_init();
    u->timer = evtimer_new(base, on_timeout, u);
    if (!u->multi || !u->timer) {
        mc_upstream_free(u);
        return MC_E_NOMEM;
    }
    snprintf(u->host, sizeof u->host, "%s", strstr(cfg->origin_base, "://") + 3);
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
    if (u->timer)
        event_free(u->timer);
    free(u);
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
    return x->cbs.on_headers(x->arg, x->status, h, n, clen);
}

static size_t on_curl_header(char *data, size_t size, size_t nitems, void *arg)
{
    mc_upstream_xfer *x = arg;
    size_t len = size * nitems;
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
static int sign_request(mc_upstream *u, const mc_upstream_req *rq, const char *path, struct curl_slist **l)
{
    char sha[65] = "UNSIGNED-PAYLOAD";
    if (rq->has_body)
        mc_sigv4_sha256_hex(rq->body, rq->body_len, sha);
    mc_signed sg;
    int rc = mc_signer_sign(u->signer, rq->method ? rq->method : "GET", path, rq->query, sha, time(NULL), &sg);
    if (rc == 0) {
        rc = add_header(l, "X-Amz-Content-Sha256", sha);
        if (!rc) rc = add_header(l, "X-Amz-Date", sg.amz_date);
        if (!rc && sg.session_token) rc = add_header(l, "X-Amz-Security-Token", sg.session_token);
        if (!rc) rc = add_header(l, "Authorization", sg.authorization);
    }
    mc_signed_free(&sg);
    return rc;
}

mc_upstream_xfer *mc_upstream_get(mc_upstream *u, const char *path, const char *query,
                                  const char *const *extra_headers, const mc_upstream_cbs *cbs,
                                  void *arg)
{
    mc_upstream_req rq = {NULL, path, query, extra_headers, NULL, 0, 0};
    return mc_upstream_send(u, &rq, cbs, arg);
}

mc_upstream_xfer *mc_upstream_send(mc_upstream *u, const mc_upstream_req *rq, const mc_upstream_cbs *cbs,
                                   void *arg)
{
    const char *path = rq->path, *query = rq->query;
    mc_upstream_xfer *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->magic = MC_XFER_MAGIC;
    x->u = u;
    x->cbs = *cbs;
    x->arg = arg;
    clock_gettime(CLOCK_MONOTONIC, &x->started);
    mc_buf url = MC_BUF_INIT, full = MC_BUF_INIT;
    mc_buf_printf(&full, "%s%s", u->cfg->origin_path, path);
    mc_buf_printf(&url, "%s%s%s%s", u->cfg->origin_base, full.data, query ? "?" : "", query ? query : "");
    x->url = mc_buf_steal(&url);
    x->easy = curl_easy_init();
    int rc = (x->url && x->easy) ? 0 : MC_E_NOMEM;
    if (!rc) rc = add_header(&x->hdrs, "Host", u->host);
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
    if (!rc && u->signer)
        rc = sign_request(u, rq, full.data, &x->hdrs);
    mc_buf_free(&full);
    if (rc) {
        xfer_free(x);
        return NULL;
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)u->cfg->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)((u->cfg->upstream_idle_ms + 999) / 1000));
    curl_easy_setopt(e, CURLOPT_USERAGENT, "meshcdn/" MESHCDN_VERSION);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    /* HTTPS origins: verified unless the operator said origin.insecure */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, u->cfg->origin_insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, u->cfg->origin_insecure ? 0L : 2L);
    if (u->cfg->origin_ca_file[0])
        curl_easy_setopt(e, CURLOPT_CAINFO, u->cfg->origin_ca_file);
    if (u->cfg->origin_ca_dir[0])
        curl_easy_setopt(e, CURLOPT_CAPATH, u->cfg->origin_ca_dir);
    if (rq->method && strcmp(rq->method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method);
    if (rq->has_body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body_len ? (const char *)rq->body : "");
    }
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
        xfer_free(x);
        return NULL;
    }
    return x;
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
