/* listener.c — see listener.h. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common/log.h"
#include "edge/fill.h"
#include "edge/segment.h"
#include "edge/http1.h"
#include "edge/listener.h"
#include "edge/lookup.h"
#include "edge/prefetch.h"
#include "edge/tls.h"
#include "edge/upstream.h"

int mc_listen_socket(const char *host, int port, int reuseport, int *actual_port, mc_err *err)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    int rc = getaddrinfo(host, ports, &hints, &ai);
    if (rc != 0)
        return mc_err_set(err, MC_E_INVAL, "%s:%d: not a numeric address (%s)", host, port, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (reuseport)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return mc_err_set(err, MC_E_IO, "%s:%d: cannot listen: %s", host, port, strerror(e));
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *actual_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    mc_worker *w = arg;
    (void)fd, (void)what;
    pthread_mutex_lock(&w->mail_mu);
    mc_mail *m = w->mail_head;
    w->mail_head = w->mail_tail = NULL;
    pthread_mutex_unlock(&w->mail_mu);
    while (m) {
        mc_mail *next = m->next;
        int owned = m->owned;
        m->fn(m->arg);         /* may free a caller-owned m: read it first */
        if (owned)
            free(m);
        m = next;
    }
}

static void enqueue_mail(mc_worker *w, mc_mail *m)
{
    assert(w && w->magic == MC_WORKER_MAGIC);
    m->next = NULL;
    pthread_mutex_lock(&w->mail_mu);
    if (w->mail_tail)
        w->mail_tail->next = m;
    else
        w->mail_head = m;
    w->mail_tail = m;
    pthread_mutex_unlock(&w->mail_mu);
    event_active(w->wake, EV_READ, 0);   /* thread-safe with evthread_use_pthreads */
}

int mc_worker_post(mc_worker *w, void (*fn)(void *arg), void *arg)
{
    mc_mail *m = malloc(sizeof *m);
    if (!m)
        return MC_E_NOMEM;
    *m = (mc_mail){NULL, fn, arg, 1};
    enqueue_mail(w, m);
    return 0;
}

void mc_worker_post_mail(mc_worker *w, mc_mail *m, void (*fn)(void *arg), void *arg)
{
    *m = (mc_mail){NULL, fn, arg, 0};
    enqueue_mail(w, m);
}

mc_edge_snap *mc_worker_snap(mc_worker *w)
{
    /* a relaxed load first: the exchange (a write) only when one is waiting */
    if (atomic_load_explicit(&w->next_snap, memory_order_relaxed)) {
        mc_edge_snap *n = atomic_exchange_explicit(&w->next_snap, NULL, memory_order_acquire);
        if (n) {
            mc_snap_unref(w->snap);
            w->snap = n;
        }
    }
    return w->snap;
}

static void on_publish(void *arg)
{
    mc_worker_snap(arg);   /* an idle worker lets the old snapshot go now */
}

void mc_node_publish(mc_node *node, mc_edge_snap *snap)
{
    for (int i = 0; i < node->nworkers; i++) {
        mc_worker *w = &node->workers[i];
        mc_edge_snap *old = atomic_exchange_explicit(&w->next_snap, mc_snap_ref(snap), memory_order_acq_rel);
        mc_snap_unref(old);   /* published before and never adopted */
        mc_worker_post(w, on_publish, w);   /* if it cannot be posted, the next request adopts it */
    }
    mc_snap_unref(node->snap);
    node->snap = snap;
}

/* How a viewer connection is served, over TCP or TLS alike. */
static mc_http_server_opts viewer_opts(mc_worker *w)
{
    const mc_edge_config *c = &mc_worker_snap(w)->cfg;
    mc_http_server_opts o = {
        .handler = mc_lookup_handle,
        .ud = w,
        .timeout_ms = c->client_timeout_ms,
        .registry = &w->conns,
        .max_body = (size_t)c->max_request_body,
        .header_timeout_ms = c->header_timeout_ms,
        .open_count = &w->node->viewer_conns,
        .max_open = w->node->max_conns,
        .clients = w->node->clients,
        .max_per_client = w->node->cfg->max_connections_per_client,
        .listener = MC_LISTENER_VIEWER,
    };
    return o;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl, void *arg)
{
    mc_worker *w = arg;
    (void)l, (void)sa, (void)sl;
    mc_http_server_opts o = viewer_opts(w);
    mc_http_conn_new(w->base, fd, &o);
}

