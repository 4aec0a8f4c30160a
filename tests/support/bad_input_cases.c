/*
 * bad_input_cases.c - the tables of bad_input_cases.h: raw request bytes for every family of
 * /work/shared/BAD_INPUT.md and the answer the gateway must give each (see the header).
 */
#include "bad_input_cases.h"

#include <stdbool.h>
#include <stddef.h>

const conversation_t keepalive_cases[] = {
    {"HTTP/1.1: two requests on one connection",
     {{GET_HEALTHZ, 200, "keep-alive"},
      {"GET /readyz HTTP/1.1\r\n" HOST "\r\n", 200, "keep-alive"}},
     false},
    {"HTTP/1.1 with Connection: close",
     {{"GET /healthz HTTP/1.1\r\n" HOST "Connection: close\r\n\r\n", 200, "close"}},
     true},
    {"HTTP/1.0 without keep-alive closes",
     {{"GET /healthz HTTP/1.0\r\n" HOST "\r\n", 200, "close"}},
     true},
    {"HTTP/1.0 with Connection: keep-alive stays open",
     {{"GET /healthz HTTP/1.0\r\n" HOST "Connection: keep-alive\r\n\r\n", 200, "keep-alive"},
      {"GET /healthz HTTP/1.0\r\n" HOST "Connection: keep-alive\r\n\r\n", 200, "keep-alive"}},
     false},
    {"HTTP/1.0 without Host: answered, then closed",
     {{"GET /healthz HTTP/1.0\r\n\r\n", 200, "close"}},
     true},
    {"Upgrade: h2c is answered as HTTP/1.1 (no 101), connection still usable",
     {{"GET /healthz HTTP/1.1\r\n" HOST "Connection: Upgrade, HTTP2-Settings\r\n"
       "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
       200, NULL},
      {GET_HEALTHZ, 200, "keep-alive"}},
     false},
    {"empty lines before the request line are ignored",
     {{"\r\n\r\n" GET_HEALTHZ, 200, "keep-alive"}},
     false},
};
const size_t keepalive_cases_n = sizeof keepalive_cases / sizeof keepalive_cases[0];

#define PIPE3                                                                                      \
    GET_HEALTHZ CANCEL "Content-Length: 2\r\n\r\n{}"                                               \
                       "GET /readyz HTTP/1.1\r\n" HOST "\r\n"

const pipeline_case_t pipeline_cases[] = {
    {"healthz, a 422 mutation, readyz in one write",
     PIPE3,
     0,
     3,
     {200, 422, 200},
     {"\"ok\"", "\"missing\"", "\"ready\""}},
    {"the same, 1 byte per write",
     PIPE3,
     1,
     3,
     {200, 422, 200},
     {"\"ok\"", "\"missing\"", "\"ready\""}},
    {"a stored mutation between two probes",
     GET_HEALTHZ CANCEL "Content-Length: 58\r\n\r\n" BODY_OK "GET /readyz HTTP/1.1\r\n" HOST "\r\n",
     0,
     3,
     {200, 200, 200},
     {"\"ok\"", "\"pending\"", "\"ready\""}},
    {"a body that looks like a request is only a body (one answer)",
     CANCEL "Content-Length: 34\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
     0,
     1,
     {422},
     {"json_invalid"}},
};
const size_t pipeline_cases_n = sizeof pipeline_cases / sizeof pipeline_cases[0];

const body_case_t chunked_cases[] = {
    {"valid body in two chunks reaches intake",
     CANCEL TE_CHUNKED "21\r\n" BODY_OK_A "\r\n19\r\n" BODY_OK_B "\r\n0\r\n\r\n", 200},
    {"chunk extensions 5;a=b and ;x=\"y\" are accepted",
     CANCEL TE_CHUNKED "21;a=b\r\n" BODY_OK_A "\r\n19;x=\"y\"\r\n" BODY_OK_B "\r\n0;z\r\n\r\n",
     200},
    {"chunk size with leading zeros (0005)",
     CANCEL TE_CHUNKED "003a\r\n" BODY_OK "\r\n0000\r\n\r\n", 200},
    {"upper-case hex chunk size", CANCEL TE_CHUNKED "3A\r\n" BODY_OK "\r\n0\r\n\r\n", 200},
    {"Transfer-Encoding: ChUnKeD, tab-led, trailing space",
     "POST /v1/order/cancel HTTP/1.1\r\n" HOST AUTH "Transfer-Encoding:\tChUnKeD \r\n\r\n"
     "2\r\n{}\r\n0\r\n\r\n",
     422},
    {"a trailer is read and dropped (Host, Content-Length in it)",
     CANCEL TE_CHUNKED "2\r\n{}\r\n0\r\nHost: evil\r\nContent-Length: 50\r\n\r\n", 422},
    {"an API key only in the trailer does not authenticate",
     "POST /v1/order/cancel HTTP/1.1\r\n" HOST "X-Dest-Tenant-Name: swift-haul\r\n"
     "Content-Type: application/json\r\n" TE_CHUNKED
     "2\r\n{}\r\n0\r\nX-API-Key: demo-acme-key\r\n\r\n",
     401},
    {"empty chunked body", CANCEL TE_CHUNKED "0\r\n\r\n", 422},
};
const size_t chunked_cases_n = sizeof chunked_cases / sizeof chunked_cases[0];

