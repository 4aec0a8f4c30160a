/*
 * dest.c - the benchmark's loopback destination: a tiny HTTP server that answers every request
 * (webhook deliveries from the gateway: POST /v1/order/<action>) with 200 and a small JSON
 * body, optionally after a fixed delay, so saga throughput can be measured against a
 * destination that "answers in 10 ms" without that destination costing CPU.
 *
 *   bench_dest --port 18403 [--host 127.0.0.1] [--delay-ms 0]
 *
 * SO_REUSEPORT; SIGTERM/SIGINT -> exit 0 after printing how many requests it answered.
 */
#include "bsrv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uv_buf_t g_response;
static uint64_t g_delay_ms;
static uv_loop_t *g_loop;

typedef struct delayed {
    uv_timer_t timer;
    bsrv_req_t *req;
} delayed_t;

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_timer(uv_timer_t *t)
{
    delayed_t *d = t->data;
    bsrv_respond(d->req, &g_response, 1);
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

static void handler(bsrv_req_t *req, void *ud)
{
    (void)ud;
    if (g_delay_ms == 0) {
        bsrv_respond(req, &g_response, 1);
        return;
    }
    delayed_t *d = malloc(sizeof *d);
    if (d == NULL) {
        bsrv_respond(req, &g_response, 1);
        return;
    }
    d->req = req;
    uv_timer_init(g_loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_timer, g_delay_ms, 0);
}

static int usage(void)
{
    fputs("usage: bench_dest --port PORT [--host HOST] [--delay-ms MS]\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc)
            g_delay_ms = (uint64_t)strtoull(argv[++i], NULL, 10);
        else
            return usage();
    }
    if (port <= 0 || port > 65535)
        return usage();
    static char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: 17\r\nConnection: keep-alive\r\n\r\n"
                         "{\"received\":true}";
    g_response = uv_buf_init(resp, (unsigned)strlen(resp));
    g_loop = uv_default_loop();
    bsrv_opts_t o = {.host = host, .port = port, .handler = handler};
    int rc = bsrv_listen(g_loop, &o);
    if (rc != 0) {
        fprintf(stderr, "dest: listen %s:%d: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    bsrv_handle_signals(g_loop);
    fprintf(stderr, "dest: listening on %s:%d, delay %llu ms\n", host, port,
            (unsigned long long)g_delay_ms);
    uv_run(g_loop, UV_RUN_DEFAULT);
    fprintf(stderr, "dest: %llu requests answered\n", bsrv_answered());
    return 0;
}
