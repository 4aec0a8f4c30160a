/*
 * test_connectors.c - the destination connectors end to end: the real gateway binary and a real
 * redis-server against realistic stand-ins (tests/support/standin.h) for Kibo, Tecspal and two
 * Crossroads-native webhook receivers (acme-supply and swift-haul).
 *
 * One redis-server, one gateway and the four stand-ins for the whole file (group setup). The
 * gateway's config is tests/fixtures/configs/gateway.json with every tenant's connector.url
 * pointed at its stand-in (a full "tenants" override), notify_url set for acme-supply and
 * swift-haul, and fast retries (max_attempts 3, 50..200 ms). The secrets the connectors use
 * are passed as environment variables the gateway inherits.
 *
 * Each test drives orders through the public API (create by the origin tenant, then a cancel
 * or update_status by the other side), polls GET /v1/saga/{id} with a deadline until the saga
 * is terminal, and then checks what the stand-in received (exact bodies and headers), what it
 * answered, and the saga's status and message. The last test scans the gateway's log, every
 * saga and order read, and every Redis value for the secrets and API keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "harness.h"
#include "standin.h"

#define ACME_KEY  "demo-acme-key"
#define SWIFT_KEY "demo-swift-key"
#define KIBO_KEY  "demo-kibo-key"
#define TEC_KEY   "demo-tecspal-key"

/* Distinctive values, so a leak anywhere is found by a plain substring search. */
#define TEC_TOKEN    "tecspal-tok-5c1e9a7b3d2f4e60"
#define ACME_SECRET  "acme-whsec-9f3b2d71c4e8a6"
#define SWIFT_SECRET "swift-whsec-4a6e0c82b5d1f3"

#define KIBO_TENANT      "12345"
#define SAGA_DEADLINE_MS 15000

static harness_redis_t g_redis;
static harness_gw_t g_gw;
static bool g_redis_up, g_gw_up;
static standin_t *g_kibo, *g_tec, *g_acme, *g_swift;
/* Every saga and order the tests made, with the key that may read it: [{"id","key"}...]. */
static json_t *g_sagas, *g_orders;

/* ---------------------------------------------------------------------------------------------
 * API helpers
 * ------------------------------------------------------------------------------------------- */

static const char KIBO_LINES[] =
    "[{\"product\":{\"source_id\":\"SKU-ULSD\"},\"terminal\":{\"source_id\":\"KB-TERM-HOU\"},"
    "\"site\":{\"source_id\":\"1012\"},\"quantity\":8000,\"uom\":\"gal\"}]";
static const char TEC_LINES[] =
    "[{\"product\":{\"source_id\":\"TEC-P-DSL\"},\"terminal\":{\"source_id\":\"TEC-T-HOU\"},"
    "\"site\":{\"source_id\":\"TEC-S-ATX\"},\"quantity\":8000,\"uom\":\"gal\"}]";
static const char ACME_LINES[] =
    "[{\"product\":{\"source_id\":\"ULSD\"},\"terminal\":{\"source_id\":\"HOU-T1\"},"
    "\"site\":{\"source_id\":\"ATX-S12\"},\"quantity\":8000,\"uom\":\"gal\"}]";
static const char SWIFT_LINES[] =
    "[{\"product\":{\"source_id\":\"SH-DSL\"},\"terminal\":{\"source_id\":\"SH-HOU\"},"
    "\"site\":{\"source_id\":\"SH-ATX12\"},\"quantity\":8000,\"uom\":\"gal\"}]";

/* A request to the gateway as the tenant with key (dest: X-Dest-Tenant-Name, may be NULL). */
static void gw_call(const char *key, const char *method, const char *path, const char *dest,
                    const char *body, harness_resp_t *r)
{
    char hk[128], hd[128];
    const char *h[4] = {"Content-Type: application/json", hk, NULL, NULL};
    snprintf(hk, sizeof hk, "X-API-Key: %s", key);
    if (dest) {
        snprintf(hd, sizeof hd, "X-Dest-Tenant-Name: %s", dest);
        h[2] = hd;
    }
    int rc = harness_http(g_gw.port, method, path, h, body, body ? strlen(body) : 0, r);
    if (rc != 0)
        fail_msg("%s %s: no answer from the gateway", method, path);
}

/* POST /v1/order/<endpoint>: expects 200 "pending"; returns the saga id (caller frees) and, for
 * a create, the order id in order_id (may be NULL). */
static char *submit(const char *key, const char *endpoint, const char *dest, const char *body,
                    char order_id[32])
{
    char path[64];
    snprintf(path, sizeof path, "/v1/order/%s", endpoint);
    harness_resp_t r;
    gw_call(key, "POST", path, dest, body, &r);
    if (r.status != 200 || !json_is_object(r.json))
        fail_msg("POST %s as %s: status %d, body %s", path, key, r.status, r.body ? r.body : "");
    const char *st = json_string_value(json_object_get(r.json, "status"));
    const char *sid = json_string_value(json_object_get(json_object_get(r.json, "log"), "saga_id"));
    if (st == NULL || strcmp(st, "pending") != 0 || sid == NULL)
        fail_msg("POST %s: unexpected answer %s", path, r.body);
    char *saga_id = strdup(sid);
    json_array_append_new(g_sagas, json_pack("{s:s, s:s}", "id", sid, "key", key));
    if (order_id) {
        const char *oid = json_string_value(json_object_get(r.json, "order_id"));
        if (oid == NULL)
            fail_msg("create answer without order_id: %s", r.body);
        snprintf(order_id, 32, "%s", oid);
        json_array_append_new(g_orders, json_pack("{s:s, s:s}", "id", oid, "key", key));
    }
    harness_resp_free(&r);
    return saga_id;
}

static bool terminal(const char *s)
{
    return s && (strcmp(s, "synced") == 0 || strcmp(s, "canceled") == 0 ||
                 strcmp(s, "rejected") == 0 || strcmp(s, "error") == 0);
}

/* GET /v1/saga/{id} until the saga is terminal (deadline); returns the view (caller decrefs). */
static json_t *wait_saga(const char *key, const char *saga_id)
{
    char path[96];
    snprintf(path, sizeof path, "/v1/saga/%s", saga_id);
    long long end = harness_now_ms() + SAGA_DEADLINE_MS;
    char last[2048] = "";
    for (;;) {
        harness_resp_t r;
        gw_call(key, "GET", path, NULL, NULL, &r);
        if (r.status == 200 && json_is_object(r.json)) {
            if (terminal(json_string_value(json_object_get(r.json, "status")))) {
                json_t *v = json_incref(r.json);
                harness_resp_free(&r);
                return v;
            }
        }
        snprintf(last, sizeof last, "%d %s", r.status, r.body ? r.body : "");
        harness_resp_free(&r);
        if (harness_now_ms() > end)
            fail_msg("saga %s not terminal after %d ms; last read: %s", saga_id, SAGA_DEADLINE_MS,
                     last);
        harness_sleep_ms(15);
    }
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* The saga ended with status, and its message contains msg_part (NULL: any). */
static void expect_saga(const json_t *v, const char *status, const char *msg_part)
{
    const char *st = jstr(v, "status");
    const char *msg = jstr(v, "message");
    if (strcmp(st, status) != 0 || (msg_part && strstr(msg, msg_part) == NULL)) {
        char *d = json_dumps(v, JSON_COMPACT);
        fail_msg("saga ended %s (\"%s\"), want %s with \"%s\"; saga: %s", st, msg, status,
                 msg_part ? msg_part : "*", d);
    }
}

static long long attempts_of(const json_t *v)
{
    return json_integer_value(json_object_get(v, "attempts"));
}

/* Create an order as the origin (key) towards dest and wait until it is synced. */
static void create_order(const char *key, const char *dest, const char *number, const char *lines,
                         char order_id[32], char saga_id_out[32])
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"order_number\":\"%s\",\"lines\":%s,"
             "\"requested_delivery\":\"2026-05-12T08:00:00.000Z\"}",
             number, lines);
    char *sid = submit(key, "create", dest, body, order_id);
    json_t *v = wait_saga(key, sid);
    expect_saga(v, "synced", NULL);
    if (saga_id_out)
        snprintf(saga_id_out, 32, "%s", sid);
    json_decref(v);
    free(sid);
}

