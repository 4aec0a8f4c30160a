/*
 * cr.c - allocation wrappers that abort on failure, and small formatters (see cr.h).
 */
#include "util/cr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *cr_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *cr_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        oom(count * n);
    return p;
}

void *cr_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *cr_strndup(const char *s, size_t n)
{
    char *d = cr_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *cr_strdup(const char *s)
{
    return cr_strndup(s, strlen(s));
}

size_t cr_fmt_int(char out[CR_INT_LEN], long long v)
{
    char tmp[CR_INT_LEN];
    size_t n = 0, len = 0;
    /* in unsigned arithmetic, so LLONG_MIN has its magnitude too */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = tmp[--n];
    out[len] = '\0';
    return len;
}

char *cr_cat(char *out, size_t size, const char *a, const char *b, const char *c)
{
    const char *part[3] = {a, b, c};
    size_t len = 0;
    for (size_t i = 0; i < 3 && part[i] != NULL; i++) {
        size_t n = strlen(part[i]);
        if (n > size - 1 - len)
            n = size - 1 - len;
        memcpy(out + len, part[i], n);
        len += n;
    }
    out[len] = '\0';
    return out;
}
