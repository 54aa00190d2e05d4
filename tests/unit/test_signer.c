/* test_signer.c — the edge's origin signer (edge/signer.h): signatures equal
 * to the SigV4 vectors (path-style, temporary credentials), virtual-hosted
 * Amazon S3 hosts, and credentials files replaced while running. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "common/err.h"
#include "common/keys.h"
#include "common/sigv4.h"
#include "edge/edgecfg.h"
#include "edge/signer.h"

static char g_dir[64];
static json_t *g_json;

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/mc-test-signer-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    const char *data = getenv("MESHCDN_DATA");
    char path[4096];
    json_error_t jerr;
    if (!data) {
        fprintf(stderr, "MESHCDN_DATA is not set (ctest sets it to tests/data)\n");
        return -1;
    }
    snprintf(path, sizeof path, "%s/sigv4/vectors.json", data);
    g_json = json_load_file(path, 0, &jerr);
    return g_json ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    json_decref(g_json);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static json_t *vector(const char *name)
{
    json_t *cases = json_object_get(g_json, "cases");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            return c;
    }
    fail_msg("no case %s in vectors.json", name);
    return NULL;
}

static const char *vstr(json_t *c, const char *key)
{
    return json_string_value(json_object_get(c, key));
}

static const char *vheader(json_t *c, const char *name)
{
    json_t *hs = json_object_get(c, "headers");
    for (size_t i = 0; i < json_array_size(hs); i++) {
        json_t *p = json_array_get(hs, i);
        if (strcasecmp(json_string_value(json_array_get(p, 0)), name) == 0)
            return json_string_value(json_array_get(p, 1));
    }
    return NULL;
}

/* Write path atomically (temp file + rename), as a rotation tool would. */
static void write_file(const char *path, const char *text, mode_t mode)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    assert_int_equal(rename(tmp, path), 0);
}

static time_t vtime(json_t *c)
{
    time_t t;
    assert_int_equal(mc_sigv4_parse_amz_date(vstr(c, "amz_date"), &t), 0);
    return t;
}

/* The edge signs exactly these vectors' header sets: host,
 * x-amz-content-sha256 (UNSIGNED-PAYLOAD), x-amz-date [, x-amz-security-token]. */
static void check_vector(const char *name, int token_in_own_file)
{
    json_t *c = vector(name);
    char cred[512], tokf[512], line[1024];
    snprintf(cred, sizeof cred, "%s/cred-%s", g_dir, name);
    snprintf(tokf, sizeof tokf, "%s/token-%s", g_dir, name);
    const char *token = vstr(c, "session_token");
    snprintf(line, sizeof line, "# test\n%s %s %s\n", vstr(c, "access_key"), vstr(c, "secret_key"),
             token && !token_in_own_file ? token : "");
    write_file(cred, line, 0600);
    if (token_in_own_file) {
        snprintf(line, sizeof line, "%s\n", token);
        write_file(tokf, line, 0600);
    }
    mc_signer_opts o = {cred, token_in_own_file ? tokf : NULL, vheader(c, "Host"), vstr(c, "region"), "s3"};
    mc_signer *s;
    mc_err err = {0};
    assert_int_equal(mc_signer_new(&s, &o, &err), 0);
    mc_signed sg;
    assert_int_equal(mc_signer_sign_get(s, vstr(c, "path"), vstr(c, "query"), vtime(c), &sg), 0);
    json_t *e = json_object_get(c, "expected");
    assert_string_equal(sg.authorization, vstr(e, "authorization"));
    assert_string_equal(sg.amz_date, vstr(c, "amz_date"));
    if (token)
        assert_string_equal(sg.session_token, token);
    else
        assert_null(sg.session_token);
    mc_signed_free(&sg);
    mc_signer_free(s);
}

static void test_vector_path_style(void **state)
{
    (void)state;
    check_vector("s3-path-style-unsigned-payload", 0);
    check_vector("s3-key-space-utf8", 0);
}

static void test_vector_session_token(void **state)
{
    (void)state;
    check_vector("s3-session-token", 0);   /* third field of the credentials file */
    check_vector("s3-session-token", 1);   /* origin.session_token_file */
}

