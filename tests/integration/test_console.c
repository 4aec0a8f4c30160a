/*
 * test_console.c - the operator console's server side, against the real gateway binary, a real
 * redis-server and two loopback destination stubs (acme-supply's and swift-haul's systems, the
 * webhook tenants of tests/fixtures/configs/gateway.json):
 *
 *   - GET /console and its two assets: the bytes of src/console/ as built, each with its type,
 *     a Content-Security-Policy allowing this origin only, nosniff and no-store; no key needed;
 *     nothing else served under /console.
 *   - the admin API it reads: every filter (status, type, tenant, order, since/until, combined)
 *     and its 422s; counts agreeing with the listing; scope enforcement (no key 401, tenant keys
 *     403 with nothing in the answer, the admin key by X-API-Key and by Bearer).
 *   - pagination: a cursor walk with small pages while another thread keeps adding sagas lists
 *     every saga that existed when it began exactly once, in (created_ms, saga_id) order, and
 *     never one newer than its cursor.
 *   - retention: with saga.retention_s = 2, once the sagas have ended and expired, the index
 *     trim leaves every cr:{cr}:idx:* sorted set empty (ZCARD 0; found by SCAN here, in the
 *     test only), and the next batch is all the indexes hold. The trim chore runs when the
 *     engine starts and then every 60 s (src/sagaq.c); the test restarts the gateway to get a
 *     run at once, and waits up to 70 s in case it does not come.
 *
 * The browser side (the page itself, in Chromium) is tests/console/console.test.mjs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "stub_dest.h"

#define ADMIN_KEY        "demo-admin-key"
#define ACME_KEY         "demo-acme-key"
#define SWIFT_KEY        "demo-swift-key"
#define KIBO_KEY         "demo-kibo-key"
#define SAGA_DEADLINE_MS 20000
#define CSP                                                                                        \
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "             \
    "script-src 'self'; frame-ancestors 'none'"

static harness_redis_t g_redis;
static harness_gw_t g_gw;
static bool g_redis_up, g_gw_up;
static stub_dest_t *g_acme, *g_swift;
static int g_orders; /* a counter for unique order numbers */

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static const char *str_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* method path on port with key (NULL: none; "Bearer x": as Authorization) and dest. */
static int call_on(int port, const char *method, const char *path, const char *key,
                   const char *dest, const char *body, harness_resp_t *resp)
{
    char kh[128], dh[128];
    const char *h[4];
    size_t n = 0;
    if (body)
        h[n++] = "Content-Type: application/json";
    if (key) {
        if (strncmp(key, "Bearer ", 7) == 0)
            snprintf(kh, sizeof kh, "Authorization: %s", key);
        else
            snprintf(kh, sizeof kh, "X-API-Key: %s", key);
        h[n++] = kh;
    }
    if (dest) {
        snprintf(dh, sizeof dh, "X-Dest-Tenant-Name: %s", dest);
        h[n++] = dh;
    }
    h[n] = NULL;
    if (harness_http(port, method, path, h, body, body ? strlen(body) : 0, resp) != 0)
        fail_msg("%s %s: no answer from the gateway on port %d", method, path, port);
    return resp->status;
}

/* A POST carries "{}" (a POST without a body is a 411 before anything else is looked at). */
static int call(const char *method, const char *path, const char *key, harness_resp_t *resp)
{
    return call_on(g_gw.port, method, path, key, NULL, strcmp(method, "POST") == 0 ? "{}" : NULL,
                   resp);
}

/* GET path as the admin on port; the JSON body (caller decrefs) when the status is want. */
static json_t *admin_get_on(int port, const char *path, int want)
{
    harness_resp_t r;
    int st = call_on(port, "GET", path, ADMIN_KEY, NULL, NULL, &r);
    if (st != want)
        fail_msg("GET %s: %d, want %d: %s", path, st, want, r.body ? r.body : "");
    json_t *j = json_incref(r.json);
    harness_resp_free(&r);
    if (want == 200 && j == NULL)
        fail_msg("GET %s: the body is not JSON", path);
    return j;
}

static json_t *admin_get(const char *path, int want)
{
    return admin_get_on(g_gw.port, path, want);
}

