/*
 * chaos_proc.c - supervisor of gateway and Redis processes (see chaos.h).
 *
 * Gateways and Redis are the harness's children (harness_gw_start, harness_redis_start), so a
 * failed test still leaves nothing running. Faults go to a process by its PID. Every fault is
 * recorded as an event with the number of sagas it may cause to be delivered twice: the
 * unfinished sagas the struck process owned (cr:{cr}:active members whose "owner" names its
 * PID), or every unfinished saga for a Redis fault. Their sum bounds the duplicate deliveries
 * the checker accepts.
 */
#include "chaos.h"

#include "store_keys.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

redisContext *chaos_redis(const chaos_cluster_t *c)
{
    return harness_redis_connect(&c->redis);
}

long chaos_owned_active(redisContext *rc, pid_t pid)
{
    if (rc == NULL)
        return -1;
    redisReply *r = redisCommand(rc, "ZRANGE %s 0 -1", STORE_KEY_ACTIVE);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    if (pid == 0) {
        long n = (long)r->elements;
        freeReplyObject(r);
        return n;
    }
    char mark[32];
    snprintf(mark, sizeof mark, "-%d-", (int)pid);
    for (size_t i = 0; i < r->elements; i++)
        redisAppendCommand(rc, "HGET " STORE_KEY_PREFIX "saga:%s owner", r->element[i]->str);
    long n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *o = NULL;
        if (redisGetReply(rc, (void **)&o) != REDIS_OK)
            break;
        if (o && o->type == REDIS_REPLY_STRING && strstr(o->str, mark) != NULL)
            n++;
        if (o)
            freeReplyObject(o);
    }
    freeReplyObject(r);
    return n;
}

void chaos_cluster_event(chaos_cluster_t *c, const char *what, int target, long in_flight)
{
    if (in_flight > 0)
        c->dup_bound += in_flight;
    if (c->n_events >= CHAOS_MAX_EVENTS)
        return;
    chaos_event_t *e = &c->events[c->n_events++];
    e->t_us = chaos_now_us();
    snprintf(e->what, sizeof e->what, "%s", what);
    e->target = target;
    e->pid = target >= 0 && target < c->n_gw ? (int)c->gw[target].pid : 0;
    e->in_flight = in_flight;
}

static long owned_now(const chaos_cluster_t *c, pid_t pid)
{
    if (!c->redis_up)
        return 0;
    redisContext *rc = chaos_redis(c);
    long n = chaos_owned_active(rc, pid);
    if (rc)
        redisFree(rc);
    return n < 0 ? 0 : n;
}

void chaos_cluster_sync_ports(chaos_cluster_t *c)
{
    if (c->load == NULL)
        return;
    int ports[CHAOS_MAX_GW];
    int n = 0;
    for (int i = 0; i < c->n_gw; i++)
        if (c->alive[i] && !c->paused[i])
            ports[n++] = c->gw[i].port;
    chaos_load_set_ports(c->load, ports, n);
}

int chaos_cluster_live(const chaos_cluster_t *c)
{
    int n = 0;
    for (int i = 0; i < c->n_gw; i++)
        n += c->alive[i];
    return n;
}

int chaos_cluster_port(const chaos_cluster_t *c)
{
    for (int i = 0; i < c->n_gw; i++)
        if (c->alive[i] && !c->paused[i])
            return c->gw[i].port;
    return 0;
}

int chaos_cluster_random_live(chaos_cluster_t *c)
{
    int live[CHAOS_MAX_GW], n = 0;
    for (int i = 0; i < c->n_gw; i++)
        if (c->alive[i] && !c->paused[i])
            live[n++] = i;
    return n ? live[rand() % n] : -1;
}

int chaos_cluster_gw_start(chaos_cluster_t *c, int i)
{
    int port = c->with_proxy && c->proxy[i] ? chaos_proxy_port(c->proxy[i]) : c->redis.port;
    if (harness_gw_start(&c->gw[i], c->fixture ? c->fixture : "gateway.json", port,
                         c->overrides) != 0)
        return -1;
    c->alive[i] = true;
    /* serving with Redis connected (when Redis is up) */
    if (c->redis_up && !harness_gw_wait_ready(&c->gw[i], 200, chaos_ms(10000)))
        fprintf(stderr, "chaos: gateway %d not ready 10 s after its start\n", i);
    c->paused[i] = false;
    chaos_cluster_sync_ports(c);
    return 0;
}

