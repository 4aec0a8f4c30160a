/*
 * chaos_load.c - open-loop load generator (see chaos.h).
 *
 * One thread drives a libcurl multi handle. Mutation i is due at t0 + i / rate whatever the
 * gateways do (open loop); its latency counts from that time, so a stall is never hidden by
 * the client waiting. Each mutation carries its own Idempotency-Key and is re-sent with the
 * same key after a 503 or 429 (after Retry-After, capped) or a transport error (connection
 * refused or reset, timeout; after a short backoff), until it is answered 200 or given up.
 *
 * An order's mutations go one at a time: the next is sent once the previous one was answered
 * 200 (it waits in the order's queue, its latency still counted from its schedule). The
 * client's acknowledgement order is then the order the gateway accepted them in, which the
 * FIFO checks compare the destination's arrivals with.
 */
#include "chaos.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PORTS 16

typedef struct order_q {
    long busy;     /* request in flight or waiting for a retry, -1 none */
    long *q;       /* waiting requests */
    size_t head, len, cap;
} order_q_t;

typedef struct retry {
    long long due_us;
    long req;
} retry_t;

typedef struct xfer {
    struct xfer *prev, *next;
    CURL *easy;
    struct chaos_load *l;
    long req;
    int port;
    long long start_us;
    char *body;
    size_t len, cap;
    long retry_after_s; /* -1 none */
    struct curl_slist *hdrs;
} xfer_t;

struct chaos_load {
    chaos_load_opts_t o;
    char tag[40];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop_sending, quit;
    CURLM *multi;
    xfer_t live; /* sentinel: transfers in flight */
    int ports[MAX_PORTS];
    int n_ports;
    unsigned rr;
    /* thread-owned (read by others only under mu or after wait) */
    chaos_request_t *reqs;
    chaos_mut_t **muts;
    size_t n_reqs, cap_reqs;
    chaos_attempt_t *att;
    size_t n_att, cap_att;
    order_q_t *orders;
    size_t n_orders;
    retry_t *retries;
    size_t n_retries, cap_retries;
    long next_seq;
    long long t0;
    bool gen_done;
    long outstanding;
    bool finished;
    chaos_load_stats_t st;
    uint64_t rng;
};

static double rnd(chaos_load_t *l)
{
    return chaos_rand(&l->rng);
}

static order_q_t *order_of(chaos_load_t *l, int order)
{
    if (order < 0)
        return NULL;
    if ((size_t)order >= l->n_orders) {
        size_t n = (size_t)order + 1 > l->n_orders * 2 ? (size_t)order + 1 : l->n_orders * 2;
        l->orders = chaos_xrealloc(l->orders, n * sizeof *l->orders);
        for (size_t i = l->n_orders; i < n; i++)
            l->orders[i] = (order_q_t){.busy = -1};
        l->n_orders = n;
    }
    return &l->orders[order];
}

/* ---------------------------------------------------------------- curl callbacks */

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    xfer_t *x = data;
    size_t k = size * n;
    if (x->len + k + 1 > x->cap) {
        x->cap = (x->len + k + 1) * 2;
        x->body = chaos_xrealloc(x->body, x->cap);
    }
    memcpy(x->body + x->len, p, k);
    x->len += k;
    x->body[x->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
    xfer_t *x = data;
    size_t k = size * n;
    if (k > 12 && strncasecmp(p, "retry-after:", 12) == 0)
        x->retry_after_s = strtol(p + 12, NULL, 10);
    return k;
}

/* ---------------------------------------------------------------- attempts */

