/* log.h — one line per event, key=value, greppable.
 *
 *   level=warn mod=fill key=/models/chair.glb msg="upstream reset" after_bytes=1048576
 *
 * Thread-safe (one write(2) per line). Secrets and signatures must never be
 * passed in. Output goes to stderr unless mc_log_open() names a file.
 */
#ifndef MC_LOG_H
#define MC_LOG_H

typedef enum { MC_LOG_DEBUG = 0, MC_LOG_INFO, MC_LOG_WARN, MC_LOG_ERROR } mc_log_level;

/* Parse "debug|info|warn|error"; returns 0 or MC_E_INVAL. */
int mc_log_level_parse(const char *s, mc_log_level *out);
void mc_log_set_level(mc_log_level lvl);
mc_log_level mc_log_get_level(void);
/* Append lines to path instead of stderr; returns 0 or MC_E_IO. */
int mc_log_open(const char *path);

/* fmt continues the line after "level=... mod=...": give it key=value pairs. */
void mc_log(mc_log_level lvl, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define mc_log_debug(mod, ...) do { if (mc_log_get_level() <= MC_LOG_DEBUG) mc_log(MC_LOG_DEBUG, mod, __VA_ARGS__); } while (0)
#define mc_log_info(mod, ...)  mc_log(MC_LOG_INFO, mod, __VA_ARGS__)
#define mc_log_warn(mod, ...)  mc_log(MC_LOG_WARN, mod, __VA_ARGS__)
#define mc_log_error(mod, ...) mc_log(MC_LOG_ERROR, mod, __VA_ARGS__)

#endif
