/*
 * standin.c - destination stand-ins for the integration tests (see standin.h).
 *
 * Owns: per stand-in, a listening socket, the connections it accepted, its pthread and its
 * state (configuration, order stores, records), all guarded by one mutex. The thread polls the
 * sockets with a short timeout and checks a stop flag, so standin_stop never waits long.
 * Requests are parsed here (request line, headers, Content-Length or chunked body, keep-alive,
 * pipelining, Expect: 100-continue); a request is recorded before its answer is written, so a
 * test that saw the gateway act on an answer always finds the request in the records.
 * Must not: depend on the gateway's own code for what it checks (the HMAC is OpenSSL's here).
 */
#include "standin.h"
#include "harness.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS          64
#define MAX_HEAD           65536
#define MAX_BODY           (4 * 1024 * 1024)
#define SIGNATURE_WINDOW_S 300

typedef struct kibo_order {
    long long id;
    char number[72];
    char status[16];
} kibo_order_t;

typedef struct tec_order {
    char id[72];
    char status[24];
    char company[32];
} tec_order_t;

typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap;
    bool sent_continue;
} conn_t;

struct standin {
    standin_kind_t kind;
    int lfd;
    int port;
    char url[64];
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    conn_t conns[MAX_CONNS];
    size_t n_conns;

    pthread_mutex_t mu;
    int fail_n;
    int fail_status;
    /* kibo */
    char *tenant_id;
    kibo_order_t *kibo;
    size_t n_kibo;
    /* tecspal */
    char *token;
    tec_order_t *tec;
    size_t n_tec;
    /* webhook */
    char *secret;
    char *order_prefix;
    char *notify_path;
    long answered;
    /* records */
    standin_req_t *reqs;
    size_t n_reqs, cap_reqs;
};

/* A parsed request (pointers into the connection buffer, body possibly decoded). */
typedef struct req {
    char method[16];
    char path[512];
    const char *headers; /* raw header lines */
    size_t headers_len;
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
    bool close;
} req_t;

/* ---------------------------------------------------------------- small helpers */

static char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        abort();
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL)
        abort();
    return p;
}

static bool header_is(const req_t *rq, const char *name, const char *want)
{
    size_t n;
    const char *v = harness_header_find(rq->headers, rq->headers_len, name, &n);
    return v != NULL && n == strlen(want) && memcmp(v, want, n) == 0;
}

static bool header_starts_ci(const req_t *rq, const char *name, const char *prefix)
{
    size_t n;
    const char *v = harness_header_find(rq->headers, rq->headers_len, name, &n);
    return v != NULL && n >= strlen(prefix) && strncasecmp(v, prefix, strlen(prefix)) == 0;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

/* Characters (UTF-8 code points) in a valid UTF-8 string. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        abort();
    return s;
}

void standin_sign(const char *secret, const char *ts, const char *body, size_t body_len,
                  char out[80])
{
    size_t tl = strlen(ts);
    unsigned char *msg = malloc(tl + 1 + body_len + 1);
    if (msg == NULL)
        abort();
    memcpy(msg, ts, tl);
    msg[tl] = '.';
    if (body_len)
        memcpy(msg + tl + 1, body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, tl + 1 + body_len, mac, &mac_len);
    free(msg);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    for (unsigned int i = 0; i < mac_len && i < 32; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[7 + 2 * i + 1] = hex[mac[i] & 15];
    }
    out[7 + 64] = '\0';
}

/* Constant time over the expected length: no early exit on the first differing byte. */
static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++)
        diff |= (unsigned char)(b[i] ^ (i < alen ? a[i] : 0));
    return diff == 0;
}

/* ---------------------------------------------------------------- Kibo */

static const char *const kibo_reasons[] = {
    "customer_changed_mind", "created_by_mistake", "duplicate_order", "fraud",
    "item_out_of_stock",     "payment_declined",   "other",
};

