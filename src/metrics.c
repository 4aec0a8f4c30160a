/*
 * metrics.c - metric families, bounded series, Prometheus text rendering, process metrics and
 * the loop-lag timer (see metrics.h for the contracts).
 *
 * Owns every family and series it hands out, the open /proc/self/statm descriptor and the
 * loop-lag uv_timer_t (embedded in metrics_t). Must not block the loop: the only file access is
 * procfs in metrics_process_collect, which the scrape handler calls.
 */
#include "metrics.h"

#include "util/cr.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Open-addressing table of series indices: a power of two at least twice the largest number of
 * series (METRICS_MAX_CHILDREN plus the overflow one), so probes stay short. */
#define SLOTS 1024
_Static_assert(SLOTS >= 2 * (METRICS_MAX_CHILDREN + 1), "series table too small");
_Static_assert(METRICS_MAX_CHILDREN + 1 < UINT16_MAX, "series index must fit a uint16_t");

/* Longest text fmt_double produces ("-1.7976931348623157e+308" is 24 bytes) plus NUL. */
#define NUM_MAX 32

const double METRICS_DEFAULT_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t METRICS_DEFAULT_BUCKETS_LEN = CR_ARRAY_SIZE(METRICS_DEFAULT_BUCKETS);

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/*
 * One label combination. Allocated once, when first seen, in a single block: the struct, the
 * histogram's bucket counts, the raw label values (for lookups) and the label pairs already
 * escaped and joined (`route="x",status="2xx"`), so rendering only copies bytes.
 */
typedef struct series {
    uint32_t hash;
    double value;      /* counter or gauge value; a histogram's sum */
    uint64_t count;    /* histogram observations */
    uint64_t *buckets; /* histogram: nbounds + 1 counts, not cumulative; the last is +Inf */
    metrics_value_cb cb;
    void *cb_data;
    const char *values[METRICS_MAX_LABELS];
    const char *labels; /* escaped pairs, without braces; "" when unlabelled */
    size_t labels_len;
} series_t;

typedef struct family {
    kind_t kind;
    char *name;
    char *help; /* already escaped for the HELP line */
    size_t nlabels;
    char *label_names[METRICS_MAX_LABELS];
    double *bounds;
    size_t nbounds;
    char (*le)[NUM_MAX]; /* bounds formatted once, at registration */
    series_t **series;   /* first-seen order; capacity 1 or METRICS_MAX_CHILDREN + 1 */
    size_t nseries;
    uint16_t *slots;    /* index + 1 into series, 0 for empty; NULL when unlabelled */
    series_t *overflow; /* the all-"other" series, once it exists */
} family_t;

/* The public handle types wrap a family, so a counter cannot be passed where a gauge goes. */
struct metrics_counter {
    family_t f;
};
struct metrics_gauge {
    family_t f;
};
struct metrics_histogram {
    family_t f;
};

struct metrics {
    family_t **families; /* registration order */
    size_t nfamilies;
    size_t cap;
    double start_time; /* wall clock at metrics_new, seconds since the epoch */

    struct {
        bool registered;
        int statm_fd;
        metrics_counter_t *cpu;
        metrics_gauge_t *rss, *vms, *open_fds, *max_fds, *start;
    } proc;

    uv_timer_t lag_timer;
    uv_loop_t *lag_loop; /* non-NULL once the timer handle was initialised */
    uint64_t lag_due_ns;
    metrics_histogram_t *lag;

    bool closing;
    metrics_close_cb close_cb;
    void *close_data;
};

/* ------------------------------------------------------------------------------------------ */
/* Text helpers                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void die(const char *what, const char *name)
{
    fprintf(stderr, "metrics: %s: \"%s\"\n", what, name ? name : "(null)");
    abort();
}

static bool is_name_start(char c, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool is_name_char(char c, bool colon)
{
    return is_name_start(c, colon) || (c >= '0' && c <= '9');
}

/* Metric names allow ':', label names do not. */
static bool valid_name(const char *s, size_t len, bool colon)
{
    if (len == 0 || !is_name_start(s[0], colon))
        return false;
    for (size_t i = 1; i < len; i++) {
        if (!is_name_char(s[i], colon))
            return false;
    }
    return true;
}

/* Well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. The exposition
 * format requires it and Prometheus refuses the whole scrape otherwise. */
