/* admin.c — see admin.h. */
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/metrics.h"
#include "edge/admin.h"
#include "edge/mesh.h"
#include "edge/prefetch.h"
#include "edge/follow.h"
#include "edge/http1.h"
#include "edge/purge.h"
#include "edge/upstream.h"
#include "edge/stats.h"
#include "edge/tier.h"

/* Idle keep-alive and stalled-write limit of admin connections; a purge
 * body (up to 3000 paths) fits in ADMIN_MAX_BODY. */
#define ADMIN_IDLE_TIMEOUT_MS 10000
#define ADMIN_MAX_BODY (4u << 20)

struct mc_admin {
    struct evconnlistener *listener;
    struct event_base *base;
    mc_node *node;
    mc_http_conn *conns;
    const mc_follow *follow;
    mc_store_reader *reader;     /* /readyz's read transaction (main thread) */
    atomic_int open;             /* admin connections open (the cap counts here) */
};

void mc_admin_set_follow(mc_admin *a, const mc_follow *f)
{
    a->follow = f;
}

static void counter(mc_buf *b, const char *name, const char *help, uint64_t v)
{
    mc_metrics_header(b, name, "counter", help);
    mc_metrics_value(b, name, NULL, (double)v);
}

static void gauge(mc_buf *b, const char *name, const char *help, uint64_t v)
{
    mc_metrics_header(b, name, "gauge", help);
    mc_metrics_value(b, name, NULL, (double)v);
}

