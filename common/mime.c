/* mime.c — see mime.h. */
#include <string.h>
#include <strings.h>
#include "common/mime.h"

static const struct { const char *ext, *type; } types[] = {
    {"glb", "model/gltf-binary"}, {"gltf", "model/gltf+json"},
    {"bin", "application/octet-stream"}, {"png", "image/png"},
    {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"ktx2", "image/ktx2"},
    {"webp", "image/webp"}, {"basis", "application/octet-stream"},
    {"obj", "model/obj"}, {"mtl", "model/mtl"}, {"stl", "model/stl"},
    {"ply", "application/ply"}, {"usdz", "model/vnd.usdz+zip"},
    {"drc", "application/octet-stream"}, {"fbx", "application/octet-stream"},
    {"json", "application/json"}, {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"}, {"txt", "text/plain; charset=utf-8"},
    {"js", "text/javascript"}, {"mjs", "text/javascript"}, {"css", "text/css"}, {"svg", "image/svg+xml"},
    {"xml", "application/xml"},
};

const char *mc_mime_for_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base && dot[1])   /* ".glb" is a dotfile without extension */
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}
