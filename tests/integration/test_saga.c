/*
 * test_saga.c - the saga engine end to end: the real gateway binary, a real redis-server, and
 * two stand-in destination systems on loopback (tests/support/stub_dest.h), one for
 * acme-supply and one for swift-haul (both webhook tenants of tests/fixtures/configs/
 * gateway.json, whose connector URLs are pointed at the stubs).
 *
 * Covered: create -> synced with the destination's own references and its order number kept;
 * update_status -> synced with the location translated and status_update filled; bol, drop and
 * reset (cleared data kept whole in the order log); cancel rules; a destination-side cancel
 * going back to the origin; unknown order, wrong counterparty and a third tenant; a mapping
 * miss naming the reference; retries (5xx, 408/429, Retry-After, timeouts) and 4xx rejections;
 * one log entry per delivery attempt with its request and response; webhook signatures; the
 * secrets never stored or logged; per-order FIFO across two gateway processes.
 *
 * One redis-server, one gateway and two stubs for the whole file (group set-up); each test
 * makes its own orders and waits for its sagas to end (polling with a deadline), so the stubs'
 * reply scripts are only ever consumed by the test that wrote them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "stub_dest.h"

#define ACME_KEY         "demo-acme-key"
#define SWIFT_KEY        "demo-swift-key"
#define KIBO_KEY         "demo-kibo-key"
#define ACME_SECRET      "acme-whsec-0b7d2e94c6a1f358e2"
#define SWIFT_SECRET     "swift-whsec-5c1e9a07d3b2f846d1"
#define SWIFT_TIMEOUT_MS 500
#define SAGA_DEADLINE_MS 20000
#define MAX_ATTEMPTS     3

static harness_redis_t g_redis;
static harness_gw_t g_gw;
static bool g_redis_up;
static bool g_gw_up;
static stub_dest_t *g_acme;  /* acme-supply's system */
static stub_dest_t *g_swift; /* swift-haul's system */
static json_t *g_overrides;
/* Every saga the file started ([saga_id, api key]) and every order it made, for the scans. */
static json_t *g_sagas;
static json_t *g_orders;
static bool g_teardown_failed;

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static const char *str_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A string at a dotted path ("lines.0.terminal.source_id"), or NULL. */
static const char *str_path(const json_t *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && cur;
         tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur))
            cur = json_array_get(cur, strtoul(tok, NULL, 10));
        else
            cur = json_object_get(cur, tok);
    }
    return json_is_string(cur) ? json_string_value(cur) : NULL;
}

static void expect_path(const json_t *o, const char *path, const char *want)
{
    const char *got = str_path(o, path);
    if (got == NULL || strcmp(got, want) != 0) {
        char *dump = json_dumps(o, JSON_COMPACT);
        fail_msg("%s is \"%s\", want \"%s\" in %s", path, got ? got : "(absent)", want, dump);
    }
}

static bool is_terminal(const char *st)
{
    return st && (strcmp(st, "synced") == 0 || strcmp(st, "canceled") == 0 ||
                  strcmp(st, "rejected") == 0 || strcmp(st, "error") == 0);
}

/* ---------------------------------------------------------------------------------------------
 * HTTP to the gateway
 * ------------------------------------------------------------------------------------------- */

/* method path as `key` (X-Dest-Tenant-Name dest and header extra if not NULL); fills resp. */
static int call_with(int port, const char *method, const char *path, const char *key,
                     const char *dest, const char *extra, const char *body, harness_resp_t *resp)
{
    char kh[128], dh[128];
    const char *h[5];
    size_t n = 0;
    h[n++] = "Content-Type: application/json";
    snprintf(kh, sizeof kh, "X-API-Key: %s", key);
    h[n++] = kh;
    if (dest) {
        snprintf(dh, sizeof dh, "X-Dest-Tenant-Name: %s", dest);
        h[n++] = dh;
    }
    if (extra)
        h[n++] = extra;
    h[n] = NULL;
    int rc = harness_http(port, method, path, h, body, body ? strlen(body) : 0, resp);
    if (rc != 0)
        fail_msg("%s %s: no answer from the gateway on port %d", method, path, port);
    return resp->status;
}

static int call(int port, const char *method, const char *path, const char *key, const char *dest,
                const char *body, harness_resp_t *resp)
{
    return call_with(port, method, path, key, dest, NULL, body, resp);
}

/* GET path as key; the parsed body (caller decrefs) when the status is want, else fails. */
static json_t *get_json(const char *key, const char *path, int want)
{
    harness_resp_t r;
    int st = call(g_gw.port, "GET", path, key, NULL, NULL, &r);
    if (st != want)
        fail_msg("GET %s as %s: %d, want %d: %s", path, key, st, want, r.body ? r.body : "");
    json_t *j = json_incref(r.json);
    harness_resp_free(&r);
    return j;
}

/*
 * POST /v1/order/<action> on gateway port as key to dest: must be 200 "pending". Returns the
 * saga id (caller frees) and, for a create, the assigned order id into order_id.
 */
static char *submit_on(int port, const char *key, const char *dest, const char *action,
                       const char *body, char order_id[25])
{
    char path[64];
    snprintf(path, sizeof path, "/v1/order/%s", action);
    harness_resp_t r;
    int st = call(port, "POST", path, key, dest, body, &r);
    if (st != 200 || r.json == NULL)
        fail_msg("POST %s as %s: %d: %s (body sent: %s)", path, key, st, r.body ? r.body : "",
                 body);
    const char *status = str_at(r.json, "status");
    assert_non_null(status);
    assert_string_equal(status, "pending");
    const char *sid = str_path(r.json, "log.saga_id");
    assert_non_null(sid);
    assert_int_equal(strlen(sid), 24);
    char *out = strdup(sid);
    if (order_id) {
        const char *oid = str_at(r.json, "order_id");
        assert_non_null(oid);
        snprintf(order_id, 25, "%s", oid);
        json_array_append_new(g_orders, json_string(oid));
    }
    json_array_append_new(g_sagas, json_pack("[s, s]", out, key));
    harness_resp_free(&r);
    return out;
}

static char *submit(const char *key, const char *dest, const char *action, const char *body,
                    char order_id[25])
{
    return submit_on(g_gw.port, key, dest, action, body, order_id);
}

/* Poll GET /v1/saga/<id> as key until a terminal status; returns the saga (caller decrefs). */
static json_t *wait_saga(const char *key, const char *saga_id, int deadline_ms)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/saga/%s", saga_id);
    long long end = harness_now_ms() + deadline_ms;
    for (;;) {
        harness_resp_t r;
        int st = call(g_gw.port, "GET", path, key, NULL, NULL, &r);
        if (st == 200 && is_terminal(str_at(r.json, "status"))) {
            json_t *j = json_incref(r.json);
            harness_resp_free(&r);
            return j;
        }
        if (harness_now_ms() >= end)
            fail_msg("saga %s did not end within %d ms; last answer %d: %s", saga_id, deadline_ms,
                     st, r.body ? r.body : "");
        harness_resp_free(&r);
        harness_sleep_ms(20);
    }
}

/* The saga's status must be want and its message contain msg (if given). */
static void expect_saga(const json_t *saga, const char *want, const char *msg)
{
    const char *st = str_at(saga, "status");
    const char *m = str_at(saga, "message");
    if (st == NULL || strcmp(st, want) != 0 || (msg && (m == NULL || strstr(m, msg) == NULL))) {
        char *dump = json_dumps(saga, JSON_COMPACT);
        fail_msg("saga is %s (\"%s\"), want %s%s%s%s: %s", st ? st : "?", m ? m : "", want,
                 msg ? " with \"" : "", msg ? msg : "", msg ? "\"" : "", dump);
    }
}

static long long attempts_of(const json_t *saga)
{
    return json_integer_value(json_object_get(saga, "attempts"));
}

/* Submit, wait for the end, check status (and message); returns the saga id (caller frees). */
static char *run_saga(const char *key, const char *dest, const char *action, const char *body,
                      const char *want, const char *msg, json_t **saga_out)
{
    char *sid = submit(key, dest, action, body, NULL);
    json_t *saga = wait_saga(key, sid, SAGA_DEADLINE_MS);
    expect_saga(saga, want, msg);
    if (saga_out)
        *saga_out = saga;
    else
        json_decref(saga);
    return sid;
}

/* ---------------------------------------------------------------------------------------------
 * Stub requests, signatures and logs
 * ------------------------------------------------------------------------------------------- */

/* The nth (0-based) request the stub got with this Idempotency-Key. */
static bool nth_with_key(stub_dest_t *s, const char *key, size_t nth, stub_req_t *out)
{
    size_t n = stub_dest_count(s);
    for (size_t i = 0; i < n; i++) {
        if (!stub_dest_get(s, i, out))
            return false;
        if (strcmp(out->idempotency_key, key) == 0 && nth-- == 0)
            return true;
        stub_req_free(out);
    }
    return false;
}

static void req_of(stub_dest_t *s, const char *key, size_t nth, stub_req_t *out)
{
    if (!nth_with_key(s, key, nth, out))
        fail_msg("the destination got no request #%zu with Idempotency-Key %s", nth, key);
    if (out->json == NULL)
        fail_msg("request body is not JSON: %s", out->body);
}

