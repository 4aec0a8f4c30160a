/*
 * test_config.c - config.c: defaults, every class of refused configuration with its exact JSON
 * path, the demo configuration, environment overrides, Redis URLs, scopes and lookups.
 *
 * Pure logic: no network. Reads tests/fixtures/configs (CR_FIXTURES) and config/demo.json, and
 * sets CROSSROADS_LISTEN / CROSSROADS_REDIS_URL only inside the tests that are about them.
 *
 * Inline configurations are written with single quotes and turned into JSON by sq(), so a case
 * reads like the file an operator would write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util/cr.h"

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Single quotes to double quotes: the cases never need a literal apostrophe. */
static char *sq(const char *s)
{
    char *out = cr_strdup(s);
    for (char *p = out; *p != '\0'; p++) {
        if (*p == '\'')
            *p = '"';
    }
    return out;
}

static cfg_t *load_ok(const char *text)
{
    char err[512] = "";
    char *json = sq(text);
    cfg_t *cfg = NULL;
    int rc = cfg_load_json(json, strlen(json), "t.json", &cfg, err, sizeof(err));

    if (rc != 0)
        print_error("unexpected error: %s\n  for: %s\n", err, json);
    free(json);
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    return cfg;
}

static void expect_err(const char *text, const char *want)
{
    char err[512] = "";
    char *json = sq(text);
    cfg_t *cfg = NULL;
    int rc = cfg_load_json(json, strlen(json), "t.json", &cfg, err, sizeof(err));

    if (rc == 0 || strcmp(err, want) != 0)
        print_error("want: %s\n  got:  %s\n  for:  %s\n", want, err, json);
    free(json);
    assert_true(rc < 0);
    assert_null(cfg);
    assert_string_equal(err, want);
}

static char *fixture(const char *rel)
{
    const char *dir = getenv("CR_FIXTURES");
    size_t n;
    char *p;

    if (dir == NULL)
        print_error("CR_FIXTURES is not set (ctest sets it to tests/fixtures)\n");
    assert_non_null(dir);
    n = strlen(dir) + strlen(rel) + 2;
    p = cr_malloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

static void clear_env(void)
{
    unsetenv("CROSSROADS_LISTEN");
    unsetenv("CROSSROADS_REDIS_URL");
}

/* Building blocks for inline configurations. */
#define WEBHOOK(url) "'connector':{'type':'webhook','url':'" url "'}"
#define URL_A        "http://127.0.0.1:9101"
#define URL_B        "http://127.0.0.1:9102"
#define WEBHOOK_H    WEBHOOK("http://h")
#define TENANT_A     "{'name':'a','source_system':'crossroads'," WEBHOOK(URL_A) "}"
#define TENANT_B     "{'name':'b','source_system':'crossroads'," WEBHOOK(URL_B) "}"
#define TENANTS      "'tenants':[" TENANT_A "," TENANT_B "]"
/* One tenant "a" with extra members (a leading comma included by the caller). */
#define TENANT_WITH(extra) "{'tenants':[{'name':'a','source_system':'s'" extra "}]}"
#define CONN_A(conn)       TENANT_WITH(",'connector':" conn)
/* Tenant "a" with a webhook connector and extra members. */
#define TA_WITH(extra) TENANT_WITH("," WEBHOOK_H extra)
#define HASH1          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH2          "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define KEY(extra)     TA_WITH(",'api_keys':[{'id':'k1','sha256':'" HASH1 "'" extra "}]")
/* Mappings after the two standard tenants. */
#define MAPPINGS(m) "{" TENANTS ",'mappings':[" m "]}"
#define MAP_T(id, src)                                                                             \
    "{'mapping_id':'" id "','tenant':'a','type':'terminal','source_id':'" src "','goid':'T-1'}"
#define ID1 "64b7cf5a86d9755df3a6c501"
#define ID2 "64b7cf5a86d9755df3a6c502"

#define SCOPE_LIST                                                                                 \
    "(expected order:create, order:cancel, order:reset, order:update_status, order:execute, "      \
    "order:accept, order:read, order:* or admin)"
#define REDIS_SYNTAX "(expected redis://[[user]:password@]host[:port][/db])"

typedef struct {
    const char *json;
    const char *err;
} err_case_t;

static void run_cases(const err_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_err(cases[i].json, cases[i].err);
}

/* ------------------------------------------------------------------------------------------ */
/* Accepted configurations                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("{'tenants':[" TENANT_A "]}");

    assert_int_equal(cfg->refs, 1);
    assert_string_equal(cfg->path, "t.json");
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 8080);
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
    assert_int_equal(cfg->redis_pool, 4);
    assert_int_equal(cfg->redis_command_timeout_ms, 2000);
    assert_int_equal(cfg->max_body_bytes, 1048576);
    assert_int_equal(cfg->max_header_bytes, 16384);
    assert_int_equal(cfg->max_header_count, 100);
    assert_int_equal(cfg->max_request_line, 8192);
    assert_int_equal(cfg->max_connections, 10000);
    assert_int_equal(cfg->header_timeout_ms, 10000);
    assert_int_equal(cfg->idle_timeout_ms, 60000);
    assert_int_equal(cfg->body_timeout_ms, 30000);
    assert_int_equal(cfg->saga_max_attempts, 5);
    assert_int_equal(cfg->saga_retry_base_ms, 200);
    assert_int_equal(cfg->saga_retry_max_ms, 30000);
    assert_int_equal(cfg->saga_claim_idle_ms, 30000);
    assert_int_equal(cfg->saga_drain_timeout_ms, 10000);
    assert_int_equal(cfg->saga_retention_s, 604800);
    assert_int_equal(cfg->idempotency_ttl_s, 86400);
    assert_int_equal(cfg->order_retention_s, 7776000);
    assert_true(cfg->saga_workers);

    assert_int_equal(cfg->n_tenants, 1);
    const cfg_tenant_t *t = &cfg->tenants[0];
    assert_string_equal(t->name, "a");
    assert_string_equal(t->source_system, "crossroads");
    assert_int_equal(t->n_instances, 0);
    assert_int_equal(t->n_keys, 0);
    assert_int_equal(t->connector.type, CFG_CONNECTOR_WEBHOOK);
    assert_string_equal(t->connector.url, "http://127.0.0.1:9101");
    assert_int_equal(t->connector.timeout_ms, 5000);
    assert_null(t->connector.secret_env);
    assert_true(t->auto_accept);
    assert_null(t->notify_url);
    assert_true(t->rate_per_second == 0);
    assert_int_equal(cfg->n_mappings, 0);
    assert_null(cfg->mappings);
    cfg_unref(cfg);
}

static void test_sections(void **state)
{
    (void)state;
    cfg_t *cfg =
        load_ok("{'listen':{'host':'127.0.0.1','port':9000},"
                "'redis':{'url':'redis://:pw@10.0.0.5:6380/3','pool':4,"
                "'command_timeout_ms':500},"
                "'limits':{'max_body_bytes':1,'max_header_bytes':2,'max_header_count':3,"
                "'max_request_line_bytes':4,'max_connections':5,'header_timeout_ms':6,"
                "'idle_timeout_ms':7,'body_timeout_ms':2147483647},"
                "'saga':{'max_attempts':9,'retry_base_ms':10,'retry_max_ms':10,"
                "'claim_idle_ms':12,'drain_timeout_ms':13,'retention_s':14,"
                "'idempotency_ttl_s':15,'order_retention_s':16,'workers':false}," TENANTS "}");

    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 9000);
    assert_string_equal(cfg->redis_url, "redis://:pw@10.0.0.5:6380/3");
    assert_int_equal(cfg->redis_pool, 4);
    assert_int_equal(cfg->redis_command_timeout_ms, 500);
    assert_int_equal(cfg->max_body_bytes, 1);
    assert_int_equal(cfg->max_header_bytes, 2);
    assert_int_equal(cfg->max_header_count, 3);
    assert_int_equal(cfg->max_request_line, 4);
    assert_int_equal(cfg->max_connections, 5);
    assert_int_equal(cfg->header_timeout_ms, 6);
    assert_int_equal(cfg->idle_timeout_ms, 7);
    assert_int_equal(cfg->body_timeout_ms, 2147483647L);
    assert_int_equal(cfg->saga_max_attempts, 9);
    assert_int_equal(cfg->saga_retry_base_ms, 10);
    assert_int_equal(cfg->saga_retry_max_ms, 10);
    assert_int_equal(cfg->saga_claim_idle_ms, 12);
    assert_int_equal(cfg->saga_drain_timeout_ms, 13);
    assert_int_equal(cfg->saga_retention_s, 14);
    assert_int_equal(cfg->idempotency_ttl_s, 15);
    assert_int_equal(cfg->order_retention_s, 16);
    assert_false(cfg->saga_workers);
    assert_int_equal(cfg->n_tenants, 2);
    cfg_unref(cfg);
}

static void test_tenant_fields(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(
        "{'tenants':["
        "{'name':'acme.Supply_1','source_system':'crossroads','instances':['prod','test'],"
        " 'api_keys':[{'id':'k1','sha256':'" HASH1 "','scopes':['order:*']},"
        "  {'id':'k2','sha256':'0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef',"
        "   'instance':'test','scopes':['order:cancel','order:read','order:cancel']},"
        "  {'id':'k3','sha256':'" HASH2 "','scopes':['admin']}],"
        " 'connector':{'type':'webhook','url':'HTTPS://hooks.example.com/base/',"
        "  'timeout_ms':2500,'secret_env':'ACME_SECRET'},"
        " 'auto_accept':false,'notify_url':'https://n.example.com/hook/?x=1',"
        " 'rate_limit':{'per_second':0.5}},"
        "{'name':'k','source_system':'kibo','connector':{'type':'kibo',"
        " 'url':'http://127.0.0.1:9102','tenant_id':'12345'},'rate_limit':{'per_second':10}},"
        "{'name':'t','source_system':'tecspal','connector':{'type':'tecspal',"
        " 'url':'http://127.0.0.1:9103/','company_code':'DM1','token_env':'_TOKEN_2'},"
        " 'rate_limit':{'per_second':2,'burst':20}}]}");
    const cfg_tenant_t *t = &cfg->tenants[0];

    assert_string_equal(t->name, "acme.Supply_1");
    assert_int_equal(t->n_instances, 2);
    assert_string_equal(t->instances[0], "prod");
    assert_string_equal(t->instances[1], "test");
    assert_int_equal(t->n_keys, 3);
    assert_string_equal(t->keys[0].id, "k1");
    assert_null(t->keys[0].instance);
    assert_int_equal(t->keys[0].scopes, CFG_SCOPE_ORDER_ALL);
    for (int i = 0; i < 32; i++)
        assert_int_equal(t->keys[0].sha256[i], 0xaa);
    static const uint8_t k2[32] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45,
                                   0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                                   0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    assert_memory_equal(t->keys[1].sha256, k2, 32);
    assert_string_equal(t->keys[1].instance, "test");
    assert_int_equal(t->keys[1].scopes, CFG_SCOPE_ORDER_CANCEL | CFG_SCOPE_ORDER_READ);
    assert_int_equal(t->keys[2].scopes, CFG_SCOPE_ADMIN);
    assert_int_equal(t->connector.type, CFG_CONNECTOR_WEBHOOK);
    assert_string_equal(t->connector.url, "HTTPS://hooks.example.com/base");
    assert_int_equal(t->connector.timeout_ms, 2500);
    assert_string_equal(t->connector.secret_env, "ACME_SECRET");
    assert_false(t->auto_accept);
    /* notify_url is posted to as written: its slash and query stay. */
    assert_string_equal(t->notify_url, "https://n.example.com/hook/?x=1");
    assert_true(t->rate_per_second == 0.5);
    assert_true(t->rate_burst == 1); /* a burst below one token would never let a request in */

    t = &cfg->tenants[1];
    assert_int_equal(t->connector.type, CFG_CONNECTOR_KIBO);
    assert_string_equal(t->connector.tenant_id, "12345");
    assert_null(t->connector.secret_env);
    assert_true(t->auto_accept);
    assert_true(t->rate_per_second == 10 && t->rate_burst == 10);

    t = &cfg->tenants[2];
    assert_int_equal(t->connector.type, CFG_CONNECTOR_TECSPAL);
    assert_string_equal(t->connector.url, "http://127.0.0.1:9103"); /* "//" is refused */
    assert_string_equal(t->connector.company_code, "DM1");
    assert_string_equal(t->connector.token_env, "_TOKEN_2");
    assert_true(t->rate_per_second == 2 && t->rate_burst == 20);
    cfg_unref(cfg);
}

