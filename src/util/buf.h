/*
 * buf.h - a growable byte buffer for building responses and holding request bytes.
 *
 * Owns its storage; a zeroed buf_t is a valid empty buffer. Growth aborts on allocation failure
 * (cr.h); callers bound sizes with configured limits before appending.
 */
#ifndef CR_BUF_H
#define CR_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

void buf_reserve(buf_t *b, size_t extra);
/* Inline: responses, log entries and Redis commands are built from thousands of short pieces
 * (~2,300 appends per create saga), most of them literals of a few bytes. */
static inline void buf_append(buf_t *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (b->len + len >= b->cap) /* buf_reserve keeps one spare byte */
        buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}
void buf_append_str(buf_t *b, const char *s);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 for the bytes a JSON string holds as they are: printable ASCII (0x20-0x7e) but '"' and '\\'.
 * A table: the writers test every byte of every text they write. */
extern const unsigned char buf_json_plain[256];
/* Append s as the inside of a JSON string (escapes quotes, controls, U+2028/U+2029). */
void buf_append_json_str(buf_t *b, const char *s, size_t len);
/*
 * Length of the valid UTF-8 sequence at s[i] (1-4), or 0 when the byte there does not start one
 * (stray continuation byte, overlong form, surrogate, beyond U+10FFFF, truncated).
 */
size_t buf_utf8_seq(const char *s, size_t len, size_t i);
/* Append s with every byte that is not part of valid UTF-8 replaced by U+FFFD. */
void buf_append_utf8_lossy(buf_t *b, const char *s, size_t len);

/* Drop the first n bytes, keeping the rest. */
void buf_consume(buf_t *b, size_t n);
void buf_reset(buf_t *b); /* length 0, storage kept */
void buf_free(buf_t *b);  /* storage released, buffer empty again */
/* Hand the storage to the caller (NUL-terminated), leaving b empty. */
char *buf_steal(buf_t *b, size_t *len);

#endif
