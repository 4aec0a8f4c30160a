/*
 * api_admin.c - the operator's read API (scope admin): sagas filtered by status, type, tenant,
 * order and time, newest first with a stable cursor; counts per status and per tenant; one saga
 * with its whole log timeline; retry of any tenant's failed saga.
 *
 * Backed by sorted-set indexes (cr:{cr}:idx:*, scored by creation time) that intake and every
 * stage transition maintain in the same Lua scripts as the data, so a listing is never a KEYS or
 * SCAN. Each call does bounded work: a page scans at most LIST_SCAN_FACTOR * limit candidates.
 */
#include "api.h"

#include "app.h"
#include "auth.h"
#include "saga_lua.h"
#include "store_keys.h"
#include "util/buf.h"
#include "util/cr.h"
#include "util/crypto.h"
#include "util/timefmt.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 50
#define LIST_MAX 200

static const char *const statuses[] = {"pending",  "requested",          "origin_mapped",
                                       "master_mapped", "destination_mapped", "synced",
                                       "canceled", "rejected",           "error"};
static const char *const types[] = {"order_cancel", "order_reset", "order_update_status",
                                    "order_create", "order_accept", "order_bol", "order_drop"};

/*
 * ARGV: 1 index (key suffix), 2 max score ("+inf" or the cursor's score), 3 cursor member ("" =
 * none), 4 limit, 5 min score ("-inf" or since), 6 status, 7 type, 8 tenant, 9 order_id filters
 * ("" = any). Returns JSON {"items": [...], "next": cursor or ""}.
 * Equal scores come back in reverse member order, so (score, member) is a total order and a
 * cursor stays valid while newer sagas arrive.
 */
static store_script_t list_script = {
    .name = "admin_list",
    .source =
        "local P = 'cr:{cr}:'\n"
        "local key = P .. ARGV[1]\n"
        "local limit = tonumber(ARGV[4])\n"
        "local items, scanned, offset, nxt = {}, 0, 0, ''\n"
        "local fields = {'status', 'type', 'tenant', 'order_id', 'order_number', 'attempts',\n"
        "                'message', 'created_at', 'updated_at', 'dest', 'counterparty'}\n"
        "local done = false\n"
        "while not done do\n"
        "  local batch = redis.call('ZREVRANGEBYSCORE', key, ARGV[2], ARGV[5], 'WITHSCORES',\n"
        "                           'LIMIT', offset, 100)\n"
        "  if #batch == 0 then break end\n"
        "  offset = offset + #batch / 2\n"
        "  for i = 1, #batch, 2 do\n"
        "    local sid, score = batch[i], batch[i + 1]\n"
        "    if not (ARGV[3] ~= '' and score == ARGV[2] and sid >= ARGV[3]) then\n"
        "      scanned = scanned + 1\n"
        "      local h = redis.call('HMGET', P .. 'saga:' .. sid, unpack(fields))\n"
        "      if h[1] and (ARGV[6] == '' or h[1] == ARGV[6]) and (ARGV[7] == '' or\n"
        "          h[2] == ARGV[7]) and (ARGV[8] == '' or h[3] == ARGV[8]) and\n"
        "          (ARGV[9] == '' or h[4] == ARGV[9]) then\n"
        "        local it = {saga_id = sid, created_ms = tonumber(score)}\n"
        "        for j, f in ipairs(fields) do it[f] = h[j] or cjson.null end\n"
        "        items[#items + 1] = it\n"
        "      end\n"
        "      if #items == limit or scanned >= limit * 20 then\n"
        "        nxt = score .. ':' .. sid\n"
        "        done = true\n"
        "        break\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "end\n"
        "if #items == 0 then items = cjson.decode('[]') end\n"
        "return cjson.encode({items = items, next = nxt})\n",
};

/* ARGV: statuses..., "--", tenants... Returns {counts by status..., counts by tenant...}. */
static store_script_t counts_script = {
    .name = "admin_counts",
    .source = "local P = 'cr:{cr}:'\n"
              "local out, tenants = {}, false\n"
              "for _, a in ipairs(ARGV) do\n"
              "  if a == '--' then tenants = true\n"
              "  elseif tenants then out[#out + 1] = redis.call('ZCARD', P .. 'idx:tenant:' .. a)\n"
              "  else out[#out + 1] = redis.call('ZCARD', P .. 'idx:status:' .. a) end\n"
              "end\n"
              "return out\n",
};

