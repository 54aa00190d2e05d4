/* cmd.c — meshcdnctl's command line, bodies and readable output; see cmd.h. */
#include "ctl/cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/config.h"

/* ---- help ------------------------------------------------------------------ */

static const char usage_top[] =
    "usage: meshcdnctl [--control URL] [--credentials FILE] [--region R] [--json]\n"
    "                  [--config FILE] COMMAND [ARGS...]\n"
    "\n"
    "commands (fleet, through the control API on meshcdn-origin):\n"
    "  invalidate [--soft] [--all] [--tag KEY]... [--wait] [--timeout S] [PATH...]\n"
    "             create an invalidation: exact paths, prefixes ending in '*',\n"
    "             surrogate keys, or everything\n"
    "  status ID [--wait] [--timeout S]\n"
    "             an invalidation's status and each edge's state\n"
    "  list [--limit N]\n"
    "             invalidations, newest first\n"
    "  edges      the registered edges\n"
    "commands (one node, through its admin listener):\n"
    "  purge --edge URL [--soft] [--all] [--tag KEY]... [PATH...]\n"
    "\n"
    "global options:\n"
    "  --control URL       control API (default $MESHCDN_CONTROL, else http://127.0.0.1:9001)\n"
    "  --credentials FILE  a key file with one \"ACCESS_KEY_ID SECRET\" pair, mode 0600\n"
    "                      (default $MESHCDN_CREDENTIALS, else $AWS_ACCESS_KEY_ID and\n"
    "                      $AWS_SECRET_ACCESS_KEY)\n"
    "  --region R          SigV4 region (default $MESHCDN_REGION, else us-east-1)\n"
    "  --json              print the server's JSON answer as is\n"
    "  --config FILE       INI defaults: [ctl] control, credentials, region\n"
    "\n"
    "exit status: 0 done, 1 the server refused, could not be reached, or --wait\n"
    "timed out, 2 bad usage or credentials.\n"
    "\n"
    "  meshcdnctl COMMAND --help   one command's options\n"
    "  meshcdnctl --version\n";

static const char usage_invalidate[] =
    "usage: meshcdnctl invalidate [--soft] [--all] [--tag KEY]... [--wait] [--timeout S] [PATH...]\n"
    "\n"
    "Append an invalidation to the fleet's log; every edge applies it.\n"
    "  PATH          \"/a.glb\" (exact, with its query and Vary variants) or a prefix\n"
    "                with one trailing '*' (\"/models/chair/*\"; quote it for the shell)\n"
    "  --tag KEY     objects whose Surrogate-Key lists KEY (repeatable)\n"
    "  --all         everything\n"
    "  --soft        mark stale (revalidated on next use) instead of deleting\n"
    "  --wait        wait until every live edge has applied it (Completed)\n"
    "  --timeout S   give up waiting after S (default 300s; 250ms, 30s, 2m)\n"
    "prints \"I12  InProgress  2 paths\"; with --wait also the time to Completed.\n";

static const char usage_status[] =
    "usage: meshcdnctl status ID [--wait] [--timeout S]\n"
    "\n"
    "  ID            \"I12\" or \"12\"\n"
    "  --wait        poll every 100 ms until Completed\n"
    "  --timeout S   give up waiting after S (default 300s); exit 1\n"
    "prints the status and each edge: NODE REGION STATE ACKED LAST SEEN\n"
    "(state: applied, pending, or unreachable when silent too long).\n";

static const char usage_list[] =
    "usage: meshcdnctl list [--limit N]\n"
    "\n"
    "  --limit N     at most N invalidations, newest first (server default otherwise)\n";

static const char usage_edges[] =
    "usage: meshcdnctl edges\n"
    "\n"
    "the edges registered with the control API: NODE REGION STATE ACKED LAST SEEN\n";

static const char usage_purge[] =
    "usage: meshcdnctl purge --edge URL [--soft] [--all] [--tag KEY]... [PATH...]\n"
    "\n"
    "Purge on one edge now, through its admin listener (not the fleet log).\n"
    "  --edge URL    the edge's admin listener (http://127.0.0.1:9080)\n"
    "  PATH, --tag, --all, --soft   as for invalidate\n"
    "prints \"purged N objects\".\n";

