/*
 * sagastat.c - counts the gateway's saga records in Redis and summarises them.
 *
 * The saga engine deletes a saga's stream entry when the saga ends, so the stream length does
 * not say how many sagas were accepted; the saga hashes (cr:{cr}:saga:<id>, kept retention_s
 * after the end) do. This SCANs them (skipping the :hist lists) and, unless --count-only,
 * reads status, created_at and finished_at of each.
 *
 *   bench_sagastat --redis 127.0.0.1:18404 [--count-only]
 *
 * Prints one JSON object:
 *   {"sagas": N}                                                       (--count-only)
 *   {"sagas": N, "statuses": {...}, "terminal": n, "first_created_ms", "last_finished_ms",
 *    "span_s", "terminal_per_s", "synced_per_s", "gw_ms": {n,p50,p90,p99,max}}
 * span_s runs from the first saga's created_at to the last terminal saga's finished_at;
 * *_per_s divide by it. gw_ms is created_at -> finished_at of synced sagas.
 */
#include "bench_util.h"
#include "bsrv.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct status_count {
    char name[24];
    long n;
} status_count_t;

static status_count_t counts[16];
static int ncounts;

static void count_status(const char *s)
{
    for (int i = 0; i < ncounts; i++)
        if (strcmp(counts[i].name, s) == 0) {
            counts[i].n++;
            return;
        }
    if (ncounts < 16) {
        snprintf(counts[ncounts].name, sizeof counts[ncounts].name, "%s", s);
        counts[ncounts++].n = 1;
    }
}

static bool is_terminal(const char *st)
{
    return strcmp(st, "synced") == 0 || strcmp(st, "canceled") == 0 ||
           strcmp(st, "rejected") == 0 || strcmp(st, "error") == 0;
}

int main(int argc, char **argv)
{
    const char *redis = NULL;
    bool count_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc)
            redis = argv[++i];
        else if (strcmp(argv[i], "--count-only") == 0)
            count_only = true;
        else
            redis = NULL, i = argc;
    }
    char host[256];
    int port;
    if (redis == NULL || bsrv_parse_hostport(redis, host, sizeof host, &port) != 0) {
        fputs("usage: bench_sagastat --redis HOST:PORT [--count-only]\n", stderr);
        return 2;
    }
    redisContext *rc = redisConnect(host, port);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "sagastat: redis %s: %s\n", redis, rc ? rc->errstr : "oom");
        return 1;
    }
    size_t cap = 1024, n = 0;
    char **keys = malloc(cap * sizeof *keys);
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(rc, "SCAN %s MATCH cr:{cr}:saga:* COUNT 2000", cursor);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            fprintf(stderr, "sagastat: SCAN failed\n");
            return 1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *ks = r->element[1];
        for (size_t i = 0; i < ks->elements; i++) {
            const char *k = ks->element[i]->str;
            size_t kl = ks->element[i]->len;
            if (kl >= 5 && strcmp(k + kl - 5, ":hist") == 0)
                continue;
            if (n == cap) {
                cap *= 2;
                keys = realloc(keys, cap * sizeof *keys);
            }
            keys[n++] = strdup(k);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);

    if (count_only) {
        printf("{\"sagas\":%zu}\n", n);
        return 0;
    }
    int64_t first_created = -1, last_finished = -1;
    long terminal = 0, synced = 0;
    double *gw = calloc(n + 1, sizeof *gw);
    size_t ngw = 0;
    for (size_t start = 0; start < n; start += 1000) {
        size_t end = start + 1000 < n ? start + 1000 : n;
        for (size_t i = start; i < end; i++)
            redisAppendCommand(rc, "HMGET %s status created_at finished_at", keys[i]);
        for (size_t i = start; i < end; i++) {
            void *rv = NULL;
            if (redisGetReply(rc, &rv) != REDIS_OK)
                return 1;
            redisReply *r = rv;
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                r->element[0]->type == REDIS_REPLY_STRING) {
                const char *st = r->element[0]->str;
                count_status(st);
                int64_t c = r->element[1]->type == REDIS_REPLY_STRING
                                ? bench_iso_to_ms(r->element[1]->str)
                                : -1;
                int64_t f = r->element[2]->type == REDIS_REPLY_STRING
                                ? bench_iso_to_ms(r->element[2]->str)
                                : -1;
                if (c >= 0 && (first_created < 0 || c < first_created))
                    first_created = c;
                if (is_terminal(st)) {
                    terminal++;
                    if (f > last_finished)
                        last_finished = f;
                }
                if (strcmp(st, "synced") == 0) {
                    synced++;
                    if (c >= 0 && f >= 0)
                        gw[ngw++] = (double)(f - c);
                }
            } else {
                count_status("(gone)");
            }
            freeReplyObject(r);
        }
    }
    double span = (first_created >= 0 && last_finished > first_created)
                      ? (double)(last_finished - first_created) / 1000.0
                      : 0.0;
    printf("{\"sagas\":%zu,\"statuses\":{", n);
    for (int i = 0; i < ncounts; i++)
        printf("%s\"%s\":%ld", i ? "," : "", counts[i].name, counts[i].n);
    printf("},\"terminal\":%ld,\"first_created_ms\":%lld,\"last_finished_ms\":%lld,"
           "\"span_s\":%.3f,\"terminal_per_s\":%.1f,\"synced_per_s\":%.1f,\"gw_ms\":",
           terminal, (long long)first_created, (long long)last_finished, span,
           span > 0 ? (double)terminal / span : 0.0, span > 0 ? (double)synced / span : 0.0);
    bench_print_dist(stdout, gw, ngw);
    printf("}\n");
    redisFree(rc);
    return 0;
}