/* Cancel order_id as key towards dest (reason may be NULL); returns the terminal view. */
static json_t *cancel_order(const char *key, const char *dest, const char *order_id,
                            const char *reason, char saga_id_out[32])
{
    char body[512];
    if (reason)
        snprintf(body, sizeof body, "{\"order\":{\"order_id\":\"%s\"},\"reason_code\":\"%s\"}",
                 order_id, reason);
    else
        snprintf(body, sizeof body, "{\"order\":{\"order_id\":\"%s\"}}", order_id);
    char *sid = submit(key, "cancel", dest, body, NULL);
    json_t *v = wait_saga(key, sid);
    if (saga_id_out)
        snprintf(saga_id_out, 32, "%s", sid);
    free(sid);
    return v;
}

static json_t *update_status(const char *key, const char *dest, const char *order_id)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"order\":{\"order_id\":\"%s\"},\"progress_status\":\"arrived_at_load\","
             "\"location\":{\"source_id\":\"HOU-T1\"},\"eta\":\"2026-05-11T19:25:51.332Z\"}",
             order_id);
    char *sid = submit(key, "update_status", dest, body, NULL);
    json_t *v = wait_saga(key, sid);
    free(sid);
    return v;
}

/* GET a read endpoint; returns the parsed body (caller decrefs) and the raw text in *raw. */
static json_t *gw_get(const char *key, const char *path, char **raw)
{
    harness_resp_t r;
    gw_call(key, "GET", path, NULL, NULL, &r);
    if (r.status != 200 || r.json == NULL)
        fail_msg("GET %s: %d %s", path, r.status, r.body ? r.body : "");
    json_t *j = json_incref(r.json);
    if (raw)
        *raw = strdup(r.body);
    harness_resp_free(&r);
    return j;
}

/* ---------------------------------------------------------------------------------------------
 * Stand-in helpers
 * ------------------------------------------------------------------------------------------- */

/* Record i of s (fails if absent); free with standin_req_free. */
static void get_req(standin_t *s, size_t i, standin_req_t *r)
{
    if (!standin_request(s, i, r))
        fail_msg("stand-in has no request %zu", i);
}

static void expect_header(const standin_req_t *r, const char *name, const char *want)
{
    char v[512];
    if (!standin_req_header(r, name, v, sizeof v))
        fail_msg("%s %s: header %s missing; headers:\n%s", r->method, r->path, name, r->headers);
    if (strcmp(v, want) != 0)
        fail_msg("%s %s: header %s is \"%s\", want \"%s\"", r->method, r->path, name, v, want);
}

static void expect_body_json(const standin_req_t *r, const char *want_json)
{
    json_t *got = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *want = json_loads(want_json, 0, NULL);
    assert_non_null(want);
    if (got == NULL || !json_equal(got, want))
        fail_msg("%s %s: body %s, want exactly %s", r->method, r->path, r->body, want_json);
    json_decref(got);
    json_decref(want);
}

/* After a terminal saga, no late request may arrive: wait a little and check the count. */
static void expect_count_settles(standin_t *s, size_t want)
{
    harness_sleep_ms(400);
    size_t n = standin_request_count(s);
    if (n != want)
        fail_msg("stand-in received %zu requests, want %zu", n, want);
}

/* Index of the request at path carrying Idempotency-Key key, from index from; -1 if none. */
static long find_by_key(standin_t *s, size_t from, const char *path, const char *key)
{
    size_t n = standin_request_count(s);
    for (size_t i = from; i < n; i++) {
        standin_req_t r;
        get_req(s, i, &r);
        char k[128];
        bool hit = strcmp(r.path, path) == 0 &&
                   standin_req_header(&r, "Idempotency-Key", k, sizeof k) && strcmp(k, key) == 0;
        standin_req_free(&r);
        if (hit)
            return (long)i;
    }
    return -1;
}

/* Indices of notify requests for saga_id at s (up to max), waiting until at least want. */
static size_t notify_requests(standin_t *s, const char *saga_id, size_t want, size_t *idx,
                              size_t max, int deadline_ms)
{
    long long end = harness_now_ms() + deadline_ms;
    size_t found;
    do {
        found = 0;
        size_t n = standin_request_count(s);
        for (size_t i = 0; i < n; i++) {
            standin_req_t r;
            get_req(s, i, &r);
            if (strcmp(r.path, "/notify") == 0) {
                json_t *b = json_loadb(r.body, r.body_len, 0, NULL);
                if (strcmp(jstr(b, "saga_id"), saga_id) == 0) {
                    if (found < max)
                        idx[found] = i;
                    found++;
                }
                json_decref(b);
            }
            standin_req_free(&r);
        }
        if (found >= want)
            return found;
        harness_sleep_ms(10);
    } while (harness_now_ms() < end);
    return found;
}

/* ---------------------------------------------------------------------------------------------
 * The stand-ins themselves: the documented behaviour, asked directly (no gateway)
 * ------------------------------------------------------------------------------------------- */

static void tec_envelope(char *out, size_t n, const char *uuid);

/* POST body to a stand-in with the given header lines (NULL-terminated); returns the status. */
static int direct(standin_t *s, const char *method, const char *path, const char *const *headers,
                  const char *body, harness_resp_t *r)
{
    assert_int_equal(
        harness_http(standin_port(s), method, path, headers, body, body ? strlen(body) : 0, r), 0);
    return r->status;
}

/* A Kibo-style error: status and a message containing part. */
static void expect_kibo_error(standin_t *s, const char *const *h, const char *body, int status,
                              const char *part)
{
    harness_resp_t r;
    int st = direct(s, "POST", "/api/v2/order/action/cancel", h, body, &r);
    const char *msg = jstr(r.json, "message");
    if (st != status || strstr(msg, part) == NULL ||
        !json_is_string(json_object_get(r.json, "errorCode")))
        fail_msg("kibo %s: %d %s, want %d with \"%s\"", body, st, r.body, status, part);
    harness_resp_free(&r);
}

static void expect_tec_answer(const char *const *h, const char *body, int status, const char *error,
                              const char *message)
{
    harness_resp_t r;
    int st = direct(g_tec, "POST", "/orders/cancel", h, body, &r);
    json_t *want =
        json_pack("{s:s, s:s, s:i}", "error", error, "message", message, "statusCode", status);
    if (st != status || !json_equal(r.json, want))
        fail_msg("tecspal %s: %d %s, want %d %s/%s", body ? body : "", st, r.body, status, error,
                 message);
    json_decref(want);
    harness_resp_free(&r);
}

