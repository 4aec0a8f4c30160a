/*
 * app.h - the process: owns the loop and every component (configuration, Redis store, HTTP
 * server), signals, draining and readiness.
 *
 * Must not: do request work itself beyond routing and authentication (handlers in api_*.c).
 */
#ifndef CR_APP_H
#define CR_APP_H

#include "config.h"
#include "httpd.h"
#include "intake.h"
#include "metrics.h"
#include "outhttp.h"
#include "saga.h"
#include "store.h"

/* Connections that carry intake writes (see app.c: why more than one). */
#define APP_INTAKE_CONNS 8

#include <stdbool.h>
#include <uv.h>

typedef struct app {
    uv_loop_t *loop;
    cfg_t *cfg; /* current configuration; a reload swaps it */
    char *config_path;
    store_t *store;       /* intake, reads, admin */
    store_t *saga_store;  /* chores of the saga engine */
    store_t **intake_stores; /* redis.pool connections for intake writes */
    int n_intake_stores;
    store_t **stage_stores; /* redis.pool connections for saga stage writes */
    intake_t *intake;     /* batches intake writes over intake_stores */
    store_t *block_store; /* blocking stream reads only */
    outhttp_t *http;
    notifier_t *notifier;
    saga_engine_t *engine;
    httpd_t *httpd;
    char consumer[96];    /* this process's consumer name in the saga group */
    struct rate_bucket {
        char tenant[65];
        double tokens;
        uint64_t last_ms;
    } *buckets; /* per-tenant token buckets (rate_limit), this process's share */
    size_t n_buckets;
    metrics_t *metrics;
    saga_metrics_t saga_m;
    struct {
        metrics_counter_t *http_requests;
        metrics_histogram_t *http_seconds;
        metrics_counter_t *sagas_accepted;
        metrics_histogram_t *redis_seconds;
    } m;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer;
    uv_check_t log_check; /* flushes buffered log lines once per loop iteration */
    uint64_t drain_deadline;
    bool draining;
    bool reloading;
    bool workers; /* saga.workers as it was at start (a reload does not change it) */
    bool stopped;
    bool handing_back; /* the drain timed out: runs still on are being released */
    bool handed_back;
    int exit_code;
} app_t;

/* Serve with the configuration at config_path until SIGTERM/SIGINT; returns the exit code. */
int app_serve(const char *config_path);

/*
 * The HTTP server's request callback (data: the app_t): routes one parsed request, authenticates
 * it for keyed routes, applies the tenant's rate limit and calls the route's handler (api_*.c),
 * which answers now or later. Exported so the HTTP fuzzer drives the real one.
 */
void app_handle_request(httpd_req_t *req, void *data);

/*
 * Re-read the configuration file off the loop and swap it in (tenants, keys, mappings, limits).
 * cb (may be NULL) gets 0, or a negative code and the reason the new file was refused (the old
 * one keeps serving). Returns 0, or UV_EBUSY (a reload is running) / UV_ECANCELED (draining)
 * without calling cb.
 */
typedef void (*app_reload_cb)(int status, const char *error, void *data);
int app_reload(app_t *app, app_reload_cb cb, void *data);

/* Register the metric families and hook them to the components (app_metrics.c). */
void app_metrics_init(app_t *app);

/* Is the process ready for traffic (Redis reachable, not draining)? reason gets why not. */
bool app_ready(const app_t *app, const char **reason);

#endif
