/*
 * saga.h - the saga engine: stage machine (saga.c) and stream consumer (sagaq.c).
 *
 * Stage table (status stored in cr:{cr}:saga:<id>, "status"):
 *
 *   pending            accepted at intake; waits for a worker
 *   requested          create only: waits for the destination tenant's accept (parked, no entry)
 *   origin_mapped      order found, caller's side and counterparty known
 *   master_mapped      caller's references resolved to master data (goid)
 *   destination_mapped goids resolved to the counterparty's references; order effects applied;
 *                      outbound request built and stored (re-sent as is after a crash)
 *   synced | canceled  the counterparty's system accepted it           (terminal)
 *   rejected           the counterparty's system, or an order rule, said no (terminal)
 *   error              mapping failed, no such order, or delivery kept failing (terminal)
 *
 * Every commit is one transaction: plain RPUSHes of its history and order log entries, then a
 * Lua script (saga_lua.c) that checks the run's epoch (a fencing token taken when the saga is
 * begun or claimed), then writes the status and any order effect, or takes the entries back.
 * The steps to origin_mapped and master_mapped (no I/O) are written with the run's next commit,
 * destination_mapped or the end, so a create's run makes two commits; each transition still has
 * its own history and log entry. A process that stalls past its claim and wakes up finds its
 * epoch stale and stops without writing. Delivery is the only effect outside Redis; it
 * carries Idempotency-Key = saga id, so a re-delivery after a crash is recognisable.
 *
 * Per-order order: intake appends each saga to its order's queue; only the head runs, and the
 * transition that ends it wakes the next (a new stream entry). Different orders run in parallel.
 *
 * Owns: saga_run_t objects (a cache of what Redis holds, dropped and rebuilt freely), the
 * consumer's timers, and the outbound transfers of running sagas.
 */
#ifndef CR_SAGA_H
#define CR_SAGA_H

#include "config.h"
#include "metrics.h"
#include "notify.h"
#include "outhttp.h"
#include "store.h"
#include "util/buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct saga_engine saga_engine_t;
typedef struct saga_run saga_run_t;

typedef struct saga_stats {
    uint64_t started;     /* runs begun (new or claimed) */
    uint64_t claimed;     /* entries taken over from idle consumers */
    uint64_t finished;    /* sagas this process brought to a terminal status */
    uint64_t fenced;      /* runs stopped because another process took the saga */
    uint64_t deliveries;  /* outbound attempts */
    uint64_t retries;     /* attempts parked for a retry delay */
    uint64_t requeued;    /* sagas the reconciler re-queued */
    uint64_t orders_expired; /* idle orders removed after saga.order_retention_s */
    size_t running;
    long long stream_len;     /* XLEN of the saga stream at the last sample */
    long long stream_pending; /* entries delivered to a consumer and not yet acknowledged */
} saga_stats_t;

/*
 * Create the engine. store carries its chores (group, claims, wake-ups, reconciler) and the
 * stage writes when no stage connection was added (saga_engine_add_stage_store); block_store is
 * a connection used only for XREADGROUP ... BLOCK (a blocked read would stall everything queued
 * behind it). The
 * configuration is read through *cfgp at each stage (reloads swap it). consumer is this
 * process's unique consumer name.
 */
saga_engine_t *saga_engine_new(uv_loop_t *loop, store_t *store, store_t *block_store,
                               outhttp_t *http, cfg_t **cfgp, const char *consumer);

/* Add a connection for per-saga begin and commit writes (before saga_engine_start); they are
 * spread round-robin over the ready ones, or go through store when none is ready. Register the
 * engine's scripts with it too. */
void saga_engine_add_stage_store(saga_engine_t *e, store_t *s);

/* Completion notifications go through n (may be NULL: none are sent). */
void saga_engine_set_notifier(saga_engine_t *e, notifier_t *n);
notifier_t *saga_engine_notifier(saga_engine_t *e);

