/*
 * chaos_check.c - the checker over a whole run's history (see chaos.h).
 *
 * Inputs: the load generator's log (every mutation: Idempotency-Key, saga id of its 200, when
 * it was acknowledged, its order), the destinations' delivery logs (Idempotency-Key = saga id,
 * arrival and finish times on the same clock, status answered, path and body hash), and Redis
 * (each acknowledged saga's record and history, every saga record, the stream, the consumer
 * group, the active and delayed indexes). A sample of sagas is also read through the admin API
 * (GET /v1/admin/sagas/{id}) and compared with what Redis holds.
 *
 * What must hold (each counted; "violations" sums what must be 0):
 *   lost            every acknowledged saga exists ...
 *   stuck           ... and is terminal after settling;
 *   unexpected      and ends as the generator expected (synced, canceled, ...);
 *   missing_2xx     a synced/canceled saga had a 2xx answer at a destination;
 *   phantom         every delivered key is an acknowledged saga (a saga accepted whose client
 *                   never got its 200 is counted apart, unacked_accepted, and is not lost);
 *   keys_multi_saga one saga per client Idempotency-Key (answers and Redis records);
 *   diff_effect     repeats of a delivery carry the same path and body;
 *   dups > bound    deliveries after a key's first 2xx, bounded by the sagas in flight at the
 *                   faults (chaos_cluster_t.dup_bound);
 *   overlaps        (unless allowed) no two deliveries of one key in flight together;
 *   fifo_violations per order, in acknowledgement (= intake) order: first 2xx arrivals in that
 *                   order, and no saga's first delivery before its predecessor's first 2xx
 *                   finished;
 *   bad_history     each history a walk pending -> [requested] -> origin_mapped ->
 *                   master_mapped -> destination_mapped -> one terminal status, strictly
 *                   forward (a repeated or backward entry is a stale owner's write), ending in
 *                   the record's status; "retry" entries resume after an error;
 *   settled         no stream entries, nothing pending, active and delayed empty, consumers
 *                   per group <= live processes + 2. Live processes without a consumer are
 *                   counted but allowed: Redis 7.0 creates a consumer only when XREADGROUP
 *                   hands it an entry and does not refresh its idle time on empty reads, so
 *                   an idle live process's consumer (holding nothing) is reaped by the others
 *                   and comes back with its next entry.
 */
#include "chaos.h"

#include "store_keys.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const chaos_check_status_names[8] = {
    "pending", "requested", "origin_mapped", "master_mapped", "destination_mapped",
    "synced",  "canceled",  "rejected",
};

#define ST_ERROR_SLOT 7 /* rejected and error share the last slots: see status_slot */

static bool terminal(const char *s)
{
    return strcmp(s, "synced") == 0 || strcmp(s, "canceled") == 0 ||
           strcmp(s, "rejected") == 0 || strcmp(s, "error") == 0;
}

static int rank_of(const char *s)
{
    if (strcmp(s, "pending") == 0)
        return 0;
    if (strcmp(s, "requested") == 0)
        return 1;
    if (strcmp(s, "origin_mapped") == 0)
        return 2;
    if (strcmp(s, "master_mapped") == 0)
        return 3;
    if (strcmp(s, "destination_mapped") == 0)
        return 4;
    if (terminal(s))
        return 5;
    return -1;
}

typedef struct saga_info {
    char status[24];
    char message[120];
    int attempts;
    bool found;
    /* deliveries */
    long n_deliv;
    long long first_arr, first2xx_arr, first2xx_fin;
    long first2xx_idx;
    long last_idx; /* index of its last delivery (arrival order) */
    char path[48];
    uint64_t body_hash;
} saga_info_t;

static void violation(chaos_check_t *r, int *shown, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void violation(chaos_check_t *r, int *shown, const char *fmt, ...)
{
    (void)r;
    if (*shown >= 8)
        return;
    (*shown)++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chaos check: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static long long redis_int(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, cmd);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_INTEGER)
        v = r->element[0]->integer;
    else if (r && r->type == REDIS_REPLY_ERROR)
        v = 0; /* NOGROUP and friends: nothing there */
    if (r)
        freeReplyObject(r);
    return v;
}

typedef struct settled {
    long long xlen, pending, active, delayed, consumers, missing;
} settled_t;