static char *kibo_error(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *kibo_error(const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dump(json_pack("{s:s, s:s, s:s, s:[], s:{s:s, s:s}}", "message", msg, "errorCode", code,
                          "applicationName", "OrderManagement", "items", "exceptionDetail", "type",
                          "ApiException", "message", msg));
}

static kibo_order_t *kibo_find(standin_t *s, long long id)
{
    for (size_t i = 0; i < s->n_kibo; i++)
        if (s->kibo[i].id == id)
            return &s->kibo[i];
    return NULL;
}

static void iso_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

static int kibo_handle(standin_t *s, const req_t *rq, char **resp)
{
    if (strcmp(rq->path, "/api/v2/order/action/cancel") != 0) {
        *resp = kibo_error("ITEM_NOT_FOUND", "No resource matches %s", rq->path);
        return 404;
    }
    if (strcmp(rq->method, "POST") != 0) {
        *resp = kibo_error("METHOD_NOT_ALLOWED", "Method %s is not allowed", rq->method);
        return 405;
    }
    if (s->tenant_id == NULL || !header_is(rq, "x-vol-tenant", s->tenant_id)) {
        *resp = kibo_error("UNAUTHORIZED",
                           "Unauthorized: the x-vol-tenant header is missing or names no tenant "
                           "this client may use");
        return 401;
    }
    if (!header_starts_ci(rq, "content-type", "application/json")) {
        *resp = kibo_error("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json");
        return 415;
    }
    json_error_t jerr;
    json_t *b = json_loadb(rq->body, rq->body_len, 0, &jerr);
    if (!json_is_object(b)) {
        json_decref(b);
        *resp = kibo_error("VALIDATION_CONFLICT", "Validation Error: the request body is not a "
                                                  "JSON object");
        return 400;
    }
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        if (strcmp(k, "orderID") != 0 && strcmp(k, "dispositionReason") != 0 &&
            strcmp(k, "dispositionOtherReason") != 0) {
            *resp =
                kibo_error("VALIDATION_CONFLICT", "Validation Error: unrecognized field '%s'", k);
            json_decref(b);
            return 400;
        }
    }
    json_t *oid = json_object_get(b, "orderID");
    if (!json_is_integer(oid) || json_integer_value(oid) < 1) {
        json_decref(b);
        *resp = kibo_error("VALIDATION_CONFLICT",
                           "Validation Error: orderID is required and must be an integer with a "
                           "minimum value of 1");
        return 400;
    }
    const char *reason = json_string_value(json_object_get(b, "dispositionReason"));
    bool known = false;
    for (size_t i = 0; reason && i < sizeof kibo_reasons / sizeof kibo_reasons[0]; i++)
        known = known || strcmp(reason, kibo_reasons[i]) == 0;
    if (!known) {
        json_decref(b);
        *resp = kibo_error("VALIDATION_CONFLICT",
                           "Validation Error: dispositionReason is required and must be one of "
                           "customer_changed_mind, created_by_mistake, duplicate_order, fraud, "
                           "item_out_of_stock, payment_declined, other");
        return 400;
    }
    json_t *other = json_object_get(b, "dispositionOtherReason");
    if (other != NULL || strcmp(reason, "other") == 0) {
        size_t n = json_is_string(other) ? utf8_chars(json_string_value(other)) : 0;
        if (n < 1 || n > 255) {
            json_decref(b);
            *resp = kibo_error("VALIDATION_CONFLICT",
                               "Validation Error: dispositionOtherReason must be a string of 1 "
                               "to 255 characters when dispositionReason is 'other'");
            return 400;
        }
    }
    long long id = (long long)json_integer_value(oid);
    kibo_order_t *o = kibo_find(s, id);
    if (o == NULL) {
        json_decref(b);
        *resp = kibo_error("ITEM_NOT_FOUND", "Order %lld not found", id);
        return 404;
    }
    /* Cancelling a cancelled order answers the order as it is (nothing changes). */
    snprintf(o->status, sizeof o->status, "Cancelled");
    char now[32];
    iso_now(now);
    long long tenant = atoll(s->tenant_id);
    *resp = dump(json_pack(
        "{s:I, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:O?, s:s, s:s, s:{s:s}, s:[{s:I, s:s, s:s, "
        "s:I, s:s}], s:[], s:s, s:s}",
        "id", (json_int_t)o->id, "orderNumber", o->number, "externalOrderID", o->number, "tenantID",
        (json_int_t)tenant, "siteID", (json_int_t)1, "type", "STH", "status", "Cancelled",
        "dispositionReason", reason, "dispositionOtherReason", other, "currencyCode", "USD",
        "channelCode", "crossroads", "customer", "customerID", "CROSSROADS", "items", "lineID",
        (json_int_t)1, "partNumber", "SKU-ULSD", "status", "Cancelled", "quantity", (json_int_t)1,
        "name", "Diesel ULSD", "shipments", "created", now, "updated", now));
    json_decref(b);
    return 200;
}

