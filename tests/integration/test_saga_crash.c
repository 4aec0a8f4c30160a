/*
 * test_saga_crash.c - sagas survive the death or stall of a gateway mid-flight:
 *   - killed (SIGKILL) and restarted, the gateway finishes every accepted saga;
 *   - with two gateways on one Redis, the survivor takes over the dead one's work once its
 *     entries have been idle for claim_idle_ms;
 *   - killed while retries wait out their delay, the restarted gateway wakes and finishes them;
 *   - paused (SIGSTOP) past its claim and woken again, a gateway's stale runs are fenced;
 *   - the scripts flushed from Redis mid-delivery, the failed commit leaves no entries behind;
 *   - Redis at maxmemory mid-delivery, the saga still ends, once;
 *   - a claim charges a saga (towards saga.max_claims) only for a run that started with the
 *     claimed entry, not for an entry its dead worker had read but not begun;
 *   - nor for a run that ended in a live process because Redis did not answer its commit.
 *
 * The first four scenarios each accept 100 sagas (50 orders: a create, then an update_status
 * queued behind it on the same order) from acme-supply for swift-haul, whose stand-in system
 * answers every request after 50 ms, and strikes once the destination has begun to receive
 * them. Then: every accepted saga ends synced within a deadline; every delivery belongs to an
 * accepted saga and the distinct Idempotency-Keys are exactly the accepted sagas; a saga
 * delivered more than once was re-sent with the same Idempotency-Key, path and body (a
 * duplicate the destination can recognise, never a second different effect); each order's
 * update reached the destination after its create; and the stream, the pending lists and the
 * active and delayed indexes end empty.
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

#include "harness.h"
#include "stub_dest.h"

#define ACME_KEY           "demo-acme-key"
#define N_ORDERS           50
#define N_SAGAS            (2 * N_ORDERS)
#define STUB_DELAY_MS      50
#define FINISH_DEADLINE_MS 30000
#define MAX_ATTEMPTS       5

static harness_redis_t g_redis;
static bool g_redis_up;
static stub_dest_t *g_acme;
static stub_dest_t *g_swift;
static json_t *g_overrides;

/* One scenario's accepted sagas: [2i] the create of order i, [2i+1] its update. */
typedef struct batch {
    char sid[N_SAGAS][25];
    char oid[N_ORDERS][25];
    size_t stub_from; /* the swift stub's request count before the batch */
    size_t keys_from; /* and its distinct Idempotency-Keys */
} batch_t;

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static bool is_terminal(const char *st)
{
    return st && (strcmp(st, "synced") == 0 || strcmp(st, "canceled") == 0 ||
                  strcmp(st, "rejected") == 0 || strcmp(st, "error") == 0);
}

/* POST /v1/order/<action> as acme-supply for swift-haul: 200 pending; saga id into sid and,
 * for a create, the order id into oid. */
static void submit(int port, const char *action, const char *body, char sid[25], char oid[25])
{
    const char *h[] = {"Content-Type: application/json", "X-API-Key: " ACME_KEY,
                       "X-Dest-Tenant-Name: swift-haul", NULL};
    char path[64];
    snprintf(path, sizeof path, "/v1/order/%s", action);
    harness_resp_t r;
    if (harness_http(port, "POST", path, h, body, strlen(body), &r) != 0)
        fail_msg("POST %s: no answer", path);
    if (r.status != 200 || r.json == NULL)
        fail_msg("POST %s: %d %s", path, r.status, r.body ? r.body : "");
    const char *s = json_string_value(json_object_get(json_object_get(r.json, "log"), "saga_id"));
    assert_non_null(s);
    snprintf(sid, 25, "%s", s);
    if (oid) {
        const char *o = json_string_value(json_object_get(r.json, "order_id"));
        assert_non_null(o);
        snprintf(oid, 25, "%s", o);
    }
    harness_resp_free(&r);
}

/* 50 orders, each a create and then an update on it, alternating between the two ports. */
static void submit_batch(batch_t *b, const char *prefix, int port_a, int port_b)
{
    b->stub_from = stub_dest_count(g_swift);
    b->keys_from = stub_dest_distinct_keys(g_swift);
    for (int i = 0; i < N_ORDERS; i++) {
        char *create =
            harness_fmt("{\"order_number\":\"%s-%02d\",\"lines\":[{\"product\":{\"source_id\":"
                        "\"ULSD\"},\"terminal\":{\"source_id\":\"HOU-T1\"},\"site\":{"
                        "\"source_id\":\"ATX-S12\"},\"quantity\":%d,\"uom\":\"gal\"}],"
                        "\"requested_delivery\":\"2026-05-12T08:00:00.000Z\"}",
                        prefix, i, 1000 + i);
        submit(i % 2 ? port_b : port_a, "create", create, b->sid[2 * i], b->oid[i]);
        free(create);
        char *update =
            harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"progress_status\":\"assigned\","
                        "\"location\":{\"source_id\":\"HOU-T1\"},\"assigned_to\":\"%s-%02d\"}",
                        b->oid[i], prefix, i);
        submit(i % 2 ? port_a : port_b, "update_status", update, b->sid[2 * i + 1], NULL);
        free(update);
    }
}

/* Work is under way: the destination has begun to receive the batch (the kill then lands
 * with sagas at every stage, some of them mid-delivery). */
static void wait_some_delivered(const batch_t *b)
{
    if (!stub_dest_wait(g_swift, b->stub_from + N_SAGAS / 5, 10000))
        fail_msg("no deliveries under way 10 s after the batch was accepted");
}

