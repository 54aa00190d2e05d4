/* signer.c — see signer.h. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/keys.h"
#include "common/log.h"
#include "common/sigv4.h"
#include "edge/signer.h"

#define MAX_TOKEN_FILE 16384

/* What identifies one version of a file: a rename gives a new inode, an
 * in-place rewrite a new size or mtime. */
typedef struct file_id {
    int present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id;

struct mc_signer {
    uint32_t magic;
    pthread_mutex_t mu;           /* guards everything below */
    char *cred_file, *token_file;
    char *host, *region, *service;
    mc_keys keys;                 /* one pair (+ token from the credentials file) */
    char *file_token;             /* from token_file, overrides keys.v[0].session_token */
    file_id cred_id, token_id;
    struct timespec last_check;   /* CLOCK_MONOTONIC */
};

static void wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

static void stat_id(const char *path, file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (path && stat(path, &st) == 0) {
        id->present = 1;
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        id->size = st.st_size;
        id->mtime = st.st_mtim;
    }
}

static int same_id(const file_id *a, const file_id *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* A token file: one printable token, surrounding whitespace ignored, mode
 * 0600 like every file that holds a secret. */
static int load_token_file(const char *path, char **out, mc_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return mc_err_set(err, MC_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mc_err_set(err, MC_E_INVAL, "%s: not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return mc_err_set(err, MC_E_PERM, "%s: mode %04o lets group or others read it; refusing a "
                          "session token file that is not private (chmod 600 %s)", path,
                          (unsigned)(st.st_mode & 07777), path);
    }
    char *buf = malloc(MAX_TOKEN_FILE + 1);
    if (!buf) {
        close(fd);
        return mc_err_set(err, MC_E_NOMEM, "%s: out of memory", path);
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, MAX_TOKEN_FILE - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == MAX_TOKEN_FILE)
            break;
    }
    close(fd);
    buf[n] = '\0';
    char *p = buf, *e = buf + n;
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    int rc = 0;
    if (p == e)
        rc = mc_err_set(err, MC_E_INVAL, "%s: empty (expected one session token)", path);
    for (char *q = p; !rc && q < e; q++)
        if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e)
            rc = mc_err_set(err, MC_E_INVAL, "%s: the session token is not one word of printable ASCII", path);
    if (!rc && n == MAX_TOKEN_FILE)
        rc = mc_err_set(err, MC_E_TOOBIG, "%s: larger than %d bytes", path, MAX_TOKEN_FILE);
    if (!rc && !(*out = strdup(p)))
        rc = mc_err_set(err, MC_E_NOMEM, "%s: out of memory", path);
    explicit_bzero(buf, MAX_TOKEN_FILE + 1);
    free(buf);
    return rc;
}

/* Read both files; on success replace the credentials in use. Caller holds mu. */
static int reload_locked(mc_signer *s, mc_err *err)
{
    mc_keys k = {NULL, 0};
    char *tok = NULL;
    int rc = mc_keys_load_credentials(&k, s->cred_file, err);
    if (rc == 0 && s->token_file)
        rc = load_token_file(s->token_file, &tok, err);
    if (rc < 0) {
        mc_keys_free(&k);
        return rc;
    }
    mc_keys_free(&s->keys);
    wipe_free(s->file_token);
    s->keys = k;
    s->file_token = tok;
    return 0;
}

int mc_signer_new(mc_signer **out, const mc_signer_opts *o, mc_err *err)
{
    *out = NULL;
    mc_signer *s = calloc(1, sizeof *s);
    if (!s)
        return mc_err_set(err, MC_E_NOMEM, "signer: out of memory");
    s->magic = MC_SIGNER_MAGIC;
    pthread_mutex_init(&s->mu, NULL);
    s->cred_file = strdup(o->credentials_file);
    s->token_file = o->session_token_file ? strdup(o->session_token_file) : NULL;
    s->host = strdup(o->host);
    s->region = strdup(o->region);
    s->service = strdup(o->service ? o->service : "s3");
    if (!s->cred_file || (o->session_token_file && !s->token_file) || !s->host || !s->region || !s->service) {
        mc_signer_free(s);
        return mc_err_set(err, MC_E_NOMEM, "signer: out of memory");
    }
    /* identify first, read second: a change in between is seen next time */
    stat_id(s->cred_file, &s->cred_id);
    stat_id(s->token_file, &s->token_id);
    int rc = reload_locked(s, err);
    if (rc < 0) {
        mc_signer_free(s);
        return rc;
    }
    clock_gettime(CLOCK_MONOTONIC, &s->last_check);
    *out = s;
    return 0;
}

