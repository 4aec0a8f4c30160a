/*
 * sagaq.c - the saga stream consumer: consumer group, blocking reads on their own connection,
 * claims of entries left idle by dead processes (XAUTOCLAIM), the delayed-retry poller and the
 * reconciler. Each entry is begun with saga_lua_begin, which takes the fencing epoch and says
 * whether this process may run the saga now; saga.c then runs it.
 *
 * Chores share one 100 ms timer, each with its own period and at most one command in flight,
 * and each bounded by COUNT/LIMIT so no callback does unbounded work.
 */
#include "saga.h"

#include "log.h"
#include "saga_lua.h"
#include "store_keys.h"
#include "util/cr.h"
#include "util/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 100
#define READ_COUNT 64
#define READ_BLOCK_MS 1000
#define CLAIM_COUNT 64
#define WAKE_LIMIT 200
#define RECONCILE_EVERY_MS 5000
#define RECONCILE_LIMIT 100
#define MAX_RUNNING 2048
#define TOUCH_LIMIT 256
#define ORDER_REAP_LIMIT 200
/*
 * A saga whose runs died with their worker this often ("claims", reset by any progress) is a
 * suspect: it may be the one killing them. Suspects run one at a time in a process, so a saga that
 * only happened to be in flight next to a poison saga when its worker died is not stopped with it:
 * it can share a death with the poison saga only while neither is a suspect yet (two deaths at
 * most; saga.max_claims is at least 2), and a suspect held behind the running one is not charged
 * with that one's death (begin leaves it "started" 0; it is marked with its entry just before it
 * runs, see saga_lua_begin). New and once-claimed sagas run side by side as usual.
 */
#define SUSPECT_CLAIMS 2
/* Replies awaited on the engine's connections beyond which no new work is read or claimed (see
 * writes_backed_up). Sagas already begun go on regardless; a short queue leaves Redis to intake
 * while it is busy: at 256, creates at 256 connections reached 0.24-0.30x ref (b), at 16
 * 0.35-0.38x, with sagas/s within the machine's noise (bench/README, "Back-pressure"). */
#define MAX_QUEUED_WRITES 16
/*
 * Releases (saga_engine_release): runs that ended here because Redis did not answer one of their
 * writes, and runs still on when a drain timed out (saga_engine_hand_back). A claim charges a
 * saga whose run started with the claimed entry, so without a release a saga whose runs meet
 * saga.max_claims + 1 Redis stalls (or drain timeouts) in a row would end "error", abandoned by
 * its worker, though none died. They are sent on the engine's connection at the next ticks until
 * Redis answers, each ahead of this process's next claim on that connection; one still unsent
 * after RELEASE_GIVE_UP_MS is dropped (a claim has most likely resumed the saga by then).
 */
#define RELEASE_MAX        MAX_RUNNING
#define RELEASE_GIVE_UP_MS 60000

typedef struct release {
    char saga_id[25];
    char entry_id[48];
    char epoch[24];
    uint64_t since;
} release_t;

struct saga_engine {
    uv_loop_t *loop;
    store_t *store;          /* chores: group, claims, wake-ups, reconciler, samples */
    store_t *bstore;
    store_t **stage_stores;  /* per-saga begin and commit writes, round-robin */
    size_t n_stage_stores;
    size_t stage_next;
    bool suspect_on;          /* a suspect run is on */
    saga_run_t *held_head;    /* suspects begun while one was on, in order */
    saga_run_t *held_tail;
    outhttp_t *http;
    cfg_t **cfgp;
    char consumer[128];
    uv_timer_t tick;
    bool tick_open;
    bool started;
    bool draining;
    bool closing;
    bool group_ready;
    bool group_pending;
    bool reading;
    bool claiming;
    bool waking;
    bool reconciling;
    bool touching;
    char claim_cursor[48];
    uint64_t last_claim;
    uint64_t last_reconcile;
    saga_run_t runs; /* sentinel */
    size_t running;
    size_t cmds_in_flight; /* engine-level commands whose callbacks are still to come */
    saga_stats_t stats;
    notifier_t *notifier;
    saga_metrics_t metrics;
    bool sampling;
    uint64_t last_sample;
    bool trimming;
    uint64_t last_trim;
    bool reaping_orders;
    bool orders_behind; /* the last pass hit its limit: go on at the next tick */
    uint64_t last_order_reap;
    bool policy_checked;
    release_t *releases;
    size_t n_releases;
    size_t releases_sent; /* the first n_releases in flight (0: none) */
    void (*handed_back)(void *data); /* saga_engine_hand_back: called once the releases are out */
    void *handed_back_data;
    void (*closed_cb)(void *data);
    void *closed_data;
};

static void read_more(saga_engine_t *e);
static void maybe_free(saga_engine_t *e);
static void next_suspect(saga_engine_t *e);
static void suspect_go(saga_run_t *run);
static void begin_entry(saga_engine_t *e, const char *entry_id, const char *saga_id,
                        bool claimed);

store_t *saga_engine_store(saga_engine_t *e)
{
    for (size_t i = 0; i < e->n_stage_stores; i++) {
        store_t *s = e->stage_stores[e->stage_next++ % e->n_stage_stores];
        if (store_ready(s))
            return s;
    }
    return e->store;
}

