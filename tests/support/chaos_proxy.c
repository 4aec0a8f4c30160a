/*
 * chaos_proxy.c - userspace TCP fault proxy (see chaos.h): there is no netem here, so a gateway
 * reaches Redis through this when a test needs to delay, black-hole or reset its link.
 *
 * One thread, one poll loop. Each accepted connection gets its own upstream connection; bytes
 * read from one side are queued as chunks with a due time (now, or now + delay) and written to
 * the other side when due. Black-hole: nothing is read or written (the kernel buffers fill, the
 * peers see silence; what was held flows when the mode returns to pass, as TCP retransmits after
 * a partition heals). Reset: every pair is closed with SO_LINGER 0 (RST to both peers), and new
 * connections are reset at once while the mode lasts.
 */
#include "chaos.h"

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
#include <sys/socket.h>
#include <unistd.h>

typedef struct chunk {
    struct chunk *next;
    long long due_us;
    size_t len, off;
    char data[];
} chunk_t;

typedef struct dir {
    chunk_t *head, *tail;
    bool eof; /* the source side closed */
} dir_t;

typedef struct pair {
    int fd[2];   /* 0 client, 1 upstream */
    dir_t d[2];  /* d[0]: client -> upstream, d[1]: upstream -> client */
    bool dead;
} pair_t;

struct chaos_proxy {
    int lfd, port, upstream;
    int wake[2];
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_int mode;
    atomic_int delay_ms;
    atomic_bool reset_now;
    atomic_size_t n_pairs;
    pair_t *pairs;
    size_t n, cap;
};

