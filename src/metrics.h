/*
 * metrics.h - counters, gauges and histograms, rendered in the Prometheus text format 0.0.4.
 *
 * Owns: every metric family registered on a metrics_t, their series (one per label-value
 * combination), the copies of names, help texts and label values, and the loop-lag timer.
 * Single-threaded: every call must come from the loop thread; nothing here locks.
 *
 * Families are registered once at start-up; that is where the module allocates. Updating a
 * series that has been seen before (inc, set, observe) never allocates, never blocks and costs
 * one hash of the label values. The first update of a new label combination allocates that
 * series once. Label values must come from a small fixed set (route, status class, connector,
 * outcome, saga type...) - never an order number or anything a client chooses freely.
 *
 * Bounded labels: a labelled family holds at most METRICS_MAX_CHILDREN series. Once it is full,
 * an update for a label combination it has not seen yet goes to one overflow series whose every
 * label value is METRICS_OVERFLOW_VALUE ("other"); so do label values longer than
 * METRICS_MAX_VALUE_LEN bytes or that are not valid UTF-8. Memory and scrape size stay bounded
 * whatever the callers pass; a rising "other" series is the sign that a label is misused.
 *
 * Rendering (metrics_render) is O(series), touches no file or socket and never blocks; the one
 * place that reads /proc is metrics_process_collect, called by the scrape handler only.
 *
 * Must not: log, read configuration, or know which parts of the gateway register what. Names,
 * label names and bucket bounds are the caller's constants: an invalid one is a programming
 * error and aborts with a message at registration (as an allocation failure does).
 */
#ifndef CR_METRICS_H
#define CR_METRICS_H

#include <stddef.h>
#include <uv.h>

#include "util/buf.h"

#define METRICS_MAX_CHILDREN   256     /* series per labelled family, plus the overflow one */
#define METRICS_MAX_LABELS     4       /* label names per family */
#define METRICS_MAX_VALUE_LEN  128     /* bytes per label value; longer goes to "other" */
#define METRICS_MAX_BUCKETS    32      /* finite bucket bounds per histogram */
#define METRICS_OVERFLOW_VALUE "other" /* every label value of the overflow series */

#define METRICS_LOOP_LAG_INTERVAL_MS 100
#define METRICS_LOOP_LAG_NAME        "crossroads_event_loop_lag_seconds"

typedef struct metrics metrics_t;
typedef struct metrics_counter metrics_counter_t;
typedef struct metrics_gauge metrics_gauge_t;
typedef struct metrics_histogram metrics_histogram_t;

/* Reads one series' value at scrape time. Runs on the loop inside metrics_render; must be cheap
 * and must not call back into this module. */
typedef double (*metrics_value_cb)(void *data);

/* Runs once when metrics_close has released everything. */
typedef void (*metrics_close_cb)(void *data);

/* The default histogram buckets, in seconds: 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25
 * 0.5 1 2.5 5 10 (and +Inf, always implied). */
extern const double METRICS_DEFAULT_BUCKETS[];
extern const size_t METRICS_DEFAULT_BUCKETS_LEN;

/* ---- registry ------------------------------------------------------------------------------ */

/* A new empty registry. Never NULL (allocation failure aborts). Records the wall-clock time as
 * process_start_time_seconds, so create it during start-up. */
metrics_t *metrics_new(void);

/*
 * Release the registry and every family it holds. If the loop-lag timer was started, it is
 * closed first and cb(data) runs from its close callback on a later loop iteration; otherwise
 * everything is released and cb (if not NULL) runs before metrics_close returns. Either way cb
 * runs exactly once and m must not be used once it has run. Calling metrics_close again while
 * the timer is closing does nothing (and that second cb never runs).
 */
void metrics_close(metrics_t *m, metrics_close_cb cb, void *data);

/* ---- registration (start-up; allocates) ---------------------------------------------------- */

/*
 * Register a family and return it; the family lives until metrics_close. name must match
 * [a-zA-Z_:][a-zA-Z0-9_:]* and be unique in m; help is any text (copied). label_names is NULL or
 * a comma-separated list such as "route,status" of at most METRICS_MAX_LABELS names matching
 * [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (and, for histograms, not "le"). Violations
 * abort. Families render in registration order; an unlabelled family renders from the start
 * (value 0), a labelled one once its first series exists.
 *
 * Counter names get "_total" appended unless they already end with it.
 */
