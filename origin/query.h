/* query.h — an S3 request's query string, decoded.
 *
 * "list-type=2&prefix=a%2Fb&uploads" becomes (name, value) pairs with both
 * sides percent-decoded once ('+' stays '+': SigV4 clients encode spaces as
 * %20); a name without '=' has the value "". Bad escapes or a decoded NUL
 * make mc_query_parse fail (400 InvalidArgument).
 *
 * Ownership: an mc_query owns its strings; mc_query_free releases them.
 * Errors: 0, MC_E_INVAL, MC_E_NOMEM.
 */
#ifndef MC_QUERY_H
#define MC_QUERY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mc_query_pair {
    char *name;
    char *value;
} mc_query_pair;

typedef struct mc_query {
    mc_query_pair *v;
    size_t n;
} mc_query;

#define MC_QUERY_INIT {NULL, 0}

int mc_query_parse(mc_query *q, const char *raw);
void mc_query_free(mc_query *q);
/* The value of the first pair named name, or NULL. */
const char *mc_query_get(const mc_query *q, const char *name);
/* Is there any pair other than those named in allowed (NULL-terminated)? */
bool mc_query_has_other(const mc_query *q, const char *const *allowed);

#endif
