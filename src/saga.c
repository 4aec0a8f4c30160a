/*
 * saga.c - the stage machine: one function per stage, each ending in one atomic commit
 * (saga_lua_commit) before the next stage starts (see saga.h for the table); the steps into
 * stages that do no I/O are held and written with the next commit (held_step).
 *
 * A run starts from whatever status Redis holds, so a saga claimed after a crash resumes at the
 * last stored status. Stages compute from the run's cached saga and order hashes (the
 * saga is the head of its order's queue, so nobody else changes that order's data meanwhile)
 * and from the configuration the run holds a reference to.
 */
#include "saga.h"

#include "crlog.h"
#include "dest.h"
#include "log.h"
#include "saga_lua.h"
#include "store_keys.h"
#include "util/buf.h"
#include "util/cr.h"
#include "util/crypto.h"
#include "util/jsonw.h"
#include "util/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool saga_status_terminal(const char *s)
{
    return s && (strcmp(s, "synced") == 0 || strcmp(s, "canceled") == 0 ||
                 strcmp(s, "rejected") == 0 || strcmp(s, "error") == 0);
}

/* ---------------------------------------------------------------- small accessors */

static const char *sf(const saga_run_t *run, const char *field)
{
    const char *v = json_string_value(json_object_get(run->saga, field));
    return v ? v : "";
}

static const char *of(const saga_run_t *run, const char *field)
{
    const char *v = json_string_value(json_object_get(run->order, field));
    return v ? v : "";
}

/* A document's compact text as a JSON string, or NULL. jsonw writes valid UTF-8 only, so the
 * string skips jansson's second check of every byte (these texts run to kilobytes). */
static json_t *json_text(const json_t *doc)
{
    char *s = doc ? jsonw_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_t *j = s ? json_stringn_nocheck(s, strlen(s)) : NULL;
    free(s);
    return j;
}

static const char *action_of(const saga_run_t *run)
{
    const char *t = sf(run, "type");
    return strncmp(t, "order_", 6) == 0 ? t + 6 : t;
}

static const cfg_tenant_t *tenant(const saga_run_t *run, const char *name)
{
    return cfg_tenant_find(run->cfg, name, strlen(name));
}

static void now_strings(char iso[TIME_ISO_LEN], char ms[CR_INT_LEN])
{
    int64_t now = time_now_ms();
    time_format_iso(now, iso);
    cr_fmt_int(ms, now);
}

/* ---------------------------------------------------------------- commit */

typedef void (*stage_fn)(saga_run_t *run);

typedef struct commit_op {
    saga_run_t *run;
    stage_fn next;
    const char *status;
    char *message;   /* end commits: for the completion notification */
    char *final_log; /* end commits: the last log entry (JSON) */
    /* What the commit writes, kept until its answer: the same commit may have to go again as
     * one script call (on_commit) */
    const char *mode; /* static strings only */
    char saga_key[96], hist_key[96], log_key[96];
    char now_ms[CR_INT_LEN], mode_arg[CR_INT_LEN], epoch[CR_INT_LEN];
    char *order_hist;          /* the order's status-history entry, or NULL */
    json_t *hist, *logs;       /* arrays of JSON texts, or NULL */
    json_t *ofields, *sfields; /* objects of strings; ofields may be NULL */
} commit_op_t;

static void commit_op_free(commit_op_t *op)
{
    free(op->message);
    free(op->final_log);
    free(op->order_hist);
    json_decref(op->hist);
    json_decref(op->logs);
    json_decref(op->ofields);
    json_decref(op->sfields);
    free(op);
}

/* The entries as arguments, each its own */
static void format_entries(buf_t *b, const json_t *entries)
{
    for (size_t k = 0; k < json_array_size(entries); k++) {
        const json_t *e = json_array_get(entries, k);
        store_resp_arg(b, json_string_value(e), json_string_length(e));
    }
}

static void format_fields(buf_t *b, const json_t *fields)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fields, k, v)
    {
        store_resp_arg(b, k, strlen(k));
        store_resp_arg(b, json_string_value(v) ? json_string_value(v) : "", json_string_length(v));
    }
}

/* "RPUSH key entries..." into b when there are entries. */
static void format_push(buf_t *b, const char *key, const json_t *entries)
{
    if (entries == NULL)
        return;
    store_resp_len(b, '*', 2 + json_array_size(entries));
    store_resp_arg(b, "RPUSH", 5);
    store_resp_arg(b, key, strlen(key));
    format_entries(b, entries);
}

/* The commit script's call (saga_lua_commit) into b; the entries among its arguments when
 * inline, or else left to the RPUSHes ahead of it. */
static void format_commit(buf_t *b, const commit_op_t *op, bool inline_entries)
{
    char nh[CR_INT_LEN], nl[CR_INT_LEN], nord[CR_INT_LEN], order_keep[CR_INT_LEN];
    size_t n_hist = json_array_size(op->hist), n_logs = json_array_size(op->logs);
    cr_fmt_int(nh, (long long)n_hist);
    cr_fmt_int(nl, (long long)n_logs);
    cr_fmt_int(nord, 2 * (long long)json_object_size(op->ofields));
    cr_fmt_int(order_keep, op->run->cfg->order_retention_s);
    const char *fixed[] = {"EVALSHA",
                           saga_lua_commit.sha1,
                           "4",
                           op->saga_key,
                           op->hist_key,
                           STORE_KEY_STREAM,
                           op->log_key,
                           op->run->saga_id,
                           op->epoch,
                           op->status,
                           nh,
                           nl,
                           op->now_ms,
                           op->order_hist ? op->order_hist : "",
                           op->mode,
                           op->mode_arg,
                           nord,
                           order_keep,
                           inline_entries ? "1" : "0"};
    store_resp_len(b, '*',
                   CR_ARRAY_SIZE(fixed) + (inline_entries ? n_hist + n_logs : 0) +
                       2 * (json_object_size(op->ofields) + json_object_size(op->sfields)));
    for (size_t k = 0; k < CR_ARRAY_SIZE(fixed); k++)
        store_resp_arg(b, fixed[k], strlen(fixed[k]));
    format_fields(b, op->ofields);
    if (inline_entries) {
        format_entries(b, op->hist);
        format_entries(b, op->logs);
    }
    format_fields(b, op->sfields);
}