int mc_admin_render_metrics(mc_node *node, mc_buf *b)
{
    mc_stats *s = &mc_stats_global;
    const mc_edge_config *cfg = node->cfg;
    char labels[160];
    mc_metrics_header(b, "meshcdn_edge_info", "gauge", "node identity");
    snprintf(labels, sizeof labels, "node=\"%s\",region=\"%s\",version=\"%s\"", cfg->node_id, cfg->region,
             MESHCDN_VERSION);
    mc_metrics_value(b, "meshcdn_edge_info", labels, 1);

    mc_metrics_header(b, "meshcdn_edge_requests_total", "counter", "viewer requests by cache result and status");
    for (int r = 0; r < MC_RESULT_COUNT; r++)
        for (int code = 0; code < 600; code++) {
            uint64_t v = mc_stats_requests((mc_result)r, code);
            if (!v)
                continue;
            snprintf(labels, sizeof labels, "result=\"%s\",code=\"%d\"", mc_result_name((mc_result)r), code);
            mc_metrics_value(b, "meshcdn_edge_requests_total", labels, (double)v);
        }
    counter(b, "meshcdn_edge_bytes_sent_total", "body bytes sent to viewers", mc_stats_bytes_sent());

    mc_metrics_header(b, "meshcdn_edge_upstream_requests_total", "counter", "upstream fetches by upstream (origin, origin-secondary, parent name) and status (error = no response)");
    for (int code = 0; code <= 600; code++) {
        uint64_t v = mc_counter_get(&s->upstream_requests[code]);
        if (!v)
            continue;
        if (code == 600)
            snprintf(labels, sizeof labels, "upstream=\"origin\",code=\"error\"");
        else
            snprintf(labels, sizeof labels, "upstream=\"origin\",code=\"%d\"", code);
        mc_metrics_value(b, "meshcdn_edge_upstream_requests_total", labels, (double)v);
    }
    mc_tier_metrics_requests(b);   /* parents and the secondary origin */
    mc_tier_metrics_health(node->snap, b);
    mc_metrics_header(b, "meshcdn_edge_upstream_seconds", "histogram", "origin fetch duration, request to last byte");
    mc_metrics_histo(b, "meshcdn_edge_upstream_seconds", "upstream=\"origin\"", &s->upstream_seconds);
    counter(b, "meshcdn_edge_upstream_bytes_total", "body bytes received from upstreams", mc_counter_get(&s->upstream_bytes));
    mc_upstream_metrics(b);

    mc_store_stats *st = mc_store_get_stats(node->store);
    gauge(b, "meshcdn_edge_store_bytes", "body bytes of stored objects", mc_counter_get(&st->bytes));
    gauge(b, "meshcdn_edge_store_objects", "stored objects", mc_counter_get(&st->objects));
    gauge(b, "meshcdn_edge_store_size_bytes", "configured store bound", mc_store_size_bytes(node->store));
    counter(b, "meshcdn_edge_store_commits_total", "writer transactions committed", mc_counter_get(&st->commits));
    counter(b, "meshcdn_edge_store_write_failures_total", "store writes dropped (map full, I/O)", mc_counter_get(&st->write_failures));
    counter(b, "meshcdn_edge_store_queue_refusals_total", "chunks refused: writer queue at its bound", mc_counter_get(&st->queue_refusals));
    counter(b, "meshcdn_edge_store_checksum_failures_total", "chunks that failed their checksum (never sent)", mc_counter_get(&st->checksum_failures));
    counter(b, "meshcdn_edge_evictions_total", "objects evicted to keep the store under its bound", mc_counter_get(&st->evictions));
    counter(b, "meshcdn_edge_evicted_bytes_total", "body bytes evicted", mc_counter_get(&st->evicted_bytes));
    counter(b, "meshcdn_edge_purged_objects_total", "objects removed or marked stale by purges", mc_counter_get(&st->purged));
    counter(b, "meshcdn_edge_vary_variants_replaced_total", "Vary variants replaced to keep a URL under cache.max_variants",
            mc_counter_get(&st->variants_replaced));
    counter(b, "meshcdn_edge_fills_started_total", "origin fills started", mc_counter_get(&s->fills_started));
    counter(b, "meshcdn_edge_fills_published_total", "fills published to the store", mc_counter_get(&s->fills_published));
    counter(b, "meshcdn_edge_fills_failed_total", "fills that failed (truncated, upstream error)", mc_counter_get(&s->fills_failed));
    counter(b, "meshcdn_edge_fills_unstored_total", "fills served but not stored (store refused)", mc_counter_get(&s->fills_unstored));
    mc_metrics_header(b, "meshcdn_edge_fill_late_joins_total", "counter",
                      "viewers that joined a running fill late (on another worker, or after its first byte) and streamed it from the store, by worker (same: the fill's)");
    mc_metrics_value(b, "meshcdn_edge_fill_late_joins_total", "worker=\"same\"", (double)mc_counter_get(&s->fill_late_joins[0]));
    mc_metrics_value(b, "meshcdn_edge_fill_late_joins_total", "worker=\"other\"", (double)mc_counter_get(&s->fill_late_joins[1]));
    counter(b, "meshcdn_edge_segment_fills_total", "segment fills started (upstream Range requests for one segment)", mc_counter_get(&s->segment_fills_started));
    counter(b, "meshcdn_edge_segment_fills_published_total", "segments stored", mc_counter_get(&s->segment_fills_published));
    counter(b, "meshcdn_edge_segment_fills_failed_total", "segment fills that failed (truncated, upstream error)", mc_counter_get(&s->segment_fills_failed));
    counter(b, "meshcdn_edge_segment_bytes_total", "segment bytes fetched from upstream", mc_counter_get(&s->segment_bytes));
    counter(b, "meshcdn_edge_segment_hit_bytes_total", "segment bytes served from the store", mc_counter_get(&s->segment_hit_bytes));
    counter(b, "meshcdn_edge_segment_collapsed_total", "viewers that joined or waited for a running segment fill", mc_counter_get(&s->segment_collapsed));
    counter(b, "meshcdn_edge_segment_probes_total", "cold range requests answered by fetching one segment first", mc_counter_get(&s->segment_probes));
    counter(b, "meshcdn_edge_segment_handovers_total", "requests that fell back to a whole-object fill (small object, 200 to a Range, error)", mc_counter_get(&s->segment_handovers));
    counter(b, "meshcdn_edge_segment_version_changes_total", "segmented objects dropped because the origin's version changed", mc_counter_get(&s->segment_version_changes));
    counter(b, "meshcdn_edge_segment_revalidated_total", "stale segmented objects revalidated with their segments kept", mc_counter_get(&s->segment_revalidated));
    mc_mesh_metrics(b);
    mc_prefetch_metrics(b);
    gauge(b, "meshcdn_edge_fills_inflight", "fills running now", mc_counter_get(&s->fills_inflight));
    gauge(b, "meshcdn_edge_connections", "open viewer and admin connections", mc_counter_get(&s->connections_open));
    counter(b, "meshcdn_edge_connections_total", "accepted connections", mc_counter_get(&s->connections_total));
    mc_metrics_header(b, "meshcdn_edge_connections_refused_total", "counter",
                      "connections closed at accept, by listener and cap (total: max_connections or "
                      "admin_max_connections; per_client: max_connections_per_client)");
    static const char *const listeners[] = {"viewer", "admin"}, *const reasons[] = {"total", "per_client"};
    for (int l = 0; l < MC_LISTENER_COUNT; l++)
        for (int r = 0; r < MC_REFUSED_COUNT; r++) {
            snprintf(labels, sizeof labels, "listener=\"%s\",reason=\"%s\"", listeners[l], reasons[r]);
            mc_metrics_value(b, "meshcdn_edge_connections_refused_total", labels,
                             (double)mc_counter_get(&s->connections_refused[l][r]));
        }
    counter(b, "meshcdn_edge_header_timeouts_total", "request heads not complete within header_timeout (408)",
            mc_counter_get(&s->header_timeouts));
    counter(b, "meshcdn_edge_client_aborts_total", "viewers that left mid-response", mc_counter_get(&s->client_aborts));
    counter(b, "meshcdn_edge_loops_detected_total", "requests refused by CDN-Loop", mc_counter_get(&s->loops_detected));
    mc_metrics_header(b, "meshcdn_edge_tls_handshakes_total", "counter", "viewer TLS handshakes completed, by session resumption");
    mc_metrics_value(b, "meshcdn_edge_tls_handshakes_total", "resumed=\"no\"",
                     (double)(mc_counter_get(&s->tls_handshakes) - mc_counter_get(&s->tls_resumed)));
    mc_metrics_value(b, "meshcdn_edge_tls_handshakes_total", "resumed=\"yes\"", (double)mc_counter_get(&s->tls_resumed));
    counter(b, "meshcdn_edge_tls_handshake_failures_total", "viewer TLS handshakes refused (version, ALPN, cipher)", mc_counter_get(&s->tls_failures));
    counter(b, "meshcdn_edge_tls_reloads_total", "viewer certificate reloads (SIGHUP)", mc_counter_get(&s->tls_reloads));
    gauge(b, "meshcdn_edge_store_map_used_bytes", "LMDB map in use up to its last page (bounded by the store size)",
          mc_store_map_used_bytes(node->store));
    return 0;
}