int chaos_cluster_start(chaos_cluster_t *c, int n_gw, bool appendonly, bool with_proxy,
                        json_t *overrides)
{
    memset(c, 0, sizeof *c);
    c->overrides = overrides;
    c->appendonly = appendonly;
    c->with_proxy = with_proxy;
    c->n_gw = n_gw;
    if (harness_redis_start(&c->redis, appendonly) != 0)
        return -1;
    c->redis_up = true;
    for (int i = 0; i < n_gw; i++) {
        if (with_proxy) {
            c->proxy[i] = chaos_proxy_start(c->redis.port);
            if (c->proxy[i] == NULL)
                return -1;
        }
        if (chaos_cluster_gw_start(c, i) != 0)
            return -1;
    }
    return 0;
}

bool chaos_gw_log_clean(const harness_gw_t *g)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "runtime error:",
                                        "LeakSanitizer"};
    FILE *f = fopen(g->log_path, "rb");
    if (f == NULL)
        return true;
    char line[8192];
    bool clean = true;
    while (clean && fgets(line, sizeof line, f) != NULL)
        for (size_t i = 0; i < 3; i++)
            if (strstr(line, marks[i]) != NULL) {
                fprintf(stderr, "chaos: sanitizer report in %s: %s", g->log_path, line);
                clean = false;
            }
    fclose(f);
    return clean;
}

int chaos_gw_log_count(const harness_gw_t *g, const char *needle)
{
    FILE *f = fopen(g->log_path, "rb");
    if (f == NULL)
        return 0;
    char line[16384];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strstr(line, needle) != NULL)
            n++;
    fclose(f);
    return n;
}

void chaos_cluster_kill(chaos_cluster_t *c, int i)
{
    if (!c->alive[i])
        return;
    pid_t pid = c->gw[i].pid;
    if (!chaos_gw_log_clean(&c->gw[i]))
        fprintf(stderr, "chaos: gateway %d (pid %d) had a sanitizer report before its kill\n", i,
                (int)pid);
    c->alive[i] = false;
    c->paused[i] = false;
    chaos_cluster_sync_ports(c);
    kill(pid, SIGKILL);
    c->kills++;
    chaos_cluster_event(c, "kill", i, owned_now(c, pid)); /* before the reap clears gw[i].pid */
    harness_gw_kill(&c->gw[i]);
}

void chaos_cluster_pause(chaos_cluster_t *c, int i)
{
    if (!c->alive[i] || c->paused[i])
        return;
    kill(c->gw[i].pid, SIGSTOP);
    c->paused[i] = true;
    c->pauses++;
    chaos_cluster_sync_ports(c);
    chaos_cluster_event(c, "pause", i, owned_now(c, c->gw[i].pid));
}

void chaos_cluster_cont(chaos_cluster_t *c, int i)
{
    if (!c->alive[i] || !c->paused[i])
        return;
    kill(c->gw[i].pid, SIGCONT);
    c->paused[i] = false;
    chaos_cluster_sync_ports(c);
    chaos_cluster_event(c, "cont", i, 0);
}

int chaos_cluster_term(chaos_cluster_t *c, int i, int wait_ms, long long *took_ms)
{
    (void)wait_ms; /* harness_gw_stop waits up to 15 s, then kills */
    if (!c->alive[i])
        return -1;
    c->alive[i] = false;
    chaos_cluster_sync_ports(c);
    long long t0 = chaos_now_us();
    int rc = harness_gw_stop(&c->gw[i]);
    if (took_ms)
        *took_ms = (chaos_now_us() - t0) / 1000;
    chaos_cluster_event(c, "term", i, 0);
    return rc;
}

void chaos_cluster_redis_kill(chaos_cluster_t *c)
{
    long n = owned_now(c, 0);
    harness_redis_kill(&c->redis);
    c->redis_up = false;
    chaos_cluster_event(c, "redis-kill", -1, n);
}

void chaos_cluster_redis_stop(chaos_cluster_t *c)
{
    long n = owned_now(c, 0);
    harness_redis_stop(&c->redis);
    c->redis_up = false;
    chaos_cluster_event(c, "redis-stop", -1, n);
}

int chaos_cluster_redis_restart(chaos_cluster_t *c)
{
    int rc = harness_redis_restart(&c->redis);
    c->redis_up = rc == 0;
    /* Nothing progresses while Redis is away: the sagas unfinished now are those that were
     * unfinished across the outage, including any accepted in the moment between the count
     * taken at the stop and Redis actually going. The stop's event takes the larger count. */
    long after = rc == 0 ? owned_now(c, 0) : 0;
    for (int i = c->n_events - 1; i >= 0; i--) {
        if (strcmp(c->events[i].what, "redis-stop") == 0 ||
            strcmp(c->events[i].what, "redis-kill") == 0) {
            if (after > c->events[i].in_flight) {
                c->dup_bound += after - c->events[i].in_flight;
                c->events[i].in_flight = after;
            }
            break;
        }
    }
    chaos_cluster_event(c, "redis-start", -1, 0);
    return rc;
}

