/*
 * timefmt.h - RFC 3339 / ISO-8601 timestamps: parse what partners send, render what we store.
 *
 * Pure functions; no allocation, no locale, no time zone database (UTC offsets only).
 */
#ifndef CR_TIMEFMT_H
#define CR_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIME_ISO_LEN 25 /* "2026-05-11T19:25:51.332Z" + NUL */

/*
 * Parse a datetime as pydantic v2 accepts it in JSON: "YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]]"
 * followed by "Z", "z" or "+HH:MM"/"-HH:MM" (a missing offset is taken as UTC), or a date alone
 * "YYYY-MM-DD" (midnight UTC). Fractions beyond milliseconds are truncated. As speedate, it also
 * takes 't' or '_' as the separator, ',' before the fraction, "+HHMM" and U+2212 as minus; years
 * run from 1600, offsets to +-23:59, and results past 9999-12-31 UTC are refused. No numeric
 * (Unix timestamp) strings.
 * On success returns 0 and stores milliseconds since the Unix epoch (UTC) in *out_ms.
 * On failure returns a negative code and, when reason is not NULL, points it at a static string
 * in pydantic's words ("invalid character in year", "input is too short",
 * "month value is outside expected range of 1-12", "day value is outside expected range",
 * "hour value is outside expected range of 0-23", "invalid timezone sign", ...).
 */
int time_parse_iso(const char *s, size_t len, int64_t *out_ms, const char **reason);

/* Render ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (TIME_ISO_LEN bytes). */
void time_format_iso(int64_t ms, char out[TIME_ISO_LEN]);

/* Wall-clock milliseconds since the epoch (for timestamps only; use uv_now() for timeouts). */
int64_t time_now_ms(void);

#endif
