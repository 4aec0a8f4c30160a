/*
 * httpd.c - HTTP/1.1 server on libuv and llhttp, with a framing guard beside the parser.
 *
 * Per connection, bytes flow: read -> head scanner (while a request head is being read) ->
 * llhttp -> request object -> handler. The scanner checks what llhttp 8.1 lets through in a
 * request head (bare CR or LF, obs-fold, over-long request line, too many or too large header
 * fields), and the header callbacks enforce the Host, Content-Length and Transfer-Encoding
 * policy of RFC 9112. llhttp is paused at the end of every message, so exactly one request per
 * connection is with the handler at a time and pipelined requests are answered in order.
 *
 * Timers: one per connection, re-armed at each phase change (idle, head, body); a request with
 * the handler has none, since its own deadline is the handler's business (the Redis command
 * timeout bounds intake). Connections we close after an answer or for idleness close lingering
 * (conn_linger), so a request that crosses the close is never answered with a reset.
 *
 * Fairness under overload: libuv's poll phase goes on for as long as each epoll_wait returns a
 * full batch (1,024 events), up to 48 batches, before timers and check handles run. With a
 * thousand connections sending as fast as they are answered (a flood of 422s), one phase took
 * 0.8 s on the bench machine, and everything that runs between phases waited for it: intake
 * batches (sent from a check handle), Redis command deadlines (valid creates waited 1-6 s and
 * Redis connections were reset as timed out). So once a phase has been reading for
 * READ_SLICE_NS, a connection that delivers bytes is paused after they are handled, until the
 * phase ends (a check handle resumes it). The paused connections drop out of the next
 * epoll_wait, which then returns a short batch and ends the phase.
 */
#include "httpd.h"

#include "log.h"
#include "util/cr.h"
#include "util/crypto.h"

#include <ctype.h>
#include <errno.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum { PH_IDLE, PH_HEAD, PH_BODY, PH_BUSY, PH_WRITE, PH_LINGER } conn_phase_t;

#define READ_SLICE_NS (10 * 1000 * 1000ull)

/* Closing (see conn_linger): how long a closing connection still reads and discards what the
 * client sends after our FIN, and how long a draining server waits on an idle connection for a
 * request already on its way. */
#define LINGER_MS     1000
#define DRAIN_IDLE_MS 500

/* A header field as offsets into req->hbuf (which may move while it grows). */
typedef struct hdr_off {
    size_t name_off, name_len, value_off, value_len;
} hdr_off_t;

struct httpd_conn {
    httpd_conn_t *prev, *next;
    httpd_conn_t *pause_prev, *pause_next; /* in h->paused while paused */
    httpd_t *h;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uint64_t deadline; /* loop time (ms) the phase's timeout expires at; 0: none (PH_BUSY) */
    uint64_t armed_at; /* loop time the timer, when active, fires at */
    int open_handles;
    llhttp_t parser;
    buf_t inbuf;         /* bytes received but not yet parsed, from inoff on */
    size_t inoff;
    httpd_req_t *req;    /* being parsed */
    httpd_req_t *active; /* with the handler */
    conn_phase_t phase;
    bool fresh; /* no request seen yet on this connection */
    bool in_parse; /* conn_parse is on the stack: it goes on after an answer sent at once */
    bool closing;
    bool reading;
    bool paused; /* reading stopped until the poll phase ends (fairness, above) */
    bool eof;
    bool close_after_write;
    bool writing;
    bool lingering; /* our side is shut: what arrives is read and dropped until the client's EOF */
    uv_shutdown_t shut;

    /* head scanner */
    bool in_head;
    bool in_trailer;  /* the head scanner is reading the trailer section of a chunked body */
    bool trailer_pause;
    char last_ch;
    int line_spaces; /* spaces seen in the request line */
    bool first_line;
    bool line_start;
    bool prev_cr;
    size_t line_len;
    size_t head_bytes;
    size_t n_fields;

    /* per-request framing state */
    int err_status;
    const char *err_detail;
    bool headers_done;
    hdr_off_t *hdrs;
    size_t n_hdrs, cap_hdrs;
    size_t cur_name_off;
    bool in_value;
    int host_count;
    bool host_bad;
    int te_count;
    bool te_bad;
    bool te_chunked_last;
    int cl_count;
    uint64_t chunk_left;    /* bytes of the current chunk's data still to come */
    int crlf_need;          /* bytes of the CRLF after chunk data still to check */
    const char *feed_end;   /* end of the buffer llhttp is executing */
    char trailer_name[24];  /* first bytes of the trailer field name being read */
    size_t trailer_name_len;
};

/*
 * Requests answered go back to a small pool with their buffers (URL, head, body, header array)
 * and the next request takes one from it: no allocation per request once the buffers have
 * grown to the traffic's size. Buffers larger than REQ_POOL_KEEP are freed first, so the pool
 * holds at most REQ_POOL x a few KiB however large a request once was.
 */
#define REQ_POOL      64
#define REQ_POOL_KEEP (16 * 1024)

struct httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    httpd_limits_t lim;
    httpd_request_cb on_request;
    void *data;
    llhttp_settings_t settings;
    httpd_conn_t conns; /* sentinel */
    httpd_conn_t paused; /* sentinel of the paused connections (pause_prev/pause_next) */
    uv_prepare_t phase_start;
    uv_check_t phase_end;
    uint64_t phase_started_ns; /* uv_hrtime() at the poll phase's first read; 0: none yet */
    httpd_stats_t stats;
    int port;
    bool draining;
    bool closing;
    int open_handles;
    httpd_observe_cb observe;
    void *observe_data;
    void (*closed_cb)(void *data);
    void *closed_data;
    httpd_req_t *pool[REQ_POOL]; /* answered requests kept for the next, buffers and all */
    size_t n_pool;
};

static void conn_close(httpd_conn_t *c);
static void conn_linger(httpd_conn_t *c);
static void maybe_finish_close(httpd_t *h);
static void conn_feed(httpd_conn_t *c, const char *data, size_t len);
static void conn_feed_queued(httpd_conn_t *c);
static void conn_fail(httpd_conn_t *c, int status, const char *detail);
static void maybe_pause(httpd_conn_t *c);

/* ---------------------------------------------------------------- status texts */

const char *httpd_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

int httpd_query_get(const char *query, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < len; i++) {
                int c = (unsigned char)p[i];
                if (c == '%') {
                    uint8_t byte;
                    if (i + 2 >= len || crypto_unhex(p + i + 1, 1, &byte) != 0)
                        return -2;
                    c = byte;
                    i += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (c < 0x20 || c == 0x7f || o + 1 >= size)
                    return -2;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            return (int)o;
        }
        p = amp ? amp + 1 : NULL;
    }
    return -1;
}

