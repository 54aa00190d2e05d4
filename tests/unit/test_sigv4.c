/* test_sigv4.c — the SigV4 signer and verifier against
 * $MESHCDN_DATA/sigv4/vectors.json (see tests/data/sigv4/README.md), then
 * every way a request can be tampered with, skewed, expired or malformed. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "common/err.h"
#include "common/sigv4.h"

#define MIN_CASES 33
#define MAXH 16

/* One case of vectors.json; strings borrowed from the loaded JSON. */
typedef struct vcase {
    const char *name, *service, *region, *ak, *sk, *amz_date, *token;
    const char *method, *path, *query, *body;
    mc_sigv4_header h[MAXH];
    size_t nh;
    int expires;                     /* > 0: presigned case */
    const char *e_creq, *e_sts, *e_sig, *e_signed, *e_auth, *e_pq;
} vcase;

static json_t *g_json;
static vcase *g_cases;
static size_t g_ncases;

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int load_case(json_t *o, vcase *c)
{
    json_t *hs = json_object_get(o, "headers"), *e = json_object_get(o, "expected");
    json_t *ps = json_object_get(o, "presign");
    memset(c, 0, sizeof *c);
    c->name = jstr(o, "name");
    c->service = jstr(o, "service");
    c->region = jstr(o, "region");
    c->ak = jstr(o, "access_key");
    c->sk = jstr(o, "secret_key");
    c->amz_date = jstr(o, "amz_date");
    c->token = jstr(o, "session_token");
    c->method = jstr(o, "method");
    c->path = jstr(o, "path");
    c->query = jstr(o, "query");
    c->body = jstr(o, "body");
    if (!c->query)
        c->query = "";
    if (ps)
        c->expires = (int)json_integer_value(json_object_get(ps, "expires"));
    if (!json_is_array(hs) || json_array_size(hs) > MAXH || !json_is_object(e))
        return -1;
    for (size_t i = 0; i < json_array_size(hs); i++) {
        json_t *p = json_array_get(hs, i);
        c->h[i].name = json_string_value(json_array_get(p, 0));
        c->h[i].value = json_string_value(json_array_get(p, 1));
        if (!c->h[i].name || !c->h[i].value)
            return -1;
    }
    c->nh = json_array_size(hs);
    c->e_creq = jstr(e, "canonical_request");
    c->e_sts = jstr(e, "string_to_sign");
    c->e_sig = jstr(e, "signature");
    c->e_signed = jstr(e, "signed_headers");
    c->e_auth = jstr(e, "authorization");
    c->e_pq = jstr(e, "presigned_query");
    /* The payload_hash field, when given, is always sent as the
     * x-amz-content-sha256 header: the signer must find it there. */
    const char *ph = jstr(o, "payload_hash");
    int ph_in_header = ph == NULL;
    for (size_t i = 0; i < c->nh; i++)
        if (ph && strcasecmp(c->h[i].name, "x-amz-content-sha256") == 0 &&
            strcmp(c->h[i].value, ph) == 0)
            ph_in_header = 1;
    if (!c->name || !c->service || !c->region || !c->ak || !c->sk || !c->amz_date ||
        !c->method || !c->path || !c->e_creq || !c->e_sts || !c->e_sig || !c->e_signed ||
        !(c->expires > 0 ? c->e_pq != NULL : c->e_auth != NULL) || !ph_in_header)
        return -1;
    return 0;
}

static int group_setup(void **state)
{
    const char *dir = getenv("MESHCDN_DATA");
    char path[4096];
    json_error_t jerr;
    (void)state;
    if (!dir) {
        fprintf(stderr, "MESHCDN_DATA is not set (ctest sets it to tests/data)\n");
        return -1;
    }
    snprintf(path, sizeof path, "%s/sigv4/vectors.json", dir);
    if (!(g_json = json_load_file(path, 0, &jerr))) {
        fprintf(stderr, "%s:%d: %s\n", path, jerr.line, jerr.text);
        return -1;
    }
    json_t *cases = json_object_get(g_json, "cases");
    g_ncases = json_array_size(cases);
    g_cases = calloc(g_ncases ? g_ncases : 1, sizeof *g_cases);
    if (!g_cases)
        return -1;
    for (size_t i = 0; i < g_ncases; i++)
        if (load_case(json_array_get(cases, i), &g_cases[i]) < 0) {
            fprintf(stderr, "%s: case %zu is incomplete\n", path, i);
            return -1;
        }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(g_cases);
    json_decref(g_json);
    return 0;
}

static int is_s3(const vcase *c) { return strcmp(c->service, "s3") == 0; }

static mc_sigv4_params case_params(const vcase *c)
{
    mc_sigv4_params p = {c->ak, c->sk, c->token, c->region, c->service, c->amz_date,
                         !is_s3(c)};
    return p;
}

static mc_sigv4_request case_request(const vcase *c)
{
    mc_sigv4_request r = {c->method, c->path, c->query, c->h, c->nh, c->body,
                          c->body ? strlen(c->body) : 0, NULL};
    return r;
}

static int sign_case(const vcase *c, mc_sigv4_result *out)
{
    mc_sigv4_request r = case_request(c);
    mc_sigv4_params p = case_params(c);
    return c->expires > 0 ? mc_sigv4_presign(&r, &p, c->expires, out)
                          : mc_sigv4_sign(&r, &p, out);
}

/* ---- secrets ---------------------------------------------------------- */

typedef struct keyring {
    const char *ak;
    const char *s[2];
    int n;
} keyring;