/* X-Crossroads-Signature = sha256=hex(HMAC-SHA256(secret, "<timestamp>.<body>")). */
static void check_signature(const stub_req_t *r, const char *secret)
{
    char ts[64], sig[160];
    if (!stub_req_header(r, "X-Crossroads-Timestamp", ts, sizeof ts) ||
        !stub_req_header(r, "X-Crossroads-Signature", sig, sizeof sig))
        fail_msg("unsigned webhook; headers:\n%s", r->headers);
    long long t = atoll(ts);
    long long now = (long long)time(NULL);
    if (t < now - 300 || t > now + 5)
        fail_msg("X-Crossroads-Timestamp %s is not the current unix time (%lld)", ts, now);
    size_t ml = strlen(ts) + 1 + r->body_len;
    char *msg = malloc(ml);
    assert_non_null(msg);
    memcpy(msg, ts, strlen(ts));
    msg[strlen(ts)] = '.';
    memcpy(msg + strlen(ts) + 1, r->body, r->body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, ml,
                         mac, &mac_len));
    free(msg);
    char want[7 + 64 + 1] = "sha256=";
    for (unsigned int i = 0; i < mac_len && i < 32; i++)
        snprintf(want + 7 + 2 * i, 3, "%02x", mac[i]);
    if (strcmp(sig, want) != 0)
        fail_msg("X-Crossroads-Signature %s, want %s (timestamp %s, body %s)", sig, want, ts,
                 r->body);
}

/* The first request of a saga at a stub: POST path, Idempotency-Key, signed, JSON. */
static void check_delivery(stub_dest_t *s, const char *saga_id, const char *path,
                           const char *secret, stub_req_t *out)
{
    req_of(s, saga_id, 0, out);
    assert_string_equal(out->method, "POST");
    assert_string_equal(out->path, path);
    assert_string_equal(out->idempotency_key, saga_id);
    char ct[128];
    assert_true(stub_req_header(out, "Content-Type", ct, sizeof ct));
    assert_non_null(strstr(ct, "application/json"));
    check_signature(out, secret);
}

static json_t *order_logs(const char *key, const char *order_id)
{
    char *path = harness_fmt("/v1/order/logs?order_id=%s", order_id);
    json_t *logs = get_json(key, path, 200);
    free(path);
    assert_true(json_is_array(logs));
    return logs;
}

/* The log entries of one saga that record a delivery attempt (an outbound request). */
static json_t *attempt_entries(const json_t *logs, const char *saga_id)
{
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(logs, i, e)
    {
        const char *sid = str_at(e, "saga_id");
        const json_t *ob = json_object_get(e, "outbound_request");
        if (sid && strcmp(sid, saga_id) == 0 && json_object_get(ob, "method") != NULL)
            json_array_append(out, e);
    }
    return out;
}

static bool headers_have(const json_t *headers, const char *line)
{
    size_t i;
    json_t *h;
    json_array_foreach(headers, i, h)
    {
        if (json_is_string(h) && strcasecmp(json_string_value(h), line) == 0)
            return true;
    }
    return false;
}

/*
 * Every delivery attempt of the saga is one log entry with the outbound request as the stub
 * got it (method, URL, headers, body) and the response or transport error; as many entries as
 * the stub saw requests, and exactly want. Returns the entries (caller decrefs).
 */
static json_t *check_attempt_logs(const char *key, const char *order_id, const char *saga_id,
                                  stub_dest_t *stub, const char *path, size_t want)
{
    json_t *logs = order_logs(key, order_id);
    json_t *att = attempt_entries(logs, saga_id);
    json_decref(logs);
    if (json_array_size(att) != want || stub_dest_count_key(stub, saga_id) != want)
        fail_msg("saga %s: %zu attempt log entries and %zu deliveries, want %zu", saga_id,
                 json_array_size(att), stub_dest_count_key(stub, saga_id), want);
    char url[128], idem[64];
    stub_dest_url(stub, url, sizeof url);
    snprintf(url + strlen(url), sizeof url - strlen(url), "%s", path);
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", saga_id);
    size_t i;
    json_t *e;
    json_array_foreach(att, i, e)
    {
        const json_t *ob = json_object_get(e, "outbound_request");
        const json_t *in = json_object_get(e, "inbound_request");
        expect_path(ob, "method", "POST");
        expect_path(ob, "url", url);
        if (!headers_have(json_object_get(ob, "headers"), idem)) {
            char *dump = json_dumps(ob, JSON_COMPACT);
            fail_msg("attempt %zu: outbound headers lack \"%s\": %s", i + 1, idem, dump);
        }
        stub_req_t r;
        req_of(stub, saga_id, i, &r);
        if (!json_equal(json_object_get(ob, "body"), r.json)) {
            char *dump = json_dumps(ob, JSON_COMPACT);
            fail_msg("attempt %zu: logged body differs from the one sent (%s): %s", i + 1, r.body,
                     dump);
        }
        stub_req_free(&r);
        bool answered =
            json_is_integer(json_object_get(in, "status")) && json_object_get(in, "body") != NULL;
        bool failed = json_is_string(json_object_get(in, "error"));
        if (!answered && !failed) {
            char *dump = json_dumps(e, JSON_COMPACT);
            fail_msg("attempt %zu: inbound_request has neither status+body nor error: %s", i + 1,
                     dump);
        }
    }
    return att;
}

static long long inbound_status(const json_t *att, size_t i)
{
    return json_integer_value(
        json_object_get(json_object_get(json_array_get(att, i), "inbound_request"), "status"));
}

/* ---------------------------------------------------------------------------------------------
 * Orders
 * ------------------------------------------------------------------------------------------- */

