/*
 * config.h - the gateway's configuration: one JSON file (SPEC section 4), checked whole at load.
 *
 * Owns: the parsed, immutable cfg_t and everything it points to. A loaded configuration never
 * changes; a reload builds a new one and swaps the pointer, and holders of the old one keep it
 * alive with cfg_ref()/cfg_unref().
 * Must not: read files or the environment after start-up on the loop (a reload reads off-loop).
 *
 * Errors name the file, the JSON path and the reason, for example
 *   "config/demo.json: tenants[1].connector.type: unknown connector type 'ftp'
 *    (expected webhook, kibo or tecspal)".
 */
#ifndef CR_CONFIG_H
#define CR_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* API key scopes, a bit each. "order:*" is CFG_SCOPE_ORDER_ALL. */
enum {
    CFG_SCOPE_ORDER_CREATE = 1u << 0,
    CFG_SCOPE_ORDER_CANCEL = 1u << 1,
    CFG_SCOPE_ORDER_RESET = 1u << 2,
    CFG_SCOPE_ORDER_UPDATE_STATUS = 1u << 3,
    CFG_SCOPE_ORDER_EXECUTE = 1u << 4,
    CFG_SCOPE_ORDER_ACCEPT = 1u << 5,
    CFG_SCOPE_ORDER_READ = 1u << 6,
    CFG_SCOPE_ADMIN = 1u << 7,
};
#define CFG_SCOPE_ORDER_ALL 0x7fu

/* Parse one scope name ("order:cancel", "order:*", "admin"); 0 when unknown. */
unsigned cfg_scope_parse(const char *name);
/* The canonical name of a single scope bit ("order:cancel"); NULL for anything else. */
const char *cfg_scope_name(unsigned scope);

typedef struct cfg_api_key {
    char *id;
    uint8_t sha256[32]; /* SHA-256 of the key; the key itself is never configured */
    char *instance;     /* NULL: any of the tenant's instances */
    unsigned scopes;    /* CFG_SCOPE_* bits */
} cfg_api_key_t;

typedef enum {
    CFG_CONNECTOR_WEBHOOK = 1,
    CFG_CONNECTOR_KIBO,
    CFG_CONNECTOR_TECSPAL,
} cfg_connector_type_t;

typedef struct cfg_connector {
    cfg_connector_type_t type;
    char *url;          /* required, http:// or https://, no trailing slash kept */
    long timeout_ms;    /* default 5000 */
    char *secret_env;   /* webhook: name of the env var holding the HMAC secret (optional) */
    char *tenant_id;    /* kibo: x-vol-tenant (required) */
    char *company_code; /* tecspal: companyCode (required) */
    char *token_env;    /* tecspal: name of the env var holding the bearer token (required) */
} cfg_connector_t;

typedef struct cfg_tenant {
    char *name;
    char *source_system;
    char **instances;
    size_t n_instances;
    cfg_api_key_t *keys;
    size_t n_keys;
    cfg_connector_t connector;
    bool auto_accept; /* default true */
    char *notify_url; /* NULL when absent */
    double rate_per_second; /* 0: no limit */
    double rate_burst;
} cfg_tenant_t;

typedef enum {
    CFG_MAPPING_TERMINAL = 1,
    CFG_MAPPING_SITE,
    CFG_MAPPING_PRODUCT,
} cfg_mapping_type_t;

typedef struct cfg_mapping {
    char mapping_id[25]; /* 24 lower-case hex + NUL */
    char *tenant;        /* a configured tenant's name */
    cfg_mapping_type_t type;
    char *source_id;     /* at least one of source_id and source_name; NULL when absent */
    char *source_name;
    char *goid;          /* required */
    char *goid_name;     /* NULL when absent */
    /* The mapping as a saga records it: {mapping_id, source_id, source_name, goid, goid_name,
     * type}, absent names as null. Built once at load, shared: never modify it (copy it). */
    json_t *doc;
} cfg_mapping_t;

