/* test_httpc.c — meshcdn-load's HTTP client (httpc.h) against a scripted
 * server on a loopback socket in a thread: bodies larger than the read
 * buffer counted exactly (the kernel-side discard must neither miss nor
 * eat a byte, so the next response on the same connection is checked too),
 * truncation, chunked and read-to-close bodies, reconnection after the
 * server closes an idle connection, headers in one-byte writes, bytes past
 * a response, timeouts, refused connects, protocol errors, and the same
 * over a Unix socket (which refuses MSG_TRUNC: the copying fallback). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "tests/load/httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

/* ---- the scripted server -------------------------------------------------- */

typedef struct srv srv;
typedef void (*script_fn)(srv *s, int conn, int fd);

struct srv {
    int lfd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    script_fn script;
    int accepts;                  /* connections accepted so far */
    int requests;                 /* requests read over all connections */
    int bad_request;              /* a request that is not "GET /... Host:" (checked by the test) */
    int closed;                   /* connections the server has closed */
    int marks;                    /* scripts count steps here for the test to wait on */
    pthread_t thread;
};

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;   /* the client went away: its result says so */
        p += n;
        len -= (size_t)n;
    }
}

static void write_str(int fd, const char *s)
{
    write_all(fd, s, strlen(s));
}

/* `len` body bytes (a pattern), in writes of at most `piece`. */
static void write_body(int fd, size_t len, size_t piece)
{
    static char buf[256 * 1024];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)('a' + i % 26);
    while (len > 0) {
        size_t n = len < piece ? len : piece;
        n = n < sizeof buf ? n : sizeof buf;
        write_all(fd, buf, n);
        len -= n;
    }
}

/* Reads one request's head; 0, or -1 at EOF. */
static int read_request(srv *s, int fd)
{
    char buf[8192];
    size_t have = 0;
    while (have < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + have, 1, 0);   /* byte by byte: never read past the request */
        if (n <= 0)
            return -1;
        have++;
        buf[have] = '\0';
        if (have >= 4 && memcmp(buf + have - 4, "\r\n\r\n", 4) == 0) {
            if (strncmp(buf, "GET /", 5) != 0 || strstr(buf, " HTTP/1.1\r\nHost: ") == NULL)
                s->bad_request = 1;   /* no cmocka assertion off the test's thread */
            __atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
            return 0;
        }
    }
    return -1;
}

static void *srv_main(void *arg)
{
    srv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;   /* shut down */
        int conn = __atomic_fetch_add(&s->accepts, 1, __ATOMIC_SEQ_CST);
        if (s->addr.ss_family == AF_INET) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        s->script(s, conn, fd);
        close(fd);
        __atomic_add_fetch(&s->closed, 1, __ATOMIC_SEQ_CST);
    }
}

static void srv_start(srv *s, script_fn script, int unix_socket)
{
    memset(s, 0, sizeof *s);
    s->script = script;
    if (unix_socket) {
        struct sockaddr_un *u = (struct sockaddr_un *)&s->addr;
        u->sun_family = AF_UNIX;
        int len = snprintf(u->sun_path + 1, sizeof u->sun_path - 1, "mc-test-httpc-%d-%p", (int)getpid(), (void *)s);
        s->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);   /* abstract */
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&s->addr;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s->addrlen = sizeof *in;
    }
    s->lfd = socket(s->addr.ss_family, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&s->addr, s->addrlen), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    if (!unix_socket)
        assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&s->addr, &s->addrlen), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

static void srv_stop(srv *s)
{
    shutdown(s->lfd, SHUT_RDWR);   /* wakes the blocked accept */
    pthread_join(s->thread, NULL);
    close(s->lfd);
    assert_int_equal(s->bad_request, 0);
}

/* ---- the client side ------------------------------------------------------ */

typedef struct client {
    struct event_base *base;
    mc_hc_conn *c;
    mc_hc_result res;
    int calls;                    /* done callbacks */
} client;

static void on_done(mc_hc_conn *c, const mc_hc_result *r, void *arg)
{
    client *cl = arg;
    assert_ptr_equal(c, cl->c);
    assert_int_equal(mc_hc_busy(c), 0);
    cl->res = *r;
    cl->calls++;
    event_base_loopbreak(cl->base);
}