static void record_attempt(chaos_load_t *l, long req, int port, long long start, long long end,
                           int status, int cerr, bool ra)
{
    pthread_mutex_lock(&l->mu);
    if (l->n_att == l->cap_att) {
        l->cap_att = l->cap_att ? l->cap_att * 2 : 4096;
        l->att = chaos_xrealloc(l->att, l->cap_att * sizeof *l->att);
    }
    l->att[l->n_att++] = (chaos_attempt_t){req, port, start, end, status, cerr, ra};
    l->st.attempts++;
    if (status == 200)
        l->st.s200++;
    else if (status == 503)
        l->st.s503++;
    else if (status == 429)
        l->st.s429++;
    else if (status >= 500)
        l->st.s5xx_other++;
    else if (status >= 400)
        l->st.s4xx++;
    else if (status == 0)
        l->st.conn_err++;
    pthread_mutex_unlock(&l->mu);
}

static void schedule_retry(chaos_load_t *l, long req, long long delay_us)
{
    if (l->n_retries == l->cap_retries) {
        l->cap_retries = l->cap_retries ? l->cap_retries * 2 : 256;
        l->retries = chaos_xrealloc(l->retries, l->cap_retries * sizeof *l->retries);
    }
    l->retries[l->n_retries++] = (retry_t){chaos_now_us() + delay_us, req};
}

static void start_attempt(chaos_load_t *l, long req);

/* The mutation is final: free the order for its next one. */
static void finalize(chaos_load_t *l, long req, bool acked)
{
    chaos_request_t *r = &l->reqs[req];
    r->done_us = chaos_now_us();
    free(l->muts[req]);
    l->muts[req] = NULL;
    pthread_mutex_lock(&l->mu);
    l->outstanding--;
    if (acked)
        l->st.acked++;
    else
        l->st.final_not_acked++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    order_q_t *q = order_of(l, r->order);
    if (q && q->busy == req) {
        q->busy = -1;
        if (q->len > 0) {
            long next = q->q[q->head++];
            q->len--;
            if (q->len == 0)
                q->head = 0;
            q->busy = next;
            start_attempt(l, next);
        }
    }
}

/* The attempt failed in a way worth retrying: retry, or give up. */
static void retry_or_give_up(chaos_load_t *l, long req, long retry_after_s)
{
    chaos_request_t *r = &l->reqs[req];
    long give_up = l->o.give_up_ms > 0 ? l->o.give_up_ms : 120000;
    if (chaos_now_us() - r->sched_us > give_up * 1000LL) {
        finalize(l, req, false);
        return;
    }
    long cap = l->o.retry_cap_ms > 0 ? l->o.retry_cap_ms : 1000;
    long ms;
    if (retry_after_s >= 0) {
        ms = retry_after_s * 1000;
    } else {
        int k = r->attempts < 6 ? r->attempts : 6;
        ms = 25L << k;
    }
    if (ms > cap)
        ms = cap;
    /* some jitter so retries do not come back in lock step */
    long long us = (long long)ms * 1000;
    us = us / 2 + (long long)(rnd(l) * (double)(us / 2 + 1));
    schedule_retry(l, req, us);
}

static void xfer_free(xfer_t *x)
{
    x->prev->next = x->next;
    x->next->prev = x->prev;
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->body);
    free(x);
}

