/*
 * fuzz_http.c - bytes -> the real HTTP front end: framing guard (httpd.c's head scanner and
 * header policy) + llhttp + router + auth + header and body validation + the Redis intake
 * command, through a real httpd_t on a libuv loop and a real socket.
 *
 * How bytes reach the server. httpd.c has no byte-level entry point (bytes come from a uv_tcp_t it
 * accepted itself), so the harness gives it a connection through its own listener and writes to
 * the other end:
 *   - default, fast: the link wraps uv_listen and uv_accept (-Wl,--wrap). httpd_listen() really
 *     binds 127.0.0.1:0; the wrapped uv_listen keeps its connection callback, and for each input
 *     the harness makes a socketpair(AF_UNIX), calls that callback, and the wrapped uv_accept
 *     opens one end into httpd's uv_tcp_t with uv_tcp_open. Everything above the accept is the
 *     unmodified server: reads, writes, timers, pauses, closes.
 *   - CR_FUZZ_HTTP_TCP=1: the real listener and a TCP client connected to it over loopback
 *     (slower; run.sh replays the corpus this way too).
 * The input is written in pieces whose sizes derive from the input, running the loop between
 * pieces, so every split of the head, the chunk framing and the body is reachable.
 *
 * What stands in for Redis. The link also wraps store_ready (always ready), store_evalsha,
 * store_commands_formatted and app_reload. intake.c's batched transaction (one per loop
 * iteration, already in the Redis protocol: MULTI, the records' HSETs, one EVALSHA, EXEC) is
 * captured in memory, each of its requests checked, and it is answered later (from the harness
 * loop, never re-entrantly) with outcomes the input chooses: per request stored, idempotent
 * repeat, key clash or duplicate order number, or for the whole batch a timeout or the script
 * missing (NOSCRIPT). Other scripts (reads, admin, retry) fail with
 * STORE_ERR_DOWN, as they do with Redis down; a reload answers without touching the config.
 *
 * The request handler is app.c's own (app_handle_request): route_match, auth_check for keyed
 * routes, the per-tenant rate limit, then the route's handler with an app_t whose config is
 * config/demo.json (keys demo-acme-key, demo-admin-key, ... see the README) and whose limits are
 * small (8 KiB bodies, 4 KiB heads, 32 fields, 1 KiB request line) so the limit paths are cheap
 * to reach.
 *
 * Input: [0] flags  [1] split  [2..3] PRNG seed  [4..] the bytes the client sends.
 *   split: bits 0-4 the number of random cut points in the bytes (0: one write), bit 5 also
 *   cuts every byte of a random window of up to 64 bytes (one byte per write there).
 *   flags bit 0: half-close (SHUT_WR) after sending; bit 1: "slow Redis" - store replies wait
 *   until everything is sent (so pipelined bytes arrive while a request is with the handler);
 *   bit 2: close the client abruptly right after sending (no checks on the answers).
 *
 * Invariants (abort = finding):
 *   - every byte the server sends parses as a sequence of HTTP/1.1 responses: optional
 *     "100 Continue" interim responses, then final ones with a known status and its reason
 *     phrase, exactly one Content-Length matching the body, Content-Type, Connection
 *     (keep-alive|close) and an X-Request-Id matching ^[A-Za-z0-9._:-]{1,128}$; JSON bodies parse;
 *     4xx/5xx bodies carry "detail";
 *   - nothing follows a "Connection: close" response, and the server then closes; the server
 *     never closes a connection silently (without a close response) unless the client
 *     half-closed; after a half-close it does close; no partial response is left;
 *   - every response the server produced reached the client (observer count = responses read);
 *   - an intake command is only issued for a request that passed auth and validation: its argv
 *     has the documented layout, a saga id of 24 hex, a configured tenant and a different
 *     configured destination, a 64-hex fingerprint, a JSON "pending" response and history entry,
 *     a canonical request that re-validates to itself (val_mutation fixed point), a request id
 *     that is safe to echo, and for create an order hash of strings;
 *   - the response to an intake is the one Redis's answer calls for (200 / 200 replayed with
 *     Idempotent-Replayed / 409 / 409 / 503);
 *   - every log line the gateway writes (captured from stdout) is one JSON object with ts, level
 *     and msg;
 *   - after the client closes, the server closes the connection and holds no request
 *     (open_connections and in_flight back to 0): no stuck connection, no leak (LeakSanitizer).
 */
#include "api.h"
#include "app.h"
#include "config.h"
#include "fuzz_common.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "store_keys.h"
#include "util/buf.h"
#include "validate.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#ifndef CR_FUZZ_DEMO_CONFIG
#define CR_FUZZ_DEMO_CONFIG "config/demo.json"
#endif

/* ---------------------------------------------------------------- process-wide state */

static uv_loop_t loop;
static app_t app;
static bool tcp_mode;
static bool verbose; /* CR_FUZZ_HTTP_VERBOSE=1: print what the server sent and each intake */
static int port;
static char fake_store_token;
#define FAKE_STORE ((store_t *)&fake_store_token)

static uv_connection_cb listen_cb; /* httpd's on_connection, kept by the wrapped uv_listen */
static uv_stream_t *listen_stream;
static int pending_fd = -1; /* the socketpair end the wrapped uv_accept hands over */

static uint64_t events; /* anything that happened: the pump's progress measure */
static uint64_t intakes_total;
static uint64_t inputs_total;
static uint64_t status_count[600]; /* final responses by status, over the whole run */
static buf_t last_intake; /* the last intake command, in the Redis protocol */

/* ---------------------------------------------------------------- per-input state */

typedef struct deferred {
    struct deferred *next;
    enum { D_STORE, D_INTAKE, D_RELOAD } kind;
    store_reply_cb cb;
    void *data;
    const char *err;     /* D_STORE / D_INTAKE failure */
    /* D_INTAKE, one batch: 4 timeout or 5 error reply for all of it, else -1 and per request
     * 0 stored, 1 repeat, 2 clash, 3 duplicate */
    int outcome;
    int n;               /* requests in the batch */
    int n_hsets;         /* HSETs ahead of its script in the transaction */
    int *outcomes;
    char **repeat_bodies; /* per request, for a repeat: the first answer */
    app_reload_cb rcb;   /* D_RELOAD */
    int rstatus;
} deferred_t;

