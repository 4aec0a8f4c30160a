/*
 * test_secrets.c - secrets stay secret and logs stay parseable, against the real binary, a real
 * redis-server, recording webhook stubs for acme-supply (also its notify_url), swift-haul and
 * kibo-retail, and the Tecspal stand-in (tests/support/standin.h) checking its bearer token.
 *
 * A run of mixed traffic: creates both ways, update_status (by Bearer), BOL, drop, reset,
 * accept, cancels delivered to webhook, Kibo and Tecspal destinations (webhook signatures with
 * two secrets, the Tecspal token), a 500 then a retry, a saga in error retried by its owner,
 * idempotent replays, wrong keys (401), a key without the scope (403), admin reads, /metrics.
 * Then every artefact is searched for every secret (the six API keys of gateway.json, two
 * near-miss keys presented by a client, both webhook secrets, the Tecspal token):
 *   the gateway's log, every saga read, every order read and order log, every Redis key and
 *   value (SCAN and a dump by type), every HTTP response the test received (heads and bodies).
 *
 * Logs: every line of the gateway's log is one JSON object (jansson, strict UTF-8), no line
 * carries a raw U+2028/U+2029 or control byte, even though inputs carried \n, \r, U+2028, U+2029,
 * ESC and quotes: in X-Request-Id (refused, a generated id is used), in body fields the gateway
 * logs (a reference that does not map is named in the saga's end message, and logged), in order
 * numbers (named in a Kibo/Tecspal refusal), in the request target. And the same for long
 * multi-byte values, where a message is cut to its buffer. The X-Request-Id table: echoed (and
 * logged) only when it matches ^[A-Za-z0-9._:-]{1,128}$, else a generated 24-hex id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "harness.h"
#include "standin.h"
#include "stub_dest.h"

#define ACME_KEY     "demo-acme-key"
#define ACME2_KEY    "demo-acme-cancel-only"
#define ADMIN_KEY    "demo-admin-key"
#define SWIFT_KEY    "demo-swift-key"
#define KIBO_KEY     "demo-kibo-key"
#define TEC_KEY      "demo-tecspal-key"
#define ACME_SECRET  "acme-whsec-SECRET-4e1d77a0c9"
#define SWIFT_SECRET "swift-whsec-SECRET-b83f02e6d1"
#define TEC_TOKEN    "tecspal-tok-SECRET-7a91c3e5"
#define TEC_UUID     "3178e7e9-0fe9-47ad-b69a-e5604a990822"
#define SAGA_MS      20000

static const char *const secrets[] = {
    ACME_KEY, ACME2_KEY, ADMIN_KEY, SWIFT_KEY, KIBO_KEY, TEC_KEY,
    "demo-acme-kez", "demo-swift-key-old", /* wrong keys a client presented */
    ACME_SECRET, SWIFT_SECRET, TEC_TOKEN,
};

static harness_redis_t g_redis;
static harness_gw_t g_gw;
static bool g_redis_up, g_gw_up, g_teardown_failed;
static stub_dest_t *g_acme, *g_swift, *g_kibo;
static standin_t *g_tec;
static json_t *g_sagas;     /* [saga_id, key] */
static json_t *g_orders;    /* [order_id, key] */
static json_t *g_responses; /* every response: head + body */
static json_t *g_injected;  /* strings with \n, \r, U+2028, ESC that should reach the log */

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void keep_response(const harness_resp_t *r)
{
    json_array_append_new(g_responses, json_pack("[s%, s%]", r->headers ? r->headers : "",
                                                 r->headers ? strlen(r->headers) : 0,
                                                 r->body ? r->body : "", r->body ? r->body_len : 0));
}

/* A request with `auth` a full header line ("X-API-Key: ..." or "Authorization: ..."). */
static int req(const char *method, const char *path, const char *auth, const char *dest,
               const char *idem, const char *body, harness_resp_t *r)
{
    char dh[128], ih[300];
    const char *h[5] = {"Content-Type: application/json", NULL, NULL, NULL, NULL};
    size_t n = 1;
    if (auth)
        h[n++] = auth;
    if (dest) {
        snprintf(dh, sizeof dh, "X-Dest-Tenant-Name: %s", dest);
        h[n++] = dh;
    }
    if (idem) {
        snprintf(ih, sizeof ih, "Idempotency-Key: %s", idem);
        h[n++] = ih;
    }
    if (harness_http(g_gw.port, method, path, h, body, body ? strlen(body) : 0, r) != 0)
        fail_msg("%s %s: no answer from the gateway", method, path);
    /* Bytes that are not UTF-8 cannot go into a JSON string: keep those raw elsewhere. */
    json_t *utf8 = r->body ? json_stringn(r->body, r->body_len) : json_string("");
    if (utf8 == NULL)
        fail_msg("%s %s: response body is not UTF-8", method, path);
    json_decref(utf8);
    keep_response(r);
    return r->status;
}

