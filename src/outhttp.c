/*
 * outhttp.c - outbound HTTP: libcurl's multi socket interface driven by the libuv loop.
 *
 * What it does: every transfer is one curl easy handle added to one CURLM. libcurl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it (CURLMOPT_TIMERFUNCTION); we
 * answer with one uv_poll_t per socket and one uv_timer_t, feed readiness back through
 * curl_multi_socket_action, and after every such call collect finished transfers with
 * curl_multi_info_read and run their completion callbacks.
 *
 * What it owns: the CURLM, the timer, one heap-allocated outhttp_sock_t per socket libcurl asked
 * about (freed only in its poll handle's close callback), and every outhttp_xfer_t from
 * outhttp_start until its callback has returned. The outhttp_t itself is freed in the last close
 * callback after outhttp_close, counting open handles as hiredis's libuv adapter does.
 *
 * What it must not do: block the loop, follow redirects, speak anything but http and https, call
 * a completion callback from inside a libcurl callback (user code may cancel, start or close, and
 * libcurl forbids re-entering the multi handle from its own callbacks), or call a completion
 * callback synchronously from outhttp_start.
 */
#include "outhttp.h"

#include "log.h"
#include "util/buf.h"
#include "util/cr.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char OUTHTTP_ERR_TIMEOUT[] = "timeout";
const char OUTHTTP_ERR_CONNECT[] = "connect failed";
const char OUTHTTP_ERR_IO[] = "i/o error";
const char OUTHTTP_ERR_TOO_LARGE[] = "response too large";
const char OUTHTTP_ERR_CANCELED[] = "canceled";
const char OUTHTTP_ERR_BAD_URL[] = "bad url";

/* The header block is bounded like the body: a peer must not make us buffer without limit. */
#define OUTHTTP_MAX_HEADERS (64 * 1024)
/* Connecting should never take the whole budget of a long exchange. */
#define OUTHTTP_MAX_CONNECT_MS 5000L
/* Easy handles kept for the next transfers (each is kilobytes of state plus a 16 KiB receive
 * buffer that a new handle allocates again). */
#define OUTHTTP_IDLE_EASY 64

/* One socket libcurl asked us to watch. Lives from the first CURL_POLL_IN/OUT for a socket until
 * the close callback of its poll handle, which is where it is freed. */
typedef struct outhttp_sock {
    uv_poll_t poll;
    outhttp_t *o;
    curl_socket_t fd;
    struct outhttp_sock *prev, *next; /* o->socks while watched; unlinked once closing */
} outhttp_sock_t;

struct outhttp_xfer {
    outhttp_xfer_t *prev, *next; /* o->xfers while in flight */
    bool linked;
    outhttp_t *o;
    CURL *easy;
    struct curl_slist *headers;
    outhttp_done_cb cb;
    void *data;
    uint64_t started_ms;
    buf_t body;
    buf_t head;
    bool body_over; /* the write callback refused data beyond OUTHTTP_MAX_RESPONSE */
    bool head_over; /* the header callback refused data beyond OUTHTTP_MAX_HEADERS */
    char errbuf[CURL_ERROR_SIZE];
};

struct outhttp {
    uv_loop_t *loop;
    CURLM *multi; /* NULL once outhttp_close has cleaned it up */
    uv_timer_t timer;
    outhttp_xfer_t xfers; /* sentinel of the in-flight list */
    outhttp_sock_t socks; /* sentinel of the watched sockets */
    CURL *idle_easy[OUTHTTP_IDLE_EASY]; /* finished handles, reset, for outhttp_start */
    size_t n_idle_easy;
    size_t in_flight;
    int handles_open; /* the timer plus every poll handle whose close callback is pending */
    bool closing;
    void (*closed_cb)(void *data);
    void *closed_data;
};

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void xfer_link(outhttp_t *o, outhttp_xfer_t *x)
{
    x->prev = o->xfers.prev;
    x->next = &o->xfers;
    o->xfers.prev->next = x;
    o->xfers.prev = x;
    x->linked = true;
    o->in_flight++;
}

static void xfer_unlink(outhttp_t *o, outhttp_xfer_t *x)
{
    assert(x->linked);
    x->prev->next = x->next;
    x->next->prev = x->prev;
    x->prev = x->next = NULL;
    x->linked = false;
    o->in_flight--;
}

