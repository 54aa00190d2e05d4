/* invlog_etcd.c — the invalidation log and membership on an etcd v3 cluster
 * (see invlog.h), through etcd's JSON gateway over HTTP with libcurl
 * (request shapes: origin/etcdjson.h).
 *
 * Keys under PREFIX ("/meshcdn/"); numbers are 20-digit zero-padded decimal
 * so that etcd's byte order is numeric order and VALUE compares work:
 *   PREFIX seq            the highest seq ever assigned (never deleted)
 *   PREFIX log/SEQ        an entry, mc_invlog_entry_encode's JSON
 *   PREFIX edges/NODE     {"region":R,"last_seen":UNIX_S} (registration)
 *   PREFIX acked/NODE     the node's cumulative acknowledgement, SEQ
 *   PREFIX alive/NODE     UNIX_S, attached to a lease of lease_ttl_s
 *
 * Append: read seq (value, mod_revision), then one txn "if mod_revision(seq)
 * is still M: put seq = N+1 and log/N+1", retried on conflict with the
 * failure branch's fresh read; so two origins never assign one seq, and no
 * seq is skipped (the counter and the entry are written by one txn).
 * Ack: txn "if value(acked/NODE) < SEQ: put" (a missing key: "if version
 * == 0: put"): cumulative under concurrency. Heartbeat: the record plus the
 * alive key attached to this origin's lease for the node (granted once,
 * kept alive at a third of its TTL, re-granted when etcd forgot it); both
 * written at most once a second per node. An edge whose alive key has
 * expired is reported with last_seen at least lease_ttl_s + 1 old, hence
 * unreachable whatever the origins' clocks say.
 * Compaction: at most once a second per origin, during an ack, entries older
 * than both the slowest registered edge's ack and the newest `keep` are
 * deleted in one DeleteRange (etcd's own MVCC history is compacted by
 * etcd's --auto-compaction-* flags, not here).
 *
 * I/O: blocking libcurl easy calls on the loop thread, timeout_ms each
 * (~1 ms on loopback). A refused connection moves to the next endpoint at
 * once; a timeout (no quorum: etcd holds the request) fails the call with
 * MC_E_IO, the next call starts at the next endpoint, and every call in
 * the next BACKOFF_MS fails at once. So without quorum the control API
 * answers 503, and the loop is held at most timeout_ms in every
 * timeout_ms + BACKOFF_MS.
 * Watch: a thread keeps POST /v3/watch open on PREFIX seq (its own curl
 * handle, endpoints round-robin, reconnecting after 200 ms) and writes a
 * byte to a pipe on every message, the (re)connection's "created" one
 * included, so appends made while it was disconnected still wake polls.
 * The stream is re-made on the next endpoint every WATCH_MAX_S: a watch on
 * a member cut off from the others (alive, so nothing breaks the stream)
 * hears nothing, and this bounds how long it stays there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "origin/etcdjson.h"
#include "origin/invlog.h"

#define DEFAULT_PREFIX "/meshcdn/"
#define DEFAULT_TIMEOUT_MS 2000
#define CONNECT_TIMEOUT_MS 500
#define HEARTBEAT_WRITE_S 1
/* After a call timed out, calls fail at once for this long: without quorum
 * each call would otherwise hold the origin's loop (S3 included) for
 * timeout_ms. */
#define BACKOFF_MS 2000
#define COMPACT_EVERY_S 1
#define APPEND_TRIES 64
#define WATCH_MAX_S 60
#define MAX_ENDPOINTS 16
#define KEY_MAX 600   /* a base (< 260) + a node id or a seq */

typedef struct edge_cache {
    char node[MC_EDGE_NODE_MAX + 1];
    char region[MC_EDGE_REGION_MAX + 1];
    bool loaded;                  /* region read from etcd (or written by us) */
    int64_t lease;                /* 0: none */
    int64_t lease_renewed_s;
    int64_t written_s;
} edge_cache;

