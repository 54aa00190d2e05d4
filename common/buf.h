/* buf.h — a growable byte string (owned heap memory, always NUL-terminated).
 *
 * Ownership: the mc_buf owns data; mc_buf_free releases it. An mc_buf that
 * failed an allocation keeps its old contents and returns MC_E_NOMEM.
 */
#ifndef MC_BUF_H
#define MC_BUF_H

#include <stddef.h>

typedef struct mc_buf {
    char *data;   /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
} mc_buf;

#define MC_BUF_INIT {NULL, 0, 0}

int mc_buf_reserve(mc_buf *b, size_t extra);
int mc_buf_append(mc_buf *b, const void *p, size_t n);
int mc_buf_puts(mc_buf *b, const char *s);
int mc_buf_putc(mc_buf *b, char c);
int mc_buf_printf(mc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Decimal v (a hot-path alternative to printf's %lld). */
int mc_buf_put_i64(mc_buf *b, long long v);
/* Decimal v into out (at least 21 bytes), not NUL-terminated; its length. */
size_t mc_fmt_i64(char *out, long long v);
void mc_buf_reset(mc_buf *b);          /* len = 0, keeps capacity */
void mc_buf_free(mc_buf *b);
/* Hand the bytes to the caller (who frees them); b becomes empty. Never NULL
 * on success: an empty buffer yields an allocated "". */
char *mc_buf_steal(mc_buf *b);

/* Lower-case hex of n bytes into out (2n+1 bytes incl. NUL). */
void mc_hex(const unsigned char *in, size_t n, char *out);

#endif
