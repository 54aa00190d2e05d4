/* tls.h — TLS for viewers: the server context behind the HTTPS listener.
 *
 * One mc_tls per node holds the current OpenSSL SSL_CTX: certificate chain
 * and key from [tls] cert / key, TLS 1.2 and 1.3 only, Mozilla's
 * "intermediate" cipher list for TLS 1.2 (AEAD with forward secrecy) and
 * OpenSSL's TLS 1.3 suites, ALPN "http/1.1" only (a client offering ALPN
 * without it is refused with no_application_protocol, RFC 7301 3.2),
 * renegotiation off, session resumption by tickets (stateless; TLS 1.2 and
 * 1.3) and by session id (a per-context server cache, TLS 1.2).
 *
 * Reload (SIGHUP): mc_tls_reload builds a new SSL_CTX from the files and
 * swaps it in; only handshakes that start afterwards use it. A connection
 * holds a reference to the SSL_CTX it was made from (OpenSSL refcounts it,
 * SSL_new/SSL_free), so an old context lives until its last connection
 * closes and open connections are never dropped. A reload that fails keeps
 * the old context. New ticket keys come with each context, so sessions from
 * before a reload fall back to a full handshake.
 *
 * Counts (stats.h): handshakes completed and resumed, handshakes refused
 * with a fatal alert, reloads.
 *
 * Threads: mc_tls_new / _reload / _free on the main thread; mc_tls_ssl_new
 * from any worker (a mutex guards the current-context pointer only).
 * Errors: 0 or a negative MC_E_* with err naming the file and OpenSSL's
 * reason; never exits.
 */
#ifndef MC_TLS_H
#define MC_TLS_H

#include <stdint.h>
#include <openssl/ssl.h>
#include "common/err.h"

#define MC_TLS_MAGIC 0x544c5343u

typedef struct mc_tls mc_tls;

/* Load cert (PEM chain: leaf first) and key (PEM); checks that they match. */
int mc_tls_new(mc_tls **out, const char *cert_file, const char *key_file, mc_err *err);
/* Re-read the same files into a new context and make it current. */
int mc_tls_reload(mc_tls *t, mc_err *err);
/* Free the holder and its reference to the current context; connections
 * still open keep theirs. */
void mc_tls_free(mc_tls *t);

/* A server-side SSL for one accepted connection, from the current context
 * (caller owns it; a bufferevent_openssl with BEV_OPT_CLOSE_ON_FREE frees
 * it). NULL when out of memory. */
SSL *mc_tls_ssl_new(mc_tls *t);

/* Reloads done so far (for logs and tests). */
uint64_t mc_tls_generation(const mc_tls *t);

#endif
