/* s3xml.h — S3 error responses: status, XML body, x-amz-request-id.
 *
 * Every error the origin returns on its S3 listener looks like S3's:
 *
 *   HTTP/1.1 404 Not Found
 *   Content-Type: application/xml
 *   x-amz-request-id: 5F1C2A9B00000001
 *
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <Error><Code>NoSuchKey</Code><Message>The specified key does not
 *   exist.</Message><Resource>/bucket/key</Resource><RequestId>5F1C2A9B00000001
 *   </RequestId></Error>
 *
 * so S3 SDKs map them onto their usual exceptions. Every text placed in the
 * body is XML-escaped (mc_s3xml_escape); the caller never pre-escapes.
 *
 * Threads: mc_s3xml_send runs on the thread of the evhttp base that owns req;
 * the other functions are pure (mc_s3xml_request_id uses a relaxed atomic).
 * Ownership: nothing returned here needs freeing; mc_s3xml_body appends to
 * the caller's mc_buf.
 * Errors: MC_E_NOMEM from the builders; mc_s3xml_send falls back to an empty
 * body when it cannot allocate (the status still tells the story).
 */
#ifndef MC_S3XML_H
#define MC_S3XML_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"

struct evhttp_request;

/* The S3 errors this origin can return. */
typedef enum mc_s3_error {
    MC_S3_ACCESS_DENIED,            /* 403 AccessDenied */
    MC_S3_REQUEST_EXPIRED,          /* 403 AccessDenied, "Request has expired" */
    MC_S3_INVALID_ACCESS_KEY_ID,    /* 403 InvalidAccessKeyId */
    MC_S3_SIGNATURE_DOES_NOT_MATCH, /* 403 SignatureDoesNotMatch */
    MC_S3_REQUEST_TIME_TOO_SKEWED,  /* 403 RequestTimeTooSkewed */
    MC_S3_AUTH_HEADER_MALFORMED,    /* 400 AuthorizationHeaderMalformed */
    MC_S3_INVALID_URI,              /* 400 InvalidURI */
    MC_S3_INVALID_BUCKET_NAME,      /* 400 InvalidBucketName */
    MC_S3_NO_SUCH_BUCKET,           /* 404 NoSuchBucket */
    MC_S3_NO_SUCH_KEY,              /* 404 NoSuchKey */
    MC_S3_METHOD_NOT_ALLOWED,       /* 405 MethodNotAllowed (caller adds Allow) */
    MC_S3_PRECONDITION_FAILED,      /* 412 PreconditionFailed */
    MC_S3_INVALID_RANGE,            /* 416 InvalidRange (caller adds Content-Range) */
    MC_S3_INTERNAL_ERROR,           /* 500 InternalError */
    MC_S3_NOT_IMPLEMENTED,          /* 501 NotImplemented */
    MC_S3_INVALID_ARGUMENT,         /* 400 InvalidArgument */
    MC_S3_ENTITY_TOO_LARGE,         /* 400 EntityTooLarge */
    MC_S3_BAD_DIGEST,               /* 400 BadDigest (Content-MD5 disagrees) */
    MC_S3_INVALID_DIGEST,           /* 400 InvalidDigest (Content-MD5 unparsable) */
    MC_S3_SHA256_MISMATCH,          /* 400 XAmzContentSHA256Mismatch */
    MC_S3_MALFORMED_XML,            /* 400 MalformedXML */
    MC_S3_INVALID_PART,             /* 400 InvalidPart */
    MC_S3_INVALID_PART_ORDER,       /* 400 InvalidPartOrder */
    MC_S3_NO_SUCH_UPLOAD,           /* 404 NoSuchUpload */
    MC_S3_ERROR_COUNT
} mc_s3_error;

typedef struct mc_s3_error_info {
    int status;            /* HTTP status */
    const char *code;      /* S3 <Code> */
    const char *message;   /* S3's default <Message> */
} mc_s3_error_info;

/* Static description of e (never NULL for a valid e). */
const mc_s3_error_info *mc_s3xml_info(mc_s3_error e);

/* The reason phrase for an HTTP status ("Not Found"); "Unknown" otherwise. */
const char *mc_s3xml_reason(int status);

/* Length of a request id including the NUL: 16 upper-case hex digits. */
#define MC_S3_REQID_LEN 17

/* A fresh request id, unique within this process, hard to guess across
 * restarts (a random base plus a counter). */
void mc_s3xml_request_id(char out[MC_S3_REQID_LEN]);

/* Append s XML-escaped (& < > " '). Control bytes that XML 1.0 cannot carry,
 * and bytes that are not valid UTF-8, become '?'. */
int mc_s3xml_escape(mc_buf *out, const char *s);

/* Append the full error document for e; message NULL means e's default. */
int mc_s3xml_body(mc_buf *out, mc_s3_error e, const char *message, const char *resource,
                  const char *request_id);

/* Send e as the reply to req: status, Content-Type: application/xml,
 * x-amz-request-id, and the body (no body for HEAD, as S3 does). Headers
 * the caller already added to req's output headers (Allow, Content-Range)
 * are kept. Returns the number of body bytes queued. */
size_t mc_s3xml_send(struct evhttp_request *req, mc_s3_error e, const char *message,
                     const char *resource, const char *request_id);

#endif