static void read_settled(const chaos_cluster_t *cl, redisContext *c, settled_t *s)
{
    s->xlen = redis_int(c, "XLEN " STORE_KEY_STREAM);
    s->pending = redis_int(c, "XPENDING " STORE_KEY_STREAM " " STORE_STREAM_GROUP);
    s->active = redis_int(c, "ZCARD " STORE_KEY_ACTIVE);
    s->delayed = redis_int(c, "ZCARD " STORE_KEY_DELAYED);
    s->consumers = 0;
    s->missing = 0;
    redisReply *r = redisCommand(c, "XINFO CONSUMERS " STORE_KEY_STREAM " " STORE_STREAM_GROUP);
    bool seen[CHAOS_MAX_GW] = {false};
    if (r && r->type == REDIS_REPLY_ARRAY) {
        s->consumers = (long long)r->elements;
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            for (size_t k = 0; e->type == REDIS_REPLY_ARRAY && k + 1 < e->elements; k += 2) {
                if (e->element[k]->type != REDIS_REPLY_STRING ||
                    strcmp(e->element[k]->str, "name") != 0)
                    continue;
                for (int g = 0; cl && g < cl->n_gw; g++) {
                    char mark[32];
                    snprintf(mark, sizeof mark, "-%d-", (int)cl->gw[g].pid);
                    if (cl->alive[g] && strstr(e->element[k + 1]->str, mark))
                        seen[g] = true;
                }
            }
        }
    }
    if (r)
        freeReplyObject(r);
    for (int g = 0; cl && g < cl->n_gw; g++)
        if (cl->alive[g] && !seen[g])
            s->missing++;
}

bool chaos_wait_settled(const chaos_cluster_t *c, int deadline_ms)
{
    redisContext *rc = chaos_redis(c);
    if (rc == NULL)
        return false;
    long long end = chaos_now_us() + (long long)deadline_ms * 1000;
    settled_t s;
    bool ok;
    for (;;) {
        read_settled(c, rc, &s);
        ok = s.xlen == 0 && s.pending == 0 && s.active == 0 && s.delayed == 0 &&
             s.consumers <= chaos_cluster_live(c) + 2;
        if (ok || chaos_now_us() >= end)
            break;
        harness_sleep_ms(100);
    }
    redisFree(rc);
    return ok;
}

/* Fill status/attempts of the acked sagas idx[0..n) (pipelined). */
static void read_statuses(redisContext *c, const chaos_request_t *reqs, const long *idx, size_t n,
                          saga_info_t *info)
{
    for (size_t b = 0; b < n; b += 1000) {
        size_t e = b + 1000 < n ? b + 1000 : n;
        for (size_t i = b; i < e; i++)
            redisAppendCommand(c, "HMGET " STORE_KEY_PREFIX "saga:%s status attempts message",
                               reqs[idx[i]].saga_id);
        for (size_t i = b; i < e; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
                return;
            saga_info_t *si = &info[idx[i]];
            si->found = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                        r->element[0]->type == REDIS_REPLY_STRING;
            if (si->found) {
                snprintf(si->status, sizeof si->status, "%s", r->element[0]->str);
                si->attempts =
                    r->element[1]->type == REDIS_REPLY_STRING ? atoi(r->element[1]->str) : 0;
                snprintf(si->message, sizeof si->message, "%s",
                         r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : "");
            } else {
                si->status[0] = '\0';
            }
            freeReplyObject(r);
        }
    }
}

long long chaos_wait_all_terminal(const chaos_cluster_t *cl, chaos_load_t *l, int deadline_ms)
{
    size_t n = 0;
    const chaos_request_t *reqs = chaos_load_requests(l, &n);
    redisContext *c = chaos_redis(cl);
    if (c == NULL)
        return -1;
    long *idx = malloc((n ? n : 1) * sizeof *idx);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (reqs[i].acked)
            idx[m++] = (long)i;
    saga_info_t *info = calloc(n ? n : 1, sizeof *info);
    long long end = chaos_now_us() + (long long)deadline_ms * 1000, when = -1;
    for (;;) {
        read_statuses(c, reqs, idx, m, info);
        size_t open = 0;
        for (size_t i = 0; i < m; i++)
            if (!info[idx[i]].found || !terminal(info[idx[i]].status))
                open++;
        if (open == 0) {
            when = chaos_now_us();
            break;
        }
        if (chaos_now_us() >= end)
            break;
        harness_sleep_ms(10);
    }
    free(info);
    free(idx);
    redisFree(c);
    return when;
}

static int cmp_arrival(const void *a, const void *b)
{
    const chaos_delivery_t *x = a, *y = b;
    return x->arrive_us < y->arrive_us ? -1 : x->arrive_us > y->arrive_us;
}

typedef struct ord_ent {
    int order;
    long long ack;
    long idx;
} ord_ent_t;

static int cmp_ord(const void *a, const void *b)
{
    const ord_ent_t *x = a, *y = b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return x->ack < y->ack ? -1 : x->ack > y->ack;
}

/* Wall-clock "HH:MM:SS.mmm" (UTC) of a chaos_now_us() time, to read beside history dates. */
static void mono_wall(long long mono_us, char out[24])
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    long long wall_us = (long long)wall.tv_sec * 1000000LL + wall.tv_nsec / 1000;
    long long t = mono_us + (wall_us - chaos_now_us());
    long long ms = t / 1000;
    snprintf(out, 24, "%02lld:%02lld:%02lld.%03lld", ms / 3600000 % 24, ms / 60000 % 60,
             ms / 1000 % 60, ms % 1000);
}

/*
 * For a saga that ended otherwise than expected, everything there is to tell why: its record's
 * ownership fields, its history, its deliveries and the cluster's faults, on one clock. A CI
 * run keeps no logs, so this is all a failure leaves behind.
 */
