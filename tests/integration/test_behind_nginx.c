/*
 * test_behind_nginx.c - BAD_INPUT.md behind a proxy (issue 6, item 2): nginx (Debian's package)
 * on loopback in front of one gateway, with the nginx configuration shipped in deploy/nginx.conf
 * (keep-alive upstream connections; only addresses, paths and the worker count rewritten, and
 * the second upstream server dropped so that every request goes to the one gateway).
 *
 * Every row of the shared case tables (tests/support/bad_input_cases.c: framing, chunks, request
 * line, limits, routing, media types, pipelining, keep-alive, absolute-form) is sent to nginx
 * over a raw socket, whole and as the second request on a keep-alive connection. nginx answers
 * some rows itself and forwards others, re-framed, over a pooled upstream connection. For each
 * row the test counts
 *   - forwarded: the upstream attempts nginx logged ($upstream_addr in its JSON access log, one
 *     address per attempt), and
 *   - handled: the requests the gateway answered (its "access" and "request refused" log
 *     lines; crossroads_http_requests_total must agree with them at the end),
 * and requires handled == forwarded after every row. A proxy and a server that disagree about
 * where a request ends (smuggling, desync) show up as a gateway handling a request nobody
 * forwarded, or a pooled connection answering the wrong request.
 *
 * After each row a canary GET /healthz on a new connection through nginx must answer 200 (it is
 * also the barrier: once nginx and the gateway have both logged it, everything before it is
 * logged), and Redis must hold exactly one more saga record per "pending" answer the row got:
 * nothing refused reaches Redis. (Saga records rather than the stream's length: the saga engine
 * deletes stream entries as sagas end.) nginx's error log must show no malformed or cut-short
 * upstream answer. No step is timed: waits are deadlines for things that must happen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bad_input_cases.h"
#include "harness.h"
#include "util/buf.h"

#define NGINX_BIN   "/usr/sbin/nginx"
#define SETPRIV_BIN "/usr/bin/setpriv"
#define ANSWER_MS   3000  /* deadline for an answer that should come at once */
#define LOGGED_MS   10000 /* deadline for a request to show up in both logs */
#define SETTLE_MS   2000  /* how long a count mismatch may take to resolve before it fails */
#define PROBE_ID    "nb-" /* the test's own requests: canaries, tails, direct ones */
#define CANARY_ID   "nb-canary-"
#define DIRECT_ID   "nb-direct-" /* requests sent straight to the gateway, not through nginx */
#define TAIL_FMT                                                                                   \
    "GET /healthz HTTP/1.1\r\nHost: gw.test\r\nX-Request-Id: nb-tail-%d\r\n"                       \
    "Connection: close\r\n\r\n"

extern char **environ;

static harness_redis_t redis;
static harness_gw_t gw;
static pid_t nginx_pid;
static int nginx_port;
static char work_dir[256];
static char access_path[300], error_path[300];

/* ---------------------------------------------------------------------------------------------
 * Following the two logs
 * ------------------------------------------------------------------------------------------- */

/* A log file read as it grows; whole lines only. */
typedef struct log_tail {
    const char *path;
    off_t off;
    buf_t part; /* an unfinished last line */
} log_tail_t;

typedef void (*line_cb)(json_t *line, void *data);

/* Hand every complete line added since the last call, parsed as JSON, to cb. */
static void tail_poll(log_tail_t *t, line_cb cb, void *data)
{
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char chunk[65536];
    ssize_t n;
    while ((n = pread(fd, chunk, sizeof chunk, t->off)) > 0) {
        buf_append(&t->part, chunk, (size_t)n);
        t->off += n;
    }
    close(fd);
    size_t start = 0;
    for (size_t i = 0; i < t->part.len; i++) {
        if (t->part.data[i] != '\n')
            continue;
        json_t *line = json_loadb(t->part.data + start, i - start, 0, NULL);
        if (json_is_object(line))
            cb(line, data);
        else
            fail_msg("%s: a line that is not a JSON object: %.*s", t->path, (int)(i - start),
                     t->part.data + start);
        json_decref(line);
        start = i + 1;
    }
    buf_consume(&t->part, start);
}

