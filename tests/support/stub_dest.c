/*
 * stub_dest.c - a scriptable destination system on loopback (see stub_dest.h).
 *
 * One thread runs a poll() loop over the listening socket, a wake pipe and every connection.
 * Each connection reads into its own buffer, frames requests by Content-Length, and holds at
 * most one reply at a time: sent at once, at a due time (delayed), or never (hung). The loop's
 * poll timeout is the nearest due time, so delays do not depend on traffic. The recorded
 * requests and the reply script live behind one mutex; a condition variable wakes waiters.
 */
#include "stub_dest.h"

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD_BYTES (64 * 1024)
#define MAX_BODY_BYTES (8 * 1024 * 1024)
#define IDLE_POLL_MS   1000

typedef struct reply {
    int status;
    char *headers;
    char *body;
    int delay_ms;
    bool hang;
} reply_t;

typedef enum { C_READ, C_WAIT, C_HUNG } cstate_t;

typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap;
    cstate_t state;
    long long due_ms;
    reply_t reply;      /* owned while C_WAIT */
    bool close_after;   /* the request asked for Connection: close */
    bool continue_sent; /* 100 Continue already sent for the request being read */
    bool dead;
} conn_t;

struct stub_dest {
    int lfd;
    int port;
    int wake[2];
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    stub_req_t *reqs;
    size_t n_reqs, cap_reqs;
    reply_t *queue;
    size_t q_head, q_len, q_cap;
    reply_t def;

    /* The thread's own. */
    conn_t *conns;
    size_t n_conns, cap_conns;
};

/* ---------------------------------------------------------------- small helpers */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL)
        abort();
    return q;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        abort();
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

static reply_t reply_copy(const stub_reply_t *r)
{
    reply_t c = {
        .status = r->status > 0 ? r->status : 200,
        .headers = dup_or_null(r->headers),
        .body = dup_or_null(r->body),
        .delay_ms = r->delay_ms,
        .hang = r->hang,
    };
    return c;
}

static reply_t reply_dup(const reply_t *r)
{
    reply_t c = *r;
    c.headers = dup_or_null(r->headers);
    c.body = dup_or_null(r->body);
    return c;
}

static void reply_free(reply_t *r)
{
    free(r->headers);
    free(r->body);
    r->headers = r->body = NULL;
}

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 422:
        return "Unprocessable Content";
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

/* Write everything (the socket is non-blocking: wait for room up to a second at a time). */
static int send_all(int fd, const char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, p + off, len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            if (poll(&pfd, 1, 1000) <= 0)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the server thread */

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    if (c->state == C_WAIT)
        reply_free(&c->reply);
    c->dead = true;
}

static void conn_send_reply(conn_t *c, const reply_t *r)
{
    const char *body = r->body ? r->body : "{}";
    size_t blen = r->status == 204 ? 0 : strlen(body);
    char head[1024];
    int n =
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "%s",
                 r->status, reason(r->status), blen, c->close_after ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head) {
        conn_close(c);
        return;
    }
    size_t hl = r->headers ? strlen(r->headers) : 0;
    size_t total = (size_t)n + hl + 2 + blen;
    char *out = malloc(total);
    if (out == NULL)
        abort();
    memcpy(out, head, (size_t)n);
    if (hl)
        memcpy(out + n, r->headers, hl);
    memcpy(out + (size_t)n + hl, "\r\n", 2);
    if (blen)
        memcpy(out + (size_t)n + hl + 2, body, blen);
    int rc = send_all(c->fd, out, total);
    free(out);
    if (rc != 0 || c->close_after)
        conn_close(c);
}

