/* edgecfg.c — see edgecfg.h. */
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "edge/edgecfg.h"
#include "edge/mesh.h"

const mc_cfg_opt mc_edge_schema[] = {
    {"edge", "listen", "listen", MC_CFG_ADDR, "127.0.0.1:8080", "viewer HTTP listener", NULL, 0, 0},
    {"edge", "tls_listen", "tls-listen", MC_CFG_STR, NULL, "viewer HTTPS listener ADDR[:PORT] (port 8443 by default; on [edge] listen's address with port 8443 when [tls] cert is set)", NULL, 0, 0},
    {"tls", "cert", NULL, MC_CFG_STR, NULL, "viewer TLS certificate chain (PEM, leaf first); reloaded on SIGHUP", NULL, 0, 0},
    {"tls", "key", NULL, MC_CFG_STR, NULL, "viewer TLS private key (PEM); reloaded on SIGHUP", NULL, 0, 0},
    {"edge", "admin", "admin", MC_CFG_ADDR, "127.0.0.1:9080", "admin listener: /healthz /readyz /metrics /purge", NULL, 0, 0},
    {"admin", "keys", "admin-keys", MC_CFG_STR, NULL, "operator key file (ID SECRET per line, mode 0600) for POST /purge", NULL, 0, 0},
    {"edge", "workers", "workers", MC_CFG_INT, "0", "event-loop threads (0 = one per core)", NULL, 0, 256},
    {"edge", "node_id", "node-id", MC_CFG_STR, NULL, "node id in Cache-Status, Via, CDN-Loop (default: host name)", NULL, 0, 0},
    {"edge", "region", "region", MC_CFG_STR, "local", "region label", NULL, 0, 0},
    {"edge", "control", "control", MC_CFG_STR, NULL, "control API URL for fleet invalidation: http://HOST:PORT, or several sharing one log (etcd backend), comma-separated: the next is tried when one fails", NULL, 0, 0},
    {"control", "credentials", NULL, MC_CFG_STR, NULL, "this node's key for the control API (default: origin.credentials)", NULL, 0, 0},
    {"control", "startup_wait", NULL, MC_CFG_DURATION, "5s", "at start, wait this long to catch up with the invalidation log before serving", NULL, 0, 0},
    {"control", "poll_wait", NULL, MC_CFG_DURATION, "20s", "long-poll duration of the invalidation log", NULL, 0, 0},
    {"edge", "segment_threshold", NULL, MC_CFG_SIZE, "64M", "objects larger than this are cached as independent segments, each fetched with a Range only when needed (0 = never); the default of segment_threshold= per behavior; reloaded on SIGHUP", NULL, 0, 0},
    {"edge", "segment_size", NULL, MC_CFG_SIZE, "8M", "bytes per segment (a multiple of 256K), node-wide; needs a restart", NULL, 0, 0},
    {"edge", "log_level", "log-level", MC_CFG_ENUM, "info", "debug|info|warn|error (reloaded on SIGHUP)", "debug|info|warn|error", 0, 0},
    {"edge", "client_timeout", NULL, MC_CFG_DURATION, "60s", "idle keep-alive / stalled client limit", NULL, 0, 0},
    {"edge", "drain_timeout", NULL, MC_CFG_DURATION, "30s", "SIGTERM: how long responses in progress may take to finish (0: stop at once)", NULL, 0, 0},
    {"edge", "max_request_body", NULL, MC_CFG_SIZE, "16M", "viewer request bodies (passed through to the origin) up to this; larger get 413", NULL, 0, 0},
    {"edge", "header_timeout", NULL, MC_CFG_DURATION, "10s", "a viewer's request head must be complete this long after its first byte (408)", NULL, 0, 0},
    {"edge", "max_connections", NULL, MC_CFG_INT, "10000", "viewer connections open at once, node-wide (HTTP + HTTPS); more are closed at accept", NULL, 1, 10000000},
    {"edge", "max_connections_per_client", NULL, MC_CFG_INT, "0", "viewer connections one client may hold open at once, node-wide (a client: an IPv4 address or an IPv6 /64); more are closed at accept; 0: no cap", NULL, 0, 10000000},
    {"edge", "admin_max_connections", NULL, MC_CFG_INT, "64", "admin listener connections open at once; more are closed at accept", NULL, 1, 100000},
    {"origin", "url", "origin", MC_CFG_STR, NULL, "origin URL: http://HOST:PORT/BUCKET", NULL, 0, 0},
    {"origin", "sign", "origin-sign", MC_CFG_ENUM, "sigv4", "sign origin requests: sigv4|none", "sigv4|none", 0, 0},
    {"origin", "credentials", "credentials", MC_CFG_STR, NULL, "file with one line ACCESS_KEY_ID SECRET [SESSION_TOKEN] (mode 0600); re-read when it changes", NULL, 0, 0},
    {"origin", "session_token_file", NULL, MC_CFG_STR, NULL, "file holding the session token of temporary credentials (mode 0600); re-read when it changes", NULL, 0, 0},
    {"origin", "region", NULL, MC_CFG_STR, NULL, "SigV4 region of the origin (default: from an Amazon S3 host name, else us-east-1)", NULL, 0, 0},
    {"origin", "ca_file", NULL, MC_CFG_STR, NULL, "HTTPS origins: CA certificates (PEM) to verify against (default: the system's)", NULL, 0, 0},
    {"origin", "ca_dir", NULL, MC_CFG_STR, NULL, "HTTPS origins: directory of hashed CA certificates (default: the system's)", NULL, 0, 0},
    {"origin", "insecure", NULL, MC_CFG_BOOL, "false", "HTTPS origins: do not verify the certificate or host name (testing only)", NULL, 0, 0},
    {"origin", "connect_timeout", NULL, MC_CFG_DURATION, "5s", "upstream connect timeout", NULL, 0, 0},
    {"origin", "idle_timeout", NULL, MC_CFG_DURATION, "30s", "abort an upstream that stalls this long", NULL, 0, 0},
    {"origin", "secondary_url", "origin-secondary", MC_CFG_STR, NULL, "origin group: secondary origin URL (http://HOST:PORT/BUCKET), signed like the primary; GETs move to it when the primary fails", NULL, 0, 0},
    {"origin", "failover_statuses", NULL, MC_CFG_STR, "500,502,503,504", "origin group: primary statuses that move a GET to the secondary (connect errors and timeouts always do)", NULL, 0, 0},
    {"parents", "*", NULL, MC_CFG_MAP, NULL, "NAME = http://HOST:PORT [health=http://HOST:ADMINPORT/healthz]: parent tiers (meshcdn-edge viewer listeners), picked per key by rendezvous hashing", NULL, 0, 0},
    {"tier", "fail_threshold", NULL, MC_CFG_INT, "3", "consecutive failures (connect error, timeout, 5xx) that eject a parent", NULL, 1, 1000},
    {"tier", "eject_time", NULL, MC_CFG_DURATION, "10s", "first ejection of a parent; doubles each time it fails again on re-probe", NULL, 0, 0},
    {"tier", "eject_max", NULL, MC_CFG_DURATION, "2m", "cap on a parent's ejection", NULL, 0, 0},
    {"tier", "response_timeout", NULL, MC_CFG_DURATION, "10s", "a parent that sends no response head this long is given up for the next (a failure)", NULL, 0, 0},
    {"tier", "health_interval", NULL, MC_CFG_DURATION, "2s", "active checks of parents with health=URL", NULL, 0, 0},
    {"store", "dir", "store", MC_CFG_STR, "./meshcdn-store", "LMDB store directory", NULL, 0, 0},
    {"store", "size", "store-size", MC_CFG_SIZE, "1G", "store size bound (LMDB map size)", NULL, 0, 0},
    {"store", "max_object_size", NULL, MC_CFG_SIZE, NULL, "larger objects are not stored (default: size/4)", NULL, 0, 0},
    {"store", "stall_timeout", NULL, MC_CFG_DURATION, "10s", "a viewer too slow for this long stops holding a fill back: it is cut off", NULL, 0, 0},
    {"store", "verify_reads", NULL, MC_CFG_ENUM, "first", "check a stored chunk's XXH3 on its first read by each worker since start (first) or on every read (always); `meshcdn-edge check` checks them all", "first|always", 0, 0},
    {"store", "fill_buffer", NULL, MC_CFG_SIZE, "4M", "per-client backlog before the upstream is paused", NULL, 0, 0},
    {"cache", "heuristic_percent", NULL, MC_CFG_INT, "10", "heuristic freshness: percent of the Last-Modified age", NULL, 0, 100},
    {"cache", "heuristic_max", NULL, MC_CFG_DURATION, "1d", "cap on heuristic freshness", NULL, 0, 0},
    {"cache", "stale_while_revalidate", NULL, MC_CFG_DURATION, "0s", "default when a response has none", NULL, 0, 0},
    {"cache", "stale_if_error", NULL, MC_CFG_DURATION, "0s", "default when a response has none", NULL, 0, 0},
    {"cache", "set_cookie", NULL, MC_CFG_ENUM, "pass", "responses with Set-Cookie: pass (not stored) or strip (stored without it)", "pass|strip", 0, 0},
    {"cache", "min_ttl", NULL, MC_CFG_DURATION, "0s", "explicit freshness is raised to at least this", NULL, 0, 0},
    {"cache", "max_ttl", NULL, MC_CFG_DURATION, NULL, "explicit freshness is capped at this (default: no cap)", NULL, 0, 0},
    {"cache", "default_ttl", NULL, MC_CFG_DURATION, NULL, "lifetime when the response gives none (default: RFC 9111 heuristics)", NULL, 0, 0},
    {"cache", "negative_ttl", NULL, MC_CFG_DURATION, "0s", "404/410 without explicit freshness are cached this long", NULL, 0, 0},
    {"cache", "query", NULL, MC_CFG_STR, "all", "query string in the key: all, sorted, none, or list:a,b", NULL, 0, 0},
    {"cache", "forward_headers", NULL, MC_CFG_STR, "accept,accept-encoding,accept-language,origin",
     "viewer request headers sent upstream (comma list, or * for every end-to-end header but Authorization, Cookie, Range and conditionals)", NULL, 0, 0},
    {"behavior", "*", NULL, MC_CFG_MAP, NULL, "PREFIX = min_ttl=.. max_ttl=.. default_ttl=.. negative_ttl=.. query=.. forward_headers=.. methods=read|all max_variants=N cors_origins=a,b|* cors_methods=a,b cors_headers=a,b cors_expose=a,b cors_max_age=.. mesh_validation=pass|refuse|off compress=br,gzip|gzip|br|off prefetch=on|off segment_threshold=SIZE|0", NULL, 0, 0},
    {"cache", "methods", NULL, MC_CFG_ENUM, "all", "all: POST, PUT, PATCH, DELETE, OPTIONS and unknown methods pass through to the origin (never stored; a success invalidates the URL); read: GET and HEAD only (others 405)", "read|all", 0, 0},
    {"cache", "max_variants", NULL, MC_CFG_INT, "32", "Vary: variants stored per URL; a new one beyond replaces an expired or else the oldest", NULL, 1, 65536},
    {"cache", "cors_origins", NULL, MC_CFG_STR, NULL, "CORS answered by the edge: * or allowed page origins (space/comma list); unset: the origin's CORS headers pass through", NULL, 0, 0},
    {"cache", "cors_methods", NULL, MC_CFG_STR, "GET, HEAD, OPTIONS", "CORS: methods allowed in preflights", NULL, 0, 0},
    {"cache", "cors_headers", NULL, MC_CFG_STR, "Range, If-None-Match, If-Modified-Since, Content-Type", "CORS: request headers allowed in preflights (* for any)", NULL, 0, 0},
    {"cache", "cors_expose", NULL, MC_CFG_STR, "Cache-Status, X-Cache, Age, Content-Length, Content-Range, ETag", "CORS: response headers exposed to the page", NULL, 0, 0},
    {"cache", "cors_max_age", NULL, MC_CFG_DURATION, "1d", "CORS: how long a browser may reuse a preflight answer", NULL, 0, 0},
    {"cache", "mesh_validation", NULL, MC_CFG_ENUM, "pass", "glTF/GLB checked before storing: pass (invalid: served, not stored), refuse (invalid: 502), off", "pass|refuse|off", 0, 0},
    {"cache", "compress", NULL, MC_CFG_STR, "off", "br gzip, gzip or br: compressible types (glTF JSON, OBJ, JSON, text) the origin sent uncompressed are stored once per encoding (identity and each listed one, from one origin fetch) and viewers get br if they accept it, else gzip, else identity (Accept-Encoding is not forwarded); off", NULL, 0, 0},
    {"cache", "prefetch", NULL, MC_CFG_ENUM, "off", "on: when a .gltf is stored, its buffers[].uri and images[].uri (relative, inside its directory) are filled in the background ([prefetch] limits)", "on|off", 0, 0},
    {"prefetch", "max_refs", NULL, MC_CFG_INT, "32", "references prefetched per .gltf (the others are skipped)", NULL, 0, 4096},
    {"prefetch", "max_bytes", NULL, MC_CFG_SIZE, "256M", "Content-Length budget per .gltf: a reference without one, or over what is left, is given up", NULL, 0, 0},
    {"prefetch", "concurrency", NULL, MC_CFG_INT, "6", "prefetch fills at once per worker; the others queue", NULL, 1, 1024},
    {"prefetch", "queue", NULL, MC_CFG_INT, "256", "references waiting per worker; more are dropped", NULL, 0, 1000000},
    {"prefetch", "preconnect", NULL, MC_CFG_INT, "4", "when a .gltf's fill starts on a behavior with prefetch = on, open up to this many TCP connections to its upstream in the background for the prefetch fills that follow (0: off)", NULL, 0, 64},
    {"prefetch", "preconnect_idle", NULL, MC_CFG_DURATION, "2s", "a preconnected upstream connection not used within this is closed", NULL, 0, 0},
    {"prefetch", "max_gltf_size", NULL, MC_CFG_SIZE, "4M", "a larger .gltf is stored but not read for references", NULL, 0, 0},
    {"cache", "viewer_no_cache", NULL, MC_CFG_ENUM, "honor", "a viewer's no-cache: honor (revalidate) or ignore", "honor|ignore", 0, 0},
    {NULL, NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
};

static int copy_str(char *dst, size_t n, const char *s)
{
    if (!s || strlen(s) >= n)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int token_safe(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_'))
            return 0;
    return 1;
}

/* "http://HOST:PORT/BUCKET" -> base "http://HOST:PORT", path "/BUCKET". */
static int split_url(const mc_config *c, mc_err *err, const char *key, const char *url, char base[512],
                     char path_out[512])
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return mc_config_fail(c, err, MC_E_INVAL, "origin", key, "\"%s\" is not an http:// or https:// URL", url);
    const char *host = strstr(url, "://") + 3;
    const char *slash = strchr(host, '/');
    if (strchr(url, '?') || strchr(url, '#') || host == slash || !*host)
        return mc_config_fail(c, err, MC_E_INVAL, "origin", key, "\"%s\" is not http://HOST[:PORT][/PATH]", url);
    size_t blen = slash ? (size_t)(slash - url) : strlen(url);
    if (blen >= 512)
        return mc_config_fail(c, err, MC_E_INVAL, "origin", key, "too long");
    memcpy(base, url, blen);
    base[blen] = '\0';
    const char *path = slash ? slash : "";
    size_t plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;   /* "/bucket/" and "/bucket" map the same way */
    if (plen >= 512)
        return mc_config_fail(c, err, MC_E_INVAL, "origin", key, "path too long");
    memcpy(path_out, path, plen);
    path_out[plen] = '\0';
    return 0;
}

static int split_origin(mc_edge_config *out, const mc_config *c, mc_err *err)
{
    const char *url = mc_config_str(c, "origin", "url");
    if (!url)
        return mc_err_set(err, MC_E_INVAL, "origin.url: required (use --origin http://HOST:PORT/BUCKET)");
    int rc = split_url(c, err, "url", url, out->origin_base, out->origin_path);
    const char *sec = mc_config_str(c, "origin", "secondary_url");
    if (rc == 0 && sec)
        rc = split_url(c, err, "secondary_url", sec, out->secondary_base, out->secondary_path);
    if (rc < 0)
        return rc;
    const char *st = mc_config_str(c, "origin", "failover_statuses");
    for (const char *p = st; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 100 || v > 599 || out->nfailover_statuses == 16 || (*end && *end != ','))
            return mc_config_fail(c, err, MC_E_INVAL, "origin", "failover_statuses",
                                  "\"%s\" is not a list of up to 16 statuses (500,502,503,504)", st);
        out->failover_statuses[out->nfailover_statuses++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return 0;
}

typedef struct parents_ctx {
    mc_edge_config *out;
    mc_err *err;
} parents_ctx;

static int is_http_base(const char *u, size_t n)
{
    const char *host = strncmp(u, "http://", 7) == 0 ? u + 7 : NULL;
    return host && (size_t)(host - u) < n && !memchr(host, '/', n - (size_t)(host - u)) &&
           !memchr(host, '?', n - (size_t)(host - u));
}

/* "[parents] tier-a = http://127.0.0.1:8081 health=http://127.0.0.1:9081/healthz" */
static int on_parent(void *ud, const char *key, const char *value, const char *where)
{
    parents_ctx *x = ud;
    mc_edge_config *out = x->out;
    int slot = out->nparents;   /* a flag naming a parent of the file replaces it */
    for (int i = 0; i < out->nparents; i++)
        if (strcmp(out->parents[i].name, key) == 0)
            slot = i;
    if (slot == MC_MAX_PARENTS)
        return mc_err_set(x->err, MC_E_TOOBIG, "%s: parents.%s: too many parents (%d)", where, key, MC_MAX_PARENTS);
    mc_parent_cfg *p = &out->parents[slot];
    memset(p, 0, sizeof *p);
    if (!token_safe(key) || copy_str(p->name, sizeof p->name, key) < 0)
        return mc_err_set(x->err, MC_E_INVAL, "%s: parents.%s: a parent's name is 1-63 of A-Z a-z 0-9 . _ -", where, key);
    const char *s = value;
    while (*s == ' ')
        s++;
    size_t n = strcspn(s, " \t");
    while (n > 0 && s[n - 1] == '/')
        n--;
    if (!is_http_base(s, n) || n >= sizeof p->base || n <= 7)
        return mc_err_set(x->err, MC_E_INVAL, "%s: parents.%s: \"%s\" is not http://HOST:PORT [health=URL]", where,
                          key, value);
    memcpy(p->base, s, n);
    p->base[n] = '\0';
    for (s += strcspn(s, " \t"); *s;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        n = strcspn(s, " \t");
        if (n > 7 && strncmp(s, "health=", 7) == 0 && n - 7 < sizeof p->health_url && strncmp(s + 7, "http://", 7) == 0) {
            memcpy(p->health_url, s + 7, n - 7);
            p->health_url[n - 7] = '\0';
        } else {
            return mc_err_set(x->err, MC_E_INVAL, "%s: parents.%s: unknown \"%.*s\" (only health=http://HOST:PORT/PATH)",
                              where, key, (int)n, s);
        }
        s += n;
    }
    if (slot == out->nparents)
        out->nparents++;
    return 0;
}

static int load_parents(mc_edge_config *out, const mc_config *c, mc_err *err)
{
    parents_ctx x = {out, err};
    int rc = mc_config_each(c, "parents", on_parent, &x);
    if (rc < 0)
        return rc;
    out->tier_fail_threshold = (int)mc_config_int(c, "tier", "fail_threshold");
    out->tier_eject_ms = mc_config_duration_ms(c, "tier", "eject_time");
    out->tier_eject_max_ms = mc_config_duration_ms(c, "tier", "eject_max");
    out->tier_health_interval_ms = mc_config_duration_ms(c, "tier", "health_interval");
    out->tier_response_timeout_ms = mc_config_duration_ms(c, "tier", "response_timeout");
    if (out->tier_eject_ms < 100)
        return mc_config_fail(c, err, MC_E_INVAL, "tier", "eject_time", "must be at least 100ms");
    if (out->tier_eject_max_ms < out->tier_eject_ms)
        out->tier_eject_max_ms = out->tier_eject_ms;
    if (out->tier_health_interval_ms < 100)
        return mc_config_fail(c, err, MC_E_INVAL, "tier", "health_interval", "must be at least 100ms");
    return 0;
}

static int parse_query_mode(mc_cache_policy *p, const char *v)
{
    if (strcmp(v, "all") == 0)
        p->query = MC_QUERY_ALL;
    else if (strcmp(v, "sorted") == 0)
        p->query = MC_QUERY_SORTED;
    else if (strcmp(v, "none") == 0)
        p->query = MC_QUERY_NONE;
    else if (strncmp(v, "list:", 5) == 0 && v[5] && strlen(v + 5) < sizeof p->query_list) {
        p->query = MC_QUERY_LIST;
        memcpy(p->query_list, v + 5, strlen(v + 5) + 1);
    } else {
        return -1;
    }
    return 0;
}

static int set_forward(mc_cache_policy *p, const char *v)
{
    if (strlen(v) >= sizeof p->forward_headers)
        return -1;
    for (size_t i = 0; v[i]; i++)
        p->forward_headers[i] = (char)tolower((unsigned char)v[i]);
    p->forward_headers[strlen(v)] = '\0';
    return 0;
}

static int parse_ttl(const char *v, int64_t *out)
{
    int64_t ms;
    if (mc_parse_duration_ms(v, &ms) < 0)
        return -1;
    *out = ms / 1000;
    return 0;
}

static int parse_mesh_validation(mc_cache_policy *p, const char *v)
{
    if (strcmp(v, "off") == 0) p->mesh_validation = MC_MESH_VALIDATION_OFF;
    else if (strcmp(v, "pass") == 0) p->mesh_validation = MC_MESH_VALIDATION_PASS;
    else if (strcmp(v, "refuse") == 0) p->mesh_validation = MC_MESH_VALIDATION_REFUSE;
    else return -1;
    return 0;
}

static int parse_methods(mc_cache_policy *p, const char *v)
{
    if (strcmp(v, "all") != 0 && strcmp(v, "read") != 0)
        return -1;
    p->pass_unsafe = strcmp(v, "all") == 0;
    return 0;
}

static int parse_variants(mc_cache_policy *p, const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 1 || n > 65536)
        return -1;
    p->max_variants = (int)n;
    return 0;
}

typedef struct behavior_ctx {
    mc_edge_config *out;
    mc_err *err;
} behavior_ctx;

/* "[behavior] /models/ = default_ttl=1d query=none": one behavior per line. */
static int on_behavior(void *ud, const char *key, const char *value, const char *where)
{
    behavior_ctx *x = ud;
    mc_edge_config *out = x->out;
    if (out->nbehaviors == (int)(sizeof out->behaviors / sizeof out->behaviors[0]))
        return mc_err_set(x->err, MC_E_TOOBIG, "%s: behavior.%s: too many behaviors (32)", where, key);
    if (key[0] != '/' || strlen(key) >= sizeof out->policy.prefix)
        return mc_err_set(x->err, MC_E_INVAL, "%s: behavior.%s: a behavior is a path prefix starting with /", where, key);
    mc_cache_policy *p = &out->behaviors[out->nbehaviors];
    *p = out->policy;
    memcpy(p->prefix, key, strlen(key) + 1);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", value);
    for (char *save = NULL, *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char *eq = strchr(tok, '=');
        int bad = !eq;
        if (eq) {
            *eq = '\0';
            const char *v = eq + 1;
            if (strcmp(tok, "min_ttl") == 0) bad = parse_ttl(v, &p->min_ttl_s);
            else if (strcmp(tok, "max_ttl") == 0) bad = parse_ttl(v, &p->max_ttl_s);
            else if (strcmp(tok, "default_ttl") == 0) bad = parse_ttl(v, &p->default_ttl_s);
            else if (strcmp(tok, "negative_ttl") == 0) bad = parse_ttl(v, &p->negative_ttl_s);
            else if (strcmp(tok, "query") == 0) bad = parse_query_mode(p, v);
            else if (strcmp(tok, "forward_headers") == 0) bad = set_forward(p, v);
            else if (strcmp(tok, "methods") == 0) bad = parse_methods(p, v);
            else if (strcmp(tok, "max_variants") == 0) bad = parse_variants(p, v);
            else if (strcmp(tok, "cors_origins") == 0) bad = copy_str(p->cors_origins, sizeof p->cors_origins, v);
            else if (strcmp(tok, "cors_methods") == 0) bad = copy_str(p->cors_methods, sizeof p->cors_methods, v);
            else if (strcmp(tok, "cors_headers") == 0) bad = copy_str(p->cors_headers, sizeof p->cors_headers, v);
            else if (strcmp(tok, "cors_expose") == 0) bad = copy_str(p->cors_expose, sizeof p->cors_expose, v);
            else if (strcmp(tok, "cors_max_age") == 0) bad = parse_ttl(v, &p->cors_max_age_s);
            else if (strcmp(tok, "mesh_validation") == 0) bad = parse_mesh_validation(p, v);
            else if (strcmp(tok, "compress") == 0) bad = mc_mesh_compress_parse(v, &p->compress) < 0;
            else if (strcmp(tok, "prefetch") == 0) bad = !(strcmp(v, "on") == 0 || strcmp(v, "off") == 0),
                                                   p->prefetch = strcmp(v, "on") == 0;
            else if (strcmp(tok, "segment_threshold") == 0) bad = mc_parse_size(v, &p->segment_threshold) < 0;
            else bad = 1;
        }
        if (bad)
            return mc_err_set(x->err, MC_E_INVAL, "%s: behavior.%s: \"%s\" is not one of min_ttl=, max_ttl=, "
                              "default_ttl=, negative_ttl= (durations), query=all|sorted|none|list:a,b, forward_headers=a,b, "
                              "methods=read|all, max_variants=N, cors_origins=a,b|*, cors_methods=, cors_headers=, cors_expose=, "
                              "cors_max_age= (duration), mesh_validation=pass|refuse|off, compress=br,gzip|gzip|br|off, prefetch=on|off, "
                              "segment_threshold=SIZE|0", where, key, tok);
    }
    out->nbehaviors++;
    return 0;
}

static int by_prefix_length(const void *a, const void *b)
{
    return (int)strlen(((const mc_cache_policy *)b)->prefix) - (int)strlen(((const mc_cache_policy *)a)->prefix);
}

const mc_cache_policy *mc_edge_policy_for(const mc_edge_config *c, const char *path)
{
    for (int i = 0; i < c->nbehaviors; i++)
        if (strncmp(path, c->behaviors[i].prefix, strlen(c->behaviors[i].prefix)) == 0)
            return &c->behaviors[i];
    return &c->policy;
}

static int load_policy(mc_edge_config *out, const mc_config *c, mc_err *err)
{
    mc_cache_policy *p = &out->policy;
    snprintf(p->prefix, sizeof p->prefix, "/");
    p->heuristic_percent = (int)mc_config_int(c, "cache", "heuristic_percent");
    p->heuristic_max_s = mc_config_duration_ms(c, "cache", "heuristic_max") / 1000;
    p->default_swr_s = mc_config_duration_ms(c, "cache", "stale_while_revalidate") / 1000;
    p->default_sie_s = mc_config_duration_ms(c, "cache", "stale_if_error") / 1000;
    p->set_cookie_strip = strcmp(mc_config_str(c, "cache", "set_cookie"), "strip") == 0;
    p->honor_viewer_no_cache = strcmp(mc_config_str(c, "cache", "viewer_no_cache"), "honor") == 0;
    p->min_ttl_s = mc_config_duration_ms(c, "cache", "min_ttl") / 1000;
    p->max_ttl_s = mc_config_str(c, "cache", "max_ttl") ? mc_config_duration_ms(c, "cache", "max_ttl") / 1000 : -1;
    p->default_ttl_s = mc_config_str(c, "cache", "default_ttl") ? mc_config_duration_ms(c, "cache", "default_ttl") / 1000 : -1;
    p->negative_ttl_s = mc_config_duration_ms(c, "cache", "negative_ttl") / 1000;
    p->pass_unsafe = strcmp(mc_config_str(c, "cache", "methods"), "all") == 0;
    p->max_variants = (int)mc_config_int(c, "cache", "max_variants");
    if (set_forward(p, mc_config_str(c, "cache", "forward_headers")) < 0)
        return mc_config_fail(c, err, MC_E_INVAL, "cache", "forward_headers", "too long");
    if (parse_query_mode(p, mc_config_str(c, "cache", "query")) < 0)
        return mc_config_fail(c, err, MC_E_INVAL, "cache", "query", "use all, sorted, none, or list:a,b");
    static const char *const cors_keys[] = {"cors_origins", "cors_methods", "cors_headers", "cors_expose"};
    char *const cors_dst[] = {p->cors_origins, p->cors_methods, p->cors_headers, p->cors_expose};
    const size_t cors_len[] = {sizeof p->cors_origins, sizeof p->cors_methods, sizeof p->cors_headers,
                               sizeof p->cors_expose};
    for (int i = 0; i < 4; i++) {
        const char *v = mc_config_str(c, "cache", cors_keys[i]);
        if (v && copy_str(cors_dst[i], cors_len[i], v) < 0)
            return mc_config_fail(c, err, MC_E_INVAL, "cache", cors_keys[i], "too long");
    }
    p->cors_max_age_s = mc_config_duration_ms(c, "cache", "cors_max_age") / 1000;
    parse_mesh_validation(p, mc_config_str(c, "cache", "mesh_validation"));
    if (mc_mesh_compress_parse(mc_config_str(c, "cache", "compress"), &p->compress) < 0)
        return mc_config_fail(c, err, MC_E_INVAL, "cache", "compress", "use off, or br and/or gzip (\"br gzip\")");
    p->prefetch = strcmp(mc_config_str(c, "cache", "prefetch"), "on") == 0;
    p->segment_threshold = out->segment_threshold;   /* behaviors start from it (on_behavior) */
    behavior_ctx x = {out, err};
    int rc = mc_config_each(c, "behavior", on_behavior, &x);
    if (rc)
        return rc;
    qsort(out->behaviors, (size_t)out->nbehaviors, sizeof out->behaviors[0], by_prefix_length);
    return 0;
}

int mc_edge_region_from_host(const char *host, char *out, size_t n)
{
    char h[256];
    size_t hl = strcspn(host, ":");
    if (hl >= sizeof h)
        return 0;
    for (size_t i = 0; i < hl; i++)
        h[i] = (char)tolower((unsigned char)host[i]);
    h[hl] = '\0';
    static const char suffix[] = ".amazonaws.com";
    size_t sl = sizeof suffix - 1;
    if (hl <= sl || strcmp(h + hl - sl, suffix) != 0)
        return 0;
    h[hl - sl] = '\0';                        /* "bucket.s3.eu-west-1" */
    /* the label that starts with "s3" (the bucket name may contain dots) */
    char *s3 = NULL;
    for (char *p = h; p; p = strchr(p, '.')) {
        if (*p == '.')
            p++;
        if (strncmp(p, "s3", 2) == 0 && (p[2] == '.' || p[2] == '-' || p[2] == '\0')) {
            s3 = p;                           /* keep the last: "s3.bucket.s3.eu-west-1" */
        }
    }
    if (!s3)
        return 0;
    const char *r;
    if (s3[2] == '\0')
        r = "us-east-1";                      /* s3.amazonaws.com: the global endpoint */
    else if (s3[2] == '-')
        r = s3 + 3;                           /* legacy s3-REGION */
    else {
        r = s3 + 3;
        if (strncmp(r, "dualstack.", 10) == 0)
            r += 10;
        if (strchr(r, '.'))
            return 0;                         /* not a shape we know */
    }
    if (!*r || strlen(r) >= n)
        return 0;
    memcpy(out, r, strlen(r) + 1);
    return 1;
}

static int load_tls(mc_edge_config *out, const mc_config *c, mc_err *err)
{
    const char *listen = mc_config_str(c, "edge", "tls_listen");
    const char *cert = mc_config_str(c, "tls", "cert");
    const char *key = mc_config_str(c, "tls", "key");
    if (!listen && !cert && !key)
        return 0;
    if (!cert)
        return mc_config_fail(c, err, MC_E_INVAL, listen ? "edge" : "tls", listen ? "tls_listen" : "key",
                              "needs [tls] cert = FILE (PEM chain) and key = FILE");
    if (!key)
        return mc_config_fail(c, err, MC_E_INVAL, "tls", "cert", "needs [tls] key = FILE (PEM private key)");
    if (copy_str(out->tls_cert, sizeof out->tls_cert, cert) < 0)
        return mc_config_fail(c, err, MC_E_INVAL, "tls", "cert", "path too long");
    if (copy_str(out->tls_key, sizeof out->tls_key, key) < 0)
        return mc_config_fail(c, err, MC_E_INVAL, "tls", "key", "path too long");
    out->tls_enabled = 1;
    if (!listen) {
        memcpy(out->tls_host, out->listen_host, sizeof out->tls_host);
        out->tls_port = 8443;
        return 0;
    }
    if (mc_parse_addr(listen, out->tls_host, sizeof out->tls_host, &out->tls_port) == 0)
        return 0;
    /* ADDR alone (v4, or [v6]): the default HTTPS port */
    char buf[300];
    int n = snprintf(buf, sizeof buf, "%s:8443", listen);
    if (n > 0 && (size_t)n < sizeof buf && mc_parse_addr(buf, out->tls_host, sizeof out->tls_host, &out->tls_port) == 0)
        return 0;
    return mc_config_fail(c, err, MC_E_INVAL, "edge", "tls_listen",
                          "\"%s\" is not an address (use 0.0.0.0:8443, [::]:8443 or 127.0.0.1)", listen);
}

static int load_origin_tls(mc_edge_config *out, const mc_config *c, mc_err *err)
{
    const char *f = mc_config_str(c, "origin", "ca_file");
    const char *d = mc_config_str(c, "origin", "ca_dir");
    if (f && (copy_str(out->origin_ca_file, sizeof out->origin_ca_file, f) < 0 || access(f, R_OK) != 0))
        return mc_config_fail(c, err, MC_E_INVAL, "origin", "ca_file", "\"%s\" is not a readable file", f);
    if (d && (copy_str(out->origin_ca_dir, sizeof out->origin_ca_dir, d) < 0 || access(d, R_OK | X_OK) != 0))
        return mc_config_fail(c, err, MC_E_INVAL, "origin", "ca_dir", "\"%s\" is not a readable directory", d);
    out->origin_insecure = mc_config_bool(c, "origin", "insecure");
    if (out->origin_insecure)
        mc_log_warn("config", "msg=\"origin.insecure: the origin's TLS certificate is NOT verified\"");
    return 0;
}

static int fill_values(mc_edge_config *out, const mc_config *c, mc_err *err)
{
    int rc;
    mc_parse_addr(mc_config_str(c, "edge", "listen"), out->listen_host, sizeof out->listen_host, &out->listen_port);
    mc_parse_addr(mc_config_str(c, "edge", "admin"), out->admin_host, sizeof out->admin_host, &out->admin_port);
    if ((rc = load_tls(out, c, err)) < 0)
        return rc;
    out->workers = (int)mc_config_int(c, "edge", "workers");
    if (out->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        out->workers = n > 0 ? (int)(n > 64 ? 64 : n) : 1;
    }
    const char *node = mc_config_str(c, "edge", "node_id");
    char host[64] = "meshcdn";
    if (!node) {
        if (gethostname(host, sizeof host) != 0 || !token_safe(host))
            snprintf(host, sizeof host, "meshcdn");
        host[sizeof host - 1] = '\0';
        node = host;
    }
    if (!token_safe(node) || copy_str(out->node_id, sizeof out->node_id, node) < 0)
        return mc_config_fail(c, err, MC_E_INVAL, "edge", "node_id", "\"%s\" must be 1-63 of A-Z a-z 0-9 . _ -", node);
    if (copy_str(out->region, sizeof out->region, mc_config_str(c, "edge", "region")) < 0 ||
        !token_safe(out->region))
        return mc_config_fail(c, err, MC_E_INVAL, "edge", "region", "must be 1-63 of A-Z a-z 0-9 . _ -");
    mc_log_level lvl = MC_LOG_INFO;
    mc_log_level_parse(mc_config_str(c, "edge", "log_level"), &lvl);
    out->log_level = (int)lvl;   /* applied by main: a reload that is refused changes nothing */
    out->client_timeout_ms = mc_config_duration_ms(c, "edge", "client_timeout");
    out->drain_timeout_ms = mc_config_duration_ms(c, "edge", "drain_timeout");
    out->max_request_body = mc_config_size(c, "edge", "max_request_body");
    out->header_timeout_ms = mc_config_duration_ms(c, "edge", "header_timeout");
    out->max_connections = (int)mc_config_int(c, "edge", "max_connections");
    out->max_connections_per_client = (int)mc_config_int(c, "edge", "max_connections_per_client");
    out->admin_max_connections = (int)mc_config_int(c, "edge", "admin_max_connections");
    if ((rc = split_origin(out, c, err)) < 0)
        return rc;
    out->origin_sign = strcmp(mc_config_str(c, "origin", "sign"), "sigv4") == 0;
    const char *region = mc_config_str(c, "origin", "region");
    if (!region && !mc_edge_region_from_host(strstr(out->origin_base, "://") + 3, out->sign_region,
                                             sizeof out->sign_region))
        region = "us-east-1";
    if (region && copy_str(out->sign_region, sizeof out->sign_region, region) < 0)
        return mc_config_fail(c, err, MC_E_INVAL, "origin", "region", "too long");
    if ((rc = load_origin_tls(out, c, err)) < 0)
        return rc;
    if ((rc = load_parents(out, c, err)) < 0)
        return rc;
    out->connect_timeout_ms = mc_config_duration_ms(c, "origin", "connect_timeout");
    out->upstream_idle_ms = mc_config_duration_ms(c, "origin", "idle_timeout");
    if (out->origin_sign) {
        const char *cred = mc_config_str(c, "origin", "credentials");
        if (!cred)
            return mc_err_set(err, MC_E_INVAL, "origin.credentials: required with origin.sign = sigv4 "
                                               "(use --credentials FILE, or --origin-sign none)");
        mc_err kerr;
        if ((rc = mc_keys_load_credentials(&out->credentials, cred, &kerr)) < 0)
            return mc_config_fail(c, err, rc, "origin", "credentials", "%s", kerr.msg);
        if (copy_str(out->credentials_file, sizeof out->credentials_file, cred) < 0)
            return mc_config_fail(c, err, MC_E_INVAL, "origin", "credentials", "path too long");
        const char *tok = mc_config_str(c, "origin", "session_token_file");
        if (tok && copy_str(out->session_token_file, sizeof out->session_token_file, tok) < 0)
            return mc_config_fail(c, err, MC_E_INVAL, "origin", "session_token_file", "path too long");
    }
    const char *ctl = mc_config_str(c, "edge", "control");
    if (ctl) {
        if ((strncmp(ctl, "http://", 7) != 0 && strncmp(ctl, "https://", 8) != 0) ||
            copy_str(out->control_url, sizeof out->control_url, ctl) < 0)
            return mc_config_fail(c, err, MC_E_INVAL, "edge", "control", "\"%s\" is not an http(s) URL", ctl);
        const char *cc = mc_config_str(c, "control", "credentials");
        const char *file = cc ? cc : mc_config_str(c, "origin", "credentials");
        if (!file)
            return mc_config_fail(c, err, MC_E_INVAL, "control", "credentials",
                                  "required with edge.control (or set origin.credentials)");
        mc_err kerr;
        if ((rc = mc_keys_load_credentials(&out->control_credentials, file, &kerr)) < 0)
            return mc_config_fail(c, err, rc, cc ? "control" : "origin", "credentials", "%s", kerr.msg);
        out->control_startup_wait_ms = mc_config_duration_ms(c, "control", "startup_wait");
        out->control_poll_wait_ms = mc_config_duration_ms(c, "control", "poll_wait");
        if (out->control_poll_wait_ms < 1000 || out->control_poll_wait_ms > 60000)
            return mc_config_fail(c, err, MC_E_INVAL, "control", "poll_wait", "must be 1s to 60s");
    }
    const char *akeys = mc_config_str(c, "admin", "keys");
    if (akeys) {
        mc_err kerr;
        if ((rc = mc_keys_load(&out->admin_keys, akeys, &kerr)) < 0)
            return mc_config_fail(c, err, rc, "admin", "keys", "%s", kerr.msg);
    }
    if (copy_str(out->store_dir, sizeof out->store_dir, mc_config_str(c, "store", "dir")) < 0)
        return mc_config_fail(c, err, MC_E_INVAL, "store", "dir", "too long");
    out->store_size = mc_config_size(c, "store", "size");
    if (out->store_size < (16u << 20))
        return mc_config_fail(c, err, MC_E_INVAL, "store", "size", "must be at least 16M");
    out->max_object_auto = !mc_config_str(c, "store", "max_object_size");
    out->max_object_bytes = mc_config_str(c, "store", "max_object_size")
                                ? mc_config_size(c, "store", "max_object_size")
                                : out->store_size / 4;
    out->max_fill_buffer = mc_config_size(c, "store", "fill_buffer");
    out->verify_reads_always = strcmp(mc_config_str(c, "store", "verify_reads"), "always") == 0;
    out->stall_timeout_ms = mc_config_duration_ms(c, "store", "stall_timeout");
    out->prefetch_max_refs = (int)mc_config_int(c, "prefetch", "max_refs");
    out->prefetch_max_bytes = mc_config_size(c, "prefetch", "max_bytes");
    out->prefetch_concurrency = (int)mc_config_int(c, "prefetch", "concurrency");
    out->prefetch_queue = (int)mc_config_int(c, "prefetch", "queue");
    out->prefetch_max_gltf = mc_config_size(c, "prefetch", "max_gltf_size");
    out->prefetch_preconnect = (int)mc_config_int(c, "prefetch", "preconnect");
    out->preconnect_idle_ms = mc_config_duration_ms(c, "prefetch", "preconnect_idle");
    if (out->preconnect_idle_ms < 1)
        return mc_config_fail(c, err, MC_E_INVAL, "prefetch", "preconnect_idle", "must be at least 1ms");
    out->segment_threshold = mc_config_size(c, "edge", "segment_threshold");
    out->segment_size = mc_config_size(c, "edge", "segment_size");
    if (out->segment_size < 256u * 1024u || out->segment_size % (256u * 1024u) != 0 || out->segment_size > (1ull << 31))
        return mc_config_fail(c, err, MC_E_INVAL, "edge", "segment_size", "must be a multiple of 256K, at most 2G");
    /* below twice the connection's low watermark a drained viewer would
     * resume the upstream only to pause it again at once */
    if ((rc = load_policy(out, c, err)) < 0)
        return rc;
    if (out->max_fill_buffer < (1u << 20))
        return mc_config_fail(c, err, MC_E_INVAL, "store", "fill_buffer", "must be at least 1M");
    return 0;
}

int mc_edge_config_load(mc_edge_config *out, int argc, char **argv, mc_err *err)
{
    memset(out, 0, sizeof *out);
    mc_config *c;
    int rc = mc_config_load(&c, mc_edge_schema, argc, argv, false, err);
    if (rc != MC_CONFIG_RUN)
        return rc;
    rc = fill_values(out, c, err);
    mc_config_free(c);
    if (rc < 0)
        mc_edge_config_free(out);
    return rc < 0 ? rc : MC_CONFIG_RUN;
}

void mc_edge_config_free(mc_edge_config *c)
{
    mc_keys_free(&c->credentials);
    memset(&c->credentials, 0, sizeof c->credentials);
    mc_keys_free(&c->admin_keys);
    memset(&c->admin_keys, 0, sizeof c->admin_keys);
    mc_keys_free(&c->control_credentials);
    memset(&c->control_credentials, 0, sizeof c->control_credentials);
}
