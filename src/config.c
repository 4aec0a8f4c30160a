/*
 * config.c - load and check the gateway's JSON configuration (SPEC section 4), apply the
 * CROSSROADS_LISTEN / CROSSROADS_REDIS_URL overrides, and free a configuration at its last
 * reference.
 *
 * Owns: every cfg_t built here and everything it points to. The parsed JSON document lives only
 * for one load: what we keep is copied into plain C structs, so a loaded configuration is
 * immutable memory that any module can read without knowing jansson.
 * Must not: touch the loop, Redis or the network; read files or the environment anywhere but
 * cfg_load_file() and cfg_apply_env() (start-up, or the off-loop half of a reload); quote a Redis
 * URL in an error, because it can carry a password.
 *
 * The checker stops at the first problem. Its one-line error names the file, the JSON path and
 * the reason; the operator fixes it and runs check-config again.
 */
#include "config.h"

#include "util/cr.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

/*
 * Every integer setting is capped at INT32_MAX: the value then fits an int on every platform and
 * a later "ms * 1000" or "s * 1000" in 64-bit arithmetic cannot overflow.
 */
#define CFG_INT_MAX       2147483647LL
#define CFG_PORT_MAX      65535LL
#define CFG_POOL_MAX      1024LL      /* more Redis connections than this is a typo, not a plan */
#define CFG_NAME_MAX      64          /* tenant and instance names */
#define CFG_PATH_MAX      512         /* JSON path in messages; longer ones are cut */
#define CFG_FILE_MAX      (64u << 20) /* bytes; a config past this is a wrong path, not config */
#define CFG_DEFAULT_REDIS "redis://127.0.0.1:6379/0"
#define CFG_REDIS_SYNTAX  "expected redis://[[user]:password@]host[:port][/db]"

/* ------------------------------------------------------------------------------------------ */
/* Scopes                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    unsigned bits;
} scope_table[] = {
    {"order:create", CFG_SCOPE_ORDER_CREATE},
    {"order:cancel", CFG_SCOPE_ORDER_CANCEL},
    {"order:reset", CFG_SCOPE_ORDER_RESET},
    {"order:update_status", CFG_SCOPE_ORDER_UPDATE_STATUS},
    {"order:execute", CFG_SCOPE_ORDER_EXECUTE},
    {"order:accept", CFG_SCOPE_ORDER_ACCEPT},
    {"order:read", CFG_SCOPE_ORDER_READ},
    {"order:*", CFG_SCOPE_ORDER_ALL},
    {"admin", CFG_SCOPE_ADMIN},
};

/* "order:*" must stay exactly the order scopes: admin is never granted by a wildcard. */
_Static_assert(CFG_SCOPE_ORDER_ALL ==
                   (CFG_SCOPE_ORDER_CREATE | CFG_SCOPE_ORDER_CANCEL | CFG_SCOPE_ORDER_RESET |
                    CFG_SCOPE_ORDER_UPDATE_STATUS | CFG_SCOPE_ORDER_EXECUTE |
                    CFG_SCOPE_ORDER_ACCEPT | CFG_SCOPE_ORDER_READ),
               "order:* must cover every order scope and nothing else");

unsigned cfg_scope_parse(const char *name)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < CR_ARRAY_SIZE(scope_table); i++) {
        if (strcmp(scope_table[i].name, name) == 0)
            return scope_table[i].bits;
    }
    return 0;
}