static void xfer_free(outhttp_xfer_t *x)
{
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    buf_free(&x->body);
    buf_free(&x->head);
    free(x);
}

/* A handle for a new transfer: an idle one (options back at their defaults) or a new one. */
static CURL *easy_take(outhttp_t *o)
{
    return o->n_idle_easy > 0 ? o->idle_easy[--o->n_idle_easy] : curl_easy_init();
}

/* A handle whose transfer is over and removed from the multi handle. curl_easy_reset drops every
 * option (URL, headers, callbacks, the transfer's pointers); it keeps the handle's buffers. */
static void easy_give(outhttp_t *o, CURL *e)
{
    if (!o->closing && o->n_idle_easy < OUTHTTP_IDLE_EASY) {
        curl_easy_reset(e);
        o->idle_easy[o->n_idle_easy++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

/* buf_t keeps one spare byte, but does not write the terminator itself. */
static const char *buf_cstr(buf_t *b)
{
    if (b->data == NULL)
        return "";
    buf_reserve(b, 0);
    b->data[b->len] = '\0';
    return b->data;
}

/* RFC 9110 token characters: anything else in a method would let a caller forge a request line. */
static bool method_valid(const char *m)
{
    if (m == NULL || *m == '\0')
        return false;
    for (const char *p = m; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
            return false;
    }
    return true;
}

static bool url_valid(const char *url)
{
    return url != NULL &&
           (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Closing: the owner is freed in the last close callback                                      */
/* ------------------------------------------------------------------------------------------ */

static void maybe_finish_close(outhttp_t *o)
{
    if (!o->closing || o->handles_open > 0)
        return;
    void (*cb)(void *) = o->closed_cb;
    void *data = o->closed_data;
    free(o);
    if (cb != NULL)
        cb(data);
}

static void on_sock_close(uv_handle_t *h)
{
    outhttp_sock_t *s = CR_CONTAINER_OF(h, outhttp_sock_t, poll);
    outhttp_t *o = s->o;
    free(s);
    o->handles_open--;
    maybe_finish_close(o);
}

static void on_timer_close(uv_handle_t *h)
{
    outhttp_t *o = h->data;
    o->handles_open--;
    maybe_finish_close(o);
}

/*
 * Stop watching a socket and start closing its handle. The struct outlives this call (until its
 * close callback), but the descriptor number is released at once: stopping takes it out of epoll
 * and of libuv's watcher table, so when libcurl closes the socket and opens a new one with the
 * same number before our close callback has run, the new socket gets a fresh outhttp_sock_t and
 * uv_poll_init_socket does not find a live watcher in the way.
 */
static void sock_retire(outhttp_sock_t *s)
{
    s->prev->next = s->next;
    s->next->prev = s->prev;
    s->prev = s->next = NULL;
    int rc = uv_poll_stop(&s->poll);
    if (rc != 0)
        log_msg(LOG_WARN, "outhttp: uv_poll_stop failed", "error", uv_strerror(rc), NULL);
    uv_close((uv_handle_t *)&s->poll, on_sock_close);
}

/* ------------------------------------------------------------------------------------------ */
/* Completion                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static const char *classify(outhttp_xfer_t *x, CURLcode code, const char **detail)
{
    *detail = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(code);
    switch (code) {
    case CURLE_OK:
        *detail = NULL;
        return NULL;
    case CURLE_OPERATION_TIMEDOUT:
        return OUTHTTP_ERR_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return OUTHTTP_ERR_CONNECT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return OUTHTTP_ERR_BAD_URL;
    case CURLE_FILESIZE_EXCEEDED:
        /* CURLOPT_MAXFILESIZE refused a Content-Length over the cap before any body arrived. */
        return OUTHTTP_ERR_TOO_LARGE;
    case CURLE_WRITE_ERROR:
        /* Our callbacks are the only writers, so a write error is one of our caps tripping. */
        if (x->body_over || x->head_over) {
            /* libcurl's text would only say "failed writing"; name the cap instead. */
            snprintf(x->errbuf, sizeof(x->errbuf), "response %s over %d bytes",
                     x->body_over ? "body" : "headers",
                     x->body_over ? OUTHTTP_MAX_RESPONSE : OUTHTTP_MAX_HEADERS);
            *detail = x->errbuf;
            return OUTHTTP_ERR_TOO_LARGE;
        }
        return OUTHTTP_ERR_IO;
    default:
        return OUTHTTP_ERR_IO;
    }
}

/*
 * Detach x from the multi handle and the in-flight list before its callback runs, so that the
 * callback may cancel other transfers, start new ones or close o and always sees a consistent
 * state; then free x. The response points into x, which outlives the call.
 */
static void xfer_complete(outhttp_t *o, outhttp_xfer_t *x, CURLcode code, const char *canceled)
{
    outhttp_response_t resp = {0};
    long status = 0;

    if (code == CURLE_OK && canceled == NULL &&
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        status = 0;

    xfer_unlink(o, x);
    CURLMcode mc = curl_multi_remove_handle(o->multi, x->easy);
    if (mc != CURLM_OK) {
        log_msg(LOG_WARN, "outhttp: curl_multi_remove_handle failed", "error",
                curl_multi_strerror(mc), NULL);
        curl_easy_cleanup(x->easy);
    } else {
        easy_give(o, x->easy);
    }
    x->easy = NULL;

    if (canceled != NULL) {
        resp.error = canceled;
        resp.headers = "";
        resp.body = "";
    } else {
        resp.error = classify(x, code, &resp.error_detail);
        resp.status = resp.error == NULL ? status : 0;
        resp.headers = buf_cstr(&x->head);
        resp.headers_len = x->head.len;
        resp.body = buf_cstr(&x->body);
        resp.body_len = x->body.len;
    }
    resp.elapsed_ms = uv_now(o->loop) - x->started_ms;

    x->cb(&resp, x->data);
    xfer_free(x);
}

/*
 * Run the callbacks of every finished transfer. Called only after curl_multi_socket_action has
 * returned, never from a libcurl callback. Stops as soon as a callback closes o: the multi handle
 * (and with it the message queue) is gone and the remaining transfers were canceled by the close.
 */
static void check_done(outhttp_t *o)
{
    CURLMsg *msg;
    int left;

    while (!o->closing && (msg = curl_multi_info_read(o->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* msg is invalidated by curl_multi_remove_handle: copy what we need first. */
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        void *priv = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL) {
            log_msg(LOG_ERROR, "outhttp: finished transfer without its owner", NULL);
            continue;
        }
        xfer_complete(o, priv, code, NULL);
    }
}

static void drive(outhttp_t *o, curl_socket_t fd, int flags)
{
    int running = 0;

    if (o->closing)
        return;
    CURLMcode mc = curl_multi_socket_action(o->multi, fd, flags, &running);
    if (mc != CURLM_OK)
        log_msg(LOG_WARN, "outhttp: curl_multi_socket_action failed", "error",
                curl_multi_strerror(mc), NULL);
    /* Even after an error, transfers may have finished and must get their callback. */
    check_done(o);
}

/* ------------------------------------------------------------------------------------------ */
/* libuv and libcurl callbacks                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void on_poll(uv_poll_t *h, int status, int events)
{
    outhttp_sock_t *s = CR_CONTAINER_OF(h, outhttp_sock_t, poll);
    outhttp_t *o = s->o;
    curl_socket_t fd = s->fd;
    int flags = 0;

    /*
     * libuv stops the handle itself when it reports an error (POLLERR, e.g. a refused connect);
     * CURL_CSELECT_ERR makes libcurl look at the socket and fail or retry the connection.
     */
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /*
     * From here on s may already be closing: the transfer can finish inside this call and libcurl
     * then asks us to remove the socket. s stays allocated until its close callback, but we do
     * not touch it again; fd was copied above.
     */
    drive(o, fd, flags);
}

static void on_timer(uv_timer_t *t)
{
    drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static outhttp_sock_t *sock_open(outhttp_t *o, curl_socket_t fd)
{
    /*
     * A live entry for this descriptor number means libcurl closed a socket without telling us
     * and reused the number. Its watcher would make uv_poll_init_socket fail with UV_EEXIST (and
     * epoll no longer knows the closed descriptor), so retire it before watching the new one.
     */
    for (outhttp_sock_t *s = o->socks.next; s != &o->socks; s = s->next) {
        if (s->fd == fd) {
            log_msg(LOG_DEBUG, "outhttp: replacing stale socket watcher", NULL);
            sock_retire(s);
            break;
        }
    }

    outhttp_sock_t *s = cr_calloc(1, sizeof(*s));
    int rc = uv_poll_init_socket(o->loop, &s->poll, fd);
    if (rc != 0) {
        log_msg(LOG_ERROR, "outhttp: uv_poll_init_socket failed", "error", uv_strerror(rc), NULL);
        free(s);
        return NULL;
    }
    s->o = o;
    s->fd = fd;
    s->prev = o->socks.prev;
    s->next = &o->socks;
    o->socks.prev->next = s;
    o->socks.prev = s;
    o->handles_open++;

    CURLMcode mc = curl_multi_assign(o->multi, fd, s);
    if (mc != CURLM_OK) {
        log_msg(LOG_ERROR, "outhttp: curl_multi_assign failed", "error", curl_multi_strerror(mc),
                NULL);
        sock_retire(s);
        return NULL;
    }
    return s;
}

/*
 * CURLMOPT_SOCKETFUNCTION. socketp is what we assigned for this socket, or NULL the first time
 * libcurl mentions it (including a new socket that reuses a removed one's descriptor number:
 * libcurl forgets the assignment on CURL_POLL_REMOVE). Returning -1 makes libcurl fail the call.
 */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    outhttp_t *o = userp;
    outhttp_sock_t *s = socketp;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL)
            sock_retire(s);
        return 0;
    }
    if (s == NULL) {
        s = sock_open(o, fd);
        if (s == NULL)
            return -1;
    }

    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    int rc = uv_poll_start(&s->poll, events, on_poll);
    if (rc != 0) {
        log_msg(LOG_ERROR, "outhttp: uv_poll_start failed", "error", uv_strerror(rc), NULL);
        return -1;
    }
    return 0;
}

/*
 * CURLMOPT_TIMERFUNCTION: -1 disarms, anything else (0 included) re-arms the one timer. A zero
 * delay still goes through the loop, because libcurl must not be re-entered from here; that is
 * also why curl_multi_add_handle never completes a transfer synchronously.
 */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    outhttp_t *o = userp;
    int rc;
    (void)multi;

    if (timeout_ms < 0)
        rc = uv_timer_stop(&o->timer);
    else
        rc = uv_timer_start(&o->timer, on_timer, (uint64_t)timeout_ms, 0);
    if (rc != 0) {
        log_msg(LOG_ERROR, "outhttp: arming the curl timer failed", "error", uv_strerror(rc), NULL);
        return -1;
    }
    return 0;
}

/* CURLOPT_WRITEFUNCTION. Returning short makes libcurl stop with CURLE_WRITE_ERROR. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    outhttp_xfer_t *x = userdata;
    size_t n = size * nmemb;

    if (n > OUTHTTP_MAX_RESPONSE - x->body.len) {
        x->body_over = true;
        return 0;
    }
    buf_append(&x->body, ptr, n);
    return n;
}

/* CURLOPT_HEADERFUNCTION: one header line per call, status lines included. */
static size_t on_header(char *ptr, size_t size, size_t nitems, void *userdata)
{
    outhttp_xfer_t *x = userdata;
    size_t n = size * nitems;

    /*
     * A status line starts a new response (a 1xx interim answer, or a proxy's reply to CONNECT):
     * keep only the final block, the one whose status we report. Trailers come after the final
     * block without a status line and stay appended to it.
     */
    if (n >= 5 && strncasecmp(ptr, "HTTP/", 5) == 0)
        buf_reset(&x->head);
    if (n > OUTHTTP_MAX_HEADERS - x->head.len) {
        x->head_over = true;
        return 0;
    }
    buf_append(&x->head, ptr, n);
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Public API                                                                                  */
/* ------------------------------------------------------------------------------------------ */

outhttp_t *outhttp_new(uv_loop_t *loop)
{
    /* The loop thread is the only caller, so a plain flag is enough; never cleaned up, as
     * curl_global_cleanup is not safe while other libraries may still use libcurl. */
    static bool curl_ready;
    if (!curl_ready) {
        CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (cc != CURLE_OK) {
            log_msg(LOG_ERROR, "outhttp: curl_global_init failed", "error", curl_easy_strerror(cc),
                    NULL);
            return NULL;
        }
        curl_ready = true;
    }

    outhttp_t *o = cr_calloc(1, sizeof(*o));
    o->loop = loop;
    o->xfers.prev = o->xfers.next = &o->xfers;
    o->socks.prev = o->socks.next = &o->socks;

    /* The multi handle comes first: unlike the timer it can be undone synchronously. */
    o->multi = curl_multi_init();
    if (o->multi == NULL)
        goto fail;
    if (curl_multi_setopt(o->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(o->multi, CURLMOPT_SOCKETDATA, o) != CURLM_OK ||
        curl_multi_setopt(o->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(o->multi, CURLMOPT_TIMERDATA, o) != CURLM_OK)
        goto fail;

    int rc = uv_timer_init(loop, &o->timer);
    if (rc != 0) {
        log_msg(LOG_ERROR, "outhttp: uv_timer_init failed", "error", uv_strerror(rc), NULL);
        goto fail;
    }
    o->timer.data = o;
    o->handles_open = 1;
    return o;

fail:
    if (o->multi != NULL) {
        CURLMcode mc = curl_multi_cleanup(o->multi);
        if (mc != CURLM_OK)
            log_msg(LOG_WARN, "outhttp: curl_multi_cleanup failed", "error",
                    curl_multi_strerror(mc), NULL);
    }
    free(o);
    return NULL;
}

/* Set the request line and body. Only POST, PUT and PATCH send an (empty) body by default. */
static bool setup_method(CURL *e, const outhttp_request_t *req)
{
    const char *m = req->method;
    bool with_body = req->body != NULL || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
                     strcmp(m, "PATCH") == 0;

    if (strcmp(m, "HEAD") == 0)
        return curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK;
    if (strcmp(m, "GET") == 0 && !with_body)
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    if (with_body) {
        /* Size first: COPYPOSTFIELDS then copies exactly that many bytes (NULs allowed). */
        size_t len = req->body != NULL ? req->body_len : 0;
        if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body != NULL ? req->body : "") !=
                CURLE_OK)
            return false;
    }
    if (strcmp(m, "POST") == 0)
        return true;
    return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m) == CURLE_OK;
}

/* Copy the caller's headers. A CR or LF would let a header value smuggle a second request. */
static bool setup_headers(outhttp_xfer_t *x, const outhttp_request_t *req)
{
    bool has_expect = false;

    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
        const char *h = req->headers[i];
        if (strpbrk(h, "\r\n") != NULL)
            return false;
        if (strncasecmp(h, "Expect:", 7) == 0)
            has_expect = true;
        struct curl_slist *l = curl_slist_append(x->headers, h);
        if (l == NULL)
            return false;
        x->headers = l;
    }
    /*
     * libcurl sends "Expect: 100-continue" for larger bodies and then waits up to a second for the
     * interim answer many servers never give; an empty Expect header turns that off.
     */
    if (!has_expect) {
        struct curl_slist *l = curl_slist_append(x->headers, "Expect:");
        if (l == NULL)
            return false;
        x->headers = l;
    }
    return curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers) == CURLE_OK;
}