/*
 * ARGV: 1 saga_id. Returns {} when absent, else {saga hash, history, the order log entries of
 * this saga (JSON strings), in order}. The order log is read from its newest 1000 entries.
 */
static store_script_t view_script = {
    .name = "admin_view",
    .source = "local P = 'cr:{cr}:'\n"
              "local k = P .. 'saga:' .. ARGV[1]\n"
              "local h = redis.call('HGETALL', k)\n"
              "if #h == 0 then return {} end\n"
              "local oid = redis.call('HGET', k, 'order_id') or ''\n"
              "local logs = {}\n"
              "if oid ~= '' then\n"
              "  for _, e in ipairs(redis.call('LRANGE', P .. 'order:' .. oid .. ':log', -1000, -1)) do\n"
              "    local ok, d = pcall(cjson.decode, e)\n"
              "    if ok and d.saga_id == ARGV[1] then logs[#logs + 1] = e end\n"
              "  end\n"
              "end\n"
              "return {h, redis.call('LRANGE', k .. ':hist', 0, -1), logs}\n",
};

void api_admin_init(struct store *store)
{
    store_script_register(store, &list_script);
    store_script_register(store, &counts_script);
    store_script_register(store, &view_script);
}

static void respond_unavailable(httpd_req_t *req)
{
    httpd_respond_detail(req, 503, "Service unavailable: Redis is not reachable",
                         "Retry-After: 1\r\n");
}

static bool in_list(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v, list[i]) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------------- list */

static void on_list(const redisReply *reply, const char *err, void *data)
{
    httpd_req_t *req = data;
    if (err || reply == NULL || reply->type != REDIS_REPLY_STRING) {
        respond_unavailable(req);
        return;
    }
    httpd_respond(req, 200, NULL, NULL, reply->str, reply->len);
}

static void query_error(json_t *errors, const char *name, const char *type, const char *msg)
{
    val_error_add(errors, json_pack("[ss]", "query", name), type, msg, NULL, NULL);
}

