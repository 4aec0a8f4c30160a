/*
 * test_isolation.c - tenant isolation (OWASP API1, broken object level authorisation) against
 * the real binary, a real redis-server and four recording destinations on loopback.
 *
 * acme-supply and swift-haul (gateway.json) exchange real orders: creates both ways, status
 * updates, a BOL, a cancel and a saga that ends in error, every request with an Idempotency-Key.
 * A third tenant, kibo-retail, then replays every read (GET /v1/saga/{id}, GET /v1/order by
 * order_id and by order_number, GET /v1/order/logs, POST /v1/saga/{id}/retry) and every mutation
 * (cancel, reset, update_status, bol, drop, accept, X-Dest-Tenant-Name acme-supply or
 * swift-haul) against the pair's sagas and orders: real ids and random ones, both parties'
 * order numbers and random ones, and the pair's own Idempotency-Keys (the pair's exact requests
 * replayed with the pair's keys, too). At least 600 attempts; none may succeed:
 *
 *   - every read answers 404, byte for byte the answer to an id that never existed (status,
 *     every header but X-Request-Id, body): "exists but not yours" looks like "does not exist";
 *   - every mutation answers 200 "pending" as a new saga of kibo-retail (never an idempotent
 *     replay of the pair's answer, never 409), and every one of those sagas ends "error" with 0
 *     attempts, ending exactly as the same mutation against a random id ends; no destination
 *     gets a single request while they run, and the pair's orders, order logs and sagas are
 *     unchanged afterwards (no retry, no cancel, no status).
 *
 * Ambiguous credentials are refused with 401 and store nothing: an API key only in a chunked
 * trailer, two X-API-Key fields (equal or not, any spelling), X-API-Key and Authorization naming
 * different tenants (or an unknown bearer), two Authorization fields, an empty X-API-Key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "harness.h"
#include "stub_dest.h"

#define ACME_KEY     "demo-acme-key"
#define SWIFT_KEY    "demo-swift-key"
#define KIBO_KEY     "demo-kibo-key"
#define ACME_SECRET  "acme-whsec-iso-7f3a9c2e51d0"
#define SWIFT_SECRET "swift-whsec-iso-2b8e6d4a90c7"
#define SAGA_MS      20000
#define MIN_ATTEMPTS 600

static harness_redis_t g_redis;
static harness_gw_t g_gw;
static bool g_redis_up, g_gw_up, g_teardown_failed;
/* Recording destinations for every tenant: any delivery at all is seen. */
static stub_dest_t *g_acme, *g_swift, *g_kibo, *g_tec;