/* ---------------------------------------------------------------- timers */

static void on_conn_timer(uv_timer_t *t)
{
    httpd_conn_t *c = t->data;
    if (c->deadline == 0)
        return; /* busy with the handler: no timeout of ours */
    uint64_t now = uv_now(c->h->loop);
    if (now < c->deadline) {
        /* The deadline moved later since the timer was armed (see conn_set_phase). */
        c->armed_at = c->deadline;
        uv_timer_start(&c->timer, on_conn_timer, c->deadline - now, 0);
        return;
    }
    if (c->phase == PH_HEAD || c->phase == PH_BODY) {
        /* A client that started a request and stalls (slowloris, slow POST) gets a 408. */
        conn_fail(c, 408, "Request timeout");
        return;
    }
    if (c->phase == PH_IDLE) {
        /* A request may be on its way as we give up waiting for one: see conn_linger. */
        conn_linger(c);
        return;
    }
    conn_close(c); /* PH_WRITE: the client does not read its answer; PH_LINGER: done */
}

/*
 * Each phase has its own deadline. A request moves a connection through three or four phases,
 * so instead of re-arming the timer (a heap removal and insertion) at each, the timer is armed
 * only when the new deadline is earlier than the one it is armed for; one armed for an earlier
 * time re-arms itself for the rest when it fires (on_conn_timer). Timeouts fire on time.
 */
static void conn_set_phase(httpd_conn_t *c, conn_phase_t phase)
{
    c->phase = phase;
    long ms = 0;
    switch (phase) {
    case PH_IDLE:
        ms = c->fresh ? c->h->lim.header_timeout_ms : c->h->lim.idle_timeout_ms;
        if (c->h->draining && ms > DRAIN_IDLE_MS)
            ms = DRAIN_IDLE_MS;
        break;
    case PH_HEAD:
        ms = c->h->lim.header_timeout_ms;
        break;
    case PH_BODY:
        ms = c->h->lim.body_timeout_ms;
        break;
    case PH_BUSY:
        c->deadline = 0;
        return;
    case PH_WRITE:
        /* A client that never reads its answers must not hold a slot forever. */
        ms = c->h->lim.body_timeout_ms;
        break;
    case PH_LINGER:
        ms = LINGER_MS;
        break;
    }
    c->deadline = uv_now(c->h->loop) + (uint64_t)ms;
    if (!uv_is_active((uv_handle_t *)&c->timer) || c->armed_at > c->deadline) {
        c->armed_at = c->deadline;
        uv_timer_start(&c->timer, on_conn_timer, (uint64_t)ms, 0);
    }
}

/* ---------------------------------------------------------------- requests */

static httpd_req_t *req_new(httpd_conn_t *c)
{
    httpd_t *h = c->h;
    httpd_req_t *r;
    if (h->n_pool > 0) {
        r = h->pool[--h->n_pool];
        buf_t url = r->url, hbuf = r->hbuf, body = r->bodybuf;
        httpd_header_t *headers = r->headers;
        size_t cap_headers = r->cap_headers;
        memset(r, 0, sizeof *r);
        r->url = url;
        r->hbuf = hbuf;
        r->bodybuf = body;
        r->url.len = r->hbuf.len = r->bodybuf.len = 0;
        r->headers = headers;
        r->cap_headers = cap_headers;
    } else {
        r = cr_calloc(1, sizeof *r);
    }
    r->conn = c;
    r->server = c->h;
    r->start_ms = uv_now(c->h->loop);
    r->start_ns = uv_hrtime();
    return r;
}

static void keep_small(buf_t *b)
{
    if (b->cap > REQ_POOL_KEEP)
        buf_free(b);
}

static void req_free(httpd_req_t *r)
{
    if (r == NULL)
        return;
    httpd_t *h = r->server;
    if (h != NULL && !h->closing && h->n_pool < REQ_POOL) {
        keep_small(&r->url);
        keep_small(&r->hbuf);
        keep_small(&r->bodybuf);
        h->pool[h->n_pool++] = r;
        return;
    }
    buf_free(&r->url);
    buf_free(&r->hbuf);
    buf_free(&r->bodybuf);
    free(r->headers);
    free(r);
}

static void reset_request_state(httpd_conn_t *c)
{
    c->in_head = true;
    c->in_trailer = false;
    c->trailer_pause = false;
    c->last_ch = 0;
    c->line_spaces = 0;
    c->crlf_need = 0;
    c->chunk_left = 0;
    c->first_line = true;
    c->line_start = true;
    c->prev_cr = false;
    c->line_len = 0;
    c->head_bytes = 0;
    c->n_fields = 0;
    c->err_status = 0;
    c->err_detail = NULL;
    c->headers_done = false;
    c->n_hdrs = 0;
    c->cur_name_off = 0;
    c->in_value = false;
    c->host_count = 0;
    c->host_bad = false;
    c->te_count = 0;
    c->te_bad = false;
    c->te_chunked_last = false;
    c->cl_count = 0;
}

const char *httpd_req_header(const httpd_req_t *req, const char *lname, size_t *len, int *count)
{
    const char *first = NULL;
    size_t first_len = 0;
    int n = 0;
    size_t ln = strlen(lname);
    for (size_t i = 0; i < req->n_headers; i++) {
        const httpd_header_t *hd = &req->headers[i];
        if (hd->name_len == ln && memcmp(hd->name, lname, ln) == 0) {
            if (n++ == 0) {
                first = hd->value;
                first_len = hd->value_len;
            }
        }
    }
    if (len)
        *len = first_len;
    if (count)
        *count = n;
    return first;
}