void mc_signer_free(mc_signer *s)
{
    if (!s)
        return;
    assert(s->magic == MC_SIGNER_MAGIC);
    mc_keys_free(&s->keys);
    wipe_free(s->file_token);
    free(s->cred_file);
    free(s->token_file);
    free(s->host);
    free(s->region);
    free(s->service);
    pthread_mutex_destroy(&s->mu);
    s->magic = 0;
    free(s);
}

static int refresh_locked(mc_signer *s, mc_err *err)
{
    file_id c, t;
    stat_id(s->cred_file, &c);
    stat_id(s->token_file, &t);
    if (same_id(&c, &s->cred_id) && same_id(&t, &s->token_id))
        return 0;
    /* remember this version whatever happens: a broken file is reported
     * once, and its next change is tried again */
    s->cred_id = c;
    s->token_id = t;
    int rc = reload_locked(s, err);
    if (rc < 0) {
        mc_log_warn("signer", "msg=\"credentials not reloaded; the previous ones stay in use\" error=\"%s\"",
                    err->msg);
        return rc;
    }
    const mc_key *k = &s->keys.v[0];
    mc_log_info("signer", "msg=\"credentials reloaded\" access_key=%s session_token=%s", k->access_key,
                (s->file_token || k->session_token) ? "yes" : "no");
    return 1;
}

int mc_signer_refresh(mc_signer *s, mc_err *err)
{
    assert(s && s->magic == MC_SIGNER_MAGIC);
    pthread_mutex_lock(&s->mu);
    int rc = refresh_locked(s, err);
    clock_gettime(CLOCK_MONOTONIC, &s->last_check);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int mc_signer_sign_get(mc_signer *s, const char *path, const char *query, time_t now, mc_signed *out)
{
    return mc_signer_sign(s, "GET", path, query, "UNSIGNED-PAYLOAD", now, out);
}

int mc_signer_sign(mc_signer *s, const char *method, const char *path, const char *query,
                   const char *payload_hash, time_t now, mc_signed *out)
{
    assert(s && s->magic == MC_SIGNER_MAGIC);
    memset(out, 0, sizeof *out);
    mc_sigv4_amz_date(now, out->amz_date);
    pthread_mutex_lock(&s->mu);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t since_ns = (int64_t)(t.tv_sec - s->last_check.tv_sec) * 1000000000 + (t.tv_nsec - s->last_check.tv_nsec);
    if (since_ns >= 1000000000) {
        mc_err err = {0};
        refresh_locked(s, &err);
        s->last_check = t;
    }
    const mc_key *k = &s->keys.v[0];
    const char *token = s->file_token ? s->file_token : k->session_token;
    mc_sigv4_header h[4] = {{"Host", s->host},
                            {"X-Amz-Content-Sha256", payload_hash},
                            {"X-Amz-Date", out->amz_date},
                            {"X-Amz-Security-Token", token}};
    mc_sigv4_request rq = {method, path, query ? query : "", h, token ? 4 : 3, NULL, 0, payload_hash};
    mc_sigv4_params p = {k->access_key, k->secret, token, s->region, s->service, out->amz_date, 0};
    mc_sigv4_result res;
    memset(&res, 0, sizeof res);
    int rc = mc_sigv4_sign(&rq, &p, &res);
    if (rc == 0) {
        memcpy(out->authorization, res.authorization, sizeof out->authorization);
        if (token && !(out->session_token = strdup(token)))
            rc = MC_E_NOMEM;
    }
    pthread_mutex_unlock(&s->mu);
    mc_sigv4_result_free(&res);
    if (rc < 0)
        mc_signed_free(out);
    return rc;
}

void mc_signed_free(mc_signed *sg)
{
    wipe_free(sg->session_token);
    sg->session_token = NULL;
}
