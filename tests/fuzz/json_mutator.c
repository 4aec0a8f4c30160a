/*
 * json_mutator.c - structure-aware JSON mutations for the harnesses (see fuzz_common.h).
 *
 * Byte-level mutation of a JSON body mostly produces syntax errors, which stop at the parser.
 * These mutations keep the document well-formed and move it around the validators' decision
 * points instead: a field of the wrong type, a value just over a length limit, a known enum or
 * field name in the wrong place, a member removed or duplicated.
 */
#include "fuzz_common.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Field names and values the gateway's bodies, responses and configuration use. */
static const char *const words[] = {
    /* mutation bodies */
    "order", "order_id", "order_number", "reason_code", "location", "progress_status", "eta",
    "delivery_eta", "actual", "assigned_to", "hauled_by", "lines", "product", "terminal", "site",
    "quantity", "uom", "requested_delivery", "notes", "bol_number", "gross_volume", "net_volume",
    "volume", "source_id", "source_name", "mapping_id", "goid", "goid_name",
    "assigned", "driving_to_load", "arrived_at_load", "loading", "completed_load",
    "driving_to_drop", "arrived_at_drop", "dropping", "completed_drop", "complete", "no_progress",
    "64b7cf5a86d9755df3a6c501", "64B7CF5A86D9755DF3A6C50A", "64b7cf5a86d9755df3a6c5", "PO-1001",
    "HOU-T1", "ULSD", "ATX-S12", "customer", "gal", "BOL-1",
    "2026-05-11T19:25:51.332Z", "2026-05-11T19:25:51Z", "2026-05-11T19:25:51+05:30",
    "2026-05-11T19:25:51.123456789-00:00", "2026-05-11", "2026-02-30T00:00:00Z",
    "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
    "2026-05-11T24:00:00Z", "2026-05-11t19:25:51z", "2026-05-11 19:25:51Z",
    /* destination answers */
    "detail", "message", "error", "envelop", "status", "statusCode", "CANCELLED", "PENDING", "id",
    "3178e7e9-0fe9-47ad-b69a-e5604a990822", "orderID", "dispositionReason",
    "dispositionOtherReason", "other", "fraud",
    /* configuration */
    "listen", "host", "port", "redis", "url", "pool", "command_timeout_ms", "limits",
    "max_body_bytes", "max_header_bytes", "max_header_count", "max_request_line_bytes",
    "max_connections", "header_timeout_ms", "idle_timeout_ms", "body_timeout_ms", "saga",
    "max_attempts", "retry_base_ms", "retry_max_ms", "claim_idle_ms", "drain_timeout_ms",
    "retention_s", "idempotency_ttl_s", "log", "level", "debug", "info", "warn", "tenants",
    "name", "source_system", "instances", "api_keys", "sha256", "instance", "scopes",
    "connector", "type", "timeout_ms", "secret_env", "tenant_id", "company_code", "token_env",
    "auto_accept", "notify_url", "rate_limit", "per_second", "burst", "mappings", "tenant",
    "webhook", "kibo", "tecspal", "terminal", "order:*", "order:cancel", "order:read",
    "order:execute", "admin", "acme-supply", "swift-haul", "kibo-retail", "tecspal-hw",
    "http://127.0.0.1:9101", "https://example.com/", "http://a/?q#f", "ftp://x", "http://",
    "redis://127.0.0.1:6379/0", "redis://:secretpassword@h:1/2", "redis://u:p%40@[::1]:6379/15",
    "redis://h:0", "redis://h:65536", "redis://%zz@h", "ACME_WEBHOOK_SECRET", "lower_env",
    "a2fb8545fcd457204e9fee11be92013aa3240b1b146fe262ba608fdfc159041c",
    /* awkward strings */
    "", " ", "\r\n", "a\nb", "\xe2\x80\xa8", "\x1b[31m", "../../etc", "%2e%2e/", "null",
    "\xc3\xa9\xc3\xa9\xc3\xa9", "\xf0\x9f\x98\x80",
};

static const double reals[] = {0.0, -0.0, 0.5, -1.5, 1e-300, 5e-324, 1e300, 1.7976931348623157e308,
                               9007199254740993.0, 1e16, 3.14};
