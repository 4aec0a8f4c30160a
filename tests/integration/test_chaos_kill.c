/*
 * test_chaos_kill.c - chaos figures 1 and 4 (issue 5): gateways killed under load (figure 9,
 * FIFO across four processes, is in test_chaos_fifo.c).
 *
 *  1. SIGKILL a random one of 2 gateways every few seconds during open-loop load over many
 *     orders, 5% of deliveries failing with 500 (at most 3 per saga, so that no saga exhausts
 *     max_attempts 5 and every one is expected to end synced): 0 lost, 0 different-effect duplicates,
 *     duplicates bounded by the sagas in flight at the kills, 0 FIFO violations, every mutation
 *     acknowledged after client retries. Short: 200 req/s, 20 s, 5 kills. Full (CHAOS_FULL=1):
 *     1,000 req/s, 60 s, a kill every 2 s.
 *  4. A saga that kills its worker every time (the test SIGKILLs whichever process delivers
 *     it) ends "error" after at most max_claims + 1 deliveries, while the others all finish.
 *
 * The checker (tests/support/chaos_check.c) reads the whole history: load log, delivery log,
 * Redis. Set CHAOS_LOG_DIR to keep the logs as TSV.
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
#include <unistd.h>

#include "chaos.h"

/* ------------------------------------------------------------------------------ figure 1 */

static void test_fig1_kill_under_load(void **state)
{
    (void)state;
    if (!chaos_want(1))
        skip();
    bool full = chaos_full();
    double rate = (double)chaos_env_long("CHAOS_RATE", full ? 1000 : 200);
    int secs = (int)chaos_env_long("CHAOS_SECS", full ? 60 : 20);
    int kill_every_ms = full ? 2000 : secs * 1000 / 6;
    int n_orders = 200;

    chaos_dest_policy_t pol = {.p_5xx = 0.05, .latency_ms = 2, .jitter_ms = 8, .fault_cap = 3};
    chaos_dest_t *swift = chaos_dest_start(&pol, 1);
    chaos_dest_t *acme = chaos_dest_start(NULL, 2);
    assert_non_null(swift);
    assert_non_null(acme);
    char su[64], au[64];
    chaos_dest_url(swift, su, sizeof su);
    chaos_dest_url(acme, au, sizeof au);
    json_t *ov = chaos_overrides(au, su, chaos_ms(1500), 5, 50, 500);
    static chaos_cluster_t cl;
    if (chaos_cluster_start(&cl, 2, true, false, ov) != 0)
        fail_msg("cluster did not start");
    assert_true(chaos_wait_readers(&cl, 2, 10000));

    char tag[48];
    chaos_tag(tag, sizeof tag, "K");
    chaos_mix_t mix = {.n_orders = n_orders, .tag = tag, .resets = true};
    chaos_load_opts_t lo = {
        .rate = rate, .duration_ms = secs * 1000, .tag = tag, .gen = chaos_gen_mix,
        .gen_arg = &mix, .give_up_ms = 120000};
    int ports[2] = {cl.gw[0].port, cl.gw[1].port};
    chaos_load_t *load = chaos_load_start(&lo, ports, 2);
    assert_non_null(load);
    cl.load = load;

    long long t0 = chaos_now_us();
    int kills = 0;
    long long next = t0 + (long long)kill_every_ms * 1000;
    while (chaos_now_us() < t0 + (long long)secs * 1000000) {
        if (chaos_now_us() >= next) {
            int i = chaos_cluster_random_live(&cl);
            if (i >= 0) {
                chaos_cluster_kill(&cl, i);
                kills++;
                if (chaos_cluster_gw_start(&cl, i) != 0)
                    fail_msg("gateway %d did not restart", i);
            }
            next += (long long)kill_every_ms * 1000;
        }
        harness_sleep_ms(20);
    }
    if (!chaos_load_wait(load, chaos_ms(120000)))
        fail_msg("the load did not finish");
    chaos_load_stats_t ls;
    chaos_load_stats(load, &ls);

    chaos_check_opts_t co = {.load = load, .dests = {swift}, .n_dests = 1, .cluster = &cl,
                             .settle_ms = chaos_ms(60000), .fifo = true, .expect_2xx = true,
                             .dup_bound = -1, .allow_overlap = false};
    chaos_check_t r;
    long v = chaos_check_run(&co, &r);
    chaos_dump_logs("fig1", load, swift);
    char line[1024];
    chaos_check_line(&r, line, sizeof line);
    chaos_figure(1, "%.0f req/s x %d s, 2 gateways, %d kills, 5%% 500s: attempts %ld (503 %ld, "
                    "conn errors %ld); intake p50 %.1f ms p99 %.1f ms; e2e p50 %.1f ms p99 %.1f "
                    "ms; %s",
                 rate, secs, kills, ls.attempts, ls.s503, ls.conn_err, r.intake_p50_ms[0],
                 r.intake_p99_ms[0], r.e2e_p50_ms[0], r.e2e_p99_ms[0], line);
    assert_int_equal(r.not_acked, 0);
    assert_int_equal(v, 0);
    assert_true(kills >= 5);
    cl.load = NULL;
    chaos_load_free(load);
    assert_int_equal(chaos_cluster_stop(&cl), 0);
    chaos_dest_stop(swift);
    chaos_dest_stop(acme);
}

