/* keys.h — key files: "ACCESS_KEY_ID SECRET" per line, '#' comments.
 *
 * A key file holds the keys a server accepts (origin, admin, control); a
 * credentials file is a key file with exactly one pair (what a client signs
 * with), optionally followed by a session token on the same line. Files readable by group or others are refused (MC_E_PERM), so a
 * secret never sits in a world-readable file. An access key id may appear on
 * two lines: both secrets are active (rotation).
 *
 * Ownership: mc_keys owns its strings; mc_keys_free releases them.
 * Threads: immutable after load; safe to read from any thread.
 */
#ifndef MC_KEYS_H
#define MC_KEYS_H

#include "common/err.h"

typedef struct mc_key {
    char *access_key;
    char *secret;
    char *session_token;   /* credentials files only: optional third field, else NULL */
} mc_key;

typedef struct mc_keys {
    mc_key *v;
    int n;
} mc_keys;

/* Load path; errors name the file and line: "keys.txt:3: expected two
 * fields". Returns 0, MC_E_IO, MC_E_PERM or MC_E_INVAL. */
int mc_keys_load(mc_keys *out, const char *path, mc_err *err);
/* Load a credentials file: exactly one line "ACCESS_KEY_ID SECRET
 * [SESSION_TOKEN]" (the token: temporary credentials, x-amz-security-token). */
int mc_keys_load_credentials(mc_keys *out, const char *path, mc_err *err);
void mc_keys_free(mc_keys *k);

/* mc_sigv4_secret_fn over an mc_keys (ud = const mc_keys *). */
int mc_keys_secret_fn(void *ud, const char *access_key, const char *secrets_out[2]);

#endif
