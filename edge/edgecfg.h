/* edgecfg.h — meshcdn-edge's configuration: the schema of its INI file and
 * flags, and the validated values every other module reads.
 *
 * Threads: loaded on the main thread, at start and again on SIGHUP (a new
 * mc_edge_config each time, published as a snapshot: snap.h); read-only
 * once loaded. Loading has no side effect (log_level is applied by main).
 * Ownership: mc_edge_config owns its strings and credentials
 * (mc_edge_config_free).
 */
#ifndef MC_EDGECFG_H
#define MC_EDGECFG_H

#include <stdint.h>
#include "common/config.h"
#include "common/keys.h"

/* Which part of the query string is in the cache key and goes upstream. */
typedef enum {
    MC_QUERY_ALL = 0,    /* as received (default) */
    MC_QUERY_SORTED,     /* all parameters, sorted in the key (upstream: as received) */
    MC_QUERY_NONE,       /* none: not in the key, not forwarded */
    MC_QUERY_LIST,       /* only the listed parameter names, in the key and upstream */
} mc_query_mode;

/* How responses are cached where the response says nothing (RFC 9111 leaves
 * these to the cache), and a behavior's CloudFront-style overrides. One per
 * behavior; the [cache] section is the default behavior's. */
typedef struct mc_cache_policy {
    char prefix[256];            /* path prefix the behavior applies to ("/" default) */
    int64_t min_ttl_s;           /* explicit freshness is raised to at least this */
    int64_t max_ttl_s;           /* and lowered to at most this (-1: no cap) */
    int64_t default_ttl_s;       /* lifetime when the response gives none (-1: RFC heuristics) */
    int64_t negative_ttl_s;      /* 404/410 without explicit freshness (0: RFC rules) */
    mc_query_mode query;
    char query_list[256];        /* MC_QUERY_LIST: "a,b,c" */
    char forward_headers[512];   /* viewer request headers sent upstream: "a,b" (lower case) or "*" */
    int heuristic_percent;       /* of (Date - Last-Modified), RFC 9111 4.2.2 */
    int64_t heuristic_max_s;
    int64_t default_swr_s;       /* stale-while-revalidate when the response has none */
    int64_t default_sie_s;       /* stale-if-error when the response has none */
    int set_cookie_strip;        /* 0: responses with Set-Cookie are not stored; 1: stored without it */
    int honor_viewer_no_cache;   /* a viewer's Cache-Control: no-cache forces revalidation */
    int pass_unsafe;             /* 1: methods other than GET/HEAD go to the origin (pass.h); 0: 405 */
    int max_variants;            /* Vary: variants stored per URL (store.h) */
    /* CORS answered by the edge (mesh.h); cors_origins "" = none (the
     * origin's own Access-Control-* headers pass through, Vary: Origin too) */
    char cors_origins[512];      /* "*" or origins separated by spaces/commas */
    char cors_methods[128];      /* allowed in preflights: "GET, HEAD, OPTIONS" */
    char cors_headers[256];      /* request headers allowed in preflights ("*" any) */
    char cors_expose[256];       /* Access-Control-Expose-Headers of actual responses */
    int64_t cors_max_age_s;      /* Access-Control-Max-Age of preflights (-1: none) */
    int mesh_validation;         /* MC_MESH_VALIDATION_* : glTF checks before storing (mesh.h) */
    unsigned compress;           /* MC_MESH_COMPRESS_* bits (mesh.h): encodings of compressible types; 0 off */
    int prefetch;                /* 1: a stored .gltf's buffers and images are filled too (prefetch.h) */
    uint64_t segment_threshold;  /* larger objects are stored as segments (segment.h); 0 = never.
                                  * [edge] segment_threshold unless a behavior sets its own */
} mc_cache_policy;

/* A parent tier ([parents] NAME = URL [health=URL]): another meshcdn-edge
 * whose viewer listener this node fetches misses from (tier.h). */
#define MC_MAX_PARENTS 16
typedef struct mc_parent_cfg {
    char name[64];               /* token-safe; the metric label */
    char base[512];              /* "http://HOST:PORT" (no path) */
    char health_url[512];        /* active check URL (its admin /healthz), "" = passive only */
} mc_parent_cfg;

#define MC_MESH_VALIDATION_OFF 0
#define MC_MESH_VALIDATION_PASS 1     /* invalid: served as fetched, not stored */
#define MC_MESH_VALIDATION_REFUSE 2   /* invalid: 502, not stored */