static void on_accept_tls(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl, void *arg)
{
    mc_worker *w = arg;
    (void)l, (void)sa, (void)sl;
    SSL *ssl = mc_tls_ssl_new(w->node->tls);
    if (!ssl) {
        evutil_closesocket(fd);
        return;
    }
    /* the handshake runs inside the bufferevent; http1 sees plaintext */
    struct bufferevent *bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return;
    }
    /* a viewer that vanishes without close_notify is an ordinary EOF */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    mc_http_server_opts o = viewer_opts(w);
    mc_http_conn_new_bev(bev, &o);
}

static void *worker_main(void *arg)
{
    mc_worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);   /* an idle, draining worker still waits for its stop mail */
    return NULL;
}

static void worker_free(mc_worker *w)
{
    if (w->listener)
        evconnlistener_free(w->listener);
    else if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->tls_listener)
        evconnlistener_free(w->tls_listener);
    else if (w->tls_fd >= 0)
        close(w->tls_fd);
    on_wake(-1, 0, w);   /* run what was posted (publish results): nothing may leak */
    if (w->drain_check)
        event_free(w->drain_check);
    mc_http_close_all(&w->conns);
    mc_prefetch_close(w->prefetch);   /* before the fills: none may start now */
    mc_fill_table_free(w->fills);
    mc_prefetch_free(w->prefetch);
    mc_segment_table_free(w->segs);
    mc_upstream_free(w->upstream);
    mc_store_reader_free(w->reader);
    mc_snap_unref(atomic_exchange(&w->next_snap, NULL));
    mc_snap_unref(w->snap);
    w->snap = NULL;
    if (w->wake)
        event_free(w->wake);
    if (w->base)
        event_base_free(w->base);
    pthread_mutex_destroy(&w->mail_mu);
    w->magic = 0;
}

static int worker_init(mc_worker *w, mc_node *node, int id, mc_err *err)
{
    memset(w, 0, sizeof *w);
    w->magic = MC_WORKER_MAGIC;
    w->id = id;
    w->node = node;
    w->listen_fd = -1;
    w->tls_fd = -1;
    pthread_mutex_init(&w->mail_mu, NULL);
    /* epoll's changelist: an interest switched off and on again within one
     * turn of the loop (a hit: read off while handling, write on for the
     * answer, both back once it is sent) costs no epoll_ctl at all. The
     * flag's caveat (dup'ed descriptors) does not apply: none are. */
    struct event_config *ecfg = event_config_new();
    if (ecfg) {
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        w->base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (!w->base || !(w->wake = event_new(w->base, -1, EV_PERSIST, on_wake, w)))
        return mc_err_set(err, MC_E_NOMEM, "worker %d: cannot create event loop", id);
    w->snap = mc_snap_ref(node->snap);
    atomic_init(&w->next_snap, NULL);
    if (mc_upstream_new(&w->upstream, w->base) < 0 || mc_fill_table_new(&w->fills) < 0 ||
        mc_prefetch_new(w, &w->prefetch) < 0 || mc_segment_table_new(&w->segs) < 0 ||
        mc_store_reader_new(node->store, &w->reader) < 0)
        return mc_err_set(err, MC_E_NOMEM, "worker %d: cannot set up", id);
    int port = node->viewer_port ? node->viewer_port : node->cfg->listen_port;
    int actual;
    w->listen_fd = mc_listen_socket(node->cfg->listen_host, port, 1, &actual, err);
    if (w->listen_fd < 0)
        return w->listen_fd;
    node->viewer_port = actual;
    /* backlog 0: the socket already listens with 1024; libevent's -1 would
     * call listen(fd, 128) again, and a burst of 1,000 connects then loses
     * SYNs and waits 1-3 s for retransmits */
    w->listener = evconnlistener_new(w->base, on_accept, w, LEV_OPT_CLOSE_ON_FREE, 0, w->listen_fd);
    if (!w->listener)
        return mc_err_set(err, MC_E_IO, "worker %d: cannot listen", id);
    if (node->tls) {
        port = node->tls_port ? node->tls_port : node->cfg->tls_port;
        w->tls_fd = mc_listen_socket(node->cfg->tls_host, port, 1, &actual, err);
        if (w->tls_fd < 0)
            return w->tls_fd;
        node->tls_port = actual;
        w->tls_listener = evconnlistener_new(w->base, on_accept_tls, w, LEV_OPT_CLOSE_ON_FREE, -1, w->tls_fd);
        if (!w->tls_listener)
            return mc_err_set(err, MC_E_IO, "worker %d: cannot listen (TLS)", id);
    }
    return 0;
}

/* Descriptors kept beyond the viewer cap: upstream connections, the store,
 * the admin listener and its clients, logs. */
#define FD_RESERVE 1024

/* The viewer cap, raising the soft RLIMIT_NOFILE to fit it when the hard
 * limit allows; otherwise the cap shrinks to what the limit allows. */
static int fit_nofile(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return want;
    rlim_t need = (rlim_t)want + FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        struct rlimit nl = rl;
        nl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
            rl = nl;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        int fit = rl.rlim_cur > 2 * FD_RESERVE ? (int)(rl.rlim_cur - FD_RESERVE) : (int)(rl.rlim_cur / 2);
        mc_log_warn("node", "msg=\"max_connections lowered to fit RLIMIT_NOFILE\" max_connections=%d nofile=%llu effective=%d",
                    want, (unsigned long long)rl.rlim_cur, fit);
        return fit > 0 ? fit : 1;
    }
    return want;
}