const char *cfg_scope_name(unsigned scope)
{
    /* Only single bits have a name here; "order:*" is a way to write a set, not a scope. */
    if (scope == 0 || (scope & (scope - 1)) != 0)
        return NULL;
    for (size_t i = 0; i < CR_ARRAY_SIZE(scope_table); i++) {
        if (scope_table[i].bits == scope)
            return scope_table[i].name;
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Lifetime and lookups                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void tenant_free(cfg_tenant_t *t)
{
    free(t->name);
    free(t->source_system);
    for (size_t i = 0; i < t->n_instances; i++)
        free(t->instances[i]);
    free(t->instances);
    for (size_t i = 0; i < t->n_keys; i++) {
        free(t->keys[i].id);
        free(t->keys[i].instance);
    }
    free(t->keys);
    free(t->connector.url);
    free(t->connector.secret_env);
    free(t->connector.tenant_id);
    free(t->connector.company_code);
    free(t->connector.token_env);
    free(t->notify_url);
}

/*
 * Free a configuration whatever state it is in: a half-built one from a failed load has its
 * arrays allocated with calloc and counted up front, so unset members are NULL.
 */
static void cfg_free(cfg_t *cfg)
{
    free(cfg->path);
    free(cfg->listen_host);
    free(cfg->redis_url);
    for (size_t i = 0; i < cfg->n_tenants; i++)
        tenant_free(&cfg->tenants[i]);
    free(cfg->tenants);
    for (size_t i = 0; i < cfg->n_mappings; i++) {
        cfg_mapping_t *m = &cfg->mappings[i];
        free(m->tenant);
        free(m->source_id);
        free(m->source_name);
        free(m->goid);
        free(m->goid_name);
        json_decref(m->doc);
    }
    free(cfg->mappings);
    free(cfg);
}

static cfg_t *cfg_new(const char *path)
{
    cfg_t *cfg = cr_calloc(1, sizeof(*cfg));

    cfg->refs = 1;
    cfg->path = cr_strdup(path);
    cfg->listen_host = cr_strdup("0.0.0.0");
    cfg->listen_port = 8080;
    cfg->redis_url = cr_strdup(CFG_DEFAULT_REDIS);
    cfg->redis_pool = 4;
    cfg->redis_command_timeout_ms = 2000;
    cfg->max_body_bytes = 1048576;
    cfg->max_header_bytes = 16384;
    cfg->max_header_count = 100;
    cfg->max_request_line = 8192;
    cfg->max_connections = 10000;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->body_timeout_ms = 30000;
    cfg->saga_max_attempts = 5;
    cfg->saga_retry_base_ms = 200;
    cfg->saga_retry_max_ms = 30000;
    cfg->saga_claim_idle_ms = 30000;
    cfg->saga_max_claims = 2;
    cfg->saga_workers = true;
    cfg->saga_drain_timeout_ms = 10000;
    cfg->saga_retention_s = 604800;
    cfg->idempotency_ttl_s = 86400;
    cfg->order_retention_s = 7776000;
    snprintf(cfg->log_level, sizeof cfg->log_level, "info");
    return cfg;
}

cfg_t *cfg_ref(cfg_t *cfg)
{
    assert(cfg != NULL && cfg->refs > 0);
    cfg->refs++;
    return cfg;
}

void cfg_unref(cfg_t *cfg)
{
    if (cfg == NULL)
        return;
    assert(cfg->refs > 0);
    if (--cfg->refs == 0)
        cfg_free(cfg);
}

const cfg_tenant_t *cfg_tenant_find(const cfg_t *cfg, const char *name, size_t len)
{
    if (cfg == NULL || name == NULL)
        return NULL;
    /* Tenants are few (tens); a scan with an exact, length-bounded compare beats a hash here. */
    for (size_t i = 0; i < cfg->n_tenants; i++) {
        const cfg_tenant_t *t = &cfg->tenants[i];
        if (strlen(t->name) == len && memcmp(t->name, name, len) == 0)
            return t;
    }
    return NULL;
}

bool cfg_tenant_has_instance(const cfg_tenant_t *t, const char *name, size_t len)
{
    if (t == NULL || name == NULL)
        return false;
    for (size_t i = 0; i < t->n_instances; i++) {
        if (strlen(t->instances[i]) == len && memcmp(t->instances[i], name, len) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Small text checks shared by the loader and the env overrides                                */
/* ------------------------------------------------------------------------------------------ */

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

static bool all_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_hex(s[i]))
            return false;
    }
    return true;
}

/* [A-Za-z0-9._-]{1,64}: tenant and instance names travel in headers and Redis keys. */
static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CFG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* [A-Z_][A-Z0-9_]*: the portable shell spelling, so the name can be exported from any shell. */
static bool valid_env_name(const char *s)
{
    if (!((s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (const char *p = s + 1; *p != '\0'; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    }
    return true;
}

/* Control characters would let a value break out of an HTTP header line or a log line. */
static bool has_ctl(const char *s, bool space_too)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f || (space_too && *p == ' '))
            return true;
    }
    return false;
}

/* Digits only, at least one, value in [min, max]. Stops early so long inputs cannot overflow. */
static bool parse_uint(const char *s, size_t n, long min, long max, long *out)
{
    long v = 0;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return false;
    }
    if (v < min)
        return false;
    *out = v;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Redis URLs                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Reasons a Redis URL is refused; printed after "invalid Redis URL: ". */
static const char url_bad_scheme[] = "unsupported scheme";
static const char url_bad_userinfo[] = "user name without ':password'";
static const char url_bad_escape[] = "bad %-escape in user or password";
static const char url_bad_host[] = "missing or malformed host";
static const char url_bad_port[] = "port must be 1-65535";
static const char url_bad_db[] = "database must be a number";

/* Decode %XX escapes so a password can hold '@', ':' or '/'. NULL on a malformed escape. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = cr_malloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        /* %00 is refused too: a NUL would silently cut the password short. */
        if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]) ||
            (s[i + 1] == '0' && s[i + 2] == '0')) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hex_val(s[i + 1]) * 16 + hex_val(s[i + 2]));
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static int redis_url_split(const char *url, char **host_out, int *port_out, int *db_out,
                           char **user_out, char **password_out, const char **why)
{
    const char *p, *at, *host, *end;
    size_t host_len;
    char *user = NULL, *password = NULL;
    long port = 6379, db = 0;
    int rc = UV_EINVAL;

    if (url == NULL || strncasecmp(url, "redis://", 8) != 0) {
        *why = url_bad_scheme;
        goto cleanup;
    }
    p = url + 8;

    /*
     * Host, port and db never contain '@', so the last '@' ends the user info even when the
     * password itself holds an unescaped '@'.
     */
    at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL) {
            *why = url_bad_userinfo;
            goto cleanup;
        }
        if (colon > p && (user = pct_decode(p, (size_t)(colon - p))) == NULL) {
            *why = url_bad_escape;
            goto cleanup;
        }
        /* "redis://:@host" has no password: NULL, so the caller sends no AUTH at all. */
        if (at > colon + 1 &&
            (password = pct_decode(colon + 1, (size_t)(at - colon - 1))) == NULL) {
            *why = url_bad_escape;
            goto cleanup;
        }
        p = at + 1;
    }

    if (*p == '[') { /* [::1]: an IPv6 literal, brackets dropped */
        host = p + 1;
        end = strchr(host, ']');
        if (end == NULL) {
            *why = url_bad_host;
            goto cleanup;
        }
        host_len = (size_t)(end - host);
        p = end + 1;
    } else {
        host = p;
        host_len = strcspn(p, ":/");
        p += host_len;
    }
    if (host_len == 0) {
        *why = url_bad_host;
        goto cleanup;
    }
    for (size_t i = 0; i < host_len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= 0x20 || c == 0x7f || strchr("[]?#@/", c) != NULL) {
            *why = url_bad_host;
            goto cleanup;
        }
    }

    if (*p == ':') {
        size_t n = strcspn(p + 1, "/");
        if (!parse_uint(p + 1, n, 1, CFG_PORT_MAX, &port)) {
            *why = url_bad_port;
            goto cleanup;
        }
        p += 1 + n;
    }
    if (*p == '/') {
        /* "redis://host/" names no database, so it means the default, 0. */
        size_t n = strlen(p + 1);
        if (n > 0 && !parse_uint(p + 1, n, 0, CFG_INT_MAX, &db)) {
            *why = url_bad_db;
            goto cleanup;
        }
        p += 1 + n;
    }
    if (*p != '\0') {
        *why = url_bad_host;
        goto cleanup;
    }

    if (host_out != NULL)
        *host_out = cr_strndup(host, host_len);
    if (port_out != NULL)
        *port_out = (int)port;
    if (db_out != NULL)
        *db_out = (int)db;
    if (user_out != NULL) {
        *user_out = user;
        user = NULL;
    }
    if (password_out != NULL) {
        *password_out = password;
        password = NULL;
    }
    rc = 0;

cleanup:
    free(user);
    free(password);
    return rc;
}

int cfg_redis_url_split(const char *url, char **host, int *port, int *db, char **user,
                        char **password)
{
    const char *why;
    return redis_url_split(url, host, port, db, user, password, &why);
}

int cfg_redis_url_parse(const char *url, char **host, int *port, int *db, char **password)
{
    const char *why;
    return redis_url_split(url, host, port, db, NULL, password, &why);
}

/* ------------------------------------------------------------------------------------------ */
/* Environment overrides                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "host:port", "[v6]:port". A bare IPv6 address is refused: its last ':' is ambiguous. */
static bool listen_parse(const char *s, char **host_out, int *port_out)
{
    const char *colon = strrchr(s, ':');
    const char *host = s;
    size_t host_len;
    long port;

    if (colon == NULL)
        return false;
    host_len = (size_t)(colon - s);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    } else if (memchr(host, ':', host_len) != NULL) {
        return false;
    }
    if (host_len == 0)
        return false;
    for (size_t i = 0; i < host_len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= 0x20 || c == 0x7f || c == '[' || c == ']')
            return false;
    }
    if (!parse_uint(colon + 1, strlen(colon + 1), 1, CFG_PORT_MAX, &port))
        return false;
    *host_out = cr_strndup(host, host_len);
    *port_out = (int)port;
    return true;
}

