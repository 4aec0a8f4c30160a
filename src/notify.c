/*
 * notify.c - completion notifications (see notify.h).
 */
#include "notify.h"

#include "dest.h"
#include "log.h"
#include "util/cr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct notice {
    struct notice *prev, *next;
    notifier_t *n;
    uv_timer_t timer;
    outhttp_xfer_t *xfer;
    char *url;
    char *secret_env;
    char *tenant;
    char *body;
    int attempts;
    int max_attempts;
    long delay_ms;
    long max_ms;
    bool closing;
} notice_t;

struct notifier {
    uv_loop_t *loop;
    outhttp_t *http;
    notice_t list; /* sentinel */
    notify_stats_t stats;
};

notifier_t *notifier_new(uv_loop_t *loop, outhttp_t *http)
{
    notifier_t *n = cr_calloc(1, sizeof *n);
    n->loop = loop;
    n->http = http;
    n->list.next = n->list.prev = &n->list;
    return n;
}

static void on_notice_closed(uv_handle_t *h)
{
    notice_t *x = h->data;
    free(x->url);
    free(x->secret_env);
    free(x->tenant);
    free(x->body);
    free(x);
}

static void notice_free(notice_t *x)
{
    if (x->closing)
        return;
    x->closing = true;
    x->prev->next = x->next;
    x->next->prev = x->prev;
    uv_close((uv_handle_t *)&x->timer, on_notice_closed);
}

static void attempt(notice_t *x);

static void on_retry_timer(uv_timer_t *t)
{
    attempt(t->data);
}

static void on_sent(const outhttp_response_t *resp, void *data)
{
    notice_t *x = data;
    x->xfer = NULL;
    if (x->closing)
        return;
    char msg[256];
    dest_outcome_t oc = dest_classify_http(resp, msg, sizeof msg);
    if (oc == DEST_DONE) {
        x->n->stats.sent++;
        notice_free(x);
        return;
    }
    if (oc == DEST_RETRY && x->attempts < x->max_attempts) {
        uv_timer_start(&x->timer, on_retry_timer, (uint64_t)x->delay_ms, 0);
        x->delay_ms = CR_MIN(x->delay_ms * 2, x->max_ms);
        return;
    }
    x->n->stats.failed++;
    log_msg(LOG_WARN, "notification given up", "tenant", x->tenant, "error", msg, NULL);
    notice_free(x);
}

static void attempt(notice_t *x)
{
    char ts[24], tsh[64], sig[80], sigh[112];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    snprintf(tsh, sizeof tsh, "X-Crossroads-Timestamp: %s", ts);
    const char *headers[4] = {"Content-Type: application/json", tsh, NULL, NULL};
    const char *secret = x->secret_env ? getenv(x->secret_env) : NULL;
    if (secret && *secret) {
        dest_signature(secret, ts, x->body, strlen(x->body), sig);
        snprintf(sigh, sizeof sigh, "X-Crossroads-Signature: %s", sig);
        headers[2] = sigh;
    }
    outhttp_request_t req = {
        .method = "POST",
        .url = x->url,
        .headers = headers,
        .body = x->body,
        .body_len = strlen(x->body),
        .timeout_ms = 5000,
    };
    x->attempts++;
    x->n->stats.attempts++;
    x->xfer = outhttp_start(x->n->http, &req, on_sent, x);
    if (x->xfer == NULL) {
        x->n->stats.failed++;
        notice_free(x);
    }
}

void notify_send(notifier_t *n, const cfg_tenant_t *tenant, const char *body, int max_attempts,
                 long base_ms, long max_ms)
{
    if (tenant == NULL || tenant->notify_url == NULL || body == NULL)
        return;
    notice_t *x = cr_calloc(1, sizeof *x);
    x->n = n;
    x->url = cr_strdup(tenant->notify_url);
    x->secret_env = tenant->connector.secret_env ? cr_strdup(tenant->connector.secret_env) : NULL;
    x->tenant = cr_strdup(tenant->name);
    x->body = cr_strdup(body);
    x->max_attempts = max_attempts > 0 ? max_attempts : 1;
    x->delay_ms = base_ms > 0 ? base_ms : 200;
    x->max_ms = max_ms > x->delay_ms ? max_ms : x->delay_ms;
    uv_timer_init(n->loop, &x->timer);
    x->timer.data = x;
    x->next = n->list.next;
    x->prev = &n->list;
    n->list.next->prev = x;
    n->list.next = x;
    attempt(x);
}

void notify_stats_get(const notifier_t *n, notify_stats_t *out)
{
    *out = n->stats;
}

void notifier_close(notifier_t *n)
{
    while (n->list.next != &n->list) {
        notice_t *x = n->list.next;
        outhttp_xfer_t *xfer = x->xfer;
        notice_free(x);
        if (xfer)
            outhttp_cancel(n->http, xfer);
    }
    free(n);
}
