/* config.c — see config.h. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/config.h"

typedef struct cfg_entry {
    char *section, *key, *value;
    char *where;               /* "edge.ini:14" or "--store.size" */
} cfg_entry;

struct mc_config {
    const mc_cfg_opt *schema;
    cfg_entry *v;
    int n, cap;
    char **args;
    int nargs;
};

/* Keys match with '-' and '_' treated alike: "anonymous-read" = "anonymous_read". */
static int key_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a == '-' ? '_' : (char)tolower((unsigned char)*a);
        char y = *b == '-' ? '_' : (char)tolower((unsigned char)*b);
        if (x != y)
            return 0;
    }
    return *a == *b;
}

static const mc_cfg_opt *find_opt(const mc_cfg_opt *schema, const char *section, const char *key)
{
    for (const mc_cfg_opt *o = schema; o->section; o++)
        if (key_eq(o->section, section) && (o->type == MC_CFG_MAP || key_eq(o->key, key)))
            return o;
    return NULL;
}

static const mc_cfg_opt *find_flag(const mc_cfg_opt *schema, const char *flag, size_t len)
{
    for (const mc_cfg_opt *o = schema; o->section; o++) {
        if (o->flag && strlen(o->flag) == len && strncmp(o->flag, flag, len) == 0)
            return o;
        size_t sl = strlen(o->section);
        if (len > sl + 1 && flag[sl] == '.' && strncmp(flag, o->section, sl) == 0) {
            if (o->type == MC_CFG_MAP)   /* --SECTION.ANYKEY */
                return o;
            char k[128];
            size_t kl = len - sl - 1;
            if (kl < sizeof k) {
                memcpy(k, flag + sl + 1, kl);
                k[kl] = '\0';
                if (key_eq(o->key, k))
                    return o;
            }
        }
    }
    return NULL;
}

/* DIGITS[.DIGITS] into v; strtod alone would also take "0x10", "1e3", "inf". */
static int parse_decimal(const char *s, double *v, char **end)
{
    const char *p = s;
    while (isdigit((unsigned char)*p))
        p++;
    if (p == s)
        return MC_E_INVAL;
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p))
            return MC_E_INVAL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    errno = 0;
    *v = strtod(s, end);
    return errno || *end != p ? MC_E_INVAL : 0;
}

int mc_parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v;
    if (parse_decimal(s, &v, &end) < 0)
        return MC_E_INVAL;
    uint64_t mul = 1;
    switch (toupper((unsigned char)*end)) {
    case '\0': break;
    case 'K': mul = 1ULL << 10; end++; break;
    case 'M': mul = 1ULL << 20; end++; break;
    case 'G': mul = 1ULL << 30; end++; break;
    case 'T': mul = 1ULL << 40; end++; break;
    default: return MC_E_INVAL;
    }
    if (toupper((unsigned char)*end) == 'I' && mul > 1)
        end++;
    if (toupper((unsigned char)*end) == 'B')
        end++;
    if (*end || v * (double)mul >= 18446744073709551615.0)
        return MC_E_INVAL;
    *out = (uint64_t)(v * (double)mul);
    return 0;
}

int mc_parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    double v;
    if (parse_decimal(s, &v, &end) < 0)
        return MC_E_INVAL;
    double mul;
    if (!*end || strcmp(end, "s") == 0) mul = 1000;
    else if (strcmp(end, "ms") == 0) mul = 1;
    else if (strcmp(end, "m") == 0) mul = 60e3;
    else if (strcmp(end, "h") == 0) mul = 3600e3;
    else if (strcmp(end, "d") == 0) mul = 86400e3;
    else return MC_E_INVAL;
    if (v * mul > 9.2e18)
        return MC_E_INVAL;
    *out = (int64_t)(v * mul);
    return 0;
}

int mc_parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) return *out = true, 0;
        if (strcasecmp(s, f[i]) == 0) return *out = false, 0;
    }
    return MC_E_INVAL;
}