/* ---------------------------------------------------------------- Tecspal */

static char *tec_error(int status, const char *message)
{
    return dump(json_pack("{s:s, s:s, s:i}", "error", reason_phrase(status), "message", message,
                          "statusCode", status));
}

static bool only_keys(const json_t *o, const char *const *names, size_t n)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(k, names[i]) == 0;
        if (!ok)
            return false;
    }
    return true;
}

static bool str_is(const json_t *o, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v && strcmp(v, want) == 0;
}

static int tec_handle(standin_t *s, const req_t *rq, char **resp)
{
    if (strcmp(rq->method, "POST") != 0 || strcmp(rq->path, "/orders/cancel") != 0) {
        char m[600];
        snprintf(m, sizeof m, "Cannot %s %s", rq->method, rq->path);
        *resp = tec_error(404, m);
        return 404;
    }
    char want[512];
    snprintf(want, sizeof want, "Bearer %s", s->token ? s->token : "");
    if (s->token == NULL || !header_is(rq, "authorization", want)) {
        *resp = tec_error(401, "Unauthorized access");
        return 401;
    }
    json_t *b = json_loadb(rq->body, rq->body_len, 0, NULL);
    static const char *const top[] = {"data", "request", "vendor", "verb"};
    static const char *const data_keys[] = {"id", "companyCode"};
    json_t *data = json_object_get(b, "data");
    if (!json_is_object(b) || !only_keys(b, top, 4) || !json_is_object(data) ||
        !only_keys(data, data_keys, 2) || !str_is(b, "request", "orders/cancel") ||
        !str_is(b, "vendor", "tecspal") || !str_is(b, "verb", "POST")) {
        json_decref(b);
        *resp = tec_error(400, "Invalid request envelope");
        return 400;
    }
    const char *id = json_string_value(json_object_get(data, "id"));
    const char *company = json_string_value(json_object_get(data, "companyCode"));
    if (id == NULL || *id == '\0') {
        json_decref(b);
        *resp = tec_error(400, "id is required");
        return 400;
    }
    if (company == NULL || *company == '\0') {
        json_decref(b);
        *resp = tec_error(400, "companyCode is required");
        return 400;
    }
    tec_order_t *o = NULL;
    for (size_t i = 0; i < s->n_tec && o == NULL; i++)
        if (strcmp(s->tec[i].id, id) == 0)
            o = &s->tec[i];
    if (o == NULL || strcmp(o->company, company) != 0) {
        json_decref(b);
        *resp = tec_error(400, "Order request not found");
        return 400;
    }
    json_decref(b);
    if (strcmp(o->status, "PENDING") == 0 || strcmp(o->status, "QUOTED") == 0) {
        snprintf(o->status, sizeof o->status, "CANCELLED");
    } else if (strcmp(o->status, "CANCELLED") != 0) {
        *resp = tec_error(400, "The Order cannot be cancelled. Only orders with status PENDING "
                               "or QUOTED can be cancelled");
        return 400;
    }
    *resp = dump(json_pack("{s:i, s:s, s:[{s:s, s:s}]}", "statusCode", 200, "message",
                           "Request successful", "envelop", "id", o->id, "status", o->status));
    return 200;
}

