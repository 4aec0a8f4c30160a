/*
 * test_metrics.c - unit tests for metrics.c: the exact Prometheus text for counters, gauges and
 * histograms, escaping, the bounded label sets and their "other" series, number formatting as
 * Prometheus's Go client writes it, callback gauges, process metrics, registration mistakes that
 * must abort, and the loop-lag timer (runs, measures a blocked loop, closes so that
 * uv_loop_close succeeds).
 *
 * When promtool (Debian package "prometheus") is on PATH, a rendered sample with every kind of
 * family is also run through `promtool check metrics`, which parses and lints it; without
 * promtool that one check is skipped with a note.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "metrics.h"
#include "util/buf.h"
#include "util/cr.h"

#define V(...) ((const char *const[]){__VA_ARGS__})

/* Render m into a NUL-terminated string the caller frees. */
static char *render(metrics_t *m)
{
    buf_t b = {0};
    metrics_render(m, &b);
    buf_append(&b, "", 0);
    if (b.data == NULL)
        return cr_strdup("");
    return buf_steal(&b, NULL);
}

static void assert_render(metrics_t *m, const char *want)
{
    char *got = render(m);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, got);
    assert_string_equal(got, want);
    free(got);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The value on the line that starts with prefix (prefix includes the trailing space). */
static double sample_value(const char *text, const char *prefix)
{
    const char *p = text;
    size_t len = strlen(prefix);
    while (p && *p) {
        if (strncmp(p, prefix, len) == 0)
            return strtod(p + len, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    fail_msg("no sample line starting with \"%s\"", prefix);
    return NAN;
}

/* ------------------------------------------------------------------------------------------ */

static void test_counter_labels(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_counter_t *req = metrics_counter(
        m, "crossroads_http_requests", "HTTP requests by route and status class.", "route,status");
    metrics_counter_t *retries =
        metrics_counter(m, "crossroads_delivery_retries_total", "Delivery retries.", NULL);
    metrics_counter(m, "crossroads_unused_total", "Labelled, never used.", "connector");

    metrics_counter_inc(req, V("/v1/orders", "2xx"), 1);
    metrics_counter_inc(req, V("/v1/orders", "4xx"), 1);
    metrics_counter_inc(req, V("/v1/orders", "2xx"), 2);
    metrics_counter_inc(req, V("/healthz", "2xx"), 0.5);
    metrics_counter_inc(req, V("/healthz", "2xx"), -7); /* counters never go down */
    metrics_counter_inc(req, V("/healthz", "2xx"), NAN);

    assert_render(m, "# HELP crossroads_http_requests_total HTTP requests by route and status "
                     "class.\n"
                     "# TYPE crossroads_http_requests_total counter\n"
                     "crossroads_http_requests_total{route=\"/v1/orders\",status=\"2xx\"} 3\n"
                     "crossroads_http_requests_total{route=\"/v1/orders\",status=\"4xx\"} 1\n"
                     "crossroads_http_requests_total{route=\"/healthz\",status=\"2xx\"} 0.5\n"
                     "# HELP crossroads_delivery_retries_total Delivery retries.\n"
                     "# TYPE crossroads_delivery_retries_total counter\n"
                     "crossroads_delivery_retries_total 0\n");

    metrics_counter_inc(retries, NULL, 1);
    metrics_counter_inc(retries, NULL, 1);
    char *text = render(m);
    assert_non_null(strstr(text, "\ncrossroads_delivery_retries_total 2\n"));
    free(text);
    metrics_close(m, NULL, NULL);
}

static void test_gauge(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_gauge_t *inflight =
        metrics_gauge(m, "crossroads_sagas_running", "Sagas running.", "saga_type");
    metrics_gauge_t *conns = metrics_gauge(m, "crossroads_open_connections", "Open.", NULL);

    assert_render(m, "# HELP crossroads_open_connections Open.\n"
                     "# TYPE crossroads_open_connections gauge\n"
                     "crossroads_open_connections 0\n");

    metrics_gauge_add(inflight, V("order_create"), 1);
    metrics_gauge_add(inflight, V("order_cancel"), 1);
    metrics_gauge_add(inflight, V("order_create"), 1);
    metrics_gauge_add(inflight, V("order_create"), -1);
    metrics_gauge_set(inflight, V("order_cancel"), 7.25);
    metrics_gauge_set(conns, NULL, 12);
    metrics_gauge_add(conns, NULL, -13);

    assert_render(m, "# HELP crossroads_sagas_running Sagas running.\n"
                     "# TYPE crossroads_sagas_running gauge\n"
                     "crossroads_sagas_running{saga_type=\"order_create\"} 1\n"
                     "crossroads_sagas_running{saga_type=\"order_cancel\"} 7.25\n"
                     "# HELP crossroads_open_connections Open.\n"
                     "# TYPE crossroads_open_connections gauge\n"
                     "crossroads_open_connections -1\n");
    metrics_close(m, NULL, NULL);
}

static void test_histogram(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    static const double bounds[] = {0.1, 0.5, 1};
    metrics_histogram_t *h =
        metrics_histogram(m, "crossroads_delivery_duration_seconds", "Delivery latency.",
                          "connector,outcome", bounds, CR_ARRAY_SIZE(bounds));
    /* Values exact in binary so the sum is exact: 0.0625 + 0.25 + 0.5 + 4 = 4.8125. */
    metrics_histogram_observe(h, V("kibo", "ok"), 0.25);
    metrics_histogram_observe(h, V("kibo", "ok"), 0.5); /* on a bound: counted in le="0.5" */
    metrics_histogram_observe(h, V("kibo", "ok"), 0.0625);
    metrics_histogram_observe(h, V("kibo", "ok"), 4);
    metrics_histogram_observe(h, V("kibo", "ok"), NAN); /* ignored */
    metrics_histogram_observe(h, V("webhook", "error"), 1);

    assert_render(
        m, "# HELP crossroads_delivery_duration_seconds Delivery latency.\n"
           "# TYPE crossroads_delivery_duration_seconds histogram\n"
           "crossroads_delivery_duration_seconds_bucket{connector=\"kibo\",outcome=\"ok\","
           "le=\"0.1\"} 1\n"
           "crossroads_delivery_duration_seconds_bucket{connector=\"kibo\",outcome=\"ok\","
           "le=\"0.5\"} 3\n"
           "crossroads_delivery_duration_seconds_bucket{connector=\"kibo\",outcome=\"ok\","
           "le=\"1\"} 3\n"
           "crossroads_delivery_duration_seconds_bucket{connector=\"kibo\",outcome=\"ok\","
           "le=\"+Inf\"} 4\n"
           "crossroads_delivery_duration_seconds_sum{connector=\"kibo\",outcome=\"ok\"} 4.8125\n"
           "crossroads_delivery_duration_seconds_count{connector=\"kibo\",outcome=\"ok\"} 4\n"
           "crossroads_delivery_duration_seconds_bucket{connector=\"webhook\",outcome=\"error\","
           "le=\"0.1\"} 0\n"
           "crossroads_delivery_duration_seconds_bucket{connector=\"webhook\",outcome=\"error\","
           "le=\"0.5\"} 0\n"
           "crossroads_delivery_duration_seconds_bucket{connector=\"webhook\",outcome=\"error\","
           "le=\"1\"} 1\n"
           "crossroads_delivery_duration_seconds_bucket{connector=\"webhook\",outcome=\"error\","
           "le=\"+Inf\"} 1\n"
           "crossroads_delivery_duration_seconds_sum{connector=\"webhook\",outcome=\"error\"} 1\n"
           "crossroads_delivery_duration_seconds_count{connector=\"webhook\",outcome=\"error\"} "
           "1\n");
    metrics_close(m, NULL, NULL);
}

static void test_histogram_default_buckets(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_histogram_t *h =
        metrics_histogram(m, "crossroads_stage_duration_seconds", "Stage latency.", NULL, NULL, 0);
    /* A trailing +Inf in custom buckets is the implied one, not a second. */
    static const double with_inf[] = {1, INFINITY};
    metrics_histogram_t *h2 = metrics_histogram(m, "crossroads_redis_rtt_seconds", "RTT.", NULL,
                                                with_inf, CR_ARRAY_SIZE(with_inf));
    /* Powers of two, so the sum is exact: 2^-12 + 2^-8 + 12. */
    metrics_histogram_observe(h, NULL, 0.000244140625);
    metrics_histogram_observe(h, NULL, 0.00390625);
    metrics_histogram_observe(h, NULL, 12);
    metrics_histogram_observe(h2, NULL, 2);

    char *want = NULL;
    buf_t w = {0};
    buf_append_str(&w, "# HELP crossroads_stage_duration_seconds Stage latency.\n"
                       "# TYPE crossroads_stage_duration_seconds histogram\n");
    static const char *const les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                      "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                      "1",      "2.5",   "5",      "10",    "+Inf"};
    static const int cum[] = {1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3};
    assert_int_equal(METRICS_DEFAULT_BUCKETS_LEN + 1, CR_ARRAY_SIZE(les));
    for (size_t i = 0; i < CR_ARRAY_SIZE(les); i++)
        buf_printf(&w, "crossroads_stage_duration_seconds_bucket{le=\"%s\"} %d\n", les[i], cum[i]);
    buf_append_str(&w, "crossroads_stage_duration_seconds_sum 12.004150390625\n"
                       "crossroads_stage_duration_seconds_count 3\n"
                       "# HELP crossroads_redis_rtt_seconds RTT.\n"
                       "# TYPE crossroads_redis_rtt_seconds histogram\n"
                       "crossroads_redis_rtt_seconds_bucket{le=\"1\"} 0\n"
                       "crossroads_redis_rtt_seconds_bucket{le=\"+Inf\"} 1\n"
                       "crossroads_redis_rtt_seconds_sum 2\n"
                       "crossroads_redis_rtt_seconds_count 1\n");
    want = buf_steal(&w, NULL);
    assert_render(m, want);
    free(want);
    metrics_close(m, NULL, NULL);
}

static void test_escaping(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_gauge_t *g = metrics_gauge(m, "crossroads_escape_test",
                                       "Line one\nback\\slash and \"quotes\" stay.", "a,b");
    metrics_gauge_set(g, V("back\\slash \"quoted\"\nnext", "caf\xc3\xa9"), 1);
    assert_render(m, "# HELP crossroads_escape_test Line one\\nback\\\\slash and \"quotes\" "
                     "stay.\n"
                     "# TYPE crossroads_escape_test gauge\n"
                     "crossroads_escape_test{a=\"back\\\\slash \\\"quoted\\\"\\nnext\","
                     "b=\"caf\xc3\xa9\"} 1\n");
    metrics_close(m, NULL, NULL);
}

static void test_label_overflow(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_counter_t *c = metrics_counter(m, "crossroads_overflow_total", "Bounded.", "route");
    char name[32];
    for (int i = 0; i < METRICS_MAX_CHILDREN + 44; i++) {
        snprintf(name, sizeof name, "r%d", i);
        metrics_counter_inc(c, V(name), 1);
    }
    metrics_counter_inc(c, V("r5"), 1); /* a series seen before keeps counting */

    char *text = render(m);
    assert_int_equal(count_lines(text), 2 + METRICS_MAX_CHILDREN + 1);
    assert_non_null(strstr(text, "\ncrossroads_overflow_total{route=\"r0\"} 1\n"));
    assert_non_null(strstr(text, "\ncrossroads_overflow_total{route=\"r5\"} 2\n"));
    snprintf(name, sizeof name, "{route=\"r%d\"} 1\n", METRICS_MAX_CHILDREN - 1);
    assert_non_null(strstr(text, name));
    snprintf(name, sizeof name, "{route=\"r%d\"}", METRICS_MAX_CHILDREN);
    assert_null(strstr(text, name));
    /* The overflow series comes last (first seen last) and holds the 44 newcomers. */
    const char *tail = "\ncrossroads_overflow_total{route=\"other\"} 44\n";
    assert_string_equal(text + strlen(text) - strlen(tail), tail);
    free(text);

    /* Values that could break the scrape or grow memory go to "other" even with room left. */
    metrics_gauge_t *g = metrics_gauge(m, "crossroads_overflow_values", "Values.", "x,y");
    char longest[METRICS_MAX_VALUE_LEN + 2];
    memset(longest, 'v', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';               /* METRICS_MAX_VALUE_LEN + 1 bytes */
    metrics_gauge_add(g, V(longest, "ok"), 1);        /* too long */
    metrics_gauge_add(g, V("\xff\xfe", "ok"), 1);     /* not UTF-8 */
    metrics_gauge_add(g, V("\xed\xa0\x80", "ok"), 1); /* a UTF-16 surrogate */
    metrics_gauge_add(g, V("\xc0\xaf", "ok"), 1);     /* overlong '/' */
    metrics_gauge_add(g, V(NULL, "ok"), 1);
    longest[METRICS_MAX_VALUE_LEN] = '\0'; /* exactly the limit: accepted */
    metrics_gauge_add(g, V(longest, "ok"), 1);
    metrics_gauge_add(g, V("other", "other"), 1); /* naming "other" is the same series */

    text = render(m);
    const char *gtext = strstr(text, "# HELP crossroads_overflow_values");
    assert_non_null(gtext);
    buf_t w = {0};
    buf_append_str(&w, "# HELP crossroads_overflow_values Values.\n"
                       "# TYPE crossroads_overflow_values gauge\n"
                       "crossroads_overflow_values{x=\"other\",y=\"other\"} 6\n"
                       "crossroads_overflow_values{x=\"");
    buf_append_str(&w, longest);
    buf_append_str(&w, "\",y=\"ok\"} 1\n");
    char *want = buf_steal(&w, NULL);
    assert_string_equal(gtext, want);
    free(want);
    free(text);
    metrics_close(m, NULL, NULL);
}

static void test_number_format(void **state)
{
    (void)state;
    /* As Go's strconv.FormatFloat(v, 'g', -1, 64) with expfmt's special cases. */
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {-1, "-1"},
        {42, "42"},
        {0.1, "0.1"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3, "0.3333333333333333"},
        {2.5, "2.5"},
        {123456, "123456"},
        {999999, "999999"},
        {123456.5, "123456.5"},
        {1e6, "1e+06"},
        {1234567, "1.234567e+06"},
        {-2.5e10, "-2.5e+10"},
        {1e21, "1e+21"},
        {1e100, "1e+100"},
        {9007199254740993.0, "9.007199254740992e+15"},
        {0.0001, "0.0001"},
        {0.00012, "0.00012"},
        {0.0005, "0.0005"},
        {1e-05, "1e-05"},
        {1.5e-7, "1.5e-07"},
        {5e-324, "5e-324"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {-DBL_MAX, "-1.7976931348623157e+308"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    metrics_t *m = metrics_new();
    metrics_gauge_t *g = metrics_gauge(m, "crossroads_number", "Numbers.", "i");
    for (size_t i = 0; i < CR_ARRAY_SIZE(cases); i++) {
        char label[16];
        snprintf(label, sizeof label, "%zu", i);
        metrics_gauge_set(g, V(label), cases[i].v);
    }
    char *text = render(m);
    for (size_t i = 0; i < CR_ARRAY_SIZE(cases); i++) {
        char line[96];
        snprintf(line, sizeof line, "\ncrossroads_number{i=\"%zu\"} %s\n", i, cases[i].text);
        if (!strstr(text, line))
            fail_msg("%g: want%s", cases[i].v, line);
        /* Finite values read back exactly. */
        if (isfinite(cases[i].v))
            assert_true(strtod(cases[i].text, NULL) == cases[i].v);
    }
    free(text);
    metrics_close(m, NULL, NULL);
}

static double read_double(void *data)
{
    return *(double *)data;
}

static void test_callback_gauges(void **state)
{
    (void)state;
    double conns = 3, lag = 17, cpu = 1.5;
    metrics_t *m = metrics_new();
    metrics_gauge_callback(m, "crossroads_open_connections", "Open client connections.",
                           read_double, &conns);
    metrics_gauge_t *pending =
        metrics_gauge(m, "crossroads_stream_pending_entries", "Stream lag.", "stream");
    metrics_gauge_bind(pending, V("sagas"), read_double, &lag);
    metrics_gauge_set(pending, V("notify"), 2);
    metrics_counter_t *c = metrics_counter(m, "crossroads_bound_seconds_total", "Bound.", NULL);
    metrics_counter_bind(c, NULL, read_double, &cpu);

#define WANT_CB                                                                                    \
    "# HELP crossroads_open_connections Open client connections.\n"                                \
    "# TYPE crossroads_open_connections gauge\n"                                                   \
    "crossroads_open_connections %s\n"                                                             \
    "# HELP crossroads_stream_pending_entries Stream lag.\n"                                       \
    "# TYPE crossroads_stream_pending_entries gauge\n"                                             \
    "crossroads_stream_pending_entries{stream=\"sagas\"} %s\n"                                     \
    "crossroads_stream_pending_entries{stream=\"notify\"} 2\n"                                     \
    "# HELP crossroads_bound_seconds_total Bound.\n"                                               \
    "# TYPE crossroads_bound_seconds_total counter\n"                                              \
    "crossroads_bound_seconds_total %s\n"
    char expect[1024];
    snprintf(expect, sizeof expect, WANT_CB, "3", "17", "1.5");
    assert_render(m, expect);

    /* Read at every scrape, not at registration. */
    conns = 250;
    lag = 0;
    cpu = 2.25;
    metrics_gauge_set(pending, V("sagas"), 99); /* stored, hidden while bound */
    snprintf(expect, sizeof expect, WANT_CB, "250", "0", "2.25");
    assert_render(m, expect);

    metrics_gauge_bind(pending, V("sagas"), NULL, NULL); /* unbound: the stored value again */
    snprintf(expect, sizeof expect, WANT_CB, "250", "99", "2.25");
    assert_render(m, expect);
    metrics_close(m, NULL, NULL);
}

static void test_process_collect(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_counter(m, "crossroads_first_total", "Registered before.", NULL);
    metrics_process_collect(m);
    /* Burn a little CPU so the counter is visibly the kernel's figure. */
    volatile double x = 0;
    for (int i = 0; i < 2000000; i++)
        x += i * 0.5;
    metrics_process_collect(m); /* registers once, refreshes each time */
    char *text = render(m);

    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    assert_null(strstr(strstr(text, "# TYPE process_cpu_seconds_total") + 1,
                       "# TYPE process_cpu_seconds_total"));
    assert_true(sample_value(text, "process_cpu_seconds_total ") > 0);
    assert_true(sample_value(text, "process_resident_memory_bytes ") > 1024 * 1024);
    assert_true(sample_value(text, "process_virtual_memory_bytes ") >=
                sample_value(text, "process_resident_memory_bytes "));
    double fds = sample_value(text, "process_open_fds ");
    assert_true(fds >= 3 && fds < 10000);
    assert_true(sample_value(text, "process_max_fds ") >= fds);
    double start = sample_value(text, "process_start_time_seconds ");
    uv_timeval64_t now;
    assert_int_equal(uv_gettimeofday(&now), 0);
    assert_true(start > 1.6e9 && start <= (double)now.tv_sec + 1);
    /* Families keep registration order: ours first, then the process ones. */
    assert_true(strstr(text, "crossroads_first_total") < strstr(text, "process_cpu_seconds"));
    free(text);
    metrics_close(m, NULL, NULL);
}

/* Registration mistakes are programming errors: the child process must abort. */
typedef void (*bad_reg_fn)(metrics_t *m);

static void bad_name(metrics_t *m)
{
    metrics_gauge(m, "1starts_with_digit", "", NULL);
}
static void bad_dash(metrics_t *m)
{
    metrics_gauge(m, "has-dash", "", NULL);
}
static void bad_empty(metrics_t *m)
{
    metrics_counter(m, "", "", NULL);
}
static void bad_label(metrics_t *m)
{
    metrics_counter(m, "ok_total", "", "__reserved");
}
static void bad_label_colon(metrics_t *m)
{
    metrics_counter(m, "ok_total", "", "a:b");
}
static void bad_label_empty(metrics_t *m)
{
    metrics_counter(m, "ok_total", "", "a,,b");
}
static void bad_label_dup(metrics_t *m)
{
    metrics_counter(m, "ok_total", "", "a,b,a");
}
static void bad_label_many(metrics_t *m)
{
    metrics_counter(m, "ok_total", "", "a,b,c,d,e");
}
static void bad_le(metrics_t *m)
{
    metrics_histogram(m, "h_seconds", "", "route,le", NULL, 0);
}
static void bad_buckets(metrics_t *m)
{
    static const double b[] = {0.1, 0.1};
    metrics_histogram(m, "h_seconds", "", NULL, b, 2);
}
static void bad_buckets_nan(metrics_t *m)
{
    const double b[] = {0.1, NAN};
    metrics_histogram(m, "h_seconds", "", NULL, b, 2);
}
static void bad_twice(metrics_t *m)
{
    metrics_counter(m, "dup", "", NULL);
    metrics_counter(m, "dup_total", "", NULL); /* same name once _total is added */
}

static void test_registration_aborts(void **state)
{
    (void)state;
    static const bad_reg_fn cases[] = {
        bad_name,      bad_dash,       bad_empty, bad_label,   bad_label_colon, bad_label_empty,
        bad_label_dup, bad_label_many, bad_le,    bad_buckets, bad_buckets_nan, bad_twice};
    for (size_t i = 0; i < CR_ARRAY_SIZE(cases); i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (!freopen("/dev/null", "w", stderr))
                _exit(1);
            metrics_t *m = metrics_new();
            cases[i](m);
            _exit(0);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
            fail_msg("case %zu did not abort (status %d)", i, status);
    }
}

static int closed_calls;

static void on_closed(void *data)
{
    assert_ptr_equal(data, &closed_calls);
    closed_calls++;
}

static void test_close_without_loop(void **state)
{
    (void)state;
    closed_calls = 0;
    metrics_t *m = metrics_new();
    metrics_counter(m, "x_total", "X.", "a");
    metrics_close(m, on_closed, &closed_calls); /* no timer: synchronous */
    assert_int_equal(closed_calls, 1);
}

/* ---- loop lag ---------------------------------------------------------------------------- */

typedef struct {
    metrics_t *m;
    uv_timer_t blocker;
    uv_timer_t finish;
    int blocker_calls;
    int finish_calls;
    int handle_closes;
    char *scrape;
} lag_test_t;

static void on_handle_closed(uv_handle_t *h)
{
    lag_test_t *t = h->data;
    t->handle_closes++;
}

static void on_finish(uv_timer_t *timer)
{
    lag_test_t *t = timer->data;
    t->finish_calls++;
    t->scrape = render(t->m);
    metrics_close(t->m, on_closed, &closed_calls);
    metrics_close(t->m, on_closed, &closed_calls); /* while closing: does nothing */
    uv_close((uv_handle_t *)&t->finish, on_handle_closed);
}

static void on_blocker(uv_timer_t *timer)
{
    lag_test_t *t = timer->data;
    t->blocker_calls++;
    usleep(300 * 1000); /* the loop is stuck: the lag timer due in the meantime fires late */
    uv_close((uv_handle_t *)&t->blocker, on_handle_closed);
    uv_update_time(timer->loop); /* else "250 ms" counts from before the sleep */
    assert_int_equal(uv_timer_start(&t->finish, on_finish, 250, 0), 0);
}

static void test_loop_lag(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    lag_test_t t = {.m = metrics_new()};
    closed_calls = 0;

    assert_int_equal(metrics_loop_lag_start(t.m, &loop), 0);
    assert_int_equal(metrics_loop_lag_start(t.m, &loop), UV_EALREADY);
    assert_int_equal(uv_timer_init(&loop, &t.blocker), 0);
    assert_int_equal(uv_timer_init(&loop, &t.finish), 0);
    t.blocker.data = &t;
    t.finish.data = &t;
    assert_int_equal(uv_timer_start(&t.blocker, on_blocker, 150, 0), 0);

    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.blocker_calls, 1);
    assert_int_equal(t.finish_calls, 1);
    assert_int_equal(t.handle_closes, 2);
    assert_int_equal(closed_calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* Due at 100, 200 (fired about 250 ms late, once the blocker let go), then every 100 ms. */
    const char *s = t.scrape;
    assert_non_null(strstr(s, "# TYPE crossroads_event_loop_lag_seconds histogram\n"));
    double count = sample_value(s, "crossroads_event_loop_lag_seconds_count ");
    double sum = sample_value(s, "crossroads_event_loop_lag_seconds_sum ");
    double under_100ms = sample_value(s, "crossroads_event_loop_lag_seconds_bucket{le=\"0.1\"} ");
    double all = sample_value(s, "crossroads_event_loop_lag_seconds_bucket{le=\"+Inf\"} ");
    assert_true(count >= 3 && count <= 8);
    assert_true(all == count);
    assert_true(sum >= 0.2 && sum < 5);
    assert_true(under_100ms == count - 1); /* only the one blocked tick was late */
    free(t.scrape);
}

static void test_loop_lag_close_at_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    metrics_t *m = metrics_new();
    closed_calls = 0;
    assert_int_equal(metrics_loop_lag_start(m, &loop), 0);
    metrics_close(m, on_closed, &closed_calls);
    assert_int_equal(closed_calls, 0); /* the handle closes on the loop */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(closed_calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_lag_timer_does_not_hold_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    metrics_t *m = metrics_new();
    assert_int_equal(metrics_loop_lag_start(m, &loop), 0);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* returns at once: timer unreferenced */
    assert_true(uv_hrtime() - t0 < 50 * 1000000ull);
    closed_calls = 0;
    metrics_close(m, on_closed, &closed_calls);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(closed_calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- promtool ---------------------------------------------------------------------------- */

static int find_promtool(char *path, size_t len)
{
    const char *env = getenv("PATH");
    if (!env)
        return -1;
    char *dirs = cr_strdup(env), *save = NULL;
    int rc = -1;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, len, "%s/promtool", *d ? d : ".");
        if (access(path, X_OK) == 0) {
            rc = 0;
            break;
        }
    }
    free(dirs);
    return rc;
}

static double fixed_value(void *data)
{
    (void)data;
    return 42;
}

static void test_promtool_check(void **state)
{
    (void)state;
    char promtool[4096];
    if (find_promtool(promtool, sizeof promtool) != 0) {
        print_message("note: promtool not on PATH; skipping `promtool check metrics` "
                      "(Debian package \"prometheus\" provides it)\n");
        skip();
    }

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    metrics_t *m = metrics_new();
    assert_int_equal(metrics_loop_lag_start(m, &loop), 0);
    metrics_counter_t *req =
        metrics_counter(m, "crossroads_http_requests", "HTTP requests.", "route,status");
    metrics_histogram_t *lat = metrics_histogram(m, "crossroads_http_request_duration_seconds",
                                                 "Request latency.", "route", NULL, 0);
    metrics_gauge_callback(m, "crossroads_http_requests_in_flight", "In flight.", fixed_value,
                           NULL);
    metrics_gauge_t *g =
        metrics_gauge(m, "crossroads_weird_labels", "Help with \\ and\nnewline.", "value");
    metrics_counter(m, "crossroads_sagas_accepted", "Sagas accepted.", "saga_type");
    metrics_counter_inc(req, V("/v1/orders", "2xx"), 5);
    for (int i = 0; i < METRICS_MAX_CHILDREN + 3; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        metrics_counter_inc(req, V(v, "5xx"), 1);
    }
    metrics_histogram_observe(lat, V("/v1/orders"), 0.0123);
    metrics_histogram_observe(lat, V("/healthz"), 1e-6);
    metrics_gauge_set(g, V("q\"uo\\te\nnl"), NAN);
    metrics_gauge_set(g, V("inf"), INFINITY);
    metrics_gauge_set(g, V("big"), 1.5e300);
    metrics_process_collect(m);

    char *text = render(m);
    char tmpl[] = "/tmp/test_metrics_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);

    char cmd[8400];
    snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' 2>&1", promtool, tmpl);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(tmpl);
    if (status != 0 || n != 0)
        fail_msg("promtool check metrics (status %d):\n%s\non:\n%s", status, out, text);
    free(text);

    closed_calls = 0;
    metrics_close(m, on_closed, &closed_calls);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(closed_calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_labels),
        cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_default_buckets),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_label_overflow),
        cmocka_unit_test(test_number_format),
        cmocka_unit_test(test_callback_gauges),
        cmocka_unit_test(test_process_collect),
        cmocka_unit_test(test_registration_aborts),
        cmocka_unit_test(test_close_without_loop),
        cmocka_unit_test(test_loop_lag),
        cmocka_unit_test(test_loop_lag_close_at_once),
        cmocka_unit_test(test_lag_timer_does_not_hold_loop),
        cmocka_unit_test(test_promtool_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
