/*
 * test_redis_outage.c - the gateway when Redis goes away: stopped (connection refused) and
 * stalled (SIGSTOP: the socket accepts, nothing answers).
 *
 * A request is never answered "pending" unless its saga is stored: while Redis is unreachable
 * every mutation gets 503 with Retry-After, promptly (within the command timeout, never a hang),
 * /readyz says 503, and once Redis is back the gateway reconnects by itself. Redis runs with
 * appendonly and appendfsync always, so what was accepted before the stop survives the restart
 * and the count of stored sagas equals the count of 200 answers over the whole file. A request
 * whose write timed out has an unknown outcome; it is retried with the same Idempotency-Key,
 * which must resolve it to exactly one saga.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "harness.h"

/* command_timeout_ms in tests/fixtures/configs/gateway.json, and the slack we allow on it. */
#define COMMAND_TIMEOUT_MS 1000
#define SLACK_MS 1000

static const char CANCEL_BODY[] =
    "{\"order\":{\"order_number\":\"PO-7001\"},\"reason_code\":\"customer\"}";

static harness_redis_t g_redis;
static harness_gw_t g_gw;
static bool g_redis_up;
static bool g_gw_up;
static bool g_redis_paused;
static bool g_teardown_failed;
/* Sagas that must be stored: one per 200 answer, one per Idempotency-Key however often it was
 * retried. */
static long long g_expected;

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

/* The last lines of the gateway's log, for a failure that needs them. */
static void print_gw_log_tail(int lines)
{
    FILE *f = fopen(g_gw.log_path, "r");
    if (f == NULL)
        return;
    char *ring[64] = {0};
    if (lines > 64)
        lines = 64;
    char buf[2048];
    int n = 0;
    while (fgets(buf, sizeof buf, f) != NULL) {
        free(ring[n % lines]);
        ring[n % lines] = strdup(buf);
        n++;
    }
    fclose(f);
    print_error("---- last lines of the gateway log (%s):\n", g_gw.log_path);
    for (int i = n > lines ? n - lines : 0; i < n; i++)
        print_error("%s", ring[i % lines]);
    for (int i = 0; i < lines; i++)
        free(ring[i]);
}

/* POST a cancel (with an Idempotency-Key when idem is not NULL); *elapsed_ms is its duration. */
static void post_cancel(const char *idem, harness_resp_t *resp, long long *elapsed_ms)
{
    char idem_hdr[128];
    const char *headers[6] = {"Content-Type: application/json", "X-API-Key: demo-acme-key",
                              "X-Dest-Tenant-Name: swift-haul", NULL, NULL, NULL};
    if (idem != NULL) {
        snprintf(idem_hdr, sizeof idem_hdr, "Idempotency-Key: %s", idem);
        headers[3] = idem_hdr;
    }
    long long t0 = harness_now_ms();
    int rc = harness_http(g_gw.port, "POST", "/v1/order/cancel", headers, CANCEL_BODY,
                          strlen(CANCEL_BODY), resp);
    if (elapsed_ms != NULL)
        *elapsed_ms = harness_now_ms() - t0;
    if (rc != 0) {
        print_gw_log_tail(30);
        fail_msg("no answer to POST /v1/order/cancel (after %lld ms)",
                 harness_now_ms() - t0);
    }
}

static void expect_pending(const harness_resp_t *r)
{
    if (r->status != 200)
        fail_msg("status %d, want 200; body: %s", r->status, r->body ? r->body : "(none)");
    assert_true(json_is_object(r->json));
    assert_string_equal(json_string_value(json_object_get(r->json, "status")), "pending");
}

/* 503 with Retry-After and a JSON {"detail": ...}; never anything that looks accepted. */
static void expect_unavailable(const harness_resp_t *r)
{
    if (r->status != 503)
        fail_msg("status %d, want 503; body: %s", r->status, r->body ? r->body : "(none)");
    char v[64];
    if (!harness_resp_header(r, "Retry-After", v, sizeof v))
        fail_msg("503 without Retry-After");
    assert_true(atoi(v) >= 1);
    assert_true(json_is_object(r->json));
    assert_true(json_is_string(json_object_get(r->json, "detail")));
    assert_null(json_object_get(r->json, "status"));
    assert_null(strstr(r->body, "pending"));
}

/* Saga records (cr:{cr}:saga:<id>), and the stream when nothing consumes it (see test_api.c). */
static void expect_stored(long long want)
{
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    long long sagas = 0;
    /* Group looked up before and after counting: see test_api.c. */
    redisReply *r = redisCommand(c, "XINFO GROUPS cr:{cr}:sagas");
    bool consumed = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
    if (r)
        freeReplyObject(r);
    r = redisCommand(c, "KEYS cr:{cr}:saga:*");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++)
        if (strchr(r->element[i]->str + strlen("cr:{cr}:saga:"), ':') == NULL)
            sagas++;
    freeReplyObject(r);
    long long stream = harness_stream_len(&g_redis);
    r = redisCommand(c, "XINFO GROUPS cr:{cr}:sagas");
    consumed = (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0) || consumed;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    print_message("saga records: %lld, stream entries: %lld%s; expected %lld\n", sagas, stream,
                  consumed ? " (consumed by workers)" : "", want);
    assert_int_equal(sagas, want);
    if (!consumed)
        assert_int_equal(stream, want);
}