/* ---------------------------------------------------------------- webhook receiver */

static char *wh_error(const char *detail)
{
    return dump(json_pack("{s:s}", "detail", detail));
}

/* Verify the signature headers against the body; NULL when good, else why not. */
static const char *wh_verify(standin_t *s, const req_t *rq)
{
    if (s->secret == NULL)
        return "receiver has no secret configured";
    size_t tl, sl;
    const char *ts =
        harness_header_find(rq->headers, rq->headers_len, "x-crossroads-timestamp", &tl);
    const char *sig =
        harness_header_find(rq->headers, rq->headers_len, "x-crossroads-signature", &sl);
    if (ts == NULL || tl == 0 || tl > 20)
        return "missing or malformed X-Crossroads-Timestamp";
    if (sig == NULL)
        return "missing X-Crossroads-Signature";
    char tsb[24];
    memcpy(tsb, ts, tl);
    tsb[tl] = '\0';
    for (size_t i = 0; i < tl; i++)
        if (tsb[i] < '0' || tsb[i] > '9')
            return "missing or malformed X-Crossroads-Timestamp";
    long long t = atoll(tsb);
    long long now = (long long)time(NULL);
    if (t < now - SIGNATURE_WINDOW_S || t > now + SIGNATURE_WINDOW_S)
        return "timestamp outside the accepted window";
    char want[80];
    standin_sign(s->secret, tsb, rq->body, rq->body_len, want);
    if (!ct_equal(sig, sl, want, strlen(want)))
        return "signature mismatch";
    return NULL;
}

static int wh_handle(standin_t *s, const req_t *rq, char **resp, bool *sig_ok)
{
    bool notify = s->notify_path && strcmp(rq->path, s->notify_path) == 0;
    if (!notify && strncmp(rq->path, "/v1/order/", 10) != 0) {
        *resp = wh_error("Not Found");
        return 404;
    }
    if (strcmp(rq->method, "POST") != 0) {
        *resp = wh_error("Method Not Allowed");
        return 405;
    }
    const char *why = wh_verify(s, rq);
    if (why != NULL) {
        *resp = wh_error(why);
        return 401;
    }
    *sig_ok = true;
    s->answered++;
    json_t *r = json_pack("{s:b}", "received", 1);
    if (s->order_prefix) {
        char num[128];
        snprintf(num, sizeof num, "%s%ld", s->order_prefix, s->answered);
        json_object_set_new(r, "order_number", json_string(num));
    }
    *resp = dump(r);
    return 200;
}

/* ---------------------------------------------------------------- dispatch */

static char *fault_body(standin_kind_t kind, int status)
{
    switch (kind) {
    case STANDIN_KIBO:
        return kibo_error("INTERNAL_ERROR", "%s", reason_phrase(status));
    case STANDIN_TECSPAL:
        return tec_error(status, reason_phrase(status));
    default:
        return wh_error(reason_phrase(status));
    }
}

static void record(standin_t *s, const req_t *rq, int status, const char *resp, bool sig_ok,
                   bool faulted)
{
    if (s->n_reqs == s->cap_reqs) {
        s->cap_reqs = s->cap_reqs ? s->cap_reqs * 2 : 32;
        s->reqs = xrealloc(s->reqs, s->cap_reqs * sizeof *s->reqs);
    }
    standin_req_t *r = &s->reqs[s->n_reqs++];
    memset(r, 0, sizeof *r);
    snprintf(r->method, sizeof r->method, "%s", rq->method);
    snprintf(r->path, sizeof r->path, "%s", rq->path);
    r->headers = xstrndup(rq->headers, rq->headers_len);
    r->body = xstrndup(rq->body, rq->body_len);
    r->body_len = rq->body_len;
    r->status = status;
    r->response = xstrdup(resp);
    r->signature_ok = sig_ok;
    r->faulted = faulted;
}

