/*
 * test_http.c - the HTTP/1.1 front end of the real binary, over raw sockets: keep-alive,
 * pipelining, chunked bodies, framing errors (/work/shared/BAD_INPUT.md), limits, timeouts,
 * routing, X-Request-Id, half-close, absolute-form targets, and that nothing refused reaches
 * Redis.
 *
 * One redis-server and one gateway serve the whole file (group setup and teardown); the gateway
 * runs tests/fixtures/configs/gateway.json: 64 KiB bodies, 1 s header timeout, 1.5 s body
 * timeout, 3 s idle timeout. Teardown stops it with SIGTERM and fails on a non-zero exit or any
 * sanitizer report in its log.
 *
 * Each family is a table, kept in tests/support/bad_input_cases.c (test_behind_nginx.c sends
 * the same bytes through nginx). A table runner tries every row (and every way of sending it)
 * before failing, printing each broken row with the bytes that came back, so one run names every
 * regression. Every request the gateway accepts ("pending") is counted; each refusing table and
 * the last test check that Redis holds exactly that many saga records, so no refused request
 * reached Redis. (Saga records, not the stream's length: the saga engine deletes stream entries
 * as sagas end and adds wake-up entries, while a saga record stays for retention_s.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bad_input_cases.h"
#include "harness.h"
#include "util/buf.h"

/* ------------------------------------------------------------------------------------------ */
/* Fixtures                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static harness_redis_t redis;
static harness_gw_t gw;
static long long saga_base; /* saga records in Redis when the gateway came up */
static long long accepted;  /* "pending" answers seen since: each stored one saga */

/* The limits of gateway.json that the cases below are built around. */
#define HEADER_TIMEOUT_MS 1000
#define BODY_TIMEOUT_MS   1500
#define IDLE_TIMEOUT_MS   3000

/* How long to wait for an answer that should come at once. */
#define ANSWER_MS 3000

