/* err.c — see err.h. */
#include <stdio.h>
#include "common/err.h"

int mc_err_set(mc_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int mc_err_why(char *why, size_t whylen, int code, const char *fmt, ...)
{
    if (why && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *mc_err_name(int code)
{
    switch (code) {
    case MC_OK: return "MC_OK";
    case MC_E_NOMEM: return "MC_E_NOMEM";
    case MC_E_INVAL: return "MC_E_INVAL";
    case MC_E_IO: return "MC_E_IO";
    case MC_E_NOTFOUND: return "MC_E_NOTFOUND";
    case MC_E_TOOBIG: return "MC_E_TOOBIG";
    case MC_E_UNSATISFIABLE: return "MC_E_UNSATISFIABLE";
    case MC_E_AUTH_MISSING: return "MC_E_AUTH_MISSING";
    case MC_E_AUTH_MALFORMED: return "MC_E_AUTH_MALFORMED";
    case MC_E_AUTH_UNKNOWN_KEY: return "MC_E_AUTH_UNKNOWN_KEY";
    case MC_E_AUTH_MISMATCH: return "MC_E_AUTH_MISMATCH";
    case MC_E_AUTH_SKEW: return "MC_E_AUTH_SKEW";
    case MC_E_AUTH_EXPIRED: return "MC_E_AUTH_EXPIRED";
    case MC_E_TRUNCATED: return "MC_E_TRUNCATED";
    case MC_E_CHECKSUM: return "MC_E_CHECKSUM";
    case MC_E_FULL: return "MC_E_FULL";
    case MC_E_BUSY: return "MC_E_BUSY";
    case MC_E_PERM: return "MC_E_PERM";
    case MC_E_STATE: return "MC_E_STATE";
    default: return "MC_E_UNKNOWN";
    }
}