static int ring_fn(void *ud, const char *ak, const char *out[2])
{
    const keyring *k = ud;
    if (strcmp(ak, k->ak) != 0)
        return 0;
    for (int i = 0; i < k->n; i++)
        out[i] = k->s[i];
    return k->n;
}

/* ---- a mutable request to verify -------------------------------------- */

typedef struct vreq {
    char *method, *path, *query, *body;
    char *hname[MAXH + 2], *hval[MAXH + 2];
    size_t nh;
    mc_sigv4_header h[MAXH + 2];
    mc_sigv4_request r;
    keyring ring;
    mc_sigv4_verify_opts o;
    time_t date;
} vreq;

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    assert_non_null(d);
    return d;
}

static void vreq_add_header(vreq *q, const char *name, const char *value)
{
    assert_true(q->nh < MAXH + 2);
    q->hname[q->nh] = xstrdup(name);
    q->hval[q->nh] = xstrdup(value);
    q->nh++;
}

/* The signed request as a server would receive it. */
static void vreq_init(vreq *q, const vcase *c, const mc_sigv4_result *res)
{
    memset(q, 0, sizeof *q);
    q->method = xstrdup(c->method);
    q->path = xstrdup(c->path);
    q->query = xstrdup(c->expires > 0 ? res->presigned_query : c->query);
    q->body = c->body && *c->body ? xstrdup(c->body) : NULL;
    for (size_t i = 0; i < c->nh; i++)
        vreq_add_header(q, c->h[i].name, c->h[i].value);
    if (c->expires <= 0)
        vreq_add_header(q, "Authorization", res->authorization);
    q->ring.ak = c->ak;
    q->ring.s[0] = c->sk;
    q->ring.n = 1;
    assert_int_equal(mc_sigv4_parse_amz_date(c->amz_date, &q->date), 0);
    q->o.service = c->service;
    q->o.region = c->region;
    q->o.normalize_path = !is_s3(c);
    q->o.now = q->date;
    q->o.max_skew_s = 900;
    q->o.secret = ring_fn;
    q->o.secret_ud = &q->ring;
}

static void vreq_free(vreq *q)
{
    free(q->method);
    free(q->path);
    free(q->query);
    free(q->body);
    for (size_t i = 0; i < q->nh; i++) {
        free(q->hname[i]);
        free(q->hval[i]);
    }
}

static int vreq_verify(vreq *q, mc_sigv4_verdict *v)
{
    for (size_t i = 0; i < q->nh; i++) {
        q->h[i].name = q->hname[i];
        q->h[i].value = q->hval[i];
    }
    mc_sigv4_request r = {q->method, q->path, q->query, q->h, q->nh, q->body,
                          q->body ? strlen(q->body) : 0, NULL};
    q->r = r;
    return mc_sigv4_verify(&q->r, &q->o, v);
}

static int header_index(const vreq *q, const char *name)
{
    for (size_t i = 0; i < q->nh; i++)
        if (strcasecmp(q->hname[i], name) == 0)
            return (int)i;
    return -1;
}

/* Change the last letter or digit of s that is not part of a %XX escape
 * (a changed escape could turn invalid, or only change case). Returns 0 when
 * s has none. */
static int flip_last_alnum(char *s)
{
    size_t n = strlen(s);
    for (size_t i = n; i-- > 0;) {
        char ch = s[i];
        int in_escape = (i >= 1 && s[i - 1] == '%') || (i >= 2 && s[i - 2] == '%');
        if (in_escape || !isalnum((unsigned char)ch))
            continue;
        if (ch >= '0' && ch <= '9')
            s[i] = (char)('0' + (ch - '0' + 1) % 10);
        else if (ch >= 'a' && ch <= 'z')
            s[i] = (char)('a' + (ch - 'a' + 1) % 26);
        else
            s[i] = (char)('A' + (ch - 'A' + 1) % 26);
        return 1;
    }
    return 0;
}

static void append(char **s, const char *tail)
{
    size_t a = strlen(*s), b = strlen(tail);
    char *p = realloc(*s, a + b + 1);
    assert_non_null(p);
    memcpy(p + a, tail, b + 1);
    *s = p;
}

/* ---- the vectors: signer --------------------------------------------- */

static int field_eq(const vcase *c, const char *field, const char *got, const char *want)
{
    if (got && strcmp(got, want) == 0)
        return 1;
    fprintf(stderr, "%s: %s differs\n  got:  %s\n  want: %s\n", c->name, field,
            got ? got : "(null)", want);
    return 0;
}

static void test_vectors_sign(void **state)
{
    size_t bad = 0, presigned = 0;
    (void)state;
    assert_true(g_ncases >= MIN_CASES);
    for (size_t i = 0; i < g_ncases; i++) {
        const vcase *c = &g_cases[i];
        mc_sigv4_result res;
        int rc = sign_case(c, &res);
        if (rc != 0) {
            fprintf(stderr, "%s: sign returned %s\n", c->name, mc_err_name(rc));
            bad++;
            continue;
        }
        int ok = field_eq(c, "canonical_request", res.canonical_request, c->e_creq);
        ok &= field_eq(c, "string_to_sign", res.string_to_sign, c->e_sts);
        ok &= field_eq(c, "signature", res.signature, c->e_sig);
        ok &= field_eq(c, "signed_headers", res.signed_headers, c->e_signed);
        if (c->expires > 0) {
            ok &= field_eq(c, "presigned_query", res.presigned_query, c->e_pq);
            presigned++;
        } else {
            ok &= field_eq(c, "authorization", res.authorization, c->e_auth);
            ok &= res.presigned_query == NULL;
        }
        bad += !ok;
        mc_sigv4_result_free(&res);
    }
    fprintf(stderr, "signed %zu cases (%zu presigned), %zu differ\n", g_ncases, presigned, bad);
    assert_int_equal(bad, 0);
    assert_true(presigned >= 3);
}