static void test_standins_documented_behaviour(void **state)
{
    (void)state;
    /* Kibo: tenant header, field checks, the seed's full request, unknown order. */
    standin_kibo_add_order(g_kibo, 4242, "KB-4242");
    const char *const kh[] = {"Content-Type: application/json", "x-vol-tenant: " KIBO_TENANT, NULL};
    const char *const no_tenant[] = {"Content-Type: application/json", NULL};
    const char *const bad_tenant[] = {"Content-Type: application/json", "x-vol-tenant: 54321",
                                      NULL};
    const char seed[] = "{\"orderID\":4242,\"dispositionReason\":\"other\","
                        "\"dispositionOtherReason\":\"Customer changed mind\"}";
    expect_kibo_error(g_kibo, no_tenant, seed, 401, "x-vol-tenant");
    expect_kibo_error(g_kibo, bad_tenant, seed, 401, "x-vol-tenant");
    expect_kibo_error(g_kibo, kh, "{\"orderID\":\"4242\",\"dispositionReason\":\"fraud\"}", 400,
                      "orderID");
    expect_kibo_error(g_kibo, kh, "{\"orderID\":0,\"dispositionReason\":\"fraud\"}", 400,
                      "orderID");
    expect_kibo_error(g_kibo, kh, "{\"dispositionReason\":\"fraud\"}", 400, "orderID");
    expect_kibo_error(g_kibo, kh, "{\"orderID\":4242,\"dispositionReason\":\"late truck\"}", 400,
                      "dispositionReason");
    expect_kibo_error(g_kibo, kh, "{\"orderID\":4242}", 400, "dispositionReason");
    expect_kibo_error(g_kibo, kh, "{\"orderID\":4242,\"dispositionReason\":\"other\"}", 400,
                      "dispositionOtherReason");
    expect_kibo_error(g_kibo, kh,
                      "{\"orderID\":4242,\"dispositionReason\":\"other\","
                      "\"dispositionOtherReason\":\"\"}",
                      400, "dispositionOtherReason");
    char long_body[600];
    char text[257];
    memset(text, 'x', 256);
    text[256] = '\0';
    snprintf(long_body, sizeof long_body,
             "{\"orderID\":4242,\"dispositionReason\":\"other\","
             "\"dispositionOtherReason\":\"%s\"}",
             text);
    expect_kibo_error(g_kibo, kh, long_body, 400, "dispositionOtherReason");
    expect_kibo_error(g_kibo, kh, "{\"orderID\":4243,\"dispositionReason\":\"fraud\"}", 404,
                      "Order 4243 not found");
    char st[32];
    assert_true(standin_kibo_order_status(g_kibo, 4242, st, sizeof st));
    assert_string_equal(st, "Accepted");
    text[255] = '\0'; /* 255 characters is the maximum, and allowed */
    snprintf(long_body, sizeof long_body,
             "{\"orderID\":4242,\"dispositionReason\":\"other\","
             "\"dispositionOtherReason\":\"%s\"}",
             text);
    harness_resp_t r;
    assert_int_equal(direct(g_kibo, "POST", "/api/v2/order/action/cancel", kh, long_body, &r), 200);
    harness_resp_free(&r);
    assert_int_equal(direct(g_kibo, "POST", "/api/v2/order/action/cancel", kh, seed, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "id")), 4242);
    assert_string_equal(jstr(r.json, "orderNumber"), "KB-4242");
    assert_string_equal(jstr(r.json, "status"), "Cancelled");
    assert_string_equal(jstr(r.json, "dispositionReason"), "other");
    assert_true(json_is_array(json_object_get(r.json, "items")));
    harness_resp_free(&r);
    assert_true(standin_kibo_order_status(g_kibo, 4242, st, sizeof st));
    assert_string_equal(st, "Cancelled");

    /* Tecspal: the seed's request and answer, its errors word for word, the order states. */
    standin_tecspal_set_order(g_tec, "11111111-2222-4333-8444-555555555555", "PENDING", "DM1");
    standin_tecspal_set_order(g_tec, "11111111-2222-4333-8444-666666666666", "SHIPPED", "DM1");
    const char *const th[] = {"Content-Type: application/json", "Authorization: Bearer " TEC_TOKEN,
                              NULL};
    const char *const tno[] = {"Content-Type: application/json", NULL};
    const char *const tbad[] = {"Content-Type: application/json", "Authorization: Bearer nope",
                                NULL};
    char env[512];
    tec_envelope(env, sizeof env, "11111111-2222-4333-8444-555555555555");
    expect_tec_answer(tno, env, 401, "Unauthorized", "Unauthorized access");
    expect_tec_answer(tbad, env, 401, "Unauthorized", "Unauthorized access");
    expect_tec_answer(th,
                      "{\"data\":{\"companyCode\":\"DM1\"},\"request\":\"orders/cancel\","
                      "\"vendor\":\"tecspal\",\"verb\":\"POST\"}",
                      400, "Bad Request", "id is required");
    expect_tec_answer(th,
                      "{\"data\":{\"id\":\"11111111-2222-4333-8444-555555555555\","
                      "\"companyCode\":\"DM1\"},\"request\":\"orders/cancel\","
                      "\"vendor\":\"tecspal\"}",
                      400, "Bad Request", "Invalid request envelope");
    expect_tec_answer(th,
                      "{\"data\":{\"id\":\"11111111-2222-4333-8444-555555555555\","
                      "\"companyCode\":\"XX1\"},\"request\":\"orders/cancel\","
                      "\"vendor\":\"tecspal\",\"verb\":\"POST\"}",
                      400, "Bad Request", "Order request not found");
    tec_envelope(env, sizeof env, "11111111-2222-4333-8444-666666666666");
    expect_tec_answer(th, env, 400, "Bad Request",
                      "The Order cannot be cancelled. Only orders with status PENDING or QUOTED "
                      "can be cancelled");
    tec_envelope(env, sizeof env, "11111111-2222-4333-8444-555555555555");
    for (int k = 0; k < 2; k++) { /* PENDING -> CANCELLED, then the same answer again */
        assert_int_equal(direct(g_tec, "POST", "/orders/cancel", th, env, &r), 200);
        json_t *want = json_pack("{s:i, s:s, s:[{s:s, s:s}]}", "statusCode", 200, "message",
                                 "Request successful", "envelop", "id",
                                 "11111111-2222-4333-8444-555555555555", "status", "CANCELLED");
        assert_true(json_equal(r.json, want));
        json_decref(want);
        harness_resp_free(&r);
    }
    standin_fail_next(g_tec, 1, 500);
    assert_int_equal(direct(g_tec, "POST", "/orders/cancel", th, env, &r), 500);
    harness_resp_free(&r);
    assert_int_equal(standin_deliveries(g_tec, env), 5); /* 2 x 401, 2 x 200, 1 x 500 */

    /* The webhook receiver: only POSTs under /v1/order/ (and its notify path), signed. */
    char ts[32], sig[80], hts[64], hsig[112];
    const char body[] = "{\"hello\":\"world\"}";
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    standin_sign(ACME_SECRET, ts, body, strlen(body), sig);
    snprintf(hts, sizeof hts, "X-Crossroads-Timestamp: %s", ts);
    snprintf(hsig, sizeof hsig, "X-Crossroads-Signature: %s", sig);
    const char *const wh[] = {"Content-Type: application/json", hts, hsig, NULL};
    assert_int_equal(direct(g_acme, "POST", "/v1/order/selftest", wh, body, &r), 200);
    assert_true(json_is_true(json_object_get(r.json, "received")));
    assert_int_equal(strncmp(jstr(r.json, "order_number"), "ACME-", 5), 0);
    harness_resp_free(&r);
    assert_int_equal(direct(g_acme, "GET", "/v1/order/selftest", wh, NULL, &r), 405);
    harness_resp_free(&r);
    assert_int_equal(direct(g_acme, "POST", "/elsewhere", wh, body, &r), 404);
    harness_resp_free(&r);
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL) + 400); /* from the future */
    standin_sign(ACME_SECRET, ts, body, strlen(body), sig);
    snprintf(hts, sizeof hts, "X-Crossroads-Timestamp: %s", ts);
    snprintf(hsig, sizeof hsig, "X-Crossroads-Signature: %s", sig);
    assert_int_equal(direct(g_acme, "POST", "/v1/order/selftest", wh, body, &r), 401);
    harness_resp_free(&r);
    const char *const unsigned_h[] = {"Content-Type: application/json", NULL};
    assert_int_equal(direct(g_acme, "POST", "/v1/order/selftest", unsigned_h, body, &r), 401);
    harness_resp_free(&r);
}

/* ---------------------------------------------------------------------------------------------
 * Kibo
 * ------------------------------------------------------------------------------------------- */

