/*
 * openloop.c - open-loop load generator (wrk2 is not in Debian): sends requests at a fixed
 * rate on a pool of keep-alive connections, whatever the server's speed, and measures each
 * request's latency from the time it was *scheduled* (so a stall is not hidden by the client
 * waiting: no coordinated omission). Then, optionally, reads each accepted saga's hash in Redis
 * until it is terminal and reports end-to-end latency: saga finished_at minus the time the
 * request was scheduled (same machine, same wall clock, millisecond resolution).
 *
 *   bench_openloop --port 18400 --rate 1000 --duration 10 [--conns 256] [--host 127.0.0.1]
 *                  [--kind create|cancel|update_status|healthz] [--tag T]
 *                  [--api-key demo-acme-key] [--dest swift-haul]
 *                  [--redis 127.0.0.1:18404 [--e2e-timeout 120]] [--out samples.csv]
 *
 * Prints one JSON object on stdout:
 *   {"kind", "target_rps", "scheduled", "completed", "ok", "non2xx", "errors", "achieved_rps",
 *    "intake_ms": {n, p50, p90, p99, max},            (scheduled -> response received)
 *    "e2e_ms": {...}, "gw_ms": {...},                 (synced sagas only; with --redis)
 *    "statuses": {...}, "unfinished": n}
 * e2e_ms: scheduled -> saga finished_at; gw_ms: saga created_at -> finished_at.
 */
#include "bench_util.h"
#include "bsrv.h"

#include <hiredis/hiredis.h>
#include <llhttp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct sample {
    uint64_t sched_ns; /* hrtime the request was due */
    uint64_t done_ns;  /* hrtime its response completed (0: none) */
    int status;        /* HTTP status, -1 transport error, 0 not sent/answered */
    char saga_id[25];
    int64_t created_ms, finished_ms;
    char saga_status[16];
} sample_t;

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t wr;
    llhttp_t parser;
    long cur; /* sample index in flight, -1 idle */
    char req[2048];
    char body[4096];
    size_t body_len;
    bool closing;
} conn_t;

static struct {
    const char *host;
    int port;
    double rate;
    double duration;
    int nconns;
    const char *kind;
    const char *tag;
    const char *api_key;
    const char *dest;
    const char *redis;
    double e2e_timeout;
    const char *out;
} opt = {"127.0.0.1", 0, 1000, 10, 256, "create", "ol", "demo-acme-key", "swift-haul", NULL,
         120, NULL};

static uv_loop_t *loop;
static sample_t *samples;
static long nsamples, next_send, ncompleted;
/* Idle connections, a FIFO ring: the one idle longest sends next, so every connection of the
 * pool stays in use (a stack would leave some idle past the server's keep-alive timeout, and a
 * request sent as the server closes one is an error that is the generator's doing). */
static conn_t **idle;
static int idle_cap, idle_head, nidle, nconnected, nconnect_failed;
static uint64_t t0_ns;
static int64_t t0_wall_ms;
static uv_timer_t tick;
static bool started, finished;
static uint64_t last_send_ns;
static llhttp_settings_t psettings;
static struct sockaddr_in target;

static void conn_open(void);