static void test_mapping_fields(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(MAPPINGS(
        "{'mapping_id':'64B7CF5A86D9755DF3A6C5AB','tenant':'a','type':'terminal',"
        " 'source_id':'HOU','source_name':'Houston','goid':'T-1','goid_name':'Houston T'},"
        "{'mapping_id':'" ID2 "','tenant':'a','type':'site','source_name':'Austin','goid':'S-1'},"
        /* the same source_id is fine for another type and for another tenant */
        "{'mapping_id':'64b7cf5a86d9755df3a6c503','tenant':'a','type':'product',"
        " 'source_id':'HOU','goid':'P-1'},"
        "{'mapping_id':'64b7cf5a86d9755df3a6c504','tenant':'b','type':'terminal',"
        " 'source_id':'HOU','goid':'T-1'}"));

    assert_int_equal(cfg->n_mappings, 4);
    const cfg_mapping_t *m = &cfg->mappings[0];
    assert_string_equal(m->mapping_id, "64b7cf5a86d9755df3a6c5ab");
    assert_string_equal(m->tenant, "a");
    assert_int_equal(m->type, CFG_MAPPING_TERMINAL);
    assert_string_equal(m->source_id, "HOU");
    assert_string_equal(m->source_name, "Houston");
    assert_string_equal(m->goid, "T-1");
    assert_string_equal(m->goid_name, "Houston T");
    m = &cfg->mappings[1];
    assert_int_equal(m->type, CFG_MAPPING_SITE);
    assert_null(m->source_id);
    assert_string_equal(m->source_name, "Austin");
    assert_null(m->goid_name);
    assert_int_equal(cfg->mappings[2].type, CFG_MAPPING_PRODUCT);
    assert_string_equal(cfg->mappings[3].tenant, "b");
    cfg_unref(cfg);
}

static void test_unnamed_source(void **state)
{
    (void)state;
    char err[256];
    cfg_t *cfg = NULL;
    const char *text = "{\"tenants\": 1}";

    assert_true(cfg_load_json(text, strlen(text), NULL, &cfg, err, sizeof(err)) < 0);
    assert_string_equal(err, "<string>: tenants: expected array");
    assert_null(cfg);

    /* err may be NULL or tiny: the message is cut, never overflows. */
    assert_true(cfg_load_json(text, strlen(text), NULL, &cfg, NULL, 0) < 0);
    memset(err, 'x', sizeof(err));
    assert_true(cfg_load_json(text, strlen(text), "t.json", &cfg, err, 8) < 0);
    assert_string_equal(err, "t.json:");
    assert_int_equal(err[8], 'x');

    char *json = sq("{'tenants':[" TENANT_A "]}");
    assert_int_equal(cfg_load_json(json, strlen(json), NULL, &cfg, NULL, 0), 0);
    assert_string_equal(cfg->path, "<string>");
    cfg_unref(cfg);
    free(json);
}