void saga_engine_add_stage_store(saga_engine_t *e, store_t *s)
{
    e->stage_stores = cr_realloc(e->stage_stores, (e->n_stage_stores + 1) * sizeof *e->stage_stores);
    e->stage_stores[e->n_stage_stores++] = s;
}

uv_loop_t *saga_engine_loop(saga_engine_t *e)
{
    return e->loop;
}

outhttp_t *saga_engine_http(saga_engine_t *e)
{
    return e->http;
}

saga_stats_t *saga_engine_counters(saga_engine_t *e)
{
    return &e->stats;
}

void saga_engine_set_metrics(saga_engine_t *e, const saga_metrics_t *m)
{
    e->metrics = *m;
}

const saga_metrics_t *saga_engine_metrics(saga_engine_t *e)
{
    return &e->metrics;
}

void saga_engine_set_notifier(saga_engine_t *e, notifier_t *n)
{
    e->notifier = n;
}

notifier_t *saga_engine_notifier(saga_engine_t *e)
{
    return e->notifier;
}

size_t saga_engine_running(const saga_engine_t *e)
{
    return e->running;
}

void saga_engine_stats(const saga_engine_t *e, saga_stats_t *out)
{
    *out = e->stats;
    out->running = e->running;
}

/* ---------------------------------------------------------------- runs */

static saga_run_t *find_run(saga_engine_t *e, const char *saga_id)
{
    for (saga_run_t *r = e->runs.next; r != &e->runs; r = r->next)
        if (strcmp(r->saga_id, saga_id) == 0)
            return r;
    return NULL;
}

void saga_engine_run_done(saga_engine_t *e, saga_run_t *run)
{
    run->prev->next = run->next;
    run->next->prev = run->prev;
    e->running--;
    bool release = run->suspect && !run->held;
    /* An entry of this saga that arrived while the run was on (a wake from its predecessor's
     * end, a claim): begin it now. If the run finished the saga, its begin just drops it; if the
     * run found its own entry stale (that wake had replaced it), this is what runs the saga. */
    if (run->next_entry[0] && !e->closing && !e->draining)
        begin_entry(e, run->next_entry, run->saga_id, run->next_claimed);
    json_decref(run->saga);
    json_decref(run->order);
    json_decref(run->request);
    json_decref(run->mapped_doc);
    json_decref(run->outbound_doc);
    json_decref(run->body_doc);
    json_decref(run->held_hist);
    json_decref(run->held_logs);
    json_decref(run->held_fields);
    cfg_unref(run->cfg);
    free(run);
    if (release)
        next_suspect(e);
    if (e->closing)
        maybe_free(e);
    else
        read_more(e);
}

void saga_engine_release(saga_engine_t *e, const saga_run_t *run)
{
    if (e->closing)
        return;
    if (e->releases == NULL)
        e->releases = cr_malloc(RELEASE_MAX * sizeof *e->releases);
    if (e->n_releases == RELEASE_MAX) {
        log_msg(LOG_WARN, "saga: too many runs to release at once; this one's claim will count",
                "saga_id", run->saga_id, NULL);
        return;
    }
    release_t *r = &e->releases[e->n_releases++];
    snprintf(r->saga_id, sizeof r->saga_id, "%s", run->saga_id);
    snprintf(r->entry_id, sizeof r->entry_id, "%s", run->entry_id);
    snprintf(r->epoch, sizeof r->epoch, "%lld", run->epoch);
    r->since = uv_now(e->loop);
}

/* A flat [field, value, ...] reply as a JSON object of strings. */
static json_t *hash_reply(const redisReply *r)
{
    json_t *o = json_object();
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return o;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING)
            json_object_set_new(o, k->str, json_stringn_nocheck(v->str, v->len));
    }
    return o;
}

static void begin_go(saga_run_t *run);

static void on_begin(const redisReply *reply, const char *err, void *data)
{
    saga_run_t *run = data;
    run->begin_ok = !err && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
                    reply->elements >= 3 && reply->element[0]->type == REDIS_REPLY_STRING &&
                    strcmp(reply->element[0]->str, "run") == 0 &&
                    reply->element[1]->type == REDIS_REPLY_INTEGER;
    if (run->begin_ok) {
        run->epoch = reply->element[1]->integer;
        run->order = hash_reply(reply->element[2]);
    } else {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_msg(LOG_ERROR, "saga begin failed", "saga_id", run->saga_id, "error", reply->str,
                    NULL);
        if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
            reply->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(reply->element[0]->str, "poisoned") == 0)
            log_msg(LOG_ERROR, "saga stopped: abandoned by its worker too often", "saga_id",
                    run->saga_id, NULL);
    }
    if (--run->begin_waiting == 0)
        begin_go(run);
}

/* The saga hash, read right behind the begin script (see saga_lua_begin). */
static void on_begin_fields(const redisReply *reply, const char *err, void *data)
{
    saga_run_t *run = data;
    if (!err && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0)
        run->saga = hash_reply(reply);
    if (--run->begin_waiting == 0)
        begin_go(run);
}

