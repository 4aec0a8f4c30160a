/*
 * crlog.c - CrossroadsLogV2 entries (see crlog.h).
 */
#include "crlog.h"

#include "util/buf.h"
#include "util/crypto.h"
#include "util/timefmt.h"

#include <string.h>
#include <strings.h>

/* A stable 24-hex id derived from a name, for the seed's *_id routing fields: the config names
 * tenants, instances and source systems but gives them no ids. */
static json_t *derived_id(const char *kind, const char *name)
{
    if (name == NULL)
        return json_null();
    buf_t b = {0};
    buf_printf(&b, "%s:%s", kind, name);
    uint8_t d[32];
    crypto_sha256(b.data, b.len, d);
    buf_free(&b);
    char hex[25];
    crypto_hex(d, 12, hex);
    return json_string(hex);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *crlog_routing(const cfg_tenant_t *from, const char *instance, const cfg_tenant_t *to)
{
    return json_pack("{s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:o, s:n, s:n}",
                     "origin_tenant_id", derived_id("tenant", from->name),
                     "origin_tenant_name", from->name,
                     "origin_source_system", from->source_system,
                     "origin_source_system_id", derived_id("source_system", from->source_system),
                     "origin_instance_id", derived_id("instance", instance),
                     "origin_instance_name", str_or_null(instance),
                     "destination_tenant_id", derived_id("tenant", to->name),
                     "destination_tenant_name", to->name,
                     "destination_source_system", to->source_system,
                     "destination_source_system_id",
                     derived_id("source_system", to->source_system),
                     "destination_instance_id", "destination_instance_name");
}

json_t *crlog_entry(const crlog_fields_t *f)
{
    char id[CRYPTO_OID_LEN], now[TIME_ISO_LEN];
    crypto_oid(id);
    time_format_iso(time_now_ms(), now);
    const char *group = f->order_id && f->order_id[0] ? f->order_id : f->saga_id;
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:s, s:o, s:s, s:n}, s:{s:s, s:s, s:o, s:o},"
        " s:s, s:s, s:b, s:s, s:s, s:b, s:o, s:o}",
        "_id", id, "title", f->title, "date", now, "status", f->status, "severity",
        f->severity ? f->severity : "low", "routing", crlog_routing(f->from, f->instance, f->to),
        "detail", "category", "crossroads", "message",
        crlog_string_lossy(f->message, strlen(f->message)), "message_short",
        f->message_short ? f->message_short : f->status, "traceback",
        "metadata", "type", "order", "group_id", group, "origin_order_number",
        str_or_null(f->order_number && f->order_number[0] ? f->order_number : NULL),
        "crossroads_order_id", str_or_null(f->order_id && f->order_id[0] ? f->order_id : NULL),
        "worker_name", "Crossroads", "correlation_id",
        f->correlation_id ? f->correlation_id : "", "retried", f->retried, "saga_id", f->saga_id,
        "saga_type", f->saga_type, "send_notification", f->from->notify_url != NULL,
        "outbound_request", f->outbound ? f->outbound : json_object(), "inbound_request",
        f->inbound ? f->inbound : json_object());
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
