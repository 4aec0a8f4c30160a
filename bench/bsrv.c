/*
 * bsrv.c - the benchmark's minimal HTTP/1.1 server core (see bsrv.h).
 */
#include "bsrv.h"

#include <llhttp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define STASH_MAX (1u << 20) /* bytes a client may send ahead of its in-flight request */

struct bsrv_conn {
    uv_tcp_t tcp;
    llhttp_t parser;
    const bsrv_opts_t *opts;
    bsrv_req_t req;
    char *url;
    size_t url_len, url_cap;
    char *body;
    size_t body_len, body_cap;
    char *stash; /* bytes received while the parser is paused */
    size_t stash_len, stash_cap;
    unsigned writes_pending;
    bool busy;          /* a request is with the handler */
    bool paused;        /* the parser is paused behind it */
    bool closing;       /* uv_close called */
    bool handle_closed; /* ... and completed */
    bool close_after_write;
};

typedef struct bsrv_write {
    uv_write_t wr;
    bsrv_conn_t *conn;
} bsrv_write_t;

static bsrv_opts_t g_opts;
static llhttp_settings_t g_settings;
static uv_tcp_t g_listener;
static char g_readbuf[65536];
static unsigned long long g_answered;
static uv_signal_t g_sigterm, g_sigint;

unsigned long long bsrv_answered(void)
{
    return g_answered;
}

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    char *q = realloc(*p, n);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int append(char **p, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (grow(p, cap, *len + n + 1) != 0)
        return -1;
    memcpy(*p + *len, data, n);
    *len += n;
    (*p)[*len] = '\0';
    return 0;
}

static void conn_free(bsrv_conn_t *c)
{
    free(c->url);
    free(c->body);
    free(c->stash);
    free(c);
}

static void on_closed(uv_handle_t *h)
{
    bsrv_conn_t *c = h->data;
    c->handle_closed = true;
    if (!c->busy)
        conn_free(c);
}

static void conn_close(bsrv_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* ---------------------------------------------------------------- parser callbacks */

static int on_message_begin(llhttp_t *p)
{
    bsrv_conn_t *c = p->data;
    c->url_len = 0;
    c->body_len = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    bsrv_conn_t *c = p->data;
    return append(&c->url, &c->url_len, &c->url_cap, at, len) == 0 ? 0 : -1;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    bsrv_conn_t *c = p->data;
    if (!c->opts->want_body)
        return 0;
    return append(&c->body, &c->body_len, &c->body_cap, at, len) == 0 ? 0 : -1;
}

static int on_message_complete(llhttp_t *p)
{
    bsrv_conn_t *c = p->data;
    if (grow(&c->url, &c->url_cap, c->url_len + 1) != 0 ||
        grow(&c->body, &c->body_cap, c->body_len + 1) != 0)
        return -1;
    c->url[c->url_len] = '\0';
    c->body[c->body_len] = '\0';
    c->req.conn = c;
    c->req.method = llhttp_method_name((llhttp_method_t)p->method);
    c->req.url = c->url;
    c->req.url_len = c->url_len;
    c->req.body = c->body;
    c->req.body_len = c->body_len;
    c->req.keep_alive = llhttp_should_keep_alive(p) != 0;
    c->req.user = NULL;
    c->busy = true;
    c->opts->handler(&c->req, c->opts->ud);
    /* Answered already (the common case): keep parsing; else wait for bsrv_respond. */
    return c->busy ? HPE_PAUSED : 0;
}

/* Feed bytes to the parser. data may point into c->stash. */
static void feed(bsrv_conn_t *c, const char *data, size_t len)
{
    llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_OK)
        return;
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t rest = (size_t)(data + len - pos);
        c->paused = true;
        if (rest == 0)
            return;
        if (data == c->stash) {
            memmove(c->stash, pos, rest);
            c->stash_len = rest;
        } else if (append(&c->stash, &c->stash_len, &c->stash_cap, pos, rest) != 0) {
            conn_close(c);
        }
        return;
    }
    conn_close(c); /* malformed request: no answer, as a ceiling server may */
}