static void client_new(client *cl, const srv *s, int timeout_ms)
{
    memset(cl, 0, sizeof *cl);
    cl->base = event_base_new();
    assert_non_null(cl->base);
    cl->c = mc_hc_new(cl->base, (const struct sockaddr *)&s->addr, s->addrlen, "127.0.0.1:1", timeout_ms, on_done, cl);
    assert_non_null(cl->c);
}

static void client_free(client *cl)
{
    mc_hc_free(cl->c);
    event_base_free(cl->base);
}

/* One GET, the loop run until its done callback (which must come once). */
static mc_hc_result get(client *cl, const char *path)
{
    int before = cl->calls;
    assert_int_equal(mc_hc_get(cl->c, path), 0);
    assert_int_equal(mc_hc_get(cl->c, path), MC_E_STATE);   /* busy */
    assert_int_equal(cl->calls, before);                     /* never from within mc_hc_get */
    struct timeval guard = {20, 0};
    event_base_loopexit(cl->base, &guard);
    event_base_dispatch(cl->base);
    assert_int_equal(cl->calls, before + 1);
    return cl->res;
}

/* Waits (up to 10 s) until the server's counter reaches n: no sleep-based
 * guess of how long a busy box takes. */
static void wait_for(int *counter, int n)
{
    for (int i = 0; i < 10000 && __atomic_load_n(counter, __ATOMIC_SEQ_CST) < n; i++)
        usleep(1000);
    assert_true(__atomic_load_n(counter, __ATOMIC_SEQ_CST) >= n);
}

/* Runs the loop for `ms` (the client notices what the server did meanwhile). */
static void spin(client *cl, int ms)
{
    struct timeval tv = {0, ms * 1000};
    event_base_loopexit(cl->base, &tv);
    event_base_dispatch(cl->base);
}

static void expect(mc_hc_result r, mc_hc_error err, int status, uint64_t body)
{
    if (r.error != err || r.status != status || r.body_bytes != body)
        fail_msg("got error %d status %d body %llu, want error %d status %d body %llu", r.error, r.status,
                 (unsigned long long)r.body_bytes, err, status, (unsigned long long)body);
}

/* ---- scripts -------------------------------------------------------------- */

#define BIG (5 * MIB + 12345)     /* larger than the read buffer and than one discard (4 MiB) */

/* Request 2k is answered with a BIG body (head and the first body bytes in
 * one write, the rest in pieces) followed at once by the answer to request
 * 2k + 1 (100 bytes), as if pipelined: a discard that ate a byte past the
 * BIG body breaks the second answer, one that left a byte miscounts. */
static void script_big_then_small(srv *s, int conn, int fd)
{
    for (int i = 0; read_request(s, fd) == 0; i++) {
        if (i % 2)
            continue;   /* answered already */
        char head[256];
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\nX-Cache: Hit from test\r\n\r\n", BIG);
        write_str(fd, head);
        write_body(fd, BIG, 100000);
        write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Cache: Miss from test\r\n\r\n");
        write_body(fd, 100, 100);
    }
}

static void big_body_counted_exactly(void **state, int unix_socket)
{
    srv s;
    client cl;
    srv_start(&s, script_big_then_small, unix_socket);
    client_new(&cl, &s, 10000);
    for (int round = 0; round < 3; round++) {
        mc_hc_result r = get(&cl, "/big");
        expect(r, MC_HC_OK, 200, BIG);
        assert_int_equal(r.cache, MC_HC_HIT);
        r = get(&cl, "/small");   /* already queued behind the BIG body */
        expect(r, MC_HC_OK, 200, 100);
        assert_int_equal(r.cache, MC_HC_MISS);
    }
    client_free(&cl);
    srv_stop(&s);                         /* the last request was answered before it was read */
    assert_int_equal(s.accepts, 1);
    assert_int_equal(s.requests, 6);
}

static void big_body_tcp(void **state)
{
    big_body_counted_exactly(state, 0);
}

static void big_body_unix_fallback(void **state)
{
    big_body_counted_exactly(state, 1);
}

#define CUT 300001

static void script_truncated(srv *s, int conn, int fd)
{
    if (read_request(s, fd) < 0)
        return;
    write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n");
    write_body(fd, CUT, 7000);
}

static void truncated_mid_body(void **state)
{
    srv s;
    client cl;
    srv_start(&s, script_truncated, 0);
    client_new(&cl, &s, 10000);
    expect(get(&cl, "/cut"), MC_HC_TRUNCATED, 200, CUT);
    expect(get(&cl, "/cut"), MC_HC_TRUNCATED, 200, CUT);   /* reconnected */
    assert_int_equal(s.accepts, 2);
    client_free(&cl);
    srv_stop(&s);
}