/* ------------------------------------------------------------------------------------------ */
/* Refused configurations: one table per family, each with the exact message                   */
/* ------------------------------------------------------------------------------------------ */

static void test_errors_syntax(void **state)
{
    (void)state;
    char err[512];
    cfg_t *cfg = NULL;
    static const struct {
        const char *text;
        const char *prefix;
    } cases[] = {
        {"", "t.json: line 1 column 0: "},
        {"{\"tenants\": [}", "t.json: line 1 column 14: "},
        {"{\"a\": 1,\n \"a\": 2}", "t.json: line 2 column "},
        {"{\"tenants\": []} x", "t.json: line 1 column 17: "},
        {"\"just a string\"", "t.json: line 1 column "},
        {"{\"a\": \"\\u0000\"}", "t.json: line 1 column "},
    };

    for (size_t i = 0; i < CR_ARRAY_SIZE(cases); i++) {
        int rc =
            cfg_load_json(cases[i].text, strlen(cases[i].text), "t.json", &cfg, err, sizeof(err));
        if (strncmp(err, cases[i].prefix, strlen(cases[i].prefix)) != 0)
            print_error("case %zu: want prefix %s\n  got: %s\n", i, cases[i].prefix, err);
        assert_true(rc < 0);
        assert_null(cfg);
        assert_memory_equal(err, cases[i].prefix, strlen(cases[i].prefix));
    }
    /* Duplicate keys are refused with jansson's reason, not silently resolved. */
    cfg_load_json("{\"a\": 1,\n \"a\": 2}", 17, "t.json", &cfg, err, sizeof(err));
    assert_non_null(strstr(err, "duplicate object key"));
    /* A NUL byte inside the text is refused too, whatever follows it. */
    assert_true(cfg_load_json("{\"tenants\":\0[]}", 15, "t.json", &cfg, err, sizeof(err)) < 0);
}

static void test_errors_top(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"[]", "t.json: the top level must be a JSON object"},
        {"{}", "t.json: tenants: required"},
        {"{'tenants':{}}", "t.json: tenants: expected array"},
        {"{'tenants':[]}", "t.json: tenants: must list at least one tenant"},
        {"{" TENANTS ",'lisen':{}}", "t.json: lisen: unknown field"},
        {"{" TENANTS ",'a b\\n':1}", "t.json: [\"a b\\x0a\"]: unknown field"},
        {"{'listen':{}," TENANTS ",'tenant':[]}", "t.json: tenant: unknown field"},
        {"{" TENANTS ",'mappings':{}}", "t.json: mappings: expected array"},
        {"{" TENANTS ",'mappings':[1]}", "t.json: mappings[0]: expected object"},
    };
    run_cases(cases, CR_ARRAY_SIZE(cases));
}

static void test_errors_listen_redis(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{" TENANTS ",'listen':[]}", "t.json: listen: expected object"},
        {"{" TENANTS ",'listen':{'hots':'x'}}", "t.json: listen.hots: unknown field"},
        {"{" TENANTS ",'listen':{'port':0}}",
         "t.json: listen.port: must be a positive integer (got 0)"},
        {"{" TENANTS ",'listen':{'port':65536}}",
         "t.json: listen.port: must be at most 65535 (got 65536)"},
        {"{" TENANTS ",'listen':{'port':'80'}}", "t.json: listen.port: expected integer"},
        {"{" TENANTS ",'listen':{'port':80.0}}", "t.json: listen.port: expected integer"},
        {"{" TENANTS ",'listen':{'port':true}}", "t.json: listen.port: expected integer"},
        {"{" TENANTS ",'listen':{'port':null}}", "t.json: listen.port: expected integer"},
        {"{" TENANTS ",'listen':{'host':5}}", "t.json: listen.host: expected string"},
        {"{" TENANTS ",'listen':{'host':''}}", "t.json: listen.host: must not be empty"},
        {"{" TENANTS ",'listen':{'host':'0.0.0.0 '}}",
         "t.json: listen.host: must not contain spaces or control characters"},
        {"{" TENANTS ",'redis':'redis://x'}", "t.json: redis: expected object"},
        {"{" TENANTS ",'redis':{'db':1}}", "t.json: redis.db: unknown field"},
        {"{" TENANTS ",'redis':{'url':7}}", "t.json: redis.url: expected string"},
        {"{" TENANTS ",'redis':{'url':'http://127.0.0.1:6379'}}",
         "t.json: redis.url: invalid Redis URL: unsupported scheme " REDIS_SYNTAX},
        /* The password must never appear in the message. */
        {"{" TENANTS ",'redis':{'url':'redis://:hunter2@127.0.0.1:99999'}}",
         "t.json: redis.url: invalid Redis URL: port must be 1-65535 " REDIS_SYNTAX},
        {"{" TENANTS ",'redis':{'url':'redis://127.0.0.1/zero'}}",
         "t.json: redis.url: invalid Redis URL: database must be a number " REDIS_SYNTAX},
        {"{" TENANTS ",'redis':{'pool':0}}",
         "t.json: redis.pool: must be a positive integer (got 0)"},
        {"{" TENANTS ",'redis':{'pool':5000}}",
         "t.json: redis.pool: must be at most 1024 (got 5000)"},
        {"{" TENANTS ",'redis':{'command_timeout_ms':-1}}",
         "t.json: redis.command_timeout_ms: must be a positive integer (got -1)"},
    };
    run_cases(cases, CR_ARRAY_SIZE(cases));
}

static void test_errors_limits_saga(void **state)
{
    (void)state;
    static const char *const limits[] = {
        "max_body_bytes",  "max_header_bytes",  "max_header_count", "max_request_line_bytes",
        "max_connections", "header_timeout_ms", "idle_timeout_ms",  "body_timeout_ms",
    };
    static const char *const saga[] = {
        "max_attempts",     "retry_base_ms", "retry_max_ms",      "claim_idle_ms",
        "drain_timeout_ms", "retention_s",   "idempotency_ttl_s",
    };
    static const struct {
        const char *value;
        const char *reason;
    } bad[] = {
        {"0", "must be a positive integer (got 0)"},
        {"-5", "must be a positive integer (got -5)"},
        {"2147483648", "must be at most 2147483647 (got 2147483648)"},
        {"1.5", "expected integer"},
        {"'10'", "expected integer"},
    };
    char json[512], want[256];

    for (size_t s = 0; s < 2; s++) {
        const char *section = s == 0 ? "limits" : "saga";
        const char *const *names = s == 0 ? limits : saga;
        size_t n = s == 0 ? CR_ARRAY_SIZE(limits) : CR_ARRAY_SIZE(saga);

        for (size_t i = 0; i < n; i++) {
            for (size_t b = 0; b < CR_ARRAY_SIZE(bad); b++) {
                snprintf(json, sizeof(json), "{" TENANTS ",'%s':{'%s':%s}}", section, names[i],
                         bad[b].value);
                snprintf(want, sizeof(want), "t.json: %s.%s: %s", section, names[i], bad[b].reason);
                expect_err(json, want);
            }
        }
    }

    static const err_case_t cases[] = {
        {"{" TENANTS ",'limits':{'max_body_byte':1}}",
         "t.json: limits.max_body_byte: unknown field"},
        {"{" TENANTS ",'limits':[]}", "t.json: limits: expected object"},
        {"{" TENANTS ",'saga':{'retries':1}}", "t.json: saga.retries: unknown field"},
        {"{" TENANTS ",'saga':{'workers':0}}", "t.json: saga.workers: expected boolean"},
        {"{" TENANTS ",'saga':{'retry_base_ms':500,'retry_max_ms':100}}",
         "t.json: saga.retry_max_ms: must be at least retry_base_ms (500)"},
        /* Only the base was written: the base is what is wrong. */
        {"{" TENANTS ",'saga':{'retry_base_ms':60000}}",
         "t.json: saga.retry_base_ms: must be at most retry_max_ms (30000)"},
        /* An order outlives its sagas; 0 keeps orders for good. */
        {"{" TENANTS ",'saga':{'retention_s':100,'order_retention_s':99}}",
         "t.json: saga.order_retention_s: must be 0 (keep orders) or at least retention_s (100)"},
        {"{" TENANTS ",'saga':{'retention_s':7776001}}",
         "t.json: saga.retention_s: must be at most order_retention_s (7776000)"},
        {"{" TENANTS ",'saga':{'order_retention_s':-1}}",
         "t.json: saga.order_retention_s: must be at least 0 (got -1)"},
    };
    run_cases(cases, CR_ARRAY_SIZE(cases));
}