/* ---------------------------------------------------------------- I/O */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = g_readbuf;
    buf->len = sizeof g_readbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    bsrv_conn_t *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    if (c->paused) {
        if (c->stash_len + (size_t)nread > STASH_MAX ||
            append(&c->stash, &c->stash_len, &c->stash_cap, buf->base, (size_t)nread) != 0)
            conn_close(c);
        return;
    }
    feed(c, buf->base, (size_t)nread);
}

static void on_written(uv_write_t *wr, int status)
{
    bsrv_write_t *w = (bsrv_write_t *)wr;
    bsrv_conn_t *c = w->conn;
    free(w);
    c->writes_pending--;
    if (status != 0 || (c->close_after_write && c->writes_pending == 0))
        conn_close(c);
}

void bsrv_respond(bsrv_req_t *req, const uv_buf_t *bufs, unsigned nbufs)
{
    bsrv_conn_t *c = req->conn;
    c->busy = false;
    g_answered++;
    if (c->closing) {
        if (c->handle_closed)
            conn_free(c);
        return;
    }
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    if (done < total) {
        uv_buf_t rest[8];
        unsigned nr = 0;
        size_t skip = done;
        for (unsigned i = 0; i < nbufs && nr < 8; i++) {
            if (skip >= bufs[i].len) {
                skip -= bufs[i].len;
                continue;
            }
            rest[nr++] = uv_buf_init(bufs[i].base + skip, (unsigned)(bufs[i].len - skip));
            skip = 0;
        }
        bsrv_write_t *w = malloc(sizeof *w);
        if (w == NULL) {
            conn_close(c);
            return;
        }
        w->conn = c;
        c->writes_pending++;
        if (uv_write(&w->wr, (uv_stream_t *)&c->tcp, rest, nr, on_written) != 0) {
            c->writes_pending--;
            free(w);
            conn_close(c);
            return;
        }
    }
    if (!req->keep_alive) {
        c->close_after_write = true;
        if (c->writes_pending == 0)
            conn_close(c);
        return;
    }
    if (c->paused) {
        c->paused = false;
        llhttp_resume(&c->parser);
        if (c->stash_len > 0) {
            size_t len = c->stash_len;
            c->stash_len = 0;
            feed(c, c->stash, len);
        }
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status != 0)
        return;
    bsrv_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->opts = &g_opts;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int bsrv_listen(uv_loop_t *loop, const bsrv_opts_t *opts)
{
    g_opts = *opts;
    if (g_opts.host == NULL || *g_opts.host == '\0')
        g_opts.host = "127.0.0.1";
    if (g_opts.backlog <= 0)
        g_opts.backlog = 1024;
    llhttp_settings_init(&g_settings);
    g_settings.on_message_begin = on_message_begin;
    g_settings.on_url = on_url;
    g_settings.on_body = on_body;
    g_settings.on_message_complete = on_message_complete;
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr;
    int rc = uv_ip4_addr(g_opts.host, g_opts.port, &addr);
    if (rc != 0)
        return rc;
    rc = uv_tcp_init_ex(loop, &g_listener, AF_INET);
    if (rc != 0)
        return rc;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&g_listener, &fd) == 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    }
    rc = uv_tcp_bind(&g_listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&g_listener, g_opts.backlog, on_connection);
    return rc;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

void bsrv_handle_signals(uv_loop_t *loop)
{
    uv_signal_init(loop, &g_sigterm);
    uv_signal_start(&g_sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &g_sigint);
    uv_signal_start(&g_sigint, on_signal, SIGINT);
}

int bsrv_parse_hostport(const char *s, char *host, size_t host_size, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL) {
        snprintf(host, host_size, "127.0.0.1");
        *port = atoi(s);
    } else {
        size_t hl = (size_t)(colon - s);
        if (hl == 0)
            snprintf(host, host_size, "127.0.0.1");
        else
            snprintf(host, host_size, "%.*s", (int)hl, s);
        *port = atoi(colon + 1);
    }
    return (*port > 0 && *port < 65536) ? 0 : -1;
}
