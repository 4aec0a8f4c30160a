/*
 * chaos_dest.c - destination stand-in with fault modes (see chaos.h). It extends what
 * stub_dest.c does (a loopback HTTP/1.1 server in its own thread, requests framed by
 * Content-Length, keep-alive) with faults drawn per delivery and a delivery log that knows when
 * each answer finished and whether another delivery of the same key was in flight.
 *
 * One thread runs a poll() loop. Each connection holds at most one delivery at a time:
 * READ (parsing) -> WAIT (latency) -> WRITE (the answer, all at once or one byte per drip_ms)
 * -> READ; or HUNG (never answered) until the client leaves. A delivery is "in flight" from the
 * moment its request was read until its answer was written whole or the client left.
 */
#include "chaos.h"
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
#include <unistd.h>

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (8 * 1024 * 1024)
#define MAX_KEY_POLICIES 64

typedef enum { C_READ, C_WAIT, C_WRITE, C_HUNG } cstate_t;

typedef struct conn {
    int fd;
    char *in;
    size_t in_len, in_cap;
    cstate_t state;
    long cur;            /* delivery index in the log, -1 none */
    chaos_fault_t fault;
    long long due_us;    /* WAIT: when to answer; WRITE with drip: next byte */
    char *out;
    size_t out_len, out_off;
    int drip_ms;
    bool close_after;
    bool dead;
} conn_t;

typedef struct key_policy {
    char key[64];
    chaos_dest_policy_t p;
    bool used;
} key_policy_t;

struct chaos_dest {
    int lfd, port;
    int wake[2];
    pthread_t thread;
    bool started;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chaos_dest_policy_t policy;
    char redirect_to[256];
    key_policy_t keys[MAX_KEY_POLICIES];
    chaos_delivery_t *log;
    size_t n_log, cap_log;
    chaos_map_t *in_flight_by_key;
    chaos_map_t *count_by_key;
    chaos_map_t *faults_by_key;
    size_t in_flight;
    int max_overlap;
    uint64_t rng;
    /* the thread's own */
    conn_t *conns;
    size_t n_conns, cap_conns;
};

static const char *const fault_names[CD_N_FAULTS] = {"ok",   "5xx",  "429",      "hang",
                                                     "drip", "huge", "redirect", "reset"};

const char *chaos_fault_name(chaos_fault_t f)
{
    return f >= 0 && f < CD_N_FAULTS ? fault_names[f] : "?";
}

static double rnd(chaos_dest_t *d)
{
    return chaos_rand(&d->rng);
}

/* ---------------------------------------------------------------- the log (under mu) */

static void finish_locked(chaos_dest_t *d, long idx, bool completed)
{
    if (idx < 0 || (size_t)idx >= d->n_log)
        return;
    chaos_delivery_t *e = &d->log[idx];
    if (e->finish_us != 0)
        return;
    e->finish_us = chaos_now_us();
    e->completed = completed;
    d->in_flight--;
    long *n = chaos_map_get(d->in_flight_by_key, e->key);
    if (n && *n > 0)
        (*n)--;
    pthread_cond_broadcast(&d->cv);
}

static void finish(chaos_dest_t *d, conn_t *c, bool completed)
{
    if (c->cur < 0)
        return;
    pthread_mutex_lock(&d->mu);
    finish_locked(d, c->cur, completed);
    pthread_mutex_unlock(&d->mu);
    c->cur = -1;
}

/* ---------------------------------------------------------------- connections */

static void conn_close(chaos_dest_t *d, conn_t *c, bool reset)
{
    finish(d, c, false);
    if (c->fd >= 0) {
        if (reset) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(c->fd);
    }
    c->fd = -1;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->dead = true;
}

