/* cc.h — the Cache-Control header (RFC 9111 section 5.2). */
#ifndef MC_CC_H
#define MC_CC_H

#include <stdint.h>

typedef struct mc_cc {
    int64_t max_age;          /* -1 when absent */
    int64_t s_maxage;         /* -1 when absent */
    int64_t stale_while_revalidate; /* -1 when absent */
    int64_t stale_if_error;   /* -1 when absent */
    int64_t min_fresh;        /* request directive; -1 when absent */
    int64_t max_stale;        /* request directive; -1 absent, INT64_MAX without a value */
    unsigned no_store : 1, no_cache : 1, private_ : 1, public_ : 1,
             must_revalidate : 1, proxy_revalidate : 1, immutable : 1,
             no_transform : 1, only_if_cached : 1, must_understand : 1;
} mc_cc;

void mc_cc_init(mc_cc *cc);
/* Add one header field value (there may be several Cache-Control lines).
 * Unknown directives are ignored; a malformed delta-seconds makes the
 * directive count as present with value 0 (the conservative reading of RFC
 * 9111 4.2.1); duplicates keep the smallest value. */
void mc_cc_parse(mc_cc *cc, const char *value);

#endif
