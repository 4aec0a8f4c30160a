/*
 * fuzz_config.c - the configuration loader: cfg_load_json on arbitrary bytes, and
 * cfg_redis_url_split on the same bytes taken as a URL.
 *
 * Input: a configuration file's text. Seeds are config/demo.json and tests/fixtures/configs/*;
 * the custom mutator mostly applies structure-aware JSON mutations (a member of the wrong type,
 * a value at a limit, a known key in the wrong section, a duplicated tenant or key), so most
 * inputs get past the JSON parser into the section loaders.
 *
 * Invariants:
 *   - failure: a negative code, *out untouched, err a non-empty NUL-terminated message that
 *     starts with the file name, fits any errlen (tiny ones included, in exact-size heap
 *     buffers so ASan sees an overrun), and never carries the Redis URL's password;
 *   - success: every promise config.h makes about the loaded cfg_t (at least one tenant; names
 *     [A-Za-z0-9._-]{1,64}, unique and found by cfg_tenant_find; keys with scopes and a known
 *     instance; connector URLs http(s) without a trailing slash, query, fragment, space or
 *     control character; kibo tenant_id free of control characters; env names
 *     [A-Z_][A-Z0-9_]*; mappings with lower-case 24-hex ids, a configured tenant and a goid;
 *     limits >= 1; retry_max_ms >= retry_base_ms; a known log level; a Redis URL that splits);
 *     cfg_unref releases everything (LeakSanitizer);
 *   - cfg_redis_url_split: on success a host, a port in 1..65535 and a database >= 0.
 */