static bool valid_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/*
 * Format v as Prometheus's Go client does (strconv.FormatFloat(v, 'g', -1, 64) plus the special
 * cases of expfmt's writeFloat): the fewest significant digits that read back as the same double,
 * exponent notation when the decimal exponent is below -4 or at least 6 ("1e+06", "1e-05"),
 * plain otherwise ("0.0005", "123456"). Returns the length written to out.
 */
static size_t fmt_double(double v, char out[NUM_MAX])
{
    if (isnan(v))
        return (size_t)snprintf(out, NUM_MAX, "NaN");
    if (isinf(v))
        return (size_t)snprintf(out, NUM_MAX, v > 0 ? "+Inf" : "-Inf");
    if (v == 0)
        return (size_t)snprintf(out, NUM_MAX, "0");
    /* Integers below 2^53 are exact; the common counter case skips the search below. */
    if (fabs(v) < 1e6 && v == (double)(int64_t)v)
        return (size_t)snprintf(out, NUM_MAX, "%" PRId64, (int64_t)v);

    /* Shortest round trip: a precision that reads back exactly never has a trailing zero
     * (dropping it would read back too), so the digit count is the precision. snprintf and
     * strtod follow LC_NUMERIC; the gateway never calls setlocale, so the point is a '.'. */
    char e[NUM_MAX];
    int digits = 17;
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v) {
            digits = p;
            break;
        }
    }
    snprintf(e, sizeof e, "%.*e", digits - 1, v);
    int exp = atoi(strchr(e, 'e') + 1);
    if (exp < -4 || exp >= 6)
        return (size_t)snprintf(out, NUM_MAX, "%s", e);
    int decimals = digits - 1 - exp;
    return (size_t)snprintf(out, NUM_MAX, "%.*f", decimals > 0 ? decimals : 0, v);
}

static void append_num(buf_t *out, double v)
{
    char num[NUM_MAX];
    size_t n = fmt_double(v, num);
    buf_append(out, num, n);
}

static void append_u64(buf_t *out, uint64_t v)
{
    char num[NUM_MAX];
    int n = snprintf(num, sizeof num, "%" PRIu64, v);
    buf_append(out, num, (size_t)n);
}

/* Label values escape backslash, double quote and newline; HELP text escapes only backslash and
 * newline. Returns the escaped length; writes into dst when it is not NULL. */
static size_t escape(char *dst, const char *s, bool quote)
{
    size_t n = 0;
    for (; *s; s++) {
        char c = *s;
        if (c == '\\' || c == '\n' || (quote && c == '"')) {
            if (dst) {
                dst[n] = '\\';
                dst[n + 1] = c == '\n' ? 'n' : c;
            }
            n += 2;
        } else {
            if (dst)
                dst[n] = c;
            n++;
        }
    }
    return n;
}

/* FNV-1a over the values, each followed by a 0xff byte (never in UTF-8) so that ("ab","c") and
 * ("a","bc") differ. */
static uint32_t hash_values(const char *const *values, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 16777619u;
        h = (h ^ 0xffu) * 16777619u;
    }
    return h;
}

/* ------------------------------------------------------------------------------------------ */
/* Series                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static series_t *series_new(family_t *f, const char *const *values, uint32_t hash)
{
    size_t nb = f->kind == KIND_HISTOGRAM ? f->nbounds + 1 : 0;
    size_t raw = 0, esc = 0;
    for (size_t i = 0; i < f->nlabels; i++) {
        raw += strlen(values[i]) + 1;
        /* name="value", */
        esc += strlen(f->label_names[i]) + 3 + escape(NULL, values[i], true) + 1;
    }
    /* series_t holds doubles and pointers, so the bucket counts that follow are aligned. */
    _Static_assert(sizeof(series_t) % sizeof(uint64_t) == 0, "bucket counts must be aligned");
    series_t *s = cr_calloc(1, sizeof *s + nb * sizeof(uint64_t) + raw + esc + 1);
    char *p = (char *)(s + 1) + nb * sizeof(uint64_t);
    s->hash = hash;
    s->buckets = nb ? (uint64_t *)(void *)(s + 1) : NULL;
    for (size_t i = 0; i < f->nlabels; i++) {
        size_t len = strlen(values[i]);
        memcpy(p, values[i], len + 1);
        s->values[i] = p;
        p += len + 1;
    }
    char *labels = p;
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i > 0)
            *p++ = ',';
        size_t len = strlen(f->label_names[i]);
        memcpy(p, f->label_names[i], len);
        p += len;
        *p++ = '=';
        *p++ = '"';
        p += escape(p, values[i], true);
        *p++ = '"';
    }
    *p = '\0';
    s->labels = labels;
    s->labels_len = (size_t)(p - labels);
    return s;
}

