/*
 * harness.h - integration-test support: a private redis-server, the real gateway binary,
 * free loopback ports, raw-socket and libcurl clients, hiredis checks, polling with deadlines.
 *
 * Everything is synchronous and meant for test programs only (blocking calls are fine here).
 * Every started process is stopped by harness_*_stop or, if a test aborts, by an atexit hook.
 * Paths come from the environment that ctest sets: CR_BIN (gateway binary), CR_REDIS_SERVER,
 * CR_FIXTURES (tests/fixtures).
 */
#ifndef CR_TEST_HARNESS_H
#define CR_TEST_HARNESS_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A free TCP port on 127.0.0.1 (bind to port 0, read it back, close). */
int harness_free_port(void);

/* ---------------------------------------------------------------- redis */

typedef struct harness_redis {
    pid_t pid;
    int port;
    char dir[256]; /* temp dir: removed on stop, or at exit when appendonly (for a restart) */
    bool appendonly;
} harness_redis_t;

/* Start redis-server on a free port in a temp dir, no persistence unless appendonly; wait until
 * it answers PING (deadline 10 s). Returns 0 or -1. */
int harness_redis_start(harness_redis_t *r, bool appendonly);
/* Restart on the same port (after stop); 0 or -1. */
int harness_redis_restart(harness_redis_t *r);
/* SIGTERM (Redis shuts down cleanly, fsyncing its AOF), wait up to 10 s, else SIGKILL. */
void harness_redis_stop(harness_redis_t *r);
/* SIGKILL and reap: a crash, for tests of what survives one (the dir is kept). */
void harness_redis_kill(harness_redis_t *r);
/* A blocking hiredis connection to it (caller frees with redisFree). */
redisContext *harness_redis_connect(const harness_redis_t *r);
/* XLEN of the saga stream ("cr:{cr}:sagas"); -1 on error. The saga engine deletes entries as
 * sagas end and adds "wake" entries, so while workers run this is not a count of intakes. */
long long harness_stream_len(const harness_redis_t *r);
/* Number of saga records ("cr:{cr}:saga:<24 hex>" hashes, found with SCAN): one per stored
 * mutation, kept for retention_s, so it only grows during a test; -1 on error. */
long long harness_saga_count(const harness_redis_t *r);

/* ---------------------------------------------------------------- gateway */

typedef struct harness_gw {
    pid_t pid;
    int port;
    char config_path[512];
    char log_path[512];    /* stdout+stderr of the child */
} harness_gw_t;

/*
 * Write a config for the gateway: the JSON file fixture_name from CR_FIXTURES/configs (e.g.
 * "test.json"), with listen.port and redis.url replaced (redis_port) and any members of
 * overrides (an object of top-level sections, merged one level deep, may be NULL) applied.
 * Then start CR_BIN serve --config on a free port, and wait until GET /healthz answers 200
 * (deadline 10 s). Returns 0 or -1 (the log is printed on failure). The binary runs through a
 * link named "cr-gw" in the temp dir, so a "pkill crossroads" elsewhere on the machine (a demo
 * being restarted) cannot drain a test's gateway.
 */
int harness_gw_start(harness_gw_t *g, const char *fixture_name, int redis_port,
                     const json_t *overrides);
/* SIGTERM, wait up to 15 s; returns the exit status (0 expected), or -1 if it had to be killed,
 * died of a signal, or had already exited before this call. Also fails (returns -2) if the log
 * holds a sanitizer report ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"). The
 * temp dir (config and log) is removed on success and kept, with the log printed, on failure. */
int harness_gw_stop(harness_gw_t *g);
/* SIGKILL and reap. */
void harness_gw_kill(harness_gw_t *g);
/* Wait until GET /readyz answers want_status (deadline ms). true on success. */
bool harness_gw_wait_ready(const harness_gw_t *g, int want_status, int deadline_ms);

/* ---------------------------------------------------------------- HTTP clients */

