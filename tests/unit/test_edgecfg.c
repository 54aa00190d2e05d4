/* test_edgecfg.c — meshcdn-edge's TLS and origin-TLS settings
 * (edge/edgecfg.h): defaults, the 8443 default port, what is required with
 * what, and the region an Amazon S3 host implies; glTF prefetch's keys;
 * segment_threshold per behavior. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "edge/edgecfg.h"

static int load(mc_edge_config *c, mc_err *err, const char *a1, const char *a2, const char *a3,
                const char *a4)
{
    char *argv[] = {"meshcdn-edge", "--origin-sign=none", "--workers=1", (char *)a1, (char *)a2,
                    (char *)a3, (char *)a4, NULL};
    int argc = 3;
    while (argv[argc])
        argc++;
    return mc_edge_config_load(c, argc, argv, err);
}

static void test_tls_listen(void **state)
{
    (void)state;
    mc_edge_config c;
    mc_err err = {0};
    /* no TLS unless asked */
    assert_int_equal(load(&c, &err, "--origin=http://127.0.0.1:9000/b", NULL, NULL, NULL), 0);
    assert_int_equal(c.tls_enabled, 0);
    assert_string_equal(c.sign_region, "us-east-1");
    assert_int_equal(c.origin_insecure, 0);               /* verification on by default */
    mc_edge_config_free(&c);
    /* an address alone gets 8443 */
    assert_int_equal(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--tls-listen=0.0.0.0",
                          "--tls.cert=/c.pem", "--tls.key=/k.pem"), 0);
    assert_int_equal(c.tls_enabled, 1);
    assert_string_equal(c.tls_host, "0.0.0.0");
    assert_int_equal(c.tls_port, 8443);
    assert_string_equal(c.tls_cert, "/c.pem");
    mc_edge_config_free(&c);
    assert_int_equal(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--tls-listen=[::1]:9443",
                          "--tls.cert=/c.pem", "--tls.key=/k.pem"), 0);
    assert_string_equal(c.tls_host, "::1");
    assert_int_equal(c.tls_port, 9443);
    mc_edge_config_free(&c);
    /* a certificate without tls_listen: the HTTP address, port 8443 */
    assert_int_equal(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--listen=10.0.0.1:80",
                          "--tls.cert=/c.pem", "--tls.key=/k.pem"), 0);
    assert_int_equal(c.tls_enabled, 1);
    assert_string_equal(c.tls_host, "10.0.0.1");
    assert_int_equal(c.tls_port, 8443);
    mc_edge_config_free(&c);
    /* what is missing is named */
    assert_true(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--tls-listen=0.0.0.0:8443", NULL, NULL) < 0);
    assert_non_null(strstr(err.msg, "tls_listen"));
    assert_non_null(strstr(err.msg, "[tls] cert"));
    assert_true(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--tls.cert=/c.pem", NULL, NULL) < 0);
    assert_non_null(strstr(err.msg, "key"));
    assert_true(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--tls-listen=nohost:x",
                     "--tls.cert=/c.pem", "--tls.key=/k.pem") < 0);
    assert_non_null(strstr(err.msg, "tls_listen"));
}

static void test_origin_tls(void **state)
{
    (void)state;
    mc_edge_config c;
    mc_err err = {0};
    /* the region follows an S3 host unless given; the bucket's host signs / */
    assert_int_equal(load(&c, &err, "--origin=https://models.s3.ap-northeast-1.amazonaws.com", NULL, NULL, NULL), 0);
    assert_string_equal(c.sign_region, "ap-northeast-1");
    assert_string_equal(c.origin_base, "https://models.s3.ap-northeast-1.amazonaws.com");
    assert_string_equal(c.origin_path, "");
    mc_edge_config_free(&c);
    assert_int_equal(load(&c, &err, "--origin=https://s3.eu-west-3.amazonaws.com/models",
                          "--origin.region=us-west-1", NULL, NULL), 0);
    assert_string_equal(c.sign_region, "us-west-1");
    assert_string_equal(c.origin_path, "/models");
    mc_edge_config_free(&c);
    assert_int_equal(load(&c, &err, "--origin=https://127.0.0.1/b", "--origin.insecure=true",
                          "--origin.ca_dir=/", NULL), 0);
    assert_int_equal(c.origin_insecure, 1);
    assert_string_equal(c.origin_ca_dir, "/");
    mc_edge_config_free(&c);
    assert_true(load(&c, &err, "--origin=https://127.0.0.1/b", "--origin.ca_file=/nonexistent/ca.pem", NULL, NULL) < 0);
    assert_non_null(strstr(err.msg, "origin.ca_file"));
}

