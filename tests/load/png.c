/* png.c — streaming PNG writer; see png.h. PNG spec: ISO/IEC 15948 (W3C PNG). */
#include "tests/load/png.h"

#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* One IDAT per 64 KiB of deflate output: big enough that chunk overhead is
 * noise, small enough to stay far below any reader's chunk limit. */
#define IDAT_BYTES (64u * 1024u)

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}


/* Writes length, type, data and the CRC over type+data (PNG 5.3). */
static int put_chunk(FILE *f, const char type[4], const uint8_t *data, uint32_t len)
{
    uint8_t head[8], tail[4];
    put_be32(head, len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)type, 4);
    if (len > 0)
        crc = crc32(crc, data, len);
    put_be32(tail, (uint32_t)crc);
    if (fwrite(head, 1, 8, f) != 8)
        return MC_E_IO;
    if (len > 0 && fwrite(data, 1, len, f) != len)
        return MC_E_IO;
    if (fwrite(tail, 1, 4, f) != 4)
        return MC_E_IO;
    return 0;
}

/* Deflates what is in zs->next_in (and finishes when flush == Z_FINISH),
 * emitting an IDAT every time out fills. */
static int pump(FILE *f, z_stream *zs, uint8_t *out, int flush)
{
    for (;;) {
        int zrc = deflate(zs, flush);
        if (zrc == Z_STREAM_ERROR)
            return MC_E_INVAL;
        uint32_t have = IDAT_BYTES - zs->avail_out;
        int full = zs->avail_out == 0;
        if (have > 0 && (full || flush == Z_FINISH)) {
            if (put_chunk(f, "IDAT", out, have) < 0)
                return MC_E_IO;
            zs->next_out = out;
            zs->avail_out = IDAT_BYTES;
        }
        if (flush == Z_FINISH ? zrc == Z_STREAM_END : (!full && zs->avail_in == 0))
            return 0;
    }
}

static int write_body(FILE *f, uint32_t width, uint32_t height, mc_png_row_fn row,
                      void *ctx, uint8_t *line, uint8_t *out)
{
    uint8_t ihdr[13];
    put_be32(ihdr, width);
    put_be32(ihdr + 4, height);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type: truecolour */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    if (fwrite(png_signature, 1, sizeof png_signature, f) != sizeof png_signature)
        return MC_E_IO;
    if (put_chunk(f, "IHDR", ihdr, sizeof ihdr) < 0)
        return MC_E_IO;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit(&zs, Z_DEFAULT_COMPRESSION) != Z_OK)
        return MC_E_NOMEM;
    zs.next_out = out;
    zs.avail_out = IDAT_BYTES;
    int rc = 0;
    size_t line_len = 1 + (size_t)width * 3;
    for (uint32_t y = 0; y < height && rc == 0; y++) {
        line[0] = 0; /* filter type None: procedural images gain little from Sub/Up */
        row(ctx, y, line + 1, width);
        zs.next_in = line;
        zs.avail_in = (uInt)line_len;
        rc = pump(f, &zs, out, Z_NO_FLUSH);
    }
    if (rc == 0)
        rc = pump(f, &zs, out, Z_FINISH);
    deflateEnd(&zs);
    if (rc == 0 && put_chunk(f, "IEND", NULL, 0) < 0)
        rc = MC_E_IO;
    return rc;
}

int mc_png_write_rgb(const char *path, uint32_t width, uint32_t height,
                     mc_png_row_fn row, void *ctx, uint64_t *size_bytes,
                     char *why, size_t whylen)
{
    if (width == 0 || height == 0 || width > MC_PNG_MAX_SIDE || height > MC_PNG_MAX_SIDE)
        return mc_err_why(why, whylen, MC_E_INVAL, "%s: bad PNG dimensions", path);
    uint8_t *line = malloc(1 + (size_t)width * 3);
    uint8_t *out = malloc(IDAT_BYTES);
    FILE *f = NULL;
    int rc;
    if (line == NULL || out == NULL) {
        rc = mc_err_why(why, whylen, MC_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    f = fopen(path, "wb");
    if (f == NULL) {
        rc = mc_err_why(why, whylen, MC_E_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    rc = write_body(f, width, height, row, ctx, line, out);
    long end = rc == 0 ? ftell(f) : -1;
    if (fclose(f) != 0 && rc == 0)
        rc = MC_E_IO;
    if (rc == 0 && end < 0)
        rc = MC_E_IO;
    if (rc < 0) {
        remove(path);
        mc_err_why(why, whylen, rc, "%s: writing the PNG failed", path);
    } else if (size_bytes != NULL) {
        *size_bytes = (uint64_t)end;
    }
done:
    free(line);
    free(out);
    return rc;
}

uint64_t mc_png_size_bound(uint32_t width, uint32_t height)
{
    uint64_t raw = (uint64_t)height * (1 + (uint64_t)width * 3);
    uint64_t z = compressBound((uLong)raw);
    uint64_t idats = z / IDAT_BYTES + 1;
    return sizeof png_signature + 12 + 13 + idats * 12 + z + 12;
}
