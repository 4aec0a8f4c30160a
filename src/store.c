/*
 * store.c - asynchronous Redis connection with deadlines and reconnects (see store.h).
 *
 * Every command, ours (the connect handshake) or a caller's, is a store_cmd_t linked into one
 * FIFO in send order. Redis answers in order, so the list head is always the oldest command and
 * one timer armed at its deadline guards them all. A command is "done" once its callback has been
 * called; hiredis still owns its privdata pointer until hiredis calls back (possibly with a NULL
 * reply during redisAsyncFree), which is where the struct is freed: one free per command, one
 * user callback per command, whichever of reply, timeout, disconnect or close comes first.
 */
#include "store.h"

#include "config.h"
#include "log.h"
#include "util/cr.h"
#include "util/buf.h"
#include "util/crypto.h"

#include <arpa/inet.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <netdb.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char STORE_ERR_DOWN[] = "redis unavailable";
const char STORE_ERR_TIMEOUT[] = "redis command timed out";
const char STORE_ERR_DISCONNECTED[] = "redis connection lost";
const char STORE_ERR_CLOSING[] = "redis client closing";

#define STORE_MAX_SCRIPTS 32
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

typedef enum {
    ST_IDLE = 0,   /* waiting for the reconnect timer */
    ST_RESOLVING,  /* uv_getaddrinfo in flight */
    ST_HANDSHAKE,  /* connecting; AUTH/SELECT/SCRIPT LOAD/PING queued */
    ST_READY,
    ST_CLOSING,
} store_state_t;

typedef struct store_cmd {
    struct store_cmd *prev, *next;
    store_t *store;
    uint64_t deadline;
    uint64_t sent_ns;
    store_reply_cb cb; /* NULL: a handshake command, handled by handshake_reply() */
    void *data;
    bool done;
    bool last_handshake;
} store_cmd_t;

struct store {
    uv_loop_t *loop;
    char *host;
    char *password;
    int port;
    int db;
    long timeout_ms;

    store_state_t state;
    redisAsyncContext *ac;
    uv_getaddrinfo_t gai;
    bool gai_active;
    uv_timer_t deadline_timer;
    uv_timer_t reconnect_timer;
    int handles_open;
    long backoff_ms;
    bool ever_ready;

    store_cmd_t list; /* sentinel of the in-flight FIFO */
    size_t in_flight;

    store_script_t *scripts[STORE_MAX_SCRIPTS];
    size_t n_scripts;

    store_stats_t stats;
    void (*observe)(double seconds, void *data);
    void *observe_data;
    void (*closed_cb)(void *data);
    void *closed_data;
};

static void begin_connect(store_t *s);
static void drop_connection(store_t *s, const char *why);
static void on_deadline(uv_timer_t *t);
static void on_reconnect_timer(uv_timer_t *t);
static void maybe_free(store_t *s);

/* ---------------------------------------------------------------- the in-flight FIFO */

static void arm_deadline(store_t *s)
{
    if (s->state == ST_CLOSING)
        return;
    store_cmd_t *head = s->list.next;
    if (head == &s->list) {
        uv_timer_stop(&s->deadline_timer);
        return;
    }
    uint64_t now = uv_now(s->loop);
    uint64_t wait = head->deadline > now ? head->deadline - now : 0;
    uv_timer_start(&s->deadline_timer, on_deadline, wait, 0);
}

static void unlink_cmd(store_cmd_t *c)
{
    if (c->prev == NULL)
        return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->store->in_flight--;
}

/* Call the user's callback of every command in flight with err; the structs stay with hiredis. */
static void fail_all(store_t *s, const char *err)
{
    while (s->list.next != &s->list) {
        store_cmd_t *c = s->list.next;
        unlink_cmd(c);
        c->done = true;
        if (c->cb)
            c->cb(NULL, err, c->data);
    }
}

