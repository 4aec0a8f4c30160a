/*
 * crlog.c - CrossroadsLogV2 entries (see crlog.h).
 */
#include "crlog.h"

#include "util/buf.h"
#include "util/crypto.h"
#include "util/jsonw.h"
#include "util/timefmt.h"

#include <string.h>
#include <strings.h>

/* A stable 24-hex id derived from a name, for the seed's *_id routing fields: the config names
 * tenants, instances and source systems but gives them no ids. A small direct-mapped memo keeps
 * the hash off the per-request path (the names come from the config, so few distinct ones). */
#define DERIVED_SLOTS 64
#define DERIVED_KEY_MAX 120

static void derived_id(const char *kind, const char *name, char hex[25])
{
    static struct {
        char key[DERIVED_KEY_MAX];
        char hex[25];
    } memo[DERIVED_SLOTS];
    /* "kind:name", put together by hand: snprintf cost more than the lookup (20 per saga) */
    char key[DERIVED_KEY_MAX];
    size_t kl = strlen(kind), nl = strlen(name), n = kl + 1 + nl;
    bool cacheable = n < sizeof key;
    if (cacheable) {
        memcpy(key, kind, kl);
        key[kl] = ':';
        memcpy(key + kl + 1, name, nl + 1);
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; cacheable && i < n; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    size_t slot = h % DERIVED_SLOTS;
    if (cacheable && strcmp(memo[slot].key, key) == 0) {
        memcpy(hex, memo[slot].hex, 25);
        return;
    }
    buf_t b = {0};
    buf_printf(&b, "%s:%s", kind, name);
    uint8_t d[32];
    crypto_sha256(b.data, b.len, d);
    buf_free(&b);
    crypto_hex(d, 12, hex);
    if (cacheable) {
        memcpy(memo[slot].key, key, n + 1);
        memcpy(memo[slot].hex, hex, 25);
    }
}

/* ,"key":"value" (or null when value is NULL); the first member of an object has no comma. */
static void member_str(buf_t *b, bool first, const char *key, const char *value)
{
    if (!first)
        buf_append(b, ",", 1);
    buf_append(b, "\"", 1);
    buf_append_str(b, key);
    if (value == NULL) {
        buf_append(b, "\":null", 6);
        return;
    }
    buf_append(b, "\":\"", 3);
    buf_append_json_str(b, value, strlen(value));
    buf_append(b, "\"", 1);
}

static void member_raw(buf_t *b, const char *key, const char *raw)
{
    buf_append(b, ",\"", 2);
    buf_append_str(b, key);
    buf_append(b, "\":", 2);
    buf_append_str(b, raw);
}

static void member_derived(buf_t *b, bool first, const char *key, const char *kind,
                           const char *name)
{
    char hex[25];
    if (name != NULL)
        derived_id(kind, name, hex);
    member_str(b, first, key, name ? hex : NULL);
}

/* A stolen object member: {} when NULL. */
static void member_json(buf_t *b, const char *key, json_t *value)
{
    member_raw(b, key, "");
    if (value == NULL || jsonw_append(b, value, JSON_COMPACT) != 0)
        buf_append(b, "{}", 2);
    json_decref(value);
}

static const char *nonempty(const char *s)
{
    return s && s[0] ? s : NULL;
}

void crlog_entry_text(buf_t *b, const crlog_fields_t *f)
{
    char id[CRYPTO_OID_LEN], now[TIME_ISO_LEN];
    crypto_oid(id);
    time_format_iso(time_now_ms(), now);
    buf_append(b, "{", 1);
    member_str(b, true, "_id", id);
    member_str(b, false, "title", f->title);
    member_str(b, false, "date", now);
    member_str(b, false, "status", f->status);
    member_str(b, false, "severity", f->severity ? f->severity : "low");
    member_raw(b, "routing", "{");
    member_derived(b, true, "origin_tenant_id", "tenant", f->from->name);
    member_str(b, false, "origin_tenant_name", f->from->name);
    member_str(b, false, "origin_source_system", f->from->source_system);
    member_derived(b, false, "origin_source_system_id", "source_system", f->from->source_system);
    member_derived(b, false, "origin_instance_id", "instance", f->instance);
    member_str(b, false, "origin_instance_name", f->instance);
    member_derived(b, false, "destination_tenant_id", "tenant", f->to->name);
    member_str(b, false, "destination_tenant_name", f->to->name);
    member_str(b, false, "destination_source_system", f->to->source_system);
    member_derived(b, false, "destination_source_system_id", "source_system", f->to->source_system);
    member_str(b, false, "destination_instance_id", NULL);
    member_str(b, false, "destination_instance_name", NULL);
    buf_append(b, "}", 1);
    member_raw(b, "detail", "{");
    member_str(b, true, "category", "crossroads");
    member_str(b, false, "message", f->message);
    member_str(b, false, "message_short", f->message_short ? f->message_short : f->status);
    member_str(b, false, "traceback", NULL);
    buf_append(b, "}", 1);
    member_raw(b, "metadata", "{");
    member_str(b, true, "type", "order");
    member_str(b, false, "group_id", nonempty(f->order_id) ? f->order_id : f->saga_id);
    member_str(b, false, "origin_order_number", nonempty(f->order_number));
    member_str(b, false, "crossroads_order_id", nonempty(f->order_id));
    buf_append(b, "}", 1);
    member_str(b, false, "worker_name", "Crossroads");
    member_str(b, false, "correlation_id", f->correlation_id ? f->correlation_id : "");
    member_raw(b, "retried", f->retried ? "true" : "false");
    member_str(b, false, "saga_id", f->saga_id);
    member_str(b, false, "saga_type", f->saga_type);
    member_raw(b, "send_notification", f->from->notify_url != NULL ? "true" : "false");
    member_json(b, "outbound_request", f->outbound);
    member_json(b, "inbound_request", f->inbound);
    if (f->extra_name != NULL)
        member_json(b, f->extra_name, f->extra);
    else
        json_decref(f->extra);
    buf_append(b, "}", 1);
}

static bool secret_header(const char *line)
{
    static const char *const names[] = {"authorization:", "x-api-key:", "cookie:",
                                        "proxy-authorization:", "set-cookie:"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncasecmp(line, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

json_t *crlog_redact_headers(const json_t *headers)
{
    json_t *out = json_array();
    size_t i;
    json_t *h;
    json_array_foreach(headers, i, h)
    {
        const char *line = json_string_value(h);
        if (line == NULL)
            continue;
        if (secret_header(line)) {
            const char *colon = strchr(line, ':');
            buf_t b = {0};
            buf_append(&b, line, (size_t)(colon - line));
            buf_append_str(&b, ": [redacted]");
            json_array_append_new(out, json_stringn(b.data, b.len));
            buf_free(&b);
        } else {
            json_array_append(out, h);
        }
    }
    return out;
}

json_t *crlog_string_lossy(const char *s, size_t n)
{
    buf_t b = {0};
    buf_append_utf8_lossy(&b, s, n);
    json_t *j = json_stringn_nocheck(b.data ? b.data : "", b.len);
    buf_free(&b);
    return j;
}