/* ---- the vectors: verifier ------------------------------------------- */

static void test_vectors_verify(void **state)
{
    (void)state;
    assert_true(g_ncases >= MIN_CASES);
    for (size_t i = 0; i < g_ncases; i++) {
        const vcase *c = &g_cases[i];
        mc_sigv4_result res;
        mc_sigv4_verdict v;
        vreq q;
        assert_int_equal(sign_case(c, &res), 0);
        vreq_init(&q, c, &res);
        int rc = vreq_verify(&q, &v);
        if (rc != 0)
            fprintf(stderr, "%s: verify %s: %s\n", c->name, mc_err_name(rc), v.detail);
        assert_int_equal(rc, 0);
        assert_string_equal(v.access_key, c->ak);
        assert_int_equal(v.presigned, c->expires > 0);
        /* A header the signer did not sign may be added in transit. */
        vreq_add_header(&q, "X-Forwarded-For", "192.0.2.1");
        assert_int_equal(vreq_verify(&q, &v), 0);
        vreq_free(&q);
        mc_sigv4_result_free(&res);
    }
}

/* Paths whose flipped byte sits in a segment that ".." removes: the
 * normalised form, and so the signature, is unchanged (non-S3 only). */
static int flip_absorbed(const vcase *c)
{
    return strcmp(c->name, "get-relative-relative") == 0;
}

typedef struct tamper_stats {
    const vcase *c;
    const mc_sigv4_result *res;
    int checks;
} tamper_stats;

static void expect_code(tamper_stats *t, vreq *q, const char *what, int want)
{
    mc_sigv4_verdict v;
    int rc = vreq_verify(q, &v);
    if (rc != want)
        fprintf(stderr, "%s: %s: got %s (%s), want %s\n", t->c->name, what, mc_err_name(rc),
                v.detail, mc_err_name(want));
    assert_int_equal(rc, want);
    if (want != 0) {
        assert_true(v.detail[0] != '\0');
        /* Never the signature or a secret in what goes to logs. */
        assert_null(strstr(v.detail, t->res->signature));
        assert_null(strstr(v.detail, t->c->sk));
    }
    t->checks++;
}

/* Set one character of the date (header or X-Amz-Date parameter). */
static void set_date_char(vreq *q, const vcase *c, size_t pos, char ch)
{
    if (c->expires > 0) {
        char *d = strstr(q->query, "X-Amz-Date=");
        assert_non_null(d);
        d[strlen("X-Amz-Date=") + pos] = ch;
    } else {
        int i = header_index(q, "x-amz-date");
        assert_true(i >= 0);
        q->hval[i][pos] = ch;
    }
}

static char next_digit(char d) { return (char)('0' + (d - '0' + 1) % 10); }

static void tamper_case(tamper_stats *t)
{
    const vcase *c = t->c;
    const mc_sigv4_result *res = t->res;
    vreq q;

#define FRESH() (vreq_free(&q), vreq_init(&q, c, res))
    vreq_init(&q, c, res);
    expect_code(t, &q, "untouched", 0);

    FRESH();
    assert_true(flip_last_alnum(q.method));
    expect_code(t, &q, "method", MC_E_AUTH_MISMATCH);

    FRESH();
    if (!flip_last_alnum(q.path))
        append(&q.path, "a");
    expect_code(t, &q, "path byte", flip_absorbed(c) ? 0 : MC_E_AUTH_MISMATCH);

    FRESH();
    append(&q.path, "x");
    expect_code(t, &q, "path appended", MC_E_AUTH_MISMATCH);

    FRESH();
    if (c->expires > 0) {
        char *e = strstr(q.query, "X-Amz-Expires=");
        assert_non_null(e);
        char *end = strchr(e, '&');
        assert_non_null(end);
        end[-1] = next_digit(end[-1]);
        expect_code(t, &q, "X-Amz-Expires", MC_E_AUTH_MISMATCH);
        FRESH();
        char *k = strstr(q.query, "X-Amz-Credential=");
        assert_non_null(k);
        k[strlen("X-Amz-Credential=")] ^= 0x01;
        expect_code(t, &q, "credential access key", MC_E_AUTH_UNKNOWN_KEY);
    } else if (*c->query) {
        assert_true(flip_last_alnum(q.query));
        expect_code(t, &q, "query value", MC_E_AUTH_MISMATCH);
    } else {
        append(&q.query, "x=1");
        expect_code(t, &q, "query added", MC_E_AUTH_MISMATCH);
    }

    for (size_t i = 0; i < c->nh; i++) {
        if (strcasecmp(c->h[i].name, "x-amz-date") == 0)
            continue;
        FRESH();
        assert_true(flip_last_alnum(q.hval[i]));
        expect_code(t, &q, c->h[i].name, MC_E_AUTH_MISMATCH);
    }

    /* The date: a second later only breaks the signature; another day no
     * longer matches the credential scope; an hour later is out of the
     * window; a letter where a digit belongs is unparsable. */
    FRESH();
    set_date_char(&q, c, 14, next_digit(c->amz_date[14]));
    expect_code(t, &q, "date second", MC_E_AUTH_MISMATCH);
    FRESH();
    set_date_char(&q, c, 7, c->amz_date[7] == '1' ? '2' : '1');
    expect_code(t, &q, "date day", MC_E_AUTH_MALFORMED);
    FRESH();
    assert_true(c->amz_date[10] < '9' && c->amz_date[9] < '2');
    set_date_char(&q, c, 10, next_digit(c->amz_date[10]));
    expect_code(t, &q, "date hour", MC_E_AUTH_SKEW);
    FRESH();
    set_date_char(&q, c, 12, 'X');
    expect_code(t, &q, "date garbled", MC_E_AUTH_MALFORMED);

    if (c->body && *c->body) {
        FRESH();
        assert_true(flip_last_alnum(q.body));
        expect_code(t, &q, "body", MC_E_AUTH_MISMATCH);
    } else {
        /* A body that was never signed: fine when the payload is unsigned
         * (presigned, or UNSIGNED-PAYLOAD), a mismatch when it was hashed. */
        FRESH();
        q.body = xstrdup("x");
        int h = header_index(&q, "x-amz-content-sha256");
        int unsigned_payload = c->expires > 0 || (h >= 0 && strcmp(q.hval[h], "UNSIGNED-PAYLOAD") == 0);
        expect_code(t, &q, "body added", unsigned_payload ? 0 : MC_E_AUTH_MISMATCH);
    }

    /* A signed header renamed in transit: the list names a header the
     * request no longer has (MALFORMED), unless the name was repeated. */
    for (size_t i = 0; i < c->nh; i++) {
        if (strcasecmp(c->h[i].name, "host") == 0)
            continue;
        FRESH();
        free(q.hname[i]);
        q.hname[i] = xstrdup("X-Renamed");
        expect_code(t, &q, "signed header renamed",
                    header_index(&q, c->h[i].name) >= 0 ? MC_E_AUTH_MISMATCH
                                                        : MC_E_AUTH_MALFORMED);
    }
    vreq_free(&q);
#undef FRESH
}