/* Both answers of a begin are in: run the saga, hold it behind a suspect, or drop the run. */
static void begin_go(saga_run_t *run)
{
    saga_engine_t *e = run->engine;
    if (e->closing || !run->begin_ok || run->saga == NULL) {
        saga_engine_run_done(e, run);
        return;
    }
    run->cfg = cfg_ref(*e->cfgp);
    run->stage_started = uv_now(e->loop);
    run->touched = run->stage_started;
    const char *claims = json_string_value(json_object_get(run->saga, "claims"));
    run->suspect = claims != NULL && atoi(claims) >= SUSPECT_CLAIMS;
    if (run->suspect && e->suspect_on) {
        /* Begun (the claim is ours and kept fresh), started when the suspect before it ends. */
        run->held = true;
        if (e->held_tail)
            e->held_tail->held_next = run;
        else
            e->held_head = run;
        e->held_tail = run;
        return;
    }
    if (run->suspect) {
        e->suspect_on = true;
        suspect_go(run);
        return;
    }
    e->stats.started++;
    saga_run_go(run);
}

static void on_suspect_started(const redisReply *reply, const char *err, void *data)
{
    saga_run_t *run = data;
    saga_engine_t *e = run->engine;
    if (e->closing || err || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        /* Not marked: a death during the run would not count against the saga, so it does not
         * run; its entry stays pending for a claim. A mark whose answer was lost may have been
         * written all the same: take it back. */
        if (err != NULL)
            saga_engine_release(e, run);
        saga_engine_run_done(e, run);
        return;
    }
    e->stats.started++;
    saga_run_go(run);
}

/* A suspect runs only once its saga says it started ("started" its entry; begin left it 0):
 * should this process die during the run, the claim that follows counts against the saga. */
static void suspect_go(saga_run_t *run)
{
    saga_engine_t *e = run->engine;
    char saga_key[96];
    snprintf(saga_key, sizeof saga_key, STORE_KEY_SAGA_FMT, run->saga_id);
    const char *argv[] = {"HSET", saga_key, "started", run->entry_id};
    if (store_command_argv(saga_engine_store(e), 4, argv, NULL, on_suspect_started, run) != 0)
        saga_engine_run_done(e, run);
}

/* The suspect that was on has ended: start the next one held, if any. */
static void next_suspect(saga_engine_t *e)
{
    e->suspect_on = false;
    saga_run_t *run = e->held_head;
    if (run == NULL || e->closing)
        return;
    e->held_head = run->held_next;
    if (e->held_head == NULL)
        e->held_tail = NULL;
    run->held = false;
    run->held_next = NULL;
    e->suspect_on = true;
    run->stage_started = uv_now(e->loop);
    suspect_go(run);
}

/* Begin one stream entry (new or claimed). */
static void begin_entry(saga_engine_t *e, const char *entry_id, const char *saga_id,
                        bool claimed)
{
    if (saga_id == NULL || strlen(saga_id) >= sizeof ((saga_run_t *)0)->saga_id ||
        strlen(entry_id) >= sizeof ((saga_run_t *)0)->entry_id)
        return;
    saga_run_t *cur = find_run(e, saga_id);
    if (cur != NULL) {
        /* Already running here: this entry is a wake that raced the run. It must not be left
         * pending (it would wait claim_idle_ms for a claim): keep it for when the run ends. */
        snprintf(cur->next_entry, sizeof cur->next_entry, "%s", entry_id);
        cur->next_claimed = claimed;
        return;
    }
    saga_run_t *run = cr_calloc(1, sizeof *run);
    run->engine = e;
    cr_cat(run->saga_id, sizeof run->saga_id, saga_id, NULL, NULL);
    cr_cat(run->entry_id, sizeof run->entry_id, entry_id, NULL, NULL);
    run->next = e->runs.next;
    run->prev = &e->runs;
    e->runs.next->prev = run;
    e->runs.next = run;
    e->running++;

    char saga_key[96], now[CR_INT_LEN], iso[TIME_ISO_LEN], claims[CR_INT_LEN],
        retention[CR_INT_LEN], suspect[CR_INT_LEN], order_keep[CR_INT_LEN];
    cr_cat(saga_key, sizeof saga_key, STORE_KEY_SAGA_PRE, saga_id, NULL);
    int64_t now_ms = time_now_ms();
    cr_fmt_int(now, now_ms);
    time_format_iso(now_ms, iso);
    cr_fmt_int(claims, (*e->cfgp)->saga_max_claims);
    cr_fmt_int(retention, (*e->cfgp)->saga_retention_s);
    cr_fmt_int(suspect, SUSPECT_CLAIMS);
    cr_fmt_int(order_keep, (*e->cfgp)->order_retention_s);
    const char *argv[] = {saga_key, STORE_KEY_STREAM, saga_id, e->consumer, entry_id, now,
                          claimed ? "1" : "0", claims, iso, retention, suspect, order_keep};
    /* Both on one connection, so the HGETALL runs after the script and sees what it wrote. */
    store_t *s = saga_engine_store(e);
    if (store_evalsha(s, &saga_lua_begin, 2, (int)CR_ARRAY_SIZE(argv), argv, NULL, on_begin,
                      run) != 0) {
        run->prev->next = run->next;
        run->next->prev = run->prev;
        e->running--;
        free(run);
        return;
    }
    run->begin_waiting = 1;
    const char *hv[] = {"HGETALL", saga_key};
    if (store_command_argv(s, 2, hv, NULL, on_begin_fields, run) == 0)
        run->begin_waiting = 2;
}