/* Wait until acme-supply's stub has been quiet for 200 ms (its notify_url gets a notification
 * after each saga acme-supply started), so a scripted reply goes to the request meant. */
static void settle_acme(void)
{
    size_t n = stub_dest_count(g_acme);
    for (int quiet = 0; quiet < 200; quiet += 20) {
        harness_sleep_ms(20);
        size_t m = stub_dest_count(g_acme);
        if (m != n) {
            n = m;
            quiet = 0;
        }
    }
}

static char *key_hdr(const char *key)
{
    return harness_fmt("X-API-Key: %s", key);
}

static json_t *wait_saga(const char *key, const char *sid)
{
    char *auth = key_hdr(key), *path = harness_fmt("/v1/saga/%s", sid);
    long long end = harness_now_ms() + SAGA_MS;
    for (;;) {
        harness_resp_t r;
        int st = req("GET", path, auth, NULL, NULL, NULL, &r);
        const char *s = jstr(r.json, "status");
        if (st == 200 && (!strcmp(s, "synced") || !strcmp(s, "canceled") ||
                          !strcmp(s, "rejected") || !strcmp(s, "error"))) {
            json_t *j = json_incref(r.json);
            harness_resp_free(&r);
            free(auth);
            free(path);
            return j;
        }
        if (harness_now_ms() > end)
            fail_msg("saga %s did not end: %d %s", sid, st, r.body ? r.body : "");
        harness_resp_free(&r);
        harness_sleep_ms(20);
    }
}

/* A mutation as key (auth header: X-API-Key or, when bearer, Authorization: Bearer); waits
 * for the end; returns the saga (caller decrefs). */
static json_t *mutate(const char *key, bool bearer, const char *dest, const char *action,
                      const char *body, const char *idem, const char *want, char order_id[25])
{
    char *auth = bearer ? harness_fmt("Authorization: Bearer %s", key) : key_hdr(key);
    char *path = harness_fmt("/v1/order/%s", action);
    harness_resp_t r;
    if (req("POST", path, auth, dest, idem, body, &r) != 200)
        fail_msg("POST %s as %s: %d %s (sent %s)", path, key, r.status, r.body ? r.body : "",
                 body);
    const char *sid = jstr(json_object_get(r.json, "log"), "saga_id");
    assert_int_equal(strlen(sid), 24);
    json_array_append_new(g_sagas, json_pack("[s, s]", sid, key));
    if (order_id) {
        snprintf(order_id, 25, "%s", jstr(r.json, "order_id"));
        json_array_append_new(g_orders, json_pack("[s, s]", order_id, key));
    }
    char *s_id = strdup(sid);
    harness_resp_free(&r);
    json_t *saga = wait_saga(key, s_id);
    if (want && strcmp(jstr(saga, "status"), want) != 0) {
        char *d = json_dumps(saga, JSON_COMPACT);
        fail_msg("saga %s (%s as %s) ended %s, want %s: %s", s_id, action, key,
                 jstr(saga, "status"), want, d);
    }
    free(s_id);
    free(auth);
    free(path);
    return saga;
}

static void run_ok(const char *key, bool bearer, const char *dest, const char *action,
                   const char *body, const char *idem, const char *want, char order_id[25])
{
    json_decref(mutate(key, bearer, dest, action, body, idem, want, order_id));
}

