/* test_invlog.c — the fleet invalidation log and membership (origin/invlog.h):
 * the same cases against both backends, LMDB and etcd (a single-member etcd
 * started by the test on loopback ephemeral ports; those cases are skipped,
 * with a message, when etcd is not installed), the status rules, and the
 * Control API's viewer-path mapping for invalidate_on_write
 * (origin/ctlapi.h). The body parser has test_inval.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <lmdb.h>
#include "common/buf.h"
#include "common/err.h"
#include "origin/ctlapi.h"
#include "origin/invlog.h"

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/mc-test-invlog-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The backend under test: false = LMDB in g_dir/db, true = etcd under
 * g_prefix (a fresh prefix per test: one cluster, isolated logs). */
static bool g_etcd;
static char g_prefix[64];
static char g_etcd_url[64];
static char g_etcd_dir[64];
static pid_t g_etcd_pid;
static int g_test_no;

static int etcd_open(mc_invlog **log, mc_err *err)
{
    mc_invlog_etcd_config ec = {
        .endpoints = g_etcd_url, .prefix = g_prefix, .lease_ttl_s = 30, .keep = 1000,
        .timeout_ms = 2000,
    };
    return mc_invlog_open_etcd(log, &ec, err);
}

static mc_invlog *open_log(void)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/db", g_dir);
    mc_invlog *log = NULL;
    mc_err err = {0, ""};
    int rc = g_etcd ? etcd_open(&log, &err) : mc_invlog_open_lmdb(&log, dir, &err);
    if (rc != 0)
        fail_msg("open: %s", err.msg);
    assert_string_equal(mc_invlog_backend(log), g_etcd ? "etcd" : "lmdb");
    return log;
}

static int setup_etcd_case(void **state)
{
    snprintf(g_prefix, sizeof g_prefix, "/test-%d-%d/", (int)getpid(), ++g_test_no);
    return setup(state);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* One etcd member on loopback for the group; -1 (the group is skipped) when
 * etcd is not installed. */
static int etcd_group_setup(void **state)
{
    (void)state;
    g_etcd = true;
    snprintf(g_etcd_dir, sizeof g_etcd_dir, "/tmp/mc-test-etcd-XXXXXX");
    int cport = free_port(), pport = free_port();
    if (!mkdtemp(g_etcd_dir) || cport < 0 || pport < 0)
        return -1;
    char client[64], peer[64], cluster[96], data[96], logf[96];
    snprintf(client, sizeof client, "http://127.0.0.1:%d", cport);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof cluster, "t=%s", peer);
    snprintf(data, sizeof data, "%s/data", g_etcd_dir);
    snprintf(logf, sizeof logf, "%s/etcd.log", g_etcd_dir);
    snprintf(g_etcd_url, sizeof g_etcd_url, "%s", client);
    g_etcd_pid = fork();
    if (g_etcd_pid == 0) {
        int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("etcd", "etcd", "--name", "t", "--data-dir", data, "--listen-client-urls",
               client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
               "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
               "--log-level", "warn", "--logger", "zap", (char *)NULL);
        _exit(127);
    }
    if (g_etcd_pid < 0)
        return -1;
    snprintf(g_prefix, sizeof g_prefix, "/probe/");
    for (int i = 0; i < 200; i++) {   /* up to 10 s */
        int st;
        if (waitpid(g_etcd_pid, &st, WNOHANG) == g_etcd_pid) {
            g_etcd_pid = 0;
            return -1;
        }
        mc_invlog *log = NULL;
        mc_err err = {0, ""};
        uint64_t last;
        bool up = etcd_open(&log, &err) == 0 && mc_invlog_last_seq(log, &last) == 0;
        mc_invlog_close(log);
        if (up)
            return 0;
        usleep(50 * 1000);
    }
    return -1;
}