static void on_done(chaos_load_t *l, CURL *e, CURLcode cc)
{
    xfer_t *x = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    long long end = chaos_now_us();
    int status = cc == CURLE_OK ? (int)code : 0;
    long req = x->req;
    chaos_request_t *r = &l->reqs[req];
    record_attempt(l, req, x->port, x->start_us, end, status, (int)cc, x->retry_after_s >= 0);
    r->final_status = status;
    if (status == 200) {
        json_t *j = x->body ? json_loadb(x->body, x->len, 0, NULL) : NULL;
        const char *sid = json_string_value(json_object_get(json_object_get(j, "log"), "saga_id"));
        const char *oid = json_string_value(json_object_get(j, "order_id"));
        pthread_mutex_lock(&l->mu); /* chaos_load_collect reads these while the load runs */
        if (sid) {
            if (r->acked && strcmp(r->saga_id, sid) != 0)
                r->id_conflict = true;
            snprintf(r->saga_id, sizeof r->saga_id, "%s", sid);
        }
        if (oid)
            snprintf(r->order_id, sizeof r->order_id, "%s", oid);
        if (!r->acked) {
            r->acked = true;
            r->ack_us = end;
        }
        pthread_mutex_unlock(&l->mu);
        json_decref(j);
        finalize(l, req, true);
    } else if (status == 503) {
        r->n503++;
        retry_or_give_up(l, req, x->retry_after_s);
    } else if (status == 429) {
        r->n429++;
        if (l->o.no_retry_429)
            finalize(l, req, false);
        else
            retry_or_give_up(l, req, x->retry_after_s);
    } else if (status == 0) {
        r->nconn++;
        retry_or_give_up(l, req, -1);
    } else {
        r->nother++;
        if (r->nother <= 3)
            fprintf(stderr, "chaos_load: %s %s key %s: %d %.*s\n", r->action, r->tenant, r->key,
                    status, (int)(x->len < 300 ? x->len : 300), x->body ? x->body : "");
        finalize(l, req, false);
    }
    curl_multi_remove_handle(l->multi, e);
    xfer_free(x);
}

static void start_attempt(chaos_load_t *l, long req)
{
    chaos_request_t *r = &l->reqs[req];
    chaos_mut_t *m = l->muts[req];
    int port = 0;
    pthread_mutex_lock(&l->mu);
    if (l->n_ports > 0)
        port = l->ports[l->rr++ % (unsigned)l->n_ports];
    pthread_mutex_unlock(&l->mu);
    long long now = chaos_now_us();
    r->attempts++;
    if (r->first_send_us == 0) {
        r->first_send_us = now;
        pthread_mutex_lock(&l->mu);
        l->st.sent++;
        pthread_mutex_unlock(&l->mu);
    }
    if (port == 0) {
        record_attempt(l, req, 0, now, now, 0, CURLE_COULDNT_CONNECT, false);
        r->nconn++;
        r->final_status = 0;
        retry_or_give_up(l, req, -1);
        return;
    }
    xfer_t *x = calloc(1, sizeof *x);
    if (x == NULL)
        abort();
    x->l = l;
    x->req = req;
    x->port = port;
    x->start_us = now;
    x->retry_after_s = -1;
    char h[160];
    snprintf(h, sizeof h, "X-API-Key: %s", m->api_key);
    x->hdrs = curl_slist_append(x->hdrs, h);
    snprintf(h, sizeof h, "X-Dest-Tenant-Name: %s", m->dest_tenant);
    x->hdrs = curl_slist_append(x->hdrs, h);
    snprintf(h, sizeof h, "Idempotency-Key: %s", r->key);
    x->hdrs = curl_slist_append(x->hdrs, h);
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/order/%s", port, m->action);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     (long)(l->o.req_timeout_ms > 0 ? l->o.req_timeout_ms : 5000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, m->body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    x->easy = e;
    x->next = l->live.next;
    x->prev = &l->live;
    l->live.next->prev = x;
    l->live.next = x;
    curl_multi_add_handle(l->multi, e);
}

/* ---------------------------------------------------------------- the thread */

