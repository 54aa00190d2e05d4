/* log.c — see log.h. One write(2) per line so lines from threads never mix. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "common/err.h"
#include "common/log.h"

static _Atomic int log_level = MC_LOG_INFO;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int mc_log_level_parse(const char *s, mc_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (mc_log_level)i;
            return 0;
        }
    if (strcasecmp(s, "warning") == 0) {
        *out = MC_LOG_WARN;
        return 0;
    }
    return MC_E_INVAL;
}

void mc_log_set_level(mc_log_level lvl) { atomic_store(&log_level, (int)lvl); }
mc_log_level mc_log_get_level(void) { return (mc_log_level)atomic_load_explicit(&log_level, memory_order_relaxed); }

int mc_log_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return MC_E_IO;
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    return 0;
}

void mc_log(mc_log_level lvl, const char *mod, const char *fmt, ...)
{
    if ((int)lvl < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s mod=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), level_names[lvl], mod);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(log_fd, line, len);
    (void)w;
}