static void test_vectors_tamper(void **state)
{
    int total = 0;
    (void)state;
    assert_true(g_ncases >= MIN_CASES);
    for (size_t i = 0; i < g_ncases; i++) {
        mc_sigv4_result res;
        assert_int_equal(sign_case(&g_cases[i], &res), 0);
        tamper_stats t = {&g_cases[i], &res, 0};
        tamper_case(&t);
        total += t.checks;
        mc_sigv4_result_free(&res);
    }
    fprintf(stderr, "tampered %zu cases, %d checks\n", g_ncases, total);
}

/* ---- named scenarios -------------------------------------------------- */

static const vcase *find_case(const char *name)
{
    for (size_t i = 0; i < g_ncases; i++)
        if (strcmp(g_cases[i].name, name) == 0)
            return &g_cases[i];
    fail_msg("no case %s in vectors.json", name);
    return NULL;
}

static int verify_named(const char *name, void (*edit)(vreq *), mc_sigv4_verdict *v)
{
    const vcase *c = find_case(name);
    mc_sigv4_result res;
    vreq q;
    assert_int_equal(sign_case(c, &res), 0);
    vreq_init(&q, c, &res);
    if (edit)
        edit(&q);
    int rc = vreq_verify(&q, v);
    vreq_free(&q);
    mc_sigv4_result_free(&res);
    return rc;
}

static void skew_16_late(vreq *q) { q->o.now = q->date + 16 * 60; }
static void skew_16_early(vreq *q) { q->o.now = q->date - 16 * 60; }
static void skew_14_late(vreq *q) { q->o.now = q->date + 14 * 60; }
static void skew_14_early(vreq *q) { q->o.now = q->date - 14 * 60; }
static void skew_15_exact(vreq *q) { q->o.now = q->date + 15 * 60; }

static void test_skew(void **state)
{
    mc_sigv4_verdict v;
    (void)state;
    assert_int_equal(verify_named("get-vanilla", skew_16_late, &v), MC_E_AUTH_SKEW);
    assert_non_null(strstr(v.detail, "behind"));
    assert_int_equal(verify_named("get-vanilla", skew_16_early, &v), MC_E_AUTH_SKEW);
    assert_non_null(strstr(v.detail, "ahead"));
    assert_int_equal(verify_named("get-vanilla", skew_14_late, &v), 0);
    assert_int_equal(verify_named("get-vanilla", skew_14_early, &v), 0);
    assert_int_equal(verify_named("get-vanilla", skew_15_exact, &v), 0);
    assert_int_equal(verify_named("s3-delete", skew_16_late, &v), MC_E_AUTH_SKEW);
}

static void presign_expired(vreq *q) { q->o.now = q->date + 900 + 1; }
static void presign_last_second(vreq *q) { q->o.now = q->date + 900; }
static void presign_future(vreq *q) { q->o.now = q->date - 16 * 60; }
static void presign_near_future(vreq *q) { q->o.now = q->date - 14 * 60; }

static void test_presigned_expiry(void **state)
{
    mc_sigv4_verdict v;
    (void)state;
    /* s3-presigned-path-style expires in 900 s. */
    assert_int_equal(verify_named("s3-presigned-path-style", presign_expired, &v),
                     MC_E_AUTH_EXPIRED);
    assert_int_equal(v.presigned, 1);
    assert_int_equal(verify_named("s3-presigned-path-style", presign_last_second, &v), 0);
    assert_int_equal(verify_named("s3-presigned-path-style", presign_future, &v), MC_E_AUTH_SKEW);
    assert_int_equal(verify_named("s3-presigned-path-style", presign_near_future, &v), 0);
}

static void ring_unknown(vreq *q) { q->ring.ak = "AKIDSOMEONEELSE"; }
static void ring_rotated(vreq *q)
{
    q->ring.s[1] = q->ring.s[0];
    q->ring.s[0] = "an-old-secret-that-was-rotated-out";
    q->ring.n = 2;
}
static void ring_rotated_first(vreq *q)
{
    q->ring.s[1] = "the-next-secret-not-yet-in-use";
    q->ring.n = 2;
}
static void ring_wrong_only(vreq *q) { q->ring.s[0] = "wrong"; }
static void ring_two_wrong(vreq *q)
{
    q->ring.s[0] = "wrong-1";
    q->ring.s[1] = "wrong-2";
    q->ring.n = 2;
}