/* Answer one request (under the lock), record it, and return the response text to write. */
static char *handle(standin_t *s, const req_t *rq, size_t *out_len)
{
    char *body = NULL;
    int status;
    bool sig_ok = false, faulted = false;
    pthread_mutex_lock(&s->mu);
    if (s->fail_n > 0) {
        faulted = true;
        s->fail_n--;
        status = s->fail_status;
        body = fault_body(s->kind, status);
    } else if (s->kind == STANDIN_KIBO) {
        status = kibo_handle(s, rq, &body);
    } else if (s->kind == STANDIN_TECSPAL) {
        status = tec_handle(s, rq, &body);
    } else {
        status = wh_handle(s, rq, &body, &sig_ok);
    }
    record(s, rq, status, body, sig_ok, faulted);
    pthread_mutex_unlock(&s->mu);

    size_t bl = strlen(body);
    size_t cap = bl + 256;
    char *out = malloc(cap);
    if (out == NULL)
        abort();
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     status, reason_phrase(status), bl, rq->close ? "Connection: close\r\n" : "");
    memcpy(out + n, body, bl);
    *out_len = (size_t)n + bl;
    free(body);
    return out;
}

/* ---------------------------------------------------------------- HTTP framing */

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                poll(&pf, 1, 1000);
                continue;
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/*
 * Decode a chunked body starting at p (len bytes available). Returns the bytes consumed
 * (including the last chunk and trailers), 0 if incomplete, -1 if malformed.
 */
static long decode_chunked(const char *p, size_t len, char **out, size_t *out_len)
{
    size_t off = 0, total = 0;
    char *body = NULL;
    for (;;) {
        const char *eol = memmem(p + off, len - off, "\r\n", 2);
        if (eol == NULL)
            goto incomplete;
        char *end;
        unsigned long size = strtoul(p + off, &end, 16);
        if (end == p + off || size > MAX_BODY) {
            free(body);
            return -1;
        }
        off = (size_t)(eol - p) + 2;
        if (size == 0) {
            /* Trailers: lines until an empty one. */
            for (;;) {
                const char *e = memmem(p + off, len - off, "\r\n", 2);
                if (e == NULL)
                    goto incomplete;
                bool empty = e == p + off;
                off = (size_t)(e - p) + 2;
                if (empty) {
                    *out = body ? body : xstrndup("", 0);
                    (*out)[total] = '\0';
                    *out_len = total;
                    return (long)off;
                }
            }
        }
        if (len - off < size + 2)
            goto incomplete;
        body = xrealloc(body, total + size + 1);
        memcpy(body + total, p + off, size);
        total += size;
        body[total] = '\0';
        off += size + 2;
    }
incomplete:
    free(body);
    return 0;
}

