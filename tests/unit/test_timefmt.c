/*
 * test_timefmt.c - unit tests for util/timefmt: what pydantic v2 (speedate) accepts as a datetime,
 * the reason it gives for what it refuses, and the canonical rendering.
 *
 * Expected milliseconds were computed independently with Python's datetime, not with the code
 * under test. Pure logic: no clock except a sanity check of time_now_ms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/cr.h"
#include "util/timefmt.h"

typedef struct {
    const char *in;
    int64_t ms;
} accept_case_t;

typedef struct {
    const char *in;
    const char *reason;
} reject_case_t;

static const accept_case_t accepts[] = {
    {"2026-05-11T19:25:51.332Z", 1778527551332},
    {"2026-05-11T19:25:51Z", 1778527551000},
    {"2026-05-11T19:25:51z", 1778527551000},
    {"2026-05-11 19:25:51", 1778527551000}, /* no offset: UTC */
    {"2026-05-11t19:25:51", 1778527551000}, /* speedate separators: T t space _ */
    {"2026-05-11_19:25:51", 1778527551000},
    {"2026-05-11T19:25:51+05:30", 1778507751000},
    {"2026-05-11T19:25:51+0530", 1778507751000}, /* colon in the offset is optional */
    {"2026-05-11T19:25:51-05:00", 1778545551000},
    {"2026-05-11T19:25:51\xe2\x88\x92"
     "05:00",
     1778545551000},                              /* U+2212 MINUS SIGN */
    {"2026-05-11T19:25:51+23:59", 1778441211000}, /* largest offset Python allows */
    {"2026-05-11T19:25:51+00:00", 1778527551000},
    {"2026-05-11T19:25:51.5", 1778527551500},
    {"2026-05-11T19:25:51,5Z", 1778527551500},         /* comma as decimal mark */
    {"2026-05-11T19:25:51.332999999Z", 1778527551332}, /* truncated, never rounded */
    {"2026-05-11T19:25:51.000001Z", 1778527551000},
    {"2026-05-11T19:25", 1778527500000}, /* seconds optional */
    {"2026-05-11T19:25Z", 1778527500000},
    {"2026-05-11", 1778457600000}, /* date alone: midnight UTC */
    {"2000-02-29T12:13:14-08:30", 951856994000},
    {"2024-02-29", 1709164800000},
    {"1970-01-01T00:00:00Z", 0},
    {"1969-12-31T23:59:59.999Z", -1},
    {"1600-01-01T00:00:00", -11676096000000},
    {"9999-12-31T23:59:59.999Z", 253402300799999},
};

static const reject_case_t rejects[] = {
    {"", "input is too short"},
    {"2026-05-1", "input is too short"},
    {"yesterday", "input is too short"},
    {"yesterday!", "invalid character in year"},
    {"1641039194", "invalid date separator, expected `-`"}, /* no Unix timestamps in strings */
    {"0001-01-01T00:00:00Z", "years before 1600 are not supported"},
    {"2026/05/11", "invalid date separator, expected `-`"},
    {"2026-5-11T00:00:00Z", "invalid character in month"},
    {"2026-05-1xT00:00:00Z", "invalid character in day"},
    {"2026-13-01T00:00:00Z", "month value is outside expected range of 1-12"},
    {"2026-00-01", "month value is outside expected range of 1-12"},
    {"2026-02-30", "day value is outside expected range"},
    {"2026-02-29", "day value is outside expected range"},
    {"1900-02-29", "day value is outside expected range"},
    {"2026-04-31T00:00:00Z", "day value is outside expected range"},
    {"2026-05-00", "day value is outside expected range"},
    {"2026-05-11X19:25:51Z", "invalid datetime separator, expected `T`, `t`, `_` or space"},
    {"2026-05-11T", "input is too short"},
    {"2026-05-11T19:2", "input is too short"},
    {"2026-05-11Tab:25:51Z", "invalid character in hour"},
    {"2026-05-11T19-25-51Z", "invalid time separator, expected `:`"},
    {"2026-05-11T19:x5:51Z", "invalid character in minute"},
    {"2026-05-11T25:00:00Z", "hour value is outside expected range of 0-23"},
    {"2026-05-11T24:00:00Z", "hour value is outside expected range of 0-23"},
    {"2026-05-11T19:60:00Z", "minute value is outside expected range of 0-59"},
    {"2026-05-11T19:25:60Z", "second value is outside expected range of 0-59"},
    {"2026-05-11T19:25:5Z", "invalid character in second"},
    {"2026-05-11T19:25:", "invalid character in second"},
    {"2026-05-11T19:25:51.Z", "second fraction digits missing after `.`"},
    {"2026-05-11T19:25:51 ", "invalid timezone sign"},
    {"2026-05-11T19:25:51UTC", "invalid timezone sign"},
    {"2026-05-11T19:25:51\xe2\x88", "invalid timezone sign"},
    {"2026-05-11T19:25:51+5:00", "invalid timezone hour"},
    {"2026-05-11T19:25:51+05", "invalid timezone minute"},
    {"2026-05-11T19:25:51+05:", "invalid timezone minute"},
    {"2026-05-11T19:25:51+05:3", "invalid timezone minute"},
    {"2026-05-11T19:25:51+05:60", "timezone minute value is outside expected range of 0-59"},
    {"2026-05-11T19:25:51+24:00", "timezone offset must be less than 24 hours"},
    {"2026-05-11T19:25:51-99:00", "timezone offset must be less than 24 hours"},
    {"2026-05-11T19:25:51ZZ", "unexpected extra characters at the end of the input"},
    {"2026-05-11T19:25:51+05:30x", "unexpected extra characters at the end of the input"},
    {"2026-05-11T19:25:51.332Z ", "unexpected extra characters at the end of the input"},
    {"9999-12-31T23:59:00-05:00", "dates after 9999 are not supported as unix timestamps"},
};

