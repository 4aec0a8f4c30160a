/*
 * crypto.c - libcrypto wrappers and the ObjectId-shaped id generator (see crypto.h).
 */
#include "util/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenSSL 3 looks an algorithm up by name on every EVP_sha256() digest (an "implicit fetch"):
 * about 4,000 instructions per short hash. Fetch it once per process instead. */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
    pthread_once(&g_sha256_once, fetch_sha256);
    unsigned int outlen = 32;
    if (g_sha256 == NULL || EVP_Digest(data, len, out, &outlen, g_sha256, NULL) != 1)
        abort();
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        uint8_t out[32])
{
    unsigned int outlen = 32;
    if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) == NULL)
        abort();
}

void crypto_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int crypto_unhex(const char *hex, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

bool crypto_is_hex(const char *s, size_t len, size_t n)
{
    if (len != n)
        return false;
    for (size_t i = 0; i < len; i++)
        if (hexval(s[i]) < 0)
            return false;
    return true;
}

bool crypto_equal_ct(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void crypto_random(void *buf, size_t n)
{
    if (RAND_bytes(buf, (int)n) != 1) {
        fputs("{\"level\":\"fatal\",\"msg\":\"CSPRNG failure\"}\n", stderr);
        abort();
    }
}

void crypto_oid(char out[CRYPTO_OID_LEN])
{
    /* The random part is drawn once per process, as ObjectId does; the counter starts at a
     * random value so two processes started in the same second do not walk the same ids. */
    static uint8_t process_part[5];
    static uint32_t counter;
    static int seeded;
    if (!seeded) {
        crypto_random(process_part, sizeof process_part);
        crypto_random(&counter, sizeof counter);
        seeded = 1;
    }
    uint32_t secs = (uint32_t)time(NULL);
    uint32_t c = ++counter;
    uint8_t raw[12] = {(uint8_t)(secs >> 24), (uint8_t)(secs >> 16), (uint8_t)(secs >> 8),
                       (uint8_t)secs};
    memcpy(raw + 4, process_part, 5);
    raw[9] = (uint8_t)(c >> 16);
    raw[10] = (uint8_t)(c >> 8);
    raw[11] = (uint8_t)c;
    crypto_hex(raw, sizeof raw, out);
}