outhttp_xfer_t *outhttp_start(outhttp_t *o, const outhttp_request_t *req, outhttp_done_cb cb,
                              void *data)
{
    assert(o != NULL && req != NULL && cb != NULL);
    if (o->closing || !url_valid(req->url) || !method_valid(req->method))
        return NULL;

    outhttp_xfer_t *x = cr_calloc(1, sizeof(*x));
    x->o = o;
    x->cb = cb;
    x->data = data;
    x->started_ms = uv_now(o->loop);
    x->easy = easy_take(o);
    if (x->easy == NULL)
        goto fail;

    /* Zero or negative would mean "no timeout" to libcurl; the contract is a bounded exchange. */
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : 1;
    CURL *e = x->easy;
    bool ok = curl_easy_setopt(e, CURLOPT_PRIVATE, x) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_URL, req->url) == CURLE_OK &&
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
              curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
#else
              curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) ==
                  CURLE_OK &&
#endif
              curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                               CR_MIN(timeout, OUTHTTP_MAX_CONNECT_MS)) == CURLE_OK &&
              /* Refuse an announced oversize body before reading it; on_body catches the rest. */
              curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)OUTHTTP_MAX_RESPONSE) ==
                  CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEDATA, x) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HEADERDATA, x) == CURLE_OK && setup_method(e, req) &&
              setup_headers(x, req);
    if (!ok)
        goto fail;

    /* Adding only arms the timer (at 0 ms): the transfer starts, and ends, from the loop. */
    CURLMcode mc = curl_multi_add_handle(o->multi, e);
    if (mc != CURLM_OK) {
        log_msg(LOG_ERROR, "outhttp: curl_multi_add_handle failed", "error",
                curl_multi_strerror(mc), NULL);
        goto fail;
    }
    xfer_link(o, x);
    return x;