/* What the two logs have shown so far. */
typedef struct counts {
    long long forwarded;        /* nginx: upstream attempts */
    long long probes;           /* nginx: upstream attempts for the test's canaries and tails */
    long long nginx_lines;      /* nginx: requests it logged */
    long long handled;          /* gateway: requests answered that came through nginx */
    long long gw_all;           /* gateway: every request answered, direct ones too */
    long long gw_before_scrape; /* gw_all when the direct /metrics request was answered */
} counts_t;

static counts_t seen;
/* handled - forwarded as it should be: the requests sent straight to the gateway before nginx
 * came up (and, after a failed row, that row's difference, so each row is judged on its own). */
static long long skew;
/* The request id waited for, and whether each log has shown it. */
static char awaited[64];
static bool nginx_saw, gw_saw;
static log_tail_t nginx_tail, gw_tail;

static bool starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static void on_nginx_line(json_t *line, void *data)
{
    counts_t *c = data;
    const char *up = json_string_value(json_object_get(line, "upstream"));
    const char *rid = json_string_value(json_object_get(line, "request_id"));
    /* "$upstream_addr" lists one address per attempt, separated by ", " (and " : " across an
     * internal redirect); empty when nginx answered by itself. */
    for (const char *p = up; p != NULL && (p = strstr(p, "127.0.0.1:")) != NULL; p++) {
        c->forwarded++;
        if (starts_with(rid, PROBE_ID))
            c->probes++;
    }
    c->nginx_lines++;
    if (rid != NULL && strcmp(rid, awaited) == 0)
        nginx_saw = true;
}

static void on_gw_line(json_t *line, void *data)
{
    counts_t *c = data;
    const char *msg = json_string_value(json_object_get(line, "msg"));
    if (msg == NULL || (strcmp(msg, "access") != 0 && strcmp(msg, "request refused") != 0))
        return;
    const char *rid = json_string_value(json_object_get(line, "request_id"));
    if (rid != NULL && strcmp(rid, DIRECT_ID "metrics") == 0)
        c->gw_before_scrape = c->gw_all;
    c->gw_all++;
    if (!starts_with(rid, DIRECT_ID))
        c->handled++;
    if (rid != NULL && strcmp(rid, awaited) == 0)
        gw_saw = true;
}

static void await_id(const char *rid)
{
    snprintf(awaited, sizeof awaited, "%s", rid);
    nginx_saw = gw_saw = false;
}

static void logs_poll(void)
{
    tail_poll(&nginx_tail, on_nginx_line, &seen);
    tail_poll(&gw_tail, on_gw_line, &seen);
}

/*
 * Wait until the gateway's log, and nginx's too unless gw_only, show the awaited request;
 * false at the deadline. Name it (await_id) before sending the request. Each log is written in the
 * order requests finish, so once it shows a request sent after the others, it shows them too.
 */
static bool logs_reach(bool gw_only)
{
    long long end = harness_now_ms() + LOGGED_MS;
    for (;;) {
        logs_poll();
        if (gw_saw && (nginx_saw || gw_only))
            return true;
        if (harness_now_ms() > end)
            return false;
        harness_sleep_ms(5);
    }
}

/* ---------------------------------------------------------------------------------------------
 * nginx
 * ------------------------------------------------------------------------------------------- */

static void nginx_stop(void)
{
    if (nginx_pid <= 0)
        return;
    kill(nginx_pid, SIGQUIT); /* graceful: the master waits for its worker */
    for (int i = 0; i < 1000; i++) {
        if (waitpid(nginx_pid, NULL, WNOHANG) == nginx_pid) {
            nginx_pid = 0;
            return;
        }
        harness_sleep_ms(10);
    }
    kill(nginx_pid, SIGKILL);
    waitpid(nginx_pid, NULL, 0);
    nginx_pid = 0;
}

/* text with every "from" turned into "to"; fails the test when "from" is not there. */
static char *rewrite(char *text, const char *from, const char *to)
{
    buf_t out = {0};
    const char *p = text;
    int hits = 0;
    for (const char *at; (at = strstr(p, from)) != NULL; p = at + strlen(from), hits++) {
        buf_append(&out, p, (size_t)(at - p));
        buf_append_str(&out, to);
    }
    if (hits == 0)
        fail_msg("deploy/nginx.conf no longer contains \"%s\" (see the head of that file)", from);
    buf_append_str(&out, p);
    free(text);
    return buf_steal(&out, NULL);
}

