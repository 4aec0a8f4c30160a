/*
 * test_slow_clients.c - slow and greedy clients against the real binary (raw sockets): a
 * slowloris crowd, eviction above max_connections (and the 503 when none can go, closed without
 * a reset), slow bodies, a client that pipelines and never reads, the file descriptor limit,
 * connect/close cycles, a flood of refused requests, and the exact head/body limits that
 * tests/integration/test_http.c does not already pin.
 *
 * Sized for CI by default; the environment scales it for the full run:
 *   CR_SLOW_CONNS        slowloris connections (default 500; full run 10000)
 *   CR_SLOW_DRIP_MS      one byte per connection every this many ms (default 2000; full 5000)
 *   CR_SLOW_HEADER_MS    limits.header_timeout_ms during the slowloris test (default 3000)
 *   CR_SLOW_SECONDS      legitimate traffic measured under load for this long (default 6)
 *   CR_FD_CYCLES         connect/close cycles in the descriptor check (default 10000; full 100000)
 *   CR_PIPELINE_MB       pipelined bytes sent by the client that never reads (default 10)
 *   CR_FLOOD_CONNS       connections resending a refused request at once (default 1100)
 *   CR_FLOOD_SECONDS     legitimate traffic measured under that flood (default 4)
 * e.g. CR_SLOW_CONNS=10000 CR_SLOW_DRIP_MS=5000 CR_SLOW_HEADER_MS=10000 CR_SLOW_SECONDS=30
 *      CR_FD_CYCLES=100000 build/tests/it_test_slow_clients
 * (with CR_BIN, CR_REDIS_SERVER and CR_FIXTURES set as ctest sets them).
 *
 * Every figure asked for is printed (p99 baseline and under load, close latencies, RSS, CPU,
 * descriptor counts) so a run can be quoted.
 *
 * Legitimate traffic is one request per fresh connection (connect, request, full answer,
 * close): GET /healthz and POST /v1/order/cancel (stored; the saga ends "order not found"), so
 * accept latency, parsing and a Redis round trip are all in the figure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "harness.h"

#define ACME_KEY "demo-acme-key"

/* Under AddressSanitizer freed memory sits in a quarantine (256 MiB by default) before reuse,
 * which would make the resident-size checks measure the sanitizer: the gateways of those checks
 * then run with a small quarantine. */
#if defined(__SANITIZE_ADDRESS__)
#define CR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CR_ASAN 1
#endif
#endif
#ifndef CR_ASAN
#define CR_ASAN 0
#endif

static harness_redis_t g_redis;
static bool g_redis_up;
static harness_gw_t g_gw;
static bool g_gw_up;
static bool g_teardown_failed;

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile (0..100) of v[0..n), nearest rank; sorts v. */
static double percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return v[rank ? rank - 1 : 0];
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* /proc/<pid>/status VmRSS in KiB, -1 on error. */
static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* Open descriptors of pid (entries of /proc/<pid>/fd). */
static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* utime + stime of pid in clock ticks. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return -1;
    unsigned long ut = 0, st = 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* The share of one core pid used over ms milliseconds. */
static double cpu_share(pid_t pid, int ms)
{
    long long t0 = cpu_ticks(pid);
    double w0 = now_us();
    harness_sleep_ms(ms);
    long long t1 = cpu_ticks(pid);
    double w1 = now_us();
    double hz = (double)sysconf(_SC_CLK_TCK);
    return ((double)(t1 - t0) / hz) / ((w1 - w0) / 1e6);
}

/* A TCP connection to the gateway from a loopback source address of its own (127.x.y.z), so
 * hundreds of thousands of connections never run out of ephemeral ports. Blocking; -1 on
 * failure (errno kept). */