int cfg_apply_env(cfg_t *cfg, char *err, size_t errlen)
{
    const char *listen = getenv("CROSSROADS_LISTEN");
    const char *url = getenv("CROSSROADS_REDIS_URL");
    const char *why = NULL;
    char *host = NULL;
    int port = 0;
    int rc = 0;

    /*
     * An empty variable counts as unset: env files and compose files often declare a variable
     * with no value, and that must not override the file with nothing.
     */
    if (listen != NULL && listen[0] != '\0' && !listen_parse(listen, &host, &port)) {
        set_err(err, errlen,
                "CROSSROADS_LISTEN: invalid value (expected host:port or [ipv6]:port, "
                "port 1-65535)");
        rc = UV_EINVAL;
        goto cleanup;
    }
    if (url != NULL && url[0] != '\0' &&
        redis_url_split(url, NULL, NULL, NULL, NULL, NULL, &why) != 0) {
        /* Never quote the URL: it may carry the Redis password. */
        set_err(err, errlen, "CROSSROADS_REDIS_URL: invalid Redis URL: %s (" CFG_REDIS_SYNTAX ")",
                why);
        rc = UV_EINVAL;
        goto cleanup;
    }

    /* Both were checked before either is applied: a refused override leaves cfg as it was. */
    if (host != NULL) {
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
        host = NULL;
    }
    if (url != NULL && url[0] != '\0') {
        free(cfg->redis_url);
        cfg->redis_url = cr_strdup(url);
    }

cleanup:
    free(host);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The loader's context: where we are in the document, and what we have seen                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const char *file; /* name used in messages */
    char *err;
    size_t errlen;
    char path[CFG_PATH_MAX]; /* JSON path of the value being checked, "" at the top */
    size_t pathlen;
    /*
     * Uniqueness sets, each value -> path of its first occurrence (for "also ..." in the error).
     * jansson objects are hash tables, so a config with tens of thousands of mappings is checked
     * in linear time without a hash table of our own.
     */
    json_t *tenant_names;
    json_t *key_ids;
    json_t *key_hashes;
    json_t *mapping_ids;
    json_t *source_ids; /* "tenant/type/source_id"; tenant names cannot contain '/' */
} ld_t;

static void path_append(ld_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void path_append(ld_t *ld, const char *fmt, ...)
{
    size_t room = sizeof(ld->path) - ld->pathlen;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(ld->path + ld->pathlen, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        ld->path[ld->pathlen] = '\0';
    else
        ld->pathlen = (size_t)n < room ? ld->pathlen + (size_t)n : sizeof(ld->path) - 1;
}

/*
 * Push ".key" (just "key" at the top). A key that is not a plain identifier is written as
 * ["..."] with odd bytes escaped, so an unknown field with a stray control character still
 * gives a readable one-line message. Returns the mark to pop back to.
 */
static size_t path_key(ld_t *ld, const char *key)
{
    size_t mark = ld->pathlen;
    bool plain = key[0] != '\0';

    for (const char *p = key; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '$'))
            plain = false;
    }
    if (plain) {
        path_append(ld, "%s%s", mark > 0 ? "." : "", key);
        return mark;
    }
    path_append(ld, "[\"");
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
            path_append(ld, "\\x%02x", *p);
        else
            path_append(ld, "%c", *p);
    }
    path_append(ld, "\"]");
    return mark;
}

static size_t path_index(ld_t *ld, size_t i)
{
    size_t mark = ld->pathlen;
    path_append(ld, "[%zu]", i);
    return mark;
}

static void path_pop(ld_t *ld, size_t mark)
{
    ld->pathlen = mark;
    ld->path[mark] = '\0';
}

static int vfail(ld_t *ld, const char *fmt, va_list ap)
{
    int n;

    if (ld->err == NULL || ld->errlen == 0)
        return UV_EINVAL;
    if (ld->pathlen > 0)
        n = snprintf(ld->err, ld->errlen, "%s: %s: ", ld->file, ld->path);
    else
        n = snprintf(ld->err, ld->errlen, "%s: ", ld->file);
    if (n >= 0 && (size_t)n < ld->errlen)
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
    return UV_EINVAL;
}

/* Report a problem at the current path. Always returns UV_EINVAL. */
static int fail(ld_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(ld_t *ld, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail(ld, fmt, ap);
    va_end(ap);
    return rc;
}

/*
 * Report a problem at member key of the current object. The path is left pushed: after an error
 * the load is abandoned, so nothing needs it restored.
 */
static int fail_at(ld_t *ld, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(ld_t *ld, const char *key, const char *fmt, ...)
{
    va_list ap;
    int rc;

    path_key(ld, key);
    va_start(ap, fmt);
    rc = vfail(ld, fmt, ap);
    va_end(ap);
    return rc;
}

/* A value from the file, made safe to quote in a one-line message: cut, control bytes as '?'. */
typedef struct {
    char s[64];
} quoted_t;

static const char *quote(quoted_t *q, const char *s)
{
    size_t max = sizeof(q->s) - 4, n = 0;

    for (; s[n] != '\0' && n < max; n++)
        q->s[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
    if (s[n] != '\0') {
        memcpy(q->s + n, "...", 3);
        n += 3;
    }
    q->s[n] = '\0';
    return q->s;
}

/*
 * Record value in set, remembering the current path. NULL when new; otherwise the path of the
 * first occurrence (owned by the set).
 */
static const char *seen(ld_t *ld, json_t *set, const char *value)
{
    json_t *first = json_object_get(set, value);

    if (first != NULL)
        return json_string_value(first);
    json_object_set_new(set, value, json_string(ld->path));
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Typed member access                                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef enum { AS_INT, AS_LONG, AS_SIZE } int_kind_t;

/* One integer member stored at base + offset: the sections are mostly tables of these. */
typedef struct {
    const char *key;
    size_t offset;
    int_kind_t kind;
    long long min, max;
} int_field_t;

/*
 * Refuse members we do not know. An operator's typo ("max_body_byte", "secert_env") would
 * otherwise be ignored silently and the default used instead of the intended value.
 */
static int check_keys(ld_t *ld, json_t *obj, const char *const *names, const int_field_t *ints,
                      size_t n_ints)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        bool known = false;
        for (size_t i = 0; names != NULL && names[i] != NULL && !known; i++)
            known = strcmp(names[i], key) == 0;
        for (size_t i = 0; i < n_ints && !known; i++)
            known = strcmp(ints[i].key, key) == 0;
        if (!known)
            return fail_at(ld, key, "unknown field");
    }
    return 0;
}

static int int_value(ld_t *ld, json_t *v, long long min, long long max, long long *out)
{
    long long n;

    if (!json_is_integer(v))
        return fail(ld, "expected integer");
    n = (long long)json_integer_value(v);
    if (n < min && min == 1)
        return fail(ld, "must be a positive integer (got %lld)", n);
    if (n < min)
        return fail(ld, "must be at least %lld (got %lld)", min, n);
    if (n > max)
        return fail(ld, "must be at most %lld (got %lld)", max, n);
    *out = n;
    return 0;
}

/* Load the members of the table that are present; absent ones keep the defaults in base. */
static int load_ints(ld_t *ld, json_t *obj, const int_field_t *f, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(obj, f[i].key);
        void *dst = (char *)base + f[i].offset;
        long long val = 0;
        size_t mark;
        int rc;

        if (v == NULL)
            continue;
        mark = path_key(ld, f[i].key);
        if ((rc = int_value(ld, v, f[i].min, f[i].max, &val)) != 0)
            return rc;
        path_pop(ld, mark);
        switch (f[i].kind) {
        case AS_INT:
            *(int *)dst = (int)val;
            break;
        case AS_LONG:
            *(long *)dst = (long)val;
            break;
        case AS_SIZE:
            *(size_t *)dst = (size_t)val;
            break;
        }
    }
    return 0;
}

/* Strings are never empty, and never hold NUL: jansson refuses "\u0000" without JSON_ALLOW_NUL. */
static int get_string(ld_t *ld, json_t *obj, const char *key, bool required, const char **out)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL)
        return required ? fail_at(ld, key, "required") : 0;
    if (!json_is_string(v))
        return fail_at(ld, key, "expected string");
    if (json_string_length(v) == 0)
        return fail_at(ld, key, "must not be empty");
    *out = json_string_value(v);
    return 0;
}

