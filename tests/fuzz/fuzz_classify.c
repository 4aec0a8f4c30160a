/*
 * fuzz_classify.c - the destination connectors (dest_webhook.c, dest_kibo.c, dest_tecspal.c):
 * classify() over arbitrary responses, and build()/sign() over arbitrary requests, orders,
 * translated references and counterparty order numbers.
 *
 * Input, first byte even - classify mode, every connector reads the same response:
 *   [0] mode  [1] action  [2..3] status  [4] transport error  [5] msglen  [6] header-block length
 *   then the header block, then the body (the rest).
 * Input, first byte odd - build mode:
 *   [0] mode  [1] action  [2] counterparty/caller  [3] flags  [4] msglen
 *   then up to three JSON documents back to back (request, order hash, translated references;
 *   a missing one is {}), then the counterparty's order number (the rest, up to a NUL).
 *
 * Invariants:
 *   classify: the outcome is one of the four, and follows the transport rules every connector
 *   shares (transport error -> retry, bad URL -> error; 5xx/408/429 -> retry; 3xx -> error, as
 *   redirects are never followed; other non-2xx -> rejected, or error for kibo/tecspal
 *   credentials 401/403; 2xx -> done, tecspal only with envelop[0].status "CANCELLED");
 *   msg is terminated within msglen and stores as a JSON string through crlog_string_lossy (as
 *   the saga does; a cut multibyte character becomes U+FFFD); only the webhook reports a
 *   counterparty order number, a non-empty string of at most 64 bytes taken from the body's
 *   "order_number".
 *   build: done, rejected or error (never retry); on done a request object whose method is POST,
 *   whose URL is exactly the connector URL plus the connector's fixed path (nothing from the
 *   partner reaches it), whose headers are "Name: value" strings without CR, LF or other control
 *   characters (also after sign() adds the per-attempt ones), and whose body is a JSON object
 *   whose compact text (what the saga sends and stores) reads back as the same object, without
 *   duplicate keys; kibo and tecspal only build a cancel, with the order number they validated.
 */
#include "config.h"
#include "crlog.h"
#include "dest.h"
#include "fuzz_common.h"
#include "util/jsonw.h"
#include "validate.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#ifndef CR_FUZZ_DEMO_CONFIG
#define CR_FUZZ_DEMO_CONFIG "config/demo.json"
#endif

static cfg_t *cfg;
static const cfg_tenant_t *tenants[4]; /* acme (webhook), swift (webhook), kibo, tecspal */

static const char *const actions[] = {"cancel", "reset", "update_status", "create",
                                      "bol",    "drop",  "accept"};
static const int action_kind[] = {VAL_CANCEL, VAL_RESET, VAL_UPDATE_STATUS, VAL_CREATE,
                                  VAL_BOL,    VAL_DROP,  VAL_ACCEPT};
static const size_t msglens[] = {1, 2, 8, 16, 64, 160, 255, 256, 320, 511, 512, 600};

static const dest_ops_t *const all_ops[] = {&dest_webhook_ops, &dest_kibo_ops,
                                            &dest_tecspal_ops};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("CR_FUZZ_CONFIG");
    char err[512];
    if (cfg_load_file(path ? path : CR_FUZZ_DEMO_CONFIG, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_classify: %s\n", err);
        exit(2);
    }
    const char *names[] = {"acme-supply", "swift-haul", "kibo-retail", "tecspal-hw"};
    for (int i = 0; i < 4; i++) {
        tenants[i] = cfg_tenant_find(cfg, names[i], strlen(names[i]));
        if (tenants[i] == NULL) {
            fprintf(stderr, "fuzz_classify: tenant %s missing from the config\n", names[i]);
            exit(2);
        }
    }
    /* Per-attempt credentials sign() reads (values only need to exist). */
    setenv("ACME_WEBHOOK_SECRET", "fuzz-webhook-secret", 1);
    setenv("SWIFT_WEBHOOK_SECRET", "fuzz-webhook-secret-2", 1);
    setenv("TECSPAL_TOKEN", "fuzz-tecspal-token", 1);
    return 0;
}

static void check_msg(const char *msg, size_t msglen, const char *who)
{
    FUZZ_CHECK(memchr(msg, '\0', msglen) != NULL, "%s: msg not terminated within %zu", who,
               msglen);
}

/* ---------------------------------------------------------------- classify */