static void test_accepts(void **state)
{
    (void)state;
    for (size_t i = 0; i < CR_ARRAY_SIZE(accepts); i++) {
        int64_t ms = 42;
        const char *reason = NULL;
        int rc = time_parse_iso(accepts[i].in, strlen(accepts[i].in), &ms, &reason);
        if (rc != 0 || ms != accepts[i].ms)
            print_error("accept \"%s\": rc=%d ms=%lld reason=%s\n", accepts[i].in, rc,
                        (long long)ms, reason ? reason : "-");
        assert_int_equal(rc, 0);
        assert_int_equal(ms, accepts[i].ms);
    }
}

static void test_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < CR_ARRAY_SIZE(rejects); i++) {
        int64_t ms = 42;
        const char *reason = NULL;
        int rc = time_parse_iso(rejects[i].in, strlen(rejects[i].in), &ms, &reason);
        if (rc == 0 || reason == NULL || strcmp(reason, rejects[i].reason) != 0)
            print_error("reject \"%s\": rc=%d reason=%s\n", rejects[i].in, rc,
                        reason ? reason : "-");
        assert_true(rc < 0);
        assert_non_null(reason);
        assert_string_equal(reason, rejects[i].reason);
        assert_int_equal(ms, 42); /* untouched on failure */
    }
}

/* The length bounds the parse: bytes after len, even valid-looking ones, are never read. */
static void test_length_is_respected(void **state)
{
    (void)state;
    int64_t ms;
    const char *reason = NULL;
    const char *s = "2026-05-11T19:25:51Z trailing";
    assert_int_equal(time_parse_iso(s, 20, &ms, &reason), 0);
    assert_int_equal(ms, 1778527551000);
    assert_int_equal(time_parse_iso(s, 10, &ms, &reason), 0);
    assert_int_equal(ms, 1778457600000);
    assert_true(time_parse_iso(s, 18, &ms, &reason) < 0);
    assert_string_equal(reason, "invalid character in second");
    /* An embedded NUL is a character like any other, not the end of the input. */
    assert_true(time_parse_iso("2026-05-11\0", 11, &ms, &reason) < 0);
    /* reason may be NULL. */
    assert_true(time_parse_iso("nope", 4, &ms, NULL) < 0);
}

static void test_format(void **state)
{
    (void)state;
    char buf[TIME_ISO_LEN];
    time_format_iso(1778527551332, buf);
    assert_string_equal(buf, "2026-05-11T19:25:51.332Z");
    time_format_iso(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    time_format_iso(-1, buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    time_format_iso(951856994000, buf);
    assert_string_equal(buf, "2000-02-29T20:43:14.000Z");
    time_format_iso(-11676096000000, buf);
    assert_string_equal(buf, "1600-01-01T00:00:00.000Z");
    time_format_iso(253402300799999, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    /* Out of range: clamped, never more than TIME_ISO_LEN bytes. */
    time_format_iso(INT64_MAX, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    time_format_iso(INT64_MIN, buf);
    assert_string_equal(buf, "0000-01-01T00:00:00.000Z");
    assert_int_equal(strlen(buf), TIME_ISO_LEN - 1);
}

/* Every accepted input renders canonically and the canonical form parses back to the same ms. */
static void test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < CR_ARRAY_SIZE(accepts); i++) {
        char buf[TIME_ISO_LEN];
        int64_t ms;
        time_format_iso(accepts[i].ms, buf);
        assert_int_equal(strlen(buf), TIME_ISO_LEN - 1);
        assert_int_equal(time_parse_iso(buf, strlen(buf), &ms, NULL), 0);
        assert_int_equal(ms, accepts[i].ms);
    }
    /* Every 13th day from 1600-01-01 to 9999-12-31: all the leap rules, both sides of 1970. */
    for (int64_t day = -135140; day <= 2932896; day += 13) {
        char buf[TIME_ISO_LEN];
        int64_t ms = day * 86400000 + 12345;
        int64_t back;
        time_format_iso(ms, buf);
        assert_int_equal(time_parse_iso(buf, strlen(buf), &back, NULL), 0);
        assert_int_equal(back, ms);
    }
}

static void test_now(void **state)
{
    (void)state;
    int64_t a = time_now_ms();
    int64_t b = time_now_ms();
    assert_true(a > 1700000000000); /* after November 2023 */
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_length_is_respected),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
