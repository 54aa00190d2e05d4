/* test_snap.c — configuration snapshots (edge/snap.h): what a reload
 * reports as changed or as needing a restart, that restart-only keys keep
 * their running values, deep copies, and reference counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "edge/snap.h"

#define MAXARGS 12

/* Load "meshcdn-edge --origin-sign=none --origin=... ARGS..." */
static void load(mc_edge_config *c, const char *const *args)
{
    char *argv[MAXARGS + 4] = {"meshcdn-edge", "--origin-sign=none", "--workers=2"};
    int argc = 3;
    int has_origin = 0;
    for (int i = 0; args && args[i]; i++) {
        has_origin |= strncmp(args[i], "--origin=", 9) == 0;
        argv[argc++] = (char *)args[i];
    }
    if (!has_origin)
        argv[argc++] = "--origin=http://127.0.0.1:9000/b";
    mc_err err = {0};
    int rc = mc_edge_config_load(c, argc, argv, &err);
    if (rc != 0)
        fail_msg("load: %s", err.msg);
}

static void diff(const char *const *a, const char *const *b, mc_snap_diff *d)
{
    mc_edge_config x, y;
    load(&x, a);
    load(&y, b);
    mc_snap_diff_configs(&x, &y, d);
    mc_edge_config_free(&x);
    mc_edge_config_free(&y);
}

/* One case: two command lines, the change and restart lists expected. */
typedef struct diff_case {
    const char *a[MAXARGS];
    const char *b[MAXARGS];
    const char *changed;
    const char *restart;
} diff_case;

static const diff_case cases[] = {
    {{NULL}, {NULL}, "", ""},   /* the same configuration loaded twice: nothing */
    {{"--behavior./m/=max_ttl=10s", NULL}, {"--behavior./m/=max_ttl=20s", NULL}, "behavior:/m/", ""},
    {{"--behavior./m/=max_ttl=10s", NULL}, {"--behavior./n/=max_ttl=10s", NULL}, "behavior:/m/ behavior:/n/", ""},
    {{NULL}, {"--cache.default_ttl=1h", NULL}, "cache", ""},
    {{NULL}, {"--parents.p1=http://127.0.0.1:8081", NULL}, "parents", ""},
    {{NULL}, {"--origin=http://127.0.0.1:9001/b", "--origin-secondary=http://127.0.0.1:9002/c", NULL},
     "origin.url origin.secondary_url", ""},
    {{NULL}, {"--log-level=debug", "--tier.fail_threshold=5", NULL}, "edge.log_level tier.fail_threshold", ""},
    {{NULL}, {"--listen=127.0.0.1:8181", "--store-size=2G", "--workers=3", "--node-id=x", NULL}, "",
     "edge.listen edge.workers edge.node_id store.size"},
    {{NULL}, {"--region=eu-1", "--edge.client_timeout=5s", NULL}, "edge.client_timeout", "edge.region"},
    /* segmenting: the threshold reloads (the default behavior's and each
     * behavior's), the segment size needs a restart */
    {{NULL}, {"--edge.segment_threshold=1M", NULL}, "edge.segment_threshold cache", ""},
    {{"--behavior./m/=segment_threshold=1M", NULL}, {"--behavior./m/=segment_threshold=0", NULL}, "behavior:/m/", ""},
    {{NULL}, {"--edge.segment_size=16M", NULL}, "", "edge.segment_size"},
};

static int words(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        n += (p == s || p[-1] == ' ') && *p != ' ';
    return n;
}

static void test_diff_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_snap_diff d;
        diff(cases[i].a, cases[i].b, &d);
        if (strcmp(d.changed, cases[i].changed) != 0 || strcmp(d.restart, cases[i].restart) != 0)
            fail_msg("case %zu: changed \"%s\" restart \"%s\", want \"%s\" / \"%s\"", i, d.changed, d.restart,
                     cases[i].changed, cases[i].restart);
        assert_int_equal(d.nchanged, words(cases[i].changed));
        assert_int_equal(d.nrestart, words(cases[i].restart));
    }
}

static void test_keep_restart_values(void **state)
{
    (void)state;
    mc_edge_config run, next;
    const char *a[] = {"--listen=127.0.0.1:8080", "--node-id=n1", "--store-size=1G", NULL};
    const char *b[] = {"--listen=127.0.0.1:9999", "--node-id=n2", "--store-size=2G", "--behavior./m/=max_ttl=5s", NULL};
    load(&run, a);
    load(&next, b);
    mc_snap_keep_restart(&next, &run);
    assert_int_equal(next.listen_port, 8080);
    assert_string_equal(next.node_id, "n1");
    assert_int_equal(next.store_size, 1ull << 30);
    assert_int_equal(next.nbehaviors, 1);              /* reloadable: the new value */
    mc_snap_diff d;
    mc_snap_diff_configs(&run, &next, &d);
    assert_string_equal(d.restart, "");
    assert_string_equal(d.changed, "behavior:/m/");
    mc_edge_config_free(&run);
    mc_edge_config_free(&next);
}

static void test_long_lists_are_cut(void **state)
{
    (void)state;
    mc_edge_config a, b;
    load(&a, NULL);
    load(&b, NULL);
    for (int i = 0; i < 32; i++) {   /* 32 behaviors with long prefixes */
        snprintf(b.behaviors[i].prefix, sizeof b.behaviors[i].prefix, "/a-rather-long-prefix-number-%02d/", i);
    }
    b.nbehaviors = 32;
    mc_snap_diff d;
    mc_snap_diff_configs(&a, &b, &d);
    assert_int_equal(d.nchanged, 32);
    assert_true(strlen(d.changed) < sizeof d.changed);
    assert_non_null(strstr(d.changed, "..."));
    mc_edge_config_free(&a);
    mc_edge_config_free(&b);
}

static void test_copy_and_refcount(void **state)
{
    (void)state;
    mc_edge_config c, copy;
    const char *a[] = {"--origin-secondary=http://127.0.0.1:9002/c", "--parents.p=http://127.0.0.1:8081", NULL};
    load(&c, a);
    assert_int_equal(mc_edge_config_copy(&copy, &c), 0);
    mc_snap_diff d;
    mc_snap_diff_configs(&c, &copy, &d);
    assert_int_equal(d.nchanged + d.nrestart, 0);
    mc_edge_snap *s;
    mc_err err = {0};
    assert_int_equal(mc_snap_new(&s, &copy, 7, &err), 0);
    assert_int_equal(copy.nparents, 0);                /* moved into the snapshot */
    assert_string_equal(s->host, "127.0.0.1:9000");
    assert_string_equal(s->host2, "127.0.0.1:9002");
    assert_null(s->signer);                            /* origin-sign none */
    assert_int_equal(s->generation, 7);
    mc_edge_snap *r = mc_snap_ref(s);
    mc_snap_unref(s);
    assert_string_equal(r->cfg.parents[0].name, "p");  /* still alive: one reference left */
    mc_snap_unref(r);                                  /* freed (LeakSanitizer checks) */
    mc_snap_unref(NULL);
    mc_edge_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_cases),
        cmocka_unit_test(test_keep_restart_values),
        cmocka_unit_test(test_long_lists_are_cut),
        cmocka_unit_test(test_copy_and_refcount),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
