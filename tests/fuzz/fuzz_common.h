/*
 * fuzz_common.h - shared bits of the libFuzzer harnesses: a small deterministic PRNG, an
 * invariant check that aborts with a message, and the structure-aware JSON mutator
 * (json_mutator.c) that fuzz_validate, fuzz_config, fuzz_classify and fuzz_http use.
 */
#ifndef CR_FUZZ_COMMON_H
#define CR_FUZZ_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An invariant the code under test must keep: print why, then abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "\nFUZZ INVARIANT FAILED %s:%d: %s\n  ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/*
 * Known findings awaiting a fix in src/ can be switched off by name so fuzzing can go on past
 * them: CR_FUZZ_ALLOW=name[,name...] (see README.md, "Findings"). Nothing sets it by default:
 * replay and CI runs are strict.
 */
static inline bool fuzz_allowed(const char *name)
{
    const char *a = getenv("CR_FUZZ_ALLOW");
    size_t n = strlen(name);
    while (a && *a) {
        const char *end = strchr(a, ',');
        size_t len = end ? (size_t)(end - a) : strlen(a);
        if (len == n && strncmp(a, name, n) == 0)
            return true;
        a = end ? end + 1 : NULL;
    }
    return false;
}

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), as JSON text needs. */
static inline bool fuzz_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80)
            continue;
        size_t k;
        unsigned min, cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1, min = 0x80, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, min = 0x800, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) < k)
            return false;
        for (size_t i = 0; i < k; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += k;
    }
    return true;
}

/* xorshift64*: deterministic per seed, so an input always replays the same way. */
typedef struct fuzz_rng {
    uint64_t s;
} fuzz_rng_t;

static inline void fuzz_rng_seed(fuzz_rng_t *r, uint64_t seed)
{
    r->s = seed ? seed : 0x9E3779B97F4A7C15ull;
}

static inline uint64_t fuzz_rng_next(fuzz_rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform-ish in [0, n); n > 0. */
static inline size_t fuzz_rng_below(fuzz_rng_t *r, size_t n)
{
    return (size_t)(fuzz_rng_next(r) % n);
}

/* libFuzzer's own byte-level mutator (provided by -fsanitize=fuzzer). */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/*
 * Structure-aware mutation of a JSON document in data[0..size): parse it, change one node
 * (replace a value with an interesting scalar or a known field name/value, delete or add a
 * member, duplicate or drop an array element, wrap, byte-mutate a string) and serialise it
 * back. Returns the new size (<= max_size), or 0 when data is not JSON or the result does not fit
 * (the caller then falls back to LLVMFuzzerMutate).
 */
size_t fuzz_json_mutate(uint8_t *data, size_t size, size_t max_size, unsigned seed);

/* Mutate a parsed value in place (same operations as above); returns the (possibly new) root. */
json_t *fuzz_json_mutate_value(json_t *root, fuzz_rng_t *rng);

/* Parse any JSON value; NULL if data is not one JSON document. */
json_t *fuzz_json_parse(const uint8_t *data, size_t size);

#endif
