/* scrape.h — read an edge's admin /metrics page (Prometheus text) and sum
 * the counters the load report compares against, and the store's size
 * (the cache size for the simulated optimum).
 *
 * mc_scrape_url fetches with one blocking HTTP/1.0 GET (Connection: close)
 * with a timeout; call it outside the hot path (before the run, at the end
 * of the warm-up, after the run). mc_scrape_parse does the summing on a
 * page already in memory (for tests).
 * Errors: MC_E_INVAL bad URL ("http://HOST:PORT[/PATH]", default path
 * /metrics) or a non-200 answer, MC_E_IO connect/read failure or timeout,
 * with a reason in why[whylen].
 * Threads: no shared state. Ownership: plain values.
 */
#ifndef MC_LOAD_SCRAPE_H
#define MC_LOAD_SCRAPE_H

#include <stddef.h>

typedef struct mc_scrape {
    double requests;          /* sum of meshcdn_edge_requests_total */
    double hits;              /* ... with result="hit" */
    double upstream;          /* sum of meshcdn_edge_upstream_requests_total */
    double bytes_sent;        /* meshcdn_edge_bytes_sent_total */
    double store_size;        /* meshcdn_edge_store_size_bytes (a gauge: the configured
                                 store bound; 0 when the page has none) */
} mc_scrape;

void mc_scrape_parse(const char *page, mc_scrape *out);
int mc_scrape_url(const char *url, int timeout_ms, mc_scrape *out, char *why, size_t whylen);

/* Split "http://HOST:PORT/PATH": host (no brackets) and port strings, path
 * (default_path if none). 0 or MC_E_INVAL. Shared with run's --target. */
int mc_scrape_split_url(const char *url, char *host, size_t hostlen, char *port, size_t portlen,
                        char *path, size_t pathlen, const char *default_path);

#endif
