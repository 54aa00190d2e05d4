/* fuzz_path.c — the path normaliser and decoder (common/path.c). The
 * normalised path is what the edge caches under and sends upstream, so it
 * must start with '/', hold no dot segment and no byte outside the RFC 3986
 * path set, and normalising it again must change nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/path.h"

static int path_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$&'()*+,;=:@/%", c) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mc_buf out = MC_BUF_INIT, again = MC_BUF_INIT, dec = MC_BUF_INIT;
    if (mc_path_normalize((const char *)data, size, &out) == 0) {
        if (out.len == 0 || out.data[0] != '/')
            abort();
        for (size_t i = 0; i < out.len; i++)
            if (!out.data[i] || !path_byte((unsigned char)out.data[i]))
                abort();
        if (strstr(out.data, "/./") || strstr(out.data, "/../"))
            abort();
        size_t l = out.len;
        if ((l >= 2 && strcmp(out.data + l - 2, "/.") == 0) || (l >= 3 && strcmp(out.data + l - 3, "/..") == 0))
            abort();
        if (mc_path_normalize(out.data, out.len, &again) != 0 || again.len != out.len ||
            memcmp(again.data, out.data, out.len) != 0)
            abort();
    }
    (void)mc_path_decode((const char *)data, size, &dec);
    mc_buf_free(&out);
    mc_buf_free(&again);
    mc_buf_free(&dec);
    return 0;
}
