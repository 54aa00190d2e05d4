/* fuzz_config.c — the edge's configuration: the INI reader (inih through
 * common/config.c), every value parser (sizes, durations, addresses, enums,
 * bools) and the edge's own checks ([behavior] rules, origin URL), on the
 * input as an INI file given with --config. The value parsers are also fed
 * the raw input directly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "common/config.h"
#include "common/log.h"
#include "edge/edgecfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mc_log_set_level(MC_LOG_ERROR);
        quiet = 1;
    }
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uint64_t sz;
    int64_t ms;
    bool b;
    char host[256];
    int port;
    (void)mc_parse_size(s, &sz);
    (void)mc_parse_duration_ms(s, &ms);
    (void)mc_parse_bool(s, &b);
    (void)mc_parse_addr(s, host, sizeof host, &port);
    free(s);

    int fd = memfd_create("fuzz.ini", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char *argv[] = {"meshcdn-edge", "--config", path, NULL};
    mc_edge_config cfg;
    memset(&cfg, 0, sizeof cfg);
    mc_err err = {0};
    (void)mc_edge_config_load(&cfg, 3, argv, &err);
    mc_edge_config_free(&cfg);   /* also after a failure: what a half load holds */
    close(fd);
    return 0;
}
