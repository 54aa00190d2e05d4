/* mime.h — Content-Type by file extension, 3D formats first.
 * .glb model/gltf-binary, .gltf model/gltf+json, .bin application/octet-stream,
 * .png image/png, .jpg/.jpeg image/jpeg, .ktx2 image/ktx2, .webp, .obj, .mtl,
 * .stl, .ply, .usdz, .drc, .basis, .fbx, .json, .html, .txt, .js/.mjs ...
 * (.drc, .basis and .fbx have no registered type: application/octet-stream.)
 * Unknown: application/octet-stream. Case-insensitive. Returns a static string. */
#ifndef MC_MIME_H
#define MC_MIME_H

const char *mc_mime_for_path(const char *path);

#endif
