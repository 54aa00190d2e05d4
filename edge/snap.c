/* snap.c — see snap.h. */
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "edge/signer.h"
#include "edge/snap.h"

static void snap_free(mc_edge_snap *s)
{
    mc_signer_free(s->signer);
    mc_signer_free(s->signer2);
    mc_edge_config_free(&s->cfg);
    s->magic = 0;
    free(s);
}

int mc_snap_new(mc_edge_snap **out, mc_edge_config *cfg, uint64_t generation, mc_err *err)
{
    mc_edge_snap *s = calloc(1, sizeof *s);
    if (!s) {
        mc_edge_config_free(cfg);
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    }
    s->magic = MC_SNAP_MAGIC;
    atomic_init(&s->refs, 1);
    s->generation = generation;
    s->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    const mc_edge_config *c = &s->cfg;
    snprintf(s->host, sizeof s->host, "%s", strstr(c->origin_base, "://") + 3);
    if (c->secondary_base[0])
        snprintf(s->host2, sizeof s->host2, "%s", strstr(c->secondary_base, "://") + 3);
    if (c->origin_sign) {
        const char *tok = c->session_token_file[0] ? c->session_token_file : NULL;
        mc_signer_opts so = {c->credentials_file, tok, s->host, c->sign_region, "s3"};
        mc_signer_opts so2 = {c->credentials_file, tok, s->host2, c->sign_region, "s3"};
        if (mc_signer_new(&s->signer, &so, err) < 0 ||
            (c->secondary_base[0] && mc_signer_new(&s->signer2, &so2, err) < 0)) {
            snap_free(s);
            return MC_E_INVAL;
        }
    }
    *out = s;
    return 0;
}

