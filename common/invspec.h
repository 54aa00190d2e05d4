/* invspec.h — what an invalidation (purge) matches in an edge's store.
 *
 * common/inval.h parses and checks the JSON body that POST /purge, the
 * control API and the fleet log share; an mc_invspec is the same
 * invalidation made ready for matching: exact paths and prefixes (the '*'
 * removed) normalised the way the edge normalises request paths
 * (common/path.h), so "/a/../b.glb" purges "/b.glb"; a query after '?' is
 * kept as written. An exact path also covers the object's query-string
 * variants ("/a.glb?v=2") and Vary variants ("/a.glb\n..."). Surrogate keys
 * match the tokens of an object's Surrogate-Key response header
 * (space-separated, case-sensitive).
 *
 * Threads: pure functions. Ownership: an mc_invspec owns its strings
 * (mc_invspec_free).
 */
#ifndef MC_INVSPEC_H
#define MC_INVSPEC_H

#include <stddef.h>
#include "common/buf.h"
#include "common/err.h"


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

struct mc_inval;
struct mc_inval_error;
/* From a checked invalidation: MC_E_INVAL (err says which path cannot be
 * normalised, e.g. "%00") or MC_E_NOMEM. */
int mc_invspec_from_inval(const struct mc_inval *in, mc_invspec *out, mc_err *err);
/* mc_inval_parse, then mc_invspec_from_inval: one call for a body. e gets
 * the status, code and message to answer with. */
int mc_invspec_parse(const char *json, size_t len, mc_invspec *out, struct mc_inval_error *e);

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
