/* signer.h — the edge's origin request signer (SigV4, OAC style) and the
 * credentials it signs with.
 *
 * What is signed: METHOD PATH?QUERY with headers host (the origin URL's
 * host[:port], as sent), x-amz-content-sha256 (UNSIGNED-PAYLOAD without a
 * body, else the body's SHA-256), x-amz-date
 * and, with temporary credentials, x-amz-security-token. Path-style origins
 * (http://HOST:PORT/BUCKET) sign /BUCKET/KEY; virtual-hosted ones
 * (https://BUCKET.s3.REGION.amazonaws.com) sign /KEY with that host, which is
 * what Amazon S3 expects of each.
 *
 * Credentials: a credentials file ("ACCESS_KEY_ID SECRET [SESSION_TOKEN]",
 * mode 0600) and optionally a separate session token file (one token, mode
 * 0600; it overrides a token in the credentials file). Both may be replaced
 * while the edge runs (rename over, or rewrite): a change of inode, size or
 * mtime is noticed at most one second later and the files are read again. A
 * file that does not load (half written, wrong mode) keeps the previous
 * credentials in use and is logged; the next change is tried again. Write
 * the three fields in one file and rename it into place for an atomic
 * rotation: with two files a request may meet the new key and the old token.
 *
 * Threads: one mc_signer per node, shared by the workers; a mutex guards the
 * credentials (a check is a stat() of one or two small files, a reload reads
 * them: both short, and at most once a second). Secrets and tokens are never
 * logged and are wiped when replaced.
 * Errors: 0 or a negative MC_E_* (err says why, naming the file).
 */
#ifndef MC_SIGNER_H
#define MC_SIGNER_H

#include <time.h>
#include "common/err.h"

#define MC_SIGNER_MAGIC 0x5349474eu

typedef struct mc_signer mc_signer;

typedef struct mc_signer_opts {
    const char *credentials_file;
    const char *session_token_file;   /* NULL: the token, if any, is the credentials file's third field */
    const char *host;                 /* Host header as sent: "bucket.s3.eu-west-1.amazonaws.com" */
    const char *region;               /* SigV4 scope region */
    const char *service;              /* "s3" */
} mc_signer_opts;

/* Headers to add to one request. session_token is NULL without temporary
 * credentials. Free with mc_signed_free (wipes the token copy). */
typedef struct mc_signed {
    char amz_date[17];
    char authorization[2048];
    char *session_token;
} mc_signed;

/* Load the files now (errors are start-up errors). The strings in o are copied. */
int mc_signer_new(mc_signer **out, const mc_signer_opts *o, mc_err *err);
void mc_signer_free(mc_signer *s);

/* Check the files and reload them if they changed. Returns 1 when new
 * credentials are in use, 0 when nothing changed, < 0 when a changed file
 * did not load (the old credentials stay). sign_get calls it at most once a
 * second; SIGHUP may call it at any time. */
int mc_signer_refresh(mc_signer *s, mc_err *err);

/* Sign GET path?query at time now. path is the wire path in the S3 canonical
 * encoding (mc_sigv4_s3_path); query without '?', NULL or "" for none. */
int mc_signer_sign_get(mc_signer *s, const char *path, const char *query, time_t now, mc_signed *out);
/* The same for any method; payload_hash is what x-amz-content-sha256 says
 * ("UNSIGNED-PAYLOAD", or the hex SHA-256 of the body an S3 origin checks). */
int mc_signer_sign(mc_signer *s, const char *method, const char *path, const char *query,
                   const char *payload_hash, time_t now, mc_signed *out);
void mc_signed_free(mc_signed *sg);

#endif