/* Metric families the engine records into (all may be NULL). */
typedef struct saga_metrics {
    metrics_counter_t *finished;          /* {type, status} */
    metrics_histogram_t *stage_seconds;   /* {stage} */
    metrics_counter_t *deliveries;        /* {connector, outcome} */
    metrics_histogram_t *delivery_seconds; /* {connector} */
} saga_metrics_t;
void saga_engine_set_metrics(saga_engine_t *e, const saga_metrics_t *m);
const saga_metrics_t *saga_engine_metrics(saga_engine_t *e);

/* Register the engine's Lua scripts with both stores (before store_start). */
void saga_engine_register_scripts(saga_engine_t *e, store_t *store);

/* Start reading, claiming, waking delayed sagas and reconciling. */
void saga_engine_start(saga_engine_t *e);

/* Stop taking new work; runs in flight continue. */
void saga_engine_drain(saga_engine_t *e);

/* Runs in flight. */
size_t saga_engine_running(const saga_engine_t *e);

/* The drain is over and runs are still on: release them (saga_lua_release), so the claims that
 * resume their sagas in other processes do not charge them with a death, then call done (once,
 * whether Redis answered or not; from inside this call when there is nothing to send). */
void saga_engine_hand_back(saga_engine_t *e, void (*done)(void *data), void *data);

void saga_engine_stats(const saga_engine_t *e, saga_stats_t *out);

/* Drop every run (their entries stay pending for a claim), close timers, free. */
void saga_engine_close(saga_engine_t *e, void (*closed_cb)(void *data), void *data);

/* ---------------------------------------------------------------- internal, sagaq.c <-> saga.c */

struct saga_run {
    saga_run_t *prev, *next;
    saga_engine_t *engine;
    char saga_id[25];
    char entry_id[48];
    long long epoch;
    json_t *saga;    /* the saga hash, field -> string */
    json_t *order;   /* the order hash, field -> string ({} when none) */
    json_t *request; /* the canonical request body */
    /* The "mapped" and "outbound" fields as the stage that wrote them built them, kept for the
     * next stage of this run so it need not parse the stored text again (NULL: parse it). */
    json_t *mapped_doc;
    json_t *outbound_doc;
    json_t *body_doc; /* outbound_doc's body as a document (the stored one is its text) */
    /* Steps held for the next commit (saga.c: held_step): their history and log entries (arrays
     * of JSON texts, NULL when none) and the saga fields they set. */
    json_t *held_hist;
    json_t *held_logs;
    json_t *held_fields;
    cfg_t *cfg;      /* reference held for the run */
    outhttp_xfer_t *xfer;
    uint64_t stage_started; /* uv_now() when the current stage began */
    uint64_t touched; /* uv_now() when the run's claim was last refreshed (sagaq.c) */
    char next_entry[48]; /* an entry of this saga read while the run was on: begun after it */
    bool next_claimed;
    bool dropped;    /* engine closing: finish without writing */
    bool suspect;    /* abandoned by workers twice already: runs alone (sagaq.c) */
    bool held;       /* a suspect waiting for the one running before it */
    saga_run_t *held_next;
    /* sagaq.c: the begin script's reply and the saga hash's HGETALL, sent together, answer in
     * any order; the run goes on once both are in. */
    int begin_waiting;
    bool begin_ok;
};

/* saga.c: run a begun saga from its stored status. Frees the run when done. */
void saga_run_go(saga_run_t *run);
/* sagaq.c: the run is over (finished, fenced, parked or dropped). */
void saga_engine_run_done(saga_engine_t *e, saga_run_t *run);
/* sagaq.c: the run ended in this live process because Redis did not answer one of its writes
 * (err, a STORE_ERR_* other than closing): its entry stays pending, and the claim that resumes
 * the saga must not charge it as if its worker had died (saga_lua_release). */
void saga_engine_release(saga_engine_t *e, const saga_run_t *run);
/* sagaq.c accessors for saga.c */
store_t *saga_engine_store(saga_engine_t *e);
uv_loop_t *saga_engine_loop(saga_engine_t *e);
outhttp_t *saga_engine_http(saga_engine_t *e);
saga_stats_t *saga_engine_counters(saga_engine_t *e);

/* The status names, and whether a status ends a saga. */
bool saga_status_terminal(const char *status);

#endif