static void test_keys_and_rotation(void **state)
{
    mc_sigv4_verdict v;
    (void)state;
    assert_int_equal(verify_named("s3-path-style-unsigned-payload", ring_unknown, &v),
                     MC_E_AUTH_UNKNOWN_KEY);
    assert_string_equal(v.access_key, "AKIDMESHCDNEXAMPLE");
    assert_int_equal(verify_named("s3-path-style-unsigned-payload", ring_rotated, &v), 0);
    assert_int_equal(verify_named("s3-path-style-unsigned-payload", ring_rotated_first, &v), 0);
    assert_int_equal(verify_named("s3-presigned-get", ring_rotated, &v), 0);
    assert_int_equal(verify_named("s3-path-style-unsigned-payload", ring_wrong_only, &v),
                     MC_E_AUTH_MISMATCH);
    assert_int_equal(verify_named("s3-path-style-unsigned-payload", ring_two_wrong, &v),
                     MC_E_AUTH_MISMATCH);
    assert_null(strstr(v.detail, "wrong"));
}

static void scope_other_service(vreq *q) { q->o.service = "meshcdn"; }
static void scope_other_region(vreq *q) { q->o.region = "us-west-2"; }
static void scope_any_region(vreq *q) { q->o.region = NULL; }
static void s3_normalized(vreq *q) { q->o.normalize_path = 1; }
static void both_forms(vreq *q)
{
    vreq_add_header(q, "Authorization", "AWS4-HMAC-SHA256 Credential=x");
}
static void no_date_header(vreq *q)
{
    int i = header_index(q, "x-amz-date");
    free(q->hname[i]);
    q->hname[i] = xstrdup("Date");
}
static void two_date_headers(vreq *q) { vreq_add_header(q, "X-Amz-Date", "20150830T123600Z"); }

static void test_scope_and_forms(void **state)
{
    mc_sigv4_verdict v;
    (void)state;
    assert_int_equal(verify_named("s3-list-objects", scope_other_service, &v), MC_E_AUTH_MALFORMED);
    assert_int_equal(verify_named("s3-list-objects", scope_other_region, &v), MC_E_AUTH_MALFORMED);
    assert_int_equal(verify_named("s3-list-objects", scope_any_region, &v), 0);
    assert_int_equal(verify_named("s3-presigned-get", scope_other_region, &v), MC_E_AUTH_MALFORMED);
    assert_int_equal(verify_named("s3-presigned-get", both_forms, &v), MC_E_AUTH_MALFORMED);
    assert_int_equal(verify_named("get-vanilla", no_date_header, &v), MC_E_AUTH_MALFORMED);
    assert_int_equal(verify_named("get-vanilla", two_date_headers, &v), MC_E_AUTH_MALFORMED);
    /* S3 keys are not normalised: a verifier that did would sign another key. */
    assert_int_equal(verify_named("s3-key-dot-segments-kept", s3_normalized, &v),
                     MC_E_AUTH_MISMATCH);
}

static void test_missing(void **state)
{
    mc_sigv4_header h[] = {{"Host", "127.0.0.1:9000"}, {"X-Amz-Date", "20261124T101500Z"}};
    mc_sigv4_request r = {"GET", "/assets/a.glb", "versionId=3&x-id=GetObject", h, 2, NULL, 0, NULL};
    keyring ring = {"AKIDMESHCDNEXAMPLE", {"s"}, 1};
    mc_sigv4_verify_opts o = {"s3", NULL, 0, 1795515300, 900, ring_fn, &ring};
    mc_sigv4_verdict v;
    (void)state;
    assert_int_equal(mc_sigv4_verify(&r, &o, &v), MC_E_AUTH_MISSING);
    assert_true(v.detail[0] != '\0');
    r.query = NULL;
    r.nheaders = 0;
    assert_int_equal(mc_sigv4_verify(&r, &o, &v), MC_E_AUTH_MISSING);
    assert_int_equal(mc_sigv4_verify(&r, &o, NULL), MC_E_AUTH_MISSING);
}

/* Authorization values for get-vanilla (signature from vectors.json). */
#define GV_SIG "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
#define GV_CRED "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"

