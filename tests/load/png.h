/* png.h — a streaming PNG writer (8-bit RGB, no interlace) for meshcdn-load.
 *
 * The writer pulls one row at a time from a callback and deflates it straight
 * into IDAT chunks, so memory stays at one row plus zlib's window no matter
 * the image size. Output is deterministic: same pixels, same bytes.
 *
 * Errors: functions return 0 or a negative MC_E_* code (common/err.h) and, if
 * why is not NULL, write a one-line reason into why[whylen]:
 *   MC_E_INVAL  width or height is 0 or above MC_PNG_MAX_SIDE
 *   MC_E_NOMEM  allocation failed
 *   MC_E_IO     creating or writing the file failed (the file is removed)
 * Threads: no shared state; call from any thread.
 */
#ifndef MC_LOAD_PNG_H
#define MC_LOAD_PNG_H

#include <stddef.h>
#include <stdint.h>

#define MC_PNG_MAX_SIDE 16384u

/* Fill rgb[0 .. 3*width) with row y (0 = top), R,G,B per pixel. */
typedef void (*mc_png_row_fn)(void *ctx, uint32_t y, uint8_t *rgb, uint32_t width);

/* Write an RGB PNG to path (created or truncated, mode 0644). On success
 * *size_bytes (if not NULL) is the file's length. */
int mc_png_write_rgb(const char *path, uint32_t width, uint32_t height,
                     mc_png_row_fn row, void *ctx, uint64_t *size_bytes,
                     char *why, size_t whylen);

/* An upper bound of the file size mc_png_write_rgb produces for a
 * width x height image, whatever the pixels. */
uint64_t mc_png_size_bound(uint32_t width, uint32_t height);

#endif