/* Kibo-retail's order reaches acme-supply's webhook; acme cancels it; Kibo gets the seed call. */
static void test_kibo_create_then_cancel(void **state)
{
    (void)state;
    standin_kibo_add_order(g_kibo, 1010101, "1010101");
    size_t acme0 = standin_request_count(g_acme);
    char oid[32], create_sid[32];
    create_order(KIBO_KEY, "acme-supply", "1010101", KIBO_LINES, oid, create_sid);

    /* The create at acme's receiver: once, signed, in acme's own references. */
    long i = find_by_key(g_acme, acme0, "/v1/order/create", create_sid);
    if (i < 0)
        fail_msg("acme's receiver got no create for saga %s", create_sid);
    assert_int_equal(standin_deliveries(g_acme, create_sid), 1);
    standin_req_t r;
    get_req(g_acme, (size_t)i, &r);
    assert_string_equal(r.method, "POST");
    assert_int_equal(r.status, 200);
    assert_true(r.signature_ok);
    expect_header(&r, "Content-Type", "application/json");
    expect_header(&r, "X-Tenant-Name", "kibo-retail");
    expect_header(&r, "X-Dest-Tenant-Name", "acme-supply");
    json_t *b = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(b);
    assert_string_equal(jstr(b, "order_id"), oid);
    assert_string_equal(jstr(b, "order_number"), "1010101");
    json_t *line = json_array_get(json_object_get(b, "lines"), 0);
    assert_string_equal(jstr(json_object_get(line, "product"), "source_id"), "ULSD");
    assert_string_equal(jstr(json_object_get(line, "terminal"), "source_id"), "HOU-T1");
    assert_string_equal(jstr(json_object_get(line, "site"), "source_id"), "ATX-S12");
    if (json_number_value(json_object_get(line, "quantity")) != 8000.0)
        fail_msg("quantity in the create delivery: %s", r.body);
    json_decref(b);
    /* acme's answer named its own order number: the order now carries it. */
    json_t *ans = json_loads(r.response, 0, NULL);
    char acme_num[64];
    snprintf(acme_num, sizeof acme_num, "%s", jstr(ans, "order_number"));
    json_decref(ans);
    standin_req_free(&r);
    assert_true(acme_num[0] != '\0');
    char path[128];
    snprintf(path, sizeof path, "/v1/order?order_id=%s", oid);
    json_t *order = gw_get(ACME_KEY, path, NULL);
    assert_string_equal(jstr(order, "counterparty_order_number"), acme_num);
    assert_string_equal(jstr(order, "order_number"), "1010101");
    json_decref(order);

    /* acme cancels: the message goes to the origin, in the origin's own order number. */
    size_t k0 = standin_request_count(g_kibo);
    json_t *v = cancel_order(ACME_KEY, "kibo-retail", oid, "customer_changed_mind", NULL);
    expect_saga(v, "canceled", "canceled in kibo");
    assert_int_equal(attempts_of(v), 1);
    json_decref(v);
    assert_int_equal(standin_request_count(g_kibo), k0 + 1);
    get_req(g_kibo, k0, &r);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/api/v2/order/action/cancel");
    expect_header(&r, "x-vol-tenant", KIBO_TENANT);
    expect_header(&r, "Content-Type", "application/json");
    expect_body_json(&r, "{\"orderID\":1010101,\"dispositionReason\":\"customer_changed_mind\"}");
    assert_int_equal(r.status, 200);
    /* The answer is in the Get Order shape. */
    json_t *resp = json_loads(r.response, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(resp, "id")), 1010101);
    assert_string_equal(jstr(resp, "status"), "Cancelled");
    json_decref(resp);
    assert_int_equal(standin_deliveries(g_kibo, r.body), 1);
    standin_req_free(&r);
    char st[32];
    assert_true(standin_kibo_order_status(g_kibo, 1010101, st, sizeof st));
    assert_string_equal(st, "Cancelled");
    expect_count_settles(g_kibo, k0 + 1);
}

