/* test_config.c — common/config.h: INI files, flags over files, the error
 * messages a person reads (file:line: section.key: ...), and the value
 * parsers. Config files go to a mkdtemp directory removed at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/config.h"
#include "common/err.h"

static const mc_cfg_opt schema[] = {
    {"edge", "name", NULL, MC_CFG_STR, "edge-1", "node name", NULL, 0, 0},
    {"edge", "workers", "workers", MC_CFG_INT, "4", "worker threads", NULL, 1, 64},
    {"edge", "listen", "listen", MC_CFG_ADDR, "127.0.0.1:8080", "HTTP listener", NULL, 0, 0},
    {"edge", "verbose", "verbose", MC_CFG_BOOL, "false", "log every request", NULL, 0, 0},
    {"edge", "anonymous_read", NULL, MC_CFG_BOOL, "true", "serve without auth", NULL, 0, 0},
    {"store", "size", "cache-size", MC_CFG_SIZE, "1G", "store size", NULL, 0, 0},
    {"store", "path", NULL, MC_CFG_STR, NULL, "store directory", NULL, 0, 0},
    {"store", "ttl", NULL, MC_CFG_DURATION, "1h", "default TTL", NULL, 0, 0},
    {"store", "offset", NULL, MC_CFG_INT, "0", "unbounded integer", NULL, 0, 0},
    {"origin", "auth", "auth", MC_CFG_ENUM, "sigv4", "origin auth", "sigv4|none", 0, 0},
    {"ttl", "*", NULL, MC_CFG_MAP, NULL, "TTL per path prefix", NULL, 0, 0},
    {NULL, NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
};

/* ---- fixture: a temporary directory for INI files --------------------- */

#define MAX_FILES 64

typedef struct fixture {
    char dir[64];
    char *files[MAX_FILES];
    int nfiles;
} fixture;

static fixture fx;

static int group_setup(void **state)
{
    (void)state;
    snprintf(fx.dir, sizeof fx.dir, "%s", "/tmp/mc-test-config-XXXXXX");
    return mkdtemp(fx.dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < fx.nfiles; i++) {
        unlink(fx.files[i]);
        free(fx.files[i]);
    }
    fx.nfiles = 0;
    return rmdir(fx.dir);
}

/* Write text to DIR/name; the path stays valid until the group ends. */
static const char *write_ini(const char *name, const char *text)
{
    assert_true(fx.nfiles < MAX_FILES);
    size_t n = strlen(fx.dir) + strlen(name) + 2;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s", fx.dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    fx.files[fx.nfiles++] = path;
    return path;
}

/* argv from a NULL-terminated list; argv[0] is "prog". */
#define ARGV(...) ((char *[]){"prog", __VA_ARGS__, NULL})
#define ARGC(v) argc_of(v)

static int argc_of(char **v)
{
    int n = 0;
    while (v[n])
        n++;
    return n;
}

static mc_config *load_ok(char **argv, bool allow_args)
{
    mc_config *c = NULL;
    mc_err err = {0, ""};
    int rc = mc_config_load(&c, schema, argc_of(argv), argv, allow_args, &err);
    if (rc != MC_CONFIG_RUN)
        fail_msg("load: rc %d (%s): %s", rc, mc_err_name(rc), err.msg);
    assert_non_null(c);
    return c;
}

/* Load must fail with code; err.msg must start with prefix. */
static void load_fails(char **argv, bool allow_args, int code, const char *prefix)
{
    mc_config *c = (mc_config *)&c;   /* must be reset to NULL */
    mc_err err = {0, ""};
    int rc = mc_config_load(&c, schema, argc_of(argv), argv, allow_args, &err);
    if (rc != code)
        fail_msg("load: rc %d, want %d (%s)", rc, code, err.msg);
    assert_null(c);
    assert_int_equal(err.code, code);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fail_msg("error message\n  got:  %s\n  want: %s...", err.msg, prefix);
}

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
    static char buf[8][512];
    static int next;
    char *b = buf[next++ % 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof buf[0], fmt, ap);
    va_end(ap);
    return b;
}