static char *create_body(const char *number, const char *product, const char *terminal,
                         const char *site)
{
    json_t *b =
        json_pack("{s:s, s:[{s:{s:s}, s:{s:s}, s:{s:s}, s:i, s:s}], s:s, s:s}", "order_number",
                  number, "lines", "product", "source_id", product, "terminal", "source_id",
                  terminal, "site", "source_id", site, "quantity", 8000, "uom", "gal",
                  "requested_delivery", "2026-05-12T08:00:00.000Z", "notes", "gate 3");
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

/*
 * acme-supply creates order `number` for swift-haul; swift-haul's system answers with its own
 * order number sw_number (none if NULL). Waits for synced; the order id goes to order_id.
 * Returns the create saga id (caller frees).
 */
static char *make_order(const char *number, const char *sw_number, char order_id[25])
{
    if (sw_number) {
        char *reply = harness_fmt("{\"order_number\":\"%s\"}", sw_number);
        stub_dest_push_status(g_swift, 200, NULL, reply);
        free(reply);
    }
    char *body = create_body(number, "ULSD", "HOU-T1", "ATX-S12");
    char *sid = submit(ACME_KEY, "swift-haul", "create", body, order_id);
    free(body);
    json_t *saga = wait_saga(ACME_KEY, sid, SAGA_DEADLINE_MS);
    expect_saga(saga, "synced", NULL);
    json_decref(saga);
    assert_int_equal(stub_dest_queued(g_swift), 0);
    return sid;
}

static json_t *get_order(const char *key, const char *query)
{
    char *path = harness_fmt("/v1/order?%s", query);
    json_t *o = get_json(key, path, 200);
    free(path);
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * create, update_status
 * ------------------------------------------------------------------------------------------- */

static void test_create_synced(void **state)
{
    (void)state;
    stub_dest_push_status(g_swift, 200, NULL, "{\"order_number\":\"SW-1\"}");
    char oid[25];
    char *body = create_body("PO-E2E-1", "ULSD", "HOU-T1", "ATX-S12");
    char *sid = submit(ACME_KEY, "swift-haul", "create", body, oid);
    free(body);
    json_t *saga = wait_saga(ACME_KEY, sid, SAGA_DEADLINE_MS);
    expect_saga(saga, "synced", NULL);
    expect_path(saga, "saga_type", "order_create");
    expect_path(saga, "order_id", oid);
    assert_int_equal(attempts_of(saga), 1);

    /* The stages in order, each recorded once. */
    static const char *const stages[] = {"pending", "origin_mapped", "master_mapped",
                                         "destination_mapped", "synced"};
    const json_t *hist = json_object_get(saga, "history");
    size_t next = 0, i;
    json_t *h;
    json_array_foreach(hist, i, h)
    {
        const char *st = str_at(h, "status");
        if (next < 5 && st && strcmp(st, stages[next]) == 0)
            next++;
    }
    if (next != 5) {
        char *dump = json_dumps(hist, JSON_COMPACT);
        fail_msg("history lacks the stage sequence (stopped at %s): %s", stages[next], dump);
    }
    json_decref(saga);

    /* What swift-haul's system got: its own references, not acme-supply's. */
    stub_req_t r;
    check_delivery(g_swift, sid, "/v1/order/create", SWIFT_SECRET, &r);
    assert_int_equal(stub_dest_count_key(g_swift, sid), 1);
    assert_int_equal(stub_dest_count_key(g_acme, sid), 0);
    expect_path(r.json, "order_id", oid);
    expect_path(r.json, "order_number", "PO-E2E-1");
    expect_path(r.json, "lines.0.terminal.source_id", "SH-HOU");
    expect_path(r.json, "lines.0.site.source_id", "SH-ATX12");
    expect_path(r.json, "lines.0.product.source_id", "SH-DSL");
    const json_t *line0 = json_array_get(json_object_get(r.json, "lines"), 0);
    if (json_number_value(json_object_get(line0, "quantity")) != 8000.0)
        fail_msg("quantity lost on the way: %s", r.body);
    expect_path(line0, "uom", "gal");
    if (strstr(r.body, "HOU-T1") || strstr(r.body, "ATX-S12") || strstr(r.body, "\"ULSD\"") ||
        strstr(r.body, "64b7cf5a86d9755df3a6c501"))
        fail_msg("acme-supply's own references leaked to swift-haul: %s", r.body);
    char v[128];
    assert_true(stub_req_header(&r, "X-Dest-Tenant-Name", v, sizeof v));
    assert_string_equal(v, "swift-haul");
    stub_req_free(&r);

    /* swift-haul's answer named its own order number: the order keeps it and swift-haul finds
     * the order by it. */
    json_t *o = get_order(SWIFT_KEY, "order_number=SW-1");
    expect_path(o, "order_id", oid);
    expect_path(o, "counterparty_order_number", "SW-1");
    expect_path(o, "order_number", "PO-E2E-1");
    expect_path(o, "origin_tenant", "acme-supply");
    expect_path(o, "destination_tenant", "swift-haul");
    json_decref(o);
    char *q = harness_fmt("order_id=%s", oid);
    o = get_order(ACME_KEY, q);
    free(q);
    expect_path(o, "counterparty_order_number", "SW-1");
    expect_path(o, "lines.0.terminal.source_id", "HOU-T1");
    json_decref(o);

    /* The order's log is oldest first and names this saga's stages. */
    json_t *logs = order_logs(ACME_KEY, oid);
    const char *prev = "";
    size_t li;
    json_t *le;
    json_array_foreach(logs, li, le)
    {
        const char *d = str_at(le, "date");
        assert_non_null(d);
        if (strcmp(d, prev) < 0)
            fail_msg("order log not oldest first: %s after %s", d, prev);
        prev = d;
    }
    /* One entry per stage transition of this saga, in order, each once (the first two are
     * written with the destination_mapped commit: saga.c, held_step). */
    static const char *const titles[] = {"Order mapped to origin", "Order mapped to master data",
                                         "Order mapped to destination"};
    size_t seen = 0;
    json_array_foreach(logs, li, le)
    {
        const char *sid_e = str_at(le, "saga_id"), *title = str_at(le, "title");
        if (!sid_e || strcmp(sid_e, sid) != 0 || !title || strncmp(title, "Order mapped", 12) != 0)
            continue;
        if (seen >= 3 || strcmp(title, titles[seen]) != 0)
            fail_msg("order log stage entry %zu is '%s'", seen, title);
        seen++;
    }
    assert_int_equal(seen, 3);
    json_decref(logs);

    /* One attempt, logged with what was sent and what came back. */
    json_t *att = check_attempt_logs(ACME_KEY, oid, sid, g_swift, "/v1/order/create", 1);
    assert_int_equal(inbound_status(att, 0), 200);
    expect_path(json_array_get(att, 0), "inbound_request.body.order_number", "SW-1");
    json_decref(att);
    free(sid);
}

static void test_update_status_synced(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-UPD", "SW-UPD", oid));

    /* swift-haul (the destination) reports progress by its own order number and terminal. */
    json_t *saga;
    char *sid = run_saga(SWIFT_KEY, "acme-supply", "update_status",
                         "{\"order\":{\"order_number\":\"SW-UPD\"},"
                         "\"progress_status\":\"arrived_at_load\","
                         "\"location\":{\"source_id\":\"SH-HOU\"},"
                         "\"eta\":\"2026-05-11T19:25:51.332Z\",\"assigned_to\":\"driver-9\"}",
                         "synced", NULL, &saga);
    assert_int_equal(attempts_of(saga), 1);
    expect_path(saga, "status_update.progress_status", "arrived_at_load");
    expect_path(saga, "status_update.location.goid", "T-100");
    expect_path(saga, "status_update.location.goid_name", "Houston Terminal");
    expect_path(saga, "status_update.assigned_to", "driver-9");
    json_decref(saga);

    /* acme-supply (the origin) got it in its own terms. */
    stub_req_t r;
    check_delivery(g_acme, sid, "/v1/order/update_status", ACME_SECRET, &r);
    assert_int_equal(stub_dest_count_key(g_swift, sid), 0);
    expect_path(r.json, "location.source_id", "HOU-T1");
    expect_path(r.json, "order.order_id", oid);
    expect_path(r.json, "order.order_number", "PO-UPD");
    expect_path(r.json, "progress_status", "arrived_at_load");
    expect_path(r.json, "assigned_to", "driver-9");
    if (strstr(r.body, "SH-HOU"))
        fail_msg("swift-haul's terminal id leaked to acme-supply: %s", r.body);
    stub_req_free(&r);
    json_t *att = check_attempt_logs(SWIFT_KEY, oid, sid, g_acme, "/v1/order/update_status", 1);
    json_decref(att);
    free(sid);

    char *q = harness_fmt("order_id=%s", oid);
    json_t *o = get_order(ACME_KEY, q);
    expect_path(o, "progress_status", "arrived_at_load");
    expect_path(o, "status_update.progress_status", "arrived_at_load");
    expect_path(o, "status_update.location.goid", "T-100");
    json_decref(o);

    /* A drop-phase status at a site: the site is translated and filled in status_update. */
    sid = run_saga(SWIFT_KEY, "acme-supply", "update_status",
                   "{\"order\":{\"order_number\":\"SW-UPD\"},"
                   "\"progress_status\":\"arrived_at_drop\","
                   "\"location\":{\"source_id\":\"SH-ATX12\"}}",
                   "synced", NULL, &saga);
    expect_path(saga, "status_update.location.goid", "S-200");
    expect_path(saga, "status_update.location.goid_name", "Austin Store 12");
    expect_path(saga, "status_update.site.goid", "S-200");
    json_decref(saga);
    check_delivery(g_acme, sid, "/v1/order/update_status", ACME_SECRET, &r);
    expect_path(r.json, "location.source_id", "ATX-S12");
    stub_req_free(&r);
    free(sid);
    o = get_order(SWIFT_KEY, q);
    expect_path(o, "progress_status", "arrived_at_drop");
    json_decref(o);
    free(q);
}

/* ---------------------------------------------------------------------------------------------
 * bol, drop, reset
 * ------------------------------------------------------------------------------------------- */

static void test_bol_drop_reset(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-RST", "SW-RST", oid));

    char *sid = run_saga(SWIFT_KEY, "acme-supply", "bol",
                         "{\"order\":{\"order_number\":\"SW-RST\"},\"bol_number\":\"BOL-77\","
                         "\"terminal\":{\"source_id\":\"SH-HOU\"},"
                         "\"product\":{\"source_id\":\"SH-DSL\"},\"gross_volume\":1000,"
                         "\"net_volume\":990.5,\"actual\":\"2026-05-11T19:25:51.332Z\"}",
                         "synced", NULL, NULL);
    stub_req_t r;
    check_delivery(g_acme, sid, "/v1/order/bol", ACME_SECRET, &r);
    expect_path(r.json, "terminal.source_id", "HOU-T1");
    expect_path(r.json, "product.source_id", "ULSD");
    expect_path(r.json, "bol_number", "BOL-77");
    stub_req_free(&r);
    free(sid);

    sid = run_saga(SWIFT_KEY, "acme-supply", "drop",
                   "{\"order\":{\"order_number\":\"SW-RST\"},\"site\":{\"source_id\":\"SH-ATX12\"},"
                   "\"product\":{\"source_id\":\"SH-DSL\"},\"volume\":990.5,"
                   "\"actual\":\"2026-05-11T21:00:00.000Z\"}",
                   "synced", NULL, NULL);
    check_delivery(g_acme, sid, "/v1/order/drop", ACME_SECRET, &r);
    expect_path(r.json, "site.source_id", "ATX-S12");
    expect_path(r.json, "product.source_id", "ULSD");
    stub_req_free(&r);
    free(sid);

    free(run_saga(SWIFT_KEY, "acme-supply", "update_status",
                  "{\"order\":{\"order_number\":\"SW-RST\"},"
                  "\"progress_status\":\"completed_drop\","
                  "\"location\":{\"source_id\":\"SH-ATX12\"}}",
                  "synced", NULL, NULL));

    char *q = harness_fmt("order_id=%s", oid);
    json_t *before = get_order(ACME_KEY, q);
    json_t *bols = json_incref(json_object_get(before, "bols"));
    json_t *drops = json_incref(json_object_get(before, "drops"));
    assert_int_equal(json_array_size(bols), 1);
    assert_int_equal(json_array_size(drops), 1);
    expect_path(bols, "0.bol_number", "BOL-77");
    expect_path(before, "progress_status", "completed_drop");
    json_decref(before);

    /* acme-supply resets: swift-haul gets it by its own order number. */
    char *reset = harness_fmt("{\"order\":{\"order_id\":\"%s\"}}", oid);
    sid = run_saga(ACME_KEY, "swift-haul", "reset", reset, "synced", NULL, NULL);
    free(reset);
    check_delivery(g_swift, sid, "/v1/order/reset", SWIFT_SECRET, &r);
    expect_path(r.json, "order.order_number", "SW-RST");
    stub_req_free(&r);

    json_t *after = get_order(SWIFT_KEY, q);
    assert_true(json_is_array(json_object_get(after, "bols")));
    assert_true(json_is_array(json_object_get(after, "drops")));
    assert_int_equal(json_array_size(json_object_get(after, "bols")), 0);
    assert_int_equal(json_array_size(json_object_get(after, "drops")), 0);
    expect_path(after, "progress_status", "no_progress");
    json_decref(after);

    /* The order's log keeps the cleared BOLs and drops whole. */
    json_t *logs = order_logs(ACME_KEY, oid);
    const json_t *cleared = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(logs, i, e)
    {
        const char *esid = str_at(e, "saga_id");
        if (esid && strcmp(esid, sid) == 0 && json_object_get(e, "cleared_data"))
            cleared = json_object_get(e, "cleared_data");
    }
    if (cleared == NULL) {
        char *dump = json_dumps(logs, JSON_COMPACT);
        fail_msg("no log entry of reset saga %s has cleared_data: %s", sid, dump);
    }
    if (!json_equal(json_object_get(cleared, "bols"), bols) ||
        !json_equal(json_object_get(cleared, "drops"), drops)) {
        char *c = json_dumps(cleared, JSON_COMPACT);
        char *b = json_dumps(bols, JSON_COMPACT);
        char *d = json_dumps(drops, JSON_COMPACT);
        fail_msg("cleared_data %s is not the cleared bols %s and drops %s", c, b, d);
    }
    json_decref(logs);
    json_decref(bols);
    json_decref(drops);
    free(q);
    free(sid);
}

/* ---------------------------------------------------------------------------------------------
 * cancel
 * ------------------------------------------------------------------------------------------- */

static void test_cancel_rules(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-CXL", "SW-CXL", oid));
    char *body = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"reason_code\":\"customer\"}", oid);
    char *sid = run_saga(ACME_KEY, "swift-haul", "cancel", body, "canceled", NULL, NULL);
    stub_req_t r;
    check_delivery(g_swift, sid, "/v1/order/cancel", SWIFT_SECRET, &r);
    /* Every later message to swift-haul carries the order number its system gave. */
    expect_path(r.json, "order.order_number", "SW-CXL");
    expect_path(r.json, "reason_code", "customer");
    stub_req_free(&r);
    assert_int_equal(stub_dest_count_key(g_swift, sid), 1);
    free(sid);
    char *q = harness_fmt("order_id=%s", oid);
    json_t *o = get_order(ACME_KEY, q);
    assert_true(json_is_true(json_object_get(o, "canceled")));
    json_decref(o);

    size_t acme_before = stub_dest_count(g_acme), swift_before = stub_dest_count(g_swift);
    /* An update after the cancel is refused, and nothing is sent. */
    sid = run_saga(SWIFT_KEY, "acme-supply", "update_status",
                   "{\"order\":{\"order_number\":\"SW-CXL\"},\"progress_status\":\"loading\","
                   "\"location\":{\"source_id\":\"SH-HOU\"}}",
                   "rejected", "order is canceled", NULL);
    assert_int_equal(stub_dest_count_key(g_acme, sid), 0);
    free(sid);
    /* A second cancel is idempotent: canceled, nothing re-sent. */
    sid = run_saga(ACME_KEY, "swift-haul", "cancel", body, "canceled", NULL, NULL);
    assert_int_equal(stub_dest_count_key(g_swift, sid), 0);
    free(sid);
    assert_int_equal(stub_dest_count(g_acme), acme_before);
    assert_int_equal(stub_dest_count(g_swift), swift_before);
    o = get_order(SWIFT_KEY, q);
    assert_true(json_is_true(json_object_get(o, "canceled")));
    json_decref(o);
    free(q);
    free(body);
}

static void test_destination_side_cancel(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-DSC", "SW-DSC", oid));
    /* swift-haul received the order; its cancel goes back to the origin, acme-supply. */
    char *sid = run_saga(SWIFT_KEY, "acme-supply", "cancel",
                         "{\"order\":{\"order_number\":\"SW-DSC\"},\"reason_code\":\"no_truck\"}",
                         "canceled", NULL, NULL);
    stub_req_t r;
    check_delivery(g_acme, sid, "/v1/order/cancel", ACME_SECRET, &r);
    expect_path(r.json, "order.order_number", "PO-DSC");
    expect_path(r.json, "order.order_id", oid);
    stub_req_free(&r);
    assert_int_equal(stub_dest_count_key(g_acme, sid), 1);
    assert_int_equal(stub_dest_count_key(g_swift, sid), 0);
    json_t *o = get_order(SWIFT_KEY, "order_number=SW-DSC");
    assert_true(json_is_true(json_object_get(o, "canceled")));
    json_decref(o);
    free(sid);
}

/* ---------------------------------------------------------------------------------------------
 * Not found, wrong counterparty, third tenant, mapping miss
 * ------------------------------------------------------------------------------------------- */

/* A saga that must end in error before any delivery. */
static void expect_error_undelivered(const char *key, const char *dest, const char *action,
                                     const char *body, const char *msg1, const char *msg2)
{
    size_t a = stub_dest_count(g_acme), s = stub_dest_count(g_swift);
    json_t *saga;
    char *sid = run_saga(key, dest, action, body, "error", msg1, &saga);
    if (msg2)
        expect_saga(saga, "error", msg2);
    assert_int_equal(attempts_of(saga), 0);
    /* "order not found" ends the origin stage; a mapping miss ends the master stage, after the
     * held origin_mapped step, which the error's commit records before it (saga.c, held_step). */
    bool at_origin = strcmp(msg1, "order not found") == 0;
    const char *want[] = {"pending", "origin_mapped", "error"};
    const json_t *hist = json_object_get(saga, "history");
    assert_int_equal(json_array_size(hist), at_origin ? 2 : 3);
    for (size_t i = 0, w = 0; i < json_array_size(hist); i++, w++) {
        if (at_origin && w == 1)
            w++;
        assert_string_equal(str_at(json_array_get(hist, i), "status"), want[w]);
    }
    json_decref(saga);
    assert_int_equal(stub_dest_count_key(g_acme, sid), 0);
    assert_int_equal(stub_dest_count_key(g_swift, sid), 0);
    assert_int_equal(stub_dest_count(g_acme), a);
    assert_int_equal(stub_dest_count(g_swift), s);
    free(sid);
}

static void test_not_found_and_isolation(void **state)
{
    (void)state;
    /* No such order for the caller. */
    expect_error_undelivered(ACME_KEY, "swift-haul", "update_status",
                             "{\"order\":{\"order_number\":\"NO-SUCH-ORDER\"},"
                             "\"progress_status\":\"loading\","
                             "\"location\":{\"source_id\":\"HOU-T1\"}}",
                             "order not found", NULL);
    expect_error_undelivered(ACME_KEY, "swift-haul", "cancel",
                             "{\"order\":{\"order_id\":\"0123456789abcdef01234567\"}}",
                             "order not found", NULL);

    char oid[25];
    char *create_sid = make_order("PO-ISO", "SW-ISO", oid);
    char *by_id = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"progress_status\":\"loading\","
                              "\"location\":{\"source_id\":\"HOU-T1\"}}",
                              oid);
    /* X-Dest-Tenant-Name must be the order's counterparty. */
    expect_error_undelivered(ACME_KEY, "tecspal-hw", "update_status", by_id, "order not found",
                             NULL);
    expect_error_undelivered(SWIFT_KEY, "kibo-retail", "cancel",
                             "{\"order\":{\"order_number\":\"SW-ISO\"}}", "order not found", NULL);

    /* A third tenant sees nothing of it and cannot touch it. */
    char *p = harness_fmt("/v1/saga/%s", create_sid);
    json_decref(get_json(KIBO_KEY, p, 404));
    free(p);
    p = harness_fmt("/v1/order?order_id=%s", oid);
    json_decref(get_json(KIBO_KEY, p, 404));
    free(p);
    json_decref(get_json(KIBO_KEY, "/v1/order?order_number=PO-ISO", 404));
    json_decref(get_json(KIBO_KEY, "/v1/order?order_number=SW-ISO", 404));
    p = harness_fmt("/v1/order/logs?order_id=%s", oid);
    json_decref(get_json(KIBO_KEY, p, 404));
    free(p);

    size_t a = stub_dest_count(g_acme), s = stub_dest_count(g_swift);
    char *cancel = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"reason_code\":\"x\"}", oid);
    json_t *saga;
    char *kibo_sid =
        run_saga(KIBO_KEY, "acme-supply", "cancel", cancel, "error", "order not found", &saga);
    assert_int_equal(attempts_of(saga), 0);
    json_decref(saga);
    free(
        run_saga(KIBO_KEY, "swift-haul", "update_status", by_id, "error", "order not found", NULL));
    /* Nor by either party's order number. */
    free(run_saga(KIBO_KEY, "acme-supply", "cancel", "{\"order\":{\"order_number\":\"PO-ISO\"}}",
                  "error", "order not found", NULL));
    free(run_saga(KIBO_KEY, "swift-haul", "cancel", "{\"order\":{\"order_number\":\"SW-ISO\"}}",
                  "error", "order not found", NULL));
    assert_int_equal(stub_dest_count(g_acme), a);
    assert_int_equal(stub_dest_count(g_swift), s);
    /* Its sagas left no trace on the order, and the order is not canceled. */
    p = harness_fmt("order_id=%s", oid);
    json_t *o = get_order(ACME_KEY, p);
    free(p);
    assert_false(json_is_true(json_object_get(o, "canceled")));
    json_decref(o);
    json_t *logs = order_logs(ACME_KEY, oid);
    char *dump = json_dumps(logs, JSON_COMPACT);
    if (strstr(dump, kibo_sid) != NULL)
        fail_msg("kibo-retail's saga %s appears in acme-supply's order log", kibo_sid);
    free(dump);
    json_decref(logs);
    /* And the order's parties do not read kibo-retail's saga. */
    p = harness_fmt("/v1/saga/%s", kibo_sid);
    json_decref(get_json(ACME_KEY, p, 404));
    json_decref(get_json(SWIFT_KEY, p, 404));
    free(p);

    free(kibo_sid);
    free(cancel);
    free(by_id);
    free(create_sid);
}

