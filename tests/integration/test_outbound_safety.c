/*
 * test_outbound_safety.c - what the gateway sends to destinations, and what it accepts back,
 * when the destination or the partner's data is hostile. The real binary, a real redis-server,
 * and on loopback: a scriptable "rogue" destination for swift-haul (its own small HTTP server in
 * this file, able to redirect, answer 2 MiB, drip a response byte by byte, answer bytes that are
 * not UTF-8), recording stubs for acme-supply (also its notify_url), kibo-retail and tecspal-hw,
 * and a stub that a redirect points at.
 *
 *   - 301/302/303/307/308 with Location: never followed. The saga ends error with the redirect
 *     message after one request; the Location target gets nothing.
 *   - 2 MiB answers, with Content-Length and chunked: each attempt ends "response too large",
 *     the saga ends error.
 *   - A destination that sends its head and then one byte every 200 ms, or drips the head
 *     itself: each attempt is cut at connector.timeout_ms (error "timeout"), measured at both
 *     ends.
 *   - CR, LF, "../" and "%0d%0a" in partner-supplied fields (order numbers of both parties,
 *     reason_code, assigned_to, hauled_by, bol_number, Idempotency-Key, notes) never reach a
 *     request line or a header: every request any destination got has exactly the expected path
 *     and only the expected header names, and the values come back intact inside the JSON body.
 *     Kibo and Tecspal references that are not an integer / a UUID are refused without sending.
 *   - A destination answering bytes that are not UTF-8 (body and a header): the attempt is still
 *     in the order's log, which still reads as JSON.
 *   - Connector and notify URLs with any scheme but http/https are refused at config load
 *     (check-config exits non-zero; serve does not start).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "stub_dest.h"

#define ACME_KEY       "demo-acme-key"
#define SWIFT_KEY      "demo-swift-key"
#define KIBO_KEY       "demo-kibo-key"
#define TEC_KEY        "demo-tecspal-key"
#define ACME_SECRET    "acme-whsec-out-6a1f0e93d2"
#define SWIFT_SECRET   "swift-whsec-out-93be21c7f4"
#define TEC_TOKEN      "tecspal-tok-out-18e2a7"
#define SWIFT_TIMEOUT  1000 /* swift-haul's connector.timeout_ms */
#define MAX_ATTEMPTS   2
#define SAGA_MS        30000
#define BIG            (2 * 1024 * 1024)

static harness_redis_t g_redis;
static harness_gw_t g_gw;
static bool g_redis_up, g_gw_up, g_teardown_failed;
static stub_dest_t *g_acme, *g_kibo, *g_tec, *g_target;

/* ---------------------------------------------------------------------------------------------
 * The rogue destination (swift-haul's connector URL)
 * ------------------------------------------------------------------------------------------- */

typedef enum {
    RG_OK,          /* 200 with the scripted body */
    RG_REDIRECT,    /* r_status with Location: the target stub */
    RG_BIG_CL,      /* 200, Content-Length 2 MiB, all of it sent */
    RG_BIG_CHUNKED, /* 200, chunked, 2 MiB in 64 KiB chunks */
    RG_DRIP_BODY,   /* head at once (Content-Length 1000), then 1 byte / 200 ms */
    RG_DRIP_HEAD,   /* the status line and head 1 byte / 200 ms */
    RG_NOT_UTF8_BODY, /* 400 with a body that is not UTF-8 */
    RG_NOT_UTF8_HEAD, /* 400 with a header value that is not UTF-8 */
} rogue_mode_t;

typedef struct rogue_req {
    char *method, *target, *head, *body;
    long long conn_ms;   /* its connection was accepted */
    long long at_ms;     /* complete request arrived */
    long long closed_ms; /* the client closed the connection (0: not seen) */
} rogue_req_t;