static bool request_id_ok(const char *s, size_t n)
{
    if (n == 0 || n > HTTPD_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

/* Turn the parsed pieces into the request the handler sees, and hand it over. */
static void dispatch(httpd_conn_t *c)
{
    httpd_req_t *r = c->req;
    c->req = NULL;
    c->active = r;
    conn_set_phase(c, PH_BUSY);

    r->method_id = c->parser.method;
    r->method = llhttp_method_name((llhttp_method_t)c->parser.method);
    r->keep_alive = llhttp_should_keep_alive(&c->parser) && !c->h->draining;

    /* Origin-form "/path?query", or absolute-form "http://host/path?query": route by the path
     * only, never by the authority (we are not a proxy). */
    buf_append(&r->url, "", 0);
    buf_reserve(&r->url, 1);
    r->url.data[r->url.len] = '\0';
    char *u = r->url.data;
    if (u[0] != '/') {
        char *scheme_end = strstr(u, "://");
        char *p = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
        u = p ? p : (char *)"/";
    }
    char *q = strchr(u, '?');
    if (q) {
        *q = '\0';
        r->query = q + 1;
    } else {
        r->query = "";
    }
    r->path = u;
    r->path_len = strlen(u);

    r->n_headers = c->n_hdrs;
    if (r->cap_headers < c->n_hdrs || r->headers == NULL) {
        free(r->headers);
        r->cap_headers = c->n_hdrs ? c->n_hdrs : 1;
        r->headers = cr_calloc(r->cap_headers, sizeof *r->headers);
    }
    for (size_t i = 0; i < c->n_hdrs; i++) {
        r->headers[i].name = r->hbuf.data + c->hdrs[i].name_off;
        r->headers[i].name_len = c->hdrs[i].name_len;
        r->headers[i].value = r->hbuf.data + c->hdrs[i].value_off;
        r->headers[i].value_len = c->hdrs[i].value_len;
    }
    buf_reserve(&r->bodybuf, 0);
    r->bodybuf.data[r->bodybuf.len] = '\0';
    r->body = r->bodybuf.data;
    r->body_len = r->bodybuf.len;

    size_t idlen;
    const char *rid = httpd_req_header(r, "x-request-id", &idlen, NULL);
    if (rid && request_id_ok(rid, idlen)) {
        memcpy(r->request_id, rid, idlen);
        r->request_id[idlen] = '\0';
    } else {
        crypto_oid(r->request_id);
    }
    reset_request_state(c);
    c->h->stats.requests++;
    c->h->stats.in_flight++;
    c->h->on_request(r, c->h->data);
}

/* ---------------------------------------------------------------- writing */

typedef struct write_req {
    uv_write_t w;
    httpd_conn_t *conn;
    bool final; /* the response that ends the active request (vs. 100 Continue) */
    size_t len;
    char data[];
} write_req_t;

static void resume_reading(httpd_conn_t *c);

/*
 * The answer to the active request is written out (status < 0: it failed). Close, or carry on
 * with pipelined bytes and wait for more. When the answer went out at once from inside the parse
 * loop (conn_parse), that loop goes on with the next request itself: a burst of pipelined
 * requests never recurses through the handler.
 */
static void conn_written(httpd_conn_t *c, int status)
{
    c->writing = false;
    if (c->closing || c->lingering)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write || c->eof || c->h->draining) {
        conn_linger(c);
        return;
    }
    c->fresh = false;
    conn_set_phase(c, PH_IDLE);
    if (c->in_parse)
        return;
    conn_feed_queued(c);
    if (!c->closing)
        resume_reading(c);
}

static void on_write(uv_write_t *w, int status)
{
    write_req_t *wr = CR_CONTAINER_OF(w, write_req_t, w);
    httpd_conn_t *c = wr->conn;
    bool final = wr->final;
    free(wr);
    if (final)
        conn_written(c, status);
}

/*
 * Send a write request whose data is filled in (freed here or by on_write). An answer is first
 * tried at once (uv_try_write): it nearly always fits the socket buffer, and then no write
 * request, callback or epoll change is needed (uv_write's completion re-arms the socket's epoll
 * entry: one more system call per request). What does not fit goes through uv_write.
 */
static void conn_send(httpd_conn_t *c, write_req_t *wr)
{
    wr->conn = c;
    size_t done = 0;
    if (wr->final) {
        c->writing = true;
        uv_buf_t all = uv_buf_init(wr->data, (unsigned int)wr->len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &all, 1);
        if (n >= 0 && (size_t)n == wr->len) {
            free(wr);
            conn_written(c, 0);
            return;
        }
        if (n < 0 && n != UV_EAGAIN) {
            free(wr);
            conn_written(c, n);
            return;
        }
        if (n > 0)
            done = (size_t)n;
        conn_set_phase(c, PH_WRITE);
    }
    uv_buf_t b = uv_buf_init(wr->data + done, (unsigned int)(wr->len - done));
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        bool final = wr->final;
        free(wr);
        if (final)
            c->writing = false;
        conn_close(c);
    }
}

static void conn_write(httpd_conn_t *c, const char *data, size_t len, bool final)
{
    write_req_t *wr = cr_malloc(sizeof *wr + len);
    wr->final = final;
    wr->len = len;
    memcpy(wr->data, data, len);
    conn_send(c, wr);
}

/*
 * A response is built in place after the head of its write request: the body is copied once,
 * from the handler's buffer to the bytes libuv writes. out must be empty; conn_send_response
 * takes its storage.
 */
static void response_start(buf_t *out, size_t body_len)
{
    buf_reserve(out, sizeof(write_req_t) + 256 + body_len);
    out->len = sizeof(write_req_t);
}

static void conn_send_response(httpd_conn_t *c, buf_t *out)
{
    write_req_t *wr = (write_req_t *)(void *)out->data;
    wr->final = true;
    wr->len = out->len - sizeof(write_req_t);
    *out = (buf_t){0};
    conn_send(c, wr);
}

/* n in decimal, appended (printf costs more than the rest of a small answer). */
static void append_dec(buf_t *out, size_t n)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    buf_append(out, d + i, sizeof d - i);
}

/* A string literal appended without measuring it at run time. */
#define APPEND_LIT(out, lit) buf_append((out), (lit), sizeof(lit) - 1)

static void build_response(buf_t *out, int status, const char *content_type,
                           const char *extra_headers, const char *request_id, bool keep_alive,
                           const char *body, size_t body_len)
{
    APPEND_LIT(out, "HTTP/1.1 ");
    append_dec(out, (size_t)(status > 0 ? status : 0));
    APPEND_LIT(out, " ");
    buf_append_str(out, httpd_status_text(status));
    if (!extra_headers || strncasecmp(extra_headers, "content-type:", 13) != 0) {
        if (content_type == NULL) {
            APPEND_LIT(out, "\r\nContent-Type: application/json");
        } else {
            APPEND_LIT(out, "\r\nContent-Type: ");
            buf_append_str(out, content_type);
        }
    }
    APPEND_LIT(out, "\r\n");
    if (extra_headers)
        buf_append_str(out, extra_headers);
    if (request_id && request_id[0]) {
        APPEND_LIT(out, "X-Request-Id: ");
        buf_append_str(out, request_id);
        APPEND_LIT(out, "\r\n");
    }
    APPEND_LIT(out, "Content-Length: ");
    append_dec(out, body_len);
    if (keep_alive)
        APPEND_LIT(out, "\r\nConnection: keep-alive\r\n\r\n");
    else
        APPEND_LIT(out, "\r\nConnection: close\r\n\r\n");
    buf_append(out, body, body_len);
}