int mc_parse_addr(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t hl;
    const char *h = s;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return MC_E_INVAL;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon)
            return MC_E_INVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return MC_E_INVAL;
    if (!isdigit((unsigned char)colon[1]))   /* strtol would take " 80", "+80", "-0" */
        return MC_E_INVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return MC_E_INVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static int check_value(const mc_cfg_opt *o, const char *v, const char *where, mc_err *err)
{
    uint64_t sz;
    int64_t ms;
    bool b;
    char host[256];
    int port;
    const char *sec = o->section, *key = o->key;
    switch (o->type) {
    case MC_CFG_STR:
    case MC_CFG_MAP:
        return 0;
    case MC_CFG_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || !*v || *end)
            return mc_err_set(err, MC_E_INVAL, "%s: %s.%s: \"%s\" is not an integer", where, sec, key, v);
        if ((o->min || o->max) && (x < o->min || x > o->max))
            return mc_err_set(err, MC_E_INVAL, "%s: %s.%s: %lld is out of range (%lld..%lld)", where,
                              sec, key, x, (long long)o->min, (long long)o->max);
        return 0;
    }
    case MC_CFG_SIZE:
        if (mc_parse_size(v, &sz) < 0)
            return mc_err_set(err, MC_E_INVAL, "%s: %s.%s: \"%s\" is not a size (use 8G, 512M)", where, sec, key, v);
        return 0;
    case MC_CFG_DURATION:
        if (mc_parse_duration_ms(v, &ms) < 0)
            return mc_err_set(err, MC_E_INVAL, "%s: %s.%s: \"%s\" is not a duration (use 250ms, 5s, 2m, 1h)",
                              where, sec, key, v);
        return 0;
    case MC_CFG_BOOL:
        if (mc_parse_bool(v, &b) < 0)
            return mc_err_set(err, MC_E_INVAL, "%s: %s.%s: \"%s\" is not a boolean (use true or false)",
                              where, sec, key, v);
        return 0;
    case MC_CFG_ADDR:
        if (mc_parse_addr(v, host, sizeof host, &port) < 0)
            return mc_err_set(err, MC_E_INVAL, "%s: %s.%s: \"%s\" is not an address (use 127.0.0.1:8080 or [::1]:8080)",
                              where, sec, key, v);
        return 0;
    case MC_CFG_ENUM: {
        size_t vl = strlen(v);
        for (const char *c = o->choices; c && *c;) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            if (cl == vl && strncmp(c, v, vl) == 0)
                return 0;
            c = bar ? bar + 1 : c + cl;
        }
        return mc_err_set(err, MC_E_INVAL, "%s: %s.%s: \"%s\" is not one of %s", where, sec, key, v, o->choices);
    }
    }
    return 0;
}

static int add_entry(mc_config *c, const char *section, const char *key, const char *value,
                     const char *where)
{
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        cfg_entry *v = realloc(c->v, (size_t)cap * sizeof *v);
        if (!v)
            return MC_E_NOMEM;
        c->v = v;
        c->cap = cap;
    }
    cfg_entry *e = &c->v[c->n];
    e->section = strdup(section);
    e->key = strdup(key);
    e->value = strdup(value);
    e->where = strdup(where);
    if (!e->section || !e->key || !e->value || !e->where) {
        free(e->section), free(e->key), free(e->value), free(e->where);
        return MC_E_NOMEM;
    }
    c->n++;
    return 0;
}

typedef struct ini_ctx {
    mc_config *c;
    const char *path;
    int line;
    mc_err *err;
    int rc;
    FILE *f;
    int errline;               /* line of the error in rc */
} ini_ctx;

static char *ini_read_line(char *str, int num, void *stream)
{
    ini_ctx *x = stream;
    char *r = fgets(str, num, x->f);
    if (r)
        x->line++;
    return r;
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx *x = user;
    if (x->rc < 0)
        return 0;   /* inih parses on after an error; the first one is reported */
    x->errline = x->line;
    char where[600];
    snprintf(where, sizeof where, "%s:%d", x->path, x->line);
    const mc_cfg_opt *o = find_opt(x->c->schema, section, name);
    if (!o) {
        x->rc = mc_err_set(x->err, MC_E_INVAL, "%s: %s.%s: unknown key (see --help)", where, section, name);
        return 0;
    }
    if ((x->rc = check_value(o, value, where, x->err)) < 0)
        return 0;
    if ((x->rc = add_entry(x->c, o->type == MC_CFG_MAP ? o->section : o->section,
                           o->type == MC_CFG_MAP ? name : o->key, value, where)) < 0)
        return 0;
    return 1;
}