typedef struct etcd_log {
    CURL *curl;
    struct curl_slist *hdrs;
    char *endpoints[MAX_ENDPOINTS];
    size_t nendpoints;
    size_t cur;
    char *cacert, *cert, *key;
    char prefix[256];
    char k_seq[256], k_log[256], k_edges[256], k_acked[256], k_alive[256];
    int64_t ttl_s;
    uint64_t keep;
    long timeout_ms;
    mc_buf answer;
    edge_cache *edges;
    size_t nedges;
    int64_t compact_s;
    uint64_t compacted;
    int64_t backoff_until_ms;     /* monotonic */           /* entries <= this were deleted */
    int pipe[2];
    pthread_t watcher;
    bool watching;
    atomic_bool stop;
} etcd_log;

/* ---- HTTP ------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    mc_buf *b = ud;
    return mc_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

static void set_tls(CURL *c, const etcd_log *l)
{
    if (l->cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, l->cacert);
    if (l->cert)
        curl_easy_setopt(c, CURLOPT_SSLCERT, l->cert);
    if (l->key)
        curl_easy_setopt(c, CURLOPT_SSLKEY, l->key);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* POST body (consumed) to path; *answer is the parsed 200 answer. MC_E_IO
 * when etcd cannot be reached or refuses (logged), MC_E_NOTFOUND for a
 * gRPC NotFound (an expired lease), MC_E_NOMEM. */
static int call(etcd_log *l, const char *path, json_t *body, json_t **answer)
{
    *answer = NULL;
    if (mono_ms() < l->backoff_until_ms) {
        json_decref(body);
        return MC_E_IO;
    }
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s)
        return MC_E_NOMEM;
    int rc = MC_E_IO;
    for (size_t tries = 0; tries < l->nendpoints; tries++) {
        char url[600];
        snprintf(url, sizeof url, "%s%s", l->endpoints[l->cur], path);
        mc_buf_reset(&l->answer);
        curl_easy_setopt(l->curl, CURLOPT_URL, url);
        curl_easy_setopt(l->curl, CURLOPT_POSTFIELDS, s);
        CURLcode cc = curl_easy_perform(l->curl);
        long status = 0;
        curl_easy_getinfo(l->curl, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK) {
            mc_log_warn("etcd", "msg=\"request failed\" url=%s error=\"%s\"", url,
                        curl_easy_strerror(cc));
            l->cur = (l->cur + 1) % l->nendpoints;
            /* Nothing was sent: another member may answer at once. A request
             * lost after sending is not retried here (a txn may have been
             * applied): the caller answers 503, and the client's retry of
             * an invalidation is harmless. */
            if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
                continue;
            /* a timeout: no quorum, or a stuck member; fail now, and fast
             * for a while */
            if (cc == CURLE_OPERATION_TIMEDOUT) {
                l->backoff_until_ms = mono_ms() + BACKOFF_MS;
                mc_log_warn("etcd", "msg=\"etcd did not answer in time: the control API "
                            "answers 503 without asking for %d ms\"", BACKOFF_MS);
            }
            break;
        }
        json_t *j = json_loadb(l->answer.data ? l->answer.data : "", l->answer.len, 0, NULL);
        if (status == 200 && json_is_object(j)) {
            *answer = j;
            rc = 0;
            break;
        }
        const char *msg = json_string_value(json_object_get(j, "message"));
        int64_t code = mc_etcd_int(j, "code");
        if (code == 5) {   /* gRPC NotFound */
            rc = MC_E_NOTFOUND;
        } else {
            mc_log_warn("etcd", "msg=\"etcd refused\" url=%s status=%ld error=\"%s\"", url,
                        status, msg ? msg : "(no message)");
            l->cur = (l->cur + 1) % l->nendpoints;
        }
        json_decref(j);
        break;
    }
    free(s);
    return rc;
}

/* ---- keys ------------------------------------------------------------------- */

static void seq_key(const etcd_log *l, uint64_t seq, char out[KEY_MAX])
{
    snprintf(out, KEY_MAX, "%s%020" PRIu64, l->k_log, seq);
}

static void node_key(const char *base, const char *node, char out[KEY_MAX])
{
    snprintf(out, KEY_MAX, "%s%s", base, node);
}