static dest_outcome_t expected_transport(const outhttp_response_t *r, bool *known)
{
    *known = true;
    if (r->error)
        return r->error == OUTHTTP_ERR_BAD_URL ? DEST_ERROR : DEST_RETRY;
    long st = r->status;
    if (st >= 500 || st == 408 || st == 429)
        return DEST_RETRY;
    if (st >= 300 && st < 400)
        return DEST_ERROR;
    if (st >= 200 && st < 300) {
        *known = false; /* connector-specific */
        return DEST_DONE;
    }
    return DEST_REJECTED;
}

static void run_classify(const uint8_t *data, size_t size)
{
    if (size < 7)
        return;
    const char *action = actions[data[1] % 7];
    long status;
    if (data[2] < 0xf0) {
        status = ((long)data[2] << 8 | data[3]) % 700;
    } else {
        static const long odd[] = {-1, 0, 99, 100, 199, 1000, 99999, 2147483647L,
                                   -2147483647L - 1, 4294967296L, 600, 999, 226, 304, 401, 403};
        status = odd[data[3] % 16];
    }
    static const char *const errs_detail[] = {NULL, "Connection refused",
                                              "Operation timed out after 5000 milliseconds"};
    const char *error = NULL, *error_detail = NULL;
    if (data[4] >= 0xd0) {
        const char *const errs[] = {OUTHTTP_ERR_TIMEOUT, OUTHTTP_ERR_CONNECT,
                                    OUTHTTP_ERR_IO,      OUTHTTP_ERR_TOO_LARGE,
                                    OUTHTTP_ERR_CANCELED, OUTHTTP_ERR_BAD_URL};
        error = errs[data[4] % 6];
        error_detail = errs_detail[data[4] % 3];
        status = 0;
    }
    size_t msglen = msglens[data[5] % (sizeof msglens / sizeof msglens[0])];
    size_t hlen = data[6];
    const uint8_t *p = data + 7;
    size_t rest = size - 7;
    if (hlen > rest)
        hlen = rest;
    /* Exact-size copies, NUL-terminated as outhttp delivers them: ASan sees any over-read. */
    char *headers = malloc(hlen + 1);
    memcpy(headers, p, hlen);
    headers[hlen] = '\0';
    size_t blen = rest - hlen;
    char *body = malloc(blen + 1);
    memcpy(body, p + hlen, blen);
    body[blen] = '\0';

    outhttp_response_t resp = {
        .error = error,
        .error_detail = error_detail,
        .status = status,
        .headers = headers,
        .headers_len = hlen,
        .body = body,
        .body_len = blen,
        .elapsed_ms = 12,
    };
    bool known;
    dest_outcome_t want = expected_transport(&resp, &known);

    for (size_t i = 0; i < 3; i++) {
        const dest_ops_t *ops = all_ops[i];
        char *msg = malloc(msglen);
        memset(msg, 'Z', msglen);
        char *cp_num = NULL;
        dest_outcome_t oc = ops->classify(action, &resp, msg, msglen, &cp_num);
        FUZZ_CHECK(oc >= DEST_DONE && oc <= DEST_ERROR, "%s: outcome %d", ops->type, (int)oc);
        check_msg(msg, msglen, ops->type);
        /* The message becomes the saga's "message", history entry and log text (JSON). It may
         * quote partner text cut inside a UTF-8 sequence; the saga stores it through
         * crlog_string_lossy, which must always give a JSON string that serialises. */
        json_t *stored = crlog_string_lossy(msg, strlen(msg));
        FUZZ_CHECK(json_is_string(stored) &&
                       fuzz_utf8_valid(json_string_value(stored), json_string_length(stored)),
                   "%s: message cannot be stored as JSON: %.80s", ops->type, msg);
        char *dumped = json_dumps(stored, JSON_ENCODE_ANY);
        FUZZ_CHECK(dumped != NULL, "%s: stored message does not serialise", ops->type);
        free(dumped);
        json_decref(stored);
        bool cred = !error && (status == 401 || status == 403);
        if (known) {
            dest_outcome_t w = want;
            if (cred && ops != &dest_webhook_ops)
                w = DEST_ERROR; /* kibo and tecspal: credentials, not a business no */
            FUZZ_CHECK(oc == w, "%s: status %ld error %s -> outcome %d, expected %d", ops->type,
                       status, error ? error : "none", (int)oc, (int)w);
        } else if (ops == &dest_tecspal_ops) {
            json_t *j = json_loadb(body, blen, 0, NULL);
            const char *st = json_string_value(
                json_object_get(json_array_get(json_object_get(j, "envelop"), 0), "status"));
            bool cancelled = status == 200 && st && strcmp(st, "CANCELLED") == 0;
            json_decref(j);
            FUZZ_CHECK(oc == (cancelled ? DEST_DONE : DEST_ERROR),
                       "tecspal: status %ld -> outcome %d (cancelled %d)", status, (int)oc,
                       cancelled);
        } else {
            FUZZ_CHECK(oc == DEST_DONE, "%s: 2xx -> outcome %d", ops->type, (int)oc);
        }
        if (ops == &dest_webhook_ops && oc == DEST_DONE) {
            json_t *j = json_loadb(body, blen, 0, NULL);
            const char *num = json_string_value(json_object_get(j, "order_number"));
            bool expect = num && *num && strlen(num) <= 64;
            FUZZ_CHECK(expect == (cp_num != NULL), "webhook: order number reported %d, body %d",
                       cp_num != NULL, expect);
            if (expect)
                FUZZ_CHECK(strcmp(num, cp_num) == 0, "webhook: order number differs");
            json_decref(j);
        } else {
            FUZZ_CHECK(cp_num == NULL, "%s: order number reported with outcome %d", ops->type,
                       (int)oc);
        }
        free(cp_num);
        free(msg);
    }
    free(headers);
    free(body);
}