/* Parse one request at the start of c->buf. Returns bytes consumed, 0 incomplete, -1 bad. */
static long parse_request(conn_t *c, req_t *rq)
{
    const char *buf = c->buf;
    const char *he = memmem(buf, c->len, "\r\n\r\n", 4);
    if (he == NULL)
        return c->len > MAX_HEAD ? -1 : 0;
    size_t head_len = (size_t)(he - buf) + 4;
    const char *le = memmem(buf, head_len, "\r\n", 2);
    const char *sp1 = memchr(buf, ' ', (size_t)(le - buf));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || (size_t)(sp1 - buf) >= sizeof rq->method ||
        (size_t)(sp2 - sp1 - 1) >= sizeof rq->path)
        return -1;
    memset(rq, 0, sizeof *rq);
    memcpy(rq->method, buf, (size_t)(sp1 - buf));
    memcpy(rq->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    bool http10 = strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    rq->headers = le + 2;
    rq->headers_len = (size_t)(he + 2 - (le + 2));
    size_t vl;
    const char *conn = harness_header_find(rq->headers, rq->headers_len, "connection", &vl);
    rq->close = http10 ? !(conn && vl == 10 && strncasecmp(conn, "keep-alive", 10) == 0)
                       : (conn && vl == 5 && strncasecmp(conn, "close", 5) == 0);
    const char *te = harness_header_find(rq->headers, rq->headers_len, "transfer-encoding", &vl);
    const char *cl = harness_header_find(rq->headers, rq->headers_len, "content-length", &vl);
    size_t clen = 0;
    bool chunked = te && vl >= 7 && strncasecmp(te + vl - 7, "chunked", 7) == 0;
    if (!chunked && cl) {
        char tmp[24];
        if (vl == 0 || vl >= sizeof tmp)
            return -1;
        memcpy(tmp, cl, vl);
        tmp[vl] = '\0';
        char *end;
        unsigned long long v = strtoull(tmp, &end, 10);
        if (*end != '\0' || v > MAX_BODY)
            return -1;
        clen = (size_t)v;
    }
    size_t avail = c->len - head_len;
    bool complete;
    long consumed = 0;
    if (chunked) {
        long n = decode_chunked(buf + head_len, avail, &rq->body, &rq->body_len);
        if (n < 0)
            return -1;
        complete = n > 0;
        consumed = (long)head_len + n;
    } else {
        complete = avail >= clen;
        if (complete) {
            rq->body = xstrndup(buf + head_len, clen);
            rq->body_len = clen;
        }
        consumed = (long)(head_len + clen);
    }
    if (!complete) {
        const char *ex = harness_header_find(rq->headers, rq->headers_len, "expect", &vl);
        if (ex && vl == 12 && strncasecmp(ex, "100-continue", 12) == 0 && !c->sent_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            send_all(c->fd, cont, sizeof cont - 1);
            c->sent_continue = true;
        }
        return 0;
    }
    return consumed;
}

static void conn_close(standin_t *s, size_t i)
{
    close(s->conns[i].fd);
    free(s->conns[i].buf);
    s->conns[i] = s->conns[--s->n_conns];
}

/* Read what is there and answer every complete request; false when the connection ends. */
static bool conn_readable(standin_t *s, conn_t *c)
{
    if (c->cap - c->len < 16384) {
        c->cap = c->cap ? c->cap * 2 : 32768;
        c->buf = xrealloc(c->buf, c->cap);
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, MSG_DONTWAIT);
    if (n == 0)
        return false;
    if (n < 0)
        return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK;
    c->len += (size_t)n;
    for (;;) {
        req_t rq;
        long used = parse_request(c, &rq);
        if (used == 0)
            return true;
        if (used < 0) {
            static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                      "Connection: close\r\n\r\n";
            send_all(c->fd, bad, sizeof bad - 1);
            return false;
        }
        size_t out_len;
        char *out = handle(s, &rq, &out_len);
        send_all(c->fd, out, out_len);
        free(out);
        free(rq.body);
        bool close_it = rq.close;
        memmove(c->buf, c->buf + used, c->len - (size_t)used);
        c->len -= (size_t)used;
        c->sent_continue = false;
        if (close_it)
            return false;
    }
}