static bool parse_seq(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

/* One range: kvs decoded into *kvs/n. */
static int range(etcd_log *l, json_t *req, mc_etcd_kv **kvs, size_t *n)
{
    json_t *a;
    *kvs = NULL;
    *n = 0;
    if (!req)
        return MC_E_NOMEM;
    int rc = call(l, "/v3/kv/range", req, &a);
    if (rc == 0)
        rc = mc_etcd_kvs(a, kvs, n);
    json_decref(a);
    return rc;
}

static int prefix_range(etcd_log *l, const char *prefix, int64_t limit, bool descend,
                        const char *from, mc_etcd_kv **kvs, size_t *n)
{
    mc_buf end = MC_BUF_INIT;
    int rc = mc_etcd_prefix_end(prefix, &end);
    if (rc == 0)
        rc = range(l, mc_etcd_range(from ? from : prefix, end.data, limit, descend), kvs, n);
    mc_buf_free(&end);
    return rc;
}

/* The seq counter: *last (0 when absent) and its mod_revision (0 likewise). */
static int read_seq(etcd_log *l, uint64_t *last, int64_t *mod)
{
    mc_etcd_kv *kv;
    size_t n;
    int rc = range(l, mc_etcd_range(l->k_seq, NULL, 0, false), &kv, &n);
    *last = 0;
    *mod = 0;
    if (rc == 0 && n == 1) {
        if (!parse_seq(kv[0].value, last))
            rc = MC_E_INVAL;
        *mod = kv[0].mod_revision;
    }
    mc_etcd_kvs_free(kv, n);
    return rc;
}

/* ---- the log ---------------------------------------------------------------- */

static int etcd_append(void *self, mc_inval *in)
{
    etcd_log *l = self;
    if (in->created_s == 0)
        in->created_s = (int64_t)time(NULL);
    char *entry = mc_invlog_entry_encode(in);
    if (!entry)
        return MC_E_NOMEM;
    uint64_t last;
    int64_t mod;
    int rc = read_seq(l, &last, &mod);
    for (int tries = 0; rc == 0; tries++) {
        if (tries == APPEND_TRIES) {
            mc_log_error("etcd", "msg=\"append gave up: the seq counter kept changing\" "
                         "tries=%d", tries);
            rc = MC_E_IO;
            break;
        }
        char next[24], lk[KEY_MAX];
        snprintf(next, sizeof next, "%020" PRIu64, last + 1);
        seq_key(l, last + 1, lk);
        json_t *cmp = json_array(), *ok = json_array(), *fail = json_array();
        if (cmp && ok && fail) {
            json_array_append_new(cmp, mc_etcd_cmp(l->k_seq, "MOD", "EQUAL", mod, NULL));
            json_array_append_new(ok, mc_etcd_op_put(l->k_seq, next, 0));
            json_array_append_new(ok, mc_etcd_op_put(lk, entry, 0));
            json_array_append_new(fail,
                                  mc_etcd_op_range(mc_etcd_range(l->k_seq, NULL, 0, false)));
        }
        json_t *a;
        /* a txn without its compare would overwrite: never send one short */
        if (json_array_size(cmp) != 1 || json_array_size(ok) != 2 ||
            json_array_size(fail) != 1) {
            json_decref(cmp);
            json_decref(ok);
            json_decref(fail);
            rc = MC_E_NOMEM;
            break;
        }
        if ((rc = call(l, "/v3/kv/txn", mc_etcd_txn(cmp, ok, fail), &a)) < 0)
            break;
        if (json_is_true(json_object_get(a, "succeeded"))) {
            in->seq = last + 1;
            json_decref(a);
            break;
        }
        /* another origin appended first: its counter is in the failure branch */
        mc_etcd_kv *kv;
        size_t n;
        rc = mc_etcd_kvs(mc_etcd_txn_range(a, 0), &kv, &n);
        json_decref(a);
        if (rc == 0) {
            last = 0;
            mod = 0;
            if (n == 1 && (!parse_seq(kv[0].value, &last) || (mod = kv[0].mod_revision) == 0))
                rc = MC_E_INVAL;
        }
        mc_etcd_kvs_free(kv, n);
    }
    free(entry);
    return rc;
}

static int decode_entries(etcd_log *l, mc_etcd_kv *kv, size_t n, mc_inval_list *out)
{
    size_t plen = strlen(l->k_log);
    out->v = n ? calloc(n, sizeof *out->v) : NULL;
    if (n && !out->v)
        return MC_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        uint64_t seq;
        if (strncmp(kv[i].key, l->k_log, plen) != 0 || !parse_seq(kv[i].key + plen, &seq))
            continue;   /* not ours: skipped */
        int rc = mc_invlog_entry_decode(seq, kv[i].value, kv[i].vlen, &out->v[out->n]);
        if (rc == MC_E_NOMEM)
            return rc;
        if (rc == 0)
            out->n++;
    }
    return 0;
}