/* ---- sources and precedence ------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    char *argv[] = {"prog", NULL};
    mc_config *c = load_ok(argv, false);
    assert_string_equal(mc_config_str(c, "edge", "name"), "edge-1");
    assert_int_equal(mc_config_int(c, "edge", "workers"), 4);
    assert_string_equal(mc_config_str(c, "edge", "listen"), "127.0.0.1:8080");
    assert_false(mc_config_bool(c, "edge", "verbose"));
    assert_true(mc_config_bool(c, "edge", "anonymous_read"));
    assert_int_equal(mc_config_size(c, "store", "size"), 1ULL << 30);
    assert_null(mc_config_str(c, "store", "path"));
    assert_int_equal(mc_config_duration_ms(c, "store", "ttl"), 3600000);
    assert_string_equal(mc_config_str(c, "origin", "auth"), "sigv4");
    assert_string_equal(mc_config_origin(c, "store", "size"), "default");
    assert_int_equal(mc_config_nargs(c), 0);
    assert_null(mc_config_arg(c, 0));
    mc_config_free(c);
    mc_config_free(NULL);
}

static const char full_ini[] =
    "# a comment\n"                       /* 1 */
    "[edge]\n"                            /* 2 */
    "name = edge-paris\n"                 /* 3 */
    "workers = 16\n"                      /* 4 */
    "listen = [::1]:9090\n"               /* 5 */
    "verbose = yes\n"                     /* 6 */
    "anonymous-read = off\n"              /* 7: '-' and '_' alike */
    "\n"                                  /* 8 */
    "[store]\n"                           /* 9 */
    "size = 512M ; inline comment\n"      /* 10 */
    "ttl = 90s\n"                         /* 11 */
    "path = /var/cache/meshcdn\n"         /* 12 */
    "offset = -7\n"                       /* 13 */
    "[origin]\n"                          /* 14 */
    "auth = none\n"                       /* 15 */
    "[ttl]\n"                             /* 16 */
    "/models/ = 1d\n"                     /* 17 */
    "/textures/ = 1h\n"                   /* 18 */
    "/ = 5m\n";                           /* 19 */

static void test_file_values(void **state)
{
    (void)state;
    const char *path = write_ini("full.ini", full_ini);
    mc_config *c = load_ok(ARGV("--config", (char *)path), false);
    assert_string_equal(mc_config_str(c, "edge", "name"), "edge-paris");
    assert_int_equal(mc_config_int(c, "edge", "workers"), 16);
    assert_string_equal(mc_config_str(c, "edge", "listen"), "[::1]:9090");
    assert_true(mc_config_bool(c, "edge", "verbose"));
    assert_false(mc_config_bool(c, "edge", "anonymous_read"));
    assert_false(mc_config_bool(c, "edge", "anonymous-read"));
    assert_int_equal(mc_config_size(c, "store", "size"), 512ULL << 20);
    assert_int_equal(mc_config_duration_ms(c, "store", "ttl"), 90000);
    assert_string_equal(mc_config_str(c, "store", "path"), "/var/cache/meshcdn");
    assert_int_equal(mc_config_int(c, "store", "offset"), -7);
    assert_string_equal(mc_config_str(c, "origin", "auth"), "none");
    assert_string_equal(mc_config_origin(c, "edge", "name"), strf("%s:3", path));
    assert_string_equal(mc_config_origin(c, "store", "size"), strf("%s:10", path));
    assert_string_equal(mc_config_origin(c, "origin", "auth"), strf("%s:15", path));
    mc_config_free(c);

    /* --config=FILE form */
    c = load_ok(ARGV(strf("--config=%s", path)), false);
    assert_int_equal(mc_config_int(c, "edge", "workers"), 16);
    mc_config_free(c);
}

