/*
 * api_read.c - probes (healthz, readyz); the saga and order reads join them with the engine.
 */
#include "api.h"

#include "app.h"
#include "auth.h"
#include "store.h"
#include "util/crypto.h"
#include "validate.h"

#include <stdlib.h>

#include <stdio.h>
#include <string.h>

void api_healthz(struct app *app, httpd_req_t *req, const route_t *route,
                 const struct auth_ctx *auth)
{
    (void)app;
    (void)route;
    (void)auth;
    static const char ok[] = "{\"status\":\"ok\"}";
    httpd_respond(req, 200, NULL, NULL, ok, sizeof ok - 1);
}

void api_readyz(struct app *app, httpd_req_t *req, const route_t *route,
                const struct auth_ctx *auth)
{
    (void)route;
    (void)auth;
    const char *reason;
    if (app_ready(app, &reason)) {
        static const char ok[] = "{\"status\":\"ready\"}";
        httpd_respond(req, 200, NULL, NULL, ok, sizeof ok - 1);
        return;
    }
    char detail[96];
    snprintf(detail, sizeof detail, "Not ready: %s", reason);
    httpd_respond_detail(req, 503, detail, "Retry-After: 1\r\n");
}

/* ---------------------------------------------------------------- saga and order reads */

/*
 * ARGV: 1 what ("saga", "order", "logs"), 2 tenant, 3 saga or order id, 4 order number.
 * Returns {0} when there is nothing the tenant may see, else {1, ...}: the saga hash and its
 * history; the order hash; or the order's log. Order lookups by number follow SPEC: orders the
 * caller created with that number, then orders sent to it by its own reference or the origin's.
 */
static store_script_t read_script = {
    .name = "read",
    .source =
        "local P = 'cr:{cr}:'\n"
        "local what, tenant = ARGV[1], ARGV[2]\n"
        "if what == 'saga' then\n"
        "  local k = P .. 'saga:' .. ARGV[3]\n"
        "  local s = redis.call('HMGET', k, 'tenant', 'counterparty')\n"
        "  if s[1] ~= tenant and s[2] ~= tenant then return {0} end\n"
        "  return {1, redis.call('HGETALL', k), redis.call('LRANGE', k .. ':hist', 0, -1)}\n"
        "end\n"
        "local oid = ARGV[3]\n"
        "if oid == '' then\n"
        "  for _, p in ipairs({'ordernum:', 'orderref:', 'ordernum_in:'}) do\n"
        "    local v = redis.call('GET', P .. p .. tenant .. ':' .. ARGV[4])\n"
        "    if v then oid = v; break end\n"
        "  end\n"
        "end\n"
        "if oid == '' then return {0} end\n"
        "local ok = P .. 'order:' .. oid\n"
        "local o = redis.call('HMGET', ok, 'origin_tenant', 'destination_tenant')\n"
        "if o[1] ~= tenant and o[2] ~= tenant then return {0} end\n"
        "if what == 'order' then return {1, redis.call('HGETALL', ok)} end\n"
        "return {1, redis.call('LRANGE', ok .. ':log', 0, -1)}\n",
};

void api_read_init(store_t *store)
{
    store_script_register(store, &read_script);
}

typedef enum { READ_SAGA, READ_ORDER, READ_LOGS } read_kind_t;

typedef struct read_op {
    httpd_req_t *req;
    read_kind_t kind;
} read_op_t;

static json_t *flat_hash(const redisReply *r)
{
    json_t *o = json_object();
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        json_object_set_new(o, r->element[i]->str,
                            json_stringn_nocheck(r->element[i + 1]->str, r->element[i + 1]->len));
    return o;
}

static json_t *str_field(const json_t *h, const char *f, bool empty_is_null)
{
    const char *v = json_string_value(json_object_get(h, f));
    if (v == NULL || (empty_is_null && *v == '\0'))
        return json_null();
    return json_string(v);
}

