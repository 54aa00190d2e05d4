/* scrape.c — edge /metrics reader; see scrape.h. */
#include "tests/load/scrape.h"

#include "common/buf.h"
#include "common/err.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int mc_scrape_split_url(const char *url, char *host, size_t hostlen, char *port, size_t portlen, char *path,
                        size_t pathlen, const char *default_path)
{
    if (strncmp(url, "http://", 7) != 0)
        return MC_E_INVAL;
    const char *h = url + 7, *hend, *p;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (hend == NULL)
            return MC_E_INVAL;
        h++;
        p = hend + 1;
    } else {
        hend = h + strcspn(h, ":/");
        p = hend;
    }
    if (hend == h || (size_t)(hend - h) >= hostlen || *p != ':')
        return MC_E_INVAL;   /* the port is required: no surprise defaults */
    p++;
    size_t plen = strspn(p, "0123456789");
    if (plen == 0 || plen >= portlen || plen > 5 || atoi(p) > 65535 || (p[plen] && p[plen] != '/'))
        return MC_E_INVAL;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    memcpy(port, p, plen);
    port[plen] = '\0';
    const char *rest = p[plen] ? p + plen : default_path;
    if (strlen(rest) >= pathlen)
        return MC_E_INVAL;
    strcpy(path, rest);
    return 0;
}

void mc_scrape_parse(const char *page, mc_scrape *out)
{
    memset(out, 0, sizeof *out);
    for (const char *l = page; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (*l == '#' || *l == '\n')
            continue;
        const char *eol = strchr(l, '\n');
        size_t len = eol ? (size_t)(eol - l) : strlen(l);
        const char *sp = memrchr(l, ' ', len);
        if (sp == NULL)
            continue;
        double v = strtod(sp + 1, NULL);
        size_t namelen = strcspn(l, "{ ");
        if (namelen == 27 && strncmp(l, "meshcdn_edge_requests_total", 27) == 0) {
            out->requests += v;
            const char *hit = strstr(l, "result=\"hit\"");
            if (hit && hit < sp)
                out->hits += v;
        } else if (namelen == 36 && strncmp(l, "meshcdn_edge_upstream_requests_total", 36) == 0) {
            out->upstream += v;
        } else if (namelen == 29 && strncmp(l, "meshcdn_edge_bytes_sent_total", 29) == 0) {
            out->bytes_sent += v;
        } else if (namelen == 29 && strncmp(l, "meshcdn_edge_store_size_bytes", 29) == 0) {
            out->store_size += v;
        }
    }
}

static int connect_to(const char *host, const char *port, int timeout_ms, char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        return mc_err_why(why, whylen, MC_E_IO, "%s: %s", host, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            mc_err_why(why, whylen, MC_E_IO, "connect %s:%s: %s", host, port, strerror(errno));
            close(fd);
            fd = -1;
        }
    } else {
        mc_err_why(why, whylen, MC_E_IO, "socket: %s", strerror(errno));
    }
    freeaddrinfo(ai);
    return fd < 0 ? MC_E_IO : fd;
}

int mc_scrape_url(const char *url, int timeout_ms, mc_scrape *out, char *why, size_t whylen)
{
    char host[256], port[8], path[1024];
    if (mc_scrape_split_url(url, host, sizeof host, port, sizeof port, path, sizeof path, "/metrics") < 0)
        return mc_err_why(why, whylen, MC_E_INVAL, "%s: not http://HOST:PORT[/PATH]", url);
    int fd = connect_to(host, port, timeout_ms, why, whylen);
    if (fd < 0)
        return fd;
    mc_buf b = MC_BUF_INIT;
    mc_buf_printf(&b, "GET %s HTTP/1.0\r\nHost: %s:%s\r\nConnection: close\r\n\r\n", path, host, port);
    int rc = write(fd, b.data, b.len) == (ssize_t)b.len ? 0 : MC_E_IO;
    mc_buf_reset(&b);
    char chunk[16384];
    for (ssize_t n; rc == 0 && (n = read(fd, chunk, sizeof chunk)) != 0;) {
        if (n < 0 || b.len > (64u << 20))
            rc = MC_E_IO;
        else
            rc = mc_buf_append(&b, chunk, (size_t)n);
    }
    close(fd);
    if (rc < 0) {
        mc_buf_free(&b);
        return mc_err_why(why, whylen, MC_E_IO, "%s: read failed or timed out", url);
    }
    const char *body = b.data ? strstr(b.data, "\r\n\r\n") : NULL;
    if (body == NULL || strncmp(b.data, "HTTP/1.", 7) != 0 || strncmp(b.data + 8, " 200", 4) != 0) {
        rc = mc_err_why(why, whylen, MC_E_INVAL, "%s: not a 200 response", url);
    } else {
        mc_scrape_parse(body + 4, out);
    }
    mc_buf_free(&b);
    return rc;
}