static void schedule_due(chaos_load_t *l, long long now)
{
    if (l->gen_done || atomic_load(&l->stop_sending)) {
        l->gen_done = true;
        return;
    }
    for (;;) {
        long long due = l->t0 + (long long)((double)l->next_seq * 1e6 / l->o.rate);
        if (due > now)
            return;
        if ((l->o.duration_ms > 0 && due - l->t0 >= (long long)l->o.duration_ms * 1000) ||
            (l->o.max_requests > 0 && l->next_seq >= l->o.max_requests)) {
            l->gen_done = true;
            return;
        }
        chaos_mut_t *m = calloc(1, sizeof *m);
        if (m == NULL)
            abort();
        m->order = -1;
        if (!l->o.gen(l->o.gen_arg, l->next_seq, m)) {
            free(m);
            l->gen_done = true;
            return;
        }
        pthread_mutex_lock(&l->mu);
        if (l->n_reqs == l->cap_reqs) {
            l->cap_reqs = l->cap_reqs ? l->cap_reqs * 2 : 4096;
            l->reqs = chaos_xrealloc(l->reqs, l->cap_reqs * sizeof *l->reqs);
            l->muts = chaos_xrealloc(l->muts, l->cap_reqs * sizeof *l->muts);
        }
        long idx = (long)l->n_reqs++;
        chaos_request_t *r = &l->reqs[idx];
        memset(r, 0, sizeof *r);
        l->muts[idx] = m;
        r->seq = l->next_seq;
        r->order = m->order;
        r->cls = m->cls;
        snprintf(r->action, sizeof r->action, "%s", m->action);
        snprintf(r->tenant, sizeof r->tenant, "%s", m->tenant);
        snprintf(r->expect, sizeof r->expect, "%s", m->expect);
        snprintf(r->key, sizeof r->key, "%s-%ld", l->tag, l->next_seq);
        r->sched_us = due;
        l->outstanding++;
        l->st.scheduled++;
        pthread_mutex_unlock(&l->mu);
        l->next_seq++;
        order_q_t *q = l->o.no_serialize ? NULL : order_of(l, m->order);
        if (q && q->busy >= 0) {
            if (q->head + q->len == q->cap) {
                if (q->head > 0) {
                    memmove(q->q, q->q + q->head, q->len * sizeof *q->q);
                    q->head = 0;
                }
                if (q->len == q->cap) {
                    q->cap = q->cap ? q->cap * 2 : 8;
                    q->q = chaos_xrealloc(q->q, q->cap * sizeof *q->q);
                }
            }
            q->q[q->head + q->len++] = idx;
        } else {
            if (q)
                q->busy = idx;
            start_attempt(l, idx);
        }
    }
}

static void *run(void *arg)
{
    chaos_load_t *l = arg;
    l->t0 = chaos_now_us();
    while (!atomic_load(&l->quit)) {
        long long now = chaos_now_us();
        schedule_due(l, now);
        for (size_t i = 0; i < l->n_retries;) {
            if (l->retries[i].due_us <= now) {
                long req = l->retries[i].req;
                l->retries[i] = l->retries[--l->n_retries];
                start_attempt(l, req);
            } else {
                i++;
            }
        }
        int running = 0;
        curl_multi_perform(l->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(l->multi, &left)) != NULL)
            if (msg->msg == CURLMSG_DONE)
                on_done(l, msg->easy_handle, msg->data.result);
        pthread_mutex_lock(&l->mu);
        bool done = l->gen_done && l->outstanding == 0;
        if (done && !l->finished) {
            l->finished = true;
            pthread_cond_broadcast(&l->cv);
        }
        pthread_mutex_unlock(&l->mu);
        /* Sleep until the next scheduled send or retry, at most 5 ms. */
        now = chaos_now_us();
        long long wait = 5000;
        if (!l->gen_done) {
            long long due = l->t0 + (long long)((double)l->next_seq * 1e6 / l->o.rate);
            if (due - now < wait)
                wait = due - now;
        }
        for (size_t i = 0; i < l->n_retries; i++)
            if (l->retries[i].due_us - now < wait)
                wait = l->retries[i].due_us - now;
        if (wait > 0)
            curl_multi_poll(l->multi, NULL, 0, (int)((wait + 999) / 1000), NULL);
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

chaos_load_t *chaos_load_start(const chaos_load_opts_t *o, const int *ports, int n_ports)
{
    static bool curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    chaos_load_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->o = *o;
    snprintf(l->tag, sizeof l->tag, "%s", o->tag ? o->tag : "ck");
    l->rng = 0x2545F4914F6CDD1DULL ^ chaos_hash(l->tag, strlen(l->tag));
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    l->multi = curl_multi_init();
    l->live.next = l->live.prev = &l->live;
    long conns = o->max_conns > 0 ? o->max_conns : 256;
    curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conns);
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, conns);
    chaos_load_set_ports(l, ports, n_ports);
    if (pthread_create(&l->thread, NULL, run, l) != 0) {
        curl_multi_cleanup(l->multi);
        free(l);
        return NULL;
    }
    return l;
}

