/* fuzz_cc.c — the Cache-Control parser (common/cc.c): the input, split on
 * '\n', is one or more header field values added to one mc_cc. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/cc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    mc_cc cc;
    mc_cc_init(&cc);
    for (char *p = s, *nl; p; p = nl) {
        nl = strchr(p, '\n');
        if (nl)
            *nl++ = '\0';
        mc_cc_parse(&cc, p);
    }
    if (cc.max_age < -1 || cc.s_maxage < -1 || cc.stale_while_revalidate < -1 || cc.stale_if_error < -1 ||
        cc.min_fresh < -1 || cc.max_stale < -1)
        abort();
    free(s);
    return 0;
}