static int connect_from(int port, unsigned idx)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (idx != 0) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        unsigned host = 1 + idx % 250, mid = (idx / 250) % 250;
        src.sin_addr.s_addr = htonl((127u << 24) | ((10u + (idx / 62500) % 200) << 16) |
                                    (mid << 8) | host);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void close_rst(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

/* One request on a fresh connection: the status (0: none) and the time to the full answer. */
static int one_request(int port, const char *req, size_t len, double *ms)
{
    double t0 = now_us();
    int fd = connect_from(port, 0);
    if (fd < 0) {
        *ms = (now_us() - t0) / 1e3;
        return 0;
    }
    int st = 0;
    if (harness_raw_send(fd, req, len, 0) == 0) {
        size_t n;
        bool closed;
        char *raw = harness_raw_recv_n(fd, 1, 10000, &n, &closed);
        harness_resp_t r;
        if (harness_raw_parse(raw, n, 0, &r) == 0) {
            st = r.status;
            harness_resp_free(&r);
        }
        free(raw);
    }
    *ms = (now_us() - t0) / 1e3;
    close(fd);
    return st;
}

static const char HEALTHZ[] = "GET /healthz HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n";

/* POST /v1/order/cancel of a random order: stored (200 pending). */
static size_t cancel_request(char *out, size_t size)
{
    static unsigned long long ctr;
    char body[128];
    int bl = snprintf(body, sizeof body,
                      "{\"order\":{\"order_id\":\"%012llx%012llx\"},\"reason_code\":\"x\"}",
                      (unsigned long long)getpid(), ++ctr);
    int n = snprintf(out, size,
                     "POST /v1/order/cancel HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " ACME_KEY
                     "\r\nX-Dest-Tenant-Name: swift-haul\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
                     bl, body);
    return (size_t)n;
}

/* Legitimate traffic for ms: alternate GET /healthz and a stored POST, one every pace_ms.
 * Latencies into hz/post (caller frees), errors counted. */
typedef struct legit {
    double *hz, *post;
    size_t nhz, npost;
    int errors;
} legit_t;

/* GET /healthz and POST alternately for ms, pace_ms apart; on a machine too slow for min_each of
 * each in that time, on until there are (three times ms at most). */
static void legit_run(int port, int ms, int pace_ms, size_t min_each, legit_t *out)
{
    memset(out, 0, sizeof *out);
    size_t cap = (size_t)(ms / (pace_ms > 0 ? pace_ms : 1)) + 16 + min_each;
    out->hz = calloc(cap, sizeof(double));
    out->post = calloc(cap, sizeof(double));
    long long end = harness_now_ms() + ms, last = end + 2LL * ms;
    bool post = false;
    for (;;) {
        long long now = harness_now_ms();
        bool short_of = out->nhz < min_each || out->npost < min_each;
        if (now >= last || (now >= end && !short_of) || out->nhz >= cap || out->npost >= cap)
            break;
        double t;
        char req[512];
        if (post) {
            size_t n = cancel_request(req, sizeof req);
            int st = one_request(port, req, n, &t);
            out->post[out->npost++] = t;
            if (st != 200) {
                if (out->errors < 5)
                    print_error("legitimate POST answered %d after %.1f ms\n", st, t);
                out->errors++;
            }
        } else {
            int st = one_request(port, HEALTHZ, sizeof HEALTHZ - 1, &t);
            out->hz[out->nhz++] = t;
            if (st != 200) {
                if (out->errors < 5)
                    print_error("legitimate GET /healthz answered %d after %.1f ms\n", st, t);
                out->errors++;
            }
        }
        post = !post;
        if (pace_ms > 0)
            harness_sleep_ms(pace_ms);
    }
}

static void legit_free(legit_t *l)
{
    free(l->hz);
    free(l->post);
}

/* A gateway on gateway.json with these limits (an object, may be NULL). */
static void gw_up_small_quarantine(json_t *limits, bool small_quarantine)
{
    json_t *ov = limits ? json_pack("{s:o}", "limits", limits) : NULL;
    char *saved = getenv("ASAN_OPTIONS") ? strdup(getenv("ASAN_OPTIONS")) : NULL;
    if (CR_ASAN && small_quarantine) {
        char opts[1024];
        snprintf(opts, sizeof opts, "%s%squarantine_size_mb=1:thread_local_quarantine_size_kb=64",
                 saved ? saved : "", saved && *saved ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }
    int rc = harness_gw_start(&g_gw, "gateway.json", g_redis.port, ov);
    if (CR_ASAN && small_quarantine) {
        if (saved)
            setenv("ASAN_OPTIONS", saved, 1);
        else
            unsetenv("ASAN_OPTIONS");
    }
    free(saved);
    json_decref(ov);
    assert_int_equal(rc, 0);
    g_gw_up = true;
    assert_true(harness_gw_wait_ready(&g_gw, 200, 10000));
}

static void gw_up(json_t *limits)
{
    gw_up_small_quarantine(limits, false);
}

static void gw_down(void)
{
    if (!g_gw_up)
        return;
    g_gw_up = false;
    assert_int_equal(harness_gw_stop(&g_gw), 0);
}

/* A counter from /metrics (0 if absent). */
static double metric(const char *name)
{
    harness_resp_t r;
    if (harness_http(g_gw.port, "GET", "/metrics", NULL, NULL, 0, &r) != 0)
        return -1;
    double v = 0;
    size_t nl = strlen(name);
    for (const char *l = r.body; l && *l;) {
        if (strncmp(l, name, nl) == 0 && (l[nl] == ' ' || l[nl] == '{')) {
            const char *sp = strchr(l, ' ');
            if (sp)
                v = strtod(sp + 1, NULL);
        }
        const char *e = strchr(l, '\n');
        l = e ? e + 1 : l + strlen(l);
    }
    harness_resp_free(&r);
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * The slowloris crowd (its own thread)
 * ------------------------------------------------------------------------------------------- */

typedef struct slow_conn {
    int fd;
    long long opened_ms;
    long long next_ms;
    size_t sent;
} slow_conn_t;

typedef struct crowd {
    int port, n, drip_ms;
    bool replenish;
    volatile bool stop;
    volatile bool ready; /* all n connected once */
    pthread_t thread;
    slow_conn_t *c;
    int ep;
    unsigned next_src;
    /* results (read after join) */
    double *close_ms;
    size_t nclose, capclose;
    long long opened, connect_failures;
    double max_close_ms;
} crowd_t;

/* A head that never ends: the request line and header bytes, then header value bytes forever. */
static const char SLOW_HEAD[] = "GET /healthz HTTP/1.1\r\nHost: gw.test\r\nX-Slow: ";

static char slow_byte(size_t i)
{
    return i < sizeof SLOW_HEAD - 1 ? SLOW_HEAD[i] : 'a';
}

static void crowd_open(crowd_t *w, int i)
{
    slow_conn_t *s = &w->c[i];
    s->fd = connect_from(w->port, ++w->next_src);
    if (s->fd < 0) {
        w->connect_failures++;
        s->next_ms = harness_now_ms() + 100; /* try again soon */
        return;
    }
    w->opened++;
    s->opened_ms = harness_now_ms();
    s->sent = 0;
    /* The first byte at once: the head timer runs from here. */
    char b = slow_byte(s->sent++);
    send(s->fd, &b, 1, MSG_NOSIGNAL);
    s->next_ms = s->opened_ms + w->drip_ms;
    fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, s->fd, &ev);
}

static void crowd_closed(crowd_t *w, int i)
{
    slow_conn_t *s = &w->c[i];
    double lat = (double)(harness_now_ms() - s->opened_ms);
    if (w->nclose == w->capclose) {
        w->capclose = w->capclose ? w->capclose * 2 : 4096;
        w->close_ms = realloc(w->close_ms, w->capclose * sizeof(double));
    }
    w->close_ms[w->nclose++] = lat;
    if (lat > w->max_close_ms)
        w->max_close_ms = lat;
    epoll_ctl(w->ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    if (w->replenish && !w->stop)
        crowd_open(w, i);
}

static void *crowd_main(void *arg)
{
    crowd_t *w = arg;
    for (int i = 0; i < w->n && !w->stop; i++)
        crowd_open(w, i);
    w->ready = true;
    struct epoll_event evs[256];
    while (!w->stop) {
        int n = epoll_wait(w->ep, evs, 256, 10);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            slow_conn_t *s = &w->c[i];
            if (s->fd < 0)
                continue;
            char buf[4096];
            bool gone = false;
            for (;;) {
                ssize_t r = recv(s->fd, buf, sizeof buf, 0);
                if (r > 0)
                    continue; /* a 408 before the close */
                if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    gone = true;
                break;
            }
            if (gone || (evs[k].events & (EPOLLHUP | EPOLLERR)))
                crowd_closed(w, i);
        }
        long long now = harness_now_ms();
        for (int i = 0; i < w->n; i++) {
            slow_conn_t *s = &w->c[i];
            if (s->fd < 0) {
                if (w->replenish && now >= s->next_ms)
                    crowd_open(w, i);
                continue;
            }
            if (now >= s->next_ms) {
                char b = slow_byte(s->sent++);
                send(s->fd, &b, 1, MSG_NOSIGNAL);
                s->next_ms += w->drip_ms;
            }
        }
    }
    return NULL;
}

static void crowd_start(crowd_t *w, int port, int n, int drip_ms, bool replenish)
{
    memset(w, 0, sizeof *w);
    w->port = port;
    w->n = n;
    w->drip_ms = drip_ms;
    w->replenish = replenish;
    w->c = calloc((size_t)n, sizeof *w->c);
    for (int i = 0; i < n; i++)
        w->c[i].fd = -1;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(w->ep >= 0);
    assert_int_equal(pthread_create(&w->thread, NULL, crowd_main, w), 0);
}

/* Stop (closing what is open) and join; results stay in w. Returns the still-open count. */
static int crowd_stop(crowd_t *w)
{
    w->stop = true;
    pthread_join(w->thread, NULL);
    int open = 0;
    for (int i = 0; i < w->n; i++) {
        if (w->c[i].fd >= 0) {
            open++;
            close_rst(w->c[i].fd);
        }
    }
    close(w->ep);
    free(w->c);
    return open;
}

static int crowd_open_count(crowd_t *w)
{
    int open = 0;
    for (int i = 0; i < w->n; i++)
        open += w->c[i].fd >= 0;
    return open;
}

/* ---------------------------------------------------------------------------------------------
 * Slowloris: legitimate p99 and close latencies
 * ------------------------------------------------------------------------------------------- */

static void test_slowloris(void **state)
{
    (void)state;
    int n = env_int("CR_SLOW_CONNS", 500);
    int drip = env_int("CR_SLOW_DRIP_MS", 2000);
    int header_ms = env_int("CR_SLOW_HEADER_MS", 3000);
    int secs = env_int("CR_SLOW_SECONDS", 6);
    gw_up(json_pack("{s:i, s:i}", "header_timeout_ms", header_ms, "max_connections",
                    n + 1000));
    pid_t pid = g_gw.pid;

    /* Baseline: no crowd. */
    legit_t base;
    legit_run(g_gw.port, 3000, 4, 0, &base);
    double b_hz = percentile(base.hz, base.nhz, 99), b_post = percentile(base.post, base.npost, 99);
    double b_hz50 = percentile(base.hz, base.nhz, 50);
    double b_post50 = percentile(base.post, base.npost, 50);
    print_message("baseline: GET /healthz p50 %.2f ms p99 %.2f ms (%zu), POST p50 %.2f ms p99 "
                  "%.2f ms (%zu), %d errors\n",
                  b_hz50, b_hz, base.nhz, b_post50, b_post, base.npost, base.errors);
    assert_int_equal(base.errors, 0);

    /* The crowd: n connections dripping one byte every drip ms, each replaced when closed. */
    crowd_t w;
    long long t0 = harness_now_ms();
    crowd_start(&w, g_gw.port, n, drip, true);
    while (!w.ready && harness_now_ms() - t0 < 60000)
        harness_sleep_ms(10);
    assert_true(w.ready);
    long long connected_ms = harness_now_ms() - t0;
    int fds_loaded = fd_count(pid);

    legit_t load;
    legit_run(g_gw.port, secs * 1000, 4, 0, &load);
    double l_hz = percentile(load.hz, load.nhz, 99), l_post = percentile(load.post, load.npost, 99);
    double l_hz50 = percentile(load.hz, load.nhz, 50);
    double l_post50 = percentile(load.post, load.npost, 50);
    double l_hzmax = percentile(load.hz, load.nhz, 100);
    double l_postmax = percentile(load.post, load.npost, 100);
    /* Let every connection of the first wave meet its head timeout before stopping. */
    long long first_wave_end = t0 + connected_ms + header_ms + 1500;
    while (harness_now_ms() < first_wave_end)
        harness_sleep_ms(50);
    int still_open = crowd_stop(&w);

    double c50 = percentile(w.close_ms, w.nclose, 50), c99 = percentile(w.close_ms, w.nclose, 99);
    double cmin = w.nclose ? w.close_ms[0] : 0;
    print_message("crowd: %d connections dripping 1 byte / %d ms (all connected in %lld ms; "
                  "gateway fds %d), %lld opened in all, %lld connect failures\n",
                  n, drip, connected_ms, fds_loaded, w.opened, w.connect_failures);
    print_message("under load (%d s): GET /healthz p50 %.2f p99 %.2f max %.2f ms (%zu), POST p50 "
                  "%.2f p99 %.2f max %.2f ms (%zu), %d errors\n",
                  secs, l_hz50, l_hz, l_hzmax, load.nhz, l_post50, l_post, l_postmax, load.npost,
                  load.errors);
    print_message("slow connections closed by the gateway: %zu, after min %.0f / p50 %.0f / p99 "
                  "%.0f / max %.0f ms (header_timeout_ms %d); %d still open at the end\n",
                  w.nclose, cmin, c50, c99, w.max_close_ms, header_ms, still_open);
    double lim_hz = fmax(2 * b_hz, b_hz + 20), lim_post = fmax(2 * b_post, b_post + 20);
    print_message("p99 limits: GET %.2f ms, POST %.2f ms\n", lim_hz, lim_post);
    assert_int_equal(load.errors, 0);
    /* Latency is a figure, not a unit-test gate: on a shared 2-core CI machine a p99 of a few
     * hundred requests is noise. The full run (CR_SLOW_STRICT=1, tests/README) enforces it. */
    const char *strict = getenv("CR_SLOW_STRICT");
    if (strict && strcmp(strict, "1") == 0) {
        assert_true(l_hz <= lim_hz);
        assert_true(l_post <= lim_post);
    } else if (l_hz > lim_hz || l_post > lim_post) {
        print_message("NOTE: p99 above the limit in this (non-strict) run\n");
    }
    assert_true(w.nclose >= (size_t)n); /* the whole first wave was closed */
    assert_true(w.max_close_ms <= header_ms + 1000);
    assert_int_equal(w.connect_failures, 0);
    free(w.close_ms);
    legit_free(&base);
    legit_free(&load);
    gw_down();
}

/* ---------------------------------------------------------------------------------------------
 * Above max_connections: head-incomplete connections make room
 * ------------------------------------------------------------------------------------------- */

static void test_eviction_at_max_connections(void **state)
{
    (void)state;
    const int max = 200, slow = 260, legit = 60;
    gw_up(json_pack("{s:i, s:i, s:i}", "max_connections", max, "header_timeout_ms", 30000,
                    "idle_timeout_ms", 30000));
    crowd_t w;
    crowd_start(&w, g_gw.port, slow, 60000, false);
    while (!w.ready)
        harness_sleep_ms(10);
    harness_sleep_ms(300);
    int open_before = crowd_open_count(&w);
    int ok = 0;
    double worst = 0;
    for (int i = 0; i < legit; i++) {
        double t;
        int st = one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t);
        ok += st == 200;
        worst = fmax(worst, t);
        if (st != 200 && i < 5)
            print_error("legitimate request %d above max_connections: %d\n", i, st);
    }
    /* A stored mutation too. */
    char req[512];
    size_t n = cancel_request(req, sizeof req);
    double t;
    int st_post = one_request(g_gw.port, req, n, &t);
    harness_sleep_ms(200);
    int open_after = crowd_open_count(&w);
    double evicted = metric("crossroads_http_connections_evicted_total");
    print_message("max_connections %d: %d head-incomplete connections opened, %d still open "
                  "once all were in, %d after %d legitimate requests; legitimate: %d/%d OK "
                  "(worst %.1f ms), POST %d; evicted (metric): %.0f\n",
                  max, slow, open_before, open_after, legit, ok, legit, worst, st_post, evicted);
    crowd_stop(&w);
    free(w.close_ms);
    assert_int_equal(ok, legit);
    assert_int_equal(st_post, 200);
    assert_true(open_before <= max);
    /* The crowd beyond max was evicted as it came, then one more for the first legitimate
     * connection (each legitimate one closes before the next comes). */
    assert_true(evicted >= slow - max + 1);
    assert_true(open_after < open_before);
    gw_down();
}

/* ---------------------------------------------------------------------------------------------
 * Slow bodies
 * ------------------------------------------------------------------------------------------- */

#define BODY_TIMEOUT_MS 1500 /* gateway.json */
#define IDLE_TIMEOUT_MS 3000 /* gateway.json */

static void test_slow_body(void **state)
{
    (void)state;
    gw_up(NULL);
    long long sagas0 = harness_saga_count(&g_redis);
    const int n = 50;
    int fds[50];
    long long head_done[50], closed_at[50];
    bool got408[50];
    static const char head[] = "POST /v1/order/cancel HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " ACME_KEY
                               "\r\nX-Dest-Tenant-Name: swift-haul\r\nContent-Type: "
                               "application/json\r\nContent-Length: 200\r\n\r\n{";
    for (int i = 0; i < n; i++) {
        fds[i] = connect_from(g_gw.port, 5000u + (unsigned)i);
        assert_true(fds[i] >= 0);
        assert_int_equal(harness_raw_send(fds[i], head, sizeof head - 1, 0), 0);
        head_done[i] = harness_now_ms();
        closed_at[i] = 0;
        got408[i] = false;
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    }
    /* One body byte every 100 ms on each (well under the 200 bytes needed). */
    long long end = harness_now_ms() + BODY_TIMEOUT_MS + 3000;
    int open = n;
    while (open > 0 && harness_now_ms() < end) {
        for (int i = 0; i < n; i++) {
            if (closed_at[i])
                continue;
            char buf[1024];
            ssize_t r = recv(fds[i], buf, sizeof buf - 1, 0);
            if (r > 0) {
                buf[r] = '\0';
                got408[i] |= strncmp(buf, "HTTP/1.1 408", 12) == 0;
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                closed_at[i] = harness_now_ms();
                open--;
                continue;
            }
            send(fds[i], " ", 1, MSG_NOSIGNAL);
        }
        harness_sleep_ms(100);
    }
    double lat[50];
    int n408 = 0, late = 0;
    for (int i = 0; i < n; i++) {
        lat[i] = closed_at[i] ? (double)(closed_at[i] - head_done[i]) : 1e9;
        n408 += got408[i];
        late += lat[i] > BODY_TIMEOUT_MS + 1000 || lat[i] < BODY_TIMEOUT_MS - 100;
        close(fds[i]);
    }
    double lmin = percentile(lat, (size_t)n, 0), lmax = percentile(lat, (size_t)n, 100);
    print_message("slow POST bodies (1 byte / 100 ms): %d connections, closed %.0f..%.0f ms after "
                  "their head (body_timeout_ms %d), %d answered 408, %d outside [%d, %d] ms\n",
                  n, lmin, lmax, BODY_TIMEOUT_MS, n408, late, BODY_TIMEOUT_MS - 100,
                  BODY_TIMEOUT_MS + 1000);
    assert_int_equal(open, 0);
    assert_int_equal(late, 0);
    /* Every one is answered 408 before its connection ends (the answer goes out ahead of a
     * lingering close). */
    assert_int_equal(n408, n);
    assert_int_equal(harness_saga_count(&g_redis), sagas0);
    gw_down();
}

/* ---------------------------------------------------------------------------------------------
 * A flood of refused requests: everyone else still gets through
 * ------------------------------------------------------------------------------------------- */

/* Refused before Redis (422: the order's number is not a string), kept alive. */
static const char BAD_CANCEL[] =
    "POST /v1/order/cancel HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " ACME_KEY
    "\r\nX-Dest-Tenant-Name: swift-haul\r\nContent-Type: application/json\r\n"
    "Content-Length: 19\r\n\r\n{\"order_number\": 5}";

/* n keep-alive connections, each sending BAD_CANCEL again as soon as its answer is in (its own
 * thread): the gateway's core is saturated by requests it refuses at once. */
typedef struct flood {
    int port, n;
    volatile bool stop;
    volatile bool ready;
    pthread_t thread;
    int *fd;
    int ep;
    atomic_llong answers; /* complete answers read (the main thread samples it) */
    long long lost; /* connections closed under the flood */
} flood_t;

static void flood_send(int fd)
{
    send(fd, BAD_CANCEL, sizeof BAD_CANCEL - 1, MSG_NOSIGNAL);
}

static void *flood_main(void *arg)
{
    flood_t *f = arg;
    for (int i = 0; i < f->n && !f->stop; i++) {
        int fd = connect_from(f->port, 20000u + (unsigned)i);
        f->fd[i] = fd;
        if (fd < 0) {
            f->lost++;
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev);
        flood_send(fd);
    }
    f->ready = true;
    struct epoll_event evs[512];
    while (!f->stop) {
        int n = epoll_wait(f->ep, evs, 512, 10);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            int fd = f->fd[i];
            if (fd < 0)
                continue;
            char buf[8192];
            char last = 0;
            bool gone = false;
            for (;;) {
                ssize_t r = recv(fd, buf, sizeof buf, 0);
                if (r > 0) {
                    last = buf[r - 1];
                    continue;
                }
                if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    gone = true;
                break;
            }
            if (gone || (evs[k].events & (EPOLLHUP | EPOLLERR))) {
                epoll_ctl(f->ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                f->fd[i] = -1;
                f->lost++;
                continue;
            }
            if (last == '}') { /* the JSON body's end: the answer is complete */
                atomic_fetch_add(&f->answers, 1);
                flood_send(fd);
            }
        }
    }
    return NULL;
}

static void flood_start(flood_t *f, int port, int n)
{
    memset(f, 0, sizeof *f);
    atomic_init(&f->answers, 0);
    f->port = port;
    f->n = n;
    f->fd = calloc((size_t)n, sizeof *f->fd);
    f->ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(f->ep >= 0);
    assert_int_equal(pthread_create(&f->thread, NULL, flood_main, f), 0);
}

static void flood_stop(flood_t *f)
{
    f->stop = true;
    pthread_join(f->thread, NULL);
    for (int i = 0; i < f->n; i++)
        if (f->fd[i] >= 0)
            close_rst(f->fd[i]);
    close(f->ep);
    free(f->fd);
}

/*
 * Over a thousand connections that resend a refused request as soon as it is answered keep every
 * epoll_wait full, and libuv's poll phase then runs up to 48 of them (0.8 s on the bench
 * machine) before its timers and check handles: before httpd.c paused connections after a 10 ms
 * slice, legitimate requests meanwhile waited 1-6 s (their intake batch goes out from a check
 * handle, a fresh connection's first read is registered between phases) and Redis commands
 * passed their deadline (2-45 timeouts in 12 s runs, each resetting a connection). Here every
 * legitimate request must be answered, no Redis command may time out, and the medians must stay
 * well under one such phase (below).
 */
static void test_refusal_flood(void **state)
{
    (void)state;
    int n = env_int("CR_FLOOD_CONNS", 1100);
    int secs = env_int("CR_FLOOD_SECONDS", 4);
    gw_up(json_pack("{s:i}", "max_connections", n + 1000));

    harness_resp_t r;
    const char *hdrs[] = {"X-API-Key: " ACME_KEY, "X-Dest-Tenant-Name: swift-haul",
                          "Content-Type: application/json", NULL};
    assert_int_equal(
        harness_http(g_gw.port, "POST", "/v1/order/cancel", hdrs, "{\"order_number\": 5}", 19, &r),
        0);
    assert_int_equal(r.status, 422); /* the flood's request is refused without Redis */
    harness_resp_free(&r);

    double timeouts0 = metric("crossroads_redis_timeouts_total");
    double reconnects0 = metric("crossroads_redis_reconnects_total");
    flood_t f;
    flood_start(&f, g_gw.port, n);
    long long t0 = harness_now_ms();
    while (!f.ready && harness_now_ms() - t0 < 60000)
        harness_sleep_ms(10);
    assert_true(f.ready);
    harness_sleep_ms(500);
    long long a0 = atomic_load(&f.answers);
    double w0 = now_us();
    legit_t load;
    legit_run(g_gw.port, secs * 1000, 10, 5, &load);
    double legit_s = (now_us() - w0) / 1e6;
    double flood_rps = (double)(atomic_load(&f.answers) - a0) / legit_s;
    double paused = metric("crossroads_http_reads_paused_total");
    double timeouts = metric("crossroads_redis_timeouts_total") - timeouts0;
    double reconnects = metric("crossroads_redis_reconnects_total") - reconnects0;
    flood_stop(&f);

    double hz50 = percentile(load.hz, load.nhz, 50), hz99 = percentile(load.hz, load.nhz, 99);
    double p50 = percentile(load.post, load.npost, 50), p99 = percentile(load.post, load.npost, 99);
    double hzmax = percentile(load.hz, load.nhz, 100);
    double pmax = percentile(load.post, load.npost, 100);
    print_message("flood: %d connections, %.0f refused answers/s, %lld connections lost; "
                  "reads paused %.0f times; Redis timeouts %.0f, reconnects %.0f\n",
                  n, flood_rps, f.lost, paused, timeouts, reconnects);
    print_message("legitimate under the flood (%.1f s): GET /healthz p50 %.2f p99 %.2f max %.2f ms "
                  "(%zu), POST p50 %.2f p99 %.2f max %.2f ms (%zu), %d errors\n",
                  legit_s, hz50, hz99, hzmax, load.nhz, p50, p99, pmax, load.npost, load.errors);
    /* Without the slice a poll phase runs 48 full batches of 1,024 events, which at the
     * flood's rate takes phase_ms, and a legitimate request waits at least one such phase; with
     * it, a couple of batches. The medians are held to a third of a phase (machine-independent;
     * a p99 of a few dozen requests on a shared CI machine is noise, so it is only printed). */
    assert_true(flood_rps > 0);
    double phase_ms = 48.0 * 1024.0 / flood_rps * 1000.0;
    print_message("a 48-batch poll phase at this rate: %.0f ms; median limit %.0f ms\n", phase_ms,
                  phase_ms / 3);
    assert_int_equal(load.errors, 0);
    assert_true(load.npost >= 5 && load.nhz >= 5);
    assert_true(paused > 0); /* the core was saturated and the slice ended phases */
    assert_true(timeouts == 0);
    assert_true(hz50 < phase_ms / 3);
    assert_true(p50 < phase_ms / 3);
    legit_free(&load);
    gw_down();
}

/* ---------------------------------------------------------------------------------------------
 * A client that pipelines and never reads
 * ------------------------------------------------------------------------------------------- */

static void pipeline_case(const char *what, const char *one, size_t mb)
{
    pid_t pid = g_gw.pid;
    /* Warm up (the other client's baseline), then the resident size. */
    double warm[200];
    for (int i = 0; i < 200; i++)
        one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &warm[i]);
    double base_p99 = percentile(warm, 200, 99);
    harness_sleep_ms(200);
    long rss0 = rss_kb(pid);
    size_t total = mb * 1024 * 1024, unit = strlen(one);
    int fd = connect_from(g_gw.port, 9000);
    assert_true(fd >= 0);
    int small = 4096; /* keep our own buffers modest: the pressure is on the gateway */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    char *chunk = malloc(unit * 256);
    for (int i = 0; i < 256; i++)
        memcpy(chunk + (size_t)i * unit, one, unit);
    size_t sent = 0;
    long long t0 = harness_now_ms(), last_progress = t0;
    long long ticks0 = cpu_ticks(pid);
    double worst = 0;
    legit_t during = {0};
    during.hz = calloc(4096, sizeof(double));
    long rss_peak = rss0;
    while (sent < total && harness_now_ms() - last_progress < 2000 &&
           harness_now_ms() - t0 < 20000) {
        size_t off = sent % (unit * 256);
        size_t want = total - sent < unit * 256 - off ? total - sent : unit * 256 - off;
        ssize_t w = send(fd, chunk + off, want, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            last_progress = harness_now_ms();
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            break;
        /* Blocked: meanwhile another client must be served as usual. */
        double t;
        int st = one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t);
        if (during.nhz < 4096)
            during.hz[during.nhz++] = t;
        during.errors += st != 200;
        worst = fmax(worst, t);
        long r = rss_kb(pid);
        if (r > rss_peak)
            rss_peak = r;
        harness_sleep_ms(20);
    }
    double send_s = (double)(harness_now_ms() - t0) / 1e3;
    double send_cpu = (double)(cpu_ticks(pid) - ticks0) / (double)sysconf(_SC_CLK_TCK) / send_s;
    /* A little longer with everything stuck. */
    for (int i = 0; i < 25; i++) {
        double t;
        int st = one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t);
        if (during.nhz < 4096)
            during.hz[during.nhz++] = t;
        during.errors += st != 200;
        long r = rss_kb(pid);
        if (r > rss_peak)
            rss_peak = r;
        harness_sleep_ms(40);
    }
    long rss1 = rss_kb(pid);
    /* Once every buffer is full the gateway must go quiet, not spin. A loaded machine may still
     * be working through the answers that did fit when the sender gave up, so take the quietest
     * second within a few: a spinning gateway has none. */
    double cpu = 1e9;
    int windows = 0;
    while (windows < 8 && cpu >= 0.2) {
        cpu = fmin(cpu, cpu_share(pid, 1000));
        windows++;
    }
    double p99 = percentile(during.hz, during.nhz, 99);
    /* A connection that never reads its answers holds its slot and its queued bytes: does the
     * gateway ever let go of it? (Open connections from /metrics: 1 is the metrics request.) */
    long long stuck_at = harness_now_ms(), dropped_ms = -1;
    while (harness_now_ms() - stuck_at < IDLE_TIMEOUT_MS + 2000) {
        if (metric("crossroads_http_open_connections") <= 1) {
            dropped_ms = harness_now_ms() - stuck_at;
            break;
        }
        harness_sleep_ms(100);
    }
    close_rst(fd);
    harness_sleep_ms(300);
    long rss2 = rss_kb(pid);
    double t;
    int st_after = one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t);
    print_message("pipelining %s, never reading: %.1f of %zu MiB accepted by the kernel in "
                  "%.1f s (gateway CPU meanwhile %.0f%% of a core); gateway "
                  "RSS %ld KiB before, %ld KiB stuck (peak %ld, +%ld KiB), %ld KiB after the close; "
                  "CPU while stuck %.0f%% of a core (quietest of %d s); other client (p99 before %.2f ms): %zu "
                  "requests, p99 %.2f ms, "
                  "worst %.2f ms, %d errors; the stuck connection %s\n",
                  what, (double)sent / 1048576.0, mb, send_s, send_cpu * 100, rss0, rss1, rss_peak, rss_peak - rss0, rss2,
                  cpu * 100, windows, base_p99, during.nhz, p99, fmax(worst, percentile(during.hz, during.nhz, 100)),
                  during.errors, dropped_ms < 0 ? "was still open when the test let go" : "was closed");
    if (dropped_ms >= 0)
        print_message("  (closed by the gateway %lld ms after it got stuck)\n", dropped_ms);
    free(chunk);
    free(during.hz);
    assert_true(rss_peak - rss0 < 10 * 1024);
    assert_int_equal(during.errors, 0);
    /* A latency figure: gated only in the strict full run (see test_slowloris). */
    const char *strict = getenv("CR_SLOW_STRICT");
    if (strict && strcmp(strict, "1") == 0)
        assert_true(p99 <= base_p99 + 100);
    assert_int_equal(st_after, 200);
    assert_true(cpu < 0.5);
}