static void test_mapping_miss(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-MAP", "SW-MAP", oid));
    char *body = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"progress_status\":\"loading\","
                             "\"location\":{\"source_id\":\"NOPE\"}}",
                             oid);
    expect_error_undelivered(ACME_KEY, "swift-haul", "update_status", body, "location", "NOPE");
    free(body);
    /* A create line whose product does not map: the message names the line's reference. */
    body = create_body("PO-MAP-2", "NOPE-P", "HOU-T1", "ATX-S12");
    expect_error_undelivered(ACME_KEY, "swift-haul", "create", body, "product", "NOPE-P");
    free(body);
    /* The caller's mapping must be its own: swift-haul's terminal id is not acme-supply's. */
    body = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"progress_status\":\"loading\","
                       "\"location\":{\"source_id\":\"SH-HOU\"}}",
                       oid);
    expect_error_undelivered(ACME_KEY, "swift-haul", "update_status", body, "location", "SH-HOU");
    free(body);
}

/* ---------------------------------------------------------------------------------------------
 * Retries
 * ------------------------------------------------------------------------------------------- */

/* An acme-supply update_status on order_id for swift-haul (a fresh assigned_to each time). */
static char *acme_update(const char *oid, const char *tag)
{
    return harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"progress_status\":\"driving_to_load\","
                       "\"location\":{\"source_id\":\"DAL-T2\"},\"assigned_to\":\"%s\"}",
                       oid, tag);
}