fail:
    xfer_free(x);
    return NULL;
}

void outhttp_cancel(outhttp_t *o, outhttp_xfer_t *x)
{
    /* A transfer whose callback is running is no longer linked: cancelling it is a no-op. */
    if (x == NULL || !x->linked)
        return;
    assert(x->o == o);
    xfer_complete(o, x, CURLE_OK, OUTHTTP_ERR_CANCELED);
}

size_t outhttp_in_flight(const outhttp_t *o)
{
    return o->in_flight;
}

void outhttp_close(outhttp_t *o, void (*closed_cb)(void *data), void *data)
{
    if (o == NULL || o->closing)
        return;

    /*
     * Closing first: a cancelled transfer's callback may call outhttp_start (refused), cancel
     * another transfer (fine, the multi handle still exists) or close again (a no-op), and
     * no loop callback drives libcurl any more.
     */
    o->closing = true;
    o->closed_cb = closed_cb;
    o->closed_data = data;
    while (o->xfers.next != &o->xfers)
        xfer_complete(o, o->xfers.next, CURLE_OK, OUTHTTP_ERR_CANCELED);
    while (o->n_idle_easy > 0)
        curl_easy_cleanup(o->idle_easy[--o->n_idle_easy]);

    /* Cleanup closes cached connections and may still tell us to remove their sockets. */
    CURLMcode mc = curl_multi_cleanup(o->multi);
    if (mc != CURLM_OK)
        log_msg(LOG_WARN, "outhttp: curl_multi_cleanup failed", "error", curl_multi_strerror(mc),
                NULL);
    o->multi = NULL;

    while (o->socks.next != &o->socks)
        sock_retire(o->socks.next);
    int rc = uv_timer_stop(&o->timer);
    if (rc != 0)
        log_msg(LOG_WARN, "outhttp: uv_timer_stop failed", "error", uv_strerror(rc), NULL);
    uv_close((uv_handle_t *)&o->timer, on_timer_close);
}