static void test_pipeline_never_read(void **state)
{
    (void)state;
    size_t mb = (size_t)env_int("CR_PIPELINE_MB", 10);
    gw_up_small_quarantine(NULL, true);
    pipeline_case("GET /healthz (small answers)", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", mb);
    pipeline_case("GET /openapi.json (large answers)",
                  "GET /openapi.json HTTP/1.1\r\nHost: a\r\n\r\n", mb);
    gw_down();
}

/*
 * Above max_connections with no connection to evict (each is mid-body), a new client gets the
 * 503 and then a lingering close: its request, already sent, and what it sends after the 503
 * are read and dropped, not answered with a reset that could destroy the 503 in its buffer.
 */
static void test_busy_answer_without_reset(void **state)
{
    (void)state;
    enum { MAX = 4 };
    gw_up(json_pack("{s:i}", "max_connections", MAX));
    static const char head[] =
        "POST /v1/order/cancel HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " ACME_KEY
        "\r\nX-Dest-Tenant-Name: swift-haul\r\nContent-Type: "
        "application/json\r\nContent-Length: 200\r\n\r\n{";
    int held[MAX];
    for (int i = 0; i < MAX; i++) {
        held[i] = harness_raw_connect(g_gw.port);
        assert_true(held[i] >= 0);
        assert_int_equal(harness_raw_send(held[i], head, sizeof head - 1, 0), 0);
    }
    harness_sleep_ms(200); /* every head read: all MAX connections wait for their bodies */

    int fd = harness_raw_connect(g_gw.port);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_send(fd, HEALTHZ, sizeof HEALTHZ - 1, 0), 0);
    size_t len = 0;
    bool closed = false;
    char *raw = harness_raw_recv_all(fd, 1000, &len, &closed);
    assert_non_null(raw);
    if (len < 12 || strncmp(raw, "HTTP/1.1 503", 12) != 0)
        fail_msg("above max_connections: %.*s, want a 503", (int)(len < 80 ? len : 80), raw);
    free(raw);
    assert_true(closed);
    /* bytes sent after the close (a request that crossed it) must not draw a reset */
    if (send(fd, HEALTHZ, sizeof HEALTHZ - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof HEALTHZ - 1))
        fail_msg("sending after the 503's close failed: %s (reset)", strerror(errno));
    harness_sleep_ms(50);
    int err = 0;
    socklen_t elen = sizeof err;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen), 0);
    if (err != 0)
        fail_msg("the 503's connection answered later bytes with a reset (%s)", strerror(err));
    close(fd);
    for (int i = 0; i < MAX; i++)
        close(held[i]);
    gw_down();
}

