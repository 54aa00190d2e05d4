/* test_ctl.c — meshcdnctl's command line, bodies and output (ctl/cmd.h, ctl/render.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "ctl/cmd.h"
#include "ctl/render.h"

#define MAXW 16

/* Split a command line on spaces into argv (static storage; '|' stands for a
 * space inside one word). */
static int split(const char *line, char **argv)
{
    static char buf[1024];
    int n = 0;
    snprintf(buf, sizeof buf, "meshcdnctl %s", line);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && n < MAXW;
         t = strtok_r(NULL, " ", &save)) {
        for (char *p = t; *p; p++)
            if (*p == '|')
                *p = ' ';
        argv[n++] = t;
    }
    argv[n] = NULL;
    return n;
}

static int parse(const char *line, mc_ctl_opts *o, mc_err *err)
{
    static char *argv[MAXW + 1];
    int argc = split(line, argv);
    memset(err, 0, sizeof *err);
    return mc_ctl_parse(o, argc, argv, err);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* Command lines that parse, and the JSON body they make ("" = not a body command). */
static void test_good_command_lines(void **state)
{
    static const struct {
        const char *line;
        mc_ctl_cmd cmd;
        const char *body;
    } cases[] = {
        {"invalidate /a.glb", MC_CTL_CMD_INVALIDATE, "{\"paths\":[\"/a.glb\"]}"},
        {"invalidate /a.glb /models/chair/*", MC_CTL_CMD_INVALIDATE,
         "{\"paths\":[\"/a.glb\",\"/models/chair/*\"]}"},
        {"invalidate --tag chair --tag=sku-123", MC_CTL_CMD_INVALIDATE,
         "{\"surrogate_keys\":[\"chair\",\"sku-123\"]}"},
        {"invalidate --all", MC_CTL_CMD_INVALIDATE, "{\"all\":true}"},
        {"invalidate --soft --all", MC_CTL_CMD_INVALIDATE, "{\"all\":true,\"soft\":true}"},
        {"invalidate /a --tag k --soft --wait --timeout 5s", MC_CTL_CMD_INVALIDATE,
         "{\"paths\":[\"/a\"],\"surrogate_keys\":[\"k\"],\"soft\":true}"},
        {"invalidate /* ", MC_CTL_CMD_INVALIDATE, "{\"paths\":[\"/*\"]}"},
        {"invalidate -- /a", MC_CTL_CMD_INVALIDATE, "{\"paths\":[\"/a\"]}"},
        {"invalidate /with|space.glb", MC_CTL_CMD_INVALIDATE, "{\"paths\":[\"/with space.glb\"]}"},
        {"purge --edge http://e:9080 /a.glb --soft", MC_CTL_CMD_PURGE,
         "{\"paths\":[\"/a.glb\"],\"soft\":true}"},
        {"--edge http://e:9080 purge --all", MC_CTL_CMD_PURGE, "{\"all\":true}"},
        {"status I12", MC_CTL_CMD_STATUS, ""},
        {"status 12 --wait --json", MC_CTL_CMD_STATUS, ""},
        {"list", MC_CTL_CMD_LIST, ""},
        {"list --limit 5", MC_CTL_CMD_LIST, ""},
        {"--json --control http://c:9001 edges", MC_CTL_CMD_EDGES, ""},
        {"edges --region eu-west-1 --credentials /k", MC_CTL_CMD_EDGES, ""},
        {"--help", MC_CTL_CMD_HELP, ""},
        {"status --help", MC_CTL_CMD_HELP, ""},
        {"-h", MC_CTL_CMD_HELP, ""},
        {"--version", MC_CTL_CMD_VERSION, ""},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_ctl_opts o;
        mc_err err;
        int rc = parse(cases[i].line, &o, &err);
        if (rc != 0)
            fail_msg("\"%s\": %s", cases[i].line, err.msg);
        assert_int_equal(o.cmd, cases[i].cmd);
        if (cases[i].body[0]) {
            char *b = mc_ctl_body(&o);
            assert_non_null(b);
            if (strcmp(b, cases[i].body) != 0)
                fail_msg("\"%s\": body %s, expected %s", cases[i].line, b, cases[i].body);
            free(b);
        }
        mc_ctl_opts_free(&o);
    }
}

static void test_options_land_where_they_belong(void **state)
{
    mc_ctl_opts o;
    mc_err err;
    (void)state;
    assert_int_equal(parse("--control http://c:1 --credentials /k --region r --json status "
                           "I7 --wait --timeout 250ms", &o, &err), 0);
    assert_string_equal(o.control_url, "http://c:1");
    assert_string_equal(o.credentials, "/k");
    assert_string_equal(o.region, "r");
    assert_int_equal(o.json, 1);
    assert_int_equal(o.wait, 1);
    assert_int_equal(o.timeout_ms, 250);
    assert_string_equal(o.id, "I7");
    mc_ctl_opts_free(&o);

    assert_int_equal(parse("invalidate /a", &o, &err), 0);
    assert_int_equal(o.timeout_ms, MC_CTL_DEFAULT_TIMEOUT_MS);
    assert_int_equal(o.wait, 0);
    assert_null(o.control_url);
    mc_ctl_opts_free(&o);

    assert_int_equal(parse("list --limit=20", &o, &err), 0);
    assert_int_equal(o.limit, 20);
    mc_ctl_opts_free(&o);

    assert_int_equal(parse("status --help", &o, &err), 0);
    assert_int_equal(o.help_for, MC_CTL_CMD_STATUS);
    mc_ctl_opts_free(&o);
}

/* Command lines refused before anything is sent, with the words a person needs. */
static void test_usage_errors(void **state)
{
    static const struct {
        const char *line;
        const char *why;
    } cases[] = {
        {"", "no command"},
        {"frob", "unknown command"},
        {"invalidate", "nothing to invalidate"},
        {"invalidate --soft", "nothing to invalidate"},
        {"invalidate a.glb", "does not start with '/'"},
        {"invalidate models/*", "does not start with '/'"},
        {"invalidate /a/*/b", "'*' that is not its last"},
        {"invalidate /a** ", "'*' that is not its last"},
        {"invalidate --tag a|b", "not a token"},
        {"invalidate --tag= ", "is empty"},
        {"invalidate /a --timeout", "needs a value"},
        {"invalidate /a --timeout 0", "--timeout"},
        {"invalidate /a --timeout -1s", "--timeout"},
        {"invalidate /a --timeout 5x", "--timeout"},
        {"invalidate /a --timeout 10s", "add --wait"},
        {"status I1 --timeout 10s", "add --wait"},
        {"invalidate /a --timeout 5m", "add --wait"},
        {"invalidate /a --limit 3", "unknown option"},
        {"invalidate /a -x", "unknown option"},
        {"invalidate /a --edge http://e", "--edge is for purge"},
        {"purge /a", "--edge URL is required"},
        {"purge --edge http://e", "nothing to invalidate"},
        {"purge --edge http://e /a --wait", "unknown option"},
        {"status", "which invalidation"},
        {"status I", "not an invalidation id"},
        {"status Ix1", "not an invalidation id"},
        {"status 1 2", "one ID only"},
        {"list --limit 0", "--limit"},
        {"list --limit 100001", "--limit"},
        {"list --limit 1e3", "--limit"},
        {"list I1", "unexpected argument"},
        {"edges --all", "unknown option"},
        {"--wait invalidate /a", "unknown option"},
        {"--json=1 edges", "takes no value"},
        {"edges --version", "unknown option"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_ctl_opts o;
        mc_err err;
        int rc = parse(cases[i].line, &o, &err);
        if (rc == 0)
            fail_msg("\"%s\" parsed; expected an error with \"%s\"", cases[i].line, cases[i].why);
        assert_int_equal(rc, MC_E_INVAL);
        if (!strstr(err.msg, cases[i].why))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cases[i].line, err.msg, cases[i].why);
        mc_ctl_opts_free(&o);
    }
}

static void test_limits(void **state)
{
    (void)state;
    char big[1100];
    memset(big, 'a', sizeof big - 1);
    big[0] = '/';
    big[1025] = '\0';
    assert_non_null(mc_ctl_check_path(big));          /* 1025 bytes */
    big[1024] = '\0';
    assert_null(mc_ctl_check_path(big));              /* 1024 bytes */
    assert_non_null(mc_ctl_check_path(""));
    assert_non_null(mc_ctl_check_path("/a\tb"));
    assert_null(mc_ctl_check_path("/"));
    assert_null(mc_ctl_check_tag("sku-123"));
    assert_non_null(mc_ctl_check_tag("a\nb"));
    assert_null(mc_ctl_check_tag(big + 1));                /* 1023 bytes */

    /* 3000 items pass, 3001 do not */
    static char *argv[3100];
    static char words[3100][16];
    int argc = 0;
    argv[argc++] = "meshcdnctl";
    argv[argc++] = "invalidate";
    for (int i = 0; i < 3000; i++) {
        snprintf(words[i], sizeof words[i], "/p/%d", i);
        argv[argc++] = words[i];
    }
    mc_ctl_opts o;
    mc_err err = {0};
    assert_int_equal(mc_ctl_parse(&o, argc, argv, &err), 0);
    assert_int_equal(o.npaths, 3000);
    mc_ctl_opts_free(&o);
    argv[argc++] = "--tag=one-more";
    assert_int_equal(mc_ctl_parse(&o, argc, argv, &err), MC_E_INVAL);
    assert_contains(err.msg, "3000");
    mc_ctl_opts_free(&o);
}

static void test_norm_id(void **state)
{
    static const char *const good[][2] = {
        {"I12", "I12"}, {"12", "I12"}, {"i7", "I7"}, {"I0012", "I12"}, {"0", "I0"},
    };
    static const char *const bad[] = {"", "I", "I-1", "12a", "x12", "I 1", "99999999999999999999"};
    char out[32];
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(mc_ctl_norm_id(good[i][0], out), 0);
        assert_string_equal(out, good[i][1]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mc_ctl_norm_id(bad[i], out), MC_E_INVAL);
}

/* ---- output ----------------------------------------------------------------- */

static char *render(void (*fn)(FILE *, const json_t *), const char *doc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    json_t *j = json_loads(doc, 0, NULL);
    assert_non_null(f);
    assert_non_null(j);
    fn(f, j);
    fclose(f);
    json_decref(j);
    return text;
}

static void test_print_created(void **state)
{
    static const struct {
        const char *line;
        const char *out;
    } cases[] = {
        {"invalidate /a /b", "I12  InProgress  2 paths\n"},
        {"invalidate /a", "I12  InProgress  1 path\n"},
        {"invalidate /a --tag k --soft", "I12  InProgress  1 path, 1 key, soft\n"},
        {"invalidate --all", "I12  InProgress  all\n"},
        {"invalidate --tag a --tag b", "I12  InProgress  2 keys\n"},
    };
    (void)state;
    json_t *ans = json_loads("{\"id\":\"I12\",\"seq\":12,\"created\":\"2026-11-25T07:40:00Z\","
                             "\"status\":\"InProgress\"}", 0, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_ctl_opts o;
        mc_err err;
        assert_int_equal(parse(cases[i].line, &o, &err), 0);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        mc_ctl_print_created(f, ans, &o);
        fclose(f);
        assert_string_equal(text, cases[i].out);
        free(text);
        mc_ctl_opts_free(&o);
    }
    json_decref(ans);
}

static const char status_doc[] =
    "{\"id\":\"I12\",\"seq\":12,\"created\":\"2026-11-25T07:40:00Z\","
    "\"paths\":[\"/a.glb\",\"/models/chair/*\"],\"surrogate_keys\":[\"chair\"],"
    "\"all\":false,\"soft\":true,\"status\":\"InProgress\",\"edges\":["
    "{\"node\":\"edge-a\",\"region\":\"us-east-1\",\"state\":\"applied\",\"acked\":12,"
    "\"last_seen\":\"2026-11-25T07:40:01Z\"},"
    "{\"node\":\"edge-bravo\",\"region\":\"eu-west-1\",\"state\":\"pending\",\"acked\":11,"
    "\"last_seen\":\"2026-11-25T07:40:02Z\"},"
    "{\"node\":\"edge-c\",\"region\":\"ap-south-1\",\"state\":\"unreachable\",\"acked\":3,"
    "\"last_seen\":null}]}";

static void test_print_status(void **state)
{
    (void)state;
    char *t = render(mc_ctl_print_status, status_doc);
    assert_string_equal(t,
        "I12  InProgress  created 2026-11-25T07:40:00Z  edges: 1 applied, 1 pending, 1 unreachable\n"
        "paths: /a.glb /models/chair/*\n"
        "surrogate keys: chair\n"
        "soft: marked stale, not deleted\n"
        "\n"
        "NODE        REGION      STATE        ACKED  LAST SEEN\n"
        "edge-a      us-east-1   applied      12     2026-11-25T07:40:01Z\n"
        "edge-bravo  eu-west-1   pending      11     2026-11-25T07:40:02Z\n"
        "edge-c      ap-south-1  unreachable  3      -\n");
    free(t);
    t = render(mc_ctl_print_status, "{\"id\":\"I1\",\"status\":\"Completed\",\"all\":true,"
                                    "\"created\":\"X\",\"edges\":[]}");
    assert_string_equal(t, "I1  Completed  created X\nall: everything\nno registered edges\n");
    free(t);

    json_t *j = json_loads(status_doc, 0, NULL);
    char names[64];
    assert_int_equal(mc_ctl_count_edges(j, "pending", names, sizeof names), 1);
    assert_string_equal(names, "edge-bravo");
    assert_int_equal(mc_ctl_count_edges(j, "applied", NULL, 0), 1);
    assert_int_equal(mc_ctl_count_edges(j, "gone", names, sizeof names), 0);
    assert_string_equal(names, "");
    json_decref(j);
}

static void test_print_list_edges_purged(void **state)
{
    (void)state;
    char *t = render(mc_ctl_print_list,
        "{\"invalidations\":[{\"id\":\"I13\",\"seq\":13,\"created\":\"C13\",\"status\":\"InProgress\","
        "\"paths\":[],\"surrogate_keys\":[\"chair\",\"sofa\"],\"all\":false,\"soft\":true},"
        "{\"id\":\"I12\",\"seq\":12,\"created\":\"C12\",\"status\":\"Completed\","
        "\"paths\":[\"/a.glb\"],\"surrogate_keys\":[],\"all\":true,\"soft\":false}]}");
    assert_string_equal(t,
        "ID   CREATED  STATUS      WHAT\n"
        "I13  C13      InProgress  keys: chair sofa; soft\n"
        "I12  C12      Completed   /a.glb; all\n");
    free(t);
    t = render(mc_ctl_print_list, "{\"invalidations\":[]}");
    assert_string_equal(t, "no invalidations\n");
    free(t);

    t = render(mc_ctl_print_edges,
        "{\"edges\":[{\"node\":\"e1\",\"region\":\"us-east-1\",\"acked\":4,\"last_seen\":\"T\","
        "\"state\":\"live\"}]}");
    assert_string_equal(t, "NODE  REGION     STATE  ACKED  LAST SEEN\n"
                           "e1    us-east-1  live   4      T\n");
    free(t);

    t = render(mc_ctl_print_purged, "{\"purged\":3,\"soft\":false}");
    assert_string_equal(t, "purged 3 objects\n");
    free(t);
    t = render(mc_ctl_print_purged, "{\"purged\":1,\"soft\":true}");
    assert_string_equal(t, "purged 1 object (soft: marked stale)\n");
    free(t);
}

/* A long path list is cut, not printed whole on one line. */
static void test_long_lists_are_cut(void **state)
{
    (void)state;
    json_t *paths = json_array();
    for (int i = 0; i < 100; i++) {
        char p[32];
        snprintf(p, sizeof p, "/models/m%03d.glb", i);
        json_array_append_new(paths, json_string(p));
    }
    json_t *inv = json_pack("{s:s, s:s, s:s, s:o}", "id", "I1", "created", "C", "status",
                            "Completed", "paths", paths);
    json_t *doc = json_pack("{s:[o]}", "invalidations", inv);
    char *s = json_dumps(doc, 0);
    char *t = render(mc_ctl_print_list, s);
    assert_contains(t, "/models/m000.glb /models/m001.glb");
    assert_contains(t, "more)");
    assert_true(strlen(t) < 200);
    free(t);
    free(s);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_command_lines),
        cmocka_unit_test(test_options_land_where_they_belong),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_norm_id),
        cmocka_unit_test(test_print_created),
        cmocka_unit_test(test_print_status),
        cmocka_unit_test(test_print_list_edges_purged),
        cmocka_unit_test(test_long_lists_are_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
