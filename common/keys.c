/* keys.c — key and credentials files, see keys.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/keys.h"
#include "common/sigv4.h"

#define MAX_ACCESS_KEY 128   /* fits mc_sigv4_verdict.access_key */
#define MAX_SECRET 512
#define MAX_TOKEN 8192       /* STS session tokens run to a few KiB */

static void wipe(void *p, size_t n)
{
    if (p)
        explicit_bzero(p, n);
}

void mc_keys_free(mc_keys *k)
{
    if (!k)
        return;
    for (int i = 0; i < k->n; i++) {
        free(k->v[i].access_key);
        if (k->v[i].secret) {
            wipe(k->v[i].secret, strlen(k->v[i].secret));
            free(k->v[i].secret);
        }
        if (k->v[i].session_token) {
            wipe(k->v[i].session_token, strlen(k->v[i].session_token));
            free(k->v[i].session_token);
        }
    }
    free(k->v);
    k->v = NULL;
    k->n = 0;
}

/* Printable ASCII without blanks: what an access key id or a secret is. */
static const char *bad_field(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return "too long";
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return "not printable ASCII";
    return NULL;
}

static int add_pair(mc_keys *k, const char *ak, const char *secret, const char *token,
                    const char *path, int lineno, mc_err *err)
{
    int seen = 0;
    for (int i = 0; i < k->n; i++) {
        if (strcmp(k->v[i].access_key, ak) != 0)
            continue;
        if (strcmp(k->v[i].secret, secret) == 0)
            return mc_err_set(err, MC_E_INVAL, "%s:%d: access key %s repeats a pair already "
                              "in the file", path, lineno, ak);
        seen++;
    }
    if (seen >= 2)
        return mc_err_set(err, MC_E_INVAL, "%s:%d: access key %s has a third secret (at most "
                          "two are active, during a rotation)", path, lineno, ak);
    mc_key *v = realloc(k->v, (size_t)(k->n + 1) * sizeof *v);
    if (!v)
        return mc_err_set(err, MC_E_NOMEM, "%s:%d: out of memory", path, lineno);
    k->v = v;
    v[k->n].access_key = strdup(ak);
    v[k->n].secret = strdup(secret);
    v[k->n].session_token = token ? strdup(token) : NULL;
    k->n++;
    if (!v[k->n - 1].access_key || !v[k->n - 1].secret || (token && !v[k->n - 1].session_token))
        return mc_err_set(err, MC_E_NOMEM, "%s:%d: out of memory", path, lineno);
    return 0;
}

/* One line, already stripped of its end of line. Fields are split in place. */
static int parse_line(mc_keys *k, char *line, int allow_token, const char *path, int lineno,
                      mc_err *err)
{
    char *f[3] = {NULL, NULL, NULL};
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r\v\f", &save); t; t = strtok_r(NULL, " \t\r\v\f", &save))
        if (n < 3)
            f[n++] = t;
        else
            n++;
    if (n == 0 || f[0][0] == '#')
        return 0;
    if (allow_token && n != 2 && n != 3)
        return mc_err_set(err, MC_E_INVAL, "%s:%d: expected ACCESS_KEY_ID SECRET [SESSION_TOKEN], "
                          "found %d fields", path, lineno, n);
    if (!allow_token && n != 2)
        return mc_err_set(err, MC_E_INVAL, "%s:%d: expected two fields (ACCESS_KEY_ID SECRET), "
                          "found %d", path, lineno, n);
    const char *why = bad_field(f[0], MAX_ACCESS_KEY);
    if (!why && strchr(f[0], '/'))
        why = "contains '/'";
    if (why)
        return mc_err_set(err, MC_E_INVAL, "%s:%d: access key id is %s", path, lineno, why);
    if ((why = bad_field(f[1], MAX_SECRET)))
        return mc_err_set(err, MC_E_INVAL, "%s:%d: secret is %s", path, lineno, why);
    if (n == 3 && (why = bad_field(f[2], MAX_TOKEN)))
        return mc_err_set(err, MC_E_INVAL, "%s:%d: session token is %s", path, lineno, why);
    return add_pair(k, f[0], f[1], n == 3 ? f[2] : NULL, path, lineno, err);
}

static int load(mc_keys *out, const char *path, int allow_token, mc_err *err)
{
    struct stat st;
    mc_keys k = {NULL, 0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;

    if (!out || !path)
        return mc_err_set(err, MC_E_INVAL, "no key file given");
    out->v = NULL;
    out->n = 0;
    /* fstat on the open descriptor: the mode checked is the file read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return mc_err_set(err, MC_E_IO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        rc = mc_err_set(err, MC_E_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mc_err_set(err, MC_E_INVAL, "%s: not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return mc_err_set(err, MC_E_PERM, "%s: mode %04o lets group or others read it; "
                          "refusing a key file that is not private (chmod 600 %s)",
                          path, (unsigned)(st.st_mode & 07777), path);
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        rc = mc_err_set(err, MC_E_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (strlen(line) != (size_t)len)
            rc = mc_err_set(err, MC_E_INVAL, "%s:%d: NUL byte in line", path, lineno);
        else
            rc = parse_line(&k, line, allow_token, path, lineno, err);
        wipe(line, cap);
    }
    if (rc == 0 && ferror(f))
        rc = mc_err_set(err, MC_E_IO, "%s: read error", path);
    if (rc == 0 && k.n == 0)
        rc = mc_err_set(err, MC_E_INVAL, "%s: no keys (expected ACCESS_KEY_ID SECRET lines)",
                        path);
    wipe(line, cap);
    free(line);
    fclose(f);
    if (rc < 0) {
        mc_keys_free(&k);
        return rc;
    }
    *out = k;
    return 0;
}

int mc_keys_load(mc_keys *out, const char *path, mc_err *err)
{
    return load(out, path, 0, err);
}

int mc_keys_load_credentials(mc_keys *out, const char *path, mc_err *err)
{
    int rc = load(out, path, 1, err);
    if (rc < 0)
        return rc;
    if (out->n != 1) {
        rc = mc_err_set(err, MC_E_INVAL, "%s: a credentials file holds exactly one "
                        "ACCESS_KEY_ID SECRET pair, found %d", path, out->n);
        mc_keys_free(out);
    }
    return rc;
}

int mc_keys_secret_fn(void *ud, const char *access_key, const char *secrets_out[2])
{
    const mc_keys *k = ud;
    int n = 0;
    if (!k || !access_key)
        return 0;
    for (int i = 0; i < k->n && n < 2; i++)
        if (strcmp(k->v[i].access_key, access_key) == 0)
            secrets_out[n++] = k->v[i].secret;
    return n;
}
