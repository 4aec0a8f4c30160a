/*
 * timefmt.c - ISO-8601 / RFC 3339 timestamps: parse what partners send, render what we store.
 *
 * Does: parses datetimes the way pydantic v2 (speedate) reads them from JSON, and renders
 * milliseconds since the epoch in our one canonical form "YYYY-MM-DDTHH:MM:SS.mmmZ".
 * Owns: nothing; every function is pure apart from time_now_ms reading the wall clock.
 * Must not: allocate, consult the locale or TZ, or call timegm/mktime (the calendar arithmetic is
 * done here so the result never depends on the C library or the process environment).
 */
#include "util/timefmt.h"

#include <errno.h>
#include <stdbool.h>
#include <time.h>

/*
 * speedate's error texts (ParseError's documentation strings), which pydantic puts after
 * "Input should be a valid datetime, ". Keeping its words lets partners that already handle
 * FastAPI services read our 422s without a second dictionary.
 */
static const char R_TOO_SHORT[] = "input is too short";
static const char R_EXTRA[] = "unexpected extra characters at the end of the input";
static const char R_DT_SEP[] = "invalid datetime separator, expected `T`, `t`, `_` or space";
static const char R_DATE_SEP[] = "invalid date separator, expected `-`";
static const char R_YEAR[] = "invalid character in year";
static const char R_MONTH[] = "invalid character in month";
static const char R_DAY[] = "invalid character in day";
static const char R_TIME_SEP[] = "invalid time separator, expected `:`";
static const char R_HOUR[] = "invalid character in hour";
static const char R_MINUTE[] = "invalid character in minute";
static const char R_SECOND[] = "invalid character in second";
static const char R_TZ_SIGN[] = "invalid timezone sign";
static const char R_TZ_HOUR[] = "invalid timezone hour";
static const char R_TZ_MINUTE[] = "invalid timezone minute";
static const char R_TZ_MINUTE_RANGE[] = "timezone minute value is outside expected range of 0-59";
static const char R_TZ_RANGE[] = "timezone offset must be less than 24 hours";
static const char R_MONTH_RANGE[] = "month value is outside expected range of 1-12";
static const char R_DAY_RANGE[] = "day value is outside expected range";
static const char R_HOUR_RANGE[] = "hour value is outside expected range of 0-23";
static const char R_MINUTE_RANGE[] = "minute value is outside expected range of 0-59";
static const char R_SECOND_RANGE[] = "second value is outside expected range of 0-59";
static const char R_FRACTION_MISSING[] = "second fraction digits missing after `.`";
static const char R_YEAR_SMALL[] = "years before 1600 are not supported";
static const char R_DATE_LARGE[] = "dates after 9999 are not supported as unix timestamps";

#define MS_PER_DAY (86400 * (int64_t)1000)

/*
 * Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). Eras of
 * 400 years make the leap rule exact without tables and work for dates before 1970 as well.
 */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;                                   /* [0, 399] */
    const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Two ASCII digits at s[i], s[i+1] (caller checked the length), or -1. */
static int two_digits(const unsigned char *s, size_t i)
{
    if (!is_digit(s[i]) || !is_digit(s[i + 1]))
        return -1;
    return (s[i] - '0') * 10 + (s[i + 1] - '0');
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
        return 29;
    return days[month - 1];
}

static int fail(const char **reason, const char *why)
{
    if (reason != NULL)
        *reason = why;
    return -EINVAL;
}

/*
 * The checks run in speedate's order (length, then each character left to right, then ranges),
 * so the first problem reported is the one pydantic would report for the same string.
 */