/* What the pair left behind (phase 1), for the third tenant to aim at. */
static json_t *g_pair_sagas;    /* [saga_id, owner key] */
static json_t *g_pair_orders;   /* order ids */
static json_t *g_pair_numbers;  /* order numbers, both parties' */
static json_t *g_pair_keys;     /* Idempotency-Keys the pair used */
static json_t *g_pair_requests; /* [action, dest, body, key] of the pair's non-create mutations */
static char g_error_saga[25];   /* an acme-supply saga that ended in error (retry-able by acme) */
static int g_attempts;          /* the third tenant's attempts */

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void random_hex(char out[25])
{
    static const char hex[] = "0123456789abcdef";
    FILE *f = fopen("/dev/urandom", "rb");
    unsigned char b[12];
    assert_non_null(f);
    assert_int_equal(fread(b, 1, sizeof b, f), sizeof b);
    fclose(f);
    for (int i = 0; i < 12; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[24] = '\0';
}

static bool is_terminal(const char *st)
{
    return strcmp(st, "synced") == 0 || strcmp(st, "canceled") == 0 ||
           strcmp(st, "rejected") == 0 || strcmp(st, "error") == 0;
}

/* A request through libcurl; extra is NULL or NULL-terminated header lines. */
static int call(const char *method, const char *path, const char *key, const char *dest,
                const char *idem, const char *body, harness_resp_t *r)
{
    char kh[128], dh[128], ih[400];
    const char *h[6];
    size_t n = 0;
    h[n++] = "Content-Type: application/json";
    if (key) {
        snprintf(kh, sizeof kh, "X-API-Key: %s", key);
        h[n++] = kh;
    }
    if (dest) {
        snprintf(dh, sizeof dh, "X-Dest-Tenant-Name: %s", dest);
        h[n++] = dh;
    }
    if (idem) {
        snprintf(ih, sizeof ih, "Idempotency-Key: %s", idem);
        h[n++] = ih;
    }
    h[n] = NULL;
    if (harness_http(g_gw.port, method, path, h, body, body ? strlen(body) : 0, r) != 0)
        fail_msg("%s %s: no answer from the gateway", method, path);
    return r->status;
}

static json_t *wait_saga(const char *key, const char *sid)
{
    char *path = harness_fmt("/v1/saga/%s", sid);
    long long end = harness_now_ms() + SAGA_MS;
    for (;;) {
        harness_resp_t r;
        int st = call("GET", path, key, NULL, NULL, NULL, &r);
        if (st == 200 && is_terminal(jstr(r.json, "status"))) {
            json_t *j = json_incref(r.json);
            harness_resp_free(&r);
            free(path);
            return j;
        }
        if (harness_now_ms() > end)
            fail_msg("saga %s did not end within %d ms: %d %s", sid, SAGA_MS, st,
                     r.body ? r.body : "");
        harness_resp_free(&r);
        harness_sleep_ms(10);
    }
}

/* A mutation of the pair: must be 200 pending; waits for the end, which must be want. */
static char *pair_mutation(const char *key, const char *dest, const char *action, const char *body,
                           const char *want, char order_id[25])
{
    static int seq;
    char *idem = harness_fmt("pair-%s-%d-%s", action, ++seq, key + 5);
    char *path = harness_fmt("/v1/order/%s", action);
    harness_resp_t r;
    int st = call("POST", path, key, dest, idem, body, &r);
    if (st != 200 || strcmp(jstr(r.json, "status"), "pending") != 0)
        fail_msg("pair %s as %s: %d %s", action, key, st, r.body ? r.body : "");
    const char *sid = jstr(json_object_get(r.json, "log"), "saga_id");
    assert_int_equal(strlen(sid), 24);
    char *out = strdup(sid);
    if (order_id) {
        snprintf(order_id, 25, "%s", jstr(r.json, "order_id"));
        assert_int_equal(strlen(order_id), 24);
        json_array_append_new(g_pair_orders, json_string(order_id));
    }
    harness_resp_free(&r);
    json_t *saga = wait_saga(key, out);
    if (strcmp(jstr(saga, "status"), want) != 0) {
        char *d = json_dumps(saga, JSON_COMPACT);
        fail_msg("pair saga %s (%s) ended %s, want %s: %s", out, action, jstr(saga, "status"),
                 want, d);
    }
    json_decref(saga);
    json_array_append_new(g_pair_sagas, json_pack("[s, s]", out, key));
    json_array_append_new(g_pair_keys, json_string(idem));
    if (strcmp(action, "create") != 0)
        json_array_append_new(g_pair_requests, json_pack("[s, s, s, s]", action, dest, body, idem));
    free(idem);
    free(path);
    return out;
}

static char *create_body(const char *number, bool from_acme)
{
    return harness_fmt("{\"order_number\":\"%s\",\"lines\":[{\"product\":{\"source_id\":\"%s\"},"
                       "\"terminal\":{\"source_id\":\"%s\"},\"site\":{\"source_id\":\"%s\"},"
                       "\"quantity\":8000,\"uom\":\"gal\"}],"
                       "\"requested_delivery\":\"2026-05-12T08:00:00.000Z\",\"notes\":\"iso\"}",
                       number, from_acme ? "ULSD" : "SH-DSL", from_acme ? "HOU-T1" : "SH-HOU",
                       from_acme ? "ATX-S12" : "SH-ATX12");
}

static size_t deliveries_total(void)
{
    return stub_dest_count(g_acme) + stub_dest_count(g_swift) + stub_dest_count(g_kibo) +
           stub_dest_count(g_tec);
}

/* The header block without X-Request-Id lines (and without the trailing blank line). */
static char *headers_but_request_id(const char *h)
{
    size_t cap = strlen(h) + 1, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *line = h; *line;) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line + 1) : strlen(line);
        if (!(ll >= 13 && strncasecmp(line, "x-request-id:", 13) == 0) &&
            !(ll <= 2 && (line[0] == '\r' || line[0] == '\n'))) {
            memcpy(out + n, line, ll);
            n += ll;
        }
        line += ll;
    }
    out[n] = '\0';
    return out;
}