/* Record a complete request and take its reply from the script (under the lock). */
static reply_t record(stub_dest_t *s, const char *method, size_t ml, const char *path, size_t pl,
                      const char *hdrs, size_t hlen, const char *body, size_t blen)
{
    stub_req_t r;
    memset(&r, 0, sizeof r);
    r.method = xstrndup(method, ml);
    r.path = xstrndup(path, pl);
    r.headers = xstrndup(hdrs, hlen);
    r.body = xstrndup(body, blen);
    r.body_len = blen;
    r.at_ms = harness_now_ms();
    char key[512];
    r.idempotency_key = xstrndup("", 0);
    if (harness_header_copy(hdrs, hlen, "Idempotency-Key", key, sizeof key)) {
        free(r.idempotency_key);
        r.idempotency_key = xstrndup(key, strlen(key));
    }
    r.json = NULL; /* parsed on copy-out, so the lock is never held across jansson */

    pthread_mutex_lock(&s->mu);
    if (s->n_reqs == s->cap_reqs) {
        s->cap_reqs = s->cap_reqs ? s->cap_reqs * 2 : 64;
        s->reqs = xrealloc(s->reqs, s->cap_reqs * sizeof *s->reqs);
    }
    s->reqs[s->n_reqs++] = r;
    reply_t out;
    if (s->q_len > 0) {
        out = s->queue[s->q_head]; /* ownership moves to the connection */
        s->q_head++;
        s->q_len--;
        if (s->q_len == 0)
            s->q_head = 0;
    } else {
        out = reply_dup(&s->def);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return out;
}

/* Answer a request the stub cannot frame, and close. */
static void refuse(conn_t *c, int status)
{
    reply_t r = {.status = status, .body = (char *)"{\"detail\":\"stub: cannot frame request\"}"};
    c->close_after = true;
    conn_send_reply(c, &r);
}

/* Take complete requests off the buffer while the connection is free to answer them. */
static void conn_process(stub_dest_t *s, conn_t *c)
{
    while (!c->dead && c->state == C_READ) {
        char *hend = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (hend == NULL) {
            if (c->len > MAX_HEAD_BYTES)
                refuse(c, 400);
            return;
        }
        size_t head_len = (size_t)(hend - c->buf) + 4;
        char *line_end = memmem(c->buf, head_len, "\r\n", 2);
        const char *sp1 = memchr(c->buf, ' ', (size_t)(line_end - c->buf));
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
        if (sp1 == NULL || sp2 == NULL) {
            refuse(c, 400);
            return;
        }
        const char *hdrs = line_end + 2;
        size_t hlen = (size_t)(hend + 2 - hdrs); /* each line with its CRLF */
        char v[256];
        long long cl = 0;
        if (harness_header_copy(hdrs, hlen, "Content-Length", v, sizeof v)) {
            char *e;
            cl = strtoll(v, &e, 10);
            if (e == v || *e != '\0' || cl < 0 || cl > MAX_BODY_BYTES) {
                refuse(c, 400);
                return;
            }
        }
        bool chunked = harness_header_copy(hdrs, hlen, "Transfer-Encoding", v, sizeof v);
        bool http10 = (size_t)(line_end - sp2 - 1) == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
        c->close_after = http10 || (harness_header_copy(hdrs, hlen, "Connection", v, sizeof v) &&
                                    strcasecmp(v, "close") == 0);
        if (chunked) {
            /* Not recorded, and the script is left alone: the gateway never sends these. */
            refuse(c, 411);
            return;
        }
        if (c->len < head_len + (size_t)cl) {
            if (!c->continue_sent && harness_header_copy(hdrs, hlen, "Expect", v, sizeof v) &&
                strcasecmp(v, "100-continue") == 0) {
                c->continue_sent = true;
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (send_all(c->fd, cont, sizeof cont - 1) != 0)
                    conn_close(c);
            }
            return;
        }
        reply_t r = record(s, c->buf, (size_t)(sp1 - c->buf), sp1 + 1, (size_t)(sp2 - sp1 - 1),
                           hdrs, hlen, c->buf + head_len, (size_t)cl);
        size_t used = head_len + (size_t)cl;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        c->continue_sent = false;
        if (r.hang) {
            reply_free(&r);
            c->state = C_HUNG;
        } else if (r.delay_ms > 0) {
            c->reply = r;
            c->due_ms = harness_now_ms() + r.delay_ms;
            c->state = C_WAIT;
        } else {
            conn_send_reply(c, &r);
            reply_free(&r);
        }
    }
}

/* Read what is there; false when the peer has gone. */
static bool conn_read(conn_t *c)
{
    for (;;) {
        if (c->cap - c->len < 16384) {
            c->cap = c->cap ? c->cap * 2 : 32768;
            c->buf = xrealloc(c->buf, c->cap);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
            if (c->len > MAX_HEAD_BYTES + MAX_BODY_BYTES)
                return false;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        return false; /* FIN or reset */
    }
}

static void accept_all(stub_dest_t *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (s->n_conns == s->cap_conns) {
            s->cap_conns = s->cap_conns ? s->cap_conns * 2 : 64;
            s->conns = xrealloc(s->conns, s->cap_conns * sizeof *s->conns);
        }
        conn_t *c = &s->conns[s->n_conns++];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->state = C_READ;
    }
}

static void *serve(void *arg)
{
    stub_dest_t *s = arg;
    struct pollfd *pfds = NULL;
    size_t pcap = 0;
    while (!atomic_load(&s->stop)) {
        size_t n = s->n_conns;
        if (pcap < n + 2) {
            pcap = (n + 2) * 2;
            pfds = xrealloc(pfds, pcap * sizeof *pfds);
        }
        pfds[0] = (struct pollfd){s->wake[0], POLLIN, 0};
        pfds[1] = (struct pollfd){s->lfd, POLLIN, 0};
        long long now = harness_now_ms();
        long long timeout = IDLE_POLL_MS;
        for (size_t i = 0; i < n; i++) {
            pfds[i + 2] = (struct pollfd){s->conns[i].fd, POLLIN, 0};
            if (s->conns[i].state == C_WAIT) {
                long long left = s->conns[i].due_ms - now;
                if (left < timeout)
                    timeout = left < 0 ? 0 : left;
            }
        }
        int pr = poll(pfds, (nfds_t)(n + 2), (int)timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr > 0 && (pfds[0].revents & POLLIN)) {
            char tmp[64];
            while (read(s->wake[0], tmp, sizeof tmp) > 0) {
            }
        }
        for (size_t i = 0; i < n; i++) {
            conn_t *c = &s->conns[i];
            if (pr > 0 && pfds[i + 2].revents != 0 && !conn_read(c)) {
                conn_close(c);
                continue;
            }
            if (c->state == C_WAIT && harness_now_ms() >= c->due_ms) {
                reply_t r = c->reply;
                c->state = C_READ;
                conn_send_reply(c, &r);
                reply_free(&r);
            }
            conn_process(s, c);
        }
        if (pr > 0 && (pfds[1].revents & POLLIN))
            accept_all(s);
        /* Drop closed connections (order does not matter). */
        for (size_t i = 0; i < s->n_conns;) {
            if (s->conns[i].dead)
                s->conns[i] = s->conns[--s->n_conns];
            else
                i++;
        }
    }
    for (size_t i = 0; i < s->n_conns; i++)
        conn_close(&s->conns[i]);
    s->n_conns = 0;
    free(pfds);
    return NULL;
}

/* ---------------------------------------------------------------- public */

stub_dest_t *stub_dest_start(void)
{
    stub_dest_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->lfd = -1;
    s->wake[0] = s->wake[1] = -1;
    s->def = (reply_t){.status = 200};
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);

    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        goto fail;
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 1024) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &alen) != 0)
        goto fail;
    s->port = ntohs(a.sin_port);
    if (pipe2(s->wake, O_NONBLOCK | O_CLOEXEC) != 0)
        goto fail;
    if (pthread_create(&s->thread, NULL, serve, s) != 0)
        goto fail;
    s->thread_started = true;
    return s;
