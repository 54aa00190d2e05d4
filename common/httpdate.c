/* httpdate.c — see httpdate.h. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "common/err.h"
#include "common/httpdate.h"

static const char *const wkday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void mc_httpdate_format(time_t t, char out[MC_HTTPDATE_LEN])
{
    struct tm tm;
    /* strftime's %a/%b follow the locale; HTTP dates must not. tail holds
     * "06 ### 1994 08:49:37 GMT" and its NUL, so a 5-digit year does not fit. */
    char tail[25];
    if (!gmtime_r(&t, &tm) || strftime(tail, sizeof tail, "%d ### %Y %H:%M:%S GMT", &tm) == 0) {
        snprintf(out, MC_HTTPDATE_LEN, "Fri, 31 Dec 9999 23:59:59 GMT");
        return;
    }
    memcpy(tail + 3, month[tm.tm_mon], 3);
    snprintf(out, MC_HTTPDATE_LEN, "%s, %s", wkday[tm.tm_wday], tail);
}

static int month_index(const char *m)
{
    for (int i = 0; i < 12; i++)
        if (strncmp(m, month[i], 3) == 0)
            return i;
    return -1;
}

static int to_time(int y, int mon, int d, int h, int mi, int s, time_t *out)
{
    if (mon < 0 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60 ||
        y < 1900 || y > 9999)
        return MC_E_INVAL;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    *out = timegm(&tm);
    return 0;
}

int mc_httpdate_parse(const char *s, time_t *out)
{
    char wd[16], mon[4];
    int d, y, h, mi, sec, n = 0;
    if (!s)
        return MC_E_INVAL;
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (sscanf(s, "%3s, %2d %3s %4d %2d:%2d:%2d GMT%n", wd, &d, mon, &y, &h, &mi, &sec, &n) == 7 && n > 0)
        return to_time(y, month_index(mon), d, h, mi, sec, out);
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (two-digit year: RFC 9110 5.6.7) */
    n = 0;
    if (sscanf(s, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n", wd, &d, mon, &y, &h, &mi, &sec, &n) == 7 && n > 0) {
        y += (y < 70) ? 2000 : 1900;
        return to_time(y, month_index(mon), d, h, mi, sec, out);
    }
    /* asctime: Sun Nov  6 08:49:37 1994 */
    n = 0;
    if (sscanf(s, "%3s %3s %2d %2d:%2d:%2d %4d%n", wd, mon, &d, &h, &mi, &sec, &y, &n) == 7 && n > 0)
        return to_time(y, month_index(mon), d, h, mi, sec, out);
    return MC_E_INVAL;
}