static int load_file(mc_config *c, const char *path, mc_err *err)
{
    ini_ctx x = {c, path, 0, err, 0, fopen(path, "r"), 0};
    if (!x.f)
        return mc_err_set(err, MC_E_IO, "%s: cannot open config file: %s", path, strerror(errno));
    int r = ini_parse_stream(ini_read_line, &x, on_ini_value, &x);
    /* fopen succeeds on a directory; the read fails (EISDIR) and inih sees EOF */
    int read_errno = ferror(x.f) ? (errno ? errno : EIO) : 0;
    fclose(x.f);
    if (read_errno)
        return mc_err_set(err, MC_E_IO, "%s: cannot read config file: %s", path, strerror(read_errno));
    if (x.rc < 0 && !(r > 0 && r < x.errline))
        return x.rc;
    if (r != 0)
        return mc_err_set(err, MC_E_INVAL, "%s:%d: syntax error (expected [section] or key = value)", path,
                          r > 0 ? r : x.line);
    return 0;
}

static int push_arg(mc_config *c, const char *a)
{
    char **v = realloc(c->args, (size_t)(c->nargs + 1) * sizeof *v);
    if (!v)
        return MC_E_NOMEM;
    c->args = v;
    if (!(c->args[c->nargs] = strdup(a)))
        return MC_E_NOMEM;
    c->nargs++;
    return 0;
}

/* One pass over argv: --config, --help, --version first (so a file's values
 * can be overridden by flags regardless of their order). */
static int scan_special(int argc, char **argv, const char **config_path, mc_err *err)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return MC_CONFIG_HELP;
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0)
            return MC_CONFIG_VERSION;
        if (strncmp(a, "--config=", 9) == 0)
            *config_path = a + 9;
        else if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc)
                return mc_err_set(err, MC_E_INVAL, "--config: needs a file name");
            *config_path = argv[++i];
        }
    }
    return MC_CONFIG_RUN;
}

static int load_flags(mc_config *c, int argc, char **argv, bool allow_args, mc_err *err)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                if (!allow_args)
                    return mc_err_set(err, MC_E_INVAL, "%s: unexpected argument", argv[i]);
                else if (push_arg(c, argv[i]) < 0)
                    return MC_E_NOMEM;
            break;
        }
        if (strncmp(a, "--config", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
            i += a[8] == '\0';
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (!allow_args)
                return mc_err_set(err, MC_E_INVAL, "%s: unexpected argument (flags start with --)", a);
            if (push_arg(c, a) < 0)
                return MC_E_NOMEM;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const mc_cfg_opt *o = find_flag(c->schema, name, nlen);
        char where[160];
        snprintf(where, sizeof where, "--%.*s", (int)(nlen < 140 ? nlen : 140), name);
        if (!o)
            return mc_err_set(err, MC_E_INVAL, "%s: unknown option (see --help)", where);
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->type == MC_CFG_BOOL)
            value = "true";
        if (!value) {
            if (i + 1 >= argc)
                return mc_err_set(err, MC_E_INVAL, "%s: needs a value", where);
            value = argv[++i];
        }
        int rc = check_value(o, value, where, err);
        if (rc < 0)
            return rc;
        char *mkey = NULL;
        if (o->type == MC_CFG_MAP) {
            size_t sl = strlen(o->section);
            if (nlen <= sl + 1 || name[sl] != '.')   /* reached by a flag alias: no key */
                return mc_err_set(err, MC_E_INVAL, "%s: needs --%s.KEY=VALUE", where, o->section);
            if (!(mkey = strndup(name + sl + 1, nlen - sl - 1)))
                return MC_E_NOMEM;
        }
        rc = add_entry(c, o->section, mkey ? mkey : o->key, value, where);
        free(mkey);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int mc_config_load(mc_config **out, const mc_cfg_opt *schema, int argc, char **argv,
                   bool allow_args, mc_err *err)
{
    *out = NULL;
    const char *config_path = NULL;
    int rc = scan_special(argc, argv, &config_path, err);
    if (rc != MC_CONFIG_RUN)
        return rc;
    mc_config *c = calloc(1, sizeof *c);
    if (!c)
        return MC_E_NOMEM;
    c->schema = schema;
    if (config_path && (rc = load_file(c, config_path, err)) < 0) {
        mc_config_free(c);
        return rc;
    }
    if ((rc = load_flags(c, argc, argv, allow_args, err)) < 0) {
        mc_config_free(c);
        return rc;
    }
    *out = c;
    return MC_CONFIG_RUN;
}

void mc_config_free(mc_config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        free(c->v[i].section);
        free(c->v[i].key);
        free(c->v[i].value);
        free(c->v[i].where);
    }
    for (int i = 0; i < c->nargs; i++)
        free(c->args[i]);
    free(c->args);
    free(c->v);
    free(c);
}