/* Send the commit: MULTI, the pushes, the script, EXEC; or the script alone with the entries
 * inline. One buffer, reused: the loop is single-threaded and the store copies the commands
 * before it returns. Each command has its own reply; the last one's comes to on_commit. */
static void on_commit(const redisReply *reply, const char *err, void *data);

static int send_commit(commit_op_t *op, bool inline_entries)
{
    static buf_t cmd;
    size_t cut[5], n_cmds = 0;
    buf_reset(&cmd);
    if (!inline_entries) {
        store_resp_len(&cmd, '*', 1);
        store_resp_arg(&cmd, "MULTI", 5);
        cut[n_cmds++] = cmd.len;
        format_push(&cmd, op->hist_key, op->hist);
        if (op->hist)
            cut[n_cmds++] = cmd.len;
        format_push(&cmd, op->log_key, op->logs);
        if (op->logs)
            cut[n_cmds++] = cmd.len;
    }
    format_commit(&cmd, op, inline_entries);
    cut[n_cmds++] = cmd.len;
    if (!inline_entries) {
        store_resp_len(&cmd, '*', 1);
        store_resp_arg(&cmd, "EXEC", 4);
        cut[n_cmds++] = cmd.len;
    }
    const char *cmds[5];
    size_t lens[5];
    for (size_t c = 0, from = 0; c < n_cmds; from = cut[c++]) {
        cmds[c] = cmd.data + from;
        lens[c] = cut[c] - from;
    }
    return store_commands_formatted(saga_engine_store(op->run->engine), n_cmds, cmds, lens,
                                    on_commit, op);
}

static void on_taken_back(const redisReply *reply, const char *err, void *data)
{
    (void)reply;
    (void)err;
    (void)data;
}

/* The commit's script failed (NOSCRIPT after a SCRIPT FLUSH, a Lua error) after its transaction
 * had pushed the history and log entries: remove them again, each by its exact text from the
 * tail, or the claim that resumes the saga would write them a second time. Best effort: Redis
 * answered a moment ago. Log entries carry their own _id, so another saga's cannot match. */
static void take_back(commit_op_t *op, const redisReply *exec)
{
    store_t *st = saga_engine_store(op->run->engine);
    const char *key[2] = {op->hist_key, op->log_key};
    const json_t *list[2] = {op->hist, op->logs};
    for (size_t l = 0, el = 0; l < 2; l++) {
        if (list[l] == NULL)
            continue;
        const redisReply *pushed = exec->element[el++];
        if (pushed->type != REDIS_REPLY_INTEGER)
            continue; /* that push failed itself */
        for (size_t k = 0; k < json_array_size(list[l]); k++) {
            const json_t *e = json_array_get(list[l], k);
            const char *argv[] = {"LREM", key[l], "-1", json_string_value(e)};
            const size_t len[] = {4, strlen(key[l]), 2, json_string_length(e)};
            if (store_command_argv(st, 4, argv, len, on_taken_back, NULL) != 0)
                log_msg(LOG_WARN, "saga: could not take back the entries of a failed commit",
                        "saga_id", op->run->saga_id, NULL);
        }
    }
}

/* The seed response shape with the final status, to the initiating tenant's notify_url. */
static void notify_end(saga_run_t *run, const char *status, const char *message,
                       const char *log_json)
{
    notifier_t *n = saga_engine_notifier(run->engine);
    const char *tname = json_string_value(json_object_get(run->saga, "tenant"));
    const cfg_tenant_t *t = tname ? cfg_tenant_find(run->cfg, tname, strlen(tname)) : NULL;
    if (n == NULL || t == NULL || t->notify_url == NULL)
        return;
    json_t *log = log_json ? json_loads(log_json, 0, NULL) : NULL;
    const char *oid = json_string_value(json_object_get(run->saga, "order_id"));
    const char *num = json_string_value(json_object_get(run->order, "order_number"));
    json_t *body = json_pack("{s:s, s:O, s:s, s:s, s:s?, s:s?, s:o}", "saga_id", run->saga_id,
                             "saga_type", json_object_get(run->saga, "type"), "status", status,
                             "message", message, "order_id", oid && *oid ? oid : NULL,
                             "order_number", num && *num ? num : NULL, "log",
                             log ? log : json_null());
    char *text = body ? jsonw_dumps(body, JSON_COMPACT) : NULL;
    if (text != NULL)
        notify_send(n, t, text, run->cfg->saga_max_attempts, run->cfg->saga_retry_base_ms,
                    run->cfg->saga_retry_max_ms);
    free(text);
    json_decref(body);
}

typedef struct commit_args {
    const char *status;
    const char *mode;     /* "step", "park", "delay", "end" */
    long long mode_arg;   /* due ms for delay, retention s for end */
    const char *message;
    char *log;            /* stolen log entry (JSON text), may be NULL */
    json_t *status_hist;  /* stolen, may be NULL */
    json_t *order_fields; /* stolen object of strings, may be NULL */
    json_t *saga_fields;  /* stolen object of strings, may be NULL */
    stage_fn next;        /* after "ok"; NULL ends the run */
} commit_args_t;

static void run_end(saga_run_t *run)
{
    saga_engine_run_done(run->engine, run);
}

/* The run reached status (stored, or held for the next commit). */
static void stage_done(saga_run_t *run, const char *status)
{
    json_object_set_new(run->saga, "status", json_string(status));
    const saga_metrics_t *m = saga_engine_metrics(run->engine);
    uint64_t now = uv_now(saga_engine_loop(run->engine));
    if (m->stage_seconds) {
        const char *lv[] = {status};
        metrics_histogram_observe(m->stage_seconds, lv, (double)(now - run->stage_started) / 1e3);
    }
    run->stage_started = now;
}

/* The reply of EXEC: one per push, then the script's ("ok" or "fenced", a bulk string); or the
 * script's alone when the entries went inline. */
