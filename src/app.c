/*
 * app.c - process life cycle: start-up, routing and authentication of each request, SIGTERM
 * drain, SIGHUP reload, orderly shutdown (see app.h).
 *
 * Shutdown closes every handle it owns and lets the loop run dry, so uv_loop_close() succeeds;
 * a handle left open is a bug that the exit path reports.
 */
#include "app.h"

#include "api.h"
#include "auth.h"
#include "intake.h"
#include "log.h"
#include "router.h"
#include "util/cr.h"
#include "util/crypto.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool app_ready(const app_t *app, const char **reason)
{
    if (app->draining) {
        *reason = "draining";
        return false;
    }
    if (!intake_ready(app->intake) || !store_ready(app->store) || !store_ready(app->saga_store) ||
        !store_ready(app->block_store)) {
        *reason = "redis unavailable";
        return false;
    }
    *reason = NULL;
    return true;
}

/* ---------------------------------------------------------------- requests */

/*
 * Per-tenant token bucket (tenants[].rate_limit). Each process keeps its own bucket with the
 * configured rate: behind a load balancer spreading a tenant's traffic over N processes the
 * tenant may reach N times the rate (README, "Rate limits"). Returns 0 when the request may
 * proceed, else the seconds to wait.
 */
static long rate_check(app_t *app, const cfg_tenant_t *t)
{
    if (t->rate_per_second <= 0)
        return 0;
    struct rate_bucket *b = NULL;
    for (size_t i = 0; i < app->n_buckets && b == NULL; i++)
        if (strcmp(app->buckets[i].tenant, t->name) == 0)
            b = &app->buckets[i];
    uint64_t now = uv_now(app->loop);
    if (b == NULL) {
        app->buckets = cr_realloc(app->buckets, (app->n_buckets + 1) * sizeof *app->buckets);
        b = &app->buckets[app->n_buckets++];
        snprintf(b->tenant, sizeof b->tenant, "%s", t->name);
        b->tokens = t->rate_burst;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) / 1000.0 * t->rate_per_second;
    if (b->tokens > t->rate_burst)
        b->tokens = t->rate_burst;
    b->last_ms = now;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    double wait = (1.0 - b->tokens) / t->rate_per_second;
    return (long)wait + 1;
}

