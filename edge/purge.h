/* purge.h — taking content off this node: the admin API's POST /purge.
 *
 *   POST /purge   {"paths": [...], "surrogate_keys": [...], "all": bool, "soft": bool}
 *   200 {"purged": N, "soft": false}      N objects removed (or marked stale)
 *   400 {"error": "InvalidPath", "message": "..."}   bad body (common/invspec.h)
 *   401 {"error": "MissingAuthentication", ...}      unsigned
 *   403 {"error": "SignatureDoesNotMatch" | "InvalidAccessKeyId" |
 *                 "RequestTimeTooSkewed" | "AccessDenied", ...}
 *   500 {"error": "PurgeFailed", ...}                the store could not apply it
 *
 * Requests are SigV4-signed with an operator key from [admin] keys (service
 * "meshcdn", any region, ±15 minutes), so `curl --aws-sigv4
 * "aws:amz:us-east-1:meshcdn" --user ID:SECRET` works. With no keys file
 * configured every purge is refused (403): an open purge endpoint would let
 * anyone empty the cache.
 *
 * Semantics (edge/store.h mc_store_purge): hard purges delete, soft purges
 * mark objects invalidated (revalidated before the next use, still usable
 * for stale-if-error); a fill in flight that began before the purge never
 * publishes the purged version, and later viewers do not join it. The
 * answer is sent once the store has committed the purge.
 *
 * Threads: the admin listener's loop (main thread); the store's completion
 * comes back to it through an event made active from the writer thread.
 */
#ifndef MC_PURGE_H
#define MC_PURGE_H

#include "common/keys.h"
#include "edge/http1.h"
#include "edge/listener.h"

/* Verify a request's SigV4 signature (service "meshcdn") against keys.
 * Returns 0, or answers the request itself (401/403/400 JSON) and returns
 * the MC_E_AUTH_* code. keys may be empty: every request is refused. */
int mc_purge_authorize(mc_http_conn *c, const mc_http_req *req, const mc_keys *keys);

/* Answer a JSON error {"error": code, "message": msg}. */
void mc_purge_json_error(mc_http_conn *c, int status, const char *code, const char *msg);

/* Handle POST /purge on the admin listener of node (base: the admin loop). */
void mc_purge_handle(mc_http_conn *c, mc_http_req *req, mc_node *node, struct event_base *base);

#endif
