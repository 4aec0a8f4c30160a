/*
 * test_outhttp.c - outhttp.c against a loopback HTTP server running on the same libuv loop:
 * status and header pass-through, request bytes as the peer saw them, timeouts, refused
 * connections, redirects left alone, the response cap, URL and method checks, cancel and close
 * (from outside and from inside callbacks), 50 concurrent transfers, descriptor reuse across
 * back-to-back connections, keep-alive reuse, and outhttp_header_get on raw blocks.
 *
 * The exception to "unit tests use no network": everything stays on 127.0.0.1, on ports the
 * kernel picks. Every loop test counts callbacks, runs the loop until the last handle closed,
 * then checks that each completion callback ran exactly once, closed_cb ran once and
 * uv_loop_close succeeds (libuv's test/test-tcp-close.c pattern).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "outhttp.h"
#include "util/buf.h"
#include "util/cr.h"

#define MAX_XFERS 64
#define MAX_REQS  64
#define GUARD_MS  15000

/* ------------------------------------------------------------------------------------------ */
/* Loopback HTTP server                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* One request as the server received it (head up to and including the blank line). */
typedef struct {
    char *head;
    char *body;
    size_t body_len;
    char path[128];
} seen_req_t;

typedef struct srv_conn {
    uv_tcp_t tcp;
    struct srv_conn *prev, *next;
    buf_t in;
    bool closing;
} srv_conn_t;

typedef struct {
    uv_write_t req;
    srv_conn_t *conn;
    char *data;
    bool close_after;
} srv_write_t;

typedef struct {
    uv_tcp_t listener;
    int port;
    bool closed;
    srv_conn_t conns; /* sentinel */
    /* Answer to every request whose path does not start with /silent; NULL echoes the path. */
    const char *response;
    size_t response_len;
    bool keep_alive; /* leave the connection open after answering */
    seen_req_t reqs[MAX_REQS];
    int n_reqs;
    void (*on_request)(const seen_req_t *r);
} srv_t;

/* ------------------------------------------------------------------------------------------ */
/* Fixture                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct result {
    int calls;
    const char *error;
    bool has_detail;
    char detail[512];
    long status;
    buf_t body;
    buf_t headers;
    bool body_terminated;
    uint64_t elapsed_ms;
    outhttp_xfer_t *x;
    void (*then)(struct result *r); /* runs inside the completion callback */
} result_t;

typedef struct {
    uv_loop_t loop;
    bool loop_closed;
    outhttp_t *oh;
    srv_t srv;
    uv_timer_t guard;
    bool finished;
    int closed_calls;
    int done_calls;
    int expected; /* fx_finish() once this many completions arrived */
    result_t res[MAX_XFERS];
    int n_started;
    /* Scratch for hooks, checked after the loop ran (a failed assert must not longjmp out of
     * a libuv callback). */
    int hook_calls;
    int hook_calls_seen;
    outhttp_xfer_t *hook_xfer;
    size_t in_flight_seen;
} fx_t;

static fx_t fx;

static void conn_close(srv_conn_t *c);
static void fx_finish(void);

static void on_conn_close(uv_handle_t *h)
{
    srv_conn_t *c = CR_CONTAINER_OF(h, srv_conn_t, tcp);
    buf_free(&c->in);
    free(c);
}

static void conn_close(srv_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, on_conn_close);
}

static void on_srv_write(uv_write_t *req, int status)
{
    srv_write_t *w = CR_CONTAINER_OF(req, srv_write_t, req);
    /* A failed write is expected when the client gave up (the oversize tests). */
    if (status != 0 || w->close_after)
        conn_close(w->conn);
    free(w->data);
    free(w);
}

static void srv_send(srv_conn_t *c, const char *data, size_t len, bool close_after)
{
    srv_write_t *w = cr_calloc(1, sizeof(*w));
    w->conn = c;
    w->data = cr_malloc(len);
    memcpy(w->data, data, len);
    w->close_after = close_after;
    uv_buf_t b = uv_buf_init(w->data, (unsigned int)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_srv_write);
    if (rc != 0) {
        free(w->data);
        free(w);
        conn_close(c);
    }
}

/* Content-Length of a request head, 0 if absent (our client never sends chunked bodies). */
static size_t req_content_length(const char *head)
{
    const char *p = strcasestr(head, "\r\ncontent-length:");
    return p != NULL ? (size_t)strtoul(p + 17, NULL, 10) : 0;
}