void httpd_respond(httpd_req_t *req, int status, const char *content_type,
                   const char *extra_headers, const char *body, size_t body_len)
{
    httpd_conn_t *c = req->conn;
    httpd_t *h = req->server;
    h->stats.in_flight--;
    if (c == NULL || c->closing) {
        req_free(req);
        maybe_finish_close(h);
        return;
    }
    if (c->active != req) {
        req_free(req);
        return;
    }
    bool keep_alive = req->keep_alive && !c->eof && !h->draining;
    double seconds = (double)(uv_hrtime() - req->start_ns) / 1e9;
    if (h->observe)
        h->observe(req, status, seconds, h->observe_data);
    if (log_enabled(LOG_INFO)) {
        char st[8], ms[24];
        snprintf(st, sizeof st, "%d", status);
        snprintf(ms, sizeof ms, "%.3f", seconds * 1000.0);
        log_msg(LOG_INFO, "access", "request_id", req->request_id, "method", req->method, "path",
                req->path, "#status", st, "#duration_ms", ms,
                "tenant", req->tenant[0] ? req->tenant : NULL,
                "saga_id", req->saga_id[0] ? req->saga_id : NULL, NULL);
    }
    buf_t out = {0};
    response_start(&out, body_len);
    build_response(&out, status, content_type, extra_headers, req->request_id, keep_alive, body,
                   body_len);
    c->active = NULL;
    c->close_after_write = !keep_alive;
    req_free(req);
    conn_send_response(c, &out);
}

void httpd_respond_detail(httpd_req_t *req, int status, const char *detail,
                          const char *extra_headers)
{
    buf_t b = {0};
    buf_append_str(&b, "{\"detail\":\"");
    buf_append_json_str(&b, detail, strlen(detail));
    buf_append_str(&b, "\"}");
    httpd_respond(req, status, NULL, extra_headers, b.data, b.len);
    buf_free(&b);
}

/* A framing error: answer it, close, and ignore everything else the client sent. */
static void conn_fail(httpd_conn_t *c, int status, const char *detail)
{
    if (c->closing)
        return;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    buf_free(&c->inbuf);
    c->inoff = 0;
    c->close_after_write = true;
    char rid[CRYPTO_OID_LEN];
    crypto_oid(rid);
    buf_t body = {0}, out = {0};
    buf_append_str(&body, "{\"detail\":\"");
    buf_append_json_str(&body, detail, strlen(detail));
    buf_append_str(&body, "\"}");
    const char *extra = status == 405 ? "Allow: GET, POST\r\n" : NULL;
    response_start(&out, body.len);
    build_response(&out, status, NULL, extra, rid, false, body.data, body.len);
    conn_set_phase(c, PH_BUSY);
    conn_send_response(c, &out);
    if (c->h->observe)
        c->h->observe(NULL, status, 0.0, c->h->observe_data);
    buf_free(&body);
    log_msg(LOG_INFO, "request refused", "request_id", rid, "detail", detail, NULL);
}

/* ---------------------------------------------------------------- head scanner */

/*
 * Scan bytes of a request head before llhttp sees them. Returns 0 with *used = len when the head
 * continues past the chunk, 1 with *used = bytes up to and including the blank line when the
 * head ends inside it, or an HTTP status (> 1) for a framing error.
 */
static int scan_head(httpd_conn_t *c, const char *p, size_t len, size_t *used)
{
    const httpd_limits_t *lim = &c->h->lim;
    for (size_t i = 0; i < len; i++) {
        if (!c->prev_cr && (c->first_line || !c->line_start)) {
            /* A run of bytes that only counts: in the request line anything but SP, HTAB, CR
             * and LF; inside a header field line, past its first byte, anything but CR and LF.
             * It stops short of the first byte over a limit, which the loop below refuses
             * exactly as it would byte by byte. */
            bool fl = c->first_line;
            size_t room = c->head_bytes < lim->max_header_bytes
                              ? lim->max_header_bytes - c->head_bytes : 0;
            if (fl) {
                size_t line_room = c->line_len < lim->max_request_line
                                       ? lim->max_request_line - c->line_len : 0;
                if (line_room < room)
                    room = line_room;
            }
            size_t stop = len - i < room ? len : i + room, j = i;
            if (fl)
                while (j < stop && p[j] != ' ' && p[j] != '\t' && p[j] != '\r' && p[j] != '\n')
                    j++;
            else
                while (j < stop && p[j] != '\r' && p[j] != '\n')
                    j++;
            if (j > i) {
                c->line_len += j - i;
                c->head_bytes += j - i;
                c->last_ch = p[j - 1];
                c->line_start = false;
                i = j;
                if (i == len)
                    break;
            }
        }
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\n') {
            if (!c->prev_cr) {
                c->err_detail = "Bare LF in request head";
                return 400;
            }
            c->prev_cr = false;
            if (c->line_len == 0) {
                if (c->first_line)
                    continue; /* RFC 9112 2.2: ignore an empty line before the request line */
                *used = i + 1;
                return 1;
            }
            if (c->first_line && !c->in_trailer && c->line_spaces != 2) {
                /* "GET /" alone is HTTP/0.9, which we do not speak; anything else without
                 * exactly method SP target SP version is malformed. */
                c->err_detail = "Malformed request line";
                return 400;
            }
            if (!c->first_line && ++c->n_fields > lim->max_header_count) {
                c->err_detail = "Too many header fields";
                return 431;
            }
            c->first_line = false;
            c->line_len = 0;
            c->line_start = true;
            continue;
        }
        if (c->prev_cr) {
            c->err_detail = "Bare CR in request head";
            return 400;
        }
        if (ch == '\r') {
            c->prev_cr = true;
            continue;
        }
        if (c->line_start && !c->first_line && (ch == ' ' || ch == '\t')) {
            c->err_detail = "Obsolete line folding or leading whitespace in a header field";
            return 400;
        }
        /* The request line is exactly method SP target SP version (RFC 9112 3): no leading
         * space, no run of spaces, no tab, which some proxies parse differently. */
        if (c->first_line && !c->in_trailer &&
            (ch == '\t' || (ch == ' ' && (c->line_len == 0 || c->last_ch == ' ')))) {
            c->err_detail = "Malformed request line";
            return 400;
        }
        if (c->first_line && ch == ' ')
            c->line_spaces++;
        c->last_ch = (char)ch;
        c->line_start = false;
        c->line_len++;
        if (++c->head_bytes > lim->max_header_bytes) {
            c->err_detail = c->first_line ? "Request line too long" : "Request header too large";
            return c->first_line && c->line_len > lim->max_request_line ? 414 : 431;
        }
        if (c->first_line && c->line_len > lim->max_request_line) {
            c->err_detail = "Request line too long";
            return 414;
        }
    }
    *used = len;
    return 0;
}

