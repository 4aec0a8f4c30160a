/*
 * api_mutation.c - the seven mutations: check headers and body, build the saga and its
 * "pending" answer, store them durably (intake.c), then answer.
 *
 * Owns: one mut_op_t per request between the intake write and its reply. Must not: answer
 * "pending" before Redis has confirmed the write, or touch Redis for a request that fails
 * validation.
 */
#include "api.h"

#include "app.h"
#include "auth.h"
#include "crlog.h"
#include "intake.h"
#include "log.h"
#include "saga_lua.h"
#include "store_keys.h"
#include "util/buf.h"
#include "util/cr.h"
#include "util/crypto.h"
#include "util/jsonw.h"
#include "util/timefmt.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define IDEMPOTENCY_KEY_MAX 255

static const char *const saga_types[] = {
    [VAL_CANCEL] = "order_cancel", [VAL_RESET] = "order_reset",
    [VAL_UPDATE_STATUS] = "order_update_status", [VAL_CREATE] = "order_create",
    [VAL_ACCEPT] = "order_accept", [VAL_BOL] = "order_bol", [VAL_DROP] = "order_drop",
};

static const char *const messages[] = {
    [VAL_CANCEL] = "Order cancel accepted",
    [VAL_RESET] = "Order reset accepted",
    [VAL_UPDATE_STATUS] = "Order status update accepted",
    [VAL_CREATE] = "Order create accepted",
    [VAL_ACCEPT] = "Order accept accepted",
    [VAL_BOL] = "Order BOL accepted",
    [VAL_DROP] = "Order drop accepted",
};

static const char *const titles[] = {
    [VAL_CANCEL] = "Order cancel received",
    [VAL_RESET] = "Order reset received",
    [VAL_UPDATE_STATUS] = "Order status update received",
    [VAL_CREATE] = "Order create received",
    [VAL_ACCEPT] = "Order accept received",
    [VAL_BOL] = "Order BOL received",
    [VAL_DROP] = "Order drop received",
};

/* ---------------------------------------------------------------- shared answers */

void api_respond_json(httpd_req_t *req, int status, const json_t *body, const char *extra_headers)
{
    char *s = jsonw_dumps(body, JSON_COMPACT);
    if (s == NULL) {
        /* Only a bug can get here (every string we build is valid UTF-8); answer, never crash. */
        httpd_respond_detail(req, 500, "Internal error while encoding the answer", NULL);
        return;
    }
    httpd_respond(req, status, NULL, extra_headers, s, strlen(s));
    free(s);
}

void api_respond_422(httpd_req_t *req, const json_t *errors)
{
    json_t *body = json_pack("{sO}", "detail", (json_t *)errors);
    api_respond_json(req, 422, body, NULL);
    json_decref(body);
}

/* ---------------------------------------------------------------- header checks */

static json_t *header_loc(const char *name)
{
    return json_pack("[ss]", "header", name);
}

/*
 * Content-Type must be application/json (parameters allowed; a charset other than UTF-8 is not).
 * Returns 0 when acceptable, else the status to answer (400 or 415).
 */
static int check_content_type(const httpd_req_t *req)
{
    size_t n;
    int count;
    const char *ct = httpd_req_header(req, "content-type", &n, &count);
    if (count > 1) {
        for (size_t i = 0; i < req->n_headers; i++) {
            const httpd_header_t *h = &req->headers[i];
            if (h->name_len == 12 && memcmp(h->name, "content-type", 12) == 0 &&
                (h->value_len != n || strncasecmp(h->value, ct, n) != 0))
                return 400;
        }
    }
    if (ct == NULL)
        return req->body_len == 0 ? 0 : 415;
    size_t base = 0;
    while (base < n && ct[base] != ';' && ct[base] != ' ')
        base++;
    if (base != 16 || strncasecmp(ct, "application/json", 16) != 0)
        return 415;
    /* Look for a charset parameter; only utf-8 is JSON's encoding (RFC 8259). */
    for (size_t i = base; i + 8 <= n; i++) {
        if (strncasecmp(ct + i, "charset=", 8) == 0) {
            const char *v = ct + i + 8;
            size_t vl = n - i - 8, e = 0;
            while (e < vl && v[e] != ';' && v[e] != ' ')
                e++;
            bool q = e >= 2 && v[0] == '"' && v[e - 1] == '"';
            const char *cs = q ? v + 1 : v;
            size_t csl = q ? e - 2 : e;
            if (!((csl == 5 && strncasecmp(cs, "utf-8", 5) == 0) ||
                  (csl == 4 && strncasecmp(cs, "utf8", 4) == 0)))
                return 415;
        }
    }
    return 0;
}

