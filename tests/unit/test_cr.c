/*
 * test_cr.c - unit tests for util/cr's formatters: numbers against snprintf, cuts as snprintf's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "util/cr.h"

static void expect_int(long long v)
{
    char got[CR_INT_LEN], want[CR_INT_LEN];
    size_t n = cr_fmt_int(got, v);
    int wn = snprintf(want, sizeof want, "%lld", v);
    assert_string_equal(got, want);
    assert_int_equal(n, (size_t)wn);
}

static void test_fmt_int(void **state)
{
    (void)state;
    const long long fixed[] = {0,          1,         -1,        9,          10,         -10,
                               99,         100,       123456789, -987654321, 1796604697477,
                               LLONG_MAX,  LLONG_MIN, INT_MAX,   INT_MIN,    LLONG_MIN + 1};
    for (size_t i = 0; i < CR_ARRAY_SIZE(fixed); i++)
        expect_int(fixed[i]);
    /* every power of ten and its neighbours, both signs */
    for (long long p = 1; p <= LLONG_MAX / 10; p *= 10)
        for (long long d = -1; d <= 1; d++) {
            expect_int(p + d);
            expect_int(-(p + d));
        }
}

static void test_cat(void **state)
{
    (void)state;
    char out[16];
    assert_string_equal(cr_cat(out, sizeof out, "cr:", "abc", ":log"), "cr:abc:log");
    assert_string_equal(cr_cat(out, sizeof out, "cr:", "abc", NULL), "cr:abc");
    assert_string_equal(cr_cat(out, sizeof out, "", "", ""), "");
    /* cut to fit as snprintf cuts: 15 bytes and the NUL */
    assert_string_equal(cr_cat(out, sizeof out, "0123456789", "abcdefgh", "XYZ"),
                        "0123456789abcde");
    assert_int_equal(strlen(out), 15);
    assert_string_equal(cr_cat(out, sizeof out, "0123456789abcdefghij", "k", "l"),
                        "0123456789abcde");
    char one[1];
    assert_string_equal(cr_cat(one, sizeof one, "x", "y", "z"), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_int),
        cmocka_unit_test(test_cat),
    };
    return cmocka_run_group_tests_name("cr", tests, NULL, NULL);
}
