/*
 * log.h - structured logs: one JSON object per line on stdout.
 *
 * Every line has "ts" (RFC 3339 UTC, ms), "level" and "msg", then the caller's fields. Values are
 * escaped so a line stays one line whatever a partner sent (CR, LF, U+2028, ESC). Callers must
 * never pass a secret (API key, webhook secret, bearer token) as a value.
 */
#ifndef CR_LOG_H
#define CR_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL } log_level_t;

/* Set the minimum level; returns 0, or -1 for an unknown name ("debug", "info", ...). */
int log_level_set(const char *name);
int log_enabled(log_level_t level);

/*
 * Write one line. After msg come key/value pairs of C strings, terminated by NULL; a pair whose
 * value is NULL is skipped. A key starting with '#' marks a value that is written raw (a number
 * the caller formatted), the '#' itself is dropped.
 */
/* Write out buffered lines (the app calls it once per loop iteration). */
void log_flush(void);

void log_msg(log_level_t level, const char *msg, ...) __attribute__((sentinel));

#endif
