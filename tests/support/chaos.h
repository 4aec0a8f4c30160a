/*
 * chaos.h - fault-injection harness for the gateway (issue 5): an open-loop load generator, a
 * destination stand-in with fault modes, a supervisor for gateway and Redis processes, a
 * userspace TCP fault proxy, and a checker over the whole history of a run.
 *
 *   chaos_util.c   clocks, scaling of timeouts (ASan), percentiles, a string map, figure lines
 *   chaos_load.c   open-loop generator: libcurl multi in its own thread, a fixed schedule,
 *                  unique Idempotency-Key per mutation, retries with the same key on 503, 429
 *                  and connection errors, every request and every attempt logged
 *   chaos_dest.c   destination stand-in (own thread, poll loop): latency, 5xx, 429 +
 *                  Retry-After, hang, drip, huge body, redirect, reset; every delivery logged
 *                  with Idempotency-Key, arrival and finish times and overlap with another
 *                  in-flight delivery of the same key
 *   chaos_proxy.c  TCP proxy between gateways and Redis: pass, delay, black-hole, reset
 *   chaos_proc.c   supervisor: N gateways (optionally each behind its own proxy) and one Redis;
 *                  SIGKILL / SIGSTOP / SIGCONT / SIGTERM / restart by PID; every fault is an
 *                  event with the number of sagas in flight it could duplicate
 *   chaos_check.c  the history checker (see chaos_check_t)
 *
 * Everything is for test programs (blocking calls are fine). One clock for all logs:
 * chaos_now_us() (CLOCK_MONOTONIC), so arrival times at the destination compare with the
 * client's send and acknowledgement times.
 *
 * Scale: tests size themselves with chaos_full() (CHAOS_FULL=1: the full figures, run
 * by tests/chaos/run.sh) and stretch their deadlines by chaos_slow() (2 under ASan, or
 * CHAOS_SLOW). CHAOS_ONLY=<n>[,<n>...] runs only those figures' tests.
 */
#ifndef CR_TEST_CHAOS_H
#define CR_TEST_CHAOS_H

#include "harness.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ================================================================ util (chaos_util.c) */

long long chaos_now_us(void);
/* CHAOS_FULL=1 in the environment. */
bool chaos_full(void);
/* Deadline multiplier: CHAOS_SLOW if set, else 2 in a sanitizer build, else 1. */
double chaos_slow(void);
/* Built with AddressSanitizer (latency figures are reported, not gated, there). */
bool chaos_sanitized(void);
/* Latency and speed figures are gated at the bounds only in a full run of a release
 * build (tests/chaos/run.sh); a short variant under ctest shares a slow, busy CI machine, so it
 * reports them and gates only bounds loose enough that a real fault (a blocked loop, a lost
 * wake-up, head-of-line blocking) still fails it. */
bool chaos_gate_latency(void);
/* limit_ms when chaos_gate_latency(), else chaos_ms(short_ms). */
int chaos_limit_ms(int limit_ms, int short_ms);
/* ms * chaos_slow(). */
int chaos_ms(int ms);
/* Integer from the environment, or dflt. */
long chaos_env_long(const char *name, long dflt);
/* Whether figure fig should run (CHAOS_ONLY unset, or listing it). */
bool chaos_want(int fig);
/* The p-th percentile (0..100) of n values (a sorted copy is made); 0 for n == 0. */
double chaos_pct(const double *v, size_t n, double p);
/* Hex SHA-256 of a string (what the gateway stores for an Idempotency-Key). */
void chaos_sha256_hex(const char *s, char out[65]);
/* The CLOCK_MONOTONIC time deadline_ms from now (for pthread_cond_timedwait on a condition
 * variable made with that clock). */