static void on_cmd_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    store_cmd_t *c = privdata;
    store_t *s = c->store;
    const redisReply *reply = r;
    bool was_head = s->list.next == c;
    unlink_cmd(c);
    if (!c->done) {
        c->done = true;
        if (reply && s->observe)
            s->observe((double)(uv_hrtime() - c->sent_ns) / 1e9, s->observe_data);
        if (c->cb) {
            c->cb(reply, reply ? NULL : STORE_ERR_DISCONNECTED, c->data);
        } else if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            /* A handshake step failed (bad password, unknown database, script error): this
             * connection will never be usable, so start over after a backoff. */
            log_msg(LOG_ERROR, "redis handshake failed", "error",
                    reply ? reply->str : "no reply", NULL);
            free(c);
            if (reply != NULL)
                drop_connection(s, "handshake failed");
            return;
        } else if (c->last_handshake && s->state == ST_HANDSHAKE) {
            s->state = ST_READY;
            s->backoff_ms = 0;
            if (s->ever_ready)
                s->stats.reconnects++;
            s->ever_ready = true;
            char port[16];
            snprintf(port, sizeof port, "%d", s->port);
            log_msg(LOG_INFO, "redis ready", "host", s->host, "#port", port, NULL);
        }
    }
    free(c);
    if (was_head)
        arm_deadline(s);
}

static int send_formatted(store_t *s, const char *cmd, size_t len, store_reply_cb cb, void *data,
                          bool last_handshake)
{
    store_cmd_t *c = cr_calloc(1, sizeof *c);
    c->store = s;
    c->cb = cb;
    c->data = data;
    c->last_handshake = last_handshake;
    c->deadline = uv_now(s->loop) + (uint64_t)s->timeout_ms;
    c->sent_ns = uv_hrtime();
    if (redisAsyncFormattedCommand(s->ac, on_cmd_reply, c, cmd, len) != REDIS_OK) {
        free(c);
        return UV_ENOTCONN;
    }
    bool was_empty = s->list.next == &s->list;
    c->prev = s->list.prev;
    c->next = &s->list;
    s->list.prev->next = c;
    s->list.prev = c;
    s->in_flight++;
    s->stats.commands++;
    if (was_empty)
        arm_deadline(s);
    return 0;
}

/* The Redis protocol by hand: hiredis 0.14's redisFormatCommandArgv spends a sprintf on every
 * argument's length, which was a tenth of the gateway's instructions per request. One buffer,
 * reused: the loop is single-threaded and hiredis copies the command before we return. */
static buf_t g_fmt;

void store_resp_len(buf_t *b, char kind, size_t n)
{
    char tmp[24];
    size_t i = sizeof tmp;
    tmp[--i] = '\n';
    tmp[--i] = '\r';
    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    tmp[--i] = kind;
    buf_append(b, tmp + i, sizeof tmp - i);
}

void store_resp_arg(buf_t *b, const char *arg, size_t len)
{
    store_resp_len(b, '$', len);
    buf_append(b, arg, len);
    buf_append(b, "\r\n", 2);
}

/* Formats prefix (npre strings) followed by argv into g_fmt and sends it. */
static int send_parts(store_t *s, int npre, const char *const *pre, const size_t *prelen,
                      int argc, const char **argv, const size_t *argvlen, store_reply_cb cb,
                      void *data, bool last_handshake)
{
    buf_reset(&g_fmt);
    store_resp_len(&g_fmt, '*', (size_t)npre + (size_t)argc);
    for (int i = 0; i < npre; i++)
        store_resp_arg(&g_fmt, pre[i], prelen[i]);
    for (int i = 0; i < argc; i++)
        store_resp_arg(&g_fmt, argv[i], argvlen ? argvlen[i] : strlen(argv[i]));
    return send_formatted(s, g_fmt.data, g_fmt.len, cb, data, last_handshake);
}

static int send_argv(store_t *s, int argc, const char **argv, const size_t *argvlen,
                     store_reply_cb cb, void *data, bool last_handshake)
{
    return send_parts(s, 0, NULL, NULL, argc, argv, argvlen, cb, data, last_handshake);
}

/* ---------------------------------------------------------------- connection life cycle */

