/*
 * buf.c - growable byte buffer (see buf.h).
 */
#include "util/buf.h"

#include "util/cr.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

void buf_reserve(buf_t *b, size_t extra)
{
    /* One spare byte so buf_steal can always NUL-terminate without growing. */
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = cr_realloc(b->data, cap);
    b->cap = cap;
}

void buf_append_str(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        buf_append(b, small, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t buf_utf8_seq(const char *str, size_t len, size_t i)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[i];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > len)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i + k] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void buf_append_utf8_lossy(buf_t *b, const char *s, size_t len)
{
    buf_reserve(b, len);
    for (size_t i = 0; i < len;) {
        size_t n = buf_utf8_seq(s, len, i);
        if (n == 0) {
            buf_append(b, "\xef\xbf\xbd", 3);
            i++;
        } else {
            buf_append(b, s + i, n);
            i += n;
        }
    }
}

/* One row of 16 bytes per line. */
/* clang-format off */
#define PLAIN16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
#define OTHER16 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
const unsigned char buf_json_plain[256] = {
    OTHER16,
    OTHER16,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x22 '"' */
    PLAIN16,
    PLAIN16,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x5c '\\' */
    PLAIN16,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x7f DEL */
    /* 0x80-0xff: not ASCII (zero) */
};
/* clang-format on */

void buf_append_json_str(buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, len + 8);
    for (size_t i = 0; i < len; i++) {
        /* A run of plain printable ASCII goes in one copy. */
        size_t run = i;
        while (run < len && buf_json_plain[(unsigned char)s[run]])
            run++;
        if (run > i) {
            buf_append(b, s + i, run - i);
            i = run - 1;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            buf_append(b, esc, 2);
        } else if (c == '\n') {
            buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            buf_append(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, esc, 6);
        } else if (c >= 0x80) {
            size_t n = buf_utf8_seq(s, len, i);
            if (n == 0) {
                /* Not UTF-8 (a raw byte in a request path, say): keep the line valid JSON. */
                buf_append(b, "\\ufffd", 6);
            } else if (n == 3 && c == 0xe2 && (unsigned char)s[i + 1] == 0x80 &&
                       ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
                /* U+2028/U+2029 are legal JSON but break line-oriented log readers. */
                buf_append(b, (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
                i += 2;
            } else {
                buf_append(b, s + i, n);
                i += n - 1;
            }
        } else {
            buf_append(b, &s[i], 1);
        }
    }
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_reset(buf_t *b)
{
    b->len = 0;
}

void buf_free(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *buf_steal(buf_t *b, size_t *len)
{
    buf_reserve(b, 0);
    b->data[b->len] = '\0';
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