void mc_ctl_usage(FILE *f, mc_ctl_cmd cmd)
{
    switch (cmd) {
    case MC_CTL_CMD_INVALIDATE: fputs(usage_invalidate, f); break;
    case MC_CTL_CMD_STATUS: fputs(usage_status, f); break;
    case MC_CTL_CMD_LIST: fputs(usage_list, f); break;
    case MC_CTL_CMD_EDGES: fputs(usage_edges, f); break;
    case MC_CTL_CMD_PURGE: fputs(usage_purge, f); break;
    default: fputs(usage_top, f); break;
    }
}

/* ---- parsing ---------------------------------------------------------------- */

#define BIT(c) (1u << (c))
#define ANY 0xffffu   /* global: before or after the command */

enum {
    OPT_CONTROL = 1, OPT_EDGE, OPT_CREDENTIALS, OPT_REGION, OPT_CONFIG, OPT_JSON,
    OPT_HELP, OPT_VERSION, OPT_SOFT, OPT_ALL, OPT_TAG, OPT_WAIT, OPT_TIMEOUT, OPT_LIMIT,
};

typedef struct optdef {
    const char *name;
    int id;
    int has_arg;
    unsigned cmds;   /* commands taking it (ANY: global) */
} optdef;

static const optdef optdefs[] = {
    {"control", OPT_CONTROL, 1, ANY},
    {"edge", OPT_EDGE, 1, ANY},
    {"credentials", OPT_CREDENTIALS, 1, ANY},
    {"region", OPT_REGION, 1, ANY},
    {"config", OPT_CONFIG, 1, ANY},
    {"json", OPT_JSON, 0, ANY},
    {"help", OPT_HELP, 0, ANY},
    {"version", OPT_VERSION, 0, BIT(MC_CTL_CMD_NONE)},
    {"soft", OPT_SOFT, 0, BIT(MC_CTL_CMD_INVALIDATE) | BIT(MC_CTL_CMD_PURGE)},
    {"all", OPT_ALL, 0, BIT(MC_CTL_CMD_INVALIDATE) | BIT(MC_CTL_CMD_PURGE)},
    {"tag", OPT_TAG, 1, BIT(MC_CTL_CMD_INVALIDATE) | BIT(MC_CTL_CMD_PURGE)},
    {"wait", OPT_WAIT, 0, BIT(MC_CTL_CMD_INVALIDATE) | BIT(MC_CTL_CMD_STATUS)},
    {"timeout", OPT_TIMEOUT, 1, BIT(MC_CTL_CMD_INVALIDATE) | BIT(MC_CTL_CMD_STATUS)},
    {"limit", OPT_LIMIT, 1, BIT(MC_CTL_CMD_LIST)},
    {NULL, 0, 0, 0},
};

static const struct {
    const char *name;
    mc_ctl_cmd cmd;
} commands[] = {
    {"invalidate", MC_CTL_CMD_INVALIDATE},
    {"status", MC_CTL_CMD_STATUS},
    {"list", MC_CTL_CMD_LIST},
    {"edges", MC_CTL_CMD_EDGES},
    {"purge", MC_CTL_CMD_PURGE},
    {NULL, MC_CTL_CMD_NONE},
};

static const char *cmd_name(mc_ctl_cmd c)
{
    for (int i = 0; commands[i].name; i++)
        if (commands[i].cmd == c)
            return commands[i].name;
    return "meshcdnctl";
}

void mc_ctl_opts_free(mc_ctl_opts *o)
{
    if (!o)
        return;
    free(o->paths);
    free(o->tags);
    o->paths = o->tags = NULL;
    o->npaths = o->ntags = 0;
}