static int build_request(conn_t *c, long i)
{
    char body[1024];
    int bl = 0;
    const char *path = NULL;
    if (strcmp(opt.kind, "healthz") == 0) {
        return snprintf(c->req, sizeof c->req, "GET /healthz HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                        opt.host, opt.port);
    } else if (strcmp(opt.kind, "create") == 0) {
        path = "/v1/order/create";
        bl = snprintf(body, sizeof body,
                      "{\"order_number\":\"OL-%s-%ld\",\"lines\":[{\"product\":{\"source_id\":"
                      "\"ULSD\"},\"terminal\":{\"source_id\":\"HOU-T1\"},\"site\":{\"source_id\":"
                      "\"ATX-S12\"},\"quantity\":8500,\"uom\":\"gal\"}],\"requested_delivery\":"
                      "\"2026-05-12T14:00:00Z\",\"notes\":\"open-loop benchmark\"}",
                      opt.tag, i);
    } else if (strcmp(opt.kind, "cancel") == 0) {
        path = "/v1/order/cancel";
        bl = snprintf(body, sizeof body,
                      "{\"order\":{\"order_number\":\"OL-%s-%ld\"},\"reason_code\":"
                      "\"customer_request\"}",
                      opt.tag, i);
    } else {
        path = "/v1/order/update_status";
        bl = snprintf(body, sizeof body,
                      "{\"order\":{\"order_number\":\"OL-%s-%ld\"},\"progress_status\":"
                      "\"arrived_at_load\",\"location\":{\"source_id\":\"HOU-T1\"},\"eta\":"
                      "\"2026-05-11T19:25:51.332Z\"}",
                      opt.tag, i);
    }
    return snprintf(c->req, sizeof c->req,
                    "POST %s HTTP/1.1\r\nHost: %s:%d\r\nX-API-Key: %s\r\n"
                    "X-Dest-Tenant-Name: %s\r\nContent-Type: application/json\r\n"
                    "Idempotency-Key: ol-%s-%ld\r\nContent-Length: %d\r\n\r\n%s",
                    path, opt.host, opt.port, opt.api_key, opt.dest, opt.tag, i, bl, body);
}

static void maybe_finish(void)
{
    if (finished || !started)
        return;
    if (next_send >= nsamples && ncompleted >= nsamples) {
        finished = true;
        uv_stop(loop);
    }
}

static void idle_push(conn_t *c)
{
    idle[(idle_head + nidle++) % idle_cap] = c;
}

static conn_t *idle_pop(void)
{
    conn_t *c = idle[idle_head];
    idle_head = (idle_head + 1) % idle_cap;
    nidle--;
    return c;
}

static void idle_remove(conn_t *c)
{
    for (int i = 0; i < nidle; i++) {
        if (idle[(idle_head + i) % idle_cap] != c)
            continue;
        for (int j = i; j + 1 < nidle; j++)
            idle[(idle_head + j) % idle_cap] = idle[(idle_head + j + 1) % idle_cap];
        nidle--;
        return;
    }
}

static void on_close_free(uv_handle_t *h)
{
    free(h->data);
}

static void conn_fail(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->cur >= 0) {
        samples[c->cur].status = -1;
        samples[c->cur].done_ns = uv_hrtime();
        ncompleted++;
        c->cur = -1;
    } else {
        idle_remove(c);
    }
    uv_close((uv_handle_t *)&c->tcp, on_close_free);
    if (!finished)
        conn_open(); /* keep the pool size */
    maybe_finish();
}

static void on_written(uv_write_t *wr, int status)
{
    conn_t *c = wr->data;
    if (status != 0)
        conn_fail(c);
}

static void dispatch(void)
{
    uint64_t now = uv_hrtime();
    long due = (long)((double)(now - t0_ns) * opt.rate / 1e9) + 1;
    if (due > nsamples)
        due = nsamples;
    while (next_send < due && nidle > 0) {
        conn_t *c = idle_pop();
        long i = next_send++;
        c->cur = i;
        c->body_len = 0;
        int n = build_request(c, i);
        uv_buf_t b = uv_buf_init(c->req, (unsigned)n);
        c->wr.data = c;
        last_send_ns = now;
        if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
            conn_fail(c);
            return;
        }
    }
    if (next_send >= nsamples)
        uv_timer_stop(&tick);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    dispatch();
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    size_t room = sizeof c->body - 1 - c->body_len;
    if (len > room)
        len = room;
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    if (c->cur < 0)
        return 0;
    sample_t *s = &samples[c->cur];
    s->done_ns = uv_hrtime();
    s->status = p->status_code;
    c->body[c->body_len] = '\0';
    const char *k = strstr(c->body, "\"saga_id\":\"");
    if (k != NULL && strlen(k + 11) >= 24) {
        memcpy(s->saga_id, k + 11, 24);
        s->saga_id[24] = '\0';
    }
    c->cur = -1;
    ncompleted++;
    idle_push(c);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char rbuf[65536];
    buf->base = rbuf;
    buf->len = sizeof rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread < 0) {
        conn_fail(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    if (llhttp_execute(&c->parser, buf->base, (size_t)nread) != HPE_OK) {
        conn_fail(c);
        return;
    }
    if (started) {
        dispatch();
        maybe_finish();
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (status != 0) {
        nconnect_failed++;
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_close_free);
        return;
    }
    nconnected++;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    idle_push(c);
    if (started)
        dispatch();
}

static void conn_open(void)
{
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->cur = -1;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    llhttp_init(&c->parser, HTTP_RESPONSE, &psettings);
    c->parser.data = c;
    if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&target, on_connect) != 0) {
        nconnect_failed++;
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_close_free);
    }
}

static uv_timer_t watchdog;
static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    if (!started) {
        if (nconnected + nconnect_failed >= opt.nconns) {
            if (nconnected == 0) {
                fprintf(stderr, "openloop: no connection to %s:%d\n", opt.host, opt.port);
                exit(1);
            }
            started = true;
            t0_ns = uv_hrtime();
            t0_wall_ms = bench_wall_ms();
            uv_timer_start(&tick, on_tick, 0, 1);
        }
        return;
    }
    /* Give answers 30 s after the last send, then give up on the rest. */
    if (next_send >= nsamples && uv_hrtime() - last_send_ns > 30ull * 1000000000ull) {
        finished = true;
        uv_stop(loop);
    }
}