metrics_counter_t *metrics_counter(metrics_t *m, const char *name, const char *help,
                                   const char *label_names);
metrics_gauge_t *metrics_gauge(metrics_t *m, const char *name, const char *help,
                               const char *label_names);
/*
 * buckets: NULL for METRICS_DEFAULT_BUCKETS, else n_buckets (1..METRICS_MAX_BUCKETS) finite,
 * strictly increasing upper bounds (copied); +Inf is always added, a trailing +Inf is accepted.
 */
metrics_histogram_t *metrics_histogram(metrics_t *m, const char *name, const char *help,
                                       const char *label_names, const double *buckets,
                                       size_t n_buckets);

/*
 * Callback gauge: an unlabelled gauge whose value is cb(data), read at every scrape (open
 * connections, in-flight requests, sagas running, stream lag). data stays the caller's; unbind
 * with metrics_gauge_bind(g, NULL, NULL, NULL) before it goes away.
 */
metrics_gauge_t *metrics_gauge_callback(metrics_t *m, const char *name, const char *help,
                                        metrics_value_cb cb, void *data);

/*
 * Make one series of a gauge (or counter) family read its value through cb(data) at scrape
 * time, creating the series if needed (bounded like any update). While bound, the scrape shows
 * cb's value; set/add/inc still change the stored value, which shows again once cb NULL unbinds.
 * For a counter, cb must never go down.
 */
void metrics_gauge_bind(metrics_gauge_t *g, const char *const *label_values, metrics_value_cb cb,
                        void *data);
void metrics_counter_bind(metrics_counter_t *c, const char *const *label_values,
                          metrics_value_cb cb, void *data);

/* ---- updates (hot path; allocation-free once a series exists) ------------------------------ */

/*
 * label_values has one string per label name, in registration order (NULL for an unlabelled
 * family). The strings are only read during the call; a new series copies them.
 */

/* Add by to a counter series. by < 0 or NaN is ignored: counters only go up. */
void metrics_counter_inc(metrics_counter_t *c, const char *const *label_values, double by);

void metrics_gauge_set(metrics_gauge_t *g, const char *const *label_values, double v);
/* Add by (negative to decrease). */
void metrics_gauge_add(metrics_gauge_t *g, const char *const *label_values, double by);

/* Count v in the first bucket whose bound is >= v and add it to _sum. NaN is ignored. */
void metrics_histogram_observe(metrics_histogram_t *h, const char *const *label_values, double v);

/* ---- scrape ------------------------------------------------------------------------------- */

/*
 * Append the text exposition format 0.0.4 (Content-Type "text/plain; version=0.0.4;
 * charset=utf-8") to out: per family one "# HELP" and one "# TYPE" line, then its series in
 * first-seen order; histograms as _bucket{le=...} (cumulative), _sum and _count. Values use the
 * shortest text that reads back as the same double, formatted as Prometheus's Go client does
 * ("0.005", "1e+06", "+Inf", "NaN"). Calls the bound callbacks; never blocks.
 */
void metrics_render(metrics_t *m, buf_t *out);

/*
 * Refresh the standard process metrics, registering them on the first call:
 * process_cpu_seconds_total (getrusage, user + system), process_resident_memory_bytes and
 * process_virtual_memory_bytes (/proc/self/statm), process_open_fds (entries of /proc/self/fd),
 * process_max_fds (RLIMIT_NOFILE) and process_start_time_seconds (metrics_new's time). Meant to
 * be called by the scrape handler right before metrics_render. The /proc reads are procfs,
 * answered from kernel memory, never a disk wait; statm is read with one pread on a descriptor
 * kept open. A metric whose source is unavailable is left out.
 */
void metrics_process_collect(metrics_t *m);

/* ---- loop lag ---------------------------------------------------------------------------- */

/*
 * Start a timer on loop that fires every METRICS_LOOP_LAG_INTERVAL_MS and observes how late it
 * fired (monotonic uv_hrtime against the time it was due) in the histogram
 * crossroads_event_loop_lag_seconds. libuv timers have millisecond resolution, so lag below
 * about a millisecond is noise. The timer is unreferenced: it never keeps the loop alive on its
 * own, but metrics_close must still run before uv_loop_close. Returns 0, UV_EALREADY if started
 * before, or a libuv error from uv_timer_init/uv_timer_start.
 */
int metrics_loop_lag_start(metrics_t *m, uv_loop_t *loop);

#endif