/* Chunks of 5 bytes, 1 MiB + 3 (past the buffer: discarded in the kernel)
 * and 70,000, an extension, a trailer; then a small response. */
#define CHUNKED_TOTAL (5 + MIB + 3 + 70000)

static void script_chunked(srv *s, int conn, int fd)
{
    while (read_request(s, fd) == 0) {
        write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Status: test; fwd=miss\r\n\r\n"
                      "5\r\nhello\r\n");
        char size[64];
        snprintf(size, sizeof size, "%x\r\n", MIB + 3);
        write_str(fd, size);
        write_body(fd, MIB + 3, 65536);
        snprintf(size, sizeof size, "\r\n%x;ext=1\r\n", 70000);
        write_str(fd, size);
        write_body(fd, 70000, 1000);
        write_str(fd, "\r\n0\r\nX-Trailer: yes\r\n\r\n");
    }
}

static void chunked_body(void **state)
{
    srv s;
    client cl;
    srv_start(&s, script_chunked, 0);
    client_new(&cl, &s, 10000);
    for (int i = 0; i < 3; i++) {
        mc_hc_result r = get(&cl, "/chunked");
        expect(r, MC_HC_OK, 200, CHUNKED_TOTAL);
        assert_int_equal(r.cache, MC_HC_MISS);
    }
    assert_int_equal(s.accepts, 1);
    client_free(&cl);
    srv_stop(&s);
}

#define EOF_BODY (2 * MIB + 777)

static void script_read_to_close(srv *s, int conn, int fd)
{
    if (read_request(s, fd) < 0)
        return;
    write_str(fd, "HTTP/1.1 200 OK\r\nX-Cache: Miss from test\r\n\r\n");
    write_body(fd, EOF_BODY, 50000);
}

static void read_to_close_body(void **state)
{
    srv s;
    client cl;
    srv_start(&s, script_read_to_close, 0);
    client_new(&cl, &s, 10000);
    expect(get(&cl, "/eof"), MC_HC_OK, 200, EOF_BODY);
    expect(get(&cl, "/eof"), MC_HC_OK, 200, EOF_BODY);   /* on a new connection */
    assert_int_equal(s.accepts, 2);
    client_free(&cl);
    srv_stop(&s);
}

/* Answers one request and closes the idle connection. */
static void script_one_then_close(srv *s, int conn, int fd)
{
    if (read_request(s, fd) < 0)
        return;
    write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    usleep(20000);
}

static void idle_close_reconnects(void **state)
{
    srv s;
    client cl;
    srv_start(&s, script_one_then_close, 0);
    client_new(&cl, &s, 10000);
    expect(get(&cl, "/a"), MC_HC_OK, 200, 3);
    wait_for(&s.closed, 1);
    spin(&cl, 50);                        /* the client reads the close */
    assert_int_equal(cl.calls, 1);        /* no callback for an idle close */
    expect(get(&cl, "/b"), MC_HC_OK, 200, 3);
    wait_for(&s.closed, 2);
    spin(&cl, 50);
    expect(get(&cl, "/c"), MC_HC_OK, 200, 3);
    assert_int_equal(s.accepts, 3);
    client_free(&cl);
    srv_stop(&s);
}

static void script_tiny_writes(srv *s, int conn, int fd)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\nServer: test\r\nCache-Status: edge; hit; ttl=5\r\n"
                               "Content-Length: 10\r\n\r\n0123456789";
    while (read_request(s, fd) == 0) {
        for (size_t i = 0; i < sizeof resp - 1; i++) {
            write_all(fd, resp + i, 1);
            usleep(200);
        }
    }
}

static void headers_in_tiny_writes(void **state)
{
    srv s;
    client cl;
    srv_start(&s, script_tiny_writes, 0);
    client_new(&cl, &s, 10000);
    for (int i = 0; i < 2; i++) {
        mc_hc_result r = get(&cl, "/tiny");
        expect(r, MC_HC_OK, 200, 10);
        assert_int_equal(r.cache, MC_HC_HIT);
    }
    assert_int_equal(s.accepts, 1);
    client_free(&cl);
    srv_stop(&s);
}

/* A stray byte right after the response, another while the connection is
 * idle, then a proper response to the next request. */
