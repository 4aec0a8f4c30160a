/*
 * crypto.h - hashes, HMAC, constant-time comparison and identifiers, on OpenSSL's libcrypto.
 *
 * Pure functions over caller-owned buffers; no allocation. The id generator keeps a process-wide
 * counter (single-threaded by design: one loop per process).
 */
#ifndef CR_CRYPTO_H
#define CR_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_OID_LEN 25 /* 24 lower-case hex + NUL */

void crypto_sha256(const void *data, size_t len, uint8_t out[32]);
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        uint8_t out[32]);

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void crypto_hex(const uint8_t *bytes, size_t n, char *out);
/* Parse exactly 2n hex characters into n bytes; 0, or negative on a bad character. */
int crypto_unhex(const char *hex, size_t n, uint8_t *out);

/* Compare two equal-length byte strings in time independent of their contents. */
bool crypto_equal_ct(const void *a, const void *b, size_t n);

/* Fill buf with n cryptographically strong random bytes (aborts if the CSPRNG fails). */
void crypto_random(void *buf, size_t n);

/*
 * A new 24-hex identifier in the shape of a MongoDB ObjectId (the seeds' "_id" form): 4 bytes of
 * seconds since the epoch, 5 random bytes fixed per process, a 3-byte counter. Sortable by
 * creation second, unique across processes with overwhelming probability.
 */
void crypto_oid(char out[CRYPTO_OID_LEN]);

/* Is s exactly n lower- or upper-case hex characters long (and nothing else)? */
bool crypto_is_hex(const char *s, size_t len, size_t n);

#endif
