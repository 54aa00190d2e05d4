/* test_mesh.c — the edge's glTF validators (edge/mesh.c), run on files the
 * catalog generator writes (valid) and on hand-broken copies, cross-checked
 * with the load tool's independent checker; plus the CORS helpers and the
 * Content-Type fix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <brotli/decode.h>
#include <zlib.h>
#include "common/err.h"
#include "common/mime.h"
#include "edge/edgecfg.h"
#include "edge/fill.h"
#include "edge/mesh.h"
#include "tests/load/gltf.h"


static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 64);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static const mc_gltf_shape shape = {1.0, 0.25, 0.5, {0.05, 0.02}, {2, 5}, {0, 1}, 0.1, 3,
                                    {0.5, 0.25, 0.75, 1}, 0.5, 0.5};
static char dir[PATH_MAX];

/* A valid GLB (JSON + BIN) of about target bytes from the catalog generator. */
static uint8_t *make_glb(uint64_t target, size_t *len)
{
    char path[PATH_MAX + 32], why[256];
    snprintf(path, sizeof path, "%s/m%llu.glb", dir, (unsigned long long)target);
    assert_int_equal(mc_gltf_write_glb(path, "vase", &shape, target, NULL, why, sizeof why), 0);
    uint8_t *b = slurp(path, len);
    unlink(path);
    return b;
}

static uint8_t *make_gltf(size_t *len)
{
    char g[PATH_MAX + 32], bin[PATH_MAX + 32], why[256];
    snprintf(g, sizeof g, "%s/m.gltf", dir);
    snprintf(bin, sizeof bin, "%s/m.bin", dir);
    assert_int_equal(mc_gltf_write_gltf(g, bin, "vase", "m.bin", "m.png", &shape, 40000, NULL, why, sizeof why), 0);
    uint8_t *b = slurp(g, len);
    unlink(g);
    unlink(bin);
    return b;
}

/* The verdict fed whole, and fed in pieces of every size 1..7 (the edge
 * sees the body in arbitrary pieces): all must agree. */
static int verdict(mc_mesh_format fmt, const uint8_t *p, size_t len, const char **why)
{
    int whole = fmt == MC_MESH_GLB ? mc_mesh_glb_validate(p, len, why) : mc_mesh_gltf_validate(p, len, why);
    for (size_t step = 1; step <= 7; step++) {
        mc_mesh_check c;
        const char *w2;
        mc_mesh_check_init(&c, fmt);
        for (size_t off = 0; off < len; off += step)
            mc_mesh_check_feed(&c, p + off, len - off < step ? len - off : step);
        assert_int_equal(mc_mesh_check_finish(&c, &w2), whole);
    }
    return whole;
}

static void glb_valid(void **state)
{
    (void)state;
    uint64_t sizes[] = {2000, 20000, 300000};
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        uint8_t *b = make_glb(sizes[i], &len);
        const char *why = "x";
        char w[256];
        assert_int_equal(mc_gltf_check_glb(b, len, w, sizeof w), 0);
        assert_int_equal(verdict(MC_MESH_GLB, b, len, &why), MC_MESH_VALID);
        assert_null(why);
        free(b);
    }
}

typedef enum {
    M_TRUNC_4, M_TRUNC_HEADER, M_TRUNC_HALF, M_EMPTY, M_MAGIC, M_VERSION, M_LEN_PLUS, M_LEN_MINUS, M_LEN_HUGE,
    M_JSON_LEN_OVERFLOW, M_BIN_LEN_OVERFLOW, M_JSON_UNALIGNED, M_FIRST_NOT_JSON, M_BAD_JSON, M_NO_VERSION,
    M_NO_BIN, M_BIN_SHORT, M_TRAILING, M_COUNT
} mutation;