static void script_extra_bytes(srv *s, int conn, int fd)
{
    for (int i = 0; read_request(s, fd) == 0; i++) {
        if (i == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbodyX");
            usleep(50000);
            write_str(fd, "Y");
            __atomic_add_fetch(&s->marks, 1, __ATOMIC_SEQ_CST);
        } else {
            write_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno");
        }
    }
}

static void bytes_past_response(void **state)
{
    srv s;
    client cl;
    srv_start(&s, script_extra_bytes, 0);
    client_new(&cl, &s, 10000);
    expect(get(&cl, "/x"), MC_HC_OK, 200, 4);
    wait_for(&s.marks, 1);
    spin(&cl, 50);                        /* "Y" arrives on the idle connection */
    assert_int_equal(cl.calls, 1);
    expect(get(&cl, "/y"), MC_HC_OK, 404, 2);
    client_free(&cl);
    srv_stop(&s);
}

/* Reads requests, answers none. */
static void script_silent(srv *s, int conn, int fd)
{
    char b[4096];
    while (recv(fd, b, sizeof b, 0) > 0)
        ;
}

static void script_close_at_once(srv *s, int conn, int fd)
{
    if (read_request(s, fd) < 0)   /* read first: closing on unread bytes would reset */
        return;
    if (conn == 1)
        write_str(fd, "HTTP/1.1 2xx nonsense\r\n\r\n");   /* conn 0 closes before any byte */
}

static void script_stall_mid_body(srv *s, int conn, int fd)
{
    if (read_request(s, fd) < 0)
        return;
    write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    write_body(fd, 10, 10);
    char b[64];
    while (recv(fd, b, sizeof b, 0) > 0)
        ;
}

static void failures(void **state)
{
    srv s;
    client cl;

    srv_start(&s, script_silent, 0);
    client_new(&cl, &s, 300);
    expect(get(&cl, "/t"), MC_HC_TIMEOUT, 0, 0);
    client_free(&cl);
    srv_stop(&s);

    srv_start(&s, script_stall_mid_body, 0);
    client_new(&cl, &s, 1000);            /* room for a slow box before the head */
    expect(get(&cl, "/t"), MC_HC_TIMEOUT, 200, 10);
    client_free(&cl);
    srv_stop(&s);

    srv_start(&s, script_close_at_once, 0);
    client_new(&cl, &s, 10000);
    expect(get(&cl, "/c"), MC_HC_CLOSED, 0, 0);
    expect(get(&cl, "/p"), MC_HC_PROTOCOL, 0, 0);
    client_free(&cl);
    srv_stop(&s);

    /* refused: a port nobody listens on (bound, not listening) */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    memset(&s, 0, sizeof s);
    memcpy(&s.addr, &a, sizeof a);
    s.addrlen = sizeof a;
    client_new(&cl, &s, 10000);
    expect(get(&cl, "/r"), MC_HC_CONNECT, 0, 0);
    expect(get(&cl, "/r"), MC_HC_CONNECT, 0, 0);
    client_free(&cl);
    close(fd);

    char path[5000];
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    client_new(&cl, &s, 10000);
    assert_int_equal(mc_hc_get(cl.c, path), MC_E_TOOBIG);
    assert_int_equal(cl.calls, 0);
    client_free(&cl);
}

/* A status line longer than the read buffer is a protocol error, not an
 * overflow. */
static void script_long_line(srv *s, int conn, int fd)
{
    if (read_request(s, fd) < 0)
        return;
    write_str(fd, "HTTP/1.1 200 OK\r\nX-Long: ");
    write_body(fd, 40000, 4000);
    write_str(fd, "\r\nContent-Length: 0\r\n\r\n");
}

static void line_too_long(void **state)
{
    srv s;
    client cl;
    srv_start(&s, script_long_line, 0);
    client_new(&cl, &s, 10000);
    expect(get(&cl, "/l"), MC_HC_PROTOCOL, 200, 0);
    client_free(&cl);
    srv_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(big_body_tcp),
        cmocka_unit_test(big_body_unix_fallback),
        cmocka_unit_test(truncated_mid_body),
        cmocka_unit_test(chunked_body),
        cmocka_unit_test(read_to_close_body),
        cmocka_unit_test(idle_close_reconnects),
        cmocka_unit_test(headers_in_tiny_writes),
        cmocka_unit_test(bytes_past_response),
        cmocka_unit_test(failures),
        cmocka_unit_test(line_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