typedef struct cfg {
    int refs;
    char *path; /* the file it came from ("<string>" for cfg_load_json without a name) */

    char *listen_host; /* default "0.0.0.0" */
    int listen_port;   /* default 8080 */

    char *redis_url;              /* default "redis://127.0.0.1:6379/0" */
    int redis_pool;               /* redis.pool: intake connections, default 4 (read at start) */
    long redis_command_timeout_ms; /* redis.command_timeout_ms, default 2000 */

    size_t max_body_bytes;   /* limits.max_body_bytes, default 1048576 */
    size_t max_header_bytes; /* limits.max_header_bytes, default 16384 */
    size_t max_header_count; /* limits.max_header_count, default 100 */
    size_t max_request_line; /* limits.max_request_line_bytes, default 8192 */
    size_t max_connections;  /* limits.max_connections, default 10000 */
    long header_timeout_ms;  /* limits.header_timeout_ms, default 10000 */
    long idle_timeout_ms;    /* limits.idle_timeout_ms, default 60000 */
    long body_timeout_ms;    /* limits.body_timeout_ms, default 30000 */

    int saga_max_attempts;      /* saga.max_attempts, default 5 */
    long saga_retry_base_ms;    /* default 200 */
    long saga_retry_max_ms;     /* default 30000 */
    long saga_claim_idle_ms;    /* default 30000 */
    int saga_max_claims;        /* saga.max_claims: claims before a saga is stopped, default 2 */
    long saga_drain_timeout_ms; /* default 10000 */
    bool saga_workers;          /* saga.workers: run saga workers in this process, default true
                                   (false: it only takes requests; read at start) */
    long saga_retention_s;      /* saga.retention_s: finished sagas and logs, default 604800 */
    long idempotency_ttl_s;     /* saga.idempotency_ttl_s, default 86400 */
    long order_retention_s;     /* saga.order_retention_s: an order's data after its last saga
                                   ended, default 7776000 (90 d); 0 keeps orders forever */

    char log_level[8]; /* log.level, default "info" */

    cfg_tenant_t *tenants;
    size_t n_tenants;
    cfg_mapping_t *mappings;
    size_t n_mappings;
} cfg_t;

/*
 * Load and check a configuration file, then apply the environment overrides
 * (CROSSROADS_LISTEN "host:port", CROSSROADS_REDIS_URL). On success *out holds a new cfg_t with
 * one reference and 0 is returned. On failure a negative code is returned, *out is untouched and
 * err holds "FILE: PATH: reason" (or "FILE: reason" for I/O and syntax errors, with the line and
 * column). Blocking file I/O: call it at start-up or off the loop.
 */
int cfg_load_file(const char *path, cfg_t **out, char *err, size_t errlen);

/* As cfg_load_file, from memory; name stands for the file name in messages. No env overrides. */
int cfg_load_json(const char *text, size_t len, const char *name, cfg_t **out, char *err,
                  size_t errlen);

/* Apply CROSSROADS_LISTEN and CROSSROADS_REDIS_URL; 0, or negative with err set. */
int cfg_apply_env(cfg_t *cfg, char *err, size_t errlen);

cfg_t *cfg_ref(cfg_t *cfg);
void cfg_unref(cfg_t *cfg); /* frees at the last reference; NULL is ignored */

/* Lookups; NULL when not found. name need not be NUL-terminated. */
const cfg_tenant_t *cfg_tenant_find(const cfg_t *cfg, const char *name, size_t len);
bool cfg_tenant_has_instance(const cfg_tenant_t *t, const char *name, size_t len);

/*
 * Split "redis://[:password@]host[:port][/db]" into parts. host and password are new strings
 * (password NULL when absent). 0, or negative on a malformed URL.
 */
int cfg_redis_url_parse(const char *url, char **host, int *port, int *db, char **password);

/*
 * As cfg_redis_url_parse, also giving the user of "redis://user:password@host" (NULL when absent)
 * for Redis 6 ACLs ("AUTH user password"); cfg_redis_url_parse accepts a user and drops it.
 * User and password are %-decoded ("%40" for '@'); a literal "[::1]" host loses its brackets.
 * Any output pointer may be NULL (only checking the URL). Outputs are set only on success.
 */
int cfg_redis_url_split(const char *url, char **host, int *port, int *db, char **user,
                        char **password);

#endif