/* HMGET status owner of every saga of the batch; returns how many are not terminal. */
static int snapshot(redisContext *c, const batch_t *b, char status[N_SAGAS][24],
                    char owner[N_SAGAS][160])
{
    int open = 0;
    for (int i = 0; i < N_SAGAS; i++) {
        redisReply *r = redisCommand(c, "HMGET cr:{cr}:saga:%s status owner", b->sid[i]);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(status[i], 24, "%s",
                 r->element[0]->type == REDIS_REPLY_STRING ? r->element[0]->str : "");
        snprintf(owner[i], 160, "%s",
                 r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str : "");
        freeReplyObject(r);
        if (!is_terminal(status[i]))
            open++;
    }
    return open;
}

/* Wait until every saga of the batch is terminal (read from Redis, cheap to poll). */
static void wait_all_terminal(const batch_t *b, int deadline_ms)
{
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    static char status[N_SAGAS][24];
    static char owner[N_SAGAS][160];
    long long start = harness_now_ms(), end = start + deadline_ms;
    int open;
    while ((open = snapshot(c, b, status, owner)) > 0) {
        if (harness_now_ms() >= end) {
            for (int i = 0; i < N_SAGAS; i++)
                if (!is_terminal(status[i]))
                    print_error("saga %s (%s of order %s) still %s, owner %s\n", b->sid[i],
                                i % 2 ? "update" : "create", b->oid[i / 2], status[i], owner[i]);
            redisFree(c);
            fail_msg("%d of %d sagas not terminal after %d ms", open, N_SAGAS, deadline_ms);
        }
        harness_sleep_ms(50);
    }
    redisFree(c);
    print_message("all %d sagas terminal %lld ms after the restart/kill\n", N_SAGAS,
                  harness_now_ms() - start);
}

/* Every saga reads synced through the API (the gateway on port). */
static void expect_all_synced(int port, const batch_t *b)
{
    const char *h[] = {"X-API-Key: " ACME_KEY, NULL};
    for (int i = 0; i < N_SAGAS; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/saga/%s", b->sid[i]);
        harness_resp_t r;
        assert_int_equal(harness_http(port, "GET", path, h, NULL, 0, &r), 0);
        const char *st = json_string_value(json_object_get(r.json, "status"));
        if (r.status != 200 || st == NULL || strcmp(st, "synced") != 0)
            fail_msg("saga %s: %d %s, want synced", b->sid[i], r.status, r.body ? r.body : "");
        harness_resp_free(&r);
    }
}

static int saga_index(const batch_t *b, const char *key)
{
    for (int i = 0; i < N_SAGAS; i++)
        if (strcmp(b->sid[i], key) == 0)
            return i;
    return -1;
}

/*
 * What the destination saw since the batch began: only accepted sagas, each at least once,
 * repeats identical (same key, path and body), each order's update after its create. With
 * stale_ok, a create's repeat may come after the update (a paused process that wakes up sends
 * what it was about to send before it can learn it was fenced: a late duplicate with the same
 * key); only the first delivery of each must keep the order. A killed process sends nothing,
 * so without stale_ok every copy of the create comes first.
 */
static void check_deliveries(const batch_t *b, bool stale_ok)
{
    size_t n = stub_dest_count(g_swift);
    static char *first_body[N_SAGAS];
    static char *first_path[N_SAGAS];
    int count[N_SAGAS] = {0};
    long long create_first[N_ORDERS], create_last[N_ORDERS], update_first[N_ORDERS];
    for (int i = 0; i < N_ORDERS; i++) {
        create_first[i] = create_last[i] = -1;
        update_first[i] = -1;
    }
    size_t dups = 0;
    for (size_t i = b->stub_from; i < n; i++) {
        stub_req_t r;
        assert_true(stub_dest_get(g_swift, i, &r));
        int k = saga_index(b, r.idempotency_key);
        if (k < 0)
            fail_msg("delivery #%zu (%s %s, Idempotency-Key \"%s\") matches no accepted saga: %s",
                     i, r.method, r.path, r.idempotency_key, r.body);
        if (count[k]++ == 0) {
            first_body[k] = strdup(r.body);
            first_path[k] = strdup(r.path);
        } else {
            dups++;
            if (strcmp(first_path[k], r.path) != 0 || strcmp(first_body[k], r.body) != 0)
                fail_msg("saga %s delivered twice with different effects:\n %s %s\n %s %s",
                         b->sid[k], first_path[k], first_body[k], r.path, r.body);
        }
        const char *want_path = k % 2 ? "/v1/order/update_status" : "/v1/order/create";
        if (strcmp(r.path, want_path) != 0)
            fail_msg("saga %s delivered to %s, want %s", b->sid[k], r.path, want_path);
        if (k % 2 == 0) {
            create_last[k / 2] = (long long)i;
            if (create_first[k / 2] < 0)
                create_first[k / 2] = (long long)i;
        } else if (update_first[k / 2] < 0)
            update_first[k / 2] = (long long)i;
        stub_req_free(&r);
    }
    for (int k = 0; k < N_SAGAS; k++) {
        if (count[k] == 0)
            fail_msg("saga %s ended synced but the destination never got it", b->sid[k]);
        free(first_body[k]);
        free(first_path[k]);
        first_body[k] = first_path[k] = NULL;
    }
    int late = 0;
    for (int i = 0; i < N_ORDERS; i++) {
        if (update_first[i] < create_first[i])
            fail_msg("order %s: its update reached the destination (#%lld) before its create "
                     "(#%lld)",
                     b->oid[i], update_first[i], create_first[i]);
        if (update_first[i] < create_last[i]) {
            if (!stale_ok)
                fail_msg("order %s: its update reached the destination (#%lld) before its "
                         "create was last sent (#%lld)",
                         b->oid[i], update_first[i], create_last[i]);
            late++;
        }
    }
    if (late > 0)
        print_message("%d late duplicate(s) of a create after its order's update, from the "
                      "woken process\n",
                      late);
    assert_int_equal(stub_dest_distinct_keys(g_swift) - b->keys_from, N_SAGAS);
    print_message("%zu deliveries for %d sagas (%zu repeats with the same Idempotency-Key)\n",
                  n - b->stub_from, N_SAGAS, dups);
}