int chaos_cluster_stop(chaos_cluster_t *c)
{
    int bad = 0;
    for (int i = 0; i < c->n_gw; i++) {
        if (c->paused[i])
            chaos_cluster_cont(c, i);
        if (c->alive[i]) {
            c->alive[i] = false;
            int rc = harness_gw_stop(&c->gw[i]);
            if (rc != 0) {
                fprintf(stderr, "chaos: gateway %d stopped with %d\n", i, rc);
                bad++;
            }
        }
    }
    chaos_cluster_sync_ports(c);
    if (c->redis_up || c->redis.pid > 0)
        harness_redis_stop(&c->redis);
    c->redis_up = false;
    for (int i = 0; i < c->n_gw; i++) {
        chaos_proxy_stop(c->proxy[i]);
        c->proxy[i] = NULL;
    }
    json_decref(c->overrides);
    c->overrides = NULL;
    return bad;
}

json_t *chaos_overrides(const char *acme_url, const char *swift_url, int claim_idle_ms,
                        int max_attempts, int retry_base_ms, int retry_max_ms)
{
    json_t *tenants = harness_fixture_tenants_at(
        (const char *[]){"acme-supply", acme_url, "swift-haul", swift_url, NULL});
    if (tenants == NULL)
        return NULL;
    setenv("ACME_WEBHOOK_SECRET", "acme-chaos-secret", 1);
    setenv("SWIFT_WEBHOOK_SECRET", "swift-chaos-secret", 1);
    setenv("TECSPAL_TOKEN", "tecspal-chaos-token", 1);
    return json_pack("{s:o, s:{s:i, s:i, s:i, s:i, s:i}, s:{s:s}}", "tenants", tenants, "saga",
                     "max_attempts", max_attempts, "retry_base_ms", retry_base_ms,
                     "retry_max_ms", retry_max_ms, "claim_idle_ms", claim_idle_ms,
                     "drain_timeout_ms", 5000, "log", "level", "warn");
}

bool chaos_wait_readers(const chaos_cluster_t *c, int n, int deadline_ms)
{
    redisContext *rc = chaos_redis(c);
    if (rc == NULL)
        return false;
    long long end = chaos_now_us() + (long long)deadline_ms * 1000;
    int readers = 0;
    for (;;) {
        redisReply *r = redisCommand(rc, "CLIENT LIST");
        readers = 0;
        for (const char *p = r && r->str ? r->str : NULL; p && (p = strstr(p, "cmd=xreadgroup"));
             p++)
            readers++;
        if (r)
            freeReplyObject(r);
        if (readers >= n || chaos_now_us() >= end)
            break;
        harness_sleep_ms(20);
    }
    redisFree(rc);
    return readers >= n;
}

long chaos_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

int chaos_post(int port, const char *api_key, const char *dest, const char *action,
               const char *body, const char *idem_key, harness_resp_t *resp)
{
    char k[128], d[96], i[300], path[96];
    snprintf(k, sizeof k, "X-API-Key: %s", api_key);
    snprintf(d, sizeof d, "X-Dest-Tenant-Name: %s", dest);
    snprintf(i, sizeof i, "Idempotency-Key: %s", idem_key ? idem_key : "");
    snprintf(path, sizeof path, "/v1/order/%s", action);
    const char *h[] = {"Content-Type: application/json", k, d, idem_key ? i : NULL, NULL};
    return harness_http(port, "POST", path, h, body, strlen(body), resp);
}

bool chaos_saga_status(const chaos_cluster_t *c, const char *saga_id, char status[24],
                       char owner[160])
{
    redisContext *rc = chaos_redis(c);
    if (rc == NULL)
        return false;
    redisReply *r = redisCommand(rc, "HMGET " STORE_KEY_PREFIX "saga:%s status owner", saga_id);
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              r->element[0]->type == REDIS_REPLY_STRING;
    if (ok) {
        snprintf(status, 24, "%s", r->element[0]->str);
        if (owner)
            snprintf(owner, 160, "%s",
                     r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str : "");
    }
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return ok;
}

bool chaos_wait_saga_terminal(const chaos_cluster_t *c, const char *saga_id, int deadline_ms,
                              char status[24])
{
    long long end = chaos_now_us() + (long long)deadline_ms * 1000;
    for (;;) {
        if (chaos_saga_status(c, saga_id, status, NULL) &&
            (strcmp(status, "synced") == 0 || strcmp(status, "canceled") == 0 ||
             strcmp(status, "rejected") == 0 || strcmp(status, "error") == 0))
            return true;
        if (chaos_now_us() >= end)
            return false;
        harness_sleep_ms(20);
    }
}