const char *mc_ctl_check_path(const char *p)
{
    size_t n = strlen(p);
    if (n == 0)
        return "is empty";
    if (p[0] != '/')
        return "does not start with '/'";
    if (n > MC_CTL_MAX_STRING)
        return "is longer than 1024 bytes";
    const char *star = strchr(p, '*');
    if (star && star != p + n - 1)
        return "has a '*' that is not its last character";
    for (const char *s = p; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return "has a control character";
    return NULL;
}

const char *mc_ctl_check_tag(const char *t)
{
    size_t n = strlen(t);
    if (n == 0)
        return "is empty";
    if (n > MC_CTL_MAX_STRING)
        return "is longer than 1024 bytes";
    for (const char *s = t; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return "is not a token (spaces and control characters are not allowed)";
    return NULL;
}

int mc_ctl_norm_id(const char *id, char out[32])
{
    const char *d = id;
    if (*d == 'I' || *d == 'i')
        d++;
    size_t n = strlen(d);
    if (n == 0 || n > 19 || strspn(d, "0123456789") != n)
        return MC_E_INVAL;
    while (*d == '0' && d[1])   /* "I012" is I12 */
        d++;
    snprintf(out, 32, "I%s", d);
    return 0;
}

/* Set a numeric option: decimal in [lo, hi]. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return MC_E_INVAL;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return MC_E_INVAL;
    *out = v;
    return 0;
}

static int usage(mc_err *err, const char *fmt, const char *a, const char *b)
{
    return mc_err_set(err, MC_E_INVAL, fmt, a, b);
}

static int positional(mc_ctl_opts *o, const char *arg, mc_err *err)
{
    const char *why;
    switch (o->cmd) {
    case MC_CTL_CMD_INVALIDATE:
    case MC_CTL_CMD_PURGE:
        if ((why = mc_ctl_check_path(arg)))
            return usage(err, "path \"%.100s\" %s (paths start with '/'; a prefix ends "
                         "with one '*')", arg, why);
        o->paths[o->npaths++] = arg;
        return 0;
    case MC_CTL_CMD_STATUS: {
        char id[32];
        if (o->id)
            return usage(err, "status: one ID only (\"%.100s\" is extra)%s", arg, "");
        if (mc_ctl_norm_id(arg, id) < 0)
            return usage(err, "status: \"%.100s\" is not an invalidation id (I12 or 12)%s",
                         arg, "");
        o->id = arg;
        return 0;
    }
    case MC_CTL_CMD_NONE:
        return usage(err, "unknown command \"%.100s\"%s", arg, "");
    default:
        return usage(err, "%s: unexpected argument \"%.100s\"", cmd_name(o->cmd), arg);
    }
}

static int apply_opt(mc_ctl_opts *o, const optdef *d, const char *val, mc_err *err)
{
    const char *why;
    long v;
    switch (d->id) {
    case OPT_CONTROL: o->control_url = val; break;
    case OPT_EDGE: o->edge_url = val; break;
    case OPT_CREDENTIALS: o->credentials = val; break;
    case OPT_REGION: o->region = val; break;
    case OPT_CONFIG: o->config = val; break;
    case OPT_JSON: o->json = 1; break;
    case OPT_SOFT: o->soft = 1; break;
    case OPT_ALL: o->all = 1; break;
    case OPT_WAIT: o->wait = 1; break;
    case OPT_TAG:
        if ((why = mc_ctl_check_tag(val)))
            return usage(err, "--tag: \"%.100s\" %s", val, why);
        o->tags[o->ntags++] = val;
        break;
    case OPT_TIMEOUT:
        if (mc_parse_duration_ms(val, &o->timeout_ms) < 0 || o->timeout_ms <= 0 ||
            o->timeout_ms > 7 * 86400000LL)
            return usage(err, "--timeout: \"%.100s\" is not a duration (use 250ms, 30s, 5m)%s",
                         val, "");
        o->timeout_given = 1;
        break;
    case OPT_LIMIT:
        if (parse_long(val, 1, MC_CTL_MAX_LIMIT, &v) < 0)
            return usage(err, "--limit: \"%.100s\" is not a count in 1..100000%s", val, "");
        o->limit = v;
        break;
    }
    return 0;
}

/* The checks that need the whole command line. */
static int check_complete(mc_ctl_opts *o, mc_err *err)
{
    switch (o->cmd) {
    case MC_CTL_CMD_NONE:
        return usage(err, "no command (invalidate, status, list, edges, purge)%s%s", "", "");
    case MC_CTL_CMD_INVALIDATE:
    case MC_CTL_CMD_PURGE:
        if (o->npaths == 0 && o->ntags == 0 && !o->all)
            return usage(err, "%s: nothing to invalidate (give PATHs, --tag KEY or --all)%s",
                         cmd_name(o->cmd), "");
        if (o->npaths + o->ntags > MC_CTL_MAX_ITEMS)
            return usage(err, "%s: more than 3000 paths and keys in one request%s",
                         cmd_name(o->cmd), "");
        if (o->cmd == MC_CTL_CMD_PURGE && !o->edge_url)
            return usage(err, "purge: --edge URL is required (the edge's admin listener)%s%s",
                         "", "");
        break;
    case MC_CTL_CMD_STATUS:
        if (!o->id)
            return usage(err, "status: which invalidation? (status ID)%s%s", "", "");
        break;
    default:
        break;
    }
    if (o->timeout_given && !o->wait)
        return usage(err, "%s: --timeout is how long --wait waits; add --wait%s",
                     cmd_name(o->cmd), "");
    if (o->edge_url && o->cmd != MC_CTL_CMD_PURGE)
        return usage(err, "%s: --edge is for purge (other commands use --control)%s",
                     cmd_name(o->cmd), "");
    return 0;
}

int mc_ctl_parse(mc_ctl_opts *o, int argc, char **argv, mc_err *err)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = MC_CTL_DEFAULT_TIMEOUT_MS;
    /* every word could be a path or a tag: argc bounds both arrays */
    o->paths = calloc((size_t)argc + 1, sizeof *o->paths);
    o->tags = calloc((size_t)argc + 1, sizeof *o->tags);
    if (!o->paths || !o->tags)
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    int only_args = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_args || arg[0] != '-' || arg[1] == '\0') {
            if (o->cmd == MC_CTL_CMD_NONE && !only_args) {
                for (int c = 0; commands[c].name; c++)
                    if (strcmp(commands[c].name, arg) == 0)
                        o->cmd = commands[c].cmd;
                if (o->cmd != MC_CTL_CMD_NONE)
                    continue;
                if (strcmp(arg, "help") == 0) {
                    o->help_for = o->cmd;
                    o->cmd = MC_CTL_CMD_HELP;
                    return 0;
                }
            }
            int rc = positional(o, arg, err);
            if (rc < 0)
                return rc;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "-V") == 0) {
            arg = arg[1] == 'h' ? "--help" : "--version";
        }
        if (arg[1] != '-')
            return usage(err, "%s: unknown option \"%.100s\"", cmd_name(o->cmd), arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const optdef *d = NULL;
        for (int k = 0; optdefs[k].name; k++)
            if (strlen(optdefs[k].name) == nlen && strncmp(optdefs[k].name, name, nlen) == 0)
                d = &optdefs[k];
        if (!d || !(d->cmds & BIT(o->cmd)))
            return usage(err, "%s: unknown option \"%.100s\"", cmd_name(o->cmd), arg);
        if (d->id == OPT_HELP) {
            o->help_for = o->cmd;
            o->cmd = MC_CTL_CMD_HELP;
            return 0;
        }
        if (d->id == OPT_VERSION) {
            o->cmd = MC_CTL_CMD_VERSION;
            return 0;
        }
        const char *val = NULL;
        if (d->has_arg) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usage(err, "%s: %.100s needs a value", cmd_name(o->cmd), arg);
        } else if (eq) {
            return usage(err, "%s: %.100s takes no value", cmd_name(o->cmd), arg);
        }
        int rc = apply_opt(o, d, val, err);
        if (rc < 0)
            return rc;
    }
    return check_complete(o, err);
}