static int etcd_group_teardown(void **state)
{
    (void)state;
    if (g_etcd_pid > 0) {
        kill(g_etcd_pid, SIGKILL);
        waitpid(g_etcd_pid, NULL, 0);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_etcd_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Append one entry for path (and key when not NULL); returns its seq. */
static uint64_t append(mc_invlog *log, const char *path, const char *key, int64_t created)
{
    mc_inval in;
    memset(&in, 0, sizeof in);
    in.created_s = created;
    if (path)
        assert_int_equal(mc_inval_add_path(&in, path), 0);
    if (key)
        assert_int_equal(mc_inval_add_key(&in, key), 0);
    assert_int_equal(mc_invlog_append(log, &in), 0);
    uint64_t seq = in.seq;
    mc_inval_free(&in);
    return seq;
}

static void test_append_assigns_increasing_seqs(void **state)
{
    (void)state;
    mc_invlog *log = open_log();
    uint64_t last = 99;
    assert_int_equal(mc_invlog_last_seq(log, &last), 0);
    assert_int_equal(last, 0);
    assert_int_equal(append(log, "/a.glb", NULL, 1000), 1);
    assert_int_equal(append(log, "/models/chair/*", "chair", 1001), 2);
    assert_int_equal(append(log, NULL, "sku-123", 0), 3);
    assert_int_equal(mc_invlog_last_seq(log, &last), 0);
    assert_int_equal(last, 3);

    mc_inval got;
    assert_int_equal(mc_invlog_get(log, 2, &got), 0);
    assert_int_equal(got.seq, 2);
    assert_int_equal(got.created_s, 1001);
    assert_int_equal(got.npaths, 1);
    assert_string_equal(got.paths[0], "/models/chair/*");
    assert_int_equal(got.nkeys, 1);
    assert_string_equal(got.keys[0], "chair");
    assert_false(got.all);
    mc_inval_free(&got);
    assert_int_equal(mc_invlog_get(log, 3, &got), 0);
    assert_true(got.created_s > 1700000000);   /* 0 means "now" */
    mc_inval_free(&got);
    assert_int_equal(mc_invlog_get(log, 4, &got), MC_E_NOTFOUND);
    assert_int_equal(mc_invlog_get(log, 0, &got), MC_E_NOTFOUND);
    mc_invlog_close(log);
}

static void test_empty_entry_refused(void **state)
{
    (void)state;
    mc_invlog *log = open_log();
    mc_inval in;
    memset(&in, 0, sizeof in);
    assert_int_equal(mc_invlog_append(log, &in), MC_E_INVAL);
    in.all = true;
    in.soft = true;
    assert_int_equal(mc_invlog_append(log, &in), 0);
    assert_int_equal(in.seq, 1);
    mc_inval got;
    assert_int_equal(mc_invlog_get(log, 1, &got), 0);
    assert_true(got.all);
    assert_true(got.soft);
    assert_int_equal(got.npaths + got.nkeys, 0);
    mc_inval_free(&got);
    mc_invlog_close(log);
}

static void test_read_after_in_order_and_bounded(void **state)
{
    (void)state;
    mc_invlog *log = open_log();
    char p[32];
    for (int i = 1; i <= 25; i++) {
        snprintf(p, sizeof p, "/p%d", i);
        append(log, p, NULL, 1000 + i);
    }
    mc_inval_list l;
    assert_int_equal(mc_invlog_read_after(log, 0, 10, &l), 0);
    assert_int_equal(l.n, 10);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(l.v[i].seq, i + 1);
    mc_inval_list_free(&l);
    assert_int_equal(mc_invlog_read_after(log, 20, 1000, &l), 0);
    assert_int_equal(l.n, 5);
    assert_int_equal(l.v[0].seq, 21);
    assert_string_equal(l.v[4].paths[0], "/p25");
    mc_inval_list_free(&l);
    assert_int_equal(mc_invlog_read_after(log, 25, 1000, &l), 0);
    assert_int_equal(l.n, 0);
    mc_inval_list_free(&l);
    assert_int_equal(mc_invlog_read_after(log, 1000, 1000, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(mc_invlog_read_recent(log, 3, &l), 0);   /* newest first */
    assert_int_equal(l.n, 3);
    assert_int_equal(l.v[0].seq, 25);
    assert_int_equal(l.v[2].seq, 23);
    mc_inval_list_free(&l);
    mc_invlog_close(log);
}

static void test_membership_and_ack(void **state)
{
    (void)state;
    mc_invlog *log = open_log();
    append(log, "/a", NULL, 0);
    append(log, "/b", NULL, 0);
    append(log, "/c", NULL, 0);
    assert_int_equal(mc_invlog_heartbeat(log, "edge-b", "eu-west-1", 1000), 0);
    assert_int_equal(mc_invlog_heartbeat(log, "edge-a", "us-east-1", 1000), 0);
    assert_int_equal(mc_invlog_ack(log, "edge-a", 2, 1005), 0);
    assert_int_equal(mc_invlog_ack(log, "edge-a", 1, 1006), 0);   /* never backwards */
    assert_int_equal(mc_invlog_ack(log, "edge-a", 4, 1007), MC_E_INVAL);   /* beyond last */
    assert_int_equal(mc_invlog_ack(log, "edge-c", 3, 1008), 0);   /* registers */
    assert_int_equal(mc_invlog_heartbeat(log, "", "x", 1), MC_E_INVAL);
    assert_int_equal(mc_invlog_heartbeat(log, "edge-b", NULL, 1010), 0);   /* keeps region */

    mc_edge_list el;
    assert_int_equal(mc_invlog_edges(log, &el), 0);
    assert_int_equal(el.n, 3);
    assert_string_equal(el.v[0].node, "edge-a");   /* by node id */
    assert_string_equal(el.v[0].region, "us-east-1");
    assert_int_equal(el.v[0].acked, 2);
    assert_int_equal(el.v[0].last_seen_s, 1006);
    assert_string_equal(el.v[1].node, "edge-b");
    assert_string_equal(el.v[1].region, "eu-west-1");
    assert_int_equal(el.v[1].acked, 0);
    assert_int_equal(el.v[1].last_seen_s, 1010);
    assert_string_equal(el.v[2].node, "edge-c");
    assert_string_equal(el.v[2].region, "");
    assert_int_equal(el.v[2].acked, 3);
    mc_edge_list_free(&el);
    mc_invlog_close(log);
}

/* The status rules as a table: (acked, last_seen) of two edges, the seq asked
 * about, and what each edge's state and the whole must be at now = 1000 with
 * unreachable_after = 30. */
static void test_status_computation(void **state)
{
    (void)state;
    static const struct {
        uint64_t acked[2];
        int64_t seen[2];
        uint64_t seq;
        mc_edge_state want[2];
        bool completed;
    } cases[] = {
        {{5, 5}, {1000, 1000}, 5, {MC_EDGE_APPLIED, MC_EDGE_APPLIED}, true},
        {{5, 4}, {1000, 1000}, 5, {MC_EDGE_APPLIED, MC_EDGE_PENDING}, false},
        {{5, 4}, {1000, 970}, 5, {MC_EDGE_APPLIED, MC_EDGE_PENDING}, false},   /* 30 s: not yet */
        {{5, 4}, {1000, 969}, 5, {MC_EDGE_APPLIED, MC_EDGE_UNREACHABLE}, true},
        {{9, 4}, {0, 969}, 5, {MC_EDGE_APPLIED, MC_EDGE_UNREACHABLE}, true},  /* applied wins */
        {{0, 0}, {999, 1000}, 1, {MC_EDGE_PENDING, MC_EDGE_PENDING}, false},
        {{0, 0}, {100, 100}, 1, {MC_EDGE_UNREACHABLE, MC_EDGE_UNREACHABLE}, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_edge e[2];
        memset(e, 0, sizeof e);
        for (int j = 0; j < 2; j++) {
            snprintf(e[j].node, sizeof e[j].node, "edge-%d", j);
            e[j].acked = cases[i].acked[j];
            e[j].last_seen_s = cases[i].seen[j];
            if (mc_edge_state_for(&e[j], cases[i].seq, 1000, 30) != cases[i].want[j])
                fail_msg("case %zu edge %d: state %s", i, j,
                         mc_edge_state_name(mc_edge_state_for(&e[j], cases[i].seq, 1000, 30)));
        }
        mc_edge_list l = {e, 2};
        if (mc_inval_completed(&l, cases[i].seq, 1000, 30) != cases[i].completed)
            fail_msg("case %zu: completed should be %d", i, cases[i].completed);
    }
    mc_edge_list none = {NULL, 0};
    assert_true(mc_inval_completed(&none, 1, 1000, 30));   /* an empty fleet */
    assert_string_equal(mc_edge_state_name(MC_EDGE_UNREACHABLE), "unreachable");
}

/* Remove entry seq behind the backend's back. */
static void raw_delete(uint64_t seq)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/db", g_dir);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    unsigned char kb[8];
    for (int i = 7; i >= 0; i--, seq >>= 8)
        kb[i] = (unsigned char)(seq & 0xff);
    MDB_val k = {8, kb};
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "log", 0, &dbi), 0);
    assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_durable_across_reopen_and_seq_never_reused(void **state)
{
    (void)state;
    mc_invlog *log = open_log();
    append(log, "/one", NULL, 10);
    append(log, "/two", "k", 11);
    assert_int_equal(mc_invlog_heartbeat(log, "edge-a", "us-east-1", 500), 0);
    assert_int_equal(mc_invlog_ack(log, "edge-a", 2, 501), 0);
    mc_invlog_close(log);

    log = open_log();
    uint64_t last = 0;
    assert_int_equal(mc_invlog_last_seq(log, &last), 0);
    assert_int_equal(last, 2);
    mc_inval got;
    assert_int_equal(mc_invlog_get(log, 2, &got), 0);
    assert_string_equal(got.paths[0], "/two");
    assert_string_equal(got.keys[0], "k");
    assert_int_equal(got.created_s, 11);
    mc_inval_free(&got);
    mc_edge_list el;
    assert_int_equal(mc_invlog_edges(log, &el), 0);
    assert_int_equal(el.n, 1);
    assert_int_equal(el.v[0].acked, 2);
    assert_int_equal(el.v[0].last_seen_s, 501);
    mc_edge_list_free(&el);
    assert_int_equal(append(log, "/three", NULL, 0), 3);
    mc_invlog_close(log);

    /* seq comes from meta's high-water mark, not from the last key: even an
     * entry removed by hand (or by a future compaction) is never reissued.
     * (etcd: the seq key, never deleted; compaction is test_etcd.py's.) */
    if (g_etcd)
        return;
    raw_delete(3);
    log = open_log();
    mc_inval gone;
    assert_int_equal(mc_invlog_get(log, 3, &gone), MC_E_NOTFOUND);
    assert_int_equal(append(log, "/four", NULL, 0), 4);
    mc_invlog_close(log);
}

static int g_notified;
static uint64_t g_notified_seq;
static void on_notify(void *ud, uint64_t last)
{
    (void)ud;
    g_notified++;
    g_notified_seq = last;
}

static void test_append_notifies(void **state)
{
    (void)state;
    mc_invlog *log = open_log();
    g_notified = 0;
    mc_invlog_set_notify(log, on_notify, NULL);
    append(log, "/x", NULL, 0);
    append(log, "/y", NULL, 0);
    assert_int_equal(g_notified, 2);
    assert_int_equal(g_notified_seq, 2);
    mc_inval in;
    memset(&in, 0, sizeof in);
    assert_int_equal(mc_invlog_append(log, &in), MC_E_INVAL);   /* refused: no notify */
    assert_int_equal(g_notified, 2);
    mc_invlog_close(log);
}

static void test_open_failure_names_dir(void **state)
{
    (void)state;
    if (g_etcd) {   /* a configuration error names what is wrong */
        mc_invlog *log = NULL;
        mc_err err = {0, ""};
        mc_invlog_etcd_config ec = {.endpoints = "127.0.0.1:2379"};
        assert_int_equal(mc_invlog_open_etcd(&log, &ec, &err), MC_E_INVAL);
        assert_null(log);
        assert_non_null(strstr(err.msg, "127.0.0.1:2379"));
        ec.endpoints = " , ";
        assert_int_equal(mc_invlog_open_etcd(&log, &ec, &err), MC_E_INVAL);
        assert_non_null(strstr(err.msg, "no etcd endpoints"));
        return;
    }
    mc_invlog *log = NULL;
    mc_err err = {0, ""};
    char dir[128];
    snprintf(dir, sizeof dir, "%s/missing/deeper", g_dir);
    assert_true(mc_invlog_open_lmdb(&log, dir, &err) < 0);
    assert_null(log);
    assert_non_null(strstr(err.msg, "missing/deeper"));
}

/* Another origin's append (a second mc_invlog on the same log) makes the
 * wake descriptor readable (etcd: the watch thread); LMDB has none. */
static void test_remote_append_wakes(void **state)
{
    (void)state;
    mc_invlog *a = open_log();
    if (!g_etcd) {
        assert_int_equal(mc_invlog_wake_fd(a), -1);
        mc_invlog_close(a);
        return;
    }
    mc_invlog *b = open_log();
    int fd = mc_invlog_wake_fd(b);
    assert_true(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1);   /* the watch's "created" */
    mc_invlog_wake_drain(b);
    assert_int_equal(poll(&p, 1, 0), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    append(a, "/elsewhere", NULL, 0);
    assert_int_equal(poll(&p, 1, 2000), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    mc_invlog_wake_drain(b);
    uint64_t last = 0;
    assert_int_equal(mc_invlog_last_seq(b, &last), 0);
    assert_int_equal(last, 1);
    print_message("append on one, seen by the other's watch: %.1f ms after it began\n",
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    mc_invlog_close(b);
    mc_invlog_close(a);
}

/* ---- the Control API's viewer path for invalidate_on_write ---------------- */

static void test_viewer_path(void **state)
{
    (void)state;
    static const struct { const char *s3; const char *viewer; } cases[] = {
        {"/assets/models/chair.glb", "/models/chair.glb"},
        {"/b/read%20me.txt", "/read%20me.txt"},
        {"/b/%7Euser/a", "/~user/a"},            /* as an edge normalises it */
        {"/b/k", "/k"},
        {"/b", NULL},
        {"/b/", NULL},
        {"/", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mc_buf out = MC_BUF_INIT;
        int rc = mc_ctlapi_viewer_path(cases[i].s3, &out);
        if (cases[i].viewer) {
            assert_int_equal(rc, 0);
            assert_string_equal(out.data, cases[i].viewer);
        } else {
            assert_int_equal(rc, MC_E_INVAL);
        }
        mc_buf_free(&out);
    }
}

#define BACKEND_CASES(S)                                                                  \
    cmocka_unit_test_setup_teardown(test_append_assigns_increasing_seqs, S, teardown),       \
    cmocka_unit_test_setup_teardown(test_empty_entry_refused, S, teardown),                  \
    cmocka_unit_test_setup_teardown(test_read_after_in_order_and_bounded, S, teardown),      \
    cmocka_unit_test_setup_teardown(test_membership_and_ack, S, teardown),                   \
    cmocka_unit_test_setup_teardown(test_durable_across_reopen_and_seq_never_reused, S,      \
                                    teardown),                                               \
    cmocka_unit_test_setup_teardown(test_append_notifies, S, teardown),                      \
    cmocka_unit_test_setup_teardown(test_remote_append_wakes, S, teardown),                  \
    cmocka_unit_test_setup_teardown(test_open_failure_names_dir, S, teardown)

int main(void)
{
    const struct CMUnitTest lmdb[] = {
        BACKEND_CASES(setup),
        cmocka_unit_test(test_status_computation),
        cmocka_unit_test(test_viewer_path),
    };
    const struct CMUnitTest etcd[] = {BACKEND_CASES(setup_etcd_case)};
    int failed = cmocka_run_group_tests_name("lmdb", lmdb, NULL, NULL);
    if (system("command -v etcd >/dev/null 2>&1") != 0) {
        printf("etcd is not installed: the etcd backend cases are skipped "
               "(deploy/deps.sh --test installs etcd-server)\n");
        return failed;
    }
    return failed + cmocka_run_group_tests_name("etcd", etcd, etcd_group_setup,
                                                etcd_group_teardown);
}
