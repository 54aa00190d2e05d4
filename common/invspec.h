/* invspec.h — what an invalidation (purge) names, and what it matches.
 *
 * The same JSON body serves the edge's POST /purge, the control API's
 * POST /invalidations and the entries of the fleet log:
 *
 *   {"paths": ["/a.glb", "/models/chair-*"], "surrogate_keys": ["chair"],
 *    "all": false, "soft": false}
 *
 * A path ending in '*' is a prefix (the '*' only as the last character);
 * other paths are exact and also cover the object's query-string variants
 * ("/a.glb?v=2") and Vary variants. Paths are normalised the way the edge
 * normalises request paths (common/path.h), so "/a/../b.glb" purges "/b.glb";
 * a query after '?' is kept as written. Surrogate keys match the tokens of an
 * object's Surrogate-Key response header (space-separated, case-sensitive).
 *
 * Validation (mc_invspec_parse): unknown fields, wrong types, empty
 * invalidations, paths without a leading '/', a '*' anywhere but last,
 * strings outside 1..1024 bytes, keys with spaces or controls, and more than
 * MC_INVSPEC_MAX_ITEMS paths + keys are refused with a message naming what
 * was wrong (err->msg) and the error code in *code ("MalformedJSON",
 * "UnknownField", "EmptyInvalidation", "InvalidPath", "InvalidSurrogateKey",
 * "TooManyItems").
 *
 * Threads: pure functions. Ownership: an mc_invspec owns its strings
 * (mc_invspec_free).
 */
#ifndef MC_INVSPEC_H
#define MC_INVSPEC_H

#include <stddef.h>
#include "common/buf.h"
#include "common/err.h"

#define MC_INVSPEC_MAX_ITEMS 3000
#define MC_INVSPEC_MAX_STRING 1024

typedef struct mc_invspec {
    char **paths;          /* exact key strings (normalised path [+ "?" query]) */
    size_t npaths;
    char **prefixes;       /* normalised, without the '*' */
    size_t nprefixes;
    char **tags;           /* surrogate keys */
    size_t ntags;
    int all;
    int soft;
} mc_invspec;

/* Parse and validate a JSON body. Returns 0, MC_E_INVAL (err says why,
 * *code names the error for the answer), or MC_E_NOMEM. */
int mc_invspec_parse(const char *json, size_t len, mc_invspec *out, const char **code, mc_err *err);

/* The same from an already parsed jansson object (a log entry). */
struct json_t;
int mc_invspec_from_json(struct json_t *obj, int allow_extra, mc_invspec *out, const char **code,
                         mc_err *err);

/* Canonical JSON of spec (prefixes written back with their '*'). */
int mc_invspec_to_json(const mc_invspec *spec, mc_buf *out);

void mc_invspec_free(mc_invspec *spec);
int mc_invspec_copy(const mc_invspec *src, mc_invspec *dst);

/* Number of paths + prefixes + keys (+1 for all), for logs. */
size_t mc_invspec_items(const mc_invspec *spec);

/* Does spec name the object stored under keystr whose stored headers are
 * hdrs ("Name: value\r\n" lines; may be NULL)? */
int mc_invspec_matches(const mc_invspec *spec, const char *keystr, const char *hdrs);

/* Does an exact purge path p cover keystr (p itself, or p followed by '?'
 * or '\n')? */
int mc_invspec_path_covers(const char *p, const char *keystr);

/* Call fn for each Surrogate-Key token in hdrs (every such header line).
 * Stops and returns fn's value when it is non-zero; else 0. */
int mc_surrogate_keys_each(const char *hdrs, int (*fn)(void *ud, const char *key, size_t len), void *ud);

#endif