/* deploy/nginx.conf for loopback: this gateway only, one worker, paths in the work dir. */
static bool nginx_write_conf(const char *conf_path)
{
    const char *fixtures = getenv("CR_FIXTURES");
    char src[512];
    snprintf(src, sizeof src, "%s/../../deploy/nginx.conf", fixtures ? fixtures : "tests/fixtures");
    FILE *f = fopen(src, "rb");
    if (f == NULL)
        return false;
    buf_t in = {0};
    char chunk[4096];
    for (size_t n; (n = fread(chunk, 1, sizeof chunk, f)) > 0;)
        buf_append(&in, chunk, n);
    fclose(f);
    char *text = buf_steal(&in, NULL);
    char to[384];
    snprintf(to, sizeof to, "server 127.0.0.1:%d", gw.port);
    text = rewrite(text, "server gateway1:8080", to);
    /* One upstream server: nginx then never marks it failed, so a refused row cannot turn the
     * next one into "no live upstreams". */
    text = rewrite(text, "server gateway2:8080", "# server gateway2:8080");
    snprintf(to, sizeof to, "listen 127.0.0.1:%d;", nginx_port);
    text = rewrite(text, "listen 8080;", to);
    text = rewrite(text, "worker_processes auto;", "worker_processes 1;");
    snprintf(to, sizeof to, "%s/", work_dir);
    text = rewrite(text, "/tmp/", to);
    f = fopen(conf_path, "w");
    bool ok = f != NULL && fputs(text, f) >= 0;
    if (f != NULL)
        ok = fclose(f) == 0 && ok;
    free(text);
    return ok;
}

/* Start nginx in the foreground on a free port, its access log (stdout) and error log (stderr)
 * to files; wait until GET /healthz through it answers 200. */
