/* cmd.h — meshcdnctl's command line, help and request bodies.
 *
 * No I/O except mc_ctl_usage's FILE*, no globals: the unit tests drive
 * every function here (tests/unit/test_ctl.c). Readable output: render.h.
 *
 * Command line (the shared purge/invalidation spec, "meshcdnctl"):
 *   meshcdnctl [GLOBAL...] COMMAND [ARGS...]
 *   GLOBAL: --control URL, --edge URL (purge only), --credentials FILE,
 *           --region R, --config FILE, --json (also accepted after the
 *           command, so `status I12 --json` works); --help/-h anywhere,
 *           --version/-V before the command
 *   invalidate [--soft] [--all] [--tag KEY]... [--wait] [--timeout S] [PATH...]
 *   status ID [--wait] [--timeout S]
 *   list [--limit N]
 *   edges
 *   purge --edge URL [--soft] [--all] [--tag KEY]... [PATH...]
 * Options take their value as the next word or after '=' (--tag=chair); "--"
 * ends the options.
 *
 * Ownership: mc_ctl_opts borrows every string from argv (argv must outlive
 * it) and owns only its paths/tags arrays (mc_ctl_opts_free).
 */
#ifndef MC_CTL_CMD_H
#define MC_CTL_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "common/err.h"

/* Exit statuses (the spec's). */
enum { MC_CTL_EXIT_OK = 0, MC_CTL_EXIT_FAIL = 1, MC_CTL_EXIT_USAGE = 2 };

/* Limits the control API enforces; checked here so a typo fails before any
 * request is sent. */
#define MC_CTL_MAX_ITEMS 3000        /* paths + surrogate keys */
#define MC_CTL_MAX_STRING 1024       /* bytes per path or key */
#define MC_CTL_DEFAULT_TIMEOUT_MS 300000
#define MC_CTL_POLL_MS 100
#define MC_CTL_MAX_LIMIT 100000

typedef enum {
    MC_CTL_CMD_NONE = 0,
    MC_CTL_CMD_HELP,        /* --help anywhere: print help for cmd_for_help */
    MC_CTL_CMD_VERSION,
    MC_CTL_CMD_INVALIDATE,
    MC_CTL_CMD_STATUS,
    MC_CTL_CMD_LIST,
    MC_CTL_CMD_EDGES,
    MC_CTL_CMD_PURGE,
} mc_ctl_cmd;

typedef struct mc_ctl_opts {
    mc_ctl_cmd cmd;
    mc_ctl_cmd help_for;       /* MC_CTL_CMD_HELP: the command asked about, or NONE */
    /* global; NULL = not given (main fills env / config / defaults) */
    const char *control_url;
    const char *edge_url;
    const char *credentials;
    const char *region;
    const char *config;
    int json;
    /* invalidate / purge */
    int soft;
    int all;
    const char **paths;        /* owned array of borrowed strings */
    size_t npaths;
    const char **tags;
    size_t ntags;
    /* invalidate / status */
    int wait;
    int64_t timeout_ms;        /* MC_CTL_DEFAULT_TIMEOUT_MS unless --timeout (needs --wait) */
    int timeout_given;
    const char *id;            /* status: as given ("I12" or "12") */
    /* list */
    long limit;                /* 0 = let the server choose */
} mc_ctl_opts;

/* Help text: the whole tool (MC_CTL_CMD_NONE) or one command. */
void mc_ctl_usage(FILE *f, mc_ctl_cmd cmd);

/* Parse argv (argv[0] is the program). Returns 0 with *o filled, or
 * MC_E_INVAL with err holding a one-line message for a person (the caller
 * prints it and exits MC_CTL_EXIT_USAGE). Checks everything that can be
 * checked without the server: paths start with '/', '*' only last, 1..1024
 * bytes, keys are tokens, at most 3000 items, something to invalidate,
 * IDs look like "I12" or "12", numbers in range. Free with mc_ctl_opts_free
 * whatever the result. */
int mc_ctl_parse(mc_ctl_opts *o, int argc, char **argv, mc_err *err);
void mc_ctl_opts_free(mc_ctl_opts *o);

/* One path or surrogate key as the control API will accept it: NULL when
 * fine, else why not (a constant string). */
const char *mc_ctl_check_path(const char *p);
const char *mc_ctl_check_tag(const char *t);

/* The invalidation body for POST /invalidations and POST /purge:
 * {"paths":[...],"surrogate_keys":[...],"all":B,"soft":B}, members present
 * only when set (empty lists and false flags are left out). Returns a heap
 * string (caller frees) or NULL on NOMEM. */
char *mc_ctl_body(const mc_ctl_opts *o);

/* The invalidation id as the server names it: "12" -> "I12", "i12" -> "I12".
 * out must hold 32 bytes. Returns 0 or MC_E_INVAL. */
int mc_ctl_norm_id(const char *id, char out[32]);

#endif
