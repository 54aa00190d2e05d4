/* render.c — meshcdnctl's readable output; see render.h. */
#include "ctl/render.h"

#include <stdlib.h>
#include <string.h>
#include "common/buf.h"

/* A member as text: strings as they are, integers in decimal, true/false,
 * "-" when absent or null. buf holds at least 32 bytes. */
static const char *field(const json_t *obj, const char *key, char *buf, size_t len)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, len, "%g", json_real_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return "-";
}

static size_t count_of(const json_t *obj, const char *key)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_array(v) ? json_array_size(v) : 0;
}

static int flag_of(const json_t *obj, const char *key)
{
    return json_is_object(obj) && json_is_true(json_object_get(obj, key));
}

/* A table: rows of NCOL borrowed-or-copied strings, printed with each column
 * as wide as its widest cell, two spaces apart. */
#define NCOL 5
typedef struct table {
    char **cells;     /* owned copies, nrows * ncols */
    size_t nrows, cap;
    int ncols;
} table;

static void table_add(table *t, const char *const *row)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, cap * (size_t)t->ncols * sizeof *c);
        if (!c)
            return;
        t->cells = c;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++)
        t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = strdup(row[i] ? row[i] : "-");
    t->nrows++;
}

static void table_print(FILE *f, table *t)
{
    size_t w[NCOL] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            size_t n = s ? strlen(s) : 1;
            if (n > w[c])
                w[c] = n;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            if (c == t->ncols - 1)
                fprintf(f, "%s\n", s ? s : "-");
            else
                fprintf(f, "%-*s  ", (int)w[c], s ? s : "-");
        }
    }
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

static void edges_table(FILE *f, const json_t *edges)
{
    table t = {NULL, 0, 0, 5};
    static const char *const head[] = {"NODE", "REGION", "STATE", "ACKED", "LAST SEEN"};
    table_add(&t, head);
    size_t i;
    const json_t *e;
    json_array_foreach(edges, i, e) {
        char b[5][32];
        const char *row[5] = {field(e, "node", b[0], 32), field(e, "region", b[1], 32),
                              field(e, "state", b[2], 32), field(e, "acked", b[3], 32),
                              field(e, "last_seen", b[4], 32)};
        table_add(&t, row);
    }
    table_print(f, &t);
}

static void plural(mc_buf *b, size_t n, const char *one, const char *many)
{
    if (b->len)
        mc_buf_puts(b, ", ");
    mc_buf_printf(b, "%zu %s", n, n == 1 ? one : many);
}

void mc_ctl_print_created(FILE *f, const json_t *answer, const mc_ctl_opts *o)
{
    char b1[32], b2[32];
    mc_buf what = MC_BUF_INIT;
    if (o->npaths)
        plural(&what, o->npaths, "path", "paths");
    if (o->ntags)
        plural(&what, o->ntags, "key", "keys");
    if (o->all)
        mc_buf_puts(&what, what.len ? ", all" : "all");
    if (o->soft)
        mc_buf_puts(&what, what.len ? ", soft" : "soft");
    fprintf(f, "%s  %s  %s\n", field(answer, "id", b1, sizeof b1),
            field(answer, "status", b2, sizeof b2), what.data ? what.data : "");
    mc_buf_free(&what);
}

/* The strings of arr space-separated, cut with " (+3 more)" past about max bytes. */
static void join_strings(mc_buf *b, const json_t *arr, size_t max)
{
    size_t i, start = b->len;
    const json_t *s;
    json_array_foreach(arr, i, s) {
        const char *v = json_is_string(s) ? json_string_value(s) : "?";
        if (i > 0 && b->len - start + strlen(v) > max) {
            mc_buf_printf(b, " (+%zu more)", json_array_size(arr) - i);
            return;
        }
        if (i > 0)
            mc_buf_putc(b, ' ');
        mc_buf_puts(b, v);
    }
}

int mc_ctl_count_edges(const json_t *inv, const char *state, char *names, size_t nameslen)
{
    const json_t *edges = json_is_object(inv) ? json_object_get(inv, "edges") : NULL;
    size_t i, used = 0;
    const json_t *e;
    int n = 0;
    if (names && nameslen)
        names[0] = '\0';
    json_array_foreach(edges, i, e) {
        const json_t *st = json_object_get(e, "state");
        if (!json_is_string(st) || strcmp(json_string_value(st), state) != 0)
            continue;
        n++;
        char b[32];
        const char *node = field(e, "node", b, sizeof b);
        if (names && n <= 5 && used < nameslen) {
            int w = snprintf(names + used, nameslen - used, "%s%s", n > 1 ? ", " : "", node);
            used += w > 0 ? (size_t)w : 0;
        } else if (names && n == 6 && used < nameslen) {
            int w = snprintf(names + used, nameslen - used, ", ...");
            used += w > 0 ? (size_t)w : 0;
        }
    }
    return n;
}

