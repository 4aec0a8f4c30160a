/*
 * store_keys.h - the Redis key layout, documented in one place.
 *
 * Every key of the saga path carries the hash tag "{cr}", so in Redis Cluster they live in one
 * slot and the intake script and stage transitions (Lua / MULTI) stay atomic. That caps one
 * deployment at one shard's throughput; the tag is built by these macros only, so sharding by
 * order later changes this file and the stream readers, nothing else.
 *
 *   cr:{cr}:sagas                   STREAM  one entry per accepted mutation, in intake order:
 *                                           fields saga_id, type, tenant. Consumer group
 *                                           "workers" (one consumer per process). Entries are
 *                                           deleted when their saga ends (never trimmed by
 *                                           length: XAUTOCLAIM on Redis 7.0 drops trimmed
 *                                           pending entries).
 *   cr:{cr}:saga:<saga_id>          HASH    the saga: type, status, message, tenant, instance,
 *                                           dest, request (canonical JSON), response (the
 *                                           "pending" answer), request_id, idempotency_key,
 *                                           fingerprint, stream_id, attempts, order_id,
 *                                           created_at, updated_at. Expires retention_s after
 *                                           it ends. ~1-2 KB.
 *   cr:{cr}:saga:<saga_id>:hist     LIST    history entries {status, date, message} (JSON),
 *                                           oldest first; same lifetime as the saga.
 *   cr:{cr}:idem:<tenant>:<sha256>  STRING  Idempotency-Key record "<fp>\n<saga_id>\n<response>":
 *                                           fp (fingerprint of route, destination, instance and
 *                                           canonical body, 64 hex), the saga, the first answer
 *                                           - empty when idempotency_ttl_s <= retention_s (the
 *                                           default): the saga's "response" outlives the record.
 *                                           One SET ... EX: TTL idempotency_ttl_s (24 h). The client's
 *                                           key is hashed so any byte string makes a safe,
 *                                           bounded key name.
 *
 *   cr:{cr}:active                  ZSET    unfinished sagas -> when each last gave up its
 *                                           stream entry or was queued (intake, park, delay,
 *                                           retry, reconciler; ms); the reconciler re-queues
 *                                           any that lost their entry.
 *   cr:{cr}:delayed                 ZSET    sagas waiting out a retry delay -> due time (ms).
 *                                           A parked saga has no pending stream entry, so it
 *                                           never looks abandoned to XAUTOCLAIM.
 *   cr:{cr}:order:<order_id>        HASH    the order: order_id, origin_tenant,
 *                                           destination_tenant, order_number (origin's),
 *                                           counterparty_order_number, status, progress_status,
 *                                           canceled, accepted, lines, requested_delivery, notes,
 *                                           bols, drops, status_update (JSON), created_at,
 *                                           updated_at. Kept until saga.order_retention_s
 *                                           after its last saga ended (with its lists and
 *                                           the ordernum/ordernum_in/orderref keys naming it);
 *                                           0 keeps orders for good.
 *   cr:{cr}:order:<order_id>:q      LIST    saga ids of this order not yet finished, in intake
 *                                           order; only the head runs (per-order FIFO).
 *   cr:{cr}:order:<order_id>:log    LIST    CrossroadsLogV2 entries (JSON), oldest first.
 *   cr:{cr}:order:<order_id>:status LIST    status_update history (JSON), oldest first.
 *   cr:{cr}:ordernum:<tenant>:<n>   STRING  order id by the origin tenant's own number.
 *   cr:{cr}:ordernum_in:<tenant>:<n> STRING order id by the origin's number, for the
 *                                           destination tenant (orders sent to it).
 *   cr:{cr}:orderref:<tenant>:<n>   STRING  order id by the destination's own reference
 *                                           (the order_number its system answered with).
 *   cr:{cr}:orders:idle             ZSET    orders with no saga queued -> when the last one
 *                                           ended (ms); the order reaper (sagaq.c) removes
 *                                           those idle longer than saga.order_retention_s.
 *
 * Lua scripts build the order keys from these prefixes (all in the {cr} slot).
 *
 * What it costs (Redis MEMORY USAGE, measured on the demo flows): a saga hash 1.5-2.7 KB and its
 * history 0.4-0.8 KB, both gone retention_s after the saga ends; an idempotency record ~1.5 KB
 * for 24 h; an order hash ~2.7 KB plus ~4.5 KB of log per saga that touched it (four stage
 * entries with their delivery request and answer) - order data is kept while the order lives;
 * a pending stream entry ~100 B, deleted when its saga ends or parks.
 */
#ifndef CR_STORE_KEYS_H
#define CR_STORE_KEYS_H

#define STORE_TAG "{cr}"
#define STORE_KEY_STREAM "cr:" STORE_TAG ":sagas"
#define STORE_STREAM_GROUP "workers"
/* Lua-side prefix of every key; scripts append "order:<id>", "ordernum:<t>:<n>", ... */
#define STORE_KEY_PREFIX "cr:" STORE_TAG ":"
/* A saga's and an order's keys are these, the id, then the suffix if any (cr_cat) */
#define STORE_KEY_SAGA_PRE STORE_KEY_PREFIX "saga:"
#define STORE_KEY_ORDER_PRE STORE_KEY_PREFIX "order:"
#define STORE_KEY_HIST_SUF ":hist"
#define STORE_KEY_LOG_SUF ":log"
#define STORE_KEY_SAGA_FMT STORE_KEY_SAGA_PRE "%s"
#define STORE_KEY_SAGA_HIST_FMT STORE_KEY_SAGA_PRE "%s" STORE_KEY_HIST_SUF
#define STORE_KEY_IDEM_FMT "cr:" STORE_TAG ":idem:%s:%s"
#define STORE_KEY_ACTIVE "cr:" STORE_TAG ":active"
#define STORE_KEY_DELAYED "cr:" STORE_TAG ":delayed"
#define STORE_KEY_ORDER_FMT STORE_KEY_ORDER_PRE "%s"
#define STORE_KEY_ORDER_LOG_FMT STORE_KEY_ORDER_PRE "%s" STORE_KEY_LOG_SUF
#define STORE_KEY_ORDER_STATUS_FMT "cr:" STORE_TAG ":order:%s:status"

#endif