void app_handle_request(httpd_req_t *req, void *data)
{
    app_t *app = data;
    char param[64] = "";
    int status = 0;
    const char *allow = NULL;
    const route_t *route =
        route_match(req->method, req->path, param, sizeof param, &status, &allow);
    if (route == NULL) {
        char extra[64] = "";
        if (status == 405)
            snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
        httpd_respond_detail(req, status, status == 405 ? "Method Not Allowed" : "Not Found",
                             status == 405 ? extra : NULL);
        return;
    }
    req->route_name = route->path;
    const char *rp = strchr(route->path, '{') ? param : "";
    size_t rn = strnlen(rp, sizeof req->route_param - 1);
    memcpy(req->route_param, rp, rn);
    req->route_param[rn] = '\0';
    /* Ids are stored lower-case; accept them in any case. */
    for (char *p = req->route_param; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    if (route->auth == ROUTE_AUTH_NONE) {
        route->handler(app, req, route, NULL);
        return;
    }
    auth_ctx_t auth;
    const char *detail;
    char detail_buf[96];
    int rc = auth_check(app->cfg, req, route->scope, &auth, &detail, detail_buf,
                        sizeof detail_buf);
    if (rc != 0) {
        httpd_respond_detail(req, rc, detail,
                             rc == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL);
        return;
    }
    snprintf(req->tenant, sizeof req->tenant, "%s", auth.tenant->name);
    long wait = rate_check(app, auth.tenant);
    if (wait > 0) {
        char extra[48];
        snprintf(extra, sizeof extra, "Retry-After: %ld\r\n", wait);
        httpd_respond_detail(req, 429, "Too many requests: the tenant's rate limit is exceeded",
                             extra);
        return;
    }
    route->handler(app, req, route, &auth);
}

/* ---------------------------------------------------------------- reload */

typedef struct reload_work {
    uv_work_t work;
    app_t *app;
    cfg_t *cfg;
    char err[512];
    app_reload_cb cb;
    void *cb_data;
} reload_work_t;

static void reload_load(uv_work_t *w)
{
    /* Off the loop: a thread-pool thread reads and checks the file. */
    reload_work_t *rw = CR_CONTAINER_OF(w, reload_work_t, work);
    if (cfg_load_file(rw->app->config_path, &rw->cfg, rw->err, sizeof rw->err) != 0)
        rw->cfg = NULL;
}

static void limits_from_cfg(const cfg_t *cfg, httpd_limits_t *lim)
{
    lim->max_body_bytes = cfg->max_body_bytes;
    lim->max_header_bytes = cfg->max_header_bytes;
    lim->max_header_count = cfg->max_header_count;
    lim->max_request_line = cfg->max_request_line;
    lim->max_connections = cfg->max_connections;
    lim->header_timeout_ms = cfg->header_timeout_ms;
    lim->body_timeout_ms = cfg->body_timeout_ms;
    lim->idle_timeout_ms = cfg->idle_timeout_ms;
}

static void reload_done(uv_work_t *w, int status)
{
    reload_work_t *rw = CR_CONTAINER_OF(w, reload_work_t, work);
    app_t *app = rw->app;
    app->reloading = false;
    bool ok = false;
    if (status != 0 || rw->cfg == NULL) {
        if (status != 0)
            snprintf(rw->err, sizeof rw->err, "reload cancelled");
        log_msg(LOG_ERROR, "config reload refused; keeping the running config", "error",
                rw->err, NULL);
    } else if (app->stopped) {
        cfg_unref(rw->cfg);
    } else {
        ok = true;
        /* The listen address, Redis URL and saga.workers need a restart; everything else swaps
         * now. */
        cfg_t *old = app->cfg;
        if (app->workers != rw->cfg->saga_workers)
            log_msg(LOG_WARN, "saga.workers changed: takes effect at the next start", NULL);
        app->cfg = rw->cfg;
        httpd_limits_t lim;
        limits_from_cfg(app->cfg, &lim);
        httpd_set_limits(app->httpd, &lim);
        if (getenv("CROSSROADS_LOG_LEVEL") == NULL)
            log_level_set(app->cfg->log_level);
        cfg_unref(old);
        log_msg(LOG_INFO, "config reloaded", "path", app->config_path, NULL);
    }
    if (rw->cb)
        rw->cb(ok ? 0 : UV_EINVAL, ok ? NULL : rw->err, rw->cb_data);
    free(rw);
}

int app_reload(app_t *app, app_reload_cb cb, void *data)
{
    if (app->draining)
        return UV_ECANCELED;
    if (app->reloading)
        return UV_EBUSY;
    reload_work_t *rw = cr_calloc(1, sizeof *rw);
    rw->app = app;
    rw->cb = cb;
    rw->cb_data = data;
    app->reloading = true;
    int rc = uv_queue_work(app->loop, &rw->work, reload_load, reload_done);
    if (rc != 0) {
        app->reloading = false;
        free(rw);
    }
    return rc;
}

/* ---------------------------------------------------------------- shutdown */

static void on_store_closed(void *data)
{
    (void)data;
}

static void on_httpd_closed(void *data)
{
    (void)data;
}

static void app_stop(app_t *app)
{
    if (app->stopped)
        return;
    app->stopped = true;
    uv_timer_stop(&app->drain_timer);
    uv_close((uv_handle_t *)&app->drain_timer, NULL);
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    uv_close((uv_handle_t *)&app->sig_hup, NULL);
    uv_close((uv_handle_t *)&app->log_check, NULL);
    httpd_close(app->httpd, on_httpd_closed, app);
    /* The engine first: its runs end as the stores and the HTTP client fail what they hold. */
    saga_engine_close(app->engine, NULL, NULL);
    notifier_close(app->notifier);
    outhttp_close(app->http, NULL, NULL);
    intake_close(app->intake); /* its last batch fails with the stores, below */
    store_close(app->store, on_store_closed, app);
    store_close(app->saga_store, on_store_closed, app);
    for (int i = 0; i < app->n_intake_stores; i++) {
        store_close(app->intake_stores[i], on_store_closed, app);
        store_close(app->stage_stores[i], on_store_closed, app);
    }
    store_close(app->block_store, on_store_closed, app);
    metrics_close(app->metrics, NULL, NULL);
}

static void on_handed_back(void *data)
{
    app_t *app = data;
    app->handed_back = true; /* the drain timer stops the process */
}

/* How long a timed-out drain waits for Redis to take the release of the runs still on. */
#define HAND_BACK_MS 1000

static void on_drain_tick(uv_timer_t *t)
{
    app_t *app = t->data;
    httpd_stats_t st;
    httpd_stats_get(app->httpd, &st);
    uint64_t now = uv_now(app->loop);
    if (app->handing_back) {
        if (app->handed_back || now >= app->drain_deadline + HAND_BACK_MS)
            app_stop(app);
    } else if (st.in_flight == 0 && st.open_connections == 0 &&
               saga_engine_running(app->engine) == 0) {
        log_msg(LOG_INFO, "drained; exiting", NULL);
        app_stop(app);
    } else if (now >= app->drain_deadline) {
        char n[32];
        snprintf(n, sizeof n, "%zu", st.in_flight);
        char r[32];
        snprintf(r, sizeof r, "%zu", saga_engine_running(app->engine));
        log_msg(LOG_WARN, "drain timeout; unfinished saga steps are handed back", "#in_flight",
                n, "#sagas_running", r, NULL);
        /* Their claims in other processes must not count as deaths (saga_lua_release). */
        app->handing_back = true;
        saga_engine_hand_back(app->engine, on_handed_back, app);
    }
}

static void app_drain(app_t *app)
{
    if (app->draining)
        return;
    app->draining = true;
    log_msg(LOG_INFO, "draining", NULL);
    httpd_drain(app->httpd);
    saga_engine_drain(app->engine);
    app->drain_deadline = uv_now(app->loop) + (uint64_t)app->cfg->saga_drain_timeout_ms;
    uv_timer_start(&app->drain_timer, on_drain_tick, 0, 20);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    app_t *app = sig->data;
    if (signum == SIGHUP) {
        app_reload(app, NULL, NULL);
        return;
    }
    if (app->draining && signum == SIGINT) {
        app_stop(app); /* a second Ctrl-C: stop now */
        return;
    }
    app_drain(app);
}

static void on_log_check(uv_check_t *h)
{
    (void)h;
    log_flush();
}

static void walk_report(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        log_msg(LOG_ERROR, "handle left open at exit", "type", uv_handle_type_name(h->type),
                NULL);
}

/* ---------------------------------------------------------------- start-up */

int app_serve(const char *config_path)
{
    char err[512];
    app_t app;
    memset(&app, 0, sizeof app);
    int rc = 1;

    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    signal(SIGPIPE, SIG_IGN);
    if (cfg_load_file(config_path, &app.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "crossroads: %s\n", err);
        return 2;
    }
    log_level_set(app.cfg->log_level);
    const char *level = getenv("CROSSROADS_LOG_LEVEL");
    if (level && *level && log_level_set(level) != 0) {
        fprintf(stderr, "crossroads: CROSSROADS_LOG_LEVEL: unknown level '%s'\n", level);
        cfg_unref(app.cfg);
        return 2;
    }
    app.config_path = cr_strdup(config_path);
    app.loop = uv_default_loop();

    app.store = store_new(app.loop, app.cfg->redis_url, app.cfg->redis_command_timeout_ms);
    if (app.store == NULL) {
        fprintf(stderr, "crossroads: %s: redis.url: malformed\n", config_path);
        goto out_cfg;
    }
    /* Reads and admin on one connection, the saga engine's chores on another, blocking stream
     * reads on a third; intake writes and stage writes on redis.pool connections each. */
    app.saga_store = store_new(app.loop, app.cfg->redis_url, app.cfg->redis_command_timeout_ms);
    /* Intake writes spread over redis.pool connections: Redis reads at most 16 KiB from one
     * connection per event-loop pass and, with appendfsync always, fsyncs once per pass, so a
     * single connection caps intake at what fits in 16 KiB per fsync. */
    app.n_intake_stores = app.cfg->redis_pool;
    app.intake_stores = cr_calloc((size_t)app.n_intake_stores, sizeof *app.intake_stores);
    for (int i = 0; i < app.n_intake_stores; i++)
        app.intake_stores[i] =
            store_new(app.loop, app.cfg->redis_url, app.cfg->redis_command_timeout_ms);
    app.intake = intake_new(app.loop, app.intake_stores, (size_t)app.n_intake_stores);
    app.stage_stores = cr_calloc((size_t)app.n_intake_stores, sizeof *app.stage_stores);
    for (int i = 0; i < app.n_intake_stores; i++)
        app.stage_stores[i] =
            store_new(app.loop, app.cfg->redis_url, app.cfg->redis_command_timeout_ms);
    app.block_store = store_new(app.loop, app.cfg->redis_url,
                                app.cfg->redis_command_timeout_ms + 2000);
    app.http = outhttp_new(app.loop);
    api_read_init(app.store);
    api_admin_init(app.store);
    {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        char rnd[CRYPTO_OID_LEN];
        crypto_oid(rnd);
        snprintf(app.consumer, sizeof app.consumer, "%s-%d-%s", host, (int)getpid(), rnd + 16);
    }
    app.engine = saga_engine_new(app.loop, app.saga_store, app.block_store, app.http, &app.cfg,
                                 app.consumer);
    saga_engine_register_scripts(app.engine, app.saga_store);
    for (int i = 0; i < app.n_intake_stores; i++) {
        saga_engine_register_scripts(app.engine, app.stage_stores[i]);
        saga_engine_add_stage_store(app.engine, app.stage_stores[i]);
    }
    saga_engine_register_scripts(app.engine, app.store); /* retry and accept from the API */
    app.notifier = notifier_new(app.loop, app.http);
    saga_engine_set_notifier(app.engine, app.notifier);

    httpd_limits_t lim;
    limits_from_cfg(app.cfg, &lim);
    app.httpd = httpd_new(app.loop, &lim, app_handle_request, &app);
    int lrc = httpd_listen(app.httpd, app.cfg->listen_host, app.cfg->listen_port);
    if (lrc != 0) {
        fprintf(stderr, "crossroads: cannot listen on %s:%d: %s\n", app.cfg->listen_host,
                app.cfg->listen_port, uv_strerror(lrc));
        httpd_close(app.httpd, NULL, NULL);
        saga_engine_close(app.engine, NULL, NULL);
        notifier_close(app.notifier);
        outhttp_close(app.http, NULL, NULL);
        intake_close(app.intake);
        store_close(app.store, NULL, NULL);
        store_close(app.saga_store, NULL, NULL);
        for (int i = 0; i < app.n_intake_stores; i++) {
            store_close(app.intake_stores[i], NULL, NULL);
            store_close(app.stage_stores[i], NULL, NULL);
        }
        store_close(app.block_store, NULL, NULL);
        uv_run(app.loop, UV_RUN_DEFAULT);
        goto out_cfg;
    }

    app_metrics_init(&app);
    uv_check_init(app.loop, &app.log_check);
    uv_check_start(&app.log_check, on_log_check);
    uv_timer_init(app.loop, &app.drain_timer);
    app.drain_timer.data = &app;
    uv_signal_init(app.loop, &app.sig_term);
    uv_signal_init(app.loop, &app.sig_int);
    uv_signal_init(app.loop, &app.sig_hup);
    app.sig_term.data = app.sig_int.data = app.sig_hup.data = &app;
    uv_signal_start(&app.sig_term, on_signal, SIGTERM);
    uv_signal_start(&app.sig_int, on_signal, SIGINT);
    uv_signal_start(&app.sig_hup, on_signal, SIGHUP);
    store_start(app.store);
    store_start(app.saga_store);
    for (int i = 0; i < app.n_intake_stores; i++) {
        store_start(app.intake_stores[i]);
        store_start(app.stage_stores[i]);
    }
    store_start(app.block_store);
    app.workers = app.cfg->saga_workers;
    if (app.workers)
        saga_engine_start(app.engine);
    else
        log_msg(LOG_WARN,
                "saga workers off (saga.workers false): this process stores requests; processes "
                "with saga workers on must run them",
                NULL);

    char port[16];
    snprintf(port, sizeof port, "%d", httpd_port(app.httpd));
    log_msg(LOG_INFO, "listening", "host", app.cfg->listen_host, "#port", port, "version",
            CR_VERSION, NULL);

    uv_run(app.loop, UV_RUN_DEFAULT);
    rc = 0;
    log_flush();
    if (uv_loop_close(app.loop) != 0) {
        uv_walk(app.loop, walk_report, NULL);
        rc = 1;
    }
out_cfg:
    free(app.buckets);
    free(app.intake_stores);
    free(app.stage_stores);
    cfg_unref(app.cfg);
    free(app.config_path);
    return rc;
}
