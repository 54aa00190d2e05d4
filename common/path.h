/* path.h — request paths: normalising for cache keys, decoding for files.
 *
 * The edge normalises the viewer's path once (mc_path_normalize) and uses the
 * result both as the cache key and as the path it sends upstream, so what is
 * cached is what was fetched. The origin decodes (mc_path_decode) to map a
 * path onto a file and then checks containment itself.
 */
#ifndef MC_PATH_H
#define MC_PATH_H

#include <stddef.h>
#include "common/buf.h"

/* Normalise an origin-form path (no query): must start with '/'; percent
 * escapes of unreserved characters are decoded, other escapes upper-cased;
 * bytes outside the RFC 3986 path set are percent-encoded; dot segments are
 * removed (RFC 3986 5.2.4) including encoded ones ("%2e%2E"). A segment
 * that would climb above the root is dropped.
 * Returns 0, or MC_E_INVAL (no leading '/', bad escape, %00, control byte). */
int mc_path_normalize(const char *in, size_t len, mc_buf *out);

/* Percent-decode fully. Returns 0, or MC_E_INVAL for a bad escape or a
 * decoded NUL. ("+" is not a space in paths.) */
int mc_path_decode(const char *in, size_t len, mc_buf *out);

#endif