static void test_errors_tenant(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"{'tenants':[" TENANT_A ",'b']}", "t.json: tenants[1]: expected object"},
        {"{'tenants':[{'source_system':'s'," WEBHOOK_H "}]}", "t.json: tenants[0].name: required"},
        {"{'tenants':[{'name':'a b','source_system':'s'}]}",
         "t.json: tenants[0].name: invalid tenant name 'a b' (expected 1-64 characters from A-Z "
         "a-z 0-9 . _ -)"},
        {"{'tenants':[{'name':'caf\\u00e9','source_system':'s'}]}",
         "t.json: tenants[0].name: invalid tenant name 'caf\xc3\xa9' (expected 1-64 characters "
         "from A-Z a-z 0-9 . _ -)"},
        {"{'tenants':[{'name':'','source_system':'s'}]}",
         "t.json: tenants[0].name: must not be empty"},
        {"{'tenants':[" TENANT_A "," TENANT_B "," TENANT_A "]}",
         "t.json: tenants[2].name: duplicate tenant name 'a' (also tenants[0].name)"},
        {"{'tenants':[{'name':'a'," WEBHOOK_H "}]}", "t.json: tenants[0].source_system: required"},
        {"{'tenants':[{'name':'a','source_system':1}]}",
         "t.json: tenants[0].source_system: expected string"},
        {TA_WITH(",'auto_acept':true"), "t.json: tenants[0].auto_acept: unknown field"},
        {TA_WITH(",'auto_accept':'yes'"), "t.json: tenants[0].auto_accept: expected boolean"},
        {TA_WITH(",'instances':'prod'"), "t.json: tenants[0].instances: expected array"},
        {TA_WITH(",'instances':['prod',1]"), "t.json: tenants[0].instances[1]: expected string"},
        {TA_WITH(",'instances':['prod','test','prod']"),
         "t.json: tenants[0].instances[2]: duplicate instance 'prod' (also instances[0])"},
        {TA_WITH(",'instances':['']"),
         "t.json: tenants[0].instances[0]: invalid instance name '' (expected 1-64 characters "
         "from A-Z a-z 0-9 . _ -)"},
        {TA_WITH(",'notify_url':'ftp://h/x'"),
         "t.json: tenants[0].notify_url: must start with http:// or https://"},
        {TA_WITH(",'notify_url':''"), "t.json: tenants[0].notify_url: must not be empty"},
        {TA_WITH(",'rate_limit':5"), "t.json: tenants[0].rate_limit: expected object"},
        {TA_WITH(",'rate_limit':{}"), "t.json: tenants[0].rate_limit.per_second: required"},
        {TA_WITH(",'rate_limit':{'per_second':0}"),
         "t.json: tenants[0].rate_limit.per_second: must be greater than 0 (got 0)"},
        {TA_WITH(",'rate_limit':{'per_second':-2.5}"),
         "t.json: tenants[0].rate_limit.per_second: must be greater than 0 (got -2.5)"},
        {TA_WITH(",'rate_limit':{'per_second':'5'}"),
         "t.json: tenants[0].rate_limit.per_second: expected number"},
        {TA_WITH(",'rate_limit':{'per_second':5,'burst':0.5}"),
         "t.json: tenants[0].rate_limit.burst: must be at least 1 (got 0.5)"},
        {TA_WITH(",'rate_limit':{'per_second':5,'burst':false}"),
         "t.json: tenants[0].rate_limit.burst: expected number"},
        {TA_WITH(",'rate_limit':{'per_second':5,'rate':1}"),
         "t.json: tenants[0].rate_limit.rate: unknown field"},
    };
    run_cases(cases, CR_ARRAY_SIZE(cases));

    /* 64 characters is the longest name; longer ones are cut in the message. */
    char json[512], name[70], want[300];
    memset(name, 'n', 64);
    name[64] = '\0';
    snprintf(json, sizeof(json), "{'tenants':[{'name':'%s','source_system':'s'," WEBHOOK_H "}]}",
             name);
    cfg_unref(load_ok(json));
    snprintf(json, sizeof(json), "{'tenants':[{'name':'%sn','source_system':'s'}]}", name);
    snprintf(want, sizeof(want),
             "t.json: tenants[0].name: invalid tenant name '%.60s...' (expected 1-64 characters "
             "from A-Z a-z 0-9 . _ -)",
             name);
    expect_err(json, want);
}

