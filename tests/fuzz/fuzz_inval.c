/* fuzz_inval.c — the invalidation body parser (common/inval.c), as POST
 * /purge and POST /invalidations receive it. What it accepts must obey the
 * rules it promises (paths start with '/', at most one trailing '*'). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/inval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mc_inval in;
    mc_inval_error e;
    memset(&in, 0, sizeof in);
    if (mc_inval_parse((const char *)data, size, &in, &e) == 0) {
        if (in.npaths + in.nkeys > MC_INVAL_MAX_ITEMS || (!in.npaths && !in.nkeys && !in.all))
            abort();
        for (size_t i = 0; i < in.npaths; i++) {
            const char *pa = in.paths[i], *star = strchr(pa, '*');
            if (pa[0] != '/' || strlen(pa) > MC_INVAL_MAX_STRING || (star && star[1]))
                abort();
        }
        for (size_t i = 0; i < in.nkeys; i++)
            if (!in.keys[i][0] || strlen(in.keys[i]) > MC_INVAL_MAX_STRING)
                abort();
    }
    mc_inval_free(&in);
    return 0;
}