int mc_node_start(mc_node *node, const mc_edge_config *cfg, mc_store *store, mc_err *err)
{
    node->cfg = cfg;
    atomic_init(&node->viewer_conns, 0);
    node->max_conns = fit_nofile(cfg->max_connections > 0 ? cfg->max_connections : 10000);
    node->store = store;
    node->viewer_port = 0;
    node->tls_port = 0;
    node->clients = cfg->max_connections_per_client > 0 ? mc_http_clients_new() : NULL;
    node->workers = calloc((size_t)cfg->workers, sizeof *node->workers);
    if (!node->workers || (cfg->max_connections_per_client > 0 && !node->clients)) {
        free(node->workers);
        node->workers = NULL;
        free(node->clients);
        node->clients = NULL;
        return MC_E_NOMEM;
    }
    node->nworkers = 0;
    for (int i = 0; i < cfg->workers; i++) {
        int rc = worker_init(&node->workers[i], node, i, err);
        node->nworkers++;
        if (rc < 0) {
            mc_node_stop(node);
            return rc;
        }
    }
    for (int i = 0; i < node->nworkers; i++)
        if (pthread_create(&node->workers[i].thread, NULL, worker_main, &node->workers[i]) != 0) {
            node->nworkers = i;
            mc_node_stop(node);
            return mc_err_set(err, MC_E_IO, "cannot start worker threads");
        }
    return 0;
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    mc_worker *w = arg;
    (void)fd, (void)what;
    if (!w->conns) {
        atomic_store(&w->drained, 1);
        event_del(w->drain_check);
    }
}

static void drain_worker(void *arg)
{
    mc_worker *w = arg;
    if (w->listener)
        evconnlistener_disable(w->listener);
    if (w->tls_listener)
        evconnlistener_disable(w->tls_listener);
    mc_http_drain(&w->conns);
    w->drain_check = event_new(w->base, -1, EV_PERSIST, on_drain_check, w);
    struct timeval tv = {0, 20 * 1000};
    if (w->drain_check)
        event_add(w->drain_check, &tv);
    on_drain_check(-1, 0, w);
}

void mc_node_drain(mc_node *node)
{
    if (atomic_exchange(&node->draining, 1))
        return;
    for (int i = 0; i < node->nworkers; i++)
        mc_worker_post(&node->workers[i], drain_worker, &node->workers[i]);
}

int mc_node_draining_workers(mc_node *node)
{
    int n = 0;
    for (int i = 0; i < node->nworkers; i++)
        n += !atomic_load(&node->workers[i].drained);
    return n;
}

static void stop_loop(void *arg)
{
    mc_worker *w = arg;
    /* Close the viewers while the loop still runs: a freed bufferevent is
     * finalized by a callback of the loop, and a TLS one left for
     * event_base_free was sometimes never finalized (its SSL and the
     * SSL_CTX behind it leaked: seen with LeakSanitizer, 1 stop in 25 with
     * an idle keep-alive TLS viewer). loopexit lets those callbacks run. */
    if (w->listener)
        evconnlistener_disable(w->listener);
    if (w->tls_listener)
        evconnlistener_disable(w->tls_listener);
    mc_http_close_all(&w->conns);
    event_base_loopexit(w->base, NULL);
}

void mc_node_stop(mc_node *node)
{
    for (int i = 0; i < node->nworkers; i++) {
        mc_worker *w = &node->workers[i];
        if (w->thread) {
            mc_worker_post(w, stop_loop, w);
            pthread_join(w->thread, NULL);
        }
    }
    /* publishes still queued post their results to the workers' mailboxes;
     * let them all land before the mailboxes go */
    if (node->store)
        mc_store_flush(node->store);
    for (int i = 0; i < node->nworkers; i++)
        worker_free(&node->workers[i]);
    mc_fill_registry_check_empty();
    free(node->workers);
    node->workers = NULL;
    node->nworkers = 0;
    free(node->clients);   /* every connection that counted in it is closed */
    node->clients = NULL;
}