static void schedule_reconnect(store_t *s)
{
    if (s->state == ST_CLOSING)
        return;
    s->state = ST_IDLE;
    s->backoff_ms = s->backoff_ms ? CR_MIN(s->backoff_ms * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
    uint32_t r;
    crypto_random(&r, sizeof r);
    /* Full jitter on the upper half keeps many gateways from reconnecting in lock step. */
    uint64_t delay = (uint64_t)s->backoff_ms / 2 + r % ((uint64_t)s->backoff_ms / 2 + 1);
    uv_timer_start(&s->reconnect_timer, on_reconnect_timer, delay, 0);
}

/* Forget the current context: fail what is in flight, free it, reconnect later. */
static void drop_connection(store_t *s, const char *why)
{
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    if (s->state != ST_CLOSING)
        s->state = ST_IDLE;
    fail_all(s, why == STORE_ERR_TIMEOUT ? STORE_ERR_TIMEOUT : STORE_ERR_DISCONNECTED);
    if (ac != NULL)
        redisAsyncFree(ac); /* remaining hiredis callbacks see done commands and free them */
    schedule_reconnect(s);
}

static void on_deadline(uv_timer_t *t)
{
    store_t *s = CR_CONTAINER_OF(t, store_t, deadline_timer);
    store_cmd_t *head = s->list.next;
    if (head == &s->list)
        return;
    if (head->deadline > uv_now(s->loop)) {
        arm_deadline(s);
        return;
    }
    s->stats.timeouts += s->in_flight;
    log_msg(LOG_WARN, "redis command timed out; reconnecting", NULL);
    drop_connection(s, STORE_ERR_TIMEOUT);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    store_t *s = ac->data;
    if (status == REDIS_OK || ac != s->ac)
        return;
    /* hiredis frees the context after this callback and fails its queued commands. */
    log_msg(LOG_WARN, "redis connect failed", "error", ac->errstr, NULL);
    s->ac = NULL;
    fail_all(s, STORE_ERR_DISCONNECTED);
    schedule_reconnect(s);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    store_t *s = ac->data;
    if (ac != s->ac)
        return; /* a context we dropped ourselves */
    log_msg(LOG_WARN, "redis disconnected", "error", status == REDIS_OK ? "closed" : ac->errstr,
            NULL);
    s->ac = NULL;
    fail_all(s, STORE_ERR_DISCONNECTED);
    schedule_reconnect(s);
}

static void queue_handshake(store_t *s)
{
    if (s->password) {
        const char *argv[] = {"AUTH", s->password};
        send_argv(s, 2, argv, NULL, NULL, NULL, false);
    }
    if (s->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", s->db);
        const char *argv[] = {"SELECT", db};
        send_argv(s, 2, argv, NULL, NULL, NULL, false);
    }
    for (size_t i = 0; i < s->n_scripts; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", s->scripts[i]->source};
        send_argv(s, 3, argv, NULL, NULL, NULL, false);
    }
    const char *ping[] = {"PING"};
    send_argv(s, 1, ping, NULL, NULL, NULL, true);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    store_t *s = CR_CONTAINER_OF(req, store_t, gai);
    s->gai_active = false;
    if (s->state == ST_CLOSING) {
        uv_freeaddrinfo(res);
        maybe_free(s);
        return;
    }
    if (status != 0 || res == NULL) {
        log_msg(LOG_WARN, "redis host lookup failed", "host", s->host, "error",
                uv_strerror(status), NULL);
        uv_freeaddrinfo(res);
        schedule_reconnect(s);
        return;
    }
    char ip[INET6_ADDRSTRLEN];
    if (res->ai_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)(void *)res->ai_addr, ip, sizeof ip);
    else
        uv_ip4_name((struct sockaddr_in *)(void *)res->ai_addr, ip, sizeof ip);
    uv_freeaddrinfo(res);

    redisAsyncContext *ac = redisAsyncConnect(ip, s->port);
    if (ac == NULL || ac->err) {
        log_msg(LOG_WARN, "redis connect failed", "error", ac ? ac->errstr : "out of memory",
                NULL);
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    if (redisLibuvAttach(ac, s->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    s->state = ST_HANDSHAKE;
    /* Queued now, written once the socket connects; their deadlines bound the connect too. */
    queue_handshake(s);
}

static void begin_connect(store_t *s)
{
    if (s->state == ST_CLOSING)
        return;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    s->state = ST_RESOLVING;
    int rc = uv_getaddrinfo(s->loop, &s->gai, on_resolved, s->host, NULL, &hints);
    if (rc != 0) {
        log_msg(LOG_WARN, "redis host lookup failed", "error", uv_strerror(rc), NULL);
        schedule_reconnect(s);
        return;
    }
    s->gai_active = true;
}

static void on_reconnect_timer(uv_timer_t *t)
{
    begin_connect(CR_CONTAINER_OF(t, store_t, reconnect_timer));
}

/* ---------------------------------------------------------------- public API */

store_t *store_new(uv_loop_t *loop, const char *url, long command_timeout_ms)
{
    store_t *s = cr_calloc(1, sizeof *s);
    if (cfg_redis_url_parse(url, &s->host, &s->port, &s->db, &s->password) != 0) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->timeout_ms = command_timeout_ms > 0 ? command_timeout_ms : 2000;
    s->list.next = s->list.prev = &s->list;
    uv_timer_init(loop, &s->deadline_timer);
    uv_timer_init(loop, &s->reconnect_timer);
    s->handles_open = 2;
    return s;
}

void store_script_register(store_t *s, store_script_t *script)
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script->source, strlen(script->source), digest);
    crypto_hex(digest, sizeof digest, script->sha1);
    if (s->n_scripts < STORE_MAX_SCRIPTS)
        s->scripts[s->n_scripts++] = script;
}

int store_start(store_t *s)
{
    begin_connect(s);
    return 0;
}

bool store_ready(const store_t *s)
{
    return s->state == ST_READY;
}

int store_commands_formatted(store_t *s, size_t n, const char *const *cmds, const size_t *lens,
                             store_reply_cb cb, void *data)
{
    if (s->state != ST_READY || s->ac == NULL || n == 0)
        return UV_ENOTCONN;
    /* The replies before the last are dropped by hiredis (no callback). All go out or none:
     * hiredis refuses a command only while the context is going away, which cannot start
     * between these calls. */
    for (size_t i = 0; i + 1 < n; i++)
        if (redisAsyncFormattedCommand(s->ac, NULL, NULL, cmds[i], lens[i]) != REDIS_OK)
            return UV_ENOTCONN;
    return send_formatted(s, cmds[n - 1], lens[n - 1], cb, data, false);
}

int store_command_argv(store_t *s, int argc, const char **argv, const size_t *argvlen,
                       store_reply_cb cb, void *data)
{
    if (s->state != ST_READY || s->ac == NULL)
        return UV_ENOTCONN;
    return send_argv(s, argc, argv, argvlen, cb, data, false);
}

int store_evalsha(store_t *s, const store_script_t *script, int numkeys, int argc,
                  const char **argv, const size_t *argvlen, store_reply_cb cb, void *data)
{
    if (s->state != ST_READY || s->ac == NULL)
        return UV_ENOTCONN;
    char nk[CR_INT_LEN];
    size_t nkl = cr_fmt_int(nk, numkeys);
    const char *pre[] = {"EVALSHA", script->sha1, nk};
    const size_t prelen[] = {7, 40, nkl};
    return send_parts(s, 3, pre, prelen, argc, argv, argvlen, cb, data, false);
}

void store_set_observer(store_t *s, void (*cb)(double seconds, void *data), void *data)
{
    s->observe = cb;
    s->observe_data = data;
}

void store_stats_get(const store_t *s, store_stats_t *out)
{
    *out = s->stats;
    out->in_flight = s->in_flight;
}

/* Free the store once its timers are closed and no lookup is outstanding. */
static void maybe_free(store_t *s)
{
    if (s->handles_open > 0 || s->gai_active)
        return;
    void (*cb)(void *) = s->closed_cb;
    void *data = s->closed_data;
    free(s->host);
    free(s->password);
    free(s);
    if (cb)
        cb(data);
}

static void on_handle_closed(uv_handle_t *h)
{
    store_t *s = h->data;
    s->handles_open--;
    maybe_free(s);
}

void store_close(store_t *s, void (*closed_cb)(void *data), void *data)
{
    if (s->state == ST_CLOSING)
        return;
    s->state = ST_CLOSING;
    s->closed_cb = closed_cb;
    s->closed_data = data;
    fail_all(s, STORE_ERR_CLOSING);
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    if (ac != NULL)
        redisAsyncFree(ac);
    if (s->gai_active)
        uv_cancel((uv_req_t *)&s->gai);
    s->deadline_timer.data = s;
    s->reconnect_timer.data = s;
    uv_close((uv_handle_t *)&s->deadline_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->reconnect_timer, on_handle_closed);
}