int mc_admin_ready(mc_admin *a, char *why, size_t n)
{
    if (atomic_load(&a->node->draining)) {
        snprintf(why, n, "draining");
        return 0;
    }
    if (!a->reader || !mc_store_check(a->reader, why, n)) {
        if (!a->reader)
            snprintf(why, n, "store: no reader");
        return 0;
    }
    if (!mc_tier_any_healthy(a->node->snap, why, n))
        return 0;
    return mc_follow_ready(a->follow, why, n);
}

static void on_admin_request(mc_http_conn *c, mc_http_req *req, void *ud)
{
    mc_admin *a = ud;
    int get = strcmp(req->method, "GET") == 0 || req->is_head;
    if (strcmp(req->path, "/purge") == 0) {
        mc_purge_handle(c, req, a->node, a->base);
        return;
    }
    if (strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/readyz") == 0 ||
        strcmp(req->path, "/metrics") == 0) {
        if (!get) {
            mc_http_respond(c, 405, NULL, "Allow: GET, HEAD\r\n", "text/plain", "method not allowed\n", 19);
            return;
        }
    } else {
        mc_http_respond(c, 404, NULL, NULL, "text/plain", "not found\n", 10);
        return;
    }
    if (strcmp(req->path, "/healthz") == 0) {
        mc_http_respond(c, 200, NULL, "Cache-Control: no-store\r\n", "text/plain", "ok\n", 3);
    } else if (strcmp(req->path, "/readyz") == 0) {
        char why[300], body[320];
        if (mc_admin_ready(a, why, sizeof why)) {
            mc_http_respond(c, 200, NULL, "Cache-Control: no-store\r\n", "text/plain", "ready\n", 6);
        } else {
            int n = snprintf(body, sizeof body, "not ready: %s\n", why);
            mc_http_respond(c, 503, NULL, "Cache-Control: no-store\r\n", "text/plain", body, (size_t)n);
        }
    } else {
        mc_buf b = MC_BUF_INIT;
        mc_admin_render_metrics(a->node, &b);
        mc_follow_render_metrics(a->follow, &b);
        mc_http_respond(c, 200, NULL, "Cache-Control: no-store\r\n", "text/plain; version=0.0.4", b.data, b.len);
        mc_buf_free(&b);
    }
}

static void on_admin_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl, void *arg)
{
    mc_admin *a = arg;
    (void)l, (void)sa, (void)sl;
    /* The same defences as the viewer listener, with the admin's own cap:
     * a slow or flooding client of /metrics must not take the node's fds. */
    const mc_edge_config *cfg = a->node->cfg;
    mc_http_server_opts o = {
        .handler = on_admin_request,
        .ud = a,
        .timeout_ms = ADMIN_IDLE_TIMEOUT_MS,
        .registry = &a->conns,
        .max_body = ADMIN_MAX_BODY,
        .header_timeout_ms = cfg->header_timeout_ms,
        .open_count = &a->open,
        .max_open = cfg->admin_max_connections,
        .listener = MC_LISTENER_ADMIN,
    };
    mc_http_conn_new(a->base, fd, &o);
}

int mc_admin_start(mc_admin **out, struct event_base *base, mc_node *node, int *actual_port, mc_err *err)
{
    mc_admin *a = calloc(1, sizeof *a);
    if (!a)
        return MC_E_NOMEM;
    a->base = base;
    a->node = node;
    if (mc_store_reader_new(node->store, &a->reader) < 0) {
        free(a);
        return mc_err_set(err, MC_E_NOMEM, "admin: cannot open a store reader");
    }
    atomic_init(&a->open, 0);
    int fd = mc_listen_socket(node->cfg->admin_host, node->cfg->admin_port, 0, actual_port, err);
    if (fd < 0) {
        mc_store_reader_free(a->reader);
        free(a);
        return fd;
    }
    a->listener = evconnlistener_new(base, on_admin_accept, a, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!a->listener) {
        mc_store_reader_free(a->reader);
        free(a);
        return mc_err_set(err, MC_E_IO, "admin listener failed");
    }
    *out = a;
    return 0;
}

void mc_admin_stop(mc_admin *a)
{
    if (!a)
        return;
    evconnlistener_free(a->listener);
    mc_http_close_all(&a->conns);
    mc_store_reader_free(a->reader);
    free(a);
}