static void on_commit(const redisReply *reply, const char *err, void *data)
{
    commit_op_t *op = data;
    saga_run_t *run = op->run;
    stage_fn next = op->next;
    const char *status = op->status;
    size_t pushes = (op->hist != NULL) + (op->logs != NULL);
    const redisReply *script = NULL;
    if (err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == pushes + 1)
        script = reply->element[pushes];
    else if (err == NULL && reply != NULL && reply->type != REDIS_REPLY_ARRAY)
        script = reply; /* the script alone, or EXECABORT: nothing of the transaction ran */
    if (script != NULL && script->type == REDIS_REPLY_ERROR && script != reply)
        take_back(op, reply);
    /* Over maxmemory Redis refuses every command queued in a transaction, while a lone script
     * may still write once its first write is one that frees memory (the status index's
     * ZREM): a run that has delivered must still be able to say so, or a claim would deliver
     * again. Such a commit goes again as one script call, the entries inline. */
    if (!run->dropped && script != NULL && script == reply && script->type == REDIS_REPLY_ERROR &&
        strncmp(script->str, "EXECABORT", 9) == 0 && send_commit(op, true) == 0)
        return;
    char *message = op->message;
    char *final_log = op->final_log;
    op->message = op->final_log = NULL;
    commit_op_free(op);
    if (run->dropped) {
        free(message);
        free(final_log);
        run_end(run);
        return;
    }
    if (script == NULL || script->type != REDIS_REPLY_STRING || strcmp(script->str, "ok") != 0) {
        if (script && script->type == REDIS_REPLY_STRING && strcmp(script->str, "fenced") == 0) {
            saga_engine_counters(run->engine)->fenced++;
            log_msg(LOG_WARN, "saga fenced: another process owns it now", "saga_id",
                    run->saga_id, NULL);
        } else {
            /* The entry stays pending; a claim after claim_idle_ms resumes the saga. Redis not
             * answering is no fault of the saga's: that claim must not charge it. An error
             * Redis answered (a script's) may be, and is charged as a death would be. */
            log_msg(LOG_WARN, "saga commit failed; will be resumed by a claim", "saga_id",
                    run->saga_id, "error",
                    err ? err : (script && script->type == REDIS_REPLY_ERROR ? script->str : "?"),
                    NULL);
            if (err != NULL)
                saga_engine_release(run->engine, run);
        }
        free(message);
        free(final_log);
        run_end(run);
        return;
    }
    stage_done(run, status);
    const saga_metrics_t *m = saga_engine_metrics(run->engine);
    if (saga_status_terminal(status)) {
        saga_engine_counters(run->engine)->finished++;
        if (m->finished) {
            const char *lv[] = {json_string_value(json_object_get(run->saga, "type")), status};
            metrics_counter_inc(m->finished, lv, 1);
        }
        log_msg(LOG_INFO, "saga finished", "saga_id", run->saga_id, "tenant",
                json_string_value(json_object_get(run->saga, "tenant")), "status", status,
                "message", message, NULL);
        notify_end(run, status, message ? message : "", final_log);
    }
    free(message);
    free(final_log);
    if (next)
        next(run);
    else
        run_end(run);
}

static void stage_master(saga_run_t *run);
static void stage_destination(saga_run_t *run);

/*
 * Steps into a stage that does no I/O (origin_mapped -> master, master_mapped -> destination)
 * are not written on their own: their history and log entries and saga fields are held in the
 * run and written, in order, by the run's next commit (destination_mapped before the delivery,
 * or the end of the saga if a stage fails). Every transition is still recorded, and the delivery
 * still happens only after destination_mapped is stored; a run that dies before that commit
 * resumes from the last stored status and maps again (mapping is computed from configuration,
 * so the result is the same). Per create saga this saves two of five Redis round trips and
 * their writes.
 */
static bool held_step(const commit_args_t *a)
{
    return strcmp(a->mode, "step") == 0 && (a->next == stage_master ||
                                             a->next == stage_destination) &&
           a->order_fields == NULL && a->status_hist == NULL;
}

/* Hold entry (a JSON text; NULL or "" for none) for the next commit. */
static void held_add(json_t **list, const char *entry)
{
    if (entry == NULL || entry[0] == '\0')
        return;
    if (*list == NULL)
        *list = json_array();
    json_array_append_new(*list, json_stringn_nocheck(entry, strlen(entry)));
}

static void commit(saga_run_t *run, commit_args_t *a)
{
    char iso[TIME_ISO_LEN], ms[CR_INT_LEN];
    now_strings(iso, ms);
    /* Messages often quote partner text cut to a buffer's size, possibly mid-character: make
     * them valid UTF-8 once, here, or jansson would refuse every JSON value built from them. */
    buf_t clean = {0};
    buf_append_utf8_lossy(&clean, a->message, strlen(a->message));
    buf_append(&clean, "", 1);
    a->message = clean.data;
    json_t *hist = NULL;
    if (strcmp(a->mode, "delay") != 0)
        hist = json_pack("{s:s, s:s, s:s}", "status", a->status, "date", iso, "message",
                         a->message);
    char *hist_s = hist ? jsonw_dumps(hist, JSON_COMPACT) : NULL;
    char *log_s = a->log;
    char *sh_s = a->status_hist ? jsonw_dumps(a->status_hist, JSON_COMPACT) : NULL;
    json_decref(hist);
    json_decref(a->status_hist);

    json_t *sfields = a->saga_fields ? a->saga_fields : json_object();
    json_object_set_new(sfields, "message", json_string(a->message));
    json_object_set_new(sfields, "updated_at", json_string(iso));
    if (strcmp(a->mode, "end") == 0)
        json_object_set_new(sfields, "finished_at", json_string(iso));
    if (held_step(a)) {
        held_add(&run->held_hist, hist_s);
        held_add(&run->held_logs, log_s);
        if (run->held_fields == NULL)
            run->held_fields = json_object();
        json_object_update(run->held_fields, sfields);
        json_decref(sfields);
        free(hist_s);
        free(log_s);
        buf_free(&clean);
        stage_done(run, a->status);
        a->next(run);
        return;
    }
    if (run->held_fields != NULL) {
        /* what this commit sets wins over what held steps set */
        json_object_update_missing(sfields, run->held_fields);
        json_decref(run->held_fields);
        run->held_fields = NULL;
    }
    json_t *ofields = a->order_fields;
    if (ofields)
        json_object_set_new(ofields, "updated_at", json_string(iso));

    /* The held entries and this commit's own go ahead of the script (saga_lua_commit). A
     * saga without an order has no log to write them to. */
    held_add(&run->held_hist, hist_s);
    held_add(&run->held_logs, log_s);
    commit_op_t *op = cr_calloc(1, sizeof *op);
    op->run = run;
    op->next = a->next;
    op->status = a->status; /* static strings only */
    op->mode = a->mode;
    bool end = strcmp(a->mode, "end") == 0;
    op->message = end ? cr_strdup(a->message) : NULL;
    op->final_log = end ? log_s : NULL; /* for the notification */
    if (!end)
        free(log_s);
    free(hist_s);
    op->hist = run->held_hist;
    op->logs = sf(run, "order_id")[0] ? run->held_logs : NULL;
    if (op->logs == NULL)
        json_decref(run->held_logs);
    run->held_hist = run->held_logs = NULL;
    op->ofields = ofields;
    op->sfields = sfields;
    op->order_hist = sh_s;
    cr_cat(op->saga_key, sizeof op->saga_key, STORE_KEY_SAGA_PRE, run->saga_id, NULL);
    cr_cat(op->hist_key, sizeof op->hist_key, STORE_KEY_SAGA_PRE, run->saga_id, STORE_KEY_HIST_SUF);
    cr_cat(op->log_key, sizeof op->log_key, STORE_KEY_ORDER_PRE, sf(run, "order_id"),
           STORE_KEY_LOG_SUF);
    cr_cat(op->now_ms, sizeof op->now_ms, ms, NULL, NULL);
    cr_fmt_int(op->mode_arg, a->mode_arg);
    cr_fmt_int(op->epoch, run->epoch);
    buf_free(&clean);
    if (send_commit(op, false) != 0) {
        commit_op_free(op);
        run_end(run);
    }
}