/* Same status, same headers but X-Request-Id, same body bytes; else a description. */
static bool same_answer(const harness_resp_t *a, const harness_resp_t *b, char *why, size_t n)
{
    if (a->status != b->status) {
        snprintf(why, n, "status %d vs %d", a->status, b->status);
        return false;
    }
    char *ha = headers_but_request_id(a->headers ? a->headers : "");
    char *hb = headers_but_request_id(b->headers ? b->headers : "");
    bool ok = strcmp(ha, hb) == 0;
    if (!ok)
        snprintf(why, n, "headers differ:\n%s\nvs\n%s", ha, hb);
    free(ha);
    free(hb);
    if (ok && (a->body_len != b->body_len || memcmp(a->body, b->body, a->body_len) != 0)) {
        snprintf(why, n, "bodies differ: %s vs %s", a->body, b->body);
        ok = false;
    }
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * Phase 1: the pair's traffic
 * ------------------------------------------------------------------------------------------- */

static void make_pair_traffic(void)
{
    char oid[25];
    /* acme-supply -> swift-haul, swift-haul's system names its own numbers. */
    for (int i = 1; i <= 4; i++) {
        char *reply = harness_fmt("{\"order_number\":\"SW-ISO-%d\"}", i);
        stub_dest_push_status(g_swift, 200, NULL, reply);
        free(reply);
        char *num = harness_fmt("PO-ISO-%d", i), *cp = harness_fmt("SW-ISO-%d", i);
        char *body = create_body(num, true);
        free(pair_mutation(ACME_KEY, "swift-haul", "create", body, "synced", oid));
        json_array_append_new(g_pair_numbers, json_string(num));
        json_array_append_new(g_pair_numbers, json_string(cp));
        free(body);
        free(num);
        free(cp);
    }
    /* swift-haul -> acme-supply. */
    for (int i = 1; i <= 2; i++) {
        char *reply = harness_fmt("{\"order_number\":\"AC-ISO-%d\"}", i);
        stub_dest_push_status(g_acme, 200, NULL, reply);
        free(reply);
        char *num = harness_fmt("SW-OWN-%d", i), *cp = harness_fmt("AC-ISO-%d", i);
        char *body = create_body(num, false);
        free(pair_mutation(SWIFT_KEY, "acme-supply", "create", body, "synced", oid));
        json_array_append_new(g_pair_numbers, json_string(num));
        json_array_append_new(g_pair_numbers, json_string(cp));
        free(body);
        free(num);
        free(cp);
    }
    /* Progress, a BOL, a cancel, each side. */
    free(pair_mutation(SWIFT_KEY, "acme-supply", "update_status",
                       "{\"order\":{\"order_number\":\"SW-ISO-1\"},\"progress_status\":\"loading\","
                       "\"location\":{\"source_id\":\"SH-HOU\"}}",
                       "synced", NULL));
    free(pair_mutation(SWIFT_KEY, "acme-supply", "bol",
                       "{\"order\":{\"order_number\":\"SW-ISO-1\"},\"bol_number\":\"BOL-ISO\","
                       "\"terminal\":{\"source_id\":\"SH-HOU\"},\"product\":{\"source_id\":"
                       "\"SH-DSL\"},\"gross_volume\":1000,\"net_volume\":990}",
                       "synced", NULL));
    free(pair_mutation(ACME_KEY, "swift-haul", "cancel",
                       "{\"order\":{\"order_number\":\"PO-ISO-2\"},\"reason_code\":\"customer\"}",
                       "canceled", NULL));
    free(pair_mutation(ACME_KEY, "swift-haul", "update_status",
                       "{\"order\":{\"order_number\":\"AC-ISO-1\"},\"progress_status\":"
                       "\"driving_to_load\",\"location\":{\"source_id\":\"HOU-T1\"}}",
                       "synced", NULL));
    /* acme-supply's saga that ends in error: retry-able by acme-supply, and only by it. */
    char *sid = pair_mutation(ACME_KEY, "swift-haul", "update_status",
                              "{\"order\":{\"order_number\":\"PO-NONE\"},\"progress_status\":"
                              "\"loading\",\"location\":{\"source_id\":\"HOU-T1\"}}",
                              "error", NULL);
    snprintf(g_error_saga, sizeof g_error_saga, "%s", sid);
    free(sid);
}

/* Everything the pair can see of its orders and sagas, to compare before and after. */
static json_t *pair_snapshot(void)
{
    json_t *snap = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(g_pair_orders, i, v)
    {
        const char *oid = json_string_value(v);
        for (size_t p = 0; p < 2; p++) {
            char *path = harness_fmt("/v1/order%s?order_id=%s", p ? "/logs" : "", oid);
            harness_resp_t r;
            assert_int_equal(call("GET", path, ACME_KEY, NULL, NULL, NULL, &r), 200);
            json_array_append_new(snap, json_pack("{s:s, s:O}", "path", path, "body", r.json));
            harness_resp_free(&r);
            free(path);
        }
    }
    json_array_foreach(g_pair_sagas, i, v)
    {
        char *path = harness_fmt("/v1/saga/%s", json_string_value(json_array_get(v, 0)));
        harness_resp_t r;
        assert_int_equal(
            call("GET", path, json_string_value(json_array_get(v, 1)), NULL, NULL, NULL, &r), 200);
        json_array_append_new(snap, json_pack("{s:s, s:O}", "path", path, "body", r.json));
        harness_resp_free(&r);
        free(path);
    }
    return snap;
}

/* ---------------------------------------------------------------------------------------------
 * Phase 2: the third tenant's reads
 * ------------------------------------------------------------------------------------------- */

/* One read as kibo-retail that must look exactly like the reference (a never-existing id). */
static int foreign_read(const char *method, const char *path, const harness_resp_t *ref)
{
    harness_resp_t r;
    call(method, path, KIBO_KEY, NULL, NULL, strcmp(method, "POST") == 0 ? "" : NULL, &r);
    g_attempts++;
    char why[4096];
    int bad = 0;
    if (r.status != 404) {
        print_error("%s %s as kibo-retail: %d, want 404: %s\n", method, path, r.status,
                    r.body ? r.body : "");
        bad = 1;
    } else if (!same_answer(&r, ref, why, sizeof why)) {
        print_error("%s %s as kibo-retail differs from a never-existing id: %s\n", method, path,
                    why);
        bad = 1;
    }
    harness_resp_free(&r);
    return bad;
}

static void reference(const char *method, const char *path, harness_resp_t *ref)
{
    call(method, path, KIBO_KEY, NULL, NULL, strcmp(method, "POST") == 0 ? "" : NULL, ref);
    assert_int_equal(ref->status, 404);
    assert_non_null(ref->json);
}

static void test_foreign_reads(void **state)
{
    (void)state;
    int bad = 0;
    char rnd[25];
    int before = g_attempts;

    /* References: ids and numbers that never existed. */
    harness_resp_t ref_saga, ref_retry, ref_order, ref_logs, ref_order_num, ref_logs_num;
    random_hex(rnd);
    char *p = harness_fmt("/v1/saga/%s", rnd);
    reference("GET", p, &ref_saga);
    free(p);
    p = harness_fmt("/v1/saga/%s/retry", rnd);
    reference("POST", p, &ref_retry);
    free(p);
    p = harness_fmt("/v1/order?order_id=%s", rnd);
    reference("GET", p, &ref_order);
    free(p);
    p = harness_fmt("/v1/order/logs?order_id=%s", rnd);
    reference("GET", p, &ref_logs);
    free(p);
    reference("GET", "/v1/order?order_number=NEVER-EXISTED", &ref_order_num);
    reference("GET", "/v1/order/logs?order_number=NEVER-EXISTED", &ref_logs_num);
    /* Orders by id and by number answer the same: there is one "Order not found". */
    char why[4096];
    if (!same_answer(&ref_order, &ref_order_num, why, sizeof why))
        fail_msg("order by id vs by number (both unknown): %s", why);

    /* Sagas: the pair's (including the one in error, which its owner could retry), their
     * upper-case spellings, and random ids. Each read twice: GET and retry. */
    json_t *ids = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(g_pair_sagas, i, v)
    {
        const char *sid = json_string_value(json_array_get(v, 0));
        json_array_append_new(ids, json_string(sid));
        char up[25];
        for (int k = 0; k < 25; k++)
            up[k] = (char)toupper((unsigned char)sid[k]);
        json_array_append_new(ids, json_string(up));
    }
    for (int k = 0; k < 20; k++) {
        random_hex(rnd);
        json_array_append_new(ids, json_string(rnd));
    }
    json_array_foreach(ids, i, v)
    {
        for (int rep = 0; rep < 2; rep++) {
            p = harness_fmt("/v1/saga/%s", json_string_value(v));
            bad += foreign_read("GET", p, &ref_saga);
            free(p);
            p = harness_fmt("/v1/saga/%s/retry", json_string_value(v));
            bad += foreign_read("POST", p, &ref_retry);
            free(p);
        }
    }
    json_decref(ids);

    /* Orders by id (real, upper-case, random) and by number (both parties', random). */
    json_t *oids = json_array();
    json_array_foreach(g_pair_orders, i, v)
    {
        const char *oid = json_string_value(v);
        json_array_append_new(oids, json_string(oid));
        char up[25];
        for (int k = 0; k < 25; k++)
            up[k] = (char)toupper((unsigned char)oid[k]);
        json_array_append_new(oids, json_string(up));
    }
    for (int k = 0; k < 6; k++) {
        random_hex(rnd);
        json_array_append_new(oids, json_string(rnd));
    }
    json_array_foreach(oids, i, v)
    {
        for (int rep = 0; rep < 2; rep++) {
            p = harness_fmt("/v1/order?order_id=%s", json_string_value(v));
            bad += foreign_read("GET", p, &ref_order);
            free(p);
            p = harness_fmt("/v1/order/logs?order_id=%s", json_string_value(v));
            bad += foreign_read("GET", p, &ref_logs);
            free(p);
        }
    }
    json_decref(oids);
    json_t *nums = json_deep_copy(g_pair_numbers);
    json_array_append_new(nums, json_string("PO-ISO-99"));
    json_array_append_new(nums, json_string("SW-ISO-99"));
    json_array_append_new(nums, json_string("PO-NONE"));
    json_array_foreach(nums, i, v)
    {
        for (int rep = 0; rep < 2; rep++) {
            p = harness_fmt("/v1/order?order_number=%s", json_string_value(v));
            bad += foreign_read("GET", p, &ref_order);
            free(p);
            p = harness_fmt("/v1/order/logs?order_number=%s", json_string_value(v));
            bad += foreign_read("GET", p, &ref_logs);
            free(p);
            /* Both parameters: a real id of the pair with a real number of the pair. */
            p = harness_fmt("/v1/order?order_id=%s&order_number=%s",
                            json_string_value(
                                json_array_get(g_pair_orders, i % json_array_size(g_pair_orders))),
                            json_string_value(v));
            bad += foreign_read("GET", p, &ref_order);
            free(p);
        }
    }
    json_decref(nums);

    harness_resp_free(&ref_saga);
    harness_resp_free(&ref_retry);
    harness_resp_free(&ref_order);
    harness_resp_free(&ref_logs);
    harness_resp_free(&ref_order_num);
    harness_resp_free(&ref_logs_num);
    print_message("foreign reads: %d attempts, %d not indistinguishable from \"does not exist\"\n",
                  g_attempts - before, bad);
    assert_int_equal(bad, 0);

    /* The pair's saga in error was not retried by any of it; its owner still can. */
    char *path = harness_fmt("/v1/saga/%s", g_error_saga);
    harness_resp_t r;
    assert_int_equal(call("GET", path, ACME_KEY, NULL, NULL, NULL, &r), 200);
    assert_string_equal(jstr(r.json, "status"), "error");
    assert_false(json_is_true(json_object_get(r.json, "retried")));
    harness_resp_free(&r);
    free(path);
}

/* ---------------------------------------------------------------------------------------------
 * Phase 2: the third tenant's mutations
 * ------------------------------------------------------------------------------------------- */

static const char *const actions[] = {"cancel", "reset", "update_status", "bol", "drop", "accept"};
static const char *const dests[] = {"acme-supply", "swift-haul"};

/* A valid body of action for kibo-retail, about the order ref ("\"order_id\":\"...\""). */
static char *kibo_body(const char *action, const char *ref)
{
    if (strcmp(action, "cancel") == 0)
        return harness_fmt("{\"order\":{%s},\"reason_code\":\"fraud\"}", ref);
    if (strcmp(action, "update_status") == 0)
        return harness_fmt("{\"order\":{%s},\"progress_status\":\"loading\","
                           "\"location\":{\"source_id\":\"KB-TERM-HOU\"}}",
                           ref);
    if (strcmp(action, "bol") == 0)
        return harness_fmt("{\"order\":{%s},\"bol_number\":\"KB-BOL\",\"terminal\":{\"source_id\":"
                           "\"KB-TERM-HOU\"},\"product\":{\"source_id\":\"SKU-ULSD\"},"
                           "\"gross_volume\":1,\"net_volume\":1}",
                           ref);
    if (strcmp(action, "drop") == 0)
        return harness_fmt("{\"order\":{%s},\"site\":{\"source_id\":\"1012\"},"
                           "\"product\":{\"source_id\":\"SKU-ULSD\"},\"volume\":1}",
                           ref);
    return harness_fmt("{\"order\":{%s}}", ref); /* reset, accept */
}

typedef struct kibo_saga {
    char sid[25];
    char action[16];
    bool foreign; /* aimed at the pair's data (else at a random id or number) */
    char what[300];
} kibo_saga_t;

static kibo_saga_t *g_ks;
static size_t g_nks, g_capks;

/* A mutation as kibo-retail: 200 pending, a new saga (no replay of anyone's answer). */
static int kibo_mutation(const char *action, const char *dest, const char *body, const char *idem,
                         bool foreign)
{
    char *path = harness_fmt("/v1/order/%s", action);
    harness_resp_t r;
    call("POST", path, KIBO_KEY, dest, idem, body, &r);
    free(path);
    g_attempts++;
    int bad = 0;
    char replay[16] = "";
    harness_resp_header(&r, "Idempotent-Replayed", replay, sizeof replay);
    const char *sid = jstr(json_object_get(r.json, "log"), "saga_id");
    if (r.status != 200 || strcmp(jstr(r.json, "status"), "pending") != 0 || replay[0] ||
        strlen(sid) != 24) {
        print_error("kibo-retail %s to %s (key %s) %s: %d%s %s\n", action, dest,
                    idem ? idem : "-", body, r.status, replay[0] ? " (replayed)" : "",
                    r.body ? r.body : "");
        bad = 1;
    } else {
        /* A saga of the pair's must never be handed out. */
        size_t i;
        json_t *v;
        json_array_foreach(g_pair_sagas, i, v)
        {
            if (strcmp(json_string_value(json_array_get(v, 0)), sid) == 0) {
                print_error("kibo-retail got the pair's saga %s back\n", sid);
                bad = 1;
            }
        }
        if (g_nks == g_capks) {
            g_capks = g_capks ? g_capks * 2 : 256;
            g_ks = realloc(g_ks, g_capks * sizeof *g_ks);
            assert_non_null(g_ks);
        }
        kibo_saga_t *k = &g_ks[g_nks++];
        snprintf(k->sid, sizeof k->sid, "%s", sid);
        snprintf(k->action, sizeof k->action, "%s", action);
        k->foreign = foreign;
        snprintf(k->what, sizeof k->what, "%s to %s: %s", action, dest, body);
    }
    harness_resp_free(&r);
    return bad;
}

/* How a saga ended, without its ids and dates: what "does not exist" must equal. */
static json_t *ending(const json_t *saga)
{
    json_t *hist = json_array();
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(saga, "history"), i, h)
        json_array_append_new(hist, json_pack("[s, s]", jstr(h, "status"), jstr(h, "message")));
    return json_pack("{s:s, s:s, s:O, s:O, s:o, s:O}", "status", jstr(saga, "status"), "message",
                     jstr(saga, "message"), "attempts", json_object_get(saga, "attempts"),
                     "order_id", json_object_get(saga, "order_id"), "history", hist, "retried",
                     json_object_get(saga, "retried"));
}

