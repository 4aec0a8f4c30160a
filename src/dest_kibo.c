/*
 * dest_kibo.c - Kibo Order Management, translated API (seeds/kibo-translated-cancel-order.txt).
 *
 * Kibo has an API for cancel only: POST {url}/api/v2/order/action/cancel with the tenant in
 * x-vol-tenant and {"orderID": <int >= 1>, "dispositionReason": <enum>,
 * "dispositionOtherReason": <1-255 chars, with "other">}. The counterparty's order reference must
 * be Kibo's integer order ID; anything else is refused here, without sending. Every other
 * action ends rejected: "not supported by destination system kibo".
 */
#include "dest.h"

#include "util/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Disposition reasons passed through as given; any other reason_code becomes "other". */
static const char *const kibo_reasons[] = {
    "customer_changed_mind", "created_by_mistake", "duplicate_order", "fraud",
    "item_out_of_stock",     "payment_declined",   "other",
};

static const char DEFAULT_REASON[] = "Canceled through Crossroads";

static bool known_reason(const char *r)
{
    for (size_t i = 0; i < sizeof kibo_reasons / sizeof kibo_reasons[0]; i++)
        if (strcmp(r, kibo_reasons[i]) == 0)
            return true;
    return false;
}

/* Kibo's orderID: a decimal integer >= 1 that fits in 53 bits (exact in every JSON reader). */
static bool kibo_order_id(const char *s, long long *out)
{
    if (s == NULL || *s < '1' || *s > '9' || strlen(s) > 16)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno != 0 || v < 1 || v > (1LL << 53))
        return false;
    *out = v;
    return true;
}

static dest_outcome_t build(const dest_ctx_t *ctx, json_t **out, char *msg, size_t msglen)
{
    if (strcmp(ctx->action, "cancel") != 0) {
        snprintf(msg, msglen, "not supported by destination system kibo");
        return DEST_REJECTED;
    }
    long long order_id;
    if (!kibo_order_id(ctx->cp_order_number, &order_id)) {
        snprintf(msg, msglen,
                 "the order's reference in kibo ('%s') is not a Kibo order ID (integer >= 1)",
                 ctx->cp_order_number ? ctx->cp_order_number : "");
        return DEST_REJECTED;
    }
    const char *reason = json_string_value(json_object_get(ctx->request, "reason_code"));
    json_t *body = json_pack("{s:I}", "orderID", (json_int_t)order_id);
    if (reason && known_reason(reason) && strcmp(reason, "other") != 0) {
        json_object_set_new(body, "dispositionReason", json_string(reason));
    } else {
        json_object_set_new(body, "dispositionReason", json_string("other"));
        json_object_set_new(body, "dispositionOtherReason",
                            json_string(reason && *reason ? reason : DEFAULT_REASON));
    }
    buf_t url = {0}, tenant = {0};
    buf_printf(&url, "%s/api/v2/order/action/cancel", ctx->cp->connector.url);
    buf_printf(&tenant, "x-vol-tenant: %s", ctx->cp->connector.tenant_id);
    *out = json_pack("{s:s, s:s%, s:[s, s%], s:o}", "method", "POST", "url", url.data, url.len,
                     "headers", "Content-Type: application/json", tenant.data, tenant.len, "body",
                     body);
    buf_free(&url);
    buf_free(&tenant);
    return DEST_DONE;
}

static dest_outcome_t classify(const char *action, const outhttp_response_t *resp, char *msg,
                               size_t msglen, char **cp_order_number)
{
    (void)action;
    (void)cp_order_number;
    dest_outcome_t oc = dest_classify_http(resp, msg, msglen);
    if (oc == DEST_REJECTED && (resp->status == 401 || resp->status == 403)) {
        /* Credentials or tenant configuration: retrying will not help, nor is it a business no. */
        char detail[256];
        snprintf(detail, sizeof detail, "%s", msg);
        snprintf(msg, msglen, "kibo refused the credentials (HTTP %ld): %s", resp->status, detail);
        return DEST_ERROR;
    }
    if (oc == DEST_DONE)
        snprintf(msg, msglen, "canceled in kibo (HTTP %ld)", resp->status);
    return oc;
}

const dest_ops_t dest_kibo_ops = {
    .type = "kibo",
    .build = build,
    .sign = NULL,
    .classify = classify,
};
