/* client.c — signed requests to the control and admin APIs; see client.h. */
#include "ctl/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <jansson.h>
#include "common/sigv4.h"

#ifndef MESHCDN_VERSION
#define MESHCDN_VERSION "0.0.0"
#endif

#define CLIENT_MAGIC 0x4354434cu   /* "CTCL" */
#define CONNECT_TIMEOUT_MS 5000L

struct mc_ctl_client {
    uint32_t magic;
    CURL *easy;
    char *url;        /* as given */
    char *origin;     /* "http://host:port", what the path is appended to */
    char *prefix;     /* path prefix without trailing '/', "" for none */
    char *host;       /* the Host header value, signed */
    char *region;
    mc_keys key;      /* one pair, owned */
    const _Atomic int *abort_flag;   /* non-zero: cut the transfer short */
};

void mc_ctl_client_set_abort(mc_ctl_client *c, const _Atomic int *flag)
{
    c->abort_flag = flag;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    const mc_ctl_client *c = arg;
    (void)dt, (void)dn, (void)ut, (void)un;
    return c->abort_flag && atomic_load(c->abort_flag) ? 1 : 0;
}

/* ---- credentials ------------------------------------------------------------- */

static int env_pair(mc_keys *out, const char *ak, const char *secret, mc_err *err)
{
    for (const char *s = ak; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s > 0x7e || *s == '/')
            return mc_err_set(err, MC_E_INVAL, "$AWS_ACCESS_KEY_ID is not an access key id "
                              "(printable ASCII without spaces or '/')");
    for (const char *s = secret; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s > 0x7e)
            return mc_err_set(err, MC_E_INVAL, "$AWS_SECRET_ACCESS_KEY is not printable ASCII "
                              "without spaces");
    out->v = calloc(1, sizeof *out->v);
    if (!out->v)
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    out->n = 1;
    out->v[0].access_key = strdup(ak);
    out->v[0].secret = strdup(secret);
    if (!out->v[0].access_key || !out->v[0].secret) {
        mc_keys_free(out);
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    }
    return 0;
}

int mc_ctl_creds_load(mc_keys *out, const char *file, const char **source, mc_err *err)
{
    out->v = NULL;
    out->n = 0;
    *source = "--credentials";
    if (!file || !*file) {
        file = getenv("MESHCDN_CREDENTIALS");
        *source = "$MESHCDN_CREDENTIALS";
    }
    if (file && *file)
        return mc_keys_load_credentials(out, file, err);
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    *source = "$AWS_ACCESS_KEY_ID";
    if (ak && *ak && sk && *sk)
        return env_pair(out, ak, sk, err);
    if ((ak && *ak) != (sk && *sk))
        return mc_err_set(err, MC_E_NOTFOUND, "$%s is set but $%s is not",
                          ak && *ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                          ak && *ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    return mc_err_set(err, MC_E_NOTFOUND, "no credentials: give --credentials FILE (one "
                      "\"ACCESS_KEY_ID SECRET\" line, mode 0600), or set $MESHCDN_CREDENTIALS, "
                      "or $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY");
}

/* ---- the client --------------------------------------------------------------- */

void mc_ctl_client_free(mc_ctl_client *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    free(c->url);
    free(c->origin);
    free(c->prefix);
    free(c->host);
    free(c->region);
    mc_keys_free(&c->key);
    c->magic = 0;
    free(c);
}

const char *mc_ctl_client_url(const mc_ctl_client *c)
{
    return c->url;
}

/* Split the base URL with libcurl's own parser, so the Host we sign is the
 * host curl connects to. */
static int parse_base(mc_ctl_client *c, const char *url, mc_err *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    char *frag = NULL, *user = NULL;
    int rc = 0;
    if (!u)
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        rc = mc_err_set(err, MC_E_INVAL, "\"%.200s\" is not a URL (use http://HOST:PORT)", url);
        goto out;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) || !host ||
        !*host) {
        rc = mc_err_set(err, MC_E_INVAL, "\"%.200s\" is not an http:// or https:// URL", url);
        goto out;
    }
    if (query || frag || user) {
        rc = mc_err_set(err, MC_E_INVAL, "\"%.200s\": give the server's base URL only (no "
                        "query, fragment or user)", url);
        goto out;
    }
    /* curl keeps IPv6 literals in brackets; add them if a version does not */
    int v6 = strchr(host, ':') && host[0] != '[';
    size_t plen = path ? strlen(path) : 0;
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    size_t hlen = strlen(host) + (port ? strlen(port) : 0) + 4;
    c->host = malloc(hlen);
    c->origin = malloc(hlen + strlen(scheme) + 3);
    c->prefix = strndup(path ? path : "", plen);
    if (!c->host || !c->origin || !c->prefix) {
        rc = mc_err_set(err, MC_E_NOMEM, "out of memory");
        goto out;
    }
    snprintf(c->host, hlen, "%s%s%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "", port ? ":" : "",
             port ? port : "");
    snprintf(c->origin, hlen + strlen(scheme) + 3, "%s://%s", scheme, c->host);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(frag);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

