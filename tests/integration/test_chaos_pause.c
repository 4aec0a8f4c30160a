/*
 * test_chaos_pause.c - chaos figures 2 and 3 (issue 5): owners that stall, sagas that wait.
 *
 *  2. SIGSTOP one of two gateways under load for 3x the claim time, then SIGCONT: the other
 *     process claims its sagas; the woken one's stale runs are fenced: 0 stale stage writes
 *     accepted (every history a strictly forward walk with one ending), 0 overlapping
 *     deliveries of one saga, duplicates bounded by what it had in flight. Its Redis commands
 *     may take longer than the pause (command_timeout_ms 10 s), so the stale runs really
 *     reach their commits.
 *  3. A retry delay longer than the claim time (the destination answers 429 with Retry-After
 *     2x the claim time, twice per saga): the waiting saga does not look abandoned, so no two
 *     attempts of one saga overlap, nothing is delivered twice, and attempts recorded ==
 *     attempts received for every saga.
 *  3b. (beyond the issue's list) A delivery itself longer than the claim time (the destination
 *     answers after 2.5x claim_idle_ms, inside the connector timeout): the same must hold.
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

/* ------------------------------------------------------------------------------ figure 2 */

static void test_fig2_pause_past_claim(void **state)
{
    (void)state;
    if (!chaos_want(2))
        skip();
    bool full = chaos_full();
    int claim = chaos_ms(1000);
    double rate = full ? 250 : 100;
    int before_ms = 3000, after_ms = full ? 10000 : 4000;
    chaos_dest_policy_t pol = {.latency_ms = 100, .jitter_ms = 200};
    chaos_dest_t *swift = chaos_dest_start(&pol, 21);
    chaos_dest_t *acme = chaos_dest_start(NULL, 22);
    char su[64], au[64];
    chaos_dest_url(swift, su, sizeof su);
    chaos_dest_url(acme, au, sizeof au);
    json_t *ov = chaos_overrides(au, su, claim, 5, 50, 500);
    json_object_set_new(ov, "redis", json_pack("{s:i}", "command_timeout_ms", 10000));
    static chaos_cluster_t cl;
    if (chaos_cluster_start(&cl, 2, true, false, ov) != 0)
        fail_msg("cluster did not start");
    assert_true(chaos_wait_readers(&cl, 2, 10000));

    char tag[48];
    chaos_tag(tag, sizeof tag, "S");
    chaos_mix_t mix = {.n_orders = 100, .tag = tag, .resets = true};
    int pause_ms = 3 * claim;
    chaos_load_opts_t lo = {.rate = rate, .duration_ms = before_ms + pause_ms + after_ms,
                            .tag = tag, .gen = chaos_gen_mix, .gen_arg = &mix,
                            .req_timeout_ms = 2000};
    int ports[2] = {cl.gw[0].port, cl.gw[1].port};
    chaos_load_t *load = chaos_load_start(&lo, ports, 2);
    cl.load = load;
    harness_sleep_ms(before_ms);
    chaos_cluster_pause(&cl, 0);
    long owned = cl.events[cl.n_events - 1].in_flight;
    int fenced0 = chaos_gw_log_count(&cl.gw[0], "saga fenced");
    harness_sleep_ms(pause_ms);
    chaos_cluster_cont(&cl, 0);
    chaos_check_t r;
    long v = chaos_check_usual(&cl, load, swift, "fig2", chaos_ms(30000), true, &r);
    int fenced = chaos_gw_log_count(&cl.gw[0], "saga fenced") - fenced0;
    int failed = chaos_gw_log_count(&cl.gw[0], "commit failed");
    char line[1024];
    chaos_check_line(&r, line, sizeof line);
    chaos_figure(2, "SIGSTOP 1 of 2 gateways for %d ms (3x claim %d ms) at %.0f req/s, holding "
                    "%ld sagas: woken process fenced %d stale runs (%d commits failed); stale "
                    "writes accepted %ld, overlapping deliveries %ld, max overlap %d; %s",
                 pause_ms, claim, rate, owned, fenced, failed, r.stale_writes, r.overlaps,
                 chaos_dest_max_overlap(swift), line);
    assert_int_equal(r.stale_writes, 0);
    assert_int_equal(r.overlaps, 0);
    assert_int_equal(r.not_acked, 0);
    assert_int_equal(v, 0);
    cl.load = NULL;
    chaos_load_free(load);
    assert_int_equal(chaos_cluster_stop(&cl), 0);
    chaos_dest_stop(swift);
    chaos_dest_stop(acme);
}

