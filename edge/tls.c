/* tls.c — see tls.h. */
#include <assert.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "edge/stats.h"
#include "edge/tls.h"

/* Mozilla "intermediate" (server side, TLS 1.2 part; TLS 1.3 suites are
 * OpenSSL's defaults, which are the same three AEADs Mozilla lists). */
#define TLS12_CIPHERS                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"               \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"               \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:P-256:P-384"
#define SESSION_CACHE_SIZE 20480   /* entries, per context (OpenSSL's default) */
#define SESSION_TIMEOUT_S 7200

struct mc_tls {
    uint32_t magic;
    pthread_mutex_t mu;        /* guards ctx (the pointer; SSL_CTX is refcounted) */
    SSL_CTX *ctx;
    char *cert_file, *key_file;
    _Atomic uint64_t generation;
};

/* OpenSSL's error queue as one line, and the queue cleared. */
static void ssl_reason(char *out, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, out, n);
    else
        snprintf(out, n, "unknown error");
    ERR_clear_error();
}

/* RFC 7301 3.2: we speak http/1.1 only; a client that offers ALPN without it
 * gets a fatal no_application_protocol alert, one that offers none proceeds. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    (void)ssl, (void)arg;
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    if (SSL_select_next_proto(&sel, &sellen, h11, sizeof h11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    *outlen = sellen;
    return SSL_TLSEXT_ERR_OK;
}

/* An ex_data slot marking a connection whose handshake was counted: TLS 1.3
 * servers report HANDSHAKE_DONE again after each NewSessionTicket. */
static int g_counted_idx = -1;
static pthread_once_t g_idx_once = PTHREAD_ONCE_INIT;

static void make_idx(void)
{
    g_counted_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void on_info(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_HANDSHAKE_DONE) && g_counted_idx >= 0 && !SSL_get_ex_data(ssl, g_counted_idx)) {
        SSL_set_ex_data((SSL *)ssl, g_counted_idx, (void *)1);
        mc_counter_add(&mc_stats_global.tls_handshakes, 1);
        if (SSL_session_reused(ssl))
            mc_counter_add(&mc_stats_global.tls_resumed, 1);
    } else if ((where & SSL_CB_WRITE_ALERT) && (ret >> 8) == SSL3_AL_FATAL && !SSL_is_init_finished(ssl)) {
        mc_counter_add(&mc_stats_global.tls_failures, 1);
        mc_log_debug("tls", "msg=\"handshake refused\" alert=\"%s\"", SSL_alert_desc_string_long(ret));
    }
}

static SSL_CTX *ctx_build(const char *cert_file, const char *key_file, mc_err *err)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_reason(why, sizeof why);
        mc_err_set(err, MC_E_NOMEM, "tls: cannot create a context: %s", why);
        return NULL;
    }
    static const unsigned char sid_ctx[] = "meshcdn-edge";
    int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) &&
             SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) &&
             SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) &&
             SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) &&
             SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    if (!ok) {
        ssl_reason(why, sizeof why);
        mc_err_set(err, MC_E_INVAL, "tls: cannot set protocol versions or ciphers: %s", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Mozilla intermediate: the client's cipher order (all are strong);
     * no renegotiation (a DoS lever with nothing for HTTP/1.1 to gain) */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, SESSION_TIMEOUT_S);
    /* a partial SSL_write may be retried from a moved buffer: the evbuffer
     * behind a bufferevent does move its chunks */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    pthread_once(&g_idx_once, make_idx);
    SSL_CTX_set_info_callback(ctx, on_info);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_reason(why, sizeof why);
        mc_err_set(err, MC_E_INVAL, "tls.cert: %s: cannot load a PEM certificate chain: %s", cert_file, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_reason(why, sizeof why);
        mc_err_set(err, MC_E_INVAL, "tls.key: %s: cannot load a PEM private key: %s", key_file, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(why, sizeof why);
        mc_err_set(err, MC_E_INVAL, "tls.key: %s does not match the certificate in %s: %s", key_file,
                   cert_file, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int mc_tls_new(mc_tls **out, const char *cert_file, const char *key_file, mc_err *err)
{
    *out = NULL;
    mc_tls *t = calloc(1, sizeof *t);
    if (!t)
        return mc_err_set(err, MC_E_NOMEM, "tls: out of memory");
    t->magic = MC_TLS_MAGIC;
    pthread_mutex_init(&t->mu, NULL);
    t->cert_file = strdup(cert_file);
    t->key_file = strdup(key_file);
    if (!t->cert_file || !t->key_file) {
        mc_tls_free(t);
        return mc_err_set(err, MC_E_NOMEM, "tls: out of memory");
    }
    t->ctx = ctx_build(cert_file, key_file, err);
    if (!t->ctx) {
        mc_tls_free(t);
        return MC_E_INVAL;
    }
    *out = t;
    return 0;
}

int mc_tls_reload(mc_tls *t, mc_err *err)
{
    assert(t && t->magic == MC_TLS_MAGIC);
    SSL_CTX *fresh = ctx_build(t->cert_file, t->key_file, err);
    if (!fresh)
        return MC_E_INVAL;
    pthread_mutex_lock(&t->mu);
    SSL_CTX *old = t->ctx;
    t->ctx = fresh;
    pthread_mutex_unlock(&t->mu);
    /* drops our reference only: connections made from old hold their own */
    SSL_CTX_free(old);
    atomic_fetch_add_explicit(&t->generation, 1, memory_order_relaxed);
    mc_counter_add(&mc_stats_global.tls_reloads, 1);
    return 0;
}

void mc_tls_free(mc_tls *t)
{
    if (!t)
        return;
    assert(t->magic == MC_TLS_MAGIC);
    SSL_CTX_free(t->ctx);
    free(t->cert_file);
    free(t->key_file);
    pthread_mutex_destroy(&t->mu);
    t->magic = 0;
    free(t);
}

SSL *mc_tls_ssl_new(mc_tls *t)
{
    assert(t && t->magic == MC_TLS_MAGIC);
    pthread_mutex_lock(&t->mu);
    SSL *ssl = SSL_new(t->ctx);   /* takes a reference to the context */
    pthread_mutex_unlock(&t->mu);
    if (!ssl)
        ERR_clear_error();
    return ssl;
}

uint64_t mc_tls_generation(const mc_tls *t)
{
    return atomic_load_explicit(&((mc_tls *)t)->generation, memory_order_relaxed);
}
