/*
 * dest.c - the connector table and the helpers connectors share (see dest.h).
 */
#include "dest.h"

#include "util/buf.h"
#include "util/cr.h"
#include "util/crypto.h"

#include <stdio.h>
#include <string.h>

const dest_ops_t *dest_ops_for(cfg_connector_type_t type)
{
    switch (type) {
    case CFG_CONNECTOR_WEBHOOK:
        return &dest_webhook_ops;
    case CFG_CONNECTOR_KIBO:
        return &dest_kibo_ops;
    case CFG_CONNECTOR_TECSPAL:
        return &dest_tecspal_ops;
    default:
        return NULL;
    }
}

void dest_body_message(const outhttp_response_t *resp, char *msg, size_t msglen)
{
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *fields[] = {"detail", "message", "error"};
    for (size_t i = 0; j && i < 3; i++) {
        const char *s = json_string_value(json_object_get(j, fields[i]));
        if (s && *s) {
            snprintf(msg, msglen, "%s", s);
            json_decref(j);
            return;
        }
    }
    json_decref(j);
    snprintf(msg, msglen, "HTTP %ld from destination", resp->status);
}

dest_outcome_t dest_classify_http(const outhttp_response_t *resp, char *msg, size_t msglen)
{
    if (resp->error) {
        snprintf(msg, msglen, "%s%s%s", resp->error, resp->error_detail ? ": " : "",
                 resp->error_detail ? resp->error_detail : "");
        return resp->error == OUTHTTP_ERR_BAD_URL ? DEST_ERROR : DEST_RETRY;
    }
    long st = resp->status;
    if (st >= 200 && st < 300) {
        char code[CR_INT_LEN];
        cr_fmt_int(code, st);
        cr_cat(msg, msglen, "HTTP ", code, " from destination");
        return DEST_DONE;
    }
    if (st >= 500 || st == 408 || st == 429) {
        dest_body_message(resp, msg, msglen);
        return DEST_RETRY;
    }
    if (st >= 300 && st < 400) {
        snprintf(msg, msglen, "destination answered a redirect (HTTP %ld), which is not followed",
                 st);
        return DEST_ERROR;
    }
    dest_body_message(resp, msg, msglen);
    return DEST_REJECTED;
}

void dest_signature(const char *secret, const char *ts, const char *body, size_t body_len,
                    char out[80])
{
    buf_t b = {0};
    buf_append_str(&b, ts);
    buf_append(&b, ".", 1);
    buf_append(&b, body, body_len);
    uint8_t mac[32];
    crypto_hmac_sha256(secret, strlen(secret), b.data, b.len, mac);
    buf_free(&b);
    memcpy(out, "sha256=", 7);
    crypto_hex(mac, 32, out + 7);
}