void chaos_load_set_ports(chaos_load_t *l, const int *ports, int n_ports)
{
    pthread_mutex_lock(&l->mu);
    l->n_ports = 0;
    for (int i = 0; i < n_ports && i < MAX_PORTS; i++)
        if (ports[i] > 0)
            l->ports[l->n_ports++] = ports[i];
    pthread_mutex_unlock(&l->mu);
    if (l->multi)
        curl_multi_wakeup(l->multi);
}

void chaos_load_stop_sending(chaos_load_t *l)
{
    atomic_store(&l->stop_sending, true);
    curl_multi_wakeup(l->multi);
}

bool chaos_load_wait(chaos_load_t *l, int deadline_ms)
{
    struct timespec end;
    chaos_deadline_ts(&end, deadline_ms);
    pthread_mutex_lock(&l->mu);
    while (!l->finished)
        if (pthread_cond_timedwait(&l->cv, &l->mu, &end) != 0)
            break;
    bool ok = l->finished;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void chaos_load_stats(chaos_load_t *l, chaos_load_stats_t *out)
{
    pthread_mutex_lock(&l->mu);
    *out = l->st;
    out->outstanding = l->outstanding;
    pthread_mutex_unlock(&l->mu);
}

const chaos_request_t *chaos_load_requests(chaos_load_t *l, size_t *n)
{
    pthread_mutex_lock(&l->mu);
    *n = l->n_reqs;
    const chaos_request_t *r = l->reqs;
    pthread_mutex_unlock(&l->mu);
    return r;
}

const chaos_attempt_t *chaos_load_attempts(chaos_load_t *l, size_t *n)
{
    pthread_mutex_lock(&l->mu);
    *n = l->n_att;
    const chaos_attempt_t *a = l->att;
    pthread_mutex_unlock(&l->mu);
    return a;
}

size_t chaos_load_collect(chaos_load_t *l, size_t from,
                          void (*cb)(void *arg, long idx, const char *saga_id), void *arg)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->n_reqs;
    for (size_t i = from; i < n; i++)
        if (l->reqs[i].acked)
            cb(arg, (long)i, l->reqs[i].saga_id);
    pthread_mutex_unlock(&l->mu);
    return n;
}

long long chaos_load_first_200_after(chaos_load_t *l, long long t_us)
{
    pthread_mutex_lock(&l->mu);
    long long best = 0;
    for (size_t i = 0; i < l->n_att; i++)
        if (l->att[i].status == 200 && l->att[i].end_us >= t_us &&
            (best == 0 || l->att[i].end_us < best))
            best = l->att[i].end_us;
    pthread_mutex_unlock(&l->mu);
    return best;
}

void chaos_load_write_log(chaos_load_t *l, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    fprintf(f, "seq\torder\tcls\taction\tkey\tsaga_id\tsched_us\tack_us\tdone_us\tattempts\t"
               "final_status\tacked\tn503\tn429\tnconn\tnother\texpect\n");
    for (size_t i = 0; i < l->n_reqs; i++) {
        const chaos_request_t *r = &l->reqs[i];
        fprintf(f, "%ld\t%d\t%d\t%s\t%s\t%s\t%lld\t%lld\t%lld\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n",
                r->seq, r->order, r->cls, r->action, r->key, r->saga_id, r->sched_us, r->ack_us,
                r->done_us, r->attempts, r->final_status, r->acked, r->n503, r->n429, r->nconn,
                r->nother, r->expect);
    }
    pthread_mutex_unlock(&l->mu);
    fclose(f);
}