static int get_object(ld_t *ld, json_t *obj, const char *key, bool required, json_t **out)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL)
        return required ? fail_at(ld, key, "required") : 0;
    if (!json_is_object(v))
        return fail_at(ld, key, "expected object");
    *out = v;
    return 0;
}

static int get_array(ld_t *ld, json_t *obj, const char *key, bool required, json_t **out)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL)
        return required ? fail_at(ld, key, "required") : 0;
    if (!json_is_array(v))
        return fail_at(ld, key, "expected array");
    *out = v;
    return 0;
}

static int get_bool(ld_t *ld, json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return fail_at(ld, key, "expected boolean");
    *out = json_is_true(v);
    return 0;
}

/* 1 when present (and *out set), 0 when absent, negative on a wrong type. */
static int get_number(ld_t *ld, json_t *obj, const char *key, bool required, double *out)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return required ? fail_at(ld, key, "required") : 0;
    if (!json_is_number(v))
        return fail_at(ld, key, "expected number");
    *out = json_number_value(v);
    return 1;
}

/* An optional string copied into *dst; *dst is left alone when absent. */
static int get_copy(ld_t *ld, json_t *obj, const char *key, bool required, char **dst)
{
    const char *s;
    int rc = get_string(ld, obj, key, required, &s);

    if (rc == 0 && s != NULL)
        *dst = cr_strdup(s);
    return rc;
}

static int get_env_name(ld_t *ld, json_t *obj, const char *key, bool required, char **dst)
{
    quoted_t q;
    const char *s;
    int rc = get_string(ld, obj, key, required, &s);

    if (rc != 0 || s == NULL)
        return rc;
    if (!valid_env_name(s))
        return fail_at(ld, key,
                       "invalid environment variable name '%s' (expected [A-Z_][A-Z0-9_]*)",
                       quote(&q, s));
    *dst = cr_strdup(s);
    return 0;
}

/*
 * An http:// or https:// URL with a host. A connector's URL is a base that paths are appended
 * to, so it loses one trailing slash and may not carry a query or fragment; a notify_url is
 * posted to as written.
 */