static int read_entries(etcd_log *l, const char *from, size_t max, bool descend,
                        mc_inval_list *out)
{
    mc_etcd_kv *kv;
    size_t n;
    int rc = prefix_range(l, l->k_log, (int64_t)max, descend, from, &kv, &n);
    if (rc == 0)
        rc = decode_entries(l, kv, n, out);
    mc_etcd_kvs_free(kv, n);
    if (rc < 0)
        mc_inval_list_free(out);
    return rc;
}

static int etcd_read_after(void *self, uint64_t after, size_t max, mc_inval_list *out)
{
    etcd_log *l = self;
    if (after == UINT64_MAX || max == 0)
        return 0;
    char from[KEY_MAX];
    seq_key(l, after + 1, from);
    return read_entries(l, from, max, false, out);
}

static int etcd_read_recent(void *self, size_t limit, mc_inval_list *out)
{
    return limit == 0 ? 0 : read_entries(self, NULL, limit, true, out);
}

static int etcd_get(void *self, uint64_t seq, mc_inval *out)
{
    etcd_log *l = self;
    char k[KEY_MAX];
    seq_key(l, seq, k);
    mc_etcd_kv *kv;
    size_t n;
    int rc = range(l, mc_etcd_range(k, NULL, 0, false), &kv, &n);
    if (rc == 0)
        rc = n == 1 ? mc_invlog_entry_decode(seq, kv[0].value, kv[0].vlen, out) : MC_E_NOTFOUND;
    mc_etcd_kvs_free(kv, n);
    return rc;
}

static int etcd_last_seq(void *self, uint64_t *out)
{
    int64_t mod;
    return read_seq(self, out, &mod);
}

/* ---- membership ------------------------------------------------------------- */

static edge_cache *cache_of(etcd_log *l, const char *node)
{
    for (size_t i = 0; i < l->nedges; i++)
        if (strcmp(l->edges[i].node, node) == 0)
            return &l->edges[i];
    edge_cache *nv = realloc(l->edges, (l->nedges + 1) * sizeof *nv);
    if (!nv)
        return NULL;
    l->edges = nv;
    edge_cache *e = &nv[l->nedges++];
    memset(e, 0, sizeof *e);
    snprintf(e->node, sizeof e->node, "%s", node);
    return e;
}

static int lease_keep(etcd_log *l, edge_cache *e, int64_t now_s)
{
    json_t *a;
    int rc;
    if (e->lease && now_s - e->lease_renewed_s < (l->ttl_s + 2) / 3)
        return 0;
    if (e->lease) {
        char id[24];
        snprintf(id, sizeof id, "%" PRId64, e->lease);
        rc = call(l, "/v3/lease/keepalive", json_pack("{s:s}", "ID", id), &a);
        if (rc < 0)
            return rc;
        /* {"result":{"ID":..,"TTL":..}}: no TTL when etcd no longer knows it */
        if (mc_etcd_int(json_object_get(a, "result"), "TTL") > 0)
            e->lease_renewed_s = now_s;
        else
            e->lease = 0;
        json_decref(a);
    }
    if (!e->lease) {
        rc = call(l, "/v3/lease/grant", json_pack("{s:I}", "TTL", (json_int_t)l->ttl_s), &a);
        if (rc < 0)
            return rc;
        e->lease = mc_etcd_int(a, "ID");
        e->lease_renewed_s = now_s;
        json_decref(a);
        if (!e->lease)
            return MC_E_IO;
    }
    return 0;
}