/* ---- bodies ------------------------------------------------------------------ */

static json_t *string_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

char *mc_ctl_body(const mc_ctl_opts *o)
{
    json_t *b = json_object();
    if (!b)
        return NULL;
    int bad = 0;
    if (o->npaths)
        bad |= json_object_set_new(b, "paths", string_array(o->paths, o->npaths));
    if (o->ntags)
        bad |= json_object_set_new(b, "surrogate_keys", string_array(o->tags, o->ntags));
    if (o->all)
        bad |= json_object_set_new(b, "all", json_true());
    if (o->soft)
        bad |= json_object_set_new(b, "soft", json_true());
    char *s = bad ? NULL : json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(b);
    return s;
}

/* ---- readable output -------------------------------------------------------- */

/* A member as text: strings as they are, integers in decimal, true/false,
 * "-" when absent or null. buf holds at least 32 bytes. */
static const char *field(const json_t *obj, const char *key, char *buf, size_t len)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, len, "%g", json_real_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return "-";
}

static size_t count_of(const json_t *obj, const char *key)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_array(v) ? json_array_size(v) : 0;
}

static int flag_of(const json_t *obj, const char *key)
{
    return json_is_object(obj) && json_is_true(json_object_get(obj, key));
}

/* A table: rows of NCOL borrowed-or-copied strings, printed with each column
 * as wide as its widest cell, two spaces apart. */
