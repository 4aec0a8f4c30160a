/*
 * validate.h - field rules for the seven mutation bodies (SPEC section 2, seeds/), reported the
 * way FastAPI with pydantic v2 reports them: one entry per problem, each
 *   {"type": ..., "loc": ["body", "order", "order_id"], "msg": ..., "input": ..., "ctx": {...}}
 * ("input" is the offending value, or absent when the field is missing; "ctx" only where
 * pydantic has one: max_length, pattern, expected, gt, error, ...).
 *
 * Owns nothing between calls. Must not: look at tenants, Redis or the clock (pure functions;
 * the caller fills tenant-dependent defaults such as hauled_by).
 */
#ifndef CR_VALIDATE_H
#define CR_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

typedef enum {
    VAL_CANCEL = 0,
    VAL_RESET,
    VAL_UPDATE_STATUS,
    VAL_CREATE,
    VAL_ACCEPT,
    VAL_BOL,
    VAL_DROP,
} val_kind_t;

#define VAL_MAX_ERRORS 256     /* entries in one 422 answer; further problems are not listed */
#define VAL_MAX_INPUT_DEPTH 32 /* an "input" nested deeper is left out of its entry */

/*
 * Append one error entry to errors (a JSON array). loc is stolen (a JSON array); input is
 * borrowed and copied (NULL: no "input" member); ctx is stolen (NULL: no "ctx" member).
 */
void val_error_add(json_t *errors, json_t *loc, const char *type, const char *msg,
                   const json_t *input, json_t *ctx);

/*
 * Parse a request body as strict JSON: UTF-8, no duplicate keys, no NUL, one document, depth
 * bounded by jansson. On success returns the parsed value (any JSON type; a new reference).
 * On failure returns NULL and appends one "json_invalid" entry with loc ["body", <byte offset>]
 * (the offset just past the offending byte or token, counted in bytes), msg "JSON decode error",
 * input {} (as FastAPI) and ctx {"error": <parser's reason>}. An empty body (len 0) appends
 * {"type":"missing","loc":["body"],"msg":"Field required"} instead.
 */
json_t *val_json_parse(const char *body, size_t len, json_t *errors);

/*
 * Validate a parsed body for one mutation. Appends one entry per problem to errors (locs start
 * with "body"). When no problem was found returns 0 and sets *out to a new object holding only
 * the recognised fields in canonical form:
 *   - datetimes re-rendered as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC);
 *   - cancel: reason_code given inside "order" is hoisted to the top level (top level wins);
 *   - update_status: delivery_eta copied from eta when absent;
 *   - order_id / mapping_id lower-cased;
 *   - absent optional fields are left out (not null).
 * Returns a negative code (and leaves *out NULL) when at least one entry was appended.
 * The body need not be an object: anything else is one "model_attributes_type" entry at ["body"].
 */
int val_mutation(val_kind_t kind, const json_t *body, json_t *errors, json_t **out);

/* "cancel", "reset", "update_status", "create", "accept", "bol", "drop". */
const char *val_kind_name(val_kind_t kind);

#endif
