/*
 * stub_dest.h - a destination system on loopback for integration tests: a real HTTP/1.1 server
 * on 127.0.0.1 (a free port) in its own thread, recording every request and answering as the
 * test scripts it.
 *
 * Requests are framed by Content-Length (what the gateway's libcurl sends; a chunked body is
 * answered 411 and not recorded); keep-alive connections and "Connection: close"
 * both work, and "Expect: 100-continue" gets its interim answer. Each complete request is
 * recorded (method, path, header block, body, arrival time, Idempotency-Key) and then answered
 * by the next scripted reply in the queue, or by the default reply once the queue is empty. A
 * reply may be delayed or may hang (never answered; the connection stays open until the client
 * leaves), and replies are scheduled per connection, so a slow answer never holds up another.
 *
 * Owns: the listening socket, every accepted connection, the thread, the recorded requests and
 * the scripted replies. All functions are thread-safe and blocking calls are fine (tests only).
 * Must not: be linked into the gateway, or outlive stub_dest_stop (which joins the thread and
 * frees everything).
 */
#ifndef CR_TEST_STUB_DEST_H
#define CR_TEST_STUB_DEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct stub_dest stub_dest_t;

/* How to answer one request. Strings are copied when the reply is queued or set as default. */
typedef struct stub_reply {
    int status;          /* 0 means 200 */
    const char *headers; /* extra header lines, each "Name: value\r\n", or NULL */
    const char *body;    /* NULL means "{}"; sent as application/json */
    int delay_ms;        /* answer this long after the request arrived (0: at once) */
    bool hang;           /* never answer; the client has to time out */
} stub_reply_t;

/* One recorded request (a copy the caller owns; release with stub_req_free). */
typedef struct stub_req {
    char *method;
    char *path;    /* request target as sent, query included */
    char *headers; /* the header lines, each ending "\r\n" (request line excluded) */
    char *body;    /* NUL-terminated */
    size_t body_len;
    long long at_ms;       /* arrival of the complete request, on harness_now_ms()'s clock */
    char *idempotency_key; /* "" when the request had none */
    json_t *json;          /* body parsed as JSON, or NULL */
} stub_req_t;

/* Start a server on a free 127.0.0.1 port; NULL on failure. The default reply is 200 "{}". */
stub_dest_t *stub_dest_start(void);
/* Stop accepting, close every connection, join the thread, free everything. NULL is fine. */
void stub_dest_stop(stub_dest_t *s);

int stub_dest_port(const stub_dest_t *s);
/* "http://127.0.0.1:<port>" into out. */
void stub_dest_url(const stub_dest_t *s, char *out, size_t size);

/* Append a reply to the queue: the next request without one already takes it. */
void stub_dest_push(stub_dest_t *s, const stub_reply_t *r);
/* Shorthand for stub_dest_push with an immediate answer. */
void stub_dest_push_status(stub_dest_t *s, int status, const char *headers, const char *body);
/* The reply used once the queue is empty. */
void stub_dest_set_default(stub_dest_t *s, const stub_reply_t *r);
/* Empty the queue and restore the default (200 "{}"); recorded requests are kept. */
void stub_dest_reset(stub_dest_t *s);
/* Scripted replies not yet used. */
size_t stub_dest_queued(stub_dest_t *s);

/* Requests recorded so far. */
size_t stub_dest_count(stub_dest_t *s);
/* Requests recorded with this Idempotency-Key. */
size_t stub_dest_count_key(stub_dest_t *s, const char *key);
/* Distinct non-empty Idempotency-Keys among the recorded requests. */
size_t stub_dest_distinct_keys(stub_dest_t *s);
/* Copy of request i (0-based, arrival order) into out; false when there is no such request. */
bool stub_dest_get(stub_dest_t *s, size_t i, stub_req_t *out);
/* Wait until at least n requests were recorded or deadline_ms passed; true when they were. */
bool stub_dest_wait(stub_dest_t *s, size_t n, int deadline_ms);
/* Wait until at least n requests with this Idempotency-Key were recorded. */
bool stub_dest_wait_key(stub_dest_t *s, const char *key, size_t n, int deadline_ms);

void stub_req_free(stub_req_t *r);
/* Value of a request header (case-insensitive name) copied into out; false when absent. */
bool stub_req_header(const stub_req_t *r, const char *name, char *out, size_t size);

#endif
