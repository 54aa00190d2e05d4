/* multipart.h — S3 multipart uploads, which every S3 client uses for large
 * files (aws s3 cp above 8 MiB, s3cmd above 15 MiB, boto3 upload_file):
 *
 *   POST   /BUCKET/KEY?uploads                      CreateMultipartUpload
 *   PUT    /BUCKET/KEY?partNumber=N&uploadId=ID     UploadPart (1 <= N <= 10000)
 *   POST   /BUCKET/KEY?uploadId=ID                  CompleteMultipartUpload
 *   DELETE /BUCKET/KEY?uploadId=ID                  AbortMultipartUpload
 *
 * State lives on disk under ROOT/.meshcdn-uploads/ID/ (mode 0700; not a
 * valid bucket name, so never served or listed): "key" holds the decoded
 * "/BUCKET/KEY" the upload was created for (another key with the same ID is
 * NoSuchUpload), and each part is a file named by its zero-padded number,
 * written like a PUT body (temporary + fsync + rename; re-sending a part
 * replaces it). An ID is 32 random hex digits; anything else is NoSuchUpload.
 *
 * Complete reads the part list (PartNumber ascending, else InvalidPartOrder;
 * ETags must equal each part's MD5, else InvalidPart), copies the parts in
 * order into a temporary next to the key while hashing each, and renames it
 * over the key: the object appears whole or not at all. Its ETag is S3's:
 * MD5 of the concatenated binary part MD5s, then "-N". That ETag is returned
 * by Complete; later GET/HEAD/list report the MD5 of the whole content (the
 * origin keeps no per-object metadata), which clients do not check against
 * the multipart form. The minimum part size (5 MiB except the last) is not
 * enforced. ListParts and ListMultipartUploads are 501; an upload that is
 * neither completed nor aborted stays until the operator removes its
 * directory.
 *
 * Synchronous disk work on the loop: Complete copies every part (a 1 GiB
 * object is ~1-2 s of reading, hashing and writing with the loop stalled).
 *
 * Threads: the loop thread that owns req.
 */
#ifndef MC_MULTIPART_H
#define MC_MULTIPART_H

#include <stdint.h>
#include "origin/objects.h"
#include "origin/query.h"
#include "origin/upload.h"

struct evhttp_request;

#define MC_MULTIPART_DIR MC_OBJECTS_RESERVED "uploads"
#define MC_MULTIPART_MAX_PARTS 10000

void mc_multipart_create(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                         const char *request_id, mc_obj_reply *out);
/* The body was checked (mc_upload_check_body) and d describes it. */
void mc_multipart_part(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                       const mc_query *q, const mc_body_digest *d, const char *request_id,
                       mc_obj_reply *out);
void mc_multipart_complete(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                           const mc_query *q, uint64_t max_object_bytes,
                           const char *request_id, mc_obj_reply *out);
void mc_multipart_abort(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                        const mc_query *q, const char *request_id, mc_obj_reply *out);

#endif