#define MAX_EXPECT 256
static struct {
    int fd;
    bool client_closed; /* our end closed */
    bool wr_shut;       /* our end half-closed */
    bool eof;           /* the server closed its end */
    bool slow;          /* hold store replies */
    fuzz_rng_t rng;
    buf_t in;           /* bytes from the server */
    size_t parsed;
    int finals;         /* final responses parsed */
    bool saw_close;     /* a "Connection: close" response was parsed */
    bool last_close;
    int observed;       /* responses the server produced (observer) */
    int expect[MAX_EXPECT]; /* expected status per final response index, 0 = any */
    bool expect_replay[MAX_EXPECT];
    deferred_t *dq, **dq_tail;
} cs;

/* ---------------------------------------------------------------- link-time wraps */

int __real_uv_listen(uv_stream_t *stream, int backlog, uv_connection_cb cb);
int __real_uv_accept(uv_stream_t *server, uv_stream_t *client);

int __wrap_uv_listen(uv_stream_t *stream, int backlog, uv_connection_cb cb)
{
    listen_cb = cb;
    listen_stream = stream;
    if (tcp_mode)
        return __real_uv_listen(stream, backlog, cb);
    return 0;
}

int __wrap_uv_accept(uv_stream_t *server, uv_stream_t *client)
{
    if (tcp_mode)
        return __real_uv_accept(server, client);
    if (pending_fd < 0)
        return UV_EAGAIN;
    int rc = uv_tcp_open((uv_tcp_t *)client, pending_fd);
    if (rc == 0)
        pending_fd = -1;
    return rc;
}

bool __wrap_store_ready(const store_t *s)
{
    (void)s;
    return true;
}

static void dq_push(deferred_t *d)
{
    d->next = NULL;
    *cs.dq_tail = d;
    cs.dq_tail = &d->next;
    events++;
}

int __wrap_app_reload(app_t *a, app_reload_cb cb, void *data)
{
    (void)a;
    deferred_t *d = calloc(1, sizeof *d);
    d->kind = D_RELOAD;
    d->rcb = cb;
    d->data = data;
    d->rstatus = fuzz_rng_below(&cs.rng, 2) ? 0 : UV_EINVAL;
    dq_push(d);
    return 0;
}

static bool is_hex(const char *s, size_t n)
{
    if (s == NULL || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

static bool request_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HTTPD_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || strchr("._:-", s[i])))
            return false;
    return true;
}

static const char *const saga_types[] = {"order_cancel", "order_reset", "order_update_status",
                                         "order_create", "order_accept", "order_bol",
                                         "order_drop"};
static const val_kind_t saga_kinds[] = {VAL_CANCEL, VAL_RESET,  VAL_UPDATE_STATUS, VAL_CREATE,
                                        VAL_ACCEPT, VAL_BOL,    VAL_DROP};

/*
 * One request of an intake batch: layout and content as intake.c and api_mutation.c promise
 * them. v: the script's 12 values (saga_id, type, tenant, idempotency key hash or "",
 * fingerprint, ttl_s, history entry, dest, order_id, order_number, now_ms, retention_s); fields:
 * the nf strings of the saga hash's HSET (after its key); ofields: the no strings of a create's
 * order hash HSET (after its key).
 */