mc_edge_snap *mc_snap_ref(mc_edge_snap *s)
{
    assert(s && s->magic == MC_SNAP_MAGIC);
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void mc_snap_unref(mc_edge_snap *s)
{
    if (!s)
        return;
    assert(s->magic == MC_SNAP_MAGIC);
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        snap_free(s);
}

static int keys_copy(mc_keys *dst, const mc_keys *src)
{
    dst->n = 0;
    dst->v = NULL;
    if (src->n == 0)
        return 0;
    dst->v = calloc((size_t)src->n, sizeof *dst->v);
    if (!dst->v)
        return MC_E_NOMEM;
    for (int i = 0; i < src->n; i++) {
        const mc_key *k = &src->v[i];
        mc_key *d = &dst->v[i];
        dst->n++;
        d->access_key = strdup(k->access_key);
        d->secret = strdup(k->secret);
        d->session_token = k->session_token ? strdup(k->session_token) : NULL;
        if (!d->access_key || !d->secret || (k->session_token && !d->session_token))
            return MC_E_NOMEM;
    }
    return 0;
}

int mc_edge_config_copy(mc_edge_config *dst, const mc_edge_config *src)
{
    *dst = *src;
    memset(&dst->credentials, 0, sizeof dst->credentials);
    memset(&dst->admin_keys, 0, sizeof dst->admin_keys);
    memset(&dst->control_credentials, 0, sizeof dst->control_credentials);
    if (keys_copy(&dst->credentials, &src->credentials) < 0 || keys_copy(&dst->admin_keys, &src->admin_keys) < 0 ||
        keys_copy(&dst->control_credentials, &src->control_credentials) < 0) {
        mc_edge_config_free(dst);
        return MC_E_NOMEM;
    }
    return 0;
}

/* ---------- diff ---------- */

/* One config key and the fields that hold it (up to three ranges). */
typedef struct field_range {
    size_t off, len;
} field_range;

typedef struct key_fields {
    const char *name;
    int restart;
    field_range f[3];
} key_fields;

#define F(m) {offsetof(mc_edge_config, m), sizeof(((mc_edge_config *)0)->m)}

static const key_fields fields[] = {
    {"edge.listen", 1, {F(listen_host), F(listen_port)}},
    {"edge.tls_listen", 1, {F(tls_enabled), F(tls_host), F(tls_port)}},
    {"tls.cert", 1, {F(tls_cert)}},
    {"tls.key", 1, {F(tls_key)}},
    {"edge.admin", 1, {F(admin_host), F(admin_port)}},
    {"edge.workers", 1, {F(workers)}},
    {"edge.node_id", 1, {F(node_id)}},
    {"edge.region", 1, {F(region)}},
    {"edge.control", 1, {F(control_url)}},
    {"control.startup_wait", 1, {F(control_startup_wait_ms)}},
    {"control.poll_wait", 1, {F(control_poll_wait_ms)}},
    {"edge.max_connections", 1, {F(max_connections)}},
    {"edge.admin_max_connections", 1, {F(admin_max_connections)}},
    {"edge.segment_threshold", 0, {F(segment_threshold)}},
    {"edge.segment_size", 1, {F(segment_size)}},
    {"store.dir", 1, {F(store_dir)}},
    {"store.size", 1, {F(store_size)}},
    {"store.verify_reads", 1, {F(verify_reads_always)}},
    {"edge.log_level", 0, {F(log_level)}},
    {"edge.client_timeout", 0, {F(client_timeout_ms)}},
    {"edge.drain_timeout", 0, {F(drain_timeout_ms)}},
    {"edge.max_request_body", 0, {F(max_request_body)}},
    {"edge.header_timeout", 0, {F(header_timeout_ms)}},
    {"edge.max_connections_per_client", 1, {F(max_connections_per_client)}},
    {"prefetch.max_refs", 0, {F(prefetch_max_refs)}},
    {"prefetch.max_bytes", 0, {F(prefetch_max_bytes)}},
    {"prefetch.concurrency", 0, {F(prefetch_concurrency)}},
    {"prefetch.queue", 0, {F(prefetch_queue)}},
    {"prefetch.max_gltf_size", 0, {F(prefetch_max_gltf)}},
    {"prefetch.preconnect", 0, {F(prefetch_preconnect)}},
    {"prefetch.preconnect_idle", 0, {F(preconnect_idle_ms)}},
    {"origin.url", 0, {F(origin_base), F(origin_path)}},
    {"origin.sign", 0, {F(origin_sign)}},
    {"origin.region", 0, {F(sign_region)}},
    {"origin.credentials", 0, {F(credentials_file)}},
    {"origin.session_token_file", 0, {F(session_token_file)}},
    {"origin.ca_file", 0, {F(origin_ca_file)}},
    {"origin.ca_dir", 0, {F(origin_ca_dir)}},
    {"origin.insecure", 0, {F(origin_insecure)}},
    {"origin.connect_timeout", 0, {F(connect_timeout_ms)}},
    {"origin.idle_timeout", 0, {F(upstream_idle_ms)}},
    {"origin.secondary_url", 0, {F(secondary_base), F(secondary_path)}},
    {"origin.failover_statuses", 0, {F(failover_statuses), F(nfailover_statuses)}},
    {"parents", 0, {F(parents), F(nparents)}},
    {"tier.fail_threshold", 0, {F(tier_fail_threshold)}},
    {"tier.eject_time", 0, {F(tier_eject_ms)}},
    {"tier.eject_max", 0, {F(tier_eject_max_ms)}},
    {"tier.health_interval", 0, {F(tier_health_interval_ms)}},
    {"tier.response_timeout", 0, {F(tier_response_timeout_ms)}},
    {"store.max_object_size", 0, {F(max_object_bytes), F(max_object_auto)}},
    {"store.fill_buffer", 0, {F(max_fill_buffer)}},
    {"store.stall_timeout", 0, {F(stall_timeout_ms)}},
    {"cache", 0, {F(policy)}},
};

static int fields_differ(const key_fields *k, const mc_edge_config *a, const mc_edge_config *b)
{
    if (k->f[0].off == offsetof(mc_edge_config, max_object_bytes) && a->max_object_auto && b->max_object_auto)
        return 0;   /* both follow store.size (restart-only) */
    for (int i = 0; i < 3 && k->f[i].len; i++)
        if (memcmp((const char *)a + k->f[i].off, (const char *)b + k->f[i].off, k->f[i].len) != 0)
            return 1;
    return 0;
}

static int keys_differ(const mc_keys *a, const mc_keys *b)
{
    if (a->n != b->n)
        return 1;
    for (int i = 0; i < a->n; i++) {
        const mc_key *x = &a->v[i], *y = &b->v[i];
        if (strcmp(x->access_key, y->access_key) || strcmp(x->secret, y->secret) ||
            !x->session_token != !y->session_token ||
            (x->session_token && strcmp(x->session_token, y->session_token)))
            return 1;
    }
    return 0;
}

static void add_name(char *list, size_t n, int *count, const char *name)
{
    size_t l = strlen(list);
    if (l + strlen(name) + 5 >= n) {
        if (l + 4 < n && (l < 3 || strcmp(list + l - 3, "...") != 0))
            snprintf(list + l, n - l, "%s...", l ? " " : "");
    } else {
        snprintf(list + l, n - l, "%s%s", l ? " " : "", name);
    }
    (*count)++;
}

static const mc_cache_policy *behavior_named(const mc_edge_config *c, const char *prefix)
{
    for (int i = 0; i < c->nbehaviors; i++)
        if (strcmp(c->behaviors[i].prefix, prefix) == 0)
            return &c->behaviors[i];
    return NULL;
}

void mc_snap_diff_configs(const mc_edge_config *a, const mc_edge_config *b, mc_snap_diff *d)
{
    memset(d, 0, sizeof *d);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields_differ(&fields[i], a, b)) {
            if (fields[i].restart)
                add_name(d->restart, sizeof d->restart, &d->nrestart, fields[i].name);
            else
                add_name(d->changed, sizeof d->changed, &d->nchanged, fields[i].name);
        }
    /* the credential files are read at each load: a rotated key is a change */
    if (keys_differ(&a->credentials, &b->credentials) && !strstr(d->changed, "origin.credentials"))
        add_name(d->changed, sizeof d->changed, &d->nchanged, "origin.credentials");
    if (keys_differ(&a->admin_keys, &b->admin_keys))
        add_name(d->changed, sizeof d->changed, &d->nchanged, "admin.keys");
    if (keys_differ(&a->control_credentials, &b->control_credentials))
        add_name(d->restart, sizeof d->restart, &d->nrestart, "control.credentials");
    char name[300];
    for (int i = 0; i < a->nbehaviors; i++) {
        const mc_cache_policy *o = &a->behaviors[i], *n = behavior_named(b, o->prefix);
        if (!n || memcmp(o, n, sizeof *o) != 0) {
            snprintf(name, sizeof name, "behavior:%s", o->prefix);
            add_name(d->changed, sizeof d->changed, &d->nchanged, name);
        }
    }
    for (int i = 0; i < b->nbehaviors; i++)
        if (!behavior_named(a, b->behaviors[i].prefix)) {
            snprintf(name, sizeof name, "behavior:%s", b->behaviors[i].prefix);
            add_name(d->changed, sizeof d->changed, &d->nchanged, name);
        }
}

void mc_snap_keep_restart(mc_edge_config *next, const mc_edge_config *running)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!fields[i].restart)
            continue;
        for (int j = 0; j < 3 && fields[i].f[j].len; j++)
            memcpy((char *)next + fields[i].f[j].off, (const char *)running + fields[i].f[j].off,
                   fields[i].f[j].len);
    }
    if (next->max_object_auto)
        next->max_object_bytes = next->store_size / 4;   /* the size that runs */
}