/* The stored region of e's node, once. */
static int cache_load(etcd_log *l, edge_cache *e)
{
    if (e->loaded)
        return 0;
    char k[KEY_MAX];
    node_key(l->k_edges, e->node, k);
    mc_etcd_kv *kv;
    size_t n;
    int rc = range(l, mc_etcd_range(k, NULL, 0, false), &kv, &n);
    if (rc == 0 && n == 1) {
        json_t *o = json_loadb(kv[0].value, kv[0].vlen, 0, NULL);
        const char *r = json_string_value(json_object_get(o, "region"));
        snprintf(e->region, sizeof e->region, "%s", r ? r : "");
        json_decref(o);
    }
    mc_etcd_kvs_free(kv, n);
    if (rc == 0)
        e->loaded = true;
    return rc;
}

static int etcd_heartbeat(void *self, const char *node, const char *region, int64_t now_s)
{
    etcd_log *l = self;
    edge_cache *e = cache_of(l, node);
    if (!e)
        return MC_E_NOMEM;
    int rc = cache_load(l, e);
    if (rc < 0)
        return rc;
    bool region_changed = region && region[0] && strcmp(region, e->region) != 0;
    if (!region_changed && e->lease && now_s - e->written_s < HEARTBEAT_WRITE_S)
        return 0;
    if (region_changed)
        snprintf(e->region, sizeof e->region, "%s", region);
    for (int tries = 0; tries < 2; tries++) {
        if ((rc = lease_keep(l, e, now_s)) < 0)
            return rc;
        char ek[KEY_MAX], ak[KEY_MAX], seen[24];
        node_key(l->k_edges, node, ek);
        node_key(l->k_alive, node, ak);
        snprintf(seen, sizeof seen, "%" PRId64, now_s);
        json_t *rec = json_pack("{s:s, s:I}", "region", e->region, "last_seen",
                                (json_int_t)now_s);
        char *rs = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
        json_decref(rec);
        json_t *ok = json_array();
        if (!rs || !ok) {
            free(rs);
            json_decref(ok);
            return MC_E_NOMEM;
        }
        json_array_append_new(ok, mc_etcd_op_put(ek, rs, 0));
        json_array_append_new(ok, mc_etcd_op_put(ak, seen, e->lease));
        free(rs);
        json_t *a;
        rc = call(l, "/v3/kv/txn", mc_etcd_txn(NULL, ok, NULL), &a);
        json_decref(a);
        if (rc != MC_E_NOTFOUND)
            break;
        e->lease = 0;   /* the lease expired between keepalive and put: a new one */
    }
    if (rc == 0)
        e->written_s = now_s;
    return rc;
}

static int edges_read(etcd_log *l, mc_edge_list *out)
{
    const char *bases[3] = {l->k_edges, l->k_acked, l->k_alive};
    json_t *ok = json_array();
    mc_buf end = MC_BUF_INIT;
    for (int i = 0; ok && i < 3; i++) {
        if (mc_etcd_prefix_end(bases[i], &end) < 0) {
            json_decref(ok);
            ok = NULL;
            break;
        }
        json_array_append_new(ok, mc_etcd_op_range(mc_etcd_range(bases[i], end.data, 0, false)));
    }
    mc_buf_free(&end);
    if (json_array_size(ok) != 3) {
        json_decref(ok);
        return MC_E_NOMEM;
    }
    json_t *a;
    int rc = call(l, "/v3/kv/txn", mc_etcd_txn(NULL, ok, NULL), &a);   /* one snapshot */
    if (rc < 0)
        return rc;
    mc_etcd_kv *kv[3] = {NULL, NULL, NULL};
    size_t n[3] = {0, 0, 0};
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = mc_etcd_kvs(mc_etcd_txn_range(a, (size_t)i), &kv[i], &n[i]);
    json_decref(a);
    int64_t now = (int64_t)time(NULL);
    size_t pl[3] = {strlen(l->k_edges), strlen(l->k_acked), strlen(l->k_alive)};
    if (rc == 0 && n[0] && !(out->v = calloc(n[0], sizeof *out->v)))
        rc = MC_E_NOMEM;
    for (size_t i = 0; rc == 0 && i < n[0]; i++) {
        const char *node = kv[0][i].key + pl[0];
        if (!node[0] || strlen(node) > MC_EDGE_NODE_MAX)
            continue;
        mc_edge *e = &out->v[out->n++];
        snprintf(e->node, sizeof e->node, "%s", node);
        json_t *o = json_loadb(kv[0][i].value, kv[0][i].vlen, 0, NULL);
        const char *r = json_string_value(json_object_get(o, "region"));
        snprintf(e->region, sizeof e->region, "%s", r ? r : "");
        e->last_seen_s = mc_etcd_int(o, "last_seen");
        json_decref(o);
        bool alive = false;
        for (size_t j = 0; j < n[2]; j++)
            if (strcmp(kv[2][j].key + pl[2], node) == 0)
                alive = true;
        if (!alive && e->last_seen_s > now - l->ttl_s - 1)
            e->last_seen_s = now - l->ttl_s - 1;   /* the lease says: gone */
        for (size_t j = 0; j < n[1]; j++)
            if (strcmp(kv[1][j].key + pl[1], node) == 0)
                parse_seq(kv[1][j].value, &e->acked);
    }
    for (int i = 0; i < 3; i++)
        mc_etcd_kvs_free(kv[i], n[i]);
    if (rc < 0)
        mc_edge_list_free(out);
    return rc;
}

