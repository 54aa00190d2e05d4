/* etcdjson.h — request bodies and answers of etcd v3's JSON gateway (the
 * grpc-gateway in front of etcd's KV, Lease and Watch services, etcd 3.4:
 * POST /v3/kv/range, /v3/kv/txn, /v3/lease/grant, /v3/lease/keepalive,
 * /v3/watch). Pure functions, no I/O: origin/invlog_etcd.c sends what these
 * build and reads what they parse.
 *
 * Encoding rules of the gateway (checked against etcd 3.4.23): keys and
 * values are base64 (standard alphabet, padded); int64 fields (revisions,
 * versions, lease ids, counts) are JSON strings of decimal digits and are
 * left out when zero; booleans are left out when false. Errors come back as
 * {"error":TEXT,"message":TEXT,"code":GRPC_CODE} with a non-200 status.
 *
 * Ownership: json_t results are new references (the caller json_decref's);
 * mc_etcd_kv arrays from mc_etcd_kvs are freed with mc_etcd_kvs_free.
 * Threads: any (no shared state).
 * Errors: NULL (out of memory) for the builders; 0 or MC_E_INVAL (not the
 * gateway's shape, bad base64) / MC_E_NOMEM for the parsers.
 */
#ifndef MC_ETCDJSON_H
#define MC_ETCDJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "common/buf.h"

/* One key-value of a range answer or a watch event, decoded. key and value
 * are NUL-terminated copies (the NUL is not counted in vlen). */
typedef struct mc_etcd_kv {
    char *key;
    char *value;
    size_t vlen;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
} mc_etcd_kv;

/* base64 of n bytes at p, appended to out (0 or MC_E_NOMEM). */
int mc_etcd_b64(const void *p, size_t n, mc_buf *out);
/* Decode base64 s into out (reset first; NUL-terminated, len excludes it).
 * MC_E_INVAL when s is not padded base64. */
int mc_etcd_unb64(const char *s, mc_buf *out);
/* The range_end that selects every key starting with prefix (the prefix
 * with its last byte incremented, as etcdctl --prefix does), in out. */
int mc_etcd_prefix_end(const char *prefix, mc_buf *out);
/* A decimal int64 field: a JSON string of digits, a JSON integer, or absent
 * (0). */
int64_t mc_etcd_int(const json_t *o, const char *field);

/* {"key":K[,"range_end":E][,"limit":"N"][,"sort_order":"DESCEND","sort_target":"KEY"]} */
json_t *mc_etcd_range(const char *key, const char *range_end, int64_t limit, bool descend);
/* {"request_put":{"key":K,"value":V[,"lease":"ID"]}} (a txn operation) */
json_t *mc_etcd_op_put(const char *key, const char *value, int64_t lease);
/* {"request_range":RANGE} (a txn operation; takes range) */
json_t *mc_etcd_op_range(json_t *range);
/* {"request_delete_range":{"key":K[,"range_end":E]}} */
json_t *mc_etcd_op_delete(const char *key, const char *range_end);
/* A txn compare on key: target "MOD" (mod_revision), "VERSION" or "VALUE",
 * result "EQUAL", "LESS", "GREATER" or "NOT_EQUAL". For MOD/VERSION the
 * number is used (0 matches a missing key); for VALUE the string (a missing
 * key never matches). */
json_t *mc_etcd_cmp(const char *key, const char *target, const char *result, int64_t number,
                    const char *value);
/* {"compare":[..],"success":[..],"failure":[..]} (takes the three arrays;
 * NULL for an empty one). */
json_t *mc_etcd_txn(json_t *compare, json_t *success, json_t *failure);

/* The kvs of a range answer ({"kvs":[...]}; none when absent) into *out. */
int mc_etcd_kvs(const json_t *range_answer, mc_etcd_kv **out, size_t *n);
void mc_etcd_kvs_free(mc_etcd_kv *v, size_t n);
/* The range answer of a txn's i-th response (NULL when it is not one). */
const json_t *mc_etcd_txn_range(const json_t *txn_answer, size_t i);

#endif