/* A log entry for this run; outbound/inbound stolen. */
/* A CrossroadsLogV2 entry as JSON text (malloc'd), or NULL. outbound, inbound and extra (the
 * value of a last member named extra_name) are stolen. */
static char *run_log(saga_run_t *run, const char *title, const char *status,
                     const char *message, json_t *outbound, json_t *inbound,
                     const char *extra_name, json_t *extra)
{
    const cfg_tenant_t *from = tenant(run, sf(run, "tenant"));
    const cfg_tenant_t *to = tenant(run, sf(run, "dest"));
    if (from == NULL || to == NULL) {
        json_decref(outbound);
        json_decref(inbound);
        json_decref(extra);
        return NULL;
    }
    const char *inst = sf(run, "instance");
    const char *num = of(run, "order_number");
    crlog_fields_t f = {
        .title = title,
        .status = status,
        .severity = strcmp(status, "error") == 0 ? "high"
                    : strcmp(status, "rejected") == 0 ? "medium"
                                                      : "low",
        .message = message,
        .from = from,
        .instance = inst[0] ? inst : NULL,
        .to = to,
        .saga_id = run->saga_id,
        .saga_type = sf(run, "type"),
        .correlation_id = sf(run, "request_id"),
        .order_number = num[0] ? num : sf(run, "order_number"),
        .order_id = sf(run, "order_id"),
        .retried = strcmp(sf(run, "retried"), "1") == 0,
        .outbound = outbound,
        .inbound = inbound,
        .extra_name = extra_name,
        .extra = extra,
    };
    buf_t b = {0};
    crlog_entry_text(&b, &f);
    buf_append(&b, "", 1);
    return b.data;
}

/* End the saga with a terminal status. order_fields and saga_fields stolen (may be NULL). */
static void finish_with(saga_run_t *run, const char *status, const char *message, char *log,
                        json_t *order_fields, json_t *saga_fields)
{
    if (log == NULL)
        log = run_log(run, "Saga finished", status, message, NULL, NULL, NULL, NULL);
    if (order_fields == NULL)
        order_fields = json_object();
    json_object_set_new(order_fields, "status", json_string(status));
    if (strcmp(sf(run, "order_id"), "") == 0 || json_object_size(run->order) == 0) {
        json_decref(order_fields);
        order_fields = NULL;
    }
    commit_args_t a = {
        .status = status,
        .mode = "end",
        .mode_arg = run->cfg->saga_retention_s,
        .message = message,
        .log = log,
        .order_fields = order_fields,
        .saga_fields = saga_fields,
    };
    commit(run, &a);
}

static void finish(saga_run_t *run, const char *status, const char *message, char *log,
                   json_t *order_fields)
{
    finish_with(run, status, message, log, order_fields, NULL);
}

/* ---------------------------------------------------------------- mapping */

static const char *const ref_types[] = {"terminal", "site", "product"};

static cfg_mapping_type_t mapping_type(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, ref_types[i]) == 0)
            return (cfg_mapping_type_t)(i + 1);
    return 0;
}

/* The config's document of the mapping, copied: packing it per reference cost more than the
 * rest of the mapping stage. */
static json_t *mapping_json(const cfg_mapping_t *m)
{
    return json_copy(m->doc);
}

/* Find the caller's mapping for a MappingKey: mapping_id, then source_id, then source_name. */
static const cfg_mapping_t *find_own(const cfg_t *cfg, const char *tenant_name,
                                     cfg_mapping_type_t type, const json_t *key)
{
    const char *mid = json_string_value(json_object_get(key, "mapping_id"));
    const char *sid = json_string_value(json_object_get(key, "source_id"));
    const char *sname = json_string_value(json_object_get(key, "source_name"));
    for (int pass = 0; pass < 3; pass++) {
        const char *want = pass == 0 ? mid : pass == 1 ? sid : sname;
        if (want == NULL || *want == '\0')
            continue;
        for (size_t i = 0; i < cfg->n_mappings; i++) {
            const cfg_mapping_t *m = &cfg->mappings[i];
            if (m->type != type || strcmp(m->tenant, tenant_name) != 0)
                continue;
            const char *have = pass == 0 ? m->mapping_id : pass == 1 ? m->source_id : m->source_name;
            if (have && strcmp(have, want) == 0)
                return m;
        }
        return NULL; /* the first identifier given decides; a later one is not a fallback */
    }
    return NULL;
}

static const cfg_mapping_t *find_by_goid(const cfg_t *cfg, const char *tenant_name,
                                         cfg_mapping_type_t type, const char *goid)
{
    for (size_t i = 0; i < cfg->n_mappings; i++) {
        const cfg_mapping_t *m = &cfg->mappings[i];
        if (m->type == type && strcmp(m->tenant, tenant_name) == 0 && strcmp(m->goid, goid) == 0)
            return m;
    }
    return NULL;
}

static void describe_key(const json_t *key, char *out, size_t n)
{
    const char *f[] = {"mapping_id", "source_id", "source_name"};
    for (int i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(key, f[i]));
        if (v && *v) {
            snprintf(out, n, "%s '%s'", f[i], v);
            return;
        }
    }
    snprintf(out, n, "(no identifier)");
}