void api_admin_sagas(struct app *app, httpd_req_t *req, const route_t *route,
                     const struct auth_ctx *auth)
{
    (void)route;
    (void)auth;
    char status[32] = "", type[32] = "", tenant[72] = "", order[32] = "", cursor[96] = "";
    char since[48] = "", until[48] = "", limit_s[16] = "";
    json_t *errors = json_array();
    struct {
        const char *name;
        char *out;
        size_t size;
    } params[] = {{"status", status, sizeof status}, {"type", type, sizeof type},
                  {"tenant", tenant, sizeof tenant}, {"order_id", order, sizeof order},
                  {"cursor", cursor, sizeof cursor}, {"since", since, sizeof since},
                  {"until", until, sizeof until},    {"limit", limit_s, sizeof limit_s}};
    for (size_t i = 0; i < CR_ARRAY_SIZE(params); i++) {
        int n = httpd_query_get(req->query, params[i].name, params[i].out, params[i].size);
        if (n == -2)
            query_error(errors, params[i].name, "string_too_long", "Value is malformed or too long");
        if (n < 0)
            params[i].out[0] = '\0';
    }
    if (status[0] && !in_list(status, statuses, CR_ARRAY_SIZE(statuses)))
        query_error(errors, "status", "enum", "Input should be a saga status");
    if (type[0] && !in_list(type, types, CR_ARRAY_SIZE(types)))
        query_error(errors, "type", "enum", "Input should be a saga type");
    if (tenant[0] && cfg_tenant_find(app->cfg, tenant, strlen(tenant)) == NULL)
        query_error(errors, "tenant", "value_error", "Value error, unknown tenant");
    if (order[0] && !crypto_is_hex(order, strlen(order), 24))
        query_error(errors, "order_id", "string_pattern_mismatch",
                    "String should match pattern '^[0-9a-fA-F]{24}$'");
    long limit = LIST_DEFAULT;
    if (limit_s[0]) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (*end || limit < 1 || limit > LIST_MAX)
            query_error(errors, "limit", "less_than_equal", "Input should be 1 to 200");
    }
    /* Times: RFC 3339 (or milliseconds since the epoch). */
    char min_score[24] = "-inf", max_score[24] = "+inf", cur_member[32] = "";
    const char *tnames[] = {"since", "until"};
    char *tvals[] = {since, until};
    char *tout[] = {min_score, max_score};
    for (int i = 0; i < 2; i++) {
        if (!tvals[i][0])
            continue;
        int64_t ms;
        const char *why;
        char *end;
        long long epoch_ms = strtoll(tvals[i], &end, 10);
        if (*end == '\0' && epoch_ms >= 0)
            snprintf(tout[i], 24, "%lld", epoch_ms);
        else if (time_parse_iso(tvals[i], strlen(tvals[i]), &ms, &why) != 0)
            query_error(errors, tnames[i], "datetime_parsing", "Input should be a valid datetime");
        else
            snprintf(tout[i], 24, "%lld", (long long)ms);
    }
    if (cursor[0]) {
        char *colon = strchr(cursor, ':');
        char *end = NULL;
        long long score = colon ? strtoll(cursor, &end, 10) : 0;
        if (colon == NULL || end != colon || !crypto_is_hex(colon + 1, strlen(colon + 1), 24)) {
            query_error(errors, "cursor", "value_error", "Value error, malformed cursor");
        } else {
            /* The cursor's position bounds the page from above, whatever "until" said. */
            snprintf(max_score, sizeof max_score, "%lld", score);
            snprintf(cur_member, sizeof cur_member, "%s", colon + 1);
        }
    }
    if (json_array_size(errors) > 0) {
        api_respond_422(req, errors);
        json_decref(errors);
        return;
    }
    json_decref(errors);

    /* The most selective index; the other filters are applied while scanning it. */
    char index[128];
    if (order[0])
        snprintf(index, sizeof index, "idx:order:%s", order);
    else if (status[0])
        snprintf(index, sizeof index, "idx:status:%s", status);
    else if (tenant[0])
        snprintf(index, sizeof index, "idx:tenant:%s", tenant);
    else if (type[0])
        snprintf(index, sizeof index, "idx:type:%s", type);
    else
        snprintf(index, sizeof index, "idx:all");
    char lim[16];
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *argv[] = {index, max_score, cur_member, lim, min_score, status, type, tenant,
                          order};
    if (store_evalsha(app->store, &list_script, 0, 9, argv, NULL, on_list, req) != 0)
        respond_unavailable(req);
}

/* ---------------------------------------------------------------- counts */

typedef struct counts_op {
    httpd_req_t *req;
    cfg_t *cfg;
} counts_op_t;

static void on_counts(const redisReply *reply, const char *err, void *data)
{
    counts_op_t *op = data;
    size_t ns = CR_ARRAY_SIZE(statuses);
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != ns + op->cfg->n_tenants) {
        respond_unavailable(op->req);
    } else {
        json_t *by_status = json_object(), *by_tenant = json_object();
        for (size_t i = 0; i < ns; i++)
            json_object_set_new(by_status, statuses[i], json_integer(reply->element[i]->integer));
        for (size_t i = 0; i < op->cfg->n_tenants; i++)
            json_object_set_new(by_tenant, op->cfg->tenants[i].name,
                                json_integer(reply->element[ns + i]->integer));
        json_t *body = json_pack("{s:o, s:o}", "by_status", by_status, "by_tenant", by_tenant);
        api_respond_json(op->req, 200, body, NULL);
        json_decref(body);
    }
    cfg_unref(op->cfg);
    free(op);
}

void api_admin_counts(struct app *app, httpd_req_t *req, const route_t *route,
                      const struct auth_ctx *auth)
{
    (void)route;
    (void)auth;
    size_t ns = CR_ARRAY_SIZE(statuses), nt = app->cfg->n_tenants;
    const char **argv = cr_malloc((ns + 1 + nt) * sizeof *argv);
    size_t n = 0;
    for (size_t i = 0; i < ns; i++)
        argv[n++] = statuses[i];
    argv[n++] = "--";
    for (size_t i = 0; i < nt; i++)
        argv[n++] = app->cfg->tenants[i].name;
    counts_op_t *op = cr_malloc(sizeof *op);
    op->req = req;
    op->cfg = cfg_ref(app->cfg);
    if (store_evalsha(app->store, &counts_script, 0, (int)n, argv, NULL, on_counts, op) != 0) {
        cfg_unref(op->cfg);
        free(op);
        respond_unavailable(req);
    }
    free(argv);
}