static void test_foreign_mutations(void **state)
{
    (void)state;
    int bad = 0, before = g_attempts;
    json_t *snap_before = pair_snapshot();
    size_t deliveries_before = deliveries_total();
    long long sagas_before = harness_saga_count(&g_redis);
    int seq = 0;

    /* 1. The pair's own non-create requests, replayed byte for byte with the pair's keys (the
     *    fingerprint matches; only the tenant differs). */
    size_t i;
    json_t *v;
    json_array_foreach(g_pair_requests, i, v)
    {
        const char *action = json_string_value(json_array_get(v, 0));
        const char *dest = json_string_value(json_array_get(v, 1));
        const char *body = json_string_value(json_array_get(v, 2));
        const char *key = json_string_value(json_array_get(v, 3));
        bad += kibo_mutation(action, dest, body, key, true);
    }
    /* 2. Every action, both destinations, aimed at every order of the pair by id, by the
     *    origin's number and by the counterparty's number; the pair's create keys first, then
     *    keys of its own. */
    json_t *refs = json_array();
    json_array_foreach(g_pair_orders, i, v)
    {
        char *r = harness_fmt("\"order_id\":\"%s\"", json_string_value(v));
        json_array_append_new(refs, json_pack("[s, b]", r, 1));
        free(r);
    }
    json_array_foreach(g_pair_numbers, i, v)
    {
        char *r = harness_fmt("\"order_number\":\"%s\"", json_string_value(v));
        json_array_append_new(refs, json_pack("[s, b]", r, 1));
        free(r);
        /* A real id together with a real number of the pair. */
        r = harness_fmt("\"order_id\":\"%s\",\"order_number\":\"%s\"",
                        json_string_value(json_array_get(g_pair_orders,
                                                         (i / 2) % json_array_size(g_pair_orders))),
                        json_string_value(v));
        json_array_append_new(refs, json_pack("[s, b]", r, 1));
        free(r);
    }
    for (int k = 0; k < 2; k++) {
        char rnd[25];
        random_hex(rnd);
        char *r = harness_fmt("\"order_id\":\"%s\"", rnd);
        json_array_append_new(refs, json_pack("[s, b]", r, 0));
        free(r);
        r = harness_fmt("\"order_number\":\"NEVER-%s\"", rnd);
        json_array_append_new(refs, json_pack("[s, b]", r, 0));
        free(r);
    }
    /* The pair's keys that step 1 did not use (kibo-retail's own namespace would, rightly,
     * answer 409 to a second use with another body). */
    json_t *unused_keys = json_array();
    json_array_foreach(g_pair_keys, i, v)
    {
        bool used = false;
        size_t j;
        json_t *q;
        json_array_foreach(g_pair_requests, j, q)
            used |= json_equal(json_array_get(q, 3), v);
        if (!used)
            json_array_append(unused_keys, v);
    }
    size_t next_pair_key = 0;
    for (size_t a = 0; a < sizeof actions / sizeof actions[0]; a++) {
        for (size_t d = 0; d < 2; d++) {
            size_t j;
            json_t *ref;
            json_array_foreach(refs, j, ref)
            {
                char *body = kibo_body(actions[a], json_string_value(json_array_get(ref, 0)));
                char *own = harness_fmt("kibo-iso-%d", ++seq);
                const char *key = own;
                if (next_pair_key < json_array_size(unused_keys))
                    key = json_string_value(json_array_get(unused_keys, next_pair_key++));
                bad += kibo_mutation(actions[a], dests[d], body, seq % 7 == 0 ? NULL : key,
                                     json_is_true(json_array_get(ref, 1)));
                free(body);
                free(own);
            }
        }
    }
    json_decref(refs);
    json_decref(unused_keys);
    int mutations = g_attempts - before;
    print_message("foreign mutations: %d attempts, %d answered otherwise than a new pending saga\n",
                  mutations, bad);

    /* Every saga ends in error, as the same request about nothing ends; 0 attempts. */
    json_t *ref_end = json_object(); /* action -> ending of an attempt on a random target */
    json_t *ends = json_array();
    for (size_t k = 0; k < g_nks; k++) {
        json_t *saga = wait_saga(KIBO_KEY, g_ks[k].sid);
        json_t *e = ending(saga);
        if (strcmp(jstr(saga, "status"), "error") != 0 ||
            json_integer_value(json_object_get(saga, "attempts")) != 0) {
            char *d = json_dumps(saga, JSON_COMPACT);
            print_error("kibo-retail saga %s (%s) ended %s, attempts %lld: %s\n", g_ks[k].sid,
                        g_ks[k].what, jstr(saga, "status"),
                        (long long)json_integer_value(json_object_get(saga, "attempts")), d);
            free(d);
            bad++;
        }
        if (!g_ks[k].foreign && json_object_get(ref_end, g_ks[k].action) == NULL)
            json_object_set(ref_end, g_ks[k].action, e);
        json_array_append_new(ends, e);
        json_decref(saga);
    }
    for (size_t k = 0; k < g_nks; k++) {
        json_t *want = json_object_get(ref_end, g_ks[k].action);
        json_t *got = json_array_get(ends, k);
        if (want != NULL && !json_equal(want, got)) {
            char *a = json_dumps(got, JSON_COMPACT), *b = json_dumps(want, JSON_COMPACT);
            print_error("saga %s (%s) ended differently from a random target:\n%s\nvs\n%s\n",
                        g_ks[k].sid, g_ks[k].what, a, b);
            free(a);
            free(b);
            bad++;
        }
    }
    assert_int_equal(json_object_size(ref_end), sizeof actions / sizeof actions[0]);
    json_decref(ref_end);
    json_decref(ends);

    /* Nothing delivered anywhere; one new saga per attempt; the pair's data untouched. */
    harness_sleep_ms(300);
    size_t delivered = deliveries_total() - deliveries_before;
    long long sagas_new = harness_saga_count(&g_redis) - sagas_before;
    json_t *snap_after = pair_snapshot();
    bool same = json_equal(snap_before, snap_after);
    if (!same) {
        size_t n = json_array_size(snap_before);
        for (size_t k = 0; k < n; k++) {
            json_t *x = json_array_get(snap_before, k), *y = json_array_get(snap_after, k);
            if (!json_equal(x, y)) {
                char *a = json_dumps(x, JSON_COMPACT), *b = json_dumps(y, JSON_COMPACT);
                print_error("the pair's data changed:\nbefore %s\nafter  %s\n", a, b);
                free(a);
                free(b);
            }
        }
    }
    json_decref(snap_before);
    json_decref(snap_after);
    print_message("foreign mutations: %zu sagas, all ended error with 0 attempts: %s; deliveries "
                  "during the attack: %zu; new saga records: %lld\n",
                  g_nks, bad ? "no" : "yes", delivered, sagas_new);
    assert_int_equal(bad, 0);
    assert_int_equal(delivered, 0);
    assert_int_equal(sagas_new, (long long)g_nks);
    assert_true(same);
    assert_true(mutations >= 200);
}

