/*
 * notify.h - completion notifications: when a saga a tenant started ends, POST its final state
 * to the tenant's notify_url, signed like webhooks, retried with backoff.
 *
 * Owns: each notification in flight (its transfer and retry timer) until it is delivered or
 * gives up. A notification's fate never touches the saga: it is sent after the saga's terminal
 * status is stored. Notifications are held in memory: a process that dies with one pending loses
 * it (the saga itself is unaffected and readable through GET /v1/saga/{id}).
 */
#ifndef CR_NOTIFY_H
#define CR_NOTIFY_H

#include "config.h"
#include "outhttp.h"

#include <uv.h>

typedef struct notifier notifier_t;

typedef struct notify_stats {
    uint64_t sent;      /* notifications delivered (2xx) */
    uint64_t failed;    /* given up after max attempts or a 4xx */
    uint64_t attempts;  /* POSTs made */
} notify_stats_t;

notifier_t *notifier_new(uv_loop_t *loop, outhttp_t *http);

/*
 * Send body (JSON text, copied) to tenant->notify_url, signed with the secret named by the
 * tenant's connector.secret_env when set. Tries up to max_attempts times on timeouts, connection
 * errors, 5xx, 408 and 429, waiting base_ms doubling up to max_ms. A tenant without notify_url
 * is ignored.
 */
void notify_send(notifier_t *n, const cfg_tenant_t *tenant, const char *body, int max_attempts,
                 long base_ms, long max_ms);

void notify_stats_get(const notifier_t *n, notify_stats_t *out);

/* Abandon every pending notification, close the timers, then free. */
void notifier_close(notifier_t *n);

#endif
