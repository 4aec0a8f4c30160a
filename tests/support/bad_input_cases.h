/*
 * bad_input_cases.h - the HTTP framing, smuggling and bad-input cases of
 * /work/shared/BAD_INPUT.md as tables of raw request bytes with the answer the gateway must give
 * each, one table per family. test_http.c sends them straight to the gateway (whole, one byte
 * per write, as the second request on a keep-alive connection) and checks every answer;
 * test_behind_nginx.c sends the same bytes through nginx and checks that the gateway handled
 * exactly the requests nginx forwarded.
 *
 * The rows are built around tests/fixtures/configs/gateway.json: 64 KiB bodies, 16 KiB / 100
 * header fields, 8 KiB request line; BAD_INPUT_MAX_BODY is that body limit. The tables are
 * read-only and live for the whole program; each comes with its row count (NAME_n).
 */
#ifndef CR_TEST_BAD_INPUT_CASES_H
#define CR_TEST_BAD_INPUT_CASES_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* limits.max_body_bytes of gateway.json, which the limit rows are built around. */
#define BAD_INPUT_MAX_BODY 65536

/* Request pieces. A string literal with its length, for tables whose bytes may hold a NUL. */
#define R(s) s, sizeof(s) - 1
#define HOST "Host: gw.test\r\n"
#define AUTH                                                                                       \
    "X-API-Key: demo-acme-key\r\nX-Dest-Tenant-Name: swift-haul\r\n"                               \
    "Content-Type: application/json\r\n"
#define CANCEL      "POST /v1/order/cancel HTTP/1.1\r\n" HOST AUTH
#define GET_HEALTHZ "GET /healthz HTTP/1.1\r\n" HOST "\r\n"
/* A cancel body that passes validation (58 bytes, 0x3a), and its two halves for chunking. */
#define BODY_OK   "{\"order\":{\"order_number\":\"PO-1\"},\"reason_code\":\"customer\"}"
#define BODY_OK_A "{\"order\":{\"order_number\":\"PO-1\"},"
#define BODY_OK_B "\"reason_code\":\"customer\"}"
_Static_assert(sizeof BODY_OK - 1 == 58, "BODY_OK is 58 bytes");
_Static_assert(sizeof BODY_OK_A - 1 == 33 && sizeof BODY_OK_B - 1 == 25, "halves");

/* Keep-alive: one connection, requests sent one at a time, each answered before the next. */
typedef struct step {
    const char *send;
    int status;
    const char *connection; /* expected Connection header */
} step_t;

typedef struct conversation {
    const char *name;
    step_t steps[3];
    bool closes; /* after the last answer */
} conversation_t;

/* Several requests sent together, answered in order. */
typedef struct pipeline_case {
    const char *name;
    const char *send; /* several requests, sent together */
    size_t chunk;     /* bytes per write, 0 = one write */
    int n;
    int status[4];
    const char *body_has[4]; /* a piece of each response body, proving the order */
} pipeline_case_t;

/* Valid chunked bodies (positive controls; chunk framing errors are frame cases). */
typedef struct body_case {
    const char *name;
    const char *send;
    int status;
} body_case_t;

/* A request the server must refuse with status, then "Connection: close" and a close. */
typedef struct frame_case {
    const char *name;
    const char *req;
    size_t len;
    int status;
} frame_case_t;

/* Limits (header bytes and count, request line, body): bytes made by build. */
typedef struct limit_case {
    const char *name;
    void (*build)(buf_t *req);
    int status;
    bool closes;
    int within_ms; /* the answer comes this soon (without the body being sent), 0: no bound */
} limit_case_t;

/* Routing and media types: answered, and the connection stays open. */
typedef struct route_case {
    const char *name;
    const char *send;
    int status;
    const char *header; /* a header the answer must carry, "Name: value", or NULL */
} route_case_t;

/* The same request in origin-form and absolute-form: the path routes, the authority never. */
typedef struct absform_case {
    const char *name;
    const char *origin;
    const char *absolute;
    int status;
} absform_case_t;

#define TE_CHUNKED "Transfer-Encoding: chunked\r\n\r\n"

extern const conversation_t keepalive_cases[];
extern const size_t keepalive_cases_n;
extern const pipeline_case_t pipeline_cases[];
extern const size_t pipeline_cases_n;
extern const body_case_t chunked_cases[];
extern const size_t chunked_cases_n;
/* Header-block framing: Content-Length / Transfer-Encoding / Host policy, line endings. */
extern const frame_case_t header_framing_cases[];
extern const size_t header_framing_cases_n;
/* Chunk framing: size lines, chunk-data terminators, the last chunk. */
extern const frame_case_t chunk_framing_cases[];
extern const size_t chunk_framing_cases_n;
/* The request line: version, method, target. */
extern const frame_case_t request_line_cases[];
extern const size_t request_line_cases_n;
extern const limit_case_t limit_cases[];
extern const size_t limit_cases_n;
extern const route_case_t route_cases[];
extern const size_t route_cases_n;
extern const absform_case_t absform_cases[];
extern const size_t absform_cases_n;

#endif