static struct {
    int lfd, port;
    pthread_t thread;
    volatile bool stop;
    pthread_mutex_t mu;
    rogue_mode_t mode;
    int status;
    char *ok_body;
    rogue_req_t reqs[256];
    size_t n;
    pthread_t conns[256];
    size_t nconns;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void rogue_set(rogue_mode_t mode, int status, const char *ok_body)
{
    pthread_mutex_lock(&R.mu);
    R.mode = mode;
    R.status = status;
    free(R.ok_body);
    R.ok_body = strdup(ok_body ? ok_body : "{}");
    pthread_mutex_unlock(&R.mu);
}

static size_t rogue_count(void)
{
    pthread_mutex_lock(&R.mu);
    size_t n = R.n;
    pthread_mutex_unlock(&R.mu);
    return n;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Wait ms for the peer to close; true when it did. */
static bool peer_closed_within(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
    int r = poll(&p, 1, ms);
    if (r <= 0)
        return false;
    char b[512];
    ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
           (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Drip bytes one every 200 ms until done or the peer leaves; returns when the peer left (ms,
 * harness clock) or 0. */
static long long drip(int fd, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (send_all(fd, p + i, 1) != 0)
            return harness_now_ms();
        if (peer_closed_within(fd, 200))
            return harness_now_ms();
        if (R.stop)
            return 0;
    }
    return 0;
}

typedef struct conn_arg {
    int fd;
    long long accepted_ms;
} conn_arg_t;

static void *rogue_conn(void *arg)
{
    conn_arg_t *ca = arg;
    int fd = ca->fd;
    long long accepted_ms = ca->accepted_ms;
    free(ca);
    char *buf = malloc(1 << 16);
    size_t len = 0;
    while (!R.stop) {
        /* A request: the head, then Content-Length bytes. */
        char *eoh;
        while ((eoh = memmem(buf, len, "\r\n\r\n", 4)) == NULL) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 100) == 0) {
                if (R.stop)
                    goto out;
                continue;
            }
            ssize_t n = recv(fd, buf + len, (1 << 16) - 1 - len, 0);
            if (n <= 0)
                goto out;
            len += (size_t)n;
            if (len >= (1 << 16) - 1)
                goto out;
        }
        size_t hl = (size_t)(eoh - buf) + 4;
        size_t cl = 0;
        for (char *l = buf; l < buf + hl;) {
            char *e = memmem(l, (size_t)(buf + hl - l), "\r\n", 2);
            if (e == NULL)
                break;
            if (strncasecmp(l, "content-length:", 15) == 0)
                cl = strtoul(l + 15, NULL, 10);
            l = e + 2;
        }
        while (len < hl + cl) {
            ssize_t n = recv(fd, buf + len, (1 << 16) - 1 - len, 0);
            if (n <= 0)
                goto out;
            len += (size_t)n;
        }
        rogue_req_t q = {0};
        char *sp1 = memchr(buf, ' ', hl), *sp2 = sp1 ? memchr(sp1 + 1, ' ', hl) : NULL;
        char *eol = memmem(buf, hl, "\r\n", 2);
        q.method = strndup(buf, sp1 ? (size_t)(sp1 - buf) : 0);
        q.target = sp2 ? strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1)) : strdup("");
        q.head = strndup(eol + 2, hl - (size_t)(eol + 2 - buf));
        q.body = strndup(buf + hl, cl);
        q.at_ms = harness_now_ms();
        q.conn_ms = accepted_ms;
        accepted_ms = q.at_ms; /* a keep-alive request after this one */
        pthread_mutex_lock(&R.mu);
        size_t idx = R.n < 256 ? R.n++ : 255;
        R.reqs[idx] = q;
        rogue_mode_t mode = R.mode;
        int status = R.status;
        char *ok = strdup(R.ok_body);
        pthread_mutex_unlock(&R.mu);
        memmove(buf, buf + hl + cl, len - hl - cl);
        len -= hl + cl;

        char head[512];
        long long closed = 0;
        bool keep = false;
        if (mode == RG_OK) {
            int n = snprintf(head, sizeof head,
                             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n",
                             strlen(ok));
            keep = send_all(fd, head, (size_t)n) == 0 && send_all(fd, ok, strlen(ok)) == 0;
        } else if (mode == RG_REDIRECT) {
            char url[128];
            stub_dest_url(g_target, url, sizeof url);
            int n = snprintf(head, sizeof head,
                             "HTTP/1.1 %d Moved\r\nLocation: %s/v1/order/create\r\n"
                             "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
                             status, url);
            keep = send_all(fd, head, (size_t)n) == 0;
        } else if (mode == RG_BIG_CL || mode == RG_BIG_CHUNKED) {
            char *chunk = malloc(65536);
            memset(chunk, 'x', 65536);
            int n = mode == RG_BIG_CL
                        ? snprintf(head, sizeof head,
                                   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                   "Content-Length: %d\r\n\r\n",
                                   BIG)
                        : snprintf(head, sizeof head,
                                   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n");
            bool ok_send = send_all(fd, head, (size_t)n) == 0;
            for (int i = 0; ok_send && i < BIG / 65536; i++) {
                if (mode == RG_BIG_CHUNKED)
                    ok_send = send_all(fd, "10000\r\n", 7) == 0;
                ok_send = ok_send && send_all(fd, chunk, 65536) == 0;
                if (mode == RG_BIG_CHUNKED)
                    ok_send = ok_send && send_all(fd, "\r\n", 2) == 0;
            }
            if (ok_send && mode == RG_BIG_CHUNKED)
                ok_send = send_all(fd, "0\r\n\r\n", 5) == 0;
            free(chunk);
            if (!ok_send)
                closed = harness_now_ms();
        } else if (mode == RG_DRIP_BODY) {
            static const char h[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                    "Content-Length: 1000\r\n\r\n";
            char body[1000];
            memset(body, ' ', sizeof body);
            if (send_all(fd, h, sizeof h - 1) == 0)
                closed = drip(fd, body, sizeof body);
        } else if (mode == RG_DRIP_HEAD) {
            static const char h[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                    "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                                    "Content-Length: 2\r\n\r\n{}";
            closed = drip(fd, h, sizeof h - 1);
        } else if (mode == RG_NOT_UTF8_BODY || mode == RG_NOT_UTF8_HEAD) {
            bool in_body = mode == RG_NOT_UTF8_BODY;
            const char *b = in_body ? "\xff\xfe not \xc3\x28 json\x80" : "{\"detail\":\"refused\"}";
            int n = snprintf(head, sizeof head,
                             "HTTP/1.1 400 Bad Request\r\nContent-Type: %s\r\n%s"
                             "Content-Length: %zu\r\n\r\n%s",
                             in_body ? "text/plain" : "application/json",
                             in_body ? "" : "X-Weird: caf\xe9 \xff\xfe\r\n", strlen(b), b);
            keep = send_all(fd, head, (size_t)n) == 0;
        }
        free(ok);
        if (closed == 0 && !keep) {
            /* Wait for the client to leave (it has what it asked for, or gave up). */
            long long end = harness_now_ms() + 10000;
            while (!R.stop && harness_now_ms() < end && !peer_closed_within(fd, 100)) {
            }
            closed = harness_now_ms();
        }
        pthread_mutex_lock(&R.mu);
        R.reqs[idx].closed_ms = closed;
        pthread_mutex_unlock(&R.mu);
        if (!keep)
            break;
    }
out:
    free(buf);
    close(fd);
    return NULL;
}

static void *rogue_main(void *arg)
{
    (void)arg;
    while (!R.stop) {
        struct pollfd p = {R.lfd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept(R.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        conn_arg_t *ca = malloc(sizeof *ca);
        ca->fd = fd;
        ca->accepted_ms = harness_now_ms();
        pthread_mutex_lock(&R.mu);
        if (R.nconns < 256 && pthread_create(&R.conns[R.nconns], NULL, rogue_conn, ca) == 0) {
            R.nconns++;
        } else {
            close(fd);
            free(ca);
        }
        pthread_mutex_unlock(&R.mu);
    }
    return NULL;
}

static int rogue_start(void)
{
    R.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (R.lfd < 0 || bind(R.lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(R.lfd, 64) != 0 ||
        getsockname(R.lfd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    R.port = ntohs(a.sin_port);
    rogue_set(RG_OK, 200, "{}");
    return pthread_create(&R.thread, NULL, rogue_main, NULL);
}

static void rogue_stop(void)
{
    R.stop = true;
    pthread_join(R.thread, NULL);
    for (size_t i = 0; i < R.nconns; i++)
        pthread_join(R.conns[i], NULL);
    close(R.lfd);
    for (size_t i = 0; i < R.n; i++) {
        free(R.reqs[i].method);
        free(R.reqs[i].target);
        free(R.reqs[i].head);
        free(R.reqs[i].body);
    }
    free(R.ok_body);
}

/* ---------------------------------------------------------------------------------------------
 * Gateway helpers
 * ------------------------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int call(const char *method, const char *path, const char *key, const char *dest,
                const char *idem, const char *body, harness_resp_t *r)
{
    char kh[128], dh[128], ih[400];
    const char *h[5] = {"Content-Type: application/json", kh, NULL, NULL, NULL};
    size_t n = 2;
    snprintf(kh, sizeof kh, "X-API-Key: %s", key);
    if (dest) {
        snprintf(dh, sizeof dh, "X-Dest-Tenant-Name: %s", dest);
        h[n++] = dh;
    }
    if (idem) {
        snprintf(ih, sizeof ih, "Idempotency-Key: %s", idem);
        h[n++] = ih;
    }
    if (harness_http(g_gw.port, method, path, h, body, body ? strlen(body) : 0, r) != 0)
        fail_msg("%s %s: no answer", method, path);
    return r->status;
}

/* POST /v1/order/<action> (200 pending expected); waits for the end; returns the saga. */
static json_t *run(const char *key, const char *dest, const char *action, const char *body,
                   const char *idem, char order_id[25])
{
    char *path = harness_fmt("/v1/order/%s", action);
    harness_resp_t r;
    if (call("POST", path, key, dest, idem, body, &r) != 200)
        fail_msg("POST %s: %d %s (sent %s)", path, r.status, r.body ? r.body : "", body);
    free(path);
    char *sid = strdup(jstr(json_object_get(r.json, "log"), "saga_id"));
    if (order_id)
        snprintf(order_id, 25, "%s", jstr(r.json, "order_id"));
    harness_resp_free(&r);
    path = harness_fmt("/v1/saga/%s", sid);
    long long end = harness_now_ms() + SAGA_MS;
    for (;;) {
        int st = call("GET", path, key, NULL, NULL, NULL, &r);
        const char *s = jstr(r.json, "status");
        if (st == 200 && (!strcmp(s, "synced") || !strcmp(s, "canceled") ||
                          !strcmp(s, "rejected") || !strcmp(s, "error"))) {
            json_t *j = json_incref(r.json);
            harness_resp_free(&r);
            free(path);
            free(sid);
            return j;
        }
        if (harness_now_ms() > end)
            fail_msg("saga %s did not end: %d %s", sid, st, r.body ? r.body : "");
        harness_resp_free(&r);
        harness_sleep_ms(20);
    }
}

static void expect_saga(const json_t *saga, const char *status, const char *msg)
{
    if (strcmp(jstr(saga, "status"), status) != 0 ||
        (msg && strstr(jstr(saga, "message"), msg) == NULL)) {
        char *d = json_dumps(saga, JSON_COMPACT);
        fail_msg("saga ended %s \"%s\", want %s \"%s\": %s", jstr(saga, "status"),
                 jstr(saga, "message"), status, msg ? msg : "", d);
    }
}

static char *create_body(const char *number_json)
{
    return harness_fmt(
        "{\"order_number\":%s,\"lines\":[{\"product\":{\"source_id\":\"ULSD\"},"
        "\"terminal\":{\"source_id\":\"HOU-T1\"},\"site\":{\"source_id\":\"ATX-S12\"},"
        "\"quantity\":10,\"uom\":\"gal\"}],\"requested_delivery\":"
        "\"2026-05-12T08:00:00.000Z\"}",
        number_json);
}

/* An order acme-supply -> swift-haul, synced (the rogue answers 200 with sw_reply). */
static void make_order(const char *number_json, const char *sw_reply, char oid[25])
{
    rogue_set(RG_OK, 200, sw_reply);
    char *body = create_body(number_json);
    json_t *s = run(ACME_KEY, "swift-haul", "create", body, NULL, oid);
    expect_saga(s, "synced", NULL);
    json_decref(s);
    free(body);
}

/* The delivery-attempt entries of a saga in the order's log (as acme-supply). */
static json_t *attempts_logged(const char *oid, const char *sid)
{
    char *path = harness_fmt("/v1/order/logs?order_id=%s", oid);
    harness_resp_t r;
    assert_int_equal(call("GET", path, ACME_KEY, NULL, NULL, NULL, &r), 200);
    if (r.json == NULL)
        fail_msg("GET %s is not JSON: %s", path, r.body);
    free(path);
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(r.json, i, e)
    {
        if (strcmp(jstr(e, "saga_id"), sid) == 0 &&
            strncmp(jstr(e, "title"), "Delivery attempt ", 17) == 0)
            json_array_append(out, e);
    }
    harness_resp_free(&r);
    return out;
}

/* ---------------------------------------------------------------------------------------------
 * Redirects
 * ------------------------------------------------------------------------------------------- */

static void test_redirect_each(void **state)
{
    (void)state;
    const int codes[] = {301, 302, 303, 307, 308};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        size_t target0 = stub_dest_count(g_target), rogue0 = rogue_count();
        rogue_set(RG_REDIRECT, codes[i], NULL);
        char *num = harness_fmt("\"PO-302-%d\"", codes[i]);
        char *body = create_body(num);
        char oid[25];
        json_t *s = run(ACME_KEY, "swift-haul", "create", body, NULL, oid);
        char want[96];
        snprintf(want, sizeof want, "destination answered a redirect (HTTP %d), which is not followed",
                 codes[i]);
        expect_saga(s, "error", want);
        assert_int_equal(json_integer_value(json_object_get(s, "attempts")), 1);
        json_t *att = attempts_logged(oid, jstr(s, "saga_id"));
        assert_int_equal(json_array_size(att), 1);
        assert_int_equal(json_integer_value(json_object_get(
                             json_object_get(json_array_get(att, 0), "inbound_request"), "status")),
                         codes[i]);
        json_decref(att);
        harness_sleep_ms(200);
        assert_int_equal(rogue_count() - rogue0, 1);
        assert_int_equal(stub_dest_count(g_target) - target0, 0);
        json_decref(s);
        free(body);
        free(num);
    }
    print_message("redirects 301/302/303/307/308: 1 request each, 0 at the Location target\n");
}

/* ---------------------------------------------------------------------------------------------
 * Size cap and slow destinations
 * ------------------------------------------------------------------------------------------- */

static void big_case(rogue_mode_t mode, const char *number)
{
    size_t rogue0 = rogue_count();
    rogue_set(mode, 200, NULL);
    char *body = create_body(number);
    char oid[25];
    json_t *s = run(ACME_KEY, "swift-haul", "create", body, NULL, oid);
    expect_saga(s, "error", "response too large");
    assert_int_equal(json_integer_value(json_object_get(s, "attempts")), MAX_ATTEMPTS);
    json_t *att = attempts_logged(oid, jstr(s, "saga_id"));
    assert_int_equal(json_array_size(att), MAX_ATTEMPTS);
    size_t i;
    json_t *e;
    json_array_foreach(att, i, e)
    {
        const json_t *in = json_object_get(e, "inbound_request");
        if (strcmp(jstr(in, "error"), "response too large") != 0) {
            char *d = json_dumps(in, JSON_COMPACT);
            fail_msg("attempt %zu: inbound_request %s, want error \"response too large\"", i + 1,
                     d);
        }
        print_message("  %s attempt %zu: %s (%s)\n", mode == RG_BIG_CL ? "Content-Length" : "chunked",
                      i + 1, jstr(in, "error"), jstr(in, "error_detail"));
    }
    json_decref(att);
    assert_int_equal(rogue_count() - rogue0, MAX_ATTEMPTS);
    json_decref(s);
    free(body);
}

static void test_response_capped(void **state)
{
    (void)state;
    big_case(RG_BIG_CL, "\"PO-BIG-CL\"");
    big_case(RG_BIG_CHUNKED, "\"PO-BIG-CHUNKED\"");
}

static void drip_case(rogue_mode_t mode, const char *number)
{
    size_t rogue0 = rogue_count();
    rogue_set(mode, 200, NULL);
    char *body = create_body(number);
    char oid[25];
    json_t *s = run(ACME_KEY, "swift-haul", "create", body, NULL, oid);
    expect_saga(s, "error", "timeout");
    json_t *att = attempts_logged(oid, jstr(s, "saga_id"));
    assert_int_equal(json_array_size(att), MAX_ATTEMPTS);
    size_t i;
    json_t *e;
    json_array_foreach(att, i, e)
    {
        const json_t *in = json_object_get(e, "inbound_request");
        long long el = json_integer_value(json_object_get(in, "elapsed_ms"));
        if (strcmp(jstr(in, "error"), "timeout") != 0 || el < SWIFT_TIMEOUT - 50 ||
            el > SWIFT_TIMEOUT + 500) {
            char *d = json_dumps(in, JSON_COMPACT);
            fail_msg("attempt %zu: %s, want a timeout after %d ms", i + 1, d, SWIFT_TIMEOUT);
        }
    }
    json_decref(att);
    harness_sleep_ms(500);
    size_t n = rogue_count() - rogue0;
    assert_int_equal(n, MAX_ATTEMPTS);
    for (size_t k = rogue0; k < rogue0 + n; k++) {
        pthread_mutex_lock(&R.mu);
        long long cut = R.reqs[k].closed_ms ? R.reqs[k].closed_ms - R.reqs[k].conn_ms : -1;
        pthread_mutex_unlock(&R.mu);
        print_message("  %s: attempt %zu cut by the gateway %lld ms after it connected "
                      "(connector.timeout_ms %d)\n",
                      mode == RG_DRIP_BODY ? "body drip" : "head drip", k - rogue0 + 1, cut,
                      SWIFT_TIMEOUT);
        if (cut < SWIFT_TIMEOUT - 50 || cut > SWIFT_TIMEOUT + 500)
            fail_msg("the dripping connection was closed %lld ms after it opened, want ~%d",
                     cut, SWIFT_TIMEOUT);
    }
    json_decref(s);
    free(body);
}

static void test_drip_cut_at_timeout(void **state)
{
    (void)state;
    drip_case(RG_DRIP_BODY, "\"PO-DRIP-BODY\"");
    drip_case(RG_DRIP_HEAD, "\"PO-DRIP-HEAD\"");
}

/* ---------------------------------------------------------------------------------------------
 * Partner-supplied CR/LF and ../ never reach a request line or a header
 * ------------------------------------------------------------------------------------------- */

/* Header names a webhook request may carry (libcurl adds Host, Accept, Content-Length). */
static const char *const webhook_headers[] = {
    "host", "accept", "content-type", "content-length", "idempotency-key", "x-tenant-name",
    "x-dest-tenant-name", "x-crossroads-timestamp", "x-crossroads-signature", NULL,
};

static bool allowed_header(const char *line, size_t n, const char *const *names)
{
    const char *colon = memchr(line, ':', n);
    if (colon == NULL)
        return false;
    for (size_t i = 0; names[i]; i++)
        if ((size_t)(colon - line) == strlen(names[i]) && !strncasecmp(line, names[i], strlen(names[i])))
            return true;
    return false;
}

/* Each line of head a known header name; no "evil" anywhere in the head. */
static int check_head(const char *who, const char *target, const char *head,
                      const char *const *names)
{
    int bad = 0;
    if (strcasestr(head, "evil") || strstr(head, "../") || strstr(target, "evil") ||
        strstr(target, "..") || strchr(target, '%')) {
        print_error("%s: partner data in the request line or head: %s\n%s\n", who, target, head);
        bad++;
    }
    for (const char *l = head; *l;) {
        const char *e = strstr(l, "\r\n");
        if (e == NULL) {
            print_error("%s: header block not CRLF-terminated: %s\n", who, l);
            bad++;
            break;
        }
        if (e > l && !allowed_header(l, (size_t)(e - l), names)) {
            print_error("%s: unexpected header line \"%.*s\"\n", who, (int)(e - l), l);
            bad++;
        }
        l = e + 2;
    }
    return bad;
}

#define EVIL_NUM  "A\\r\\nX-Evil: 1"
#define EVIL_PATH "../../admin"
#define EVIL_CP   "../../v1/admin\\r\\nX-Evil: 2"

static void test_partner_fields_stay_in_the_body(void **state)
{
    (void)state;
    size_t rogue0 = rogue_count(), acme0 = stub_dest_count(g_acme);
    size_t kibo0 = stub_dest_count(g_kibo), tec0 = stub_dest_count(g_tec);
    char o1[25], o2[25], o3[25];
    /* Orders whose numbers (ours and the destination's) carry CR/LF and dot segments. */
    make_order("\"" EVIL_NUM "\"", "{\"order_number\":\"" EVIL_CP "\"}", o1);
    make_order("\"" EVIL_PATH "\"", "{\"order_number\":\"..%2f..%2fx%0d%0aX-Evil:%203\"}", o2);
    make_order("\"/v1/order/cancel?x=\\r\\n\\r\\nGET /evil HTTP/1.1\"", "{}", o3);
    json_t *s;
    /* swift-haul reports progress on its own number, with CR/LF in every free-text field. */
    s = run(SWIFT_KEY, "acme-supply", "update_status",
            "{\"order\":{\"order_number\":\"" EVIL_CP "\"},\"progress_status\":\"loading\","
            "\"location\":{\"source_id\":\"SH-HOU\"},\"assigned_to\":\"d\\r\\nX-Evil: 4\","
            "\"hauled_by\":\"..\\\\..\\\\h\\r\\n\\r\\nX-Evil: 5\"}",
            NULL, NULL);
    expect_saga(s, "synced", NULL);
    json_decref(s);
    s = run(SWIFT_KEY, "acme-supply", "bol",
            "{\"order\":{\"order_number\":\"..%2f..%2fx%0d%0aX-Evil:%203\"},\"bol_number\":"
            "\"B\\r\\nX-Evil: 6\",\"terminal\":{\"source_id\":\"SH-HOU\"},\"product\":"
            "{\"source_id\":\"SH-DSL\"},\"gross_volume\":1,\"net_volume\":1}",
            NULL, NULL);
    expect_saga(s, "synced", NULL);
    json_decref(s);
    /* acme-supply cancels with a reason_code that tries to end the header block. */
    rogue_set(RG_OK, 200, "{}");
    char *b = harness_fmt(
        "{\"order\":{\"order_id\":\"%s\"},\"reason_code\":\"x\\r\\nX-Evil: 3\\r\\n\"}", o1);
    s = run(ACME_KEY, "swift-haul", "cancel", b, "../../idem\\r\\nX-Evil: 9", NULL);
    free(b);
    expect_saga(s, "canceled", NULL);
    json_decref(s);
    b = harness_fmt("{\"order\":{\"order_id\":\"%s\"}}", o3);
    s = run(ACME_KEY, "swift-haul", "reset", b, NULL, NULL);
    free(b);
    expect_saga(s, "synced", NULL);
    json_decref(s);

    /* Kibo and Tecspal references that are not theirs to carry are refused before sending. */
    s = run(KIBO_KEY, "acme-supply", "create",
            "{\"order_number\":\"1\\r\\nX-Evil: 7\",\"lines\":[{\"product\":{\"source_id\":"
            "\"SKU-ULSD\"},\"terminal\":{\"source_id\":\"KB-TERM-HOU\"},\"site\":{\"source_id\":"
            "\"1012\"},\"quantity\":1}],\"requested_delivery\":\"2026-05-12T08:00:00.000Z\"}",
            NULL, o1);
    expect_saga(s, "synced", NULL);
    json_decref(s);
    b = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"reason_code\":\"other\"}", o1);
    s = run(ACME_KEY, "kibo-retail", "cancel", b, NULL, NULL);
    free(b);
    expect_saga(s, "rejected", "is not a Kibo order ID");
    json_decref(s);
    s = run(TEC_KEY, "acme-supply", "create",
            "{\"order_number\":\"../../orders/delete\\r\\nX-Evil: 8\",\"lines\":[{\"product\":"
            "{\"source_id\":\"TEC-P-DSL\"},\"terminal\":{\"source_id\":\"TEC-T-HOU\"},\"site\":"
            "{\"source_id\":\"TEC-S-ATX\"},\"quantity\":1}],\"requested_delivery\":"
            "\"2026-05-12T08:00:00.000Z\"}",
            NULL, o2);
    expect_saga(s, "synced", NULL);
    json_decref(s);
    b = harness_fmt("{\"order\":{\"order_id\":\"%s\"}}", o2);
    s = run(ACME_KEY, "tecspal-hw", "cancel", b, NULL, NULL);
    free(b);
    expect_saga(s, "rejected", "is not a Tecspal order id");
    json_decref(s);
    harness_sleep_ms(300); /* notifications */

    int bad = 0;
    size_t n_rogue = rogue_count() - rogue0;
    static const char *const paths[] = {"/v1/order/create", "/v1/order/cancel",
                                        "/v1/order/reset", NULL};
    for (size_t k = rogue0; k < rogue0 + n_rogue; k++) {
        pthread_mutex_lock(&R.mu);
        rogue_req_t q = R.reqs[k];
        char *t = strdup(q.target), *h = strdup(q.head), *body = strdup(q.body);
        pthread_mutex_unlock(&R.mu);
        bool known = false;
        for (size_t p = 0; paths[p]; p++)
            known |= strcmp(t, paths[p]) == 0;
        if (!known || strcmp(q.method, "POST") != 0) {
            print_error("swift-haul got %s %s\n", q.method, t);
            bad++;
        }
        bad += check_head("swift-haul", t, h, webhook_headers);
        json_t *j = json_loads(body, 0, NULL);
        if (j == NULL) {
            print_error("swift-haul got a body that is not JSON: %s\n", body);
            bad++;
        }
        json_decref(j);
        free(t);
        free(h);
        free(body);
    }
    /* acme-supply's system: the update and the BOL (and its notifications at /notify). */
    size_t n_acme = stub_dest_count(g_acme) - acme0;
    static const char *const acme_paths[] = {"/v1/order/update_status", "/v1/order/bol",
                                             "/v1/order/create", "/notify", NULL};
    bool saw_cp_number = false, saw_hauled = false;
    for (size_t k = acme0; k < acme0 + n_acme; k++) {
        stub_req_t q;
        assert_true(stub_dest_get(g_acme, k, &q));
        bool known = false;
        for (size_t p = 0; acme_paths[p]; p++)
            known |= strcmp(q.path, acme_paths[p]) == 0;
        if (!known) {
            print_error("acme-supply got %s %s\n", q.method, q.path);
            bad++;
        }
        bad += check_head("acme-supply", q.path, q.headers, webhook_headers);
        const char *hb = json_string_value(json_object_get(q.json, "hauled_by"));
        if (hb && strcmp(hb, "..\\..\\h\r\n\r\nX-Evil: 5") == 0)
            saw_hauled = true;
        const char *num = json_string_value(
            json_object_get(json_object_get(q.json, "order"), "order_number"));
        if (num && strcmp(num, "A\r\nX-Evil: 1") == 0)
            saw_cp_number = true;
        stub_req_free(&q);
    }
    /* The values arrived intact, as JSON strings. */
    bool saw_reason = false, saw_evil_cp = false;
    for (size_t k = rogue0; k < rogue0 + n_rogue; k++) {
        pthread_mutex_lock(&R.mu);
        json_t *j = json_loads(R.reqs[k].body, 0, NULL);
        pthread_mutex_unlock(&R.mu);
        const char *rc = json_string_value(json_object_get(j, "reason_code"));
        if (rc && strcmp(rc, "x\r\nX-Evil: 3\r\n") == 0)
            saw_reason = true;
        const char *num =
            json_string_value(json_object_get(json_object_get(j, "order"), "order_number"));
        if (num && strcmp(num, "../../v1/admin\r\nX-Evil: 2") == 0)
            saw_evil_cp = true;
        json_decref(j);
    }
    print_message("partner CR/LF and ../: %zu requests at swift-haul, %zu at acme-supply, %zu at "
                  "kibo-retail, %zu at tecspal-hw; bad: %d\n",
                  n_rogue, n_acme, stub_dest_count(g_kibo) - kibo0, stub_dest_count(g_tec) - tec0,
                  bad);
    assert_int_equal(bad, 0);
    assert_true(n_rogue >= 5 && n_acme >= 2);
    assert_true(saw_reason && saw_evil_cp && saw_cp_number && saw_hauled);
    assert_int_equal(stub_dest_count(g_kibo) - kibo0, 0);
    assert_int_equal(stub_dest_count(g_tec) - tec0, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Bytes that are not UTF-8 from a destination
 * ------------------------------------------------------------------------------------------- */

static int not_utf8_case(rogue_mode_t mode, const char *number)
{
    rogue_set(mode, 400, NULL);
    char *body = create_body(number);
    char oid[25];
    json_t *s = run(ACME_KEY, "swift-haul", "create", body, NULL, oid);
    free(body);
    expect_saga(s, "rejected", NULL);
    json_t *att = attempts_logged(oid, jstr(s, "saga_id"));
    int bad = 0;
    const char *what = mode == RG_NOT_UTF8_BODY ? "a body" : "a header value";
    if (json_array_size(att) != 1) {
        print_error("answer with %s that is not UTF-8: the attempt is missing from the order "
                    "log (%zu delivery entries for saga %s)\n",
                    what, json_array_size(att), jstr(s, "saga_id"));
        bad = 1;
    } else {
        const json_t *in = json_object_get(json_array_get(att, 0), "inbound_request");
        if (json_integer_value(json_object_get(in, "status")) != 400 ||
            json_object_get(in, "body") == NULL) {
            char *d = json_dumps(in, JSON_COMPACT);
            print_error("answer with %s that is not UTF-8: the logged attempt lost the "
                        "destination's answer: inbound_request %s\n",
                        what, d);
            free(d);
            bad = 1;
        }
    }
    json_decref(att);
    json_decref(s);
    return bad;
}

static void test_not_utf8_answer_logged(void **state)
{
    (void)state;
    int bad = not_utf8_case(RG_NOT_UTF8_BODY, "\"PO-NOT-UTF8-BODY\"");
    bad += not_utf8_case(RG_NOT_UTF8_HEAD, "\"PO-NOT-UTF8-HEAD\"");
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Only http and https at config load
 * ------------------------------------------------------------------------------------------- */

/* gateway.json with one connector or notify URL replaced, run through `crossroads cmd`;
 * returns the exit status (-1 for a signal or a hang). */
static int with_url(const char *cmd, const char *field, const char *url, char *out, size_t outn)
{
    char *text = harness_fixture_read("configs/gateway.json", NULL);
    json_t *cfg = json_loads(text, 0, NULL);
    free(text);
    json_t *t0 = json_array_get(json_object_get(cfg, "tenants"), 1); /* swift-haul */
    if (strcmp(field, "notify_url") == 0)
        json_object_set_new(t0, "notify_url", json_string(url));
    else
        json_object_set_new(json_object_get(t0, "connector"), "url", json_string(url));
    char dir[] = "/tmp/cr-outsafe-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], log[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(log, sizeof log, "%s/out.log", dir);
    /* A port nobody uses, should serve ever start. */
    json_object_set_new(cfg, "listen", json_pack("{s:s, s:i}", "host", "127.0.0.1", "port",
                                                 harness_free_port()));
    assert_int_equal(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        (void)f;
        dup2(STDOUT_FILENO, STDERR_FILENO);
        execl(getenv("CR_BIN"), "crossroads", cmd, "--config", path, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    long long end = harness_now_ms() + 5000;
    int rc = -1;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            break;
        }
        if (harness_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            break;
        }
        harness_sleep_ms(10);
    }
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, outn - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    unlink(log);
    unlink(path);
    rmdir(dir);
    return rc;
}

static void test_only_http_schemes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "ftp://127.0.0.1/x",        "file:///etc/passwd",      "gopher://127.0.0.1:70/_x",
        "dict://127.0.0.1:11211/x", "ldap://127.0.0.1/x",      "smtp://127.0.0.1",
        "telnet://127.0.0.1",       "redis://127.0.0.1:6379",  "scp://127.0.0.1/x",
        "tftp://127.0.0.1/x",       "ws://127.0.0.1/x",        "javascript:alert(1)",
        "//127.0.0.1:9000",         "127.0.0.1:9000",          " http://127.0.0.1:9000",
        "http:/127.0.0.1:9000",     "httpx://127.0.0.1",       "http://",
        "mailto:a@b",               "data:text/plain,x",       "http\\://127.0.0.1",
    };
    static const char *const good[] = {"http://127.0.0.1:9104", "HTTPS://127.0.0.1:9104",
                                       "https://example.invalid/base"};
    int failed = 0;
    char out[2048];
    for (size_t f = 0; f < 2; f++) {
        const char *field = f ? "notify_url" : "url";
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            int rc = with_url("check-config", field, bad[i], out, sizeof out);
            if (rc <= 0) {
                print_error("check-config with %s \"%s\": exit %d, want non-zero: %s\n", field,
                            bad[i], rc, out);
                failed++;
            }
        }
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
            int rc = with_url("check-config", field, good[i], out, sizeof out);
            if (rc != 0) {
                print_error("check-config with %s \"%s\": exit %d, want 0: %s\n", field, good[i],
                            rc, out);
                failed++;
            }
        }
    }
    /* serve refuses it too, without listening. */
    int rc = with_url("serve", "url", "file:///etc/passwd", out, sizeof out);
    if (rc <= 0) {
        print_error("serve with connector url file:///etc/passwd: exit %d: %s\n", rc, out);
        failed++;
    }
    assert_int_equal(failed, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

static json_t *make_overrides(void)
{
    char acme[128], swift[128], kibo[128], tec[128], notify[160];
    stub_dest_url(g_acme, acme, sizeof acme);
    snprintf(swift, sizeof swift, "http://127.0.0.1:%d", R.port);
    stub_dest_url(g_kibo, kibo, sizeof kibo);
    stub_dest_url(g_tec, tec, sizeof tec);
    json_t *tenants = harness_fixture_tenants_at((const char *[]){
        "acme-supply", acme, "swift-haul", swift, "kibo-retail", kibo, "tecspal-hw", tec, NULL});
    if (tenants == NULL)
        return NULL;
    json_object_set_new(json_object_get(harness_tenant(tenants, "swift-haul"), "connector"),
                        "timeout_ms", json_integer(SWIFT_TIMEOUT));
    snprintf(notify, sizeof notify, "%s/notify", acme);
    json_object_set_new(harness_tenant(tenants, "acme-supply"), "notify_url", json_string(notify));
    return json_pack("{s:o, s:{s:i, s:i, s:i}}", "tenants", tenants, "saga", "max_attempts",
                     MAX_ATTEMPTS, "retry_base_ms", 50, "retry_max_ms", 100);
}

static int group_setup(void **state)
{
    (void)state;
    setenv("ACME_WEBHOOK_SECRET", ACME_SECRET, 1);
    setenv("SWIFT_WEBHOOK_SECRET", SWIFT_SECRET, 1);
    setenv("TECSPAL_TOKEN", TEC_TOKEN, 1);
    g_acme = stub_dest_start();
    g_kibo = stub_dest_start();
    g_tec = stub_dest_start();
    g_target = stub_dest_start();
    if (!g_acme || !g_kibo || !g_tec || !g_target || rogue_start() != 0)
        return -1;
    json_t *ov = make_overrides();
    if (ov == NULL || harness_redis_start(&g_redis, false) != 0)
        return -1;
    g_redis_up = true;
    int rc = harness_gw_start(&g_gw, "gateway.json", g_redis.port, ov);
    json_decref(ov);
    if (rc != 0)
        return -1;
    g_gw_up = true;
    return harness_gw_wait_ready(&g_gw, 200, 10000) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (g_gw_up && harness_gw_stop(&g_gw) != 0)
        rc = -1;
    if (g_redis_up)
        harness_redis_stop(&g_redis);
    rogue_stop();
    stub_dest_stop(g_acme);
    stub_dest_stop(g_kibo);
    stub_dest_stop(g_tec);
    stub_dest_stop(g_target);
    g_teardown_failed = rc != 0;
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redirect_each),
        cmocka_unit_test(test_response_capped),
        cmocka_unit_test(test_drip_cut_at_timeout),
        cmocka_unit_test(test_partner_fields_stay_in_the_body),
        cmocka_unit_test(test_not_utf8_answer_logged),
        cmocka_unit_test(test_only_http_schemes),
    };
    int failed = cmocka_run_group_tests_name("outbound_safety", tests, group_setup, group_teardown);
    return failed != 0 || g_teardown_failed ? 1 : 0;
}