static int verify_get_vanilla_with(const char *authz, mc_sigv4_verdict *v)
{
    mc_sigv4_header h[] = {{"Host", "example.amazonaws.com"},
                           {"X-Amz-Date", "20150830T123600Z"},
                           {"Authorization", authz}};
    mc_sigv4_request r = {"GET", "/", "", h, 3, NULL, 0, NULL};
    keyring ring = {"AKIDEXAMPLE", {"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, 1};
    time_t now;
    assert_int_equal(mc_sigv4_parse_amz_date("20150830T123600Z", &now), 0);
    mc_sigv4_verify_opts o = {"service", "us-east-1", 1, now, 900, ring_fn, &ring};
    return mc_sigv4_verify(&r, &o, v);
}

static void test_authorization_variants(void **state)
{
    static const char *const good[] = {
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ",SignedHeaders=host;x-amz-date,Signature=" GV_SIG,
        "AWS4-HMAC-SHA256  Credential=" GV_CRED " ,  SignedHeaders=host;x-amz-date ,Signature=" GV_SIG " ",
        "AWS4-HMAC-SHA256 Signature=" GV_SIG ", Credential=" GV_CRED ", SignedHeaders=host;x-amz-date",
        "  AWS4-HMAC-SHA256\tCredential=" GV_CRED ",\tSignedHeaders=host;x-amz-date,\tSignature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED " SignedHeaders=host;x-amz-date Signature=" GV_SIG,
    };
    static const char *const bad[] = {
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA1 Credential=" GV_CRED ", SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "aws4-hmac-sha256 Credential=" GV_CRED ", SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS AKIDEXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
        "Bearer abc",
        "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;x-amz-date",
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", Credential=" GV_CRED ", SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;x-amz-date, Signature=" GV_SIG ", Extra=1",
        "AWS4-HMAC-SHA256 Credential " GV_CRED ", SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service, SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request/x, SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws5_request, SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015083/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830//service/aws4_request, SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=x-amz-date;host, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;host;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=Host;X-Amz-Date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" GV_SIG,
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;x-amz-date, Signature=" GV_SIG "00",
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;x-amz-date, Signature=5fa00fa3",
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;x-amz-date, Signature=zfa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=" GV_CRED ", SignedHeaders=host;x-amz-date, Signature=",
    };
    mc_sigv4_verdict v;
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int rc = verify_get_vanilla_with(good[i], &v);
        if (rc != 0)
            fprintf(stderr, "good[%zu] %s: %s\n", i, mc_err_name(rc), v.detail);
        assert_int_equal(rc, 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = verify_get_vanilla_with(bad[i], &v);
        if (rc != MC_E_AUTH_MALFORMED)
            fprintf(stderr, "bad[%zu] \"%s\": %s\n", i, bad[i], mc_err_name(rc));
        assert_int_equal(rc, MC_E_AUTH_MALFORMED);
        assert_true(v.detail[0] != '\0');
        assert_null(strstr(v.detail, GV_SIG));
    }
    /* Upper-case hex is the same signature. */
    char upper[512];
    snprintf(upper, sizeof upper, "AWS4-HMAC-SHA256 Credential=" GV_CRED
             ", SignedHeaders=host;x-amz-date, Signature=%s", GV_SIG);
    for (char *p = strstr(upper, "Signature=") + 10; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    assert_int_equal(verify_get_vanilla_with(upper, &v), 0);
}

/* Presigned queries with one required part missing or wrong. */
static void test_presigned_malformed(void **state)
{
    static const struct { const char *from, *to; int want; } edits[] = {
        {"X-Amz-Algorithm=AWS4-HMAC-SHA256&", "", MC_E_AUTH_MALFORMED},
        {"X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1", MC_E_AUTH_MALFORMED},
        {"X-Amz-Expires=900", "X-Amz-Expires=0", MC_E_AUTH_MALFORMED},
        {"X-Amz-Expires=900", "X-Amz-Expires=604801", MC_E_AUTH_MALFORMED},
        {"X-Amz-Expires=900", "X-Amz-Expires=-5", MC_E_AUTH_MALFORMED},
        {"X-Amz-Expires=900", "X-Amz-Expires=9x", MC_E_AUTH_MALFORMED},
        {"X-Amz-Expires=900", "X-Amz-Expires=", MC_E_AUTH_MALFORMED},
        {"X-Amz-Expires=900&", "", MC_E_AUTH_MALFORMED},
        {"X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-amz-date", MC_E_AUTH_MALFORMED},
        {"X-Amz-Date=20261124T101500Z", "X-Amz-Date=2026-11-24T10:15:00Z", MC_E_AUTH_MALFORMED},
        {"%2Feu-central-1%2F", "%2Fus-east-1%2F", MC_E_AUTH_MALFORMED},
        {"%2Fs3%2F", "%2Fmeshcdn%2F", MC_E_AUTH_MALFORMED},
        {"X-Amz-Credential=AKIDMESHCDNEXAMPLE%2F", "X-Amz-Credential=AKIDMESHCDNEXAMPLE%G", MC_E_AUTH_MALFORMED},
        {"X-Amz-Credential=AKIDMESHCDNEXAMPLE%2F", "X-Amz-Credential=AKID%0AMESHCDNEXAMPLE%2F", MC_E_AUTH_MALFORMED},
        {"X-Amz-Date=", "X-Amz-Date=20261124T101500Z&X-Amz-Date=", MC_E_AUTH_MALFORMED},
        {"X-Amz-Signature=", "X-Amz-Signature=00", MC_E_AUTH_MALFORMED},
        {"&X-Amz-Signature=", "&X-Amz-Signature=ab&X-Amz-Signature=", MC_E_AUTH_MALFORMED},
        {"&X-Amz-Signature=", "&x=1&X-Amz-Signature=", MC_E_AUTH_MISMATCH},
    };
    const vcase *c = find_case("s3-presigned-path-style");
    mc_sigv4_result res;
    mc_sigv4_verdict v;
    (void)state;
    assert_int_equal(sign_case(c, &res), 0);
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        vreq q;
        vreq_init(&q, c, &res);
        char *at = strstr(q.query, edits[i].from);
        assert_non_null(at);
        size_t pre = (size_t)(at - q.query), fl = strlen(edits[i].from);
        char *nq = malloc(strlen(q.query) + strlen(edits[i].to) + 1);
        assert_non_null(nq);
        sprintf(nq, "%.*s%s%s", (int)pre, q.query, edits[i].to, at + fl);
        free(q.query);
        q.query = nq;
        int rc = vreq_verify(&q, &v);
        if (rc != edits[i].want)
            fprintf(stderr, "edit %zu (%s): %s: %s\n", i, q.query, mc_err_name(rc), v.detail);
        assert_int_equal(rc, edits[i].want);
        vreq_free(&q);
    }
    mc_sigv4_result_free(&res);
}

/* x-amz-content-sha256 is signed, the body is not: the verifier checks the
 * one against the other. */
static void test_body_hash(void **state)
{
    const char *body = "{\"asset\":{\"version\":\"2.0\"}}";
    char hash[65], other[65];
    mc_sigv4_sha256_hex(body, strlen(body), hash);
    mc_sigv4_sha256_hex("{}", 2, other);
    mc_sigv4_header h[] = {{"Host", "127.0.0.1:9000"}, {"X-Amz-Date", "20261124T101500Z"},
                           {"X-Amz-Content-Sha256", hash}, {"Authorization", NULL}};
    mc_sigv4_request r = {"PUT", "/assets/new.gltf", NULL, h, 3, body, strlen(body), NULL};
    mc_sigv4_params p = {"AK", "SECRET", NULL, "eu-central-1", "s3", "20261124T101500Z", 0};
    mc_sigv4_result res;
    mc_sigv4_verdict v;
    keyring ring = {"AK", {"SECRET"}, 1};
    time_t now;
    (void)state;
    assert_int_equal(mc_sigv4_parse_amz_date("20261124T101500Z", &now), 0);
    mc_sigv4_verify_opts o = {"s3", "eu-central-1", 0, now, 900, ring_fn, &ring};

    assert_int_equal(mc_sigv4_sign(&r, &p, &res), 0);
    h[3].value = res.authorization;
    r.nheaders = 4;
    assert_int_equal(mc_sigv4_verify(&r, &o, &v), 0);
    r.body = "{}";
    r.body_len = 2;
    assert_int_equal(mc_sigv4_verify(&r, &o, &v), MC_E_AUTH_MISMATCH);
    assert_non_null(strstr(v.detail, "body"));
    r.body = "";
    r.body_len = 0;   /* body present but empty: still checked */
    assert_int_equal(mc_sigv4_verify(&r, &o, &v), MC_E_AUTH_MISMATCH);
    r.body = NULL;     /* no body given (streamed elsewhere): nothing to check */
    assert_int_equal(mc_sigv4_verify(&r, &o, &v), 0);
    mc_sigv4_result_free(&res);

    /* Signed over the wrong hash: the signature matches, the body does not. */
    h[2].value = other;
    r.body = body;
    r.body_len = strlen(body);
    r.nheaders = 3;
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), 0);
    h[3].value = res.authorization;
    r.nheaders = 4;
    assert_int_equal(mc_sigv4_verify(&r, &o, &v), MC_E_AUTH_MISMATCH);
    assert_non_null(strstr(v.detail, "x-amz-content-sha256"));
    mc_sigv4_result_free(&res);

    /* Without the header the body itself is hashed into the signature. */
    r.nheaders = 2;
    h[2] = h[3];
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), 0);
    h[2].value = res.authorization;
    r.nheaders = 3;
    assert_int_equal(mc_sigv4_verify(&r, &o, &v), 0);
    r.body = "{}";
    r.body_len = 2;
    assert_int_equal(mc_sigv4_verify(&r, &o, &v), MC_E_AUTH_MISMATCH);
    mc_sigv4_result_free(&res);
}