static int group_setup(void **state)
{
    (void)state;
    if (harness_redis_start(&redis, false) != 0)
        return -1;
    if (harness_gw_start(&gw, "gateway.json", redis.port, NULL) != 0)
        return -1;
    if (!harness_gw_wait_ready(&gw, 200, 10000))
        return -1;
    saga_base = harness_saga_count(&redis);
    return saga_base < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (gw.pid <= 0) { /* setup failed and said why */
        harness_redis_stop(&redis);
        return -1;
    }
    int rc = harness_gw_stop(&gw);
    harness_redis_stop(&redis);
    assert_int_equal(rc, 0);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Checking exchanges                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* What went wrong with the current row, and the bytes that came back for it. */
static char why[1024];
static buf_t last_raw;

static bool problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool problem(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return false;
}

static void keep_raw(const char *raw, size_t len)
{
    buf_reset(&last_raw);
    buf_append(&last_raw, raw, len);
}

/* Print a failed row: its name, how it was sent, the problem, and what came back (escaped). */
static void report(const char *name, const char *mode)
{
    char shown[700];
    size_t o = 0;
    for (size_t i = 0; i < last_raw.len && o + 5 < sizeof shown; i++) {
        unsigned char ch = (unsigned char)last_raw.data[i];
        if (ch == '\r' || ch == '\n') {
            shown[o++] = '\\';
            shown[o++] = ch == '\r' ? 'r' : 'n';
        } else if (ch < 0x20 || ch >= 0x7f) {
            o += (size_t)snprintf(shown + o, sizeof shown - o, "\\x%02x", ch);
        } else {
            shown[o++] = (char)ch;
        }
    }
    shown[o] = '\0';
    print_error("FAILED %s [%s]: %s\n    received (%zu bytes): %s%s\n", name, mode, why,
                last_raw.len, shown, o + 5 >= sizeof shown ? "..." : "");
}

/* Count a "pending" answer: the gateway stored a saga for it. */
static void note_pending(const harness_resp_t *r)
{
    const char *st = json_string_value(json_object_get(r->json, "status"));
    if (r->status == 200 && st != NULL && strcmp(st, "pending") == 0)
        accepted++;
}

/*
 * The i-th response in raw: status as given, an X-Request-Id on every final response, a
 * Connection header equal to conn (when not NULL), and a JSON {"detail": ...} on errors.
 * Counts a "pending" answer.
 */
static bool check_resp(const char *raw, size_t len, int i, int status, const char *conn)
{
    harness_resp_t r;
    if (harness_raw_parse(raw, len, i, &r) != 0)
        return problem("response %d missing or cut short", i + 1);
    bool ok = true;
    char v[256];
    if (r.status != status) {
        ok = problem("response %d: status %d, expected %d", i + 1, r.status, status);
    } else if (status >= 200 && !harness_resp_header(&r, "X-Request-Id", v, sizeof v)) {
        ok = problem("response %d: no X-Request-Id", i + 1);
    } else if (conn != NULL &&
               (!harness_resp_header(&r, "Connection", v, sizeof v) || strcasecmp(v, conn) != 0)) {
        ok = problem("response %d: Connection is not \"%s\"", i + 1, conn);
    } else if (status >= 400 && !json_is_string(json_object_get(r.json, "detail")) &&
               !json_is_array(json_object_get(r.json, "detail"))) {
        ok = problem("response %d: body is not JSON with a detail", i + 1);
    }
    note_pending(&r);
    harness_resp_free(&r);
    return ok;
}

/* Does the server close fd within ms, sending nothing more? */
static bool closes_quietly(int fd, int ms)
{
    size_t len;
    bool closed;
    char *more = harness_raw_recv_all(fd, ms, &len, &closed);
    free(more);
    if (len > 0)
        return problem("%zu unexpected bytes after the last response", len);
    if (!closed)
        return problem("connection still open %d ms after the last response", ms);
    return true;
}

/* Is fd still open and silent after ms? */
static bool stays_open(int fd, int ms)
{
    size_t len;
    bool closed;
    char *more = harness_raw_recv_all(fd, ms, &len, &closed);
    free(more);
    if (len > 0)
        return problem("%zu unexpected bytes after the last response", len);
    if (closed)
        return problem("server closed a keep-alive connection");
    return true;
}

/* A fresh connection still gets GET /healthz answered: the last case did not hurt the server. */
static bool canary_ok(void)
{
    int fd = harness_raw_connect(gw.port);
    if (fd < 0)
        return problem("canary: cannot connect");
    bool ok = harness_raw_send(fd, R(GET_HEALTHZ), 0) == 0;
    size_t len = 0;
    bool closed;
    char *raw = ok ? harness_raw_recv_n(fd, 1, ANSWER_MS, &len, &closed) : NULL;
    ok = raw != NULL && check_resp(raw, len, 0, 200, "keep-alive");
    if (!ok)
        problem("canary GET /healthz on a new connection failed");
    free(raw);
    close(fd);
    return ok;
}

/* Send bytes on a new connection (chunk bytes per write, 0 = one write) and read want answers. */
static int exchange(const char *req, size_t len, size_t chunk, int want, char **raw,
                    size_t *raw_len, bool *closed)
{
    int fd = harness_raw_connect(gw.port);
    assert_true(fd >= 0);
    /* A server that refuses early may close before the rest arrives: a failed send is fine. */
    (void)harness_raw_send(fd, req, len, chunk);
    *raw = harness_raw_recv_n(fd, want, ANSWER_MS, raw_len, closed);
    keep_raw(*raw, *raw_len);
    return fd;
}

/* ------------------------------------------------------------------------------------------ */
/* Keep-alive                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static bool keepalive_run(const conversation_t *c)
{
    int fd = harness_raw_connect(gw.port);
    assert_true(fd >= 0);
    bool ok = true;
    for (size_t i = 0; ok && i < 3 && c->steps[i].send != NULL; i++) {
        const step_t *s = &c->steps[i];
        if (harness_raw_send(fd, s->send, strlen(s->send), 0) != 0) {
            ok = problem("request %zu: send failed", i + 1);
            break;
        }
        size_t len;
        bool closed;
        char *raw = harness_raw_recv_n(fd, 1, ANSWER_MS, &len, &closed);
        keep_raw(raw, len);
        ok = check_resp(raw, len, 0, s->status, s->connection);
        if (ok && harness_raw_count(raw, len) != 1)
            ok = problem("request %zu: %d responses", i + 1, harness_raw_count(raw, len));
        if (ok && strstr(raw, " 101 ") != NULL)
            ok = problem("request %zu: switched protocols", i + 1);
        free(raw);
    }
    if (ok)
        ok = c->closes ? closes_quietly(fd, 1000) : stays_open(fd, 200);
    close(fd);
    return ok;
}

static void test_keepalive(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < keepalive_cases_n; i++) {
        if (!keepalive_run(&keepalive_cases[i])) {
            report(keepalive_cases[i].name, "one at a time");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Pipelining                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static bool pipeline_run(const pipeline_case_t *c)
{
    char *raw;
    size_t len;
    bool closed;
    int fd = exchange(c->send, strlen(c->send), c->chunk, c->n, &raw, &len, &closed);
    bool ok = true;
    if (harness_raw_count(raw, len) != c->n)
        ok = problem("%d responses, expected %d", harness_raw_count(raw, len), c->n);
    for (int i = 0; ok && i < c->n; i++) {
        ok = check_resp(raw, len, i, c->status[i], "keep-alive");
        harness_resp_t r;
        if (ok && harness_raw_parse(raw, len, i, &r) == 0) {
            if (strstr(r.body, c->body_has[i]) == NULL)
                ok = problem("response %d out of order: body lacks %s", i + 1, c->body_has[i]);
            harness_resp_free(&r);
        }
    }
    if (ok)
        ok = stays_open(fd, 100);
    free(raw);
    close(fd);
    return ok;
}

static void test_pipelining(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < pipeline_cases_n; i++) {
        if (!pipeline_run(&pipeline_cases[i])) {
            report(pipeline_cases[i].name, pipeline_cases[i].chunk ? "bytewise" : "one write");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Chunked bodies that are valid (errors are in the chunk framing table below)                  */
/* ------------------------------------------------------------------------------------------ */

static bool body_run(const body_case_t *c, size_t chunk)
{
    char *raw;
    size_t len;
    bool closed;
    int fd = exchange(c->send, strlen(c->send), chunk, 1, &raw, &len, &closed);
    bool ok = check_resp(raw, len, 0, c->status, "keep-alive");
    if (ok && harness_raw_count(raw, len) != 1)
        ok = problem("%d responses, expected 1", harness_raw_count(raw, len));
    if (ok && c->status == 200 && strstr(raw, "\"pending\"") == NULL)
        ok = problem("200 without \"pending\"");
    if (ok)
        ok = stays_open(fd, 100);
    free(raw);
    close(fd);
    return ok;
}

static void test_chunked_bodies(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < chunked_cases_n; i++) {
        if (!body_run(&chunked_cases[i], 0)) {
            report(chunked_cases[i].name, "one write");
            failed++;
        }
        if (!body_run(&chunked_cases[i], 1)) {
            report(chunked_cases[i].name, "bytewise");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Framing errors                                                                               */
/* ------------------------------------------------------------------------------------------ */

/*
 * A request the server must refuse: status, "Connection: close", then the server closes. Each
 * row is sent three ways: whole; 1 byte per write; and between two valid GET /healthz on a
 * keep-alive connection, where exactly two answers must come back (200, then the refusal) and
 * the GET after the bad request is never processed. After each, a GET /healthz on a new
 * connection must succeed.
 */

static bool frame_whole(const frame_case_t *c, size_t chunk)
{
    char *raw;
    size_t len;
    bool closed;
    int fd = exchange(c->req, c->len, chunk, 1, &raw, &len, &closed);
    bool ok = check_resp(raw, len, 0, c->status, "close");
    if (ok && harness_raw_count(raw, len) != 1)
        ok = problem("%d responses, expected 1", harness_raw_count(raw, len));
    if (ok && !closed)
        ok = closes_quietly(fd, 1000);
    free(raw);
    close(fd);
    return ok && canary_ok();
}

static bool frame_second(const frame_case_t *c)
{
    buf_t req = {0};
    buf_append_str(&req, GET_HEALTHZ);
    buf_append(&req, c->req, c->len);
    buf_append_str(&req, GET_HEALTHZ);
    char *raw;
    size_t len;
    bool closed;
    int fd = exchange(req.data, req.len, 0, 2, &raw, &len, &closed);
    buf_free(&req);
    bool ok =
        check_resp(raw, len, 0, 200, "keep-alive") && check_resp(raw, len, 1, c->status, "close");
    if (ok && harness_raw_count(raw, len) != 2)
        ok = problem("%d responses, expected 2", harness_raw_count(raw, len));
    if (ok && !closed)
        ok = closes_quietly(fd, 1000);
    free(raw);
    close(fd);
    return ok && canary_ok();
}

static int frame_table_run(const frame_case_t *cases, size_t n)
{
    int failed = 0;
    long long before = harness_saga_count(&redis);
    for (size_t i = 0; i < n; i++) {
        if (!frame_whole(&cases[i], 0)) {
            report(cases[i].name, "whole");
            failed++;
        }
        if (!frame_whole(&cases[i], 1)) {
            report(cases[i].name, "1 byte per write");
            failed++;
        }
        if (!frame_second(&cases[i])) {
            report(cases[i].name, "second on keep-alive");
            failed++;
        }
    }
    long long after = harness_saga_count(&redis);
    if (after != before) {
        print_error("FAILED: saga records went from %lld to %lld: a refused request reached "
                    "Redis\n",
                    before, after);
        failed++;
    }
    return failed;
}

static void test_framing_header_block(void **state)
{
    (void)state;
    assert_int_equal(frame_table_run(header_framing_cases, header_framing_cases_n), 0);
}

static void test_framing_chunks(void **state)
{
    (void)state;
    assert_int_equal(frame_table_run(chunk_framing_cases, chunk_framing_cases_n), 0);
}

static void test_framing_request_line(void **state)
{
    (void)state;
    assert_int_equal(frame_table_run(request_line_cases, request_line_cases_n), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Limits                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static bool limit_run(const limit_case_t *c)
{
    buf_t req = {0};
    c->build(&req);
    long long t0 = harness_now_ms();
    char *raw;
    size_t len;
    bool closed;
    int fd = exchange(req.data, req.len, 0, 1, &raw, &len, &closed);
    long long took = harness_now_ms() - t0;
    buf_free(&req);
    bool ok = check_resp(raw, len, 0, c->status, c->closes ? "close" : "keep-alive");
    if (ok && harness_raw_count(raw, len) != 1)
        ok = problem("%d responses, expected 1 (no 100 Continue either)",
                     harness_raw_count(raw, len));
    if (ok && c->within_ms > 0 && took > c->within_ms)
        ok = problem("answered after %lld ms, expected within %d ms", took, c->within_ms);
    if (ok && c->closes && !closed)
        ok = closes_quietly(fd, 1000);
    if (ok && !c->closes)
        ok = stays_open(fd, 100);
    free(raw);
    close(fd);
    return ok && canary_ok();
}

static void test_limits(void **state)
{
    (void)state;
    int failed = 0;
    long long before = harness_saga_count(&redis);
    for (size_t i = 0; i < limit_cases_n; i++) {
        if (!limit_run(&limit_cases[i])) {
            report(limit_cases[i].name, "one write");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
    assert_int_equal(harness_saga_count(&redis), before);
}

/* Expect: 100-continue with a valid body: "100 Continue" first, then the final answer. */
static void test_expect_continue(void **state)
{
    (void)state;
    int fd = harness_raw_connect(gw.port);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_send(fd,
                                      R(CANCEL "Expect: 100-continue\r\n"
                                               "Content-Length: 58\r\n\r\n"),
                                      0),
                     0);
    size_t len;
    bool closed;
    char *raw = harness_raw_recv_n(fd, 1, ANSWER_MS, &len, &closed);
    assert_false(closed);
    assert_int_equal(harness_raw_complete(raw, len), 1);
    assert_true(len == 25 && memcmp(raw, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    free(raw);

    assert_int_equal(harness_raw_send(fd, R(BODY_OK), 0), 0);
    raw = harness_raw_recv_n(fd, 1, ANSWER_MS, &len, &closed);
    harness_resp_t r;
    assert_int_equal(harness_raw_parse(raw, len, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "pending");
    note_pending(&r);
    harness_resp_free(&r);
    free(raw);

    /* HTTP/1.0 clients do not know 100 Continue: no interim answer for them. */
    assert_int_equal(harness_raw_send(fd,
                                      R("POST /v1/order/cancel HTTP/1.0\r\n" HOST AUTH
                                        "Connection: keep-alive\r\n"
                                        "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"),
                                      0),
                     0);
    raw = harness_raw_recv_n(fd, 1, ANSWER_MS, &len, &closed);
    assert_int_equal(harness_raw_parse(raw, len, 0, &r), 0);
    assert_int_equal(r.status, 422);
    harness_resp_free(&r);
    free(raw);
    close(fd);
}

/* ------------------------------------------------------------------------------------------ */
/* Timeouts                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct slow_case {
    const char *name;
    const char *send;   /* then the client stalls */
    int first_status;   /* a complete request before the stall is answered so; 0 if none */
    bool allow_408;     /* the stall may be answered 408 before the close */
    int min_ms, max_ms; /* the close comes this long after the stall starts */
} slow_case_t;

static const slow_case_t slow_cases[] = {
    {"half a request line", "GET /hea", 0, true, HEADER_TIMEOUT_MS / 2, HEADER_TIMEOUT_MS + 1000},
    {"half a header block", "GET /healthz HTTP/1.1\r\n" HOST "X-Slow: 1\r\n", 0, true,
     HEADER_TIMEOUT_MS / 2, HEADER_TIMEOUT_MS + 1000},
    {"a connection that sends nothing", "", 0, false, HEADER_TIMEOUT_MS / 2,
     HEADER_TIMEOUT_MS + 1000},
    {"a body that stalls", CANCEL "Content-Length: 58\r\n\r\n{\"order\"", 0, true,
     BODY_TIMEOUT_MS / 2, BODY_TIMEOUT_MS + 1000},
    {"an idle keep-alive connection", GET_HEALTHZ, 200, false, IDLE_TIMEOUT_MS - 1000,
     IDLE_TIMEOUT_MS + 1000},
};

/*
 * After the gateway's close has reached us: what we send now (as a client whose request crossed
 * the close would) is read and dropped while the gateway lingers, not answered with a reset. A
 * reset can destroy an answer still unread in a client's buffer.
 */
static bool closes_without_reset(int fd)
{
    static const char late[] = GET_HEALTHZ;
    if (send(fd, late, sizeof late - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof late - 1))
        return problem("send after the close failed: %s", strerror(errno));
    harness_sleep_ms(50);
    /* recv reports the end of the stream even after a reset, so ask the socket for its error */
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
        return problem("getsockopt: %s", strerror(errno));
    if (err != 0)
        return problem("bytes sent after the close were answered with a reset (%s)", strerror(err));
    char b[64];
    if (recv(fd, b, sizeof b, MSG_DONTWAIT) > 0)
        return problem("bytes sent after the close were answered");
    return true;
}

static bool slow_run(const slow_case_t *c)
{
    int fd = harness_raw_connect(gw.port);
    assert_true(fd >= 0);
    bool ok = harness_raw_send(fd, c->send, strlen(c->send), 0) == 0;
    if (!ok)
        problem("send failed");
    if (ok && c->first_status != 0) {
        size_t len;
        bool closed;
        char *raw = harness_raw_recv_n(fd, 1, ANSWER_MS, &len, &closed);
        keep_raw(raw, len);
        ok = check_resp(raw, len, 0, c->first_status, "keep-alive");
        free(raw);
    }
    long long t0 = harness_now_ms();
    size_t len = 0;
    bool closed = false;
    char *raw = ok ? harness_raw_recv_all(fd, c->max_ms + 1000, &len, &closed) : NULL;
    long long took = harness_now_ms() - t0;
    if (raw != NULL)
        keep_raw(raw, len);
    if (ok && !closed)
        ok = problem("not closed within %d ms", c->max_ms + 1000);
    if (ok && (took < c->min_ms || took > c->max_ms))
        ok = problem("closed after %lld ms, expected %d..%d ms", took, c->min_ms, c->max_ms);
    if (ok && len > 0 && !c->allow_408)
        ok = problem("%zu bytes before the close, expected none", len);
    if (ok && len > 0) {
        ok = check_resp(raw, len, 0, 408, "close");
        if (ok && harness_raw_count(raw, len) != 1)
            ok = problem("%d responses, expected one 408", harness_raw_count(raw, len));
    }
    if (ok)
        ok = closes_without_reset(fd);
    free(raw);
    close(fd);
    return ok;
}

static void test_timeouts(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof slow_cases / sizeof slow_cases[0]; i++) {
        if (!slow_run(&slow_cases[i])) {
            report(slow_cases[i].name, "stall");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Routing and media types                                                                      */
/* ------------------------------------------------------------------------------------------ */

static bool route_run(const route_case_t *c)
{
    char *raw;
    size_t len;
    bool closed;
    int fd = exchange(c->send, strlen(c->send), 0, 1, &raw, &len, &closed);
    bool ok = check_resp(raw, len, 0, c->status, "keep-alive");
    if (ok && harness_raw_count(raw, len) != 1)
        ok = problem("%d responses, expected 1", harness_raw_count(raw, len));
    if (ok && c->header != NULL) {
        harness_resp_t r;
        char name[64], v[256];
        const char *colon = strchr(c->header, ':');
        snprintf(name, sizeof name, "%.*s", (int)(colon - c->header), c->header);
        if (harness_raw_parse(raw, len, 0, &r) == 0) {
            if (!harness_resp_header(&r, name, v, sizeof v) || strcmp(v, colon + 2) != 0)
                ok = problem("expected header \"%s\"", c->header);
            harness_resp_free(&r);
        }
    }
    if (ok)
        ok = stays_open(fd, 100);
    free(raw);
    close(fd);
    return ok;
}

static void test_routing(void **state)
{
    (void)state;
    int failed = 0;
    long long before = harness_saga_count(&redis);
    for (size_t i = 0; i < route_cases_n; i++) {
        if (!route_run(&route_cases[i])) {
            report(route_cases[i].name, "one write");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
    assert_int_equal(harness_saga_count(&redis), before);
}

/* ------------------------------------------------------------------------------------------ */
/* X-Request-Id                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct rid_case {
    const char *name;
    const char *value; /* NULL: no header */
    size_t repeat;     /* value repeated this many times (for long ids); 0 = once */
    bool echoed;
} rid_case_t;

static const rid_case_t rid_cases[] = {
    {"a valid id is echoed", "abc-123.x:y_z", 0, true},
    {"128 characters is echoed", "a", 128, true},
    {"129 characters is replaced", "a", 129, false},
    {"a space inside is replaced", "abc 123", 0, false},
    {"a byte >= 0x80 is replaced", "abc\xc3\xa9", 0, false},
    {"a slash is replaced", "a/b", 0, false},
    {"none sent: one is generated", NULL, 0, false},
};

static bool is_generated_id(const char *v)
{
    if (strlen(v) != 24)
        return false;
    for (size_t i = 0; i < 24; i++) {
        if (!isxdigit((unsigned char)v[i]) || isupper((unsigned char)v[i]))
            return false;
    }
    return true;
}

static bool rid_run(const rid_case_t *c)
{
    char sent[256] = "";
    for (size_t i = 0; c->value != NULL && i < (c->repeat ? c->repeat : 1); i++)
        strncat(sent, c->value, sizeof sent - strlen(sent) - 1);
    buf_t req = {0};
    buf_append_str(&req, "GET /healthz HTTP/1.1\r\n" HOST);
    if (c->value != NULL)
        buf_printf(&req, "X-Request-Id: %s\r\n", sent);
    buf_append_str(&req, "\r\n");
    char *raw;
    size_t len;
    bool closed;
    int fd = exchange(req.data, req.len, 0, 1, &raw, &len, &closed);
    harness_resp_t r;
    char v[300];
    bool ok = check_resp(raw, len, 0, 200, "keep-alive");
    if (ok && harness_raw_parse(raw, len, 0, &r) == 0) {
        harness_resp_header(&r, "X-Request-Id", v, sizeof v);
        if (c->echoed && strcmp(v, sent) != 0)
            ok = problem("X-Request-Id \"%s\", expected the one sent", v);
        if (!c->echoed && !is_generated_id(v))
            ok = problem("X-Request-Id \"%s\" is not a generated id", v);
        harness_resp_free(&r);
    }
    buf_free(&req);
    free(raw);
    close(fd);
    return ok;
}

static void test_request_id(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof rid_cases / sizeof rid_cases[0]; i++) {
        if (!rid_run(&rid_cases[i])) {
            report(rid_cases[i].name, "one write");
            failed++;
        }
    }
    assert_int_equal(failed, 0);

    /* A refused request carries an id too (checked by check_resp), and two answers never
     * share a generated one. */
    char *raw;
    size_t len;
    bool closed;
    int fd = exchange(R(GET_HEALTHZ GET_HEALTHZ), 0, 2, &raw, &len, &closed);
    harness_resp_t a, b;
    assert_int_equal(harness_raw_parse(raw, len, 0, &a), 0);
    assert_int_equal(harness_raw_parse(raw, len, 1, &b), 0);
    char va[64], vb[64];
    assert_true(harness_resp_header(&a, "X-Request-Id", va, sizeof va));
    assert_true(harness_resp_header(&b, "X-Request-Id", vb, sizeof vb));
    assert_string_not_equal(va, vb);
    harness_resp_free(&a);
    harness_resp_free(&b);
    free(raw);
    close(fd);
}

/* ------------------------------------------------------------------------------------------ */
/* Client half-close                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct halfclose_case {
    const char *name;
    const char *send; /* then shutdown(SHUT_WR) */
    int n;
    int status[2];
} halfclose_case_t;

static const halfclose_case_t halfclose_cases[] = {
    {"GET /healthz then SHUT_WR", GET_HEALTHZ, 1, {200}},
    {"a stored mutation then SHUT_WR", CANCEL "Content-Length: 58\r\n\r\n" BODY_OK, 1, {200}},
    {"two pipelined requests then SHUT_WR",
     GET_HEALTHZ "GET /readyz HTTP/1.1\r\n" HOST "\r\n",
     2,
     {200, 200}},
    {"Content-Length undersent then SHUT_WR: no answer",
     CANCEL "Content-Length: 58\r\n\r\n{}",
     0,
     {0}},
    {"chunked without the last chunk then SHUT_WR: no answer",
     CANCEL TE_CHUNKED "2\r\n{}\r\n",
     0,
     {0}},
};

static bool halfclose_run(const halfclose_case_t *c)
{
    int fd = harness_raw_connect(gw.port);
    assert_true(fd >= 0);
    bool ok = harness_raw_send(fd, c->send, strlen(c->send), 0) == 0 && shutdown(fd, SHUT_WR) == 0;
    if (!ok)
        problem("send or shutdown failed");
    size_t len = 0;
    bool closed = false;
    char *raw = ok ? harness_raw_recv_all(fd, ANSWER_MS, &len, &closed) : NULL;
    if (raw != NULL)
        keep_raw(raw, len);
    if (ok && harness_raw_count(raw, len) != c->n)
        ok = problem("%d responses, expected %d", harness_raw_count(raw, len), c->n);
    for (int i = 0; ok && i < c->n; i++)
        ok = check_resp(raw, len, i, c->status[i], NULL);
    if (ok && !closed)
        ok = problem("connection not closed after the answers");
    free(raw);
    close(fd);
    return ok;
}

static void test_half_close(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof halfclose_cases / sizeof halfclose_cases[0]; i++) {
        if (!halfclose_run(&halfclose_cases[i])) {
            report(halfclose_cases[i].name, "half-close");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Absolute-form targets                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void test_absolute_form(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < absform_cases_n; i++) {
        const absform_case_t *c = &absform_cases[i];
        for (int form = 0; form < 2; form++) {
            const char *send = form ? c->absolute : c->origin;
            char *raw;
            size_t len;
            bool closed;
            int fd = exchange(send, strlen(send), 0, 1, &raw, &len, &closed);
            if (!check_resp(raw, len, 0, c->status, "keep-alive")) {
                report(c->name, form ? "absolute-form" : "origin-form");
                failed++;
            }
            free(raw);
            close(fd);
        }
    }
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Redis                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Runs last: Redis holds one saga per "pending" answer above, and nothing else. */
static void test_nothing_refused_reaches_redis(void **state)
{
    (void)state;
    assert_true(accepted > 0);
    assert_int_equal(harness_saga_count(&redis), saga_base + accepted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive),      cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_chunked_bodies), cmocka_unit_test(test_framing_header_block),
        cmocka_unit_test(test_framing_chunks), cmocka_unit_test(test_framing_request_line),
        cmocka_unit_test(test_limits),         cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_timeouts),       cmocka_unit_test(test_routing),
        cmocka_unit_test(test_request_id),     cmocka_unit_test(test_half_close),
        cmocka_unit_test(test_absolute_form),  cmocka_unit_test(test_nothing_refused_reaches_redis),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    buf_free(&last_raw);
    return rc;
}