static void check_dest(const cfg_t *cfg, const httpd_req_t *req, const cfg_tenant_t *caller,
                       json_t *errors, const cfg_tenant_t **dest)
{
    size_t n;
    int count;
    const char *v = httpd_req_header(req, "x-dest-tenant-name", &n, &count);
    *dest = NULL;
    if (v == NULL || n == 0) {
        val_error_add(errors, header_loc("x-dest-tenant-name"), "missing", "Field required",
                      json_null(), NULL);
        return;
    }
    json_t *input = crlog_string_lossy(v, n);
    if (count > 1) {
        val_error_add(errors, header_loc("x-dest-tenant-name"), "value_error",
                      "Value error, X-Dest-Tenant-Name given more than once", input, NULL);
    } else if ((*dest = cfg_tenant_find(cfg, v, n)) == NULL) {
        val_error_add(errors, header_loc("x-dest-tenant-name"), "value_error",
                      "Value error, unknown tenant", input, NULL);
    } else if (*dest == caller) {
        *dest = NULL;
        val_error_add(errors, header_loc("x-dest-tenant-name"), "value_error",
                      "Value error, the destination must be another tenant", input, NULL);
    }
    json_decref(input);
}

static void check_idempotency_key(const httpd_req_t *req, json_t *errors, const char **key,
                                  size_t *key_len)
{
    int count;
    *key = httpd_req_header(req, "idempotency-key", key_len, &count);
    if (*key == NULL)
        return;
    bool printable = *key_len > 0;
    for (size_t i = 0; i < *key_len && printable; i++)
        printable = (unsigned char)(*key)[i] >= 0x20 && (unsigned char)(*key)[i] < 0x7f;
    json_t *input = crlog_string_lossy(*key, *key_len);
    if (count > 1) {
        val_error_add(errors, header_loc("idempotency-key"), "value_error",
                      "Value error, Idempotency-Key given more than once", NULL, NULL);
    } else if (*key_len > IDEMPOTENCY_KEY_MAX) {
        val_error_add(errors, header_loc("idempotency-key"), "string_too_long",
                      "String should have at most 255 characters", NULL,
                      json_pack("{si}", "max_length", IDEMPOTENCY_KEY_MAX));
    } else if (!printable) {
        val_error_add(errors, header_loc("idempotency-key"), "value_error",
                      "Value error, Idempotency-Key must be 1-255 printable ASCII characters",
                      NULL, NULL);
    }
    json_decref(input);
}

/* ---------------------------------------------------------------- the answer */

static json_t *mapping_echo(const json_t *key)
{
    if (!json_is_object(key))
        return json_null();
    json_t *o = json_object();
    const char *fields[] = {"mapping_id", "source_name", "source_id"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(key, fields[i]);
        json_object_set(o, fields[i], v ? v : json_null());
    }
    json_object_set_new(o, "goid", json_null());
    json_object_set_new(o, "goid_name", json_null());
    return o;
}

static json_t *status_update_echo(const json_t *norm)
{
    json_t *su = json_object();
    json_object_set(su, "progress_status", json_object_get(norm, "progress_status"));
    json_object_set_new(su, "location", mapping_echo(json_object_get(norm, "location")));
    json_object_set_new(su, "site", json_null());
    const char *opt[] = {"eta", "delivery_eta", "actual", "assigned_to", "hauled_by"};
    for (size_t i = 0; i < CR_ARRAY_SIZE(opt); i++) {
        json_t *v = json_object_get(norm, opt[i]);
        json_object_set(su, opt[i], v ? v : json_null());
    }
    return su;
}

/* ---------------------------------------------------------------- intake */

typedef struct mut_op {
    httpd_req_t *req;
    struct app *app;
    const char *saga_type;
    char *response;
} mut_op_t;

