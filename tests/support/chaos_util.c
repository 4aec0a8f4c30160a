/*
 * chaos_util.c - clocks, scaling, percentiles, a string map and result lines for the chaos
 * harness (see chaos.h).
 */
#include "chaos.h"

#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

long long chaos_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

bool chaos_full(void)
{
    const char *v = getenv("CHAOS_FULL");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

#if defined(__SANITIZE_ADDRESS__)
#define CHAOS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHAOS_SANITIZED 1
#endif
#endif

double chaos_slow(void)
{
    const char *v = getenv("CHAOS_SLOW");
    if (v != NULL && v[0] != '\0') {
        double d = atof(v);
        if (d > 0)
            return d;
    }
#ifdef CHAOS_SANITIZED
    return 2.0;
#else
    return 1.0;
#endif
}

bool chaos_sanitized(void)
{
#ifdef CHAOS_SANITIZED
    return true;
#else
    return false;
#endif
}

int chaos_ms(int ms)
{
    return (int)(ms * chaos_slow());
}

long chaos_env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return end != v ? n : dflt;
}

bool chaos_want(int fig)
{
    const char *v = getenv("CHAOS_ONLY");
    if (v == NULL || v[0] == '\0')
        return true;
    const char *p = v;
    while (*p) {
        char *end;
        long n = strtol(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        if (n == fig)
            return true;
        p = end;
    }
    return false;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double chaos_pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    double *c = malloc(n * sizeof *c);
    if (c == NULL)
        abort();
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    double rank = p / 100.0 * (double)(n - 1);
    size_t i = (size_t)rank;
    double frac = rank - (double)i;
    double r = i + 1 < n ? c[i] + (c[i + 1] - c[i]) * frac : c[n - 1];
    free(c);
    return r;
}

void chaos_sha256_hex(const char *s, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, strlen(s), d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void chaos_deadline_ts(struct timespec *end, int deadline_ms)
{
    clock_gettime(CLOCK_MONOTONIC, end);
    end->tv_sec += deadline_ms / 1000;
    end->tv_nsec += (long)(deadline_ms % 1000) * 1000000L;
    if (end->tv_nsec >= 1000000000L) {
        end->tv_sec++;
        end->tv_nsec -= 1000000000L;
    }
}

void *chaos_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL)
        abort();
    return q;
}

double chaos_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

bool chaos_gate_latency(void)
{
    return chaos_full() && !chaos_sanitized();
}

int chaos_limit_ms(int limit_ms, int short_ms)
{
    return chaos_gate_latency() ? limit_ms : chaos_ms(short_ms);
}

uint64_t chaos_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void chaos_figure(int fig, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    const char *variant = chaos_full() ? "full" : "short";
    printf("FIGURE %d %s | %s\n", fig, variant, text);
    fflush(stdout);
    const char *path = getenv("CHAOS_RESULTS");
    if (path != NULL && path[0] != '\0') {
        FILE *f = fopen(path, "a");
        if (f != NULL) {
            fprintf(f, "FIGURE %d %s | %s\n", fig, variant, text);
            fclose(f);
        }
    }
}

void chaos_tag(char *out, size_t size, const char *base)
{
    snprintf(out, size, "%s%d%06lld", base, (int)getpid(), chaos_now_us() % 1000000);
}

void chaos_dump_logs(const char *name, chaos_load_t *l, chaos_dest_t *d)
{
    const char *dir = getenv("CHAOS_LOG_DIR");
    if (dir == NULL || dir[0] == '\0')
        return;
    char path[512];
    if (l) {
        snprintf(path, sizeof path, "%s/%s-load.tsv", dir, name);
        chaos_load_write_log(l, path);
    }
    if (d) {
        snprintf(path, sizeof path, "%s/%s-dest.tsv", dir, name);
        chaos_dest_write_log(d, path);
    }
}

/* ---------------------------------------------------------------- string map */

typedef struct slot {
    char *key;
    long value;
} slot_t;

struct chaos_map {
    slot_t *slots;
    size_t cap, n;
};

chaos_map_t *chaos_map_new(void)
{
    chaos_map_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        abort();
    m->cap = 1024;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (m->slots == NULL)
        abort();
    return m;
}

void chaos_map_free(chaos_map_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static size_t find_slot(const slot_t *slots, size_t cap, const char *key)
{
    size_t i = (size_t)chaos_hash(key, strlen(key)) & (cap - 1);
    while (slots[i].key != NULL && strcmp(slots[i].key, key) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

long *chaos_map_put(chaos_map_t *m, const char *key)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap * 2;
        slot_t *ns = calloc(ncap, sizeof *ns);
        if (ns == NULL)
            abort();
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key != NULL)
                ns[find_slot(ns, ncap, m->slots[i].key)] = m->slots[i];
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    size_t i = find_slot(m->slots, m->cap, key);
    if (m->slots[i].key == NULL) {
        m->slots[i].key = strdup(key);
        if (m->slots[i].key == NULL)
            abort();
        m->slots[i].value = 0;
        m->n++;
    }
    return &m->slots[i].value;
}

long *chaos_map_get(const chaos_map_t *m, const char *key)
{
    size_t i = find_slot(m->slots, m->cap, key);
    return m->slots[i].key != NULL ? &m->slots[i].value : NULL;
}

size_t chaos_map_size(const chaos_map_t *m)
{
    return m->n;
}