static char *create_body(const char *number, bool swift)
{
    json_t *b = json_pack("{s:s, s:[{s:{s:s}, s:{s:s}, s:{s:s}, s:i, s:s}], s:s}", "order_number",
                          number, "lines", "product", "source_id", swift ? "SH-DSL" : "ULSD",
                          "terminal", "source_id", swift ? "SH-HOU" : "HOU-T1", "site", "source_id",
                          swift ? "SH-ATX12" : "ATX-S12", "quantity", 8000, "uom", "gal",
                          "requested_delivery", "2026-05-12T08:00:00.000Z");
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

typedef struct made {
    char saga_id[25];
    char order_id[25];
    char number[40];
} made_t;

/*
 * POST /v1/order/create on port as key (acme-supply to swift-haul, or swift-haul to
 * acme-supply). No cmocka calls: the inserter thread uses it too. false (and why, in err) on
 * anything but a 200 with a saga id and an order id.
 */
static bool create_try(int port, const char *key, made_t *out, char *err, size_t err_size)
{
    bool swift = strcmp(key, SWIFT_KEY) == 0;
    snprintf(out->number, sizeof out->number, "PO-CON-%d-%d", (int)getpid(),
             __atomic_add_fetch(&g_orders, 1, __ATOMIC_SEQ_CST));
    char *body = create_body(out->number, swift);
    char kh[128];
    snprintf(kh, sizeof kh, "X-API-Key: %s", key);
    const char *h[] = {"Content-Type: application/json", kh,
                       swift ? "X-Dest-Tenant-Name: acme-supply" : "X-Dest-Tenant-Name: swift-haul",
                       NULL};
    harness_resp_t r;
    bool ok = harness_http(port, "POST", "/v1/order/create", h, body, strlen(body), &r) == 0;
    const char *sid = ok ? str_at(json_object_get(r.json, "log"), "saga_id") : NULL;
    const char *oid = ok ? str_at(r.json, "order_id") : NULL;
    ok = ok && r.status == 200 && sid && oid && strlen(sid) == 24 && strlen(oid) == 24;
    if (ok) {
        snprintf(out->saga_id, sizeof out->saga_id, "%s", sid);
        snprintf(out->order_id, sizeof out->order_id, "%s", oid);
    } else {
        snprintf(err, err_size, "create %s as %s: %d: %s", out->number, key, r.status,
                 r.body ? r.body : "(no answer)");
    }
    harness_resp_free(&r);
    free(body);
    return ok;
}

static void create_on(int port, const char *key, made_t *out)
{
    char err[512];
    if (!create_try(port, key, out, err, sizeof err))
        fail_msg("%s", err);
}

static void create(const char *key, made_t *out)
{
    create_on(g_gw.port, key, out);
}

/* update_status of an acme order (by number); the saga id into sid. */
static void update_status_on(int port, const char *number, char sid[25])
{
    char *body =
        harness_fmt("{\"order\":{\"order_number\":\"%s\"},\"progress_status\":\"arrived_at_load\","
                    "\"location\":{\"source_id\":\"HOU-T1\"},\"eta\":\"2026-05-11T19:25:51.332Z\"}",
                    number);
    harness_resp_t r;
    int st = call_on(port, "POST", "/v1/order/update_status", ACME_KEY, "swift-haul", body, &r);
    if (st != 200 || r.json == NULL)
        fail_msg("update_status %s: %d: %s", number, st, r.body ? r.body : "");
    snprintf(sid, 25, "%s", str_at(json_object_get(r.json, "log"), "saga_id"));
    harness_resp_free(&r);
    free(body);
}

static bool is_final(const char *st)
{
    return st && (strcmp(st, "synced") == 0 || strcmp(st, "canceled") == 0 ||
                  strcmp(st, "rejected") == 0 || strcmp(st, "error") == 0);
}

/* Poll the admin view of a saga on port until it is final; its status must be want. */
static void wait_final_on(int port, const char *sid, const char *want)
{
    char *path = harness_fmt("/v1/admin/sagas/%s", sid);
    long long end = harness_now_ms() + SAGA_DEADLINE_MS;
    for (;;) {
        json_t *v = admin_get_on(port, path, 200);
        const char *st = str_at(json_object_get(v, "saga"), "status");
        if (is_final(st)) {
            if (want && strcmp(st, want) != 0)
                fail_msg("saga %s ended %s, want %s", sid, st, want);
            json_decref(v);
            break;
        }
        json_decref(v);
        if (harness_now_ms() > end)
            fail_msg("saga %s did not end within %d ms", sid, SAGA_DEADLINE_MS);
        harness_sleep_ms(20);
    }
    free(path);
}

static void wait_final(const char *sid, const char *want)
{
    wait_final_on(g_gw.port, sid, want);
}

/* RFC 3339 to the second (the admin API's since/until; see the report on milliseconds). */
static void iso_sec(long long ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep into the next wall-clock second; returns its start (ms). Sagas made before it are all
 * older than a "since" of that second. */
static long long next_second(void)
{
    long long now = wall_ms();
    harness_sleep_ms((int)(1000 - now % 1000) + 5);
    return (wall_ms() / 1000) * 1000;
}

/* The saga ids of a listing (one page), in order, as a JSON array of strings (caller decrefs). */
static json_t *ids_of(const json_t *page)
{
    json_t *out = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(page, "items"), i, it)
        json_array_append_new(out, json_string(str_at(it, "saga_id")));
    return out;
}

/* GET /v1/admin/sagas?<query> (one page, limit 200): the ids in order (caller decrefs). */
static json_t *list_ids(const char *query)
{
    char *path = harness_fmt("/v1/admin/sagas?limit=200&%s", query);
    json_t *page = admin_get(path, 200);
    free(path);
    const char *next = str_at(page, "next");
    if (next == NULL || next[0] != '\0')
        fail_msg("GET /v1/admin/sagas?%s: more than one page, or no \"next\"", query);
    json_t *ids = ids_of(page);
    json_decref(page);
    return ids;
}

/* The listing must be exactly these ids, in this order. */
static void expect_ids(const char *query, const char *const *want, size_t n)
{
    json_t *got = list_ids(query);
    bool same = json_array_size(got) == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(json_string_value(json_array_get(got, i)), want[i]) == 0;
    if (!same) {
        char *g = json_dumps(got, JSON_COMPACT);
        fprintf(stderr, "want:");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", want[i]);
        fail_msg("\nGET /v1/admin/sagas?%s listed %s", query, g);
    }
    json_decref(got);
}

static bool json_has_string(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

static json_t *make_overrides(long retention_s)
{
    char acme[128], swift[128];
    stub_dest_url(g_acme, acme, sizeof acme);
    stub_dest_url(g_swift, swift, sizeof swift);
    /* every tenant but swift-haul delivers to the acme stub */
    json_t *tenants = harness_fixture_tenants_at((const char *[]){
        "acme-supply", acme, "swift-haul", swift, "kibo-retail", acme, "tecspal-hw", acme, NULL});
    if (tenants == NULL)
        return NULL;
    return json_pack("{s:o, s:{s:i, s:i, s:i, s:i, s:I}}", "tenants", tenants, "saga",
                     "max_attempts", 2, "retry_base_ms", 50, "retry_max_ms", 200, "claim_idle_ms",
                     2000, "retention_s", (json_int_t)retention_s);
}

static int group_setup(void **state)
{
    (void)state;
    setenv("ACME_WEBHOOK_SECRET", "acme-console-secret", 1);
    setenv("SWIFT_WEBHOOK_SECRET", "swift-console-secret", 1);
    setenv("TECSPAL_TOKEN", "tecspal-console-token", 1);
    g_acme = stub_dest_start();
    g_swift = stub_dest_start();
    if (g_acme == NULL || g_swift == NULL)
        return -1;
    json_t *ov = make_overrides(604800);
    if (ov == NULL || harness_redis_start(&g_redis, false) != 0)
        return -1;
    g_redis_up = true;
    int rc = harness_gw_start(&g_gw, "gateway.json", g_redis.port, ov);
    json_decref(ov);
    if (rc != 0)
        return -1;
    g_gw_up = true;
    return harness_gw_wait_ready(&g_gw, 200, 10000) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (g_gw_up && harness_gw_stop(&g_gw) != 0)
        rc = -1;
    if (g_redis_up)
        harness_redis_stop(&g_redis);
    stub_dest_stop(g_acme);
    stub_dest_stop(g_swift);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The page and its assets
 * ------------------------------------------------------------------------------------------- */

static char *source_file(const char *name, size_t *len)
{
    const char *fx = getenv("CR_FIXTURES");
    assert_non_null(fx);
    char *path = harness_fmt("%s/../../src/console/%s", fx, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    free(path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void expect_header(const harness_resp_t *r, const char *name, const char *want,
                          const char *what)
{
    char v[512];
    if (!harness_resp_header(r, name, v, sizeof v))
        fail_msg("%s: no %s header", what, name);
    if (strcmp(v, want) != 0)
        fail_msg("%s: %s is \"%s\", want \"%s\"", what, name, v, want);
}

static void test_console_files(void **state)
{
    (void)state;
    static const struct {
        const char *path, *file, *type;
    } files[] = {
        {"/console", "index.html", "text/html; charset=utf-8"},
        {"/console/console.js", "console.js", "text/javascript; charset=utf-8"},
        {"/console/console.css", "console.css", "text/css; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        /* No key needed, and a tenant key changes nothing: the files hold no data. */
        for (int k = 0; k < 2; k++) {
            harness_resp_t r;
            int st = call("GET", files[i].path, k ? ACME_KEY : NULL, &r);
            if (st != 200)
                fail_msg("GET %s: %d", files[i].path, st);
            expect_header(&r, "Content-Type", files[i].type, files[i].path);
            expect_header(&r, "Content-Security-Policy", CSP, files[i].path);
            expect_header(&r, "X-Content-Type-Options", "nosniff", files[i].path);
            expect_header(&r, "Cache-Control", "no-store", files[i].path);
            size_t len;
            char *want = source_file(files[i].file, &len);
            if (r.body_len != len || memcmp(r.body, want, len) != 0)
                fail_msg("GET %s: %zu bytes that are not src/console/%s (%zu bytes)", files[i].path,
                         r.body_len, files[i].file, len);
            free(want);
            harness_resp_free(&r);
        }
    }
    /* Nothing else: other names, other depths, traversal, other methods. */
    static const char *const absent[] = {"/console/",
                                         "/console/index.html",
                                         "/console/app.js",
                                         "/console/../openapi.json",
                                         "/console/..%2fopenapi.json",
                                         "/console/%2e%2e",
                                         "/console/a/b",
                                         "/console.js",
                                         "/consoles"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        /* A raw socket: curl would squash "/../" before sending it. */
        int fd = harness_raw_connect(g_gw.port);
        assert_true(fd >= 0);
        char *req = harness_fmt("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                                absent[i]);
        assert_int_equal(harness_raw_send(fd, req, strlen(req), 0), 0);
        size_t len;
        bool closed;
        char *raw = harness_raw_recv_n(fd, 1, 5000, &len, &closed);
        close(fd);
        harness_resp_t r;
        if (raw == NULL || harness_raw_parse(raw, len, 0, &r) != 0)
            fail_msg("GET %s: no answer", absent[i]);
        if (r.status != 404)
            fail_msg("GET %s: %d, want 404: %s", absent[i], r.status, r.body ? r.body : "");
        harness_resp_free(&r);
        free(raw);
        free(req);
    }
    harness_resp_t r;
    assert_int_equal(call("POST", "/console", NULL, &r), 405);
    char allow[32];
    assert_true(harness_resp_header(&r, "Allow", allow, sizeof allow));
    assert_string_equal(allow, "GET");
    harness_resp_free(&r);
    /* The page names no other host, and holds no inline script or style (the CSP forbids them). */
    size_t len;
    char *html = source_file("index.html", &len);
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    assert_null(strstr(html, "<script>"));
    assert_null(strstr(html, "style="));
    free(html);
}

/* ---------------------------------------------------------------------------------------------
 * Scope
 * ------------------------------------------------------------------------------------------- */

static void test_scope(void **state)
{
    (void)state;
    made_t m;
    create(ACME_KEY, &m);
    wait_final(m.saga_id, "synced");
    struct {
        const char *method;
        char *path;
    } routes[] = {
        {"GET", harness_fmt("/v1/admin/sagas")},
        {"GET", harness_fmt("/v1/admin/sagas?tenant=acme-supply")},
        {"GET", harness_fmt("/v1/admin/counts")},
        {"GET", harness_fmt("/v1/admin/sagas/%s", m.saga_id)},
        {"POST", harness_fmt("/v1/admin/sagas/%s/retry", m.saga_id)},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const char *method = routes[i].method, *path = routes[i].path;
        harness_resp_t r;
        /* No key: 401 with a challenge. */
        if (call(method, path, NULL, &r) != 401)
            fail_msg("%s %s without a key: %d, want 401", method, path, r.status);
        char v[64];
        assert_true(harness_resp_header(&r, "WWW-Authenticate", v, sizeof v));
        harness_resp_free(&r);
        /* An unknown key: 401. */
        assert_int_equal(call(method, path, "not-a-key", &r), 401);
        harness_resp_free(&r);
        /* Tenant keys, by either header: 403 and nothing of the data. */
        static const char *const tenants[] = {ACME_KEY, SWIFT_KEY, KIBO_KEY, "Bearer " ACME_KEY};
        for (size_t k = 0; k < sizeof tenants / sizeof tenants[0]; k++) {
            int st = call(method, path, tenants[k], &r);
            if (st != 403)
                fail_msg("%s %s as %s: %d, want 403", method, path, tenants[k], st);
            if (r.json == NULL || json_object_size(r.json) != 1 || !str_at(r.json, "detail"))
                fail_msg("%s %s as %s: the 403 says more than its detail: %s", method, path,
                         tenants[k], r.body);
            assert_null(strstr(r.body, m.saga_id));
            harness_resp_free(&r);
        }
        /* The admin key, by X-API-Key and by Bearer: through (the retry: 409, not in error). */
        for (int k = 0; k < 2; k++) {
            int st = call(method, path, k ? "Bearer " ADMIN_KEY : ADMIN_KEY, &r);
            int want = strcmp(method, "POST") == 0 ? 409 : 200;
            if (st != want)
                fail_msg("%s %s as the admin: %d, want %d: %s", method, path, st, want, r.body);
            harness_resp_free(&r);
        }
        free(routes[i].path);
    }
    /* The tenant's own route to its saga still works for it: admin scope is only the admin's. */
    char *own = harness_fmt("/v1/saga/%s", m.saga_id);
    harness_resp_t r;
    assert_int_equal(call("GET", own, ACME_KEY, &r), 200);
    harness_resp_free(&r);
    free(own);
}

/* ---------------------------------------------------------------------------------------------
 * Filters
 * ------------------------------------------------------------------------------------------- */

static const char *const LIST_FIELDS[] = {
    "saga_id",  "created_ms", "status",     "type",       "tenant", "order_id",    "order_number",
    "attempts", "message",    "created_at", "updated_at", "dest",   "counterparty"};

static void test_filters(void **state)
{
    (void)state;
    long long t0 = next_second();
    char since[32];
    iso_sec(t0, since);

    /* a1 fails (swift-haul's system answers 500 twice), then the rest, one at a time, so the
     * creation order is the order below. */
    made_t a1, a2, a3, s1;
    char u1[25];
    stub_dest_push_status(g_swift, 500, NULL, "{\"error\":\"down\"}");
    stub_dest_push_status(g_swift, 500, NULL, "{\"error\":\"down\"}");
    create(ACME_KEY, &a1);
    wait_final(a1.saga_id, "error");
    create(ACME_KEY, &a2);
    wait_final(a2.saga_id, "synced");
    create(SWIFT_KEY, &s1); /* swift-haul to acme-supply */
    wait_final(s1.saga_id, "synced");
    update_status_on(g_gw.port, a2.number, u1);
    wait_final(u1, "synced");
    long long t_mid = next_second(); /* a3 alone after this */
    char mid[32];
    iso_sec(t_mid, mid);
    create(ACME_KEY, &a3);
    wait_final(a3.saga_id, "synced");

    char *q;
    /* Everything since t0, newest first. */
    q = harness_fmt("since=%s", since);
    expect_ids(q, (const char *[]){a3.saga_id, u1, s1.saga_id, a2.saga_id, a1.saga_id}, 5);
    free(q);
    /* status */
    q = harness_fmt("since=%s&status=error", since);
    expect_ids(q, (const char *[]){a1.saga_id}, 1);
    free(q);
    q = harness_fmt("since=%s&status=synced", since);
    expect_ids(q, (const char *[]){a3.saga_id, u1, s1.saga_id, a2.saga_id}, 4);
    free(q);
    q = harness_fmt("since=%s&status=pending", since);
    expect_ids(q, NULL, 0);
    free(q);
    /* type */
    q = harness_fmt("since=%s&type=order_update_status", since);
    expect_ids(q, (const char *[]){u1}, 1);
    free(q);
    q = harness_fmt("since=%s&type=order_create", since);
    expect_ids(q, (const char *[]){a3.saga_id, s1.saga_id, a2.saga_id, a1.saga_id}, 4);
    free(q);
    /* tenant (the origin of the mutation) */
    q = harness_fmt("since=%s&tenant=swift-haul", since);
    expect_ids(q, (const char *[]){s1.saga_id}, 1);
    free(q);
    q = harness_fmt("since=%s&tenant=kibo-retail", since);
    expect_ids(q, NULL, 0);
    free(q);
    /* order: the create and the update of a2's order, and nothing else (no since needed) */
    q = harness_fmt("order_id=%s", a2.order_id);
    expect_ids(q, (const char *[]){u1, a2.saga_id}, 2);
    free(q);
    /* time range: until the second before a3, and since a3's second */
    q = harness_fmt("since=%s&until=%s", since, mid); /* until is inclusive: a3 came after mid */
    expect_ids(q, (const char *[]){u1, s1.saga_id, a2.saga_id, a1.saga_id}, 4);
    free(q);
    q = harness_fmt("since=%s", mid);
    expect_ids(q, (const char *[]){a3.saga_id}, 1);
    free(q);
    /* combined */
    q = harness_fmt("since=%s&tenant=acme-supply&type=order_create&status=synced", since);
    expect_ids(q, (const char *[]){a3.saga_id, a2.saga_id}, 2);
    free(q);
    q = harness_fmt("order_id=%s&status=synced&type=order_create", a2.order_id);
    expect_ids(q, (const char *[]){a2.saga_id}, 1);
    free(q);

    /* Each item: the documented fields, and what the saga is. */
    q = harness_fmt("/v1/admin/sagas?since=%s&status=error", since);
    json_t *page = admin_get(q, 200);
    free(q);
    json_t *it = json_array_get(json_object_get(page, "items"), 0);
    for (size_t i = 0; i < sizeof LIST_FIELDS / sizeof LIST_FIELDS[0]; i++)
        if (json_object_get(it, LIST_FIELDS[i]) == NULL)
            fail_msg("a listed saga lacks \"%s\": %s", LIST_FIELDS[i], json_dumps(it, 0));
    assert_string_equal(str_at(it, "tenant"), "acme-supply");
    assert_string_equal(str_at(it, "dest"), "swift-haul");
    assert_string_equal(str_at(it, "type"), "order_create");
    assert_string_equal(str_at(it, "order_number"), a1.number);
    assert_string_equal(str_at(it, "order_id"), a1.order_id);
    assert_string_equal(str_at(it, "attempts"), "2");
    assert_non_null(strstr(str_at(it, "message"), "after 2 attempts"));
    assert_true(json_integer_value(json_object_get(it, "created_ms")) >= t0);
    json_decref(page);

    /* The counts agree with the listing. */
    json_t *counts = admin_get("/v1/admin/counts", 200);
    json_t *all = list_ids("since=2000-01-01T00:00:00Z");
    json_int_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(counts, "by_status"), k, v)
    {
        char *sq = harness_fmt("status=%s", k);
        json_t *ids = list_ids(sq);
        if ((json_int_t)json_array_size(ids) != json_integer_value(v))
            fail_msg("counts say %lld %s, the listing %zu", (long long)json_integer_value(v), k,
                     json_array_size(ids));
        json_decref(ids);
        free(sq);
        total += json_integer_value(v);
    }
    assert_int_equal(total, json_array_size(all));
    json_object_foreach(json_object_get(counts, "by_tenant"), k, v)
    {
        char *tq = harness_fmt("tenant=%s", k);
        json_t *ids = list_ids(tq);
        assert_int_equal(json_array_size(ids), json_integer_value(v));
        json_decref(ids);
        free(tq);
    }
    json_decref(all);
    json_decref(counts);

    /* Malformed filters: 422 naming the parameter. */
    static const char *const bad[][2] = {
        {"status=bogus", "status"},
        {"type=order_nope", "type"},
        {"tenant=nobody", "tenant"},
        {"order_id=xyz", "order_id"},
        {"order_id=6b042c8d5d4746298e89d0c", "order_id"}, /* 23 digits */
        {"limit=0", "limit"},
        {"limit=201", "limit"},
        {"limit=ten", "limit"},
        {"since=yesterday", "since"},
        {"until=2026-13-01T00:00:00Z", "until"},
        {"cursor=abc", "cursor"},
        {"cursor=12:xyz", "cursor"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *path = harness_fmt("/v1/admin/sagas?%s", bad[i][0]);
        json_t *e = admin_get(path, 422);
        json_t *d = json_array_get(json_object_get(e, "detail"), 0);
        json_t *loc = json_object_get(d, "loc");
        if (!json_has_string(loc, bad[i][1]))
            fail_msg("GET %s: the 422 does not name %s: %s", path, bad[i][1],
                     json_dumps(e, JSON_COMPACT));
        json_decref(e);
        free(path);
    }
    /* One saga: 404 for an unknown or malformed id. */
    json_decref(admin_get("/v1/admin/sagas/0123456789abcdef01234567", 404));
    json_decref(admin_get("/v1/admin/sagas/nope", 404));
}

/* ---------------------------------------------------------------------------------------------
 * Pagination under concurrent inserts
 * ------------------------------------------------------------------------------------------- */

typedef struct inserter {
    int n;
    made_t *made;
    volatile bool *stop;
    char err[512]; /* the first failure, "" if none */
} inserter_t;

static void *insert_loop(void *arg)
{
    inserter_t *in = arg;
    for (int i = 0; i < in->n && !*in->stop; i++) {
        if (!create_try(g_gw.port, i % 3 == 2 ? SWIFT_KEY : ACME_KEY, &in->made[i], in->err,
                        sizeof in->err))
            break;
        harness_sleep_ms(3);
    }
    return NULL;
}

/* (created_ms, saga_id) of b is strictly below a's. */
static bool strictly_older(const json_t *a, const json_t *b)
{
    json_int_t sa = json_integer_value(json_object_get(a, "created_ms"));
    json_int_t sb = json_integer_value(json_object_get(b, "created_ms"));
    return sb < sa || (sb == sa && strcmp(str_at(b, "saga_id"), str_at(a, "saga_id")) < 0);
}

static void test_pagination_concurrent(void **state)
{
    (void)state;
    long long t0 = next_second();
    char since[32];
    iso_sec(t0, since);
    enum { BEFORE = 40, DURING = 40, LIMIT = 4 };
    made_t before[BEFORE];
    for (int i = 0; i < BEFORE; i++)
        create(i % 4 == 3 ? SWIFT_KEY : ACME_KEY, &before[i]);
    /* What existed when the walk began. */
    char *q = harness_fmt("since=%s", since);
    json_t *snapshot = list_ids(q);
    free(q);
    assert_int_equal(json_array_size(snapshot), BEFORE);

    made_t during[DURING];
    memset(during, 0, sizeof during);
    volatile bool stop = false;
    inserter_t in = {DURING, during, &stop, ""};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, insert_loop, &in), 0);

    json_t *seen = json_array(); /* every item, in walk order */
    char cursor[96] = "";
    int pages = 0;
    do {
        char *path = harness_fmt("/v1/admin/sagas?since=%s&limit=%d%s%s", since, LIMIT,
                                 cursor[0] ? "&cursor=" : "", cursor);
        json_t *page = admin_get(path, 200);
        free(path);
        json_t *items = json_object_get(page, "items");
        assert_true(json_array_size(items) <= LIMIT);
        json_array_extend(seen, items);
        const char *next = str_at(page, "next");
        assert_non_null(next);
        snprintf(cursor, sizeof cursor, "%s", next);
        json_decref(page);
        pages++;
        harness_sleep_ms(5); /* let the inserter in between pages */
    } while (cursor[0] && pages < 1000);
    stop = true;
    pthread_join(th, NULL);
    if (in.err[0])
        fail_msg("the inserter: %s", in.err);
    assert_true(pages >= BEFORE / LIMIT);

    /* In order, each once: (created_ms, saga_id) strictly decreasing along the walk. */
    for (size_t i = 1; i < json_array_size(seen); i++) {
        if (!strictly_older(json_array_get(seen, i - 1), json_array_get(seen, i)))
            fail_msg("item %zu (%s) is not older than item %zu (%s)", i,
                     str_at(json_array_get(seen, i), "saga_id"), i - 1,
                     str_at(json_array_get(seen, i - 1), "saga_id"));
    }
    json_t *seen_ids = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(seen, i, it)
        json_array_append_new(seen_ids, json_string(str_at(it, "saga_id")));
    /* Every saga that existed when the walk began, and none missed. */
    json_array_foreach(snapshot, i, it)
    {
        if (!json_has_string(seen_ids, json_string_value(it)))
            fail_msg("saga %s existed before the walk and was never listed", json_string_value(it));
    }
    /* New ones appear only ahead of the cursor, i.e. on the first page, never further on. */
    json_array_foreach(seen_ids, i, it)
    {
        if (!json_has_string(snapshot, json_string_value(it)) && i >= LIMIT)
            fail_msg("saga %s, added during the walk, was listed on a later page (item %zu)",
                     json_string_value(it), i);
    }
    json_decref(seen_ids);
    json_decref(seen);
    json_decref(snapshot);
    /* Let them all end before the next test. */
    for (int k = 0; k < BEFORE; k++)
        wait_final(before[k].saga_id, NULL);
    for (int k = 0; k < DURING; k++)
        if (during[k].saga_id[0])
            wait_final(during[k].saga_id, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Retention: the indexes stay bounded
 * ------------------------------------------------------------------------------------------- */

/* Every cr:{cr}:idx:* key (SCAN, here in the test only) with its ZCARD, as {key: n}. */
static json_t *index_sizes(const harness_redis_t *r)
{
    redisContext *c = harness_redis_connect(r);
    assert_non_null(c);
    json_t *out = json_object();
    char cursor[32] = "0";
    do {
        redisReply *rep = redisCommand(c, "SCAN %s MATCH cr:{cr}:idx:* COUNT 1000", cursor);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            const char *k = rep->element[1]->element[i]->str;
            redisReply *z = redisCommand(c, "ZCARD %s", k);
            assert_non_null(z);
            json_object_set_new(out, k, json_integer(z->integer));
            freeReplyObject(z);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
    return out;
}

static json_int_t size_of(const json_t *sizes, const char *key)
{
    return json_integer_value(json_object_get(sizes, key));
}

static bool saga_exists(const harness_redis_t *r, const char *sid)
{
    redisContext *c = harness_redis_connect(r);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "EXISTS cr:{cr}:saga:%s", sid);
    assert_non_null(rep);
    bool yes = rep->integer == 1;
    freeReplyObject(rep);
    redisFree(c);
    return yes;
}

/* One batch on gateway port: n sagas, creates from both tenants and updates, all ended. */
static void batch(int port, made_t *made, char (*upd)[25], int n)
{
    for (int i = 0; i < n; i++)
        create_on(port, i % 2 ? SWIFT_KEY : ACME_KEY, &made[i]);
    update_status_on(port, made[0].number, upd[0]);
    for (int i = 0; i < n; i++)
        wait_final_on(port, made[i].saga_id, "synced");
    wait_final_on(port, upd[0], "synced");
}

static bool is_order_index(const char *key)
{
    return strncmp(key, "cr:{cr}:idx:order:", 18) == 0;
}

/* The indexes but the per-order ones: all, status:*, type:*, tenant:*. */
static json_int_t global_sizes(const json_t *sizes)
{
    json_int_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)sizes, k, v) if (!is_order_index(k)) n += json_integer_value(v);
    return n;
}

/* What test_index_retention saw once the first batch had expired and been trimmed: the
 * per-order indexes then (checked by test_order_index_retention), and its Redis and gateway. */
static json_t *g_ret_order_sizes;
static harness_redis_t g_ret_redis;
static harness_gw_t g_ret_gw;
static bool g_ret_redis_up, g_ret_gw_up;

static void test_index_retention(void **state)
{
    (void)state;
    assert_int_equal(harness_redis_start(&g_ret_redis, false), 0);
    g_ret_redis_up = true;
    json_t *ov = make_overrides(2);
    assert_non_null(ov);
    assert_int_equal(harness_gw_start(&g_ret_gw, "gateway.json", g_ret_redis.port, ov), 0);
    g_ret_gw_up = true;
    assert_true(harness_gw_wait_ready(&g_ret_gw, 200, 10000));
    int port = g_ret_gw.port;

    enum { N = 10 };
    made_t a[N];
    char ua[1][25];
    batch(port, a, ua, N);
    json_t *sizes = index_sizes(&g_ret_redis);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:all"), N + 1);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:status:synced"), N + 1);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:type:order_create"), N);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:type:order_update_status"), 1);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:tenant:acme-supply"), N / 2 + 1);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:tenant:swift-haul"), N / 2);
    json_decref(sizes);

    /* retention_s = 2: each saga record expires 2 s after it ended. */
    long long end = harness_now_ms() + 10000;
    for (int i = 0; i <= N; i++) {
        const char *sid = i < N ? a[i].saga_id : ua[0];
        while (saga_exists(&g_ret_redis, sid)) {
            if (harness_now_ms() > end)
                fail_msg("saga %s still stored 10 s after it ended (retention_s 2)", sid);
            harness_sleep_ms(50);
        }
    }
    /* Expired sagas are never listed, even before the trim. */
    json_t *page = admin_get_on(port, "/v1/admin/sagas?limit=200", 200);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);

    /* The trim runs as the engine starts, then every 60 s: a restart gets a run now (and the
     * deadline covers the periodic run, should the first come later). */
    assert_int_equal(harness_gw_stop(&g_ret_gw), 0);
    g_ret_gw_up = false;
    assert_int_equal(harness_gw_start(&g_ret_gw, "gateway.json", g_ret_redis.port, ov), 0);
    g_ret_gw_up = true;
    json_decref(ov);
    assert_true(harness_gw_wait_ready(&g_ret_gw, 200, 10000));
    port = g_ret_gw.port;
    end = harness_now_ms() + 70000;
    for (;;) {
        sizes = index_sizes(&g_ret_redis);
        if (global_sizes(sizes) == 0)
            break;
        if (harness_now_ms() > end)
            fail_msg("70 s after a restart the indexes still hold expired sagas: %s",
                     json_dumps(sizes, JSON_COMPACT | JSON_SORT_KEYS));
        json_decref(sizes);
        harness_sleep_ms(100);
    }
    /* The per-order indexes, as the trim left them: test_order_index_retention's to judge. */
    g_ret_order_sizes = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(sizes, k, v) if (is_order_index(k) && json_integer_value(v) > 0)
        json_object_set(g_ret_order_sizes, k, v);
    json_decref(sizes);
    json_t *counts = admin_get_on(port, "/v1/admin/counts", 200);
    json_object_foreach(json_object_get(counts, "by_status"), k, v) if (json_integer_value(v) != 0)
        fail_msg("after the trim, counts still say %lld %s", (long long)json_integer_value(v), k);
    json_decref(counts);

    /* A second batch: the indexes hold it and nothing of the first. */
    enum { M = 4 };
    made_t b[M];
    char ub[1][25];
    batch(port, b, ub, M);
    sizes = index_sizes(&g_ret_redis);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:all"), M + 1);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:status:synced"), M + 1);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:type:order_create"), M);
    assert_int_equal(size_of(sizes, "cr:{cr}:idx:tenant:acme-supply"), M / 2 + 1);
    /* Each saga is in four of them: all, its status, its type, its tenant. */
    assert_int_equal(global_sizes(sizes), 4 * (M + 1));
    json_decref(sizes);

    /* The Idempotency-Key record (24 h) outlives a saga kept 2 s: it holds the first answer
     * itself, so a repeat after the saga expired still gets it, byte for byte. */
    char *body =
        harness_fmt("{\"order\":{\"order_number\":\"%s\"},\"progress_status\":\"arrived_at_load\","
                    "\"location\":{\"source_id\":\"HOU-T1\"},\"eta\":\"2026-05-11T19:25:51.332Z\"}",
                    b[0].number);
    const char *h[] = {"Content-Type: application/json", "X-API-Key: " ACME_KEY,
                       "X-Dest-Tenant-Name: swift-haul", "Idempotency-Key: retention-outlived",
                       NULL};
    harness_resp_t first, again;
    assert_int_equal(harness_http(port, "POST", "/v1/order/update_status", h, body, strlen(body),
                                  &first),
                     0);
    assert_int_equal(first.status, 200);
    char sid[25];
    snprintf(sid, sizeof sid, "%s", str_at(json_object_get(first.json, "log"), "saga_id"));
    wait_final_on(port, sid, "synced");
    end = harness_now_ms() + 10000;
    while (saga_exists(&g_ret_redis, sid)) {
        if (harness_now_ms() > end)
            fail_msg("saga %s still stored 10 s after it ended (retention_s 2)", sid);
        harness_sleep_ms(50);
    }
    assert_int_equal(harness_http(port, "POST", "/v1/order/update_status", h, body, strlen(body),
                                  &again),
                     0);
    assert_int_equal(again.status, 200);
    char replayed[16];
    assert_true(harness_resp_header(&again, "Idempotent-Replayed", replayed, sizeof replayed));
    assert_int_equal(again.body_len, first.body_len);
    assert_memory_equal(again.body, first.body, first.body_len);
    harness_resp_free(&first);
    harness_resp_free(&again);
    free(body);
}

