/*
 * ref_redis.c - reference server (b), the naive durable-intake ceiling: ref_http (a) plus one
 * Redis transaction per request before answering, on the gateway's stack (libuv + llhttp +
 * hiredis async with its libuv adapter, one connection like the demo's "pool": 1):
 *
 *   MULTI
 *   XADD bench:{ref}:sagas * saga_id <id> type <order_action> tenant acme-supply
 *   HSET bench:{ref}:saga:<id> saga_id .. type .. status pending tenant .. dest ..
 *        request <the raw body> response <the answer> created_at <ms>
 *   EXEC
 *
 * and only then the fixed 200 answer (503 if Redis failed). No parsing of the body, no auth,
 * no validation, no idempotency, no coalescing beyond what hiredis's output buffer does by
 * itself within one loop iteration. Requests stored = XLEN bench:{ref}:sagas.
 *
 *   bench_ref_redis --port 18402 --redis 127.0.0.1:18404 [--host H] [--body-bytes 1200]
 *
 * SO_REUSEPORT; SIGTERM/SIGINT -> exit 0.
 */
#include "bench_util.h"
#include "bsrv.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uv_buf_t g_ok, g_unavailable;
static const char *g_body;
static size_t g_body_len;
static redisAsyncContext *g_ac;
static unsigned long long g_seq, g_stored, g_failed;
static unsigned g_pid;

static void on_exec(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    redisReply *reply = r;
    bsrv_req_t *req = privdata;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
        g_stored++;
        bsrv_respond(req, &g_ok, 1);
    } else {
        g_failed++;
        bsrv_respond(req, &g_unavailable, 1);
    }
}

/* "order_<last path segment>", e.g. /v1/order/cancel -> order_cancel. */
static void saga_type(const bsrv_req_t *req, char *out, size_t size)
{
    const char *seg = strrchr(req->url, '/');
    seg = seg ? seg + 1 : req->url;
    size_t n = strcspn(seg, "?");
    snprintf(out, size, "order_%.*s", (int)(n > 40 ? 40 : n), seg);
}

static void handler(bsrv_req_t *req, void *ud)
{
    (void)ud;
    if (g_ac == NULL) {
        g_failed++;
        bsrv_respond(req, &g_unavailable, 1);
        return;
    }
    char id[32], type[64], now[24];
    snprintf(id, sizeof id, "%08x%016llx", g_pid, ++g_seq);
    saga_type(req, type, sizeof type);
    snprintf(now, sizeof now, "%lld", (long long)bench_wall_ms());
    redisAsyncCommand(g_ac, NULL, NULL, "MULTI");
    redisAsyncCommand(g_ac, NULL, NULL,
                      "XADD bench:{ref}:sagas * saga_id %s type %s tenant acme-supply", id, type);
    redisAsyncCommand(g_ac, NULL, NULL,
                      "HSET bench:{ref}:saga:%s saga_id %s type %s status pending "
                      "tenant acme-supply dest swift-haul request %b response %b created_at %s",
                      id, id, type, req->body, req->body_len, g_body, g_body_len, now);
    if (redisAsyncCommand(g_ac, on_exec, req, "EXEC") != REDIS_OK) {
        g_failed++;
        bsrv_respond(req, &g_unavailable, 1);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        fprintf(stderr, "ref_redis: redis connect: %s\n", ac->errstr);
        g_ac = NULL;
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        fprintf(stderr, "ref_redis: redis disconnected: %s\n", ac->errstr);
    g_ac = NULL;
}

static int usage(void)
{
    fputs("usage: bench_ref_redis --port PORT --redis HOST:PORT [--host HOST] [--body-bytes N]\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    const char *redis = NULL;
    int port = 0;
    long body_bytes = 1200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc)
            redis = argv[++i];
        else if (strcmp(argv[i], "--body-bytes") == 0 && i + 1 < argc)
            body_bytes = atol(argv[++i]);
        else
            return usage();
    }
    char rhost[256];
    int rport;
    if (port <= 0 || port > 65535 || body_bytes < 15 || body_bytes > (1L << 24) ||
        redis == NULL || bsrv_parse_hostport(redis, rhost, sizeof rhost, &rport) != 0)
        return usage();
    g_pid = (unsigned)getpid();
    char *body = bench_json_body((size_t)body_bytes);
    g_body = body;
    g_body_len = strlen(body);
    size_t len = 0;
    char *resp = bench_http_200(body, g_body_len, &len);
    if (resp == NULL)
        return 1;
    g_ok = uv_buf_init(resp, (unsigned)len);
    static char unavailable[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Content-Length: 26\r\nConnection: keep-alive\r\n\r\n{\"detail\":\"redis failed\"}\n";
    g_unavailable = uv_buf_init(unavailable, (unsigned)strlen(unavailable));

    uv_loop_t *loop = uv_default_loop();
    g_ac = redisAsyncConnect(rhost, rport);
    if (g_ac == NULL || g_ac->err) {
        fprintf(stderr, "ref_redis: redis %s: %s\n", redis, g_ac ? g_ac->errstr : "oom");
        return 1;
    }
    redisLibuvAttach(g_ac, loop);
    redisAsyncSetConnectCallback(g_ac, on_connect);
    redisAsyncSetDisconnectCallback(g_ac, on_disconnect);

    bsrv_opts_t o = {.host = host, .port = port, .want_body = true, .handler = handler};
    int rc = bsrv_listen(loop, &o);
    if (rc != 0) {
        fprintf(stderr, "ref_redis: listen %s:%d: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    bsrv_handle_signals(loop);
    fprintf(stderr, "ref_redis: listening on %s:%d, redis %s, %ld-byte body\n", host, port, redis,
            body_bytes);
    uv_run(loop, UV_RUN_DEFAULT);
    fprintf(stderr, "ref_redis: %llu stored, %llu failed\n", g_stored, g_failed);
    free(resp);
    free(body);
    return 0;
}