/* Consume complete requests from c->in; answer each unless its path starts with /silent. */
static void srv_process(srv_t *s, srv_conn_t *c)
{
    for (;;) {
        if (c->in.len == 0)
            return;
        buf_reserve(&c->in, 0);
        c->in.data[c->in.len] = '\0';
        const char *end = strstr(c->in.data, "\r\n\r\n");
        if (end == NULL)
            return;
        size_t head_len = (size_t)(end + 4 - c->in.data);
        char *head = cr_strndup(c->in.data, head_len);
        size_t body_len = req_content_length(head);
        if (c->in.len < head_len + body_len) {
            free(head);
            return;
        }
        if (s->n_reqs >= MAX_REQS) {
            free(head);
            conn_close(c);
            return;
        }
        seen_req_t *r = &s->reqs[s->n_reqs++];
        r->head = head;
        r->body = cr_strndup(c->in.data + head_len, body_len);
        r->body_len = body_len;
        const char *sp = strchr(head, ' ');
        if (sp != NULL)
            sscanf(sp + 1, "%127s", r->path);
        buf_consume(&c->in, head_len + body_len);

        if (s->on_request != NULL)
            s->on_request(r);
        if (s->closed) /* the hook finished the test */
            return;
        if (strncmp(r->path, "/silent", 7) == 0)
            continue;
        if (s->response != NULL) {
            srv_send(c, s->response, s->response_len, !s->keep_alive);
        } else {
            char resp[512];
            int n =
                snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%s\r\n%s",
                         strlen(r->path), s->keep_alive ? "" : "Connection: close\r\n", r->path);
            srv_send(c, resp, (size_t)n, !s->keep_alive);
        }
        if (!s->keep_alive)
            return;
    }
}

static void on_srv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = cr_malloc(suggested);
    buf->len = suggested;
}

static void on_srv_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    srv_conn_t *c = CR_CONTAINER_OF(stream, srv_conn_t, tcp);
    if (nread > 0) {
        buf_append(&c->in, buf->base, (size_t)nread);
        srv_process(&fx.srv, c);
    } else if (nread < 0) {
        conn_close(c);
    }
    free(buf->base);
}

static void on_srv_connection(uv_stream_t *listener, int status)
{
    srv_t *s = CR_CONTAINER_OF(listener, srv_t, listener);
    if (status != 0 || s->closed)
        return;
    srv_conn_t *c = cr_calloc(1, sizeof(*c));
    int rc = uv_tcp_init(listener->loop, &c->tcp);
    if (rc != 0) {
        free(c);
        return;
    }
    c->prev = s->conns.prev;
    c->next = &s->conns;
    s->conns.prev->next = c;
    s->conns.prev = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_srv_alloc, on_srv_read) != 0)
        conn_close(c);
}

/* Listen on 127.0.0.1 at a port the kernel picks; returns the port. */
static int tcp_listen_any(uv_loop_t *loop, uv_tcp_t *t, uv_connection_cb cb)
{
    struct sockaddr_in addr;
    struct sockaddr_storage got;
    int len = sizeof(got);

    assert_int_equal(uv_tcp_init(loop, t), 0);
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_bind(t, (const struct sockaddr *)&addr, 0), 0);
    if (cb != NULL)
        assert_int_equal(uv_listen((uv_stream_t *)t, 128, cb), 0);
    assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&got, &len), 0);
    return ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void srv_start(srv_t *s, uv_loop_t *loop)
{
    s->conns.prev = s->conns.next = &s->conns;
    s->port = tcp_listen_any(loop, &s->listener, on_srv_connection);
}

static void srv_close(srv_t *s)
{
    if (s->closed)
        return;
    s->closed = true;
    uv_close((uv_handle_t *)&s->listener, NULL);
    while (s->conns.next != &s->conns)
        conn_close(s->conns.next);
}

static void srv_free(srv_t *s)
{
    for (int i = 0; i < s->n_reqs; i++) {
        free(s->reqs[i].head);
        free(s->reqs[i].body);
    }
}

/* The request the server saw for path; fails the test (and returns an empty one) if none. */
static const seen_req_t *srv_find(const char *path)
{
    static char empty[] = "";
    static const seen_req_t none = {.head = empty, .body = empty};
    for (int i = 0; i < fx.srv.n_reqs; i++) {
        if (strcmp(fx.srv.reqs[i].path, path) == 0)
            return &fx.srv.reqs[i];
    }
    fail_msg("the server saw no request for %s", path);
    return &none;
}

