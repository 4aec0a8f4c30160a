/*
 * outhttp.h - outbound HTTP on libcurl's multi socket interface, driven by the libuv loop.
 *
 * Owns: the CURLM handle, one uv_poll_t per socket libcurl asks about, one uv_timer_t for
 * libcurl's timeout, and every transfer until its completion callback has run. Never blocks:
 * Debian's libcurl resolves names asynchronously, and all I/O is through uv_poll.
 * Safety: redirects are never followed; only http and https; the response body is capped
 * (OUTHTTP_MAX_RESPONSE) and a slower-than-timeout peer is cut at timeout_ms.
 */
#ifndef CR_OUTHTTP_H
#define CR_OUTHTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define OUTHTTP_MAX_RESPONSE (1024 * 1024)

/* Transport failure reasons, compared by pointer (NULL when an HTTP response arrived). */
extern const char OUTHTTP_ERR_TIMEOUT[];   /* no complete response within timeout_ms */
extern const char OUTHTTP_ERR_CONNECT[];   /* could not connect (refused, unreachable, DNS) */
extern const char OUTHTTP_ERR_IO[];        /* connection broke mid-exchange */
extern const char OUTHTTP_ERR_TOO_LARGE[]; /* response body over OUTHTTP_MAX_RESPONSE */
extern const char OUTHTTP_ERR_CANCELED[];  /* outhttp_cancel() or outhttp_close() */
extern const char OUTHTTP_ERR_BAD_URL[];   /* not http(s) or malformed */

typedef struct outhttp outhttp_t;
typedef struct outhttp_xfer outhttp_xfer_t;

typedef struct outhttp_response {
    const char *error;    /* NULL, or one of OUTHTTP_ERR_* (then status is 0) */
    const char *error_detail; /* libcurl's text for the error, or NULL */
    long status;          /* HTTP status code */
    const char *headers;  /* raw response header block (NUL-terminated), "" if none */
    size_t headers_len;
    const char *body;     /* NUL-terminated */
    size_t body_len;
    uint64_t elapsed_ms;
} outhttp_response_t;

/* Called exactly once per started transfer; resp and its strings live only for the call. */
typedef void (*outhttp_done_cb)(const outhttp_response_t *resp, void *data);

typedef struct outhttp_request {
    const char *method;            /* "POST", "GET", ... */
    const char *url;
    const char *const *headers;    /* NULL-terminated "Name: value" strings, or NULL */
    const char *body;              /* may be NULL */
    size_t body_len;
    long timeout_ms;               /* whole exchange */
} outhttp_request_t;

outhttp_t *outhttp_new(uv_loop_t *loop);

/*
 * Start a transfer; everything in req is copied. Returns the transfer (a handle for
 * outhttp_cancel) and later calls cb once; or returns NULL (bad URL or method) without calling cb.
 */
outhttp_xfer_t *outhttp_start(outhttp_t *o, const outhttp_request_t *req, outhttp_done_cb cb,
                              void *data);

/* Abort a transfer; its callback runs synchronously with OUTHTTP_ERR_CANCELED. */
void outhttp_cancel(outhttp_t *o, outhttp_xfer_t *x);

/* Transfers in flight. */
size_t outhttp_in_flight(const outhttp_t *o);

/* Cancel everything (callbacks run with OUTHTTP_ERR_CANCELED), close handles, then call
 * closed_cb and free o. */
void outhttp_close(outhttp_t *o, void (*closed_cb)(void *data), void *data);

/*
 * Value of a response header (case-insensitive name) from a raw header block, copied into out
 * (NUL-terminated, truncated to size-1); returns its length, or -1 if absent.
 */
int outhttp_header_get(const char *headers, const char *name, char *out, size_t size);

#endif