#include "config.h"
#include "fuzz_common.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool valid_env(const char *s)
{
    if (s == NULL || !((s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

static bool has_ctl(const char *s, bool space_too)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (space_too && *p == ' '))
            return true;
    return false;
}

static void check_url(const char *u, bool base, const char *what)
{
    FUZZ_CHECK(u != NULL, "%s: NULL", what);
    FUZZ_CHECK(strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0,
               "%s: scheme: %s", what, u);
    FUZZ_CHECK(!has_ctl(u, true), "%s: space or control character", what);
    if (base) {
        size_t n = strlen(u);
        FUZZ_CHECK(strpbrk(u, "?#") == NULL, "%s: query or fragment: %s", what, u);
        FUZZ_CHECK(n > 0 && u[n - 1] != '/', "%s: trailing slash kept: %s", what, u);
    }
}

static void check_cfg(const cfg_t *cfg, const char *name)
{
    FUZZ_CHECK(cfg->refs == 1, "refs %d", cfg->refs);
    FUZZ_CHECK(cfg->path && strcmp(cfg->path, name) == 0, "path");
    FUZZ_CHECK(cfg->listen_host && !has_ctl(cfg->listen_host, true), "listen host");
    FUZZ_CHECK(cfg->listen_port >= 1 && cfg->listen_port <= 65535, "port %d", cfg->listen_port);
    FUZZ_CHECK(cfg->redis_url != NULL, "redis url");
    FUZZ_CHECK(cfg_redis_url_split(cfg->redis_url, NULL, NULL, NULL, NULL, NULL) == 0,
               "loaded Redis URL does not split");
    FUZZ_CHECK(cfg->redis_pool >= 1 && cfg->redis_command_timeout_ms >= 1, "redis numbers");
    FUZZ_CHECK(cfg->max_body_bytes >= 1 && cfg->max_header_bytes >= 1 &&
                   cfg->max_header_count >= 1 && cfg->max_request_line >= 1 &&
                   cfg->max_connections >= 1 && cfg->header_timeout_ms >= 1 &&
                   cfg->idle_timeout_ms >= 1 && cfg->body_timeout_ms >= 1,
               "a limit below 1");
    FUZZ_CHECK(cfg->saga_max_attempts >= 1 && cfg->saga_retry_base_ms >= 1 &&
                   cfg->saga_retry_max_ms >= cfg->saga_retry_base_ms &&
                   cfg->saga_claim_idle_ms >= 1 && cfg->saga_drain_timeout_ms >= 1 &&
                   cfg->saga_retention_s >= 1 && cfg->idempotency_ttl_s >= 1,
               "saga settings");
    FUZZ_CHECK(strcmp(cfg->log_level, "debug") == 0 || strcmp(cfg->log_level, "info") == 0 ||
                   strcmp(cfg->log_level, "warn") == 0 || strcmp(cfg->log_level, "error") == 0,
               "log level '%s'", cfg->log_level);
    FUZZ_CHECK(cfg->n_tenants >= 1 && cfg->tenants != NULL, "no tenants");
    for (size_t i = 0; i < cfg->n_tenants; i++) {
        const cfg_tenant_t *t = &cfg->tenants[i];
        FUZZ_CHECK(valid_name(t->name), "tenant %zu name", i);
        FUZZ_CHECK(cfg_tenant_find(cfg, t->name, strlen(t->name)) == t,
                   "tenant '%s' not found as itself (duplicate name?)", t->name);
        FUZZ_CHECK(t->source_system != NULL, "tenant %s source_system", t->name);
        for (size_t j = 0; j < t->n_instances; j++) {
            FUZZ_CHECK(valid_name(t->instances[j]), "tenant %s instance %zu", t->name, j);
            FUZZ_CHECK(cfg_tenant_has_instance(t, t->instances[j], strlen(t->instances[j])),
                       "instance lookup");
        }
        for (size_t j = 0; j < t->n_keys; j++) {
            const cfg_api_key_t *k = &t->keys[j];
            FUZZ_CHECK(k->id != NULL, "key id");
            FUZZ_CHECK(k->scopes != 0 && (k->scopes & ~0xffu) == 0, "key %s scopes %#x", k->id,
                       k->scopes);
            FUZZ_CHECK(k->instance == NULL ||
                           cfg_tenant_has_instance(t, k->instance, strlen(k->instance)),
                       "key %s instance", k->id);
        }
        const cfg_connector_t *c = &t->connector;
        check_url(c->url, true, "connector.url");
        FUZZ_CHECK(c->timeout_ms >= 1, "connector timeout");
        switch (c->type) {
        case CFG_CONNECTOR_WEBHOOK:
            FUZZ_CHECK(c->secret_env == NULL || valid_env(c->secret_env), "secret_env");
            break;
        case CFG_CONNECTOR_KIBO:
            FUZZ_CHECK(c->tenant_id != NULL && !has_ctl(c->tenant_id, false),
                       "kibo tenant_id would reach a header with a control character");
            break;
        case CFG_CONNECTOR_TECSPAL:
            FUZZ_CHECK(c->company_code != NULL && valid_env(c->token_env), "tecspal");
            break;
        default:
            FUZZ_CHECK(false, "connector type %d", (int)c->type);
        }
        if (t->notify_url)
            check_url(t->notify_url, false, "notify_url");
        FUZZ_CHECK(t->rate_per_second >= 0 && t->rate_burst >= 0, "rate limit");
    }
    for (size_t i = 0; i < cfg->n_mappings; i++) {
        const cfg_mapping_t *m = &cfg->mappings[i];
        FUZZ_CHECK(strlen(m->mapping_id) == 24 &&
                       strspn(m->mapping_id, "0123456789abcdef") == 24,
                   "mapping_id '%s'", m->mapping_id);
        FUZZ_CHECK(m->tenant && cfg_tenant_find(cfg, m->tenant, strlen(m->tenant)) != NULL,
                   "mapping %s tenant", m->mapping_id);
        FUZZ_CHECK(m->type >= CFG_MAPPING_TERMINAL && m->type <= CFG_MAPPING_PRODUCT,
                   "mapping type");
        FUZZ_CHECK(m->source_id != NULL || m->source_name != NULL, "mapping without a source");
        FUZZ_CHECK(m->goid != NULL, "mapping without goid");
    }
}

/* The Redis password in the input, if the input is JSON with redis.url = "redis://...:pw@..." */
static char *redis_password(const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, 0, NULL);
    const char *url = json_string_value(json_object_get(json_object_get(root, "redis"), "url"));
    char *pw = NULL;
    if (url) {
        const char *at = strrchr(url, '@');
        const char *start = strncmp(url, "redis://", 8) == 0 ? url + 8 : NULL;
        const char *colon = start && at ? memchr(start, ':', (size_t)(at - start)) : NULL;
        if (colon && at - colon - 1 >= 8)
            pw = strndup(colon + 1, (size_t)(at - colon - 1));
    }
    json_decref(root);
    return pw;
}

static const char NAME[] = "fuzz.json";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t errlen = 512;
    char *err = malloc(errlen);
    cfg_t *cfg = (cfg_t *)0x1; /* must stay untouched on failure */
    int rc = cfg_load_json((const char *)data, size, NAME, &cfg, err, errlen);
    if (rc == 0) {
        FUZZ_CHECK(cfg != NULL && cfg != (cfg_t *)0x1, "success without a cfg");
        check_cfg(cfg, NAME);
        cfg_t *again = cfg_ref(cfg);
        FUZZ_CHECK(again == cfg && cfg->refs == 2, "cfg_ref");
        cfg_unref(again);
        cfg_unref(cfg);
    } else {
        FUZZ_CHECK(rc < 0, "rc %d", rc);
        FUZZ_CHECK(cfg == (cfg_t *)0x1, "*out touched on failure");
        FUZZ_CHECK(memchr(err, '\0', errlen) != NULL, "err not terminated");
        FUZZ_CHECK(strncmp(err, NAME, sizeof NAME - 1) == 0 && err[sizeof NAME - 1] == ':',
                   "err does not name the file: %.200s", err);
        if (memmem(data, size, "redis", 5) != NULL && memchr(data, '@', size) != NULL) {
            char *pw = redis_password(data, size);
            /* Only when the password appears once in the input (in the URL), so a message that
             * quotes another field holding the same text is not mistaken for a leak. */
            const char *first = pw ? memmem(data, size, pw, strlen(pw)) : NULL;
            bool once = first && memmem(first + 1, size - (size_t)((const uint8_t *)first + 1 - data),
                                        pw, strlen(pw)) == NULL;
            FUZZ_CHECK(!once || strstr(err, pw) == NULL,
                       "error message carries the Redis password: %s", err);
            free(pw);
        }
    }
    if (rc != 0 && size % 4 == 0) {
        /* The same failure into a tiny buffer: truncated, terminated, no overrun. */
        size_t small = 1 + size % 24;
        char *tiny = malloc(small);
        cfg_t *c2 = NULL;
        int rc2 = cfg_load_json((const char *)data, size, NAME, &c2, tiny, small);
        FUZZ_CHECK(rc2 == rc && c2 == NULL, "second load differs: %d vs %d", rc2, rc);
        FUZZ_CHECK(memchr(tiny, '\0', small) != NULL, "tiny err not terminated");
        FUZZ_CHECK(strncmp(tiny, err, strlen(tiny)) == 0, "truncation is not a prefix");
        free(tiny);
    }
    free(err);

    /* The Redis URL splitter on the raw bytes (it sees operator text and CROSSROADS_REDIS_URL). */
    if (size < 512 && memchr(data, '\0', size) == NULL) {
        char *url = strndup((const char *)data, size);
        char *host = NULL, *user = NULL, *pw = NULL;
        int port = -1, db = -1;
        if (cfg_redis_url_split(url, &host, &port, &db, &user, &pw) == 0) {
            FUZZ_CHECK(host != NULL, "split without a host");
            FUZZ_CHECK(port >= 1 && port <= 65535, "port %d", port);
            FUZZ_CHECK(db >= 0, "db %d", db);
        } else {
            FUZZ_CHECK(host == NULL && user == NULL && pw == NULL, "outputs set on failure");
        }
        free(host);
        free(user);
        free(pw);
        free(url);
    }
    return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    if (seed % 4 != 0) {
        size_t n = fuzz_json_mutate(data, size, max_size, seed);
        if (n > 0)
            return n;
    }
    return LLVMFuzzerMutate(data, size, max_size);
}