/* A reason_code Kibo does not know becomes "other" with the text; none becomes a fixed text. */
static void test_kibo_disposition_reasons(void **state)
{
    (void)state;
    static const struct {
        long long id;
        const char *number, *reason, *want; /* want NULL: "other" with the fixed text */
    } cases[] = {
        {1010102, "1010102", "late truck",
         "{\"orderID\":1010102,\"dispositionReason\":\"other\","
         "\"dispositionOtherReason\":\"late truck\"}"},
        {1010103, "1010103", NULL, NULL},
        {1010107, "1010107", "item_out_of_stock",
         "{\"orderID\":1010107,\"dispositionReason\":\"item_out_of_stock\"}"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        standin_kibo_add_order(g_kibo, cases[c].id, cases[c].number);
        char oid[32];
        create_order(KIBO_KEY, "acme-supply", cases[c].number, KIBO_LINES, oid, NULL);
        size_t k0 = standin_request_count(g_kibo);
        json_t *v = cancel_order(ACME_KEY, "kibo-retail", oid, cases[c].reason, NULL);
        expect_saga(v, "canceled", NULL);
        json_decref(v);
        assert_int_equal(standin_request_count(g_kibo), k0 + 1);
        standin_req_t r;
        get_req(g_kibo, k0, &r);
        expect_header(&r, "x-vol-tenant", KIBO_TENANT);
        assert_int_equal(r.status, 200);
        if (cases[c].want) {
            expect_body_json(&r, cases[c].want);
        } else {
            json_t *b = json_loadb(r.body, r.body_len, 0, NULL);
            assert_int_equal(json_object_size(b), 3);
            assert_int_equal(json_integer_value(json_object_get(b, "orderID")), cases[c].id);
            assert_string_equal(jstr(b, "dispositionReason"), "other");
            size_t len = strlen(jstr(b, "dispositionOtherReason"));
            if (len < 1 || len > 255)
                fail_msg("dispositionOtherReason has %zu characters: %s", len, r.body);
            print_message("no reason_code -> dispositionOtherReason \"%s\"\n",
                          jstr(b, "dispositionOtherReason"));
            json_decref(b);
        }
        standin_req_free(&r);
    }
}

/* An order reference that is not a Kibo order ID: rejected, nothing sent to Kibo. */
static void test_kibo_reference_not_integer(void **state)
{
    (void)state;
    static const char *const numbers[] = {"ABC-1", "0", "0123"};
    for (size_t c = 0; c < 3; c++) {
        char oid[32];
        create_order(KIBO_KEY, "acme-supply", numbers[c], KIBO_LINES, oid, NULL);
        size_t k0 = standin_request_count(g_kibo);
        json_t *v = cancel_order(ACME_KEY, "kibo-retail", oid, "customer_changed_mind", NULL);
        expect_saga(v, "rejected", "not a Kibo order ID");
        assert_int_equal(attempts_of(v), 0);
        json_decref(v);
        expect_count_settles(g_kibo, k0);
    }
}

/* Kibo has no API for a status update: rejected with the documented message, nothing sent. */
static void test_kibo_update_status_unsupported(void **state)
{
    (void)state;
    standin_kibo_add_order(g_kibo, 1010106, NULL);
    char oid[32];
    create_order(KIBO_KEY, "acme-supply", "1010106", KIBO_LINES, oid, NULL);
    size_t k0 = standin_request_count(g_kibo);
    json_t *v = update_status(ACME_KEY, "kibo-retail", oid);
    expect_saga(v, "rejected", NULL);
    assert_string_equal(jstr(v, "message"), "not supported by destination system kibo");
    json_decref(v);
    expect_count_settles(g_kibo, k0);
}

/* Kibo answers 500 twice, then takes it: canceled after 3 attempts, each attempt logged. */
static void test_kibo_retried_after_500(void **state)
{
    (void)state;
    standin_kibo_add_order(g_kibo, 1010104, NULL);
    char oid[32];
    create_order(KIBO_KEY, "acme-supply", "1010104", KIBO_LINES, oid, NULL);
    size_t k0 = standin_request_count(g_kibo);
    standin_fail_next(g_kibo, 2, 500);
    json_t *v = cancel_order(ACME_KEY, "kibo-retail", oid, "fraud", NULL);
    expect_saga(v, "canceled", "canceled in kibo");
    assert_int_equal(attempts_of(v), 3);
    json_decref(v);
    assert_int_equal(standin_request_count(g_kibo), k0 + 3);
    const int want_status[] = {500, 500, 200};
    for (size_t i = 0; i < 3; i++) {
        standin_req_t r;
        get_req(g_kibo, k0 + i, &r);
        assert_int_equal(r.status, want_status[i]);
        expect_body_json(&r, "{\"orderID\":1010104,\"dispositionReason\":\"fraud\"}");
        if (i == 0)
            assert_int_equal(standin_deliveries(g_kibo, r.body), 3);
        standin_req_free(&r);
    }
    /* The order's log has one entry per attempt with what came back. */
    char path[128];
    snprintf(path, sizeof path, "/v1/order/logs?order_id=%s", oid);
    json_t *logs = gw_get(ACME_KEY, path, NULL);
    int seen[3] = {0, 0, 0};
    size_t n = 0, j;
    json_t *e;
    json_array_foreach(logs, j, e)
    {
        const char *title = jstr(e, "title");
        if (strncmp(title, "Delivery attempt ", 17) != 0)
            continue;
        int a = atoi(title + 17);
        json_t *in = json_object_get(e, "inbound_request");
        json_t *out = json_object_get(e, "outbound_request");
        if (a >= 1 && a <= 3 && strstr(jstr(out, "url"), "/api/v2/order/action/cancel")) {
            seen[a - 1] = (int)json_integer_value(json_object_get(in, "status"));
            n++;
        }
    }
    json_decref(logs);
    assert_int_equal(n, 3);
    assert_int_equal(seen[0], 500);
    assert_int_equal(seen[1], 500);
    assert_int_equal(seen[2], 200);
    expect_count_settles(g_kibo, k0 + 3);
}

/* Kibo refuses the tenant (401): an error about credentials, tried once. */
static void test_kibo_unauthorized_not_retried(void **state)
{
    (void)state;
    standin_kibo_add_order(g_kibo, 1010105, NULL);
    char oid[32];
    create_order(KIBO_KEY, "acme-supply", "1010105", KIBO_LINES, oid, NULL);
    size_t k0 = standin_request_count(g_kibo);
    /* Kibo now only knows another tenant id: the configured 12345 is the wrong one. */
    standin_kibo_set_tenant(g_kibo, "99999");
    json_t *v = cancel_order(ACME_KEY, "kibo-retail", oid, "customer_changed_mind", NULL);
    standin_kibo_set_tenant(g_kibo, KIBO_TENANT);
    expect_saga(v, "error", "kibo refused the credentials (HTTP 401)");
    assert_int_equal(attempts_of(v), 1);
    json_decref(v);
    expect_count_settles(g_kibo, k0 + 1);
    standin_req_t r;
    get_req(g_kibo, k0, &r);
    assert_int_equal(r.status, 401);
    standin_req_free(&r);
    char st[32];
    assert_true(standin_kibo_order_status(g_kibo, 1010105, st, sizeof st));
    assert_string_equal(st, "Accepted");
}

/* An order ID Kibo does not know: rejected with Kibo's message. */
static void test_kibo_unknown_order(void **state)
{
    (void)state;
    char oid[32];
    create_order(KIBO_KEY, "acme-supply", "1010199", KIBO_LINES, oid, NULL);
    size_t k0 = standin_request_count(g_kibo);
    json_t *v = cancel_order(ACME_KEY, "kibo-retail", oid, "duplicate_order", NULL);
    expect_saga(v, "rejected", "Order 1010199 not found");
    assert_int_equal(attempts_of(v), 1);
    json_decref(v);
    expect_count_settles(g_kibo, k0 + 1);
}

/* ---------------------------------------------------------------------------------------------
 * Tecspal
 * ------------------------------------------------------------------------------------------- */

#define UUID_PENDING   "3178e7e9-0fe9-47ad-b69a-e5604a990822" /* the seed's example */
#define UUID_QUOTED    "5a0c2f4e-8d1b-4c3a-9e7f-1b2c3d4e5f60"
#define UUID_CANCELLED "6b1d3e5f-7a9c-4b2d-8e0f-2c3d4e5f6a71"
#define UUID_DELIVERED "7c2e4f60-8b0d-4c3e-9f1a-3d4e5f6a7b82"
#define UUID_UNKNOWN   "8d3f5a71-9c1e-4d4f-a02b-4e5f6a7b8c93"
#define UUID_OTHER_CO  "9e4a6b82-ad2f-4e5a-b13c-5f6a7b8c9da4"
#define UUID_401       "af5b7c93-be3a-4f6b-c24d-6a7b8c9daeb5"
#define UUID_503       "b06c8da4-cf4b-4a7c-d35e-7b8c9daebfc6"
#define UUID_5XX       "c17d9eb5-d05c-4b8d-e46f-8c9daebfc0d7"
#define UUID_UPDATE    "d28eafc6-e16d-4c9e-f57a-9daebfc0d1e8"

static void tec_envelope(char *out, size_t n, const char *uuid)
{
    snprintf(out, n,
             "{\"data\":{\"id\":\"%s\",\"companyCode\":\"DM1\"},\"request\":\"orders/cancel\","
             "\"vendor\":\"tecspal\",\"verb\":\"POST\"}",
             uuid);
}

/* Create a tecspal-hw order numbered uuid towards acme, then cancel it as acme; returns the
 * terminal view of the cancel and sets *first to the stand-in's index of its first request. */
static json_t *tec_cancel_flow(const char *uuid, size_t *first)
{
    char oid[32];
    create_order(TEC_KEY, "acme-supply", uuid, TEC_LINES, oid, NULL);
    *first = standin_request_count(g_tec);
    return cancel_order(ACME_KEY, "tecspal-hw", oid, "customer_changed_mind", NULL);
}

static void expect_tec_request(size_t i, const char *uuid, int status)
{
    standin_req_t r;
    get_req(g_tec, i, &r);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/orders/cancel");
    expect_header(&r, "Authorization", "Bearer " TEC_TOKEN);
    expect_header(&r, "Content-Type", "application/json");
    char env[512];
    tec_envelope(env, sizeof env, uuid);
    expect_body_json(&r, env);
    if (r.status != status)
        fail_msg("tecspal answered %d (%s), want %d", r.status, r.response, status);
    standin_req_free(&r);
}

static void test_tecspal_cancel(void **state)
{
    (void)state;
    const char *uuids[] = {UUID_PENDING, UUID_QUOTED};
    for (size_t c = 0; c < 2; c++) {
        standin_tecspal_set_order(g_tec, uuids[c], c == 0 ? "PENDING" : "QUOTED", "DM1");
        size_t t0;
        json_t *v = tec_cancel_flow(uuids[c], &t0);
        expect_saga(v, "canceled", "canceled in tecspal");
        assert_int_equal(attempts_of(v), 1);
        json_decref(v);
        assert_int_equal(standin_request_count(g_tec), t0 + 1);
        expect_tec_request(t0, uuids[c], 200);
        standin_req_t r;
        get_req(g_tec, t0, &r);
        json_t *want =
            json_pack("{s:i, s:s, s:[{s:s, s:s}]}", "statusCode", 200, "message",
                      "Request successful", "envelop", "id", uuids[c], "status", "CANCELLED");
        json_t *got = json_loads(r.response, 0, NULL);
        assert_true(json_equal(got, want));
        json_decref(got);
        json_decref(want);
        standin_req_free(&r);
        char st[32];
        assert_true(standin_tecspal_order_status(g_tec, uuids[c], st, sizeof st));
        assert_string_equal(st, "CANCELLED");
        expect_count_settles(g_tec, t0 + 1);
    }
}

/* Already CANCELLED at Tecspal: the same 200 (idempotent), so the saga ends canceled. */
static void test_tecspal_already_cancelled(void **state)
{
    (void)state;
    standin_tecspal_set_order(g_tec, UUID_CANCELLED, "CANCELLED", "DM1");
    size_t t0;
    json_t *v = tec_cancel_flow(UUID_CANCELLED, &t0);
    expect_saga(v, "canceled", "canceled in tecspal");
    json_decref(v);
    expect_tec_request(t0, UUID_CANCELLED, 200);
    expect_count_settles(g_tec, t0 + 1);
}

/* A status other than PENDING/QUOTED: rejected with Tecspal's message, order unchanged. */
static void test_tecspal_wrong_status(void **state)
{
    (void)state;
    standin_tecspal_set_order(g_tec, UUID_DELIVERED, "DELIVERED", "DM1");
    size_t t0;
    json_t *v = tec_cancel_flow(UUID_DELIVERED, &t0);
    expect_saga(v, "rejected",
                "The Order cannot be cancelled. Only orders with status PENDING or QUOTED can be "
                "cancelled");
    assert_int_equal(attempts_of(v), 1);
    json_decref(v);
    expect_tec_request(t0, UUID_DELIVERED, 400);
    expect_count_settles(g_tec, t0 + 1);
    char st[32];
    assert_true(standin_tecspal_order_status(g_tec, UUID_DELIVERED, st, sizeof st));
    assert_string_equal(st, "DELIVERED");
}

/* Unknown id, or an order of another company: rejected "Order request not found". */
static void test_tecspal_not_found(void **state)
{
    (void)state;
    standin_tecspal_set_order(g_tec, UUID_OTHER_CO, "PENDING", "ZZ9");
    const char *uuids[] = {UUID_UNKNOWN, UUID_OTHER_CO};
    for (size_t c = 0; c < 2; c++) {
        size_t t0;
        json_t *v = tec_cancel_flow(uuids[c], &t0);
        expect_saga(v, "rejected", "Order request not found");
        json_decref(v);
        expect_tec_request(t0, uuids[c], 400);
        expect_count_settles(g_tec, t0 + 1);
    }
    char st[32];
    assert_true(standin_tecspal_order_status(g_tec, UUID_OTHER_CO, st, sizeof st));
    assert_string_equal(st, "PENDING");
}

/* Tecspal refuses the token (401): error, exactly one request. */
static void test_tecspal_unauthorized(void **state)
{
    (void)state;
    standin_tecspal_set_order(g_tec, UUID_401, "PENDING", "DM1");
    standin_tecspal_set_token(g_tec, "a-token-the-gateway-does-not-have");
    size_t t0;
    json_t *v = tec_cancel_flow(UUID_401, &t0);
    standin_tecspal_set_token(g_tec, TEC_TOKEN);
    expect_saga(v, "error", "Unauthorized access");
    assert_int_equal(attempts_of(v), 1);
    json_decref(v);
    expect_count_settles(g_tec, t0 + 1);
    expect_tec_request(t0, UUID_401, 401);
    char st[32];
    assert_true(standin_tecspal_order_status(g_tec, UUID_401, st, sizeof st));
    assert_string_equal(st, "PENDING");
}

/* 5xx is retried: once then done; or every time, ending error after max_attempts (3). */
static void test_tecspal_5xx_retried(void **state)
{
    (void)state;
    standin_tecspal_set_order(g_tec, UUID_503, "PENDING", "DM1");
    standin_tecspal_set_order(g_tec, UUID_5XX, "PENDING", "DM1");
    char oid[32];
    create_order(TEC_KEY, "acme-supply", UUID_503, TEC_LINES, oid, NULL);
    size_t t0 = standin_request_count(g_tec);
    standin_fail_next(g_tec, 1, 503);
    json_t *v = cancel_order(ACME_KEY, "tecspal-hw", oid, NULL, NULL);
    expect_saga(v, "canceled", "canceled in tecspal");
    assert_int_equal(attempts_of(v), 2);
    json_decref(v);
    expect_tec_request(t0, UUID_503, 503);
    expect_tec_request(t0 + 1, UUID_503, 200);
    standin_req_t r;
    get_req(g_tec, t0, &r);
    assert_int_equal(standin_deliveries(g_tec, r.body), 2);
    standin_req_free(&r);
    expect_count_settles(g_tec, t0 + 2);

    create_order(TEC_KEY, "acme-supply", UUID_5XX, TEC_LINES, oid, NULL);
    t0 = standin_request_count(g_tec);
    standin_fail_next(g_tec, 100, 500);
    v = cancel_order(ACME_KEY, "tecspal-hw", oid, NULL, NULL);
    standin_fail_next(g_tec, 0, 0);
    expect_saga(v, "error", "destination failed after 3 attempts");
    assert_int_equal(attempts_of(v), 3);
    json_decref(v);
    expect_count_settles(g_tec, t0 + 3);
    for (size_t i = 0; i < 3; i++)
        expect_tec_request(t0 + i, UUID_5XX, 500);
    char st[32];
    assert_true(standin_tecspal_order_status(g_tec, UUID_5XX, st, sizeof st));
    assert_string_equal(st, "PENDING");
}

/* A reference that is not a UUID: rejected without sending. */
static void test_tecspal_reference_not_uuid(void **state)
{
    (void)state;
    char oid[32];
    create_order(TEC_KEY, "acme-supply", "TEC-ORDER-7", TEC_LINES, oid, NULL);
    size_t t0 = standin_request_count(g_tec);
    json_t *v = cancel_order(ACME_KEY, "tecspal-hw", oid, "customer_changed_mind", NULL);
    expect_saga(v, "rejected", "not a Tecspal order id");
    assert_int_equal(attempts_of(v), 0);
    json_decref(v);
    expect_count_settles(g_tec, t0);
}

static void test_tecspal_update_status_unsupported(void **state)
{
    (void)state;
    standin_tecspal_set_order(g_tec, UUID_UPDATE, "PENDING", "DM1");
    char oid[32];
    create_order(TEC_KEY, "acme-supply", UUID_UPDATE, TEC_LINES, oid, NULL);
    size_t t0 = standin_request_count(g_tec);
    json_t *v = update_status(ACME_KEY, "tecspal-hw", oid);
    expect_saga(v, "rejected", NULL);
    assert_string_equal(jstr(v, "message"), "not supported by destination system tecspal");
    json_decref(v);
    expect_count_settles(g_tec, t0);
}

/* ---------------------------------------------------------------------------------------------
 * Webhook signing
 * ------------------------------------------------------------------------------------------- */

/* Re-send a body to the swift receiver with the given signature headers (NULL: left out). */
static int resend(const char *path, const char *ts, const char *sig, const char *body, size_t len,
                  harness_resp_t *r)
{
    char hts[96], hsig[128];
    const char *h[4] = {"Content-Type: application/json", NULL, NULL, NULL};
    size_t n = 1;
    if (ts) {
        snprintf(hts, sizeof hts, "X-Crossroads-Timestamp: %s", ts);
        h[n++] = hts;
    }
    if (sig) {
        snprintf(hsig, sizeof hsig, "X-Crossroads-Signature: %s", sig);
        h[n++] = hsig;
    }
    assert_int_equal(harness_http(standin_port(g_swift), "POST", path, h, body, len, r), 0);
    return r->status;
}

static void test_webhook_signing(void **state)
{
    (void)state;
    /* acme-supply sends an order to swift-haul: swift's receiver verifies with swift's secret. */
    size_t s0 = standin_request_count(g_swift);
    char oid[32], sid[32];
    create_order(ACME_KEY, "swift-haul", "PO-W1", ACME_LINES, oid, sid);
    long i = find_by_key(g_swift, s0, "/v1/order/create", sid);
    if (i < 0)
        fail_msg("swift's receiver got no create for saga %s", sid);
    standin_req_t r;
    get_req(g_swift, (size_t)i, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.signature_ok);
    expect_header(&r, "Idempotency-Key", sid);
    /* The documented scheme, recomputed here: sha256=hex(HMAC(secret, "<ts>.<body>")). */
    char ts[32], sig[128], want[80];
    assert_true(standin_req_header(&r, "X-Crossroads-Timestamp", ts, sizeof ts));
    assert_true(standin_req_header(&r, "X-Crossroads-Signature", sig, sizeof sig));
    standin_sign(SWIFT_SECRET, ts, r.body, r.body_len, want);
    assert_string_equal(sig, want);
    long long skew = (long long)time(NULL) - atoll(ts);
    assert_true(skew >= -5 && skew <= 30);
    json_t *b = json_loadb(r.body, r.body_len, 0, NULL);
    json_t *line = json_array_get(json_object_get(b, "lines"), 0);
    assert_string_equal(jstr(json_object_get(line, "site"), "source_id"), "SH-ATX12");
    json_decref(b);

    /* The same request again verifies; one byte changed in the body does not. */
    harness_resp_t hr;
    assert_int_equal(resend(r.path, ts, sig, r.body, r.body_len, &hr), 200);
    harness_resp_free(&hr);
    char *tampered = strdup(r.body);
    char *q = strstr(tampered, "8000");
    assert_non_null(q);
    q[0] = '9'; /* quantity 8000 -> 9000 */
    assert_int_equal(resend(r.path, ts, sig, tampered, r.body_len, &hr), 401);
    assert_string_equal(jstr(hr.json, "detail"), "signature mismatch");
    harness_resp_free(&hr);
    free(tampered);
    /* No signature; a signature made with another tenant's secret; a stale timestamp. */
    assert_int_equal(resend(r.path, ts, NULL, r.body, r.body_len, &hr), 401);
    harness_resp_free(&hr);
    char other[80];
    standin_sign(ACME_SECRET, ts, r.body, r.body_len, other);
    assert_int_equal(resend(r.path, ts, other, r.body, r.body_len, &hr), 401);
    harness_resp_free(&hr);
    char old_ts[32], old_sig[80];
    snprintf(old_ts, sizeof old_ts, "%lld", (long long)time(NULL) - 400);
    standin_sign(SWIFT_SECRET, old_ts, r.body, r.body_len, old_sig);
    assert_int_equal(resend(r.path, old_ts, old_sig, r.body, r.body_len, &hr), 401);
    assert_string_equal(jstr(hr.json, "detail"), "timestamp outside the accepted window");
    harness_resp_free(&hr);
    /* Tampering with the timestamp breaks the signature too. */
    char ts2[32];
    snprintf(ts2, sizeof ts2, "%lld", atoll(ts) + 1);
    assert_int_equal(resend(r.path, ts2, sig, r.body, r.body_len, &hr), 401);
    harness_resp_free(&hr);

    /* swift answered its own order number; acme's cancel carries it back to swift. */
    json_t *ans = json_loads(r.response, 0, NULL);
    char swift_num[64];
    snprintf(swift_num, sizeof swift_num, "%s", jstr(ans, "order_number"));
    json_decref(ans);
    standin_req_free(&r);
    assert_true(strncmp(swift_num, "SWIFT-", 6) == 0);
    char csid[32];
    json_t *v = cancel_order(ACME_KEY, "swift-haul", oid, "customer", csid);
    expect_saga(v, "canceled", NULL);
    json_decref(v);
    i = find_by_key(g_swift, s0, "/v1/order/cancel", csid);
    if (i < 0)
        fail_msg("swift's receiver got no cancel for saga %s", csid);
    get_req(g_swift, (size_t)i, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.signature_ok);
    char want_body[256];
    snprintf(want_body, sizeof want_body,
             "{\"order\":{\"order_id\":\"%s\",\"order_number\":\"%s\"},\"reason_code\":"
             "\"customer\"}",
             oid, swift_num);
    expect_body_json(&r, want_body);
    expect_header(&r, "X-Tenant-Name", "acme-supply");
    standin_req_free(&r);
}

/* ---------------------------------------------------------------------------------------------
 * notify_url
 * ------------------------------------------------------------------------------------------- */

static void expect_one_notification(standin_t *s, const char *secret, const char *saga_id,
                                    const json_t *view, const char *order_id,
                                    const char *order_number)
{
    size_t idx[4];
    size_t n = notify_requests(s, saga_id, 1, idx, 4, 5000);
    if (n < 1)
        fail_msg("no notification for saga %s", saga_id);
    harness_sleep_ms(400);
    n = notify_requests(s, saga_id, 1, idx, 4, 0);
    if (n != 1)
        fail_msg("%zu notifications for saga %s, want 1", n, saga_id);
    standin_req_t r;
    get_req(s, idx[0], &r);
    assert_string_equal(r.method, "POST");
    assert_int_equal(r.status, 200);
    assert_true(r.signature_ok);
    char ts[32], sig[128], want[80];
    assert_true(standin_req_header(&r, "X-Crossroads-Timestamp", ts, sizeof ts));
    assert_true(standin_req_header(&r, "X-Crossroads-Signature", sig, sizeof sig));
    standin_sign(secret, ts, r.body, r.body_len, want);
    assert_string_equal(sig, want);
    json_t *b = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(b);
    assert_string_equal(jstr(b, "saga_id"), saga_id);
    assert_string_equal(jstr(b, "saga_type"), jstr(view, "saga_type"));
    assert_string_equal(jstr(b, "status"), jstr(view, "status"));
    assert_string_equal(jstr(b, "message"), jstr(view, "message"));
    assert_string_equal(jstr(b, "order_id"), order_id);
    assert_string_equal(jstr(b, "order_number"), order_number);
    assert_true(json_is_object(json_object_get(b, "log")));
    json_decref(b);
    standin_req_free(&r);
}

static void test_notify_url(void **state)
{
    (void)state;
    /* acme starts two sagas; each end is one signed notification at acme's notify_url. */
    char oid[32], sid[32];
    create_order(ACME_KEY, "swift-haul", "PO-N1", ACME_LINES, oid, sid);
    char path[96];
    snprintf(path, sizeof path, "/v1/saga/%s", sid);
    json_t *v = gw_get(ACME_KEY, path, NULL);
    expect_one_notification(g_acme, ACME_SECRET, sid, v, oid, "PO-N1");
    assert_string_equal(jstr(v, "saga_type"), "order_create");
    json_decref(v);
    char csid[32];
    v = cancel_order(ACME_KEY, "swift-haul", oid, "customer", csid);
    expect_saga(v, "canceled", NULL);
    expect_one_notification(g_acme, ACME_SECRET, csid, v, oid, "PO-N1");
    json_decref(v);

    /* A saga that ends in mapping, after the held origin_mapped step (saga.c, held_step): its
     * notification carries the error's own log entry. */
    char body[512], moid[32];
    snprintf(body, sizeof body,
             "{\"order_number\":\"PO-N2\",\"lines\":[{\"product\":{\"source_id\":\"ULSD\"},"
             "\"terminal\":{\"source_id\":\"NO-SUCH-TERMINAL\"},\"site\":{\"source_id\":"
             "\"ATX-S12\"},\"quantity\":8000,\"uom\":\"gal\"}],"
             "\"requested_delivery\":\"2026-05-12T08:00:00.000Z\"}");
    char *msid = submit(ACME_KEY, "create", "swift-haul", body, moid);
    v = wait_saga(ACME_KEY, msid);
    expect_saga(v, "error", NULL);
    expect_one_notification(g_acme, ACME_SECRET, msid, v, moid, "PO-N2");
    json_decref(v);
    free(msid);

    /* A saga acme did not start (kibo-retail's create towards acme) notifies no one at acme. */
    char koid[32], ksid[32];
    standin_kibo_add_order(g_kibo, 1010120, NULL);
    create_order(KIBO_KEY, "acme-supply", "1010120", KIBO_LINES, koid, ksid);
    size_t idx[1];
    harness_sleep_ms(300);
    assert_int_equal(notify_requests(g_acme, ksid, 0, idx, 1, 0), 0);

    /* swift-haul's notify_url answers 500: tried max_attempts (3) times, the saga unchanged. */
    standin_fail_next(g_swift, 100, 500);
    char soid[32], ssid[32];
    create_order(SWIFT_KEY, "acme-supply", "SW-N1", SWIFT_LINES, soid, ssid);
    snprintf(path, sizeof path, "/v1/saga/%s", ssid);
    json_t *before = gw_get(SWIFT_KEY, path, NULL);
    size_t sidx[8];
    size_t n = notify_requests(g_swift, ssid, 3, sidx, 8, 5000);
    if (n < 3)
        fail_msg("%zu notification attempts at swift, want 3", n);
    harness_sleep_ms(800); /* retries are 50..200 ms apart: a 4th would be here by now */
    n = notify_requests(g_swift, ssid, 3, sidx, 8, 0);
    standin_fail_next(g_swift, 0, 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        standin_req_t r;
        get_req(g_swift, sidx[i], &r);
        assert_int_equal(r.status, 500);
        /* Signed with swift's own connector secret. */
        char ts[32], sig[128], want[80];
        assert_true(standin_req_header(&r, "X-Crossroads-Timestamp", ts, sizeof ts));
        assert_true(standin_req_header(&r, "X-Crossroads-Signature", sig, sizeof sig));
        standin_sign(SWIFT_SECRET, ts, r.body, r.body_len, want);
        assert_string_equal(sig, want);
        standin_req_free(&r);
    }
    json_t *after = gw_get(SWIFT_KEY, path, NULL);
    expect_saga(after, "synced", NULL);
    if (!json_equal(before, after)) {
        char *a = json_dumps(before, JSON_COMPACT), *c = json_dumps(after, JSON_COMPACT);
        fail_msg("the saga changed after its notification failed:\n%s\n%s", a, c);
    }
    json_decref(before);
    json_decref(after);
}

/* Every delivery the gateway made to the receivers verified, and went once per saga. */
static void test_webhook_deliveries_verified_once(void **state)
{
    (void)state;
    standin_t *rx[] = {g_acme, g_swift};
    for (size_t k = 0; k < 2; k++) {
        size_t n = standin_request_count(rx[k]), checked = 0;
        for (size_t i = 0; i < n; i++) {
            standin_req_t r;
            get_req(rx[k], i, &r);
            /* The gateway's requests: deliveries carry Idempotency-Key, notifications go to
             * /notify; the test's own requests carry neither. Those the fault switch answered
             * (swift's failing notify_url) were never verified. */
            bool from_gw = standin_req_header(&r, "Idempotency-Key", NULL, 0) ||
                           strcmp(r.path, "/notify") == 0;
            if (from_gw && !r.faulted) {
                if (r.status != 200 || !r.signature_ok)
                    fail_msg("receiver %zu refused the gateway's %s %s: %d %s", k, r.method, r.path,
                             r.status, r.response);
                checked++;
            }
            standin_req_free(&r);
        }
        assert_true(checked > 0);
        assert_int_equal(standin_max_per_key(rx[k], "/v1/order/"), 1);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Secrets
 * ------------------------------------------------------------------------------------------- */

static const char *const secrets[] = {
    TEC_TOKEN, ACME_SECRET, SWIFT_SECRET, ACME_KEY, SWIFT_KEY, KIBO_KEY, TEC_KEY,
};

static void expect_no_secret(const char *where, const char *text, size_t len)
{
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        if (memmem(text, len, secrets[i], strlen(secrets[i])) != NULL)
            fail_msg("%s contains the secret \"%s\"", where, secrets[i]);
    }
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 131072;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void scan_reply(const char *key, const redisReply *r, size_t *values)
{
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_ERROR) {
        char where[300];
        snprintf(where, sizeof where, "Redis key %s", key);
        expect_no_secret(where, r->str, r->len);
        (*values)++;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        scan_reply(key, r->element[i], values);
}

static void test_secrets_never_appear(void **state)
{
    (void)state;
    /* The gateway's own log. */
    size_t len = 0;
    char *log = read_all(g_gw.log_path, &len);
    assert_non_null(log);
    assert_true(len > 0);
    assert_non_null(strstr(log, "saga finished"));
    expect_no_secret("the gateway log", log, len);
    free(log);

    /* Every saga read and every order read and order log. */
    size_t i;
    json_t *e;
    bool saw_redacted_auth = false;
    json_array_foreach(g_sagas, i, e)
    {
        char path[96], *raw;
        snprintf(path, sizeof path, "/v1/saga/%s", jstr(e, "id"));
        json_t *v = gw_get(jstr(e, "key"), path, &raw);
        expect_no_secret(path, raw, strlen(raw));
        free(raw);
        json_decref(v);
    }
    json_array_foreach(g_orders, i, e)
    {
        char path[128], *raw;
        snprintf(path, sizeof path, "/v1/order?order_id=%s", jstr(e, "id"));
        json_t *v = gw_get(jstr(e, "key"), path, &raw);
        expect_no_secret(path, raw, strlen(raw));
        free(raw);
        json_decref(v);
        snprintf(path, sizeof path, "/v1/order/logs?order_id=%s", jstr(e, "id"));
        v = gw_get(jstr(e, "key"), path, &raw);
        expect_no_secret(path, raw, strlen(raw));
        if (strstr(raw, "Authorization: [redacted]"))
            saw_redacted_auth = true;
        free(raw);
        json_decref(v);
    }
    /* The Tecspal attempts are logged with the credential header, redacted. */
    assert_true(saw_redacted_auth);

    /* Every value in Redis. */
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    char cursor[32] = "0";
    size_t keys = 0, values = 0;
    do {
        redisReply *r = redisCommand(c, "SCAN %s COUNT 1000", cursor);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *ks = r->element[1];
        for (size_t k = 0; k < ks->elements; k++) {
            const char *key = ks->element[k]->str;
            keys++;
            expect_no_secret("a Redis key name", key, strlen(key));
            redisReply *t = redisCommand(c, "TYPE %s", key);
            assert_non_null(t);
            redisReply *val = NULL;
            if (strcmp(t->str, "string") == 0)
                val = redisCommand(c, "GET %s", key);
            else if (strcmp(t->str, "hash") == 0)
                val = redisCommand(c, "HGETALL %s", key);
            else if (strcmp(t->str, "list") == 0)
                val = redisCommand(c, "LRANGE %s 0 -1", key);
            else if (strcmp(t->str, "set") == 0)
                val = redisCommand(c, "SMEMBERS %s", key);
            else if (strcmp(t->str, "zset") == 0)
                val = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", key);
            else if (strcmp(t->str, "stream") == 0)
                val = redisCommand(c, "XRANGE %s - +", key);
            else
                fail_msg("Redis key %s has an unexpected type %s", key, t->str);
            scan_reply(key, val, &values);
            freeReplyObject(val);
            freeReplyObject(t);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
    print_message("scanned %zu Redis keys (%zu values), %zu sagas, %zu orders\n", keys, values,
                  json_array_size(g_sagas), json_array_size(g_orders));
    assert_true(keys > json_array_size(g_sagas));
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

/* gateway.json's tenants with each connector pointed at its stand-in, notify_url for the two
 * webhook tenants. */
static json_t *tenants_override(void)
{
    json_t *tenants = harness_fixture_tenants_at((const char *[]){
        "acme-supply", standin_url(g_acme), "swift-haul", standin_url(g_swift), "kibo-retail",
        standin_url(g_kibo), "tecspal-hw", standin_url(g_tec), NULL});
    /* the fixture has these four tenants and no other */
    if (tenants == NULL || json_array_size(tenants) != 4) {
        json_decref(tenants);
        return NULL;
    }
    char url[96];
    snprintf(url, sizeof url, "%s/notify", standin_url(g_acme));
    json_object_set_new(harness_tenant(tenants, "acme-supply"), "notify_url", json_string(url));
    snprintf(url, sizeof url, "%s/notify", standin_url(g_swift));
    json_object_set_new(harness_tenant(tenants, "swift-haul"), "notify_url", json_string(url));
    return tenants;
}

static int group_setup(void **state)
{
    (void)state;
    g_sagas = json_array();
    g_orders = json_array();
    g_kibo = standin_start(STANDIN_KIBO);
    g_tec = standin_start(STANDIN_TECSPAL);
    g_acme = standin_start(STANDIN_WEBHOOK);
    g_swift = standin_start(STANDIN_WEBHOOK);
    if (!g_kibo || !g_tec || !g_acme || !g_swift)
        return -1;
    standin_kibo_set_tenant(g_kibo, KIBO_TENANT);
    standin_tecspal_set_token(g_tec, TEC_TOKEN);
    standin_webhook_set_secret(g_acme, ACME_SECRET);
    standin_webhook_set_order_prefix(g_acme, "ACME-");
    standin_webhook_set_secret(g_swift, SWIFT_SECRET);
    standin_webhook_set_order_prefix(g_swift, "SWIFT-");

    /* The gateway inherits these (fork + exec). */
    setenv("TECSPAL_TOKEN", TEC_TOKEN, 1);
    setenv("ACME_WEBHOOK_SECRET", ACME_SECRET, 1);
    setenv("SWIFT_WEBHOOK_SECRET", SWIFT_SECRET, 1);

    if (harness_redis_start(&g_redis, false) != 0)
        return -1;
    g_redis_up = true;
    json_t *tenants = tenants_override();
    if (tenants == NULL)
        return -1;
    json_t *over = json_pack("{s:{s:i, s:i, s:i}, s:o}", "saga", "max_attempts", 3, "retry_base_ms",
                             50, "retry_max_ms", 200, "tenants", tenants);
    int rc = harness_gw_start(&g_gw, "gateway.json", g_redis.port, over);
    json_decref(over);
    if (rc != 0)
        return -1;
    g_gw_up = true;
    if (!harness_gw_wait_ready(&g_gw, 200, 10000))
        return -1;
    return 0;
}

/* cmocka 1.1 reports a failed group teardown but still exits 0: main() checks this too. */
static bool g_teardown_failed;

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (g_gw_up) {
        int st = harness_gw_stop(&g_gw);
        if (st != 0) {
            print_error("gateway stop returned %d (want 0)\n", st);
            rc = -1;
        }
        g_gw_up = false;
    }
    if (g_redis_up) {
        harness_redis_stop(&g_redis);
        g_redis_up = false;
    }
    standin_stop(g_kibo);
    standin_stop(g_tec);
    standin_stop(g_acme);
    standin_stop(g_swift);
    g_kibo = g_tec = g_acme = g_swift = NULL;
    json_decref(g_sagas);
    json_decref(g_orders);
    g_teardown_failed = rc != 0;
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standins_documented_behaviour),
        cmocka_unit_test(test_kibo_create_then_cancel),
        cmocka_unit_test(test_kibo_disposition_reasons),
        cmocka_unit_test(test_kibo_reference_not_integer),
        cmocka_unit_test(test_kibo_update_status_unsupported),
        cmocka_unit_test(test_kibo_retried_after_500),
        cmocka_unit_test(test_kibo_unauthorized_not_retried),
        cmocka_unit_test(test_kibo_unknown_order),
        cmocka_unit_test(test_tecspal_cancel),
        cmocka_unit_test(test_tecspal_already_cancelled),
        cmocka_unit_test(test_tecspal_wrong_status),
        cmocka_unit_test(test_tecspal_not_found),
        cmocka_unit_test(test_tecspal_unauthorized),
        cmocka_unit_test(test_tecspal_5xx_retried),
        cmocka_unit_test(test_tecspal_reference_not_uuid),
        cmocka_unit_test(test_tecspal_update_status_unsupported),
        cmocka_unit_test(test_webhook_signing),
        cmocka_unit_test(test_notify_url),
        cmocka_unit_test(test_webhook_deliveries_verified_once),
        cmocka_unit_test(test_secrets_never_appear),
    };
    int failed = cmocka_run_group_tests_name("connectors", tests, group_setup, group_teardown);
    return failed != 0 || g_teardown_failed ? 1 : 0;
}