static void *serve(void *arg)
{
    standin_t *s = arg;
    struct pollfd pfd[MAX_CONNS + 1];
    while (!atomic_load(&s->stop)) {
        pfd[0].fd = s->lfd;
        pfd[0].events = s->n_conns < MAX_CONNS ? POLLIN : 0;
        for (size_t i = 0; i < s->n_conns; i++) {
            pfd[i + 1].fd = s->conns[i].fd;
            pfd[i + 1].events = POLLIN;
            pfd[i + 1].revents = 0;
        }
        size_t nc = s->n_conns;
        int r = poll(pfd, nc + 1, 50);
        if (r <= 0)
            continue;
        /* Backwards, so closing (swap with the last) does not skip a live one. */
        for (size_t i = nc; i-- > 0;) {
            if (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (!conn_readable(s, &s->conns[i]))
                    conn_close(s, i);
            }
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);
            if (fd >= 0) {
                if (s->n_conns < MAX_CONNS) {
                    conn_t *c = &s->conns[s->n_conns++];
                    memset(c, 0, sizeof *c);
                    c->fd = fd;
                } else {
                    close(fd);
                }
            }
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- life cycle */

standin_t *standin_start(standin_kind_t kind)
{
    standin_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->kind = kind;
    s->lfd = -1;
    atomic_init(&s->stop, false);
    pthread_mutex_init(&s->mu, NULL);
    s->order_prefix = xstrdup("WH-");
    s->notify_path = xstrdup("/notify");
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        goto fail;
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0; /* the kernel picks a free port: no race with other tests */
    socklen_t al = sizeof a;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 64) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0)
        goto fail;
    s->port = ntohs(a.sin_port);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    if (pthread_create(&s->thread, NULL, serve, s) != 0)
        goto fail;
    s->thread_started = true;
    return s;
fail:
    standin_stop(s);
    return NULL;
}

void standin_stop(standin_t *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, true);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    while (s->n_conns > 0)
        conn_close(s, s->n_conns - 1);
    if (s->lfd >= 0)
        close(s->lfd);
    for (size_t i = 0; i < s->n_reqs; i++)
        standin_req_free(&s->reqs[i]);
    free(s->reqs);
    free(s->kibo);
    free(s->tec);
    free(s->tenant_id);
    free(s->token);
    free(s->secret);
    free(s->order_prefix);
    free(s->notify_path);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int standin_port(const standin_t *s)
{
    return s->port;
}

const char *standin_url(const standin_t *s)
{
    return s->url;
}

void standin_fail_next(standin_t *s, int n, int status)
{
    pthread_mutex_lock(&s->mu);
    s->fail_n = n;
    s->fail_status = status;
    pthread_mutex_unlock(&s->mu);
}

static void set_str(standin_t *s, char **field, const char *v)
{
    pthread_mutex_lock(&s->mu);
    free(*field);
    *field = xstrdup(v);
    pthread_mutex_unlock(&s->mu);
}

void standin_kibo_set_tenant(standin_t *s, const char *tenant_id)
{
    set_str(s, &s->tenant_id, tenant_id);
}

void standin_kibo_add_order(standin_t *s, long long id, const char *order_number)
{
    pthread_mutex_lock(&s->mu);
    kibo_order_t *o = kibo_find(s, id);
    if (o == NULL) {
        s->kibo = xrealloc(s->kibo, (s->n_kibo + 1) * sizeof *s->kibo);
        o = &s->kibo[s->n_kibo++];
    }
    o->id = id;
    if (order_number)
        snprintf(o->number, sizeof o->number, "%s", order_number);
    else
        snprintf(o->number, sizeof o->number, "%lld", id);
    snprintf(o->status, sizeof o->status, "Accepted");
    pthread_mutex_unlock(&s->mu);
}

bool standin_kibo_order_status(standin_t *s, long long id, char *out, size_t size)
{
    pthread_mutex_lock(&s->mu);
    kibo_order_t *o = kibo_find(s, id);
    if (o)
        snprintf(out, size, "%s", o->status);
    pthread_mutex_unlock(&s->mu);
    return o != NULL;
}

void standin_tecspal_set_token(standin_t *s, const char *token)
{
    set_str(s, &s->token, token);
}

