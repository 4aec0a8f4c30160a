/*
 * standin.h - realistic stand-ins for the destination systems the gateway talks to, for the
 * integration tests: each is a small HTTP/1.1 server on a free 127.0.0.1 port, run by its own
 * pthread, that implements the documented behaviour of the system it stands for.
 *
 *   STANDIN_KIBO     Kibo Order Management, translated Cancel Order API
 *                    (shared/seeds/kibo-translated-cancel-order.txt):
 *                    POST /api/v2/order/action/cancel with x-vol-tenant: <tenant id>
 *                    (else 401), body {"orderID": int >= 1, "dispositionReason": <enum>,
 *                    "dispositionOtherReason": 1-255 chars when "other"} (else 400 with a Kibo
 *                    style error {"message","errorCode","applicationName","items"}); a known
 *                    order ID answers 200 in the Get Order shape with "status": "Cancelled",
 *                    an unknown one 404 ITEM_NOT_FOUND.
 *   STANDIN_TECSPAL  the Tecspal orchestrator cancel (shared/seeds/tecspal-cancel-order.txt):
 *                    POST /orders/cancel with Authorization: Bearer <token> (else 401), the
 *                    exact envelope {"data":{"id","companyCode"},"request":"orders/cancel",
 *                    "vendor":"tecspal","verb":"POST"}; an order store id -> (status,
 *                    companyCode): PENDING/QUOTED become CANCELLED (200), CANCELLED answers the
 *                    same 200 (idempotent), any other status 400 "The Order cannot be
 *                    cancelled...", unknown id or another company 400 "Order request not found",
 *                    no id 400 "id is required".
 *   STANDIN_WEBHOOK  a Crossroads-native receiver: any POST under /v1/order/ and to its notify
 *                    path (default "/notify"). It verifies X-Crossroads-Timestamp and
 *                    X-Crossroads-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>
 *                    (constant-time compare; timestamps more than 300 s from now refused) and
 *                    answers 401 to a missing or bad signature, else 200
 *                    {"received": true, "order_number": "<prefix><n>"} (n counts its 2xx
 *                    answers from 1; no order_number when the prefix is NULL).
 *
 * Every stand-in records every request (method, path, raw headers, body, and what it answered)
 * and counts deliveries per Idempotency-Key (a request without one is counted by its body). A
 * fault switch makes the next N requests answer a given status (e.g. 500) before anything else
 * is looked at. All functions are thread-safe; records are copied out.
 */
#ifndef CR_TEST_STANDIN_H
#define CR_TEST_STANDIN_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    STANDIN_KIBO,
    STANDIN_TECSPAL,
    STANDIN_WEBHOOK,
} standin_kind_t;

typedef struct standin standin_t;

/* One recorded request and the stand-in's answer (copies; free with standin_req_free). */
typedef struct standin_req {
    char method[16];
    char path[512];
    char *headers; /* raw header lines "Name: value\r\n"..., NUL-terminated */
    char *body;    /* NUL-terminated (may hold NULs before body_len) */
    size_t body_len;
    int status;        /* what the stand-in answered */
    char *response;    /* the answer's body, NUL-terminated */
    bool signature_ok; /* webhook: the signature verified (always false for other kinds) */
    bool faulted;      /* answered by the fault switch (standin_fail_next) */
} standin_req_t;

/* Start a stand-in on a free 127.0.0.1 port; NULL on error. */
standin_t *standin_start(standin_kind_t kind);
/* Stop its thread, close every connection, free everything. NULL is ignored. */
void standin_stop(standin_t *s);
int standin_port(const standin_t *s);
/* "http://127.0.0.1:<port>" (valid while s lives). */
const char *standin_url(const standin_t *s);

/* Fault switch: the next n requests answer status (5xx: a JSON error in the system's style). */
void standin_fail_next(standin_t *s, int n, int status);

/* ---------------------------------------------------------------- Kibo */
/* The tenant id x-vol-tenant must carry. */
void standin_kibo_set_tenant(standin_t *s, const char *tenant_id);
/* A known order (status "Accepted"); order_number may be NULL (then the id as text). */
void standin_kibo_add_order(standin_t *s, long long id, const char *order_number);
/* The order's status ("Accepted", "Cancelled") into out; false for an unknown id. */
bool standin_kibo_order_status(standin_t *s, long long id, char *out, size_t size);

/* ---------------------------------------------------------------- Tecspal */
/* The bearer token Authorization must carry. */
void standin_tecspal_set_token(standin_t *s, const char *token);
/* Add or replace an order: id (UUID), status (PENDING, QUOTED, DELIVERED, CANCELLED...),
 * company code. */
void standin_tecspal_set_order(standin_t *s, const char *id, const char *status,
                               const char *company_code);
bool standin_tecspal_order_status(standin_t *s, const char *id, char *out, size_t size);

/* ---------------------------------------------------------------- webhook receiver */
void standin_webhook_set_secret(standin_t *s, const char *secret);
/* Prefix of the order_number answered (default "WH-"); NULL: answer no order_number. */
void standin_webhook_set_order_prefix(standin_t *s, const char *prefix);
/* The notify path (default "/notify"). */
void standin_webhook_set_notify_path(standin_t *s, const char *path);

/* ---------------------------------------------------------------- records */
size_t standin_request_count(standin_t *s);
/* Copy record i into out; false if there is none. */
bool standin_request(standin_t *s, size_t i, standin_req_t *out);
void standin_req_free(standin_req_t *r);
/* Value of a request header (case-insensitive) into out; false if absent. */
bool standin_req_header(const standin_req_t *r, const char *name, char *out, size_t size);
/* Wait until at least n requests are recorded (deadline ms); true on success. */
bool standin_wait_count(standin_t *s, size_t n, int deadline_ms);
/* Deliveries counted under key: requests whose Idempotency-Key is key, plus requests without
 * an Idempotency-Key whose body is exactly key. */
size_t standin_deliveries(standin_t *s, const char *key);
/* The largest number of requests with the same Idempotency-Key among requests whose path
 * starts with path_prefix (0 when none carries one). */
size_t standin_max_per_key(standin_t *s, const char *path_prefix);

/* "sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>" into out (NUL-terminated, 72 bytes):
 * computed here with OpenSSL, independently of the gateway's own code. */
void standin_sign(const char *secret, const char *ts, const char *body, size_t body_len,
                  char out[80]);

#endif