static bool nginx_start(void)
{
    char conf_path[300];
    snprintf(conf_path, sizeof conf_path, "%s/nginx.conf", work_dir);
    for (int attempt = 0; attempt < 3; attempt++) {
        nginx_port = harness_free_port();
        if (!nginx_write_conf(conf_path))
            return false;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, access_path,
                                         O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, error_path,
                                         O_WRONLY | O_CREAT | O_APPEND, 0644);
        char prefix[300];
        snprintf(prefix, sizeof prefix, "%s/", work_dir);
        /* setpriv (util-linux) makes nginx's master get SIGTERM if this test dies without
         * running its exit hook; the master then stops its worker. */
        char *argv[] = {(char *)SETPRIV_BIN,
                        (char *)"--pdeathsig",
                        (char *)"TERM",
                        (char *)"--",
                        (char *)NGINX_BIN,
                        (char *)"-p",
                        prefix,
                        (char *)"-c",
                        conf_path,
                        (char *)"-g",
                        (char *)"daemon off;",
                        NULL};
        bool wrap = access(SETPRIV_BIN, X_OK) == 0;
        int rc = posix_spawn(&nginx_pid, wrap ? SETPRIV_BIN : NGINX_BIN, &fa, NULL,
                             wrap ? argv : argv + 4, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0)
            return false;
        long long end = harness_now_ms() + 10000;
        while (harness_now_ms() < end) {
            if (waitpid(nginx_pid, NULL, WNOHANG) == nginx_pid) {
                nginx_pid = 0; /* the port was taken between probe and bind: again */
                break;
            }
            harness_resp_t r;
            const char *h[] = {"X-Request-Id: " CANARY_ID "start", NULL};
            await_id(CANARY_ID "start");
            bool up =
                harness_http(nginx_port, "GET", "/healthz", h, NULL, 0, &r) == 0 && r.status == 200;
            harness_resp_free(&r);
            if (up)
                return logs_reach(false);
            harness_sleep_ms(50);
        }
        nginx_stop();
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (access(NGINX_BIN, X_OK) != 0) {
        print_error("nginx is missing: apt-get install -y --no-install-recommends nginx\n");
        return -1;
    }
    atexit(nginx_stop);
    if (harness_redis_start(&redis, false) != 0)
        return -1;
    /* The gateway keeps idle connections longer than nginx does (keepalive_timeout 50s), as
     * deploy/nginx.conf asks: nginx must never send a request on a connection the gateway is
     * closing, which would count as forwarded without being handled. */
    json_t *overrides = json_pack("{s:{s:i}}", "limits", "idle_timeout_ms", 120000);
    int rc = harness_gw_start(&gw, "gateway.json", redis.port, overrides);
    json_decref(overrides);
    if (rc != 0 || !harness_gw_wait_ready(&gw, 200, 10000))
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(work_dir, sizeof work_dir, "%s/cr-nginx-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(work_dir) == NULL)
        return -1;
    chmod(work_dir, 0755); /* nginx's workers run as an unprivileged user when we are root */
    snprintf(access_path, sizeof access_path, "%s/access.log", work_dir);
    snprintf(error_path, sizeof error_path, "%s/error.log", work_dir);
    nginx_tail.path = access_path;
    gw_tail.path = gw.log_path;
    if (!nginx_start()) {
        print_error("nginx did not start or its log did not show the first request; see %s\n",
                    error_path);
        return -1;
    }
    /* harness_gw_start's own probes went straight to the gateway. */
    skew = seen.handled - seen.forwarded;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nginx_stop();
    int rc = gw.pid > 0 ? harness_gw_stop(&gw) : -1;
    harness_redis_stop(&redis);
    buf_free(&nginx_tail.part);
    buf_free(&gw_tail.part);
    if (rc == 0 && work_dir[0] != '\0') {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", work_dir);
        if (system(cmd) != 0)
            print_error("could not remove %s\n", work_dir);
    }
    return rc == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * One row through nginx
 * ------------------------------------------------------------------------------------------- */

/* Bytes sent in one write, then this many answers awaited before the next piece. */
typedef struct piece {
    const char *data;
    size_t len;
    int answers;
} piece_t;

static int failures;
static int rows_run, rows_forwarded, canary_n;
static long long pending_total;

/* "pending" answers (a stored saga each) among the responses in raw. */
static int count_pending(const char *raw, size_t len)
{
    int n = 0;
    for (int i = 0; i < harness_raw_count(raw, len); i++) {
        harness_resp_t r;
        if (harness_raw_parse(raw, len, i, &r) != 0)
            break;
        const char *st = json_string_value(json_object_get(r.json, "status"));
        if (r.status == 200 && st != NULL && strcmp(st, "pending") == 0)
            n++;
        harness_resp_free(&r);
    }
    return n;
}

/*
 * Send the pieces on one connection to nginx, each after the answers to the one before (or a
 * close). If nginx keeps the connection open, a GET /healthz with Connection: close follows, so
 * that everything nginx does for this connection is over when it closes: no request is left
 * half-forwarded when the test moves on. Each piece's answers are read afresh: the next piece
 * goes only once they are complete, so no bytes of an answer are left over. Returns the "pending"
 * answers seen.
 */
static int send_through_nginx(const piece_t *pieces, size_t n)
{
    int fd = harness_raw_connect(nginx_port);
    assert_true(fd >= 0);
    buf_t got = {0};
    bool closed = false, answered = true;
    for (size_t i = 0; i < n && !closed && answered; i++) {
        /* nginx may refuse early and close before the rest arrives: a failed send is fine. */
        (void)harness_raw_send(fd, pieces[i].data, pieces[i].len, 0);
        size_t len;
        char *raw = harness_raw_recv_n(fd, pieces[i].answers, ANSWER_MS, &len, &closed);
        answered = harness_raw_complete(raw, len) >= pieces[i].answers;
        buf_append(&got, raw, len);
        free(raw);
    }
    /* Not all answers came: nginx is waiting for the rest of a body (it forwards a request
     * only once it has read all of it), and a closing request would only wait behind it. */
    if (!closed && answered) {
        char tail[160];
        int tl = snprintf(tail, sizeof tail, TAIL_FMT, rows_run);
        if (harness_raw_send(fd, tail, (size_t)tl, 0) == 0) {
            size_t len;
            char *raw = harness_raw_recv_all(fd, ANSWER_MS, &len, &closed);
            buf_append(&got, raw, len);
            free(raw);
        }
    }
    close(fd);
    int pending = count_pending(got.data, got.len);
    buf_free(&got);
    return pending;
}

/* A new connection through nginx answers GET /healthz with 200, and both logs show it. */
static bool canary(char *why, size_t size)
{
    char id[64], hdr[96];
    snprintf(id, sizeof id, CANARY_ID "%d", ++canary_n);
    snprintf(hdr, sizeof hdr, "X-Request-Id: %s", id);
    const char *h[] = {hdr, NULL};
    await_id(id);
    harness_resp_t r;
    int rc = harness_http(nginx_port, "GET", "/healthz", h, NULL, 0, &r);
    int status = r.status;
    harness_resp_free(&r);
    if (rc != 0 || status != 200) {
        snprintf(why, size, "canary GET /healthz through nginx answered %d", status);
        return false;
    }
    if (!logs_reach(false)) {
        snprintf(why, size,
                 "canary %s not logged by both nginx (%s) and the gateway (%s) "
                 "within %d ms",
                 id, nginx_saw ? "yes" : "no", gw_saw ? "yes" : "no", LOGGED_MS);
        return false;
    }
    return true;
}

static void run_row(const char *name, const char *mode, const piece_t *pieces, size_t n)
{
    rows_run++;
    long long sagas = harness_saga_count(&redis);
    counts_t before = seen;
    int pending = send_through_nginx(pieces, n);
    char why[512] = "";
    bool ok = canary(why, sizeof why);
    /* Both logs are complete up to the canary. A mismatch may still be a request the gateway
     * answers late (a smuggled one waiting for Redis): give it a moment, then judge. */
    long long end = harness_now_ms() + SETTLE_MS;
    while (ok && seen.handled - seen.forwarded != skew && harness_now_ms() < end) {
        harness_sleep_ms(20);
        logs_poll();
    }
    /* The row's own requests: less the canary and the closing GET. */
    long long probes = seen.probes - before.probes;
    long long fwd = seen.forwarded - before.forwarded - probes;
    long long hdl = seen.handled - before.handled - probes;
    if (ok && seen.handled - seen.forwarded != skew) {
        snprintf(why, sizeof why, "nginx forwarded %lld request(s), the gateway handled %lld", fwd,
                 hdl);
        skew = seen.handled - seen.forwarded; /* judge the next rows on their own */
        ok = false;
    }
    long long sagas_now = harness_saga_count(&redis);
    if (ok && sagas_now - sagas != pending) {
        snprintf(why, sizeof why, "%lld saga record(s) stored for %d \"pending\" answer(s)",
                 sagas_now - sagas, pending);
        ok = false;
    }
    pending_total += pending;
    if (fwd > 0)
        rows_forwarded++;
    if (!ok) {
        failures++;
        print_error("FAILED %s [%s]: %s\n", name, mode, why);
    }
}

/* A request row whole, and as the second request on a keep-alive connection. */
static void run_bytes(const char *name, const char *data, size_t len, int answers)
{
    piece_t whole = {data, len, answers};
    run_row(name, "whole", &whole, 1);
    buf_t b = {0};
    buf_append_str(&b, GET_HEALTHZ);
    buf_append(&b, data, len);
    piece_t second = {b.data, b.len, 1 + answers};
    run_row(name, "second on keep-alive", &second, 1);
    buf_free(&b);
}

/* ---------------------------------------------------------------------------------------------
 * The tables
 * ------------------------------------------------------------------------------------------- */

static void run_frames(const frame_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        run_bytes(cases[i].name, cases[i].req, cases[i].len, 1);
}

static void test_framing_through_nginx(void **state)
{
    (void)state;
    failures = 0;
    run_frames(header_framing_cases, header_framing_cases_n);
    run_frames(chunk_framing_cases, chunk_framing_cases_n);
    run_frames(request_line_cases, request_line_cases_n);
    assert_int_equal(failures, 0);
}

static void test_bodies_and_limits_through_nginx(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < chunked_cases_n; i++)
        run_bytes(chunked_cases[i].name, chunked_cases[i].send, strlen(chunked_cases[i].send), 1);
    for (size_t i = 0; i < limit_cases_n; i++) {
        buf_t b = {0};
        limit_cases[i].build(&b);
        run_bytes(limit_cases[i].name, b.data, b.len, 1);
        buf_free(&b);
    }
    assert_int_equal(failures, 0);
}

static void test_routes_and_connections_through_nginx(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < route_cases_n; i++)
        run_bytes(route_cases[i].name, route_cases[i].send, strlen(route_cases[i].send), 1);
    for (size_t i = 0; i < absform_cases_n; i++) {
        const absform_case_t *c = &absform_cases[i];
        run_bytes(c->name, c->origin, strlen(c->origin), 1);
        run_bytes(c->name, c->absolute, strlen(c->absolute), 1);
    }
    for (size_t i = 0; i < pipeline_cases_n; i++) {
        const pipeline_case_t *c = &pipeline_cases[i];
        run_bytes(c->name, c->send, strlen(c->send), c->n);
    }
    /* Keep-alive conversations: one request at a time, each after the answer to the last. */
    for (size_t i = 0; i < keepalive_cases_n; i++) {
        const conversation_t *c = &keepalive_cases[i];
        piece_t pieces[3];
        size_t n = 0;
        for (; n < 3 && c->steps[n].send != NULL; n++)
            pieces[n] = (piece_t){c->steps[n].send, strlen(c->steps[n].send), 1};
        run_row(c->name, "one at a time", pieces, n);
    }
    assert_int_equal(failures, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Totals
 * ------------------------------------------------------------------------------------------- */

/* Sum of every crossroads_http_requests_total series in a Prometheus exposition. */
static long long requests_total(const char *text)
{
    static const char name[] = "crossroads_http_requests_total";
    long long sum = 0;
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, name, sizeof name - 1) == 0 &&
            (line[sizeof name - 1] == '{' || line[sizeof name - 1] == ' ')) {
            const char *sp = memrchr(line, ' ', nl ? (size_t)(nl - line) : strlen(line));
            if (sp != NULL)
                sum += strtoll(sp + 1, NULL, 10);
        }
        line = nl ? nl + 1 : NULL;
    }
    return sum;
}