static int get_url(ld_t *ld, json_t *obj, const char *key, bool required, bool base, char **dst)
{
    const char *s, *rest;
    size_t n;
    int rc = get_string(ld, obj, key, required, &s);

    if (rc != 0 || s == NULL)
        return rc;
    if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return fail_at(ld, key, "must start with http:// or https://");
    if (rest[0] == '\0' || rest[0] == '/' || rest[0] == '?' || rest[0] == '#')
        return fail_at(ld, key, "missing host");
    if (has_ctl(s, true))
        return fail_at(ld, key, "must not contain spaces or control characters");
    if (base && strpbrk(s, "?#") != NULL)
        return fail_at(ld, key, "must not have a query or fragment (request paths are appended)");
    n = strlen(s);
    if (base && s[n - 1] == '/')
        n--;
    if (base && n > 0 && s[n - 1] == '/')
        return fail_at(ld, key, "must not end in \"//\" (request paths are appended)");
    *dst = cr_strndup(s, n);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Sections: listen, redis, limits, saga                                                        */
/* ------------------------------------------------------------------------------------------ */

static int load_listen(ld_t *ld, json_t *root, cfg_t *cfg)
{
    static const char *const names[] = {"host", NULL};
    static const int_field_t ints[] = {
        {"port", offsetof(cfg_t, listen_port), AS_INT, 1, CFG_PORT_MAX},
    };
    const char *host;
    json_t *obj;
    size_t mark;
    int rc;

    if ((rc = get_object(ld, root, "listen", false, &obj)) != 0 || obj == NULL)
        return rc;
    mark = path_key(ld, "listen");
    if ((rc = check_keys(ld, obj, names, ints, CR_ARRAY_SIZE(ints))) != 0)
        return rc;
    if ((rc = get_string(ld, obj, "host", false, &host)) != 0)
        return rc;
    if (host != NULL) {
        if (has_ctl(host, true))
            return fail_at(ld, "host", "must not contain spaces or control characters");
        free(cfg->listen_host);
        cfg->listen_host = cr_strdup(host);
    }
    if ((rc = load_ints(ld, obj, ints, CR_ARRAY_SIZE(ints), cfg)) != 0)
        return rc;
    path_pop(ld, mark);
    return 0;
}

static int load_redis(ld_t *ld, json_t *root, cfg_t *cfg)
{
    static const char *const names[] = {"url", NULL};
    static const int_field_t ints[] = {
        {"pool", offsetof(cfg_t, redis_pool), AS_INT, 1, CFG_POOL_MAX},
        {"command_timeout_ms", offsetof(cfg_t, redis_command_timeout_ms), AS_LONG, 1, CFG_INT_MAX},
    };
    const char *url, *why;
    json_t *obj;
    size_t mark;
    int rc;

    if ((rc = get_object(ld, root, "redis", false, &obj)) != 0 || obj == NULL)
        return rc;
    mark = path_key(ld, "redis");
    if ((rc = check_keys(ld, obj, names, ints, CR_ARRAY_SIZE(ints))) != 0)
        return rc;
    if ((rc = get_string(ld, obj, "url", false, &url)) != 0)
        return rc;
    if (url != NULL) {
        /* The reason, never the URL: it may carry the Redis password. */
        if (redis_url_split(url, NULL, NULL, NULL, NULL, NULL, &why) != 0)
            return fail_at(ld, "url", "invalid Redis URL: %s (" CFG_REDIS_SYNTAX ")", why);
        free(cfg->redis_url);
        cfg->redis_url = cr_strdup(url);
    }
    if ((rc = load_ints(ld, obj, ints, CR_ARRAY_SIZE(ints), cfg)) != 0)
        return rc;
    path_pop(ld, mark);
    return 0;
}

static int load_limits(ld_t *ld, json_t *root, cfg_t *cfg)
{
    static const int_field_t ints[] = {
        {"max_body_bytes", offsetof(cfg_t, max_body_bytes), AS_SIZE, 1, CFG_INT_MAX},
        {"max_header_bytes", offsetof(cfg_t, max_header_bytes), AS_SIZE, 1, CFG_INT_MAX},
        {"max_header_count", offsetof(cfg_t, max_header_count), AS_SIZE, 1, CFG_INT_MAX},
        {"max_request_line_bytes", offsetof(cfg_t, max_request_line), AS_SIZE, 1, CFG_INT_MAX},
        {"max_connections", offsetof(cfg_t, max_connections), AS_SIZE, 1, CFG_INT_MAX},
        {"header_timeout_ms", offsetof(cfg_t, header_timeout_ms), AS_LONG, 1, CFG_INT_MAX},
        {"idle_timeout_ms", offsetof(cfg_t, idle_timeout_ms), AS_LONG, 1, CFG_INT_MAX},
        {"body_timeout_ms", offsetof(cfg_t, body_timeout_ms), AS_LONG, 1, CFG_INT_MAX},
    };
    json_t *obj;
    size_t mark;
    int rc;

    if ((rc = get_object(ld, root, "limits", false, &obj)) != 0 || obj == NULL)
        return rc;
    mark = path_key(ld, "limits");
    if ((rc = check_keys(ld, obj, NULL, ints, CR_ARRAY_SIZE(ints))) != 0)
        return rc;
    if ((rc = load_ints(ld, obj, ints, CR_ARRAY_SIZE(ints), cfg)) != 0)
        return rc;
    path_pop(ld, mark);
    return 0;
}

static int load_saga(ld_t *ld, json_t *root, cfg_t *cfg)
{
    static const int_field_t ints[] = {
        {"max_attempts", offsetof(cfg_t, saga_max_attempts), AS_INT, 1, CFG_INT_MAX},
        {"retry_base_ms", offsetof(cfg_t, saga_retry_base_ms), AS_LONG, 1, CFG_INT_MAX},
        {"retry_max_ms", offsetof(cfg_t, saga_retry_max_ms), AS_LONG, 1, CFG_INT_MAX},
        {"claim_idle_ms", offsetof(cfg_t, saga_claim_idle_ms), AS_LONG, 1, CFG_INT_MAX},
        {"max_claims", offsetof(cfg_t, saga_max_claims), AS_INT, 1, 1000},
        {"drain_timeout_ms", offsetof(cfg_t, saga_drain_timeout_ms), AS_LONG, 1, CFG_INT_MAX},
        {"retention_s", offsetof(cfg_t, saga_retention_s), AS_LONG, 1, CFG_INT_MAX},
        {"idempotency_ttl_s", offsetof(cfg_t, idempotency_ttl_s), AS_LONG, 1, CFG_INT_MAX},
        {"order_retention_s", offsetof(cfg_t, order_retention_s), AS_LONG, 0, CFG_INT_MAX},
    };
    json_t *obj;
    size_t mark;
    int rc;

    static const char *const names[] = {"workers", NULL};
    if ((rc = get_object(ld, root, "saga", false, &obj)) != 0 || obj == NULL)
        return rc;
    mark = path_key(ld, "saga");
    if ((rc = check_keys(ld, obj, names, ints, CR_ARRAY_SIZE(ints))) != 0)
        return rc;
    if ((rc = load_ints(ld, obj, ints, CR_ARRAY_SIZE(ints), cfg)) != 0)
        return rc;
    if ((rc = get_bool(ld, obj, "workers", &cfg->saga_workers)) != 0)
        return rc;
    /*
     * Blame the member the operator wrote: raising only retry_base_ms above the default maximum
     * is a problem with retry_base_ms.
     */
    if (cfg->saga_retry_max_ms < cfg->saga_retry_base_ms) {
        if (json_object_get(obj, "retry_max_ms") != NULL)
            return fail_at(ld, "retry_max_ms", "must be at least retry_base_ms (%ld)",
                           cfg->saga_retry_base_ms);
        return fail_at(ld, "retry_base_ms", "must be at most retry_max_ms (%ld)",
                       cfg->saga_retry_max_ms);
    }
    /* An order outlives its sagas: a saga still readable must find its order. */
    if (cfg->order_retention_s != 0 && cfg->order_retention_s < cfg->saga_retention_s) {
        if (json_object_get(obj, "order_retention_s") != NULL)
            return fail_at(ld, "order_retention_s",
                           "must be 0 (keep orders) or at least retention_s (%ld)",
                           cfg->saga_retention_s);
        return fail_at(ld, "retention_s", "must be at most order_retention_s (%ld)",
                       cfg->order_retention_s);
    }
    path_pop(ld, mark);
    return 0;
}

/* "log": {"level": "debug"|"info"|"warn"|"error"}; CROSSROADS_LOG_LEVEL overrides it. */
static int load_log(ld_t *ld, json_t *root, cfg_t *cfg)
{
    static const char *const names[] = {"level", NULL};
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    json_t *obj;
    const char *level = NULL;
    size_t mark;
    int rc;

    if ((rc = get_object(ld, root, "log", false, &obj)) != 0 || obj == NULL)
        return rc;
    mark = path_key(ld, "log");
    if ((rc = check_keys(ld, obj, names, NULL, 0)) != 0)
        return rc;
    if ((rc = get_string(ld, obj, "level", false, &level)) != 0)
        return rc;
    if (level != NULL) {
        size_t i;
        for (i = 0; i < CR_ARRAY_SIZE(levels) && strcmp(level, levels[i]) != 0; i++)
            ;
        if (i == CR_ARRAY_SIZE(levels))
            return fail_at(ld, "level", "unknown log level '%s' (expected debug, info, warn or "
                           "error)", level);
        snprintf(cfg->log_level, sizeof cfg->log_level, "%s", level);
    }
    path_pop(ld, mark);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Tenants                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static int load_instances(ld_t *ld, json_t *obj, cfg_tenant_t *t)
{
    quoted_t q;
    json_t *arr, *v;
    size_t i, mark;
    int rc;

    if ((rc = get_array(ld, obj, "instances", false, &arr)) != 0 || arr == NULL)
        return rc;
    if (json_array_size(arr) == 0)
        return 0;
    mark = path_key(ld, "instances");
    t->instances = cr_calloc(json_array_size(arr), sizeof(*t->instances));
    t->n_instances = json_array_size(arr);
    json_array_foreach(arr, i, v)
    {
        size_t m = path_index(ld, i);
        const char *s;

        if (!json_is_string(v))
            return fail(ld, "expected string");
        s = json_string_value(v);
        if (!valid_name(s))
            return fail(ld,
                        "invalid instance name '%s' (expected 1-64 characters from A-Z a-z "
                        "0-9 . _ -)",
                        quote(&q, s));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(t->instances[j], s) == 0)
                return fail(ld, "duplicate instance '%s' (also instances[%zu])", s, j);
        }
        t->instances[i] = cr_strdup(s);
        path_pop(ld, m);
    }
    path_pop(ld, mark);
    return 0;
}