static char *build_answer(const chaos_dest_policy_t *p, chaos_fault_t f, const char *redirect,
                          bool close_after, size_t *len, int *status)
{
    char head[512];
    const char *extra = "";
    char extra_buf[300];
    char *body = NULL;
    size_t blen = 0;
    int st = 200;
    switch (f) {
    case CD_5XX:
        st = p->status_5xx > 0 ? p->status_5xx : 500;
        body = strdup("{\"detail\":\"chaos: server error\"}");
        if (st == 503) {
            snprintf(extra_buf, sizeof extra_buf, "Retry-After: %d\r\n",
                     p->retry_after_s > 0 ? p->retry_after_s : 1);
            extra = extra_buf;
        }
        break;
    case CD_429:
        st = 429;
        body = strdup("{\"detail\":\"chaos: slow down\"}");
        snprintf(extra_buf, sizeof extra_buf, "Retry-After: %d\r\n",
                 p->retry_after_s > 0 ? p->retry_after_s : 1);
        extra = extra_buf;
        break;
    case CD_HUGE: {
        blen = p->huge_bytes > 0 ? p->huge_bytes : 4u << 20;
        body = malloc(blen + 1);
        if (body == NULL)
            abort();
        memset(body, 'x', blen);
        memcpy(body, "{\"pad\":\"", 8);
        memcpy(body + blen - 2, "\"}", 2);
        body[blen] = '\0';
        break;
    }
    case CD_REDIRECT:
        st = 307;
        body = strdup("{}");
        snprintf(extra_buf, sizeof extra_buf, "Location: %s\r\n", redirect);
        extra = extra_buf;
        break;
    case CD_DRIP:
        body = strdup("{\"received\":true,\"pad\":\"................................\"}");
        break;
    default:
        body = strdup("{\"received\":true}");
        break;
    }
    if (blen == 0)
        blen = strlen(body);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "%s%s\r\n",
                      st, st == 200 ? "OK" : "Chaos", blen, extra,
                      close_after ? "Connection: close\r\n" : "");
    char *out = malloc((size_t)hl + blen);
    if (out == NULL)
        abort();
    memcpy(out, head, (size_t)hl);
    memcpy(out + hl, body, blen);
    free(body);
    *len = (size_t)hl + blen;
    *status = st;
    return out;
}

/* A complete request: log it, decide its fate. */
static void on_request(chaos_dest_t *d, conn_t *c, const char *path, size_t pl, const char *hdrs,
                       size_t hlen, const char *body, size_t blen)
{
    chaos_delivery_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.path, sizeof e.path, "%.*s", (int)(pl < sizeof e.path ? pl : sizeof e.path - 1),
             path);
    harness_header_copy(hdrs, hlen, "Idempotency-Key", e.key, sizeof e.key);
    e.body_hash = chaos_hash(body, blen);
    e.arrive_us = chaos_now_us();

    pthread_mutex_lock(&d->mu);
    chaos_dest_policy_t p = d->policy;
    for (int i = 0; i < MAX_KEY_POLICIES; i++)
        if (d->keys[i].used && strcmp(d->keys[i].key, e.key) == 0)
            p = d->keys[i].p;
    long *cnt = chaos_map_put(d->count_by_key, e.key);
    long before = (*cnt)++;
    long *faults = chaos_map_put(d->faults_by_key, e.key);
    chaos_fault_t f = CD_OK;
    if (before < p.fail_first) {
        f = p.fail_fault;
    } else if (p.fault_cap > 0 && *faults >= p.fault_cap) {
        f = CD_OK;
    } else {
        double r;
        if ((r = rnd(d)) < p.p_5xx)
            f = CD_5XX;
        else if ((r = rnd(d)) < p.p_429)
            f = CD_429;
        else if ((r = rnd(d)) < p.p_hang)
            f = CD_HANG;
        else if ((r = rnd(d)) < p.p_drip)
            f = CD_DRIP;
        else if ((r = rnd(d)) < p.p_huge)
            f = CD_HUGE;
        else if ((r = rnd(d)) < p.p_redirect)
            f = CD_REDIRECT;
        else if ((r = rnd(d)) < p.p_reset)
            f = CD_RESET;
    }
    if (f != CD_OK)
        (*faults)++;
    int delay = p.latency_ms + (p.jitter_ms > 0 ? (int)(rnd(d) * p.jitter_ms) : 0);
    long *inf = chaos_map_put(d->in_flight_by_key, e.key);
    e.overlap = e.key[0] ? (int)*inf : 0;
    (*inf)++;
    if (e.overlap > d->max_overlap)
        d->max_overlap = e.overlap;
    e.fault = f;
    if (d->n_log == d->cap_log) {
        d->cap_log = d->cap_log ? d->cap_log * 2 : 1024;
        d->log = chaos_xrealloc(d->log, d->cap_log * sizeof *d->log);
    }
    long idx = (long)d->n_log;
    d->in_flight++;
    size_t out_len = 0;
    int status = 0;
    char *out = NULL;
    if (f != CD_HANG && f != CD_RESET)
        out = build_answer(&p, f, p.redirect_to ? p.redirect_to : "http://127.0.0.1:9/elsewhere",
                           c->close_after, &out_len, &status);
    e.status = status;
    d->log[d->n_log++] = e;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);

    c->cur = idx;
    c->fault = f;
    c->out = out;
    c->out_len = out_len;
    c->out_off = 0;
    c->drip_ms = f == CD_DRIP ? (p.drip_ms > 0 ? p.drip_ms : 20) : 0;
    if (f == CD_HANG) {
        c->state = C_HUNG;
    } else {
        c->state = C_WAIT;
        c->due_us = e.arrive_us + (long long)delay * 1000;
    }
}