/* Connections that pipeline requests with large answers and never read them: their answers
 * can never be written. Above max_connections, a legitimate client must still get in (the issue:
 * "above max_connections, new legitimate connections still succeed"), within the idle timeout
 * plus a margin at worst. */
static void test_slow_readers_hold_slots(void **state)
{
    (void)state;
    const int max = 50, readers = 60;
    gw_up_small_quarantine(json_pack("{s:i}", "max_connections", max), true);
    pid_t pid = g_gw.pid;
    long rss0 = rss_kb(pid);
    static const char one[] = "GET /openapi.json HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t unit = sizeof one - 1, count = 400;
    char *burst = malloc(unit * count);
    for (size_t i = 0; i < count; i++)
        memcpy(burst + i * unit, one, unit);
    int fds[60];
    size_t stuck_bytes = 0;
    for (int i = 0; i < readers; i++) {
        fds[i] = connect_from(g_gw.port, 40000u + (unsigned)i);
        assert_true(fds[i] >= 0);
        int small = 4096;
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        ssize_t w = send(fds[i], burst, unit * count, MSG_NOSIGNAL);
        stuck_bytes += w > 0 ? (size_t)w : 0;
    }
    free(burst);
    harness_sleep_ms(500);
    long rss1 = rss_kb(pid);
    double open_gauge = metric("crossroads_http_open_connections");
    /* A legitimate client keeps trying for idle_timeout_ms + header_timeout_ms + 2 s. */
    long long t0 = harness_now_ms();
    int tries = 0, st = 0, statuses[600] = {0};
    while (harness_now_ms() - t0 < IDLE_TIMEOUT_MS + 1000 + 2000) {
        double t;
        st = one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t);
        if (st >= 0 && st < 600)
            statuses[st]++;
        tries++;
        if (st == 200)
            break;
        harness_sleep_ms(100);
    }
    long long waited = harness_now_ms() - t0;
    for (int i = 0; i < readers; i++)
        close_rst(fds[i]);
    harness_sleep_ms(300);
    double t;
    int st_after = one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t);
    print_message("%d connections pipelining GET /openapi.json and never reading (max_connections "
                  "%d, %.1f MiB sent): open connections %.0f, gateway RSS %ld -> %ld KiB; a "
                  "legitimate client: %s after %d tries / %lld ms (503: %d, none: %d); once the "
                  "readers left: %d\n",
                  readers, max, (double)stuck_bytes / 1048576.0, open_gauge, rss0, rss1,
                  st == 200 ? "served" : "NOT served", tries, waited, statuses[503], statuses[0],
                  st_after);
    assert_int_equal(st_after, 200);
    if (st != 200)
        fail_msg("connections that never read their answers hold every slot: a legitimate client "
                 "got no 200 in %lld ms above max_connections (%d x 503, %d x no answer); they are "
                 "neither timed out nor evicted",
                 waited, statuses[503], statuses[0]);
}