/* What the signer refuses to sign. */
static void test_sign_errors(void **state)
{
    mc_sigv4_header h[] = {{"Host", "h"}, {"X-Amz-Date", "20261124T101500Z"}};
    mc_sigv4_request r = {"GET", "/a", NULL, h, 2, NULL, 0, NULL};
    mc_sigv4_params p = {"AK", "S", NULL, "eu-central-1", "s3", "20261124T101500Z", 0};
    mc_sigv4_result res;
    (void)state;
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), 0);
    mc_sigv4_result_free(&res);
    assert_int_equal(mc_sigv4_presign(&r, &p, 1, &res), 0);
    mc_sigv4_result_free(&res);
    assert_int_equal(mc_sigv4_presign(&r, &p, 604800, &res), 0);
    mc_sigv4_result_free(&res);
    assert_int_equal(mc_sigv4_presign(&r, &p, 0, &res), MC_E_INVAL);
    assert_int_equal(mc_sigv4_presign(&r, &p, 604801, &res), MC_E_INVAL);
    r.query = "X-Amz-Signature=abc";
    assert_int_equal(mc_sigv4_presign(&r, &p, 60, &res), MC_E_INVAL);
    r.query = "a=%zz";
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), MC_E_INVAL);
    assert_null(res.canonical_request);
    r.query = "X-Amz-Signature%00x=1";   /* a decoded NUL is refused */
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), MC_E_INVAL);
    r.query = NULL;
    r.path = "/a%2";
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), MC_E_INVAL);
    r.path = "/a";
    r.nheaders = 1;   /* x-amz-date header absent: allowed (date from params) */
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), 0);
    mc_sigv4_result_free(&res);
    h[0].name = "X-Other";   /* no Host */
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), MC_E_INVAL);
    h[0].name = "Host";
    r.nheaders = 2;
    h[1].value = "20261124T101501Z";   /* header and params disagree */
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), MC_E_INVAL);
    h[1].value = "20261124T101500Z";
    p.amz_date = "20261124";
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), MC_E_INVAL);
    p.amz_date = "20261124T101500Z";
    p.access_key = "A/K";
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), MC_E_INVAL);
    p.access_key = "AK";
    h[0].name = "Bad Name";
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), MC_E_INVAL);
}

/* Header form with a query that carries X-Amz-Signature (e.g. copied from a
 * presigned URL): left out of the canonical query, as for the query form. */