static series_t *series_find(family_t *f, const char *const *values, uint32_t hash)
{
    for (size_t i = hash & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        uint16_t idx = f->slots[i];
        if (idx == 0)
            return NULL;
        series_t *s = f->series[idx - 1];
        if (s->hash != hash)
            continue;
        size_t k = 0;
        while (k < f->nlabels && strcmp(s->values[k], values[k]) == 0)
            k++;
        if (k == f->nlabels)
            return s;
    }
}

static series_t *series_add(family_t *f, const char *const *values, uint32_t hash)
{
    series_t *s = series_new(f, values, hash);
    f->series[f->nseries++] = s;
    size_t i = hash & (SLOTS - 1);
    while (f->slots[i] != 0)
        i = (i + 1) & (SLOTS - 1);
    f->slots[i] = (uint16_t)f->nseries;
    return s;
}

static series_t *series_overflow(family_t *f)
{
    if (f->overflow)
        return f->overflow;
    const char *values[METRICS_MAX_LABELS];
    for (size_t i = 0; i < f->nlabels; i++)
        values[i] = METRICS_OVERFLOW_VALUE;
    uint32_t hash = hash_values(values, f->nlabels);
    /* A caller may have used "other" itself; then that series is the overflow one. Otherwise
     * the table has room: the capacity keeps one place beyond METRICS_MAX_CHILDREN for it. */
    series_t *s = series_find(f, values, hash);
    f->overflow = s ? s : series_add(f, values, hash);
    return f->overflow;
}

static bool values_acceptable(const family_t *f, const char *const *values)
{
    for (size_t i = 0; i < f->nlabels; i++) {
        if (values[i] == NULL)
            return false;
        size_t len = strnlen(values[i], METRICS_MAX_VALUE_LEN + 1);
        if (len > METRICS_MAX_VALUE_LEN || !valid_utf8((const unsigned char *)values[i], len))
            return false;
    }
    return true;
}

/* The series for these label values: found, created while the family has room, or the
 * overflow series. Allocates only when creating. */
static series_t *series_get(family_t *f, const char *const *values)
{
    if (f->nlabels == 0)
        return f->series[0];
    if (values == NULL)
        return series_overflow(f);
    for (size_t i = 0; i < f->nlabels; i++) {
        if (values[i] == NULL)
            return series_overflow(f);
    }
    uint32_t hash = hash_values(values, f->nlabels);
    series_t *s = series_find(f, values, hash);
    if (s)
        return s;
    if (f->nseries < METRICS_MAX_CHILDREN && values_acceptable(f, values))
        return series_add(f, values, hash);
    return series_overflow(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Registry and registration                                                                    */
/* ------------------------------------------------------------------------------------------ */

metrics_t *metrics_new(void)
{
    metrics_t *m = cr_calloc(1, sizeof *m);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    m->proc.statm_fd = -1;
    return m;
}

static void family_free(family_t *f)
{
    for (size_t i = 0; i < f->nseries; i++)
        free(f->series[i]);
    free(f->series);
    free(f->slots);
    free(f->name);
    free(f->help);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->label_names[i]);
    free(f->bounds);
    free(f->le);
    free(f); /* f is the first member of the public wrapper that was allocated */
}

static void parse_label_names(family_t *f, const char *label_names)
{
    if (label_names == NULL || *label_names == '\0')
        return;
    const char *p = label_names;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (f->nlabels == METRICS_MAX_LABELS)
            die("too many label names", label_names);
        if (!valid_name(p, len, false) || (len >= 2 && p[0] == '_' && p[1] == '_'))
            die("invalid label name", label_names);
        if (f->kind == KIND_HISTOGRAM && len == 2 && memcmp(p, "le", 2) == 0)
            die("histograms reserve the label name le", label_names);
        char *name = cr_strndup(p, len);
        for (size_t i = 0; i < f->nlabels; i++) {
            if (strcmp(f->label_names[i], name) == 0)
                die("duplicate label name", label_names);
        }
        f->label_names[f->nlabels++] = name;
        if (!end)
            break;
        p = end + 1;
    }
}