static int load_key(ld_t *ld, json_t *obj, const cfg_tenant_t *t, cfg_api_key_t *k)
{
    static const char *const names[] = {"id", "sha256", "instance", "scopes", NULL};
    char lower[65];
    const char *s, *first;
    json_t *arr, *v;
    quoted_t q;
    size_t i, mark;
    int rc;

    if (!json_is_object(obj))
        return fail(ld, "expected object");
    if ((rc = check_keys(ld, obj, names, NULL, 0)) != 0)
        return rc;

    if ((rc = get_string(ld, obj, "id", true, &s)) != 0)
        return rc;
    mark = path_key(ld, "id");
    if ((first = seen(ld, ld->key_ids, s)) != NULL)
        return fail(ld, "duplicate api key id '%s' (also %s)", quote(&q, s), first);
    path_pop(ld, mark);
    k->id = cr_strdup(s);

    if ((rc = get_string(ld, obj, "sha256", true, &s)) != 0)
        return rc;
    mark = path_key(ld, "sha256");
    if (!all_hex(s, 64))
        return fail(ld, "must be 64 hexadecimal characters (the SHA-256 of the key, as printed "
                        "by crossroads hash-key)");
    for (i = 0; i < 32; i++)
        k->sha256[i] = (uint8_t)(hex_val(s[2 * i]) * 16 + hex_val(s[2 * i + 1]));
    for (i = 0; i < 64; i++)
        lower[i] = (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 'a' : s[i]);
    lower[64] = '\0';
    /* Authentication finds the tenant by the key's hash, so one key must mean one tenant. */
    if ((first = seen(ld, ld->key_hashes, lower)) != NULL)
        return fail(ld, "duplicate key hash (also %s): each key belongs to exactly one tenant",
                    first);
    path_pop(ld, mark);

    if ((rc = get_string(ld, obj, "instance", false, &s)) != 0)
        return rc;
    if (s != NULL) {
        if (!cfg_tenant_has_instance(t, s, strlen(s)))
            return fail_at(ld, "instance", "unknown instance '%s' (not in the tenant's instances)",
                           quote(&q, s));
        k->instance = cr_strdup(s);
    }

    if ((rc = get_array(ld, obj, "scopes", true, &arr)) != 0)
        return rc;
    mark = path_key(ld, "scopes");
    if (json_array_size(arr) == 0)
        return fail(ld, "must not be empty");
    json_array_foreach(arr, i, v)
    {
        size_t m = path_index(ld, i);
        unsigned bits;

        if (!json_is_string(v))
            return fail(ld, "expected string");
        if ((bits = cfg_scope_parse(json_string_value(v))) == 0)
            return fail(ld,
                        "unknown scope '%s' (expected order:create, order:cancel, order:reset, "
                        "order:update_status, order:execute, order:accept, order:read, "
                        "order:* or admin)",
                        quote(&q, json_string_value(v)));
        k->scopes |= bits;
        path_pop(ld, m);
    }
    path_pop(ld, mark);
    return 0;
}

static int load_keys(ld_t *ld, json_t *obj, cfg_tenant_t *t)
{
    json_t *arr, *v;
    size_t i, mark;
    int rc;

    if ((rc = get_array(ld, obj, "api_keys", false, &arr)) != 0 || arr == NULL)
        return rc;
    if (json_array_size(arr) == 0)
        return 0;
    mark = path_key(ld, "api_keys");
    t->keys = cr_calloc(json_array_size(arr), sizeof(*t->keys));
    t->n_keys = json_array_size(arr);
    json_array_foreach(arr, i, v)
    {
        size_t m = path_index(ld, i);
        if ((rc = load_key(ld, v, t, &t->keys[i])) != 0)
            return rc;
        path_pop(ld, m);
    }
    path_pop(ld, mark);
    return 0;
}

static int load_connector(ld_t *ld, json_t *tobj, cfg_connector_t *c)
{
    /* Members of another connector type are unknown fields: they would be silently unused. */
    static const char *const webhook[] = {"type", "url", "timeout_ms", "secret_env", NULL};
    static const char *const kibo[] = {"type", "url", "timeout_ms", "tenant_id", NULL};
    static const char *const tecspal[] = {"type",         "url",       "timeout_ms",
                                          "company_code", "token_env", NULL};
    static const int_field_t ints[] = {
        {"timeout_ms", offsetof(cfg_connector_t, timeout_ms), AS_LONG, 1, CFG_INT_MAX},
    };
    const char *const *names;
    const char *type, *s;
    json_t *obj;
    quoted_t q;
    size_t mark;
    int rc;

    if ((rc = get_object(ld, tobj, "connector", true, &obj)) != 0)
        return rc;
    mark = path_key(ld, "connector");
    if ((rc = get_string(ld, obj, "type", true, &type)) != 0)
        return rc;
    if (strcmp(type, "webhook") == 0) {
        c->type = CFG_CONNECTOR_WEBHOOK;
        names = webhook;
    } else if (strcmp(type, "kibo") == 0) {
        c->type = CFG_CONNECTOR_KIBO;
        names = kibo;
    } else if (strcmp(type, "tecspal") == 0) {
        c->type = CFG_CONNECTOR_TECSPAL;
        names = tecspal;
    } else {
        return fail_at(ld, "type",
                       "unknown connector type '%s' (expected webhook, kibo or tecspal)",
                       quote(&q, type));
    }
    if ((rc = check_keys(ld, obj, names, NULL, 0)) != 0)
        return rc;
    if ((rc = get_url(ld, obj, "url", true, true, &c->url)) != 0)
        return rc;
    c->timeout_ms = 5000;
    if ((rc = load_ints(ld, obj, ints, CR_ARRAY_SIZE(ints), c)) != 0)
        return rc;

    switch (c->type) {
    case CFG_CONNECTOR_WEBHOOK:
        rc = get_env_name(ld, obj, "secret_env", false, &c->secret_env);
        break;
    case CFG_CONNECTOR_KIBO:
        if ((rc = get_string(ld, obj, "tenant_id", true, &s)) != 0)
            return rc;
        /* It is sent as the x-vol-tenant header, where CR or LF would split the request. */
        if (has_ctl(s, false))
            return fail_at(ld, "tenant_id", "must not contain control characters");
        c->tenant_id = cr_strdup(s);
        break;
    case CFG_CONNECTOR_TECSPAL:
        if ((rc = get_copy(ld, obj, "company_code", true, &c->company_code)) != 0)
            return rc;
        rc = get_env_name(ld, obj, "token_env", true, &c->token_env);
        break;
    }
    if (rc != 0)
        return rc;
    path_pop(ld, mark);
    return 0;
}