/* An INI file with text; its path in path (caller unlinks). */
static void write_ini(char path[64], const char *text)
{
    snprintf(path, 64, "/tmp/mc-edgecfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_prefetch_keys(void **state)
{
    (void)state;
    mc_edge_config c;
    mc_err err = {0};
    /* off by default, with the documented limits */
    assert_int_equal(load(&c, &err, "--origin=http://127.0.0.1:9000/b", NULL, NULL, NULL), 0);
    assert_int_equal(c.policy.prefetch, 0);
    assert_int_equal(c.prefetch_max_refs, 32);
    assert_int_equal(c.prefetch_concurrency, 6);
    assert_int_equal(c.prefetch_queue, 256);
    assert_true(c.prefetch_max_bytes == 256ull << 20);
    assert_true(c.prefetch_max_gltf == 4ull << 20);
    assert_int_equal(c.prefetch_preconnect, 4);
    assert_true(c.preconnect_idle_ms == 2000);
    mc_edge_config_free(&c);
    /* [cache] for the default behavior, prefetch= per behavior, [prefetch] limits */
    char path[64], arg[96];
    write_ini(path, "[cache]\nprefetch = on\n[behavior]\n/off/ = prefetch=off\n/inherit/ = max_variants=4\n"
                    "[prefetch]\nmax_refs = 5\nmax_bytes = 10M\nconcurrency = 2\nqueue = 0\nmax_gltf_size = 64K\n"
                    "preconnect = 0\npreconnect_idle = 250ms\n");
    snprintf(arg, sizeof arg, "--config=%s", path);
    assert_int_equal(load(&c, &err, "--origin=http://127.0.0.1:9000/b", arg, NULL, NULL), 0);
    assert_int_equal(c.policy.prefetch, 1);
    assert_int_equal(mc_edge_policy_for(&c, "/off/a.gltf")->prefetch, 0);
    assert_int_equal(mc_edge_policy_for(&c, "/inherit/a.gltf")->prefetch, 1);
    assert_int_equal(mc_edge_policy_for(&c, "/m/a.gltf")->prefetch, 1);
    assert_int_equal(c.prefetch_max_refs, 5);
    assert_int_equal(c.prefetch_concurrency, 2);
    assert_int_equal(c.prefetch_queue, 0);
    assert_true(c.prefetch_max_bytes == 10ull << 20);
    assert_true(c.prefetch_max_gltf == 64ull << 10);
    assert_int_equal(c.prefetch_preconnect, 0);
    assert_true(c.preconnect_idle_ms == 250);
    mc_edge_config_free(&c);
    unlink(path);
    /* a bad value is named */
    write_ini(path, "[behavior]\n/m/ = prefetch=maybe\n");
    snprintf(arg, sizeof arg, "--config=%s", path);
    assert_true(load(&c, &err, "--origin=http://127.0.0.1:9000/b", arg, NULL, NULL) < 0);
    assert_non_null(strstr(err.msg, "behavior./m/: \"prefetch\""));
    unlink(path);
    assert_true(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--prefetch.concurrency=0", NULL, NULL) < 0);
    assert_non_null(strstr(err.msg, "concurrency"));
    /* preconnect: at most 64 (the per-worker pool's bound), an idle time of at least 1ms */
    assert_true(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--prefetch.preconnect=65", NULL, NULL) < 0);
    assert_non_null(strstr(err.msg, "preconnect"));
    assert_true(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--prefetch.preconnect_idle=0s", NULL, NULL) < 0);
    assert_non_null(strstr(err.msg, "preconnect_idle"));
}

static void test_segment_threshold_keys(void **state)
{
    (void)state;
    mc_edge_config c;
    mc_err err = {0};
    /* [edge] segment_threshold (64M) is every behavior's unless it sets its own */
    assert_int_equal(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--behavior./m/=max_variants=4", NULL, NULL), 0);
    assert_true(c.segment_threshold == 64ull << 20);
    assert_true(c.policy.segment_threshold == 64ull << 20);
    assert_true(mc_edge_policy_for(&c, "/m/a.glb")->segment_threshold == 64ull << 20);
    assert_true(c.segment_size == 8ull << 20);
    mc_edge_config_free(&c);
    char path[64], arg[96];
    write_ini(path, "[edge]\nsegment_threshold = 1M\n[behavior]\n/whole/ = segment_threshold=0\n"
                    "/low/ = segment_threshold=512K max_ttl=1h\n/inherit/ = max_variants=4\n");
    snprintf(arg, sizeof arg, "--config=%s", path);
    assert_int_equal(load(&c, &err, "--origin=http://127.0.0.1:9000/b", arg, NULL, NULL), 0);
    assert_true(c.policy.segment_threshold == 1ull << 20);
    assert_true(mc_edge_policy_for(&c, "/whole/a.glb")->segment_threshold == 0);
    assert_true(mc_edge_policy_for(&c, "/low/a.glb")->segment_threshold == 512ull << 10);
    assert_int_equal(mc_edge_policy_for(&c, "/low/a.glb")->max_ttl_s, 3600);
    assert_true(mc_edge_policy_for(&c, "/inherit/a.glb")->segment_threshold == 1ull << 20);
    assert_true(mc_edge_policy_for(&c, "/other/a.glb")->segment_threshold == 1ull << 20);
    mc_edge_config_free(&c);
    unlink(path);
    /* a flag wins over the file for the default; a bad size is named */
    assert_int_equal(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--edge.segment_threshold=0",
                          "--behavior./big/=segment_threshold=2G", NULL), 0);
    assert_true(c.policy.segment_threshold == 0);
    assert_true(mc_edge_policy_for(&c, "/big/a.glb")->segment_threshold == 2ull << 30);
    mc_edge_config_free(&c);
    assert_true(load(&c, &err, "--origin=http://127.0.0.1:9000/b", "--behavior./m/=segment_threshold=lots", NULL,
                     NULL) < 0);
    assert_non_null(strstr(err.msg, "behavior./m/: \"segment_threshold\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_listen),
        cmocka_unit_test(test_origin_tls),
        cmocka_unit_test(test_prefetch_keys),
        cmocka_unit_test(test_segment_threshold_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