/*
 * Resolve one reference of the caller (at path, e.g. "lines[0].terminal") to master data.
 * types: the mapping types to try in order. Returns the mapping JSON or NULL with msg set.
 */
static json_t *map_own(saga_run_t *run, const char *path, const json_t *key,
                       const char *const *types, size_t ntypes, char *msg, size_t msglen)
{
    const char *caller = sf(run, "tenant");
    for (size_t i = 0; i < ntypes; i++) {
        const cfg_mapping_t *m = find_own(run->cfg, caller, mapping_type(types[i]), key);
        if (m)
            return mapping_json(m);
    }
    char what[160];
    describe_key(key, what, sizeof what);
    snprintf(msg, msglen, "%s did not map: no %s mapping with %s for tenant %s", path, types[0],
             what, caller);
    return NULL;
}

/* ---------------------------------------------------------------- stages */

static void stage_deliver(saga_run_t *run);

static void on_accept(const redisReply *reply, const char *err, void *data)
{
    saga_run_t *run = data;
    if (run->dropped || err || reply == NULL || reply->type != REDIS_REPLY_STRING) {
        if (!run->dropped && err != NULL)
            saga_engine_release(run->engine, run);
        run_end(run);
        return;
    }
    if (strcmp(reply->str, "gone") == 0)
        finish(run, "error", "order not found", NULL, NULL);
    else if (strcmp(reply->str, "canceled") == 0)
        finish(run, "rejected", "order is canceled", NULL, NULL);
    else
        finish(run, "synced",
               strcmp(reply->str, "already") == 0 ? "order was already accepted"
                                                  : "order accepted",
               NULL, NULL);
}

static void stage_origin(saga_run_t *run)
{
    const char *type = sf(run, "type");
    const char *caller = sf(run, "tenant");
    const char *origin = of(run, "origin_tenant");
    const char *destination = of(run, "destination_tenant");
    bool is_origin = strcmp(caller, origin) == 0;
    if (json_object_size(run->order) == 0 || (!is_origin && strcmp(caller, destination) != 0)) {
        finish(run, "error", "order not found", NULL, NULL);
        return;
    }
    const char *cp = is_origin ? destination : origin;
    if (strcmp(sf(run, "dest"), cp) != 0) {
        /* The caller named someone other than the order's counterparty: to the caller this
         * order does not exist (no hint about whose order it is). */
        finish(run, "error", "order not found", NULL, NULL);
        return;
    }
    if (strcmp(type, "order_accept") == 0) {
        if (is_origin) {
            finish(run, "rejected", "only the destination tenant can accept an order", NULL,
                   NULL);
            return;
        }
        char iso[TIME_ISO_LEN], ms[CR_INT_LEN];
        now_strings(iso, ms);
        const char *argv[] = {STORE_KEY_STREAM, of(run, "order_id"), iso};
        if (store_evalsha(saga_engine_store(run->engine), &saga_lua_accept, 1, 3, argv, NULL,
                          on_accept, run) != 0)
            run_end(run);
        return;
    }
    if (strcmp(of(run, "canceled"), "1") == 0) {
        if (strcmp(type, "order_cancel") == 0)
            finish(run, "canceled", "order already canceled; nothing re-sent", NULL, NULL);
        else
            finish(run, "rejected", "order is canceled", NULL, NULL);
        return;
    }
    const cfg_tenant_t *cpt = tenant(run, cp);
    if (cpt == NULL) {
        finish(run, "error", "counterparty tenant is no longer configured", NULL, NULL);
        return;
    }
    if (strcmp(type, "order_create") == 0 && !cpt->auto_accept &&
        strcmp(of(run, "accepted"), "1") != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "waiting for %s to accept the order", cp);
        commit_args_t a = {
            .status = "requested",
            .mode = "park",
            .message = msg,
            .log = run_log(run, "Order awaiting acceptance", "requested", msg, NULL, NULL, NULL, NULL),
            .order_fields = json_pack("{s:s}", "status", "requested"),
        };
        commit(run, &a);
        return;
    }
    commit_args_t a = {
        .status = "origin_mapped",
        .mode = "step",
        .message = "order found; references attached",
        .log = run_log(run, "Order mapped to origin", "origin_mapped",
                       "order found; references attached", NULL, NULL, NULL, NULL),
        .saga_fields = json_pack("{s:s}", "counterparty", cp),
        .next = stage_master,
    };
    json_object_set_new(run->saga, "counterparty", json_string(cp));
    commit(run, &a);
}

/* The load-phase statuses locate at a terminal, the drop-phase ones at a site. */
static bool drop_phase(const char *ps)
{
    return ps && (strstr(ps, "drop") != NULL);
}

static void stage_master(saga_run_t *run)
{
    const json_t *rq = run->request;
    const char *action = action_of(run);
    json_t *mapped = json_object();
    char msg[320] = "";
    bool ok = true;
    if (strcmp(action, "update_status") == 0) {
        const json_t *loc = json_object_get(rq, "location");
        if (loc) {
            const char *ps = json_string_value(json_object_get(rq, "progress_status"));
            static const char *const load[] = {"terminal", "site"};
            static const char *const drop[] = {"site", "terminal"};
            json_t *m = map_own(run, "location", loc, drop_phase(ps) ? drop : load, 2, msg,
                                sizeof msg);
            ok = m != NULL;
            if (m)
                json_object_set_new(mapped, "location", m);
        }
    } else if (strcmp(action, "create") == 0) {
        json_t *lines = json_array();
        json_object_set_new(mapped, "lines", lines);
        size_t i;
        json_t *line;
        json_array_foreach(json_object_get(rq, "lines"), i, line)
        {
            json_t *ml = json_object();
            json_array_append_new(lines, ml);
            char idx[CR_INT_LEN];
            cr_fmt_int(idx, (long long)i);
            for (int t = 0; t < 3 && ok; t++) {
                char path[64]; /* lines[<i>].<type> */
                cr_cat(path, sizeof path, "lines[", idx, "].");
                size_t pl = strlen(path);
                cr_cat(path + pl, sizeof path - pl, ref_types[t], NULL, NULL);
                json_t *m = map_own(run, path, json_object_get(line, ref_types[t]), &ref_types[t],
                                    1, msg, sizeof msg);
                ok = m != NULL;
                if (m)
                    json_object_set_new(ml, ref_types[t], m);
            }
            if (!ok)
                break;
        }
    } else if (strcmp(action, "bol") == 0 || strcmp(action, "drop") == 0) {
        const char *place = strcmp(action, "bol") == 0 ? "terminal" : "site";
        const char *const keys[] = {place, "product"};
        for (int k = 0; k < 2 && ok; k++) {
            json_t *m = map_own(run, keys[k], json_object_get(rq, keys[k]), &keys[k], 1, msg,
                                sizeof msg);
            ok = m != NULL;
            if (m)
                json_object_set_new(mapped, keys[k], m);
        }
    }
    if (!ok) {
        json_decref(mapped);
        finish(run, "error", msg, NULL, NULL);
        return;
    }
    json_t *mapped_j = json_text(mapped);
    if (mapped_j == NULL) {
        json_decref(mapped);
        finish(run, "error", "the mapped references cannot be written as JSON", NULL, NULL);
        return;
    }
    json_object_set(run->saga, "mapped", mapped_j);
    json_decref(run->mapped_doc);
    run->mapped_doc = mapped;
    commit_args_t a = {
        .status = "master_mapped",
        .mode = "step",
        .message = "references mapped to master data",
        .log = run_log(run, "Order mapped to master data", "master_mapped",
                       "references mapped to master data", NULL, NULL, NULL, NULL),
        .saga_fields = json_pack("{s:o}", "mapped", mapped_j),
        .next = stage_destination,
    };
    commit(run, &a);
}