/* ---------------------------------------------------------------------------------------------
 * At the descriptor limit
 * ------------------------------------------------------------------------------------------- */

static void test_fd_limit_no_spin(void **state)
{
    (void)state;
    gw_up(json_pack("{s:i, s:i}", "header_timeout_ms", 60000, "idle_timeout_ms", 60000));
    pid_t pid = g_gw.pid;
    int base = fd_count(pid);
    int limit = base + 100;
    struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
    assert_int_equal(prlimit(pid, RLIMIT_NOFILE, &rl, NULL), 0);
    double idle = cpu_share(pid, 500);

    /* Connections with half a head, until the gateway has no descriptor left, and more. */
    int want = limit + 150;
    int *fds = calloc((size_t)want, sizeof(int));
    int opened = 0;
    for (int i = 0; i < want; i++) {
        fds[i] = connect_from(g_gw.port, 20000u + (unsigned)i);
        if (fds[i] < 0)
            continue;
        opened++;
        send(fds[i], "GET /hea", 8, MSG_NOSIGNAL);
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    }
    harness_sleep_ms(500);
    int at_limit = fd_count(pid);
    int refused = 0;
    for (int i = 0; i < want; i++) {
        if (fds[i] < 0)
            continue;
        char b[256];
        ssize_t r = recv(fds[i], b, sizeof b, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            refused++;
            close(fds[i]);
            fds[i] = -1;
        }
    }
    /* While full: knocking keeps coming. */
    int knocks[50], nk = 0;
    for (int i = 0; i < 50; i++) {
        knocks[nk] = connect_from(g_gw.port, 30000u + (unsigned)i);
        if (knocks[nk] >= 0)
            nk++;
    }
    double busy = cpu_share(pid, 2000);
    double t;
    int st_full = one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t);
    for (int i = 0; i < nk; i++)
        close(knocks[i]);
    for (int i = 0; i < want; i++)
        if (fds[i] >= 0)
            close_rst(fds[i]);
    free(fds);
    /* Back to serving. */
    long long t0 = harness_now_ms();
    int st = 0;
    while (harness_now_ms() - t0 < 5000 && (st = one_request(g_gw.port, HEALTHZ,
                                                             sizeof HEALTHZ - 1, &t)) != 200)
        harness_sleep_ms(50);
    long long recovered_ms = harness_now_ms() - t0;
    int ok = 0;
    for (int i = 0; i < 20; i++)
        ok += one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t) == 200;
    char req[512];
    size_t n = cancel_request(req, sizeof req);
    int st_post = one_request(g_gw.port, req, n, &t);
    harness_sleep_ms(300);
    int after = fd_count(pid);
    double calm = cpu_share(pid, 1000);
    print_message("descriptor limit %d (gateway had %d open): %d connections made, %d closed by the "
                  "gateway at once, %d fds at the limit; CPU idle %.1f%%, at the limit %.1f%% (2 s), "
                  "after %.1f%%; a request while full: %d; serving again after %lld ms (%d/20 OK, "
                  "POST %d); fds after %d\n",
                  limit, base, opened, refused, at_limit, idle * 100, busy * 100, calm * 100,
                  st_full, recovered_ms, ok, st_post, after);
    assert_true(at_limit >= limit - 2);
    assert_true(busy < 0.5);
    assert_int_equal(st, 200);
    assert_int_equal(ok, 20);
    assert_int_equal(st_post, 200);
    gw_down();
}