/* ---------------------------------------------------------------- end to end */

static bool terminal(const char *st)
{
    return strcmp(st, "synced") == 0 || strcmp(st, "canceled") == 0 ||
           strcmp(st, "rejected") == 0 || strcmp(st, "error") == 0;
}

static long e2e_poll(void)
{
    char rhost[256];
    int rport;
    if (bsrv_parse_hostport(opt.redis, rhost, sizeof rhost, &rport) != 0)
        return -1;
    redisContext *rc = redisConnect(rhost, rport);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "openloop: redis %s: %s\n", opt.redis, rc ? rc->errstr : "oom");
        return -1;
    }
    int64_t deadline = bench_wall_ms() + (int64_t)(opt.e2e_timeout * 1000);
    long unfinished;
    for (;;) {
        unfinished = 0;
        long batch_start = 0;
        while (batch_start < nsamples) {
            long idx[1000];
            int nb = 0;
            long i = batch_start;
            for (; i < nsamples && nb < 1000; i++) {
                sample_t *s = &samples[i];
                if (s->status != 200 || s->saga_id[0] == '\0' || terminal(s->saga_status))
                    continue;
                redisAppendCommand(rc, "HMGET cr:{cr}:saga:%s status created_at finished_at",
                                   s->saga_id);
                idx[nb++] = i;
            }
            batch_start = i;
            for (int j = 0; j < nb; j++) {
                void *r = NULL;
                if (redisGetReply(rc, &r) != REDIS_OK) {
                    redisFree(rc);
                    return -1;
                }
                redisReply *rep = r;
                sample_t *s = &samples[idx[j]];
                if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                    rep->element[0]->type == REDIS_REPLY_STRING) {
                    snprintf(s->saga_status, sizeof s->saga_status, "%s", rep->element[0]->str);
                    if (rep->element[1]->type == REDIS_REPLY_STRING)
                        s->created_ms = bench_iso_to_ms(rep->element[1]->str);
                    if (rep->element[2]->type == REDIS_REPLY_STRING)
                        s->finished_ms = bench_iso_to_ms(rep->element[2]->str);
                }
                if (!terminal(s->saga_status))
                    unfinished++;
                freeReplyObject(rep);
            }
        }
        if (unfinished == 0 || bench_wall_ms() > deadline)
            break;
        struct timespec ts = {0, 200 * 1000000};
        nanosleep(&ts, NULL);
    }
    redisFree(rc);
    return unfinished;
}