/* Arrival gap between request i and i+1 of a saga at a stub, in ms. */
static long long gap_ms(stub_dest_t *s, const char *sid, size_t i)
{
    stub_req_t a, b;
    req_of(s, sid, i, &a);
    req_of(s, sid, i + 1, &b);
    long long g = b.at_ms - a.at_ms;
    /* A retry re-sends the same request: same body, same key. */
    if (strcmp(a.body, b.body) != 0)
        fail_msg("retry %zu changed the body: %s then %s", i + 1, a.body, b.body);
    stub_req_free(&a);
    stub_req_free(&b);
    return g;
}

static void test_retry_5xx_then_ok(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-R1", NULL, oid));
    stub_dest_push_status(g_swift, 500, NULL, "{\"detail\":\"boom\"}");
    stub_dest_push_status(g_swift, 500, NULL, "{\"detail\":\"boom\"}");
    char *body = acme_update(oid, "r-1");
    json_t *saga;
    char *sid = run_saga(ACME_KEY, "swift-haul", "update_status", body, "synced", NULL, &saga);
    assert_int_equal(attempts_of(saga), 3);
    json_decref(saga);
    json_t *att = check_attempt_logs(ACME_KEY, oid, sid, g_swift, "/v1/order/update_status", 3);
    assert_int_equal(inbound_status(att, 0), 500);
    assert_int_equal(inbound_status(att, 1), 500);
    assert_int_equal(inbound_status(att, 2), 200);
    json_decref(att);
    /* Exponential backoff with equal jitter: at least base/2, then base. */
    long long g1 = gap_ms(g_swift, sid, 0), g2 = gap_ms(g_swift, sid, 1);
    print_message("retry gaps: %lld ms, %lld ms\n", g1, g2);
    assert_true(g1 >= 25);
    assert_true(g2 >= 50);
    stub_req_t r;
    req_of(g_swift, sid, 2, &r);
    check_signature(&r, SWIFT_SECRET);                   /* signed afresh per attempt */
    expect_path(r.json, "location.source_id", "SH-DAL"); /* acme-supply's DAL-T2, translated */
    expect_path(r.json, "assigned_to", "r-1");
    stub_req_free(&r);
    free(sid);
    free(body);
}

static void test_retry_always_5xx(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-R2", NULL, oid));
    stub_reply_t fail = {.status = 500, .body = "{\"detail\":\"down for maintenance\"}"};
    stub_dest_set_default(g_swift, &fail);
    char *body = acme_update(oid, "r-2");
    json_t *saga;
    char *sid = run_saga(ACME_KEY, "swift-haul", "update_status", body, "error", NULL, &saga);
    stub_dest_reset(g_swift);
    assert_int_equal(attempts_of(saga), MAX_ATTEMPTS);
    json_decref(saga);
    json_t *att =
        check_attempt_logs(ACME_KEY, oid, sid, g_swift, "/v1/order/update_status", MAX_ATTEMPTS);
    for (size_t i = 0; i < MAX_ATTEMPTS; i++)
        assert_int_equal(inbound_status(att, i), 500);
    json_decref(att);
    free(sid);
    free(body);
}

static void test_retry_after_408_429(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-R3", NULL, oid));

    /* 503 with Retry-After: 0 is retried (at once), then succeeds. */
    stub_dest_push_status(g_swift, 503, "Retry-After: 0\r\n", "{\"detail\":\"busy\"}");
    char *body = acme_update(oid, "r-3a");
    json_t *saga;
    char *sid = run_saga(ACME_KEY, "swift-haul", "update_status", body, "synced", NULL, &saga);
    assert_int_equal(attempts_of(saga), 2);
    json_decref(saga);
    json_decref(check_attempt_logs(ACME_KEY, oid, sid, g_swift, "/v1/order/update_status", 2));
    free(sid);
    free(body);

    /* Retry-After: 1 holds the retry back past the jittered backoff (50 ms base here), up to
     * at least retry_max_ms (200 ms) if the gateway caps it there. */
    stub_dest_push_status(g_swift, 503, "Retry-After: 1\r\n", "{\"detail\":\"busy\"}");
    body = acme_update(oid, "r-3b");
    sid = run_saga(ACME_KEY, "swift-haul", "update_status", body, "synced", NULL, &saga);
    assert_int_equal(attempts_of(saga), 2);
    json_decref(saga);
    long long g = gap_ms(g_swift, sid, 0);
    print_message("Retry-After: 1 -> retried after %lld ms\n", g);
    assert_true(g >= 200);
    free(sid);
    free(body);

    /* 408 and 429 are transient too. */
    stub_dest_push_status(g_swift, 408, NULL, "{\"detail\":\"slow\"}");
    stub_dest_push_status(g_swift, 429, NULL, "{\"detail\":\"too many\"}");
    body = acme_update(oid, "r-3c");
    sid = run_saga(ACME_KEY, "swift-haul", "update_status", body, "synced", NULL, &saga);
    assert_int_equal(attempts_of(saga), 3);
    json_decref(saga);
    free(sid);
    free(body);
}

static void test_timeouts(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-R4", NULL, oid));

    /* The destination hangs once: the attempt times out and the retry succeeds. */
    stub_reply_t hang = {.hang = true};
    stub_dest_push(g_swift, &hang);
    char *body = acme_update(oid, "t-1");
    json_t *saga;
    char *sid = run_saga(ACME_KEY, "swift-haul", "update_status", body, "synced", NULL, &saga);
    assert_int_equal(attempts_of(saga), 2);
    json_decref(saga);
    json_t *att = check_attempt_logs(ACME_KEY, oid, sid, g_swift, "/v1/order/update_status", 2);
    expect_path(json_array_get(att, 0), "inbound_request.error", "timeout");
    assert_int_equal(inbound_status(att, 1), 200);
    json_decref(att);
    long long g = gap_ms(g_swift, sid, 0);
    print_message("timed-out attempt retried after %lld ms (timeout %d ms)\n", g, SWIFT_TIMEOUT_MS);
    assert_true(g >= SWIFT_TIMEOUT_MS);
    free(sid);
    free(body);

    /* An answer slower than the timeout counts as a timeout too. */
    stub_reply_t slow = {.status = 200, .delay_ms = SWIFT_TIMEOUT_MS * 3};
    stub_dest_push(g_swift, &slow);
    body = acme_update(oid, "t-2");
    sid = run_saga(ACME_KEY, "swift-haul", "update_status", body, "synced", NULL, &saga);
    assert_int_equal(attempts_of(saga), 2);
    json_decref(saga);
    free(sid);
    free(body);

    /* Always hanging: every attempt times out, then error. */
    stub_dest_set_default(g_swift, &hang);
    body = acme_update(oid, "t-3");
    sid = run_saga(ACME_KEY, "swift-haul", "update_status", body, "error", "timeout", &saga);
    stub_dest_reset(g_swift);
    assert_int_equal(attempts_of(saga), MAX_ATTEMPTS);
    json_decref(saga);
    att = check_attempt_logs(ACME_KEY, oid, sid, g_swift, "/v1/order/update_status", MAX_ATTEMPTS);
    for (size_t i = 0; i < MAX_ATTEMPTS; i++)
        expect_path(json_array_get(att, i), "inbound_request.error", "timeout");
    json_decref(att);
    free(sid);
    free(body);
}

static void test_4xx_rejected(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-R5", NULL, oid));
    stub_dest_push_status(g_swift, 422, NULL, "{\"detail\":\"bad\"}");
    char *body = acme_update(oid, "x-1");
    json_t *saga;
    char *sid = run_saga(ACME_KEY, "swift-haul", "update_status", body, "rejected", NULL, &saga);
    expect_path(saga, "message", "bad");
    assert_int_equal(attempts_of(saga), 1);
    json_decref(saga);
    json_t *att = check_attempt_logs(ACME_KEY, oid, sid, g_swift, "/v1/order/update_status", 1);
    assert_int_equal(inbound_status(att, 0), 422);
    expect_path(json_array_get(att, 0), "inbound_request.body.detail", "bad");
    json_decref(att);
    free(sid);
    free(body);
}

/* ---------------------------------------------------------------------------------------------
 * Per-order FIFO across two gateway processes
 * ------------------------------------------------------------------------------------------- */

#define FIFO_N 50

/* Clients reading the saga stream: each gateway with saga workers keeps one XREADGROUP ...
 * BLOCK outstanding while idle (a consumer only joins the group once it gets an entry, so the
 * client list is what shows a reader before any load). */
static int stream_readers(void)
{
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "CLIENT LIST");
    assert_non_null(r);
    int readers = 0;
    for (const char *p = r->str; p && (p = strstr(p, "cmd=xreadgroup")) != NULL; p++)
        readers++;
    freeReplyObject(r);
    redisFree(c);
    return readers;
}

