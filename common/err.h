/* err.h — error codes and human-readable errors shared by every module.
 *
 * Functions return 0 (or a non-negative count) on success and a negative
 * MC_E_* code on failure. Where a person will read the failure (config, CLI,
 * startup), the function also fills an mc_err with a one-line message.
 */
#ifndef MC_ERR_H
#define MC_ERR_H

#include <stdarg.h>
#include <stddef.h>

enum {
    MC_OK = 0,
    MC_E_NOMEM = -1,        /* allocation failed */
    MC_E_INVAL = -2,        /* malformed input (a header, a flag, a value) */
    MC_E_IO = -3,           /* a system call failed; errno-style detail in mc_err */
    MC_E_NOTFOUND = -4,     /* no such object / key / file */
    MC_E_TOOBIG = -5,       /* input larger than a configured bound */
    MC_E_UNSATISFIABLE = -6,/* a Range that selects no byte of the object */
    MC_E_AUTH_MISSING = -7, /* no SigV4 authorization in the request */
    MC_E_AUTH_MALFORMED = -8,/* SigV4 authorization present but unparsable */
    MC_E_AUTH_UNKNOWN_KEY = -9,/* access key id not in the key file */
    MC_E_AUTH_MISMATCH = -10,/* signature does not match */
    MC_E_AUTH_SKEW = -11,   /* x-amz-date outside the allowed window */
    MC_E_AUTH_EXPIRED = -12,/* presigned URL past X-Amz-Expires */
    MC_E_TRUNCATED = -13,   /* a body shorter than its declared length */
    MC_E_CHECKSUM = -14,    /* stored bytes fail their checksum */
    MC_E_FULL = -15,        /* the store has no room for this write */
    MC_E_BUSY = -16,        /* resource held by someone else (e.g. store lock) */
    MC_E_PERM = -17,        /* a file's permissions are too open, or access denied */
    MC_E_STATE = -18,       /* call made in the wrong state */
};

#define MC_ERR_MSG_MAX 512

/* A message for a person: "edge.ini:14: store.size: "8X" is not a size". */
typedef struct mc_err {
    int code;
    char msg[MC_ERR_MSG_MAX];
} mc_err;

/* Fill err (if not NULL) with code and a printf-style message; returns code. */
int mc_err_set(mc_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same into a caller's buffer (why may be NULL); returns code. For APIs
 * that report a reason as (char *why, size_t whylen). */
int mc_err_why(char *why, size_t whylen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A short constant name for a code ("MC_E_INVAL"). */
const char *mc_err_name(int code);

#endif
