/* test_origin_path.c — hostile and valid names against the origin's path
 * resolver (origin/objects.h), on a temporary tree built by the test:
 *
 *   TMP/outside/secret.txt            must never be reachable
 *   TMP/root/bucket-a/...             the served bucket
 *   TMP/root/bucket-b -> ../outside   a bucket that is a symlink out
 *
 * Every case runs twice: through openat2(RESOLVE_BENEATH) and through the
 * realpath fallback used on kernels without openat2.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/httpdate.h"
#include "origin/objects.h"

static char tmp[256];

static void put_file(const char *rel, const char *content)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void put_link(const char *target, const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    assert_int_equal(symlink(target, p), 0);
}

static void put_dir(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static int build_tree(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "%s/mc-origin-path-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(tmp));
    put_dir("outside");
    put_file("outside/secret.txt", "SECRET");
    put_dir("root");
    put_dir("root/bucket-a");
    put_dir("root/bucket-a/dir");
    put_file("root/bucket-a/hello.txt", "hello");
    put_file("root/bucket-a/with space.glb", "space");
    put_file("root/bucket-a/\xc3\xbcn\xc3\xaf.png", "utf8");
    put_file("root/bucket-a/a+b.bin", "plus");
    put_file("root/bucket-a/dir/inner.txt", "inner");
    put_link("hello.txt", "root/bucket-a/link-in");
    put_link("dir/../hello.txt", "root/bucket-a/link-in-dotdot");
    put_link("../../outside/secret.txt", "root/bucket-a/link-out");
    put_link("../../outside", "root/bucket-a/linkdir-out");
    put_link("../outside", "root/bucket-b");
    char abs[512];
    snprintf(abs, sizeof abs, "%s/outside/secret.txt", tmp);
    put_link(abs, "root/bucket-a/link-out-abs");
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/root/bucket-a/fifo", tmp);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    return 0;
}

static int remove_tree(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct path_case {
    const char *raw;
    mc_obj_status want;
    const char *content;    /* for MC_OBJ_OK */
} path_case;