#define NCOL 5
typedef struct table {
    char **cells;     /* owned copies, nrows * ncols */
    size_t nrows, cap;
    int ncols;
} table;

static void table_add(table *t, const char *const *row)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, cap * (size_t)t->ncols * sizeof *c);
        if (!c)
            return;
        t->cells = c;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++)
        t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = strdup(row[i] ? row[i] : "-");
    t->nrows++;
}

static void table_print(FILE *f, table *t)
{
    size_t w[NCOL] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            size_t n = s ? strlen(s) : 1;
            if (n > w[c])
                w[c] = n;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            if (c == t->ncols - 1)
                fprintf(f, "%s\n", s ? s : "-");
            else
                fprintf(f, "%-*s  ", (int)w[c], s ? s : "-");
        }
    }
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

static void edges_table(FILE *f, const json_t *edges)
{
    table t = {NULL, 0, 0, 5};
    static const char *const head[] = {"NODE", "REGION", "STATE", "ACKED", "LAST SEEN"};
    table_add(&t, head);
    size_t i;
    const json_t *e;
    json_array_foreach(edges, i, e) {
        char b[5][32];
        const char *row[5] = {field(e, "node", b[0], 32), field(e, "region", b[1], 32),
                              field(e, "state", b[2], 32), field(e, "acked", b[3], 32),
                              field(e, "last_seen", b[4], 32)};
        table_add(&t, row);
    }
    table_print(f, &t);
}

static void plural(mc_buf *b, size_t n, const char *one, const char *many)
{
    if (b->len)
        mc_buf_puts(b, ", ");
    mc_buf_printf(b, "%zu %s", n, n == 1 ? one : many);
}

void mc_ctl_print_created(FILE *f, const json_t *answer, const mc_ctl_opts *o)
{
    char b1[32], b2[32];
    mc_buf what = MC_BUF_INIT;
    if (o->npaths)
        plural(&what, o->npaths, "path", "paths");
    if (o->ntags)
        plural(&what, o->ntags, "key", "keys");
    if (o->all)
        mc_buf_puts(&what, what.len ? ", all" : "all");
    if (o->soft)
        mc_buf_puts(&what, what.len ? ", soft" : "soft");
    fprintf(f, "%s  %s  %s\n", field(answer, "id", b1, sizeof b1),
            field(answer, "status", b2, sizeof b2), what.data ? what.data : "");
    mc_buf_free(&what);
}

/* The strings of arr space-separated, cut with " (+3 more)" past about max bytes. */
static void join_strings(mc_buf *b, const json_t *arr, size_t max)
{
    size_t i, start = b->len;
    const json_t *s;
    json_array_foreach(arr, i, s) {
        const char *v = json_is_string(s) ? json_string_value(s) : "?";
        if (i > 0 && b->len - start + strlen(v) > max) {
            mc_buf_printf(b, " (+%zu more)", json_array_size(arr) - i);
            return;
        }
        if (i > 0)
            mc_buf_putc(b, ' ');
        mc_buf_puts(b, v);
    }
}

int mc_ctl_count_edges(const json_t *inv, const char *state, char *names, size_t nameslen)
{
    const json_t *edges = json_is_object(inv) ? json_object_get(inv, "edges") : NULL;
    size_t i, used = 0;
    const json_t *e;
    int n = 0;
    if (names && nameslen)
        names[0] = '\0';
    json_array_foreach(edges, i, e) {
        const json_t *st = json_object_get(e, "state");
        if (!json_is_string(st) || strcmp(json_string_value(st), state) != 0)
            continue;
        n++;
        char b[32];
        const char *node = field(e, "node", b, sizeof b);
        if (names && n <= 5 && used < nameslen) {
            int w = snprintf(names + used, nameslen - used, "%s%s", n > 1 ? ", " : "", node);
            used += w > 0 ? (size_t)w : 0;
        } else if (names && n == 6 && used < nameslen) {
            int w = snprintf(names + used, nameslen - used, ", ...");
            used += w > 0 ? (size_t)w : 0;
        }
    }
    return n;
}