int time_parse_iso(const char *str, size_t len, int64_t *out_ms, const char **reason)
{
    const unsigned char *s = (const unsigned char *)str;

    /* Date: YYYY-MM-DD. */
    if (len < 10)
        return fail(reason, R_TOO_SHORT);
    int year = 0;
    for (size_t i = 0; i < 4; i++) {
        if (!is_digit(s[i]))
            return fail(reason, R_YEAR);
        year = year * 10 + (s[i] - '0');
    }
    if (year < 1600)
        return fail(reason, R_YEAR_SMALL);
    if (s[4] != '-')
        return fail(reason, R_DATE_SEP);
    if (!is_digit(s[5]) || !is_digit(s[6]))
        return fail(reason, R_MONTH);
    int month = two_digits(s, 5);
    if (s[7] != '-')
        return fail(reason, R_DATE_SEP);
    int day = two_digits(s, 8);
    if (day < 0)
        return fail(reason, R_DAY);
    if (month < 1 || month > 12)
        return fail(reason, R_MONTH_RANGE);
    if (day < 1 || day > days_in_month(year, month))
        return fail(reason, R_DAY_RANGE);

    int64_t days = days_from_civil(year, month, day);
    if (len == 10) {
        /* A date alone is midnight UTC, as pydantic turns a date into a datetime. */
        *out_ms = days * MS_PER_DAY;
        return 0;
    }

    /* Separator: speedate takes 'T', 't', '_' or a space. */
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ' && s[10] != '_')
        return fail(reason, R_DT_SEP);

    /* Time: HH:MM[:SS[(.|,)fraction]]. */
    size_t p = 11;
    if (len - p < 5)
        return fail(reason, R_TOO_SHORT);
    int hour = two_digits(s, p);
    if (hour < 0)
        return fail(reason, R_HOUR);
    if (s[p + 2] != ':')
        return fail(reason, R_TIME_SEP);
    int minute = two_digits(s, p + 3);
    if (minute < 0)
        return fail(reason, R_MINUTE);
    if (hour > 23)
        return fail(reason, R_HOUR_RANGE);
    if (minute > 59)
        return fail(reason, R_MINUTE_RANGE);
    p += 5;

    int second = 0;
    int64_t millis = 0;
    if (p < len && s[p] == ':') {
        if (p + 2 >= len || !is_digit(s[p + 1]) || !is_digit(s[p + 2]))
            return fail(reason, R_SECOND);
        second = two_digits(s, p + 1);
        if (second > 59)
            return fail(reason, R_SECOND_RANGE);
        p += 3;
        if (p < len && (s[p] == '.' || s[p] == ',')) {
            p++;
            size_t digits = 0;
            /*
             * pydantic truncates precision it cannot keep; we keep milliseconds, so every digit
             * after the third is read and dropped (truncation, never rounding, so that a stored
             * time is never later than the one sent).
             */
            while (p < len && is_digit(s[p])) {
                if (digits < 3)
                    millis = millis * 10 + (s[p] - '0');
                digits++;
                p++;
            }
            if (digits == 0)
                return fail(reason, R_FRACTION_MISSING);
            for (; digits < 3; digits++)
                millis *= 10;
        }
    }

    /* Offset: Z, z, +HH:MM, -HH:MM, +HHMM, or U+2212 MINUS SIGN; none means UTC. */
    int offset_s = 0;
    if (p < len) {
        unsigned char c = s[p++];
        if (c != 'Z' && c != 'z') {
            int sign;
            if (c == '+') {
                sign = 1;
            } else if (c == '-') {
                sign = -1;
            } else if (c == 0xE2) {
                /* ISO 8601 allows U+2212 (E2 88 92 in UTF-8) for negative offsets. */
                if (p >= len || s[p] != 0x88 || p + 1 >= len || s[p + 1] != 0x92)
                    return fail(reason, R_TZ_SIGN);
                p += 2;
                sign = -1;
            } else {
                return fail(reason, R_TZ_SIGN);
            }
            if (p + 1 >= len || !is_digit(s[p]) || !is_digit(s[p + 1]))
                return fail(reason, R_TZ_HOUR);
            int tz_hour = two_digits(s, p);
            p += 2;
            if (p < len && s[p] == ':')
                p++;
            else if (p >= len || !is_digit(s[p]))
                return fail(reason, R_TZ_MINUTE);
            if (p + 1 >= len || !is_digit(s[p]) || !is_digit(s[p + 1]))
                return fail(reason, R_TZ_MINUTE);
            int tz_minute = two_digits(s, p);
            p += 2;
            if (tz_minute > 59)
                return fail(reason, R_TZ_MINUTE_RANGE);
            offset_s = tz_hour * 3600 + tz_minute * 60;
            if (offset_s >= 24 * 3600)
                return fail(reason, R_TZ_RANGE);
            offset_s *= sign;
        }
    }
    if (p < len)
        return fail(reason, R_EXTRA);

    int64_t ms = days * MS_PER_DAY + ((int64_t)hour * 3600 + minute * 60 + second) * 1000 + millis -
                 (int64_t)offset_s * 1000;
    /*
     * "9999-12-31T23:59-05:00" is in year 10000 once moved to UTC, which the canonical four-digit
     * form cannot show; refuse it here rather than store a time we cannot render.
     */
    if (ms >= days_from_civil(10000, 1, 1) * MS_PER_DAY)
        return fail(reason, R_DATE_LARGE);
    *out_ms = ms;
    return 0;
}

/* Write value as exactly n decimal digits (value is in range for n). */
static void put_digits(char *out, int value, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

/*
 * Values outside years 0000-9999 are clamped to that range: the buffer has room for four year
 * digits only, and no value we parse gets there (time_parse_iso keeps to 1599-9999).
 */
void time_format_iso(int64_t ms, char out[TIME_ISO_LEN])
{
    const int64_t min_ms = days_from_civil(0, 1, 1) * MS_PER_DAY;
    const int64_t max_ms = days_from_civil(10000, 1, 1) * MS_PER_DAY - 1;
    if (ms < min_ms)
        ms = min_ms;
    if (ms > max_ms)
        ms = max_ms;

    /* Floor division, so that times before 1970 land on the right day. */
    int64_t days = ms / MS_PER_DAY;
    int64_t rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    int msec = (int)(rem % 1000);
    int secs = (int)(rem / 1000);
    /* Digits written by hand: fixed widths, no locale, no snprintf truncation to reason about. */
    put_digits(out, (int)y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, secs / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, secs / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, secs % 60, 2);
    out[19] = '.';
    put_digits(out + 20, msec, 3);
    out[23] = 'Z';
    out[24] = '\0';
}

int64_t time_now_ms(void)
{
    struct timespec ts;
    /* CLOCK_REALTIME cannot fail with a valid pointer; a zero time would be the only symptom. */
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