/* ---------------------------------------------------------------- llhttp callbacks */

static int cb_message_begin(llhttp_t *p)
{
    httpd_conn_t *c = p->data;
    if (c->req == NULL)
        c->req = req_new(c);
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t len)
{
    httpd_conn_t *c = p->data;
    buf_append(&c->req->url, at, len);
    return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t len)
{
    httpd_conn_t *c = p->data;
    if (c->headers_done) {
        /* Trailer fields are never merged into the headers; only their names are looked at. */
        for (size_t i = 0; i < len && c->trailer_name_len < sizeof c->trailer_name - 1; i++)
            c->trailer_name[c->trailer_name_len++] = (char)tolower((unsigned char)at[i]);
        return 0;
    }
    buf_t *hb = &c->req->hbuf;
    for (size_t i = 0; i < len; i++) {
        char ch = (char)tolower((unsigned char)at[i]);
        buf_append(hb, &ch, 1);
    }
    return 0;
}

static int cb_header_field_complete(llhttp_t *p)
{
    httpd_conn_t *c = p->data;
    if (c->headers_done) {
        c->trailer_name[c->trailer_name_len] = '\0';
        bool framing = strcmp(c->trailer_name, "transfer-encoding") == 0;
        c->trailer_name_len = 0;
        if (framing) {
            c->err_detail = "Transfer-Encoding in trailer section";
            c->err_status = 400;
            return -1;
        }
        return 0;
    }
    if (c->n_hdrs == c->cap_hdrs) {
        c->cap_hdrs = c->cap_hdrs ? c->cap_hdrs * 2 : 16;
        c->hdrs = cr_realloc(c->hdrs, c->cap_hdrs * sizeof *c->hdrs);
    }
    hdr_off_t *hd = &c->hdrs[c->n_hdrs];
    hd->name_off = c->cur_name_off;
    hd->name_len = c->req->hbuf.len - c->cur_name_off;
    hd->value_off = c->req->hbuf.len;
    hd->value_len = 0;
    c->in_value = true;
    const char *name = c->req->hbuf.data ? c->req->hbuf.data + hd->name_off : "";
    if (hd->name_len == 0) {
        c->err_detail = "Empty header name";
        c->err_status = 400;
        return -1;
    }
    /* Underscores are legal in tokens, but proxies disagree on whether Transfer_Encoding means
     * Transfer-Encoding; refusing them keeps every hop reading the same framing. */
    if (memchr(name, '_', hd->name_len)) {
        c->err_detail = "Underscore in header name";
        c->err_status = 400;
        return -1;
    }
    return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t len)
{
    httpd_conn_t *c = p->data;
    if (c->headers_done)
        return 0;
    buf_append(&c->req->hbuf, at, len);
    return 0;
}

static bool value_is(const char *v, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(v, lit, n) == 0;
}

static int cb_header_value_complete(llhttp_t *p)
{
    httpd_conn_t *c = p->data;
    if (c->headers_done) {
        return 0;
    }
    buf_t *hb = &c->req->hbuf;
    hdr_off_t *hd = &c->hdrs[c->n_hdrs];
    size_t start = hd->value_off, end = hb->len;
    while (start < end && (hb->data[start] == ' ' || hb->data[start] == '\t'))
        start++;
    while (end > start && (hb->data[end - 1] == ' ' || hb->data[end - 1] == '\t'))
        end--;
    hd->value_off = start;
    hd->value_len = end - start;
    c->n_hdrs++;
    c->in_value = false;
    c->cur_name_off = hb->len;

    const char *name = hb->data + hd->name_off;
    const char *val = hd->value_len ? hb->data + hd->value_off : "";
    size_t nl = hd->name_len, vl = hd->value_len;
    if (nl == 4 && memcmp(name, "host", 4) == 0) {
        c->host_count++;
        if (vl == 0 || memchr(val, ',', vl) || memchr(val, '@', vl) || memchr(val, ' ', vl))
            c->host_bad = true;
    } else if (nl == 14 && memcmp(name, "content-length", 14) == 0) {
        c->cl_count++;
        /* llhttp accepts "004"; a proxy may read it differently, so only canonical digits. */
        if (vl == 0 || (vl > 1 && val[0] == '0')) {
            c->err_detail = "Invalid Content-Length";
            c->err_status = 400;
            return -1;
        }
    } else if (nl == 17 && memcmp(name, "transfer-encoding", 17) == 0) {
        c->te_count++;
        if (value_is(val, vl, "chunked")) {
            c->te_chunked_last = true;
        } else {
            /* Only "chunked" alone is accepted. "gzip, chunked" is well-formed but a coding we
             * do not implement (501); anything else is malformed (400). */
            size_t k = vl;
            while (k > 0 && (val[k - 1] == ' ' || val[k - 1] == '\t'))
                k--;
            if (vl >= 9 && k >= 7 && strncasecmp(val + k - 7, "chunked", 7) == 0 &&
                val[0] != ',' && (val[k - 8] == ',' || val[k - 8] == ' ')) {
                c->te_chunked_last = true;
                c->err_detail = "Transfer-Encoding not implemented";
                c->err_status = 501;
                return -1;
            }
            c->te_bad = true;
        }
    }
    return 0;
}

static int cb_headers_complete(llhttp_t *p)
{
    httpd_conn_t *c = p->data;
    httpd_t *h = c->h;
    c->headers_done = true;
    httpd_req_t *r = c->req;
    size_t vlen;
    if (p->http_major != 1 || (p->http_minor != 0 && p->http_minor != 1)) {
        c->err_status = 505;
        c->err_detail = "HTTP version not supported";
        return -1;
    }
    if (c->te_bad || (c->te_count > 0 && p->http_minor == 0) || c->te_count > 1) {
        c->err_status = 400;
        c->err_detail = "Invalid Transfer-Encoding";
        return -1;
    }
    if (c->cl_count > 1) {
        c->err_status = 400;
        c->err_detail = "Duplicate Content-Length";
        return -1;
    }
    if ((p->http_minor == 1 && c->host_count != 1) || c->host_count > 1 || c->host_bad) {
        c->err_status = 400;
        c->err_detail = c->host_count == 0 ? "Missing Host header" : "Invalid Host header";
        return -1;
    }
    if (p->method == HTTP_CONNECT) {
        c->err_status = 405;
        c->err_detail = "CONNECT is not supported";
        return -1;
    }
    /* We never switch protocols: an Upgrade request is answered as plain HTTP/1.1. */
    p->upgrade = 0;

    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    if (has_cl && p->content_length > h->lim.max_body_bytes) {
        c->err_status = 413;
        c->err_detail = "Request body too large";
        return -1;
    }
    bool body_method = p->method == HTTP_POST || p->method == HTTP_PUT || p->method == HTTP_PATCH;
    if (body_method && !has_cl && !chunked) {
        c->err_status = 411;
        c->err_detail = "Length Required";
        return -1;
    }
    /* Expect: honour 100-continue, refuse anything else (RFC 9110 10.1.1). */
    for (size_t i = 0; i < c->n_hdrs; i++) {
        hdr_off_t *hd = &c->hdrs[i];
        if (hd->name_len == 6 && memcmp(r->hbuf.data + hd->name_off, "expect", 6) == 0) {
            const char *v = r->hbuf.data + hd->value_off;
            vlen = hd->value_len;
            if (!value_is(v, vlen, "100-continue")) {
                c->err_status = 417;
                c->err_detail = "Expectation Failed";
                return -1;
            }
            if (p->http_minor == 1 && (has_cl ? p->content_length > 0 : chunked))
                conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, false);
        }
    }
    conn_set_phase(c, PH_BODY);
    return 0;
}