static const path_case cases[] = {
    /* valid keys */
    {"/bucket-a/hello.txt", MC_OBJ_OK, "hello"},
    {"/bucket-a/with%20space.glb", MC_OBJ_OK, "space"},
    {"/bucket-a/with space.glb", MC_OBJ_OK, "space"},
    {"/bucket-a/%C3%BCn%C3%AF.png", MC_OBJ_OK, "utf8"},
    {"/bucket-a/\xc3\xbcn\xc3\xaf.png", MC_OBJ_OK, "utf8"},
    {"/bucket-a/a+b.bin", MC_OBJ_OK, "plus"},
    {"/bucket-a/a%2Bb.bin", MC_OBJ_OK, "plus"},
    {"/bucket-a/dir/inner.txt", MC_OBJ_OK, "inner"},
    {"/bucket-a/link-in", MC_OBJ_OK, "hello"},
    {"/bucket-a/link-in-dotdot", MC_OBJ_OK, "hello"},
    /* dot segments, raw and encoded */
    {"/bucket-a/../../outside/secret.txt", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/%2e%2e/%2e%2e/outside/secret.txt", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/%2E%2e/", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/a/../../x", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/dir/../hello.txt", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/./hello.txt", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/%2F../secret.txt", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/..", MC_OBJ_BAD_BUCKET, NULL},
    {"/../outside/secret.txt", MC_OBJ_BAD_BUCKET, NULL},
    {"/%2e%2e/outside/secret.txt", MC_OBJ_BAD_BUCKET, NULL},
    {"/./bucket-a/hello.txt", MC_OBJ_BAD_BUCKET, NULL},
    /* NUL and broken escapes */
    {"/bucket-a/hello.txt%00.png", MC_OBJ_BAD_URI, NULL},
    {"/bucket-a/%zz", MC_OBJ_BAD_URI, NULL},
    {"/bucket-a/hello.txt%", MC_OBJ_BAD_URI, NULL},
    {"bucket-a/hello.txt", MC_OBJ_BAD_URI, NULL},
    /* absolute-looking and empty segments */
    {"//etc/passwd", MC_OBJ_BAD_BUCKET, NULL},
    {"/bucket-a//etc/passwd", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/%2Fetc%2Fpasswd", MC_OBJ_NO_SUCH_KEY, NULL},
    /* symlinks that lead out, FIFOs, directories */
    {"/bucket-a/link-out", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/link-out-abs", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/linkdir-out/secret.txt", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-b/secret.txt", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/fifo", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/dir", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/dir/", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/hello.txt/", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/bucket-a/hello.txt/x", MC_OBJ_NO_SUCH_KEY, NULL},
    /* absent things and listings */
    {"/bucket-a/missing.txt", MC_OBJ_NO_SUCH_KEY, NULL},
    {"/no-such-bucket/x", MC_OBJ_NO_SUCH_BUCKET, NULL},
    {"/Bucket-A/hello.txt", MC_OBJ_BAD_BUCKET, NULL},
    {"/", MC_OBJ_LISTING, NULL},
    {"/bucket-a", MC_OBJ_LISTING, NULL},
    {"/bucket-a/", MC_OBJ_LISTING, NULL},
};

static void check_file(const path_case *c, const mc_object *ob)
{
    char buf[64] = "";
    ssize_t n = pread(ob->fd, buf, sizeof buf - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    if (strcmp(buf, c->content) != 0)
        fail_msg("%s: read \"%s\", want \"%s\"", c->raw, buf, c->content);
}

static void run_cases(bool force_realpath)
{
    char root[512];
    snprintf(root, sizeof root, "%s/root", tmp);
    mc_objects_config cfg = {.root = root, .force_realpath = force_realpath};
    mc_objects *o = NULL;
    mc_err err;
    assert_int_equal(mc_objects_open(&o, &cfg, &err), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const path_case *c = &cases[i];
        mc_object ob = MC_OBJECT_INIT;
        mc_obj_status st = mc_objects_resolve(o, c->raw, &ob);
        if (st != c->want)
            fail_msg("%s (%s): status %d, want %d", c->raw,
                     force_realpath ? "realpath" : "openat2", (int)st, (int)c->want);
        if (st == MC_OBJ_OK)
            check_file(c, &ob);
        mc_object_release(&ob);
    }
    mc_objects_close(o);
}

static void hostile_paths_openat2(void **state)
{
    (void)state;
    run_cases(false);
}

static void hostile_paths_realpath_fallback(void **state)
{
    (void)state;
    run_cases(true);
}

static void bucket_names_follow_s3_rules(void **state)
{
    (void)state;
    static const struct { const char *name; bool ok; } v[] = {
        {"abc", true}, {"my-bucket.v2", true}, {"a1b", true}, {"ab", false},
        {"ABC", false}, {"a_b", false}, {"-ab", false}, {"ab-", false}, {".ab", false},
        {"a..b", false}, {"a.-b", false}, {"a-.b", false}, {"192.168.1.1", false},
        {"1.2.3", true}, {"..", false}, {"...", false},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},   /* 63 */
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false}, /* 64 */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (mc_objects_bucket_valid(v[i].name, strlen(v[i].name)) != v[i].ok)
            fail_msg("bucket \"%s\": want %s", v[i].name, v[i].ok ? "valid" : "invalid");
}

static void preconditions_follow_rfc9110_order(void **state)
{
    (void)state;
    const char *etag = "\"0123456789abcdef0123456789abcdef\"";
    const time_t mtime = 1700000000;
    char before[MC_HTTPDATE_LEN], at[MC_HTTPDATE_LEN];
    mc_httpdate_format(mtime - 60, before);
    mc_httpdate_format(mtime, at);
    static const char *W = "W/\"0123456789abcdef0123456789abcdef\"";
    const struct { mc_obj_preconds p; int want; } v[] = {
        {{NULL, NULL, NULL, NULL}, 0},
        {{NULL, "\"0123456789abcdef0123456789abcdef\"", NULL, NULL}, 304},
        {{NULL, "\"x\", W/\"0123456789abcdef0123456789abcdef\"", NULL, NULL}, 304},
        {{NULL, "*", NULL, NULL}, 304},
        {{NULL, "\"other\"", NULL, NULL}, 0},
        {{NULL, "\"other\"", at, NULL}, 0},          /* IMS ignored beside INM */
        {{NULL, NULL, at, NULL}, 304},
        {{NULL, NULL, before, NULL}, 0},
        {{NULL, NULL, "not a date", NULL}, 0},
        {{"\"other\"", NULL, NULL, NULL}, 412},
        {{W, NULL, NULL, NULL}, 412},                /* If-Match compares strongly */
        {{"*", NULL, NULL, NULL}, 0},
        {{"0123456789abcdef0123456789abcdef", NULL, NULL, NULL}, 0},
        {{NULL, NULL, NULL, before}, 412},
        {{NULL, NULL, NULL, at}, 0},
        {{etag, NULL, NULL, before}, 0},              /* IUS ignored beside If-Match */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int got = mc_objects_preconditions(&v[i].p, etag, mtime);
        if (got != v[i].want)
            fail_msg("case %zu: got %d, want %d", i, got, v[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hostile_paths_openat2),
        cmocka_unit_test(hostile_paths_realpath_fallback),
        cmocka_unit_test(bucket_names_follow_s3_rules),
        cmocka_unit_test(preconditions_follow_rfc9110_order),
    };
    return cmocka_run_group_tests(tests, build_tree, remove_tree);
}