static void test_errors_connector(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {TENANT_WITH(""), "t.json: tenants[0].connector: required"},
        {CONN_A("[]"), "t.json: tenants[0].connector: expected object"},
        {CONN_A("{'url':'http://h'}"), "t.json: tenants[0].connector.type: required"},
        {CONN_A("{'type':3,'url':'http://h'}"),
         "t.json: tenants[0].connector.type: expected string"},
        {CONN_A("{'type':'Webhook','url':'http://h'}"),
         "t.json: tenants[0].connector.type: unknown connector type 'Webhook' (expected webhook, "
         "kibo or tecspal)"},
        {CONN_A("{'type':'webhook'}"), "t.json: tenants[0].connector.url: required"},
        {CONN_A("{'type':'webhook','url':'ftp://h'}"),
         "t.json: tenants[0].connector.url: must start with http:// or https://"},
        {CONN_A("{'type':'webhook','url':'http://h:1//'}"),
         "t.json: tenants[0].connector.url: must not end in \"//\" (request paths are appended)"},
        {CONN_A("{'type':'webhook','url':'127.0.0.1:9101'}"),
         "t.json: tenants[0].connector.url: must start with http:// or https://"},
        {CONN_A("{'type':'webhook','url':'http://'}"),
         "t.json: tenants[0].connector.url: missing host"},
        {CONN_A("{'type':'webhook','url':'https:///x'}"),
         "t.json: tenants[0].connector.url: missing host"},
        {CONN_A("{'type':'webhook','url':'http://h/a b'}"),
         "t.json: tenants[0].connector.url: must not contain spaces or control characters"},
        {CONN_A("{'type':'webhook','url':'http://h/?k=1'}"),
         "t.json: tenants[0].connector.url: must not have a query or fragment (request paths are "
         "appended)"},
        {CONN_A("{'type':'webhook','url':'http://h','timeout_ms':0}"),
         "t.json: tenants[0].connector.timeout_ms: must be a positive integer (got 0)"},
        {CONN_A("{'type':'webhook','url':'http://h','timeout_ms':'5s'}"),
         "t.json: tenants[0].connector.timeout_ms: expected integer"},
        {CONN_A("{'type':'webhook','url':'http://h','secret':'x'}"),
         "t.json: tenants[0].connector.secret: unknown field"},
        {CONN_A("{'type':'webhook','url':'http://h','tenant_id':'1'}"),
         "t.json: tenants[0].connector.tenant_id: unknown field"},
        {CONN_A("{'type':'webhook','url':'http://h','secret_env':'acme_secret'}"),
         "t.json: tenants[0].connector.secret_env: invalid environment variable name "
         "'acme_secret' (expected [A-Z_][A-Z0-9_]*)"},
        {CONN_A("{'type':'webhook','url':'http://h','secret_env':'1ABC'}"),
         "t.json: tenants[0].connector.secret_env: invalid environment variable name '1ABC' "
         "(expected [A-Z_][A-Z0-9_]*)"},
        {CONN_A("{'type':'webhook','url':'http://h','secret_env':''}"),
         "t.json: tenants[0].connector.secret_env: must not be empty"},
        {CONN_A("{'type':'kibo','url':'http://h'}"),
         "t.json: tenants[0].connector.tenant_id: required"},
        {CONN_A("{'type':'kibo','url':'http://h','tenant_id':12345}"),
         "t.json: tenants[0].connector.tenant_id: expected string"},
        {CONN_A("{'type':'kibo','url':'http://h','tenant_id':'1\\r\\nX: y'}"),
         "t.json: tenants[0].connector.tenant_id: must not contain control characters"},
        {CONN_A("{'type':'kibo','url':'http://h','tenant_id':'1','secret_env':'S'}"),
         "t.json: tenants[0].connector.secret_env: unknown field"},
        {CONN_A("{'type':'tecspal','url':'http://h','token_env':'T'}"),
         "t.json: tenants[0].connector.company_code: required"},
        {CONN_A("{'type':'tecspal','url':'http://h','company_code':'DM1'}"),
         "t.json: tenants[0].connector.token_env: required"},
        {CONN_A("{'type':'tecspal','url':'http://h','company_code':'DM1','token_env':'tok'}"),
         "t.json: tenants[0].connector.token_env: invalid environment variable name 'tok' "
         "(expected [A-Z_][A-Z0-9_]*)"},
        {CONN_A("{'type':'tecspal','url':'http://h','company_code':'DM1','token_env':'T',"
                "'tenant_id':'1'}"),
         "t.json: tenants[0].connector.tenant_id: unknown field"},
    };
    run_cases(cases, CR_ARRAY_SIZE(cases));
}

static void test_errors_api_keys(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {TA_WITH(",'api_keys':{}"), "t.json: tenants[0].api_keys: expected array"},
        {TA_WITH(",'api_keys':['k']"), "t.json: tenants[0].api_keys[0]: expected object"},
        {TA_WITH(",'api_keys':[{'sha256':'" HASH1 "','scopes':['admin']}]"),
         "t.json: tenants[0].api_keys[0].id: required"},
        {TA_WITH(",'api_keys':[{'id':'k1','scopes':['admin']}]"),
         "t.json: tenants[0].api_keys[0].sha256: required"},
        {TA_WITH(",'api_keys':[{'id':'k1','key':'secret','sha256':'" HASH1
                 "','scopes':['admin']}]"),
         "t.json: tenants[0].api_keys[0].key: unknown field"},
        {TA_WITH(",'api_keys':[{'id':'k1','sha256':'x','scopes':['admin']}]"),
         "t.json: tenants[0].api_keys[0].sha256: must be 64 hexadecimal characters (the SHA-256 "
         "of the key, as printed by crossroads hash-key)"},
        {TA_WITH(",'api_keys':[{'id':'k1','sha256':'" HASH1 "0','scopes':['admin']}]"),
         "t.json: tenants[0].api_keys[0].sha256: must be 64 hexadecimal characters (the SHA-256 "
         "of the key, as printed by crossroads hash-key)"},
        {TA_WITH(",'api_keys':[{'id':'k1','sha256':'g" HASH1 "','scopes':['admin']}]"),
         "t.json: tenants[0].api_keys[0].sha256: must be 64 hexadecimal characters (the SHA-256 "
         "of the key, as printed by crossroads hash-key)"},
        {KEY(""), "t.json: tenants[0].api_keys[0].scopes: required"},
        {KEY(",'scopes':'order:*'"), "t.json: tenants[0].api_keys[0].scopes: expected array"},
        {KEY(",'scopes':[]"), "t.json: tenants[0].api_keys[0].scopes: must not be empty"},
        {KEY(",'scopes':['order:read','order:delete']"),
         "t.json: tenants[0].api_keys[0].scopes[1]: unknown scope 'order:delete' " SCOPE_LIST},
        {KEY(",'scopes':['order:read',7]"),
         "t.json: tenants[0].api_keys[0].scopes[1]: expected string"},
        {KEY(",'scopes':['*']"),
         "t.json: tenants[0].api_keys[0].scopes[0]: unknown scope '*' " SCOPE_LIST},
        {KEY(",'scopes':['admin'],'instance':'prod'"),
         "t.json: tenants[0].api_keys[0].instance: unknown instance 'prod' (not in the tenant's "
         "instances)"},
        {"{'tenants':[{'name':'a','source_system':'s','instances':['prod'],"
         "'api_keys':[{'id':'k1','sha256':'" HASH1 "','scopes':['admin'],'instance':'test'}]}]}",
         "t.json: tenants[0].api_keys[0].instance: unknown instance 'test' (not in the tenant's "
         "instances)"},
        /* Key ids and hashes are unique across the whole file, not just one tenant. */
        {"{'tenants':[{'name':'a','source_system':'s'," WEBHOOK_H ","
         "'api_keys':[{'id':'k1','sha256':'" HASH1 "','scopes':['admin']}]},"
         "{'name':'b','source_system':'s'," WEBHOOK_H ","
         "'api_keys':[{'id':'k2','sha256':'" HASH2 "','scopes':['admin']},"
         "{'id':'k1','sha256':'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc',"
         "'scopes':['admin']}]}]}",
         "t.json: tenants[1].api_keys[1].id: duplicate api key id 'k1' (also "
         "tenants[0].api_keys[0].id)"},
        {"{'tenants':[{'name':'a','source_system':'s'," WEBHOOK_H ","
         "'api_keys':[{'id':'k1','sha256':'" HASH1 "','scopes':['admin']}]},"
         "{'name':'b','source_system':'s'," WEBHOOK_H ","
         "'api_keys':[{'id':'k2',"
         "'sha256':'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',"
         "'scopes':['admin']}]}]}",
         "t.json: tenants[1].api_keys[0].sha256: duplicate key hash (also "
         "tenants[0].api_keys[0].sha256): each key belongs to exactly one tenant"},
    };
    run_cases(cases, CR_ARRAY_SIZE(cases));
}