static char *create_body(const char *number, const char *product, const char *terminal,
                         const char *site)
{
    json_t *b = json_pack("{s:s, s:[{s:{s:s}, s:{s:s}, s:{s:s}, s:i, s:s}], s:s, s:s}",
                          "order_number", number, "lines", "product", "source_id", product,
                          "terminal", "source_id", terminal, "site", "source_id", site,
                          "quantity", 8000, "uom", "gal", "requested_delivery",
                          "2026-05-12T08:00:00.000Z", "notes", "secrets run");
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

static char *read_log(size_t *len)
{
    FILE *f = fopen(g_gw.log_path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    fclose(f);
    s[got] = '\0';
    if (len)
        *len = got;
    return s;
}

/* The gateway's log after its buffered lines are out (it flushes once per loop turn). */
static char *settled_log(size_t *len)
{
    harness_resp_t r;
    assert_int_equal(harness_http(g_gw.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    harness_resp_free(&r);
    harness_sleep_ms(200);
    return read_log(len);
}

static int secrets_in(const char *where, const char *data, size_t len)
{
    int found = 0;
    for (size_t i = 0; data && i < sizeof secrets / sizeof secrets[0]; i++) {
        if (memmem(data, len, secrets[i], strlen(secrets[i])) != NULL) {
            const char *at = memmem(data, len, secrets[i], strlen(secrets[i]));
            size_t off = (size_t)(at - data);
            size_t from = off > 120 ? off - 120 : 0;
            print_error("secret \"%s\" found in %s: ...%.*s...\n", secrets[i], where,
                        (int)(off - from + strlen(secrets[i]) + 60 < len - from
                                  ? off - from + strlen(secrets[i]) + 60
                                  : len - from),
                        data + from);
            found++;
        }
    }
    return found;
}

/* ---------------------------------------------------------------------------------------------
 * Mixed traffic
 * ------------------------------------------------------------------------------------------- */

static void test_mixed_traffic(void **state)
{
    (void)state;
    char o1[25], o2[25], o3[25], o4[25];
    /* acme-supply -> swift-haul, then the whole life of the order. */
    stub_dest_push_status(g_swift, 200, NULL, "{\"order_number\":\"SW-SEC-1\"}");
    char *b = create_body("PO-SEC-1", "ULSD", "HOU-T1", "ATX-S12");
    run_ok(ACME_KEY, false, "swift-haul", "create", b, "sec-create-1", "synced", o1);
    /* The same request again: an idempotent replay. */
    harness_resp_t r;
    char *auth = key_hdr(ACME_KEY);
    const char *h[] = {"Content-Type: application/json", auth, "X-Dest-Tenant-Name: swift-haul",
                       "Idempotency-Key: sec-create-1", NULL};
    assert_int_equal(harness_http(g_gw.port, "POST", "/v1/order/create", h, b, strlen(b), &r), 0);
    keep_response(&r);
    assert_int_equal(r.status, 200);
    harness_resp_free(&r);
    free(b);
    run_ok(SWIFT_KEY, true, "acme-supply", "update_status",
           "{\"order\":{\"order_number\":\"SW-SEC-1\"},\"progress_status\":\"loading\","
           "\"location\":{\"source_id\":\"SH-HOU\"},\"assigned_to\":\"driver-1\"}",
           "sec-upd-1", "synced", NULL);
    run_ok(SWIFT_KEY, false, "acme-supply", "bol",
           "{\"order\":{\"order_number\":\"SW-SEC-1\"},\"bol_number\":\"BOL-S\",\"terminal\":"
           "{\"source_id\":\"SH-HOU\"},\"product\":{\"source_id\":\"SH-DSL\"},\"gross_volume\":10,"
           "\"net_volume\":9}",
           NULL, "synced", NULL);
    run_ok(SWIFT_KEY, true, "acme-supply", "drop",
           "{\"order\":{\"order_number\":\"SW-SEC-1\"},\"site\":{\"source_id\":\"SH-ATX12\"},"
           "\"product\":{\"source_id\":\"SH-DSL\"},\"volume\":9}",
           NULL, "synced", NULL);
    b = harness_fmt("{\"order\":{\"order_id\":\"%s\"}}", o1);
    run_ok(ACME_KEY, false, "swift-haul", "reset", b, NULL, "synced", NULL);
    free(b);
    /* A 500, then the retry goes through. */
    stub_dest_push_status(g_swift, 500, NULL, "{\"detail\":\"busy\"}");
    b = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"reason_code\":\"customer\"}", o1);
    run_ok(ACME_KEY, true, "swift-haul", "cancel", b, "sec-cancel-1", "canceled", NULL);
    free(b);

    /* swift-haul -> acme-supply, accepted by acme-supply. */
    settle_acme();
    stub_dest_push_status(g_acme, 200, NULL, "{\"order_number\":\"AC-SEC-2\"}");
    b = create_body("SW-SEC-2", "SH-DSL", "SH-HOU", "SH-ATX12");
    run_ok(SWIFT_KEY, false, "acme-supply", "create", b, NULL, "synced", o2);
    free(b);
    run_ok(ACME_KEY, false, "swift-haul", "accept", "{\"order\":{\"order_number\":\"AC-SEC-2\"}}",
           NULL, NULL, NULL);

    /* Tecspal: its order towards acme-supply, cancelled by acme-supply with the token. */
    standin_tecspal_set_order(g_tec, TEC_UUID, "PENDING", "DM1");
    b = create_body(TEC_UUID, "TEC-P-DSL", "TEC-T-HOU", "TEC-S-ATX");
    run_ok(TEC_KEY, false, "acme-supply", "create", b, NULL, "synced", o3);
    free(b);
    b = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"reason_code\":\"customer\"}", o3);
    run_ok(ACME_KEY, false, "tecspal-hw", "cancel", b, NULL, "canceled", NULL);
    free(b);
    char st[32];
    assert_true(standin_tecspal_order_status(g_tec, TEC_UUID, st, sizeof st));
    assert_string_equal(st, "CANCELLED");

    /* Kibo: its order towards acme-supply, cancelled by acme-supply. */
    b = create_body("1010101", "SKU-ULSD", "KB-TERM-HOU", "1012");
    run_ok(KIBO_KEY, true, "acme-supply", "create", b, NULL, "synced", o4);
    free(b);
    b = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"reason_code\":\"fraud\"}", o4);
    run_ok(ACME_KEY, false, "kibo-retail", "cancel", b, NULL, "canceled", NULL);
    free(b);

    /* A saga in error, retried by its owner. */
    json_t *s = mutate(ACME_KEY, false, "swift-haul", "update_status",
                       "{\"order\":{\"order_number\":\"NO-SUCH\"},\"progress_status\":\"loading\","
                       "\"location\":{\"source_id\":\"HOU-T1\"}}",
                       NULL, "error", NULL);
    char *p = harness_fmt("/v1/saga/%s/retry", jstr(s, "saga_id"));
    assert_int_equal(req("POST", p, auth, NULL, NULL, "", &r), 200);
    harness_resp_free(&r);
    free(p);
    json_decref(wait_saga(ACME_KEY, jstr(s, "saga_id")));
    json_decref(s);

    /* Refusals: wrong keys, a key without the scope. */
    assert_int_equal(req("GET", "/v1/order?order_number=PO-SEC-1", "X-API-Key: demo-acme-kez",
                         NULL, NULL, NULL, &r),
                     401);
    harness_resp_free(&r);
    assert_int_equal(req("POST", "/v1/order/cancel", "Authorization: Bearer demo-swift-key-old",
                         "acme-supply", NULL, "{\"order\":{\"order_number\":\"X\"}}", &r),
                     401);
    harness_resp_free(&r);
    b = create_body("PO-SEC-403", "ULSD", "HOU-T1", "ATX-S12");
    assert_int_equal(req("POST", "/v1/order/create", "X-API-Key: " ACME2_KEY, "swift-haul", NULL,
                         b, &r),
                     403);
    harness_resp_free(&r);
    free(b);

    /* Reads of every kind, admin included. */
    const char *paths[] = {"/v1/admin/sagas", "/v1/admin/counts", "/metrics", "/healthz",
                           "/readyz"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        req("GET", paths[i], "X-API-Key: " ADMIN_KEY, NULL, NULL, NULL, &r);
        assert_true(r.status == 200);
        harness_resp_free(&r);
    }
    p = harness_fmt("/v1/admin/sagas/%s",
                    json_string_value(json_array_get(json_array_get(g_sagas, 0), 0)));
    req("GET", p, "X-API-Key: " ADMIN_KEY, NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    harness_resp_free(&r);
    free(p);
    free(auth);
    harness_sleep_ms(300); /* notifications */
    print_message("mixed traffic: %zu sagas, %zu orders, %zu responses; deliveries: acme %zu "
                  "(with notifications), swift %zu, kibo %zu, tecspal %zu\n",
                  json_array_size(g_sagas), json_array_size(g_orders),
                  json_array_size(g_responses), stub_dest_count(g_acme), stub_dest_count(g_swift),
                  stub_dest_count(g_kibo), standin_request_count(g_tec));
    assert_true(standin_request_count(g_tec) >= 1);
}

/* ---------------------------------------------------------------------------------------------
 * X-Request-Id
 * ------------------------------------------------------------------------------------------- */

typedef struct rid_case {
    const char *value; /* sent as is (raw bytes) */
    size_t repeat;     /* value repeated (for length cases); 0 = once */
    int status;        /* the answer's status */
    bool echoed;
} rid_case_t;

static const rid_case_t rid_cases[] = {
    {"abc", 0, 200, true},
    {"A-Z_0.9:x", 0, 200, true},
    {"a", 128, 200, true},
    {".", 0, 200, true},
    {"-", 0, 200, true},
    {"::", 0, 200, true},
    {"6b042c8262ade49a671a7f24", 0, 200, true},
    {"a", 129, 200, false},
    {"ab", 100, 200, false},
    {"a b", 0, 200, false},
    {"a/b", 0, 200, false},
    {"a\\b", 0, 200, false},
    {"a\"b", 0, 200, false},
    {"a,b", 0, 200, false},
    {"a;b", 0, 200, false},
    {"a=b", 0, 200, false},
    {"a+b", 0, 200, false},
    {"<script>", 0, 200, false},
    {"a%0d%0aX-Evil:1", 0, 200, false},
    {"{\"x\":1}", 0, 200, false},
    {"a\tb", 0, 200, false},
    {"caf\xc3\xa9", 0, 200, false},
    {"a\xe2\x80\xa8" "b", 0, 200, false}, /* U+2028 */
    {"a\xe2\x80\xa9" "b", 0, 200, false}, /* U+2029 */
    {"\xff\xfe", 0, 200, false},
    {"a\x1b[31mred", 0, 400, false}, /* ESC: a control byte, refused by the framing */
    {"a\x7f", 0, 400, false},
};

static bool generated_id(const char *v)
{
    if (strlen(v) != 24)
        return false;
    for (int i = 0; i < 24; i++)
        if (!isxdigit((unsigned char)v[i]) || isupper((unsigned char)v[i]))
            return false;
    return true;
}

static void test_request_id_table(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof rid_cases / sizeof rid_cases[0]; i++) {
        const rid_case_t *c = &rid_cases[i];
        char sent[512] = "";
        for (size_t k = 0; k < (c->repeat ? c->repeat : 1); k++)
            strncat(sent, c->value, sizeof sent - strlen(sent) - 1);
        char reqs[1024];
        int n = snprintf(reqs, sizeof reqs,
                         "GET /v1/order?order_number=PO-SEC-1 HTTP/1.1\r\nHost: gw.test\r\n"
                         "X-API-Key: " ACME_KEY "\r\nX-Request-Id: %s\r\n\r\n",
                         sent);
        int fd = harness_raw_connect(g_gw.port);
        assert_true(fd >= 0);
        assert_int_equal(harness_raw_send(fd, reqs, (size_t)n, 0), 0);
        size_t len;
        bool closed;
        char *raw = harness_raw_recv_n(fd, 1, 3000, &len, &closed);
        close(fd);
        harness_resp_t r;
        char v[300] = "";
        bool ok = harness_raw_parse(raw, len, 0, &r) == 0;
        if (ok) {
            ok = r.status == c->status && harness_resp_header(&r, "X-Request-Id", v, sizeof v);
            if (ok && c->echoed)
                ok = strcmp(v, sent) == 0;
            if (ok && !c->echoed)
                ok = generated_id(v) && strcmp(v, sent) != 0;
            harness_resp_free(&r);
        }
        if (!ok) {
            print_error("X-Request-Id \"%s\" (%zu bytes): got \"%.60s\", want %d %s\n", sent,
                        strlen(sent), raw, c->status, c->echoed ? "echoed" : "a generated id");
            failed++;
        }
        free(raw);
        /* The log names the request by the id it answered with, never the refused value. */
        size_t ll;
        char *log = settled_log(&ll);
        bool in_log = v[0] && strstr(log, v) != NULL;
        bool raw_in_log = !c->echoed && strlen(sent) > 2 && strstr(log, sent) != NULL;
        if (!in_log || raw_in_log) {
            print_error("X-Request-Id \"%s\": answered id %s %s in the log; refused value %s\n",
                        sent, v, in_log ? "is" : "is NOT", raw_in_log ? "IS in the log" : "is not");
            failed++;
        }
        free(log);
    }
    print_message("X-Request-Id table: %zu cases\n", sizeof rid_cases / sizeof rid_cases[0]);
    assert_int_equal(failed, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Inputs that try to break log lines
 * ------------------------------------------------------------------------------------------- */

/* Values with \n, \r, U+2028, U+2029, ESC, quotes and backslashes, as JSON text. */
static const char *const nasty_json[] = {
    "\"LOG\\n{\\\"level\\\":\\\"fatal\\\",\\\"msg\\\":\\\"forged\\\"}\"",
    "\"CR\\rLF\\r\\nEND\"",
    "\"LS\\u2028PS\\u2029X\"",
    "\"ESC\\u001b[31mRED\\u001b[0m\"",
    "\"Q\\\"B\\\\S\\t\\b\\f\"",
    "\"DEL\\u007f\\u0085NEL\"",
};
/* The same values decoded, to find them in the parsed log. */
static const char *const nasty_text[] = {
    "LOG\n{\"level\":\"fatal\",\"msg\":\"forged\"}", "CR\rLF\r\nEND", "LS\xe2\x80\xa8PS\xe2\x80\xa9X",
    "ESC\x1b[31mRED\x1b[0m", "Q\"B\\S\t\b\f", "DEL\x7f\xc2\x85NEL",
};

static void test_log_injection(void **state)
{
    (void)state;
    char oid[25];
    for (size_t i = 0; i < sizeof nasty_json / sizeof nasty_json[0]; i++) {
        /* 1. In a body field that is logged: a terminal that does not map. */
        char *b =
            harness_fmt("{\"order_number\":\"PO-NASTY-%zu\",\"lines\":[{\"product\":{\"source_id\":"
                        "\"ULSD\"},\"terminal\":{\"source_id\":%s},\"site\":{\"source_id\":"
                        "\"ATX-S12\"},\"quantity\":1}],\"requested_delivery\":"
                        "\"2026-05-12T08:00:00.000Z\"}",
                        i, nasty_json[i]);
        json_decref(mutate(ACME_KEY, false, "swift-haul", "create", b, NULL, "error", oid));
        free(b);
        /* 2. In an order number that a refusal names: tecspal-hw's order, cancelled towards
         *    Tecspal, whose reference must be a UUID. */
        b = harness_fmt(
            "{\"order_number\":%s,\"lines\":[{\"product\":{\"source_id\":\"TEC-P-DSL\"},"
            "\"terminal\":{\"source_id\":\"TEC-T-HOU\"},\"site\":{\"source_id\":\"TEC-S-ATX\"},"
            "\"quantity\":1}],\"requested_delivery\":\"2026-05-12T08:00:00.000Z\"}",
            nasty_json[i]);
        json_decref(mutate(TEC_KEY, false, "acme-supply", "create", b, NULL, "synced", oid));
        free(b);
        b = harness_fmt("{\"order\":{\"order_id\":\"%s\"}}", oid);
        json_decref(mutate(ACME_KEY, false, "tecspal-hw", "cancel", b, NULL, "rejected", NULL));
        free(b);
        json_array_append_new(g_injected, json_string(nasty_text[i]));
    }
    /* 3. In the request target: the path is logged. */
    static const char *const targets[] = {
        "/v1/x%0d%0a%1b%e2%80%a8", "/caf\xc3\xa9", "/\xff\xfe", "/a\"b\\c",
    };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char reqs[512];
        int n = snprintf(reqs, sizeof reqs, "GET %s HTTP/1.1\r\nHost: gw.test\r\n\r\n", targets[i]);
        int fd = harness_raw_connect(g_gw.port);
        assert_true(fd >= 0);
        assert_int_equal(harness_raw_send(fd, reqs, (size_t)n, 0), 0);
        size_t len;
        bool closed;
        free(harness_raw_recv_n(fd, 1, 3000, &len, &closed));
        close(fd);
    }
}

/* Every line one JSON object; no raw separator or control byte. Returns the parsed lines. */
static json_t *check_log_lines(int *bad)
{
    size_t len;
    char *log = settled_log(&len);
    assert_non_null(log);
    json_t *lines = json_array();
    size_t lineno = 0;
    for (char *l = log; l < log + len;) {
        char *e = memchr(l, '\n', (size_t)(log + len - l));
        size_t n = e ? (size_t)(e - l) : (size_t)(log + len - l);
        lineno++;
        json_error_t err;
        json_t *j = json_loadb(l, n, 0, &err);
        bool raw_sep = memmem(l, n, "\xe2\x80\xa8", 3) || memmem(l, n, "\xe2\x80\xa9", 3);
        bool ctl = false;
        for (size_t k = 0; k < n; k++)
            ctl |= (unsigned char)l[k] < 0x20 || l[k] == 0x7f;
        if (!json_is_object(j) || raw_sep || ctl || !json_is_string(json_object_get(j, "msg"))) {
            print_error("log line %zu is not a clean JSON object (%s%s%s): %.*s\n", lineno,
                        j ? "" : err.text, raw_sep ? " raw U+2028/9" : "", ctl ? " control byte" : "",
                        (int)(n > 600 ? 600 : n), l);
            (*bad)++;
        } else {
            json_array_append(lines, j);
        }
        json_decref(j);
        l += n + 1;
    }
    free(log);
    return lines;
}

static void test_log_lines_are_json(void **state)
{
    (void)state;
    int bad = 0;
    json_t *lines = check_log_lines(&bad);
    /* The nasty values did reach the log (escaped), so the check above means something. */
    size_t i;
    json_t *v;
    json_array_foreach(g_injected, i, v)
    {
        bool found = false;
        size_t k;
        json_t *l;
        json_array_foreach(lines, k, l)
        {
            const char *m = jstr(l, "message");
            if (strstr(m, json_string_value(v)) != NULL)
                found = true;
        }
        if (!found) {
            print_error("injected value %zu never reached a log line's message\n", i);
            bad++;
        }
    }
    print_message("gateway log: %zu JSON lines, %d bad\n", json_array_size(lines), bad);
    json_decref(lines);
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Secrets in every artefact
 * ------------------------------------------------------------------------------------------- */

static int scan_reply(const char *key, const redisReply *r)
{
    int n = 0;
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        char where[300];
        snprintf(where, sizeof where, "Redis value of %s", key);
        n += secrets_in(where, r->str, r->len);
    }
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            n += scan_reply(key, r->element[i]);
    return n;
}

static void test_no_secret_anywhere(void **state)
{
    (void)state;
    int found = 0;
    size_t artefacts = 0;
    /* Saga reads, order reads and order logs. */
    size_t i;
    json_t *v;
    json_array_foreach(g_sagas, i, v)
    {
        char *p = harness_fmt("/v1/saga/%s", json_string_value(json_array_get(v, 0)));
        char *a = key_hdr(json_string_value(json_array_get(v, 1)));
        harness_resp_t r;
        assert_int_equal(req("GET", p, a, NULL, NULL, NULL, &r), 200);
        found += secrets_in("a saga read", r.body, r.body_len);
        artefacts++;
        harness_resp_free(&r);
        free(p);
        free(a);
    }
    json_array_foreach(g_orders, i, v)
    {
        char *a = key_hdr(json_string_value(json_array_get(v, 1)));
        for (int k = 0; k < 2; k++) {
            char *p = harness_fmt("/v1/order%s?order_id=%s", k ? "/logs" : "",
                                  json_string_value(json_array_get(v, 0)));
            harness_resp_t r;
            assert_int_equal(req("GET", p, a, NULL, NULL, NULL, &r), 200);
            found += secrets_in(k ? "an order log" : "an order read", r.body, r.body_len);
            artefacts++;
            harness_resp_free(&r);
            free(p);
        }
        free(a);
    }
    /* Every response the test got (heads and bodies). */
    json_array_foreach(g_responses, i, v)
    {
        const char *hd = json_string_value(json_array_get(v, 0));
        const char *bd = json_string_value(json_array_get(v, 1));
        found += secrets_in("a response head", hd, strlen(hd));
        found += secrets_in("a response body", bd, json_string_length(json_array_get(v, 1)));
        artefacts++;
    }
    /* Redis: every key, every value by type. */
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    char cursor[32] = "0";
    size_t keys = 0;
    do {
        redisReply *sc = redisCommand(c, "SCAN %s COUNT 1000", cursor);
        assert_true(sc && sc->type == REDIS_REPLY_ARRAY && sc->elements == 2);
        snprintf(cursor, sizeof cursor, "%s", sc->element[0]->str);
        for (size_t k = 0; k < sc->element[1]->elements; k++) {
            const redisReply *kr = sc->element[1]->element[k];
            keys++;
            found += secrets_in("a Redis key name", kr->str, kr->len);
            redisReply *t = redisCommand(c, "TYPE %b", kr->str, kr->len);
            assert_non_null(t);
            const char *cmd = !strcmp(t->str, "string") ? "GET %b"
                              : !strcmp(t->str, "hash") ? "HGETALL %b"
                              : !strcmp(t->str, "list") ? "LRANGE %b 0 -1"
                              : !strcmp(t->str, "set")  ? "SMEMBERS %b"
                              : !strcmp(t->str, "zset") ? "ZRANGE %b 0 -1 WITHSCORES"
                              : !strcmp(t->str, "stream") ? "XRANGE %b - +"
                                                          : NULL;
            if (cmd == NULL)
                fail_msg("Redis key %s of unexpected type %s", kr->str, t->str);
            freeReplyObject(t);
            redisReply *val = redisCommand(c, cmd, kr->str, kr->len);
            assert_non_null(val);
            found += scan_reply(kr->str, val);
            freeReplyObject(val);
            if (strstr(kr->str, ":sagas")) { /* the stream's consumer groups too */
                val = redisCommand(c, "XINFO GROUPS %b", kr->str, kr->len);
                found += scan_reply(kr->str, val);
                if (val)
                    freeReplyObject(val);
            }
        }
        freeReplyObject(sc);
    } while (strcmp(cursor, "0") != 0);
    redisReply *info = redisCommand(c, "CLIENT LIST");
    found += scan_reply("CLIENT LIST", info);
    freeReplyObject(info);
    redisFree(c);
    /* The gateway's log. */
    size_t len;
    char *log = settled_log(&len);
    found += secrets_in("the gateway log", log, len);
    free(log);
    print_message("secrets: searched %zu API answers, %zu Redis keys (and values), the log "
                  "(%zu bytes) for %zu secrets: %d found\n",
                  artefacts, keys, len, sizeof secrets / sizeof secrets[0], found);
    assert_true(keys > 20);
    assert_int_equal(found, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Long multi-byte values, cut where the gateway bounds a message
 * ------------------------------------------------------------------------------------------- */

static bool gateway_alive(void)
{
    harness_resp_t r;
    if (harness_http(g_gw.port, "GET", "/healthz", NULL, NULL, 0, &r) != 0)
        return false;
    bool ok = r.status == 200;
    harness_resp_free(&r);
    return ok && kill(g_gw.pid, 0) == 0;
}

/* A terminal reference that does not map, k bytes of ASCII then 2-byte characters: the end
 * message names it, and a message buffer ends inside a character for some k. acme-supply, the
 * initiator, has a notify_url, so the end message is also notified. */
static void test_cut_multibyte_messages(void **state)
{
    (void)state;
    int bad = 0;
    for (int k = 0; k < 2 && gateway_alive(); k++) {
        char sid[256] = "";
        for (int a = 0; a < k; a++)
            strcat(sid, "a");
        for (int c = 0; c < 100; c++)
            strcat(sid, "\xc3\xa9"); /* é */
        char *b =
            harness_fmt("{\"order_number\":\"PO-CUT-%d\",\"lines\":[{\"product\":{\"source_id\":"
                        "\"ULSD\"},\"terminal\":{\"source_id\":\"%s\"},\"site\":{\"source_id\":"
                        "\"ATX-S12\"},\"quantity\":1}],\"requested_delivery\":"
                        "\"2026-05-12T08:00:00.000Z\"}",
                        k, sid);
        char *auth = key_hdr(ACME_KEY);
        harness_resp_t r;
        assert_int_equal(req("POST", "/v1/order/create", auth, "swift-haul", NULL, b, &r), 200);
        char *saga_id = strdup(jstr(json_object_get(r.json, "log"), "saga_id"));
        harness_resp_free(&r);
        free(b);
        /* It ends; the gateway is still there; the end message names the reference. */
        char *p = harness_fmt("/v1/saga/%s", saga_id);
        long long end = harness_now_ms() + 5000;
        json_t *saga = NULL;
        while (harness_now_ms() < end && saga == NULL) {
            harness_sleep_ms(50);
            if (!gateway_alive())
                break;
            if (req("GET", p, auth, NULL, NULL, NULL, &r) == 200 &&
                strcmp(jstr(r.json, "status"), "error") == 0)
                saga = json_incref(r.json);
            harness_resp_free(&r);
        }
        if (!gateway_alive()) {
            print_error("the gateway died after a saga whose end message was cut inside a "
                        "multi-byte character (source_id = %d ASCII + 100 x U+00E9; acme-supply "
                        "has a notify_url)\n",
                        k);
            bad++;
        } else if (saga == NULL) {
            print_error("saga %s did not end in error within 5 s\n", saga_id);
            bad++;
        } else if (strstr(jstr(saga, "message"), "did not map") == NULL) {
            char *d = json_dumps(saga, JSON_COMPACT);
            print_error("saga %s (source_id = %d ASCII + 100 x U+00E9) ended error without "
                        "naming the reference: %s\n",
                        saga_id, k, d);
            free(d);
            bad++;
        }
        json_decref(saga);
        free(p);
        free(auth);
        free(saga_id);
    }
    if (gateway_alive()) {
        json_t *lines = check_log_lines(&bad);
        json_decref(lines);
    } else {
        size_t len;
        char *log = read_log(&len);
        int lb = 0;
        for (char *l = log; l && l < log + len;) {
            char *e = memchr(l, '\n', (size_t)(log + len - l));
            size_t n = e ? (size_t)(e - l) : (size_t)(log + len - l);
            json_t *j = json_loadb(l, n, 0, NULL);
            if (j == NULL) {
                print_error("log line not JSON: %.*s\n", (int)(n > 400 ? 400 : n), l);
                lb++;
            }
            json_decref(j);
            l += n + 1;
        }
        free(log);
        bad += lb;
    }
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

static json_t *make_overrides(void)
{
    char acme[128], swift[128], kibo[128], notify[160];
    stub_dest_url(g_acme, acme, sizeof acme);
    stub_dest_url(g_swift, swift, sizeof swift);
    stub_dest_url(g_kibo, kibo, sizeof kibo);
    json_t *tenants = harness_fixture_tenants_at(
        (const char *[]){"acme-supply", acme, "swift-haul", swift, "kibo-retail", kibo,
                         "tecspal-hw", standin_url(g_tec), NULL});
    if (tenants == NULL)
        return NULL;
    snprintf(notify, sizeof notify, "%s/notify", acme);
    json_object_set_new(harness_tenant(tenants, "acme-supply"), "notify_url", json_string(notify));
    return json_pack("{s:o, s:{s:i, s:i, s:i}}", "tenants", tenants, "saga", "max_attempts", 3,
                     "retry_base_ms", 50, "retry_max_ms", 200);
}

static int group_setup(void **state)
{
    (void)state;
    setenv("ACME_WEBHOOK_SECRET", ACME_SECRET, 1);
    setenv("SWIFT_WEBHOOK_SECRET", SWIFT_SECRET, 1);
    setenv("TECSPAL_TOKEN", TEC_TOKEN, 1);
    g_sagas = json_array();
    g_orders = json_array();
    g_responses = json_array();
    g_injected = json_array();
    g_acme = stub_dest_start();
    g_swift = stub_dest_start();
    g_kibo = stub_dest_start();
    g_tec = standin_start(STANDIN_TECSPAL);
    if (!g_acme || !g_swift || !g_kibo || !g_tec)
        return -1;
    standin_tecspal_set_token(g_tec, TEC_TOKEN);
    json_t *ov = make_overrides();
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
    stub_dest_stop(g_kibo);
    standin_stop(g_tec);
    json_decref(g_sagas);
    json_decref(g_orders);
    json_decref(g_responses);
    json_decref(g_injected);
    g_teardown_failed = rc != 0;
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_traffic),
        cmocka_unit_test(test_request_id_table),
        cmocka_unit_test(test_log_injection),
        cmocka_unit_test(test_log_lines_are_json),
        cmocka_unit_test(test_no_secret_anywhere),
        cmocka_unit_test(test_cut_multibyte_messages),
    };
    int failed = cmocka_run_group_tests_name("secrets", tests, group_setup, group_teardown);
    return failed != 0 || g_teardown_failed ? 1 : 0;
}