/* Fill in and link a family the caller allocated (as its public wrapper). */
static void family_init(metrics_t *m, family_t *f, kind_t kind, const char *name, const char *help,
                        const char *label_names)
{
    if (name == NULL || !valid_name(name, strlen(name), true))
        die("invalid metric name", name);
    f->kind = kind;
    if (kind == KIND_COUNTER) {
        size_t len = strlen(name);
        bool has_total = len >= 6 && strcmp(name + len - 6, "_total") == 0;
        f->name = cr_malloc(len + (has_total ? 0 : 6) + 1);
        memcpy(f->name, name, len);
        strcpy(f->name + len, has_total ? "" : "_total");
    } else {
        f->name = cr_strdup(name);
    }
    for (size_t i = 0; i < m->nfamilies; i++) {
        if (strcmp(m->families[i]->name, f->name) == 0)
            die("metric registered twice", f->name);
    }
    help = help ? help : "";
    f->help = cr_malloc(escape(NULL, help, false) + 1);
    f->help[escape(f->help, help, false)] = '\0';
    parse_label_names(f, label_names);

    if (f->nlabels == 0) {
        f->series = cr_calloc(1, sizeof *f->series);
    } else {
        f->series = cr_calloc(METRICS_MAX_CHILDREN + 1, sizeof *f->series);
        f->slots = cr_calloc(SLOTS, sizeof *f->slots);
    }

    if (m->nfamilies == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->families = cr_realloc(m->families, m->cap * sizeof *m->families);
    }
    m->families[m->nfamilies++] = f;
}

/* Unlabelled families have their single series from the start, so they render as 0 at once.
 * Histograms must have their bounds set before this runs. */
static void family_ready(family_t *f)
{
    if (f->nlabels == 0)
        f->series[f->nseries++] = series_new(f, NULL, 0);
}

metrics_counter_t *metrics_counter(metrics_t *m, const char *name, const char *help,
                                   const char *label_names)
{
    metrics_counter_t *c = cr_calloc(1, sizeof *c);
    family_init(m, &c->f, KIND_COUNTER, name, help, label_names);
    family_ready(&c->f);
    return c;
}

metrics_gauge_t *metrics_gauge(metrics_t *m, const char *name, const char *help,
                               const char *label_names)
{
    metrics_gauge_t *g = cr_calloc(1, sizeof *g);
    family_init(m, &g->f, KIND_GAUGE, name, help, label_names);
    family_ready(&g->f);
    return g;
}

metrics_histogram_t *metrics_histogram(metrics_t *m, const char *name, const char *help,
                                       const char *label_names, const double *buckets,
                                       size_t n_buckets)
{
    if (buckets == NULL) {
        buckets = METRICS_DEFAULT_BUCKETS;
        n_buckets = METRICS_DEFAULT_BUCKETS_LEN;
    }
    /* +Inf is always the implicit last bucket; accept it spelled out too. */
    if (n_buckets > 0 && isinf(buckets[n_buckets - 1]) && buckets[n_buckets - 1] > 0)
        n_buckets--;
    if (n_buckets == 0 || n_buckets > METRICS_MAX_BUCKETS)
        die("histogram needs 1 to METRICS_MAX_BUCKETS finite buckets", name);
    for (size_t i = 0; i < n_buckets; i++) {
        if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
            die("histogram buckets must be finite and strictly increasing", name);
    }

    metrics_histogram_t *h = cr_calloc(1, sizeof *h);
    family_t *f = &h->f;
    family_init(m, f, KIND_HISTOGRAM, name, help, label_names);
    f->nbounds = n_buckets;
    f->bounds = cr_malloc(n_buckets * sizeof *f->bounds);
    memcpy(f->bounds, buckets, n_buckets * sizeof *f->bounds);
    f->le = cr_malloc(n_buckets * sizeof *f->le);
    for (size_t i = 0; i < n_buckets; i++)
        fmt_double(buckets[i], f->le[i]);
    family_ready(f);
    return h;
}

static void series_bind(family_t *f, const char *const *values, metrics_value_cb cb, void *data)
{
    series_t *s = series_get(f, values);
    s->cb = cb;
    s->cb_data = cb ? data : NULL;
}

metrics_gauge_t *metrics_gauge_callback(metrics_t *m, const char *name, const char *help,
                                        metrics_value_cb cb, void *data)
{
    metrics_gauge_t *g = metrics_gauge(m, name, help, NULL);
    series_bind(&g->f, NULL, cb, data);
    return g;
}

void metrics_gauge_bind(metrics_gauge_t *g, const char *const *label_values, metrics_value_cb cb,
                        void *data)
{
    series_bind(&g->f, label_values, cb, data);
}

void metrics_counter_bind(metrics_counter_t *c, const char *const *label_values,
                          metrics_value_cb cb, void *data)
{
    series_bind(&c->f, label_values, cb, data);
}

