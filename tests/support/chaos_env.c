/*
 * chaos_env.c - a ready-made scenario for the chaos tests (see chaos.h): the two webhook
 * stand-ins (acme-supply, swift-haul), Redis with appendfsync always, N gateways, a load of the
 * usual mix, the checker with the usual options; plus small Redis and attempt-window helpers.
 */
#include "chaos.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int chaos_env_start(chaos_env_t *e, int n_gw, bool with_proxy, const chaos_dest_policy_t *pol,
                    int claim_ms, json_t *extra)
{
    memset(e, 0, sizeof *e);
    chaos_dest_policy_t def = {.latency_ms = 5, .jitter_ms = 10};
    e->swift = chaos_dest_start(pol ? pol : &def, 51);
    e->acme = chaos_dest_start(NULL, 52);
    if (e->swift == NULL || e->acme == NULL) {
        json_decref(extra);
        return -1;
    }
    char su[64], au[64];
    chaos_dest_url(e->swift, su, sizeof su);
    chaos_dest_url(e->acme, au, sizeof au);
    json_t *ov = chaos_overrides(au, su, claim_ms, 5, 50, 500);
    if (extra) {
        const char *k;
        json_t *v;
        json_object_foreach(extra, k, v) json_object_set(ov, k, v);
        json_decref(extra);
    }
    if (chaos_cluster_start(&e->cl, n_gw, true, with_proxy, ov) != 0)
        return -1;
    if (!chaos_wait_readers(&e->cl, n_gw, 10000))
        return -1;
    return 0;
}

void chaos_env_load(chaos_env_t *e, const char *base, double rate, int duration_ms, int n_orders)
{
    chaos_tag(e->tag, sizeof e->tag, base);
    e->mix = (chaos_mix_t){.n_orders = n_orders, .tag = e->tag, .resets = true};
    chaos_load_opts_t lo = {.rate = rate, .duration_ms = duration_ms, .tag = e->tag,
                            .gen = chaos_gen_mix, .gen_arg = &e->mix, .give_up_ms = 120000};
    int ports[CHAOS_MAX_GW], n = 0;
    for (int i = 0; i < e->cl.n_gw; i++)
        ports[n++] = e->cl.gw[i].port;
    e->load = chaos_load_start(&lo, ports, n);
    e->cl.load = e->load;
}

long chaos_check_usual(const chaos_cluster_t *cl, chaos_load_t *load, chaos_dest_t *dest,
                       const char *name, int settle_ms, bool fifo, chaos_check_t *r)
{
    if (!chaos_load_wait(load, chaos_ms(120000))) {
        fprintf(stderr, "chaos: %s: the load did not finish\n", name);
        memset(r, 0, sizeof *r);
        r->violations = 1;
        return -1;
    }
    chaos_check_opts_t co = {.load = load, .dests = {dest}, .n_dests = 1, .cluster = cl,
                             .settle_ms = settle_ms, .fifo = fifo, .expect_2xx = true,
                             .dup_bound = -1};
    long v = chaos_check_run(&co, r);
    chaos_dump_logs(name, load, dest);
    return v;
}

long chaos_env_check(chaos_env_t *e, const char *name, chaos_check_t *r, bool fifo)
{
    return chaos_check_usual(&e->cl, e->load, e->swift, name, chaos_ms(60000), fifo, r);
}

int chaos_env_stop(chaos_env_t *e)
{
    e->cl.load = NULL;
    chaos_load_free(e->load);
    e->load = NULL;
    int bad = chaos_cluster_stop(&e->cl);
    chaos_dest_stop(e->swift);
    chaos_dest_stop(e->acme);
    e->swift = e->acme = NULL;
    return bad;
}

chaos_env_t *chaos_env_up(int n_gw, bool with_proxy, const chaos_dest_policy_t *pol, int claim_ms,
                          json_t *extra)
{
    static chaos_env_t env;
    if (chaos_env_start(&env, n_gw, with_proxy, pol, claim_ms, extra) != 0)
        fail_msg("the cluster did not start");
    return &env;
}

void chaos_env_down(chaos_env_t *e)
{
    assert_int_equal(chaos_env_stop(e), 0);
}

void chaos_attempts_in(chaos_load_t *l, long long from, long long to, int limit_ms,
                       chaos_window_t *w)
{
    memset(w, 0, sizeof *w);
    size_t n;
    const chaos_attempt_t *a = chaos_load_attempts(l, &n);
    double *lat = malloc((n ? n : 1) * sizeof *lat);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i].status == 200 && a[i].end_us > from && a[i].end_us < to)
            w->ok_inside++;
        if (a[i].start_us < from || a[i].start_us >= to || a[i].port == 0)
            continue;
        w->n++;
        double ms = (double)(a[i].end_us - a[i].start_us) / 1000.0;
        lat[k++] = ms;
        if (ms > w->max_ms)
            w->max_ms = ms;
        if (a[i].status != 503)
            w->not503++;
        if (a[i].status >= 500 && a[i].status != 503)
            w->s500++;
        if (a[i].status == 503 && !a[i].retry_after)
            w->no_ra++;
        if (ms > limit_ms)
            w->slow++;
    }
    w->p99_ms = chaos_pct(lat, k, 99);
    free(lat);
}

int chaos_redis_cmd(const chaos_cluster_t *cl, const char *cmd)
{
    redisContext *c = chaos_redis(cl);
    if (c == NULL)
        return -1;
    redisReply *r = redisCommand(c, cmd);
    int rc = r == NULL || r->type == REDIS_REPLY_ERROR ? -1 : 0;
    if (rc != 0)
        fprintf(stderr, "chaos: redis %s: %s\n", cmd, r ? r->str : c->errstr);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

long long chaos_redis_info(redisContext *c, const char *section, const char *field)
{
    redisReply *r = redisCommand(c, "INFO %s", section);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        char pat[96];
        snprintf(pat, sizeof pat, "\n%s:", field);
        const char *p = strstr(r->str, pat);
        if (p)
            v = atoll(p + strlen(pat));
    }
    if (r)
        freeReplyObject(r);
    return v;
}