static void check_intake(const char **v, int nf, const char **fields, int no,
                         const char **ofields)
{
    FUZZ_CHECK(nf >= 4 && nf % 2 == 0 && no % 2 == 0, "intake field counts %d, %d", nf, no);
    FUZZ_CHECK(strcmp(fields[nf - 2], "response") == 0, "the saga hash ends without the answer");
    const char *response = fields[nf - 1];
    nf -= 2;
    const char *sid = v[0], *type = v[1], *tenant = v[2], *ihash = v[3], *fp = v[4];
    FUZZ_CHECK(strcmp(fields[0], "saga_id") == 0 && strcmp(fields[1], sid) == 0,
               "saga hash fields do not start with saga_id");

    FUZZ_CHECK(is_hex(sid, 24), "saga id '%s'", sid);
    int kind = -1;
    for (int i = 0; i < 7; i++)
        if (strcmp(type, saga_types[i]) == 0)
            kind = (int)saga_kinds[i];
    FUZZ_CHECK(kind >= 0, "saga type '%s'", type);
    const cfg_tenant_t *t = cfg_tenant_find(app.cfg, tenant, strlen(tenant));
    const cfg_tenant_t *dest = cfg_tenant_find(app.cfg, v[7], strlen(v[7]));
    FUZZ_CHECK(t != NULL, "intake for unknown tenant '%s'", tenant);
    FUZZ_CHECK(dest != NULL && dest != t, "intake destination '%s'", v[7]);
    FUZZ_CHECK(is_hex(fp, 64), "fingerprint");
    FUZZ_CHECK(strspn(v[5], "0123456789") == strlen(v[5]) && v[5][0], "ttl");
    json_t *resp = json_loads(response, JSON_REJECT_DUPLICATES, NULL);
    const char *rs = json_string_value(json_object_get(resp, "status"));
    FUZZ_CHECK(json_is_object(resp) && rs && strcmp(rs, "pending") == 0,
               "intake response: %.200s", response);
    json_decref(resp);
    json_t *hist = json_loads(v[6], JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_object(hist), "history entry: %.200s", v[6]);
    json_decref(hist);
    FUZZ_CHECK(v[10][0] && strspn(v[10], "0123456789") == strlen(v[10]), "now_ms");
    FUZZ_CHECK(v[11][0] && strspn(v[11], "0123456789") == strlen(v[11]), "retention_s");
    bool idem = ihash[0] != '\0';
    FUZZ_CHECK(!idem || is_hex(ihash, 64), "idempotency key hash '%s'", ihash);
    FUZZ_CHECK(kind == VAL_CREATE ? no > 0 : no == 0, "%d order fields for a %s", no, type);
    for (int i = 0; i < no; i += 2)
        for (int j = 0; j < i; j += 2)
            FUZZ_CHECK(strcmp(ofields[i], ofields[j]) != 0, "order field %s twice", ofields[i]);
    FUZZ_CHECK(no == 0 || (strcmp(ofields[0], "order_id") == 0 && is_hex(ofields[1], 24) &&
                           strcmp(ofields[1], v[8]) == 0),
               "order fields do not start with the order_id given");

    const char *request = NULL, *rid = NULL, *ftenant = NULL, *fdest = NULL, *fidem = NULL;
    for (int i = 0; i + 1 < nf; i += 2) {
        if (strcmp(fields[i], "request") == 0)
            request = fields[i + 1];
        else if (strcmp(fields[i], "request_id") == 0)
            rid = fields[i + 1];
        else if (strcmp(fields[i], "tenant") == 0)
            ftenant = fields[i + 1];
        else if (strcmp(fields[i], "dest") == 0)
            fdest = fields[i + 1];
        else if (strcmp(fields[i], "idempotency_key") == 0)
            fidem = fields[i + 1];
    }
    FUZZ_CHECK(request && rid && ftenant && fdest && fidem, "saga hash fields missing");
    FUZZ_CHECK(strcmp(ftenant, tenant) == 0 && strcmp(fdest, v[7]) == 0, "tenant/dest");
    FUZZ_CHECK(request_id_ok(rid), "request_id '%.200s' stored", rid);
    FUZZ_CHECK(strcmp(fidem, ihash) == 0, "idempotency_key field '%s'", fidem);

    /* The stored request is canonical: validating it again gives it back. */
    json_t *req = json_loads(request, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_object(req), "request is not a JSON object: %.200s", request);
    if (kind == VAL_CREATE) {
        FUZZ_CHECK(is_hex(json_string_value(json_object_get(req, "order_id")), 24),
                   "create without an assigned order_id");
        json_object_del(req, "order_id");
    }
    if (kind == VAL_UPDATE_STATUS)
        FUZZ_CHECK(json_is_string(json_object_get(req, "hauled_by")), "hauled_by default");
    json_t *errs = json_array(), *out = NULL;
    int rc = val_mutation((val_kind_t)kind, req, errs, &out);
    if (rc != 0) {
        char *e = json_dumps(errs, JSON_COMPACT);
        FUZZ_CHECK(rc == 0, "stored request fails validation: %.300s -> %.300s", request,
                   e ? e : "?");
    }
    FUZZ_CHECK(json_equal(out, req), "stored request is not canonical: %.300s", request);
    json_decref(out);
    json_decref(errs);
    json_decref(req);
}

int __wrap_store_evalsha(store_t *s, const store_script_t *script, int numkeys, int argc,
                         const char **argv, const size_t *argvlen, store_reply_cb cb, void *data)
{
    (void)s;
    (void)script;
    (void)numkeys;
    (void)argc;
    (void)argv;
    (void)argvlen;
    events++;
    deferred_t *d = calloc(1, sizeof *d);
    d->cb = cb;
    d->data = data;
    d->kind = D_STORE;
    d->err = fuzz_rng_below(&cs.rng, 2) ? STORE_ERR_DOWN : STORE_ERR_TIMEOUT;
    dq_push(d);
    return 0;
}

/* The arguments of a command in the Redis protocol (pointers into a NUL-separated copy). */
static int resp_args(const char *cmd, size_t len, char **copy, const char ***out)
{
    const char *p = cmd, *end = cmd + len;
    FUZZ_CHECK(len > 3 && *p == '*', "command is not a multibulk");
    long n = strtol(p + 1, NULL, 10);
    FUZZ_CHECK(n > 0 && n < 100000, "command with %ld arguments", n);
    p = memchr(p, '\n', (size_t)(end - p)) + 1;
    char *buf = malloc(len + 1);
    const char **args = malloc((size_t)n * sizeof *args);
    char *w = buf;
    for (long i = 0; i < n; i++) {
        FUZZ_CHECK(p < end && *p == '$', "argument %ld is not a bulk string", i);
        long l = strtol(p + 1, NULL, 10);
        p = memchr(p, '\n', (size_t)(end - p)) + 1;
        FUZZ_CHECK(l >= 0 && p + l + 2 <= end && p[l] == '\r' && p[l + 1] == '\n',
                   "argument %ld framing", i);
        memcpy(w, p, (size_t)l);
        w[l] = '\0';
        args[i] = w;
        w += l + 1;
        p += l + 2;
    }
    FUZZ_CHECK(p == end, "bytes after the command");
    *copy = buf;
    *out = args;
    return (int)n;
}

/*
 * intake.c sends each batch as one transaction: MULTI; per request an HSET of its saga hash
 * (key, fields, "response" and the answer) and, for a create, one of its order hash; EVALSHA
 * sha 1 <stream> <n> and 12 values per request; EXEC. Anything else fails like Redis down.
 */