/* Begin every entry of an XREADGROUP/XAUTOCLAIM entry list. */
static void begin_entries(saga_engine_t *e, const redisReply *list, bool claimed)
{
    if (list == NULL || list->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *ent = list->element[i];
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
            ent->element[0]->type != REDIS_REPLY_STRING)
            continue; /* a deleted entry (nil fields) */
        const redisReply *fields = ent->element[1];
        const char *saga_id = NULL;
        for (size_t f = 0; fields->type == REDIS_REPLY_ARRAY && f + 1 < fields->elements; f += 2)
            if (strcmp(fields->element[f]->str, "saga_id") == 0)
                saga_id = fields->element[f + 1]->str;
        if (claimed)
            e->stats.claimed++;
        begin_entry(e, ent->element[0]->str, saga_id, claimed);
    }
}

/* ---------------------------------------------------------------- reading */

static void on_group(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    e->cmds_in_flight--;
    e->group_pending = false;
    if (e->closing) {
        maybe_free(e);
        return;
    }
    if (err == NULL && reply &&
        (reply->type == REDIS_REPLY_STATUS ||
         (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) == 0)))
        e->group_ready = true;
    read_more(e);
}

static void ensure_group(saga_engine_t *e)
{
    if (e->group_pending || !store_ready(e->store))
        return;
    /* From 0, never $: a group recreated after loss must still see every unfinished entry. */
    const char *argv[] = {"XGROUP", "CREATE", STORE_KEY_STREAM, STORE_STREAM_GROUP, "0",
                          "MKSTREAM"};
    if (store_command_argv(e->store, 6, argv, NULL, on_group, e) == 0) {
        e->group_pending = true;
        e->cmds_in_flight++;
    }
}

static void on_read(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    e->cmds_in_flight--;
    e->reading = false;
    if (e->closing) {
        maybe_free(e);
        return;
    }
    if (err == NULL && reply && reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "NOGROUP", 7) == 0)
            e->group_ready = false;
        else
            log_msg(LOG_ERROR, "XREADGROUP failed", "error", reply->str, NULL);
        return; /* the tick retries */
    }
    if (err == NULL && reply && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < reply->elements; s++) {
            const redisReply *stream = reply->element[s];
            if (stream->type == REDIS_REPLY_ARRAY && stream->elements == 2)
                begin_entries(e, stream->element[1], false);
        }
    }
    if (err == NULL)
        read_more(e);
}

/*
 * Back-pressure: when Redis answers slower than work comes in, entries read now would wait in
 * this process's queue of stage writes, holding their claims while the writes queue. Past
 * claim_idle_ms another process takes them over (a second delivery, and after max_claims the
 * saga ends "error" though nothing failed). So new entries are read, and idle ones claimed, only
 * while the queue is short; the rest waits in the stream, where nobody holds it. Each run that
 * ends calls read_more, so a pause lasts until the queue drains, not until the next tick.
 */
static bool writes_backed_up(saga_engine_t *e)
{
    store_stats_t st;
    store_stats_get(e->store, &st);
    size_t queued = st.in_flight;
    for (size_t i = 0; i < e->n_stage_stores; i++) {
        store_stats_get(e->stage_stores[i], &st);
        queued += st.in_flight;
    }
    return queued > MAX_QUEUED_WRITES;
}

static void read_more(saga_engine_t *e)
{
    if (!e->started || e->reading || e->draining || e->closing)
        return;
    if (!e->group_ready) {
        ensure_group(e);
        return;
    }
    if (e->running >= MAX_RUNNING || !store_ready(e->bstore) || !store_ready(e->store) ||
        writes_backed_up(e))
        return;
    char count[16], block[16];
    snprintf(count, sizeof count, "%zu", CR_MIN((size_t)READ_COUNT, MAX_RUNNING - e->running));
    snprintf(block, sizeof block, "%d", READ_BLOCK_MS);
    const char *argv[] = {"XREADGROUP", "GROUP", STORE_STREAM_GROUP, e->consumer, "COUNT", count,
                          "BLOCK", block, "STREAMS", STORE_KEY_STREAM, ">"};
    if (store_command_argv(e->bstore, 11, argv, NULL, on_read, e) == 0) {
        e->reading = true;
        e->cmds_in_flight++;
    }
}

/* ---------------------------------------------------------------- chores */

static void on_claim(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    e->cmds_in_flight--;
    e->claiming = false;
    if (e->closing) {
        maybe_free(e);
        return;
    }
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) {
        if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOGROUP", 7) == 0)
            e->group_ready = false;
        return;
    }
    const redisReply *cursor = reply->element[0];
    snprintf(e->claim_cursor, sizeof e->claim_cursor, "%s",
             cursor->type == REDIS_REPLY_STRING ? cursor->str : "0-0");
    begin_entries(e, reply->element[1], true);
    /* More to claim: go on at the next tick instead of waiting a whole period. */
    if (strcmp(e->claim_cursor, "0-0") != 0)
        e->last_claim = 0;
}

