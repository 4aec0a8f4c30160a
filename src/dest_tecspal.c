/*
 * dest_tecspal.c - the Tecspal orchestrator (seeds/tecspal-cancel-order.txt).
 *
 * Cancel only: POST {url}/orders/cancel with Authorization: Bearer <token> and
 * {"data":{"id":<uuid>,"companyCode":...},"request":"orders/cancel","vendor":"tecspal",
 * "verb":"POST"}. 200 with envelop[0].status "CANCELLED" is done (an already cancelled order
 * answers the same: idempotent); 400 is a business no carrying Tecspal's message; 401 is a
 * credentials error, not retried. The token is read from the environment at each attempt and
 * added to the request then, so it is never stored with the saga.
 */
#include "dest.h"

#include "util/buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static dest_outcome_t build(const dest_ctx_t *ctx, json_t **out, char *msg, size_t msglen)
{
    if (strcmp(ctx->action, "cancel") != 0) {
        snprintf(msg, msglen, "not supported by destination system tecspal");
        return DEST_REJECTED;
    }
    if (!is_uuid(ctx->cp_order_number)) {
        snprintf(msg, msglen, "the order's reference in tecspal ('%s') is not a Tecspal order id "
                 "(UUID)", ctx->cp_order_number ? ctx->cp_order_number : "");
        return DEST_REJECTED;
    }
    json_t *body = json_pack("{s:{s:s, s:s}, s:s, s:s, s:s}", "data", "id", ctx->cp_order_number,
                             "companyCode", ctx->cp->connector.company_code, "request",
                             "orders/cancel", "vendor", "tecspal", "verb", "POST");
    buf_t url = {0};
    buf_printf(&url, "%s/orders/cancel", ctx->cp->connector.url);
    *out = json_pack("{s:s, s:s%, s:[s], s:o}", "method", "POST", "url", url.data, url.len,
                     "headers", "Content-Type: application/json", "body", body);
    buf_free(&url);
    return DEST_DONE;
}

static void sign(const cfg_tenant_t *cp, const char *body, size_t body_len, json_t *headers)
{
    (void)body;
    (void)body_len;
    const char *token = cp->connector.token_env ? getenv(cp->connector.token_env) : NULL;
    if (token == NULL || *token == '\0')
        return; /* classify() sees the 401 and reports the missing credentials */
    buf_t b = {0};
    buf_printf(&b, "Authorization: Bearer %s", token);
    json_array_append_new(headers, json_stringn(b.data, b.len));
    buf_free(&b);
}

static dest_outcome_t classify(const char *action, const outhttp_response_t *resp, char *msg,
                               size_t msglen, char **cp_order_number)
{
    (void)action;
    (void)cp_order_number;
    dest_outcome_t oc = dest_classify_http(resp, msg, msglen);
    if (resp->error)
        return oc;
    if (resp->status == 401 || resp->status == 403) {
        char detail[256];
        dest_body_message(resp, detail, sizeof detail);
        snprintf(msg, msglen, "tecspal refused the credentials (HTTP %ld): %s", resp->status,
                 detail);
        return DEST_ERROR;
    }
    if (oc != DEST_DONE)
        return oc;
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *st =
        json_string_value(json_object_get(json_array_get(json_object_get(j, "envelop"), 0),
                                          "status"));
    bool cancelled = resp->status == 200 && st && strcmp(st, "CANCELLED") == 0;
    if (cancelled)
        snprintf(msg, msglen, "canceled in tecspal");
    else
        snprintf(msg, msglen, "tecspal answered HTTP %ld without a CANCELLED order (status %s)",
                 resp->status, st ? st : "missing");
    json_decref(j);
    return cancelled ? DEST_DONE : DEST_ERROR;
}

const dest_ops_t dest_tecspal_ops = {
    .type = "tecspal",
    .build = build,
    .sign = sign,
    .classify = classify,
};