/* Parse complete requests while the connection is free. */
static void conn_process(chaos_dest_t *d, conn_t *c)
{
    while (!c->dead && c->state == C_READ) {
        char *hend = c->in_len >= 4 ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL;
        if (hend == NULL) {
            if (c->in_len > MAX_HEAD)
                conn_close(d, c, false);
            return;
        }
        size_t head_len = (size_t)(hend - c->in) + 4;
        char *line_end = memmem(c->in, head_len, "\r\n", 2);
        const char *sp1 = memchr(c->in, ' ', (size_t)(line_end - c->in));
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
        if (sp1 == NULL || sp2 == NULL) {
            conn_close(d, c, false);
            return;
        }
        const char *hdrs = line_end + 2;
        size_t hlen = (size_t)(hend + 2 - hdrs);
        char v[64];
        long long cl = 0;
        if (harness_header_copy(hdrs, hlen, "Content-Length", v, sizeof v))
            cl = strtoll(v, NULL, 10);
        if (cl < 0 || cl > MAX_BODY) {
            conn_close(d, c, false);
            return;
        }
        c->close_after = harness_header_copy(hdrs, hlen, "Connection", v, sizeof v) &&
                         strcasecmp(v, "close") == 0;
        if (c->in_len < head_len + (size_t)cl) {
            if (harness_header_copy(hdrs, hlen, "Expect", v, sizeof v) &&
                strcasecmp(v, "100-continue") == 0 && c->in_len == head_len) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL) < 0)
                    conn_close(d, c, false);
            }
            return;
        }
        on_request(d, c, sp1 + 1, (size_t)(sp2 - sp1 - 1), hdrs, hlen, c->in + head_len,
                   (size_t)cl);
        size_t used = head_len + (size_t)cl;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
    }
}

/* Read what is there; false when the peer has gone. */
static bool conn_read(conn_t *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 16384) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 32768;
            c->in = chaos_xrealloc(c->in, c->in_cap);
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            if (c->in_len > MAX_HEAD + MAX_BODY)
                return false;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        return false;
    }
}

/* Write what may be written now. */
static void conn_write(chaos_dest_t *d, conn_t *c)
{
    long long now = chaos_now_us();
    while (c->state == C_WRITE && c->out_off < c->out_len) {
        if (c->drip_ms > 0 && now < c->due_us)
            return;
        size_t n = c->drip_ms > 0 ? 1 : c->out_len - c->out_off;
        ssize_t w = send(c->fd, c->out + c->out_off, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w <= 0) {
            conn_close(d, c, false);
            return;
        }
        c->out_off += (size_t)w;
        if (c->drip_ms > 0)
            c->due_us = now + (long long)c->drip_ms * 1000;
    }
    if (c->state == C_WRITE && c->out_off >= c->out_len) {
        finish(d, c, true);
        free(c->out);
        c->out = NULL;
        c->state = C_READ;
        if (c->close_after)
            conn_close(d, c, false);
    }
}

