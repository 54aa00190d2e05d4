/* cmd.c — meshcdnctl's command line, help and bodies; see cmd.h. */
#include "ctl/cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "common/config.h"
#include "common/inval.h"

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

char *mc_ctl_body(const mc_ctl_opts *o)
{
    json_t *b = json_object();
    if (!b)
        return NULL;
    int bad = 0;
    if (o->npaths)
        bad |= json_object_set_new(b, "paths", mc_inval_strings_json(o->paths, o->npaths));
    if (o->ntags)
        bad |= json_object_set_new(b, "surrogate_keys", mc_inval_strings_json(o->tags, o->ntags));
    if (o->all)
        bad |= json_object_set_new(b, "all", json_true());
    if (o->soft)
        bad |= json_object_set_new(b, "soft", json_true());
    char *s = bad ? NULL : json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(b);
    return s;
}