static void test_flags_override_file_in_any_order(void **state)
{
    (void)state;
    const char *path = write_ini("override.ini", "[store]\nsize = 8G\nttl = 5s\n[edge]\nworkers = 2\n");
    char *orders[][5] = {
        {"prog", "--store.size=1G", "--config", (char *)path, NULL},
        {"prog", "--config", (char *)path, "--store.size=1G", NULL},
        {"prog", "--store.size", "1G", strf("--config=%s", path), NULL},
    };
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        mc_config *c = load_ok(orders[i], false);
        assert_int_equal(mc_config_size(c, "store", "size"), 1ULL << 30);
        assert_string_equal(mc_config_origin(c, "store", "size"), "--store.size");
        /* untouched keys keep the file's value */
        assert_int_equal(mc_config_duration_ms(c, "store", "ttl"), 5000);
        assert_string_equal(mc_config_origin(c, "store", "ttl"), strf("%s:3", path));
        mc_config_free(c);
    }
    /* among flags the last one wins */
    mc_config *c = load_ok(ARGV("--workers", "3", "--edge.workers=5", "--config", (char *)path), false);
    assert_int_equal(mc_config_int(c, "edge", "workers"), 5);
    assert_string_equal(mc_config_origin(c, "edge", "workers"), "--edge.workers");
    mc_config_free(c);
}

static void test_flag_forms_and_aliases(void **state)
{
    (void)state;
    mc_config *c = load_ok(ARGV("--edge.name", "edge-x", "--store.ttl=250ms", "--edge.listen",
                                "[::1]:8443", "--origin.auth=none", "--edge.anonymous-read=no"),
                           false);
    assert_string_equal(mc_config_str(c, "edge", "name"), "edge-x");
    assert_int_equal(mc_config_duration_ms(c, "store", "ttl"), 250);
    assert_string_equal(mc_config_str(c, "edge", "listen"), "[::1]:8443");
    assert_string_equal(mc_config_str(c, "origin", "auth"), "none");
    assert_false(mc_config_bool(c, "edge", "anonymous_read"));
    mc_config_free(c);

    /* a value may contain '=' and may be empty */
    c = load_ok(ARGV("--edge.name=a=b"), false);
    assert_string_equal(mc_config_str(c, "edge", "name"), "a=b");
    mc_config_free(c);
    c = load_ok(ARGV("--store.path="), false);
    assert_string_equal(mc_config_str(c, "store", "path"), "");
    mc_config_free(c);

    /* aliases, both forms; origin names the flag as given */
    c = load_ok(ARGV("--workers", "8", "--cache-size=2G", "--listen", "0.0.0.0:80", "--auth", "none"),
                false);
    assert_int_equal(mc_config_int(c, "edge", "workers"), 8);
    assert_int_equal(mc_config_size(c, "store", "size"), 2ULL << 30);
    assert_string_equal(mc_config_str(c, "edge", "listen"), "0.0.0.0:80");
    assert_string_equal(mc_config_str(c, "origin", "auth"), "none");
    assert_string_equal(mc_config_origin(c, "edge", "workers"), "--workers");
    assert_string_equal(mc_config_origin(c, "store", "size"), "--cache-size");
    mc_config_free(c);
}

static void test_bool_flags(void **state)
{
    (void)state;
    const char *path = write_ini("bool.ini", "[edge]\nverbose = on\n");
    mc_config *c = load_ok(ARGV("--verbose"), false);
    assert_true(mc_config_bool(c, "edge", "verbose"));
    mc_config_free(c);
    c = load_ok(ARGV("--edge.verbose"), false);
    assert_true(mc_config_bool(c, "edge", "verbose"));
    mc_config_free(c);
    c = load_ok(ARGV("--verbose=false"), false);
    assert_false(mc_config_bool(c, "edge", "verbose"));
    mc_config_free(c);
    c = load_ok(ARGV("--verbose=off", "--config", (char *)path), false);
    assert_false(mc_config_bool(c, "edge", "verbose"));
    mc_config_free(c);
    /* a bare bool flag does not swallow the next word */
    c = load_ok(ARGV("--verbose", "--workers", "2"), false);
    assert_true(mc_config_bool(c, "edge", "verbose"));
    assert_int_equal(mc_config_int(c, "edge", "workers"), 2);
    mc_config_free(c);
    load_fails(ARGV("--verbose=maybe"), false, MC_E_INVAL,
               "--verbose: edge.verbose: \"maybe\" is not a boolean");
}

