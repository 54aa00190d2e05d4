/* s3xml.c — see s3xml.h. Codes and messages are S3's own (the "Error
 * Responses" page of the S3 API reference), so SDKs classify them right. */
#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include "common/err.h"
#include "origin/s3xml.h"

static const mc_s3_error_info errors[MC_S3_ERROR_COUNT] = {
    [MC_S3_ACCESS_DENIED] = {403, "AccessDenied", "Access Denied"},
    [MC_S3_REQUEST_EXPIRED] = {403, "AccessDenied", "Request has expired"},
    [MC_S3_INVALID_ACCESS_KEY_ID] = {403, "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records."},
    [MC_S3_SIGNATURE_DOES_NOT_MATCH] = {403, "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."},
    [MC_S3_REQUEST_TIME_TOO_SKEWED] = {403, "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large."},
    [MC_S3_AUTH_HEADER_MALFORMED] = {400, "AuthorizationHeaderMalformed",
        "The authorization header is malformed."},
    [MC_S3_INVALID_URI] = {400, "InvalidURI", "Couldn't parse the specified URI."},
    [MC_S3_INVALID_BUCKET_NAME] = {400, "InvalidBucketName", "The specified bucket is not valid."},
    [MC_S3_NO_SUCH_BUCKET] = {404, "NoSuchBucket", "The specified bucket does not exist."},
    [MC_S3_NO_SUCH_KEY] = {404, "NoSuchKey", "The specified key does not exist."},
    [MC_S3_METHOD_NOT_ALLOWED] = {405, "MethodNotAllowed",
        "The specified method is not allowed against this resource."},
    [MC_S3_PRECONDITION_FAILED] = {412, "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold"},
    [MC_S3_INVALID_RANGE] = {416, "InvalidRange", "The requested range is not satisfiable"},
    [MC_S3_INTERNAL_ERROR] = {500, "InternalError",
        "We encountered an internal error. Please try again."},
    [MC_S3_NOT_IMPLEMENTED] = {501, "NotImplemented",
        "A header you provided implies functionality that is not implemented."},
    [MC_S3_INVALID_ARGUMENT] = {400, "InvalidArgument", "Invalid Argument"},
    [MC_S3_ENTITY_TOO_LARGE] = {400, "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed object size."},
    [MC_S3_BAD_DIGEST] = {400, "BadDigest",
        "The Content-MD5 you specified did not match what we received."},
    [MC_S3_INVALID_DIGEST] = {400, "InvalidDigest",
        "The Content-MD5 you specified is not valid."},
    [MC_S3_SHA256_MISMATCH] = {400, "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed."},
    [MC_S3_MALFORMED_XML] = {400, "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our "
        "published schema."},
    [MC_S3_INVALID_PART] = {400, "InvalidPart",
        "One or more of the specified parts could not be found. The part might not have "
        "been uploaded, or the specified entity tag might not have matched the part's "
        "entity tag."},
    [MC_S3_INVALID_PART_ORDER] = {400, "InvalidPartOrder",
        "The list of parts was not in ascending order. The parts list must be specified "
        "in order by part number."},
    [MC_S3_NO_SUCH_UPLOAD] = {404, "NoSuchUpload",
        "The specified multipart upload does not exist. The upload ID might be invalid, or "
        "the multipart upload might have been aborted or completed."},
};

const mc_s3_error_info *mc_s3xml_info(mc_s3_error e)
{
    assert(e >= 0 && e < MC_S3_ERROR_COUNT);
    return &errors[e];
}

const char *mc_s3xml_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 412: return "Precondition Failed";
    case 416: return "Range Not Satisfiable";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

void mc_s3xml_request_id(char out[MC_S3_REQID_LEN])
{
    static _Atomic uint64_t counter;
    static _Atomic uint64_t base;
    uint64_t b = atomic_load_explicit(&base, memory_order_relaxed);
    if (b == 0) {
        if (getrandom(&b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b)
            b = (uint64_t)time(NULL) * 2654435761u;
        b |= 1;   /* never 0, so it is drawn once */
        uint64_t expect = 0;
        if (!atomic_compare_exchange_strong(&base, &expect, b))
            b = expect;
    }
    uint64_t n = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    snprintf(out, MC_S3_REQID_LEN, "%016llX", (unsigned long long)(b + n));
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n;
    uint32_t cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xE0) == 0xC0)
        n = 2, cp = p[0] & 0x1F;
    else if ((p[0] & 0xF0) == 0xE0)
        n = 3, cp = p[0] & 0x0F;
    else if ((p[0] & 0xF8) == 0xF0)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

int mc_s3xml_escape(mc_buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    int rc = 0;
    while (*p && rc == 0) {
        size_t n = utf8_len(p);
        if (n > 1) {
            rc = mc_buf_append(out, p, n);
            p += n;
            continue;
        }
        switch (*p) {
        case '&': rc = mc_buf_puts(out, "&amp;"); break;
        case '<': rc = mc_buf_puts(out, "&lt;"); break;
        case '>': rc = mc_buf_puts(out, "&gt;"); break;
        case '"': rc = mc_buf_puts(out, "&quot;"); break;
        case '\'': rc = mc_buf_puts(out, "&apos;"); break;
        default:
            if (n == 0 || (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7f)
                rc = mc_buf_putc(out, '?');
            else
                rc = mc_buf_putc(out, (char)*p);
        }
        p++;
    }
    return rc;
}

int mc_s3xml_body(mc_buf *out, mc_s3_error e, const char *message, const char *resource,
                  const char *request_id)
{
    const mc_s3_error_info *in = mc_s3xml_info(e);
    int rc = mc_buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>");
    if (rc == 0)
        rc = mc_s3xml_escape(out, in->code);
    if (rc == 0)
        rc = mc_buf_puts(out, "</Code><Message>");
    if (rc == 0)
        rc = mc_s3xml_escape(out, message ? message : in->message);
    if (rc == 0)
        rc = mc_buf_puts(out, "</Message><Resource>");
    if (rc == 0)
        rc = mc_s3xml_escape(out, resource);
    if (rc == 0)
        rc = mc_buf_puts(out, "</Resource><RequestId>");
    if (rc == 0)
        rc = mc_s3xml_escape(out, request_id);
    if (rc == 0)
        rc = mc_buf_puts(out, "</RequestId></Error>");
    return rc;
}

size_t mc_s3xml_send(struct evhttp_request *req, mc_s3_error e, const char *message,
                     const char *resource, const char *request_id)
{
    const mc_s3_error_info *in = mc_s3xml_info(e);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, "Content-Type");
    evhttp_add_header(h, "Content-Type", "application/xml");
    evhttp_remove_header(h, "x-amz-request-id");
    evhttp_add_header(h, "x-amz-request-id", request_id);

    size_t sent = 0;
    struct evbuffer *body = evbuffer_new();
    mc_buf xml = MC_BUF_INIT;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD && body &&
        mc_s3xml_body(&xml, e, message, resource, request_id) == 0 &&
        evbuffer_add(body, xml.data, xml.len) == 0)
        sent = xml.len;
    mc_buf_free(&xml);
    evhttp_send_reply(req, in->status, mc_s3xml_reason(in->status), body);
    if (body)
        evbuffer_free(body);
    return sent;
}