static void test_totals(void **state)
{
    (void)state;
    char why[512];
    assert_true(canary(why, sizeof why));
    assert_int_equal(seen.handled - seen.forwarded, skew);

    /* Straight to the gateway: still healthy, and its counter agrees with its log. */
    const char *direct[] = {"X-Request-Id: " DIRECT_ID "canary", NULL};
    harness_resp_t r;
    assert_int_equal(harness_http(gw.port, "GET", "/healthz", direct, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    harness_resp_free(&r);
    const char *scrape[] = {"X-Request-Id: " DIRECT_ID "metrics", NULL};
    await_id(DIRECT_ID "metrics");
    assert_int_equal(harness_http(gw.port, "GET", "/metrics", scrape, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    long long metric = requests_total(r.body);
    harness_resp_free(&r);
    assert_true(logs_reach(true));
    print_message("%d rows through nginx: %d had requests forwarded, %d were answered by nginx "
                  "alone. nginx logged %lld requests and %lld upstream attempts (%lld of them the "
                  "test's canaries and closing GETs); the gateway handled %lld requests from "
                  "nginx, %lld in all (crossroads_http_requests_total %lld); %lld stored\n",
                  rows_run, rows_forwarded, rows_run - rows_forwarded, seen.nginx_lines,
                  seen.forwarded, seen.probes, seen.handled - skew, seen.gw_before_scrape, metric,
                  pending_total);
    assert_int_equal(metric, seen.gw_before_scrape);
    assert_true(seen.forwarded > 0);

    /* nginx never read a malformed, over-long or cut-short answer from the gateway. */
    char *err = NULL;
    FILE *f = fopen(error_path, "rb");
    if (f != NULL) {
        buf_t b = {0};
        char chunk[4096];
        for (size_t n; (n = fread(chunk, 1, sizeof chunk, f)) > 0;)
            buf_append(&b, chunk, n);
        fclose(f);
        err = buf_steal(&b, NULL);
    }
    if (err != NULL && (strstr(err, "upstream sent") || strstr(err, "upstream prematurely"))) {
        print_error("nginx error log:\n%s\n", err);
        free(err);
        fail_msg("nginx read a bad answer from the gateway");
    }
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_through_nginx),
        cmocka_unit_test(test_bodies_and_limits_through_nginx),
        cmocka_unit_test(test_routes_and_connections_through_nginx),
        cmocka_unit_test(test_totals),
    };
    return cmocka_run_group_tests_name("behind_nginx", tests, group_setup, group_teardown);
}