/* ---- errors name where the value came from ---------------------------- */

static void test_file_value_error_names_line(void **state)
{
    (void)state;
    /* a valid line after the bad one must not hide the error */
    const char *path = write_ini("badsize.ini", "# store\n[store]\nsize = 8X\nttl = 5s\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL,
               strf("%s:3: store.size: \"8X\" is not a size", path));

    /* the first of several errors is the one reported */
    path = write_ini("twobad.ini", "[edge]\nworkers = 0\nnope = 1\nlisten = x\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL,
               strf("%s:2: edge.workers: 0 is out of range (1..64)", path));

    path = write_ini("baddur.ini", "[store]\n\nttl = soon\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL,
               strf("%s:3: store.ttl: \"soon\" is not a duration", path));
    path = write_ini("badaddr.ini", "[edge]\nlisten = 8080\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL,
               strf("%s:2: edge.listen: \"8080\" is not an address", path));
    path = write_ini("badbool.ini", "[edge]\nverbose = 2\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL,
               strf("%s:2: edge.verbose: \"2\" is not a boolean", path));

    /* flags cannot rescue a bad file: it is read first and must be valid */
    path = write_ini("badsize2.ini", "[store]\nsize = 8X\n");
    load_fails(ARGV("--store.size=1G", "--config", (char *)path), false, MC_E_INVAL,
               strf("%s:2: store.size: ", path));
}

static void test_flag_value_errors(void **state)
{
    (void)state;
    load_fails(ARGV("--store.size=8X"), false, MC_E_INVAL,
               "--store.size: store.size: \"8X\" is not a size (use 8G, 512M)");
    load_fails(ARGV("--store.size", "8X"), false, MC_E_INVAL, "--store.size: ");
    load_fails(ARGV("--cache-size", "-1"), false, MC_E_INVAL, "--cache-size: store.size: \"-1\"");
    load_fails(ARGV("--store.ttl=5x"), false, MC_E_INVAL, "--store.ttl: store.ttl: \"5x\" is not a duration");
    load_fails(ARGV("--listen=localhost"), false, MC_E_INVAL, "--listen: edge.listen: \"localhost\" is not an address");
}