int __wrap_store_commands_formatted(store_t *s, size_t n_cmds, const char *const *cmds,
                                    const size_t *lens, store_reply_cb cb, void *data)
{
    (void)s;
    events++;
    deferred_t *d = calloc(1, sizeof *d);
    d->cb = cb;
    d->data = data;
    d->kind = D_STORE;
    d->err = STORE_ERR_DOWN;
    FUZZ_CHECK(n_cmds >= 4, "a transaction of %zu commands", n_cmds);
    char **copies = calloc(n_cmds, sizeof *copies);
    const char ***args = calloc(n_cmds, sizeof *args);
    int *argcs = calloc(n_cmds, sizeof *argcs);
    for (size_t i = 0; i < n_cmds; i++)
        argcs[i] = resp_args(cmds[i], lens[i], &copies[i], &args[i]);
    const char **ev = args[n_cmds - 2];
    int evc = argcs[n_cmds - 2];
    FUZZ_CHECK(argcs[0] == 1 && strcmp(args[0][0], "MULTI") == 0, "transaction without MULTI");
    FUZZ_CHECK(argcs[n_cmds - 1] == 1 && strcmp(args[n_cmds - 1][0], "EXEC") == 0,
               "transaction without EXEC");
    if (evc >= 5 && strcmp(ev[0], "EVALSHA") == 0 && strcmp(ev[2], "1") == 0 &&
        strcmp(ev[3], STORE_KEY_STREAM) == 0) {
        int n = atoi(ev[4]);
        FUZZ_CHECK(n >= 1 && n <= 64, "intake batch of %d", n);
        FUZZ_CHECK(evc == 5 + 12 * n, "intake batch of %d with %d script arguments", n, evc);
        d->kind = D_INTAKE;
        d->err = NULL;
        d->n = n;
        d->n_hsets = (int)n_cmds - 3;
        d->outcomes = calloc((size_t)n, sizeof *d->outcomes);
        d->repeat_bodies = calloc((size_t)n, sizeof *d->repeat_bodies);
        size_t h = 1; /* the next HSET */
        for (int j = 0; j < n; j++) {
            const char **v = ev + 5 + 12 * j;
            char key[96];
            snprintf(key, sizeof key, STORE_KEY_PREFIX "saga:%s", v[0]);
            FUZZ_CHECK(h < n_cmds - 2 && argcs[h] >= 2 && strcmp(args[h][0], "HSET") == 0 &&
                           strcmp(args[h][1], key) == 0,
                       "request %d: no HSET of %s ahead of the script", j, key);
            const char **fields = args[h] + 2;
            int nf = argcs[h] - 2;
            h++;
            const char **ofields = NULL;
            int no = 0;
            if (strcmp(v[1], "order_create") == 0) {
                snprintf(key, sizeof key, STORE_KEY_PREFIX "order:%s", v[8]);
                FUZZ_CHECK(h < n_cmds - 2 && argcs[h] >= 2 && strcmp(args[h][0], "HSET") == 0 &&
                               strcmp(args[h][1], key) == 0,
                           "create %d: no HSET of %s ahead of the script", j, key);
                ofields = args[h] + 2;
                no = argcs[h] - 2;
                h++;
            }
            check_intake(v, nf, fields, no, ofields);
            d->outcomes[j] = (int)fuzz_rng_below(&cs.rng, 6);
            if (d->outcomes[j] > 3)
                d->outcomes[j] = 0; /* mostly stored */
            if (d->outcomes[j] == 1)
                d->repeat_bodies[j] = strdup(fields[nf - 1]);
        }
        FUZZ_CHECK(h == n_cmds - 2, "intake batch: %zu commands after its requests' HSETs",
                   n_cmds - 2 - h);
        buf_reset(&last_intake);
        for (size_t i = 0; i < n_cmds; i++)
            buf_append(&last_intake, cmds[i], lens[i]);
        if (verbose)
            fprintf(stderr, "[intake transaction, %zu bytes] %.*s\n", last_intake.len,
                    last_intake.len > 2000 ? 2000 : (int)last_intake.len, last_intake.data);
        intakes_total += (uint64_t)n;
        /* now and then the whole batch times out or its script is gone (NOSCRIPT) */
        uint32_t whole = fuzz_rng_below(&cs.rng, 8);
        d->outcome = whole == 0 ? 4 : whole == 1 ? 5 : -1;
        if (d->outcome == 4)
            d->err = STORE_ERR_TIMEOUT;
    }
    for (size_t i = 0; i < n_cmds; i++) {
        free(copies[i]);
        free(args[i]);
    }
    free(copies);
    free(args);
    free(argcs);
    dq_push(d);
    return 0;
}

/* ---------------------------------------------------------------- the request handler */

/* app_metrics.c's observe_http, plus the count the checks use. */
static void observe(const httpd_req_t *req, int status, double seconds, void *data)
{
    app_t *a = data;
    cs.observed++;
    events++;
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    const char *route = req && req->route_name ? req->route_name : (req ? "unmatched" : "framing");
    const char *lv[] = {req ? req->method : "none", route, code};
    metrics_counter_inc(a->m.http_requests, lv, 1);
    if (req) {
        const char *hv[] = {req->method, route};
        metrics_histogram_observe(a->m.http_seconds, hv, seconds);
    }
}

/* ---------------------------------------------------------------- deferred store replies */

