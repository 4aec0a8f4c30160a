/*
 * test_intake.c - the batched intake write (src/intake.c) against a real redis-server.
 *
 * The requests submitted in one loop iteration go to Redis as one EVALSHA. These tests submit
 * several records in one go and check that the batch behaves as the same requests sent one by
 * one would: a repeat of an Idempotency-Key earlier in the same batch is answered with the
 * first answer, a clash is refused, a request that fails in Redis fails alone, and every stored
 * request has its saga record, history, stream entry and index entries. A create claims its
 * order number for its tenant once. A batch that would outgrow what Redis reads in one pass is
 * split, and nothing is accepted while no connection is ready.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "intake.h"
#include "store.h"

#define TENANT "acme-supply"
#define N_MAX 100

static harness_redis_t g_redis;
static uv_loop_t g_loop;
static store_t *g_store;
static intake_t *g_intake;

typedef struct outcome {
    bool called;
    intake_result_t result;
    char response[256];
} outcome_t;

static outcome_t g_out[N_MAX];

static void on_done(intake_result_t result, const char *response, size_t len, void *data)
{
    outcome_t *o = data;
    assert_false(o->called); /* exactly once */
    o->called = true;
    o->result = result;
    snprintf(o->response, sizeof o->response, "%.*s", (int)len, response ? response : "");
}

/* Run the loop until the first n outcomes are in (deadline 5 s). */
static void wait_outcomes(size_t n)
{
    long long deadline = harness_now_ms() + 5000;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += g_out[i].called;
        if (done == n)
            return;
        assert_true(harness_now_ms() < deadline);
        uv_run(&g_loop, UV_RUN_NOWAIT);
        harness_sleep_ms(1);
    }
}

/* A cancel-like record; idem NULL for none. The strings live in static storage per slot. */
static int submit(size_t slot, const char *saga_id, const char *idem, const char *fp,
                  const char *order_id, const char *response)
{
    static const char *fields[] = {"type", "order_cancel", "status", "pending", "tenant", TENANT};
    intake_rec_t rec = {
        .saga_id = saga_id,
        .saga_type = "order_cancel",
        .tenant = TENANT,
        .idem_key_hash = idem,
        .fingerprint = fp,
        .idem_ttl_s = 60,
        .response = response,
        .history = "{\"status\":\"pending\"}",
        .dest = "swift-haul",
        .order_id = order_id,
        .order_number = "",
        .now_ms = "1700000000000",
        .retention_s = 3600,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
    };
    memset(&g_out[slot], 0, sizeof g_out[slot]);
    return intake_submit(g_intake, &rec, on_done, &g_out[slot]);
}