struct timespec;
void chaos_deadline_ts(struct timespec *end, int deadline_ms);
/* realloc that aborts when out of memory. */
void *chaos_xrealloc(void *p, size_t n);
/* A uniform double in [0, 1) from a xorshift64* state (not thread-safe: the caller's lock). */
double chaos_rand(uint64_t *state);
/* FNV-1a 64 of bytes. */
uint64_t chaos_hash(const void *p, size_t n);
/* A result line "FIGURE <fig> <variant> | text" on stdout and appended to $CHAOS_RESULTS. */
void chaos_figure(int fig, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A tag unique to this process and moment (order numbers, Idempotency-Keys): base + digits. */
void chaos_tag(char *out, size_t size, const char *base);

/* A string -> long map (open addressing; keys copied). */
typedef struct chaos_map chaos_map_t;
chaos_map_t *chaos_map_new(void);
void chaos_map_free(chaos_map_t *m);
/* Pointer to the value of key, inserting 0 when absent (the pointer lives until the next put). */
long *chaos_map_put(chaos_map_t *m, const char *key);
/* Pointer to the value, or NULL when absent. */
long *chaos_map_get(const chaos_map_t *m, const char *key);
size_t chaos_map_size(const chaos_map_t *m);

/* ================================================================ destination (chaos_dest.c) */

typedef enum {
    CD_OK = 0,   /* 200 {"received":true} after the latency */
    CD_5XX,      /* status_5xx (default 500) */
    CD_429,      /* 429 with Retry-After: retry_after_s */
    CD_HANG,     /* never answered; the connection stays open until the client leaves */
    CD_DRIP,     /* 200, its bytes one every drip_ms */
    CD_HUGE,     /* 200 with a huge_bytes body */
    CD_REDIRECT, /* 307 Location: redirect_to */
    CD_RESET,    /* the connection is reset (RST) instead of answered */
    CD_N_FAULTS
} chaos_fault_t;

const char *chaos_fault_name(chaos_fault_t f);

/* How a destination answers. Probabilities are drawn per delivery in the order listed. */
typedef struct chaos_dest_policy {
    int latency_ms;    /* every answer waits this long ... */
    int jitter_ms;     /* ... plus a uniform [0, jitter_ms) */
    double p_5xx;
    int status_5xx;    /* 0: 500 */
    double p_429;
    int retry_after_s; /* for 429 (and 503 when status_5xx is 503); 0: 1 */
    double p_hang;
    double p_drip;
    int drip_ms;       /* 0: 20 */
    double p_huge;
    size_t huge_bytes; /* 0: 4 MiB */
    double p_redirect;
    const char *redirect_to; /* 0: "http://127.0.0.1:9/elsewhere" */
    double p_reset;
    /* The first fail_first deliveries of each key get fail_fault, whatever the dice say. */
    int fail_first;
    chaos_fault_t fail_fault;
    /* fault_cap > 0: a key that had that many faults is answered 200 from then on (so random
     * failures never exhaust max_attempts and every saga is expected to end synced) */
    int fault_cap;
} chaos_dest_policy_t;

/* One delivery, as the destination saw it. Times on chaos_now_us(). */
typedef struct chaos_delivery {
    char key[48];      /* Idempotency-Key ("" none) */
    char path[48];
    uint64_t body_hash;
    long long arrive_us; /* the complete request was read */
    long long finish_us; /* the answer was written whole, or the client left (0: still open) */
    int status;          /* the status answered (0: none, hang or reset) */
    chaos_fault_t fault;
    bool completed;      /* the answer was written whole */
    int overlap;         /* other deliveries of the same key in flight at arrival */
} chaos_delivery_t;

typedef struct chaos_dest chaos_dest_t;

/* Start on a free 127.0.0.1 port; policy NULL: 200 at once. NULL on failure. */
chaos_dest_t *chaos_dest_start(const chaos_dest_policy_t *policy, unsigned seed);
void chaos_dest_stop(chaos_dest_t *d);
int chaos_dest_port(const chaos_dest_t *d);
void chaos_dest_url(const chaos_dest_t *d, char *out, size_t size);
void chaos_dest_set_policy(chaos_dest_t *d, const chaos_dest_policy_t *policy);
/* A policy for one Idempotency-Key only (NULL removes it). */
void chaos_dest_set_key_policy(chaos_dest_t *d, const char *key, const chaos_dest_policy_t *p);
size_t chaos_dest_count(chaos_dest_t *d);
size_t chaos_dest_count_key(chaos_dest_t *d, const char *key);
/* Deliveries arrived and not finished. */
size_t chaos_dest_in_flight(chaos_dest_t *d);
/* The largest overlap seen. */
int chaos_dest_max_overlap(chaos_dest_t *d);
/* A copy of the log (caller frees); its length. */
size_t chaos_dest_log(chaos_dest_t *d, chaos_delivery_t **out);
bool chaos_dest_wait_count(chaos_dest_t *d, size_t n, int deadline_ms);
bool chaos_dest_wait_key(chaos_dest_t *d, const char *key, size_t n, int deadline_ms);
/* Write the log as TSV. */
void chaos_dest_write_log(chaos_dest_t *d, const char *path);

/* ================================================================ load (chaos_load.c) */

/* One mutation, filled in by the generator. */
typedef struct chaos_mut {
    char action[16];      /* "create", "update_status", "reset", "cancel", ... */
    char body[1536];
    char api_key[48];
    char dest_tenant[32];
    char tenant[32];      /* the caller's tenant (for checks) */
    int order;            /* the order it acts on (-1: none); an order's mutations are sent one
                             at a time, each after the previous one's 200, so the client's
                             acknowledgement order is the intake order */
    int cls;              /* a class for statistics (0..7) */
    char expect[16];      /* expected final saga status ("" any terminal) */
} chaos_mut_t;

/* Fill m for the seq-th mutation; false when there are no more. */
typedef bool (*chaos_gen_fn)(void *arg, long seq, chaos_mut_t *m);

typedef struct chaos_load_opts {
    double rate;          /* mutations scheduled per second */
    int duration_ms;      /* schedule for this long (0: until gen says no more) */
    long max_requests;    /* 0: no cap */
    int req_timeout_ms;   /* per attempt; 0: 5000 */
    int retry_cap_ms;     /* ceiling of a retry wait (Retry-After or backoff); 0: 1000 */
    int give_up_ms;       /* give a mutation up this long after its schedule; 0: 120000 */
    int max_conns;        /* 0: 256 */
    bool no_retry_429;    /* count 429 as final (rate-limit tests) */
    bool no_serialize;    /* send an order's mutations without waiting for the previous 200 */
    const char *tag;      /* Idempotency-Key prefix (unique per run) */
    chaos_gen_fn gen;
    void *gen_arg;
} chaos_load_opts_t;

/* Final outcome of one mutation. */
typedef struct chaos_request {
    long seq;
    int order;
    int cls;
    char action[16];
    char tenant[32];
    char expect[16];
    char key[64];         /* Idempotency-Key */
    long long sched_us;   /* when it was due */
    long long first_send_us;
    long long ack_us;     /* the first 200 (0: none) */
    long long done_us;    /* the final answer, or giving up */
    int attempts;
    int final_status;     /* 200, the last status, or 0 for a transport error */
    bool acked;
    bool id_conflict;     /* two 200s with different saga ids */
    int n503, n429, nconn, nother;
    char saga_id[25];
    char order_id[25];
} chaos_request_t;

/* One HTTP attempt. */
typedef struct chaos_attempt {
    long req;             /* index into the request log */
    int port;
    long long start_us, end_us;
    int status;           /* 0: transport error */
    int curl_err;
    bool retry_after;     /* the answer carried Retry-After */
} chaos_attempt_t;

typedef struct chaos_load chaos_load_t;

/* Start sending to the given gateway ports (round robin). NULL on failure. */
chaos_load_t *chaos_load_start(const chaos_load_opts_t *o, const int *ports, int n_ports);
/* Replace the target ports (n 0: every attempt fails as a connection error and is retried). */
void chaos_load_set_ports(chaos_load_t *l, const int *ports, int n_ports);
/* Stop scheduling new mutations (those already scheduled go on). */
void chaos_load_stop_sending(chaos_load_t *l);
/* Wait until the schedule is over and every mutation is final; true when it is. */
bool chaos_load_wait(chaos_load_t *l, int deadline_ms);
/* Counters while running. */
typedef struct chaos_load_stats {
    long scheduled, sent, acked, final_not_acked, outstanding, attempts;
    long s200, s503, s429, s5xx_other, s4xx, conn_err;
} chaos_load_stats_t;
void chaos_load_stats(chaos_load_t *l, chaos_load_stats_t *out);
/* The logs (valid after chaos_load_wait returned true, until chaos_load_free). */
const chaos_request_t *chaos_load_requests(chaos_load_t *l, size_t *n);
const chaos_attempt_t *chaos_load_attempts(chaos_load_t *l, size_t *n);
/* While running: cb for every acknowledged mutation with index >= from (under the load's lock:
 * cb must be quick); returns the number of mutations so far. */
size_t chaos_load_collect(chaos_load_t *l, size_t from,
                          void (*cb)(void *arg, long idx, const char *saga_id), void *arg);
/* Request index of the first 200 answer after t_us (-1 none) and its time. */
long long chaos_load_first_200_after(chaos_load_t *l, long long t_us);
void chaos_load_write_log(chaos_load_t *l, const char *path);
void chaos_load_free(chaos_load_t *l);

/* Generators for the usual mixes (gen_arg: a chaos_mix_t). */
typedef struct chaos_mix {
    int n_orders;         /* orders 0..n-1, each starting with a create */
    int per_order;        /* mutations per order (create included); 0: unbounded */
    const char *tag;      /* order numbers "<tag>-<order>" */
    const char *api_key;  /* default demo-acme-key */
    const char *tenant;   /* default acme-supply */
    const char *dest;     /* default swift-haul */
    bool swift_refs;      /* the caller is swift-haul (its own mapping references) */
    int cancel_every;     /* 0: no cancels; k: every k-th order ends with a cancel */
    bool resets;          /* some updates are resets */
    int cls;
    long seq_offset;      /* added to the seq the generator is called with */
} chaos_mix_t;
/* Order-major round robin: seq -> order seq % n_orders, its (seq / n_orders)-th mutation. */
bool chaos_gen_mix(void *arg, long seq, chaos_mut_t *m);

/* ================================================================ proxy (chaos_proxy.c) */

typedef enum { CP_PASS = 0, CP_DELAY, CP_BLACKHOLE, CP_RESET } chaos_proxy_mode_t;
typedef struct chaos_proxy chaos_proxy_t;
chaos_proxy_t *chaos_proxy_start(int upstream_port);
int chaos_proxy_port(const chaos_proxy_t *p);
/* PASS; DELAY: each chunk forwarded delay_ms after it was read; BLACKHOLE: nothing forwarded
 * (held, and delivered when passing again, as TCP retransmits after a partition heals);
 * RESET: every connection reset now, and new ones reset at once while the mode lasts. */
void chaos_proxy_set(chaos_proxy_t *p, chaos_proxy_mode_t mode, int delay_ms);
size_t chaos_proxy_conns(chaos_proxy_t *p);
void chaos_proxy_stop(chaos_proxy_t *p);

/* ================================================================ supervisor (chaos_proc.c) */

#define CHAOS_MAX_GW 8
#define CHAOS_MAX_EVENTS 512

typedef struct chaos_event {
    long long t_us;
    char what[32];   /* "kill", "pause", "cont", "restart", "term", "redis-kill", ... */
    int target;      /* gateway index, -1 for Redis */
    int pid;         /* the gateway's process at the event (0: Redis, or none running) */
    long in_flight;  /* sagas the fault may re-deliver: the target's unfinished sagas */
} chaos_event_t;

typedef struct chaos_cluster {
    harness_redis_t redis;
    bool redis_up;
    bool appendonly;
    const char *fixture;    /* default "gateway.json" */
    json_t *overrides;      /* owned */
    int n_gw;
    harness_gw_t gw[CHAOS_MAX_GW];
    bool alive[CHAOS_MAX_GW];
    bool paused[CHAOS_MAX_GW];
    chaos_proxy_t *proxy[CHAOS_MAX_GW]; /* with_proxy: gateway i reaches Redis through it */
    bool with_proxy;
    chaos_load_t *load;     /* kept pointed at the live, unpaused gateways */
    chaos_event_t events[CHAOS_MAX_EVENTS];
    int n_events;
    long dup_bound;         /* sum of in_flight over the faults */
    int kills, pauses, restarts;
} chaos_cluster_t;

/* Redis (appendonly: appendfsync always), then n gateways on overrides (stolen). 0 or -1. */
int chaos_cluster_start(chaos_cluster_t *c, int n_gw, bool appendonly, bool with_proxy,
                        json_t *overrides);
/* (Re)start gateway i; 0 or -1. */
int chaos_cluster_gw_start(chaos_cluster_t *c, int i);
void chaos_cluster_kill(chaos_cluster_t *c, int i);
void chaos_cluster_pause(chaos_cluster_t *c, int i);
void chaos_cluster_cont(chaos_cluster_t *c, int i);
/* SIGTERM; waits up to wait_ms; returns the exit status (-1 killed/signal), and in *took_ms
 * how long it took. */
int chaos_cluster_term(chaos_cluster_t *c, int i, int wait_ms, long long *took_ms);
void chaos_cluster_redis_kill(chaos_cluster_t *c);
void chaos_cluster_redis_stop(chaos_cluster_t *c);
int chaos_cluster_redis_restart(chaos_cluster_t *c);
/* Live and not paused gateways' ports to the load generator (if any). */
void chaos_cluster_sync_ports(chaos_cluster_t *c);
/* Index of a random live gateway (-1 none). */
int chaos_cluster_random_live(chaos_cluster_t *c);
int chaos_cluster_live(const chaos_cluster_t *c);
/* A port of a live gateway (0 none). */
int chaos_cluster_port(const chaos_cluster_t *c);
void chaos_cluster_event(chaos_cluster_t *c, const char *what, int target, long in_flight);
/* Stop every gateway with SIGTERM (returns how many did not exit 0), Redis, proxies. */
int chaos_cluster_stop(chaos_cluster_t *c);
redisContext *chaos_redis(const chaos_cluster_t *c);
/* Unfinished sagas (cr:{cr}:active) whose owner is process pid (pid 0: all). */
long chaos_owned_active(redisContext *rc, pid_t pid);
/* Number of lines of a gateway's log holding needle. */
int chaos_gw_log_count(const harness_gw_t *g, const char *needle);
/* Sanitizer reports in a gateway's log (killed gateways have no exit status to check). */
bool chaos_gw_log_clean(const harness_gw_t *g);
/* The standard overrides: tenants' connector URLs pointed at the stand-ins (NULL keeps the
 * fixture's), saga timings, log level. Returns a new object. */
json_t *chaos_overrides(const char *acme_url, const char *swift_url, int claim_idle_ms,
                        int max_attempts, int retry_base_ms, int retry_max_ms);
/* Wait until n gateways are blocked reading the stream (each keeps one XREADGROUP). */
bool chaos_wait_readers(const chaos_cluster_t *c, int n, int deadline_ms);
/* POST /v1/order/<action> (idem_key may be NULL); 0 when answered (resp filled). */
int chaos_post(int port, const char *api_key, const char *dest, const char *action,
               const char *body, const char *idem_key, harness_resp_t *resp);
/* The saga's status (and owner, may be NULL) from Redis; false when there is no record. */
bool chaos_saga_status(const chaos_cluster_t *c, const char *saga_id, char status[24],
                       char owner[160]);
/* Wait until the saga is terminal; its status in status. */
bool chaos_wait_saga_terminal(const chaos_cluster_t *c, const char *saga_id, int deadline_ms,
                              char status[24]);
/* Resident set size (kB) of a process, -1 when unknown. */
long chaos_rss_kb(pid_t pid);

/* With CHAOS_LOG_DIR set: the load and delivery logs as <dir>/<name>-load.tsv, -dest.tsv. */
void chaos_dump_logs(const char *name, chaos_load_t *l, chaos_dest_t *d);

/* ================================================================ checker (chaos_check.c) */

/* Watches the acknowledged sagas of a running load and remembers each one's terminal status
 * when first seen (polls Redis every 500 ms), so that a record later gone with a short
 * retention is told apart from a lost one. */
typedef struct chaos_track chaos_track_t;
chaos_track_t *chaos_track_start(const chaos_cluster_t *c, chaos_load_t *l);
/* Wait until every acknowledged saga of the (finished) load was seen terminal; true if so. */
bool chaos_track_wait(chaos_track_t *t, int deadline_ms);
/* Stop polling (one last pass first). */
void chaos_track_stop(chaos_track_t *t);
/* The terminal status seen for request idx ("" none yet). */
const char *chaos_track_status(const chaos_track_t *t, long idx);
void chaos_track_free(chaos_track_t *t);

typedef struct chaos_check_opts {
    chaos_load_t *load;
    chaos_dest_t *dests[4];  /* the destinations deliveries may reach */
    int n_dests;
    const chaos_cluster_t *cluster;
    int settle_ms;           /* wait this long for every acked saga to end; 0: 30000 */
    bool fifo;               /* per-order FIFO checks */
    bool expect_2xx;         /* synced/canceled sagas need a 2xx at a destination */
    long dup_bound;          /* duplicates allowed (-1: cluster->dup_bound) */
    bool allow_overlap;      /* overlapping deliveries of one key are not a violation */
    bool allow_late_dup;     /* a stale duplicate after the successor's first 2xx is allowed */
    bool skip_settled;       /* do not require empty queues */
    int api_sample;          /* compare this many sagas with the admin API (0: 100) */
    bool attempts_exact;     /* saga attempts == deliveries received, per saga */
    int live_processes;      /* for the consumer bound (0: cluster's live count) */
    long long since_us;      /* ignore deliveries that arrived before (earlier phases) */
    bool records_may_expire; /* short retention: a missing record with a 2xx is "expired" */
    const chaos_track_t *track; /* with records_may_expire: terminal statuses seen earlier */
} chaos_check_opts_t;

typedef struct chaos_check {
    long requests, acked, not_acked;  /* mutations; answered 200; never answered 200 */
    long lost;               /* acked, saga record missing */
    long stuck;              /* acked, not terminal after settling */
    long unexpected;         /* terminal status differs from the generator's expectation */
    long by_status[8];       /* pending.. (see chaos_check_status_names) */
    long missing_2xx;        /* synced/canceled without a 2xx at a destination */
    long deliveries;
    long phantom;            /* delivered keys that are no acknowledged saga */
    long unacked_accepted;   /* of those: accepted sagas whose client never got the 200 */
    long keys_multi_saga;    /* client keys with more than one saga (Redis or answers) */
    long sagas_in_redis;     /* saga records found (SCAN) */
    long dups;               /* deliveries of a key after its first 2xx began */
    long dup_bound;
    long diff_effect;        /* repeats of a key with another path or body */
    long overlaps;           /* deliveries overlapping another of the same key */
    long fifo_checked, fifo_violations, late_dups;
    long bad_history;
    long stale_writes;       /* history entries going backwards or repeated (stale owner) */
    long attempts_mismatch;
    long api_checked, api_mismatch;
    long xlen, pending, active, delayed, consumers, live, live_missing;
    long expired;            /* records gone after retention (records_may_expire) */
    long violations;         /* sum of what must be 0 */
    double e2e_p50_ms[8], e2e_p99_ms[8]; /* by class: schedule -> first 2xx finished */
    long e2e_n[8];
    double intake_p50_ms[8], intake_p99_ms[8]; /* schedule -> 200 */
} chaos_check_t;

extern const char *const chaos_check_status_names[8];

/* Run every check; prints a summary and the first violations. Returns report->violations. */
long chaos_check_run(const chaos_check_opts_t *o, chaos_check_t *report);
/* One line summary. */
void chaos_check_line(const chaos_check_t *r, char *out, size_t size);
/* Wait until every acknowledged saga of the load is terminal; the time (chaos_now_us) it was
 * seen so, or -1 at the deadline. */
long long chaos_wait_all_terminal(const chaos_cluster_t *c, chaos_load_t *l, int deadline_ms);
/* Wait until the saga stream has nothing pending, no backlog and active/delayed are empty. */
bool chaos_wait_settled(const chaos_cluster_t *c, int deadline_ms);

/* ================================================================ scenario (chaos_env.c) */

/* The usual set-up: stand-ins for acme-supply and swift-haul, Redis, n gateways. */
typedef struct chaos_env {
    chaos_dest_t *swift, *acme;
    chaos_cluster_t cl;
    chaos_load_t *load;
    char tag[48];
    chaos_mix_t mix;
} chaos_env_t;

/* pol: swift-haul's stand-in (NULL: 5-15 ms); extra: top-level config sections (stolen). */
int chaos_env_start(chaos_env_t *e, int n_gw, bool with_proxy, const chaos_dest_policy_t *pol,
                    int claim_ms, json_t *extra);
/* For cmocka tests: chaos_env_start on a static environment, failing the test if it does not
 * start; chaos_env_down stops it and fails the test unless every gateway exited 0. */
chaos_env_t *chaos_env_up(int n_gw, bool with_proxy, const chaos_dest_policy_t *pol, int claim_ms,
                          json_t *extra);
void chaos_env_down(chaos_env_t *e);
/* The usual mix (acme-supply -> swift-haul, creates, updates, resets) on every gateway. */
void chaos_env_load(chaos_env_t *e, const char *base, double rate, int duration_ms, int n_orders);
/* Wait for the load (up to 120 s, scaled), then run the checker with the usual options (every
 * saga acknowledged and ending as expected with a 2xx at dest, duplicates bounded by the faults,
 * no overlap, FIFO optional, settled queues), and dump the logs as name. Returns the violations
 * (a load that did not finish counts as one). */
long chaos_check_usual(const chaos_cluster_t *cl, chaos_load_t *load, chaos_dest_t *dest,
                       const char *name, int settle_ms, bool fifo, chaos_check_t *r);
/* Wait for the load, run the checker (FIFO optional); dump the logs as name. */
long chaos_env_check(chaos_env_t *e, const char *name, chaos_check_t *r, bool fifo);
/* Stop everything; gateways that did not exit 0. */
int chaos_env_stop(chaos_env_t *e);

/* Attempts that started in [from, to): how many, non-503 answers, 503s without Retry-After,
 * slower than limit_ms, p99 and max latency; 200s that ended inside (from, to). */
typedef struct chaos_window {
    long n, not503, no_ra, slow, ok_inside, s500;
    double p99_ms, max_ms;
} chaos_window_t;
void chaos_attempts_in(chaos_load_t *l, long long from, long long to, int limit_ms,
                       chaos_window_t *w);
/* One command on a fresh connection; 0, or -1 on an error reply. */
int chaos_redis_cmd(const chaos_cluster_t *cl, const char *cmd);
/* A numeric field of INFO section; -1 when absent. */
long long chaos_redis_info(redisContext *c, const char *section, const char *field);

#endif