static void test_attempt_count(void **state)
{
    (void)state;
    print_message("third-tenant attempts in all: %d (want >= %d), successes: 0\n", g_attempts,
                  MIN_ATTEMPTS);
    assert_true(g_attempts >= MIN_ATTEMPTS);
}

/* ---------------------------------------------------------------------------------------------
 * Ambiguous credentials
 * ------------------------------------------------------------------------------------------- */

typedef struct cred_case {
    const char *name;
    const char *head; /* header lines after Host (each "\r\n"-terminated) */
    bool chunked;     /* the body goes chunked, with trailer lines after the last chunk */
    const char *trailer;
    int status;
} cred_case_t;

#define K_ACME  "X-API-Key: " ACME_KEY "\r\n"
#define K_KIBO  "X-API-Key: " KIBO_KEY "\r\n"
#define B_ACME  "Authorization: Bearer " ACME_KEY "\r\n"
#define B_KIBO  "Authorization: Bearer " KIBO_KEY "\r\n"
#define MUT_HDR "Content-Type: application/json\r\nX-Dest-Tenant-Name: swift-haul\r\n"

static const cred_case_t cred_cases[] = {
    /* controls */
    {"X-API-Key alone", K_ACME, false, NULL, 200},
    {"Bearer alone", B_ACME, false, NULL, 200},
    {"X-API-Key and Bearer, same key", K_ACME B_ACME, false, NULL, 200},
    {"chunked, key in the header section", K_ACME, true, "", 200},
    /* ambiguous or misplaced */
    {"key only in a chunked trailer (X-API-Key)", "", true, K_ACME, 401},
    {"key only in a chunked trailer (Authorization)", "", true, B_ACME, 401},
    {"key in a trailer disagreeing with the header", K_KIBO, true, K_ACME, 200},
    {"two X-API-Key, same value", K_ACME K_ACME, false, NULL, 401},
    {"two X-API-Key, different tenants", K_ACME K_KIBO, false, NULL, 401},
    {"two X-API-Key, other spellings", "x-api-key: " ACME_KEY "\r\nX-API-KEY: " ACME_KEY "\r\n",
     false, NULL, 401},
    {"two X-API-Key, one empty", K_ACME "X-API-Key:\r\n", false, NULL, 401},
    {"X-API-Key acme, Bearer kibo", K_ACME B_KIBO, false, NULL, 401},
    {"X-API-Key kibo, Bearer acme", K_KIBO B_ACME, false, NULL, 401},
    {"Bearer first, then X-API-Key of another tenant", B_KIBO K_ACME, false, NULL, 401},
    {"X-API-Key valid, Bearer unknown", K_ACME "Authorization: Bearer nope-not-a-key\r\n", false,
     NULL, 401},
    {"two Authorization, different tenants", B_ACME B_KIBO, false, NULL, 401},
    {"two Authorization, same", B_ACME B_ACME, false, NULL, 401},
    {"empty X-API-Key with a valid Bearer", "X-API-Key:\r\n" B_ACME, false, NULL, 401},
};