static void send_releases(saga_engine_t *e, uint64_t now);

static void on_release(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    e->cmds_in_flight--;
    size_t sent = e->releases_sent;
    e->releases_sent = 0;
    if (e->closing) {
        maybe_free(e);
        return;
    }
    bool ok = err == NULL && reply != NULL && reply->type == REDIS_REPLY_INTEGER;
    if (!ok && reply && reply->type == REDIS_REPLY_ERROR)
        log_msg(LOG_ERROR, "saga chore failed", "error", reply->str, NULL);
    if (ok) {
        e->n_releases -= sent;
        memmove(e->releases, e->releases + sent, e->n_releases * sizeof *e->releases);
    }
    /* else: sent again at the next tick */
    if (e->handed_back != NULL) {
        if (ok && e->n_releases > 0)
            send_releases(e, uv_now(e->loop));
        if (!ok || e->releases_sent == 0) {
            void (*done)(void *) = e->handed_back;
            e->handed_back = NULL;
            done(e->handed_back_data);
        }
    }
}

/* The runs to release, in one script call; before a claim, so Redis runs it first. */
static void send_releases(saga_engine_t *e, uint64_t now)
{
    if (e->releases_sent > 0 || e->n_releases == 0 || !store_ready(e->store))
        return;
    size_t keep = 0;
    for (size_t i = 0; i < e->n_releases; i++)
        if (now - e->releases[i].since < RELEASE_GIVE_UP_MS)
            e->releases[keep++] = e->releases[i];
    e->n_releases = keep;
    if (keep == 0)
        return;
    const char **argv = cr_malloc(3 * keep * sizeof *argv);
    for (size_t i = 0; i < keep; i++) {
        argv[3 * i] = e->releases[i].saga_id;
        argv[3 * i + 1] = e->releases[i].epoch;
        argv[3 * i + 2] = e->releases[i].entry_id;
    }
    if (store_evalsha(e->store, &saga_lua_release, 0, (int)(3 * keep), argv, NULL, on_release, e) ==
        0) {
        e->releases_sent = keep;
        e->cmds_in_flight++;
    }
    free(argv);
}

static void claim_idle(saga_engine_t *e)
{
    if (e->claiming || e->draining || e->running >= MAX_RUNNING || !store_ready(e->store) ||
        writes_backed_up(e))
        return;
    char idle[24], count[16];
    snprintf(idle, sizeof idle, "%ld", (*e->cfgp)->saga_claim_idle_ms);
    snprintf(count, sizeof count, "%d", CLAIM_COUNT);
    const char *argv[] = {"XAUTOCLAIM", STORE_KEY_STREAM, STORE_STREAM_GROUP, e->consumer, idle,
                          e->claim_cursor, "COUNT", count};
    if (store_command_argv(e->store, 8, argv, NULL, on_claim, e) == 0) {
        e->claiming = true;
        e->cmds_in_flight++;
    }
}

static void on_simple_chore(const redisReply *reply, const char *err, void *data, bool *flag,
                            uint64_t *counter)
{
    saga_engine_t *e = data;
    e->cmds_in_flight--;
    *flag = false;
    if (e->closing) {
        maybe_free(e);
        return;
    }
    if (err == NULL && reply && reply->type == REDIS_REPLY_INTEGER && counter)
        *counter += (uint64_t)reply->integer;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_msg(LOG_ERROR, "saga chore failed", "error", reply->str, NULL);
}

static void on_wake(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    on_simple_chore(reply, err, data, &e->waking, NULL);
}

static void on_reconcile(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    on_simple_chore(reply, err, data, &e->reconciling, &e->stats.requeued);
}

static void on_reap(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    e->cmds_in_flight--;
    if (e->closing) {
        maybe_free(e);
        return;
    }
    if (err == NULL && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        char n[24];
        snprintf(n, sizeof n, "%lld", reply->integer);
        log_msg(LOG_INFO, "removed idle consumers", "#count", n, NULL);
    }
}

static void wake_due(saga_engine_t *e)
{
    if (e->waking || !store_ready(e->store))
        return;
    char now[24], limit[16];
    snprintf(now, sizeof now, "%lld", (long long)time_now_ms());
    snprintf(limit, sizeof limit, "%d", WAKE_LIMIT);
    const char *argv[] = {STORE_KEY_DELAYED, STORE_KEY_STREAM, now, limit};
    if (store_evalsha(e->store, &saga_lua_wake_due, 2, 4, argv, NULL, on_wake, e) == 0) {
        e->waking = true;
        e->cmds_in_flight++;
    }
}