/* ---------------------------------------------------------------------------------------------
 * Descriptors back to baseline after connect/close cycles
 * ------------------------------------------------------------------------------------------- */

static void test_fd_cycles(void **state)
{
    (void)state;
    int cycles = env_int("CR_FD_CYCLES", 10000);
    gw_up(NULL);
    pid_t pid = g_gw.pid;
    double t;
    for (int i = 0; i < 50; i++)
        one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t);
    harness_sleep_ms(300);
    int base = fd_count(pid);
    long long t0 = harness_now_ms();
    int failures = 0;
    static const char partial[] = "GET /healthz HTTP/1.1\r\nHo";
    static const char keep[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
    for (int i = 0; i < cycles; i++) {
        int fd = connect_from(g_gw.port, 100000u + (unsigned)i);
        if (fd < 0) {
            failures++;
            continue;
        }
        switch (i % 5) {
        case 0: /* connect, reset */
            close_rst(fd);
            break;
        case 1: /* connect, close */
            close(fd);
            break;
        case 2: /* half a head, reset */
            send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL);
            close_rst(fd);
            break;
        case 3: { /* a keep-alive request, its answer, close */
            send(fd, keep, sizeof keep - 1, MSG_NOSIGNAL);
            size_t n;
            bool closed;
            char *raw = harness_raw_recv_n(fd, 1, 5000, &n, &closed);
            failures += strncmp(raw, "HTTP/1.1 200", 12) != 0;
            free(raw);
            close(fd);
            break;
        }
        default: /* a request, then gone before the answer */
            send(fd, keep, sizeof keep - 1, MSG_NOSIGNAL);
            close_rst(fd);
            break;
        }
    }
    long long took = harness_now_ms() - t0;
    /* The gateway notices the last closes within a loop turn or two. */
    int after = fd_count(pid);
    for (int i = 0; i < 100 && abs(after - base) > 2; i++) {
        harness_sleep_ms(50);
        after = fd_count(pid);
    }
    int ok = one_request(g_gw.port, HEALTHZ, sizeof HEALTHZ - 1, &t) == 200;
    print_message("%d connect/close cycles in %lld ms (%d failed): gateway fds %d before, %d "
                  "after\n",
                  cycles, took, failures, base, after);
    assert_int_equal(failures, 0);
    assert_true(abs(after - base) <= 2);
    assert_true(ok);
    gw_down();
}

