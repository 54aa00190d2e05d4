/* populate.c — fill an edge store with many small objects through the
 * mc_store API (what a fill does, without HTTP), for the warm-restart
 * benchmark (warm-restart.sh).
 *
 *   mc-populate --store DIR --store-size SIZE --count N [--size BYTES] [--prefix /warm/]
 *
 * Object i is PREFIX "obj-%08d.bin", BYTES bytes (default 512), fresh for
 * 30 days, so a later `meshcdn-edge --store DIR --store-size SIZE` serves it
 * as a hit. The store size must leave the eviction index room for N objects
 * (one slot per 32 KiB of store at 70% load: N = 1,000,000 needs 32G; the
 * map is sparse, disk use is what is written). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include "common/metrics.h"
#include "common/hash.h"
#include "common/log.h"
#include "edge/store.h"

static void usage(void)
{
    fprintf(stderr, "usage: mc-populate --store DIR --store-size SIZE --count N [--size BYTES] [--prefix P]\n");
}

static uint64_t parse_size(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 10);
    switch (*end) {
    case 'G': case 'g': return v << 30;
    case 'M': case 'm': return v << 20;
    case 'K': case 'k': return v << 10;
    default: return v;
    }
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *prefix = "/warm/";
    uint64_t size = 0, count = 0, bytes = 512;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--store") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--store-size") == 0)
            size = parse_size(argv[i + 1]);
        else if (strcmp(argv[i], "--count") == 0)
            count = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--size") == 0)
            bytes = parse_size(argv[i + 1]);
        else if (strcmp(argv[i], "--prefix") == 0)
            prefix = argv[i + 1];
        else {
            usage();
            return 2;
        }
    }
    if (!dir || !size || !count || bytes == 0 || bytes > MC_STORE_CHUNK_SIZE) {
        usage();
        return 2;
    }
    mc_log_set_level(MC_LOG_WARN);
    mc_store *s;
    mc_err err = {0};
    mc_store_config cfg = {.dir = dir, .size_bytes = size};
    if (mc_store_open(&s, &cfg, &err) < 0) {
        fprintf(stderr, "mc-populate: %s\n", err.msg);
        return 1;
    }
    unsigned char *body = malloc(bytes);
    char key[256], headers[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < count; i++) {
        snprintf(key, sizeof key, "%sobj-%08llu.bin", prefix, (unsigned long long)i);
        for (uint64_t j = 0; j < bytes; j++)
            body[j] = (unsigned char)(i * 131 + j * 7);
        uint64_t sum = XXH3_64bits(body, bytes);
        snprintf(headers, sizeof headers,
                 "Content-Type: application/octet-stream\r\nCache-Control: max-age=2592000\r\n"
                 "ETag: \"%016llx\"\r\n", (unsigned long long)sum);
        mc_hash128 k = mc_hash_key(key, strlen(key));
        mc_object_meta m = {0};
        m.status = 200;
        m.length = bytes;
        m.chunk_size = MC_STORE_CHUNK_SIZE;
        m.nchunks = 1;
        m.seq = mc_store_next_seq(s);
        m.response_time = (int64_t)time(NULL);
        m.lifetime_s = 2592000;
        m.body_checksum = sum;
        m.key = key;
        m.headers = headers;
        int rc;
        while ((rc = mc_store_put_chunk(s, k, m.seq, 0, body, bytes)) == MC_E_FULL)
            mc_store_flush(s);
        if (rc == 0)
            rc = mc_store_publish(s, k, &m, NULL, NULL);
        if (rc < 0) {
            fprintf(stderr, "mc-populate: object %llu: %s\n", (unsigned long long)i, mc_err_name(rc));
            break;
        }
        if ((i + 1) % 20000 == 0)
            mc_store_flush(s);   /* keeps the queue (and its memory) short */
    }
    mc_store_flush(s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    mc_store_stats *st = mc_store_get_stats(s);
    printf("populated %llu objects (%llu bytes) in %.1f s; evictions %llu, write failures %llu\n",
           (unsigned long long)mc_counter_get(&st->objects), (unsigned long long)mc_counter_get(&st->bytes),
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           (unsigned long long)mc_counter_get(&st->evictions),
           (unsigned long long)mc_counter_get(&st->write_failures));
    mc_store_close(s);
    free(body);
    return 0;
}