typedef struct mc_edge_config {
    char listen_host[256];
    int listen_port;
    int tls_enabled;             /* viewer HTTPS listener on tls_host:tls_port */
    char tls_host[256];
    int tls_port;
    char tls_cert[1024];         /* PEM chain, leaf first */
    char tls_key[1024];          /* PEM private key */
    char admin_host[256];
    int admin_port;
    int workers;                 /* event-loop threads */
    char node_id[64];            /* token-safe: [A-Za-z0-9._-] */
    char region[64];
    int log_level;               /* mc_log_level */
    char origin_base[512];       /* "http://127.0.0.1:9000" (no path) */
    char origin_path[512];       /* "/assets": prefix added to every viewer path */
    int origin_sign;             /* 1 = SigV4 (OAC style), 0 = none */
    char sign_region[64];
    mc_keys credentials;         /* exactly one pair when origin_sign (as loaded with this configuration) */
    char credentials_file[1024]; /* re-read by the signer when it changes */
    char session_token_file[1024];   /* "" = token (if any) from the credentials file */
    char origin_ca_file[1024];   /* HTTPS origins: CA bundle ("" = system default) */
    char origin_ca_dir[1024];    /* HTTPS origins: hashed CA directory ("" = system default) */
    int origin_insecure;         /* 1 = do not verify the origin's certificate (explicit only) */
    mc_keys admin_keys;          /* operators allowed to purge (empty: purge refused) */
    char control_url[512];       /* fleet invalidation log ("" = none) */
    mc_keys control_credentials; /* one pair when control_url is set */
    int64_t control_startup_wait_ms;
    int64_t control_poll_wait_ms;
    int64_t connect_timeout_ms;
    int64_t upstream_idle_ms;    /* abort an upstream that sends nothing this long */
    int64_t client_timeout_ms;   /* idle keep-alive and stalled-write limit */
    int64_t drain_timeout_ms;    /* SIGTERM: in-flight responses may take this long (0: stop at once) */
    uint64_t max_request_body;   /* viewer request bodies read up to this (413 beyond) */
    char secondary_base[512];    /* origin group: the secondary origin ("" = none) */
    char secondary_path[512];
    int failover_statuses[16];   /* primary statuses that move a GET to the secondary */
    int nfailover_statuses;
    mc_parent_cfg parents[MC_MAX_PARENTS];
    int nparents;
    int tier_fail_threshold;     /* consecutive failures that eject a parent */
    int64_t tier_eject_ms;       /* first ejection; doubles per repeated ejection */
    int64_t tier_eject_max_ms;   /* up to this */
    int64_t tier_health_interval_ms; /* active checks of health_url */
    int64_t tier_response_timeout_ms; /* a parent's response head within this, else the next */
    int64_t header_timeout_ms;   /* a viewer's request head, from its first byte (0: none) */
    int max_connections;         /* viewer connections open at once, node-wide */
    int max_connections_per_client; /* of one IPv4 address / IPv6 /64, node-wide (0: no cap) */
    int admin_max_connections;   /* admin listener connections open at once */
    char store_dir[1024];
    uint64_t store_size;
    uint64_t max_object_bytes;   /* larger objects are served but not stored */
    int max_object_auto;         /* max_object_bytes is the default, store_size / 4 */
    int verify_reads_always;     /* [store] verify_reads = always: checksum on every chunk read */
    uint64_t max_fill_buffer;    /* per client: pause the upstream beyond this backlog */
    int64_t stall_timeout_ms;    /* a viewer that keeps a fill paused this long is cut off */
    int prefetch_max_refs;       /* [prefetch] references fetched per .gltf */
    uint64_t prefetch_max_bytes; /* [prefetch] Content-Length budget per .gltf */
    int prefetch_concurrency;    /* [prefetch] prefetch fills at once, per worker */
    int prefetch_queue;          /* [prefetch] references waiting, per worker (more are dropped) */
    uint64_t prefetch_max_gltf;  /* [prefetch] larger .gltf bodies are not read */
    int prefetch_preconnect;     /* [prefetch] upstream connections opened when a .gltf fill starts (0: off) */
    int64_t preconnect_idle_ms;  /* [prefetch] a preconnected connection unused this long is closed */
    uint64_t segment_threshold;  /* the default behavior's (policy.segment_threshold); 0 = never */
    uint64_t segment_size;       /* bytes per segment, node-wide (restart-only): a multiple of MC_STORE_CHUNK_SIZE */
    mc_cache_policy policy;      /* the default behavior ([cache]) */
    mc_cache_policy behaviors[32];   /* [behavior] PREFIX = key=value ..., longest prefix first */
    int nbehaviors;
} mc_edge_config;

extern const mc_cfg_opt mc_edge_schema[];

/* Parse argv (+ --config FILE) into out. Returns MC_CONFIG_RUN, _HELP or
 * _VERSION, or a negative MC_E_* with err naming the file:line or flag. */
/* The behavior for a normalised path: the longest matching [behavior]
 * prefix, else the default policy. */
const mc_cache_policy *mc_edge_policy_for(const mc_edge_config *c, const char *path);

int mc_edge_config_load(mc_edge_config *out, int argc, char **argv, mc_err *err);

/* The SigV4 region an Amazon S3 host implies: "b.s3.eu-west-1.amazonaws.com",
 * "s3.eu-west-1.amazonaws.com", "b.s3-eu-west-1.amazonaws.com",
 * "b.s3.dualstack.eu-west-1.amazonaws.com" -> "eu-west-1";
 * "b.s3.amazonaws.com" -> "us-east-1". host may carry ":PORT". Returns 1
 * when out was set, 0 for a host that is not Amazon S3's. */
int mc_edge_region_from_host(const char *host, char *out, size_t n);
void mc_edge_config_free(mc_edge_config *c);

#endif