void chaos_load_free(chaos_load_t *l)
{
    if (l == NULL)
        return;
    atomic_store(&l->quit, true);
    curl_multi_wakeup(l->multi);
    pthread_join(l->thread, NULL);
    /* transfers still in flight */
    while (l->live.next != &l->live) {
        xfer_t *x = l->live.next;
        curl_multi_remove_handle(l->multi, x->easy);
        xfer_free(x);
    }
    for (size_t i = 0; i < l->n_reqs; i++)
        free(l->muts[i]);
    curl_multi_cleanup(l->multi);
    for (size_t i = 0; i < l->n_orders; i++)
        free(l->orders[i].q);
    free(l->orders);
    free(l->retries);
    free(l->reqs);
    free(l->muts);
    free(l->att);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* ---------------------------------------------------------------- generators */

bool chaos_gen_mix(void *arg, long seq, chaos_mut_t *m)
{
    const chaos_mix_t *x = arg;
    long s = seq;
    int order = (int)(s % x->n_orders);
    long k = s / x->n_orders;
    if (x->per_order > 0 && k >= x->per_order)
        return false;
    const char *tag = x->tag ? x->tag : "CH";
    char num[64];
    snprintf(num, sizeof num, "%s-%d", tag, order);
    snprintf(m->api_key, sizeof m->api_key, "%s", x->api_key ? x->api_key : "demo-acme-key");
    snprintf(m->tenant, sizeof m->tenant, "%s", x->tenant ? x->tenant : "acme-supply");
    snprintf(m->dest_tenant, sizeof m->dest_tenant, "%s", x->dest ? x->dest : "swift-haul");
    m->order = order + (int)x->seq_offset;
    m->cls = x->cls;
    const char *term = x->swift_refs ? "SH-HOU" : "HOU-T1";
    const char *site = x->swift_refs ? "SH-ATX12" : "ATX-S12";
    const char *prod = x->swift_refs ? "SH-DSL" : "ULSD";
    bool last = x->per_order > 0 && k == x->per_order - 1;
    if (k == 0) {
        snprintf(m->action, sizeof m->action, "create");
        snprintf(m->body, sizeof m->body,
                 "{\"order_number\":\"%s\",\"lines\":[{\"product\":{\"source_id\":\"%s\"},"
                 "\"terminal\":{\"source_id\":\"%s\"},\"site\":{\"source_id\":\"%s\"},"
                 "\"quantity\":%d,\"uom\":\"gal\"}],"
                 "\"requested_delivery\":\"2026-05-12T08:00:00.000Z\"}",
                 num, prod, term, site, 1000 + order % 9000);
        snprintf(m->expect, sizeof m->expect, "synced");
    } else if (last && x->cancel_every > 0 && order % x->cancel_every == 0) {
        snprintf(m->action, sizeof m->action, "cancel");
        snprintf(m->body, sizeof m->body,
                 "{\"order\":{\"order_number\":\"%s\"},\"reason_code\":\"customer_request\"}", num);
        snprintf(m->expect, sizeof m->expect, "canceled");
    } else if (x->resets && k % 5 == 3) {
        snprintf(m->action, sizeof m->action, "reset");
        snprintf(m->body, sizeof m->body, "{\"order\":{\"order_number\":\"%s\"}}", num);
        snprintf(m->expect, sizeof m->expect, "synced");
    } else {
        static const char *const ps[] = {"assigned", "driving_to_load", "arrived_at_load",
                                         "loading", "completed_load"};
        snprintf(m->action, sizeof m->action, "update_status");
        snprintf(m->body, sizeof m->body,
                 "{\"order\":{\"order_number\":\"%s\"},\"progress_status\":\"%s\","
                 "\"location\":{\"source_id\":\"%s\"},\"assigned_to\":\"%s-%ld\"}",
                 num, ps[k % 5], term, tag, k);
        snprintf(m->expect, sizeof m->expect, "synced");
    }
    return true;
}
