/* gltf.h — glTF 2.0 writers (GLB and .gltf + .bin) sized to a byte target,
 * and structural validators for GLB and .gltf JSON.
 *
 * The writers emit one real mesh: a lathe ("vase", "lamp", "bottle") — a
 * surface of revolution with a wavy, tapered profile and lobes around its
 * axis — tessellated as an nu x nv grid of vertices with analytic unit
 * normals and UVs. The grid is chosen so the output hits the byte target:
 *   GLB:   the .glb file is exactly target bytes (rounded down to 4);
 *   .gltf: the .gltf and .bin files together are exactly target bytes.
 * The small remainder the grid cannot absorb becomes trailing spaces in the
 * JSON (glTF 2.0 section 4.4.3.2 pads the JSON chunk with spaces). A target
 * below what the minimal grid (MC_GLTF_NU_MIN x MC_GLTF_NV_MIN) needs gets
 * the minimal mesh, so the file is larger than the target.
 *
 * Layout: one buffer; bufferView 0 holds interleaved POSITION, NORMAL and,
 * in the textured .gltf only, TEXCOORD_0 (byteStride 32, else 24; target
 * ARRAY_BUFFER); accessors 0 POSITION, 1 NORMAL, 2 TEXCOORD_0 if present,
 * then the indices, which bufferView 1 holds
 * (UNSIGNED_SHORT if every index fits under 65535, else UNSIGNED_INT;
 * target ELEMENT_ARRAY_BUFFER). POSITION min/max are exact float32 values.
 *
 * Writing streams through a 1 MiB buffer: memory is O(nu + nv), not O(size).
 * Output is a pure function of the arguments (no clock, no global state).
 *
 * Errors: every function returns 0 or a negative MC_E_* (common/err.h) and,
 * if why is not NULL, writes a one-line reason into why[whylen]:
 *   MC_E_INVAL      bad arguments (target above MC_GLTF_MAX_BYTES, a name
 *                   that is not printable ASCII), or a malformed file (check)
 *   MC_E_TRUNCATED  check: the data is shorter than the header declares
 *   MC_E_NOMEM      allocation failed
 *   MC_E_IO         creating or writing a file failed (partial files removed)
 * Threads: no shared state; call from any thread.
 */
#ifndef MC_LOAD_GLTF_H
#define MC_LOAD_GLTF_H

#include <stddef.h>
#include <stdint.h>

/* The GLB header stores the total length in 32 bits; keep 4-byte aligned. */
#define MC_GLTF_MAX_BYTES 0xFFFFFFFCull
#define MC_GLTF_NU_MIN 8u  /* vertices around the axis, at least */
#define MC_GLTF_NV_MIN 4u  /* vertex rings along the axis, at least */

/* The lathe surface, in metres, Y up, centred on the origin:
 *   R(v)   = radius_m * (1 - taper*v) * (1 + sum_k wave_amp[k]*sin(2pi*wave_freq[k]*v + wave_phase[k]))
 *   L(u)   = 1 + lobe_amp * cos(lobe_count * u)
 *   P(u,v) = (R(v) L(u) cos u, height_m * (v - 1/2), R(v) L(u) sin u),  u in [0,2pi], v in [0,1]
 * Keep taper <= 0.5, wave_amp[0] + wave_amp[1] <= 0.6 and lobe_amp <= 0.4 so
 * R and L stay positive and normals are defined everywhere. */
typedef struct mc_gltf_shape {
    double height_m;
    double radius_m;
    double taper;
    double wave_amp[2];
    double wave_freq[2];
    double wave_phase[2];
    double lobe_amp;
    uint32_t lobe_count;
    double base_color[4];   /* RGBA in [0,1]; dyadic values print exactly */
    double metallic;
    double roughness;
} mc_gltf_shape;

/* What a writer produced. */
typedef struct mc_gltf_result {
    uint64_t file_bytes;    /* the .glb, or the .gltf JSON file */
    uint64_t bin_bytes;     /* the BIN chunk payload, or the .bin file */
    uint32_t grid_u, grid_v;
    uint32_t vertex_count;
    uint32_t index_count;
    int index_u16;          /* 1: UNSIGNED_SHORT indices, 0: UNSIGNED_INT */
} mc_gltf_result;

/* Write a .glb of target_bytes to path. name (printable ASCII, <= 200
 * bytes) names the node, mesh and material. res may be NULL. */
int mc_gltf_write_glb(const char *path, const char *name, const mc_gltf_shape *shape,
                      uint64_t target_bytes, mc_gltf_result *res,
                      char *why, size_t whylen);

/* Write gltf_path (JSON) and bin_path so that together they are target_bytes.
 * bin_uri and image_uri are the relative names written into buffers[0].uri
 * and images[0].uri (the caller writes the image; it should be power-of-two
 * sized since the sampler asks for mipmaps). res->file_bytes is the .gltf
 * size and res->bin_bytes the .bin size. */
int mc_gltf_write_gltf(const char *gltf_path, const char *bin_path,
                       const char *name, const char *bin_uri, const char *image_uri,
                       const mc_gltf_shape *shape, uint64_t target_bytes,
                       mc_gltf_result *res, char *why, size_t whylen);

/* Structural check of a GLB held in memory (glTF 2.0 section 4.4): the
 * 12-byte header's magic "glTF", version 2 and length agree with len; chunks
 * are 4-byte aligned, the first is JSON, an optional BIN is second, unknown
 * chunk types are skipped, and chunk lengths add up to exactly the total; the
 * JSON chunk parses to an object with asset.version "2.x"; a buffers[0]
 * without uri fits in the BIN chunk. Returns 0, MC_E_TRUNCATED (len shorter
 * than declared) or MC_E_INVAL. Does not read accessors or mesh data. */
int mc_gltf_check_glb(const void *data, size_t len, char *why, size_t whylen);

/* Check of a .gltf JSON document: parses to an object with asset.version
 * "2.x". Returns 0 or MC_E_INVAL. */
int mc_gltf_check_json(const void *data, size_t len, char *why, size_t whylen);

#endif