/* Applies m to a GLB of len bytes (the buffer has room for 64 more). */
static size_t mutate(uint8_t *p, size_t len, mutation m)
{
    uint32_t jlen = le32(p + 12);
    uint8_t *json = p + 20, *bin = p + 20 + jlen;
    char *s;
    switch (m) {
    case M_TRUNC_4: return len - 4;                       /* a cut transfer */
    case M_TRUNC_HEADER: return 11;
    case M_TRUNC_HALF: return len / 2;
    case M_EMPTY: return 0;
    case M_MAGIC: p[0] = 'G'; break;
    case M_VERSION: put_le32(p + 4, 1); break;
    case M_LEN_PLUS: put_le32(p + 8, (uint32_t)len + 4); break;
    case M_LEN_MINUS: put_le32(p + 8, (uint32_t)len - 4); break;
    case M_LEN_HUGE: put_le32(p + 8, 0xFFFFFFFCu); break;
    case M_JSON_LEN_OVERFLOW: put_le32(p + 12, 0xFFFFFFF8u); break;   /* 20 + len wraps in 32 bits */
    case M_BIN_LEN_OVERFLOW: put_le32(bin, 0xFFFFFFF0u); break;
    case M_JSON_UNALIGNED: {
        /* JSON chunk 2 bytes shorter (its padding), the BIN header moved up:
         * the lengths still add up, only the alignment is wrong */
        memmove(json + jlen - 2, json + jlen, len - 20 - jlen);
        put_le32(p + 12, jlen - 2);
        put_le32(p + 8, (uint32_t)len - 2);
        return len - 2;
    }
    case M_FIRST_NOT_JSON: put_le32(p + 16, 0x004E4942u); break;
    case M_BAD_JSON: json[0] = '['; break;
    case M_NO_VERSION:
        s = memmem(json, jlen, "\"version\"", 9);
        assert_non_null(s);
        s[1] = 'V';
        break;
    case M_NO_BIN:                                           /* buffers[0] has no uri: BIN needed */
        put_le32(p + 8, 20 + jlen);
        return 20 + jlen;
    case M_BIN_SHORT: {                                      /* BIN 8 bytes short of byteLength */
        uint32_t bl = le32(bin);
        put_le32(bin, bl - 8);
        put_le32(p + 8, (uint32_t)len - 8);
        return len - 8;
    }
    case M_TRAILING:                                         /* bytes after the declared end */
        memset(p + len, 0, 8);
        return len + 8;
    case M_COUNT: break;
    }
    return len;
}

static void glb_broken(void **state)
{
    (void)state;
    size_t len;
    uint8_t *orig = make_glb(20000, &len);
    for (int m = 0; m < M_COUNT; m++) {
        uint8_t *p = malloc(len + 64);
        assert_non_null(p);
        memcpy(p, orig, len);
        size_t n = mutate(p, len, (mutation)m);
        const char *why = NULL;
        char w[256];
        int v = verdict(MC_MESH_GLB, p, n, &why);
        if (v != MC_MESH_INVALID || !why)
            fail_msg("mutation %d: verdict %d", m, v);
        /* the load tool's independent checker agrees it is broken */
        if (mc_gltf_check_glb(p, n, w, sizeof w) == 0)
            fail_msg("mutation %d: the reference checker accepts it", m);
        free(p);
    }
    free(orig);
}

/* Random damage (bytes overwritten in the header, chunk headers and JSON,
 * or the body cut) fed in random pieces: never a crash or an over-read
 * (ASan), and never a refusal of what the load tool's checker accepts. */
static void glb_random_damage(void **state)
{
    (void)state;
    size_t len;
    uint8_t *orig = make_glb(6000, &len);
    uint32_t jlen = le32(orig + 12);
    srand(11);
    int refused = 0;
    for (int it = 0; it < 3000; it++) {
        uint8_t *p = malloc(len);
        assert_non_null(p);
        memcpy(p, orig, len);
        size_t n = len;
        int hits = 1 + rand() % 3;
        for (int k = 0; k < hits; k++) {
            size_t at = (size_t)rand() % (28 + jlen);   /* headers and JSON */
            p[at] = (uint8_t)(rand() % 4 ? rand() : p[at] ^ 1);
        }
        if (rand() % 4 == 0)
            n = (size_t)rand() % len;
        mc_mesh_check c;
        const char *why;
        mc_mesh_check_init(&c, MC_MESH_GLB);
        for (size_t off = 0; off < n;) {
            size_t step = 1 + (size_t)rand() % 97;
            if (step > n - off)
                step = n - off;
            mc_mesh_check_feed(&c, p + off, step);
            off += step;
        }
        int v = mc_mesh_check_finish(&c, &why);
        assert_int_equal(v, mc_mesh_glb_validate(p, n, &why));
        char w[256];
        if (mc_gltf_check_glb(p, n, w, sizeof w) == 0 && v != MC_MESH_VALID)
            fail_msg("iteration %d: refused (%s) what the reference accepts", it, why);
        refused += v == MC_MESH_INVALID;
        free(p);
    }
    assert_true(refused > 1000);   /* the damage mostly breaks it */
    free(orig);
}