/* ---------------------------------------------------------------- one saga */

static void on_view(const redisReply *reply, const char *err, void *data)
{
    httpd_req_t *req = data;
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        respond_unavailable(req);
        return;
    }
    if (reply->elements != 3) {
        httpd_respond_detail(req, 404, "Saga not found", NULL);
        return;
    }
    json_t *saga = json_object();
    const redisReply *h = reply->element[0];
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *k = h->element[i]->str;
        /* The stored request and answer are shown parsed; the rest as stored. */
        if (strcmp(k, "request") == 0 || strcmp(k, "response") == 0 ||
            strcmp(k, "status_update") == 0 || strcmp(k, "mapped") == 0 ||
            strcmp(k, "outbound") == 0) {
            json_t *j = json_loadb(h->element[i + 1]->str, h->element[i + 1]->len, 0, NULL);
            json_object_set_new(saga, k, j ? j : json_null());
        } else {
            json_object_set_new(saga, k, json_stringn_nocheck(h->element[i + 1]->str,
                                                              h->element[i + 1]->len));
        }
    }
    json_t *hist = json_array(), *logs = json_array();
    for (size_t i = 0; i < reply->element[1]->elements; i++) {
        json_t *e = json_loadb(reply->element[1]->element[i]->str,
                               reply->element[1]->element[i]->len, 0, NULL);
        if (e)
            json_array_append_new(hist, e);
    }
    for (size_t i = 0; i < reply->element[2]->elements; i++) {
        json_t *e = json_loadb(reply->element[2]->element[i]->str,
                               reply->element[2]->element[i]->len, 0, NULL);
        if (e)
            json_array_append_new(logs, e);
    }
    json_t *body = json_pack("{s:o, s:o, s:o}", "saga", saga, "history", hist, "logs", logs);
    api_respond_json(req, 200, body, NULL);
    json_decref(body);
}

void api_admin_saga(struct app *app, httpd_req_t *req, const route_t *route,
                    const struct auth_ctx *auth)
{
    (void)route;
    (void)auth;
    if (!crypto_is_hex(req->route_param, strlen(req->route_param), 24)) {
        httpd_respond_detail(req, 404, "Saga not found", NULL);
        return;
    }
    const char *argv[] = {req->route_param};
    if (store_evalsha(app->store, &view_script, 0, 1, argv, NULL, on_view, req) != 0)
        respond_unavailable(req);
}

/* ---------------------------------------------------------------- retry */

static void on_admin_retry(const redisReply *reply, const char *err, void *data)
{
    httpd_req_t *req = data;
    api_respond_retry(req, req->route_param, reply, err);
}

void api_admin_retry(struct app *app, httpd_req_t *req, const route_t *route,
                     const struct auth_ctx *auth)
{
    (void)route;
    (void)auth;
    if (!crypto_is_hex(req->route_param, strlen(req->route_param), 24)) {
        httpd_respond_detail(req, 404, "Saga not found", NULL);
        return;
    }
    char saga_key[96], hist_key[96], now_ms[24], iso[TIME_ISO_LEN], hist[200];
    snprintf(saga_key, sizeof saga_key, STORE_KEY_SAGA_FMT, req->route_param);
    snprintf(hist_key, sizeof hist_key, STORE_KEY_SAGA_HIST_FMT, req->route_param);
    snprintf(now_ms, sizeof now_ms, "%lld", (long long)time_now_ms());
    time_format_iso(time_now_ms(), iso);
    snprintf(hist, sizeof hist,
             "{\"status\":\"retry\",\"date\":\"%s\",\"message\":\"retry requested by an "
             "operator\"}",
             iso);
    const char *argv[7 + CR_ARRAY_SIZE(types)] = {saga_key, hist_key,  STORE_KEY_STREAM,
                                                  req->route_param, "*", now_ms, hist};
    for (size_t i = 0; i < CR_ARRAY_SIZE(types); i++)
        argv[7 + i] = types[i];
    snprintf(req->saga_id, sizeof req->saga_id, "%.24s", req->route_param);
    if (store_evalsha(app->store, &saga_lua_retry, 3, (int)CR_ARRAY_SIZE(argv), argv, NULL,
                      on_admin_retry, req) != 0)
        respond_unavailable(req);
}