/* ---------------------------------------------------------------------------------------------
 * Exact limits not pinned by test_http.c
 * ------------------------------------------------------------------------------------------- */

#define MAX_HEADER_BYTES 16384
#define MAX_LINE         8192
#define MAX_BODY         65536

/* Send whole, read one answer; the status (0: none) and whether the connection closed. */
static int exchange(const char *req, size_t len, long long *ms, bool *closed)
{
    int fd = connect_from(g_gw.port, 0);
    assert_true(fd >= 0);
    long long t0 = harness_now_ms();
    harness_raw_send(fd, req, len, 0);
    size_t n;
    char *raw = harness_raw_recv_n(fd, 1, 5000, &n, closed);
    *ms = harness_now_ms() - t0;
    harness_resp_t r;
    int st = 0;
    if (harness_raw_parse(raw, n, 0, &r) == 0) {
        st = r.status;
        harness_resp_free(&r);
    }
    if (!*closed) {
        /* A close after an error answer comes right behind it. */
        size_t m;
        bool c2;
        free(harness_raw_recv_all(fd, 300, &m, &c2));
        *closed = c2;
    }
    free(raw);
    close(fd);
    return st;
}

/* GET /healthz with one filler field: content bytes (request line and fields, no CR/LF) of
 * exactly `content`, or, when raw, a head of exactly `content` bytes as sent. */
static char *head_of(size_t content, bool raw, size_t *len)
{
    static const char line[] = "GET /healthz HTTP/1.1";
    static const char host[] = "Host: gw.test";
    size_t fixed = (sizeof line - 1) + (sizeof host - 1) + 8; /* "X-Fill: " */
    size_t crlf = raw ? 2 * 3 + 2 : 0;                         /* three lines and the blank */
    size_t fill = content - fixed - crlf;
    char *s = malloc(content + 64);
    int n = sprintf(s, "%s\r\n%s\r\nX-Fill: ", line, host);
    memset(s + n, 'a', fill);
    n += (int)fill;
    memcpy(s + n, "\r\n\r\n", 4);
    *len = (size_t)n + 4;
    return s;
}

static char *line_of(size_t line_len, size_t *len)
{
    /* "GET /aaa... HTTP/1.1" of exactly line_len bytes. */
    char *s = malloc(line_len + 64);
    size_t path = line_len - 4 - 9; /* "GET " and " HTTP/1.1" */
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', path - 1);
    int n = (int)(4 + path);
    n += sprintf(s + n, " HTTP/1.1\r\nHost: gw.test\r\n\r\n");
    *len = (size_t)n;
    return s;
}

static char *chunked_of(size_t body, size_t *len)
{
    static const char head[] = "POST /v1/order/cancel HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " ACME_KEY
                               "\r\nX-Dest-Tenant-Name: swift-haul\r\nContent-Type: "
                               "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    char *s = malloc(body + body / 1000 * 16 + 512);
    size_t n = sizeof head - 1;
    memcpy(s, head, n);
    size_t left = body;
    while (left > 0) {
        size_t c = left > 8192 ? 8192 : left;
        n += (size_t)sprintf(s + n, "%zx\r\n", c);
        memset(s + n, ' ', c);
        n += c;
        memcpy(s + n, "\r\n", 2);
        n += 2;
        left -= c;
    }
    memcpy(s + n, "0\r\n\r\n", 5);
    *len = n + 5;
    return s;
}