/* Check the CRLF that must follow chunk data, as far as this buffer holds it. */
static int check_chunk_crlf(httpd_conn_t *c, const char *q, const char *end)
{
    while (c->crlf_need > 0 && q < end) {
        char want = c->crlf_need == 2 ? '\r' : '\n';
        if (*q != want) {
            c->err_detail = "Chunk data not followed by CRLF";
            c->err_status = 400;
            return -1;
        }
        c->crlf_need--;
        q++;
    }
    return 0;
}

static int cb_chunk_header(llhttp_t *p)
{
    httpd_conn_t *c = p->data;
    c->chunk_left = p->content_length;
    if (p->content_length == 0) {
        /* Last chunk: stop so the trailer section goes through the head scanner too (llhttp
         * 8.1 accepts a bare LF there). */
        c->trailer_pause = true;
        return HPE_PAUSED;
    }
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t len)
{
    httpd_conn_t *c = p->data;
    if (p->flags & F_CHUNKED) {
        c->chunk_left = c->chunk_left >= len ? c->chunk_left - len : 0;
        if (c->chunk_left == 0) {
            /* llhttp 8.1 does not insist on the CRLF after chunk data ("5\r\nhelloXX0..."). */
            c->crlf_need = 2;
            if (check_chunk_crlf(c, at + len, c->feed_end) != 0)
                return -1;
        }
    }
    buf_t *b = &c->req->bodybuf;
    if (b->len + len > c->h->lim.max_body_bytes) {
        c->err_status = 413;
        c->err_detail = "Request body too large";
        return -1;
    }
    buf_append(b, at, len);
    return 0;
}

static int cb_message_complete(llhttp_t *p)
{
    httpd_conn_t *c = p->data;
    (void)c;
    return HPE_PAUSED;
}

/* ---------------------------------------------------------------- feeding the parser */

static int map_parser_error(llhttp_errno_t e, const char **detail)
{
    switch (e) {
    case HPE_INVALID_VERSION:
        *detail = "HTTP version not supported";
        return 505;
    case HPE_PAUSED_H2_UPGRADE:
        *detail = "HTTP/2 is not supported on this port";
        return 505;
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        *detail = "Conflicting Content-Length or Transfer-Encoding";
        return 400;
    case HPE_INVALID_CONTENT_LENGTH:
        *detail = "Invalid Content-Length";
        return 400;
    case HPE_INVALID_TRANSFER_ENCODING:
        *detail = "Invalid Transfer-Encoding";
        return 400;
    case HPE_INVALID_CHUNK_SIZE:
        *detail = "Invalid chunk size";
        return 400;
    case HPE_INVALID_METHOD:
        *detail = "Invalid method";
        return 400;
    case HPE_INVALID_URL:
        *detail = "Invalid request target";
        return 400;
    default:
        *detail = "Malformed request";
        return 400;
    }
}

/* Runs the framing guard and llhttp over data until a request is complete (it is dispatched and
 * parsing pauses), the data ends, or the connection fails. Returns how many bytes were used; the
 * rest belongs to the next request. Never touches c->inbuf, which data may point into. */
static size_t conn_parse(httpd_conn_t *c, const char *data, size_t len)
{
    size_t off = 0;
    bool was_in_parse = c->in_parse;
    c->in_parse = true;
    while (off < len && !c->closing && !c->lingering && c->active == NULL && !c->writing) {
        size_t n = len - off;
        bool head_ends = false;
        if (c->req == NULL) {
            c->req = req_new(c);
            conn_set_phase(c, PH_HEAD);
        }
        if (c->crlf_need > 0) {
            if (check_chunk_crlf(c, data + off, data + len) != 0) {
                conn_fail(c, 400, c->err_detail);
                off = len;
                break;
            }
        }
        if (c->in_head) {
            size_t used = 0;
            int st = scan_head(c, data + off, n, &used);
            if (st > 1) {
                conn_fail(c, st, c->err_detail);
                off = len;
                break;
            }
            n = used;
            head_ends = st == 1;
        }
        c->feed_end = data + off + n;
        llhttp_errno_t e = llhttp_execute(&c->parser, data + off, n);
        if (head_ends)
            c->in_head = false;
        if (e == HPE_OK) {
            off += n;
            continue;
        }
        if (e == HPE_PAUSED && c->trailer_pause) {
            /* After the last chunk: scan the trailer section like a head, then go on. */
            c->trailer_pause = false;
            llhttp_resume(&c->parser);
            off = (size_t)(llhttp_get_error_pos(&c->parser) - data);
            c->in_head = true;
            c->in_trailer = true;
            c->first_line = false;
            c->line_start = true;
            c->line_len = 0;
            c->prev_cr = false;
            continue;
        }
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            off = (size_t)(llhttp_get_error_pos(&c->parser) - data);
            if (e == HPE_PAUSED_UPGRADE)
                llhttp_resume_after_upgrade(&c->parser);
            else
                llhttp_resume(&c->parser);
            /* Answered at once (and written): the loop goes on with the next request. */
            dispatch(c);
            continue;
        }
        const char *detail = c->err_detail;
        int status = c->err_status;
        if (status == 0)
            status = map_parser_error(e, &detail);
        conn_fail(c, status, detail ? detail : "Malformed request");
        off = len;
        break;
    }
    c->in_parse = was_in_parse;
    return off;
}

/* Bytes fresh from the socket: parse what can be, keep the rest for after the answer. */
static void conn_feed(httpd_conn_t *c, const char *data, size_t len)
{
    size_t off = conn_parse(c, data, len);
    if (off < len && !c->closing)
        buf_append(&c->inbuf, data + off, len - off);
}

