/* list.h — the bucket and service level of the S3 API, read-only:
 *
 *   GET  /                        ListBuckets (every directory under the root
 *                                 whose name is a valid bucket name; not
 *                                 symlinks)
 *   HEAD /BUCKET                  HeadBucket: 200, or 404 NoSuchBucket
 *   GET  /BUCKET?location         GetBucketLocation (the signing region)
 *   GET  /BUCKET?list-type=2&...  ListObjectsV2: prefix, delimiter, max-keys
 *                                 (<= 1000), continuation-token, start-after,
 *                                 encoding-type=url, fetch-owner (ignored)
 *   GET  /BUCKET?prefix=...       ListObjects (v1): prefix, delimiter,
 *                                 max-keys, marker (NextMarker when a
 *                                 delimiter is given), encoding-type=url
 *
 * Other bucket sub-resources (acl, versioning, uploads, ...) are 501.
 *
 * What is listed: regular files under ROOT/BUCKET whose every path segment
 * is a storable key segment (objects.h); never symlinks (a link that leads
 * out of the root must not leak its name or size), never the origin's own
 * temporaries or multipart area, never directories (a prefix exists only
 * while a key is under it, as in S3). Keys sort by their bytes (strcmp).
 * A ListObjects ETag is the object's GET ETag (MD5 of the bytes, cached).
 *
 * Synchronous work on the loop: the walk of the directories under the
 * prefix's directory part (readdir + fstatat, only directories that can hold
 * matching keys), a sort of the matching keys, and the ETag of each listed
 * object (an MD5 of each file the first time it is listed or served). At most
 * MC_LIST_MAX_WALK keys are gathered per request (500 InternalError beyond:
 * use a longer prefix). Memory: the gathered keys, freed before replying.
 * Continuation tokens are the hex of the last key (or common prefix)
 * returned, so a page never repeats or skips a key that was not changed.
 *
 * Threads: the loop thread that owns req.
 */
#ifndef MC_LIST_H
#define MC_LIST_H

#include "origin/objects.h"
#include "origin/query.h"

struct evhttp_request;

#define MC_LIST_MAX_WALK 1000000

/* Answer a GET or HEAD of "/", "/BUCKET" or "/BUCKET/" completely. region is
 * what GetBucketLocation reports ("us-east-1" is reported as empty, like S3). */
void mc_list_serve(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                   const mc_query *q, const char *region, const char *request_id,
                   mc_obj_reply *out);

#endif