/* ------------------------------------------------------------------------------------------ */
/* Header lookup                                                                               */
/* ------------------------------------------------------------------------------------------ */

int outhttp_header_get(const char *headers, const char *name, char *out, size_t size)
{
    if (headers == NULL || name == NULL || *name == '\0')
        return -1;
    size_t nlen = strlen(name);

    /* Several blocks (after a 1xx, or a proxy's CONNECT answer): only the last one counts. */
    const char *block = headers;
    for (const char *p = headers; *p != '\0';) {
        if (strncasecmp(p, "HTTP/", 5) == 0)
            block = p;
        const char *eol = strchr(p, '\n');
        p = eol != NULL ? eol + 1 : p + strlen(p);
    }

    for (const char *p = block; *p != '\0';) {
        const char *eol = strchr(p, '\n');
        const char *end = eol != NULL ? eol : p + strlen(p);
        const char *next = eol != NULL ? eol + 1 : end;
        if (end > p && end[-1] == '\r')
            end--;
        if ((size_t)(end - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            size_t len = (size_t)(end - v);
            if (size == 0)
                return 0;
            /* Returns what was copied, so out[ret] is always the terminator. */
            len = CR_MIN(len, size - 1);
            memcpy(out, v, len);
            out[len] = '\0';
            return (int)len;
        }
        p = next;
    }
    return -1;
}
