/* main.c — meshcdnctl: the operator CLI for purges and fleet invalidations.
 *
 * Talks to the control API on meshcdn-origin (invalidate, status, list,
 * edges) or to one edge's admin listener (purge), every request SigV4-signed
 * (ctl/client.h). Command line: ctl/cmd.h; output formats: ctl/render.h.
 *
 * Exit status: 0 done, 1 the server answered with an error, could not be
 * reached, or --wait timed out, 2 bad usage, config or credentials.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include "common/config.h"
#include "common/err.h"
#include "common/keys.h"
#include "ctl/client.h"
#include "ctl/cmd.h"
#include "ctl/render.h"

#ifndef MESHCDN_VERSION
#define MESHCDN_VERSION "0.0.0"
#endif

#define PROG "meshcdnctl"
#define DEFAULT_CONTROL "http://127.0.0.1:9001"
#define DEFAULT_REGION "us-east-1"
#define REQUEST_TIMEOUT_MS 30000L   /* one request without --wait */
#define POLL_REQUEST_MS 10000L      /* one status poll while waiting */

/* --config FILE: defaults for the global options, below flags, above the
 * environment (the file was named on this command line). */
static const mc_cfg_opt schema[] = {
    {"ctl", "control", NULL, MC_CFG_STR, NULL, "control API URL", NULL, 0, 0},
    {"ctl", "credentials", NULL, MC_CFG_STR, NULL, "credentials file", NULL, 0, 0},
    {"ctl", "region", NULL, MC_CFG_STR, NULL, "SigV4 region", NULL, 0, 0},
    {NULL, NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
};

typedef struct ctx {
    mc_ctl_opts *o;
    mc_ctl_client *client;
} ctx;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void print_raw(const mc_ctl_reply *r)
{
    fputs(r->body.data, stdout);
    if (r->body.len == 0 || r->body.data[r->body.len - 1] != '\n')
        fputc('\n', stdout);
}

/* A non-2xx answer: the server's message on stderr (its JSON on stdout too
 * with --json, for scripts). */
static int fail_answer(const ctx *c, const char *what, const mc_ctl_reply *r)
{
    char msg[1024];
    mc_ctl_reply_describe(r, msg, sizeof msg);
    if (c->o->json && r->body.len) {   /* the server's JSON only, not a proxy's page */
        json_t *j = json_loadb(r->body.data, r->body.len, 0, NULL);
        if (j)
            print_raw(r);
        json_decref(j);
    }
    fprintf(stderr, PROG ": %s: %s\n", what, msg);
    return MC_CTL_EXIT_FAIL;
}

/* Send and parse. Returns 0 with *r and *j (a JSON object) filled, or an
 * exit status after printing why. */
static int call(const ctx *c, const char *what, const char *method, const char *path,
                const char *query, const char *body, long timeout_ms, mc_ctl_reply *r,
                json_t **j)
{
    mc_err err = {0};
    *j = NULL;
    if (mc_ctl_request(c->client, method, path, query, body, timeout_ms, r, &err) < 0) {
        fprintf(stderr, PROG ": %s: cannot reach %s\n", what, err.msg);
        return MC_CTL_EXIT_FAIL;
    }
    if (r->status < 200 || r->status > 299) {
        int rc = fail_answer(c, what, r);
        mc_ctl_reply_free(r);
        return rc;
    }
    json_error_t je;
    *j = json_loadb(r->body.data, r->body.len, 0, &je);
    if (!json_is_object(*j)) {
        fprintf(stderr, PROG ": %s: the answer (HTTP %ld) is not a JSON object: %s\n", what,
                r->status, *j ? "another JSON value" : je.text);
        json_decref(*j);
        *j = NULL;
        mc_ctl_reply_free(r);
        return MC_CTL_EXIT_FAIL;
    }
    return 0;
}

/* Poll GET /invalidations/ID every 100 ms until it reads Completed or
 * timeout_ms has passed. An unreachable server or a 503 is retried until the
 * deadline (the origin may be restarting); any other error answer ends the
 * wait. Returns 0 Completed, 1 timed out, or an exit status after printing;
 * *r and *j hold the last answer read (NULL when none). */
static int wait_completed(const ctx *c, const char *id, double *elapsed_s, mc_ctl_reply *r,
                          json_t **j)
{
    char path[64];
    snprintf(path, sizeof path, "/invalidations/%s", id);
    double start = now_s(), deadline = start + (double)c->o->timeout_ms / 1000.0;
    char last_err[MC_ERR_MSG_MAX + 64] = "";
    *j = NULL;
    r->body = (mc_buf)MC_BUF_INIT;
    for (;;) {
        double t = now_s();
        long left_ms = (long)((deadline - t) * 1000.0);
        long req_ms = left_ms < POLL_REQUEST_MS ? left_ms : POLL_REQUEST_MS;
        mc_ctl_reply cur;
        mc_err err = {0};
        if (req_ms < 50)
            req_ms = 50;
        if (mc_ctl_request(c->client, "GET", path, NULL, NULL, req_ms, &cur, &err) < 0) {
            snprintf(last_err, sizeof last_err, "cannot reach %s", err.msg);
        } else if (cur.status == 503) {
            mc_ctl_reply_describe(&cur, last_err, sizeof last_err);
            mc_ctl_reply_free(&cur);
        } else if (cur.status != 200) {
            int rc = fail_answer(c, "status", &cur);
            mc_ctl_reply_free(&cur);
            return rc;
        } else {
            json_t *cj = json_loadb(cur.body.data, cur.body.len, 0, NULL);
            if (!json_is_object(cj)) {
                fprintf(stderr, PROG ": status: the answer is not a JSON object\n");
                json_decref(cj);
                mc_ctl_reply_free(&cur);
                return MC_CTL_EXIT_FAIL;
            }
            json_decref(*j);
            mc_ctl_reply_free(r);
            *j = cj;
            *r = cur;
            last_err[0] = '\0';
            const char *st = json_string_value(json_object_get(cj, "status"));
            if (st && strcmp(st, "Completed") == 0) {
                *elapsed_s = now_s() - start;
                return 0;
            }
        }
        double after = now_s();
        if (after >= deadline) {
            *elapsed_s = after - start;
            if (!*j || last_err[0]) {
                fprintf(stderr, PROG ": status: %s\n", last_err);
                return MC_CTL_EXIT_FAIL;
            }
            return 1;
        }
        /* every 100 ms from the start of the last poll; the last one at the deadline */
        double next = t + MC_CTL_POLL_MS / 1000.0;
        sleep_s((next < deadline ? next : deadline) - after);
    }
}

/* After a wait that timed out: say which edges hold it up. */
static int report_timeout(const ctx *c, const char *id, const mc_ctl_reply *r, const json_t *j)
{
    char pending[256], unreach[256];
    int np = mc_ctl_count_edges(j, "pending", pending, sizeof pending);
    int nu = mc_ctl_count_edges(j, "unreachable", unreach, sizeof unreach);
    const char *st = json_string_value(json_object_get(j, "status"));
    if (c->o->json)
        print_raw(r);
    else
        mc_ctl_print_status(stdout, j);
    fprintf(stderr, PROG ": %s still %s after %.3g s", id, st ? st : "not Completed",
            (double)c->o->timeout_ms / 1000.0);
    if (np)
        fprintf(stderr, "; pending: %s", pending);
    if (nu)
        fprintf(stderr, "; unreachable: %s", unreach);
    fputc('\n', stderr);
    return MC_CTL_EXIT_FAIL;
}

static void print_waited(const json_t *j, double elapsed_s)
{
    int applied = mc_ctl_count_edges(j, "applied", NULL, 0);
    int unreach = mc_ctl_count_edges(j, "unreachable", NULL, 0);
    const char *id = json_string_value(json_object_get(j, "id"));
    printf("%s  Completed in %.3f s  (%d edge%s applied", id ? id : "?", elapsed_s, applied,
           applied == 1 ? "" : "s");
    if (unreach)
        printf(", %d unreachable", unreach);
    printf(")\n");
}

static int wait_and_report(const ctx *c, const char *id, int full_status)
{
    mc_ctl_reply r;
    json_t *j = NULL;
    double elapsed = 0;
    int rc = wait_completed(c, id, &elapsed, &r, &j);
    if (rc == 0) {
        if (c->o->json) {
            print_raw(&r);
        } else {
            if (full_status)
                mc_ctl_print_status(stdout, j);
            print_waited(j, elapsed);
        }
    } else if (rc == 1) {
        rc = report_timeout(c, id, &r, j);
    }
    json_decref(j);
    mc_ctl_reply_free(&r);
    return rc;
}

static int cmd_invalidate(const ctx *c)
{
    char *body = mc_ctl_body(c->o);
    if (!body) {
        fprintf(stderr, PROG ": out of memory\n");
        return MC_CTL_EXIT_FAIL;
    }
    mc_ctl_reply r;
    json_t *j;
    int rc = call(c, "invalidate", "POST", "/invalidations", NULL, body, REQUEST_TIMEOUT_MS,
                  &r, &j);
    free(body);
    if (rc)
        return rc;
    char id[32];
    const char *sid = json_string_value(json_object_get(j, "id"));
    if (!sid || mc_ctl_norm_id(sid, id) < 0) {
        fprintf(stderr, PROG ": invalidate: the answer has no invalidation id\n");
        rc = MC_CTL_EXIT_FAIL;
    } else if (c->o->json && !c->o->wait) {
        print_raw(&r);
    } else if (!c->o->json) {
        mc_ctl_print_created(stdout, j, c->o);
        fflush(stdout);
    }
    json_decref(j);
    mc_ctl_reply_free(&r);
    if (rc || !c->o->wait)
        return rc;
    return wait_and_report(c, id, 0);
}

static int cmd_status(const ctx *c)
{
    char id[32], path[64];
    if (mc_ctl_norm_id(c->o->id, id) < 0)   /* parse checked it */
        return MC_CTL_EXIT_USAGE;
    if (c->o->wait)
        return wait_and_report(c, id, 1);
    snprintf(path, sizeof path, "/invalidations/%s", id);
    mc_ctl_reply r;
    json_t *j;
    int rc = call(c, "status", "GET", path, NULL, NULL, REQUEST_TIMEOUT_MS, &r, &j);
    if (rc)
        return rc;
    if (c->o->json)
        print_raw(&r);
    else
        mc_ctl_print_status(stdout, j);
    json_decref(j);
    mc_ctl_reply_free(&r);
    return 0;
}

/* list, edges, purge: one request, one answer printed. */
static int cmd_simple(const ctx *c)
{
    const char *what, *method = "GET", *path;
    char query[32] = "";
    char *body = NULL;
    void (*print)(FILE *, const json_t *);
    switch (c->o->cmd) {
    case MC_CTL_CMD_LIST:
        what = "list", path = "/invalidations", print = mc_ctl_print_list;
        if (c->o->limit > 0)
            snprintf(query, sizeof query, "limit=%ld", c->o->limit);
        break;
    case MC_CTL_CMD_EDGES:
        what = "edges", path = "/edges", print = mc_ctl_print_edges;
        break;
    default:
        what = "purge", method = "POST", path = "/purge", print = mc_ctl_print_purged;
        if (!(body = mc_ctl_body(c->o))) {
            fprintf(stderr, PROG ": out of memory\n");
            return MC_CTL_EXIT_FAIL;
        }
        break;
    }
    mc_ctl_reply r;
    json_t *j;
    int rc = call(c, what, method, path, query, body, REQUEST_TIMEOUT_MS, &r, &j);
    free(body);
    if (rc)
        return rc;
    if (c->o->json)
        print_raw(&r);
    else
        print(stdout, j);
    json_decref(j);
    mc_ctl_reply_free(&r);
    return 0;
}

static int usage_fail(const char *msg)
{
    fprintf(stderr, PROG ": %s\n(" PROG " --help for usage)\n", msg);
    return MC_CTL_EXIT_USAGE;
}

static const char *first(const char *a, const char *b, const char *c)
{
    return a && *a ? a : b && *b ? b : c;
}

/* Everything after the command line parsed: config, credentials, client. */
static int run(mc_ctl_opts *o)
{
    mc_err err = {0};
    mc_config *cfg = NULL;
    if (o->config) {
        char *av[] = {PROG, "--config", (char *)o->config, NULL};
        if (mc_config_load(&cfg, schema, 3, av, false, &err) < 0)
            return usage_fail(err.msg);
    }
    const char *cf_control = cfg ? mc_config_str(cfg, "ctl", "control") : NULL;
    const char *cf_creds = cfg ? mc_config_str(cfg, "ctl", "credentials") : NULL;
    const char *cf_region = cfg ? mc_config_str(cfg, "ctl", "region") : NULL;
    const char *url = o->cmd == MC_CTL_CMD_PURGE
        ? o->edge_url
        : first(o->control_url, cf_control, first(getenv("MESHCDN_CONTROL"), NULL, DEFAULT_CONTROL));
    const char *region = first(o->region, cf_region,
                               first(getenv("MESHCDN_REGION"), NULL, DEFAULT_REGION));
    mc_keys keys = {NULL, 0};
    const char *source = NULL;
    int rc = mc_ctl_creds_load(&keys, first(o->credentials, cf_creds, NULL), &source, &err);
    if (rc < 0) {
        mc_config_free(cfg);
        if (rc == MC_E_NOTFOUND)
            return usage_fail(err.msg);
        fprintf(stderr, PROG ": credentials (%s): %s\n", source, err.msg);
        return MC_CTL_EXIT_USAGE;
    }
    ctx c = {o, NULL};
    rc = mc_ctl_client_new(&c.client, url, &keys.v[0], region, &err);
    mc_keys_free(&keys);
    if (rc < 0) {
        mc_config_free(cfg);
        fprintf(stderr, PROG ": %s: %s\n", o->cmd == MC_CTL_CMD_PURGE ? "--edge" : "--control",
                err.msg);
        return rc == MC_E_INVAL ? MC_CTL_EXIT_USAGE : MC_CTL_EXIT_FAIL;
    }
    switch (o->cmd) {
    case MC_CTL_CMD_INVALIDATE: rc = cmd_invalidate(&c); break;
    case MC_CTL_CMD_STATUS: rc = cmd_status(&c); break;
    default: rc = cmd_simple(&c); break;
    }
    mc_ctl_client_free(c.client);
    mc_config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    mc_ctl_opts o;
    mc_err err = {0};
    int rc = mc_ctl_parse(&o, argc, argv, &err);
    if (rc < 0) {
        mc_ctl_opts_free(&o);
        return usage_fail(err.msg);
    }
    if (o.cmd == MC_CTL_CMD_HELP) {
        mc_ctl_usage(stdout, o.help_for);
        mc_ctl_opts_free(&o);
        return 0;
    }
    if (o.cmd == MC_CTL_CMD_VERSION) {
        printf(PROG " " MESHCDN_VERSION "\n");
        mc_ctl_opts_free(&o);
        return 0;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        mc_ctl_opts_free(&o);
        fprintf(stderr, PROG ": cannot initialise libcurl\n");
        return MC_CTL_EXIT_FAIL;
    }
    rc = run(&o);
    curl_global_cleanup();
    mc_ctl_opts_free(&o);
    if (fflush(stdout) != 0 && rc == 0)
        rc = MC_CTL_EXIT_FAIL;   /* a full disk or closed pipe must not look like success */
    return rc;
}