static void reconcile(saga_engine_t *e)
{
    if (e->reconciling || !store_ready(e->store))
        return;
    long long now = (long long)time_now_ms();
    char older[24], limit[16], nows[24];
    snprintf(older, sizeof older, "%lld", now - 2 * (*e->cfgp)->saga_claim_idle_ms);
    snprintf(limit, sizeof limit, "%d", RECONCILE_LIMIT);
    snprintf(nows, sizeof nows, "%lld", now);
    const char *argv[] = {STORE_KEY_ACTIVE, STORE_KEY_DELAYED, STORE_KEY_STREAM, older, limit,
                          nows};
    if (store_evalsha(e->store, &saga_lua_reconcile, 3, 6, argv, NULL, on_reconcile, e) == 0) {
        e->reconciling = true;
        e->cmds_in_flight++;
    }
    /* Consumers of exited processes: gone once they hold nothing (10 claim periods idle). */
    char idle[24];
    snprintf(idle, sizeof idle, "%ld", 10 * (*e->cfgp)->saga_claim_idle_ms);
    const char *rargv[] = {STORE_KEY_STREAM, idle, e->consumer};
    if (store_evalsha(e->store, &saga_lua_reap, 1, 3, rargv, NULL, on_reap, e) == 0)
        e->cmds_in_flight++;
}

static void on_touch(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    on_simple_chore(reply, err, data, &e->touching, NULL);
}

/*
 * A run that lasts longer than claim_idle_ms (a slow destination, a long connector timeout)
 * would look abandoned to the other processes' XAUTOCLAIM, and the saga would be delivered a
 * second time while the first delivery is still in flight. Refresh the claim of every run older
 * than a third of the claim time, so only a process that really stops (crash, SIGSTOP) loses
 * its sagas.
 */
static void keep_claims(saga_engine_t *e, uint64_t now)
{
    if (e->touching || e->running == 0 || !store_ready(e->store))
        return;
    uint64_t every = (uint64_t)CR_MAX((*e->cfgp)->saga_claim_idle_ms / 3, TICK_MS);
    const char *argv[2 + 2 * TOUCH_LIMIT];
    char epochs[TOUCH_LIMIT][24];
    int argc = 2, n = 0;
    argv[0] = STORE_KEY_STREAM;
    argv[1] = e->consumer;
    for (saga_run_t *r = e->runs.next; r != &e->runs && n < TOUCH_LIMIT; r = r->next) {
        if (r->saga == NULL || r->dropped || now - r->touched < every)
            continue;
        r->touched = now;
        snprintf(epochs[n], sizeof epochs[n], "%lld", r->epoch);
        argv[argc++] = r->saga_id;
        argv[argc++] = epochs[n++];
    }
    if (n == 0)
        return;
    if (store_evalsha(e->store, &saga_lua_touch, 1, argc, argv, NULL, on_touch, e) == 0) {
        e->touching = true;
        e->cmds_in_flight++;
    }
}

/* Stream length and pending entries, for the stream-lag metrics. */
static void on_sample(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    e->cmds_in_flight--;
    e->sampling = false;
    if (e->closing) {
        maybe_free(e);
        return;
    }
    if (err == NULL && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        if (reply->element[0]->type == REDIS_REPLY_INTEGER)
            e->stats.stream_len = reply->element[0]->integer;
        const redisReply *p = reply->element[1];
        if (p->type == REDIS_REPLY_ARRAY && p->elements >= 1 &&
            p->element[0]->type == REDIS_REPLY_INTEGER)
            e->stats.stream_pending = p->element[0]->integer;
    }
}

static store_script_t sample_script = {
    .name = "sample",
    .source = "local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], 'workers')\n"
              "if not ok then p = {0} end\n"
              "return {redis.call('XLEN', KEYS[1]), p}\n",
};

static void sample(saga_engine_t *e)
{
    if (e->sampling || !store_ready(e->store))
        return;
    const char *argv[] = {STORE_KEY_STREAM};
    if (store_evalsha(e->store, &sample_script, 1, 1, argv, NULL, on_sample, e) == 0) {
        e->sampling = true;
        e->cmds_in_flight++;
    }
}

/*
 * ARGV: 1 cutoff_ms, then tenant names. Drops index members created before the cutoff (the
 * retention window): the sagas themselves expire on their own once finished.
 */
static store_script_t trim_script = {
    .name = "trim_indexes",
    .source =
        "local P = 'cr:{cr}:'\n"
        "local keys = {'idx:all'}\n"
        "for _, s in ipairs({'pending', 'requested', 'origin_mapped', 'master_mapped',\n"
        "                    'destination_mapped', 'synced', 'canceled', 'rejected', 'error'}) do\n"
        "  keys[#keys + 1] = 'idx:status:' .. s\n"
        "end\n"
        "for _, t in ipairs({'order_cancel', 'order_reset', 'order_update_status', 'order_create',\n"
        "                    'order_accept', 'order_bol', 'order_drop'}) do\n"
        "  keys[#keys + 1] = 'idx:type:' .. t\n"
        "end\n"
        "for i = 2, #ARGV do keys[#keys + 1] = 'idx:tenant:' .. ARGV[i] end\n"
        "local n = 0\n"
        "for _, k in ipairs(keys) do\n"
        "  n = n + redis.call('ZREMRANGEBYSCORE', P .. k, '-inf', '(' .. ARGV[1])\n"
        "end\n"
        "return n\n",
};

static void on_trim(const redisReply *reply, const char *err, void *data)
{
    on_simple_chore(reply, err, data, &((saga_engine_t *)data)->trimming, NULL);
}