static long long redis_int(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static bool in_index(redisContext *c, const char *index, const char *sid)
{
    redisReply *r = redisCommand(c, "ZSCORE cr:{cr}:%s %s", index, sid);
    assert_non_null(r);
    bool yes = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return yes;
}

static void stats(intake_stats_t *st)
{
    intake_stats_get(g_intake, st);
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------- */

/* Five requests in one batch: stored, repeat, clash, failed alone, stored. */
static void test_one_batch_acts_as_requests_in_turn(void **state)
{
    (void)state;
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    /* An order of the tenant whose queue key has the wrong type: RPUSH to it fails. */
    freeReplyObject(redisCommand(c, "HSET cr:{cr}:order:badorder origin_tenant %s "
                                    "destination_tenant swift-haul", TENANT));
    freeReplyObject(redisCommand(c, "SET cr:{cr}:order:badorder:q not-a-list"));

    intake_stats_t before, after;
    stats(&before);
    assert_int_equal(submit(0, "sagaaaaaaaaaaaaaaaaaaaa1", "idem1", "fp-one", "", "{\"first\":1}"),
                     0);
    assert_int_equal(submit(1, "sagaaaaaaaaaaaaaaaaaaaa2", "idem1", "fp-one", "", "{\"again\":2}"),
                     0);
    assert_int_equal(submit(2, "sagaaaaaaaaaaaaaaaaaaaa3", "idem1", "fp-two", "", "{\"clash\":3}"),
                     0);
    assert_int_equal(submit(3, "sagaaaaaaaaaaaaaaaaaaaa4", NULL, "fp-4", "badorder", "{\"b\":4}"),
                     0);
    assert_int_equal(submit(4, "sagaaaaaaaaaaaaaaaaaaaa5", "idem5", "fp-5", "", "{\"five\":5}"),
                     0);
    /* Nothing is answered from within submit: the batch goes when the iteration ends. */
    for (int i = 0; i < 5; i++)
        assert_false(g_out[i].called);
    wait_outcomes(5);
    stats(&after);
    assert_int_equal(after.batches - before.batches, 1);
    assert_int_equal(after.requests - before.requests, 5);

    assert_int_equal(g_out[0].result, INTAKE_STORED);
    assert_int_equal(g_out[1].result, INTAKE_REPEAT);
    assert_string_equal(g_out[1].response, "{\"first\":1}");
    assert_int_equal(g_out[2].result, INTAKE_CONFLICT);
    assert_int_equal(g_out[3].result, INTAKE_UNAVAILABLE);
    assert_int_equal(g_out[4].result, INTAKE_STORED);

    /* Stored: saga record, history, stream entry, every index. */
    const char *stored[] = {"sagaaaaaaaaaaaaaaaaaaaa1", "sagaaaaaaaaaaaaaaaaaaaa5"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(redis_int(c, "EXISTS cr:{cr}:saga:%s", stored[i]), 1);
        assert_int_equal(redis_int(c, "LLEN cr:{cr}:saga:%s:hist", stored[i]), 1);
        const char *idx[] = {"active", "idx:all", "idx:status:pending", "idx:tenant:" TENANT,
                             "idx:type:order_cancel"};
        for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++)
            assert_true(in_index(c, idx[k], stored[i]));
    }
    /* Not stored: the repeat and the clash wrote nothing (their records, written ahead of the
     * script, are gone again); the failed one has no record and is in no index. */
    assert_int_equal(redis_int(c, "EXISTS cr:{cr}:saga:%s", "sagaaaaaaaaaaaaaaaaaaaa2"), 0);
    assert_int_equal(redis_int(c, "EXISTS cr:{cr}:saga:%s", "sagaaaaaaaaaaaaaaaaaaaa3"), 0);
    assert_int_equal(redis_int(c, "EXISTS cr:{cr}:saga:%s", "sagaaaaaaaaaaaaaaaaaaaa4"), 0);
    assert_false(in_index(c, "idx:all", "sagaaaaaaaaaaaaaaaaaaaa4"));
    assert_false(in_index(c, "active", "sagaaaaaaaaaaaaaaaaaaaa4"));
    redisReply *r = redisCommand(c, "XLEN cr:{cr}:sagas");
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    redisFree(c);
}

/* A create of tenant for order number num, assigning order_id. */
static int submit_create(size_t slot, const char *saga_id, const char *tenant, const char *num,
                         const char *order_id)
{
    static const char *fields[] = {"type", "order_create", "status", "pending"};
    static const char *ofields[N_MAX][8];
    const char *of[] = {"order_id", order_id, "origin_tenant", tenant, "order_number", num,
                        "status", "pending"};
    memcpy(ofields[slot], of, sizeof of);
    intake_rec_t rec = {
        .saga_id = saga_id,
        .saga_type = "order_create",
        .tenant = tenant,
        .fingerprint = "fp",
        .idem_ttl_s = 60,
        .response = "{}",
        .history = "{\"status\":\"pending\"}",
        .dest = "swift-haul",
        .order_id = order_id,
        .order_number = num,
        .now_ms = "1700000000000",
        .retention_s = 3600,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
        .order_fields = ofields[slot],
        .n_order_fields = sizeof of / sizeof of[0],
    };
    memset(&g_out[slot], 0, sizeof g_out[slot]);
    return intake_submit(g_intake, &rec, on_done, &g_out[slot]);
}

/* An order number names one order of its tenant: a second create of it, in the same batch or
 * a later one, is refused and writes nothing; another tenant may use the same number. */
static void test_create_claims_its_order_number(void **state)
{
    (void)state;
    assert_int_equal(submit_create(0, "createsaga00000000000001", TENANT, "PO-7", "order0000001"),
                     0);
    assert_int_equal(submit_create(1, "createsaga00000000000002", TENANT, "PO-7", "order0000002"),
                     0);
    assert_int_equal(submit_create(2, "createsaga00000000000003", "swift-haul", "PO-7",
                                   "order0000003"), 0);
    wait_outcomes(3);
    assert_int_equal(submit_create(3, "createsaga00000000000004", TENANT, "PO-7", "order0000004"),
                     0);
    wait_outcomes(4);
    assert_int_equal(g_out[0].result, INTAKE_STORED);
    assert_int_equal(g_out[1].result, INTAKE_DUPLICATE);
    assert_int_equal(g_out[2].result, INTAKE_STORED);
    assert_int_equal(g_out[3].result, INTAKE_DUPLICATE);

    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "GET cr:{cr}:ordernum:" TENANT ":PO-7");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "order0000001");
    freeReplyObject(r);
    r = redisCommand(c, "HGET cr:{cr}:order:order0000001 order_number");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "PO-7");
    freeReplyObject(r);
    assert_int_equal(redis_int(c, "EXISTS cr:{cr}:saga:%s", "createsaga00000000000001"), 1);
    assert_int_equal(redis_int(c, "ZCARD cr:{cr}:idx:order:%s", "order0000001"), 1);
    assert_int_equal(redis_int(c, "LLEN cr:{cr}:order:%s:q", "order0000001"), 1);
    for (int i = 2; i <= 4; i += 2) {
        char sid[40], oid[24];
        snprintf(sid, sizeof sid, "createsaga%014d", i);
        snprintf(oid, sizeof oid, "order%07d", i);
        assert_int_equal(redis_int(c, "EXISTS cr:{cr}:saga:%s", sid), 0);
        assert_int_equal(redis_int(c, "EXISTS cr:{cr}:order:%s", oid), 0);
        assert_int_equal(redis_int(c, "EXISTS cr:{cr}:idx:order:%s", oid), 0);
        assert_false(in_index(c, "idx:all", sid));
    }
    r = redisCommand(c, "GET cr:{cr}:ordernum:swift-haul:PO-7");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "order0000003");
    freeReplyObject(r);
    redisFree(c);
}