static json_t *json_field(const json_t *h, const char *f, const char *dflt)
{
    const char *v = json_string_value(json_object_get(h, f));
    json_t *j = v && *v ? json_loads(v, 0, NULL) : NULL;
    return j ? j : (dflt ? json_loads(dflt, 0, NULL) : json_null());
}

static bool flag(const json_t *h, const char *f)
{
    const char *v = json_string_value(json_object_get(h, f));
    return v && strcmp(v, "1") == 0;
}

static json_t *saga_view(const redisReply *hash, const redisReply *hist)
{
    json_t *h = flat_hash(hash);
    json_t *history = json_array();
    for (size_t i = 0; hist && i < hist->elements; i++) {
        json_t *e = json_loadb(hist->element[i]->str, hist->element[i]->len, 0, NULL);
        if (e)
            json_array_append_new(history, e);
    }
    const char *attempts = json_string_value(json_object_get(h, "attempts"));
    json_t *v = json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:O, s:o}", "saga_id",
                          str_field(h, "saga_id", false), "saga_type", str_field(h, "type", false),
                          "status", str_field(h, "status", false), "message",
                          str_field(h, "message", true), "order_id",
                          str_field(h, "order_id", true), "attempts",
                          (json_int_t)(attempts ? atoll(attempts) : 0), "history", history,
                          "retried", json_boolean(flag(h, "retried")));
    json_decref(history);
    if (json_object_get(h, "status_update"))
        json_object_set_new(v, "status_update", json_field(h, "status_update", NULL));
    json_decref(h);
    return v;
}

static json_t *order_view(const redisReply *hash)
{
    json_t *h = flat_hash(hash);
    json_t *v = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
        "order_id", str_field(h, "order_id", false), "order_number",
        str_field(h, "order_number", true), "counterparty_order_number",
        str_field(h, "counterparty_order_number", true), "origin_tenant",
        str_field(h, "origin_tenant", false), "destination_tenant",
        str_field(h, "destination_tenant", false), "status", str_field(h, "status", false),
        "progress_status", str_field(h, "progress_status", false), "canceled",
        flag(h, "canceled"), "accepted",
        flag(h, "accepted"), "lines",
        json_field(h, "lines", "[]"), "bols", json_field(h, "bols", "[]"), "drops",
        json_field(h, "drops", "[]"), "status_update", json_field(h, "status_update", NULL),
        "requested_delivery", str_field(h, "requested_delivery", true), "notes",
        str_field(h, "notes", true), "created_at", str_field(h, "created_at", false),
        "updated_at", str_field(h, "updated_at", false));
    json_decref(h);
    return v;
}

static void on_read(const redisReply *reply, const char *err, void *data)
{
    read_op_t *op = data;
    httpd_req_t *req = op->req;
    read_kind_t kind = op->kind;
    free(op);
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        httpd_respond_detail(req, 503, "Service unavailable: Redis is not reachable",
                             "Retry-After: 1\r\n");
        return;
    }
    if (reply->element[0]->integer != 1) {
        httpd_respond_detail(req, 404, kind == READ_SAGA ? "Saga not found" : "Order not found",
                             NULL);
        return;
    }
    json_t *body;
    if (kind == READ_SAGA) {
        body = saga_view(reply->element[1], reply->element[2]);
    } else if (kind == READ_ORDER) {
        body = order_view(reply->element[1]);
    } else {
        body = json_array();
        const redisReply *l = reply->element[1];
        for (size_t i = 0; i < l->elements; i++) {
            json_t *e = json_loadb(l->element[i]->str, l->element[i]->len, 0, NULL);
            if (e)
                json_array_append_new(body, e);
        }
    }
    api_respond_json(req, 200, body, NULL);
    json_decref(body);
}

