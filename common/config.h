/* config.h — INI config files plus command-line flags that override them.
 *
 * Each binary declares a schema: a NULL-terminated array of mc_cfg_opt. A
 * value comes from (lowest to highest): the schema default, the INI file
 * (--config FILE), then flags. Every key can be given as --SECTION.KEY=VALUE
 * (or --SECTION.KEY VALUE); an option with a `flag` also answers to --FLAG.
 * A bool flag given without a value means "true".
 *
 * Errors name where the value came from, so a person can fix it:
 *   edge.ini:14: store.size: "8X" is not a size (use 8G, 512M)
 *   --store.size: "8X" is not a size (use 8G, 512M)
 * Unknown sections/keys/flags are errors too (a typo must not be ignored).
 *
 * Ownership: mc_config owns every string it returns; they stay valid until
 * mc_config_free. Threads: build on the main thread; read-only afterwards.
 */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include <stdint.h>
#include <stdbool.h>
#include "common/err.h"

typedef enum {
    MC_CFG_STR,        /* any text */
    MC_CFG_INT,        /* decimal integer, min/max checked */
    MC_CFG_SIZE,       /* bytes: 123, 64k, 512M, 8G, 1T (powers of 1024) */
    MC_CFG_DURATION,   /* milliseconds from: 250ms, 5s, 2m, 1h, 1d; bare = seconds */
    MC_CFG_BOOL,       /* true/false/yes/no/on/off/1/0 */
    MC_CFG_ADDR,       /* HOST:PORT, [v6]:PORT */
    MC_CFG_ENUM,       /* one of `choices`, "a|b|c" */
    MC_CFG_MAP,        /* key "*": a section whose keys are free-form (e.g. prefix rules) */
} mc_cfg_type;

typedef struct mc_cfg_opt {
    const char *section;   /* "edge" */
    const char *key;       /* "listen"; "*" for MC_CFG_MAP */
    const char *flag;      /* alias without "--" ("listen"), or NULL */
    mc_cfg_type type;
    const char *def;       /* default as text, NULL = unset */
    const char *help;      /* one line for --help */
    const char *choices;   /* MC_CFG_ENUM: "sigv4|none"; else NULL */
    int64_t min, max;      /* MC_CFG_INT bounds (both 0 = unbounded) */
} mc_cfg_opt;

typedef struct mc_config mc_config;

enum { MC_CONFIG_RUN = 0, MC_CONFIG_HELP = 1, MC_CONFIG_VERSION = 2 };

/* Parse argv (argv[0] is the program) and the --config file. Returns
 * MC_CONFIG_RUN, MC_CONFIG_HELP (--help/-h) or MC_CONFIG_VERSION
 * (--version/-V), or a negative MC_E_* with err filled. Words that are not
 * flags are positional arguments (see mc_config_args) when allow_args, else
 * an error. A config file that is missing or unreadable is an error. */
int mc_config_load(mc_config **out, const mc_cfg_opt *schema, int argc,
                   char **argv, bool allow_args, mc_err *err);
void mc_config_free(mc_config *c);

/* Print usage: "usage: PROG SYNOPSIS" then each option with default and help. */
void mc_config_usage(const mc_cfg_opt *schema, const char *prog,
                     const char *synopsis, void *stream /* FILE* */);

/* Typed accessors; the value was validated at load, so they cannot fail.
 * mc_config_str returns NULL for an unset option without default. */
const char *mc_config_str(const mc_config *c, const char *section, const char *key);
int64_t mc_config_int(const mc_config *c, const char *section, const char *key);
uint64_t mc_config_size(const mc_config *c, const char *section, const char *key);
int64_t mc_config_duration_ms(const mc_config *c, const char *section, const char *key);
bool mc_config_bool(const mc_config *c, const char *section, const char *key);
/* "file.ini:14" or "--section.key" or "default": where the value came from. */
const char *mc_config_origin(const mc_config *c, const char *section, const char *key);

/* For checks made after load (a URL that does not parse, a file that cannot
 * be opened): format "WHERE: section.key: MESSAGE" into err; returns code. */
int mc_config_fail(const mc_config *c, mc_err *err, int code, const char *section,
                   const char *key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Iterate a MC_CFG_MAP section in file order, then flag order. Stops early
 * when fn returns non-zero and returns that value. */
typedef int (*mc_config_each_fn)(void *ud, const char *key, const char *value,
                                 const char *where);
int mc_config_each(const mc_config *c, const char *section, mc_config_each_fn fn, void *ud);

/* Positional arguments (allow_args). */
int mc_config_nargs(const mc_config *c);
const char *mc_config_arg(const mc_config *c, int i);

/* Value parsers, also used by the tests: 0 or MC_E_INVAL. */
int mc_parse_size(const char *s, uint64_t *out);
int mc_parse_duration_ms(const char *s, int64_t *out);
int mc_parse_bool(const char *s, bool *out);
/* "HOST:PORT" / "[v6]:PORT" into host (no brackets) and port. */
int mc_parse_addr(const char *s, char *host, size_t hostlen, int *port);

#endif