/* Verify what the signer produced the way Amazon S3 would see the request. */
static int verify(const char *host, const char *path, const char *region, const mc_signed *sg,
                  mc_keys *keys)
{
    mc_sigv4_header h[5] = {{"Host", host},
                            {"X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"},
                            {"X-Amz-Date", sg->amz_date},
                            {"Authorization", sg->authorization},
                            {"X-Amz-Security-Token", sg->session_token}};
    mc_sigv4_request rq = {"GET", path, "", h, sg->session_token ? 5 : 4, NULL, 0, NULL};
    time_t now;
    mc_sigv4_parse_amz_date(sg->amz_date, &now);
    mc_sigv4_verify_opts vo = {"s3", region, 0, now, 900, mc_keys_secret_fn, keys};
    mc_sigv4_verdict v;
    return mc_sigv4_verify(&rq, &vo, &v);
}

static void test_virtual_hosted(void **state)
{
    (void)state;
    const char *host = "examplebucket.s3.eu-west-1.amazonaws.com";
    char region[64];
    assert_int_equal(mc_edge_region_from_host(host, region, sizeof region), 1);
    assert_string_equal(region, "eu-west-1");
    char cred[512];
    snprintf(cred, sizeof cred, "%s/cred-vh", g_dir);
    write_file(cred, "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY tok/en+==\n", 0600);
    mc_signer_opts o = {cred, NULL, host, region, "s3"};
    mc_signer *s;
    mc_err err = {0};
    assert_int_equal(mc_signer_new(&s, &o, &err), 0);
    mc_signed sg;
    assert_int_equal(mc_signer_sign_get(s, "/models/chair%20v2.glb", NULL, 1369353600, &sg), 0);
    assert_string_equal(sg.amz_date, "20130524T000000Z");
    assert_non_null(strstr(sg.authorization, "Credential=AKIAIOSFODNN7EXAMPLE/20130524/eu-west-1/s3/aws4_request, "
                                             "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "));
    mc_keys keys;
    assert_int_equal(mc_keys_load_credentials(&keys, cred, &err), 0);
    /* S3 sees host = the bucket's host, path = the key without the bucket */
    assert_int_equal(verify(host, "/models/chair%20v2.glb", "eu-west-1", &sg, &keys), 0);
    assert_int_equal(verify(host, "/examplebucket/models/chair%20v2.glb", "eu-west-1", &sg, &keys),
                     MC_E_AUTH_MISMATCH);
    assert_int_equal(verify("s3.eu-west-1.amazonaws.com", "/models/chair%20v2.glb", "eu-west-1", &sg, &keys),
                     MC_E_AUTH_MISMATCH);
    assert_int_not_equal(verify(host, "/models/chair%20v2.glb", "us-east-1", &sg, &keys), 0);
    mc_keys_free(&keys);
    mc_signed_free(&sg);
    mc_signer_free(s);
}

