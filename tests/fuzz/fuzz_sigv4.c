/* fuzz_sigv4.c — mc_sigv4_verify on hostile requests: the input is split on
 * '\n' into an Authorization value, a query string, a path, an x-amz-date
 * and an x-amz-content-sha256 value (missing lines: absent). Both the header
 * form and the presigned query form get parsed this way. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/sigv4.h"

static int secret_fn(void *ud, const char *access_key, const char *out[2])
{
    (void)ud;
    if (strcmp(access_key, "AKIDEXAMPLE") != 0)
        return 0;
    out[0] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    out[1] = "second";
    return 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *f[5] = {NULL, NULL, NULL, NULL, NULL};
    char *p = s;
    for (int i = 0; i < 5 && p; i++) {
        f[i] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }
    mc_sigv4_header h[4];
    size_t nh = 0;
    h[nh++] = (mc_sigv4_header){"Host", "example.amazonaws.com"};
    if (f[0] && *f[0])
        h[nh++] = (mc_sigv4_header){"Authorization", f[0]};
    h[nh++] = (mc_sigv4_header){"X-Amz-Date", f[3] ? f[3] : "20150830T123600Z"};
    if (f[4])
        h[nh++] = (mc_sigv4_header){"x-amz-content-sha256", f[4]};
    mc_sigv4_request r = {"GET", f[2] && *f[2] ? f[2] : "/", f[1], h, nh, "body", 4, NULL};
    for (int norm = 0; norm < 2; norm++) {
        mc_sigv4_verify_opts o = {norm ? "service" : "s3", norm ? "us-east-1" : NULL, norm,
                                  1440938160, 900, secret_fn, NULL};
        mc_sigv4_verdict v;
        (void)mc_sigv4_verify(&r, &o, &v);
    }
    free(s);
    return 0;
}