static int etcd_edges(void *self, mc_edge_list *out)
{
    return edges_read(self, out);
}

/* Delete entries every registered edge has acknowledged, but the newest keep. */
static void compact(etcd_log *l, uint64_t last, int64_t now_s)
{
    if (now_s - l->compact_s < COMPACT_EVERY_S)
        return;
    l->compact_s = now_s;
    mc_edge_list edges = {NULL, 0};
    if (edges_read(l, &edges) < 0 || edges.n == 0) {
        mc_edge_list_free(&edges);
        return;
    }
    uint64_t cut = UINT64_MAX;
    for (size_t i = 0; i < edges.n; i++)
        if (edges.v[i].acked < cut)
            cut = edges.v[i].acked;
    mc_edge_list_free(&edges);
    uint64_t behind = last > l->keep ? last - l->keep : 0;
    if (behind < cut)
        cut = behind;
    if (cut <= l->compacted)
        return;
    char from[KEY_MAX], to[KEY_MAX];
    seq_key(l, 1, from);
    seq_key(l, cut + 1, to);
    json_t *ok = json_array(), *a;
    if (ok)
        json_array_append_new(ok, mc_etcd_op_delete(from, to));
    if (call(l, "/v3/kv/txn", mc_etcd_txn(NULL, ok, NULL), &a) == 0) {
        mc_log_info("etcd", "msg=compacted up_to=%" PRIu64, cut);
        l->compacted = cut;
    }
    json_decref(a);
}

static int etcd_ack(void *self, const char *node, uint64_t seq, int64_t now_s)
{
    etcd_log *l = self;
    uint64_t last;
    int64_t mod;
    int rc = read_seq(l, &last, &mod);
    if (rc < 0)
        return rc;
    if (seq > last)
        return MC_E_INVAL;
    char k[KEY_MAX], v[24];
    node_key(l->k_acked, node, k);
    snprintf(v, sizeof v, "%020" PRIu64, seq);
    /* "value < v" never matches a missing key, "version == 0" only does */
    for (int tries = 0; seq > 0 && tries < 8; tries++) {
        json_t *cmp = json_array(), *ok = json_array(), *fail = json_array(), *a;
        if (cmp && ok && fail) {
            json_array_append_new(cmp, tries % 2 ? mc_etcd_cmp(k, "VERSION", "EQUAL", 0, NULL)
                                                 : mc_etcd_cmp(k, "VALUE", "LESS", 0, v));
            json_array_append_new(ok, mc_etcd_op_put(k, v, 0));
            json_array_append_new(fail, mc_etcd_op_range(mc_etcd_range(k, NULL, 0, false)));
        }
        if (json_array_size(cmp) != 1 || json_array_size(ok) != 1 ||
            json_array_size(fail) != 1) {   /* never a put without its compare */
            json_decref(cmp);
            json_decref(ok);
            json_decref(fail);
            return MC_E_NOMEM;
        }
        if ((rc = call(l, "/v3/kv/txn", mc_etcd_txn(cmp, ok, fail), &a)) < 0)
            return rc;
        bool done = json_is_true(json_object_get(a, "succeeded"));
        if (!done) {   /* done too when the stored ack is already >= seq */
            mc_etcd_kv *kv;
            size_t n;
            if (mc_etcd_kvs(mc_etcd_txn_range(a, 0), &kv, &n) == 0 && n == 1)
                done = strcmp(kv[0].value, v) >= 0;
            mc_etcd_kvs_free(kv, n);
        }
        json_decref(a);
        if (done)
            break;
    }
    if ((rc = etcd_heartbeat(l, node, NULL, now_s)) == 0)
        compact(l, last, now_s);
    return rc;
}