/* ------------------------------------------------------------------------------------------ */
/* Fixture plumbing                                                                             */
/* ------------------------------------------------------------------------------------------ */

static void on_closed(void *data)
{
    if (data == &fx)
        fx.closed_calls++;
}

static void fx_finish(void)
{
    if (fx.finished)
        return;
    fx.finished = true;
    srv_close(&fx.srv);
    uv_close((uv_handle_t *)&fx.guard, NULL);
    outhttp_close(fx.oh, on_closed, &fx);
}

/* A hung test closes everything, which cancels what is left and fails the counts. */
static void on_guard(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "guard timer fired: closing everything\n");
    fx_finish();
}

static void on_done(const outhttp_response_t *resp, void *data)
{
    result_t *r = data;
    r->calls++;
    r->error = resp->error;
    r->has_detail = resp->error_detail != NULL;
    if (resp->error_detail != NULL)
        snprintf(r->detail, sizeof(r->detail), "%s", resp->error_detail);
    r->status = resp->status;
    buf_reset(&r->body);
    buf_append(&r->body, resp->body, resp->body_len);
    buf_reset(&r->headers);
    buf_append(&r->headers, resp->headers, resp->headers_len);
    r->body_terminated =
        resp->body[resp->body_len] == '\0' && resp->headers[resp->headers_len] == '\0';
    r->elapsed_ms = resp->elapsed_ms;
    fx.done_calls++;
    if (r->then != NULL)
        r->then(r);
    if (fx.done_calls == fx.expected)
        fx_finish();
}

static const char *body_of(result_t *r)
{
    buf_reserve(&r->body, 0);
    r->body.data[r->body.len] = '\0';
    return r->body.data;
}

static const char *headers_of(result_t *r)
{
    buf_reserve(&r->headers, 0);
    r->headers.data[r->headers.len] = '\0';
    return r->headers.data;
}

static outhttp_xfer_t *start_req(const outhttp_request_t *req)
{
    assert_true(fx.n_started < MAX_XFERS);
    result_t *r = &fx.res[fx.n_started];
    outhttp_xfer_t *x = outhttp_start(fx.oh, req, on_done, r);
    if (x != NULL) {
        fx.n_started++;
        r->x = x;
        /* Completion is always from the loop, never from inside outhttp_start. */
        assert_int_equal(r->calls, 0);
    }
    return x;
}

static outhttp_xfer_t *start(const char *method, const char *path, const char *body,
                             long timeout_ms)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx.srv.port, path);
    outhttp_request_t req = {
        .method = method,
        .url = url,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .timeout_ms = timeout_ms,
    };
    outhttp_xfer_t *x = start_req(&req);
    assert_non_null(x);
    return x;
}

