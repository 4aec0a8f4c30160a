/*
 * store.h - the gateway's one asynchronous Redis connection (hiredis + its libuv adapter).
 *
 * Owns: the redisAsyncContext, a FIFO of commands in flight with their deadlines, one deadline
 * timer, one reconnect timer and the getaddrinfo request. Resolves the host with uv_getaddrinfo
 * (hiredis would block in getaddrinfo), connects, authenticates, selects the database and loads
 * the registered Lua scripts before it reports itself ready.
 *
 * hiredis 0.14 has no timeout for async commands, so every command carries a deadline. When the
 * oldest command misses it, every command in flight fails with STORE_ERR_TIMEOUT, the context is
 * dropped and a reconnect is scheduled with exponential backoff and jitter: a stalled Redis never
 * holds a client's request longer than the command timeout. The outcome of a timed-out write is
 * unknown (it may still be applied); callers answer 503 and clients retry idempotently.
 *
 * Must not: block the loop, or call a command's callback more than once.
 */
#ifndef CR_STORE_H
#define CR_STORE_H

#include "util/buf.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Failure reasons, compared by pointer. */
extern const char STORE_ERR_DOWN[];         /* not connected: command not sent */
extern const char STORE_ERR_TIMEOUT[];      /* no reply within the command timeout */
extern const char STORE_ERR_DISCONNECTED[]; /* connection lost with the command in flight */
extern const char STORE_ERR_CLOSING[];      /* store_close() was called */

/*
 * Called exactly once per accepted command. On success reply is the reply (which may itself be a
 * Redis error reply, REDIS_REPLY_ERROR) and err is NULL; the reply lives only for the call.
 * On failure reply is NULL and err is one of the STORE_ERR_* reasons.
 */
typedef void (*store_reply_cb)(const redisReply *reply, const char *err, void *data);

/* A Lua script, registered before store_start(); loaded with SCRIPT LOAD on every connect. */
typedef struct store_script {
    const char *name;
    const char *source;
    char sha1[41];
} store_script_t;

typedef struct store store_t;

typedef struct store_stats {
    uint64_t reconnects;   /* successful connects after the first */
    uint64_t timeouts;     /* commands failed with STORE_ERR_TIMEOUT */
    uint64_t commands;     /* commands sent */
    size_t in_flight;
} store_stats_t;

/*
 * Create a store for url ("redis://[:password@]host[:port][/db]") on loop. Nothing connects until
 * store_start(). command_timeout_ms bounds every command. NULL on a malformed URL.
 */
store_t *store_new(uv_loop_t *loop, const char *url, long command_timeout_ms);

/* Register a script (computes its SHA1). Call before store_start(); the script must outlive the
 * store. */
void store_script_register(store_t *s, store_script_t *script);

/* Begin connecting; reconnects forever with backoff until store_close(). */
int store_start(store_t *s);

/* Connected, authenticated and scripts loaded. */
bool store_ready(const store_t *s);

/*
 * Send one command. Returns 0 and later calls cb exactly once; or returns a negative code
 * (UV_ENOTCONN when not ready) and never calls cb. argv strings are copied at once.
 */
int store_command_argv(store_t *s, int argc, const char **argv, const size_t *argvlen,
                       store_reply_cb cb, void *data);

/*
 * Send n commands already in the Redis protocol back to back on this connection (a MULTI ...
 * EXEC transaction): cb gets the last one's reply, exactly once; the replies before it are
 * dropped. Returns as store_command_argv; on an error nothing was sent.
 */
int store_commands_formatted(store_t *s, size_t n, const char *const *cmds, const size_t *lens,
                             store_reply_cb cb, void *data);

/* The Redis protocol: append "<kind><n>\r\n" (kind '*' or '$'), or one bulk string, to b. */
void store_resp_len(buf_t *b, char kind, size_t n);
void store_resp_arg(buf_t *b, const char *arg, size_t len);

/* EVALSHA of a registered script: keys then args (argv holds numkeys keys, then the args). */
int store_evalsha(store_t *s, const store_script_t *script, int numkeys, int argc,
                  const char **argv, const size_t *argvlen, store_reply_cb cb, void *data);

void store_stats_get(const store_t *s, store_stats_t *out);

/* Called with each reply's round-trip time in seconds (not for failed commands). */
void store_set_observer(store_t *s, void (*cb)(double seconds, void *data), void *data);

/*
 * Fail every command in flight with STORE_ERR_CLOSING, disconnect, close every handle, then call
 * closed_cb (from a close callback) and free the store.
 */
void store_close(store_t *s, void (*closed_cb)(void *data), void *data);

#endif
