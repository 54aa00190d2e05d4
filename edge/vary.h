/* vary.h — secondary cache keys for responses with Vary (RFC 9111 4.1).
 *
 * A varying URL is stored as a marker at its primary key (store.h) plus one
 * object per variant at the hash of "PRIMARY\nVALUES", where VALUES are the
 * request's values of the Vary fields, normalised so that spellings of one
 * value share a variant: whitespace trimmed and collapsed, repeated fields
 * combined with ", ", lower case for fields whose values are case-insensitive
 * (Accept*, Origin), and Accept-Encoding's members sorted.
 * Pure functions; any thread.
 */
#ifndef MC_VARY_H
#define MC_VARY_H

#include <stddef.h>
#include "common/buf.h"
#include "edge/http1.h"

/* The Vary field of a "Name: value\r\n" block, names lower-cased and joined
 * with ", " into out. Returns 0 (no Vary), 1 (names in out) or -1 (Vary: *,
 * never served from the cache). */
int mc_vary_names(const char *hdrs, char *out, size_t outlen);

/* "\n" then "name=value" per name, tab-separated, from the request block
 * (the request's headers as "Name: value\r\n" lines). 0 or MC_E_NOMEM. */
int mc_vary_suffix(const char *names, const char *req_block, mc_buf *out);

/* The request's headers as a block, repeated names combined (RFC 9110 5.3). */
int mc_vary_req_block(const mc_http_req *req, mc_buf *out);

#endif