void standin_tecspal_set_order(standin_t *s, const char *id, const char *status,
                               const char *company_code)
{
    pthread_mutex_lock(&s->mu);
    tec_order_t *o = NULL;
    for (size_t i = 0; i < s->n_tec && o == NULL; i++)
        if (strcmp(s->tec[i].id, id) == 0)
            o = &s->tec[i];
    if (o == NULL) {
        s->tec = xrealloc(s->tec, (s->n_tec + 1) * sizeof *s->tec);
        o = &s->tec[s->n_tec++];
    }
    snprintf(o->id, sizeof o->id, "%s", id);
    snprintf(o->status, sizeof o->status, "%s", status);
    snprintf(o->company, sizeof o->company, "%s", company_code);
    pthread_mutex_unlock(&s->mu);
}

bool standin_tecspal_order_status(standin_t *s, const char *id, char *out, size_t size)
{
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_tec && !found; i++) {
        if (strcmp(s->tec[i].id, id) == 0) {
            snprintf(out, size, "%s", s->tec[i].status);
            found = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

void standin_webhook_set_secret(standin_t *s, const char *secret)
{
    set_str(s, &s->secret, secret);
}

void standin_webhook_set_order_prefix(standin_t *s, const char *prefix)
{
    set_str(s, &s->order_prefix, prefix);
}

void standin_webhook_set_notify_path(standin_t *s, const char *path)
{
    set_str(s, &s->notify_path, path);
}

/* ---------------------------------------------------------------- records */

size_t standin_request_count(standin_t *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n_reqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

bool standin_request(standin_t *s, size_t i, standin_req_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    bool ok = i < s->n_reqs;
    if (ok) {
        const standin_req_t *r = &s->reqs[i];
        *out = *r;
        out->headers = xstrdup(r->headers);
        out->body = xstrndup(r->body, r->body_len);
        out->response = xstrdup(r->response);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void standin_req_free(standin_req_t *r)
{
    free(r->headers);
    free(r->body);
    free(r->response);
    r->headers = r->body = r->response = NULL;
}

bool standin_req_header(const standin_req_t *r, const char *name, char *out, size_t size)
{
    size_t n;
    const char *v =
        r->headers ? harness_header_find(r->headers, strlen(r->headers), name, &n) : NULL;
    if (v == NULL)
        return false;
    if (size > 0)
        snprintf(out, size, "%.*s", (int)n, v);
    return true;
}

bool standin_wait_count(standin_t *s, size_t n, int deadline_ms)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (standin_request_count(s) >= n)
            return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long el = (now.tv_sec - t0.tv_sec) * 1000LL + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (el >= deadline_ms)
            return false;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

size_t standin_deliveries(standin_t *s, const char *key)
{
    size_t count = 0, kl = strlen(key);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_reqs; i++) {
        const standin_req_t *r = &s->reqs[i];
        size_t vl;
        const char *v = harness_header_find(r->headers, strlen(r->headers), "idempotency-key", &vl);
        if (v ? (vl == kl && memcmp(v, key, kl) == 0)
              : (r->body_len == kl && memcmp(r->body, key, kl) == 0))
            count++;
    }
    pthread_mutex_unlock(&s->mu);
    return count;
}

size_t standin_max_per_key(standin_t *s, const char *path_prefix)
{
    size_t best = 0, pl = strlen(path_prefix);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_reqs; i++) {
        const standin_req_t *a = &s->reqs[i];
        size_t al;
        const char *ka =
            harness_header_find(a->headers, strlen(a->headers), "idempotency-key", &al);
        if (ka == NULL || strncmp(a->path, path_prefix, pl) != 0)
            continue;
        size_t n = 0;
        for (size_t j = 0; j < s->n_reqs; j++) {
            const standin_req_t *b = &s->reqs[j];
            size_t bl;
            const char *kb =
                harness_header_find(b->headers, strlen(b->headers), "idempotency-key", &bl);
            if (kb && bl == al && memcmp(ka, kb, al) == 0 && strncmp(b->path, path_prefix, pl) == 0)
                n++;
        }
        if (n > best)
            best = n;
    }
    pthread_mutex_unlock(&s->mu);
    return best;
}