static void deliver_one(deferred_t *d)
{
    events++;
    if (d->kind == D_RELOAD) {
        d->rcb(d->rstatus, d->rstatus ? "fuzz.json: line 1 column 1: refused" : NULL, d->data);
        return;
    }
    int before = cs.observed;
    if (d->kind == D_STORE || d->err) {
        d->cb(NULL, d->err, d->data);
        for (int j = 0; d->kind == D_INTAKE && j < d->n; j++)
            if (cs.observed == before + d->n && before + j < MAX_EXPECT)
                cs.expect[before + j] = 503;
        return;
    }
    static const int status_of[] = {200, 200, 409, 409};
    /* EXEC's reply: each HSET's count, then the script's reply (top) */
    redisReply exec = {0}, top = {0};
    redisReply *hsets = calloc((size_t)d->n_hsets, sizeof *hsets);
    redisReply **exec_els = calloc((size_t)d->n_hsets + 1, sizeof *exec_els);
    for (int i = 0; i < d->n_hsets; i++) {
        hsets[i].type = REDIS_REPLY_INTEGER;
        hsets[i].integer = 10;
        exec_els[i] = &hsets[i];
    }
    exec_els[d->n_hsets] = &top;
    exec.type = REDIS_REPLY_ARRAY;
    exec.elements = (size_t)d->n_hsets + 1;
    exec.element = exec_els;
    redisReply *pairs = calloc((size_t)d->n, 2 * sizeof *pairs);
    redisReply **els = calloc((size_t)d->n, sizeof *els);
    redisReply **pair_els = calloc((size_t)d->n * 2, sizeof *pair_els);
    if (d->outcome == 5) {
        top.type = REDIS_REPLY_ERROR;
        top.str = (char *)"NOSCRIPT No matching script";
        top.len = strlen(top.str);
    } else {
        top.type = REDIS_REPLY_ARRAY;
        top.elements = (size_t)d->n;
        top.element = els;
        for (int j = 0; j < d->n; j++) {
            redisReply *r0 = &pairs[2 * j], *r1 = &pairs[2 * j + 1];
            r0->type = REDIS_REPLY_INTEGER;
            r0->integer = d->outcomes[j];
            r1->type = REDIS_REPLY_STRING;
            r1->str = d->outcomes[j] == 1 ? d->repeat_bodies[j]
                                          : (char *)(d->outcomes[j] == 0 ? "1-0" : "");
            r1->len = strlen(r1->str);
            pair_els[2 * j] = r0;
            pair_els[2 * j + 1] = r1;
        }
    }
    /* the per-request {code, value} arrays */
    redisReply *arrays = calloc((size_t)d->n, sizeof *arrays);
    for (int j = 0; j < d->n && top.type == REDIS_REPLY_ARRAY; j++) {
        arrays[j].type = REDIS_REPLY_ARRAY;
        arrays[j].elements = 2;
        arrays[j].element = &pair_els[2 * j];
        els[j] = &arrays[j];
    }
    d->cb(&exec, NULL, d->data);
    /* Each request of the batch is answered in turn, one response each. */
    if (cs.observed == before + d->n) {
        for (int j = 0; j < d->n && before + j < MAX_EXPECT; j++) {
            cs.expect[before + j] = d->outcome == 5 ? 503 : status_of[d->outcomes[j]];
            cs.expect_replay[before + j] = d->outcome != 5 && d->outcomes[j] == 1;
        }
    }
    free(arrays);
    free(exec_els);
    free(hsets);
    free(pair_els);
    free(els);
    free(pairs);
}

static void deliver_deferred(void)
{
    while (cs.dq) {
        deferred_t *d = cs.dq;
        cs.dq = d->next;
        if (cs.dq == NULL)
            cs.dq_tail = &cs.dq;
        deliver_one(d);
        for (int j = 0; j < d->n; j++)
            free(d->repeat_bodies[j]);
        free(d->repeat_bodies);
        free(d->outcomes);
        free(d);
    }
}

/* ---------------------------------------------------------------- the client side */

static const char *header_value(const char *head, size_t head_len, const char *name, size_t *vlen,
                                int *count)
{
    const char *first = NULL;
    size_t nl = strlen(name);
    *count = 0;
    const char *p = memchr(head, '\n', head_len);
    while (p && (size_t)(p + 1 - head) < head_len) {
        const char *line = p + 1;
        const char *end = memchr(line, '\r', head_len - (size_t)(line - head));
        if (end == NULL || end == line)
            break;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < end && *v == ' ')
                v++;
            if ((*count)++ == 0) {
                first = v;
                *vlen = (size_t)(end - v);
            }
        }
        p = end + 1;
    }
    return first;
}

/* Parse the responses that are complete in cs.in. */
static void parse_responses(void)
{
    for (;;) {
        size_t n = cs.in.len - cs.parsed;
        if (n == 0)
            return;
        const char *p = cs.in.data + cs.parsed;
        FUZZ_CHECK(!cs.saw_close, "%zu bytes after a Connection: close response: %.80s", n, p);
        const char *hend = memmem(p, n, "\r\n\r\n", 4);
        if (hend == NULL) {
            FUZZ_CHECK(n < 8192, "response head never ends");
            return;
        }
        size_t head_len = (size_t)(hend - p) + 2; /* through the last header's CRLF */
        FUZZ_CHECK(n >= 13 && memcmp(p, "HTTP/1.1 ", 9) == 0 && isdigit((unsigned char)p[9]) &&
                       isdigit((unsigned char)p[10]) && isdigit((unsigned char)p[11]) &&
                       p[12] == ' ',
                   "bad status line: %.40s", p);
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        const char *eol = memchr(p, '\r', n);
        const char *reason = httpd_status_text(status);
        FUZZ_CHECK(strcmp(reason, "Unknown") != 0, "status %d has no reason phrase", status);
        FUZZ_CHECK((size_t)(eol - (p + 13)) == strlen(reason) &&
                       memcmp(p + 13, reason, strlen(reason)) == 0,
                   "status line: %.60s", p);
        if (status == 100) {
            FUZZ_CHECK(head_len == (size_t)(eol - p) + 2, "100 Continue with header fields");
            cs.parsed += head_len + 2;
            events++;
            continue;
        }
        size_t vlen = 0;
        int count;
        const char *cl = header_value(p, head_len, "Content-Length", &vlen, &count);
        FUZZ_CHECK(cl && count == 1, "Content-Length count %d", count);
        size_t body_len = strtoul(cl, NULL, 10);
        size_t total = head_len + 2 + body_len;
        if (n < total)
            return; /* the rest is still coming */
        const char *body = p + head_len + 2;
        const char *conn = header_value(p, head_len, "Connection", &vlen, &count);
        FUZZ_CHECK(conn && count == 1 &&
                       ((vlen == 5 && memcmp(conn, "close", 5) == 0) ||
                        (vlen == 10 && memcmp(conn, "keep-alive", 10) == 0)),
                   "Connection header");
        bool close = vlen == 5;
        const char *rid = header_value(p, head_len, "X-Request-Id", &vlen, &count);
        FUZZ_CHECK(rid && count == 1 && vlen >= 1 && vlen <= 128, "X-Request-Id");
        for (size_t i = 0; i < vlen; i++)
            FUZZ_CHECK(isalnum((unsigned char)rid[i]) || strchr("._:-", rid[i]),
                       "X-Request-Id echoes byte 0x%02x", (unsigned char)rid[i]);
        const char *ct = header_value(p, head_len, "Content-Type", &vlen, &count);
        FUZZ_CHECK(ct && count == 1, "Content-Type count %d", count);
        for (const char *q = p; q < p + head_len; q++)
            FUZZ_CHECK((unsigned char)*q >= 0x20 || *q == '\r' || *q == '\n' || *q == '\t',
                       "control byte in the response head");
        if (vlen >= 16 && strncmp(ct, "application/json", 16) == 0) {
            json_t *j = json_loadb(body, body_len, 0, NULL);
            FUZZ_CHECK(j != NULL, "status %d: JSON body does not parse: %.200s", status, body);
            if (status >= 400) {
                json_t *det = json_object_get(j, "detail");
                FUZZ_CHECK(json_is_string(det) || json_is_array(det), "status %d without detail",
                           status);
            }
            json_decref(j);
        }
        status_count[status]++;
        int idx = cs.finals++;
        if (idx < MAX_EXPECT && cs.expect[idx]) {
            FUZZ_CHECK(status == cs.expect[idx],
                       "response %d to an intake is %d, Redis's answer calls for %d", idx,
                       status, cs.expect[idx]);
            if (cs.expect_replay[idx])
                FUZZ_CHECK(header_value(p, head_len, "Idempotent-Replayed", &vlen, &count),
                           "replayed answer without Idempotent-Replayed");
        }
        cs.saw_close = cs.saw_close || close;
        cs.last_close = close;
        cs.parsed += total;
        events++;
    }
}