/* Requests that would take one command past what Redis reads in a pass go in several. */
static void test_big_batch_is_split(void **state)
{
    (void)state;
    char *big = malloc(4001);
    memset(big, 'x', 4000);
    big[4000] = '\0';
    static char ids[10][32];
    intake_stats_t before, after;
    stats(&before);
    for (size_t i = 0; i < 10; i++) {
        snprintf(ids[i], sizeof ids[i], "bigsaga%017zu", i);
        assert_int_equal(submit(i, ids[i], NULL, "fp", "", big), 0);
    }
    free(big); /* copied at once */
    wait_outcomes(10);
    stats(&after);
    /* 10 x ~4 KB: at most three per command under the 16 KiB bound. */
    assert_true(after.batches - before.batches >= 4);
    assert_int_equal(after.requests - before.requests, 10);
    redisContext *c = harness_redis_connect(&g_redis);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(g_out[i].result, INTAKE_STORED);
        redisReply *r = redisCommand(c, "HGET cr:{cr}:saga:%s response", ids[i]);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal(r->len, 4000);
        freeReplyObject(r);
    }
    redisFree(c);
}

/* More requests than one command takes by count: all stored, in order, none lost. */
static void test_many_small_requests(void **state)
{
    (void)state;
    static char ids[N_MAX][32];
    intake_stats_t before, after;
    stats(&before);
    for (size_t i = 0; i < N_MAX; i++) {
        snprintf(ids[i], sizeof ids[i], "manysaga%016zu", i);
        assert_int_equal(submit(i, ids[i], NULL, "fp", "", "{}"), 0);
    }
    wait_outcomes(N_MAX);
    stats(&after);
    assert_int_equal(after.requests - before.requests, N_MAX);
    assert_true(after.batches - before.batches >= 2); /* at most 64 a command */
    for (size_t i = 0; i < N_MAX; i++)
        assert_int_equal(g_out[i].result, INTAKE_STORED);
    redisContext *c = harness_redis_connect(&g_redis);
    for (size_t i = 0; i < N_MAX; i++)
        assert_true(in_index(c, "idx:all", ids[i]));
    redisFree(c);
}