static long long redis_int(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, cmd);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        v = r->element[0]->integer; /* XPENDING summary: the count first */
    freeReplyObject(r);
    return v;
}

/* Nothing left behind: no stream entries, nothing pending, no active or delayed sagas. */
static void expect_queues_drained(void)
{
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    long long end = harness_now_ms() + 10000;
    long long xlen, pending, active, delayed;
    for (;;) {
        xlen = redis_int(c, "XLEN cr:{cr}:sagas");
        pending = redis_int(c, "XPENDING cr:{cr}:sagas workers");
        active = redis_int(c, "ZCARD cr:{cr}:active");
        delayed = redis_int(c, "ZCARD cr:{cr}:delayed");
        if ((xlen == 0 && pending == 0 && active == 0 && delayed == 0) || harness_now_ms() >= end)
            break;
        harness_sleep_ms(50);
    }
    redisFree(c);
    if (xlen != 0 || pending != 0 || active != 0 || delayed != 0)
        fail_msg("left behind: %lld stream entries, %lld pending, %lld active, %lld delayed", xlen,
                 pending, active, delayed);
}

/* Wait until n clients are blocked reading the saga stream (each gateway keeps one
 * XREADGROUP ... BLOCK outstanding while it is idle). A consumer only joins the group when it
 * first gets an entry, so the client list is what shows a reader before any load. */
static void wait_readers(int n)
{
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    long long end = harness_now_ms() + 10000;
    int readers = 0;
    for (;;) {
        redisReply *r = redisCommand(c, "CLIENT LIST");
        assert_non_null(r);
        readers = 0;
        for (const char *p = r->str; p && (p = strstr(p, "cmd=xreadgroup")) != NULL; p++)
            readers++;
        freeReplyObject(r);
        if (readers >= n || harness_now_ms() >= end)
            break;
        harness_sleep_ms(20);
    }
    redisFree(c);
    if (readers < n)
        fail_msg("%d stream readers after 10 s, want %d", readers, n);
}

/* Every order's log holds each of its sagas' entries once: no two with the same saga and title
 * (a stale run's commit that was fenced takes its pushed entries back), and one terminal entry
 * per saga. */
static void expect_logs_once(const batch_t *b)
{
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    for (int i = 0; i < N_ORDERS; i++) {
        redisReply *r = redisCommand(c, "LRANGE cr:{cr}:order:%s:log 0 -1", b->oid[i]);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        int terminal[2] = {0, 0};
        for (size_t k = 0; k < r->elements; k++) {
            json_t *e = json_loads(r->element[k]->str, 0, NULL);
            assert_non_null(e);
            const char *sid = json_string_value(json_object_get(e, "saga_id"));
            const char *title = json_string_value(json_object_get(e, "title"));
            assert_non_null(sid);
            assert_non_null(title);
            for (int j = 0; j < 2; j++)
                terminal[j] += strcmp(sid, b->sid[2 * i + j]) == 0 &&
                               is_terminal(json_string_value(json_object_get(e, "status")));
            for (size_t m = 0; m < k; m++) {
                json_t *o = json_loads(r->element[m]->str, 0, NULL);
                assert_non_null(o);
                if (strcmp(sid, json_string_value(json_object_get(o, "saga_id"))) == 0 &&
                    strcmp(title, json_string_value(json_object_get(o, "title"))) == 0)
                    fail_msg("order %s: saga %s logged \"%s\" twice", b->oid[i], sid, title);
                json_decref(o);
            }
            json_decref(e);
        }
        if (terminal[0] != 1 || terminal[1] != 1)
            fail_msg("order %s: %d and %d terminal log entries for its two sagas (want 1 each)",
                     b->oid[i], terminal[0], terminal[1]);
        freeReplyObject(r);
    }
    redisFree(c);
}

/* A killed gateway leaves no exit status to check: its log must at least hold no sanitizer
 * report (harness_gw_stop checks the same for the ones stopped with SIGTERM). */
static void kill_checked(harness_gw_t *g)
{
    char path[sizeof g->log_path];
    snprintf(path, sizeof path, "%s", g->log_path);
    harness_gw_kill(g);
    static const char *const marks[] = {"ERROR: AddressSanitizer",
                                        "runtime error:", "LeakSanitizer"};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL)
        for (size_t i = 0; i < 3; i++)
            if (strstr(line, marks[i]) != NULL) {
                fclose(f);
                fail_msg("sanitizer report in the killed gateway's log %s: %s", path, line);
            }
    fclose(f);
}