static int usage(void)
{
    fputs("usage: bench_openloop --port PORT --rate R --duration S [--conns N] [--host H]\n"
          "       [--kind create|cancel|update_status|healthz] [--tag T] [--api-key K]\n"
          "       [--dest TENANT] [--redis HOST:PORT [--e2e-timeout S]] [--out FILE.csv]\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return usage();
        if (strcmp(a, "--host") == 0)
            opt.host = v;
        else if (strcmp(a, "--port") == 0)
            opt.port = atoi(v);
        else if (strcmp(a, "--rate") == 0)
            opt.rate = atof(v);
        else if (strcmp(a, "--duration") == 0)
            opt.duration = atof(v);
        else if (strcmp(a, "--conns") == 0)
            opt.nconns = atoi(v);
        else if (strcmp(a, "--kind") == 0)
            opt.kind = v;
        else if (strcmp(a, "--tag") == 0)
            opt.tag = v;
        else if (strcmp(a, "--api-key") == 0)
            opt.api_key = v;
        else if (strcmp(a, "--dest") == 0)
            opt.dest = v;
        else if (strcmp(a, "--redis") == 0)
            opt.redis = v;
        else if (strcmp(a, "--e2e-timeout") == 0)
            opt.e2e_timeout = atof(v);
        else if (strcmp(a, "--out") == 0)
            opt.out = v;
        else
            return usage();
    }
    if (opt.port <= 0 || opt.rate <= 0 || opt.duration <= 0 || opt.nconns <= 0)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    nsamples = (long)(opt.rate * opt.duration);
    samples = calloc((size_t)nsamples, sizeof *samples);
    idle_cap = opt.nconns * 2 + 16;
    idle = calloc((size_t)idle_cap, sizeof *idle);
    if (samples == NULL || idle == NULL)
        return 1;
    loop = uv_default_loop();
    llhttp_settings_init(&psettings);
    psettings.on_body = on_body;
    psettings.on_message_complete = on_message_complete;
    if (uv_ip4_addr(opt.host, opt.port, &target) != 0)
        return usage();
    uv_timer_init(loop, &tick);
    uv_timer_init(loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 10, 10);
    for (int i = 0; i < opt.nconns; i++)
        conn_open();
    uv_run(loop, UV_RUN_DEFAULT);

    /* Summaries. */
    long ok = 0, non2xx = 0, errors = 0, unanswered = 0;
    uint64_t last_done = t0_ns;
    double *lat = calloc((size_t)nsamples + 1, sizeof *lat);
    size_t nlat = 0;
    for (long i = 0; i < nsamples; i++) {
        sample_t *s = &samples[i];
        s->sched_ns = t0_ns + (uint64_t)((double)i * 1e9 / opt.rate);
        if (s->status == 0) {
            unanswered++;
            continue;
        }
        if (s->status < 0) {
            errors++;
            continue;
        }
        if (s->status >= 200 && s->status < 300)
            ok++;
        else
            non2xx++;
        if (s->done_ns > last_done)
            last_done = s->done_ns;
        lat[nlat++] = (double)(s->done_ns - s->sched_ns) / 1e6;
    }
    long unfinished = -1;
    if (opt.redis && strcmp(opt.kind, "healthz") != 0)
        unfinished = e2e_poll();

    printf("{\"kind\":\"%s\",\"target_rps\":%.0f,\"duration_s\":%.1f,\"conns\":%d,"
           "\"connect_failed\":%d,\"scheduled\":%ld,\"completed\":%ld,\"ok\":%ld,\"non2xx\":%ld,"
           "\"errors\":%ld,\"unanswered\":%ld,\"achieved_rps\":%.1f,\"intake_ms\":",
           opt.kind, opt.rate, opt.duration, opt.nconns, nconnect_failed, nsamples, ncompleted,
           ok, non2xx, errors, unanswered,
           last_done > t0_ns ? (double)(ok + non2xx) * 1e9 / (double)(last_done - t0_ns) : 0.0);
    bench_print_dist(stdout, lat, nlat);
    if (unfinished >= 0) {
        double *e2e = calloc((size_t)nsamples + 1, sizeof *e2e);
        double *gw = calloc((size_t)nsamples + 1, sizeof *gw);
        size_t ne = 0;
        long n_synced = 0, n_canceled = 0, n_rejected = 0, n_error = 0, n_other = 0;
        for (long i = 0; i < nsamples; i++) {
            sample_t *s = &samples[i];
            if (s->status != 200 || s->saga_id[0] == '\0')
                continue;
            if (strcmp(s->saga_status, "synced") == 0) {
                n_synced++;
                if (s->finished_ms > 0) {
                    double sched_wall = (double)t0_wall_ms + (double)(s->sched_ns - t0_ns) / 1e6;
                    e2e[ne] = (double)s->finished_ms - sched_wall;
                    gw[ne] = (double)(s->finished_ms - s->created_ms);
                    ne++;
                }
            } else if (strcmp(s->saga_status, "canceled") == 0) {
                n_canceled++;
            } else if (strcmp(s->saga_status, "rejected") == 0) {
                n_rejected++;
            } else if (strcmp(s->saga_status, "error") == 0) {
                n_error++;
            } else {
                n_other++;
            }
        }
        printf(",\"e2e_ms\":");
        bench_print_dist(stdout, e2e, ne);
        printf(",\"gw_ms\":");
        bench_print_dist(stdout, gw, ne);
        printf(",\"statuses\":{\"synced\":%ld,\"canceled\":%ld,\"rejected\":%ld,\"error\":%ld,"
               "\"not_terminal\":%ld},\"unfinished\":%ld",
               n_synced, n_canceled, n_rejected, n_error, n_other, unfinished);
        free(e2e);
        free(gw);
    }
    printf("}\n");

    if (opt.out) {
        FILE *f = fopen(opt.out, "w");
        if (f) {
            fprintf(f, "index,sched_ms,latency_ms,status,saga_id,saga_status,created_ms,"
                       "finished_ms\n");
            for (long i = 0; i < nsamples; i++) {
                sample_t *s = &samples[i];
                double sched = (double)t0_wall_ms + (double)(s->sched_ns - t0_ns) / 1e6;
                double l = s->done_ns ? (double)(s->done_ns - s->sched_ns) / 1e6 : -1;
                fprintf(f, "%ld,%.3f,%.3f,%d,%s,%s,%lld,%lld\n", i, sched, l, s->status,
                        s->saga_id, s->saga_status, (long long)s->created_ms,
                        (long long)s->finished_ms);
            }
            fclose(f);
        }
    }
    free(lat);
    return 0;
}
