/*
 * intake.h - the durable intake write: the one place a mutation becomes a stored saga.
 *
 * A Lua script writes, atomically for each request, the saga stream entry, the saga record's
 * control fields, its first history entry and (when the client sent an Idempotency-Key) the
 * idempotency record, after checking that record for a repeat or a clash. The requests submitted
 * in one loop iteration go to Redis as one transaction (a batch, bounded in bytes so Redis reads
 * it in one pass), on the next of the redis.pool connections: MULTI, a plain HSET of each saga
 * record (and of each created order), one EVALSHA for all of them, EXEC. Per request, Redis then
 * runs one script call instead of several and one ZADD per index instead of five, and the bulk
 * of each record never passes through Lua; the script deletes the records of the requests it
 * does not store. The same script resolves the order the request names (by id, or by the
 * caller's order number) and appends the saga to that order's queue, so the order of mutations
 * on one order is the order Redis accepted them, whichever gateway process took them; a create
 * claims its order number and indexes it. Only a reply from Redis makes a saga "accepted"; a
 * failure or timeout leaves its outcome to the client's idempotent retry.
 *
 * Owns: the script, the batch being filled and a check handle that sends it when the loop
 * iteration ends. Must not: answer HTTP (the caller does, from the callback).
 */
#ifndef CR_INTAKE_H
#define CR_INTAKE_H

#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct intake_rec {
    const char *saga_id;
    const char *saga_type;
    const char *tenant;
    const char *idem_key_hash;  /* hex sha256 of the client's Idempotency-Key, or NULL */
    const char *fingerprint;    /* hex sha256 of what makes a request "the same" */
    long idem_ttl_s;
    const char *response;       /* the JSON answer to give now and to repeats */
    const char *history;        /* first history entry (JSON) */
    const char *dest;           /* X-Dest-Tenant-Name */
    const char *order_id;       /* as given (or assigned, for create); "" if none */
    const char *order_number;   /* as given; "" if none */
    const char **order_fields;  /* create only: field/value pairs of the order hash */
    size_t n_order_fields;      /* number of strings in order_fields (pairs * 2) */
    const char *now_ms;         /* wall clock, for the active-saga index */
    long retention_s;           /* how long the order's saga index keeps entries */
    /* field/value pairs for the saga hash */
    const char **fields;
    size_t n_fields;            /* number of strings in fields (pairs * 2) */
} intake_rec_t;

typedef enum {
    INTAKE_STORED = 0,   /* new saga stored; response is rec->response */
    INTAKE_REPEAT,       /* same Idempotency-Key and request: response is the first answer */
    INTAKE_CONFLICT,     /* same Idempotency-Key, different request: 409 */
    INTAKE_DUPLICATE,    /* create: the origin tenant already has this order_number: 409 */
    INTAKE_UNAVAILABLE,  /* Redis down, timed out or failed: 503, outcome unknown */
} intake_result_t;

/* Called exactly once. response is valid only during the call (NULL unless REPEAT). */
typedef void (*intake_cb)(intake_result_t result, const char *response, size_t response_len,
                          void *data);

typedef struct intake intake_t;

typedef struct intake_stats {
    uint64_t batches;  /* transactions (one EVALSHA each) sent */
    uint64_t requests; /* requests in them */
} intake_stats_t;

/* Batch intake writes over stores (round-robin per batch); registers the script with each, so
 * call it before store_start(). */
intake_t *intake_new(uv_loop_t *loop, store_t *const *stores, size_t n_stores);

/* At least one of the stores is ready. */
bool intake_ready(const intake_t *in);

/*
 * Add rec to the batch (its strings are copied at once). Returns 0 and calls cb exactly once
 * later (never from within this call), or a negative code when no store is ready, without cb.
 */
int intake_submit(intake_t *in, const intake_rec_t *rec, intake_cb cb, void *data);

void intake_stats_get(const intake_t *in, intake_stats_t *out);

/* Send what is batched, then free (the stores stay the caller's; close them after this). */
void intake_close(intake_t *in);

#endif