static void test_canonical_query_details(void **state)
{
    mc_sigv4_header h[] = {{"Host", "h"}};
    mc_sigv4_request r = {"GET", "/", "b=2&a=%7e&&a&c=x+y&X-Amz-Signature=zz", h, 1, NULL, 0,
                          "UNSIGNED-PAYLOAD"};
    mc_sigv4_params p = {"AK", "S", NULL, "r", "s3", "20261124T101500Z", 0};
    mc_sigv4_result res;
    (void)state;
    assert_int_equal(mc_sigv4_sign(&r, &p, &res), 0);
    assert_string_equal(res.canonical_request,
                        "GET\n/\na=&a=~&b=2&c=x%2By\nhost:h\n\nhost\nUNSIGNED-PAYLOAD");
    mc_sigv4_result_free(&res);
}

/* ---- helpers ---------------------------------------------------------- */

static void test_s3_path(void **state)
{
    static const struct { const char *in, *out; } cases[] = {
        {"/", "/"},
        {"", "/"},
        {"/a b.glb", "/a%20b.glb"},
        {"/a%20b.glb", "/a%20b.glb"},
        {"/\xe6\xa4\x85\xe5\xad\x90.glb", "/%E6%A4%85%E5%AD%90.glb"},
        {"/%e6%a4%85.glb", "/%E6%A4%85.glb"},
        {"/a+b", "/a%2Bb"},
        {"/a%2Bb", "/a%2Bb"},
        {"/a%2bb", "/a%2Bb"},
        {"/test$file.text", "/test%24file.text"},
        {"/test%24file.text", "/test%24file.text"},
        {"/a/./b/../c", "/a/./b/../c"},
        {"//a//b/", "//a//b/"},
        {"/-_.~AZaz09", "/-_.~AZaz09"},
        {"/a%2Fb", "/a/b"},
        {"/%25", "/%25"},
        {"/a%00b", "/a%00b"},
        {"/=&!'()*:@,;", "/%3D%26%21%27%28%29%2A%3A%40%2C%3B"},
        {"/%", NULL},
        {"/%2", NULL},
        {"/%zz", NULL},
        {"/%G0", NULL},
        {"/a%2", NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = mc_sigv4_s3_path(cases[i].in);
        if (!cases[i].out) {
            if (got)
                fprintf(stderr, "s3_path(\"%s\") = \"%s\", want NULL\n", cases[i].in, got);
            assert_null(got);
            continue;
        }
        if (!got || strcmp(got, cases[i].out) != 0)
            fprintf(stderr, "s3_path(\"%s\") = \"%s\", want \"%s\"\n", cases[i].in,
                    got ? got : "(null)", cases[i].out);
        assert_non_null(got);
        assert_string_equal(got, cases[i].out);
        free(got);
    }
    assert_null(mc_sigv4_s3_path(NULL));
}

static void test_amz_date(void **state)
{
    static const struct { const char *s; long long t; } good[] = {
        {"19700101T000000Z", 0},
        {"20150830T123600Z", 1440938160},
        {"20130524T000000Z", 1369353600},
        {"20000229T235959Z", 951868799},
        {"20261124T101500Z", 1795515300},
        {"99991231T235959Z", 253402300799LL},
    };
    static const char *const bad[] = {
        "", "20150830T123600", "20150830T123600z", "20150830 123600Z", "2015-08-30T12:36:00Z",
        "20150830T123600Z ", "20151330T123600Z", "20150001T123600Z", "20150230T123600Z",
        "20150229T000000Z", "21000229T000000Z", "20150832T000000Z", "20150830T240000Z",
        "20150830T126000Z", "20150830T123660Z", "2015083AT123600Z", "+0150830T123600Z",
    };
    char out[17];
    time_t t;
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        assert_int_equal(mc_sigv4_parse_amz_date(good[i].s, &t), 0);
        assert_int_equal((long long)t, good[i].t);
        mc_sigv4_amz_date(t, out);
        assert_string_equal(out, good[i].s);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (mc_sigv4_parse_amz_date(bad[i], &t) != MC_E_INVAL)
            fprintf(stderr, "parse_amz_date accepted \"%s\"\n", bad[i]);
        assert_int_equal(mc_sigv4_parse_amz_date(bad[i], &t), MC_E_INVAL);
    }
    assert_int_equal(mc_sigv4_parse_amz_date(NULL, &t), MC_E_INVAL);
}

static void test_sha256_and_encode(void **state)
{
    char hex[65];
    mc_buf b = MC_BUF_INIT;
    (void)state;
    mc_sigv4_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    mc_sigv4_sha256_hex(NULL, 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    mc_sigv4_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(mc_sigv4_uri_encode(&b, "a/b c~", 6, 1), 0);
    assert_string_equal(b.data, "a/b%20c~");
    mc_buf_reset(&b);
    assert_int_equal(mc_sigv4_uri_encode(&b, "a/b\0\xff", 5, 0), 0);
    assert_string_equal(b.data, "a%2Fb%00%FF");
    mc_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_sign),
        cmocka_unit_test(test_vectors_verify),
        cmocka_unit_test(test_vectors_tamper),
        cmocka_unit_test(test_skew),
        cmocka_unit_test(test_presigned_expiry),
        cmocka_unit_test(test_keys_and_rotation),
        cmocka_unit_test(test_scope_and_forms),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_authorization_variants),
        cmocka_unit_test(test_presigned_malformed),
        cmocka_unit_test(test_body_hash),
        cmocka_unit_test(test_sign_errors),
        cmocka_unit_test(test_canonical_query_details),
        cmocka_unit_test(test_s3_path),
        cmocka_unit_test(test_amz_date),
        cmocka_unit_test(test_sha256_and_encode),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