static void on_intake(intake_result_t result, const char *response, size_t response_len,
                      void *data)
{
    mut_op_t *op = data;
    switch (result) {
    case INTAKE_STORED: {
        const char *lv[] = {op->saga_type};
        metrics_counter_inc(op->app->m.sagas_accepted, lv, 1);
        httpd_respond(op->req, 200, NULL, NULL, op->response, strlen(op->response));
        break;
    }
    case INTAKE_REPEAT:
        if (response_len == 0) {
            /* The record names a saga that is gone (evicted or deleted by hand): the request
             * was accepted once, but its first answer cannot be given again. */
            httpd_respond_detail(op->req, 409,
                                 "Idempotency-Key was already used; its first answer is no "
                                 "longer stored",
                                 NULL);
            break;
        }
        httpd_respond(op->req, 200, NULL, "Idempotent-Replayed: true\r\n", response,
                      response_len);
        break;
    case INTAKE_CONFLICT:
        httpd_respond_detail(op->req, 409,
                             "Idempotency-Key was already used with a different request", NULL);
        break;
    case INTAKE_DUPLICATE:
        httpd_respond_detail(op->req, 409, "order_number already exists for this tenant", NULL);
        break;
    case INTAKE_UNAVAILABLE:
        httpd_respond_detail(op->req, 503,
                             "Service unavailable: the request was not confirmed as stored; "
                             "retry with the same Idempotency-Key",
                             "Retry-After: 1\r\n");
        break;
    }
    free(op->response);
    free(op);
}

static const char *order_field(const json_t *norm, const char *field)
{
    return json_string_value(json_object_get(json_object_get(norm, "order"), field));
}