static void stop_ok(harness_gw_t *g)
{
    int st = harness_gw_stop(g);
    if (st != 0)
        fail_msg("gateway stop returned %d (want 0)", st);
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------- */

static void test_restart_after_sigkill(void **state)
{
    (void)state;
    harness_gw_t gw;
    if (harness_gw_start(&gw, "gateway.json", g_redis.port, g_overrides) != 0)
        fail_msg("gateway did not start");
    assert_true(harness_gw_wait_ready(&gw, 200, 10000));
    static batch_t b;
    submit_batch(&b, "CR", gw.port, gw.port);
    wait_some_delivered(&b);
    kill_checked(&gw);

    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    static char status[N_SAGAS][24];
    static char owner[N_SAGAS][160];
    int open = snapshot(c, &b, status, owner);
    redisFree(c);
    print_message("killed with %d of %d accepted sagas unfinished (%zu deliveries so far)\n", open,
                  N_SAGAS, stub_dest_count(g_swift) - b.stub_from);
    assert_true(open > 0);

    if (harness_gw_start(&gw, "gateway.json", g_redis.port, g_overrides) != 0)
        fail_msg("gateway did not restart");
    wait_all_terminal(&b, FINISH_DEADLINE_MS);
    expect_all_synced(gw.port, &b);
    expect_logs_once(&b);
    check_deliveries(&b, false);
    expect_queues_drained();
    stop_ok(&gw);
}

static void test_takeover_by_second_process(void **state)
{
    (void)state;
    harness_gw_t a, bgw;
    if (harness_gw_start(&a, "gateway.json", g_redis.port, g_overrides) != 0 ||
        harness_gw_start(&bgw, "gateway.json", g_redis.port, g_overrides) != 0)
        fail_msg("gateways did not start");
    assert_true(harness_gw_wait_ready(&a, 200, 10000));
    assert_true(harness_gw_wait_ready(&bgw, 200, 10000));
    char a_mark[32], b_mark[32];
    snprintf(a_mark, sizeof a_mark, "-%d-", (int)a.pid);
    snprintf(b_mark, sizeof b_mark, "-%d-", (int)bgw.pid);

    /* Both are reading the stream before the load starts, so both get a share of it. */
    wait_readers(2);
    static batch_t b;
    submit_batch(&b, "TK", a.port, bgw.port);
    wait_some_delivered(&b);
    kill_checked(&a);

    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    static char status[N_SAGAS][24];
    static char owner[N_SAGAS][160];
    int open = snapshot(c, &b, status, owner);
    bool was_a[N_SAGAS];
    int open_a = 0;
    for (int i = 0; i < N_SAGAS; i++) {
        was_a[i] = !is_terminal(status[i]) && strstr(owner[i], a_mark) != NULL;
        open_a += was_a[i];
    }
    redisFree(c);
    print_message("killed one of two gateways: %d of %d accepted sagas unfinished, %d of them "
                  "begun by it (%zu deliveries so far)\n",
                  open, N_SAGAS, open_a, stub_dest_count(g_swift) - b.stub_from);
    assert_true(open > 0);

    wait_all_terminal(&b, FINISH_DEADLINE_MS);
    expect_all_synced(bgw.port, &b);
    expect_logs_once(&b);
    check_deliveries(&b, false);

    /* What the dead process had begun, the survivor finished. */
    c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    snapshot(c, &b, status, owner);
    redisFree(c);
    int taken = 0;
    for (int i = 0; i < N_SAGAS; i++) {
        if (!was_a[i])
            continue;
        if (strstr(owner[i], b_mark) == NULL)
            fail_msg("saga %s begun by the killed gateway ended with owner %s, want the "
                     "survivor (%s)",
                     b.sid[i], owner[i], b_mark);
        taken++;
    }
    print_message("%d sagas taken over by the survivor\n", taken);
    assert_true(open_a > 0);
    assert_int_equal(taken, open_a);
    expect_queues_drained();
    stop_ok(&bgw);
}

/*
 * Killed while retries wait out their delay: every create's first attempt fails (500), so at
 * the kill most sagas are parked for a retry (or just woken); restarted, the gateway wakes and
 * finishes them, and no saga goes past max_attempts.
 */
static void test_restart_with_retries_parked(void **state)
{
    (void)state;
    harness_gw_t gw;
    if (harness_gw_start(&gw, "gateway.json", g_redis.port, g_overrides) != 0)
        fail_msg("gateway did not start");
    assert_true(harness_gw_wait_ready(&gw, 200, 10000));
    for (int i = 0; i < N_ORDERS; i++)
        stub_dest_push_status(g_swift, 500, NULL, "{\"detail\":\"try later\"}");
    static batch_t b;
    submit_batch(&b, "RT", gw.port, gw.port);
    if (!stub_dest_wait(g_swift, b.stub_from + N_ORDERS, 10000))
        fail_msg("the first attempts did not arrive");
    kill_checked(&gw);
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    long long parked = 0;
    redisReply *r = redisCommand(c, "ZCARD cr:{cr}:delayed");
    if (r && r->type == REDIS_REPLY_INTEGER)
        parked = r->integer;
    freeReplyObject(r);
    static char status[N_SAGAS][24];
    static char owner[N_SAGAS][160];
    int open = snapshot(c, &b, status, owner);
    redisFree(c);
    print_message("killed with %d sagas unfinished, %lld parked for a retry\n", open, parked);
    assert_true(open > 0);
    assert_int_equal(stub_dest_queued(g_swift), 0);

    if (harness_gw_start(&gw, "gateway.json", g_redis.port, g_overrides) != 0)
        fail_msg("gateway did not restart");
    wait_all_terminal(&b, FINISH_DEADLINE_MS);
    expect_all_synced(gw.port, &b);
    expect_logs_once(&b);
    check_deliveries(&b, false);
    /* Attempts are counted across the crash and stay within max_attempts. */
    const char *h[] = {"X-API-Key: " ACME_KEY, NULL};
    for (int i = 0; i < N_SAGAS; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/saga/%s", b.sid[i]);
        harness_resp_t resp;
        assert_int_equal(harness_http(gw.port, "GET", path, h, NULL, 0, &resp), 0);
        json_int_t att = json_integer_value(json_object_get(resp.json, "attempts"));
        if (att < 1 || att > MAX_ATTEMPTS)
            fail_msg("saga %s: attempts %lld, want 1..%d: %s", b.sid[i], (long long)att,
                     MAX_ATTEMPTS, resp.body);
        /* An attempt cut off by the kill before its outcome was stored is not counted; one
         * that was counted was sent. */
        size_t sent = stub_dest_count_key(g_swift, b.sid[i]);
        if ((size_t)att > sent)
            fail_msg("saga %s counts %lld attempts but was sent %zu times", b.sid[i],
                     (long long)att, sent);
        harness_resp_free(&resp);
    }
    expect_queues_drained();
    stop_ok(&gw);
}

/* Count occurrences of needle in a gateway's log. */
static int log_count(const harness_gw_t *g, const char *needle)
{
    char *log = NULL;
    FILE *f = fopen(g->log_path, "rb");
    if (f != NULL) {
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        log = calloc(1, (size_t)(sz > 0 ? sz : 0) + 1);
        assert_non_null(log);
        size_t got = fread(log, 1, (size_t)(sz > 0 ? sz : 0), f);
        log[got] = '\0';
        fclose(f);
    }
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(log);
    return n;
}

/* The saga's history (from the API) ends with exactly one terminal entry, want. */
static void expect_one_ending(int port, const char *sid, const char *want)
{
    const char *h[] = {"X-API-Key: " ACME_KEY, NULL};
    char path[64];
    snprintf(path, sizeof path, "/v1/saga/%s", sid);
    harness_resp_t r;
    assert_int_equal(harness_http(port, "GET", path, h, NULL, 0, &r), 0);
    const json_t *hist = json_object_get(r.json, "history");
    int terminal = 0;
    const char *last = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(hist, i, e)
    {
        last = json_string_value(json_object_get(e, "status"));
        terminal += is_terminal(last);
    }
    if (terminal != 1 || last == NULL || strcmp(last, want) != 0)
        fail_msg("saga %s: %d terminal history entries, last %s (want one, %s): %s", sid, terminal,
                 last ? last : "(none)", want, r.body);
    harness_resp_free(&r);
}

/*
 * A process paused (SIGSTOP) past claim_idle_ms with sagas in flight: the other one claims and
 * finishes them. When the paused one wakes up (SIGCONT), its stale runs must not write: every
 * saga keeps its single synced ending, and nothing is delivered with a different effect.
 */
static void test_paused_owner_fenced(void **state)
{
    (void)state;
    /* Redis commands may wait 10 s here, longer than the pause: the woken process then reads
     * the replies it was sent and goes on as if nothing happened (as a process stalled by the
     * scheduler or a long GC-like pause would), so its stale runs reach their commits. */
    json_t *ov = json_deep_copy(g_overrides);
    json_object_set_new(ov, "redis", json_pack("{s:i}", "command_timeout_ms", 10000));
    harness_gw_t a, bgw;
    if (harness_gw_start(&a, "gateway.json", g_redis.port, ov) != 0 ||
        harness_gw_start(&bgw, "gateway.json", g_redis.port, ov) != 0)
        fail_msg("gateways did not start");
    json_decref(ov);
    assert_true(harness_gw_wait_ready(&a, 200, 10000));
    assert_true(harness_gw_wait_ready(&bgw, 200, 10000));
    wait_readers(2);
    char a_mark[32];
    snprintf(a_mark, sizeof a_mark, "-%d-", (int)a.pid);

    static batch_t b;
    submit_batch(&b, "PS", a.port, bgw.port);
    wait_some_delivered(&b);
    assert_int_equal(kill(a.pid, SIGSTOP), 0);

    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    static char status[N_SAGAS][24];
    static char owner[N_SAGAS][160];
    int open = snapshot(c, &b, status, owner), open_a = 0;
    for (int i = 0; i < N_SAGAS; i++)
        open_a += !is_terminal(status[i]) && strstr(owner[i], a_mark) != NULL;
    redisFree(c);
    print_message("paused one of two gateways: %d sagas unfinished, %d of them begun by it\n", open,
                  open_a);
    assert_true(open_a > 0);

    wait_all_terminal(&b, FINISH_DEADLINE_MS);
    size_t delivered = stub_dest_count(g_swift);
    int fenced_before = log_count(&a, "saga fenced");
    assert_int_equal(kill(a.pid, SIGCONT), 0);
    /* Wait until the woken process has reached the commits of its stale runs: fenced. */
    long long end = harness_now_ms() + 10000;
    while (log_count(&a, "saga fenced") - fenced_before < 1 && harness_now_ms() < end)
        harness_sleep_ms(50);
    /* And it serves again. */
    assert_true(harness_gw_wait_ready(&a, 200, 10000));
    int fenced = log_count(&a, "saga fenced") - fenced_before;
    print_message("woken process: %d runs fenced, %d commits failed; %zu deliveries after the "
                  "wake-up\n",
                  fenced, log_count(&a, "commit failed"), stub_dest_count(g_swift) - delivered);
    assert_true(fenced > 0);

    for (int i = 0; i < N_SAGAS; i++)
        expect_one_ending(bgw.port, b.sid[i], "synced");
    check_deliveries(&b, true);
    expect_queues_drained();
    /* Still exactly one ending each once everything is quiet. */
    for (int i = 0; i < N_SAGAS; i++)
        expect_one_ending(a.port, b.sid[i], "synced");
    expect_logs_once(&b);
    stop_ok(&a);
    stop_ok(&bgw);
}

/* LRANGE key 0 -1: how many entries contain needle. */
static int list_count(redisContext *c, const char *key, const char *needle)
{
    redisReply *r = redisCommand(c, "LRANGE %s 0 -1", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    int n = 0;
    for (size_t k = 0; k < r->elements; k++)
        n += strstr(r->element[k]->str, needle) != NULL;
    freeReplyObject(r);
    return n;
}

/* The saga's status once it is terminal, or "" after deadline_ms. */
static void wait_status(redisContext *c, const char *sid, int deadline_ms, char out[24])
{
    long long end = harness_now_ms() + deadline_ms;
    out[0] = '\0';
    for (;;) {
        redisReply *r = redisCommand(c, "HGET cr:{cr}:saga:%s status", sid);
        assert_non_null(r);
        bool done = r->type == REDIS_REPLY_STRING && is_terminal(r->str);
        if (done)
            snprintf(out, 24, "%s", r->str);
        freeReplyObject(r);
        if (done || harness_now_ms() >= end)
            return;
        harness_sleep_ms(50);
    }
}

/*
 * The scripts gone from Redis (SCRIPT FLUSH) while a delivery is under way: the commit that
 * ends the saga pushes its history and log entries ahead of its script in one transaction, and
 * the script fails (NOSCRIPT). The gateway takes the pushed entries back, and the saga resumes
 * from its stored status once a process that loaded the scripts again claims it: one ending in
 * its history, one delivery entry in its order's log.
 */
/* A gateway started, one create accepted (order number num) and its delivery under way: the
 * destination has the request and answers 1.5 s later; later requests are answered as usual. */
static void start_slow_create(harness_gw_t *gw, const char *num, char sid[25], char oid[25])
{
    stub_reply_t slow = {.status = 200, .delay_ms = 1500};
    stub_dest_set_default(g_swift, &slow);
    if (harness_gw_start(gw, "gateway.json", g_redis.port, g_overrides) != 0)
        fail_msg("gateway did not start");
    assert_true(harness_gw_wait_ready(gw, 200, 10000));
    size_t from = stub_dest_count(g_swift);
    char *body = harness_fmt(
        "{\"order_number\":\"%s\",\"lines\":[{\"product\":{\"source_id\":\"ULSD\"},"
        "\"terminal\":{\"source_id\":\"HOU-T1\"},\"site\":{\"source_id\":\"ATX-S12\"},"
        "\"quantity\":10,\"uom\":\"gal\"}],\"requested_delivery\":\"2026-05-12T08:00:00.000Z\"}",
        num);
    submit(gw->port, "create", body, sid, oid);
    free(body);
    assert_true(stub_dest_wait(g_swift, from + 1, 10000));
    stub_reply_t fast = {.status = 200, .delay_ms = STUB_DELAY_MS};
    stub_dest_set_default(g_swift, &fast);
}

static void test_script_flushed_mid_delivery(void **state)
{
    (void)state;
    harness_gw_t gw;
    char sid[25], oid[25];
    start_slow_create(&gw, "SF-1", sid, oid);
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));

    long long end = harness_now_ms() + 10000;
    while (log_count(&gw, "saga commit failed") == 0 && harness_now_ms() < end)
        harness_sleep_ms(50);
    assert_true(log_count(&gw, "saga commit failed") > 0);
    char hist[96], log[96];
    snprintf(hist, sizeof hist, "cr:{cr}:saga:%s:hist", sid);
    snprintf(log, sizeof log, "cr:{cr}:order:%s:log", oid);
    /* the entries the failed commit pushed are taken back right after its answer */
    end = harness_now_ms() + 5000;
    while ((list_count(c, hist, "\"synced\"") > 0 || list_count(c, log, "Delivery attempt") > 0) &&
           harness_now_ms() < end)
        harness_sleep_ms(20);
    assert_int_equal(list_count(c, hist, "\"synced\""), 0);
    assert_int_equal(list_count(c, hist, "destination_mapped"), 1);
    assert_int_equal(list_count(c, log, "Delivery attempt"), 0);
    assert_int_equal(list_count(c, log, "Order mapped"), 3);
    redisReply *r = redisCommand(c, "HGET cr:{cr}:saga:%s status", sid);
    assert_non_null(r);
    assert_string_equal(r->str, "destination_mapped");
    freeReplyObject(r);

    /* a new process loads the scripts again, claims the saga's entry and finishes it */
    stop_ok(&gw);
    if (harness_gw_start(&gw, "gateway.json", g_redis.port, g_overrides) != 0)
        fail_msg("gateway did not restart");
    char status[24];
    wait_status(c, sid, FINISH_DEADLINE_MS, status);
    expect_one_ending(gw.port, sid, "synced");
    assert_int_equal(list_count(c, log, "Delivery attempt"), 1);
    assert_int_equal(list_count(c, log, "Order mapped"), 3);
    redisFree(c);
    stop_ok(&gw);
}