static void trim_indexes(saga_engine_t *e)
{
    if (e->trimming || !store_ready(e->store))
        return;
    const cfg_t *cfg = *e->cfgp;
    const char **argv = cr_malloc((cfg->n_tenants + 1) * sizeof *argv);
    char cutoff[24];
    snprintf(cutoff, sizeof cutoff, "%lld",
             (long long)time_now_ms() - (long long)cfg->saga_retention_s * 1000);
    argv[0] = cutoff;
    for (size_t i = 0; i < cfg->n_tenants; i++)
        argv[i + 1] = cfg->tenants[i].name;
    if (store_evalsha(e->store, &trim_script, 0, (int)cfg->n_tenants + 1, argv, NULL, on_trim,
                      e) == 0) {
        e->trimming = true;
        e->cmds_in_flight++;
    }
    free(argv);
}

/*
 * ARGV: 1 cutoff_ms, 2 limit. Removes up to limit orders idle since before the cutoff (their last
 * saga ended then and none came since, see LUA_LEAVE): the order hash, its log, status history
 * and saga index, and the number and reference keys that still name it. An order with a saga in
 * its queue again is only taken out of the idle set; that saga's end puts it back. Returns
 * {removed, looked at}.
 */
static store_script_t reap_orders_script = {
    .name = "reap_orders",
    .source =
        "local P = 'cr:{cr}:'\n"
        "local idle = P .. 'orders:idle'\n"
        "local ids = redis.call('ZRANGEBYSCORE', idle, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
        "local n = 0\n"
        "for _, oid in ipairs(ids) do\n"
        "  redis.call('ZREM', idle, oid)\n"
        "  local ok = P .. 'order:' .. oid\n"
        "  if redis.call('EXISTS', ok .. ':q') == 0 then\n"
        "    local o = redis.call('HMGET', ok, 'origin_tenant', 'destination_tenant',\n"
        "                         'order_number', 'counterparty_order_number')\n"
        "    local function unname(k)\n"
        "      if redis.call('GET', k) == oid then redis.call('DEL', k) end\n"
        "    end\n"
        "    if o[1] and o[3] then unname(P .. 'ordernum:' .. o[1] .. ':' .. o[3]) end\n"
        "    if o[2] and o[3] then unname(P .. 'ordernum_in:' .. o[2] .. ':' .. o[3]) end\n"
        "    if o[2] and o[4] and o[4] ~= '' then\n"
        "      unname(P .. 'orderref:' .. o[2] .. ':' .. o[4])\n"
        "    end\n"
        "    redis.call('UNLINK', ok, ok .. ':log', ok .. ':status', P .. 'idx:order:' .. oid)\n"
        "    n = n + 1\n"
        "  end\n"
        "end\n"
        "return {n, #ids}\n",
};

static void on_reap_orders(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    e->cmds_in_flight--;
    e->reaping_orders = false;
    if (e->closing) {
        maybe_free(e);
        return;
    }
    e->orders_behind = false;
    if (err == NULL && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER &&
        reply->element[1]->type == REDIS_REPLY_INTEGER) {
        e->stats.orders_expired += (uint64_t)reply->element[0]->integer;
        e->orders_behind = reply->element[1]->integer >= ORDER_REAP_LIMIT;
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        log_msg(LOG_ERROR, "order reaper failed", "error", reply->str, NULL);
    }
}

/* Orders idle longer than saga.order_retention_s go, at most ORDER_REAP_LIMIT per pass. */
static void reap_orders(saga_engine_t *e)
{
    if (e->reaping_orders || !store_ready(e->store))
        return;
    char cutoff[24], limit[16];
    snprintf(cutoff, sizeof cutoff, "%lld",
             (long long)time_now_ms() - (long long)(*e->cfgp)->order_retention_s * 1000);
    snprintf(limit, sizeof limit, "%d", ORDER_REAP_LIMIT);
    const char *argv[] = {cutoff, limit};
    if (store_evalsha(e->store, &reap_orders_script, 0, 2, argv, NULL, on_reap_orders, e) == 0) {
        e->reaping_orders = true;
        e->cmds_in_flight++;
    }
}

/* Evicting keys would silently lose accepted sagas: say so loudly at start. */
static void on_policy(const redisReply *reply, const char *err, void *data)
{
    saga_engine_t *e = data;
    e->cmds_in_flight--;
    if (e->closing) {
        maybe_free(e);
        return;
    }
    if (err == NULL && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[1]->str, "noeviction") != 0)
        log_msg(LOG_WARN,
                "redis maxmemory-policy is not noeviction: under memory pressure Redis may "
                "evict accepted sagas",
                "maxmemory_policy", reply->element[1]->str, NULL);
}

static void check_policy(saga_engine_t *e)
{
    if (e->policy_checked || !store_ready(e->store))
        return;
    const char *argv[] = {"CONFIG", "GET", "maxmemory-policy"};
    if (store_command_argv(e->store, 3, argv, NULL, on_policy, e) == 0) {
        e->policy_checked = true;
        e->cmds_in_flight++;
    }
}