/* Translate one master-data reference into the counterparty's mapping. */
static json_t *map_cp(saga_run_t *run, const char *cp, const json_t *ref, char *msg,
                      size_t msglen)
{
    const char *type = json_string_value(json_object_get(ref, "type"));
    const char *goid = json_string_value(json_object_get(ref, "goid"));
    const cfg_mapping_t *m =
        type && goid ? find_by_goid(run->cfg, cp, mapping_type(type), goid) : NULL;
    if (m == NULL) {
        snprintf(msg, msglen, "no %s mapping for goid '%s' in tenant %s", type ? type : "?",
                 goid ? goid : "?", cp);
        return NULL;
    }
    return mapping_json(m);
}

static json_t *map_cp_all(saga_run_t *run, const char *cp, const json_t *mapped, char *msg,
                          size_t msglen)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)mapped, k, v)
    {
        if (json_is_array(v)) {
            json_t *arr = json_array();
            json_object_set_new(out, k, arr);
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item)
            {
                json_t *o = map_cp_all(run, cp, item, msg, msglen);
                if (o == NULL) {
                    json_decref(out);
                    return NULL;
                }
                json_array_append_new(arr, o);
            }
        } else {
            json_t *m = map_cp(run, cp, v, msg, msglen);
            if (m == NULL) {
                json_decref(out);
                return NULL;
            }
            json_object_set_new(out, k, m);
        }
    }
    return out;
}

/* status_update as the seed shows it, with the mapped location (goid filled). */
static json_t *status_update_of(saga_run_t *run, const json_t *mapped)
{
    const json_t *rq = run->request;
    json_t *su = json_object();
    json_object_set(su, "progress_status", json_object_get(rq, "progress_status"));
    const json_t *loc = json_object_get(mapped, "location");
    json_t *l = json_null();
    if (loc)
        l = json_pack("{s:O, s:O, s:O, s:O, s:O}", "mapping_id",
                      json_object_get(loc, "mapping_id"), "source_name",
                      json_object_get(loc, "source_name") ? json_object_get(loc, "source_name")
                                                          : json_null(),
                      "source_id",
                      json_object_get(loc, "source_id") ? json_object_get(loc, "source_id")
                                                        : json_null(),
                      "goid", json_object_get(loc, "goid"), "goid_name",
                      json_object_get(loc, "goid_name") ? json_object_get(loc, "goid_name")
                                                        : json_null());
    bool is_site = loc && strcmp(json_string_value(json_object_get(loc, "type")), "site") == 0;
    json_object_set(su, "location", l);
    json_object_set(su, "site", is_site ? l : json_null());
    json_decref(l);
    const char *opt[] = {"eta", "delivery_eta", "actual", "assigned_to", "hauled_by"};
    for (size_t i = 0; i < 5; i++) {
        json_t *v = json_object_get(rq, opt[i]);
        json_object_set(su, opt[i], v ? v : json_null());
    }
    return su;
}