static const json_int_t ints[] = {0, 1, -1, 2, 16, 30, 31, 50, 51, 64, 65, 255, 256, 1000,
                                  1001, 65535, 65536, 2147483647, 2147483648LL,
                                  -2147483648LL, 9007199254740993LL, INT64_MAX, INT64_MIN};

/* A string of n copies of ch (length-limit probes: 30/31, 50/51, 64/65, 255/256, 1000/1001). */
static json_t *long_string(fuzz_rng_t *r)
{
    static const size_t lens[] = {16, 17, 24, 25, 30, 31, 36, 50, 51, 64, 65, 128, 129,
                                  255, 256, 1000, 1001};
    size_t n = lens[fuzz_rng_below(r, sizeof lens / sizeof lens[0])];
    bool multibyte = fuzz_rng_below(r, 4) == 0;
    size_t unit = multibyte ? 2 : 1;
    char *s = malloc(n * unit + 1);
    for (size_t i = 0; i < n; i++) {
        if (multibyte) {
            s[2 * i] = (char)0xc3;
            s[2 * i + 1] = (char)0xa9;
        } else {
            s[i] = "a0F-"[fuzz_rng_below(r, 4)];
        }
    }
    s[n * unit] = '\0';
    json_t *v = json_string(s);
    free(s);
    return v;
}

static json_t *random_scalar(fuzz_rng_t *r)
{
    switch (fuzz_rng_below(r, 9)) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(fuzz_rng_below(r, 2));
    case 2:
        return json_integer(ints[fuzz_rng_below(r, sizeof ints / sizeof ints[0])]);
    case 3:
        return json_real(reals[fuzz_rng_below(r, sizeof reals / sizeof reals[0])]);
    case 4:
        return long_string(r);
    case 5:
        return json_object();
    case 6:
        return json_array();
    default:
        return json_string(words[fuzz_rng_below(r, sizeof words / sizeof words[0])]);
    }
}

/* Every node, parents before children, with its parent (NULL for the root). */
typedef struct node {
    json_t *v;
    json_t *parent;
    const char *key; /* member name when parent is an object */
    size_t index;    /* element index when parent is an array */
} node_t;

#define MAX_NODES 512

static void collect(json_t *v, json_t *parent, const char *key, size_t index, node_t *out,
                    size_t *n)
{
    if (*n >= MAX_NODES)
        return;
    out[(*n)++] = (node_t){v, parent, key, index};
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) collect(x, v, k, 0, out, n);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) collect(x, v, NULL, i, out, n);
    }
}

/* Put nv where node sat (steals nv); returns the new root if the root was replaced. */
static json_t *replace(json_t *root, const node_t *nd, json_t *nv)
{
    if (nd->parent == NULL) {
        json_decref(root);
        return nv;
    }
    if (json_is_object(nd->parent))
        json_object_set_new(nd->parent, nd->key, nv);
    else
        json_array_set_new(nd->parent, nd->index, nv);
    return root;
}

static json_t *mutate_string(const json_t *s, fuzz_rng_t *r)
{
    size_t len = json_string_length(s);
    size_t max = len + 16;
    uint8_t *b = malloc(max);
    memcpy(b, json_string_value(s), len);
    size_t n = LLVMFuzzerMutate(b, len, max);
    (void)r;
    /* Invalid UTF-8 or a NUL would be refused by json_stringn: keep whatever jansson accepts. */
    json_t *v = json_stringn((const char *)b, n);
    free(b);
    return v ? v : json_string("x");
}

