/* listener.h — the node and its workers: threads, event loops, sockets.
 *
 * A node runs N workers. Each worker is one thread with its own libevent
 * loop, its own SO_REUSEPORT listening socket on the viewer port (the kernel
 * spreads connections), its own upstream client (libcurl multi on the same
 * loop), its own fill table and its own store reader. Nothing on the request
 * path is shared between workers except the store and atomic counters.
 *
 * Configuration: the node's reloadable configuration is a snapshot (snap.h).
 * The main thread publishes a new one with mc_node_publish; a worker adopts
 * it at its next request or accept (mc_worker_snap: one atomic exchange on
 * a per-worker slot, no lock), and each request keeps the snapshot it
 * started with. node->cfg stays the start-up configuration, which is what
 * runs for every restart-only key (listeners, workers, node id, store).
 *
 * Cross-thread handoff has one mechanism: mc_worker_post() queues a call on
 * a worker's mailbox and wakes its loop; the call runs on that worker.
 *
 * Threads: mc_node_start/stop on the main thread; everything else on the
 * worker that owns it.
 */
#ifndef MC_LISTENER_H
#define MC_LISTENER_H

#include <pthread.h>
#include <stdatomic.h>
#include <event2/event.h>
#include "common/err.h"
#include "edge/edgecfg.h"
#include "edge/snap.h"
#include "edge/store.h"

#define MC_WORKER_MAGIC 0x574f524bu

typedef struct mc_upstream mc_upstream;
typedef struct mc_fill_table mc_fill_table;
typedef struct mc_seg_table mc_seg_table;
/* One queued call. mc_worker_post allocates it; mc_worker_post_mail uses
 * the caller's (embedded in the object it concerns), so it cannot fail. */
typedef struct mc_mail {
    struct mc_mail *next;
    void (*fn)(void *arg);
    void *arg;
    int owned;                 /* allocated by mc_worker_post: freed after the call */
} mc_mail;
typedef struct mc_node mc_node;

typedef struct mc_worker {
    uint32_t magic;
    int id;
    mc_node *node;
    struct event_base *base;
    pthread_t thread;
    int listen_fd;
    struct evconnlistener *listener;
    int tls_fd;                   /* HTTPS listener, -1 without TLS */
    struct evconnlistener *tls_listener;
    struct mc_http_conn *conns;   /* open viewer connections, HTTP and HTTPS (http1 registry) */
    mc_upstream *upstream;
    mc_fill_table *fills;
    struct mc_prefetch *prefetch; /* glTF prefetch queue (prefetch.h) */
    mc_seg_table *segs;           /* segment fills (segment.h) */
    mc_store_reader *reader;
    /* mailbox: guarded by mail_mu; wake fires on the worker's loop */
    pthread_mutex_t mail_mu;
    mc_mail *mail_head, *mail_tail;
    struct event *wake;
    struct event *drain_check;    /* while draining: is the registry empty yet? */
    _Atomic int drained;          /* no viewer connection left (set by the worker) */
    mc_edge_snap *snap;           /* the configuration new requests take (a reference; worker only) */
    mc_edge_snap *_Atomic next_snap; /* published, not adopted yet (a reference, or NULL) */
} mc_worker;

typedef struct mc_tls mc_tls;
typedef struct mc_signer mc_signer;

struct mc_node {
    const mc_edge_config *cfg;   /* start-up configuration (restart-only keys) */
    mc_edge_snap *snap;  /* current configuration (main thread's reference): set before start, then mc_node_publish */
    mc_store *store;
    mc_tls *tls;         /* set by the caller before start: HTTPS listener, or NULL */
    mc_worker *workers;
    int nworkers;
    int viewer_port;     /* actual port (after binding port 0) */
    int tls_port;        /* actual HTTPS port, 0 without TLS */
    _Atomic int draining;  /* SIGTERM: no new connections; /readyz answers 503 */
    atomic_int viewer_conns;   /* open viewer connections, all workers (http1 counts) */
    int max_conns;       /* cfg->max_connections, lowered to fit RLIMIT_NOFILE */
    struct mc_http_clients *clients;  /* viewer connections per client (http1 counts), all workers */
};

/* Bind the viewer listeners (one per worker, HTTP and, with node->tls,
 * HTTPS), start the worker threads. Raises the soft RLIMIT_NOFILE to fit
 * max_connections (plus a reserve for upstreams, the store and admin), or
 * lowers the cap to fit the hard limit, with a warning.
 * err names the address on failure. */
int mc_node_start(mc_node *node, const mc_edge_config *cfg, mc_store *store, mc_err *err);
/* Start a graceful stop (SIGTERM): every worker stops accepting, closes
 * its idle keep-alive connections and lets the others finish the response
 * in progress (then closes them). Any thread. */
void mc_node_drain(mc_node *node);
/* How many workers still have viewer connections open. */
int mc_node_draining_workers(mc_node *node);
/* Stop accepting, break every loop, join and free the workers. */
void mc_node_stop(mc_node *node);

/* Make snap (the caller's reference, handed over) the node's configuration:
 * every worker gets a reference and adopts it at its next request; the
 * previous snapshot is released by each holder when done. Main thread. */
void mc_node_publish(mc_node *node, mc_edge_snap *snap);
/* Worker thread: adopt a published snapshot if there is one; the current. */
mc_edge_snap *mc_worker_snap(mc_worker *w);

/* Run fn(arg) on worker w's loop thread, soon. Safe from any thread. */
int mc_worker_post(mc_worker *w, void (*fn)(void *arg), void *arg);
/* Same with caller-owned storage: m must stay valid until m->fn has run. */
void mc_worker_post_mail(mc_worker *w, mc_mail *m, void (*fn)(void *arg), void *arg);

/* Bind a listening TCP socket (SO_REUSEADDR, optionally SO_REUSEPORT) and
 * report the actual port. Returns the fd or a negative MC_E_* with err set. */
int mc_listen_socket(const char *host, int port, int reuseport, int *actual_port, mc_err *err);

#endif