void mc_ctl_print_status(FILE *f, const json_t *inv)
{
    char b1[32], b2[32], b3[32];
    const json_t *edges = json_object_get(inv, "edges");
    size_t nedges = json_is_array(edges) ? json_array_size(edges) : 0;
    fprintf(f, "%s  %s  created %s", field(inv, "id", b1, sizeof b1),
            field(inv, "status", b2, sizeof b2), field(inv, "created", b3, sizeof b3));
    if (nedges) {
        int applied = mc_ctl_count_edges(inv, "applied", NULL, 0);
        int pending = mc_ctl_count_edges(inv, "pending", NULL, 0);
        int unreach = mc_ctl_count_edges(inv, "unreachable", NULL, 0);
        fprintf(f, "  edges: %d applied", applied);
        if (pending)
            fprintf(f, ", %d pending", pending);
        if (unreach)
            fprintf(f, ", %d unreachable", unreach);
    }
    fputc('\n', f);
    mc_buf b = MC_BUF_INIT;
    if (count_of(inv, "paths")) {
        join_strings(&b, json_object_get(inv, "paths"), 400);
        fprintf(f, "paths: %s\n", b.data);
        mc_buf_reset(&b);
    }
    if (count_of(inv, "surrogate_keys")) {
        join_strings(&b, json_object_get(inv, "surrogate_keys"), 400);
        fprintf(f, "surrogate keys: %s\n", b.data);
    }
    mc_buf_free(&b);
    if (flag_of(inv, "all"))
        fputs("all: everything\n", f);
    if (flag_of(inv, "soft"))
        fputs("soft: marked stale, not deleted\n", f);
    if (nedges == 0) {
        fputs("no registered edges\n", f);
        return;
    }
    fputc('\n', f);
    edges_table(f, edges);
}

void mc_ctl_print_list(FILE *f, const json_t *answer)
{
    const json_t *invs = json_is_object(answer) ? json_object_get(answer, "invalidations") : NULL;
    if (!json_is_array(invs) || json_array_size(invs) == 0) {
        fputs("no invalidations\n", f);
        return;
    }
    table t = {NULL, 0, 0, 4};
    static const char *const head[] = {"ID", "CREATED", "STATUS", "WHAT"};
    table_add(&t, head);
    size_t i;
    const json_t *inv;
    json_array_foreach(invs, i, inv) {
        char b[3][32];
        mc_buf what = MC_BUF_INIT;
        if (count_of(inv, "paths"))
            join_strings(&what, json_object_get(inv, "paths"), 60);
        if (count_of(inv, "surrogate_keys")) {
            mc_buf_puts(&what, what.len ? "; keys: " : "keys: ");
            join_strings(&what, json_object_get(inv, "surrogate_keys"), 40);
        }
        if (flag_of(inv, "all"))
            mc_buf_puts(&what, what.len ? "; all" : "all");
        if (flag_of(inv, "soft"))
            mc_buf_puts(&what, what.len ? "; soft" : "soft");
        const char *row[4] = {field(inv, "id", b[0], 32), field(inv, "created", b[1], 32),
                              field(inv, "status", b[2], 32), what.data ? what.data : "-"};
        table_add(&t, row);
        mc_buf_free(&what);
    }
    table_print(f, &t);
}

void mc_ctl_print_edges(FILE *f, const json_t *answer)
{
    const json_t *edges = json_is_object(answer) ? json_object_get(answer, "edges") : NULL;
    if (!json_is_array(edges) || json_array_size(edges) == 0) {
        fputs("no registered edges\n", f);
        return;
    }
    edges_table(f, edges);
}

void mc_ctl_print_purged(FILE *f, const json_t *answer)
{
    const json_t *n = json_is_object(answer) ? json_object_get(answer, "purged") : NULL;
    json_int_t v = json_is_integer(n) ? json_integer_value(n) : 0;
    fprintf(f, "purged %" JSON_INTEGER_FORMAT " object%s%s\n", v, v == 1 ? "" : "s",
            flag_of(answer, "soft") ? " (soft: marked stale)" : "");
}
