/*
 * test_chaos_damage.c - chaos figures 7 and 8 (issue 5): Redis fills up, or loses parts of
 * the saga queue.
 *
 *  7. Redis at maxmemory (noeviction): 503, never 500; a 200 within 2 s of recovery; a
 *     warning at start when maxmemory-policy is not noeviction.
 *  8. Queue damage: the stream deleted (group recreated from 0, intake continues, nothing
 *     lost); pending entries deleted (the reconciler re-queues their sagas within 10 s);
 *     entries re-added for finished sagas (0 extra deliveries).
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

/* ------------------------------------------------------------------------------ figure 7 */

static void test_fig7_maxmemory(void **state)
{
    (void)state;
    if (!chaos_want(7))
        skip();
    chaos_env_t *e = chaos_env_up(2, false, NULL, chaos_ms(1000), NULL);
    chaos_env_load(e, "M", 100, 8000, 100);
    harness_sleep_ms(2000);
    redisContext *c = chaos_redis(&e->cl);
    long long used = chaos_redis_info(c, "memory", "used_memory");
    char cmd[96];
    snprintf(cmd, sizeof cmd, "CONFIG SET maxmemory %lld", used + 256 * 1024);
    redisReply *rr = redisCommand(c, "CONFIG SET maxmemory-policy noeviction");
    freeReplyObject(rr);
    rr = redisCommand(c, cmd);
    freeReplyObject(rr);
    long long t_full = chaos_now_us();
    harness_sleep_ms(4000);
    rr = redisCommand(c, "CONFIG SET maxmemory 0");
    freeReplyObject(rr);
    long long t_lift = chaos_now_us();
    chaos_check_t r;
    long v = chaos_env_check(e, "fig7", &r, true);
    chaos_window_t w;
    chaos_attempts_in(e->load, t_full, t_lift, 100000, &w);
    long oom503 = w.n - w.not503;
    long long first = chaos_load_first_200_after(e->load, t_lift);
    double first_ms = first > 0 ? (double)(first - t_lift) / 1000.0 : -1;
    chaos_load_stats_t ls;
    chaos_load_stats(e->load, &ls);

    /* A gateway that starts against a Redis that may evict says so. */
    rr = redisCommand(c, "CONFIG SET maxmemory-policy allkeys-lru");
    freeReplyObject(rr);
    harness_gw_t extra;
    if (harness_gw_start(&extra, "gateway.json", e->cl.redis.port, e->cl.overrides) != 0)
        fail_msg("third gateway did not start");
    long long end = chaos_now_us() + 5000000;
    int warned = 0;
    while (chaos_now_us() < end &&
           (warned = chaos_gw_log_count(&extra, "maxmemory-policy is not noeviction")) == 0)
        harness_sleep_ms(50);
    assert_int_equal(harness_gw_stop(&extra), 0);
    rr = redisCommand(c, "CONFIG SET maxmemory-policy noeviction");
    freeReplyObject(rr);
    redisFree(c);

    char line[1024];
    chaos_check_line(&r, line, sizeof line);
    chaos_figure(7, "maxmemory = used + 256 KB for 4 s (noeviction) at 100 req/s: %ld attempts, "
                    "%ld answered 503, %ld 500s (all run: %ld 5xx other than 503); first 200 "
                    "%.0f ms after the limit was lifted; start-up warning with allkeys-lru: %s; "
                    "%s",
                 w.n, oom503, w.s500, ls.s5xx_other, first_ms, warned ? "yes" : "NO", line);
    chaos_env_down(e);
    assert_true(oom503 > 0);
    assert_int_equal(ls.s5xx_other, 0);
    assert_true(warned > 0);
    assert_int_equal(r.not_acked, 0);
    assert_int_equal(v, 0);
    int first_limit = chaos_limit_ms(2000, 5000);
    if (first_ms < 0 || first_ms > first_limit)
        fail_msg("first 200 %.0f ms after recovery (want <= %d)", first_ms, first_limit);
}

/* ------------------------------------------------------------------------------ figure 8 */