/* Run until everything closed, then check the invariants every loop test shares. */
static void run(void)
{
    assert_int_equal(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
    assert_true(fx.finished);
    assert_int_equal(fx.closed_calls, 1);
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    fx.loop_closed = true;
    for (int i = 0; i < fx.n_started; i++)
        assert_int_equal(fx.res[i].calls, 1);
    assert_int_equal(fx.done_calls, fx.n_started);
}

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    if (uv_loop_init(&fx.loop) != 0)
        return -1;
    srv_start(&fx.srv, &fx.loop);
    fx.oh = outhttp_new(&fx.loop);
    if (fx.oh == NULL)
        return -1;
    if (uv_timer_init(&fx.loop, &fx.guard) != 0 ||
        uv_timer_start(&fx.guard, on_guard, GUARD_MS, 0) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (!fx.loop_closed) {
        /* The test failed before run() finished: still release everything we can. */
        fx_finish();
        uv_run(&fx.loop, UV_RUN_DEFAULT);
        rc = uv_loop_close(&fx.loop) == 0 ? 0 : -1;
    }
    for (int i = 0; i < MAX_XFERS; i++) {
        buf_free(&fx.res[i].body);
        buf_free(&fx.res[i].headers);
    }
    srv_free(&fx.srv);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: responses                                                                             */
/* ------------------------------------------------------------------------------------------ */

static const char resp_hello[] = "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "X-Test:  yes \r\n"
                                 "Content-Length: 5\r\n"
                                 "Connection: close\r\n"
                                 "\r\n"
                                 "hello";

static void use_response(const char *resp, size_t len)
{
    fx.srv.response = resp;
    fx.srv.response_len = len;
}

static void test_post_ok(void **state)
{
    (void)state;
    use_response(resp_hello, sizeof(resp_hello) - 1);

    /* Over 1 KiB, where libcurl would otherwise send "Expect: 100-continue" and wait. */
    char body[2049];
    for (size_t i = 0; i < sizeof(body) - 1; i++)
        body[i] = (char)('a' + i % 26);
    body[sizeof(body) - 1] = '\0';
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo?q=1", fx.srv.port);
    const char *const headers[] = {"X-Req: one", "Content-Type: application/json", NULL};
    outhttp_request_t req = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = 5000,
    };
    assert_non_null(start_req(&req));
    assert_int_equal(outhttp_in_flight(fx.oh), 1);
    fx.expected = 1;
    run();

    result_t *r = &fx.res[0];
    assert_null(r->error);
    assert_false(r->has_detail);
    assert_int_equal(r->status, 200);
    assert_string_equal(body_of(r), "hello");
    assert_int_equal(r->body.len, 5);
    assert_true(r->body_terminated);
    assert_true(r->elapsed_ms < 5000);
    const char *h = headers_of(r);
    assert_true(strncmp(h, "HTTP/1.1 200 OK\r\n", 17) == 0);
    char v[64];
    assert_int_equal(outhttp_header_get(h, "x-test", v, sizeof(v)), 3);
    assert_string_equal(v, "yes");
    assert_int_equal(outhttp_header_get(h, "Content-Type", v, sizeof(v)), 10);
    assert_string_equal(v, "text/plain");

    /* What the peer saw. */
    assert_int_equal(fx.srv.n_reqs, 1);
    const seen_req_t *s = &fx.srv.reqs[0];
    assert_true(strncmp(s->head, "POST /echo?q=1 HTTP/1.1\r\n", 25) == 0);
    assert_non_null(strstr(s->head, "\r\nX-Req: one\r\n"));
    assert_non_null(strstr(s->head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(s->head, "\r\nContent-Length: 2048\r\n"));
    assert_null(strcasestr(s->head, "\r\nExpect:"));
    assert_int_equal(s->body_len, 2048);
    assert_memory_equal(s->body, body, 2048);
}

static void test_methods(void **state)
{
    (void)state;
    use_response(resp_hello, sizeof(resp_hello) - 1);
    start("GET", "/get", NULL, 5000);
    start("PUT", "/put", "{\"x\":2}", 5000);
    start("DELETE", "/delete", NULL, 5000);
    start("POST", "/post-empty", NULL, 5000);
    start("PATCH", "/patch", "p", 5000);
    assert_int_equal(outhttp_in_flight(fx.oh), 5);
    fx.expected = 5;
    run();

    for (int i = 0; i < 5; i++) {
        assert_null(fx.res[i].error);
        assert_int_equal(fx.res[i].status, 200);
    }
    const seen_req_t *s = srv_find("/get");
    assert_true(strncmp(s->head, "GET /get HTTP/1.1\r\n", 19) == 0);
    assert_null(strcasestr(s->head, "content-length"));
    s = srv_find("/put");
    assert_true(strncmp(s->head, "PUT /put HTTP/1.1\r\n", 19) == 0);
    assert_string_equal(s->body, "{\"x\":2}");
    s = srv_find("/delete");
    assert_true(strncmp(s->head, "DELETE /delete HTTP/1.1\r\n", 25) == 0);
    assert_int_equal(s->body_len, 0);
    s = srv_find("/post-empty");
    assert_true(strncmp(s->head, "POST /post-empty HTTP/1.1\r\n", 27) == 0);
    assert_non_null(strstr(s->head, "\r\nContent-Length: 0\r\n"));
    s = srv_find("/patch");
    assert_true(strncmp(s->head, "PATCH /patch HTTP/1.1\r\n", 23) == 0);
    assert_string_equal(s->body, "p");
}

static void test_status_500(void **state)
{
    (void)state;
    static const char resp[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n"
                               "Connection: close\r\n\r\noops";
    use_response(resp, sizeof(resp) - 1);
    start("POST", "/fail", "{}", 5000);
    fx.expected = 1;
    run();
    assert_null(fx.res[0].error);
    assert_int_equal(fx.res[0].status, 500);
    assert_string_equal(body_of(&fx.res[0]), "oops");
}

static void test_timeout(void **state)
{
    (void)state;
    start("POST", "/silent", "{}", 300);
    fx.expected = 1;
    run();
    result_t *r = &fx.res[0];
    assert_ptr_equal(r->error, OUTHTTP_ERR_TIMEOUT);
    assert_true(r->has_detail);
    assert_int_equal(r->status, 0);
    assert_int_equal(fx.srv.n_reqs, 1); /* the request did arrive */
    if (r->elapsed_ms < 280 || r->elapsed_ms > 2000)
        fail_msg("timeout after %llu ms, wanted about 300", (unsigned long long)r->elapsed_ms);
}

static void test_connect_refused(void **state)
{
    (void)state;
    /* A port that was just free: bind it, note it, close it. */
    uv_tcp_t probe;
    int port = tcp_listen_any(&fx.loop, &probe, NULL);
    uv_close((uv_handle_t *)&probe, NULL);

    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    outhttp_request_t req = {.method = "GET", .url = url, .timeout_ms = 5000};
    assert_non_null(start_req(&req));
    fx.expected = 1;
    run();
    assert_ptr_equal(fx.res[0].error, OUTHTTP_ERR_CONNECT);
    assert_true(fx.res[0].has_detail);
    assert_int_equal(fx.res[0].status, 0);
    assert_true(fx.res[0].elapsed_ms < 5000);
}

static void test_redirect_not_followed(void **state)
{
    (void)state;
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/elsewhere\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n",
                     fx.srv.port);
    use_response(resp, (size_t)n);
    start("GET", "/from", NULL, 5000);
    fx.expected = 1;
    run();
    assert_null(fx.res[0].error);
    assert_int_equal(fx.res[0].status, 302);
    assert_int_equal(fx.srv.n_reqs, 1);
    char loc[128];
    assert_true(outhttp_header_get(headers_of(&fx.res[0]), "Location", loc, sizeof(loc)) > 0);
    assert_non_null(strstr(loc, "/elsewhere"));
}

/* A response of head + body_len bytes of 'x', with or without Content-Length. */
static char *big_response(size_t body_len, bool with_length, size_t *len)
{
    buf_t b = {0};
    if (with_length)
        buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                   body_len);
    else
        buf_append_str(&b, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    buf_reserve(&b, body_len);
    memset(b.data + b.len, 'x', body_len);
    b.len += body_len;
    return buf_steal(&b, len);
}

static void test_too_large_announced(void **state)
{
    (void)state;
    size_t len;
    char *resp = big_response(2 * 1024 * 1024, true, &len);
    use_response(resp, len);
    start("GET", "/big", NULL, 5000);
    fx.expected = 1;
    run();
    free(resp);
    assert_ptr_equal(fx.res[0].error, OUTHTTP_ERR_TOO_LARGE);
    assert_int_equal(fx.res[0].status, 0);
    assert_true(fx.res[0].has_detail);
}

static void test_too_large_streamed(void **state)
{
    (void)state;
    size_t len;
    char *resp = big_response(2 * 1024 * 1024, false, &len); /* body ends at EOF */
    use_response(resp, len);
    start("GET", "/big", NULL, 5000);
    fx.expected = 1;
    run();
    free(resp);
    assert_ptr_equal(fx.res[0].error, OUTHTTP_ERR_TOO_LARGE);
    assert_int_equal(fx.res[0].status, 0);
    assert_non_null(strstr(fx.res[0].detail, "body"));
}

static void test_exactly_max(void **state)
{
    (void)state;
    size_t len;
    char *resp = big_response(OUTHTTP_MAX_RESPONSE, false, &len);
    use_response(resp, len);
    start("GET", "/max", NULL, 5000);
    fx.expected = 1;
    run();
    free(resp);
    assert_null(fx.res[0].error);
    assert_int_equal(fx.res[0].status, 200);
    assert_int_equal(fx.res[0].body.len, OUTHTTP_MAX_RESPONSE);
    assert_true(fx.res[0].body_terminated);
}

static void test_retry_after_after_100(void **state)
{
    (void)state;
    /* An unsolicited interim response first: only the final block is reported. */
    static const char resp[] = "HTTP/1.1 100 Continue\r\nRetry-After: 1\r\n\r\n"
                               "HTTP/1.1 503 Service Unavailable\r\nRetry-After:\t120\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";
    use_response(resp, sizeof(resp) - 1);
    start("POST", "/busy", "{}", 5000);
    fx.expected = 1;
    run();
    result_t *r = &fx.res[0];
    assert_null(r->error);
    assert_int_equal(r->status, 503);
    const char *h = headers_of(r);
    assert_true(strncmp(h, "HTTP/1.1 503", 12) == 0);
    char v[16];
    assert_int_equal(outhttp_header_get(h, "retry-after", v, sizeof(v)), 3);
    assert_string_equal(v, "120");
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: refused requests                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_refused_at_start(void **state)
{
    (void)state;
    char ok_url[128];
    snprintf(ok_url, sizeof(ok_url), "http://127.0.0.1:%d/", fx.srv.port);
    const char *const bad_header[] = {"X-A: 1\r\nX-Injected: 1", NULL};
    const outhttp_request_t bad[] = {
        {.method = "GET", .url = "ftp://127.0.0.1/file", .timeout_ms = 1000},
        {.method = "GET", .url = "file:///etc/passwd", .timeout_ms = 1000},
        {.method = "GET", .url = "127.0.0.1/", .timeout_ms = 1000},
        {.method = "GET", .url = "http:/x", .timeout_ms = 1000},
        {.method = "GET", .url = "", .timeout_ms = 1000},
        {.method = "GET", .url = NULL, .timeout_ms = 1000},
        {.method = "", .url = ok_url, .timeout_ms = 1000},
        {.method = NULL, .url = ok_url, .timeout_ms = 1000},
        {.method = "GET /x HTTP/1.1\r\n", .url = ok_url, .timeout_ms = 1000},
        {.method = "GET", .url = ok_url, .headers = bad_header, .timeout_ms = 1000},
    };
    for (size_t i = 0; i < CR_ARRAY_SIZE(bad); i++) {
        if (start_req(&bad[i]) != NULL)
            fail_msg("case %zu was accepted", i);
    }
    assert_int_equal(outhttp_in_flight(fx.oh), 0);
    assert_int_equal(fx.n_started, 0);

    /* The scheme is case-insensitive; a malformed http URL fails from the loop. */
    use_response(resp_hello, sizeof(resp_hello) - 1);
    char upper[128];
    snprintf(upper, sizeof(upper), "HtTp://127.0.0.1:%d/upper", fx.srv.port);
    outhttp_request_t up = {.method = "GET", .url = upper, .timeout_ms = 5000};
    assert_non_null(start_req(&up));
    outhttp_request_t mal = {.method = "GET", .url = "http://[::1/", .timeout_ms = 5000};
    assert_non_null(start_req(&mal));
    fx.expected = 2;
    run();
    assert_null(fx.res[0].error);
    assert_int_equal(fx.res[0].status, 200);
    assert_ptr_equal(fx.res[1].error, OUTHTTP_ERR_BAD_URL);
    assert_true(fx.res[1].has_detail);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: cancel and close                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* The server got the request: cancel it from there, as a saga would on shutdown. */
static void cancel_on_request(const seen_req_t *r)
{
    (void)r;
    fx.hook_calls++;
    int before = fx.res[0].calls;
    outhttp_cancel(fx.oh, fx.res[0].x);
    fx.hook_calls_seen = fx.res[0].calls - before; /* synchronously, exactly once */
    fx.in_flight_seen = outhttp_in_flight(fx.oh);
}

static void test_cancel(void **state)
{
    (void)state;
    fx.srv.on_request = cancel_on_request;
    start("POST", "/silent", "{}", 5000);

    /* And one cancelled before the loop ever ran. */
    outhttp_xfer_t *x = start("GET", "/silent-never", NULL, 5000);
    outhttp_cancel(fx.oh, x);
    assert_int_equal(fx.res[1].calls, 1);
    assert_ptr_equal(fx.res[1].error, OUTHTTP_ERR_CANCELED);
    assert_int_equal(outhttp_in_flight(fx.oh), 1);

    fx.expected = 2;
    run();
    assert_int_equal(fx.hook_calls, 1);
    assert_int_equal(fx.hook_calls_seen, 1);
    assert_int_equal(fx.in_flight_seen, 0);
    assert_ptr_equal(fx.res[0].error, OUTHTTP_ERR_CANCELED);
    assert_int_equal(fx.res[0].status, 0);
    assert_int_equal(fx.srv.n_reqs, 1); /* the one cancelled early never connected */
}

static void start_during_close(result_t *r)
{
    (void)r;
    /* Runs inside outhttp_close's cancellation: a new transfer must be refused. */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/late", fx.srv.port);
    outhttp_request_t req = {.method = "GET", .url = url, .timeout_ms = 1000};
    if (outhttp_start(fx.oh, &req, on_done, &fx.res[MAX_XFERS - 1]) != NULL)
        fx.hook_calls++;
}

static void close_when_three(const seen_req_t *r)
{
    (void)r;
    if (fx.srv.n_reqs == 3) {
        fx.in_flight_seen = outhttp_in_flight(fx.oh);
        fx_finish();
    }
}

static void test_close_cancels_in_flight(void **state)
{
    (void)state;
    fx.srv.on_request = close_when_three;
    for (int i = 0; i < 3; i++) {
        start("POST", "/silent", "{}", 5000);
        fx.res[i].then = start_during_close;
    }
    run();
    assert_int_equal(fx.in_flight_seen, 3);
    assert_int_equal(fx.hook_calls, 0);
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(fx.res[i].error, OUTHTTP_ERR_CANCELED);
    assert_int_equal(fx.res[MAX_XFERS - 1].calls, 0);
}

static void close_from_callback(result_t *r)
{
    (void)r;
    fx_finish();
}

static void test_close_from_callback(void **state)
{
    (void)state;
    use_response(resp_hello, sizeof(resp_hello) - 1);
    for (int i = 0; i < 3; i++)
        start("POST", "/silent", "{}", 5000);
    start("GET", "/fast", NULL, 5000);
    fx.res[3].then = close_from_callback;
    run();
    assert_null(fx.res[3].error);
    assert_int_equal(fx.res[3].status, 200);
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(fx.res[i].error, OUTHTTP_ERR_CANCELED);
}

static void test_close_idle(void **state)
{
    (void)state;
    fx_finish();
    run();
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: many transfers                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void test_concurrent_50(void **state)
{
    (void)state;
    /* No canned response: the server answers each request with its own path. */
    char path[32];
    for (int i = 0; i < 50; i++) {
        snprintf(path, sizeof(path), "/n%d", i);
        start("GET", path, NULL, 10000);
    }
    assert_int_equal(outhttp_in_flight(fx.oh), 50);
    fx.expected = 50;
    run();
    assert_int_equal(fx.srv.n_reqs, 50);
    for (int i = 0; i < 50; i++) {
        snprintf(path, sizeof(path), "/n%d", i);
        assert_null(fx.res[i].error);
        assert_int_equal(fx.res[i].status, 200);
        assert_string_equal(body_of(&fx.res[i]), path);
    }
}

#define CHAIN_LEN 20

/* Start the next transfer from inside the previous one's callback. With Connection: close each
 * exchange ends with CURL_POLL_REMOVE, and the next socket usually gets the same descriptor. */
static void chain_next(result_t *r)
{
    if (r->error != NULL || fx.n_started >= CHAIN_LEN)
        return;
    char path[32];
    snprintf(path, sizeof(path), "/c%d", fx.n_started);
    start("GET", path, NULL, 5000);
    fx.res[fx.n_started - 1].then = chain_next;
}

static void test_chain_fd_reuse(void **state)
{
    (void)state;
    start("GET", "/c0", NULL, 5000);
    fx.res[0].then = chain_next;
    fx.expected = CHAIN_LEN;
    run();
    assert_int_equal(fx.n_started, CHAIN_LEN);
    for (int i = 0; i < CHAIN_LEN; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/c%d", i);
        assert_null(fx.res[i].error);
        assert_string_equal(body_of(&fx.res[i]), path);
    }
}

static void test_chain_keep_alive(void **state)
{
    (void)state;
    /* The server keeps connections open: libcurl reuses its cached one, and outhttp_close must
     * still release it. */
    fx.srv.keep_alive = true;
    start("GET", "/c0", NULL, 5000);
    fx.res[0].then = chain_next;
    fx.expected = CHAIN_LEN;
    run();
    for (int i = 0; i < CHAIN_LEN; i++)
        assert_null(fx.res[i].error);
    assert_int_equal(fx.srv.n_reqs, CHAIN_LEN);
}

/* Each transfer starts the next from its callback, after its handle went back to the idle list:
 * every one of them runs on the handle the one before used. */
static const struct {
    const char *method, *path, *body;
} reuse_steps[] = {
    {"POST", "/r0", "{\"a\":1}"}, {"GET", "/r1", NULL},  {"PUT", "/r2", "xy"},
    {"DELETE", "/r3", NULL},      {"PATCH", "/r4", "p"}, {"GET", "/r5", NULL},
};
#define REUSE_STEPS (int)(sizeof reuse_steps / sizeof reuse_steps[0])

static void reuse_next(result_t *r)
{
    if (r->error != NULL || fx.n_started >= REUSE_STEPS)
        return;
    int i = fx.n_started;
    start(reuse_steps[i].method, reuse_steps[i].path, reuse_steps[i].body, 5000);
    fx.res[i].then = reuse_next;
}

static void test_reused_handle_forgets(void **state)
{
    (void)state;
    use_response(resp_hello, sizeof(resp_hello) - 1);
    start(reuse_steps[0].method, reuse_steps[0].path, reuse_steps[0].body, 5000);
    fx.res[0].then = reuse_next;
    fx.expected = REUSE_STEPS;
    run();
    assert_int_equal(fx.n_started, REUSE_STEPS);
    for (int i = 0; i < REUSE_STEPS; i++) {
        assert_null(fx.res[i].error);
        assert_int_equal(fx.res[i].status, 200);
        char line[64];
        snprintf(line, sizeof line, "%s %s HTTP/1.1\r\n", reuse_steps[i].method,
                 reuse_steps[i].path);
        const seen_req_t *s = srv_find(reuse_steps[i].path);
        assert_non_null(s);
        if (strncmp(s->head, line, strlen(line)) != 0)
            fail_msg("step %d: request line %.40s, want %s", i, s->head, line);
        /* nothing of the request before: no body, no length, no custom method */
        if (reuse_steps[i].body == NULL) {
            assert_int_equal(s->body_len, 0);
            if (strcmp(reuse_steps[i].method, "GET") == 0)
                assert_null(strcasestr(s->head, "content-length"));
        } else {
            assert_string_equal(s->body, reuse_steps[i].body);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: outhttp_header_get on raw blocks                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_header_get(void **state)
{
    (void)state;
    char v[32];
    const char *block = "HTTP/1.1 100 Continue\r\n"
                        "Retry-After: 1\r\n"
                        "\r\n"
                        "HTTP/1.1 429 Too Many Requests\r\n"
                        "retry-after:  30  \r\n"
                        "X-Empty:\r\n"
                        "X-Long: 0123456789abcdef\r\n"
                        "Retry-After-Ms: 5\r\n"
                        "\r\n";

    assert_int_equal(outhttp_header_get(block, "Retry-After", v, sizeof(v)), 2);
    assert_string_equal(v, "30");
    assert_int_equal(outhttp_header_get(block, "RETRY-AFTER-MS", v, sizeof(v)), 1);
    assert_string_equal(v, "5");
    assert_int_equal(outhttp_header_get(block, "X-Empty", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    assert_int_equal(outhttp_header_get(block, "Retry", v, sizeof(v)), -1);
    assert_int_equal(outhttp_header_get(block, "Missing", v, sizeof(v)), -1);
    assert_int_equal(outhttp_header_get(block, "", v, sizeof(v)), -1);
    assert_int_equal(outhttp_header_get(NULL, "X", v, sizeof(v)), -1);

    /* Truncation keeps the terminator and reports what was copied. */
    char small[5];
    assert_int_equal(outhttp_header_get(block, "X-Long", small, sizeof(small)), 4);
    assert_string_equal(small, "0123");

    /* Only the final block counts: the interim response's header is not visible. */
    const char *interim_only = "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(outhttp_header_get(interim_only, "X-Interim", v, sizeof(v)), -1);
    assert_int_equal(outhttp_header_get(interim_only, "Content-Length", v, sizeof(v)), 1);

    /* Bare LF line ends and a block without a status line. */
    assert_int_equal(outhttp_header_get("A: 1\nB: two\n", "b", v, sizeof(v)), 3);
    assert_string_equal(v, "two");
    assert_int_equal(outhttp_header_get("", "A", v, sizeof(v)), -1);
}

int main(void)
{
    /* A client that gives up mid-response must not kill the test server with SIGPIPE, and the
     * loopback requests must not go through a proxy from the environment. */
    signal(SIGPIPE, SIG_IGN);
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
                                          "all_proxy",  "ALL_PROXY",   "HTTP_PROXY"};
    for (size_t i = 0; i < CR_ARRAY_SIZE(proxies); i++)
        unsetenv(proxies[i]);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_post_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_announced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_streamed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exactly_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_after_100, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_50, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_fd_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_handle_forgets, setup, teardown),
        cmocka_unit_test(test_header_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