static void test_exact_limits(void **state)
{
    (void)state;
    gw_up(NULL);
    int failed = 0;
    struct {
        const char *name;
        char *req;
        size_t len;
        int status;
        bool closes;
        long long within_ms;
    } cases[10];
    size_t nc = 0;
#define CASE(nm, r, l, st, cl, w)                                                                  \
    do {                                                                                           \
        cases[nc].name = nm;                                                                       \
        cases[nc].req = r;                                                                         \
        cases[nc].len = l;                                                                         \
        cases[nc].status = st;                                                                     \
        cases[nc].closes = cl;                                                                     \
        cases[nc].within_ms = w;                                                                   \
        nc++;                                                                                      \
    } while (0)
    size_t l;
    char *r;
    r = head_of(MAX_HEADER_BYTES, true, &l);
    CASE("head of exactly max_header_bytes as sent (CRLFs included)", r, l, 200, false, 0);
    r = head_of(MAX_HEADER_BYTES + 1, false, &l);
    CASE("head content (CRLFs excluded) of max_header_bytes + 1", r, l, 431, true, 0);
    r = line_of(MAX_LINE, &l);
    CASE("request line of exactly max_request_line_bytes", r, l, 404, false, 0);
    r = line_of(MAX_LINE + 1, &l);
    CASE("request line of max_request_line_bytes + 1", r, l, 414, true, 0);
    r = chunked_of(MAX_BODY, &l);
    CASE("chunked body of exactly max_body_bytes", r, l, 422, false, 0);
    r = chunked_of(MAX_BODY + 1, &l);
    CASE("chunked body of max_body_bytes + 1", r, l, 413, true, 0);
    r = strdup("POST /v1/order/cancel HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " ACME_KEY
               "\r\nX-Dest-Tenant-Name: swift-haul\r\nContent-Type: application/json\r\n"
               "Content-Length: 1000000000000\r\n\r\n");
    CASE("Content-Length 10^12, body not sent", r, strlen(r), 413, true, 1000);
    r = strdup("POST /v1/order/cancel HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 65537\r\n\r\n");
    CASE("Content-Length max+1 without credentials, body not sent", r, strlen(r), 413, true, 1000);
    for (size_t i = 0; i < nc; i++) {
        long long ms;
        bool closed;
        int st = exchange(cases[i].req, cases[i].len, &ms, &closed);
        bool ok = st == cases[i].status && closed == cases[i].closes &&
                  (cases[i].within_ms == 0 || ms <= cases[i].within_ms);
        if (!ok) {
            print_error("%s (%zu bytes): %d%s after %lld ms, want %d%s\n", cases[i].name,
                        cases[i].len, st, closed ? " and closed" : "", ms, cases[i].status,
                        cases[i].closes ? " and closed" : "");
            failed++;
        }
        free(cases[i].req);
    }
    /* Where exactly the head limit falls (informational: which bytes count). */
    int largest = 0;
    for (size_t c = MAX_HEADER_BYTES - 16; c <= MAX_HEADER_BYTES + 16; c++) {
        r = head_of(c, true, &l);
        long long ms;
        bool closed;
        if (exchange(r, l, &ms, &closed) == 200)
            largest = (int)c;
        free(r);
    }
    print_message("exact limits: %zu cases, %d failed; the largest head accepted is %d bytes as "
                  "sent (%d without its CR/LF)\n",
                  nc, failed, largest, largest - 8);
    assert_int_equal(failed, 0);
    gw_down();
}

/*
 * The head and request-line limits set in both orders. The head scan counts runs of plain bytes
 * at once (httpd.c scan_head) and must refuse exactly as a byte-by-byte count would: the limit
 * crossed first decides the status, even when a later byte would cross the other one too.
 */
typedef struct {
    const char *name;
    bool line; /* line_of(n) if true, head_of(n, false) if false */
    size_t n;
    int status;
    bool closes;
} crossed_case_t;

static int crossed_run(json_t *limits, const crossed_case_t *cases, size_t nc)
{
    gw_up(limits);
    int failed = 0;
    for (size_t i = 0; i < nc; i++) {
        size_t l;
        char *r = cases[i].line ? line_of(cases[i].n, &l) : head_of(cases[i].n, false, &l);
        long long ms;
        bool closed;
        int st = exchange(r, l, &ms, &closed);
        if (st != cases[i].status || closed != cases[i].closes) {
            print_error("%s: %d%s, want %d%s\n", cases[i].name, st, closed ? " and closed" : "",
                        cases[i].status, cases[i].closes ? " and closed" : "");
            failed++;
        }
        free(r);
    }
    gw_down();
    return failed;
}

static void test_crossed_limits(void **state)
{
    (void)state;
    /* The head limit below the line limit: "Host: gw.test" adds 13 bytes to the line's. */
    static const crossed_case_t head_first[] = {
        {"line of 287 (head of exactly 300)", true, 287, 404, false},
        {"line of 288 (head of 301)", true, 288, 431, true},
        {"line of 600 (over the head limit, within the line limit)", true, 600, 431, true},
        {"line of 1001 (the head limit is crossed first)", true, 1001, 431, true},
    };
    /* The line limit below the head limit. */
    static const crossed_case_t line_first[] = {
        {"line of exactly 100", true, 100, 404, false},
        {"line of 101", true, 101, 414, true},
        {"line of 2000 (the line limit is crossed first)", true, 2000, 414, true},
        {"head of exactly 1000 with a short line", false, 1000, 200, false},
        {"head of 1001 with a short line", false, 1001, 431, true},
    };
    int failed = crossed_run(json_pack("{s:i, s:i}", "max_header_bytes", 300,
                                       "max_request_line_bytes", 1000),
                             head_first, sizeof head_first / sizeof head_first[0]);
    failed += crossed_run(json_pack("{s:i, s:i}", "max_header_bytes", 1000,
                                    "max_request_line_bytes", 100),
                          line_first, sizeof line_first / sizeof line_first[0]);
    assert_int_equal(failed, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    raise_nofile(); /* before any gateway starts: it inherits the limit */
    signal(SIGPIPE, SIG_IGN);
    if (harness_redis_start(&g_redis, false) != 0)
        return -1;
    g_redis_up = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (g_gw_up) {
        rc = harness_gw_stop(&g_gw) == 0 ? 0 : -1;
        g_gw_up = false;
    }
    if (g_redis_up)
        harness_redis_stop(&g_redis);
    g_teardown_failed = rc != 0;
    return rc;
}

/* A test that failed mid-way leaves its gateway up: stop it before the next one starts. */
static int per_test_teardown(void **state)
{
    (void)state;
    if (g_gw_up) {
        g_gw_up = false;
        if (harness_gw_stop(&g_gw) != 0)
            g_teardown_failed = true;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_slowloris, per_test_teardown),
        cmocka_unit_test_teardown(test_eviction_at_max_connections, per_test_teardown),
        cmocka_unit_test_teardown(test_busy_answer_without_reset, per_test_teardown),
        cmocka_unit_test_teardown(test_slow_body, per_test_teardown),
        cmocka_unit_test_teardown(test_refusal_flood, per_test_teardown),
        cmocka_unit_test_teardown(test_pipeline_never_read, per_test_teardown),
        cmocka_unit_test_teardown(test_slow_readers_hold_slots, per_test_teardown),
        cmocka_unit_test_teardown(test_fd_limit_no_spin, per_test_teardown),
        cmocka_unit_test_teardown(test_fd_cycles, per_test_teardown),
        cmocka_unit_test_teardown(test_exact_limits, per_test_teardown),
        cmocka_unit_test_teardown(test_crossed_limits, per_test_teardown),
    };
    if (getenv("CR_TEST_FILTER"))
        cmocka_set_test_filter(getenv("CR_TEST_FILTER"));
    int failed = cmocka_run_group_tests_name("slow_clients", tests, group_setup, group_teardown);
    return failed != 0 || g_teardown_failed ? 1 : 0;
}
