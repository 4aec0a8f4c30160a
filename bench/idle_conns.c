/*
 * idle_conns.c - opens N keep-alive connections to a server, sends one GET /healthz on each,
 * reads the answer, and then holds them all idle (to measure what idle connections cost the
 * server: its RSS). Connects at most --burst at a time so the listen backlog is not overrun.
 *
 *   bench_idle_conns --port 18400 --conns 10000 [--host 127.0.0.1] [--burst 256]
 *                    [--hold SECONDS]   (0, the default: until SIGTERM/SIGINT)
 *
 * Prints one JSON line when every connection has been answered or failed:
 *   {"event":"ready","conns":N,"ok":..,"failed":..,"closed_by_server":..,"seconds":..}
 * and one more when it exits ({"event":"exit",...}, counting connections the server closed
 * meanwhile). The caller raises `ulimit -n` above N.
 */
#include "bench_util.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t wr;
    bool answered, closed;
} conn_t;

static uv_loop_t *loop;
static struct sockaddr_in target;
static int nconns, burst = 256, launched, inflight, nok, nfailed, nclosed;
static bool ready;
static uint64_t t_start;
static char request[256];
static uv_signal_t sigterm, sigint;
static uv_timer_t hold_timer;

static void launch_more(void);

static void report(const char *event)
{
    printf("{\"event\":\"%s\",\"conns\":%d,\"ok\":%d,\"failed\":%d,\"closed_by_server\":%d,"
           "\"seconds\":%.3f}\n",
           event, nconns, nok, nfailed, nclosed, (double)(uv_hrtime() - t_start) / 1e9);
    fflush(stdout);
}

static void check_ready(void)
{
    if (!ready && nok + nfailed >= nconns) {
        ready = true;
        report("ready");
    }
}

static void on_closed(uv_handle_t *h)
{
    (void)h; /* conn_t memory is kept: one array for all */
}

static void finish_one(conn_t *c, bool ok)
{
    if (ok)
        nok++;
    else
        nfailed++;
    c->answered = true;
    inflight--;
    launch_more();
    check_ready();
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char rbuf[4096];
    buf->base = rbuf;
    buf->len = sizeof rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (!c->closed) {
            c->closed = true;
            uv_close((uv_handle_t *)&c->tcp, on_closed);
            if (!c->answered)
                finish_one(c, false);
            else
                nclosed++;
        }
        return;
    }
    if (!c->answered)
        finish_one(c, nread >= 12 && memcmp(buf->base, "HTTP/1.1 200", 12) == 0);
}

static void on_written(uv_write_t *wr, int status)
{
    conn_t *c = wr->data;
    if (status != 0 && !c->closed) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        if (!c->answered)
            finish_one(c, false);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (status != 0) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        finish_one(c, false);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    uv_buf_t b = uv_buf_init(request, (unsigned)strlen(request));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        finish_one(c, false);
    }
}

static conn_t *conns;

static void launch_more(void)
{
    while (launched < nconns && inflight < burst) {
        conn_t *c = &conns[launched++];
        inflight++;
        uv_tcp_init(loop, &c->tcp);
        c->tcp.data = c;
        c->connect.data = c;
        if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&target, on_connect) !=
            0) {
            c->closed = true;
            uv_close((uv_handle_t *)&c->tcp, on_closed);
            finish_one(c, false);
        }
    }
}

static void on_stop(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

static void on_hold(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static int usage(void)
{
    fputs("usage: bench_idle_conns --port PORT --conns N [--host H] [--burst B] [--hold S]\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    double hold = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--host") == 0)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--conns") == 0)
            nconns = atoi(argv[++i]);
        else if (strcmp(argv[i], "--burst") == 0)
            burst = atoi(argv[++i]);
        else if (strcmp(argv[i], "--hold") == 0)
            hold = atof(argv[++i]);
        else
            return usage();
    }
    if (port <= 0 || nconns <= 0 || burst <= 0 || uv_ip4_addr(host, port, &target) != 0)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    snprintf(request, sizeof request, "GET /healthz HTTP/1.1\r\nHost: %s:%d\r\n\r\n", host, port);
    conns = calloc((size_t)nconns, sizeof *conns);
    if (conns == NULL)
        return 1;
    loop = uv_default_loop();
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_stop, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_stop, SIGINT);
    if (hold > 0) {
        uv_timer_init(loop, &hold_timer);
        uv_timer_start(&hold_timer, on_hold, (uint64_t)(hold * 1000), 0);
    }
    t_start = uv_hrtime();
    launch_more();
    uv_run(loop, UV_RUN_DEFAULT);
    report("exit");
    return 0;
}