static int load_rate_limit(ld_t *ld, json_t *tobj, cfg_tenant_t *t)
{
    static const char *const names[] = {"per_second", "burst", NULL};
    double per_second = 0, burst = 0;
    json_t *obj;
    size_t mark;
    int rc;

    if ((rc = get_object(ld, tobj, "rate_limit", false, &obj)) != 0 || obj == NULL)
        return rc;
    mark = path_key(ld, "rate_limit");
    if ((rc = check_keys(ld, obj, names, NULL, 0)) != 0)
        return rc;
    if ((rc = get_number(ld, obj, "per_second", true, &per_second)) < 0)
        return rc;
    if (!(per_second > 0))
        return fail_at(ld, "per_second", "must be greater than 0 (got %g)", per_second);
    if ((rc = get_number(ld, obj, "burst", false, &burst)) < 0)
        return rc;
    if (rc == 0) {
        /*
         * A bucket smaller than one token never lets a request through, so a slow rate such as
         * 0.5/s still gets a burst of 1.
         */
        burst = per_second < 1 ? 1 : per_second;
    } else if (!(burst >= 1)) {
        return fail_at(ld, "burst", "must be at least 1 (got %g)", burst);
    }
    t->rate_per_second = per_second;
    t->rate_burst = burst;
    path_pop(ld, mark);
    return 0;
}

static int load_tenant(ld_t *ld, json_t *obj, cfg_tenant_t *t)
{
    static const char *const names[] = {"name",       "source_system", "instances",
                                        "api_keys",   "connector",     "auto_accept",
                                        "notify_url", "rate_limit",    NULL};
    const char *s, *first;
    quoted_t q;
    size_t mark;
    int rc;

    if (!json_is_object(obj))
        return fail(ld, "expected object");
    if ((rc = check_keys(ld, obj, names, NULL, 0)) != 0)
        return rc;

    if ((rc = get_string(ld, obj, "name", true, &s)) != 0)
        return rc;
    mark = path_key(ld, "name");
    if (!valid_name(s))
        return fail(ld,
                    "invalid tenant name '%s' (expected 1-64 characters from A-Z a-z 0-9 . _ -)",
                    quote(&q, s));
    if ((first = seen(ld, ld->tenant_names, s)) != NULL)
        return fail(ld, "duplicate tenant name '%s' (also %s)", s, first);
    path_pop(ld, mark);
    t->name = cr_strdup(s);

    if ((rc = get_copy(ld, obj, "source_system", true, &t->source_system)) != 0)
        return rc;
    if ((rc = load_instances(ld, obj, t)) != 0)
        return rc;
    if ((rc = load_keys(ld, obj, t)) != 0)
        return rc;
    if ((rc = load_connector(ld, obj, &t->connector)) != 0)
        return rc;
    t->auto_accept = true;
    if ((rc = get_bool(ld, obj, "auto_accept", &t->auto_accept)) != 0)
        return rc;
    if ((rc = get_url(ld, obj, "notify_url", false, false, &t->notify_url)) != 0)
        return rc;
    return load_rate_limit(ld, obj, t);
}