static void dir_clear(dir_t *d)
{
    while (d->head) {
        chunk_t *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
}

static void pair_close(pair_t *p, bool reset)
{
    for (int i = 0; i < 2; i++) {
        if (p->fd[i] >= 0) {
            if (reset) {
                struct linger lg = {1, 0};
                setsockopt(p->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
            close(p->fd[i]);
            p->fd[i] = -1;
        }
        dir_clear(&p->d[i]);
    }
    p->dead = true;
}

static int connect_upstream(int port)
{
    int fd = harness_raw_connect(port);
    if (fd < 0)
        return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void accept_all(chaos_proxy_t *p)
{
    for (;;) {
        int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (atomic_load(&p->mode) == CP_RESET) {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(fd);
            continue;
        }
        int up = connect_upstream(p->upstream);
        if (up < 0) {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 16;
            p->pairs = realloc(p->pairs, p->cap * sizeof *p->pairs);
            if (p->pairs == NULL)
                abort();
        }
        pair_t *pr = &p->pairs[p->n++];
        memset(pr, 0, sizeof *pr);
        pr->fd[0] = fd;
        pr->fd[1] = up;
    }
}

/* Read from side s into direction s; false on EOF/error (data already queued stays). */
static bool pump_in(pair_t *pr, int s, long long due)
{
    for (;;) {
        char buf[65536];
        ssize_t n = recv(pr->fd[s], buf, sizeof buf, 0);
        if (n > 0) {
            chunk_t *c = malloc(sizeof *c + (size_t)n);
            if (c == NULL)
                abort();
            c->next = NULL;
            c->due_us = due;
            c->len = (size_t)n;
            c->off = 0;
            memcpy(c->data, buf, (size_t)n);
            if (pr->d[s].tail)
                pr->d[s].tail->next = c;
            else
                pr->d[s].head = c;
            pr->d[s].tail = c;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        pr->d[s].eof = true;
        return false;
    }
}

/* Write due chunks of direction s to the other side; false on error. */
static bool pump_out(pair_t *pr, int s, long long now)
{
    dir_t *d = &pr->d[s];
    int to = pr->fd[1 - s];
    while (d->head && d->head->due_us <= now) {
        chunk_t *c = d->head;
        ssize_t w = send(to, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (w <= 0)
            return false;
        c->off += (size_t)w;
        if (c->off == c->len) {
            d->head = c->next;
            if (d->head == NULL)
                d->tail = NULL;
            free(c);
        }
    }
    return true;
}

static void *serve(void *arg)
{
    chaos_proxy_t *p = arg;
    struct pollfd *pf = NULL;
    size_t pcap = 0;
    while (!atomic_load(&p->stop)) {
        if (atomic_exchange(&p->reset_now, false)) {
            for (size_t i = 0; i < p->n; i++)
                pair_close(&p->pairs[i], true);
        }
        int mode = atomic_load(&p->mode);
        bool hold = mode == CP_BLACKHOLE;
        long long now = chaos_now_us();
        long long timeout_us = 100000;
        size_t n = p->n;
        if (pcap < 2 * n + 2) {
            pcap = (2 * n + 2) * 2;
            pf = realloc(pf, pcap * sizeof *pf);
            if (pf == NULL)
                abort();
        }
        pf[0] = (struct pollfd){p->wake[0], POLLIN, 0};
        pf[1] = (struct pollfd){p->lfd, POLLIN, 0};
        for (size_t i = 0; i < n; i++) {
            pair_t *pr = &p->pairs[i];
            for (int s = 0; s < 2; s++) {
                short ev = 0;
                if (!hold && !pr->dead) {
                    if (!pr->d[s].eof)
                        ev |= POLLIN;
                    dir_t *od = &pr->d[1 - s]; /* what goes out on this fd */
                    if (od->head) {
                        if (od->head->due_us <= now)
                            ev |= POLLOUT;
                        else if (od->head->due_us - now < timeout_us)
                            timeout_us = od->head->due_us - now;
                    }
                }
                pf[2 + 2 * i + (size_t)s] =
                    (struct pollfd){pr->dead || hold ? -1 : pr->fd[s], ev, 0};
            }
        }
        int rc = poll(pf, (nfds_t)(2 * n + 2), (int)((timeout_us + 999) / 1000));
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0 && (pf[0].revents & POLLIN)) {
            char tmp[64];
            while (read(p->wake[0], tmp, sizeof tmp) > 0) {
            }
        }
        mode = atomic_load(&p->mode);
        hold = mode == CP_BLACKHOLE;
        now = chaos_now_us();
        long long due = now + (mode == CP_DELAY ? (long long)atomic_load(&p->delay_ms) * 1000 : 0);
        for (size_t i = 0; i < n && !hold; i++) {
            pair_t *pr = &p->pairs[i];
            if (pr->dead)
                continue;
            bool ok = true;
            for (int s = 0; s < 2 && ok; s++)
                if (rc > 0 && (pf[2 + 2 * i + (size_t)s].revents & (POLLIN | POLLHUP | POLLERR)) &&
                    !pr->d[s].eof)
                    pump_in(pr, s, due);
            for (int s = 0; s < 2 && ok; s++)
                ok = pump_out(pr, s, now);
            /* Close once a side has gone and everything toward the other was written. */
            bool gone = false;
            for (int s = 0; s < 2; s++)
                if (pr->d[s].eof && pr->d[s].head == NULL)
                    gone = true;
            if (!ok || gone)
                pair_close(pr, false);
        }
        if (rc > 0 && (pf[1].revents & POLLIN))
            accept_all(p);
        for (size_t i = 0; i < p->n;) {
            if (p->pairs[i].dead)
                p->pairs[i] = p->pairs[--p->n];
            else
                i++;
        }
        atomic_store(&p->n_pairs, p->n);
    }
    for (size_t i = 0; i < p->n; i++)
        pair_close(&p->pairs[i], false);
    free(pf);
    return NULL;
}

chaos_proxy_t *chaos_proxy_start(int upstream_port)
{
    chaos_proxy_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->upstream = upstream_port;
    p->wake[0] = p->wake[1] = -1;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->lfd < 0)
        goto fail;
    int one = 1;
    setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(p->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->lfd, 256) != 0 ||
        getsockname(p->lfd, (struct sockaddr *)&a, &alen) != 0)
        goto fail;
    p->port = ntohs(a.sin_port);
    if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) != 0)
        goto fail;
    if (pthread_create(&p->thread, NULL, serve, p) != 0)
        goto fail;
    p->started = true;
    return p;
fail:
    chaos_proxy_stop(p);
    return NULL;
}

int chaos_proxy_port(const chaos_proxy_t *p)
{
    return p->port;
}

void chaos_proxy_set(chaos_proxy_t *p, chaos_proxy_mode_t mode, int delay_ms)
{
    atomic_store(&p->delay_ms, delay_ms);
    atomic_store(&p->mode, (int)mode);
    if (mode == CP_RESET)
        atomic_store(&p->reset_now, true);
    ssize_t w = write(p->wake[1], "x", 1);
    (void)w;
}

size_t chaos_proxy_conns(chaos_proxy_t *p)
{
    return atomic_load(&p->n_pairs);
}

void chaos_proxy_stop(chaos_proxy_t *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stop, true);
    if (p->started) {
        ssize_t w = write(p->wake[1], "x", 1);
        (void)w;
        pthread_join(p->thread, NULL);
    }
    if (p->lfd >= 0)
        close(p->lfd);
    for (int i = 0; i < 2; i++)
        if (p->wake[i] >= 0)
            close(p->wake[i]);
    free(p->pairs);
    free(p);
}