static void drain_client(void)
{
    if (cs.fd < 0 || cs.client_closed)
        return;
    char tmp[65536];
    for (;;) {
        ssize_t r = recv(cs.fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r > 0) {
            buf_append(&cs.in, tmp, (size_t)r);
            events++;
            continue;
        }
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            if (!cs.eof)
                events++;
            cs.eof = true;
        }
        break;
    }
    parse_responses();
}

static uint64_t progress(void)
{
    httpd_stats_t st;
    httpd_stats_get(app.httpd, &st);
    return events + st.accepted * 3 + st.requests * 5 + st.open_connections * 7 +
           st.in_flight * 11 + st.evicted * 13;
}

/* Run the loop until nothing more happens (three quiet iterations in a row). */
static void pump(bool deliver)
{
    int quiet = 0;
    for (int i = 0; i < 100000; i++) {
        uint64_t before = progress();
        uv_run(&loop, UV_RUN_NOWAIT);
        drain_client();
        if (deliver)
            deliver_deferred();
        if (progress() == before) {
            if (++quiet >= 3)
                return;
        } else {
            quiet = 0;
        }
    }
    FUZZ_CHECK(false, "the server never went quiet");
}

static bool client_send(const uint8_t *p, size_t n)
{
    int stuck = 0;
    while (n > 0) {
        ssize_t w = send(cs.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            stuck = 0;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            /* The server is not reading (a request with the handler and 256 KiB queued). */
            pump(++stuck > 2);
            if (stuck > 8)
                return false;
            continue;
        }
        return false; /* EPIPE / ECONNRESET: the server closed */
    }
    return true;
}

static void open_connection(void)
{
    httpd_stats_t st0, st1;
    httpd_stats_get(app.httpd, &st0);
    if (tcp_mode) {
        cs.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        FUZZ_CHECK(connect(cs.fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s",
                   strerror(errno));
        struct linger lg = {1, 0}; /* RST on close: no TIME_WAIT pile-up */
        setsockopt(cs.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        for (int i = 0; i < 1000; i++) {
            uv_run(&loop, UV_RUN_NOWAIT);
            httpd_stats_get(app.httpd, &st1);
            if (st1.accepted > st0.accepted)
                break;
        }
    } else {
        int sv[2];
        FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        pending_fd = sv[0];
        cs.fd = sv[1];
        listen_cb(listen_stream, 0);
        if (pending_fd >= 0) { /* not taken */
            close(pending_fd);
            pending_fd = -1;
        }
    }
    httpd_stats_get(app.httpd, &st1);
    FUZZ_CHECK(st1.accepted == st0.accepted + 1, "the server did not accept the connection");
    fcntl(cs.fd, F_SETFL, fcntl(cs.fd, F_GETFL) | O_NONBLOCK);
}

/* ---------------------------------------------------------------- logs */

static FILE *real_stdout;
static char *logbuf;
static size_t loglen;

static void logs_capture(void)
{
    stdout = open_memstream(&logbuf, &loglen);
}

static void logs_check(void)
{
    fflush(stdout);
    const char *p = logbuf, *end = logbuf + loglen;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        FUZZ_CHECK(nl != NULL, "log output does not end with a newline");
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &e);
        FUZZ_CHECK(json_is_object(j), "log line is not a JSON object (%s): %.300s", e.text, p);
        FUZZ_CHECK(json_is_string(json_object_get(j, "ts")) &&
                       json_is_string(json_object_get(j, "level")) &&
                       json_is_string(json_object_get(j, "msg")),
                   "log line without ts/level/msg: %.300s", p);
        json_decref(j);
        p = nl + 1;
    }
    fclose(stdout);
    free(logbuf);
    logbuf = NULL;
    loglen = 0;
    stdout = real_stdout;
}

/* ---------------------------------------------------------------- libFuzzer entry points */

