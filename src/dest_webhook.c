/*
 * dest_webhook.c - the Crossroads-native webhook connector: POST {url}/v1/order/{action} with
 * the body rewritten into the counterparty's own references, signed per attempt.
 *
 * Signature: X-Crossroads-Timestamp: <unix seconds>, X-Crossroads-Signature:
 * sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>, with the secret from the
 * environment variable the tenant's connector.secret_env names. A receiver recomputes the HMAC
 * over the timestamp, a dot and the exact body bytes, compares in constant time, and refuses
 * timestamps too far from its clock (replays).
 */
#include "dest.h"

#include "util/buf.h"
#include "util/cr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The counterparty's MappingKey for a translated reference. */
static json_t *cp_key(const json_t *ref)
{
    json_t *k = json_object();
    const char *f[] = {"source_id", "source_name", "mapping_id"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(ref, f[i]);
        if (json_is_string(v))
            json_object_set(k, f[i], v);
    }
    return k;
}

static void copy_fields(json_t *dst, const json_t *src, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(src, names[i]);
        if (v)
            json_object_set(dst, names[i], v);
    }
}

static json_t *order_ref(const dest_ctx_t *ctx)
{
    json_t *o = json_object();
    json_object_set_new(o, "order_id",
                        json_string(json_string_value(json_object_get(ctx->order, "order_id"))));
    if (ctx->cp_order_number && *ctx->cp_order_number)
        json_object_set_new(o, "order_number", json_string(ctx->cp_order_number));
    return o;
}

static dest_outcome_t build(const dest_ctx_t *ctx, json_t **out, char *msg, size_t msglen)
{
    const json_t *rq = ctx->request;
    const json_t *refs = ctx->cp_refs;
    json_t *body = json_object();
    const char *a = ctx->action;
    if (strcmp(a, "create") == 0) {
        const json_t *order = ctx->order;
        json_object_set_new(body, "order_id",
                            json_string(json_string_value(json_object_get(order, "order_id"))));
        json_object_set(body, "order_number", json_object_get(rq, "order_number"));
        json_t *lines = json_array();
        size_t i;
        json_t *line;
        json_array_foreach(json_object_get(rq, "lines"), i, line)
        {
            const json_t *lr = json_array_get(json_object_get(refs, "lines"), i);
            json_t *l = json_object();
            json_object_set_new(l, "product", cp_key(json_object_get(lr, "product")));
            json_object_set_new(l, "terminal", cp_key(json_object_get(lr, "terminal")));
            json_object_set_new(l, "site", cp_key(json_object_get(lr, "site")));
            static const char *const lf[] = {"quantity", "uom"};
            copy_fields(l, line, lf, 2);
            json_array_append_new(lines, l);
        }
        json_object_set_new(body, "lines", lines);
        static const char *const cf[] = {"requested_delivery", "notes"};
        copy_fields(body, rq, cf, 2);
    } else {
        json_object_set_new(body, "order", order_ref(ctx));
        if (strcmp(a, "cancel") == 0) {
            static const char *const f[] = {"reason_code"};
            copy_fields(body, rq, f, 1);
        } else if (strcmp(a, "update_status") == 0) {
            static const char *const f[] = {"progress_status", "eta",         "delivery_eta",
                                            "actual",          "assigned_to", "hauled_by"};
            copy_fields(body, rq, f, 6);
            if (json_object_get(refs, "location"))
                json_object_set_new(body, "location", cp_key(json_object_get(refs, "location")));
        } else if (strcmp(a, "bol") == 0) {
            static const char *const f[] = {"bol_number", "gross_volume", "net_volume", "actual"};
            copy_fields(body, rq, f, 4);
            json_object_set_new(body, "terminal", cp_key(json_object_get(refs, "terminal")));
            json_object_set_new(body, "product", cp_key(json_object_get(refs, "product")));
        } else if (strcmp(a, "drop") == 0) {
            static const char *const f[] = {"volume", "actual"};
            copy_fields(body, rq, f, 2);
            json_object_set_new(body, "site", cp_key(json_object_get(refs, "site")));
            json_object_set_new(body, "product", cp_key(json_object_get(refs, "product")));
        } else if (strcmp(a, "reset") != 0) {
            json_decref(body);
            snprintf(msg, msglen, "not supported by destination system webhook");
            return DEST_REJECTED;
        }
    }
    buf_t url = {0}, idem = {0}, from = {0}, to = {0};
    buf_append_str(&url, ctx->cp->connector.url);
    buf_append_str(&url, "/v1/order/");
    buf_append_str(&url, a);
    buf_append_str(&idem, "Idempotency-Key: ");
    buf_append_str(&idem, ctx->saga_id);
    buf_append_str(&from, "X-Tenant-Name: ");
    buf_append_str(&from, ctx->caller->name);
    buf_append_str(&to, "X-Dest-Tenant-Name: ");
    buf_append_str(&to, ctx->cp->name);
    *out = json_pack("{s:s, s:s%, s:[s, s%, s%, s%], s:o}", "method", "POST", "url", url.data,
                     url.len, "headers", "Content-Type: application/json", idem.data, idem.len,
                     from.data, from.len, to.data, to.len, "body", body);
    buf_free(&url);
    buf_free(&idem);
    buf_free(&from);
    buf_free(&to);
    return DEST_DONE;
}

static void sign(const cfg_tenant_t *cp, const char *body, size_t body_len, json_t *headers)
{
    char ts[CR_INT_LEN];
    cr_fmt_int(ts, (long long)time(NULL));
    char h[64];
    cr_cat(h, sizeof h, "X-Crossroads-Timestamp: ", ts, NULL);
    json_array_append_new(headers, json_string(h));
    const char *secret = cp->connector.secret_env ? getenv(cp->connector.secret_env) : NULL;
    if (secret == NULL || *secret == '\0')
        return; /* unsigned: the tenant configured no secret (documented in the README) */
    char sig[80], line[112];
    dest_signature(secret, ts, body, body_len, sig);
    cr_cat(line, sizeof line, "X-Crossroads-Signature: ", sig, NULL);
    json_array_append_new(headers, json_string(line));
}

static dest_outcome_t classify(const char *action, const outhttp_response_t *resp, char *msg,
                               size_t msglen, char **cp_order_number)
{
    (void)action;
    dest_outcome_t oc = dest_classify_http(resp, msg, msglen);
    if (oc == DEST_DONE) {
        /* A 2xx body may name the counterparty's own order reference. */
        json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
        const char *num = json_string_value(json_object_get(j, "order_number"));
        if (num && *num && strlen(num) <= 64)
            *cp_order_number = strdup(num);
        json_decref(j);
    }
    return oc;
}

const dest_ops_t dest_webhook_ops = {
    .type = "webhook",
    .build = build,
    .sign = sign,
    .classify = classify,
};
