/*
 * cr.h - project-wide macros and the allocation wrappers.
 *
 * Allocation failure aborts the process (as Redis's zmalloc does): every size we allocate is
 * bounded by a configured limit, so running out of memory is not an input error to report.
 */
#ifndef CR_H
#define CR_H

#include <stddef.h>
#include <stdint.h>

#define CR_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define CR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CR_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocate, or abort with a message on stderr. Never return NULL. */
void *cr_malloc(size_t n);
void *cr_calloc(size_t count, size_t n);
void *cr_realloc(void *p, size_t n);
char *cr_strdup(const char *s);
char *cr_strndup(const char *s, size_t n);

/* Decimal text of v, NUL-terminated, into out (CR_INT_LEN bytes); returns its length. For the
 * saga path's numbers and keys: snprintf costs ~700 instructions a call, and a create saga
 * formatted ~60 of them. */
#define CR_INT_LEN 24
size_t cr_fmt_int(char out[CR_INT_LEN], long long v);
/* a, b and c (c may be NULL) one after the other into out of size bytes (> 0), cut to fit and
 * NUL-terminated as snprintf would; returns out. */
char *cr_cat(char *out, size_t size, const char *a, const char *b, const char *c);

#endif