static void start_read(struct app *app, httpd_req_t *req, const struct auth_ctx *auth,
                       read_kind_t kind, const char *id, const char *number)
{
    read_op_t *op = malloc(sizeof *op);
    if (op == NULL)
        abort();
    op->req = req;
    op->kind = kind;
    static const char *const what[] = {"saga", "order", "logs"};
    const char *argv[] = {what[kind], auth->tenant->name, id, number};
    if (store_evalsha(app->store, &read_script, 0, 4, argv, NULL, on_read, op) != 0) {
        free(op);
        httpd_respond_detail(req, 503, "Service unavailable: Redis is not reachable",
                             "Retry-After: 1\r\n");
    }
}

void api_saga_get(struct app *app, httpd_req_t *req, const route_t *route,
                  const struct auth_ctx *auth)
{
    (void)route;
    if (!crypto_is_hex(req->route_param, strlen(req->route_param), 24)) {
        httpd_respond_detail(req, 404, "Saga not found", NULL);
        return;
    }
    start_read(app, req, auth, READ_SAGA, req->route_param, "");
}

/* order_id or order_number from the query; answers 422 itself when neither is usable. */
static bool order_query(httpd_req_t *req, char *id, char *num, size_t size)
{
    int il = httpd_query_get(req->query, "order_id", id, size);
    int nl = httpd_query_get(req->query, "order_number", num, size);
    json_t *errors = json_array();
    if (il == -2 || (il >= 0 && !crypto_is_hex(id, (size_t)il, 24)))
        val_error_add(errors, json_pack("[ss]", "query", "order_id"), "string_pattern_mismatch",
                      "String should match pattern '^[0-9a-fA-F]{24}$'", NULL,
                      json_pack("{s:s}", "pattern", "^[0-9a-fA-F]{24}$"));
    if (nl == -2)
        val_error_add(errors, json_pack("[ss]", "query", "order_number"), "string_too_long",
                      "String should have at most 64 characters", NULL,
                      json_pack("{s:i}", "max_length", 64));
    if (il < 0 && nl < 0 && json_array_size(errors) == 0)
        val_error_add(errors, json_pack("[s]", "query"), "value_error",
                      "Value error, order_id or order_number is required", NULL, NULL);
    if (json_array_size(errors) > 0) {
        api_respond_422(req, errors);
        json_decref(errors);
        return false;
    }
    json_decref(errors);
    if (il < 0)
        id[0] = '\0';
    for (char *p = id; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    if (nl < 0)
        num[0] = '\0';
    return true;
}

void api_order_get(struct app *app, httpd_req_t *req, const route_t *route,
                   const struct auth_ctx *auth)
{
    (void)route;
    char id[72], num[72];
    if (order_query(req, id, num, 65))
        start_read(app, req, auth, READ_ORDER, id, num);
}

void api_order_logs(struct app *app, httpd_req_t *req, const route_t *route,
                    const struct auth_ctx *auth)
{
    (void)route;
    char id[72], num[72];
    if (order_query(req, id, num, 65))
        start_read(app, req, auth, READ_LOGS, id, num);
}

/* ---------------------------------------------------------------- admin reload */

static void on_reloaded(int status, const char *error, void *data)
{
    httpd_req_t *req = data;
    if (status == 0) {
        static const char ok[] = "{\"status\":\"reloaded\"}";
        httpd_respond(req, 200, NULL, NULL, ok, sizeof ok - 1);
    } else {
        /* The file on disk is bad: the running config stays; say why. */
        char detail[600];
        snprintf(detail, sizeof detail, "Config refused: %s", error ? error : "unknown error");
        httpd_respond_detail(req, 422, detail, NULL);
    }
}

void api_admin_reload(struct app *app, httpd_req_t *req, const route_t *route,
                      const struct auth_ctx *auth)
{
    (void)route;
    (void)auth;
    int rc = app_reload(app, on_reloaded, req);
    if (rc == UV_EBUSY)
        httpd_respond_detail(req, 409, "A reload is already running", NULL);
    else if (rc != 0)
        httpd_respond_detail(req, 503, "Draining", "Retry-After: 1\r\n");
}