json_t *fuzz_json_mutate_value(json_t *root, fuzz_rng_t *r)
{
    node_t *nodes = malloc(MAX_NODES * sizeof *nodes);
    size_t n = 0;
    collect(root, NULL, NULL, 0, nodes, &n);
    const node_t nd = nodes[fuzz_rng_below(r, n)];
    free(nodes);
    json_t *v = nd.v;
    switch (fuzz_rng_below(r, 10)) {
    case 0: /* replace with a scalar or an empty container */
    case 1:
        root = replace(root, &nd, random_scalar(r));
        break;
    case 2: /* delete it */
        if (json_is_object(nd.parent))
            json_object_del(nd.parent, nd.key);
        else if (json_is_array(nd.parent))
            json_array_remove(nd.parent, nd.index);
        break;
    case 3: /* add a known member, or an element */
        if (json_is_object(v))
            json_object_set_new(v, words[fuzz_rng_below(r, sizeof words / sizeof words[0])],
                                random_scalar(r));
        else if (json_is_array(v))
            json_array_append_new(v, random_scalar(r));
        else
            root = replace(root, &nd, random_scalar(r));
        break;
    case 4: /* duplicate an array element / copy the value next to itself */
        if (json_is_array(nd.parent))
            json_array_insert_new(nd.parent, nd.index, json_deep_copy(v));
        else if (json_is_array(v) && json_array_size(v) > 0)
            json_array_append_new(v, json_deep_copy(json_array_get(v, 0)));
        break;
    case 5: /* wrap */
        if (fuzz_rng_below(r, 2)) {
            json_t *a = json_array();
            json_array_append(a, v);
            root = replace(root, &nd, a);
        } else {
            json_t *o = json_object();
            json_object_set(o, words[fuzz_rng_below(r, sizeof words / sizeof words[0])], v);
            root = replace(root, &nd, o);
        }
        break;
    case 6: /* byte-mutate a string, or a number's text */
        if (json_is_string(v)) {
            root = replace(root, &nd, mutate_string(v, r));
        } else if (json_is_number(v)) {
            char txt[64];
            snprintf(txt, sizeof txt, "%.17g", json_number_value(v));
            root = replace(root, &nd, json_string(txt));
        } else {
            root = replace(root, &nd, random_scalar(r));
        }
        break;
    case 7: /* a known field name's value swapped for a known word (enum values, ids, dates) */
        if (json_is_object(v) && json_object_size(v) > 0) {
            const char *k;
            json_t *x;
            size_t pick = fuzz_rng_below(r, json_object_size(v)), i = 0;
            json_object_foreach(v, k, x)
            {
                if (i++ == pick) {
                    json_object_set_new(
                        v, k, json_string(words[fuzz_rng_below(r, sizeof words / sizeof words[0])]));
                    break;
                }
            }
        } else {
            root = replace(root, &nd,
                           json_string(words[fuzz_rng_below(r, sizeof words / sizeof words[0])]));
        }
        break;
    case 8: /* numbers at the edges */
        if (json_is_integer(v) || json_is_real(v) || fuzz_rng_below(r, 2))
            root = replace(root, &nd,
                           fuzz_rng_below(r, 2)
                               ? json_integer(ints[fuzz_rng_below(r, sizeof ints / sizeof ints[0])])
                               : json_real(reals[fuzz_rng_below(r, sizeof reals / sizeof reals[0])]));
        break;
    default: /* move a member of the root into a nested object (or back out) */
        if (json_is_object(nd.parent) && nd.parent != root && json_is_object(root)) {
            json_object_set_new(root, nd.key, json_deep_copy(v));
        } else if (json_is_object(v) && json_is_object(root) && v != root) {
            const char *k;
            json_t *x;
            json_object_foreach(root, k, x)
            {
                if (x != v) {
                    /* a copy: x may contain v, and a shared child would make a cycle */
                    json_object_set_new(v, k, json_deep_copy(x));
                    break;
                }
            }
        }
        break;
    }
    return root;
}

json_t *fuzz_json_parse(const uint8_t *data, size_t size)
{
    return json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
}

size_t fuzz_json_mutate(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    json_t *root = fuzz_json_parse(data, size);
    if (root == NULL)
        return 0;
    fuzz_rng_t r;
    fuzz_rng_seed(&r, ((uint64_t)seed << 32) ^ seed ^ size);
    size_t rounds = 1 + fuzz_rng_below(&r, 3);
    for (size_t i = 0; i < rounds && root != NULL; i++)
        root = fuzz_json_mutate_value(root, &r);
    if (root == NULL)
        return 0;
    size_t flags = JSON_ENCODE_ANY | (fuzz_rng_below(&r, 3) == 0 ? JSON_INDENT(1) : JSON_COMPACT);
    char *text = json_dumps(root, flags);
    json_decref(root);
    if (text == NULL)
        return 0;
    size_t n = strlen(text);
    if (n > max_size || n == 0) {
        free(text);
        return 0;
    }
    memcpy(data, text, n);
    free(text);
    return n;
}