/* Pipelined bytes kept while an answer was pending. Parsed in place: a client that pipelines
 * thousands of requests costs one pass over its bytes, not a copy of the rest per request. */
static void conn_feed_queued(httpd_conn_t *c)
{
    if (c->inbuf.len == c->inoff)
        return;
    size_t off = conn_parse(c, c->inbuf.data + c->inoff, c->inbuf.len - c->inoff);
    if (c->closing || c->lingering || c->close_after_write)
        return; /* the rest is never parsed (conn_fail may have freed the buffer) */
    c->inoff += off;
    if (c->inoff == c->inbuf.len) {
        c->inbuf.len = 0;
        c->inoff = 0;
    } else if (c->inoff >= 64 * 1024 && c->inoff * 2 >= c->inbuf.len) {
        memmove(c->inbuf.data, c->inbuf.data + c->inoff, c->inbuf.len - c->inoff);
        c->inbuf.len -= c->inoff;
        c->inoff = 0;
    }
}

/* ---------------------------------------------------------------- reading */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    /* One loop, one thread: each read is parsed (or copied aside) before the next arrives, so a
     * single static buffer serves every connection. */
    static char slab[64 * 1024];
    (void)handle;
    (void)suggested;
    *buf = uv_buf_init(slab, sizeof slab);
}

static void unpause(httpd_conn_t *c)
{
    if (!c->paused)
        return;
    c->paused = false;
    c->pause_prev->pause_next = c->pause_next;
    c->pause_next->pause_prev = c->pause_prev;
    c->pause_prev = c->pause_next = NULL;
}

/* The poll phase has read for its slice: stop reading c until the phase ends. */
static void maybe_pause(httpd_conn_t *c)
{
    httpd_t *h = c->h;
    if (!c->reading || c->closing || uv_hrtime() - h->phase_started_ns < READ_SLICE_NS)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    c->paused = true;
    c->pause_next = &h->paused;
    c->pause_prev = h->paused.pause_prev;
    h->paused.pause_prev->pause_next = c;
    h->paused.pause_prev = c;
    h->stats.paused++;
}

/* The slice runs from the phase's first read, not from the prepare handle: the phase may have
 * begun with an idle wait in epoll_wait, which is not reading. */
static void on_phase_start(uv_prepare_t *p)
{
    httpd_t *h = p->data;
    h->phase_started_ns = 0;
}

static void on_phase_end(uv_check_t *chk)
{
    httpd_t *h = chk->data;
    while (h->paused.pause_next != &h->paused) {
        httpd_conn_t *c = h->paused.pause_next;
        unpause(c);
        resume_reading(c);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    httpd_conn_t *c = stream->data;
    if (c->h->phase_started_ns == 0)
        c->h->phase_started_ns = uv_hrtime();
    if (nread == 0)
        return;
    if (c->lingering) {
        if (nread < 0)
            conn_close(c); /* the client's EOF (or an error): nothing can be reset now */
        return;            /* sent after our FIN: dropped */
    }
    if (nread < 0) {
        uv_read_stop(stream);
        c->reading = false;
        if (nread == UV_EOF && (c->active != NULL || c->writing)) {
            /* Half-closed after a full request: still answer it, then close. */
            c->eof = true;
            return;
        }
        conn_close(c);
        return;
    }
    if (c->active != NULL || c->writing) {
        buf_append(&c->inbuf, buf->base, (size_t)nread);
        if (c->inbuf.len - c->inoff > HTTPD_MAX_QUEUED) {
            /* A client that pipelines without reading answers waits here, not in our memory. */
            uv_read_stop(stream);
            c->reading = false;
        }
        maybe_pause(c);
        return;
    }
    conn_feed(c, buf->base, (size_t)nread);
    maybe_pause(c);
}

static void resume_reading(httpd_conn_t *c)
{
    if (c->reading || c->paused || c->closing || c->eof ||
        c->inbuf.len - c->inoff > HTTPD_MAX_QUEUED)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

/* ---------------------------------------------------------------- connections */

static void on_conn_handle_closed(uv_handle_t *handle)
{
    httpd_conn_t *c = handle->data;
    if (--c->open_handles > 0)
        return;
    httpd_t *h = c->h;
    buf_free(&c->inbuf);
    req_free(c->req);
    free(c->hdrs);
    free(c);
    h->open_handles--;
    maybe_finish_close(h);
}

static void conn_close(httpd_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->active) {
        c->active->conn = NULL; /* the handler still answers; the answer is dropped */
        c->active = NULL;
    }
    c->prev->next = c->next;
    c->next->prev = c->prev;
    unpause(c);
    c->h->stats.open_connections--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

/*
 * Close without resetting what the client may have sent meanwhile. close() on a socket with
 * unread bytes makes the kernel send a RST, and a RST can destroy our last answer in the client's
 * receive buffer before it is read, or hit a request the client sent on a keep-alive connection
 * just as we gave up on it (an idle timeout, a drain). So our side is shut first (a FIN, after
 * what is being written), whatever still arrives is read and dropped, and the socket is closed
 * at the client's EOF or after LINGER_MS. The client sees a clean close with no answer to what
 * it sent after our last answer, which HTTP clients retry on a new connection (RFC 9112 9.3.1).
 */
static void on_shutdown(uv_shutdown_t *s, int status)
{
    httpd_conn_t *c = s->data;
    if (status < 0 && !c->closing)
        conn_close(c);
}

static void conn_linger(httpd_conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    if (c->eof) {
        conn_close(c); /* the client has closed its side: nothing more can arrive */
        return;
    }
    c->lingering = true;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    conn_set_phase(c, PH_LINGER);
    unpause(c);
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void on_unstarted_closed(uv_handle_t *handle)
{
    free(handle->data);
}

/* A connection accepted into c->tcp: set it up and start reading its first request. */
static void conn_start(httpd_t *h, httpd_conn_t *c)
{
    uv_timer_init(h->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    h->open_handles++;
    c->next = h->conns.next;
    c->prev = &h->conns;
    h->conns.next->prev = c;
    h->conns.next = c;
    h->stats.accepted++;
    h->stats.open_connections++;
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &h->settings);
    c->parser.data = c;
    c->fresh = true;
    reset_request_state(c);
    if (h->stats.open_connections > h->lim.max_connections && !h->draining) {
        /* At the limit, make room by closing the oldest connection that is not working for
         * anyone: idle, still dripping its head (slowloris), or not reading its answer. */
        for (httpd_conn_t *o = h->conns.prev; o != &h->conns; o = o->prev) {
            if (o != c && o->active == NULL &&
                ((!o->writing && (o->phase == PH_IDLE || o->phase == PH_HEAD)) ||
                 o->phase == PH_WRITE || o->phase == PH_LINGER)) {
                h->stats.evicted++;
                conn_close(o);
                break;
            }
        }
    }
    if (h->stats.open_connections > h->lim.max_connections) {
        static const char busy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Retry-After: 1\r\nContent-Length: 35\r\nConnection: close\r\n\r\n"
            "{\"detail\":\"Too many connections\"}\n";
        uv_buf_t b = uv_buf_init((char *)busy, sizeof busy - 1);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        conn_linger(c); /* its request may be here already: no reset over the 503 */
        return;
    }
    conn_set_phase(c, PH_IDLE);
    resume_reading(c);
}

static httpd_conn_t *conn_new(httpd_t *h)
{
    httpd_conn_t *c = cr_calloc(1, sizeof *c);
    c->h = h;
    uv_tcp_init(h->loop, &c->tcp);
    c->tcp.data = c;
    return c;
}

static void on_connection(uv_stream_t *server, int status)
{
    httpd_t *h = server->data;
    if (status < 0)
        return;
    httpd_conn_t *c = conn_new(h);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_unstarted_closed);
        return;
    }
    conn_start(h, c);
}

/*
 * Before the listener closes, take the connections in its accept queue: the kernel resets them
 * when the socket closes, and their clients may already have sent a request. They are served
 * like the others (answered with Connection: close). Called only while draining, rarely.
 */
static void accept_backlog(httpd_t *h)
{
    uv_os_fd_t lfd;
    if (!h->listening || uv_fileno((uv_handle_t *)&h->listener, &lfd) != 0)
        return;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN: the queue is empty */
        }
        httpd_conn_t *c = conn_new(h);
        if (uv_tcp_open(&c->tcp, fd) != 0) {
            close(fd);
            uv_close((uv_handle_t *)&c->tcp, on_unstarted_closed);
            continue;
        }
        conn_start(h, c);
    }
}

