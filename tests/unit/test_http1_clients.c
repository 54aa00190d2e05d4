/* test_http1_clients.c — the per-client connection table (edge/http1.h):
 * an IPv4 address is one client, an IPv6 /64 is one client whatever its
 * interface identifier, an IPv4-mapped IPv6 address is the IPv4 client, and
 * two tables (two seeds) spread the same clients differently. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "edge/http1.h"

static unsigned slot4(const mc_http_clients *t, const char *ip)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)(rand() & 0xffff));   /* the port never matters */
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return mc_http_client_slot(t, (struct sockaddr *)&a);
}

static unsigned slot6(const mc_http_clients *t, const char *ip)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons((uint16_t)(rand() & 0xffff));
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return mc_http_client_slot(t, (struct sockaddr *)&a);
}

static void test_ipv4_is_per_address(void **state)
{
    (void)state;
    mc_http_clients *t = mc_http_clients_new();
    assert_non_null(t);
    assert_int_equal(slot4(t, "192.0.2.7"), slot4(t, "192.0.2.7"));
    assert_true(slot4(t, "192.0.2.7") < MC_HTTP_CLIENT_SLOTS);
    /* neighbours are different clients (almost always different slots) */
    int differ = 0;
    char ip[32];
    for (int i = 1; i < 50; i++) {
        snprintf(ip, sizeof ip, "192.0.2.%d", i);
        differ += slot4(t, ip) != slot4(t, "192.0.2.0");
    }
    assert_true(differ >= 48);
    free(t);
}

static void test_ipv6_is_per_64(void **state)
{
    (void)state;
    mc_http_clients *t = mc_http_clients_new();
    assert_non_null(t);
    unsigned s = slot6(t, "2001:db8:1:2::1");
    assert_int_equal(slot6(t, "2001:db8:1:2:ffff:ffff:ffff:fffe"), s);
    assert_int_equal(slot6(t, "2001:db8:1:2:1234:5678:9abc:def0"), s);
    int differ = 0;
    char ip[64];
    for (int i = 3; i < 53; i++) {
        snprintf(ip, sizeof ip, "2001:db8:1:%x::1", i);
        differ += slot6(t, ip) != s;
    }
    assert_true(differ >= 48);
    assert_int_equal(slot6(t, "::ffff:192.0.2.7"), slot4(t, "192.0.2.7"));
    free(t);
}

static void test_seed_differs_per_table(void **state)
{
    (void)state;
    mc_http_clients *a = mc_http_clients_new(), *b = mc_http_clients_new();
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a->seed != b->seed);
    int same = 0;
    char ip[32];
    for (int i = 0; i < 100; i++) {
        snprintf(ip, sizeof ip, "198.51.100.%d", i);
        same += slot4(a, ip) == slot4(b, ip);
    }
    assert_true(same < 5);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_is_per_address),
        cmocka_unit_test(test_ipv6_is_per_64),
        cmocka_unit_test(test_seed_differs_per_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