/* At exit: what the run exercised (run.sh's logs keep it next to libFuzzer's figures). */
static void print_summary(void)
{
    fprintf(stderr, "fuzz_http summary: %llu inputs, %llu intake commands captured; responses:",
            (unsigned long long)inputs_total, (unsigned long long)intakes_total);
    for (int i = 100; i < 600; i++)
        if (status_count[i])
            fprintf(stderr, " %d:%llu", i, (unsigned long long)status_count[i]);
    fprintf(stderr, "\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    atexit(print_summary);
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    real_stdout = stdout;
    tcp_mode = getenv("CR_FUZZ_HTTP_TCP") && strcmp(getenv("CR_FUZZ_HTTP_TCP"), "0") != 0;
    verbose = getenv("CR_FUZZ_HTTP_VERBOSE") && strcmp(getenv("CR_FUZZ_HTTP_VERBOSE"), "0") != 0;
    const char *level = getenv("CR_FUZZ_LOG_LEVEL");
    log_level_set(level ? level : "info");
    uv_loop_init(&loop);
    const char *path = getenv("CR_FUZZ_CONFIG");
    char err[512];
    cfg_t *cfg;
    if (cfg_load_file(path ? path : CR_FUZZ_DEMO_CONFIG, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        exit(2);
    }
    app.loop = &loop;
    app.cfg = cfg;
    app.store = FAKE_STORE;
    app.block_store = FAKE_STORE;
    /* Intake batches over a real store that never connects: store_ready and
     * store_commands_formatted are wrapped, so its batches are captured above. */
    static store_t *intake_store;
    intake_store = store_new(&loop, "redis://127.0.0.1:6379/0", 1000);
    app.intake = intake_new(&loop, &intake_store, 1);
    app.metrics = metrics_new();
    static const double buckets[] = {0.0001, 0.001, 0.01, 0.1, 1};
    app.m.http_requests = metrics_counter(app.metrics, "crossroads_http_requests_total",
                                          "HTTP responses.", "method,route,code");
    app.m.http_seconds = metrics_histogram(app.metrics, "crossroads_http_request_duration_seconds",
                                           "Latency.", "method,route", buckets, 5);
    app.m.sagas_accepted =
        metrics_counter(app.metrics, "crossroads_sagas_accepted_total", "Accepted.", "type");
    app.m.redis_seconds = metrics_histogram(app.metrics, "crossroads_redis_command_duration_seconds",
                                            "Redis.", NULL, buckets, 5);
    httpd_limits_t lim = {
        .max_body_bytes = 8192,
        .max_header_bytes = 4096,
        .max_header_count = 32,
        .max_request_line = 1024,
        .max_connections = 64,
        /* Never due during an input: the harness closes every connection itself. */
        .header_timeout_ms = 600000,
        .body_timeout_ms = 600000,
        .idle_timeout_ms = 600000,
    };
    app.httpd = httpd_new(&loop, &lim, app_handle_request, &app);
    httpd_set_observer(app.httpd, observe, &app);
    int rc = httpd_listen(app.httpd, "127.0.0.1", 0);
    if (rc != 0) {
        fprintf(stderr, "fuzz_http: listen: %s\n", uv_strerror(rc));
        exit(2);
    }
    port = httpd_port(app.httpd);
    if (listen_cb == NULL) {
        fprintf(stderr, "fuzz_http: uv_listen was not wrapped (link with -Wl,--wrap=uv_listen)\n");
        exit(2);
    }
    return 0;
}

/*
 * Where the client's writes end: split & 31 random cut points (0: one write), and with bit 5 set
 * also every byte of a window of up to 64 bytes from a random start (byte-by-byte delivery where
 * it matters, without paying for it over a whole 8 KiB body). Bounded: at most ~96 writes.
 */
static size_t make_cuts(uint8_t split, size_t n, size_t *cuts)
{
    size_t k = 0;
    if (n < 2)
        return 0;
    for (size_t i = 0; i < (size_t)(split & 31); i++)
        cuts[k++] = 1 + fuzz_rng_below(&cs.rng, n - 1);
    if (split & 32) {
        size_t start = fuzz_rng_below(&cs.rng, n), len = 1 + fuzz_rng_below(&cs.rng, 64);
        for (size_t i = start; i < n && i < start + len; i++)
            if (i > 0)
                cuts[k++] = i;
    }
    /* sort (insertion; k is small) */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            size_t t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint8_t flags = data[0], split = data[1];
    inputs_total++;
    memset(&cs, 0, sizeof cs);
    cs.fd = -1;
    cs.dq_tail = &cs.dq;
    fuzz_rng_seed(&cs.rng, ((uint64_t)data[2] << 8 | data[3]) * 0x100000001b3ull + size);
    cs.slow = flags & 2;
    const uint8_t *p = data + 4;
    size_t n = size - 4;
    logs_capture();

    open_connection();
    pump(!cs.slow);
    bool sent_all = true;
    size_t cuts[128], ncuts = make_cuts(split, n, cuts), off = 0;
    for (size_t i = 0; i <= ncuts && sent_all; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        if (end <= off)
            continue;
        sent_all = client_send(p + off, end - off);
        off = end;
        pump(!cs.slow);
    }
    if (flags & 4) {
        /* Abrupt close with answers unread: the server must cope with write errors. */
        close(cs.fd);
        cs.client_closed = true;
    } else {
        if (flags & 1) {
            shutdown(cs.fd, SHUT_WR);
            cs.wr_shut = true;
        }
        pump(true);
        pump(true);
        /* Checkpoint: the client is still there and has read everything. */
        FUZZ_CHECK(cs.parsed == cs.in.len, "%zu bytes of a partial response left",
                   cs.in.len - cs.parsed);
        FUZZ_CHECK(cs.observed == cs.finals, "server produced %d responses, client read %d",
                   cs.observed, cs.finals);
        if (cs.saw_close)
            FUZZ_CHECK(cs.eof, "connection still open after a Connection: close response");
        if (cs.eof && !cs.wr_shut && sent_all)
            FUZZ_CHECK(cs.last_close, "server closed the connection without a close response");
        if (cs.wr_shut)
            FUZZ_CHECK(cs.eof, "server kept a half-closed connection open");
        close(cs.fd);
        cs.client_closed = true;
    }
    /* Everything must wind down: connection closed, no request left with the handler. */
    httpd_stats_t st;
    for (int i = 0; i < 64; i++) {
        pump(true);
        httpd_stats_get(app.httpd, &st);
        if (st.open_connections == 0 && st.in_flight == 0 && cs.dq == NULL)
            break;
    }
    httpd_stats_get(app.httpd, &st);
    FUZZ_CHECK(st.open_connections == 0, "%zu connections still open after the client left",
               st.open_connections);
    FUZZ_CHECK(st.in_flight == 0, "%zu requests still in flight", st.in_flight);
    if (verbose)
        fprintf(stderr, "[server sent %zu bytes, %d responses%s]\n%.*s\n", cs.in.len, cs.finals,
                cs.eof ? ", then closed" : "", (int)(cs.in.len > 4000 ? 4000 : cs.in.len),
                cs.in.data ? cs.in.data : "");
    buf_free(&cs.in);
    logs_check();
    return 0;
}

/* ---------------------------------------------------------------- HTTP-aware mutations */

static const char *const header_lines[] = {
    "Host: gw.test",
    "Content-Type: application/json",
    "Content-Type: application/json; charset=utf-8",
    "Content-Type: text/plain",
    "X-API-Key: demo-acme-key",
    "X-API-Key: demo-admin-key",
    "X-API-Key: demo-swift-key",
    "X-API-Key: demo-kibo-key",
    "X-API-Key: demo-tecspal-key",
    "Authorization: Bearer demo-acme-key",
    "Authorization: Bearer demo-swift-key",
    "X-Dest-Tenant-Name: swift-haul",
    "X-Dest-Tenant-Name: acme-supply",
    "X-Dest-Tenant-Name: kibo-retail",
    "X-Dest-Tenant-Name: tecspal-hw",
    "X-Tenant-Name: acme-supply",
    "X-Origin-Instance-Name: acme-test",
    "Idempotency-Key: idem-1",
    "X-Request-Id: req-1",
    "Transfer-Encoding: chunked",
    "Content-Length: 0",
    "Expect: 100-continue",
    "Connection: close",
    "Connection: keep-alive",
    "Upgrade: h2c",
};

/* Offset just past "\r\n\r\n" in the client bytes, or 0. */
static size_t head_end(const uint8_t *p, size_t n)
{
    const uint8_t *e = memmem(p, n, "\r\n\r\n", 4);
    return e ? (size_t)(e - p) + 4 : 0;
}

/* Make the first request's Content-Length equal to the bytes after its head. */
static size_t fix_content_length(uint8_t *data, size_t size, size_t max_size)
{
    if (size < 5)
        return size;
    uint8_t *p = data + 4;
    size_t n = size - 4, he = head_end(p, n);
    if (he == 0)
        return size;
    const char *cl = NULL;
    for (size_t i = 0; i + 17 <= he; i++) {
        if (p[i] == '\n' && strncasecmp((const char *)p + i + 1, "content-length:", 15) == 0) {
            cl = (const char *)p + i + 16;
            break;
        }
    }
    if (cl == NULL)
        return size;
    const char *vs = cl;
    while (*vs == ' ')
        vs++;
    const char *ve = vs;
    while (ve < (const char *)p + he && isdigit((unsigned char)*ve))
        ve++;
    char num[24];
    int nl = snprintf(num, sizeof num, "%zu", n - he);
    size_t old = (size_t)(ve - vs);
    size_t new_size = size - old + (size_t)nl;
    if (new_size > max_size)
        return size;
    size_t at = (size_t)((const uint8_t *)vs - data);
    memmove(data + at + nl, data + at + old, size - at - old);
    memcpy(data + at, num, (size_t)nl);
    return new_size;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    fuzz_rng_t r;
    fuzz_rng_seed(&r, seed);
    size_t what = fuzz_rng_below(&r, 10);
    if (size < 8 || what < 4)
        return LLVMFuzzerMutate(data, size, max_size);
    if (what < 6) /* bytes, then a Content-Length that still matches the body */
        return fix_content_length(data, LLVMFuzzerMutate(data, size, max_size), max_size);
    uint8_t *p = data + 4;
    size_t n = size - 4;
    size_t he = head_end(p, n);
    if (what < 8 && he > 0 && he < n) {
        /* a structure-aware JSON mutation of the body */
        size_t room = max_size - 4 - he;
        uint8_t *tmp = malloc(room > n - he ? room : n - he);
        memcpy(tmp, p + he, n - he);
        size_t bn = fuzz_json_mutate(tmp, n - he, room, seed);
        if (bn > 0) {
            memcpy(p + he, tmp, bn);
            free(tmp);
            return fix_content_length(data, 4 + he + bn, max_size);
        }
        free(tmp);
        return LLVMFuzzerMutate(data, size, max_size);
    }
    /* insert, drop or duplicate a header line */
    const uint8_t *eol = memmem(p, n, "\r\n", 2);
    if (eol == NULL || he == 0)
        return LLVMFuzzerMutate(data, size, max_size);
    size_t first = (size_t)(eol - p) + 2; /* start of the header fields */
    /* pick a line boundary inside the head */
    size_t at = first, pick = fuzz_rng_below(&r, 8);
    for (size_t i = 0; i < pick; i++) {
        const uint8_t *nx = memmem(p + at, he - at, "\r\n", 2);
        if (nx == NULL || (size_t)(nx - p) + 2 >= he)
            break;
        at = (size_t)(nx - p) + 2;
    }
    const uint8_t *lend = memmem(p + at, he - at, "\r\n", 2);
    size_t line_len = lend ? (size_t)(lend - (p + at)) + 2 : 0;
    size_t op = fuzz_rng_below(&r, 3);
    if (op == 0 && line_len > 2 && at + line_len < he) { /* drop the line */
        memmove(p + at, p + at + line_len, n - at - line_len);
        return fix_content_length(data, size - line_len, max_size);
    }
    char ins[128];
    int il;
    if (op == 1 && line_len > 2 && line_len < sizeof ins) { /* duplicate it */
        memcpy(ins, p + at, line_len);
        il = (int)line_len;
    } else {
        il = snprintf(ins, sizeof ins, "%s\r\n",
                      header_lines[fuzz_rng_below(&r, sizeof header_lines / sizeof header_lines[0])]);
    }
    if (size + (size_t)il > max_size)
        return LLVMFuzzerMutate(data, size, max_size);
    memmove(p + at + il, p + at, n - at);
    memcpy(p + at, ins, (size_t)il);
    return fix_content_length(data, size + (size_t)il, max_size);
}