static void accept_all(chaos_dest_t *d)
{
    for (;;) {
        int fd = accept4(d->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (d->n_conns == d->cap_conns) {
            d->cap_conns = d->cap_conns ? d->cap_conns * 2 : 64;
            d->conns = chaos_xrealloc(d->conns, d->cap_conns * sizeof *d->conns);
        }
        conn_t *c = &d->conns[d->n_conns++];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->cur = -1;
        c->state = C_READ;
    }
}

static void *serve(void *arg)
{
    chaos_dest_t *d = arg;
    struct pollfd *pf = NULL;
    size_t pcap = 0;
    while (!atomic_load(&d->stop)) {
        size_t n = d->n_conns;
        if (pcap < n + 2) {
            pcap = (n + 2) * 2;
            pf = chaos_xrealloc(pf, pcap * sizeof *pf);
        }
        pf[0] = (struct pollfd){d->wake[0], POLLIN, 0};
        pf[1] = (struct pollfd){d->lfd, POLLIN, 0};
        long long now = chaos_now_us();
        long long timeout_us = 200000;
        for (size_t i = 0; i < n; i++) {
            conn_t *c = &d->conns[i];
            short ev = POLLIN;
            if (c->state == C_WAIT || (c->state == C_WRITE && c->drip_ms > 0)) {
                long long left = c->due_us - now;
                if (left < timeout_us)
                    timeout_us = left < 0 ? 0 : left;
            }
            if (c->state == C_WRITE && c->drip_ms == 0)
                ev |= POLLOUT;
            pf[i + 2] = (struct pollfd){c->fd, ev, 0};
        }
        int pr = poll(pf, (nfds_t)(n + 2), (int)((timeout_us + 999) / 1000));
        if (pr < 0 && errno != EINTR)
            break;
        if (pr > 0 && (pf[0].revents & POLLIN)) {
            char tmp[64];
            while (read(d->wake[0], tmp, sizeof tmp) > 0) {
            }
        }
        now = chaos_now_us();
        for (size_t i = 0; i < n; i++) {
            conn_t *c = &d->conns[i];
            if (c->dead)
                continue;
            if (pr > 0 && (pf[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) && !conn_read(c)) {
                conn_close(d, c, false);
                continue;
            }
            if (c->state == C_WAIT && now >= c->due_us) {
                if (c->fault == CD_RESET) {
                    conn_close(d, c, true);
                    continue;
                }
                c->state = C_WRITE;
                c->due_us = now;
            }
            if (c->state == C_WRITE)
                conn_write(d, c);
            if (!c->dead)
                conn_process(d, c);
            if (!c->dead && c->state == C_WAIT && now >= c->due_us) {
                /* answered at once (no latency): write in the same round */
                if (c->fault == CD_RESET) {
                    conn_close(d, c, true);
                    continue;
                }
                c->state = C_WRITE;
                c->due_us = now;
                conn_write(d, c);
            }
        }
        if (pr > 0 && (pf[1].revents & POLLIN))
            accept_all(d);
        for (size_t i = 0; i < d->n_conns;) {
            if (d->conns[i].dead)
                d->conns[i] = d->conns[--d->n_conns];
            else
                i++;
        }
    }
    for (size_t i = 0; i < d->n_conns; i++)
        conn_close(d, &d->conns[i], false);
    d->n_conns = 0;
    free(pf);
    return NULL;
}

/* ---------------------------------------------------------------- public */

chaos_dest_t *chaos_dest_start(const chaos_dest_policy_t *policy, unsigned seed)
{
    chaos_dest_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->lfd = -1;
    d->wake[0] = d->wake[1] = -1;
    d->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed * 0x100000001B3ULL) ^ 1;
    if (policy)
        d->policy = *policy;
    d->in_flight_by_key = chaos_map_new();
    d->count_by_key = chaos_map_new();
    d->faults_by_key = chaos_map_new();
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    d->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->lfd < 0)
        goto fail;
    int one = 1;
    setsockopt(d->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(d->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(d->lfd, 4096) != 0 ||
        getsockname(d->lfd, (struct sockaddr *)&a, &alen) != 0)
        goto fail;
    d->port = ntohs(a.sin_port);
    if (pipe2(d->wake, O_NONBLOCK | O_CLOEXEC) != 0)
        goto fail;
    if (pthread_create(&d->thread, NULL, serve, d) != 0)
        goto fail;
    d->started = true;
    return d;
fail:
    fprintf(stderr, "chaos_dest: cannot start: %s\n", strerror(errno));
    chaos_dest_stop(d);
    return NULL;
}

void chaos_dest_stop(chaos_dest_t *d)
{
    if (d == NULL)
        return;
    atomic_store(&d->stop, true);
    if (d->started) {
        ssize_t w = write(d->wake[1], "x", 1);
        (void)w;
        pthread_join(d->thread, NULL);
    }
    if (d->lfd >= 0)
        close(d->lfd);
    for (int i = 0; i < 2; i++)
        if (d->wake[i] >= 0)
            close(d->wake[i]);
    free(d->conns);
    free(d->log);
    chaos_map_free(d->in_flight_by_key);
    chaos_map_free(d->count_by_key);
    chaos_map_free(d->faults_by_key);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

int chaos_dest_port(const chaos_dest_t *d)
{
    return d->port;
}

void chaos_dest_url(const chaos_dest_t *d, char *out, size_t size)
{
    snprintf(out, size, "http://127.0.0.1:%d", d->port);
}

void chaos_dest_set_policy(chaos_dest_t *d, const chaos_dest_policy_t *policy)
{
    pthread_mutex_lock(&d->mu);
    if (policy)
        d->policy = *policy;
    else
        memset(&d->policy, 0, sizeof d->policy);
    pthread_mutex_unlock(&d->mu);
}

void chaos_dest_set_key_policy(chaos_dest_t *d, const char *key, const chaos_dest_policy_t *p)
{
    pthread_mutex_lock(&d->mu);
    int slot = -1;
    for (int i = 0; i < MAX_KEY_POLICIES; i++) {
        if (d->keys[i].used && strcmp(d->keys[i].key, key) == 0)
            slot = i;
        else if (slot < 0 && !d->keys[i].used && p != NULL)
            slot = i;
    }
    if (slot >= 0) {
        if (p == NULL) {
            d->keys[slot].used = false;
        } else {
            d->keys[slot].used = true;
            snprintf(d->keys[slot].key, sizeof d->keys[slot].key, "%s", key);
            d->keys[slot].p = *p;
        }
    }
    pthread_mutex_unlock(&d->mu);
}

size_t chaos_dest_count(chaos_dest_t *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->n_log;
    pthread_mutex_unlock(&d->mu);
    return n;
}

size_t chaos_dest_count_key(chaos_dest_t *d, const char *key)
{
    pthread_mutex_lock(&d->mu);
    long *v = chaos_map_get(d->count_by_key, key);
    size_t n = v ? (size_t)*v : 0;
    pthread_mutex_unlock(&d->mu);
    return n;
}

size_t chaos_dest_in_flight(chaos_dest_t *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->in_flight;
    pthread_mutex_unlock(&d->mu);
    return n;
}

int chaos_dest_max_overlap(chaos_dest_t *d)
{
    pthread_mutex_lock(&d->mu);
    int n = d->max_overlap;
    pthread_mutex_unlock(&d->mu);
    return n;
}

size_t chaos_dest_log(chaos_dest_t *d, chaos_delivery_t **out)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->n_log;
    *out = malloc((n ? n : 1) * sizeof **out);
    if (*out == NULL)
        abort();
    if (n)
        memcpy(*out, d->log, n * sizeof **out);
    pthread_mutex_unlock(&d->mu);
    return n;
}

static bool wait_pred(chaos_dest_t *d, const char *key, size_t n, int deadline_ms)
{
    struct timespec end;
    chaos_deadline_ts(&end, deadline_ms);
    pthread_mutex_lock(&d->mu);
    bool ok;
    for (;;) {
        if (key) {
            long *v = chaos_map_get(d->count_by_key, key);
            ok = v && (size_t)*v >= n;
        } else {
            ok = d->n_log >= n;
        }
        if (ok || pthread_cond_timedwait(&d->cv, &d->mu, &end) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&d->mu);
    return ok;
}

bool chaos_dest_wait_count(chaos_dest_t *d, size_t n, int deadline_ms)
{
    return wait_pred(d, NULL, n, deadline_ms);
}

bool chaos_dest_wait_key(chaos_dest_t *d, const char *key, size_t n, int deadline_ms)
{
    return wait_pred(d, key, n, deadline_ms);
}

void chaos_dest_write_log(chaos_dest_t *d, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    chaos_delivery_t *log;
    size_t n = chaos_dest_log(d, &log);
    fprintf(f, "key\tpath\tbody_hash\tarrive_us\tfinish_us\tstatus\tfault\tcompleted\toverlap\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\t%s\t%016llx\t%lld\t%lld\t%d\t%s\t%d\t%d\n", log[i].key, log[i].path,
                (unsigned long long)log[i].body_hash, log[i].arrive_us, log[i].finish_us,
                log[i].status, chaos_fault_name(log[i].fault), log[i].completed, log[i].overlap);
    free(log);
    fclose(f);
}
