/*
 * app_metrics.c - the gateway's metric families: registered once at start-up, recorded by the
 * HTTP server, the Redis store, intake and the saga engine, rendered by GET /metrics.
 *
 * Labels are bounded by construction: route patterns (never a path with ids in it), status
 * codes, saga types and statuses, connector types and outcomes. No order number, tenant-chosen
 * string or id ever becomes a label.
 */
#include "app.h"

#include "api.h"
#include "auth.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

/* Latency buckets for the HTTP and Redis paths (seconds): intake should sit around 1 ms. */
static const double fast_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 5};

static void observe_http(const httpd_req_t *req, int status, double seconds, void *data)
{
    app_t *app = data;
    char code[8];
    if (status >= 100 && status <= 999) { /* every HTTP status; snprintf costs more per request */
        code[0] = (char)('0' + status / 100);
        code[1] = (char)('0' + status / 10 % 10);
        code[2] = (char)('0' + status % 10);
        code[3] = '\0';
    } else {
        snprintf(code, sizeof code, "%d", status);
    }
    const char *route = req && req->route_name ? req->route_name : (req ? "unmatched" : "framing");
    const char *lv[] = {req ? req->method : "none", route, code};
    metrics_counter_inc(app->m.http_requests, lv, 1);
    if (req) {
        const char *hv[] = {req->method, route};
        metrics_histogram_observe(app->m.http_seconds, hv, seconds);
    }
}

static void observe_redis(double seconds, void *data)
{
    app_t *app = data;
    metrics_histogram_observe(app->m.redis_seconds, NULL, seconds);
}

static double g_open_connections(void *data)
{
    httpd_stats_t st;
    httpd_stats_get(((app_t *)data)->httpd, &st);
    return (double)st.open_connections;
}

static double g_in_flight(void *data)
{
    httpd_stats_t st;
    httpd_stats_get(((app_t *)data)->httpd, &st);
    return (double)st.in_flight;
}

#define HTTPD_STAT(fn, field)                                                                      \
    static double fn(void *data)                                                                   \
    {                                                                                              \
        httpd_stats_t st;                                                                          \
        httpd_stats_get(((app_t *)data)->httpd, &st);                                              \
        return (double)st.field;                                                                   \
    }
HTTPD_STAT(c_evicted, evicted)
HTTPD_STAT(c_reads_paused, paused)

#define SAGA_STAT(fn, field)                                                                       \
    static double fn(void *data)                                                                   \
    {                                                                                              \
        saga_stats_t st;                                                                           \
        saga_engine_stats(((app_t *)data)->engine, &st);                                           \
        return (double)st.field;                                                                   \
    }
SAGA_STAT(g_sagas_running, running)
SAGA_STAT(c_claims, claimed)
SAGA_STAT(c_retries, retries)
SAGA_STAT(c_fenced, fenced)
SAGA_STAT(c_requeued, requeued)
SAGA_STAT(c_orders_expired, orders_expired)
SAGA_STAT(g_stream_len, stream_len)
SAGA_STAT(g_stream_pending, stream_pending)

/* Reconnects and timeouts summed over every Redis connection of the process. */
static store_stats_t stores_total(const app_t *app)
{
    store_stats_t sum = {0}, st;
    size_t pool = (size_t)app->n_intake_stores, n = 3 + 2 * pool;
    for (size_t i = 0; i < n; i++) {
        store_t *s = i == 0       ? app->store
                     : i == 1     ? app->saga_store
                     : i == 2     ? app->block_store
                     : i < 3 + pool ? app->intake_stores[i - 3]
                                    : app->stage_stores[i - 3 - pool];
        store_stats_get(s, &st);
        sum.reconnects += st.reconnects;
        sum.timeouts += st.timeouts;
    }
    return sum;
}

static double c_reconnects(void *data)
{
    return (double)stores_total(data).reconnects;
}

static double c_redis_timeouts(void *data)
{
    return (double)stores_total(data).timeouts;
}

static double c_intake_batches(void *data)
{
    intake_stats_t st;
    intake_stats_get(((app_t *)data)->intake, &st);
    return (double)st.batches;
}

static double c_intake_requests(void *data)
{
    intake_stats_t st;
    intake_stats_get(((app_t *)data)->intake, &st);
    return (double)st.requests;
}

static double g_ready(void *data)
{
    const char *why;
    return app_ready(data, &why) ? 1 : 0;
}

static double c_notify_sent(void *data)
{
    notify_stats_t st;
    notify_stats_get(((app_t *)data)->notifier, &st);
    return (double)st.sent;
}

static double c_notify_failed(void *data)
{
    notify_stats_t st;
    notify_stats_get(((app_t *)data)->notifier, &st);
    return (double)st.failed;
}