/*
 * Redis at maxmemory (noeviction) while a delivery is under way: Redis refuses every command
 * queued in a transaction, so the commit that ends the saga goes again as one script call with
 * its entries inline, which Redis lets write (its first write, the status index's ZREM, frees
 * memory). The saga ends synced while Redis is still full, delivered once, each entry once.
 */
static void test_commit_at_maxmemory(void **state)
{
    (void)state;
    harness_gw_t gw;
    char sid[25], oid[25];
    start_slow_create(&gw, "MM-1", sid, oid);
    size_t delivered = stub_dest_count(g_swift);
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    freeReplyObject(redisCommand(c, "CONFIG SET maxmemory-policy noeviction"));
    freeReplyObject(redisCommand(c, "CONFIG SET maxmemory 1"));
    /* still full: the destination answers within 1.5 s */
    char status[24];
    wait_status(c, sid, 5000, status);
    char hist[96], log[96];
    snprintf(hist, sizeof hist, "cr:{cr}:saga:%s:hist", sid);
    snprintf(log, sizeof log, "cr:{cr}:order:%s:log", oid);
    int synced_hist = list_count(c, hist, "\"synced\""),
        attempts = list_count(c, log, "Delivery attempt");
    freeReplyObject(redisCommand(c, "CONFIG SET maxmemory 0"));
    assert_string_equal(status, "synced");
    assert_int_equal(synced_hist, 1);
    assert_int_equal(attempts, 1);
    assert_int_equal(list_count(c, log, "Order mapped"), 3);
    redisFree(c);
    expect_one_ending(gw.port, sid, "synced");
    /* nothing claimed it again and delivered a second time */
    harness_sleep_ms(2500);
    assert_int_equal(stub_dest_count(g_swift), delivered);
    stop_ok(&gw);
}