/* The script gone from Redis (SCRIPT FLUSH): the transaction still writes the records sent ahead
 * of the script, so the intake removes them again; every request of the batch fails. */
static void test_script_gone_leaves_nothing(void **state)
{
    (void)state;
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    assert_int_equal(submit(0, "flushsaga000000000000001", NULL, "fp", "", "{}"), 0);
    assert_int_equal(submit_create(1, "flushsaga000000000000002", TENANT, "PO-F", "flushorder01"),
                     0);
    wait_outcomes(2);
    assert_int_equal(g_out[0].result, INTAKE_UNAVAILABLE);
    assert_int_equal(g_out[1].result, INTAKE_UNAVAILABLE);
    long long deadline = harness_now_ms() + 5000;
    while (redis_int(c, "EXISTS cr:{cr}:saga:%s", "flushsaga000000000000001") != 0 &&
           harness_now_ms() < deadline) {
        uv_run(&g_loop, UV_RUN_NOWAIT);
        harness_sleep_ms(2);
    }
    assert_int_equal(redis_int(c, "EXISTS cr:{cr}:saga:%s", "flushsaga000000000000001"), 0);
    assert_int_equal(redis_int(c, "EXISTS cr:{cr}:saga:%s", "flushsaga000000000000002"), 0);
    assert_int_equal(redis_int(c, "EXISTS cr:{cr}:order:%s", "flushorder01"), 0);
    assert_int_equal(redis_int(c, "EXISTS cr:{cr}:ordernum:%s", TENANT ":PO-F"), 0);
    redisFree(c);
}

/* No ready connection: refused at once, no callback. Redis stopping with a batch in flight
 * fails that batch's requests (once each). */
static void test_not_ready_and_lost_connection(void **state)
{
    (void)state;
    assert_int_equal(submit(0, "lostsaga0000000000000001", NULL, "fp", "", "{}"), 0);
    harness_redis_stop(&g_redis);
    wait_outcomes(1);
    /* Stored before Redis stopped, or failed: either is an answer, given once. */
    assert_true(g_out[0].result == INTAKE_STORED || g_out[0].result == INTAKE_UNAVAILABLE);
    long long deadline = harness_now_ms() + 5000;
    while (store_ready(g_store) && harness_now_ms() < deadline) {
        uv_run(&g_loop, UV_RUN_NOWAIT);
        harness_sleep_ms(5);
    }
    assert_false(intake_ready(g_intake));
    assert_true(submit(1, "lostsaga0000000000000002", NULL, "fp", "", "{}") < 0);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    assert_false(g_out[1].called);
}

static int setup(void **state)
{
    (void)state;
    if (harness_redis_start(&g_redis, false) != 0)
        return -1;
    uv_loop_init(&g_loop);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", g_redis.port);
    g_store = store_new(&g_loop, url, 2000);
    g_intake = intake_new(&g_loop, &g_store, 1);
    store_start(g_store);
    long long deadline = harness_now_ms() + 5000;
    while (!store_ready(g_store)) {
        if (harness_now_ms() > deadline)
            return -1;
        uv_run(&g_loop, UV_RUN_NOWAIT);
        harness_sleep_ms(5);
    }
    return 0;
}

static void on_closed(void *data)
{
    *(bool *)data = true;
}

static int teardown(void **state)
{
    (void)state;
    bool closed = false;
    intake_close(g_intake);
    store_close(g_store, on_closed, &closed);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    uv_loop_close(&g_loop);
    harness_redis_stop(&g_redis);
    return closed ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_batch_acts_as_requests_in_turn),
        cmocka_unit_test(test_create_claims_its_order_number),
        cmocka_unit_test(test_big_batch_is_split),
        cmocka_unit_test(test_many_small_requests),
        cmocka_unit_test(test_script_gone_leaves_nothing),
        cmocka_unit_test(test_not_ready_and_lost_connection),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