/* POST /v1/order/cancel over a raw socket; returns the status (0 if none). */
static int cred_run(const cred_case_t *c, char **body_out)
{
    static const char body[] = "{\"order\":{\"order_number\":\"PO-ISO-3\"},\"reason_code\":\"x\"}";
    char req[4096];
    int n;
    if (c->chunked)
        n = snprintf(req, sizeof req,
                     "POST /v1/order/cancel HTTP/1.1\r\nHost: gw.test\r\n%s" MUT_HDR
                     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n%s\r\n",
                     c->head, sizeof body - 1, body, c->trailer ? c->trailer : "");
    else
        n = snprintf(req, sizeof req,
                     "POST /v1/order/cancel HTTP/1.1\r\nHost: gw.test\r\n%s" MUT_HDR
                     "Content-Length: %zu\r\n\r\n%s",
                     c->head, sizeof body - 1, body);
    assert_true(n > 0 && (size_t)n < sizeof req);
    int fd = harness_raw_connect(g_gw.port);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_send(fd, req, (size_t)n, 0), 0);
    size_t len;
    bool closed;
    char *raw = harness_raw_recv_n(fd, 1, 5000, &len, &closed);
    close(fd);
    harness_resp_t r;
    int st = 0;
    if (harness_raw_parse(raw, len, 0, &r) == 0) {
        st = r.status;
        *body_out = strdup(r.body);
        harness_resp_free(&r);
    } else {
        *body_out = strdup(raw);
    }
    free(raw);
    return st;
}