static void glb_without_bin(void **state)
{
    (void)state;
    /* a GLB whose buffers have a uri (or none) needs no BIN chunk */
    const char *js = "{\"asset\":{\"version\":\"2.0\"},\"buffers\":[{\"uri\":\"x.bin\",\"byteLength\":4}]}";
    size_t jl = strlen(js), pad = (4 - jl % 4) % 4, total = 20 + jl + pad;
    uint8_t *p = calloc(1, total);
    memcpy(p, "glTF", 4);
    put_le32(p + 4, 2);
    put_le32(p + 8, (uint32_t)total);
    put_le32(p + 12, (uint32_t)(jl + pad));
    put_le32(p + 16, 0x4E4F534Au);
    memcpy(p + 20, js, jl);
    memset(p + 20 + jl, ' ', pad);
    const char *why;
    assert_int_equal(verdict(MC_MESH_GLB, p, total, &why), MC_MESH_VALID);
    /* the same with an embedded buffer (no uri): BIN chunk missing */
    free(p);
    js = "{\"asset\":{\"version\":\"2.0\"},\"buffers\":[{\"byteLength\":4}]}";
    jl = strlen(js), pad = (4 - jl % 4) % 4, total = 20 + jl + pad;
    p = calloc(1, total);
    memcpy(p, "glTF", 4);
    put_le32(p + 4, 2);
    put_le32(p + 8, (uint32_t)total);
    put_le32(p + 12, (uint32_t)(jl + pad));
    put_le32(p + 16, 0x4E4F534Au);
    memcpy(p + 20, js, jl);
    memset(p + 20 + jl, ' ', pad);
    assert_int_equal(verdict(MC_MESH_GLB, p, total, &why), MC_MESH_INVALID);
    assert_string_equal(why, "BIN chunk missing");
    free(p);
}