void mc_ctl_print_status(FILE *f, const json_t *inv)
{
    char b1[32], b2[32], b3[32];
    const json_t *edges = json_object_get(inv, "edges");
    size_t nedges = json_is_array(edges) ? json_array_size(edges) : 0;
    fprintf(f, "%s  %s  created %s", field(inv, "id", b1, sizeof b1),
            field(inv, "status", b2, sizeof b2), field(inv, "created", b3, sizeof b3));
    if (nedges) {
        int applied = mc_ctl_count_edges(inv, "applied", NULL, 0);
        int pending = mc_ctl_count_edges(inv, "pending", NULL, 0);
        int unreach = mc_ctl_count_edges(inv, "unreachable", NULL, 0);
        fprintf(f, "  edges: %d applied", applied);
        if (pending)
            fprintf(f, ", %d pending", pending);
        if (unreach)
            fprintf(f, ", %d unreachable", unreach);
    }
    fputc('\n', f);
    mc_buf b = MC_BUF_INIT;
    if (count_of(inv, "paths")) {
        join_strings(&b, json_object_get(inv, "paths"), 400);
        fprintf(f, "paths: %s\n", b.data);
        mc_buf_reset(&b);
    }
    if (count_of(inv, "surrogate_keys")) {
        join_strings(&b, json_object_get(inv, "surrogate_keys"), 400);
        fprintf(f, "surrogate keys: %s\n", b.data);
    }
    mc_buf_free(&b);
    if (flag_of(inv, "all"))
        fputs("all: everything\n", f);
    if (flag_of(inv, "soft"))
        fputs("soft: marked stale, not deleted\n", f);
    if (nedges == 0) {
        fputs("no registered edges\n", f);
        return;
    }
    fputc('\n', f);
    edges_table(f, edges);
}

void mc_ctl_print_list(FILE *f, const json_t *answer)
{
    const json_t *invs = json_is_object(answer) ? json_object_get(answer, "invalidations") : NULL;
    if (!json_is_array(invs) || json_array_size(invs) == 0) {
        fputs("no invalidations\n", f);
        return;
    }
    table t = {NULL, 0, 0, 4};
    static const char *const head[] = {"ID", "CREATED", "STATUS", "WHAT"};
    table_add(&t, head);
    size_t i;
    const json_t *inv;
    json_array_foreach(invs, i, inv) {
        char b[3][32];
        mc_buf what = MC_BUF_INIT;
        if (count_of(inv, "paths"))
            join_strings(&what, json_object_get(inv, "paths"), 60);
        if (count_of(inv, "surrogate_keys")) {
            mc_buf_puts(&what, what.len ? "; keys: " : "keys: ");
            join_strings(&what, json_object_get(inv, "surrogate_keys"), 40);
        }
        if (flag_of(inv, "all"))
            mc_buf_puts(&what, what.len ? "; all" : "all");
        if (flag_of(inv, "soft"))
            mc_buf_puts(&what, what.len ? "; soft" : "soft");
        const char *row[4] = {field(inv, "id", b[0], 32), field(inv, "created", b[1], 32),
                              field(inv, "status", b[2], 32), what.data ? what.data : "-"};
        table_add(&t, row);
        mc_buf_free(&what);
    }
    table_print(f, &t);
}

void mc_ctl_print_edges(FILE *f, const json_t *answer)
{
    const json_t *edges = json_is_object(answer) ? json_object_get(answer, "edges") : NULL;
    if (!json_is_array(edges) || json_array_size(edges) == 0) {
        fputs("no registered edges\n", f);
        return;
    }
    edges_table(f, edges);
}

void mc_ctl_print_purged(FILE *f, const json_t *answer)
{
    const json_t *n = json_is_object(answer) ? json_object_get(answer, "purged") : NULL;
    json_int_t v = json_is_integer(n) ? json_integer_value(n) : 0;
    fprintf(f, "purged %" JSON_INTEGER_FORMAT " object%s%s\n", v, v == 1 ? "" : "s",
            flag_of(answer, "soft") ? " (soft: marked stale)" : "");
}