/*
 * The per-order indexes (cr:{cr}:idx:order:<order_id>) are bounded by retention too: once the
 * sagas of an order have expired and the trim has run, its index holds none of them.
 */
static void test_order_index_retention(void **state)
{
    (void)state;
    /* The retention gateway and Redis go first, whatever happens below. */
    if (g_ret_gw_up)
        assert_int_equal(harness_gw_stop(&g_ret_gw), 0);
    g_ret_gw_up = false;
    if (g_ret_redis_up)
        harness_redis_stop(&g_ret_redis);
    g_ret_redis_up = false;
    if (g_ret_order_sizes == NULL)
        fail_msg("test_index_retention did not get as far as the trim");
    size_t stale = json_object_size(g_ret_order_sizes);
    char *dump = json_dumps(g_ret_order_sizes, JSON_COMPACT | JSON_SORT_KEYS);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", dump ? dump : "?");
    free(dump);
    json_decref(g_ret_order_sizes);
    g_ret_order_sizes = NULL;
    if (stale != 0)
        fail_msg("%zu per-order indexes still list sagas that expired (retention_s 2) after the "
                 "trim: %s",
                 stale, msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_console_files),   cmocka_unit_test(test_scope),
        cmocka_unit_test(test_filters),         cmocka_unit_test(test_pagination_concurrent),
        cmocka_unit_test(test_index_retention), cmocka_unit_test(test_order_index_retention),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