fail:
    fprintf(stderr, "stub_dest: cannot start: %s\n", strerror(errno));
    stub_dest_stop(s);
    return NULL;
}

void stub_dest_stop(stub_dest_t *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, true);
    if (s->thread_started) {
        ssize_t w = write(s->wake[1], "x", 1);
        (void)w;
        pthread_join(s->thread, NULL);
    }
    if (s->lfd >= 0)
        close(s->lfd);
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    for (size_t i = 0; i < s->n_reqs; i++)
        stub_req_free(&s->reqs[i]);
    free(s->reqs);
    for (size_t i = 0; i < s->q_len; i++)
        reply_free(&s->queue[s->q_head + i]);
    free(s->queue);
    reply_free(&s->def);
    free(s->conns);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int stub_dest_port(const stub_dest_t *s)
{
    return s->port;
}

void stub_dest_url(const stub_dest_t *s, char *out, size_t size)
{
    snprintf(out, size, "http://127.0.0.1:%d", s->port);
}

void stub_dest_push(stub_dest_t *s, const stub_reply_t *r)
{
    reply_t c = reply_copy(r);
    pthread_mutex_lock(&s->mu);
    if (s->q_head + s->q_len == s->q_cap) {
        if (s->q_head > 0) {
            memmove(s->queue, s->queue + s->q_head, s->q_len * sizeof *s->queue);
            s->q_head = 0;
        }
        if (s->q_len == s->q_cap) {
            s->q_cap = s->q_cap ? s->q_cap * 2 : 16;
            s->queue = xrealloc(s->queue, s->q_cap * sizeof *s->queue);
        }
    }
    s->queue[s->q_head + s->q_len++] = c;
    pthread_mutex_unlock(&s->mu);
}

