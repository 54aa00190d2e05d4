/* httpdate.h — HTTP dates (RFC 9110 section 5.6.7).
 * Format always as IMF-fixdate; parse IMF-fixdate, RFC 850 and asctime. */
#ifndef MC_HTTPDATE_H
#define MC_HTTPDATE_H

#include <time.h>

#define MC_HTTPDATE_LEN 30   /* "Sun, 06 Nov 1994 08:49:37 GMT" + NUL */

void mc_httpdate_format(time_t t, char out[MC_HTTPDATE_LEN]);
/* Returns 0 or MC_E_INVAL (the RFC says: treat an invalid date as absent). */
int mc_httpdate_parse(const char *s, time_t *out);

#endif
