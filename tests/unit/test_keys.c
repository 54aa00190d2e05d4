/* test_keys.c — key and credentials files (common/keys.h). */
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
#include "common/err.h"
#include "common/keys.h"
#include "common/sigv4.h"

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/mc-test-keys-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write text to g_dir/name with mode; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text, mode_t mode)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_good_file(void **state)
{
    const char *p = write_file("keys.txt",
                               "# edge fleet keys\n"
                               "\n"
                               "AKIDEDGE1 secret/one+x=\n"
                               "   # indented comment\n"
                               "\tAKIDEDGE2\t\tsecret-two   \r\n"
                               "   \n"
                               "AKIDOPS s3cr3t#not-a-comment", 0600);
    mc_keys k;
    mc_err err = {0};
    const char *s[2] = {NULL, NULL};
    (void)state;
    assert_int_equal(mc_keys_load(&k, p, &err), 0);
    assert_int_equal(k.n, 3);
    assert_string_equal(k.v[0].access_key, "AKIDEDGE1");
    assert_string_equal(k.v[0].secret, "secret/one+x=");
    assert_string_equal(k.v[1].access_key, "AKIDEDGE2");
    assert_string_equal(k.v[1].secret, "secret-two");
    assert_string_equal(k.v[2].access_key, "AKIDOPS");
    assert_string_equal(k.v[2].secret, "s3cr3t#not-a-comment");
    assert_int_equal(mc_keys_secret_fn(&k, "AKIDEDGE2", s), 1);
    assert_string_equal(s[0], "secret-two");
    assert_int_equal(mc_keys_secret_fn(&k, "AKIDNOBODY", s), 0);
    assert_int_equal(mc_keys_secret_fn(&k, "akidedge2", s), 0);   /* case matters */
    mc_keys_free(&k);
    assert_int_equal(k.n, 0);
    assert_null(k.v);
    mc_keys_free(&k);   /* twice is harmless */

    p = write_file("readonly.txt", "AK S\n", 0400);
    assert_int_equal(mc_keys_load(&k, p, &err), 0);
    assert_int_equal(k.n, 1);
    mc_keys_free(&k);
}

static void test_comments_only(void **state)
{
    const char *p = write_file("empty.txt", "# nothing here\n\n   \n", 0600);
    mc_keys k;
    mc_err err = {0};
    (void)state;
    assert_int_equal(mc_keys_load(&k, p, &err), MC_E_INVAL);
    assert_contains(err.msg, p);
    assert_contains(err.msg, "no keys");
    assert_int_equal(k.n, 0);
    assert_null(k.v);
}

static void test_open_modes_refused(void **state)
{
    static const mode_t modes[] = {0644, 0640, 0604, 0660, 0606, 0601, 0610, 0777};
    mc_keys k;
    mc_err err;
    char want[16];
    (void)state;
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        const char *p = write_file("open.txt", "AKID SECRET\n", modes[i]);
        memset(&err, 0, sizeof err);
        assert_int_equal(mc_keys_load(&k, p, &err), MC_E_PERM);
        assert_int_equal(err.code, MC_E_PERM);
        assert_contains(err.msg, p);
        snprintf(want, sizeof want, "%04o", (unsigned)modes[i]);
        assert_contains(err.msg, want);
        assert_null(strstr(err.msg, "SECRET"));
        assert_int_equal(k.n, 0);
        assert_int_equal(mc_keys_load_credentials(&k, p, &err), MC_E_PERM);
    }
}

static void test_bad_lines_name_the_line(void **state)
{
    static const struct { const char *text, *where, *what; } cases[] = {
        {"AK1 S1\nonlyonefield\n", ":2:", "expected two fields"},
        {"# c\n\nAK1 S1 extra\n", ":3:", "found 3"},
        {"AK1 S1\nAK2 S2\n\n# x\nA/K S\n", ":5:", "access key"},
        {"AK1 S\xc3\xa9\n", ":1:", "secret"},
        {"AK1 S1\nAK1 S1\n", ":2:", "repeats"},
    };
    mc_keys k;
    mc_err err;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *p = write_file("bad.txt", cases[i].text, 0600);
        char where[300];
        memset(&err, 0, sizeof err);
        assert_int_equal(mc_keys_load(&k, p, &err), MC_E_INVAL);
        snprintf(where, sizeof where, "%s%s", p, cases[i].where);
        assert_contains(err.msg, where);
        assert_contains(err.msg, cases[i].what);
        assert_null(strstr(err.msg, "S1"));   /* never the secret */
        assert_int_equal(k.n, 0);
    }
}