/* ------------------------------------------------------------------------------ figure 3 */

static void run_fig3(int fig, const char *tag_name, const char *name,
                     const chaos_dest_policy_t *pol, int claim, int timeout_ms)
{
    bool full = chaos_full();
    chaos_dest_t *swift = chaos_dest_start(pol, 31);
    chaos_dest_t *acme = chaos_dest_start(NULL, 32);
    char su[64], au[64];
    chaos_dest_url(swift, su, sizeof su);
    chaos_dest_url(acme, au, sizeof au);
    json_t *ov = chaos_overrides(au, su, claim, 5, 2 * claim, 3 * claim);
    if (timeout_ms > 0) {
        json_t *t;
        size_t i;
        json_array_foreach(json_object_get(ov, "tenants"), i, t)
            json_object_set_new(json_object_get(t, "connector"), "timeout_ms",
                                json_integer(timeout_ms));
    }
    static chaos_cluster_t cl;
    if (chaos_cluster_start(&cl, 2, true, false, ov) != 0)
        fail_msg("cluster did not start");
    assert_true(chaos_wait_readers(&cl, 2, 10000));
    char tag[48];
    chaos_tag(tag, sizeof tag, "R");
    chaos_mix_t mix = {.n_orders = full ? 300 : 100, .per_order = 2, .tag = tag};
    chaos_load_opts_t lo = {.rate = full ? 100 : 50, .tag = tag, .gen = chaos_gen_mix,
                            .gen_arg = &mix};
    int ports[2] = {cl.gw[0].port, cl.gw[1].port};
    chaos_load_t *load = chaos_load_start(&lo, ports, 2);
    cl.load = load;
    if (!chaos_load_wait(load, chaos_ms(60000)))
        fail_msg("the load did not finish");
    chaos_check_opts_t co = {.load = load, .dests = {swift}, .n_dests = 1, .cluster = &cl,
                             .settle_ms = chaos_ms(60000), .fifo = true, .expect_2xx = true,
                             .dup_bound = 0, .attempts_exact = true};
    chaos_check_t r;
    long v = chaos_check_run(&co, &r);
    chaos_dump_logs(tag_name, load, swift);
    long claimed = chaos_gw_log_count(&cl.gw[0], "saga fenced") +
                   chaos_gw_log_count(&cl.gw[1], "saga fenced");
    char line[1024];
    chaos_check_line(&r, line, sizeof line);
    chaos_figure(fig, "%s, claim_idle %d ms: overlapping attempts %ld (max overlap %d), "
                      "attempts mismatched %ld, duplicate deliveries %ld, fenced runs %ld; %s",
                 name, claim, r.overlaps, chaos_dest_max_overlap(swift), r.attempts_mismatch,
                 r.dups, claimed, line);
    cl.load = NULL;
    chaos_load_free(load);
    int stopped = chaos_cluster_stop(&cl);
    chaos_dest_stop(swift);
    chaos_dest_stop(acme);
    assert_int_equal(r.overlaps, 0);
    assert_int_equal(r.attempts_mismatch, 0);
    assert_int_equal(r.dups, 0);
    assert_int_equal(r.not_acked, 0);
    assert_int_equal(v, 0);
    assert_int_equal(stopped, 0);
}

static void test_fig3_retry_delay_past_claim(void **state)
{
    (void)state;
    if (!chaos_want(3))
        skip();
    int claim = chaos_ms(1000);
    chaos_dest_policy_t pol = {.latency_ms = 5,
                               .fail_first = 2,
                               .fail_fault = CD_429,
                               .retry_after_s = 2 * claim / 1000};
    run_fig3(3, "fig3", "retry delay (429, Retry-After 2x claim) twice per saga", &pol, claim, 0);
}

static void test_fig3b_delivery_past_claim(void **state)
{
    (void)state;
    if (!chaos_want(3))
        skip();
    int claim = chaos_ms(1000);
    chaos_dest_policy_t pol = {.latency_ms = claim * 5 / 2};
    run_fig3(3, "fig3b", "delivery slower than the claim (answer after 2.5x claim)", &pol, claim,
             4 * claim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fig2_pause_past_claim),
        cmocka_unit_test(test_fig3_retry_delay_past_claim),
        cmocka_unit_test(test_fig3b_delivery_past_claim),
    };
    return cmocka_run_group_tests_name("chaos_pause", tests, NULL, NULL) != 0;
}