static void test_unknown_keys_and_flags(void **state)
{
    (void)state;
    const char *path = write_ini("unknown.ini", "[edge]\nname = x\nworkrs = 4\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL,
               strf("%s:3: edge.workrs: unknown key", path));
    path = write_ini("unknownsect.ini", "[edge]\nname = x\n[nope]\nsize = 1\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL,
               strf("%s:4: nope.size: unknown key", path));
    path = write_ini("nosect.ini", "name = x\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL, strf("%s:1: .name: unknown key", path));

    load_fails(ARGV("--nope"), false, MC_E_INVAL, "--nope: unknown option");
    load_fails(ARGV("--store.nope=1"), false, MC_E_INVAL, "--store.nope: unknown option");
    load_fails(ARGV("--store"), false, MC_E_INVAL, "--store: unknown option");
    load_fails(ARGV("--store."), false, MC_E_INVAL, "--store.: unknown option");
}

static void test_missing_values_and_files(void **state)
{
    (void)state;
    load_fails(ARGV("--store.size"), false, MC_E_INVAL, "--store.size: needs a value");
    load_fails(ARGV("--workers"), false, MC_E_INVAL, "--workers: needs a value");
    load_fails(ARGV("--config"), false, MC_E_INVAL, "--config: needs a file name");

    char *missing = strf("%s/does-not-exist.ini", fx.dir);
    load_fails(ARGV("--config", missing), false, MC_E_IO,
               strf("%s: cannot open config file: ", missing));
    /* a directory is not a readable config file either */
    mc_config *c = NULL;
    mc_err err = {0, ""};
    char **argv = ARGV("--config", fx.dir);
    assert_int_equal(mc_config_load(&c, schema, argc_of(argv), argv, false, &err), MC_E_IO);
    assert_null(c);
    assert_string_equal(err.msg, strf("%s: cannot read config file: %s", fx.dir, strerror(EISDIR)));
}

static void test_ini_syntax_error_names_line(void **state)
{
    (void)state;
    const char *path = write_ini("syntax.ini", "[edge]\nname = x\n\nthis is not ini\nworkers = 2\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL,
               strf("%s:4: syntax error", path));
    path = write_ini("section.ini", "[edge]\nname = x\n[store\nsize = 1G\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL, strf("%s:3: syntax error", path));
    /* a syntax error before a bad value is the one reported */
    path = write_ini("syntax2.ini", "[store]\njunk\nsize = 8X\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL, strf("%s:2: syntax error", path));
    /* and a bad value before a syntax error likewise */
    path = write_ini("syntax3.ini", "[store]\nsize = 8X\njunk\n");
    load_fails(ARGV("--config", (char *)path), false, MC_E_INVAL,
               strf("%s:2: store.size: \"8X\" is not a size", path));

    /* an empty file and a comments-only file are fine */
    path = write_ini("empty.ini", "");
    mc_config *c = load_ok(ARGV("--config", (char *)path), false);
    assert_int_equal(mc_config_int(c, "edge", "workers"), 4);
    mc_config_free(c);
    path = write_ini("comments.ini", "; one\n# two\n\n");
    c = load_ok(ARGV("--config", (char *)path), false);
    mc_config_free(c);
}

static void test_enum_choices(void **state)
{
    (void)state;
    static const char *const ok[] = {"sigv4", "none"};
    for (size_t i = 0; i < 2; i++) {
        mc_config *c = load_ok(ARGV(strf("--auth=%s", ok[i])), false);
        assert_string_equal(mc_config_str(c, "origin", "auth"), ok[i]);
        mc_config_free(c);
    }
    load_fails(ARGV("--origin.auth=basic"), false, MC_E_INVAL,
               "--origin.auth: origin.auth: \"basic\" is not one of sigv4|none");
    /* whole-word, case-sensitive matches only */
    static const char *const bad[] = {"sig", "sigv", "sigv4x", "none|sigv4", "NONE", "", "|"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        load_fails(ARGV(strf("--auth=%s", bad[i])), false, MC_E_INVAL, "--auth: origin.auth: ");
}

static void test_int_range(void **state)
{
    (void)state;
    static const char *const ok[] = {"1", "64", "32"};
    static const int64_t want[] = {1, 64, 32};
    for (size_t i = 0; i < 3; i++) {
        mc_config *c = load_ok(ARGV("--workers", (char *)ok[i]), false);
        assert_int_equal(mc_config_int(c, "edge", "workers"), want[i]);
        mc_config_free(c);
    }
    load_fails(ARGV("--workers", "0"), false, MC_E_INVAL, "--workers: edge.workers: 0 is out of range (1..64)");
    load_fails(ARGV("--workers", "65"), false, MC_E_INVAL, "--workers: edge.workers: 65 is out of range (1..64)");
    load_fails(ARGV("--workers", "-1"), false, MC_E_INVAL, "--workers: edge.workers: -1 is out of range");
    load_fails(ARGV("--workers", "12x"), false, MC_E_INVAL, "--workers: edge.workers: \"12x\" is not an integer");
    load_fails(ARGV("--workers="), false, MC_E_INVAL, "--workers: edge.workers: \"\" is not an integer");
    load_fails(ARGV("--workers", "99999999999999999999"), false, MC_E_INVAL,
               "--workers: edge.workers: \"99999999999999999999\" is not an integer");
    /* min = max = 0: unbounded */
    mc_config *c = load_ok(ARGV("--store.offset=-9000000000"), false);
    assert_int_equal(mc_config_int(c, "store", "offset"), -9000000000LL);
    mc_config_free(c);
}

/* ---- MAP sections ------------------------------------------------------ */

typedef struct seen {
    int n, stop_at;
    char keys[8][64], values[8][64], where[8][600];
} seen;

static int collect(void *ud, const char *key, const char *value, const char *where)
{
    seen *s = ud;
    assert_true(s->n < 8);
    snprintf(s->keys[s->n], sizeof s->keys[0], "%s", key);
    snprintf(s->values[s->n], sizeof s->values[0], "%s", value);
    snprintf(s->where[s->n], sizeof s->where[0], "%s", where);
    s->n++;
    return s->n == s->stop_at ? 42 : 0;
}

static void test_map_section_order(void **state)
{
    (void)state;
    const char *path = write_ini("map.ini", full_ini);
    mc_config *c = load_ok(ARGV("--ttl./assets/=30s", "--config", (char *)path, "--ttl./models/=2h"), false);
    seen s = {0};
    assert_int_equal(mc_config_each(c, "ttl", collect, &s), 0);
    assert_int_equal(s.n, 5);
    static const char *const keys[] = {"/models/", "/textures/", "/", "/assets/", "/models/"};
    static const char *const values[] = {"1d", "1h", "5m", "30s", "2h"};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(s.keys[i], keys[i]);
        assert_string_equal(s.values[i], values[i]);
    }
    assert_string_equal(s.where[0], strf("%s:17", path));
    assert_string_equal(s.where[2], strf("%s:19", path));
    assert_string_equal(s.where[3], "--ttl./assets/");

    /* early stop returns fn's value */
    seen s2 = {.stop_at = 2};
    assert_int_equal(mc_config_each(c, "ttl", collect, &s2), 42);
    assert_int_equal(s2.n, 2);

    /* sections without entries, and ordinary sections, iterate their entries */
    seen s3 = {0};
    assert_int_equal(mc_config_each(c, "nope", collect, &s3), 0);
    assert_int_equal(s3.n, 0);
    mc_config_free(c);

    c = load_ok(ARGV("--verbose"), false);
    seen s4 = {0};
    assert_int_equal(mc_config_each(c, "ttl", collect, &s4), 0);
    assert_int_equal(s4.n, 0);
    mc_config_free(c);

    load_fails(ARGV("--ttl.=5s"), false, MC_E_INVAL, "--ttl.: unknown option");
}

/* ---- positional arguments, --help, --version -------------------------- */

static void test_positional_args(void **state)
{
    (void)state;
    mc_config *c = load_ok(ARGV("a.glb", "--workers", "2", "b.glb", "--", "--not-a-flag", "-h"), true);
    assert_int_equal(mc_config_nargs(c), 4);
    assert_string_equal(mc_config_arg(c, 0), "a.glb");
    assert_string_equal(mc_config_arg(c, 1), "b.glb");
    assert_string_equal(mc_config_arg(c, 2), "--not-a-flag");
    assert_string_equal(mc_config_arg(c, 3), "-h");
    assert_null(mc_config_arg(c, 4));
    assert_null(mc_config_arg(c, -1));
    assert_int_equal(mc_config_int(c, "edge", "workers"), 2);
    mc_config_free(c);

    load_fails(ARGV("a.glb"), false, MC_E_INVAL, "a.glb: unexpected argument");
    load_fails(ARGV("--workers", "2", "-x"), false, MC_E_INVAL, "-x: unexpected argument");
    load_fails(ARGV("--", "x"), false, MC_E_INVAL, "x: unexpected argument");
    c = load_ok(ARGV("--"), false);
    assert_int_equal(mc_config_nargs(c), 0);
    mc_config_free(c);
}

static void test_help_and_version(void **state)
{
    (void)state;
    static const struct { const char *flag; int rc; } cases[] = {
        {"--help", MC_CONFIG_HELP}, {"-h", MC_CONFIG_HELP},
        {"--version", MC_CONFIG_VERSION}, {"-V", MC_CONFIG_VERSION},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* wins over other flags, even bad ones, wherever it stands */
        char **argv = ARGV("--store.size=8X", (char *)cases[i].flag, "--nope");
        mc_config *c = (mc_config *)&c;
        mc_err err = {0, ""};
        assert_int_equal(mc_config_load(&c, schema, argc_of(argv), argv, false, &err), cases[i].rc);
        assert_null(c);
    }
    /* after "--" it is an argument */
    mc_config *c = load_ok(ARGV("--", "--help"), true);
    assert_int_equal(mc_config_nargs(c), 1);
    assert_string_equal(mc_config_arg(c, 0), "--help");
    mc_config_free(c);
}

static void test_usage(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    mc_config_usage(schema, "meshcdn-edge", "[options]", f);
    assert_int_equal(fclose(f), 0);
    assert_true(strncmp(text, "usage: meshcdn-edge [options]\n", 30) == 0);
    assert_non_null(strstr(text, "--workers, --edge.workers"));
    assert_non_null(strstr(text, "worker threads (default: 4)\n"));
    assert_non_null(strstr(text, "--store.path "));
    assert_non_null(strstr(text, "[ttl] PREFIX = VALUE"));
    free(text);
}

static void test_config_fail(void **state)
{
    (void)state;
    const char *path = write_ini("fail.ini", "[edge]\nname = x\n\n[store]\nsize = 1T\n");
    mc_config *c = load_ok(ARGV("--config", (char *)path, "--workers=3"), false);
    mc_err err = {0, ""};
    assert_int_equal(mc_config_fail(c, &err, MC_E_FULL, "store", "size", "%s is more than the disk (%d%%)",
                                     "1T", 250),
                     MC_E_FULL);
    assert_int_equal(err.code, MC_E_FULL);
    assert_string_equal(err.msg, strf("%s:5: store.size: 1T is more than the disk (250%%)", path));
    assert_int_equal(mc_config_fail(c, &err, MC_E_INVAL, "edge", "workers", "too many"), MC_E_INVAL);
    assert_string_equal(err.msg, "--workers: edge.workers: too many");
    assert_int_equal(mc_config_fail(c, &err, MC_E_IO, "store", "path", "cannot open: %s", "EACCES"), MC_E_IO);
    assert_string_equal(err.msg, "default: store.path: cannot open: EACCES");
    /* err may be NULL: the code is still returned */
    assert_int_equal(mc_config_fail(c, NULL, MC_E_INVAL, "store", "path", "x"), MC_E_INVAL);
    mc_config_free(c);
}

/* ---- value parsers ----------------------------------------------------- */

static void test_parse_size(void **state)
{
    (void)state;
    static const struct { const char *s; uint64_t v; } ok[] = {
        {"0", 0}, {"123", 123}, {"64k", 64ULL << 10}, {"64K", 64ULL << 10},
        {"512M", 512ULL << 20}, {"512m", 512ULL << 20}, {"8G", 8ULL << 30}, {"1T", 1ULL << 40},
        {"1.5G", 3ULL << 29}, {"0.5k", 512}, {"8GiB", 8ULL << 30}, {"8GB", 8ULL << 30},
        {"16777215T", 16777215ULL << 40},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 7;
        if (mc_parse_size(ok[i].s, &v) != 0 || v != ok[i].v)
            fail_msg("mc_parse_size(\"%s\") = %llu, want %llu", ok[i].s, (unsigned long long)v,
                     (unsigned long long)ok[i].v);
    }
    static const char *const bad[] = {"8X", "-1", "", "G", " 8G", "8 G", "8G ", "8GG", "8Gx", "1.", ".5G",
                                      "0x10", "1e3", "1e3G", "inf", "nan", "8iB", "16777216T", "1e400",
                                      "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        if (mc_parse_size(bad[i], &v) != MC_E_INVAL || v != 7)
            fail_msg("mc_parse_size(\"%s\") accepted (%llu)", bad[i], (unsigned long long)v);
    }
}

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct { const char *s; int64_t ms; } ok[] = {
        {"0", 0}, {"5", 5000}, {"250ms", 250}, {"5s", 5000}, {"2m", 120000}, {"1h", 3600000},
        {"1d", 86400000}, {"1.5s", 1500}, {"0.5h", 1800000}, {"90s", 90000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 7;
        if (mc_parse_duration_ms(ok[i].s, &v) != 0 || v != ok[i].ms)
            fail_msg("mc_parse_duration_ms(\"%s\") = %lld, want %lld", ok[i].s, (long long)v,
                     (long long)ok[i].ms);
    }
    static const char *const bad[] = {"", "s", "ms", "-1s", "5x", "5 s", " 5s", "5S", "5sec", "1e3",
                                      "0x10", "inf", "5ms5", "999999999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 7;
        if (mc_parse_duration_ms(bad[i], &v) != MC_E_INVAL || v != 7)
            fail_msg("mc_parse_duration_ms(\"%s\") accepted (%lld)", bad[i], (long long)v);
    }
}

static void test_parse_bool(void **state)
{
    (void)state;
    static const char *const t[] = {"true", "TRUE", "yes", "Yes", "on", "1"};
    static const char *const f[] = {"false", "False", "no", "NO", "off", "0"};
    static const char *const bad[] = {"", "2", "y", "n", "tru", "truee", " true", "enabled"};
    bool b;
    for (size_t i = 0; i < 6; i++) {
        b = false;
        assert_int_equal(mc_parse_bool(t[i], &b), 0);
        assert_true(b);
        b = true;
        assert_int_equal(mc_parse_bool(f[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (mc_parse_bool(bad[i], &b) != MC_E_INVAL)
            fail_msg("mc_parse_bool(\"%s\") accepted", bad[i]);
}

static void test_parse_addr(void **state)
{
    (void)state;
    static const struct { const char *s, *host; int port; } ok[] = {
        {"127.0.0.1:0", "127.0.0.1", 0},
        {"127.0.0.1:8080", "127.0.0.1", 8080},
        {"[::1]:8080", "::1", 8080},
        {"[fe80::1%eth0]:443", "fe80::1%eth0", 443},
        {"localhost:65535", "localhost", 65535},
        {"0.0.0.0:80", "0.0.0.0", 80},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char host[64] = "";
        int port = -1;
        if (mc_parse_addr(ok[i].s, host, sizeof host, &port) != 0)
            fail_msg("mc_parse_addr(\"%s\") rejected", ok[i].s);
        assert_string_equal(host, ok[i].host);
        assert_int_equal(port, ok[i].port);
    }
    static const char *const bad[] = {
        "127.0.0.1", "[::1]", "[::1]:", "127.0.0.1:", ":8080", "[]:80", "::1:8080", "[::1]8080",
        "[::1:8080", "h:65536", "h:-1", "h:80x", "h:0x50", "h:+80", "h: 80", "h:-0",
        "h:99999999999999999999", "a:b:80", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char host[64] = "untouched";
        int port = -1;
        if (mc_parse_addr(bad[i], host, sizeof host, &port) != MC_E_INVAL)
            fail_msg("mc_parse_addr(\"%s\") accepted (%s, %d)", bad[i], host, port);
    }
    /* host longer than the caller's buffer */
    char small[4];
    int port;
    assert_int_equal(mc_parse_addr("abcd:80", small, sizeof small, &port), MC_E_INVAL);
    assert_int_equal(mc_parse_addr("abc:80", small, sizeof small, &port), 0);
    assert_string_equal(small, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_flags_override_file_in_any_order),
        cmocka_unit_test(test_flag_forms_and_aliases),
        cmocka_unit_test(test_bool_flags),
        cmocka_unit_test(test_file_value_error_names_line),
        cmocka_unit_test(test_flag_value_errors),
        cmocka_unit_test(test_unknown_keys_and_flags),
        cmocka_unit_test(test_missing_values_and_files),
        cmocka_unit_test(test_ini_syntax_error_names_line),
        cmocka_unit_test(test_enum_choices),
        cmocka_unit_test(test_int_range),
        cmocka_unit_test(test_map_section_order),
        cmocka_unit_test(test_positional_args),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_config_fail),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_parse_addr),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
