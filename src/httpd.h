/*
 * httpd.h - the HTTP/1.1 front end: listener, connections, llhttp glue, framing guard, limits.
 *
 * Owns: the listening socket, every connection (its uv_tcp_t, timer, parser and buffers) and the
 * request objects until the handler answers them. Reads HTTP strictly (RFC 9112): a framing
 * error gets its 4xx/5xx with "Connection: close" and the connection is closed, so nothing after
 * a malformed request is ever processed. Requests on one connection are handled one at a time,
 * in order; pipelined bytes wait in the connection's input buffer (reading pauses beyond
 * HTTPD_MAX_QUEUED bytes).
 *
 * Must not: block, interpret routes or bodies (that is the handler's), or merge trailers into
 * headers (trailers are read and dropped).
 */
#ifndef CR_HTTPD_H
#define CR_HTTPD_H

#include "util/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HTTPD_MAX_QUEUED (256 * 1024)
#define HTTPD_REQUEST_ID_MAX 128

typedef struct httpd httpd_t;
typedef struct httpd_conn httpd_conn_t;

typedef struct httpd_limits {
    size_t max_body_bytes;
    size_t max_header_bytes; /* the whole head: request line and header fields */
    size_t max_header_count;
    size_t max_request_line;
    size_t max_connections;
    long header_timeout_ms; /* first byte of a request to the end of its head */
    long body_timeout_ms;   /* end of the head to the end of the body */
    long idle_timeout_ms;   /* between requests on a keep-alive connection */
} httpd_limits_t;

typedef struct httpd_header {
    const char *name; /* lower-cased */
    size_t name_len;
    const char *value; /* surrounding whitespace trimmed */
    size_t value_len;
} httpd_header_t;

typedef struct httpd_req {
    httpd_conn_t *conn; /* NULL once the client has gone; answer anyway, it is then dropped */
    httpd_t *server;
    const char *method; /* "GET", "POST", ... */
    int method_id;      /* llhttp_method_t */
    const char *path;   /* NUL-terminated, raw (no percent-decoding) */
    size_t path_len;
    const char *query; /* after '?', NUL-terminated; "" when none */
    httpd_header_t *headers;
    size_t n_headers;
    const char *body; /* NUL-terminated for convenience; body_len bytes */
    size_t body_len;
    char request_id[HTTPD_REQUEST_ID_MAX + 1];
    uint64_t start_ms; /* uv_now() at the first byte */
    uint64_t start_ns; /* uv_hrtime() at the first byte, for latency figures */
    void *data;        /* the handler's */
    char tenant[65];   /* for the access log, filled by the handler once authenticated */
    char saga_id[25];  /* for the access log, filled by the handler when it creates one */
    char route_param[64]; /* the "{id}" segment of the matched route, if any */
    const char *route_name; /* the matched route's pattern (a bounded label), set by the app */

    /* private */
    buf_t url;
    buf_t hbuf;
    buf_t bodybuf;
    size_t cap_headers;
    bool keep_alive;
} httpd_req_t;

/* Called once per complete request; the handler must call httpd_respond() exactly once. */
typedef void (*httpd_request_cb)(httpd_req_t *req, void *data);

httpd_t *httpd_new(uv_loop_t *loop, const httpd_limits_t *limits, httpd_request_cb on_request,
                   void *data);

/* Bind and listen (SO_REUSEPORT so several processes may share the port). 0 or a UV_E* code. */
int httpd_listen(httpd_t *h, const char *host, int port);

/* The bound port (useful when listening on port 0). */
int httpd_port(const httpd_t *h);

/* Replace the limits for new requests (config reload). */
void httpd_set_limits(httpd_t *h, const httpd_limits_t *limits);

/* First header with this lower-case name; NULL if absent. count, if not NULL, gets how many. */
const char *httpd_req_header(const httpd_req_t *req, const char *lname, size_t *len,
                             int *count);

/*
 * Answer the request and release it. extra_headers: complete "Name: value\r\n" lines or NULL.
 * body is copied. Content-Type is application/json unless extra_headers sets one (pass
 * content_type NULL for the default). Adds X-Request-Id, Content-Length and Connection.
 */
void httpd_respond(httpd_req_t *req, int status, const char *content_type,
                   const char *extra_headers, const char *body, size_t body_len);

/* Answer {"detail": detail} with status. */
void httpd_respond_detail(httpd_req_t *req, int status, const char *detail,
                          const char *extra_headers);

const char *httpd_status_text(int status);

/*
 * The value of query parameter name (percent-decoded, '+' as space) copied into out (NUL-
 * terminated). Returns its length; -1 if absent; -2 if malformed, too long for out, or holding
 * a NUL or control byte.
 */
int httpd_query_get(const char *query, const char *name, char *out, size_t size);

typedef struct httpd_stats {
    uint64_t accepted;
    uint64_t requests;
    uint64_t evicted; /* idle or head-incomplete connections closed to admit new ones */
    uint64_t paused;  /* reads paused for the rest of a long poll phase (fairness, httpd.c) */
    size_t open_connections;
    size_t in_flight; /* requests handed to the handler and not yet answered */
} httpd_stats_t;
void httpd_stats_get(const httpd_t *h, httpd_stats_t *out);

/*
 * Called once per response: req is NULL for a framing error answered before a request existed
 * (then route is "framing"); seconds is from the request's first byte.
 */
typedef void (*httpd_observe_cb)(const httpd_req_t *req, int status, double seconds, void *data);
void httpd_set_observer(httpd_t *h, httpd_observe_cb cb, void *data);

/* Stop accepting new connections (drain): the connections already queued on the listener are
 * taken first. Every connection closes after its next response (Connection: close); an idle one
 * that gets no request within a short grace is closed without being reset. */
void httpd_drain(httpd_t *h);

/* Close the listener and every connection, then call closed_cb and free h. Requests still with
 * the handler survive and are dropped when answered. */
void httpd_close(httpd_t *h, void (*closed_cb)(void *data), void *data);

#endif
