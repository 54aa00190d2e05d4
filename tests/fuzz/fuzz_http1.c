/* fuzz_http1.c — the edge's HTTP/1.1 server (edge/http1.c) on hostile bytes.
 *
 * A real mc_http_conn runs over a socketpair on an event loop; the input is
 * written to the peer end (then its write side shut), the loop runs until the
 * connection is gone or nothing moves any more, and whatever the server
 * answered is drained. Request bodies are read (max_body 64 KiB), so the
 * Content-Length and chunked readers are covered as well as the head parser.
 * The handler touches every parsed field so ASan sees bad pointers. */
#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "edge/http1.h"

static size_t touch(const char *s) { return s ? strlen(s) : 0; }

static void handler(mc_http_conn *c, mc_http_req *r, void *ud)
{
    size_t n = touch(r->method) + touch(r->target) + touch(r->path) + touch(r->query);
    for (int i = 0; i < r->nheaders; i++)
        n += touch(r->headers[i].name) + touch(r->headers[i].value);
    for (size_t i = 0; r->body && i < r->body_len; i++)
        n += r->body[i];
    (void)ud;
    char body[32];
    int len = snprintf(body, sizeof body, "%zu\n", n);
    if (n % 3 == 0) {                      /* the streamed (chunked / close-delimited) path too */
        mc_http_respond_start(c, 200, NULL, "X-A: b\r\n", -1);
        mc_http_respond_body(c, body, (size_t)len);
        mc_http_respond_end(c);
    } else {
        mc_http_respond(c, 200, NULL, NULL, "text/plain", body, (size_t)len);
    }
}

static void drain(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    if (!base)
        base = event_base_new();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    mc_http_conn *reg = NULL;
    static atomic_int open;                /* the cap's bookkeeping, as the edge's viewers have it */
    mc_http_server_opts o = {.handler = handler, .timeout_ms = 5000, .server_name = "fuzz", .registry = &reg,
                             .max_body = 65536, .header_timeout_ms = 5000, .open_count = &open, .max_open = 100};
    if (mc_http_conn_new(base, sv[0], &o) < 0)
        abort();
    size_t off = 0;
    int after = 0;                         /* loop rounds since the input was all written */
    for (int round = 0; round < 100000 && reg && after < 50; round++) {
        if (off < size) {
            ssize_t w = write(sv[1], data + off, size - off);
            if (w > 0)
                off += (size_t)w;
            if (off == size)
                shutdown(sv[1], SHUT_WR);
        } else if (round == 0) {
            shutdown(sv[1], SHUT_WR);
        } else {
            after++;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        drain(sv[1]);
    }
    mc_http_close_all(&reg);
    event_base_loop(base, EVLOOP_NONBLOCK);   /* let freed bufferevents finalize */
    close(sv[1]);
    if (atomic_load(&open) != 0)           /* every connection gave its place back */
        abort();
    return 0;
}