static void test_rotation(void **state)
{
    const char *p = write_file("rot.txt",
                               "AKIDEDGE old-secret\n"
                               "AKIDOTHER other\n"
                               "AKIDEDGE new-secret\n", 0600);
    mc_keys k;
    mc_err err = {0};
    const char *s[2] = {NULL, NULL};
    (void)state;
    assert_int_equal(mc_keys_load(&k, p, &err), 0);
    assert_int_equal(k.n, 3);
    assert_int_equal(mc_keys_secret_fn(&k, "AKIDEDGE", s), 2);
    assert_string_equal(s[0], "old-secret");
    assert_string_equal(s[1], "new-secret");

    /* The verifier accepts a signature by either secret. */
    mc_sigv4_header h[] = {{"Host", "127.0.0.1:9000"}, {"X-Amz-Date", "20261124T101500Z"},
                           {"Authorization", NULL}};
    mc_sigv4_request r = {"GET", "/b/k", NULL, h, 2, NULL, 0, NULL};
    time_t now;
    assert_int_equal(mc_sigv4_parse_amz_date("20261124T101500Z", &now), 0);
    mc_sigv4_verify_opts o = {"s3", NULL, 0, now, 900, mc_keys_secret_fn, &k};
    const char *secrets[] = {"old-secret", "new-secret", "not-in-file"};
    const int want[] = {0, 0, MC_E_AUTH_MISMATCH};
    for (int i = 0; i < 3; i++) {
        mc_sigv4_params prm = {"AKIDEDGE", secrets[i], NULL, "eu-central-1", "s3",
                               "20261124T101500Z", 0};
        mc_sigv4_result res;
        mc_sigv4_verdict v;
        r.nheaders = 2;
        assert_int_equal(mc_sigv4_sign(&r, &prm, &res), 0);
        h[2].value = res.authorization;
        r.nheaders = 3;
        assert_int_equal(mc_sigv4_verify(&r, &o, &v), want[i]);
        mc_sigv4_result_free(&res);
    }
    mc_keys_free(&k);

    p = write_file("rot3.txt", "AK a\nAK b\n# c\nAK c\n", 0600);
    memset(&err, 0, sizeof err);
    assert_int_equal(mc_keys_load(&k, p, &err), MC_E_INVAL);
    assert_contains(err.msg, ":4:");
    assert_contains(err.msg, "third");
}

static void test_credentials(void **state)
{
    mc_keys k;
    mc_err err = {0};
    (void)state;
    const char *p = write_file("cred.txt", "# edge a1\nAKIDEDGE1 secret1\n", 0600);
    assert_int_equal(mc_keys_load_credentials(&k, p, &err), 0);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.v[0].access_key, "AKIDEDGE1");
    mc_keys_free(&k);

    p = write_file("cred2.txt", "AKIDEDGE1 secret1\nAKIDEDGE2 secret2\n", 0600);
    assert_int_equal(mc_keys_load_credentials(&k, p, &err), MC_E_INVAL);
    assert_contains(err.msg, p);
    assert_contains(err.msg, "exactly one");
    assert_int_equal(k.n, 0);
    assert_null(k.v);

    p = write_file("cred3.txt", "AKIDEDGE1 secret1\nAKIDEDGE1 secret2\n", 0600);
    assert_int_equal(mc_keys_load_credentials(&k, p, &err), MC_E_INVAL);
    assert_int_equal(k.n, 0);
}

static void test_missing_file(void **state)
{
    mc_keys k;
    mc_err err = {0};
    char p[256];
    (void)state;
    snprintf(p, sizeof p, "%s/does-not-exist.txt", g_dir);
    assert_int_equal(mc_keys_load(&k, p, &err), MC_E_IO);
    assert_int_equal(err.code, MC_E_IO);
    assert_contains(err.msg, p);
    assert_contains(err.msg, "No such file");
    assert_int_equal(k.n, 0);
    assert_int_equal(mc_keys_load_credentials(&k, p, NULL), MC_E_IO);
    /* A directory is not a key file. */
    assert_int_equal(mc_keys_load(&k, g_dir, &err), MC_E_INVAL);
    assert_contains(err.msg, "regular file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_comments_only),
        cmocka_unit_test(test_open_modes_refused),
        cmocka_unit_test(test_bad_lines_name_the_line),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