static void test_fig8_stream_deleted(void **state)
{
    (void)state;
    if (!chaos_want(8))
        skip();
    chaos_dest_policy_t pol = {.latency_ms = 50, .jitter_ms = 100};
    chaos_env_t *e = chaos_env_up(2, false, &pol, chaos_ms(1000), NULL);
    chaos_env_load(e, "X", 100, 6000, 100);
    harness_sleep_ms(3000);
    long long t_del = chaos_now_us();
    redisContext *c = chaos_redis(&e->cl);
    long n_active = chaos_owned_active(c, 0);
    redisReply *rr = redisCommand(c, "DEL cr:{cr}:sagas");
    long deleted = rr ? (long)rr->integer : -1;
    freeReplyObject(rr);
    chaos_cluster_event(&e->cl, "stream-del", -1, n_active);
    /* the group comes back, from 0 */
    long long end = chaos_now_us() + 10000000, t_group = 0;
    while (chaos_now_us() < end) {
        rr = redisCommand(c, "XINFO GROUPS cr:{cr}:sagas");
        bool back = rr && rr->type == REDIS_REPLY_ARRAY && rr->elements == 1;
        freeReplyObject(rr);
        if (back) {
            t_group = chaos_now_us();
            break;
        }
        harness_sleep_ms(10);
    }
    redisFree(c);
    long long t_done_wait = chaos_now_us();
    chaos_check_t r;
    long v = chaos_env_check(e, "fig8-stream", &r, true);
    long long first = chaos_load_first_200_after(e->load, t_del);
    (void)t_done_wait;
    char line[1024];
    chaos_check_line(&r, line, sizeof line);
    chaos_figure(8, "stream deleted under 100 req/s with %ld sagas unfinished (DEL -> %ld): group "
                    "recreated after %.0f ms, next 200 after %.0f ms; %s",
                 n_active, deleted, t_group ? (double)(t_group - t_del) / 1000.0 : -1.0,
                 first ? (double)(first - t_del) / 1000.0 : -1.0, line);
    chaos_env_down(e);
    assert_true(t_group > 0);
    assert_int_equal(r.not_acked, 0);
    assert_int_equal(v, 0);
}

static void test_fig8_pending_deleted(void **state)
{
    (void)state;
    if (!chaos_want(8))
        skip();
    chaos_dest_policy_t pol = {.latency_ms = 300, .jitter_ms = 200};
    chaos_env_t *e = chaos_env_up(1, false, &pol, chaos_ms(1000), NULL);
    chaos_env_load(e, "Q", 50, 3000, 50);
    harness_sleep_ms(2500);
    chaos_cluster_kill(&e->cl, 0);
    redisContext *c = chaos_redis(&e->cl);
    redisReply *p = redisCommand(c, "XPENDING cr:{cr}:sagas workers - + 10000");
    long dropped = 0;
    for (size_t i = 0; p && p->type == REDIS_REPLY_ARRAY && i < p->elements; i++) {
        const char *id = p->element[i]->element[0]->str;
        redisReply *x = redisCommand(c, "XACK cr:{cr}:sagas workers %s", id);
        freeReplyObject(x);
        x = redisCommand(c, "XDEL cr:{cr}:sagas %s", id);
        freeReplyObject(x);
        dropped++;
    }
    if (p)
        freeReplyObject(p);
    long left = chaos_owned_active(c, 0);
    redisFree(c);
    long long t_damage = chaos_now_us();
    if (chaos_cluster_gw_start(&e->cl, 0) != 0)
        fail_msg("gateway did not restart");
    if (!chaos_load_wait(e->load, chaos_ms(60000)))
        fail_msg("load did not finish");
    long long t_all = chaos_wait_all_terminal(&e->cl, e->load, chaos_ms(30000));
    double took = t_all > 0 ? (double)(t_all - t_damage) / 1e6 : -1;
    chaos_check_t r;
    long v = chaos_env_check(e, "fig8-pending", &r, true);
    char line[1024];
    chaos_check_line(&r, line, sizeof line);
    chaos_figure(8, "gateway killed, its %ld pending entries deleted (%ld sagas unfinished): all "
                    "finished %.1f s after the damage (reconciler); %s",
                 dropped, left, took, line);
    chaos_env_down(e);
    assert_true(dropped > 0);
    assert_true(took >= 0 && took <= 10.0 * chaos_slow());
    assert_int_equal(r.not_acked, 0);
    assert_int_equal(v, 0);
}

static void test_fig8_entries_readded(void **state)
{
    (void)state;
    if (!chaos_want(8))
        skip();
    chaos_env_t *e = chaos_env_up(2, false, NULL, chaos_ms(1000), NULL);
    chaos_env_load(e, "Y", 100, 3000, 50);
    chaos_check_t r;
    long v = chaos_env_check(e, "fig8-readd", &r, true);
    assert_int_equal(v, 0);
    size_t before = chaos_dest_count(e->swift);
    size_t n;
    const chaos_request_t *rq = chaos_load_requests(e->load, &n);
    redisContext *c = chaos_redis(&e->cl);
    long added = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rq[i].acked)
            continue;
        redisReply *x = redisCommand(c, "XADD cr:{cr}:sagas * saga_id %s type wake tenant x",
                                     rq[i].saga_id);
        freeReplyObject(x);
        added++;
    }
    redisFree(c);
    bool settled = chaos_wait_settled(&e->cl, chaos_ms(10000));
    harness_sleep_ms(1000);
    size_t extra = chaos_dest_count(e->swift) - before;
    chaos_figure(8, "%ld stream entries re-added for finished sagas: %zu extra deliveries, "
                    "stream drained: %s",
                 added, extra, settled ? "yes" : "NO");
    chaos_env_down(e);
    assert_int_equal(extra, 0);
    assert_true(settled);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fig7_maxmemory),
        cmocka_unit_test(test_fig8_stream_deleted),
        cmocka_unit_test(test_fig8_pending_deleted),
        cmocka_unit_test(test_fig8_entries_readded),
    };
    return cmocka_run_group_tests_name("chaos_damage", tests, NULL, NULL) != 0;
}
