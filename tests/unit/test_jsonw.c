/*
 * test_jsonw.c - the fast JSON writer gives exactly what json_dumps gives.
 *
 * Fixed documents cover every value type, escapes, non-ASCII text, key order with and without
 * JSON_SORT_KEYS and the failures (invalid UTF-8, a bare scalar); then many random documents,
 * with random bytes in keys and strings, are written by both and compared byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonw.h"

static const size_t FLAGS[] = {JSON_COMPACT, JSON_COMPACT | JSON_SORT_KEYS,
                               JSON_COMPACT | JSON_ENCODE_ANY,
                               JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY};

/* Both writers on v with every flag set: the same text, or both fail. */
static void same_as_jansson(const json_t *v)
{
    for (size_t f = 0; f < sizeof FLAGS / sizeof FLAGS[0]; f++) {
        char *want = json_dumps(v, FLAGS[f]);
        char *got = jsonw_dumps(v, FLAGS[f]);
        if (want == NULL) {
            assert_null(got);
        } else {
            if (got == NULL)
                fail_msg("jsonw failed where json_dumps gave: %s", want);
            assert_string_equal(got, want);
        }
        free(want);
        free(got);
    }
}

static void same_for_text(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (v == NULL)
        fail_msg("fixture does not parse: %s: %s", text, err.text);
    same_as_jansson(v);
    json_decref(v);
}

static void test_fixed_documents(void **state)
{
    (void)state;
    const char *docs[] = {
        "{}",
        "[]",
        "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
        "{\"z\":1,\"a\":2,\"m\":{\"y\":[],\"b\":{}},\"aa\":3,\"\":4}",
        "[0,-1,9223372036854775807,-9223372036854775808,42]",
        "[1.5,-0.25,1e300,3.0,0.1,123456789.125]",
        "[\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r bs \\b ff \\f\"]",
        "[\"\\u0001\\u001f\\u007f \\u00e9t\\u00e9 \\u2028 \\ud83d\\ude00 \\u0000 end\"]",
        "{\"b\":1,\"a\":{\"d\":[{\"y\":1,\"x\":2}],\"c\":3}}",
        "\"bare string\"",
        "17",
        "null",
        "[[[[[[[[[[[[[[[[[[[[\"deep\"]]]]]]]]]]]]]]]]]]]]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        same_for_text(docs[i]);
}

static void test_invalid_utf8_fails_like_jansson(void **state)
{
    (void)state;
    const char *bad[] = {"\xff", "a\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok\xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *v = json_pack("{s:o}", "k", json_stringn_nocheck(bad[i], strlen(bad[i])));
        same_as_jansson(v);
        assert_null(jsonw_dumps(v, JSON_COMPACT));
        json_decref(v);
    }
}

static void test_key_not_utf8_fails(void **state)
{
    (void)state;
    json_t *v = json_object();
    json_object_setn_new_nocheck(v, "k\xff", 2, json_true());
    assert_null(jsonw_dumps(v, JSON_COMPACT));
    json_decref(v);
    /* a NUL inside a key is a valid code point */
    v = json_object();
    json_object_setn_new_nocheck(v, "k\0ey", 4, json_true());
    same_as_jansson(v);
    char *text = jsonw_dumps(v, JSON_COMPACT);
    assert_string_equal(text, "{\"k\\u0000ey\":true}");
    free(text);
    json_decref(v);
}

static void test_append_keeps_buffer_on_failure(void **state)
{
    (void)state;
    buf_t b = {0};
    buf_append_str(&b, "prefix");
    json_t *ok = json_pack("{s:i}", "n", 5);
    assert_int_equal(jsonw_append(&b, ok, JSON_COMPACT), 0);
    json_t *bad = json_pack("[s, o]", "x", json_stringn_nocheck("\xff", 1));
    assert_int_equal(jsonw_append(&b, bad, JSON_COMPACT), -1);
    buf_append(&b, "", 1);
    assert_string_equal(b.data, "prefix{\"n\":5}");
    json_decref(ok);
    json_decref(bad);
    buf_free(&b);
}

/* ---------------------------------------------------------------- random documents */

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}

/* Mostly printable text, with escapes, multi-byte UTF-8 and now and then any byte at all. */
static json_t *random_string(bool any_byte)
{
    static const char *pieces[] = {"a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f",
                                   "\x7f", "\xc3\xa9", "\xe2\x80\xa8", "\xf0\x9f\x98\x80", "~",
                                   "0", "{", "]"};
    char s[64];
    size_t len = 0, n = rnd(12);
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[rnd(sizeof pieces / sizeof pieces[0])];
        size_t pl = strlen(p);
        if (any_byte && rnd(40) == 0) {
            s[len++] = (char)rnd(256); /* any byte: maybe not UTF-8 */
        } else if (len + pl < sizeof s) {
            memcpy(s + len, p, pl);
            len += pl;
        }
    }
    if (rnd(30) == 0)
        s[len++] = '\0';
    return json_stringn_nocheck(s, len);
}

static json_t *random_value(int depth)
{
    switch (depth > 4 ? rnd(6) : rnd(8)) {
    case 0: return json_null();
    case 1: return rnd(2) ? json_true() : json_false();
    case 2: return json_integer((json_int_t)rnd(2000000) - 1000000);
    case 3: return json_real((double)rnd(100000) / 64.0 - 700.0);
    case 4:
    case 5: return random_string(true);
    case 6: {
        json_t *a = json_array();
        for (uint32_t i = rnd(5); i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (uint32_t i = rnd(6); i > 0; i--) {
            /* Keys are valid UTF-8 here: for a key that is not, json_dumps writes a broken
             * text (it ignores the key's failure); jsonw fails instead. */
            json_t *k = random_string(false);
            json_object_setn_new_nocheck(o, json_string_value(k), json_string_length(k),
                                         random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

static void test_random_documents(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        json_t *v = random_value(0);
        same_as_jansson(v);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_documents),
        cmocka_unit_test(test_invalid_utf8_fails_like_jansson),
        cmocka_unit_test(test_key_not_utf8_fails),
        cmocka_unit_test(test_append_keeps_buffer_on_failure),
        cmocka_unit_test(test_random_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