static const cfg_entry *find_entry(const mc_config *c, const char *section, const char *key)
{
    for (int i = c->n - 1; i >= 0; i--)   /* last wins: flags come after the file */
        if (key_eq(c->v[i].section, section) && key_eq(c->v[i].key, key))
            return &c->v[i];
    return NULL;
}

const char *mc_config_str(const mc_config *c, const char *section, const char *key)
{
    const cfg_entry *e = find_entry(c, section, key);
    if (e)
        return e->value;
    const mc_cfg_opt *o = find_opt(c->schema, section, key);
    assert(o && "option not in schema");
    return o ? o->def : NULL;
}

int64_t mc_config_int(const mc_config *c, const char *section, const char *key)
{
    const char *v = mc_config_str(c, section, key);
    return v ? strtoll(v, NULL, 10) : 0;
}

uint64_t mc_config_size(const mc_config *c, const char *section, const char *key)
{
    uint64_t x = 0;
    const char *v = mc_config_str(c, section, key);
    if (v)
        mc_parse_size(v, &x);
    return x;
}

int64_t mc_config_duration_ms(const mc_config *c, const char *section, const char *key)
{
    int64_t x = 0;
    const char *v = mc_config_str(c, section, key);
    if (v)
        mc_parse_duration_ms(v, &x);
    return x;
}

bool mc_config_bool(const mc_config *c, const char *section, const char *key)
{
    bool b = false;
    const char *v = mc_config_str(c, section, key);
    if (v)
        mc_parse_bool(v, &b);
    return b;
}

const char *mc_config_origin(const mc_config *c, const char *section, const char *key)
{
    const cfg_entry *e = find_entry(c, section, key);
    return e ? e->where : "default";
}

int mc_config_fail(const mc_config *c, mc_err *err, int code, const char *section,
                   const char *key, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mc_err_set(err, code, "%s: %s.%s: %s", mc_config_origin(c, section, key), section, key, msg);
}

int mc_config_each(const mc_config *c, const char *section, mc_config_each_fn fn, void *ud)
{
    for (int i = 0; i < c->n; i++)
        if (key_eq(c->v[i].section, section)) {
            int r = fn(ud, c->v[i].key, c->v[i].value, c->v[i].where);
            if (r)
                return r;
        }
    return 0;
}

int mc_config_nargs(const mc_config *c) { return c->nargs; }
const char *mc_config_arg(const mc_config *c, int i) { return i >= 0 && i < c->nargs ? c->args[i] : NULL; }

void mc_config_usage(const mc_cfg_opt *schema, const char *prog, const char *synopsis, void *stream)
{
    FILE *f = stream;
    fprintf(f, "usage: %s %s\n\n  --config FILE            INI file (flags override it)\n"
               "  --help, --version\n\noptions (also as [section] key = value in the file):\n",
            prog, synopsis);
    for (const mc_cfg_opt *o = schema; o->section; o++) {
        char name[96];
        if (o->type == MC_CFG_MAP)
            snprintf(name, sizeof name, "[%s] PREFIX = VALUE", o->section);
        else if (o->flag)
            snprintf(name, sizeof name, "--%s, --%s.%s", o->flag, o->section, o->key);
        else
            snprintf(name, sizeof name, "--%s.%s", o->section, o->key);
        fprintf(f, "  %-40s %s", name, o->help ? o->help : "");
        if (o->def)
            fprintf(f, " (default: %s)", o->def);
        fputc('\n', f);
    }
}