static void test_ambiguous_credentials(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof cred_cases / sizeof cred_cases[0]; i++) {
        const cred_case_t *c = &cred_cases[i];
        long long before = harness_saga_count(&g_redis);
        char *body = NULL;
        int st = cred_run(c, &body);
        long long stored = harness_saga_count(&g_redis) - before;
        bool ok = st == c->status && stored == (c->status == 200 ? 1 : 0);
        if (ok && c->status == 401 && strstr(body, "Not authenticated") == NULL)
            ok = false;
        if (!ok) {
            print_error("credentials \"%s\": %d (%lld sagas stored), want %d: %s\n", c->name, st,
                        stored, c->status, body);
            failed++;
        }
        free(body);
    }
    /* Reads too: two keys for a saga one of them could read. */
    const char *sid = json_string_value(json_array_get(json_array_get(g_pair_sagas, 0), 0));
    const char *two_keys[][3] = {
        {"X-API-Key: " ACME_KEY, "X-API-Key: " KIBO_KEY, NULL},
        {"X-API-Key: " KIBO_KEY, "Authorization: Bearer " ACME_KEY, NULL},
        {"X-API-Key: " ACME_KEY, "Authorization: Bearer " KIBO_KEY, NULL},
        {"X-API-Key: " ACME_KEY, "X-API-Key: " ACME_KEY, NULL},
    };
    char *path = harness_fmt("/v1/saga/%s", sid);
    for (size_t i = 0; i < sizeof two_keys / sizeof two_keys[0]; i++) {
        harness_resp_t r;
        assert_int_equal(harness_http(g_gw.port, "GET", path, two_keys[i], NULL, 0, &r), 0);
        if (r.status != 401) {
            print_error("GET %s with \"%s\" and \"%s\": %d, want 401\n", path, two_keys[i][0],
                        two_keys[i][1], r.status);
            failed++;
        }
        harness_resp_free(&r);
    }
    free(path);
    assert_int_equal(failed, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

static json_t *make_overrides(void)
{
    char acme[128], swift[128], kibo[128], tec[128];
    stub_dest_url(g_acme, acme, sizeof acme);
    stub_dest_url(g_swift, swift, sizeof swift);
    stub_dest_url(g_kibo, kibo, sizeof kibo);
    stub_dest_url(g_tec, tec, sizeof tec);
    json_t *tenants = harness_fixture_tenants_at((const char *[]){
        "acme-supply", acme, "swift-haul", swift, "kibo-retail", kibo, "tecspal-hw", tec, NULL});
    if (tenants == NULL)
        return NULL;
    return json_pack("{s:o, s:{s:i, s:i, s:i}}", "tenants", tenants, "saga", "max_attempts", 3,
                     "retry_base_ms", 50, "retry_max_ms", 200);
}

static int group_setup(void **state)
{
    (void)state;
    setenv("ACME_WEBHOOK_SECRET", ACME_SECRET, 1);
    setenv("SWIFT_WEBHOOK_SECRET", SWIFT_SECRET, 1);
    g_pair_sagas = json_array();
    g_pair_orders = json_array();
    g_pair_numbers = json_array();
    g_pair_keys = json_array();
    g_pair_requests = json_array();
    g_acme = stub_dest_start();
    g_swift = stub_dest_start();
    g_kibo = stub_dest_start();
    g_tec = stub_dest_start();
    if (!g_acme || !g_swift || !g_kibo || !g_tec)
        return -1;
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
    stub_dest_stop(g_tec);
    json_decref(g_pair_sagas);
    json_decref(g_pair_orders);
    json_decref(g_pair_numbers);
    json_decref(g_pair_keys);
    json_decref(g_pair_requests);
    free(g_ks);
    g_teardown_failed = rc != 0;
    return rc;
}

static void test_pair_traffic(void **state)
{
    (void)state;
    make_pair_traffic();
    print_message("pair: %zu sagas, %zu orders, %zu order numbers, %zu Idempotency-Keys\n",
                  json_array_size(g_pair_sagas), json_array_size(g_pair_orders),
                  json_array_size(g_pair_numbers), json_array_size(g_pair_keys));
    /* The pair really can see its own data (so the 404s below are about the caller). */
    const char *oid = json_string_value(json_array_get(g_pair_orders, 0));
    char *p = harness_fmt("/v1/order?order_id=%s", oid);
    harness_resp_t r;
    assert_int_equal(call("GET", p, SWIFT_KEY, NULL, NULL, NULL, &r), 200);
    harness_resp_free(&r);
    free(p);
    assert_int_equal(call("GET", "/v1/order?order_number=SW-ISO-1", SWIFT_KEY, NULL, NULL, NULL,
                          &r),
                     200);
    harness_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pair_traffic),
        cmocka_unit_test(test_foreign_reads),
        cmocka_unit_test(test_foreign_mutations),
        cmocka_unit_test(test_attempt_count),
        cmocka_unit_test(test_ambiguous_credentials),
    };
    int failed = cmocka_run_group_tests_name("isolation", tests, group_setup, group_teardown);
    return failed != 0 || g_teardown_failed ? 1 : 0;
}