/* Wait until n clients are blocked reading the saga stream. */
static void wait_readers(int n)
{
    long long end = harness_now_ms() + 10000;
    int readers;
    while ((readers = stream_readers()) < n && harness_now_ms() < end)
        harness_sleep_ms(20);
    if (readers < n)
        fail_msg("%d stream readers after 10 s, want %d", readers, n);
}

/* Start g with the suite's overrides and the saga fields (stolen) on top; what names it in a
 * failure. */
static void start_gw_saga(harness_gw_t *g, json_t *saga_fields, const char *what)
{
    json_t *ov = json_deep_copy(g_overrides);
    json_object_update(json_object_get(ov, "saga"), saga_fields);
    json_decref(saga_fields);
    int rc = harness_gw_start(g, "gateway.json", g_redis.port, ov);
    json_decref(ov);
    if (rc != 0)
        fail_msg("%s did not start", what);
}

static void test_fifo_two_gateways(void **state)
{
    (void)state;
    harness_gw_t gw2;
    if (harness_gw_start(&gw2, "gateway.json", g_redis.port, g_overrides) != 0)
        fail_msg("second gateway did not start");
    assert_true(harness_gw_wait_ready(&gw2, 200, 10000));

    wait_readers(2);

    char oid[25];
    free(make_order("PO-FIFO", "SW-FIFO", oid));
    char *sids[FIFO_N];
    static const char *const progress[] = {"driving_to_load", "arrived_at_load"};
    for (int i = 0; i < FIFO_N; i++) {
        char *body =
            harness_fmt("{\"order\":{\"order_number\":\"SW-FIFO\"},\"progress_status\":\"%s\","
                        "\"location\":{\"source_id\":\"SH-HOU\"},\"assigned_to\":\"u-%02d\"}",
                        progress[i % 2], i);
        sids[i] = submit_on(i % 2 ? gw2.port : g_gw.port, SWIFT_KEY, "acme-supply", "update_status",
                            body, NULL);
        free(body);
    }
    for (int i = 0; i < FIFO_N; i++) {
        json_t *saga = wait_saga(SWIFT_KEY, sids[i], SAGA_DEADLINE_MS);
        expect_saga(saga, "synced", NULL);
        json_decref(saga);
    }

    /* acme-supply's system got them exactly once each, in intake order. */
    size_t n = stub_dest_count(g_acme), seen = 0;
    for (size_t i = 0; i < n; i++) {
        stub_req_t r;
        assert_true(stub_dest_get(g_acme, i, &r));
        int k = -1;
        for (int j = 0; j < FIFO_N && k < 0; j++)
            if (strcmp(r.idempotency_key, sids[j]) == 0)
                k = j;
        if (k >= 0) {
            if ((size_t)k != seen)
                fail_msg("delivery #%zu is update %d (%s), want update %zu: out of order", seen, k,
                         r.body, seen);
            char want[8];
            snprintf(want, sizeof want, "u-%02d", k);
            expect_path(r.json, "assigned_to", want);
            expect_path(r.json, "progress_status", progress[k % 2]);
            seen++;
        }
        stub_req_free(&r);
    }
    assert_int_equal(seen, FIFO_N);

    /* They took effect in that order too: the last one is the order's status, and the status
     * history lists them all in intake order. */
    char *q = harness_fmt("order_id=%s", oid);
    json_t *o = get_order(ACME_KEY, q);
    free(q);
    expect_path(o, "status_update.assigned_to", "u-49");
    expect_path(o, "progress_status", progress[(FIFO_N - 1) % 2]);
    json_decref(o);
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "LRANGE cr:{cr}:order:%s:status 0 -1", oid);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    int next = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        json_t *e = json_loads(rep->element[i]->str, 0, NULL);
        const char *a = str_at(e, "assigned_to");
        if (a && strncmp(a, "u-", 2) == 0) {
            if (atoi(a + 2) != next)
                fail_msg("status history entry %zu is %s, want u-%02d", i, a, next);
            next++;
        }
        json_decref(e);
    }
    freeReplyObject(rep);
    redisFree(c);
    assert_int_equal(next, FIFO_N);

    /* Both processes ran some of them (the owner is the consumer that last began a saga,
     * "<host>-<pid>-<random>"). */
    c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    char mark1[32], mark2[32];
    snprintf(mark1, sizeof mark1, "-%d-", (int)g_gw.pid);
    snprintf(mark2, sizeof mark2, "-%d-", (int)gw2.pid);
    int by1 = 0, by2 = 0;
    for (int i = 0; i < FIFO_N; i++) {
        rep = redisCommand(c, "HGET cr:{cr}:saga:%s owner", sids[i]);
        assert_non_null(rep);
        if (rep->type == REDIS_REPLY_STRING) {
            by1 += strstr(rep->str, mark1) != NULL;
            by2 += strstr(rep->str, mark2) != NULL;
        }
        freeReplyObject(rep);
    }
    redisFree(c);
    print_message("FIFO: %d updates run by the first gateway, %d by the second\n", by1, by2);
    assert_int_equal(by1 + by2, FIFO_N);
    assert_true(by1 > 0 && by2 > 0);

    for (int i = 0; i < FIFO_N; i++)
        free(sids[i]);
    int st = harness_gw_stop(&gw2);
    if (st != 0)
        fail_msg("second gateway stop returned %d (want 0)", st);
}

#define API_ONLY_N 12

/*
 * saga.workers false: a process that only takes requests (one scaled apart from the workers).
 * It stores and answers mutations like any other, reads no stream entries, and the sagas it
 * accepted are run to the end by the process whose workers are on.
 */
static void test_workers_off(void **state)
{
    (void)state;
    harness_gw_t api;
    start_gw_saga(&api, json_pack("{s:b}", "workers", 0), "a gateway with saga.workers false");
    assert_true(harness_gw_wait_ready(&api, 200, 10000));
    /* A process with workers reads the stream within a tick (100 ms) of being ready. */
    harness_sleep_ms(500);
    assert_int_equal(stream_readers(), 1);

    char *sids[API_ONLY_N];
    for (int i = 0; i < API_ONLY_N; i++) {
        char number[32];
        snprintf(number, sizeof number, "PO-API-%02d", i);
        char *body = create_body(number, "ULSD", "HOU-T1", "ATX-S12");
        sids[i] = submit_on(api.port, ACME_KEY, "swift-haul", "create", body, NULL);
        free(body);
    }
    for (int i = 0; i < API_ONLY_N; i++) {
        json_t *saga = wait_saga(ACME_KEY, sids[i], SAGA_DEADLINE_MS);
        expect_saga(saga, "synced", NULL);
        json_decref(saga);
    }
    /* Every one was begun by the other process (the owner is "<host>-<pid>-<random>"), and
     * the process without workers still does not read the stream. */
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    char mark[32];
    snprintf(mark, sizeof mark, "-%d-", (int)g_gw.pid);
    for (int i = 0; i < API_ONLY_N; i++) {
        redisReply *rep = redisCommand(c, "HGET cr:{cr}:saga:%s owner", sids[i]);
        assert_non_null(rep);
        if (rep->type != REDIS_REPLY_STRING || strstr(rep->str, mark) == NULL)
            fail_msg("saga %s was run by %s, want the gateway with workers (pid %d)", sids[i],
                     rep->type == REDIS_REPLY_STRING ? rep->str : "nobody", (int)g_gw.pid);
        freeReplyObject(rep);
        free(sids[i]);
    }
    redisFree(c);
    assert_int_equal(stream_readers(), 1);

    size_t len = 0;
    char *log = harness_read_file(api.log_path, &len);
    assert_non_null(log);
    if (strstr(log, "saga workers off") == NULL)
        fail_msg("the gateway did not say its saga workers are off: %s", log);
    free(log);
    int st = harness_gw_stop(&api);
    if (st != 0)
        fail_msg("gateway with saga.workers false: stop returned %d (want 0)", st);
}

/* ---------------------------------------------------------------------------------------------
 * Secrets
 * ------------------------------------------------------------------------------------------- */

static void no_secret_in(const char *what, const char *text, size_t len)
{
    static const char *const secrets[] = {ACME_SECRET, SWIFT_SECRET};
    for (size_t i = 0; i < 2; i++)
        if (text && memmem(text, len, secrets[i], strlen(secrets[i])) != NULL)
            fail_msg("webhook secret found in %s: %.*s", what, (int)(len > 2000 ? 2000 : len),
                     text);
}

static void no_secret_in_reply(const char *key, const redisReply *r)
{
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        no_secret_in(key, r->str, r->len);
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            no_secret_in_reply(key, r->element[i]);
}