static void explain_saga(const chaos_check_opts_t *o, redisContext *c, const char *sid)
{
    redisReply *r = redisCommand(c,
                                 "HMGET " STORE_KEY_PREFIX "saga:%s epoch owner claims started "
                                 "stream_id attempts",
                                 sid);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 6) {
        const char *names[] = {"epoch", "owner", "claims", "started", "stream_id", "attempts"};
        fprintf(stderr, "  record:");
        for (size_t i = 0; i < 6; i++)
            fprintf(stderr, " %s=%s", names[i],
                    r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : "-");
        fprintf(stderr, "\n");
    }
    if (r)
        freeReplyObject(r);
    r = redisCommand(c, "LRANGE " STORE_KEY_PREFIX "saga:%s:hist 0 -1", sid);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            fprintf(stderr, "  history: %s\n", r->element[i]->str);
    if (r)
        freeReplyObject(r);
    char t[24];
    for (int d = 0; d < o->n_dests; d++) {
        chaos_delivery_t *dl;
        size_t k = chaos_dest_log(o->dests[d], &dl);
        for (size_t j = 0; j < k; j++) {
            if (strcmp(dl[j].key, sid) != 0)
                continue;
            mono_wall(dl[j].arrive_us, t);
            fprintf(stderr, "  delivery at %s: %d (%s), %lld ms\n", t, dl[j].status,
                    chaos_fault_name(dl[j].fault),
                    dl[j].finish_us ? (dl[j].finish_us - dl[j].arrive_us) / 1000 : -1);
        }
        free(dl);
    }
    for (int i = 0; o->cluster && i < o->cluster->n_events; i++) {
        const chaos_event_t *e = &o->cluster->events[i];
        mono_wall(e->t_us, t);
        fprintf(stderr, "  fault at %s: %s gateway %d, pid %d (%ld sagas in flight)\n", t, e->what,
                e->target, e->pid, e->in_flight);
    }
}

/* Validate one history (JSON strings); returns 0 ok, 1 bad, 2 bad because of a stale write. */
static int check_history(redisReply *h, const char *status, char *why, size_t wlen)
{
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
        snprintf(why, wlen, "no history");
        return 1;
    }
    int prev = -1, terminals = 0, last_nonterm = 0, stale = 0;
    char last[32] = "", first_end[120] = "";
    char trail[512] = "";
    size_t tl = 0;
    for (size_t i = 0; i < h->elements; i++) {
        json_t *e = json_loadb(h->element[i]->str, h->element[i]->len, 0, NULL);
        const char *st = json_string_value(json_object_get(e, "status"));
        char s[32];
        snprintf(s, sizeof s, "%s", st ? st : "?");
        if (terminals == 0 && st && terminal(st)) {
            const char *m = json_string_value(json_object_get(e, "message"));
            snprintf(first_end, sizeof first_end, "%s", m ? m : "");
        }
        json_decref(e);
        if (tl < sizeof trail - 40)
            tl += (size_t)snprintf(trail + tl, sizeof trail - tl, "%s%s", i ? "," : "", s);
        if (strcmp(s, "retry") == 0) {
            if (terminals != 1 || strcmp(last, "error") != 0) {
                snprintf(why, wlen, "retry entry not after an error: %s", trail);
                return 1;
            }
            terminals = 0;
            prev = last_nonterm - 1; /* the failed stage runs again */
            snprintf(last, sizeof last, "retry");
            continue;
        }
        int r = rank_of(s);
        if (r < 0) {
            snprintf(why, wlen, "unknown status '%s': %s", s, trail);
            return 1;
        }
        if (i == 0 && r != 0) {
            snprintf(why, wlen, "does not start pending: %s", trail);
            return 1;
        }
        if (terminals > 0 || r <= prev)
            stale++;
        if (r == 5)
            terminals++;
        else
            last_nonterm = r;
        if (r > prev)
            prev = r;
        snprintf(last, sizeof last, "%s", s);
    }
    if (stale) {
        int n = snprintf(why, wlen, "repeated or backward entries (stale owner write?): %s", trail);
        if (n >= 0 && (size_t)n < wlen)
            snprintf(why + n, wlen - (size_t)n, " (first ending: \"%s\")", first_end);
        return 2;
    }
    if (terminals != 1) {
        snprintf(why, wlen, "%d terminal entries: %s", terminals, trail);
        return 1;
    }
    if (strcmp(last, status) != 0) {
        snprintf(why, wlen, "history ends %s, record says %s: %s", last, status, trail);
        return 1;
    }
    return 0;
}