void stub_dest_push_status(stub_dest_t *s, int status, const char *headers, const char *body)
{
    stub_reply_t r = {.status = status, .headers = headers, .body = body};
    stub_dest_push(s, &r);
}

void stub_dest_set_default(stub_dest_t *s, const stub_reply_t *r)
{
    reply_t c = reply_copy(r);
    pthread_mutex_lock(&s->mu);
    reply_free(&s->def);
    s->def = c;
    pthread_mutex_unlock(&s->mu);
}

void stub_dest_reset(stub_dest_t *s)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->q_len; i++)
        reply_free(&s->queue[s->q_head + i]);
    s->q_head = s->q_len = 0;
    reply_free(&s->def);
    s->def = (reply_t){.status = 200};
    pthread_mutex_unlock(&s->mu);
}

size_t stub_dest_queued(stub_dest_t *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->q_len;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t stub_dest_count(stub_dest_t *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n_reqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static size_t count_key_locked(const stub_dest_t *s, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_reqs; i++)
        if (strcmp(s->reqs[i].idempotency_key, key) == 0)
            n++;
    return n;
}

size_t stub_dest_count_key(stub_dest_t *s, const char *key)
{
    pthread_mutex_lock(&s->mu);
    size_t n = count_key_locked(s, key);
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t stub_dest_distinct_keys(stub_dest_t *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = 0;
    for (size_t i = 0; i < s->n_reqs; i++) {
        const char *k = s->reqs[i].idempotency_key;
        if (k[0] == '\0')
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(s->reqs[j].idempotency_key, k) == 0;
        if (!seen)
            n++;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

bool stub_dest_get(stub_dest_t *s, size_t i, stub_req_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    if (i >= s->n_reqs) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    const stub_req_t *r = &s->reqs[i];
    out->method = dup_or_null(r->method);
    out->path = dup_or_null(r->path);
    out->headers = dup_or_null(r->headers);
    out->body = xstrndup(r->body, r->body_len);
    out->body_len = r->body_len;
    out->at_ms = r->at_ms;
    out->idempotency_key = dup_or_null(r->idempotency_key);
    pthread_mutex_unlock(&s->mu);
    out->json = json_loadb(out->body, out->body_len, 0, NULL);
    return true;
}

/* Wait on the condition until pred() holds or the deadline passes. */
static bool wait_until(stub_dest_t *s, int deadline_ms, bool (*pred)(stub_dest_t *, const void *),
                       const void *arg)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += deadline_ms / 1000;
    end.tv_nsec += (long)(deadline_ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    bool ok;
    while (!(ok = pred(s, arg))) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &end) == ETIMEDOUT) {
            ok = pred(s, arg);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static bool have_n(stub_dest_t *s, const void *arg)
{
    return s->n_reqs >= *(const size_t *)arg;
}

bool stub_dest_wait(stub_dest_t *s, size_t n, int deadline_ms)
{
    return wait_until(s, deadline_ms, have_n, &n);
}

typedef struct key_n {
    const char *key;
    size_t n;
} key_n_t;

static bool have_key_n(stub_dest_t *s, const void *arg)
{
    const key_n_t *k = arg;
    return count_key_locked(s, k->key) >= k->n;
}

bool stub_dest_wait_key(stub_dest_t *s, const char *key, size_t n, int deadline_ms)
{
    key_n_t k = {key, n};
    return wait_until(s, deadline_ms, have_key_n, &k);
}

void stub_req_free(stub_req_t *r)
{
    if (r == NULL)
        return;
    free(r->method);
    free(r->path);
    free(r->headers);
    free(r->body);
    free(r->idempotency_key);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

bool stub_req_header(const stub_req_t *r, const char *name, char *out, size_t size)
{
    if (r == NULL || r->headers == NULL)
        return false;
    return harness_header_copy(r->headers, strlen(r->headers), name, out, size);
}
