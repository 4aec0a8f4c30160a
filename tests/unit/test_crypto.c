/*
 * test_crypto.c - unit tests for util/crypto's HMAC-SHA256, which signs every webhook delivery:
 * RFC 4231's test cases, an empty key, and keys alternating between calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "util/crypto.h"

static void expect_hmac(const void *key, size_t keylen, const void *data, size_t len,
                        const char *want_hex)
{
    uint8_t mac[32];
    char hex[65];
    crypto_hmac_sha256(key, keylen, data, len, mac);
    crypto_hex(mac, sizeof mac, hex);
    assert_string_equal(hex, want_hex);
}

/* RFC 4231, section 4: test cases 1, 2, 4, 6 and 7 (3 and 5 repeat what these cover). */
static void test_rfc4231(void **state)
{
    (void)state;
    uint8_t k1[20], k4[25], k6[131];
    memset(k1, 0x0b, sizeof k1);
    for (size_t i = 0; i < sizeof k4; i++)
        k4[i] = (uint8_t)(i + 1);
    memset(k6, 0xaa, sizeof k6);
    uint8_t d4[50];
    memset(d4, 0xcd, sizeof d4);

    expect_hmac(k1, sizeof k1, "Hi There", 8,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    expect_hmac("Jefe", 4, "what do ya want for nothing?", 28,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    expect_hmac(k4, sizeof k4, d4, sizeof d4,
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    static const char d6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    expect_hmac(k6, sizeof k6, d6, sizeof d6 - 1,
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    static const char d7[] = "This is a test using a larger than block-size key and a larger "
                             "than block-size data. The key needs to be hashed before being "
                             "used by the HMAC algorithm.";
    expect_hmac(k6, sizeof k6, d7, sizeof d7 - 1,
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

/* Keys alternate: an implementation that kept state between calls would fail the second round. */
static void test_keys_do_not_carry_over(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        expect_hmac("Jefe", 4, "what do ya want for nothing?", 28,
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        /* an empty key is a valid HMAC key (all zero bytes after padding) */
        expect_hmac("", 0, "", 0,
                    "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4231),
        cmocka_unit_test(test_keys_do_not_carry_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