/* Retry a request with Idempotency-Key idem until it is accepted; 503 is the only other answer
 * allowed meanwhile. */
static void retry_until_accepted(const char *idem, int deadline_ms)
{
    long long end = harness_now_ms() + deadline_ms;
    for (;;) {
        harness_resp_t r;
        long long ms;
        post_cancel(idem, &r, &ms);
        if (r.status == 200) {
            expect_pending(&r);
            harness_resp_free(&r);
            return;
        }
        expect_unavailable(&r);
        harness_resp_free(&r);
        if (harness_now_ms() >= end)
            fail_msg("Idempotency-Key %s not accepted within %d ms after Redis came back", idem,
                     deadline_ms);
        harness_sleep_ms(100);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Redis stopped, then restarted on the same port
 * ------------------------------------------------------------------------------------------- */

static void test_redis_stopped_then_restarted(void **state)
{
    (void)state;
    harness_resp_t r;
    long long ms;

    for (int i = 0; i < 5; i++) {
        post_cancel(NULL, &r, NULL);
        expect_pending(&r);
        g_expected++;
        harness_resp_free(&r);
    }
    expect_stored(g_expected);

    harness_redis_stop(&g_redis);
    g_redis_up = false;

    /* From the moment Redis is gone: 503 every time, and promptly. */
    int n = 0;
    long long end = harness_now_ms() + 3000;
    while (harness_now_ms() < end) {
        post_cancel(NULL, &r, &ms);
        expect_unavailable(&r);
        if (ms > COMMAND_TIMEOUT_MS + SLACK_MS)
            fail_msg("503 took %lld ms with Redis down", ms);
        harness_resp_free(&r);
        n++;
        /* With an Idempotency-Key too: refused the same way, nothing remembered. */
        char key[64];
        snprintf(key, sizeof key, "outage-%d-%d", (int)getpid(), n);
        post_cancel(key, &r, &ms);
        expect_unavailable(&r);
        harness_resp_free(&r);
        harness_sleep_ms(100);
    }
    print_message("%d requests answered 503 while Redis was down\n", n);
    assert_true(n >= 5);
    assert_true(harness_gw_wait_ready(&g_gw, 503, 2000));
    assert_int_equal(harness_http(g_gw.port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    expect_unavailable(&r);
    harness_resp_free(&r);
    /* The process itself is alive. */
    assert_int_equal(harness_http(g_gw.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    harness_resp_free(&r);

    assert_int_equal(harness_redis_restart(&g_redis), 0);
    g_redis_up = true;
    long long t0 = harness_now_ms();
    if (!harness_gw_wait_ready(&g_gw, 200, 15000))
        fail_msg("/readyz not 200 within 15 s of Redis coming back");
    print_message("ready again %lld ms after Redis restarted\n", harness_now_ms() - t0);

    /* Accepted again; nothing from before the stop was lost, nothing refused was stored. */
    for (int i = 0; i < 3; i++) {
        post_cancel(NULL, &r, NULL);
        expect_pending(&r);
        g_expected++;
        harness_resp_free(&r);
    }
    expect_stored(g_expected);
}

/* ---------------------------------------------------------------------------------------------
 * Redis stalled (SIGSTOP): commands time out instead of hanging
 * ------------------------------------------------------------------------------------------- */

static void test_redis_stalled(void **state)
{
    (void)state;
    harness_resp_t r;
    long long ms;
    assert_true(harness_gw_wait_ready(&g_gw, 200, 10000));

    post_cancel(NULL, &r, NULL);
    expect_pending(&r);
    g_expected++;
    harness_resp_free(&r);

    assert_int_equal(kill(g_redis.pid, SIGSTOP), 0);
    g_redis_paused = true;

    /* A client that leaves while its write is stuck in Redis: the request outlives its
     * connection and the late 503 must go nowhere, harmlessly. */
    char key0[64], key1[64], key2[64];
    snprintf(key0, sizeof key0, "stall-%d-0", (int)getpid());
    snprintf(key1, sizeof key1, "stall-%d-1", (int)getpid());
    snprintf(key2, sizeof key2, "stall-%d-2", (int)getpid());
    char req[512];
    int len = snprintf(req, sizeof req,
                       "POST /v1/order/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\nX-API-Key: demo-acme-key\r\n"
                       "X-Dest-Tenant-Name: swift-haul\r\nIdempotency-Key: %s\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       key0, strlen(CANCEL_BODY), CANCEL_BODY);
    assert_true(len > 0 && (size_t)len < sizeof req);
    int fd = harness_raw_connect(g_gw.port);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_send(fd, req, (size_t)len, 0), 0);
    harness_sleep_ms(200);
    close(fd);

    /* The write is sent and never answered: 503 once the command timer fires. Its outcome is
     * unknown (Redis may still run it when it wakes), hence the Idempotency-Key. */
    post_cancel(key1, &r, &ms);
    print_message("stalled Redis: answered %d after %lld ms\n", r.status, ms);
    expect_unavailable(&r);
    if (ms > COMMAND_TIMEOUT_MS + SLACK_MS)
        fail_msg("503 took %lld ms with Redis stalled (command timeout %d ms)", ms,
                 COMMAND_TIMEOUT_MS);
    harness_resp_free(&r);

    post_cancel(key2, &r, &ms);
    expect_unavailable(&r);
    if (ms > COMMAND_TIMEOUT_MS + SLACK_MS)
        fail_msg("second 503 took %lld ms with Redis stalled", ms);
    harness_resp_free(&r);
    assert_true(harness_gw_wait_ready(&g_gw, 503, COMMAND_TIMEOUT_MS + SLACK_MS));

    /* Still stalled a while later: still prompt 503s (reconnects to a stalled Redis must not
     * make requests wait either). */
    long long end = harness_now_ms() + 2500;
    while (harness_now_ms() < end) {
        post_cancel(key2, &r, &ms);
        expect_unavailable(&r);
        if (ms > COMMAND_TIMEOUT_MS + SLACK_MS)
            fail_msg("503 took %lld ms with Redis stalled", ms);
        harness_resp_free(&r);
        harness_sleep_ms(200);
    }

    assert_int_equal(kill(g_redis.pid, SIGCONT), 0);
    g_redis_paused = false;

    /* Each key resolves to exactly one saga, whether Redis ran the timed-out write or not. */
    long long t0 = harness_now_ms();
    retry_until_accepted(key1, 15000);
    print_message("accepted again %lld ms after Redis resumed\n", harness_now_ms() - t0);
    g_expected++;
    retry_until_accepted(key0, 5000);
    g_expected++;
    retry_until_accepted(key2, 5000);
    g_expected++;
    /* And a repeat of either is a replay, not a new saga. */
    retry_until_accepted(key1, 1000);

    for (int i = 0; i < 3; i++) {
        post_cancel(NULL, &r, NULL);
        expect_pending(&r);
        g_expected++;
        harness_resp_free(&r);
    }
    assert_true(harness_gw_wait_ready(&g_gw, 200, 1000));
    expect_stored(g_expected);
}

/* ---------------------------------------------------------------------------------------------
 * Redis killed (SIGKILL, no clean shutdown): with appendfsync always, every saga that was
 * answered 200 is in the AOF
 * ------------------------------------------------------------------------------------------- */

static void test_redis_killed(void **state)
{
    (void)state;
    harness_resp_t r;
    assert_true(harness_gw_wait_ready(&g_gw, 200, 10000));
    for (int i = 0; i < 10; i++) {
        post_cancel(NULL, &r, NULL);
        expect_pending(&r);
        g_expected++;
        harness_resp_free(&r);
    }
    harness_redis_kill(&g_redis);
    g_redis_up = false;
    post_cancel(NULL, &r, NULL);
    expect_unavailable(&r);
    harness_resp_free(&r);
    assert_true(harness_gw_wait_ready(&g_gw, 503, 2000));

    assert_int_equal(harness_redis_restart(&g_redis), 0);
    g_redis_up = true;
    if (!harness_gw_wait_ready(&g_gw, 200, 15000))
        fail_msg("/readyz not 200 within 15 s of Redis coming back");
    post_cancel(NULL, &r, NULL);
    expect_pending(&r);
    g_expected++;
    harness_resp_free(&r);
    expect_stored(g_expected);
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (harness_redis_start(&g_redis, true) != 0)
        return -1;
    g_redis_up = true;
    if (harness_gw_start(&g_gw, "gateway.json", g_redis.port, NULL) != 0)
        return -1;
    g_gw_up = true;
    if (!harness_gw_wait_ready(&g_gw, 200, 10000))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (g_redis_paused && g_redis.pid > 0) {
        kill(g_redis.pid, SIGCONT);
        g_redis_paused = false;
    }
    if (g_gw_up) {
        /* SIGTERM: drain and exit 0, with no sanitizer report in its log. */
        int st = harness_gw_stop(&g_gw);
        if (st != 0) {
            print_error("gateway stop returned %d (want 0)\n", st);
            rc = -1;
        }
        g_gw_up = false;
    }
    if (g_redis_up) {
        harness_redis_stop(&g_redis);
        g_redis_up = false;
    }
    /* cmocka 1.1 reports a failed group teardown but still exits 0: main() checks this too. */
    g_teardown_failed = rc != 0;
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_stopped_then_restarted),
        cmocka_unit_test(test_redis_stalled),
        cmocka_unit_test(test_redis_killed),
    };
    int failed = cmocka_run_group_tests_name("redis_outage", tests, group_setup, group_teardown);
    return failed != 0 || g_teardown_failed ? 1 : 0;
}