long chaos_check_run(const chaos_check_opts_t *o, chaos_check_t *R)
{
    memset(R, 0, sizeof *R);
    int shown_k[20] = {0};
    size_t n = 0;
    const chaos_request_t *reqs = chaos_load_requests(o->load, &n);
    R->requests = (long)n;
    redisContext *c = chaos_redis(o->cluster);
    if (c == NULL) {
        fprintf(stderr, "chaos check: cannot reach Redis\n");
        R->violations = 1;
        return 1;
    }
    redisSetTimeout(c, (struct timeval){30, 0});

    /* ---- acknowledged sagas, settle */
    chaos_map_t *by_sid = chaos_map_new();
    long *acked = malloc((n ? n : 1) * sizeof *acked);
    size_t n_acked = 0;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].id_conflict) {
            R->keys_multi_saga++;
            violation(R, &shown_k[0], "key %s answered 200 with two different saga ids", reqs[i].key);
        }
        if (!reqs[i].acked) {
            R->not_acked++;
            continue;
        }
        acked[n_acked++] = (long)i;
        long *v = chaos_map_put(by_sid, reqs[i].saga_id);
        if (*v != 0) {
            R->keys_multi_saga++;
            violation(R, &shown_k[1], "saga %s acknowledged for two client keys", reqs[i].saga_id);
        }
        *v = (long)i + 1;
    }
    R->acked = (long)n_acked;
    saga_info_t *info = calloc(n ? n : 1, sizeof *info);
    long long settle_end = chaos_now_us() + (long long)(o->settle_ms > 0 ? o->settle_ms : 30000) * 1000;
    for (;;) {
        read_statuses(c, reqs, acked, n_acked, info);
        long open = 0;
        for (size_t i = 0; i < n_acked; i++)
            if (info[acked[i]].found ? !terminal(info[acked[i]].status) : !o->records_may_expire)
                open++;
        if (open == 0 || chaos_now_us() >= settle_end)
            break;
        harness_sleep_ms(200);
    }
    for (size_t i = 0; i < n_acked; i++) {
        const chaos_request_t *q = &reqs[acked[i]];
        saga_info_t *si = &info[acked[i]];
        if (!si->found)
            continue; /* lost, or expired: decided once the deliveries are known */
        int slot = -1;
        for (int k = 0; k < 8; k++)
            if (strcmp(si->status, chaos_check_status_names[k]) == 0)
                slot = k;
        if (strcmp(si->status, "error") == 0)
            slot = ST_ERROR_SLOT; /* counted with rejected: see the summary's "failed" */
        if (slot >= 0)
            R->by_status[slot]++;
        if (!terminal(si->status)) {
            R->stuck++;
            violation(R, &shown_k[2], "STUCK: saga %s (key %s, %s, order %d) still %s", q->saga_id,
                      q->key, q->action, q->order, si->status);
        } else if (q->expect[0] && strcmp(q->expect, si->status) != 0) {
            R->unexpected++;
            int before = shown_k[3];
            violation(R, &shown_k[3], "saga %s (%s, order %d) ended %s, expected %s: \"%s\"",
                      q->saga_id, q->action, q->order, si->status, q->expect, si->message);
            if (shown_k[3] > before && before < 2)
                explain_saga(o, c, q->saga_id);
        }
    }

    /* ---- queues settled */
    if (!o->skip_settled)
        chaos_wait_settled(o->cluster, chaos_ms(20000));
    settled_t s;
    read_settled(o->cluster, c, &s);
    R->xlen = s.xlen;
    R->pending = s.pending;
    R->active = s.active;
    R->delayed = s.delayed;
    R->consumers = s.consumers;
    R->live = o->live_processes > 0 ? o->live_processes : chaos_cluster_live(o->cluster);
    if (!o->skip_settled) {
        if (s.xlen != 0 || s.pending != 0 || s.active != 0 || s.delayed != 0) {
            violation(R, &shown_k[4], "not settled: %lld stream entries, %lld pending, %lld active, "
                                 "%lld delayed",
                      s.xlen, s.pending, s.active, s.delayed);
            R->violations++;
        }
        if (s.consumers > R->live + 2) {
            violation(R, &shown_k[5], "%lld consumers in the group for %ld live processes",
                      s.consumers, R->live);
            R->violations++;
        }
        /* Informational: Redis 7.0 creates a consumer only when XREADGROUP hands it an entry
         * and does not refresh its idle time on empty reads, so an idle live process's
         * consumer is reaped (it holds nothing) and comes back with its next entry. */
        R->live_missing = s.missing;
    }

    /* ---- every saga record: one per client key, accepted-but-unacknowledged ones */
    chaos_map_t *idem = chaos_map_new();
    chaos_map_t *unacked_sagas = chaos_map_new();
    {
        char cursor[32] = "0";
        static const char prefix[] = STORE_KEY_PREFIX "saga:";
        do {
            redisReply *r = redisCommand(c, "SCAN %s MATCH %s* COUNT 2000", cursor, prefix);
            if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                if (r)
                    freeReplyObject(r);
                break;
            }
            snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
            const redisReply *keys = r->element[1];
            size_t sent = 0;
            for (size_t i = 0; i < keys->elements; i++) {
                if (keys->element[i]->len != sizeof prefix - 1 + 24)
                    continue; /* :hist lists */
                redisAppendCommand(c, "HMGET %s idempotency_key saga_id tenant", keys->element[i]->str);
                sent++;
            }
            for (size_t i = 0; i < sent; i++) {
                redisReply *h = NULL;
                if (redisGetReply(c, (void **)&h) != REDIS_OK || h == NULL)
                    break;
                if (h->type == REDIS_REPLY_ARRAY && h->elements == 3 &&
                    h->element[1]->type == REDIS_REPLY_STRING) {
                    R->sagas_in_redis++;
                    if (h->element[0]->type == REDIS_REPLY_STRING && h->element[0]->len > 0) {
                        char k[128];
                        snprintf(k, sizeof k, "%s:%s",
                                 h->element[2]->type == REDIS_REPLY_STRING ? h->element[2]->str : "",
                                 h->element[0]->str);
                        (*chaos_map_put(idem, k))++;
                    }
                    if (chaos_map_get(by_sid, h->element[1]->str) == NULL)
                        *chaos_map_put(unacked_sagas, h->element[1]->str) = 1;
                }
                freeReplyObject(h);
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
    /* the key hashes of our requests: more than one saga for any is a violation */
    for (size_t i = 0; i < n; i++) {
        char hex[65], k[128];
        chaos_sha256_hex(reqs[i].key, hex);
        snprintf(k, sizeof k, "%s:%s", reqs[i].tenant, hex);
        long *v = chaos_map_get(idem, k);
        if (v && *v > 1) {
            R->keys_multi_saga++;
            violation(R, &shown_k[6], "client key %s has %ld sagas in Redis", reqs[i].key, *v);
        }
    }

    /* ---- deliveries */
    size_t nd = 0;
    chaos_delivery_t *dl = NULL;
    for (int d = 0; d < o->n_dests; d++) {
        chaos_delivery_t *part;
        size_t k = chaos_dest_log(o->dests[d], &part);
        dl = realloc(dl, (nd + k + 1) * sizeof *dl);
        for (size_t j = 0; j < k; j++)
            if (part[j].arrive_us >= o->since_us)
                dl[nd++] = part[j];
        free(part);
    }
    qsort(dl, nd, sizeof *dl, cmp_arrival);
    R->deliveries = (long)nd;
    for (size_t i = 0; i < n; i++) {
        info[i].first2xx_idx = -1;
    }
    for (size_t i = 0; i < nd; i++) {
        const chaos_delivery_t *e = &dl[i];
        long *v = chaos_map_get(by_sid, e->key);
        if (v == NULL) {
            if (chaos_map_get(unacked_sagas, e->key) != NULL) {
                R->unacked_accepted++;
            } else {
                R->phantom++;
                violation(R, &shown_k[7], "PHANTOM: delivery of key '%s' to %s matches no saga",
                          e->key, e->path);
            }
            continue;
        }
        long ri = *v - 1;
        saga_info_t *si = &info[ri];
        if (e->overlap > 0) {
            R->overlaps++;
            if (!o->allow_overlap)
                violation(R, &shown_k[8], "OVERLAP: saga %s delivered while another delivery of it "
                                     "was in flight",
                          e->key);
        }
        if (si->n_deliv == 0) {
            si->first_arr = e->arrive_us;
            snprintf(si->path, sizeof si->path, "%s", e->path);
            si->body_hash = e->body_hash;
        } else {
            if (strcmp(si->path, e->path) != 0 || si->body_hash != e->body_hash) {
                R->diff_effect++;
                violation(R, &shown_k[9], "DIFFERENT EFFECT: saga %s delivered to %s then %s "
                                     "(bodies %s)",
                          e->key, si->path, e->path,
                          si->body_hash == e->body_hash ? "equal" : "differ");
            }
            if (si->first2xx_idx >= 0)
                R->dups++;
        }
        si->n_deliv++;
        si->last_idx = (long)i;
        if (si->first2xx_idx < 0 && e->completed && e->status >= 200 && e->status < 300) {
            si->first2xx_idx = (long)i;
            si->first2xx_arr = e->arrive_us;
            si->first2xx_fin = e->finish_us;
        }
    }
    R->dup_bound = o->dup_bound >= 0 ? o->dup_bound : (o->cluster ? o->cluster->dup_bound : 0);
    if (R->dups > R->dup_bound)
        violation(R, &shown_k[10], "%ld duplicate deliveries, more than the %ld sagas in flight at the "
                             "faults",
                  R->dups, R->dup_bound);

    /* ---- per saga: lost (or expired), 2xx for synced/canceled, attempts */
    for (size_t i = 0; i < n_acked; i++) {
        long ri = acked[i];
        saga_info_t *si = &info[ri];
        if (!si->found) {
            const char *seen = o->track ? chaos_track_status(o->track, ri) : "";
            if (o->records_may_expire && (seen[0] || (!o->track && si->first2xx_idx >= 0))) {
                R->expired++;
                int slot = -1;
                for (int k = 0; k < 8; k++)
                    if (strcmp(seen, chaos_check_status_names[k]) == 0)
                        slot = k;
                if (strcmp(seen, "error") == 0)
                    slot = ST_ERROR_SLOT;
                if (slot >= 0)
                    R->by_status[slot]++;
                if (seen[0] && reqs[ri].expect[0] && strcmp(seen, reqs[ri].expect) != 0) {
                    R->unexpected++;
                    violation(R, &shown_k[17], "saga %s (%s, order %d) ended %s (seen before it "
                                               "expired), expected %s",
                              reqs[ri].saga_id, reqs[ri].action, reqs[ri].order, seen,
                              reqs[ri].expect);
                }
                bool ok_end = strcmp(seen, "synced") == 0 || strcmp(seen, "canceled") == 0;
                if (o->expect_2xx && ok_end && si->first2xx_idx < 0) {
                    R->missing_2xx++;
                    violation(R, &shown_k[16], "saga %s ended %s without a 2xx at the destination",
                              reqs[ri].saga_id, seen);
                }
            } else {
                R->lost++;
                violation(R, &shown_k[11], "LOST: saga %s (key %s, %s) acknowledged but has no record "
                                     "(%ld deliveries)",
                          reqs[ri].saga_id, reqs[ri].key, reqs[ri].action, si->n_deliv);
            }
            continue;
        }
        bool ok_end = strcmp(si->status, "synced") == 0 || strcmp(si->status, "canceled") == 0;
        if (o->expect_2xx && ok_end && si->first2xx_idx < 0) {
            R->missing_2xx++;
            violation(R, &shown_k[12], "saga %s ended %s without a 2xx at the destination (%ld "
                                 "deliveries)",
                      reqs[ri].saga_id, si->status, si->n_deliv);
        }
        if (o->attempts_exact && terminal(si->status) && si->attempts != si->n_deliv) {
            R->attempts_mismatch++;
            violation(R, &shown_k[13], "saga %s records %d attempts, the destination received %ld",
                      reqs[ri].saga_id, si->attempts, si->n_deliv);
        }
    }

    /* ---- per-order FIFO, in acknowledgement order */
    if (o->fifo) {
        ord_ent_t *oe = malloc((n_acked ? n_acked : 1) * sizeof *oe);
        size_t no = 0;
        for (size_t i = 0; i < n_acked; i++)
            if (reqs[acked[i]].order >= 0)
                oe[no++] = (ord_ent_t){reqs[acked[i]].order, reqs[acked[i]].ack_us, acked[i]};
        qsort(oe, no, sizeof *oe, cmp_ord);
        long prev = -1;
        for (size_t i = 0; i < no; i++) {
            if (i > 0 && oe[i].order != oe[i - 1].order)
                prev = -1;
            saga_info_t *b = &info[oe[i].idx];
            if (b->first2xx_idx < 0)
                continue; /* never delivered (rejected/error before sending) */
            if (prev >= 0) {
                saga_info_t *a = &info[prev];
                R->fifo_checked++;
                if (b->first2xx_arr <= a->first2xx_arr) {
                    R->fifo_violations++;
                    violation(R, &shown_k[14], "FIFO: order %d: saga %s (acked later) got its first 2xx "
                                         "before saga %s",
                              oe[i].order, reqs[oe[i].idx].saga_id, reqs[prev].saga_id);
                } else if (b->first_arr < a->first2xx_fin) {
                    R->fifo_violations++;
                    violation(R, &shown_k[15], "FIFO: order %d: saga %s sent %.1f ms before its "
                                         "predecessor %s had its 2xx",
                              oe[i].order, reqs[oe[i].idx].saga_id,
                              (double)(a->first2xx_fin - b->first_arr) / 1000.0,
                              reqs[prev].saga_id);
                }
                /* a repeat of the predecessor after this one's first 2xx: a late duplicate */
                if (a->last_idx > b->first2xx_idx)
                    R->late_dups++;
            }
            prev = oe[i].idx;
        }
        free(oe);
    }

    /* ---- histories (from Redis, pipelined) */
    for (size_t b = 0; b < n_acked; b += 1000) {
        size_t e = b + 1000 < n_acked ? b + 1000 : n_acked;
        for (size_t i = b; i < e; i++)
            redisAppendCommand(c, "LRANGE " STORE_KEY_PREFIX "saga:%s:hist 0 -1",
                               reqs[acked[i]].saga_id);
        for (size_t i = b; i < e; i++) {
            redisReply *h = NULL;
            if (redisGetReply(c, (void **)&h) != REDIS_OK || h == NULL)
                break;
            saga_info_t *si = &info[acked[i]];
            bool gone = o->records_may_expire && h->type == REDIS_REPLY_ARRAY && h->elements == 0;
            if (si->found && terminal(si->status) && !gone) {
                char why[700];
                int rc = check_history(h, si->status, why, sizeof why);
                if (rc != 0) {
                    R->bad_history++;
                    if (rc == 2)
                        R->stale_writes++;
                    violation(R, &shown_k[16], "HISTORY: saga %s: %s", reqs[acked[i]].saga_id, why);
                }
            }
            freeReplyObject(h);
        }
    }

    /* ---- a sample through the admin API */
    int port = chaos_cluster_port(o->cluster);
    int sample = o->api_sample > 0 ? o->api_sample : 100;
    size_t step = n_acked > (size_t)sample ? n_acked / (size_t)sample : 1;
    for (size_t i = 0; port > 0 && i < n_acked; i += step) {
        const chaos_request_t *q = &reqs[acked[i]];
        saga_info_t *si = &info[acked[i]];
        if (!si->found)
            continue;
        char path[96];
        snprintf(path, sizeof path, "/v1/admin/sagas/%s", q->saga_id);
        const char *h[] = {"X-API-Key: demo-admin-key", NULL};
        harness_resp_t r;
        /* the operator's key belongs to acme-supply: its rate limit applies */
        int tries = 0;
        int hrc;
        while ((hrc = harness_http(port, "GET", path, h, NULL, 0, &r)) == 0 && r.status == 429 &&
               tries++ < 100) {
            harness_resp_free(&r);
            harness_sleep_ms(50);
        }
        if (hrc != 0)
            continue;
        if (o->records_may_expire && r.status == 404) {
            harness_resp_free(&r);
            continue; /* expired since */
        }
        R->api_checked++;
        const char *st = json_string_value(json_object_get(json_object_get(r.json, "saga"), "status"));
        json_t *hist = json_object_get(r.json, "history");
        const char *last = json_string_value(
            json_object_get(json_array_get(hist, json_array_size(hist) - 1), "status"));
        if (r.status != 200 || st == NULL || strcmp(st, si->status) != 0 || last == NULL ||
            strcmp(last, st) != 0) {
            R->api_mismatch++;
            violation(R, &shown_k[17], "API: saga %s: %d status %s (Redis: %s), history ends %s",
                      q->saga_id, r.status, st ? st : "-", si->status, last ? last : "-");
        }
        harness_resp_free(&r);
    }

    /* ---- latencies by class */
    for (int k = 0; k < 8; k++) {
        double *e2e = malloc((n ? n : 1) * sizeof *e2e);
        double *in = malloc((n ? n : 1) * sizeof *in);
        size_t ne = 0, ni = 0;
        for (size_t i = 0; i < n_acked; i++) {
            const chaos_request_t *q = &reqs[acked[i]];
            if (q->cls != k)
                continue;
            in[ni++] = (double)(q->ack_us - q->sched_us) / 1000.0;
            if (info[acked[i]].first2xx_idx >= 0)
                e2e[ne++] = (double)(info[acked[i]].first2xx_fin - q->sched_us) / 1000.0;
        }
        R->e2e_n[k] = (long)ne;
        R->e2e_p50_ms[k] = chaos_pct(e2e, ne, 50);
        R->e2e_p99_ms[k] = chaos_pct(e2e, ne, 99);
        R->intake_p50_ms[k] = chaos_pct(in, ni, 50);
        R->intake_p99_ms[k] = chaos_pct(in, ni, 99);
        free(e2e);
        free(in);
    }

    R->violations += R->lost + R->stuck + R->unexpected + R->missing_2xx + R->phantom +
                     R->keys_multi_saga + R->diff_effect + R->fifo_violations + R->bad_history +
                     R->attempts_mismatch + R->api_mismatch +
                     (R->dups > R->dup_bound ? 1 : 0) + (o->allow_overlap ? 0 : R->overlaps);
    char line[1024];
    chaos_check_line(R, line, sizeof line);
    printf("chaos check: %s\n", line);
    fflush(stdout);

    free(dl);
    free(info);
    free(acked);
    chaos_map_free(by_sid);
    chaos_map_free(idem);
    chaos_map_free(unacked_sagas);
    redisFree(c);
    return R->violations;
}

void chaos_check_line(const chaos_check_t *r, char *out, size_t size)
{
    snprintf(out, size,
             "requests %ld, acked %ld, not acked %ld; lost %ld, stuck %ld, unexpected %ld; "
             "synced %ld, canceled %ld, failed %ld; deliveries %ld, dups %ld (bound %ld), "
             "different-effect %ld, overlaps %ld, phantom %ld (accepted-unacked %ld); "
             "multi-saga keys %ld; FIFO pairs %ld, violations %ld, late dups %ld; bad histories "
             "%ld (stale writes %ld); API %ld/%ld mismatched; settled: xlen %ld pending %ld "
             "active %ld delayed %ld consumers %ld/%ld live (%ld idle live without one); "
             "expired %ld; violations %ld",
             r->requests, r->acked, r->not_acked, r->lost, r->stuck, r->unexpected,
             r->by_status[5], r->by_status[6], r->by_status[7], r->deliveries, r->dups,
             r->dup_bound, r->diff_effect, r->overlaps, r->phantom, r->unacked_accepted,
             r->keys_multi_saga, r->fifo_checked, r->fifo_violations, r->late_dups,
             r->bad_history, r->stale_writes, r->api_mismatch, r->api_checked, r->xlen,
             r->pending, r->active, r->delayed, r->consumers, r->live, r->live_missing, r->expired,
             r->violations);
}

/* ---------------------------------------------------------------- status tracker */

struct chaos_track {
    const chaos_cluster_t *cl;
    chaos_load_t *load;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    char (*status)[12]; /* per request index: terminal status seen ("" none) */
    char (*sid)[25];    /* per request index: saga id once acknowledged */
    size_t cap;
    long *open;         /* acknowledged, not yet seen terminal */
    size_t n_open, cap_open;
    bool *known;
};

static void track_grow(chaos_track_t *t, size_t n)
{
    if (n <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < n)
        cap *= 2;
    t->status = realloc(t->status, cap * sizeof *t->status);
    t->sid = realloc(t->sid, cap * sizeof *t->sid);
    t->known = realloc(t->known, cap * sizeof *t->known);
    if (!t->status || !t->sid || !t->known)
        abort();
    memset(t->status + t->cap, 0, (cap - t->cap) * sizeof *t->status);
    memset(t->sid + t->cap, 0, (cap - t->cap) * sizeof *t->sid);
    memset(t->known + t->cap, 0, (cap - t->cap) * sizeof *t->known);
    t->cap = cap;
}

static void track_add(void *arg, long idx, const char *sid)
{
    chaos_track_t *t = arg;
    track_grow(t, (size_t)idx + 1);
    if (t->known[idx])
        return;
    t->known[idx] = true;
    snprintf(t->sid[idx], sizeof t->sid[idx], "%s", sid);
    if (t->n_open == t->cap_open) {
        t->cap_open = t->cap_open ? t->cap_open * 2 : 4096;
        t->open = realloc(t->open, t->cap_open * sizeof *t->open);
        if (!t->open)
            abort();
    }
    t->open[t->n_open++] = idx;
}

static void track_pass(chaos_track_t *t, redisContext *c)
{
    /* everything acknowledged so far (re-scanning from the oldest not-yet-acked is simpler
     * than tracking which ones are still outstanding; acks come in any order) */
    pthread_mutex_lock(&t->mu);
    chaos_load_collect(t->load, 0, track_add, t);
    size_t n = t->n_open;
    for (size_t b = 0; b < n; b += 1000) {
        size_t e = b + 1000 < n ? b + 1000 : n;
        for (size_t i = b; i < e; i++)
            redisAppendCommand(c, "HGET " STORE_KEY_PREFIX "saga:%s status", t->sid[t->open[i]]);
        for (size_t i = b; i < e; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
                break;
            if (r->type == REDIS_REPLY_STRING && terminal(r->str))
                snprintf(t->status[t->open[i]], sizeof t->status[0], "%s", r->str);
            freeReplyObject(r);
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (t->status[t->open[i]][0] == '\0')
            t->open[k++] = t->open[i];
    t->n_open = k;
    pthread_mutex_unlock(&t->mu);
}

static void *track_run(void *arg)
{
    chaos_track_t *t = arg;
    redisContext *c = NULL;
    while (!atomic_load(&t->stop)) {
        if (c == NULL || c->err) {
            if (c)
                redisFree(c);
            c = chaos_redis(t->cl);
        }
        if (c)
            track_pass(t, c);
        for (int i = 0; i < 10 && !atomic_load(&t->stop); i++)
            harness_sleep_ms(50);
    }
    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        c = chaos_redis(t->cl);
    }
    if (c) {
        track_pass(t, c);
        redisFree(c);
    }
    return NULL;
}

chaos_track_t *chaos_track_start(const chaos_cluster_t *c, chaos_load_t *l)
{
    chaos_track_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->cl = c;
    t->load = l;
    pthread_mutex_init(&t->mu, NULL);
    if (pthread_create(&t->thread, NULL, track_run, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

bool chaos_track_wait(chaos_track_t *t, int deadline_ms)
{
    long long end = chaos_now_us() + (long long)deadline_ms * 1000;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        size_t n = 0, acked = 0, open = t->n_open;
        const chaos_request_t *rq = chaos_load_requests(t->load, &n);
        for (size_t i = 0; i < n; i++)
            acked += rq[i].acked;
        size_t known = 0;
        for (size_t i = 0; i < n && i < t->cap; i++)
            known += t->known[i];
        pthread_mutex_unlock(&t->mu);
        if (open == 0 && known == acked)
            return true;
        if (chaos_now_us() >= end)
            return false;
        harness_sleep_ms(100);
    }
}

void chaos_track_stop(chaos_track_t *t)
{
    if (t == NULL || atomic_exchange(&t->stop, true))
        return;
    pthread_join(t->thread, NULL);
}

const char *chaos_track_status(const chaos_track_t *t, long idx)
{
    if (t == NULL || idx < 0 || (size_t)idx >= t->cap)
        return "";
    return t->status[idx];
}

void chaos_track_free(chaos_track_t *t)
{
    if (t == NULL)
        return;
    chaos_track_stop(t);
    free(t->status);
    free(t->sid);
    free(t->known);
    free(t->open);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