static void test_errors_mappings(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {MAPPINGS("{'tenant':'a','type':'site','source_id':'x','goid':'g'}"),
         "t.json: mappings[0].mapping_id: required"},
        {MAPPINGS("{'mapping_id':'64b7cf5a86d9755df3a6c50','tenant':'a','type':'site',"
                  "'source_id':'x','goid':'g'}"),
         "t.json: mappings[0].mapping_id: must be 24 hexadecimal characters"},
        {MAPPINGS("{'mapping_id':'64b7cf5a86d9755df3a6c50z','tenant':'a','type':'site',"
                  "'source_id':'x','goid':'g'}"),
         "t.json: mappings[0].mapping_id: must be 24 hexadecimal characters"},
        {MAPPINGS("{'mapping_id':123,'tenant':'a','type':'site','source_id':'x','goid':'g'}"),
         "t.json: mappings[0].mapping_id: expected string"},
        {MAPPINGS(MAP_T(ID1, "x") ",{'mapping_id':'64B7CF5A86D9755DF3A6C501','tenant':'b',"
                                  "'type':'site','source_id':'y','goid':'g'}"),
         "t.json: mappings[1].mapping_id: duplicate mapping_id '" ID1 "' (also "
         "mappings[0].mapping_id)"},
        {MAPPINGS("{'mapping_id':'" ID1 "','type':'site','source_id':'x','goid':'g'}"),
         "t.json: mappings[0].tenant: required"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'zz','type':'site','source_id':'x',"
                  "'goid':'g'}"),
         "t.json: mappings[0].tenant: unknown tenant 'zz'"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'a','source_id':'x','goid':'g'}"),
         "t.json: mappings[0].type: required"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'a','type':'depot','source_id':'x',"
                  "'goid':'g'}"),
         "t.json: mappings[0].type: unknown mapping type 'depot' (expected terminal, site or "
         "product)"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'a','type':'site','goid':'g'}"),
         "t.json: mappings[0]: needs source_id or source_name"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'a','type':'site','source_id':5,'goid':'g'}"),
         "t.json: mappings[0].source_id: expected string"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'a','type':'site','source_name':'',"
                  "'goid':'g'}"),
         "t.json: mappings[0].source_name: must not be empty"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'a','type':'site','source_id':'x'}"),
         "t.json: mappings[0].goid: required"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'a','type':'site','source_id':'x',"
                  "'goid':''}"),
         "t.json: mappings[0].goid: must not be empty"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'a','type':'site','source_id':'x',"
                  "'goid':'g','goid_name':3}"),
         "t.json: mappings[0].goid_name: expected string"},
        {MAPPINGS("{'mapping_id':'" ID1 "','tenant':'a','type':'site','source_id':'x',"
                  "'goid':'g','goid_nmae':'G'}"),
         "t.json: mappings[0].goid_nmae: unknown field"},
        {MAPPINGS(MAP_T(ID1, "HOU") "," MAP_T(ID2, "HOU")),
         "t.json: mappings[1].source_id: duplicate source_id 'HOU' for tenant 'a' type terminal "
         "(also mappings[0].source_id)"},
    };
    run_cases(cases, CR_ARRAY_SIZE(cases));
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void expect_file_err(const char *rel, const char *reason)
{
    char err[512], want[1024];
    char *path = fixture(rel);
    cfg_t *cfg = NULL;

    snprintf(want, sizeof(want), "%s: %s", path, reason);
    assert_true(cfg_load_file(path, &cfg, err, sizeof(err)) < 0);
    assert_null(cfg);
    assert_string_equal(err, want);
    free(path);
}

static void test_files(void **state)
{
    (void)state;
    char err[512];
    cfg_t *cfg = NULL;
    char *path;

    clear_env();
    path = fixture("configs/minimal.json");
    assert_int_equal(cfg_load_file(path, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->path, path);
    assert_int_equal(cfg->n_tenants, 1);
    assert_string_equal(cfg->tenants[0].name, "solo");
    assert_string_equal(cfg->tenants[0].connector.url, "http://127.0.0.1:9101");
    cfg_unref(cfg);
    free(path);

    expect_file_err("configs/bad-connector-type.json",
                    "tenants[1].connector.type: unknown connector type 'ftp' (expected webhook, "
                    "kibo or tecspal)");
    expect_file_err("configs/bad-typo.json", "limits.max_body_byte: unknown field");
    expect_file_err("configs/bad-top-level.json", "the top level must be a JSON object");
    expect_file_err("configs/bad-no-tenants.json", "tenants: required");
    expect_file_err("configs/bad-syntax.json", "line 5 column 3: unexpected token near ']'");
    expect_file_err("configs/bad-duplicate-key.json",
                    "line 2 column 33: duplicate object key near '\"port\"'");
    expect_file_err("configs/does-not-exist.json", "cannot open: no such file or directory");
    expect_file_err("configs", "not a regular file");
}

/* ------------------------------------------------------------------------------------------ */
/* The demo configuration the README starts with                                               */
/* ------------------------------------------------------------------------------------------ */

static const cfg_api_key_t *find_key(const cfg_tenant_t *t, const char *key)
{
    uint8_t digest[32];

    SHA256((const unsigned char *)key, strlen(key), digest);
    for (size_t i = 0; i < t->n_keys; i++) {
        if (memcmp(t->keys[i].sha256, digest, 32) == 0)
            return &t->keys[i];
    }
    return NULL;
}

static const char *goid_of(const cfg_t *cfg, const char *tenant, cfg_mapping_type_t type,
                           const char *source_id)
{
    for (size_t i = 0; i < cfg->n_mappings; i++) {
        const cfg_mapping_t *m = &cfg->mappings[i];
        if (strcmp(m->tenant, tenant) == 0 && m->type == type && m->source_id != NULL &&
            strcmp(m->source_id, source_id) == 0)
            return m->goid;
    }
    return NULL;
}

static void test_demo(void **state)
{
    (void)state;
    char err[512] = "";
    char *path = fixture("../../config/demo.json");
    const cfg_tenant_t *t;
    const cfg_api_key_t *k;
    cfg_t *cfg = NULL;
    int rc;

    clear_env();
    rc = cfg_load_file(path, &cfg, err, sizeof(err));
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    free(path);

    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 8080);
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
    assert_int_equal(cfg->n_tenants, 4);

    t = cfg_tenant_find(cfg, "acme-supply", 11);
    assert_non_null(t);
    assert_string_equal(t->source_system, "crossroads");
    assert_int_equal(t->n_instances, 2);
    assert_true(cfg_tenant_has_instance(t, "acme-prod", 9));
    assert_true(cfg_tenant_has_instance(t, "acme-test", 9));
    assert_int_equal(t->connector.type, CFG_CONNECTOR_WEBHOOK);
    assert_string_equal(t->connector.url, "http://127.0.0.1:9101");
    assert_string_equal(t->connector.secret_env, "ACME_WEBHOOK_SECRET");
    assert_true(t->auto_accept);
    assert_non_null(k = find_key(t, "demo-acme-key"));
    assert_string_equal(k->id, "acme-1");
    assert_null(k->instance);
    assert_int_equal(k->scopes, CFG_SCOPE_ORDER_ALL);
    assert_non_null(k = find_key(t, "demo-acme-cancel-only"));
    assert_string_equal(k->id, "acme-2");
    assert_string_equal(k->instance, "acme-test");
    assert_int_equal(k->scopes, CFG_SCOPE_ORDER_CANCEL);
    assert_non_null(k = find_key(t, "demo-admin-key"));
    assert_string_equal(k->id, "admin-1");
    assert_int_equal(k->scopes, CFG_SCOPE_ADMIN | CFG_SCOPE_ORDER_READ);
    assert_null(find_key(t, "demo-swift-key"));

    t = cfg_tenant_find(cfg, "swift-haul", 10);
    assert_non_null(t);
    assert_string_equal(t->connector.url, "http://127.0.0.1:9104");
    assert_string_equal(t->connector.secret_env, "SWIFT_WEBHOOK_SECRET");
    assert_non_null(k = find_key(t, "demo-swift-key"));
    assert_string_equal(k->id, "swift-1");
    assert_int_equal(k->scopes, CFG_SCOPE_ORDER_ALL);

    t = cfg_tenant_find(cfg, "kibo-retail", 11);
    assert_non_null(t);
    assert_int_equal(t->connector.type, CFG_CONNECTOR_KIBO);
    assert_string_equal(t->connector.url, "http://127.0.0.1:9102");
    assert_string_equal(t->connector.tenant_id, "12345");
    assert_non_null(k = find_key(t, "demo-kibo-key"));
    assert_string_equal(k->id, "kibo-1");

    t = cfg_tenant_find(cfg, "tecspal-hw", 10);
    assert_non_null(t);
    assert_int_equal(t->connector.type, CFG_CONNECTOR_TECSPAL);
    assert_string_equal(t->connector.url, "http://127.0.0.1:9103");
    assert_string_equal(t->connector.company_code, "DM1");
    assert_string_equal(t->connector.token_env, "TECSPAL_TOKEN");
    assert_non_null(k = find_key(t, "demo-tecspal-key"));
    assert_string_equal(k->id, "tec-1");

    /* Every tenant knows the Houston terminal, the Austin site and diesel, by its own ids. */
    const char *term = goid_of(cfg, "acme-supply", CFG_MAPPING_TERMINAL, "HOU-T1");
    const char *site = goid_of(cfg, "acme-supply", CFG_MAPPING_SITE, "ATX-S12");
    const char *prod = goid_of(cfg, "acme-supply", CFG_MAPPING_PRODUCT, "ULSD");
    assert_non_null(term);
    assert_non_null(site);
    assert_non_null(prod);
    assert_string_equal(goid_of(cfg, "swift-haul", CFG_MAPPING_TERMINAL, "SH-HOU"), term);
    assert_string_equal(goid_of(cfg, "swift-haul", CFG_MAPPING_SITE, "SH-ATX12"), site);
    assert_string_equal(goid_of(cfg, "swift-haul", CFG_MAPPING_PRODUCT, "SH-DSL"), prod);
    assert_string_equal(goid_of(cfg, "kibo-retail", CFG_MAPPING_TERMINAL, "KB-TERM-HOU"), term);
    assert_string_equal(goid_of(cfg, "kibo-retail", CFG_MAPPING_SITE, "1012"), site);
    assert_string_equal(goid_of(cfg, "kibo-retail", CFG_MAPPING_PRODUCT, "SKU-ULSD"), prod);
    assert_string_equal(goid_of(cfg, "tecspal-hw", CFG_MAPPING_TERMINAL, "TEC-T-HOU"), term);
    assert_string_equal(goid_of(cfg, "tecspal-hw", CFG_MAPPING_SITE, "TEC-S-ATX"), site);
    assert_string_equal(goid_of(cfg, "tecspal-hw", CFG_MAPPING_PRODUCT, "TEC-P-DSL"), prod);
    for (size_t i = 0; i < cfg->n_mappings; i++) {
        assert_int_equal(strlen(cfg->mappings[i].mapping_id), 24);
        assert_non_null(
            cfg_tenant_find(cfg, cfg->mappings[i].tenant, strlen(cfg->mappings[i].tenant)));
    }
    cfg_unref(cfg);
}