/* Header-block framing: Content-Length / Transfer-Encoding / Host policy, line endings. */
const frame_case_t header_framing_cases[] = {
    {"Content-Length + Transfer-Encoding (smuggling)",
     R(CANCEL "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400},
    {"Transfer-Encoding, then Content-Length",
     R(CANCEL "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), 400},
    {"duplicate Content-Length, same value",
     R(CANCEL "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"), 400},
    {"duplicate Content-Length, different values",
     R(CANCEL "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x"), 400},
    {"Content-Length: 004", R(CANCEL "Content-Length: 004\r\n\r\n{}  "), 400},
    {"Content-Length: 2,2", R(CANCEL "Content-Length: 2,2\r\n\r\n{}"), 400},
    {"Content-Length: +2", R(CANCEL "Content-Length: +2\r\n\r\n{}"), 400},
    {"Content-Length: -1", R(CANCEL "Content-Length: -1\r\n\r\n{}"), 400},
    {"Content-Length empty", R(CANCEL "Content-Length:\r\n\r\n{}"), 400},
    {"Content-Length with space before the colon", R(CANCEL "Content-Length : 2\r\n\r\n{}"), 400},
    {"bare LF line endings throughout", R("GET /healthz HTTP/1.1\n" HOST "\n"), 400},
    {"bare LF after the request line only", R("GET /healthz HTTP/1.1\n" HOST "\r\n"), 400},
    {"bare LF ending one header field", R("GET /healthz HTTP/1.1\r\n" HOST "X-A: b\n\r\n"), 400},
    {"obs-fold", R("GET /healthz HTTP/1.1\r\n" HOST "X-Foo: a\r\n b\r\n\r\n"), 400},
    {"obs-fold hiding Transfer-Encoding",
     R(CANCEL "X-Foo: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}"), 400},
    {"first header line starts with a space", R("GET /healthz HTTP/1.1\r\n " HOST "\r\n"), 400},
    {"bare CR in a value hiding Transfer-Encoding",
     R(CANCEL "X-Abc: \rxTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}"), 400},
    {"bare CR hiding Content-Length",
     R("GET /healthz HTTP/1.1\r\n" HOST "Foo:\rAContent-Length: 10\r\n\r\n"), 400},
    {"head ended by CRLF CR X", R("GET /healthz HTTP/1.1\r\n" HOST "\rX"), 400},
    {"NUL in a header value", R("GET /healthz HTTP/1.1\r\n" HOST "X-A: a\0b\r\n\r\n"), 400},
    {"DEL in a header value",
     R("GET /healthz HTTP/1.1\r\n" HOST "X-A: a\x7f"
       "b\r\n\r\n"),
     400},
    {"bad token in a header name", R("GET /healthz HTTP/1.1\r\n" HOST "X@Y: a\r\n\r\n"), 400},
    {"header line without a colon", R("GET /healthz HTTP/1.1\r\n" HOST "NoColon\r\n\r\n"), 400},
    {"empty header name", R("GET /healthz HTTP/1.1\r\n" HOST ": b\r\n\r\n"), 400},
    {"Transfer_Encoding with an underscore",
     R(CANCEL "Transfer_Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}"), 400},
    {"Content_Length with an underscore", R(CANCEL "Content_Length: 2\r\n\r\n{}"), 400},
    {"Transfer-Encoding: gzip, chunked (not implemented)",
     R(CANCEL "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501},
    {"Transfer-Encoding: chunked, identity",
     R(CANCEL "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"), 400},
    {"Transfer-Encoding: identity", R(CANCEL "Transfer-Encoding: identity\r\n\r\n{}"), 400},
    {"Transfer-Encoding: xchunked", R(CANCEL "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"), 400},
    {"Transfer-Encoding: chunked twice",
     R(CANCEL "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400},
    {"Transfer-Encoding empty", R(CANCEL "Transfer-Encoding:\r\n\r\n"), 400},
    {"Transfer-Encoding: , chunked", R(CANCEL "Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n"),
     400},
    {"Transfer-Encoding: chunked,", R(CANCEL "Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n"), 400},
    {"Transfer-Encoding in HTTP/1.0",
     R("POST /v1/order/cancel HTTP/1.0\r\n" HOST AUTH TE_CHUNKED "0\r\n\r\n"), 400},
    {"HTTP/1.1 without Host", R("GET /healthz HTTP/1.1\r\n\r\n"), 400},
    {"two Host headers", R("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400},
    {"Host: a, b", R("GET /healthz HTTP/1.1\r\nHost: a, b\r\n\r\n"), 400},
    {"Host empty", R("GET /healthz HTTP/1.1\r\nHost:\r\n\r\n"), 400},
    {"Host: user@a", R("GET /healthz HTTP/1.1\r\nHost: user@a\r\n\r\n"), 400},
};
const size_t header_framing_cases_n = sizeof header_framing_cases / sizeof header_framing_cases[0];

/* Chunk framing: size lines, chunk-data terminators, the last chunk. */
const frame_case_t chunk_framing_cases[] = {
    {"bad chunk size 5x", R(CANCEL TE_CHUNKED "5x\r\nhello\r\n0\r\n\r\n"), 400},
    {"chunk size +2", R(CANCEL TE_CHUNKED "+2\r\n{}\r\n0\r\n\r\n"), 400},
    {"chunk size 0x2", R(CANCEL TE_CHUNKED "0x2\r\n{}\r\n0\r\n\r\n"), 400},
    {"chunk size with a leading space", R(CANCEL TE_CHUNKED " 2\r\n{}\r\n0\r\n\r\n"), 400},
    {"chunk size of 19 hex digits (overflow)",
     R(CANCEL TE_CHUNKED "1000000000000000002\r\n{}\r\n0\r\n\r\n"), 400},
    {"chunk-size line ended by bare LF", R(CANCEL TE_CHUNKED "2\n{}\r\n0\r\n\r\n"), 400},
    {"chunk extension with a bare CR", R(CANCEL TE_CHUNKED "2;a\rb\r\n{}\r\n0\r\n\r\n"), 400},
    {"chunk extension with an unbalanced quote", R(CANCEL TE_CHUNKED "2;a=\"b\r\n{}\r\n0\r\n\r\n"),
     400},
    {"Transfer-Encoding chunked in the trailer",
     R(CANCEL TE_CHUNKED "2\r\n{}\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    /* BAD_INPUT.md rows 36 and 38: guards the gateway must add beside llhttp 8.1. */
    {"chunk data not followed by CRLF", R(CANCEL TE_CHUNKED "5\r\nhelloXX0\r\n\r\n"), 400},
    {"last chunk ended by bare LF", R(CANCEL TE_CHUNKED "2\r\n{}\r\n0\r\n\n"), 400},
};
const size_t chunk_framing_cases_n = sizeof chunk_framing_cases / sizeof chunk_framing_cases[0];

/* The request line: version, method, target. */
const frame_case_t request_line_cases[] = {
    {"GET / HTTP/2.0", R("GET / HTTP/2.0\r\n" HOST "\r\n"), 505},
    {"CONNECT is never tunnelled",
     R("CONNECT 127.0.0.1:6379 HTTP/1.1\r\nHost: 127.0.0.1:6379\r\n\r\n"), 405},
    {"lower-case method", R("post /v1/order/cancel HTTP/1.1\r\n" HOST "\r\n"), 400},
    {"unknown method FOO", R("FOO / HTTP/1.1\r\n" HOST "\r\n"), 400},
    {"tab after the method", R("GET\t/ HTTP/1.1\r\n" HOST "\r\n"), 400},
    {"target without a leading slash", R("GET v1/order HTTP/1.1\r\n" HOST "\r\n"), 400},
    {"space inside the target", R("GET /a b HTTP/1.1\r\n" HOST "\r\n"), 400},
    {"CR alone after the version", R("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400},
    {"TLS ClientHello on the plain port", R("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"),
     400},
    /* BAD_INPUT.md rows 46-48: guards the gateway must add beside llhttp 8.1. */
    {"HTTP/2 preface PRI * HTTP/2.0", R("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505},
    {"HTTP/0.9 request line", R("GET /\r\n\r\n"), 400},
    {"two spaces after the method", R("GET  /healthz HTTP/1.1\r\n" HOST "\r\n"), 400},
};
const size_t request_line_cases_n = sizeof request_line_cases / sizeof request_line_cases[0];

static void get_with_fields(buf_t *b, int fields, size_t value_len)
{
    buf_append_str(b, "GET /healthz HTTP/1.1\r\n" HOST);
    for (int i = 0; i < fields; i++) {
        buf_printf(b, "X-Fill-%d: ", i);
        for (size_t k = 0; k < value_len; k++)
            buf_append(b, "a", 1);
        buf_append_str(b, "\r\n");
    }
    buf_append_str(b, "\r\n");
}

static void build_head_over_16k(buf_t *b)
{
    get_with_fields(b, 90, 200); /* 90 fields of ~213 bytes: over 16 KiB, under 100 fields */
}

static void build_101_fields(buf_t *b)
{
    get_with_fields(b, 100, 1); /* with Host: 101 */
}

static void build_100_fields(buf_t *b)
{
    get_with_fields(b, 99, 1); /* with Host: exactly the limit */
}

static void build_one_20k_field(buf_t *b)
{
    get_with_fields(b, 1, 20000);
}

static void get_with_path(buf_t *b, size_t path_len)
{
    buf_append_str(b, "GET /");
    for (size_t i = 1; i < path_len; i++)
        buf_append(b, "a", 1);
    buf_append_str(b, " HTTP/1.1\r\n" HOST "\r\n");
}

static void build_line_over_8k(buf_t *b)
{
    get_with_path(b, 8200);
}

static void build_line_under_8k(buf_t *b)
{
    get_with_path(b, 8000);
}

static void build_cl_over_limit(buf_t *b)
{
    buf_printf(b, CANCEL "Content-Length: %d\r\n\r\n", BAD_INPUT_MAX_BODY + 1);
}

static void build_body_at_limit(buf_t *b)
{
    /* Exactly max_body_bytes of JSON whitespace: read whole, then refused by validation. */
    buf_printf(b, CANCEL "Content-Length: %d\r\n\r\n", BAD_INPUT_MAX_BODY);
    for (int i = 0; i < BAD_INPUT_MAX_BODY; i++)
        buf_append(b, " ", 1);
}

static void build_chunked_growing(buf_t *b)
{
    buf_append_str(b, CANCEL TE_CHUNKED);
    for (int i = 0; i < 9; i++) { /* 9 x 8 KiB: past 64 KiB at the ninth */
        buf_append_str(b, "2000\r\n");
        for (int k = 0; k < 8192; k++)
            buf_append(b, " ", 1);
        buf_append_str(b, "\r\n");
    }
    buf_append_str(b, "0\r\n\r\n");
}

static void build_post_without_length(buf_t *b)
{
    buf_append_str(b, CANCEL "\r\n");
}

static void build_expect_over_limit(buf_t *b)
{
    buf_printf(b, CANCEL "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n",
               BAD_INPUT_MAX_BODY + 100);
}

static void build_expect_foo(buf_t *b)
{
    buf_append_str(b, CANCEL "Expect: foo\r\nContent-Length: 2\r\n\r\n{}");
}

const limit_case_t limit_cases[] = {
    {"header block over 16 KiB", build_head_over_16k, 431, true, 0},
    {"101 header fields", build_101_fields, 431, true, 0},
    {"100 header fields (at the limit)", build_100_fields, 200, false, 0},
    {"one 20 KB header field", build_one_20k_field, 431, true, 0},
    {"request line over 8 KiB", build_line_over_8k, 414, true, 0},
    {"request line under 8 KiB (unknown path)", build_line_under_8k, 404, false, 0},
    {"Content-Length over the limit, body not sent", build_cl_over_limit, 413, true, 1000},
    {"body of exactly max_body_bytes", build_body_at_limit, 422, false, 0},
    {"chunked body growing past the limit", build_chunked_growing, 413, true, 0},
    {"POST with neither Content-Length nor Transfer-Encoding", build_post_without_length, 411, true,
     0},
    {"Expect: 100-continue with Content-Length over the limit", build_expect_over_limit, 413, true,
     1000},
    {"Expect: foo", build_expect_foo, 417, true, 0},
};
const size_t limit_cases_n = sizeof limit_cases / sizeof limit_cases[0];

const route_case_t route_cases[] = {
    {"unknown path", "GET /nope HTTP/1.1\r\n" HOST "\r\n", 404, NULL},
    {"unknown path under /v1/order",
     "POST /v1/order/nope HTTP/1.1\r\n" HOST AUTH "Content-Length: 2\r\n\r\n{}", 404, NULL},
    {"DELETE /v1/order/cancel", "DELETE /v1/order/cancel HTTP/1.1\r\n" HOST "\r\n", 405,
     "Allow: POST"},
    {"GET /v1/order/cancel", "GET /v1/order/cancel HTTP/1.1\r\n" HOST "\r\n", 405, "Allow: POST"},
    {"POST /healthz", "POST /healthz HTTP/1.1\r\n" HOST "Content-Length: 0\r\n\r\n", 405,
     "Allow: GET"},
    {"Content-Type: text/plain",
     "POST /v1/order/cancel HTTP/1.1\r\n" HOST
     "X-API-Key: demo-acme-key\r\nX-Dest-Tenant-Name: swift-haul\r\n"
     "Content-Type: text/plain\r\nContent-Length: 58\r\n\r\n" BODY_OK,
     415, NULL},
    {"Content-Type: application/json; charset=utf-16",
     "POST /v1/order/cancel HTTP/1.1\r\n" HOST
     "X-API-Key: demo-acme-key\r\nX-Dest-Tenant-Name: swift-haul\r\n"
     "Content-Type: application/json; charset=utf-16\r\nContent-Length: 58\r\n\r\n" BODY_OK,
     415, NULL},
    {"no Content-Type with a body",
     "POST /v1/order/cancel HTTP/1.1\r\n" HOST
     "X-API-Key: demo-acme-key\r\nX-Dest-Tenant-Name: swift-haul\r\n"
     "Content-Length: 58\r\n\r\n" BODY_OK,
     415, NULL},
    {"two Content-Type headers that disagree",
     CANCEL "Content-Type: text/plain\r\n"
            "Content-Length: 58\r\n\r\n" BODY_OK,
     400, NULL},
    {"/v1/order/%2e%2e/admin", "GET /v1/order/%2e%2e/admin HTTP/1.1\r\n" HOST "\r\n", 404, NULL},
    {"POST /v1/order/%2e%2e/admin/reload",
     "POST /v1/order/%2e%2e/admin/reload HTTP/1.1\r\n" HOST AUTH "Content-Length: 2\r\n\r\n{}", 404,
     NULL},
    {"/v1/saga/..%2f..%2f",
     "GET /v1/saga/..%2f..%2f HTTP/1.1\r\n" HOST "X-API-Key: demo-acme-key\r\n\r\n", 404, NULL},
    {"%00 in the path", "GET /healthz%00 HTTP/1.1\r\n" HOST "\r\n", 404, NULL},
    {"no API key",
     "POST /v1/order/cancel HTTP/1.1\r\n" HOST "Content-Type: application/json\r\n"
     "X-Dest-Tenant-Name: swift-haul\r\nContent-Length: 58\r\n\r\n" BODY_OK,
     401, "WWW-Authenticate: Bearer"},
};
const size_t route_cases_n = sizeof route_cases / sizeof route_cases[0];

const absform_case_t absform_cases[] = {
    {"GET /healthz", GET_HEALTHZ, "GET http://evil/healthz HTTP/1.1\r\n" HOST "\r\n", 200},
    {"POST /v1/order/cancel, valid", CANCEL "Content-Length: 58\r\n\r\n" BODY_OK,
     "POST http://evil/v1/order/cancel HTTP/1.1\r\nHost: evil\r\n" AUTH
     "Content-Length: 58\r\n\r\n" BODY_OK,
     200},
    {"POST /v1/order/cancel, invalid body", CANCEL "Content-Length: 2\r\n\r\n{}",
     "POST http://evil:8080/v1/order/cancel?x=1 HTTP/1.1\r\n" HOST AUTH
     "Content-Length: 2\r\n\r\n{}",
     422},
    {"unknown path", "GET /admin HTTP/1.1\r\n" HOST "\r\n",
     "GET http://127.0.0.1:6379/admin HTTP/1.1\r\n" HOST "\r\n", 404},
};
const size_t absform_cases_n = sizeof absform_cases / sizeof absform_cases[0];
