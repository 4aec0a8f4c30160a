/*
 * log.c - one JSON object per line on stdout (see log.h).
 *
 * The line is assembled in memory and written with a single fwrite so lines from one process
 * never interleave; stdout is fully buffered (app.c) and flushed once per loop iteration.
 */
#include "log.h"

#include "util/buf.h"
#include "util/timefmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static log_level_t min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

int log_level_set(const char *name)
{
    for (int i = 0; i <= LOG_FATAL; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            min_level = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void log_flush(void)
{
    fflush(stdout);
}

int log_enabled(log_level_t level)
{
    return level >= min_level;
}

void log_msg(log_level_t level, const char *msg, ...)
{
    if (level < min_level)
        return;
    char ts[TIME_ISO_LEN];
    time_format_iso(time_now_ms(), ts);
    buf_t b = {0};
    buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, level_names[level]);
    buf_append_json_str(&b, msg, strlen(msg));
    buf_append(&b, "\"", 1);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (key == NULL)
            break;
        const char *val = va_arg(ap, const char *);
        if (val == NULL)
            continue;
        int raw = key[0] == '#';
        if (raw)
            key++;
        buf_append(&b, ",\"", 2);
        buf_append_json_str(&b, key, strlen(key));
        buf_append(&b, raw ? "\":" : "\":\"", raw ? 2 : 3);
        if (raw)
            buf_append_str(&b, val);
        else
            buf_append_json_str(&b, val, strlen(val));
        if (!raw)
            buf_append(&b, "\"", 1);
    }
    va_end(ap);
    buf_append(&b, "}\n", 2);
    fwrite(b.data, 1, b.len, stdout);
    /* Lines accumulate in stdio's buffer and the app flushes once per loop iteration
     * (log_flush from a check handle): one write for a burst of requests, never a torn line. */
    if (level >= LOG_ERROR)
        fflush(stdout);
    buf_free(&b);
}