int mc_ctl_client_new(mc_ctl_client **out, const char *base_url, const mc_key *key,
                      const char *region, mc_err *err)
{
    *out = NULL;
    mc_ctl_client *c = calloc(1, sizeof *c);
    if (!c)
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    c->magic = CLIENT_MAGIC;
    c->url = strdup(base_url);
    c->region = strdup(region);
    c->key.v = calloc(1, sizeof *c->key.v);
    if (c->key.v) {
        c->key.n = 1;
        c->key.v[0].access_key = strdup(key->access_key);
        c->key.v[0].secret = strdup(key->secret);
    }
    c->easy = curl_easy_init();
    if (!c->url || !c->region || !c->key.v || !c->key.v[0].access_key || !c->key.v[0].secret ||
        !c->easy) {
        mc_ctl_client_free(c);
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    }
    int rc = parse_base(c, base_url, err);
    if (rc < 0) {
        mc_ctl_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- one request ---------------------------------------------------------------- */

typedef struct sink {
    mc_buf *body;
    int too_big;
} sink;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t len = size * n;
    if (s->body->len + len > MC_CTL_MAX_REPLY) {
        s->too_big = 1;
        return 0;
    }
    return mc_buf_append(s->body, p, len) < 0 ? 0 : len;
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
    char line[4096];
    /* "Name:" with nothing after the colon tells curl to send no such header */
    snprintf(line, sizeof line, "%s:%s%s", name, value ? " " : "", value ? value : "");
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n)
        return MC_E_NOMEM;
    *l = n;
    return 0;
}

/* Host and X-Amz-Date signed, the payload hash is the body's SHA-256 (what
 * curl --aws-sigv4 does for a service other than s3). */
static int sign(mc_ctl_client *c, const char *method, const char *path, const char *query,
                const char *body, struct curl_slist **l)
{
    char amz_date[17];
    mc_sigv4_amz_date(time(NULL), amz_date);
    mc_sigv4_header h[2] = {{"Host", c->host}, {"X-Amz-Date", amz_date}};
    mc_sigv4_request rq = {method, path, query ? query : "", h, 2, body,
                           body ? strlen(body) : 0, NULL};
    mc_sigv4_params p = {c->key.v[0].access_key, c->key.v[0].secret, NULL, c->region,
                         "meshcdn", amz_date, 1};
    mc_sigv4_result res;
    memset(&res, 0, sizeof res);
    int rc = mc_sigv4_sign(&rq, &p, &res);
    if (rc == 0)
        rc = add_header(l, "Host", c->host);
    if (rc == 0)
        rc = add_header(l, "X-Amz-Date", amz_date);
    if (rc == 0)
        rc = add_header(l, "Authorization", res.authorization);
    mc_sigv4_result_free(&res);
    return rc;
}

int mc_ctl_request(mc_ctl_client *c, const char *method, const char *path, const char *query,
                   const char *body, long timeout_ms, mc_ctl_reply *r, mc_err *err)
{
    if (!c || c->magic != CLIENT_MAGIC)
        return mc_err_set(err, MC_E_INVAL, "no client");
    r->status = 0;
    r->body = (mc_buf)MC_BUF_INIT;
    mc_buf url = MC_BUF_INIT, wire = MC_BUF_INIT;
    struct curl_slist *hdrs = NULL;
    int rc = 0;
    if (mc_buf_printf(&wire, "%s%s", c->prefix, path) < 0 ||
        mc_buf_printf(&url, "%s%s%s%s", c->origin, wire.data, query && *query ? "?" : "",
                      query && *query ? query : "") < 0) {
        rc = mc_err_set(err, MC_E_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = sign(c, method, wire.data, query, body, &hdrs)) < 0) {
        rc = mc_err_set(err, rc, "cannot sign the request (%s)", mc_err_name(rc));
        goto out;
    }
    if (add_header(&hdrs, "Accept", "application/json") < 0 ||
        add_header(&hdrs, "Expect", NULL) < 0 ||   /* no 100-continue round trip */
        (body && add_header(&hdrs, "Content-Type", "application/json") < 0)) {
        rc = mc_err_set(err, MC_E_NOMEM, "out of memory");
        goto out;
    }
    sink s = {&r->body, 0};
    CURL *e = c->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url.data);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "meshcdnctl/" MESHCDN_VERSION);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    if (c->abort_flag) {
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, c);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    }
    CURLcode cc = curl_easy_perform(e);
    if (cc != CURLE_OK) {
        if (s.too_big)
            rc = mc_err_set(err, MC_E_TOOBIG, "%s: answer larger than %u MiB", c->url,
                            MC_CTL_MAX_REPLY >> 20);
        else
            rc = mc_err_set(err, MC_E_IO, "%s: %s", c->url, curl_easy_strerror(cc));
        mc_ctl_reply_free(r);
        goto out;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    if (!r->body.data && mc_buf_puts(&r->body, "") < 0) {
        rc = mc_err_set(err, MC_E_NOMEM, "out of memory");
        goto out;
    }
out:
    curl_slist_free_all(hdrs);
    mc_buf_free(&url);
    mc_buf_free(&wire);
    return rc;
}

void mc_ctl_reply_free(mc_ctl_reply *r)
{
    if (r)
        mc_buf_free(&r->body);
}

void mc_ctl_reply_describe(const mc_ctl_reply *r, char *out, size_t len)
{
    json_t *j = r->body.data ? json_loads(r->body.data, 0, NULL) : NULL;
    const char *code = json_is_object(j) ? json_string_value(json_object_get(j, "error")) : NULL;
    const char *msg = json_is_object(j) ? json_string_value(json_object_get(j, "message")) : NULL;
    if (code || msg) {
        snprintf(out, len, "%ld %s%s%s", r->status, code ? code : "", code && msg ? ": " : "",
                 msg ? msg : "");
    } else {
        /* not the spec's JSON (a proxy's page?): the first line, printable bytes only */
        char head[161];
        size_t n = 0;
        for (const char *p = r->body.data ? r->body.data : ""; *p && *p != '\n' && n < 160; p++)
            head[n++] = (unsigned char)*p >= 0x20 && *p != 0x7f ? *p : '?';
        head[n] = '\0';
        snprintf(out, len, "HTTP %ld%s%s", r->status, n ? ": " : "", head);
    }
    json_decref(j);
}
