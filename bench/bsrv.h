/*
 * bsrv.h - the minimal HTTP/1.1 server core shared by the benchmark's reference servers
 * (ref_http, ref_redis) and its loopback destination (dest): libuv + llhttp, keep-alive,
 * pipelined requests answered in order, SO_REUSEPORT, SIGTERM/SIGINT -> exit 0.
 *
 * It is deliberately lean (a ceiling, not a product): one shared read buffer per process, no
 * timeouts, no header limits beyond llhttp's own, responses written straight from the caller's
 * buffers (uv_try_write first, so a small answer costs one write(2) and no allocation).
 *
 * One request per connection is with the handler at a time: when the handler does not answer
 * before returning, the parser is paused and later bytes wait until bsrv_respond().
 */
#ifndef BENCH_BSRV_H
#define BENCH_BSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct bsrv_conn bsrv_conn_t;

typedef struct bsrv_req {
    bsrv_conn_t *conn;
    const char *method;   /* "GET", "POST", ... (static) */
    const char *url;      /* request target, NUL-terminated, valid until bsrv_respond */
    size_t url_len;
    const char *body;     /* only when the server was started with want_body */
    size_t body_len;
    bool keep_alive;
    void *user;           /* free for the handler */
} bsrv_req_t;

/* Called once per complete request; must eventually call bsrv_respond(req, ...) exactly once. */
typedef void (*bsrv_handler_fn)(bsrv_req_t *req, void *ud);

typedef struct bsrv_opts {
    const char *host;     /* default 127.0.0.1 */
    int port;
    int backlog;          /* default 1024 (the gateway's) */
    bool want_body;       /* collect the body into req->body */
    bsrv_handler_fn handler;
    void *ud;
} bsrv_opts_t;

/* Bind and listen (SO_REUSEADDR + SO_REUSEPORT). Returns 0 or a libuv error code. */
int bsrv_listen(uv_loop_t *loop, const bsrv_opts_t *opts);

/*
 * Answer req. bufs must stay valid until the write completes: the reference servers pass
 * static, preformatted responses. Closes the connection after the write when the request was
 * not keep-alive. Safe to call after the client went away (the answer is dropped).
 */
void bsrv_respond(bsrv_req_t *req, const uv_buf_t *bufs, unsigned nbufs);

/* SIGTERM and SIGINT stop the loop (the caller's uv_run returns; exit 0). */
void bsrv_handle_signals(uv_loop_t *loop);

/* Requests answered so far (for a closing summary line). */
unsigned long long bsrv_answered(void);

/* Parse "host:port" (host may be empty for 127.0.0.1). Returns 0 or -1. */
int bsrv_parse_hostport(const char *s, char *host, size_t host_size, int *port);

#endif
