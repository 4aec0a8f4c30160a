/*
 * bench_util.h - small helpers shared by the benchmark programs (header-only).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * A JSON body of exactly n bytes (n >= 15), shaped like the gateway's answers:
 * {"status":"pending","message":"Order accepted","pad":"xxx..."} or, when n is too small for
 * that, {"status":"ok"} followed by spaces (JSON allows trailing whitespace).
 * Returns a malloc'd NUL-terminated string.
 */
static inline char *bench_json_body(size_t n)
{
    static const char head[] = "{\"status\":\"pending\",\"message\":\"Order accepted\",\"pad\":\"";
    static const char tail[] = "\"}";
    if (n < 15)
        n = 15;
    char *b = malloc(n + 1);
    if (b == NULL)
        return NULL;
    size_t hl = sizeof head - 1, tl = sizeof tail - 1;
    if (n >= hl + tl) {
        memcpy(b, head, hl);
        for (size_t i = hl; i < n - tl; i++)
            b[i] = (char)('a' + (i % 26));
        memcpy(b + n - tl, tail, tl);
    } else {
        memcpy(b, "{\"status\":\"ok\"}", 15);
        memset(b + 15, ' ', n - 15);
    }
    b[n] = '\0';
    return b;
}

/* A complete "200 OK" HTTP/1.1 response with the gateway's header set around body. */
static inline char *bench_http_200(const char *body, size_t body_len, size_t *out_len)
{
    size_t cap = body_len + 256;
    char *r = malloc(cap);
    if (r == NULL)
        return NULL;
    int h = snprintf(r, cap,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "X-Request-Id: 000000000000000000000000\r\nContent-Length: %zu\r\n"
                     "Connection: keep-alive\r\n\r\n",
                     body_len);
    memcpy(r + h, body, body_len);
    *out_len = (size_t)h + body_len;
    return r;
}

/* "2026-05-11T19:25:51.332Z" -> Unix epoch milliseconds; -1 when it does not parse. */
static inline int64_t bench_iso_to_ms(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    if (s == NULL ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static inline int64_t bench_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile p (0..100) of v[0..n) after sorting v in place (nearest rank). */
static inline double bench_percentile_sorted(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0.0;
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

/* Print {"n":N,"p50":..,"p90":..,"p99":..,"max":..} for v (sorted in place). */
static inline void bench_print_dist(FILE *out, double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    fprintf(out, "{\"n\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}", n,
            bench_percentile_sorted(v, n, 50), bench_percentile_sorted(v, n, 90),
            bench_percentile_sorted(v, n, 99), n ? v[n - 1] : 0.0);
}

#endif