/* ---------------------------------------------------------------- server */

httpd_t *httpd_new(uv_loop_t *loop, const httpd_limits_t *limits, httpd_request_cb on_request,
                   void *data)
{
    httpd_t *h = cr_calloc(1, sizeof *h);
    h->loop = loop;
    h->lim = *limits;
    h->on_request = on_request;
    h->data = data;
    h->conns.next = h->conns.prev = &h->conns;
    h->paused.pause_next = h->paused.pause_prev = &h->paused;
    /* Both run every loop iteration without keeping the loop alive. */
    uv_prepare_init(loop, &h->phase_start);
    uv_check_init(loop, &h->phase_end);
    h->phase_start.data = h->phase_end.data = h;
    uv_prepare_start(&h->phase_start, on_phase_start);
    uv_check_start(&h->phase_end, on_phase_end);
    uv_unref((uv_handle_t *)&h->phase_start);
    uv_unref((uv_handle_t *)&h->phase_end);
    h->open_handles = 2;
    llhttp_settings_init(&h->settings);
    h->settings.on_message_begin = cb_message_begin;
    h->settings.on_url = cb_url;
    h->settings.on_header_field = cb_header_field;
    h->settings.on_header_field_complete = cb_header_field_complete;
    h->settings.on_header_value = cb_header_value;
    h->settings.on_header_value_complete = cb_header_value_complete;
    h->settings.on_headers_complete = cb_headers_complete;
    h->settings.on_body = cb_body;
    h->settings.on_chunk_header = cb_chunk_header;
    h->settings.on_message_complete = cb_message_complete;
    return h;
}

void httpd_set_limits(httpd_t *h, const httpd_limits_t *limits)
{
    h->lim = *limits;
}

int httpd_listen(httpd_t *h, const char *host, int port)
{
    struct sockaddr_storage addr;
    int rc;
    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        return rc;
    rc = uv_tcp_init_ex(h->loop, &h->listener, addr.ss_family);
    if (rc != 0)
        return rc;
    h->listener.data = h;
    h->listening = true;
    h->open_handles++;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&h->listener, &fd) == 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    }
    rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->listener, 1024, on_connection);
    if (rc != 0)
        return rc;
    struct sockaddr_storage bound;
    int namelen = sizeof bound;
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &namelen) == 0) {
        h->port = ntohs(bound.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&bound)->sin6_port
                            : ((struct sockaddr_in *)&bound)->sin_port);
    }
    return 0;
}

void httpd_set_observer(httpd_t *h, httpd_observe_cb cb, void *data)
{
    h->observe = cb;
    h->observe_data = data;
}

int httpd_port(const httpd_t *h)
{
    return h->port;
}

void httpd_stats_get(const httpd_t *h, httpd_stats_t *out)
{
    *out = h->stats;
}

static void on_server_handle_closed(uv_handle_t *handle)
{
    httpd_t *h = handle->data;
    h->open_handles--;
    maybe_finish_close(h);
}

static void close_listener(httpd_t *h)
{
    if (!h->listening)
        return;
    h->listening = false;
    uv_close((uv_handle_t *)&h->listener, on_server_handle_closed);
}

void httpd_drain(httpd_t *h)
{
    h->draining = true;
    accept_backlog(h);
    close_listener(h);
    /* Busy connections close after their answer (Connection: close). Idle ones get
     * DRAIN_IDLE_MS for a request that may be on its way (it is answered the same way), then a
     * lingering close. */
    for (httpd_conn_t *c = h->conns.next; c != &h->conns; c = c->next) {
        if (c->phase == PH_IDLE && c->req == NULL && c->active == NULL && !c->writing)
            conn_set_phase(c, PH_IDLE);
    }
}

static void maybe_finish_close(httpd_t *h)
{
    /* Requests still with a handler hold the server: they are answered (and dropped) later. */
    if (!h->closing || h->open_handles > 0 || h->stats.in_flight > 0)
        return;
    void (*cb)(void *) = h->closed_cb;
    void *data = h->closed_data;
    while (h->n_pool > 0) {
        httpd_req_t *r = h->pool[--h->n_pool];
        r->server = NULL; /* freed for good */
        req_free(r);
    }
    free(h);
    if (cb)
        cb(data);
}

void httpd_close(httpd_t *h, void (*closed_cb)(void *data), void *data)
{
    h->closing = true;
    h->draining = true;
    h->closed_cb = closed_cb;
    h->closed_data = data;
    close_listener(h);
    while (h->conns.next != &h->conns)
        conn_close(h->conns.next);
    if (!uv_is_closing((uv_handle_t *)&h->phase_end)) {
        uv_close((uv_handle_t *)&h->phase_start, on_server_handle_closed);
        uv_close((uv_handle_t *)&h->phase_end, on_server_handle_closed);
    }
    maybe_finish_close(h);
}