/* ------------------------------------------------------------------------------ figure 4 */

/* Index of the gateway whose PID the owner string names (-1 none). */
static int gw_of_owner(const chaos_cluster_t *cl, const char *owner)
{
    for (int i = 0; i < cl->n_gw; i++) {
        char mark[32];
        snprintf(mark, sizeof mark, "-%d-", (int)cl->gw[i].pid);
        if (cl->alive[i] && strstr(owner, mark) != NULL)
            return i;
    }
    return -1;
}

static void test_fig4_poison_saga(void **state)
{
    (void)state;
    if (!chaos_want(4))
        skip();
    int others = (int)chaos_env_long("CHAOS_OTHERS", 1000);
    chaos_dest_policy_t ok = {.latency_ms = 2, .jitter_ms = 4};
    chaos_dest_policy_t hang = {.p_hang = 1.0};
    chaos_dest_t *swift = chaos_dest_start(&ok, 3);
    chaos_dest_t *acme = chaos_dest_start(&hang, 4); /* where the poison saga goes */
    char su[64], au[64];
    chaos_dest_url(swift, su, sizeof su);
    chaos_dest_url(acme, au, sizeof au);
    static chaos_cluster_t cl;
    if (chaos_cluster_start(&cl, 2, true, false, chaos_overrides(au, su, chaos_ms(1000), 5, 50,
                                                                 500)) != 0)
        fail_msg("cluster did not start");
    assert_true(chaos_wait_readers(&cl, 2, 10000));

    /* The poison: swift-haul creates an order for acme-supply, whose system never answers;
     * whichever process delivers it is killed, every time. */
    char tag[48], body[512], pkey[64], sid[25];
    chaos_tag(tag, sizeof tag, "P");
    snprintf(body, sizeof body,
             "{\"order_number\":\"%s-poison\",\"lines\":[{\"product\":{\"source_id\":\"SH-DSL\"},"
             "\"terminal\":{\"source_id\":\"SH-HOU\"},\"site\":{\"source_id\":\"SH-ATX12\"},"
             "\"quantity\":5,\"uom\":\"gal\"}],\"requested_delivery\":\"2026-05-12T08:00:00Z\"}",
             tag);
    snprintf(pkey, sizeof pkey, "%s-poison", tag);
    harness_resp_t resp;
    assert_int_equal(chaos_post(cl.gw[0].port, "demo-swift-key", "acme-supply", "create", body,
                                pkey, &resp),
                     0);
    if (resp.status != 200)
        fail_msg("poison create: %d %s", resp.status, resp.body);
    snprintf(sid, sizeof sid, "%s",
             json_string_value(json_object_get(json_object_get(resp.json, "log"), "saga_id")));
    harness_resp_free(&resp);

    chaos_mix_t mix = {.n_orders = 100, .tag = tag};
    chaos_load_opts_t lo = {.rate = 200, .max_requests = others, .tag = tag,
                            .gen = chaos_gen_mix, .gen_arg = &mix};
    int ports[2] = {cl.gw[0].port, cl.gw[1].port};
    chaos_load_t *load = chaos_load_start(&lo, ports, 2);
    cl.load = load;

    size_t seen = 0;
    int kills = 0;
    char st[24] = "", owner[160] = "";
    long long end = chaos_now_us() + (long long)chaos_ms(40000) * 1000;
    while (chaos_now_us() < end) {
        if (chaos_saga_status(&cl, sid, st, owner) &&
            (strcmp(st, "error") == 0 || strcmp(st, "synced") == 0))
            break;
        if (!chaos_dest_wait_key(acme, sid, seen + 1, 200))
            continue;
        seen = chaos_dest_count_key(acme, sid);
        /* it is being delivered: kill the process that runs it */
        chaos_saga_status(&cl, sid, st, owner);
        int g = gw_of_owner(&cl, owner);
        if (g < 0) {
            print_message("poison delivery %zu: owner %s is no live gateway\n", seen, owner);
            continue;
        }
        chaos_cluster_kill(&cl, g);
        kills++;
        if (chaos_cluster_gw_start(&cl, g) != 0)
            fail_msg("gateway did not restart");
    }
    size_t deliveries = chaos_dest_count_key(acme, sid);
    chaos_check_t r;
    long v = chaos_check_usual(&cl, load, swift, "fig4", chaos_ms(30000), true, &r);
    /* The poisoned saga's record. */
    redisContext *rc = chaos_redis(&cl);
    redisReply *msg = redisCommand(rc, "HGET cr:{cr}:saga:%s message", sid);
    char line[1024];
    chaos_check_line(&r, line, sizeof line);
    chaos_figure(4, "poison saga ended %s after %zu deliveries and %d kills (max_claims 2): "
                    "\"%s\"; %ld other sagas: %s",
                 st, deliveries, kills, msg && msg->str ? msg->str : "", r.acked, line);
    if (msg)
        freeReplyObject(msg);
    redisFree(rc);
    assert_string_equal(st, "error");
    assert_true(deliveries <= 3);
    assert_int_equal(r.not_acked, 0);
    assert_int_equal(v, 0);

    /* Figure 14 on a poisoned saga: once the destination answers again, an operator retry
     * re-runs it from its failed stage (delivery) and it ends synced, marked retried. */
    chaos_dest_set_policy(acme, &ok);
    const char *hk[] = {"X-API-Key: demo-swift-key", NULL};
    char path[96];
    snprintf(path, sizeof path, "/v1/saga/%s/retry", sid);
    assert_int_equal(harness_http(chaos_cluster_port(&cl), "POST", path, hk, "", 0, &resp), 0);
    if (resp.status != 200)
        fail_msg("retry of the poisoned saga: %d %s", resp.status, resp.body);
    harness_resp_free(&resp);
    assert_true(chaos_wait_saga_terminal(&cl, sid, chaos_ms(15000), st));
    assert_string_equal(st, "synced");

    cl.load = NULL;
    chaos_load_free(load);
    assert_int_equal(chaos_cluster_stop(&cl), 0);
    chaos_dest_stop(swift);
    chaos_dest_stop(acme);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fig1_kill_under_load),
        cmocka_unit_test(test_fig4_poison_saga),
    };
    return cmocka_run_group_tests_name("chaos_kill", tests, NULL, NULL) != 0;
}