/* ---- the watch thread ------------------------------------------------------- */

static void wake(etcd_log *l)
{
    char c = 1;
    if (write(l->pipe[1], &c, 1) < 0 && errno != EAGAIN) {
        /* the loop's end is gone: nothing to wake */
    }
}

static size_t on_watch_data(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    etcd_log *l = ud;
    wake(l);   /* "created" after a reconnection, or events: either way, look */
    return size * n;
}

static int on_watch_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    etcd_log *l = ud;
    return atomic_load(&l->stop) ? 1 : 0;
}

static void *watch_main(void *ud)
{
    etcd_log *l = ud;
    CURL *c = curl_easy_init();
    mc_buf key = MC_BUF_INIT;
    json_t *req = NULL;
    char *body = NULL;
    if (c && mc_etcd_b64(l->k_seq, strlen(l->k_seq), &key) == 0 &&
        (req = json_pack("{s:{s:s}}", "create_request", "key", key.data)) != NULL)
        body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    mc_buf_free(&key);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    size_t cur = 0;
    while (c && body && !atomic_load(&l->stop)) {
        char url[600];
        snprintf(url, sizeof url, "%s/v3/watch", l->endpoints[cur]);
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_watch_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, l);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_watch_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, l);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)WATCH_MAX_S);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
        set_tls(c, l);
        CURLcode cc = curl_easy_perform(c);
        if (atomic_load(&l->stop))
            break;
        mc_log_debug("etcd", "msg=\"watch ended\" url=%s error=\"%s\"", url,
                     curl_easy_strerror(cc));
        cur = (cur + 1) % l->nendpoints;
        for (int i = 0; i < 4 && !atomic_load(&l->stop); i++)
            usleep(50 * 1000);
    }
    curl_slist_free_all(h);
    free(body);
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------- */

static int etcd_wake_fd(void *self)
{
    return ((etcd_log *)self)->pipe[0];
}

