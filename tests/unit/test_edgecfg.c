/* test_edgecfg.c — meshcdn-edge's TLS and origin-TLS settings
 * (edge/edgecfg.h): defaults, the 8443 default port, what is required with
 * what, and the region an Amazon S3 host implies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_listen),
        cmocka_unit_test(test_origin_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