static int load_tenants(ld_t *ld, json_t *root, cfg_t *cfg)
{
    json_t *arr, *v;
    size_t i, mark;
    int rc;

    if ((rc = get_array(ld, root, "tenants", true, &arr)) != 0)
        return rc;
    mark = path_key(ld, "tenants");
    if (json_array_size(arr) == 0)
        return fail(ld, "must list at least one tenant");
    cfg->tenants = cr_calloc(json_array_size(arr), sizeof(*cfg->tenants));
    cfg->n_tenants = json_array_size(arr);
    json_array_foreach(arr, i, v)
    {
        size_t m = path_index(ld, i);
        if ((rc = load_tenant(ld, v, &cfg->tenants[i])) != 0)
            return rc;
        path_pop(ld, m);
    }
    path_pop(ld, mark);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Mappings                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static const char *const mapping_type_names[] = {
    [CFG_MAPPING_TERMINAL] = "terminal",
    [CFG_MAPPING_SITE] = "site",
    [CFG_MAPPING_PRODUCT] = "product",
};

static int load_mapping(ld_t *ld, json_t *obj, cfg_mapping_t *m)
{
    static const char *const names[] = {"mapping_id",  "tenant", "type",      "source_id",
                                        "source_name", "goid",   "goid_name", NULL};
    const char *s, *first;
    quoted_t q;
    size_t mark;
    int rc;

    if (!json_is_object(obj))
        return fail(ld, "expected object");
    if ((rc = check_keys(ld, obj, names, NULL, 0)) != 0)
        return rc;

    if ((rc = get_string(ld, obj, "mapping_id", true, &s)) != 0)
        return rc;
    mark = path_key(ld, "mapping_id");
    if (!all_hex(s, 24))
        return fail(ld, "must be 24 hexadecimal characters");
    for (size_t i = 0; i < 24; i++)
        m->mapping_id[i] = (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 'a' : s[i]);
    m->mapping_id[24] = '\0';
    if ((first = seen(ld, ld->mapping_ids, m->mapping_id)) != NULL)
        return fail(ld, "duplicate mapping_id '%s' (also %s)", m->mapping_id, first);
    path_pop(ld, mark);

    if ((rc = get_string(ld, obj, "tenant", true, &s)) != 0)
        return rc;
    if (json_object_get(ld->tenant_names, s) == NULL)
        return fail_at(ld, "tenant", "unknown tenant '%s'", quote(&q, s));
    m->tenant = cr_strdup(s);

    if ((rc = get_string(ld, obj, "type", true, &s)) != 0)
        return rc;
    for (int i = CFG_MAPPING_TERMINAL; i <= CFG_MAPPING_PRODUCT; i++) {
        if (strcmp(s, mapping_type_names[i]) == 0)
            m->type = (cfg_mapping_type_t)i;
    }
    if (m->type == 0)
        return fail_at(ld, "type", "unknown mapping type '%s' (expected terminal, site or product)",
                       quote(&q, s));

    if ((rc = get_copy(ld, obj, "source_id", false, &m->source_id)) != 0)
        return rc;
    if ((rc = get_copy(ld, obj, "source_name", false, &m->source_name)) != 0)
        return rc;
    if (m->source_id == NULL && m->source_name == NULL)
        return fail(ld, "needs source_id or source_name");
    if (m->source_id != NULL) {
        /* A lookup by source_id must land on one mapping, or the master data is ambiguous. */
        size_t n = strlen(m->tenant) + strlen(m->source_id) + 16;
        char *key = cr_malloc(n);

        snprintf(key, n, "%s/%d/%s", m->tenant, (int)m->type, m->source_id);
        mark = path_key(ld, "source_id");
        first = seen(ld, ld->source_ids, key);
        free(key);
        if (first != NULL)
            return fail(ld, "duplicate source_id '%s' for tenant '%s' type %s (also %s)",
                        quote(&q, m->source_id), m->tenant, mapping_type_names[m->type], first);
        path_pop(ld, mark);
    }

    if ((rc = get_copy(ld, obj, "goid", true, &m->goid)) != 0)
        return rc;
    if ((rc = get_copy(ld, obj, "goid_name", false, &m->goid_name)) != 0)
        return rc;
    m->doc = json_pack("{s:s, s:s?, s:s?, s:s, s:s?, s:s}", "mapping_id", m->mapping_id,
                       "source_id", m->source_id, "source_name", m->source_name, "goid", m->goid,
                       "goid_name", m->goid_name, "type", mapping_type_names[m->type]);
    return m->doc ? 0 : fail(ld, "names must be valid UTF-8");
}

static int load_mappings(ld_t *ld, json_t *root, cfg_t *cfg)
{
    json_t *arr, *v;
    size_t i, mark;
    int rc;

    if ((rc = get_array(ld, root, "mappings", false, &arr)) != 0 || arr == NULL)
        return rc;
    if (json_array_size(arr) == 0)
        return 0;
    mark = path_key(ld, "mappings");
    cfg->mappings = cr_calloc(json_array_size(arr), sizeof(*cfg->mappings));
    cfg->n_mappings = json_array_size(arr);
    json_array_foreach(arr, i, v)
    {
        size_t m = path_index(ld, i);
        if ((rc = load_mapping(ld, v, &cfg->mappings[i])) != 0)
            return rc;
        path_pop(ld, m);
    }
    path_pop(ld, mark);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Entry points                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static int load_root(ld_t *ld, json_t *root, cfg_t *cfg)
{
    static const char *const names[] = {"listen",  "redis",    "limits", "saga", "log",
                                        "tenants", "mappings", NULL};
    int rc;

    if (!json_is_object(root))
        return fail(ld, "the top level must be a JSON object");
    if ((rc = check_keys(ld, root, names, NULL, 0)) != 0)
        return rc;
    if ((rc = load_listen(ld, root, cfg)) != 0)
        return rc;
    if ((rc = load_redis(ld, root, cfg)) != 0)
        return rc;
    if ((rc = load_limits(ld, root, cfg)) != 0)
        return rc;
    if ((rc = load_saga(ld, root, cfg)) != 0)
        return rc;
    if ((rc = load_log(ld, root, cfg)) != 0)
        return rc;
    if ((rc = load_tenants(ld, root, cfg)) != 0)
        return rc;
    return load_mappings(ld, root, cfg);
}

int cfg_load_json(const char *text, size_t len, const char *name, cfg_t **out, char *err,
                  size_t errlen)
{
    ld_t ld = {.file = name != NULL ? name : "<string>", .err = err, .errlen = errlen};
    json_error_t jerr;
    cfg_t *cfg = NULL;
    json_t *root;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    /*
     * Duplicate keys are refused: with {"port": 80, "port": 8080} the operator meant one of
     * them, and silently taking the last would hide the mistake.
     */
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (jerr.line > 0)
            set_err(err, errlen, "%s: line %d column %d: %s", ld.file, jerr.line, jerr.column,
                    jerr.text);
        else
            set_err(err, errlen, "%s: %s", ld.file, jerr.text);
        return UV_EINVAL;
    }

    cfg = cfg_new(ld.file);
    ld.tenant_names = json_object();
    ld.key_ids = json_object();
    ld.key_hashes = json_object();
    ld.mapping_ids = json_object();
    ld.source_ids = json_object();
    rc = load_root(&ld, root, cfg);

    json_decref(ld.tenant_names);
    json_decref(ld.key_ids);
    json_decref(ld.key_hashes);
    json_decref(ld.mapping_ids);
    json_decref(ld.source_ids);
    json_decref(root);
    if (rc != 0) {
        cfg_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

/* Read a whole regular file. On failure returns a negative code with err set. */
static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = uv_translate_sys_error(errno);
        set_err(err, errlen, "%s: cannot open: %s", path, uv_strerror(rc));
        goto cleanup;
    }
    if (fstat(fd, &st) != 0) {
        rc = uv_translate_sys_error(errno);
        set_err(err, errlen, "%s: cannot stat: %s", path, uv_strerror(rc));
        goto cleanup;
    }
    /* A directory, FIFO or device is a wrong path; reading one could block or never end. */
    if (!S_ISREG(st.st_mode)) {
        rc = UV_EINVAL;
        set_err(err, errlen, "%s: not a regular file", path);
        goto cleanup;
    }
    cap = (size_t)st.st_size + 1;
    if (cap > CFG_FILE_MAX)
        cap = CFG_FILE_MAX + 1;
    buf = cr_malloc(cap);
    /* Read to the end rather than trusting st_size: the file may change while we read it. */
    for (;;) {
        ssize_t n;

        if (len == cap) {
            if (cap > CFG_FILE_MAX) {
                rc = UV_EFBIG;
                set_err(err, errlen, "%s: larger than %u MiB", path, CFG_FILE_MAX >> 20);
                goto cleanup;
            }
            cap = CR_MIN(cap * 2, (size_t)CFG_FILE_MAX + 1);
            buf = cr_realloc(buf, cap);
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = uv_translate_sys_error(errno);
            set_err(err, errlen, "%s: cannot read: %s", path, uv_strerror(rc));
            goto cleanup;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *out = buf;
    *outlen = len;
    buf = NULL;

cleanup:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

int cfg_load_file(const char *path, cfg_t **out, char *err, size_t errlen)
{
    cfg_t *cfg = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if ((rc = read_file(path, &text, &len, err, errlen)) != 0)
        goto cleanup;
    if ((rc = cfg_load_json(text, len, path, &cfg, err, errlen)) != 0)
        goto cleanup;
    if ((rc = cfg_apply_env(cfg, err, errlen)) != 0)
        goto cleanup;
    *out = cfg;
    cfg = NULL;

cleanup:
    cfg_unref(cfg);
    free(text);
    return rc;
}