/*
 * What a claim charges a saga with (saga.max_claims 1, each saga claimed once before): a
 * process that read two sagas' entries and died, one entry begun (its run started with it) and
 * the other not yet begun (its run had started with an earlier entry, as a saga woken after a
 * retry delay has). When another process claims them, the started one is charged its second
 * claim and ends error; the one never begun is not charged and ends synced.
 */
static void test_claim_charges_started_runs_only(void **state)
{
    (void)state;
    stub_reply_t quick = {.status = 200};
    stub_dest_set_default(g_swift, &quick);
    json_t *ov = json_deep_copy(g_overrides);
    json_t *saga = json_object_get(ov, "saga");
    json_object_set_new(saga, "max_claims", json_integer(1));
    json_object_set_new(saga, "claim_idle_ms", json_integer(300));
    json_t *intake_only = json_deep_copy(ov);
    json_object_set_new(json_object_get(intake_only, "saga"), "workers", json_false());

    /* Accepted by a gateway whose workers are off: the entries wait in the stream. */
    harness_gw_t gw;
    if (harness_gw_start(&gw, "gateway.json", g_redis.port, intake_only) != 0)
        fail_msg("gateway did not start");
    assert_true(harness_gw_wait_ready(&gw, 200, 10000));
    char sid[2][25], oid[2][25];
    for (int i = 0; i < 2; i++) {
        char *create =
            harness_fmt("{\"order_number\":\"CC-%d\",\"lines\":[{\"product\":{\"source_id\":"
                        "\"ULSD\"},\"terminal\":{\"source_id\":\"HOU-T1\"},\"site\":{"
                        "\"source_id\":\"ATX-S12\"},\"quantity\":1000,\"uom\":\"gal\"}],"
                        "\"requested_delivery\":\"2026-05-12T08:00:00.000Z\"}",
                        i);
        submit(gw.port, "create", create, sid[i], oid[i]);
        free(create);
    }
    stop_ok(&gw);

    /* The process that dies: it reads both entries; it had begun the first saga's run with its
     * entry, the second saga's with an earlier one. Both sagas were claimed once before. */
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "XGROUP CREATE cr:{cr}:sagas workers 0 MKSTREAM");
    assert_non_null(r);
    freeReplyObject(r);
    r = redisCommand(c, "XREADGROUP GROUP workers dead-1-x COUNT 10 STREAMS cr:{cr}:sagas >");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    const redisReply *entries = r->element[0]->element[1];
    assert_int_equal(entries->elements, 2);
    for (size_t k = 0; k < 2; k++) {
        const char *entry = entries->element[k]->element[0]->str;
        const redisReply *f = entries->element[k]->element[1];
        const char *id = NULL;
        for (size_t j = 0; j + 1 < f->elements; j += 2)
            if (strcmp(f->element[j]->str, "saga_id") == 0)
                id = f->element[j + 1]->str;
        assert_non_null(id);
        bool first = strcmp(id, sid[0]) == 0;
        redisReply *w = redisCommand(c, "HSET cr:{cr}:saga:%s claims 1 started %s owner dead-1-x",
                                     id, first ? entry : "1-1");
        assert_non_null(w);
        freeReplyObject(w);
    }
    freeReplyObject(r);

    /* Another process claims both once they have been idle for claim_idle_ms. */
    if (harness_gw_start(&gw, "gateway.json", g_redis.port, ov) != 0)
        fail_msg("gateway did not start");
    char st[2][24];
    for (int i = 0; i < 2; i++)
        wait_status(c, sid[i], FINISH_DEADLINE_MS, st[i]);
    assert_string_equal(st[0], "error");
    r = redisCommand(c, "HGET cr:{cr}:saga:%s message", sid[0]);
    assert_non_null(r);
    assert_non_null(strstr(r->str, "abandoned by its worker 2 times"));
    freeReplyObject(r);
    assert_string_equal(st[1], "synced");
    expect_one_ending(gw.port, sid[1], "synced");
    redisFree(c);
    stop_ok(&gw);
    json_decref(ov);
    json_decref(intake_only);
}