typedef struct harness_resp {
    int status;         /* 0 when no response */
    char *headers;      /* raw header block, NUL-terminated (NULL if none) */
    char *body;         /* NUL-terminated (NULL if none) */
    size_t body_len;
    json_t *json;       /* body parsed as JSON when it parses, else NULL */
} harness_resp_t;
void harness_resp_free(harness_resp_t *r);
/* Value of a response header (case-insensitive), copied into out; false if absent. */
bool harness_resp_header(const harness_resp_t *r, const char *name, char *out, size_t size);

/*
 * A header in a raw block of "Name: value\r\n" lines (name case-insensitive): its value,
 * trimmed, and the value's length into vlen; NULL when absent.
 */
const char *harness_header_find(const char *block, size_t len, const char *name, size_t *vlen);
/* The same, copied NUL-terminated into out (at most size - 1 bytes; out may be NULL). */
bool harness_header_copy(const char *block, size_t len, const char *name, char *out, size_t size);

/*
 * libcurl request to http://127.0.0.1:port path. headers: NULL-terminated array of
 * "Name: value" strings (or NULL). body may be NULL (no body). Returns 0 and fills resp.
 */
int harness_http(int port, const char *method, const char *path, const char *const *headers,
                 const char *body, size_t body_len, harness_resp_t *resp);

/* Raw socket: connect to 127.0.0.1:port; returns fd or -1. */
int harness_raw_connect(int port);
/* Send all bytes; chunk > 0 sends them chunk bytes per write with a short pause between. */
int harness_raw_send(int fd, const void *data, size_t len, size_t chunk);
/*
 * Read responses until the peer closes or timeout_ms passes with no data; returns all bytes
 * received (NUL-terminated, caller frees) and their length in *len. *closed is set if the peer
 * closed the connection.
 */
char *harness_raw_recv_all(int fd, int timeout_ms, size_t *len, bool *closed);
/* Parse the n-th (0-based) HTTP response in raw bytes into resp; 0 or -1. */
int harness_raw_parse(const char *raw, size_t len, int n, harness_resp_t *resp);
/*
 * Number of HTTP responses in raw: status lines "HTTP/1.x NNN" found by walking the responses'
 * framing (Content-Length; none for 1xx, 204, 304), so a body without a final newline does not
 * hide the next status line. A last response cut short still counts.
 */
int harness_raw_count(const char *raw, size_t len);
/*
 * Read until raw holds n complete responses (interim 1xx ones included; bodies framed by
 * Content-Length), the peer closes, or deadline_ms passes in all. Returns the bytes as
 * harness_raw_recv_all does. Unlike it, this does not wait for silence, so it suits keep-alive
 * connections.
 */
char *harness_raw_recv_n(int fd, int n, int deadline_ms, size_t *len, bool *closed);
/* Number of complete responses at the start of raw (as harness_raw_recv_n counts them). */
int harness_raw_complete(const char *raw, size_t len);

/* ---------------------------------------------------------------- misc */

/* A whole file in memory, NUL-terminated (caller frees; its length into len if not NULL);
 * NULL when it cannot be opened. */
char *harness_read_file(const char *path, size_t *len);
/* Read a fixture file (CR_FIXTURES/name) into memory; NULL on error. */
char *harness_fixture_read(const char *name, size_t *len);

/* A copy of the "tenants" array of configs/gateway.json (caller decrefs), or NULL. */
json_t *harness_fixture_tenants(void);
/* The same, with connector.url set for each tenant named in name_url: name, url, name, url, ...,
 * NULL. Tenants not named keep the fixture's URL. NULL if a name is not a fixture tenant. */
json_t *harness_fixture_tenants_at(const char *const *name_url);
/* The tenant object named name in a tenants array (borrowed), or NULL. */
json_t *harness_tenant(json_t *tenants, const char *name);
/* Milliseconds on a monotonic clock. */
long long harness_now_ms(void);
void harness_sleep_ms(int ms);

/* printf into a new string (caller frees); aborts when out of memory. */
char *harness_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

#endif
