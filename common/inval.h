/* inval.h — one invalidation (what to take off the caches) and its JSON body.
 *
 * The same body serves the edge admin API (POST /purge) and the origin's
 * Control API (POST /invalidations):
 *
 *   {"paths": ["/a.glb", PREFIX], "surrogate_keys": ["chair"],
 *    "all": false, "soft": false}
 *
 * where a PREFIX path ends in one '*' ("/models/chair/" then '*') and covers
 * every path that starts with what comes before it.
 *
 * mc_inval_parse enforces the shared rules and says what was wrong in words
 * a person can act on (the exact texts are pinned by tests/unit/test_inval.c):
 *   400 MalformedJSON      not JSON, duplicate names, or not an object
 *   400 UnknownField       a name other than the four above
 *   400 EmptyInvalidation  no path, no surrogate key and not "all": true
 *   400 InvalidPath        a path not starting with '/', '*' anywhere but
 *                          last, a control byte, or over 1024 bytes
 *   400 BadRequest         wrong types; a surrogate key empty, over 1024
 *                          bytes or with a space/control byte; more than
 *                          3000 paths + keys in all
 * Every field is optional and null counts as absent. An exact path also
 * covers its query-string and Vary variants (the caches' business).
 *
 * Ownership: an mc_inval owns its strings (mc_inval_free releases them, not
 * the struct). Threads: pure functions. Errors: 0, MC_E_INVAL with the
 * mc_inval_error filled, or MC_E_NOMEM (error 500 InternalError).
 */
#ifndef MC_INVAL_H
#define MC_INVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_INVAL_MAX_ITEMS 3000      /* paths + surrogate keys in one invalidation */
#define MC_INVAL_MAX_STRING 1024     /* bytes in one path or key */

typedef struct mc_inval {
    uint64_t seq;          /* position in the fleet log (0 outside it) */
    int64_t created_s;     /* unix seconds (0 outside the log: "now") */
    char **paths;          /* exact "/a.glb", or a prefix ending in one star */
    size_t npaths;
    char **keys;           /* surrogate keys */
    size_t nkeys;
    bool all;
    bool soft;             /* mark stale instead of deleting */
} mc_inval;

void mc_inval_free(mc_inval *in);
/* Append a copy of path / key (no checks: for builders and tests). */
int mc_inval_add_path(mc_inval *in, const char *path);
int mc_inval_add_key(mc_inval *in, const char *key);

/* Why a body was refused: HTTP status, error code, message for a person. */
typedef struct mc_inval_error {
    int status;              /* 400 */
    const char *code;        /* "InvalidPath" (static) */
    char message[320];
} mc_inval_error;

/* Parse and check an invalidation body; fills *out or *e. */
int mc_inval_parse(const char *body, size_t len, mc_inval *out, mc_inval_error *e);

/* For other small JSON bodies with the same error style (POST /ack, ...):
 * load body as an object whose names are all in allowed (NULL-terminated);
 * expected lists them for the UnknownField message ("node, seq"). The
 * caller json_decref()s *out. */
struct json_t;
int mc_inval_load_object(const char *body, size_t len, const char *const *allowed,
                         const char *expected, struct json_t **out, mc_inval_error *e);
/* The JSON array of strings for a body's "paths" / "surrogate_keys" (the
 * inverse of what the parser takes); NULL when out of memory. */
struct json_t *mc_inval_strings_json(const char *const *v, size_t n);
/* Fill e (status, static code, printf message); returns MC_E_INVAL. */
int mc_inval_error_set(mc_inval_error *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