/* ---------------------------------------------------------------- build */

static void check_header_line(const char *h, const char *who)
{
    FUZZ_CHECK(h != NULL, "%s: header is not a string", who);
    const char *colon = strchr(h, ':');
    FUZZ_CHECK(colon && colon > h && colon[1] == ' ', "%s: header without 'Name: ': %.100s", who,
               h);
    for (const char *q = h; q < colon; q++)
        FUZZ_CHECK(isalnum((unsigned char)*q) || *q == '-', "%s: bad header name: %.100s", who,
                   h);
    for (const unsigned char *q = (const unsigned char *)colon + 1; *q; q++)
        FUZZ_CHECK(*q >= 0x20 && *q != 0x7f, "%s: control byte 0x%02x in header: %.100s", who,
                   *q, h);
}

/* Parse one JSON document off the front of *p; {} when there is none. */
static json_t *take_doc(const uint8_t **p, size_t *n)
{
    json_error_t e;
    json_t *v = json_loadb((const char *)*p, *n, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &e);
    if (v == NULL)
        return json_object();
    size_t used = (size_t)e.position;
    if (used > *n)
        used = *n;
    *p += used;
    *n -= used;
    return v;
}

static void run_build(const uint8_t *data, size_t size)
{
    if (size < 5)
        return;
    size_t ai = data[1] % 7;
    const char *action = actions[ai];
    const cfg_tenant_t *cp = tenants[data[2] % 4];
    const cfg_tenant_t *caller = tenants[(data[2] >> 2) % 4];
    bool canon = data[3] & 1;
    bool null_num = data[3] & 2;
    size_t msglen = msglens[data[4] % (sizeof msglens / sizeof msglens[0])];
    const uint8_t *p = data + 5;
    size_t n = size - 5;
    json_t *request = take_doc(&p, &n);
    json_t *order = take_doc(&p, &n);
    json_t *refs = take_doc(&p, &n);
    char *num = strndup((const char *)p, n);

    if (canon) {
        /* What the saga really passes: the canonical body the validator produced. */
        json_t *errs = json_array(), *out = NULL;
        if (val_mutation((val_kind_t)action_kind[ai], request, errs, &out) == 0) {
            json_decref(request);
            request = out;
        }
        json_decref(errs);
    }
    dest_ctx_t ctx = {
        .action = action,
        .saga_id = "64b7cf5a86d9755df3a6c5ff",
        .caller = caller,
        .cp = cp,
        .request = request,
        .order = order,
        .cp_refs = refs,
        .cp_order_number = null_num ? NULL : num,
    };
    const dest_ops_t *ops = dest_ops_for(cp->connector.type);
    FUZZ_CHECK(ops != NULL, "no ops for connector type %d", (int)cp->connector.type);
    json_t *out = NULL;
    char *msg = malloc(msglen);
    memset(msg, 'Z', msglen);
    dest_outcome_t oc = ops->build(&ctx, &out, msg, msglen);
    FUZZ_CHECK(oc == DEST_DONE || oc == DEST_REJECTED || oc == DEST_ERROR, "%s build: outcome %d",
               ops->type, (int)oc);
    if (oc != DEST_DONE) {
        check_msg(msg, msglen, ops->type);
        FUZZ_CHECK(out == NULL, "%s build: refused but *out set", ops->type);
    } else {
        FUZZ_CHECK(json_is_object(out), "%s build: done without a request", ops->type);
        const char *method = json_string_value(json_object_get(out, "method"));
        const char *url = json_string_value(json_object_get(out, "url"));
        json_t *doc = json_object_get(out, "body");
        char *body = doc ? jsonw_dumps(doc, JSON_COMPACT) : NULL;
        json_t *headers = json_object_get(out, "headers");
        FUZZ_CHECK(method && strcmp(method, "POST") == 0, "%s build: method", ops->type);
        FUZZ_CHECK(url && json_is_object(doc) && body && json_is_array(headers), "%s build: shape",
                   ops->type);
        char want[512];
        if (ops == &dest_webhook_ops)
            snprintf(want, sizeof want, "%s/v1/order/%s", cp->connector.url, action);
        else if (ops == &dest_kibo_ops)
            snprintf(want, sizeof want, "%s/api/v2/order/action/cancel", cp->connector.url);
        else
            snprintf(want, sizeof want, "%s/orders/cancel", cp->connector.url);
        FUZZ_CHECK(strcmp(url, want) == 0, "%s build: URL '%.200s', expected '%s'", ops->type,
                   url, want);
        FUZZ_CHECK(ops == &dest_webhook_ops || strcmp(action, "cancel") == 0,
                   "%s build: built a %s", ops->type, action);
        json_t *b = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(json_is_object(b) && json_equal(b, doc),
                   "%s build: body text does not read back as the document: %.200s", ops->type,
                   body);
        if (ops == &dest_kibo_ops) {
            json_int_t id = json_integer_value(json_object_get(b, "orderID"));
            FUZZ_CHECK(ctx.cp_order_number && id >= 1 && strtoll(ctx.cp_order_number, NULL, 10) == id,
                       "kibo build: orderID %lld from '%s'", (long long)id,
                       ctx.cp_order_number ? ctx.cp_order_number : "(null)");
        } else if (ops == &dest_tecspal_ops) {
            const char *id =
                json_string_value(json_object_get(json_object_get(b, "data"), "id"));
            FUZZ_CHECK(id && ctx.cp_order_number && strcmp(id, ctx.cp_order_number) == 0 &&
                           strlen(id) == 36,
                       "tecspal build: id");
        }
        json_decref(b);
        size_t i;
        json_t *h;
        json_array_foreach(headers, i, h) check_header_line(json_string_value(h), ops->type);
        if (ops->sign) {
            ops->sign(cp, body, strlen(body), headers);
            json_array_foreach(headers, i, h) check_header_line(json_string_value(h), ops->type);
        }
        free(body);
        json_decref(out);
    }
    free(msg);
    free(num);
    json_decref(request);
    json_decref(order);
    json_decref(refs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        run_build(data, size);
    else
        run_classify(data, size);
    return 0;
}

/* Replace data[off, off+len) by its JSON mutation, keeping what follows; 0 if it does not work. */
static size_t mutate_slice(uint8_t *data, size_t size, size_t max_size, size_t off, size_t len,
                           unsigned seed)
{
    size_t tail = size - off - len;
    if (max_size < off + tail + 2)
        return 0;
    size_t room = max_size - off - tail;
    uint8_t *tmp = malloc(room > len ? room : len);
    memcpy(tmp, data + off, len);
    size_t n = fuzz_json_mutate(tmp, len, room, seed);
    if (n > 0) {
        memmove(data + off + n, data + off + len, tail);
        memcpy(data + off, tmp, n);
    }
    free(tmp);
    return n > 0 ? off + n + tail : 0;
}

/* Keep the fixed prefix; now and then mutate the body (classify) or one of the JSON documents
 * (build) structurally. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    if (size > 8 && seed % 3 == 0) {
        size_t r = 0;
        if (data[0] & 1) {
            size_t off = 5, which = (seed / 3) % 3;
            for (size_t d = 0; d <= which && off < size; d++) {
                json_error_t e;
                json_t *v = json_loadb((const char *)data + off, size - off,
                                       JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &e);
                if (v == NULL)
                    break;
                json_decref(v);
                size_t used = (size_t)e.position;
                if (used > size - off)
                    used = size - off;
                if (d == which) {
                    r = mutate_slice(data, size, max_size, off, used, seed);
                    break;
                }
                off += used;
            }
        } else {
            size_t off = 7 + (data[6] < size - 7 ? data[6] : size - 7);
            if (off < size)
                r = mutate_slice(data, size, max_size, off, size - off, seed);
        }
        if (r > 0)
            return r;
    }
    return LLVMFuzzerMutate(data, size, max_size);
}