static void test_secrets_never_stored(void **state)
{
    (void)state;
    /* The secrets are really in use: the deliveries above were signed with them. */
    assert_string_equal(getenv("SWIFT_WEBHOOK_SECRET"), SWIFT_SECRET);
    assert_true(stub_dest_count(g_swift) > 0 && stub_dest_count(g_acme) > 0);

    /* Every order log and every saga read. */
    size_t i;
    json_t *v;
    json_array_foreach(g_orders, i, v)
    {
        json_t *logs = order_logs(ACME_KEY, json_string_value(v));
        char *s = json_dumps(logs, JSON_COMPACT);
        no_secret_in("an order log", s, strlen(s));
        free(s);
        json_decref(logs);
    }
    json_array_foreach(g_sagas, i, v)
    {
        char *path = harness_fmt("/v1/saga/%s", json_string_value(json_array_get(v, 0)));
        harness_resp_t r;
        call(g_gw.port, "GET", path, json_string_value(json_array_get(v, 1)), NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        no_secret_in("a saga read", r.body, r.body_len);
        harness_resp_free(&r);
        free(path);
    }

    /* Every key and value in Redis. */
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    char cursor[32] = "0";
    size_t keys = 0;
    bool saw_outbound = false;
    do {
        redisReply *sc = redisCommand(c, "SCAN %s COUNT 1000", cursor);
        assert_non_null(sc);
        assert_int_equal(sc->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", sc->element[0]->str);
        const redisReply *ks = sc->element[1];
        for (size_t k = 0; k < ks->elements; k++) {
            const char *key = ks->element[k]->str;
            size_t kl = ks->element[k]->len;
            keys++;
            no_secret_in("a Redis key name", key, kl);
            redisReply *t = redisCommand(c, "TYPE %b", key, kl);
            assert_non_null(t);
            const char *cmd = strcmp(t->str, "string") == 0   ? "GET %b"
                              : strcmp(t->str, "hash") == 0   ? "HGETALL %b"
                              : strcmp(t->str, "list") == 0   ? "LRANGE %b 0 -1"
                              : strcmp(t->str, "set") == 0    ? "SMEMBERS %b"
                              : strcmp(t->str, "zset") == 0   ? "ZRANGE %b 0 -1"
                              : strcmp(t->str, "stream") == 0 ? "XRANGE %b - +"
                                                              : NULL;
            if (cmd == NULL)
                fail_msg("unexpected Redis type %s of %s", t->str, key);
            freeReplyObject(t);
            redisReply *val = redisCommand(c, cmd, key, kl);
            assert_non_null(val);
            no_secret_in_reply(key, val);
            if (val->type == REDIS_REPLY_ARRAY)
                for (size_t e = 0; e < val->elements; e++)
                    if (val->element[e]->type == REDIS_REPLY_STRING &&
                        strcmp(val->element[e]->str, "outbound") == 0)
                        saw_outbound = true;
            freeReplyObject(val);
        }
        freeReplyObject(sc);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
    print_message("scanned %zu Redis keys\n", keys);
    assert_true(keys > 0);
    assert_true(saw_outbound); /* the stored outbound requests were among what we scanned */

    /* And the gateway's own log lines. */
    size_t len = 0;
    char *log = NULL;
    FILE *f = fopen(g_gw.log_path, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        log = malloc((size_t)sz + 1);
        assert_non_null(log);
        len = fread(log, 1, (size_t)sz, f);
        fclose(f);
    }
    no_secret_in("the gateway log", log, len);
    free(log);
}

/* ---------------------------------------------------------------------------------------------
 * Bounded state
 * ------------------------------------------------------------------------------------------- */

static long long redis_int(redisContext *c, const char *cmd, const char *arg)
{
    redisReply *r = arg ? redisCommand(c, cmd, arg) : redisCommand(c, cmd);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        v = r->element[0]->integer; /* XPENDING summary: the count first */
    freeReplyObject(r);
    return v;
}

static void test_finished_state_is_bounded(void **state)
{
    (void)state;
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    /* Every saga of this file has ended: its record and history expire after retention_s
     * (gateway.json: 604800). */
    size_t i;
    json_t *v;
    json_array_foreach(g_sagas, i, v)
    {
        const char *sid = json_string_value(json_array_get(v, 0));
        long long t1 = redis_int(c, "TTL cr:{cr}:saga:%s", sid);
        long long t2 = redis_int(c, "TTL cr:{cr}:saga:%s:hist", sid);
        if (t1 <= 0 || t1 > 604800 || t2 <= 0 || t2 > 604800)
            fail_msg("finished saga %s: TTL %lld (record), %lld (history); want 1..604800", sid, t1,
                     t2);
    }
    /* Nothing is left queued: the stream's entries are deleted as sagas end, nothing is
     * pending, no saga is active or parked. */
    long long end = harness_now_ms() + 10000;
    long long xlen, pending, active, delayed;
    for (;;) {
        xlen = redis_int(c, "XLEN cr:{cr}:sagas", NULL);
        pending = redis_int(c, "XPENDING cr:{cr}:sagas workers", NULL);
        active = redis_int(c, "ZCARD cr:{cr}:active", NULL);
        delayed = redis_int(c, "ZCARD cr:{cr}:delayed", NULL);
        if ((xlen == 0 && pending == 0 && active == 0 && delayed == 0) || harness_now_ms() >= end)
            break;
        harness_sleep_ms(50);
    }
    redisFree(c);
    if (xlen != 0 || pending != 0 || active != 0 || delayed != 0)
        fail_msg("left behind: %lld stream entries, %lld pending, %lld active, %lld delayed", xlen,
                 pending, active, delayed);
}

/* An accept marks the order accepted once; only the destination tenant may send it. */
static void test_accept(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-ACC", "SW-ACC", oid));
    char *body = harness_fmt("{\"order\":{\"order_id\":\"%s\"}}", oid);
    free(run_saga(SWIFT_KEY, "acme-supply", "accept", body, "synced", "order accepted", NULL));
    free(run_saga(SWIFT_KEY, "acme-supply", "accept", body, "synced",
                  "order was already accepted", NULL));
    free(run_saga(ACME_KEY, "swift-haul", "accept", body, "rejected",
                  "only the destination tenant can accept an order", NULL));
    free(body);
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "HGET cr:{cr}:order:%s accepted", oid);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "1");
    freeReplyObject(r);
    redisFree(c);
}

/* Keys matching pattern, of type (NULL: any), by SCAN. */
static long long count_keys(redisContext *c, const char *pattern, const char *type)
{
    long long n = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = type ? redisCommand(c, "SCAN %s MATCH %s COUNT 1000 TYPE %s", cursor,
                                            pattern, type)
                             : redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        n += (long long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

/*
 * A request whose store fails half way is refused 503 and leaves nothing behind; one that is
 * stored is answered as stored even if an index cannot take it. In the first case the order's
 * saga index is made a string, so the intake script's ZADD fails after the request has joined
 * its order's queue and the stream: Redis keeps what a script wrote before an error, and the
 * failed request stayed at the head of the queue, holding every later saga of the order behind
 * a saga that does not exist. It carries an Idempotency-Key, and no record of it is kept: the
 * client's retry with the same key is stored as a new request, not answered as a repeat.
 */
static void test_failed_store_leaves_no_trace(void **state)
{
    (void)state;
    char oid[25];
    free(make_order("PO-UNDO", "SW-UNDO", oid));
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    char *idx = harness_fmt("cr:{cr}:idx:order:%s", oid);
    char *q = harness_fmt("cr:{cr}:order:%s:q", oid);
    freeReplyObject(redisCommand(c, "SET %s not-a-sorted-set", idx));
    long long sagas = harness_saga_count(&g_redis);
    long long hists = count_keys(c, "cr:{cr}:saga:*:hist", NULL);
    long long idems = count_keys(c, "cr:{cr}:idem:*", NULL);

    static const char idem[] = "Idempotency-Key: undo-retry-1";
    char *body = acme_update(oid, "undo-1");
    harness_resp_t r;
    int st = call_with(g_gw.port, "POST", "/v1/order/update_status", ACME_KEY, "swift-haul", idem,
                       body, &r);
    if (st != 503 || r.json == NULL || str_at(r.json, "detail") == NULL)
        fail_msg("a request whose store failed: %d %s, want 503 with a detail", st,
                 r.body ? r.body : "");
    harness_resp_free(&r);
    assert_int_equal(redis_int(c, "EXISTS %s", q), 0);
    assert_int_equal(harness_saga_count(&g_redis), sagas);
    assert_int_equal(count_keys(c, "cr:{cr}:saga:*:hist", NULL), hists);
    assert_int_equal(count_keys(c, "cr:{cr}:idem:*", NULL), idems);

    /* Once the index is a sorted set again, the client's retry with the same Idempotency-Key (as
     * a 503 tells it to) is a new request, stored and run to the end, not a repeat. */
    freeReplyObject(redisCommand(c, "DEL %s", idx));
    st = call_with(g_gw.port, "POST", "/v1/order/update_status", ACME_KEY, "swift-haul", idem, body,
                   &r);
    free(body);
    char replayed[16];
    if (st != 200 || r.json == NULL || str_path(r.json, "log.saga_id") == NULL ||
        harness_resp_header(&r, "Idempotent-Replayed", replayed, sizeof replayed))
        fail_msg("the retry of a request whose store failed: %d %s, want 200, not replayed", st,
                 r.body ? r.body : "");
    char *sid = strdup(str_path(r.json, "log.saga_id"));
    json_array_append_new(g_sagas, json_pack("[s, s]", sid, ACME_KEY));
    harness_resp_free(&r);
    json_t *saga = wait_saga(ACME_KEY, sid, SAGA_DEADLINE_MS);
    expect_saga(saga, "synced", NULL);
    json_decref(saga);
    free(sid);
    assert_int_equal(count_keys(c, "cr:{cr}:idem:*", NULL), idems + 1);

    /* An index written after the request is stored (here the tenant's) that cannot be written
     * leaves the request stored and answered 200: a 503 would have the client store it twice. */
    const char *tidx = "cr:{cr}:idx:tenant:acme-supply";
    freeReplyObject(redisCommand(c, "RENAME %s %s.saved", tidx, tidx));
    freeReplyObject(redisCommand(c, "SET %s not-a-sorted-set", tidx));
    body = acme_update(oid, "undo-3");
    free(run_saga(ACME_KEY, "swift-haul", "update_status", body, "synced", NULL, NULL));
    free(body);
    freeReplyObject(redisCommand(c, "DEL %s", tidx));
    freeReplyObject(redisCommand(c, "RENAME %s.saved %s", tidx, tidx));
    free(idx);
    free(q);
    redisFree(c);
}

/*
 * Orders go saga.order_retention_s after their last saga ended, with every key that names them;
 * an order with a saga in its queue again stays. Last in the file: the gateway started here,
 * with a retention of 2 s, removes every other order the file made.
 */
static void test_orders_expire(void **state)
{
    (void)state;
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    /* Every saga has ended (test_finished_state_is_bounded), so every order is idle. */
    long long orders = count_keys(c, "cr:{cr}:order:*", "hash");
    assert_true(orders > 5 && orders >= (long long)json_array_size(g_orders));
    assert_int_equal(redis_int(c, "ZCARD cr:{cr}:orders:idle", NULL), orders);
    size_t i;
    json_t *v;
    json_array_foreach(g_orders, i, v)
    {
        redisReply *r = redisCommand(c, "ZSCORE cr:{cr}:orders:idle %s", json_string_value(v));
        assert_non_null(r);
        if (r->type != REDIS_REPLY_STRING)
            fail_msg("order %s is not idle after its sagas ended", json_string_value(v));
        freeReplyObject(r);
    }
    assert_true(count_keys(c, "cr:{cr}:ordernum:*", NULL) == orders);
    assert_true(count_keys(c, "cr:{cr}:orderref:*", NULL) > 0);

    /* The first order gets a saga in its queue again (as intake would put one there). */
    const char *busy = json_string_value(json_array_get(g_orders, 0));
    freeReplyObject(redisCommand(c, "RPUSH cr:{cr}:order:%s:q held-by-test", busy));

    harness_gw_t gw2;
    start_gw_saga(&gw2, json_pack("{s:i, s:i}", "retention_s", 1, "order_retention_s", 2),
                  "a gateway with order_retention_s 2");
    assert_true(harness_gw_wait_ready(&gw2, 200, 10000));

    long long end = harness_now_ms() + 15000, left;
    while ((left = count_keys(c, "cr:{cr}:order:*", "hash")) > 1 && harness_now_ms() < end)
        harness_sleep_ms(100);
    char *busy_keys = harness_fmt("cr:{cr}:order:%s*", busy);
    long long other = count_keys(c, "cr:{cr}:order:*", NULL) - count_keys(c, busy_keys, NULL);
    free(busy_keys);
    long long named = count_keys(c, "cr:{cr}:ordernum:*", NULL),
              named_in = count_keys(c, "cr:{cr}:ordernum_in:*", NULL),
              refs = count_keys(c, "cr:{cr}:orderref:*", NULL),
              idx = count_keys(c, "cr:{cr}:idx:order:*", NULL),
              idle = redis_int(c, "ZCARD cr:{cr}:orders:idle", NULL);
    char want[64];
    snprintf(want, sizeof want, "crossroads_orders_expired_total %lld\n", orders - 1);
    harness_resp_t m;
    assert_int_equal(harness_http(gw2.port, "GET", "/metrics", NULL, NULL, 0, &m), 0);
    bool counted = m.body && strstr(m.body, want) != NULL;
    harness_resp_free(&m);
    assert_int_equal(harness_gw_stop(&gw2), 0);
    if (left != 1 || other != 0 || named != 1 || named_in != 1 || refs > 1 || idx > 1 ||
        idle != 0)
        fail_msg("after the retention: %lld order hashes (want the busy one), %lld other order "
                 "keys, %lld ordernum (want 1), %lld ordernum_in (want 1), %lld orderref (want "
                 "<= 1), %lld idx:order (want <= 1), %lld idle (want 0)",
                 left, other, named, named_in, refs, idx, idle);
    if (!counted)
        fail_msg("/metrics of the second gateway lacks \"%s\"", want);

    /* The busy order is still readable; another is gone, for its tenant as for anyone. */
    char *q = harness_fmt("order_id=%s", busy);
    json_decref(get_order(ACME_KEY, q));
    free(q);
    char *path =
        harness_fmt("/v1/order?order_id=%s", json_string_value(json_array_get(g_orders, 1)));
    json_decref(get_json(ACME_KEY, path, 404));
    free(path);
    redisFree(c);
}

/*
 * saga.order_retention_s 0 keeps orders for good: an order whose sagas have all ended is not
 * marked idle, and no reaper runs, even for an order an earlier configuration marked idle long
 * ago. The file's gateway gives way to one with that configuration (and saga records kept 1 s).
 */
static void test_orders_kept(void **state)
{
    (void)state;
    g_gw_up = false;
    assert_int_equal(harness_gw_stop(&g_gw), 0);
    start_gw_saga(&g_gw, json_pack("{s:i, s:i}", "retention_s", 1, "order_retention_s", 0),
                  "a gateway with order_retention_s 0");
    g_gw_up = true;
    assert_true(harness_gw_wait_ready(&g_gw, 200, 10000));

    char oid[25];
    free(make_order("PO-KEEP", "SW-KEEP", oid));
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "ZSCORE cr:{cr}:orders:idle %s", oid);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_NIL)
        fail_msg("order %s was marked idle with order_retention_s 0", oid);
    freeReplyObject(r);
    assert_int_equal(redis_int(c, "TTL cr:{cr}:order:%s", oid), -1);

    /* Marked idle at the epoch, as a gateway with a retention would have left it: kept. */
    freeReplyObject(redisCommand(c, "ZADD cr:{cr}:orders:idle 1 %s", oid));
    harness_sleep_ms(2500); /* a reaper would have run twice; the saga record has expired */
    char *key = harness_fmt("cr:{cr}:order:%s", oid);
    assert_int_equal(redis_int(c, "EXISTS %s", key), 1);
    free(key);
    assert_int_equal(redis_int(c, "EXISTS %s", "cr:{cr}:ordernum:acme-supply:PO-KEEP"), 1);
    assert_int_equal(redis_int(c, "EXISTS %s", "cr:{cr}:orderref:swift-haul:SW-KEEP"), 1);
    char *q = harness_fmt("order_id=%s", oid);
    json_decref(get_order(ACME_KEY, q));
    free(q);
    json_decref(get_order(SWIFT_KEY, "order_number=SW-KEEP"));
    harness_resp_t m;
    assert_int_equal(harness_http(g_gw.port, "GET", "/metrics", NULL, NULL, 0, &m), 0);
    bool none = m.body && strstr(m.body, "crossroads_orders_expired_total 0\n") != NULL;
    harness_resp_free(&m);
    if (!none)
        fail_msg("/metrics: crossroads_orders_expired_total is not 0");
    redisFree(c);
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

/* gateway.json's tenants with acme-supply and swift-haul pointed at the stubs, and fast saga
 * timings. */
static json_t *make_overrides(void)
{
    char acme[128], swift[128];
    stub_dest_url(g_acme, acme, sizeof acme);
    stub_dest_url(g_swift, swift, sizeof swift);
    json_t *tenants = harness_fixture_tenants_at(
        (const char *[]){"acme-supply", acme, "swift-haul", swift, NULL});
    if (tenants == NULL)
        return NULL;
    json_object_set_new(json_object_get(harness_tenant(tenants, "swift-haul"), "connector"),
                        "timeout_ms", json_integer(SWIFT_TIMEOUT_MS));
    return json_pack("{s:o, s:{s:i, s:i, s:i, s:i, s:i}}", "tenants", tenants, "saga",
                     "max_attempts", MAX_ATTEMPTS, "retry_base_ms", 50, "retry_max_ms", 200,
                     "claim_idle_ms", 2000, "drain_timeout_ms", 5000);
}

static int group_setup(void **state)
{
    (void)state;
    /* The child inherits these: the connectors name them in secret_env. */
    setenv("ACME_WEBHOOK_SECRET", ACME_SECRET, 1);
    setenv("SWIFT_WEBHOOK_SECRET", SWIFT_SECRET, 1);
    g_sagas = json_array();
    g_orders = json_array();
    g_acme = stub_dest_start();
    g_swift = stub_dest_start();
    if (g_acme == NULL || g_swift == NULL)
        return -1;
    g_overrides = make_overrides();
    if (g_overrides == NULL)
        return -1;
    if (harness_redis_start(&g_redis, false) != 0)
        return -1;
    g_redis_up = true;
    if (harness_gw_start(&g_gw, "gateway.json", g_redis.port, g_overrides) != 0)
        return -1;
    g_gw_up = true;
    if (!harness_gw_wait_ready(&g_gw, 200, 10000))
        return -1;
    return 0;
}

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
    stub_dest_stop(g_acme);
    stub_dest_stop(g_swift);
    g_acme = g_swift = NULL;
    json_decref(g_overrides);
    json_decref(g_sagas);
    json_decref(g_orders);
    g_teardown_failed = rc != 0;
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_synced),
        cmocka_unit_test(test_update_status_synced),
        cmocka_unit_test(test_bol_drop_reset),
        cmocka_unit_test(test_cancel_rules),
        cmocka_unit_test(test_destination_side_cancel),
        cmocka_unit_test(test_not_found_and_isolation),
        cmocka_unit_test(test_mapping_miss),
        cmocka_unit_test(test_retry_5xx_then_ok),
        cmocka_unit_test(test_retry_always_5xx),
        cmocka_unit_test(test_retry_after_408_429),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_4xx_rejected),
        cmocka_unit_test(test_fifo_two_gateways),
        cmocka_unit_test(test_workers_off),
        cmocka_unit_test(test_secrets_never_stored),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_failed_store_leaves_no_trace),
        cmocka_unit_test(test_finished_state_is_bounded),
        cmocka_unit_test(test_orders_expire),
        cmocka_unit_test(test_orders_kept),
    };
    int failed = cmocka_run_group_tests_name("saga", tests, group_setup, group_teardown);
    return failed != 0 || g_teardown_failed ? 1 : 0;
}
