/* main.c — meshcdn-edge: config, store, workers, admin, signals. */
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
#include "edge/admin.h"
#include "edge/edgecfg.h"
#include "edge/follow.h"
#include "edge/listener.h"
#include "edge/signer.h"
#include "edge/snap.h"
#include "edge/tier.h"
#include "edge/stats.h"
#include "edge/store.h"
#include "edge/storecheck.h"
#include "edge/tls.h"

static const char synopsis[] =
    "[--config FILE] [--listen ADDR:PORT] [--tls-listen ADDR[:PORT]] [--admin ADDR:PORT] [--origin URL]\n"
    "       [--origin-sign sigv4|none] [--credentials FILE] [--store DIR] [--store-size SIZE]\n"
    "       [--workers N] [--node-id ID] [--region NAME] [--control URL] [--admin-keys FILE]\n"
    "       [--SECTION.KEY=VALUE ...]\n"
    "       meshcdn-edge check --store DIR   (verify a store; see check --help)";

/* Shutdown: SIGTERM drains (no new connections, in-flight responses finish,
 * up to edge.drain_timeout), SIGINT or a second signal stops at once. */
typedef struct stopper {
    struct event_base *base;
    mc_node *node;
    struct event *poll;
    struct timespec t0;
    int64_t timeout_ms;
} stopper;