void api_mutation(struct app *app, httpd_req_t *req, const route_t *route,
                  const struct auth_ctx *auth)
{
    val_kind_t kind = (val_kind_t)route->arg;
    const cfg_t *cfg = app->cfg;
    const cfg_tenant_t *caller = auth->tenant;

    int ct = check_content_type(req);
    if (ct == 400) {
        httpd_respond_detail(req, 400, "Conflicting Content-Type headers", NULL);
        return;
    }
    if (ct == 415) {
        httpd_respond_detail(req, 415, "Unsupported Media Type: expected application/json", NULL);
        return;
    }

    /* FastAPI order: header problems first, then the body's. */
    json_t *errors = json_array();
    const cfg_tenant_t *dest;
    check_dest(cfg, req, caller, errors, &dest);
    const char *idem;
    size_t idem_len;
    check_idempotency_key(req, errors, &idem, &idem_len);
    json_t *norm = NULL;
    json_t *body = val_json_parse(req->body, req->body_len, errors);
    if (body != NULL)
        val_mutation(kind, body, errors, &norm);
    json_decref(body);
    if (json_array_size(errors) > 0) {
        api_respond_422(req, errors);
        json_decref(errors);
        json_decref(norm);
        return;
    }
    json_decref(errors);

    if (!intake_ready(app->intake)) {
        json_decref(norm);
        httpd_respond_detail(req, 503, "Service unavailable: Redis is not reachable",
                             "Retry-After: 1\r\n");
        return;
    }

    char saga_id[CRYPTO_OID_LEN], order_id[CRYPTO_OID_LEN];
    char now[TIME_ISO_LEN];
    crypto_oid(saga_id);
    time_format_iso(time_now_ms(), now);
    cr_cat(req->saga_id, sizeof req->saga_id, saga_id, NULL, NULL);
    char *instance = auth->instance ? cr_strndup(auth->instance, auth->instance_len) : NULL;

    if (kind == VAL_UPDATE_STATUS && json_object_get(norm, "hauled_by") == NULL)
        json_object_set_new(norm, "hauled_by", json_string(caller->name));
    const char *order_number;
    const char *known_order_id;
    /* The fingerprint decides "same request" for Idempotency-Key repeats: the route, the
     * destination, the instance and the canonical body (key order and spacing do not count). */
    char *canon = jsonw_dumps(norm, JSON_COMPACT | JSON_SORT_KEYS);
    buf_t fp = {0};
    buf_printf(&fp, "fp1\n%s\n%s\n%s%s\n", route->path, dest->name, instance ? "i:" : "-",
               instance ? instance : "");
    buf_append_str(&fp, canon);
    uint8_t digest[32];
    char fingerprint[65], idem_hash[65];
    crypto_sha256(fp.data, fp.len, digest);
    crypto_hex(digest, 32, fingerprint);
    buf_free(&fp);
    if (idem) {
        crypto_sha256(idem, idem_len, digest);
        crypto_hex(digest, 32, idem_hash);
    }

    if (kind == VAL_CREATE) {
        /* The assigned order_id is ours, not the client's: in the stored request, not in the
         * fingerprint. */
        crypto_oid(order_id);
        json_object_set_new(norm, "order_id", json_string(order_id));
        free(canon);
        canon = jsonw_dumps(norm, JSON_COMPACT | JSON_SORT_KEYS);
        known_order_id = order_id;
        order_number = json_string_value(json_object_get(norm, "order_number"));
    } else {
        known_order_id = order_field(norm, "order_id");
        order_number = order_field(norm, "order_number");
    }

    crlog_fields_t lf = {
        .title = titles[kind],
        .status = "pending",
        .message = "Request stored; processing will follow",
        .message_short = "Accepted",
        .from = caller,
        .instance = instance,
        .to = dest,
        .saga_id = saga_id,
        .saga_type = saga_types[kind],
        .correlation_id = req->request_id,
        .order_number = order_number,
        .order_id = known_order_id,
    };
    /* The answer, written as text: {"status", "message", ["status_update",] ["order_id",] "log"}. */
    buf_t rb = {0};
    buf_append_str(&rb, "{\"status\":\"pending\",\"message\":\"");
    buf_append_json_str(&rb, messages[kind], strlen(messages[kind]));
    buf_append_str(&rb, "\"");
    if (kind == VAL_UPDATE_STATUS) {
        json_t *echo = status_update_echo(norm);
        char *echo_s = jsonw_dumps(echo, JSON_COMPACT);
        buf_append_str(&rb, ",\"status_update\":");
        buf_append_str(&rb, echo_s ? echo_s : "null");
        free(echo_s);
        json_decref(echo);
    }
    if (kind == VAL_CREATE) {
        buf_append_str(&rb, ",\"order_id\":\"");
        buf_append_str(&rb, order_id);
        buf_append_str(&rb, "\"");
    }
    buf_append_str(&rb, ",\"log\":");
    crlog_entry_text(&rb, &lf);
    buf_append(&rb, "}", 2); /* with the terminating NUL */
    char *response = rb.data;

    char history[160];
    snprintf(history, sizeof history,
             "{\"status\":\"pending\",\"date\":\"%s\",\"message\":\"%s\"}", now, messages[kind]);

    const char *fields[] = {
        "saga_id", saga_id,
        "type", saga_types[kind],
        "status", "pending",
        "message", messages[kind],
        "tenant", caller->name,
        "dest", dest->name,
        "instance", instance ? instance : "",
        "request", canon,
        "request_id", req->request_id,
        "idempotency_key", idem ? idem_hash : "",
        "fingerprint", fingerprint,
        "attempts", "0",
        "order_number", order_number ? order_number : "",
        "created_at", now,
        "updated_at", now,
    };
    intake_rec_t rec = {
        .saga_id = saga_id,
        .saga_type = saga_types[kind],
        .tenant = caller->name,
        .idem_key_hash = idem ? idem_hash : NULL,
        .fingerprint = fingerprint,
        .idem_ttl_s = cfg->idempotency_ttl_s,
        .response = response,
        .history = history,
        .fields = fields,
        .n_fields = CR_ARRAY_SIZE(fields),
    };
    char now_ms[CR_INT_LEN];
    cr_fmt_int(now_ms, time_now_ms());
    rec.dest = dest->name;
    rec.order_id = known_order_id;
    rec.order_number = order_number;
    rec.now_ms = now_ms;
    rec.retention_s = cfg->saga_retention_s;
    char *lines = NULL;
    const char *ofields[32];
    if (kind == VAL_CREATE) {
        /* The order record starts with the create; every value is a string (a Redis hash). */
        lines = jsonw_dumps(json_object_get(norm, "lines"), JSON_COMPACT);
        const char *delivery = json_string_value(json_object_get(norm, "requested_delivery"));
        const char *notes = json_string_value(json_object_get(norm, "notes"));
        const char *pairs[] = {
            "order_id", order_id,
            "origin_tenant", caller->name,
            "destination_tenant", dest->name,
            "order_number", order_number,
            "counterparty_order_number", "",
            "status", "pending",
            "progress_status", "no_progress",
            "canceled", "0",
            "accepted", "0",
            "lines", lines,
            "requested_delivery", delivery ? delivery : "",
            "notes", notes ? notes : "",
            "bols", "[]",
            "drops", "[]",
            "created_at", now,
            "updated_at", now,
        };
        _Static_assert(CR_ARRAY_SIZE(pairs) <= CR_ARRAY_SIZE(ofields), "ofields is too small");
        memcpy(ofields, pairs, sizeof pairs);
        rec.order_fields = ofields;
        rec.n_order_fields = CR_ARRAY_SIZE(pairs);
    }
    mut_op_t *op = cr_malloc(sizeof *op);
    op->req = req;
    op->app = app;
    op->saga_type = saga_types[kind];
    op->response = response;
    int rc = intake_submit(app->intake, &rec, on_intake, op);
    free(lines);
    free(canon);
    free(instance);
    json_decref(norm);
    if (rc != 0) {
        free(op->response);
        free(op);
        httpd_respond_detail(req, 503, "Service unavailable: Redis is not reachable",
                             "Retry-After: 1\r\n");
    }
}

