/*
 * dest.h - destination connectors: how a mapped saga becomes a request to the counterparty's
 * system, and how that system's answer is read. One ops table per connector type (dest_*.c),
 * chosen by the tenant's connector.type; adding a connector is one file and one table row.
 *
 * Owns nothing. Must not: send anything (saga.c sends through outhttp), or put secrets into what
 * it returns other than in headers the caller redacts before logging.
 */
#ifndef CR_DEST_H
#define CR_DEST_H

#include "config.h"
#include "outhttp.h"

#include <jansson.h>
#include <stddef.h>

typedef enum {
    DEST_DONE = 0, /* the counterparty accepted it */
    DEST_REJECTED, /* a business "no": terminal, with the destination's message */
    DEST_RETRY,    /* transient: timeouts, connection errors, 5xx, 408, 429 */
    DEST_ERROR,    /* our side or credentials: terminal, not retried */
} dest_outcome_t;

/* What a connector gets to build the outbound request. All borrowed. */
typedef struct dest_ctx {
    const char *action;           /* "cancel", "reset", "update_status", "create", "bol", "drop" */
    const char *saga_id;
    const cfg_tenant_t *caller;   /* who sent the mutation */
    const cfg_tenant_t *cp;       /* the counterparty (whose connector this is) */
    const json_t *request;        /* the canonical request body */
    const json_t *order;          /* the order hash (strings) */
    const json_t *cp_refs;        /* references translated into the counterparty's mappings */
    const char *cp_order_number;  /* the counterparty's own order reference, or NULL */
} dest_ctx_t;

typedef struct dest_ops {
    const char *type;
    /*
     * Build the outbound request as {"method","url","headers":[...],"body": <document>} into *out;
     * the caller sends (and stores) the body as its compact JSON text.
     * Return DEST_DONE on success; DEST_REJECTED or DEST_ERROR with a message (static or written
     * into msg) when the request cannot or must not be sent (an action the system has no API
     * for, a reference it cannot take).
     */
    dest_outcome_t (*build)(const dest_ctx_t *ctx, json_t **out, char *msg, size_t msglen);
    /*
     * Add per-attempt headers (timestamps, signatures, credentials from the environment) to
     * headers (a JSON array of strings) for body. May be NULL.
     */
    void (*sign)(const cfg_tenant_t *cp, const char *body, size_t body_len, json_t *headers);
    /*
     * Read an answer. Returns the outcome, writes a message for the saga into msg, and may set
     * *cp_order_number (a new string, caller frees) to the counterparty's own order reference.
     */
    dest_outcome_t (*classify)(const char *action, const outhttp_response_t *resp, char *msg,
                               size_t msglen, char **cp_order_number);
} dest_ops_t;

/* The ops for a connector type. */
const dest_ops_t *dest_ops_for(cfg_connector_type_t type);

extern const dest_ops_t dest_webhook_ops;
extern const dest_ops_t dest_kibo_ops;
extern const dest_ops_t dest_tecspal_ops;

/* Helpers shared by connectors. */
/* The message of an error body: "detail", "message" or "error" if a string, else "HTTP <n>". */
void dest_body_message(const outhttp_response_t *resp, char *msg, size_t msglen);
/* The transport-level outcome (retry on timeouts, 5xx, 408, 429); DEST_DONE for 2xx. */
dest_outcome_t dest_classify_http(const outhttp_response_t *resp, char *msg, size_t msglen);
/* "sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>" into out (72 bytes). */
void dest_signature(const char *secret, const char *ts, const char *body, size_t body_len,
                    char out[80]);

#endif