static void test_region_from_host(void **state)
{
    (void)state;
    static const struct { const char *host, *region; } cases[] = {
        {"examplebucket.s3.eu-west-1.amazonaws.com", "eu-west-1"},
        {"examplebucket.s3.eu-west-1.amazonaws.com:443", "eu-west-1"},
        {"s3.ap-southeast-2.amazonaws.com", "ap-southeast-2"},
        {"my.dotted.bucket.s3.us-west-2.amazonaws.com", "us-west-2"},
        {"s3.bucket.s3.sa-east-1.amazonaws.com", "sa-east-1"},
        {"b.s3-eu-west-1.amazonaws.com", "eu-west-1"},
        {"b.s3.dualstack.eu-central-1.amazonaws.com", "eu-central-1"},
        {"examplebucket.s3.amazonaws.com", "us-east-1"},
        {"S3.AMAZONAWS.COM", "us-east-1"},
        {"127.0.0.1:9000", NULL},
        {"minio.example.com", NULL},
        {"ec2.eu-west-1.amazonaws.com", NULL},
        {"amazonaws.com", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char r[64] = "";
        int got = mc_edge_region_from_host(cases[i].host, r, sizeof r);
        if (!cases[i].region) {
            assert_int_equal(got, 0);
            continue;
        }
        if (got != 1 || strcmp(r, cases[i].region) != 0)
            fail_msg("%s: got %d \"%s\", want \"%s\"", cases[i].host, got, r, cases[i].region);
    }
}

static char *access_key_of(const mc_signed *sg)
{
    static char ak[64];
    const char *p = strstr(sg->authorization, "Credential=") + 11;
    snprintf(ak, sizeof ak, "%.*s", (int)strcspn(p, "/"), p);
    return ak;
}

static void test_reload(void **state)
{
    (void)state;
    char cred[512];
    snprintf(cred, sizeof cred, "%s/cred-rot", g_dir);
    write_file(cred, "AKIDONE secret-one token-one\n", 0600);
    mc_signer_opts o = {cred, NULL, "127.0.0.1:9000", "us-east-1", "s3"};
    mc_signer *s;
    mc_err err = {0};
    assert_int_equal(mc_signer_new(&s, &o, &err), 0);
    mc_signed sg;
    assert_int_equal(mc_signer_refresh(s, &err), 0);   /* nothing changed */

    /* replaced (rename over): the next check takes it */
    write_file(cred, "AKIDTWO secret-two token-two\n", 0600);
    assert_int_equal(mc_signer_refresh(s, &err), 1);
    assert_int_equal(mc_signer_sign_get(s, "/b/k", NULL, time(NULL), &sg), 0);
    assert_string_equal(access_key_of(&sg), "AKIDTWO");
    assert_string_equal(sg.session_token, "token-two");
    mc_signed_free(&sg);

    /* a broken replacement keeps the working credentials */
    write_file(cred, "AKIDBAD\n", 0600);
    assert_int_equal(mc_signer_refresh(s, &err), MC_E_INVAL);
    write_file(cred, "AKIDOPEN secret-open\n", 0644);
    assert_int_equal(mc_signer_refresh(s, &err), MC_E_PERM);
    assert_int_equal(mc_signer_sign_get(s, "/b/k", NULL, time(NULL), &sg), 0);
    assert_string_equal(access_key_of(&sg), "AKIDTWO");
    mc_signed_free(&sg);

    /* signing checks by itself, at most once a second: right after a check
     * the old key is used, a second later the new one (no token now) */
    write_file(cred, "AKIDTHREE secret-three\n", 0600);
    assert_int_equal(mc_signer_refresh(s, &err), 1);
    write_file(cred, "AKIDFOUR secret-four\n", 0600);
    assert_int_equal(mc_signer_sign_get(s, "/b/k", NULL, time(NULL), &sg), 0);
    assert_string_equal(access_key_of(&sg), "AKIDTHREE");
    assert_null(sg.session_token);
    mc_signed_free(&sg);
    usleep(1100 * 1000);
    assert_int_equal(mc_signer_sign_get(s, "/b/k", NULL, time(NULL), &sg), 0);
    assert_string_equal(access_key_of(&sg), "AKIDFOUR");
    mc_signed_free(&sg);
    mc_signer_free(s);
}

static void test_token_file_rules(void **state)
{
    (void)state;
    char cred[512], tokf[512];
    snprintf(cred, sizeof cred, "%s/cred-tf", g_dir);
    snprintf(tokf, sizeof tokf, "%s/token-tf", g_dir);
    write_file(cred, "AKIDTF secret-tf token-in-cred\n", 0600);
    mc_signer_opts o = {cred, tokf, "127.0.0.1:9000", "us-east-1", "s3"};
    mc_signer *s = NULL;
    mc_err err = {0};
    write_file(tokf, "tok\n", 0640);
    assert_int_equal(mc_signer_new(&s, &o, &err), MC_E_PERM);
    write_file(tokf, "  \n", 0600);
    assert_int_equal(mc_signer_new(&s, &o, &err), MC_E_INVAL);
    write_file(tokf, "two words\n", 0600);
    assert_int_equal(mc_signer_new(&s, &o, &err), MC_E_INVAL);
    write_file(tokf, "\n  file-token==\n\n", 0600);
    assert_int_equal(mc_signer_new(&s, &o, &err), 0);
    mc_signed sg;
    assert_int_equal(mc_signer_sign_get(s, "/b/k", NULL, time(NULL), &sg), 0);
    assert_string_equal(sg.session_token, "file-token==");   /* the file wins */
    mc_signed_free(&sg);
    write_file(tokf, "rotated-token\n", 0600);
    assert_int_equal(mc_signer_refresh(s, &err), 1);
    assert_int_equal(mc_signer_sign_get(s, "/b/k", NULL, time(NULL), &sg), 0);
    assert_string_equal(sg.session_token, "rotated-token");
    mc_signed_free(&sg);
    mc_signer_free(s);
    /* a key file for servers still refuses a third field */
    mc_keys k;
    assert_int_equal(mc_keys_load(&k, cred, &err), MC_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_path_style),
        cmocka_unit_test(test_vector_session_token),
        cmocka_unit_test(test_virtual_hosted),
        cmocka_unit_test(test_region_from_host),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_token_file_rules),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