static void on_tick(uv_timer_t *t)
{
    saga_engine_t *e = t->data;
    if (e->closing)
        return;
    uint64_t now = uv_now(e->loop);
    check_policy(e);
    keep_claims(e, now);
    send_releases(e, now);
    if (!e->draining) {
        wake_due(e);
        long claim_every = CR_MAX((*e->cfgp)->saga_claim_idle_ms / 2, TICK_MS);
        if (now - e->last_claim >= (uint64_t)claim_every) {
            e->last_claim = now;
            claim_idle(e);
        }
        if (now - e->last_trim >= 60000) {
            e->last_trim = now;
            trim_indexes(e);
        }
        /* a tenth of the retention, 1 s to 60 s: an order goes at most 10 % late */
        long order_keep = (*e->cfgp)->order_retention_s;
        uint64_t reap_every = (uint64_t)CR_MIN(CR_MAX(order_keep * 100, 1000), 60000);
        if (order_keep > 0 && (e->orders_behind || now - e->last_order_reap >= reap_every)) {
            e->last_order_reap = now;
            reap_orders(e);
        }
        if (now - e->last_sample >= 1000) {
            e->last_sample = now;
            sample(e);
        }
        if (now - e->last_reconcile >= RECONCILE_EVERY_MS) {
            e->last_reconcile = now;
            reconcile(e);
        }
    }
    read_more(e);
}

/* ---------------------------------------------------------------- life cycle */

saga_engine_t *saga_engine_new(uv_loop_t *loop, store_t *store, store_t *block_store,
                               outhttp_t *http, cfg_t **cfgp, const char *consumer)
{
    saga_engine_t *e = cr_calloc(1, sizeof *e);
    e->loop = loop;
    e->store = store;
    e->bstore = block_store;
    e->http = http;
    e->cfgp = cfgp;
    snprintf(e->consumer, sizeof e->consumer, "%s", consumer);
    snprintf(e->claim_cursor, sizeof e->claim_cursor, "0-0");
    e->runs.next = e->runs.prev = &e->runs;
    uv_timer_init(loop, &e->tick);
    e->tick.data = e;
    e->tick_open = true;
    return e;
}

void saga_engine_register_scripts(saga_engine_t *e, store_t *store)
{
    (void)e;
    store_script_register(store, &saga_lua_begin);
    store_script_register(store, &saga_lua_commit);
    store_script_register(store, &saga_lua_wake_due);
    store_script_register(store, &saga_lua_accept);
    store_script_register(store, &saga_lua_reconcile);
    store_script_register(store, &saga_lua_retry);
    store_script_register(store, &saga_lua_reap);
    store_script_register(store, &saga_lua_touch);
    store_script_register(store, &saga_lua_release);
    store_script_register(store, &sample_script);
    store_script_register(store, &trim_script);
    store_script_register(store, &reap_orders_script);
}

void saga_engine_start(saga_engine_t *e)
{
    e->started = true;
    /* Claim at once after a start: our own entries from before a crash are idle already. */
    e->last_claim = 0;
    e->last_reconcile = uv_now(e->loop);
    uv_timer_start(&e->tick, on_tick, TICK_MS, TICK_MS);
}

void saga_engine_drain(saga_engine_t *e)
{
    e->draining = true;
}

void saga_engine_hand_back(saga_engine_t *e, void (*done)(void *data), void *data)
{
    e->handed_back = done;
    e->handed_back_data = data;
    for (saga_run_t *r = e->runs.next; r != &e->runs; r = r->next)
        if (r->saga != NULL)
            saga_engine_release(e, r);
    if (e->releases_sent == 0)
        send_releases(e, uv_now(e->loop));
    if (e->releases_sent == 0) { /* nothing to send, or Redis not there */
        e->handed_back = NULL;
        done(data);
    }
}

static void maybe_free(saga_engine_t *e)
{
    if (!e->closing || e->tick_open || e->cmds_in_flight > 0 || e->running > 0)
        return;
    void (*cb)(void *) = e->closed_cb;
    void *data = e->closed_data;
    free(e->stage_stores);
    free(e->releases);
    free(e);
    if (cb)
        cb(data);
}

static void on_tick_closed(uv_handle_t *h)
{
    saga_engine_t *e = h->data;
    e->tick_open = false;
    maybe_free(e);
}

void saga_engine_close(saga_engine_t *e, void (*closed_cb)(void *data), void *data)
{
    if (e->closing)
        return;
    e->closing = true;
    e->closed_cb = closed_cb;
    e->closed_data = data;
    /* Runs waiting on Redis finish when their callbacks fail (the stores close next); runs
     * waiting on a delivery are cancelled now. Their entries stay pending for a claim. */
    for (saga_run_t *r = e->runs.next; r != &e->runs;) {
        saga_run_t *next = r->next;
        r->dropped = true;
        if (r->xfer)
            outhttp_cancel(e->http, r->xfer);
        r = next;
    }
    /* Held suspects never started: their entries stay pending for a claim. */
    while (e->held_head) {
        saga_run_t *r = e->held_head;
        e->held_head = r->held_next;
        saga_engine_run_done(e, r);
    }
    e->held_tail = NULL;
    uv_close((uv_handle_t *)&e->tick, on_tick_closed);
}