static void stage_destination(saga_run_t *run)
{
    const char *action = action_of(run);
    const char *cp = sf(run, "counterparty");
    const cfg_tenant_t *cpt = tenant(run, cp);
    const cfg_tenant_t *caller = tenant(run, sf(run, "tenant"));
    json_t *mapped = run->mapped_doc ? run->mapped_doc : json_loads(sf(run, "mapped"), 0, NULL);
    run->mapped_doc = NULL;
    char msg[320] = "";
    if (cpt == NULL || caller == NULL || mapped == NULL) {
        json_decref(mapped);
        finish(run, "error", "tenant or mapping state is missing", NULL, NULL);
        return;
    }
    json_t *cp_refs = map_cp_all(run, cp, mapped, msg, sizeof msg);
    if (cp_refs == NULL) {
        json_decref(mapped);
        finish(run, "error", msg, NULL, NULL);
        return;
    }
    /* The counterparty's own reference: the destination's once it told us, the origin's own
     * number when the message goes back to the origin. */
    bool cp_is_dest = strcmp(cp, of(run, "destination_tenant")) == 0;
    const char *cp_num = cp_is_dest ? of(run, "counterparty_order_number") : of(run, "order_number");
    dest_ctx_t ctx = {
        .action = action,
        .saga_id = run->saga_id,
        .caller = caller,
        .cp = cpt,
        .request = run->request,
        .order = run->order,
        .cp_refs = cp_refs,
        .cp_order_number = cp_num[0] ? cp_num : NULL,
    };
    const dest_ops_t *ops = dest_ops_for(cpt->connector.type);
    json_t *outbound = NULL;
    dest_outcome_t oc = DEST_REJECTED;
    if (ops == NULL)
        snprintf(msg, sizeof msg, "not supported by destination system %s",
                 cpt->source_system);
    else
        oc = ops->build(&ctx, &outbound, msg, sizeof msg);
    json_decref(cp_refs);
    if (oc != DEST_DONE) {
        json_decref(mapped);
        finish(run, oc == DEST_REJECTED ? "rejected" : "error", msg, NULL, NULL);
        return;
    }
    /* The body goes out (and is stored) as its text; the document is kept for this run's
     * delivery log entry, which would otherwise parse the text back. */
    json_t *body_doc = json_incref(json_object_get(outbound, "body"));
    json_t *body_j = json_text(body_doc);
    json_t *out_j = NULL;
    if (body_j != NULL) {
        json_object_set_new(outbound, "body", body_j);
        out_j = json_text(outbound);
    }
    if (out_j == NULL) {
        json_decref(body_doc);
        json_decref(outbound);
        json_decref(mapped);
        finish(run, "error", "the outbound request cannot be written as JSON", NULL, NULL);
        return;
    }
    json_decref(run->body_doc);
    run->body_doc = body_doc;

    /* Order effects take place here, with the transition: per-order order makes them apply in
     * intake order, and the outbound request is stored with them. */
    char iso[TIME_ISO_LEN], ms[CR_INT_LEN];
    now_strings(iso, ms);
    json_t *order_fields = json_object();
    json_t *status_hist = NULL;
    json_t *saga_fields = json_object();
    json_t *log_extra = NULL;
    if (strcmp(action, "cancel") == 0) {
        json_object_set_new(order_fields, "canceled", json_string("1"));
    } else if (strcmp(action, "reset") == 0) {
        json_t *bols = json_loads(of(run, "bols")[0] ? of(run, "bols") : "[]", 0, NULL);
        json_t *drops = json_loads(of(run, "drops")[0] ? of(run, "drops") : "[]", 0, NULL);
        log_extra = json_pack("{s:o, s:o, s:s}", "bols", bols ? bols : json_array(), "drops",
                              drops ? drops : json_array(), "progress_status",
                              of(run, "progress_status"));
        json_object_set_new(order_fields, "bols", json_string("[]"));
        json_object_set_new(order_fields, "drops", json_string("[]"));
        json_object_set_new(order_fields, "progress_status", json_string("no_progress"));
    } else if (strcmp(action, "update_status") == 0) {
        json_t *su = status_update_of(run, mapped);
        char *su_s = jsonw_dumps(su, JSON_COMPACT);
        json_object_set_new(order_fields, "progress_status",
                            json_copy(json_object_get(run->request, "progress_status")));
        json_object_set_new(order_fields, "status_update", json_string(su_s));
        json_object_set_new(saga_fields, "status_update", json_string(su_s));
        json_object_set_new(su, "saga_id", json_string(run->saga_id));
        json_object_set_new(su, "date", json_string(iso));
        status_hist = su;
        free(su_s);
    } else if (strcmp(action, "bol") == 0 || strcmp(action, "drop") == 0) {
        const char *field = strcmp(action, "bol") == 0 ? "bols" : "drops";
        json_t *list = json_loads(of(run, field)[0] ? of(run, field) : "[]", 0, NULL);
        if (!json_is_array(list)) {
            json_decref(list);
            list = json_array();
        }
        json_t *item = json_deep_copy(run->request);
        json_object_del(item, "order");
        json_object_update(item, mapped);
        json_object_set_new(item, "saga_id", json_string(run->saga_id));
        json_object_set_new(item, "recorded_at", json_string(iso));
        json_array_append_new(list, item);
        char *s = jsonw_dumps(list, JSON_COMPACT);
        json_object_set_new(order_fields, field, json_string(s));
        free(s);
        json_decref(list);
    }
    json_decref(mapped);
    json_object_set(saga_fields, "outbound", out_j);
    json_object_set_new(run->saga, "outbound", out_j);
    json_decref(run->outbound_doc);
    run->outbound_doc = outbound;

    const char *m = "mapped to the counterparty; request built";
    char *log = run_log(run, "Order mapped to destination", "destination_mapped", m, NULL, NULL,
                        log_extra ? "cleared_data" : NULL, log_extra);
    if (json_object_size(order_fields) == 0) {
        json_decref(order_fields);
        order_fields = NULL;
    }
    commit_args_t a = {
        .status = "destination_mapped",
        .mode = "step",
        .message = m,
        .log = log,
        .status_hist = status_hist,
        .order_fields = order_fields,
        .saga_fields = saga_fields,
        .next = stage_deliver,
    };
    commit(run, &a);
}

/* ---------------------------------------------------------------- delivery */

typedef struct attempt {
    saga_run_t *run;
    json_t *sent; /* outbound as sent (headers redacted) for the log */
} attempt_t;

static long long retry_delay_ms(const cfg_t *cfg, int attempts, const outhttp_response_t *resp)
{
    char ra[32];
    if (resp->headers && outhttp_header_get(resp->headers, "retry-after", ra, sizeof ra) > 0) {
        char *end;
        long secs = strtol(ra, &end, 10);
        /* The destination's word wins over our own backoff ceiling (within an hour): retrying
         * sooner than asked only earns another 429/503. */
        if (end != ra && *end == '\0' && secs >= 0)
            return CR_MIN((long long)secs * 1000, 3600LL * 1000);
    }
    long long d = cfg->saga_retry_base_ms;
    for (int i = 1; i < attempts && d < cfg->saga_retry_max_ms; i++)
        d *= 2;
    d = CR_MIN(d, (long long)cfg->saga_retry_max_ms);
    uint32_t r;
    crypto_random(&r, sizeof r);
    /* Equal jitter: half fixed, half random, so retries spread without collapsing to zero. */
    return d / 2 + (long long)(r % (uint32_t)(d / 2 + 1));
}