/* ---------------------------------------------------------------- retry */

typedef struct retry_op {
    httpd_req_t *req;
    char saga_id[CRYPTO_OID_LEN];
} retry_op_t;

void api_respond_retry(httpd_req_t *req, const char *saga_id, const redisReply *reply,
                       const char *err)
{
    if (err || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        httpd_respond_detail(req, 503, "Service unavailable: Redis is not reachable",
                             "Retry-After: 1\r\n");
        return;
    }
    const char *what = reply->element[0]->str;
    const char *status = reply->elements > 1 ? reply->element[1]->str : "";
    if (strcmp(what, "ok") == 0) {
        json_t *body = json_pack("{s:s, s:s, s:s, s:b}", "saga_id", saga_id, "status", status,
                                 "message", "retry requested", "retried", 1);
        api_respond_json(req, 200, body, NULL);
        json_decref(body);
    } else if (strcmp(what, "forbidden") == 0) {
        httpd_respond_detail(req, 403, "Missing scope for this saga's type", NULL);
    } else if (strcmp(what, "conflict") == 0) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "Saga is %s; only a saga that ended in error can be retried", status);
        httpd_respond_detail(req, 409, detail, NULL);
    } else {
        httpd_respond_detail(req, 404, "Saga not found", NULL);
    }
}

static void on_retry(const redisReply *reply, const char *err, void *data)
{
    retry_op_t *op = data;
    api_respond_retry(op->req, op->saga_id, reply, err);
    free(op);
}

void api_saga_retry(struct app *app, httpd_req_t *req, const route_t *route,
                    const struct auth_ctx *auth)
{
    (void)route;
    if (!crypto_is_hex(req->route_param, strlen(req->route_param), 24)) {
        httpd_respond_detail(req, 404, "Saga not found", NULL);
        return;
    }
    /* A key may retry the saga types its scopes would let it start. */
    static const struct {
        unsigned scope;
        const char *type;
    } by_scope[] = {
        {CFG_SCOPE_ORDER_CREATE, "order_create"},
        {CFG_SCOPE_ORDER_CANCEL, "order_cancel"},
        {CFG_SCOPE_ORDER_RESET, "order_reset"},
        {CFG_SCOPE_ORDER_UPDATE_STATUS, "order_update_status"},
        {CFG_SCOPE_ORDER_EXECUTE, "order_bol"},
        {CFG_SCOPE_ORDER_EXECUTE, "order_drop"},
        {CFG_SCOPE_ORDER_ACCEPT, "order_accept"},
    };
    retry_op_t *op = cr_calloc(1, sizeof *op);
    op->req = req;
    for (size_t i = 0; i < 24; i++)
        op->saga_id[i] = (char)((req->route_param[i] >= 'A' && req->route_param[i] <= 'F')
                                    ? req->route_param[i] - 'A' + 'a'
                                    : req->route_param[i]);
    char saga_key[96], hist_key[96], now_ms[24], iso[TIME_ISO_LEN], hist[160];
    snprintf(saga_key, sizeof saga_key, STORE_KEY_SAGA_FMT, op->saga_id);
    snprintf(hist_key, sizeof hist_key, STORE_KEY_SAGA_HIST_FMT, op->saga_id);
    snprintf(now_ms, sizeof now_ms, "%lld", (long long)time_now_ms());
    time_format_iso(time_now_ms(), iso);
    snprintf(hist, sizeof hist, "{\"status\":\"retry\",\"date\":\"%s\",\"message\":\"retry "
             "requested\"}", iso);
    const char *argv[7 + CR_ARRAY_SIZE(by_scope)] = {saga_key, hist_key, STORE_KEY_STREAM,
                                                     op->saga_id, auth->tenant->name, now_ms,
                                                     hist};
    int n = 7;
    for (size_t i = 0; i < CR_ARRAY_SIZE(by_scope); i++)
        if (auth->key->scopes & by_scope[i].scope)
            argv[n++] = by_scope[i].type;
    snprintf(req->saga_id, sizeof req->saga_id, "%s", op->saga_id);
    if (store_evalsha(app->store, &saga_lua_retry, 3, n, argv, NULL, on_retry, op) != 0) {
        free(op);
        httpd_respond_detail(req, 503, "Service unavailable: Redis is not reachable",
                             "Retry-After: 1\r\n");
    }
}