/* ------------------------------------------------------------------------------------------ */
/* Updates                                                                                      */
/* ------------------------------------------------------------------------------------------ */

void metrics_counter_inc(metrics_counter_t *c, const char *const *label_values, double by)
{
    if (!(by >= 0)) /* also catches NaN */
        return;
    series_get(&c->f, label_values)->value += by;
}

void metrics_gauge_set(metrics_gauge_t *g, const char *const *label_values, double v)
{
    series_get(&g->f, label_values)->value = v;
}

void metrics_gauge_add(metrics_gauge_t *g, const char *const *label_values, double by)
{
    series_get(&g->f, label_values)->value += by;
}

void metrics_histogram_observe(metrics_histogram_t *h, const char *const *label_values, double v)
{
    if (isnan(v))
        return;
    family_t *f = &h->f;
    series_t *s = series_get(f, label_values);
    /* Binary search for the first bound >= v; nbounds when v is above them all (+Inf). */
    size_t lo = 0, hi = f->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->bounds[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    s->buckets[lo]++;
    s->count++;
    s->value += v;
}

/* ------------------------------------------------------------------------------------------ */
/* Rendering                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* name + suffix + {labels[,extra]} + ' ' : the part of a sample line before its value. */
static void append_head(buf_t *out, const family_t *f, const char *suffix, const series_t *s,
                        const char *le)
{
    buf_append_str(out, f->name);
    if (suffix)
        buf_append_str(out, suffix);
    if (s->labels_len > 0 || le) {
        buf_append(out, "{", 1);
        buf_append(out, s->labels, s->labels_len);
        if (le) {
            if (s->labels_len > 0)
                buf_append(out, ",", 1);
            buf_append(out, "le=\"", 4);
            buf_append_str(out, le);
            buf_append(out, "\"", 1);
        }
        buf_append(out, "}", 1);
    }
    buf_append(out, " ", 1);
}

static void render_histogram(buf_t *out, const family_t *f, const series_t *s)
{
    uint64_t cumulative = 0;
    for (size_t i = 0; i < f->nbounds; i++) {
        cumulative += s->buckets[i];
        append_head(out, f, "_bucket", s, f->le[i]);
        append_u64(out, cumulative);
        buf_append(out, "\n", 1);
    }
    cumulative += s->buckets[f->nbounds];
    append_head(out, f, "_bucket", s, "+Inf");
    append_u64(out, cumulative);
    buf_append(out, "\n", 1);
    append_head(out, f, "_sum", s, NULL);
    append_num(out, s->value);
    buf_append(out, "\n", 1);
    append_head(out, f, "_count", s, NULL);
    append_u64(out, s->count);
    buf_append(out, "\n", 1);
}

void metrics_render(metrics_t *m, buf_t *out)
{
    for (size_t i = 0; i < m->nfamilies; i++) {
        const family_t *f = m->families[i];
        if (f->nseries == 0)
            continue; /* a labelled family with nothing yet: no HELP/TYPE without samples */
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                   kind_names[f->kind]);
        for (size_t k = 0; k < f->nseries; k++) {
            const series_t *s = f->series[k];
            if (f->kind == KIND_HISTOGRAM) {
                render_histogram(out, f, s);
                continue;
            }
            append_head(out, f, NULL, s, NULL);
            append_num(out, s->cb ? s->cb(s->cb_data) : s->value);
            buf_append(out, "\n", 1);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Process metrics                                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * Why procfs and not only getrusage: getrusage gives CPU time and the *peak* RSS (ru_maxrss),
 * but process_resident_memory_bytes means the current RSS, which only /proc/self/statm has.
 * procfs files are generated from kernel memory, so reading them never waits on a disk; statm
 * stays open and each scrape costs one pread. Counting /proc/self/fd is one getdents pass over
 * the descriptor table, proportional to the open connections, and runs only per scrape.
 */
static bool read_statm(metrics_t *m, double *vms, double *rss)
{
    if (m->proc.statm_fd < 0)
        return false;
    char text[128];
    ssize_t n = pread(m->proc.statm_fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return false;
    text[n] = '\0';
    unsigned long long size, resident;
    if (sscanf(text, "%llu %llu", &size, &resident) != 2)
        return false;
    double page = (double)sysconf(_SC_PAGESIZE);
    *vms = (double)size * page;
    *rss = (double)resident * page;
    return true;
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static void proc_register(metrics_t *m)
{
    m->proc.registered = true;
    m->proc.cpu = metrics_counter(m, "process_cpu_seconds_total",
                                  "Total user and system CPU time spent in seconds.", NULL);
    m->proc.statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    double vms, rss;
    if (read_statm(m, &vms, &rss)) {
        m->proc.rss = metrics_gauge(m, "process_resident_memory_bytes",
                                    "Resident memory size in bytes.", NULL);
        m->proc.vms =
            metrics_gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL);
    }
    if (count_open_fds() >= 0)
        m->proc.open_fds =
            metrics_gauge(m, "process_open_fds", "Number of open file descriptors.", NULL);
    m->proc.max_fds =
        metrics_gauge(m, "process_max_fds", "Maximum number of open file descriptors.", NULL);
    m->proc.start = metrics_gauge(m, "process_start_time_seconds",
                                  "Start time of the process since unix epoch in seconds.", NULL);
}

void metrics_process_collect(metrics_t *m)
{
    if (!m->proc.registered)
        proc_register(m);

    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        /* Set, not added: the kernel keeps the running total. */
        m->proc.cpu->f.series[0]->value = cpu;
    }
    double vms, rss;
    if (m->proc.rss && read_statm(m, &vms, &rss)) {
        metrics_gauge_set(m->proc.rss, NULL, rss);
        metrics_gauge_set(m->proc.vms, NULL, vms);
    }
    if (m->proc.open_fds) {
        int fds = count_open_fds();
        if (fds >= 0)
            metrics_gauge_set(m->proc.open_fds, NULL, fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_gauge_set(m->proc.max_fds, NULL,
                          rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
    metrics_gauge_set(m->proc.start, NULL, m->start_time);
}

/* ------------------------------------------------------------------------------------------ */
/* Loop lag                                                                                     */
/* ------------------------------------------------------------------------------------------ */

#define LAG_INTERVAL_NS ((uint64_t)METRICS_LOOP_LAG_INTERVAL_MS * 1000000u)

/*
 * Arm the one-shot timer and remember when, by the monotonic high-resolution clock, it is due.
 * libuv computes the timer's deadline from its cached loop time (uv_now), which can be stale by
 * however long the current iteration has run; refreshing it first makes libuv's deadline and
 * ours the same instant, so what we measure is the loop's delay and not the cache's age.
 */
static int lag_arm(metrics_t *m);

static void lag_fire(uv_timer_t *t)
{
    metrics_t *m = t->data;
    uint64_t now = uv_hrtime();
    double late = now > m->lag_due_ns ? (double)(now - m->lag_due_ns) / 1e9 : 0.0;
    metrics_histogram_observe(m->lag, NULL, late);
    lag_arm(m); /* cannot fail: the handle is initialised, not closing, and has a callback */
}

static int lag_arm(metrics_t *m)
{
    uv_update_time(m->lag_loop);
    m->lag_due_ns = uv_hrtime() + LAG_INTERVAL_NS;
    return uv_timer_start(&m->lag_timer, lag_fire, METRICS_LOOP_LAG_INTERVAL_MS, 0);
}

int metrics_loop_lag_start(metrics_t *m, uv_loop_t *loop)
{
    if (m->lag_loop || m->closing)
        return UV_EALREADY;
    if (!m->lag)
        m->lag = metrics_histogram(m, METRICS_LOOP_LAG_NAME,
                                   "How late the event loop ran a timer due every 100 ms.", NULL,
                                   NULL, 0);
    int rc = uv_timer_init(loop, &m->lag_timer);
    if (rc != 0)
        return rc;
    m->lag_loop = loop; /* from here on metrics_close must close the handle */
    m->lag_timer.data = m;
    uv_unref((uv_handle_t *)&m->lag_timer);
    return lag_arm(m);
}

/* ------------------------------------------------------------------------------------------ */
/* Close                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void release(metrics_t *m)
{
    metrics_close_cb cb = m->close_cb;
    void *data = m->close_data;
    for (size_t i = 0; i < m->nfamilies; i++)
        family_free(m->families[i]);
    free(m->families);
    if (m->proc.statm_fd >= 0)
        close(m->proc.statm_fd);
    free(m);
    if (cb)
        cb(data);
}

static void lag_closed(uv_handle_t *h)
{
    release(h->data);
}

void metrics_close(metrics_t *m, metrics_close_cb cb, void *data)
{
    if (m->closing)
        return;
    m->closing = true;
    m->close_cb = cb;
    m->close_data = data;
    if (m->lag_loop) {
        uv_close((uv_handle_t *)&m->lag_timer, lag_closed);
        return;
    }
    release(m);
}
