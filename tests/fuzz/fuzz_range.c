/* fuzz_range.c — the Range parser (common/range.c): the first 8 input bytes
 * are the object size (little-endian, a few sizes including 0 and huge),
 * the rest is the header value. Every range returned must lie inside the
 * object and be well ordered. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t objsize = 0;
    if (size >= 8) {
        for (int i = 7; i >= 0; i--)
            objsize = objsize << 8 | data[i];
        data += 8;
        size -= 8;
    } else {
        objsize = 10000;
    }
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    mc_range r[8];
    int n = mc_range_parse(s, objsize, r, 8);
    if (n > 8)
        abort();
    for (int i = 0; i < n; i++)
        if (r[i].start > r[i].end || r[i].end >= objsize)
            abort();
    free(s);
    return 0;
}