static void on_drain_poll(evutil_socket_t fd, short what, void *arg)
{
    stopper *st = arg;
    (void)fd, (void)what;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t ms = (int64_t)(t.tv_sec - st->t0.tv_sec) * 1000 + (t.tv_nsec - st->t0.tv_nsec) / 1000000;
    int left = mc_node_draining_workers(st->node);
    if (left == 0 || ms >= st->timeout_ms) {
        mc_log_info("main", "msg=\"drained\" ms=%lld workers_with_connections=%d", (long long)ms, left);
        event_base_loopbreak(st->base);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    stopper *st = arg;
    (void)what;
    st->timeout_ms = st->node->snap->cfg.drain_timeout_ms;   /* as last reloaded */
    if (sig == SIGTERM && !atomic_load(&st->node->draining) && st->timeout_ms > 0) {
        mc_log_info("main", "msg=\"draining\" signal=%d timeout_ms=%lld", (int)sig, (long long)st->timeout_ms);
        clock_gettime(CLOCK_MONOTONIC, &st->t0);
        mc_node_drain(st->node);
        struct timeval tv = {0, 20 * 1000};
        if (st->poll && event_add(st->poll, &tv) == 0)
            return;
    }
    mc_log_info("main", "msg=\"stopping\" signal=%d", (int)sig);
    event_base_loopbreak(st->base);
}

/* SIGHUP: the configuration again, from the same --config file and flags.
 * A file that does not load is refused (logged) and the running
 * configuration stays; otherwise what changed is published as a new
 * snapshot (snap.h) that new requests take while those in flight finish
 * with theirs, and keys that need a restart are logged, not applied. The
 * TLS certificate and key are reloaded from their paths for new
 * handshakes either way (open connections keep theirs). */
typedef struct reloader {
    mc_node *node;
    int argc;
    char **argv;
} reloader;

static void reload_tls(mc_node *node)
{
    mc_err err = {0};
    if (!node->tls)
        return;
    if (mc_tls_reload(node->tls, &err) < 0)
        mc_log_error("main", "msg=\"TLS reload failed; the previous certificate stays in use\" error=\"%s\"", err.msg);
    else
        mc_log_info("main", "msg=\"TLS certificate reloaded\" cert=%s generation=%llu", node->cfg->tls_cert,
                    (unsigned long long)mc_tls_generation(node->tls));
}

static void on_trim(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    malloc_trim(0);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    reloader *rl = arg;
    mc_node *node = rl->node;
    mc_err err = {0};
    (void)sig, (void)what;
    reload_tls(node);
    mc_edge_config next;
    int rc = mc_edge_config_load(&next, rl->argc, rl->argv, &err);
    if (rc != MC_CONFIG_RUN) {
        if (rc >= 0)
            mc_edge_config_free(&next);
        mc_log_error("main", "msg=\"configuration reload refused; the running configuration stays\" generation=%llu error=\"%s\"",
                     (unsigned long long)node->snap->generation, rc < 0 ? err.msg : "not a configuration");
        return;
    }
    mc_snap_diff d;
    mc_snap_diff_configs(&node->snap->cfg, &next, &d);
    if (d.nrestart)
        mc_log_warn("main", "msg=\"changed keys need a restart; not applied\" keys=\"%s\"", d.restart);
    mc_snap_keep_restart(&next, node->cfg);
    mc_edge_snap *ns;
    if (mc_snap_new(&ns, &next, node->snap->generation + 1, &err) < 0) {
        mc_log_error("main", "msg=\"configuration reload refused; the running configuration stays\" generation=%llu error=\"origin.credentials: %s\"",
                     (unsigned long long)node->snap->generation, err.msg);
        return;
    }
    mc_tier_bind(ns->cfg.parents, ns->cfg.nparents, ns->parent_slot);
    mc_node_publish(node, ns);   /* ns is the node's now: the next request on any worker takes it */
    mc_tier_configure(node->snap);
    mc_log_info("main", "msg=\"configuration reloaded\" generation=%llu changed=\"%s\" needs_restart=\"%s\"",
                (unsigned long long)node->snap->generation, d.changed, d.restart);
    mc_log_set_level((mc_log_level)node->snap->cfg.log_level);   /* after the line: a quieter level still shows it */
}

/* The first snapshot: a copy of the start-up configuration. */
static int first_snap(mc_edge_snap **out, const mc_edge_config *cfg, mc_err *err)
{
    mc_edge_config c;
    if (mc_edge_config_copy(&c, cfg) < 0)
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    int rc = mc_snap_new(out, &c, 1, err);
    if (rc == 0)
        mc_tier_bind((*out)->cfg.parents, (*out)->cfg.nparents, (*out)->parent_slot);
    return rc;
}

static int run(const mc_edge_config *cfg, int argc, char **argv)
{
    mc_err err = {0};
    mc_store *store = NULL;
    mc_tls *tls = NULL;
    mc_edge_snap *snap = NULL;
    if (cfg->tls_enabled && mc_tls_new(&tls, cfg->tls_cert, cfg->tls_key, &err) < 0) {
        fprintf(stderr, "meshcdn-edge: %s\n", err.msg);
        return 1;
    }
    if (first_snap(&snap, cfg, &err) < 0) {
        fprintf(stderr, "meshcdn-edge: origin.credentials: %s\n", err.msg);
        mc_tls_free(tls);
        return 1;
    }
    mc_store_config scfg = {.dir = cfg->store_dir, .size_bytes = cfg->store_size,
                            .verify_always = cfg->verify_reads_always};
    if (mc_store_open(&store, &scfg, &err) < 0) {
        fprintf(stderr, "meshcdn-edge: %s\n", err.msg);
        mc_snap_unref(snap);
        mc_tls_free(tls);
        return 1;
    }
    /* a node that was down applies the invalidations it missed before it
     * serves its cache again */
    mc_follow *follow = NULL;
    if (mc_follow_start(&follow, cfg, store, &err) < 0) {
        fprintf(stderr, "meshcdn-edge: control: %s\n", err.msg);
        mc_store_close(store);
        mc_snap_unref(snap);
        mc_tls_free(tls);
        return 1;
    }
    mc_node node = {0};
    node.tls = tls;
    node.snap = snap;
    if (mc_node_start(&node, cfg, store, &err) < 0) {
        fprintf(stderr, "meshcdn-edge: listen: %s\n", err.msg);
        mc_follow_stop(follow);
        mc_store_close(store);
        mc_snap_unref(node.snap);
        mc_tls_free(tls);
        return 1;
    }
    mc_tier_configure(node.snap);
    struct event_base *base = event_base_new();
    mc_admin *admin = NULL;
    int admin_port = 0;
    if (!base || mc_admin_start(&admin, base, &node, &admin_port, &err) < 0) {
        fprintf(stderr, "meshcdn-edge: admin: %s\n", err.msg);
        mc_node_stop(&node);
        mc_tier_shutdown();
        mc_follow_stop(follow);
        mc_store_close(store);
        mc_snap_unref(node.snap);
        mc_tls_free(tls);
        if (base)
            event_base_free(base);
        return 1;
    }
    mc_admin_set_follow(admin, follow);
    stopper stop = {base, &node, NULL, {0, 0}, cfg->drain_timeout_ms};
    stop.poll = event_new(base, -1, EV_PERSIST, on_drain_poll, &stop);
    reloader rl = {&node, argc, argv};
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, &stop);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, &stop);
    event_add(sigint, NULL);
    struct event *sighup = evsignal_new(base, SIGHUP, on_sighup, &rl);
    event_add(sigterm, NULL);
    event_add(sighup, NULL);
    /* M_TRIM_THRESHOLD (below) keeps freed heap for the next peak; every
     * 10 s the main thread gives back what the arenas hold free, so the
     * RSS follows the load down instead of keeping its peak
     * (tests/bench/soak.sh judges anonymous RSS over 10 minutes). */
    struct event *trim = event_new(base, -1, EV_PERSIST, on_trim, NULL);
    struct timeval trim_every = {10, 0};
    event_add(trim, &trim_every);
    mc_store_stats *st = mc_store_get_stats(store);
    mc_log_info("main", "msg=listening listener=http addr=%s:%d", cfg->listen_host, node.viewer_port);
    if (tls)
        mc_log_info("main", "msg=listening listener=https addr=%s:%d", cfg->tls_host, node.tls_port);
    mc_log_info("main", "msg=listening listener=admin addr=%s:%d", cfg->admin_host, admin_port);
    mc_log_info("main", "msg=ready node=%s region=%s workers=%d origin=%s%s sign=%s store=%s objects=%llu bytes=%llu",
                cfg->node_id, cfg->region, cfg->workers, cfg->origin_base, cfg->origin_path,
                cfg->origin_sign ? "sigv4" : "none", cfg->store_dir,
                (unsigned long long)mc_counter_get(&st->objects), (unsigned long long)mc_counter_get(&st->bytes));
    event_base_dispatch(base);

    mc_admin_stop(admin);
    mc_node_stop(&node);
    mc_tier_shutdown();
    mc_follow_stop(follow);
    mc_store_close(store);
    mc_snap_unref(node.snap);
    mc_tls_free(tls);
    event_free(sigint);
    event_free(sigterm);
    if (stop.poll)
        event_free(stop.poll);
    event_free(sighup);
    event_free(trim);
    event_base_free(base);
    mc_log_info("main", "msg=stopped");
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* Hits move 256 KiB chunks through buffers allocated and freed per
     * chunk; above glibc's default mmap threshold (128 KiB) each one was a
     * fresh mmap, page-faulted in and unmapped again: half the time of a
     * 64 KiB-1 MiB hit (perf, tests/bench/README.md). Keep them on the heap,
     * and keep freed heap for the next response instead of trimming it. */
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (argc > 1 && strcmp(argv[1], "check") == 0)
        return mc_storecheck_main(argc - 1, argv + 1);
    mc_edge_config cfg;
    mc_err err = {0};
    int rc = mc_edge_config_load(&cfg, argc, argv, &err);
    if (rc == MC_CONFIG_HELP) {
        mc_config_usage(mc_edge_schema, "meshcdn-edge", synopsis, stdout);
        return 0;
    }
    if (rc == MC_CONFIG_VERSION) {
        printf("meshcdn-edge %s\n", MESHCDN_VERSION);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "meshcdn-edge: %s\n", err.msg);
        return 2;
    }
    if (evthread_use_pthreads() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "meshcdn-edge: cannot initialise libevent threads or libcurl\n");
        mc_edge_config_free(&cfg);
        return 1;
    }
    mc_log_set_level((mc_log_level)cfg.log_level);
    mc_stats_init();
    rc = run(&cfg, argc, argv);
    mc_edge_config_free(&cfg);
    curl_global_cleanup();
    libevent_global_shutdown();
    return rc;
}