static void etcd_close(void *self)
{
    etcd_log *l = self;
    if (!l)
        return;
    if (l->watching) {
        atomic_store(&l->stop, true);
        pthread_join(l->watcher, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (l->pipe[i] >= 0)
            close(l->pipe[i]);
    if (l->curl)
        curl_easy_cleanup(l->curl);
    curl_slist_free_all(l->hdrs);
    for (size_t i = 0; i < l->nendpoints; i++)
        free(l->endpoints[i]);
    free(l->cacert);
    free(l->cert);
    free(l->key);
    free(l->edges);
    mc_buf_free(&l->answer);
    free(l);
    curl_global_cleanup();
}

static const mc_invlog_ops etcd_ops = {
    .name = "etcd",
    .append = etcd_append,
    .read_after = etcd_read_after,
    .read_recent = etcd_read_recent,
    .get = etcd_get,
    .last_seq = etcd_last_seq,
    .heartbeat = etcd_heartbeat,
    .ack = etcd_ack,
    .edges = etcd_edges,
    .close = etcd_close,
    .wake_fd = etcd_wake_fd,
};

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

static int setup(etcd_log *l, const mc_invlog_etcd_config *cfg, mc_err *err)
{
    const char *p = cfg->endpoints ? cfg->endpoints : "";
    while (*p) {
        size_t n = strcspn(p, ", ");
        if (n > 0) {
            if (l->nendpoints == MAX_ENDPOINTS)
                return mc_err_set(err, MC_E_INVAL, "more than %d etcd endpoints",
                                  MAX_ENDPOINTS);
            if (n > 500 || (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0))
                return mc_err_set(err, MC_E_INVAL, "etcd endpoint \"%.*s\": want "
                                  "http://HOST:PORT or https://HOST:PORT", (int)(n < 80 ? n : 80),
                                  p);
            while (n > 0 && p[n - 1] == '/')
                n--;
            if (!(l->endpoints[l->nendpoints++] = strndup(p, n)))
                return mc_err_set(err, MC_E_NOMEM, "out of memory");
        }
        p += n;
        p += strspn(p, ", ");
    }
    if (l->nendpoints == 0)
        return mc_err_set(err, MC_E_INVAL, "no etcd endpoints (set [control] endpoints)");
    const char *prefix = cfg->prefix && cfg->prefix[0] ? cfg->prefix : DEFAULT_PREFIX;
    if (strlen(prefix) >= 200)
        return mc_err_set(err, MC_E_INVAL, "etcd key prefix too long");
    snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
    snprintf(l->k_seq, sizeof l->k_seq, "%sseq", prefix);
    snprintf(l->k_log, sizeof l->k_log, "%slog/", prefix);
    snprintf(l->k_edges, sizeof l->k_edges, "%sedges/", prefix);
    snprintf(l->k_acked, sizeof l->k_acked, "%sacked/", prefix);
    snprintf(l->k_alive, sizeof l->k_alive, "%salive/", prefix);
    l->ttl_s = cfg->lease_ttl_s >= 2 ? cfg->lease_ttl_s : 2;
    l->keep = cfg->keep;
    l->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    l->cacert = dup_or_null(cfg->cacert);
    l->cert = dup_or_null(cfg->cert);
    l->key = dup_or_null(cfg->key);
    if (pipe2(l->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return mc_err_set(err, MC_E_IO, "pipe: %s", strerror(errno));
    l->curl = curl_easy_init();
    l->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (!l->curl || !l->hdrs)
        return mc_err_set(err, MC_E_NOMEM, "cannot set up libcurl");
    curl_easy_setopt(l->curl, CURLOPT_HTTPHEADER, l->hdrs);
    curl_easy_setopt(l->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(l->curl, CURLOPT_WRITEDATA, &l->answer);
    curl_easy_setopt(l->curl, CURLOPT_TIMEOUT_MS, l->timeout_ms);
    curl_easy_setopt(l->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     l->timeout_ms < CONNECT_TIMEOUT_MS ? l->timeout_ms : (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(l->curl, CURLOPT_NOSIGNAL, 1L);
    set_tls(l->curl, l);
    return 0;
}

int mc_invlog_open_etcd(mc_invlog **out, const mc_invlog_etcd_config *cfg, mc_err *err)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return mc_err_set(err, MC_E_NOMEM, "cannot initialise libcurl");
    etcd_log *l = calloc(1, sizeof *l);
    if (!l) {
        curl_global_cleanup();
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    }
    l->pipe[0] = l->pipe[1] = -1;
    atomic_init(&l->stop, false);
    int rc = setup(l, cfg, err);
    uint64_t last = 0;
    int64_t mod;
    if (rc == 0 && read_seq(l, &last, &mod) < 0)
        mc_log_warn("etcd", "msg=\"etcd does not answer yet; the control API answers 503 "
                    "until it does\" endpoints=%s", cfg->endpoints);
    if (rc == 0) {
        if (pthread_create(&l->watcher, NULL, watch_main, l) != 0)
            rc = mc_err_set(err, MC_E_NOMEM, "cannot start the etcd watch thread");
        else
            l->watching = true;
    }
    if (rc < 0) {
        etcd_close(l);
        return rc;
    }
    mc_log_info("etcd", "msg=\"control log on etcd\" endpoints=%zu prefix=%s last_seq=%" PRIu64
                " lease_ttl_s=%" PRId64, l->nendpoints, l->prefix, last, l->ttl_s);
    return mc_invlog_new(out, &etcd_ops, l);
}