static void gltf_cases(void **state)
{
    (void)state;
    size_t len;
    uint8_t *g = make_gltf(&len);
    const char *why;
    assert_int_equal(verdict(MC_MESH_GLTF, g, len, &why), MC_MESH_VALID);
    size_t body = len;
    while (body && (g[body - 1] == '\n' || g[body - 1] == ' '))
        body--;                                           /* trailing white space is not content */
    for (size_t cut = 1; cut < body; cut += body / 7 + 1)   /* truncated JSON */
        assert_int_equal(verdict(MC_MESH_GLTF, g, body - cut, &why), MC_MESH_INVALID);
    free(g);
    const char *bad[] = {"", "[]", "{}", "{\"asset\":{}}", "{\"asset\":{\"version\":2}}", "{\"asset\":\"2.0\"}",
                         "garbage", "{\"asset\":{\"version\":\"2.0\"}} trailing"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (verdict(MC_MESH_GLTF, (const uint8_t *)bad[i], strlen(bad[i]), &why) != MC_MESH_INVALID)
            fail_msg("accepted %s", bad[i]);
    const char *ok = "{\"asset\":{\"version\":\"2.0\"}}\n";
    assert_int_equal(verdict(MC_MESH_GLTF, (const uint8_t *)ok, strlen(ok), &why), MC_MESH_VALID);
    /* the JSON grammar, which the checker streams without keeping the text */
    const char *more_bad[] = {
        "{\"asset\":{\"version\":\"2.0\"},}", "{\"asset\":{\"version\":\"2.0\"}", "{\"asset\":{\"version\":\"2.0\"}]",
        "{\"asset\":{\"version\":\"2.0\"},\"a\":[1,]}", "{\"asset\":{\"version\":\"2.0\"},\"a\":01}",
        "{\"asset\":{\"version\":\"2.0\"},\"a\":1.}", "{\"asset\":{\"version\":\"2.0\"},\"a\":-}",
        "{\"asset\":{\"version\":\"2.0\"},\"a\":1e}", "{\"asset\":{\"version\":\"2.0\"},\"a\":tru}",
        "{\"asset\":{\"version\":\"2.0\"},\"a\":\"\\x\"}", "{\"asset\":{\"version\":\"2.0\"},\"a\":\"\\u12g4\"}",
        "{\"asset\":{\"version\":\"2.0\"},\"a\":\"tab\there\"}", "{\"asset\":{\"version\":\"2.0\"} \"b\":1}",
        "{\"asset\":{\"version\":\"2.0\"},\"a\" 1}", "{'asset':1}", "{\"asset\":{\"extras\":{\"version\":\"2\"}}}",
    };
    for (size_t i = 0; i < sizeof more_bad / sizeof more_bad[0]; i++)
        if (verdict(MC_MESH_GLTF, (const uint8_t *)more_bad[i], strlen(more_bad[i]), &why) != MC_MESH_INVALID)
            fail_msg("accepted %s", more_bad[i]);
    const char *good[] = {
        "{\"asset\":{\"version\":\"2.0\"},\"a\":[],\"b\":{},\"c\":[-0.5e+3,0,1E2,true,false,null,\"\\u00e9\\n\"]}",
        " \r\n{ \"x\" : [ [ [ ] ] ] , \"asset\" : { \"generator\" : \"\\\"q\\\"\" , \"version\" : \"2.0\" } } \n",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (verdict(MC_MESH_GLTF, (const uint8_t *)good[i], strlen(good[i]), &why) != MC_MESH_VALID)
            fail_msg("refused %s: %s", good[i], why);
    /* nesting deeper than the checker's stack is refused, not overflowed */
    char deep[300];
    int n = snprintf(deep, sizeof deep, "{\"asset\":{\"version\":\"2.0\"},\"d\":");
    for (int k = 0; k < 100; k++)
        deep[n++] = '[';
    for (int k = 0; k < 100; k++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_int_equal(verdict(MC_MESH_GLTF, (const uint8_t *)deep, (size_t)n, &why), MC_MESH_INVALID);
}

static void formats(void **state)
{
    (void)state;
    assert_int_equal(mc_mesh_format_of("model/gltf-binary", "/x"), MC_MESH_GLB);
    assert_int_equal(mc_mesh_format_of("Model/GLTF+JSON; charset=utf-8", "/x.glb"), MC_MESH_GLTF);
    assert_int_equal(mc_mesh_format_of("application/octet-stream", "/a/b.GLB?v=1"), MC_MESH_GLB);
    assert_int_equal(mc_mesh_format_of(NULL, "/a/b.gltf"), MC_MESH_GLTF);
    assert_int_equal(mc_mesh_format_of("image/png", "/a/b.glb"), MC_MESH_NONE);
    assert_int_equal(mc_mesh_format_of(NULL, "/a/.glb"), MC_MESH_NONE);
    assert_int_equal(mc_mesh_format_of(NULL, "/a/b.bin"), MC_MESH_NONE);
    assert_string_equal(mc_mime_for_path("/x/app.mjs"), "text/javascript");
    assert_string_equal(mc_mime_for_path("/x/m.KTX2"), "image/ktx2");
    assert_string_equal(mc_fill_fix_type(NULL, "/m/a.glb?x=1"), "model/gltf-binary");
    assert_string_equal(mc_fill_fix_type("application/octet-stream", "/m/a.stl"), "model/stl");
    assert_string_equal(mc_fill_fix_type("application/octet-stream; q=1", "/m/a.obj"), "model/obj");
    assert_null(mc_fill_fix_type("application/octet-streamx", "/m/a.obj"));
    assert_null(mc_fill_fix_type("text/plain", "/m/a.glb"));
    assert_null(mc_fill_fix_type(NULL, "/m/a.bin"));        /* nothing better known */
    assert_null(mc_fill_fix_type(NULL, "/m/a.glb.tmp"));
}

static void encodings(void **state)
{
    (void)state;
    const char *yes[] = {"gzip", "GZIP", "br, gzip", "gzip;q=0.5", "x-gzip", "*", "deflate, *;q=0.1", "gzip ; q=1"};
    const char *no[] = {"", "br", "identity", "gzip;q=0", "gzip;q=0.000", "*;q=0", "gzip;q=0, *", "gzipx", "deflate"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!mc_mesh_accepts_gzip(yes[i]))
            fail_msg("%s should accept gzip", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (mc_mesh_accepts_gzip(no[i]))
            fail_msg("%s should not accept gzip", no[i]);
    assert_false(mc_mesh_accepts_gzip(NULL));
    assert_true(mc_mesh_compressible("model/gltf+json"));
    assert_true(mc_mesh_compressible("application/json; charset=utf-8"));
    assert_true(mc_mesh_compressible("text/plain"));
    assert_true(mc_mesh_compressible("model/obj"));
    assert_false(mc_mesh_compressible("model/gltf-binary"));
    assert_false(mc_mesh_compressible("image/png"));
    assert_false(mc_mesh_compressible(NULL));
    mc_buf b = MC_BUF_INIT;
    mc_buf_puts(&b, "Host: x\r\nAccept-Encoding: br, GZIP\r\nAccept: */*\r\n");
    assert_int_equal(mc_mesh_ae_normalise(&b, MC_MESH_COMPRESS_GZIP, NULL), 0);
    assert_string_equal(b.data, "Host: x\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n");
    mc_buf_free(&b);
    int enc = -1;
    mc_buf_puts(&b, "Host: x\r\naccept-encoding: gzip, br\r\n");
    assert_int_equal(mc_mesh_ae_normalise(&b, MC_MESH_COMPRESS_GZIP | MC_MESH_COMPRESS_BR, &enc), 0);
    assert_string_equal(b.data, "Host: x\r\nAccept-Encoding: br\r\n");
    assert_int_equal(enc, MC_MESH_ENC_BR);
    mc_buf_free(&b);
    mc_buf_puts(&b, "Host: x\r\n");
    assert_int_equal(mc_mesh_ae_normalise(&b, MC_MESH_COMPRESS_GZIP | MC_MESH_COMPRESS_BR, &enc), 0);
    assert_string_equal(b.data, "Host: x\r\nAccept-Encoding: identity\r\n");
    assert_int_equal(enc, MC_MESH_ENC_IDENTITY);
    mc_buf_free(&b);
}

/* Accept-Encoding -> the one encoding served, for compress = br gzip and
 * for compress = gzip. */
static void negotiation(void **state)
{
    (void)state;
    const unsigned both = MC_MESH_COMPRESS_BR | MC_MESH_COMPRESS_GZIP, gz = MC_MESH_COMPRESS_GZIP;
    static const struct {
        const char *ae;
        int with_both, with_gzip;
    } cases[] = {
        {NULL, MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        {"", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        {"gzip, deflate, br", MC_MESH_ENC_BR, MC_MESH_ENC_GZIP},
        {"br", MC_MESH_ENC_BR, MC_MESH_ENC_IDENTITY},
        {"BR", MC_MESH_ENC_BR, MC_MESH_ENC_IDENTITY},
        {"gzip", MC_MESH_ENC_GZIP, MC_MESH_ENC_GZIP},
        {"x-gzip", MC_MESH_ENC_GZIP, MC_MESH_ENC_GZIP},
        {"identity", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        {"deflate", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        /* q-values: any q > 0 accepts; server preference br > gzip */
        {"gzip;q=1.0, br;q=0.1", MC_MESH_ENC_BR, MC_MESH_ENC_GZIP},
        {"br;q=0.001", MC_MESH_ENC_BR, MC_MESH_ENC_IDENTITY},
        {"br;q=0, gzip", MC_MESH_ENC_GZIP, MC_MESH_ENC_GZIP},
        {"br;q=0.000, gzip;q=0.5", MC_MESH_ENC_GZIP, MC_MESH_ENC_GZIP},
        {"br;q=0., gzip;q=0", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        {"br;Q=0, GZIP;Q=0.8", MC_MESH_ENC_GZIP, MC_MESH_ENC_GZIP},
        {"br;q=0.01", MC_MESH_ENC_BR, MC_MESH_ENC_IDENTITY},
        /* "*": every coding not named */
        {"*", MC_MESH_ENC_BR, MC_MESH_ENC_GZIP},
        {"*;q=0.5", MC_MESH_ENC_BR, MC_MESH_ENC_GZIP},
        {"*;q=0", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        {"br;q=0, *", MC_MESH_ENC_GZIP, MC_MESH_ENC_GZIP},
        {"*, gzip;q=0", MC_MESH_ENC_BR, MC_MESH_ENC_IDENTITY},
        {"*;q=0, br", MC_MESH_ENC_BR, MC_MESH_ENC_IDENTITY},
        /* identity;q=0: a coding the viewer accepts, else identity anyway */
        {"identity;q=0", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        {"identity;q=0, gzip", MC_MESH_ENC_GZIP, MC_MESH_ENC_GZIP},
        {"identity;q=0, *", MC_MESH_ENC_BR, MC_MESH_ENC_GZIP},
        /* odd whitespace, case, empty members, other parameters */
        {"  Br ;  q=1 ,\tGzip", MC_MESH_ENC_BR, MC_MESH_ENC_GZIP},
        {"br\t;\tq=0\t, gzip", MC_MESH_ENC_GZIP, MC_MESH_ENC_GZIP},
        {",, ,br,,", MC_MESH_ENC_BR, MC_MESH_ENC_IDENTITY},
        {"br;level=3;q=0", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        {"br ; q=0 , gzip ; q=0", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        /* names are whole tokens */
        {"brotli, gzipx, xbr", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
        {"br2", MC_MESH_ENC_IDENTITY, MC_MESH_ENC_IDENTITY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int a = mc_mesh_ae_pick(cases[i].ae, both), g = mc_mesh_ae_pick(cases[i].ae, gz);
        if (a != cases[i].with_both || g != cases[i].with_gzip)
            fail_msg("\"%s\": br gzip -> %s (want %s), gzip -> %s (want %s)", cases[i].ae ? cases[i].ae : "(none)",
                     mc_mesh_enc_name(a), mc_mesh_enc_name(cases[i].with_both), mc_mesh_enc_name(g),
                     mc_mesh_enc_name(cases[i].with_gzip));
    }
    assert_int_equal(mc_mesh_ae_pick("br, gzip", 0), MC_MESH_ENC_IDENTITY);   /* compress = off */
    assert_int_equal(mc_mesh_ae_pick("br, gzip", MC_MESH_COMPRESS_BR), MC_MESH_ENC_BR);
    assert_int_equal(mc_mesh_ae_pick("gzip", MC_MESH_COMPRESS_BR), MC_MESH_ENC_IDENTITY);
    /* every spelling lands on one of three Vary values */
    mc_buf b = MC_BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].ae)
            mc_buf_printf(&b, "Accept-Encoding: %s\r\n", cases[i].ae);
        mc_buf_puts(&b, "Host: h\r\n");
        assert_int_equal(mc_mesh_ae_normalise(&b, both, NULL), 0);
        char want[64];
        snprintf(want, sizeof want, "Host: h\r\nAccept-Encoding: %s\r\n", mc_mesh_enc_name(cases[i].with_both));
        assert_string_equal(b.data, want);
        mc_buf_free(&b);
    }
    unsigned set = 99;
    assert_int_equal(mc_mesh_compress_parse("br gzip", &set), 0);
    assert_int_equal(set, both);
    assert_int_equal(mc_mesh_compress_parse("gzip,br", &set), 0);
    assert_int_equal(set, both);
    assert_int_equal(mc_mesh_compress_parse("gzip", &set), 0);
    assert_int_equal(set, gz);
    assert_int_equal(mc_mesh_compress_parse("off", &set), 0);
    assert_int_equal(set, 0);
    assert_int_equal(mc_mesh_compress_parse("br deflate", &set), -1);
    assert_int_equal(mc_mesh_compress_parse("off gzip", &set), -1);
    assert_int_equal(mc_mesh_compress_parse("", &set), -1);
}

static void collect(void *arg, const void *data, size_t len)
{
    mc_buf_append(arg, data, len);
}

/* The streaming encoders give back the bytes fed, fed in pieces. */
static void encoders(void **state)
{
    (void)state;
    mc_buf text = MC_BUF_INIT;
    mc_buf_puts(&text, "{\"asset\":{\"version\":\"2.0\"},\"nodes\":[");
    for (int i = 0; i < 5000; i++)
        mc_buf_printf(&text, "%s{\"name\":\"node-%d\",\"mesh\":%d}", i ? "," : "", i, i % 7);
    mc_buf_puts(&text, "]}");
    for (int enc = MC_MESH_ENC_IDENTITY; enc <= MC_MESH_ENC_BR; enc++) {
        mc_mesh_encoder e;
        mc_buf out = MC_BUF_INIT;
        assert_int_equal(mc_mesh_encoder_init(&e, enc, enc == MC_MESH_ENC_BR ? (int64_t)text.len : -1), 0);
        for (size_t off = 0; off < text.len; off += 7777) {
            size_t n = text.len - off < 7777 ? text.len - off : 7777;
            assert_int_equal(mc_mesh_encoder_feed(&e, text.data + off, n, 0, collect, &out), 0);
        }
        assert_int_equal(mc_mesh_encoder_feed(&e, "", 0, 1, collect, &out), 0);
        assert_int_equal(mc_mesh_encoder_feed(&e, "x", 1, 0, collect, &out), MC_E_STATE);   /* finished */
        mc_mesh_encoder_free(&e);
        size_t dlen = text.len + 16;
        uint8_t *dec = malloc(dlen);
        assert_non_null(dec);
        if (enc == MC_MESH_ENC_IDENTITY) {
            assert_int_equal(out.len, text.len);
            memcpy(dec, out.data, out.len);
            dlen = out.len;
        } else if (enc == MC_MESH_ENC_GZIP) {
            assert_true(out.len > 2 && (uint8_t)out.data[0] == 0x1f && (uint8_t)out.data[1] == 0x8b);
            z_stream z = {0};
            assert_int_equal(inflateInit2(&z, 16 + 15), Z_OK);
            z.next_in = (Bytef *)out.data;
            z.avail_in = (uInt)out.len;
            z.next_out = dec;
            z.avail_out = (uInt)dlen;
            assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
            dlen = z.total_out;
            inflateEnd(&z);
        } else {
            assert_int_equal(BrotliDecoderDecompress(out.len, (const uint8_t *)out.data, &dlen, dec),
                             BROTLI_DECODER_RESULT_SUCCESS);
        }
        assert_int_equal(dlen, text.len);
        assert_memory_equal(dec, text.data, text.len);
        if (enc != MC_MESH_ENC_IDENTITY)
            assert_true(out.len < text.len / 8);
        free(dec);
        mc_buf_free(&out);
    }
    mc_buf_free(&text);
}

static void cors(void **state)
{
    (void)state;
    assert_string_equal(mc_mesh_cors_allow("*", "https://a.example"), "*");
    assert_string_equal(mc_mesh_cors_allow("https://a.example, https://b.example", "https://b.example"),
                        "https://b.example");
    assert_null(mc_mesh_cors_allow("https://a.example https://b.example", "https://b.example.evil"));
    assert_null(mc_mesh_cors_allow("https://a.example", "https://a.exampl"));
    assert_null(mc_mesh_cors_allow("https://a.example", NULL));
    mc_cache_policy p;
    memset(&p, 0, sizeof p);
    snprintf(p.cors_origins, sizeof p.cors_origins, "https://a.example");
    snprintf(p.cors_methods, sizeof p.cors_methods, "GET, HEAD");
    snprintf(p.cors_headers, sizeof p.cors_headers, "Range");
    p.cors_max_age_s = 600;
    mc_buf b = MC_BUF_INIT;
    assert_int_equal(mc_mesh_cors_preflight(&p, "https://a.example", "GET", "range", &b), 1);
    assert_non_null(strstr(b.data, "Access-Control-Allow-Origin: https://a.example\r\n"));
    assert_non_null(strstr(b.data, "Access-Control-Allow-Methods: GET, HEAD\r\n"));
    assert_non_null(strstr(b.data, "Access-Control-Max-Age: 600\r\n"));
    mc_buf_free(&b);
    assert_int_equal(mc_mesh_cors_preflight(&p, "https://a.example", "PUT", NULL, &b), 0);
    mc_buf_free(&b);
    assert_int_equal(mc_mesh_cors_preflight(&p, "https://a.example", "GET", "x-secret", &b), 0);
    assert_null(strstr(b.data, "Allow-Origin"));
    mc_buf_free(&b);
    assert_int_equal(mc_mesh_cors_preflight(&p, "https://c.example", "GET", NULL, &b), 0);
    mc_buf_free(&b);
}

static void config_keys(void **state)
{
    (void)state;
    char *argv[] = {"meshcdn-edge", "--origin", "http://127.0.0.1:1/b", "--origin-sign", "none", NULL};
    mc_edge_config cfg;
    mc_err err;
    assert_int_equal(mc_edge_config_load(&cfg, 5, argv, &err), MC_CONFIG_RUN);
    assert_int_equal(cfg.policy.mesh_validation, MC_MESH_VALIDATION_PASS);   /* the default */
    assert_string_equal(cfg.policy.cors_origins, "");                        /* no CORS unless asked */
    assert_non_null(strstr(cfg.policy.cors_expose, "Cache-Status"));
    assert_int_equal(cfg.policy.compress, 0);                                 /* off by default */
    mc_edge_config_free(&cfg);
    char *argv2[] = {"meshcdn-edge", "--origin", "http://127.0.0.1:1/b", "--origin-sign", "none",
                     "--cache.mesh_validation", "refuse", "--cache.cors_origins", "https://a.example b.example",
                     "--behavior./m/", "cors_origins=* mesh_validation=off cors_max_age=5m compress=gzip",
                     "--behavior./b/", "compress=br,gzip", "--cache.compress", "br gzip", NULL};
    assert_int_equal(mc_edge_config_load(&cfg, 15, argv2, &err), MC_CONFIG_RUN);
    assert_int_equal(cfg.policy.compress, MC_MESH_COMPRESS_BR | MC_MESH_COMPRESS_GZIP);
    assert_int_equal(mc_edge_policy_for(&cfg, "/m/a.gltf")->compress, MC_MESH_COMPRESS_GZIP);
    assert_int_equal(mc_edge_policy_for(&cfg, "/b/a.gltf")->compress, MC_MESH_COMPRESS_BR | MC_MESH_COMPRESS_GZIP);
    assert_int_equal(cfg.policy.mesh_validation, MC_MESH_VALIDATION_REFUSE);
    const mc_cache_policy *p = mc_edge_policy_for(&cfg, "/m/a.glb");
    assert_string_equal(p->cors_origins, "*");
    assert_int_equal(p->mesh_validation, MC_MESH_VALIDATION_OFF);
    assert_int_equal(p->cors_max_age_s, 300);
    assert_string_equal(mc_edge_policy_for(&cfg, "/x")->cors_origins, "https://a.example b.example");
    mc_edge_config_free(&cfg);
    char *argv3[] = {"meshcdn-edge", "--origin", "http://127.0.0.1:1/b", "--origin-sign", "none",
                     "--cache.compress", "zstd", NULL};
    assert_int_not_equal(mc_edge_config_load(&cfg, 7, argv3, &err), MC_CONFIG_RUN);
    char *argv4[] = {"meshcdn-edge", "--origin", "http://127.0.0.1:1/b", "--origin-sign", "none",
                     "--behavior./m/", "compress=gzip,zstd", NULL};
    assert_int_not_equal(mc_edge_config_load(&cfg, 7, argv4, &err), MC_CONFIG_RUN);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_mesh.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(glb_valid),     cmocka_unit_test(glb_broken), cmocka_unit_test(glb_without_bin), cmocka_unit_test(glb_random_damage),
        cmocka_unit_test(gltf_cases),    cmocka_unit_test(formats),    cmocka_unit_test(cors), cmocka_unit_test(encodings), cmocka_unit_test(negotiation),
        cmocka_unit_test(encoders),      cmocka_unit_test(config_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