static void on_delivered(const outhttp_response_t *resp, void *data)
{
    attempt_t *at = data;
    saga_run_t *run = at->run;
    run->xfer = NULL;
    if (run->dropped) {
        json_decref(at->sent);
        free(at);
        run_end(run);
        return;
    }
    const cfg_tenant_t *cpt = tenant(run, sf(run, "counterparty"));
    const dest_ops_t *ops = cpt ? dest_ops_for(cpt->connector.type) : NULL;
    char msg[512] = "";
    char *cp_num = NULL;
    dest_outcome_t oc =
        ops ? ops->classify(action_of(run), resp, msg, sizeof msg, &cp_num) : DEST_ERROR;
    const saga_metrics_t *m = saga_engine_metrics(run->engine);
    static const char *const outcomes[] = {"done", "rejected", "retry", "error"};
    const char *lv[] = {ops ? ops->type : "none", outcomes[oc]};
    if (m->deliveries)
        metrics_counter_inc(m->deliveries, lv, 1);
    if (m->delivery_seconds)
        metrics_histogram_observe(m->delivery_seconds, lv, (double)resp->elapsed_ms / 1e3);

    json_t *inbound;
    if (resp->error) {
        inbound = json_pack("{s:s, s:o, s:I}", "error", resp->error, "error_detail",
                            resp->error_detail ? crlog_string_lossy(resp->error_detail,
                                                                    strlen(resp->error_detail))
                                               : json_null(),
                            "elapsed_ms", (json_int_t)resp->elapsed_ms);
    } else {
        json_t *body = json_loadb(resp->body, resp->body_len, 0, NULL);
        /* A destination's bytes need not be UTF-8 (a latin-1 error page): keep them readable
         * rather than lose the log entry. */
        inbound = json_pack("{s:I, s:o, s:o, s:I}", "status", (json_int_t)resp->status,
                            "headers", crlog_string_lossy(resp->headers, resp->headers_len),
                            "body", body ? body : crlog_string_lossy(resp->body, resp->body_len),
                            "elapsed_ms", (json_int_t)resp->elapsed_ms);
    }
    int attempts = atoi(sf(run, "attempts")) + 1;
    char attempts_s[CR_INT_LEN];
    cr_fmt_int(attempts_s, attempts);
    json_object_set_new(run->saga, "attempts", json_string(attempts_s));
    const char *status = oc == DEST_DONE ? (strcmp(action_of(run), "cancel") == 0 ? "canceled"
                                                                                : "synced")
                         : oc == DEST_REJECTED ? "rejected"
                         : oc == DEST_ERROR    ? "error"
                                               : "destination_mapped";
    char title[64];
    cr_cat(title, sizeof title, "Delivery attempt ", attempts_s, NULL);
    bool again = oc == DEST_RETRY && attempts < run->cfg->saga_max_attempts;
    char *log = run_log(run, title, oc == DEST_RETRY && !again ? "error" : status, msg, at->sent,
                        inbound, NULL, NULL);
    free(at);

    if (again) {
        long long delay = retry_delay_ms(run->cfg, attempts, resp);
        char retry_msg[600];
        snprintf(retry_msg, sizeof retry_msg, "attempt %d failed (%s); retrying in %lld ms",
                 attempts, msg, delay);
        saga_engine_counters(run->engine)->retries++;
        commit_args_t a = {
            .status = "destination_mapped",
            .mode = "delay",
            .mode_arg = time_now_ms() + delay,
            .message = retry_msg,
            .log = log,
            .saga_fields = json_pack("{s:s}", "attempts", attempts_s),
        };
        commit(run, &a);
        free(cp_num);
        return;
    }
    char final_msg[600];
    if (oc == DEST_RETRY) {
        status = "error";
        snprintf(final_msg, sizeof final_msg, "destination failed after %d attempts: %s",
                 attempts, msg);
    } else {
        snprintf(final_msg, sizeof final_msg, "%s", msg);
    }
    json_t *order_fields = json_object();
    if (cp_num && strcmp(sf(run, "counterparty"), of(run, "destination_tenant")) == 0 &&
        of(run, "counterparty_order_number")[0] == '\0')
        json_object_set_new(order_fields, "counterparty_order_number", json_string(cp_num));
    free(cp_num);
    finish_with(run, status, final_msg, log, order_fields,
                json_pack("{s:s}", "attempts", attempts_s));
}

static void stage_deliver(saga_run_t *run)
{
    json_t *out = run->outbound_doc ? run->outbound_doc : json_loads(sf(run, "outbound"), 0, NULL);
    run->outbound_doc = NULL;
    const cfg_tenant_t *cpt = tenant(run, sf(run, "counterparty"));
    const dest_ops_t *ops = cpt ? dest_ops_for(cpt->connector.type) : NULL;
    if (out == NULL || ops == NULL) {
        json_decref(out);
        finish(run, "error", "stored outbound request is unreadable", NULL, NULL);
        return;
    }
    const char *body = json_string_value(json_object_get(out, "body"));
    size_t body_len = body ? strlen(body) : 0;
    json_t *headers = json_object_get(out, "headers");
    if (ops->sign)
        ops->sign(cpt, body ? body : "", body_len, headers);
    size_t nh = json_array_size(headers);
    const char **hv = cr_calloc(nh + 1, sizeof *hv);
    for (size_t i = 0; i < nh; i++)
        hv[i] = json_string_value(json_array_get(headers, i));
    outhttp_request_t req = {
        .method = json_string_value(json_object_get(out, "method")),
        .url = json_string_value(json_object_get(out, "url")),
        .headers = hv,
        .body = body,
        .body_len = body_len,
        .timeout_ms = cpt->connector.timeout_ms,
    };
    attempt_t *at = cr_malloc(sizeof *at);
    at->run = run;
    /* the document stage_destination built, in the run that built it; else the stored text */
    json_t *body_json = run->body_doc ? run->body_doc : body ? json_loads(body, 0, NULL) : NULL;
    run->body_doc = NULL;
    at->sent = json_pack("{s:s?, s:s?, s:o, s:o}", "method", req.method, "url", req.url,
                         "headers", crlog_redact_headers(headers), "body",
                         body_json ? body_json : json_string(body ? body : ""));
    saga_engine_counters(run->engine)->deliveries++;
    run->xfer = outhttp_start(saga_engine_http(run->engine), &req, on_delivered, at);
    free(hv);
    json_decref(out);
    if (run->xfer == NULL) {
        json_decref(at->sent);
        free(at);
        finish(run, "error", "destination URL is not usable (http or https only)", NULL, NULL);
    }
}

/* ---------------------------------------------------------------- entry */

void saga_run_go(saga_run_t *run)
{
    const char *status = sf(run, "status");
    run->request = json_loads(sf(run, "request"), 0, NULL);
    if (run->request == NULL)
        run->request = json_object();
    if (strcmp(status, "pending") == 0 || strcmp(status, "requested") == 0)
        stage_origin(run);
    else if (strcmp(status, "origin_mapped") == 0)
        stage_master(run);
    else if (strcmp(status, "master_mapped") == 0)
        stage_destination(run);
    else if (strcmp(status, "destination_mapped") == 0)
        stage_deliver(run);
    else
        run_end(run);
}
