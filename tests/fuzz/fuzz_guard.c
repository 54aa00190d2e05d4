/* fuzz_guard.c — the origin guard's request head check (origin/guard.c,
 * mc_guard_check_head). The input is a head (request line to the blank
 * line) as a client sends it. What the check accepts must be a head evhttp
 * cannot read two ways: CRLF line ends only, no NUL or other control byte,
 * no obs-fold, exactly one Host in HTTP/1.1, not both Content-Length and
 * Transfer-Encoding, a body length within the limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "origin/guard.h"

#define MAX_BODY 65536

static size_t count_field(const char *h, size_t n, const char *name)
{
    size_t k = strlen(name), c = 0;
    for (size_t i = 0; i + 2 + k < n; i++)
        if (h[i] == '\r' && h[i + 1] == '\n' && strncasecmp(h + i + 2, name, k) == 0 && h[i + 2 + k] == ':')
            c++;
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *h = (const char *)data;
    uint64_t len = 0;
    int chunked = 0;
    int st = mc_guard_check_head(h, size, MAX_BODY, &len, &chunked);
    if (st != 0) {
        if (st < 400 || st > 505)
            abort();
        return 0;
    }
    if (size < 4 || memcmp(h + size - 4, "\r\n\r\n", 4) != 0)
        abort();
    for (size_t i = 0; i < size; i++) {
        unsigned char c = data[i];
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
            abort();
        if (c == '\n' && (i == 0 || h[i - 1] != '\r'))
            abort();                              /* bare LF */
        if (c == '\r' && (i + 1 == size || h[i + 1] != '\n'))
            abort();                              /* bare CR */
        if (c == '\n' && i + 1 < size - 2 && (h[i + 1] == ' ' || h[i + 1] == '\t'))
            abort();                              /* obs-fold */
    }
    int http10 = memmem(h, size, " HTTP/1.0\r\n", 11) != NULL;
    if (!http10 && count_field(h, size, "Host") != 1)
        abort();
    size_t ncl = count_field(h, size, "Content-Length"), nte = count_field(h, size, "Transfer-Encoding");
    if (ncl > 1 || nte > 1 || (ncl && nte) || (chunked && !nte) || len > MAX_BODY || (len && !ncl))
        abort();
    return 0;
}