/*
 * Redis stalled (CLIENT PAUSE WRITE) past the command timeout while a delivery is under way, twice
 * in a row (saga.max_claims 1): each time the commit that records the delivery times out, the
 * run ends in a process that is alive, and a claim resumes the saga, which delivers again. No
 * worker died, so neither claim may charge the saga: it ends synced once Redis answers, where a
 * saga charged twice would have ended "error", abandoned by its worker 2 times.
 */
static void test_redis_stall_not_charged(void **state)
{
    (void)state;
    stub_reply_t slow = {.status = 200, .delay_ms = 1500};
    stub_dest_set_default(g_swift, &slow);
    json_t *ov = json_deep_copy(g_overrides);
    json_t *saga = json_object_get(ov, "saga");
    json_object_set_new(saga, "max_claims", json_integer(1));
    json_object_set_new(saga, "claim_idle_ms", json_integer(300));
    json_object_set_new(ov, "redis", json_pack("{s:i}", "command_timeout_ms", 300));
    harness_gw_t gw;
    if (harness_gw_start(&gw, "gateway.json", g_redis.port, ov) != 0)
        fail_msg("gateway did not start");
    assert_true(harness_gw_wait_ready(&gw, 200, 10000));
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    size_t from = stub_dest_count(g_swift);
    char sid[25], oid[25];
    submit(gw.port, "create",
           "{\"order_number\":\"RS-1\",\"lines\":[{\"product\":{\"source_id\":\"ULSD\"},"
           "\"terminal\":{\"source_id\":\"HOU-T1\"},\"site\":{\"source_id\":\"ATX-S12\"},"
           "\"quantity\":10,\"uom\":\"gal\"}],\"requested_delivery\":"
           "\"2026-05-12T08:00:00.000Z\"}",
           sid, oid);
    for (int i = 1; i <= 2; i++) {
        /* the destination has delivery i and answers 1.5 s later, into a Redis paused 2.5 s */
        assert_true(stub_dest_wait(g_swift, from + (size_t)i, 10000));
        redisReply *r = redisCommand(c, "CLIENT PAUSE 2500 WRITE");
        assert_non_null(r);
        freeReplyObject(r);
        long long end = harness_now_ms() + 10000;
        while (log_count(&gw, "saga commit failed") < i && harness_now_ms() < end)
            harness_sleep_ms(50);
        assert_int_equal(log_count(&gw, "saga commit failed"), i);
    }
    stub_reply_t fast = {.status = 200, .delay_ms = STUB_DELAY_MS};
    stub_dest_set_default(g_swift, &fast);
    char status[24];
    wait_status(c, sid, FINISH_DEADLINE_MS, status);
    assert_string_equal(status, "synced");
    expect_one_ending(gw.port, sid, "synced");
    assert_int_equal(stub_dest_count(g_swift), from + 3);
    redisFree(c);
    stop_ok(&gw);
    json_decref(ov);
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

static json_t *make_overrides(void)
{
    char acme[128], swift[128];
    stub_dest_url(g_acme, acme, sizeof acme);
    stub_dest_url(g_swift, swift, sizeof swift);
    json_t *tenants = harness_fixture_tenants_at(
        (const char *[]){"acme-supply", acme, "swift-haul", swift, NULL});
    if (tenants == NULL)
        return NULL;
    return json_pack("{s:o, s:{s:i, s:i, s:i, s:i, s:i}}", "tenants", tenants, "saga",
                     "max_attempts", MAX_ATTEMPTS, "retry_base_ms", 50, "retry_max_ms", 200,
                     "claim_idle_ms", 2000, "drain_timeout_ms", 5000);
}

static int group_setup(void **state)
{
    (void)state;
    setenv("ACME_WEBHOOK_SECRET", "acme-crash-secret", 1);
    setenv("SWIFT_WEBHOOK_SECRET", "swift-crash-secret", 1);
    g_acme = stub_dest_start();
    g_swift = stub_dest_start();
    if (g_acme == NULL || g_swift == NULL)
        return -1;
    stub_reply_t slow = {.status = 200, .delay_ms = STUB_DELAY_MS};
    stub_dest_set_default(g_swift, &slow);
    g_overrides = make_overrides();
    if (g_overrides == NULL)
        return -1;
    if (harness_redis_start(&g_redis, false) != 0)
        return -1;
    g_redis_up = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_redis_up) {
        harness_redis_stop(&g_redis);
        g_redis_up = false;
    }
    stub_dest_stop(g_acme);
    stub_dest_stop(g_swift);
    json_decref(g_overrides);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_after_sigkill),
        cmocka_unit_test(test_takeover_by_second_process),
        cmocka_unit_test(test_restart_with_retries_parked),
        cmocka_unit_test(test_paused_owner_fenced),
        cmocka_unit_test(test_script_flushed_mid_delivery),
        cmocka_unit_test(test_commit_at_maxmemory),
        cmocka_unit_test(test_claim_charges_started_runs_only),
        cmocka_unit_test(test_redis_stall_not_charged),
    };
    return cmocka_run_group_tests_name("saga_crash", tests, group_setup, group_teardown) != 0;
}