/* ------------------------------------------------------------------------------------------ */
/* Environment overrides                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void test_env_overrides(void **state)
{
    (void)state;
    char err[512];
    char *path = fixture("configs/minimal.json");
    char *json = sq("{'tenants':[" TENANT_A "]}");
    cfg_t *cfg = NULL;

    clear_env();
    setenv("CROSSROADS_LISTEN", "127.0.0.1:9000", 1);
    setenv("CROSSROADS_REDIS_URL", "redis://10.0.0.1:7000/2", 1);
    assert_int_equal(cfg_load_file(path, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 9000);
    assert_string_equal(cfg->redis_url, "redis://10.0.0.1:7000/2");
    cfg_unref(cfg);

    /* cfg_load_json leaves the environment alone. */
    assert_int_equal(cfg_load_json(json, strlen(json), "t.json", &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 8080);
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");

    setenv("CROSSROADS_LISTEN", "[::1]:8443", 1);
    unsetenv("CROSSROADS_REDIS_URL");
    assert_int_equal(cfg_apply_env(cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->listen_host, "::1");
    assert_int_equal(cfg->listen_port, 8443);
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");

    /* Empty means unset: an env file's "CROSSROADS_LISTEN=" overrides nothing. */
    setenv("CROSSROADS_LISTEN", "", 1);
    setenv("CROSSROADS_REDIS_URL", "", 1);
    assert_int_equal(cfg_apply_env(cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->listen_host, "::1");
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");

    static const char *const bad_listen[] = {
        "8080",     "host:0",     "host:",   ":8080",  "::1:8080",
        "host:80x", "host:65536", "[::1:80", "a b:80", "[]:80",
    };
    for (size_t i = 0; i < CR_ARRAY_SIZE(bad_listen); i++) {
        setenv("CROSSROADS_LISTEN", bad_listen[i], 1);
        if (cfg_apply_env(cfg, err, sizeof(err)) == 0)
            print_error("CROSSROADS_LISTEN=%s was accepted\n", bad_listen[i]);
        assert_true(cfg_apply_env(cfg, err, sizeof(err)) < 0);
        assert_string_equal(err, "CROSSROADS_LISTEN: invalid value (expected host:port or "
                                 "[ipv6]:port, port 1-65535)");
    }

    /* A bad Redis URL refuses both overrides: the good listen address is not applied alone. */
    setenv("CROSSROADS_LISTEN", "10.1.1.1:81", 1);
    setenv("CROSSROADS_REDIS_URL", "rediss://:secret@h:6379", 1);
    assert_true(cfg_apply_env(cfg, err, sizeof(err)) < 0);
    assert_string_equal(
        err, "CROSSROADS_REDIS_URL: invalid Redis URL: unsupported scheme " REDIS_SYNTAX);
    assert_null(strstr(err, "secret"));
    assert_string_equal(cfg->listen_host, "::1");
    assert_int_equal(cfg->listen_port, 8443);
    cfg_unref(cfg);

    /* cfg_load_file reports the override's error and hands nothing back. */
    cfg = NULL;
    assert_true(cfg_load_file(path, &cfg, err, sizeof(err)) < 0);
    assert_null(cfg);
    assert_string_equal(
        err, "CROSSROADS_REDIS_URL: invalid Redis URL: unsupported scheme " REDIS_SYNTAX);

    clear_env();
    free(json);
    free(path);
}

/* ------------------------------------------------------------------------------------------ */
/* Redis URLs                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void test_redis_url(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *host;
        int port, db;
        const char *user, *password;
    } good[] = {
        {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, NULL, NULL},
        {"redis://localhost", "localhost", 6379, 0, NULL, NULL},
        {"REDIS://cache.internal:7000", "cache.internal", 7000, 0, NULL, NULL},
        {"redis://h/", "h", 6379, 0, NULL, NULL},
        {"redis://h/15", "h", 6379, 15, NULL, NULL},
        {"redis://:s3cret@h:1/2", "h", 1, 2, NULL, "s3cret"},
        {"redis://app:pw@h", "h", 6379, 0, "app", "pw"},
        {"redis://:p%40ss%3Aw@rd@h:65535", "h", 65535, 0, NULL, "p@ss:w@rd"},
        {"redis://:@h", "h", 6379, 0, NULL, NULL}, /* empty password: no AUTH */
        {"redis://[::1]:6380/1", "::1", 6380, 1, NULL, NULL},
        {"redis://[fe80::1]", "fe80::1", 6379, 0, NULL, NULL},
    };
    static const char *const bad[] = {
        NULL,
        "",
        "http://h:6379",
        "rediss://h:6379",
        "unix:///tmp/redis.sock",
        "redis://",
        "redis://:6379",
        "redis:///0",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:",
        "redis://h:63a9",
        "redis://h/x",
        "redis://h/1/2",
        "redis://h/-1",
        "redis://h/99999999999",
        "redis://h?db=1",
        "redis://user@h",
        "redis://:p%4@h",
        "redis://:p%00@h",
        "redis://[::1",
        "redis://::1:6379",
        "redis://h h:1",
        "redis://[]:1",
    };

    for (size_t i = 0; i < CR_ARRAY_SIZE(good); i++) {
        char *host = NULL, *user = NULL, *password = NULL;
        int port = -1, db = -1;

        int rc = cfg_redis_url_split(good[i].url, &host, &port, &db, &user, &password);

        if (rc != 0)
            print_error("refused %s\n", good[i].url);
        assert_int_equal(rc, 0);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
        assert_int_equal(db, good[i].db);
        if (good[i].user == NULL)
            assert_null(user);
        else
            assert_string_equal(user, good[i].user);
        if (good[i].password == NULL)
            assert_null(password);
        else
            assert_string_equal(password, good[i].password);
        free(host);
        free(user);
        free(password);

        /* cfg_redis_url_parse gives the same minus the user. */
        host = password = NULL;
        assert_int_equal(cfg_redis_url_parse(good[i].url, &host, &port, &db, &password), 0);
        assert_string_equal(host, good[i].host);
        free(host);
        free(password);
    }
    for (size_t i = 0; i < CR_ARRAY_SIZE(bad); i++) {
        char *host = NULL, *password = NULL;
        int port = -1, db = -1;

        if (cfg_redis_url_parse(bad[i], &host, &port, &db, &password) == 0)
            print_error("accepted %s\n", bad[i]);
        assert_true(cfg_redis_url_parse(bad[i], &host, &port, &db, &password) < 0);
        /* Outputs are untouched on failure. */
        assert_null(host);
        assert_null(password);
        assert_int_equal(port, -1);
        assert_int_equal(db, -1);
    }
    /* NULL outputs: only a check. */
    assert_int_equal(cfg_redis_url_parse("redis://h:1/1", NULL, NULL, NULL, NULL), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Scopes, lookups, references                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void test_scopes(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        unsigned bit;
    } scopes[] = {
        {"order:create", CFG_SCOPE_ORDER_CREATE},
        {"order:cancel", CFG_SCOPE_ORDER_CANCEL},
        {"order:reset", CFG_SCOPE_ORDER_RESET},
        {"order:update_status", CFG_SCOPE_ORDER_UPDATE_STATUS},
        {"order:execute", CFG_SCOPE_ORDER_EXECUTE},
        {"order:accept", CFG_SCOPE_ORDER_ACCEPT},
        {"order:read", CFG_SCOPE_ORDER_READ},
        {"admin", CFG_SCOPE_ADMIN},
    };
    unsigned all = 0;

    for (size_t i = 0; i < CR_ARRAY_SIZE(scopes); i++) {
        assert_int_equal(cfg_scope_parse(scopes[i].name), scopes[i].bit);
        assert_string_equal(cfg_scope_name(scopes[i].bit), scopes[i].name);
        if (scopes[i].bit != CFG_SCOPE_ADMIN)
            all |= scopes[i].bit;
    }
    assert_int_equal(cfg_scope_parse("order:*"), CFG_SCOPE_ORDER_ALL);
    assert_int_equal(all, CFG_SCOPE_ORDER_ALL);
    assert_int_equal(CFG_SCOPE_ORDER_ALL & CFG_SCOPE_ADMIN, 0);
    assert_int_equal(cfg_scope_parse("Order:read"), 0);
    assert_int_equal(cfg_scope_parse("order:read "), 0);
    assert_int_equal(cfg_scope_parse("order"), 0);
    assert_int_equal(cfg_scope_parse("*"), 0);
    assert_int_equal(cfg_scope_parse(""), 0);
    assert_int_equal(cfg_scope_parse(NULL), 0);
    assert_null(cfg_scope_name(0));
    assert_null(cfg_scope_name(CFG_SCOPE_ORDER_ALL));
    assert_null(cfg_scope_name(CFG_SCOPE_ORDER_READ | CFG_SCOPE_ADMIN));
    assert_null(cfg_scope_name(1u << 8));
}

static void test_lookups(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(
        "{'tenants':[" TENANT_A ","
        "{'name':'acme-supply','source_system':'s','instances':['prod','prod2']," WEBHOOK_H "}]}");
    const cfg_tenant_t *t;

    t = cfg_tenant_find(cfg, "acme-supplyXYZ", 11); /* not NUL-terminated at len */
    assert_non_null(t);
    assert_string_equal(t->name, "acme-supply");
    assert_null(cfg_tenant_find(cfg, "acme-suppl", 10));
    assert_null(cfg_tenant_find(cfg, "acme-supply ", 12));
    assert_null(cfg_tenant_find(cfg, "ACME-SUPPLY", 11));
    assert_null(cfg_tenant_find(cfg, "", 0));
    assert_null(cfg_tenant_find(cfg, NULL, 0));
    assert_null(cfg_tenant_find(NULL, "a", 1));
    assert_ptr_equal(cfg_tenant_find(cfg, "a", 1), &cfg->tenants[0]);

    assert_true(cfg_tenant_has_instance(t, "prod", 4));
    assert_true(cfg_tenant_has_instance(t, "prod2", 5));
    assert_true(cfg_tenant_has_instance(t, "prod2", 4)); /* "prod" */
    assert_false(cfg_tenant_has_instance(t, "pro", 3));
    assert_false(cfg_tenant_has_instance(t, "prod3", 5));
    assert_false(cfg_tenant_has_instance(&cfg->tenants[0], "prod", 4));
    assert_false(cfg_tenant_has_instance(NULL, "prod", 4));
    cfg_unref(cfg);
}

static void test_refs(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("{'tenants':[" TENANT_A "]}");

    assert_ptr_equal(cfg_ref(cfg), cfg);
    assert_ptr_equal(cfg_ref(cfg), cfg);
    assert_int_equal(cfg->refs, 3);
    cfg_unref(cfg);
    cfg_unref(cfg);
    assert_int_equal(cfg->refs, 1);
    assert_string_equal(cfg->tenants[0].name, "a"); /* still alive */
    cfg_unref(cfg);                                 /* freed: ASan reports any leak */
    cfg_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_tenant_fields),
        cmocka_unit_test(test_mapping_fields),
        cmocka_unit_test(test_unnamed_source),
        cmocka_unit_test(test_errors_syntax),
        cmocka_unit_test(test_errors_top),
        cmocka_unit_test(test_errors_listen_redis),
        cmocka_unit_test(test_errors_limits_saga),
        cmocka_unit_test(test_errors_tenant),
        cmocka_unit_test(test_errors_connector),
        cmocka_unit_test(test_errors_api_keys),
        cmocka_unit_test(test_errors_mappings),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_demo),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