void app_metrics_init(app_t *app)
{
    metrics_t *m = metrics_new();
    app->metrics = m;
    app->m.http_requests = metrics_counter(m, "crossroads_http_requests_total",
                                           "HTTP responses by method, route and status code.",
                                           "method,route,code");
    app->m.http_seconds = metrics_histogram(
        m, "crossroads_http_request_duration_seconds",
        "Time from a request's first byte to its response.", "method,route", fast_buckets,
        sizeof fast_buckets / sizeof fast_buckets[0]);
    metrics_gauge_callback(m, "crossroads_http_open_connections", "Open client connections.",
                           g_open_connections, app);
    metrics_gauge_callback(m, "crossroads_http_in_flight_requests",
                           "Requests with a handler and not yet answered.", g_in_flight, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_http_connections_evicted_total",
                                         "Idle or head-incomplete connections closed at the "
                                         "connection limit.",
                                         NULL),
                         NULL, c_evicted, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_http_reads_paused_total",
                                         "Connections paused until the end of a poll phase that "
                                         "had read for its whole slice (fairness under "
                                         "overload).",
                                         NULL),
                         NULL, c_reads_paused, app);
    app->m.sagas_accepted = metrics_counter(m, "crossroads_sagas_accepted_total",
                                            "Mutations stored and answered pending, by saga type.",
                                            "type");
    app->saga_m.finished = metrics_counter(m, "crossroads_sagas_finished_total",
                                           "Sagas this process ended, by type and final status.",
                                           "type,status");
    app->saga_m.stage_seconds =
        metrics_histogram(m, "crossroads_saga_stage_duration_seconds",
                          "Time a saga spent reaching each status in this process.", "status",
                          NULL, 0);
    app->saga_m.deliveries =
        metrics_counter(m, "crossroads_delivery_attempts_total",
                        "Outbound delivery attempts by connector and outcome.",
                        "connector,outcome");
    app->saga_m.delivery_seconds =
        metrics_histogram(m, "crossroads_delivery_duration_seconds",
                          "Outbound delivery attempt latency by connector and outcome.",
                          "connector,outcome", NULL, 0);
    metrics_gauge_callback(m, "crossroads_sagas_running", "Saga runs in flight in this process.",
                           g_sagas_running, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_saga_claims_total",
                                         "Stream entries claimed from idle consumers.", NULL),
                         NULL, c_claims, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_saga_retries_total",
                                         "Delivery attempts parked for a retry delay.", NULL),
                         NULL, c_retries, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_saga_fenced_total",
                                         "Runs stopped because another process took the saga.",
                                         NULL),
                         NULL, c_fenced, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_saga_requeued_total",
                                         "Unfinished sagas the reconciler re-queued.", NULL),
                         NULL, c_requeued, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_orders_expired_total",
                                         "Orders removed saga.order_retention_s after their last "
                                         "saga ended.",
                                         NULL),
                         NULL, c_orders_expired, app);
    metrics_gauge_callback(m, "crossroads_saga_stream_length",
                           "Entries in the saga stream (sampled each second).", g_stream_len,
                           app);
    metrics_gauge_callback(m, "crossroads_saga_stream_pending",
                           "Stream entries delivered and not yet acknowledged (sampled).",
                           g_stream_pending, app);
    app->m.redis_seconds = metrics_histogram(m, "crossroads_redis_command_duration_seconds",
                                             "Redis command round-trip time.", NULL,
                                             fast_buckets,
                                             sizeof fast_buckets / sizeof fast_buckets[0]);
    metrics_counter_bind(metrics_counter(m, "crossroads_redis_reconnects_total",
                                         "Redis reconnections after the first connect.", NULL),
                         NULL, c_reconnects, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_redis_timeouts_total",
                                         "Redis commands failed by the command timeout.", NULL),
                         NULL, c_redis_timeouts, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_intake_batches_total",
                                         "Intake writes sent to Redis (one EVALSHA each).",
                                         NULL),
                         NULL, c_intake_batches, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_intake_batched_requests_total",
                                         "Requests in those writes.", NULL),
                         NULL, c_intake_requests, app);
    metrics_gauge_callback(m, "crossroads_ready", "1 when ready for traffic (GET /readyz).",
                           g_ready, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_notifications_sent_total",
                                         "Completion notifications delivered.", NULL),
                         NULL, c_notify_sent, app);
    metrics_counter_bind(metrics_counter(m, "crossroads_notifications_failed_total",
                                         "Completion notifications given up.", NULL),
                         NULL, c_notify_failed, app);
    httpd_set_observer(app->httpd, observe_http, app);
    store_set_observer(app->store, observe_redis, app);
    for (int i = 0; i < app->n_intake_stores; i++)
        store_set_observer(app->intake_stores[i], observe_redis, app);
    saga_engine_set_metrics(app->engine, &app->saga_m);
    metrics_loop_lag_start(m, app->loop);
}

void api_metrics(struct app *app, httpd_req_t *req, const route_t *route,
                 const struct auth_ctx *auth)
{
    (void)route;
    (void)auth;
    buf_t out = {0};
    metrics_process_collect(app->metrics);
    metrics_render(app->metrics, &out);
    httpd_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, out.data, out.len);
    buf_free(&out);
}
