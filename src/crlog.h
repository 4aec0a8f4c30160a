/*
 * crlog.h - CrossroadsLogV2 entries (the seeds' "log" object), built in one place for intake
 * answers and saga stage logs alike.
 *
 * Owns nothing; returns new jansson references. Must not: put a secret in an entry (callers
 * pass outbound requests through crlog_redact_headers first).
 */
#ifndef CR_CRLOG_H
#define CR_CRLOG_H

#include "config.h"
#include "util/buf.h"

#include <jansson.h>

typedef struct crlog_fields {
    const char *title;
    const char *status;    /* the saga status the entry records */
    const char *severity;  /* "low", "medium", "high" */
    const char *message;   /* detail.message */
    const char *message_short;
    const cfg_tenant_t *from;  /* message origin (the caller) */
    const char *instance;      /* origin instance or NULL */
    const cfg_tenant_t *to;    /* counterparty */
    const char *saga_id;
    const char *saga_type;
    const char *correlation_id;
    const char *order_number;  /* origin order number, or NULL */
    const char *order_id;      /* Crossroads order id, or NULL */
    bool retried;
    json_t *outbound;          /* stolen; NULL -> {} */
    json_t *inbound;           /* stolen; NULL -> {} */
    const char *extra_name;    /* one more member at the end when not NULL ("cleared_data") */
    json_t *extra;             /* stolen; its value */
} crlog_fields_t;

/* Append a complete log entry (a JSON object) with a fresh _id and the current time to out.
 * Written as text directly: building it with jansson and dumping it was a fifth of the
 * gateway's instructions per request. */
void crlog_entry_text(buf_t *out, const crlog_fields_t *f);

/* A copy of a JSON array of "Name: value" header strings with secret values replaced by
 * "[redacted]" (Authorization, X-API-Key, Cookie, x-vol-*-secret...). */
json_t *crlog_redact_headers(const json_t *headers);

/* A JSON string of n bytes of s, with invalid UTF-8 replaced by U+FFFD (partner input). */
json_t *crlog_string_lossy(const char *s, size_t n);

#endif
