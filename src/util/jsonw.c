/*
 * jsonw.c - fast compact JSON writer, byte-compatible with json_dumps (see jsonw.h).
 */
#include "util/jsonw.h"

#include <stdlib.h>
#include <string.h>

#define SUPPORTED (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

/* A string as jansson writes it: the mandatory escapes, control characters as \uXXXX in upper
 * case, everything else (valid UTF-8) as it is. */
static int put_string(buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_reserve(b, len + 2);
    buf_append(b, "\"", 1);
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        /* jansson writes DEL as it is */
        while (run < len && (buf_json_plain[(unsigned char)s[run]] || s[run] == 0x7f))
            run++;
        if (run > i) {
            buf_append(b, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t n = buf_utf8_seq(s, len, i);
            if (n == 0)
                return -1;
            buf_append(b, s + i, n);
            i += n;
            continue;
        }
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); break;
        case '\\': buf_append(b, "\\\\", 2); break;
        case '\b': buf_append(b, "\\b", 2); break;
        case '\f': buf_append(b, "\\f", 2); break;
        case '\n': buf_append(b, "\\n", 2); break;
        case '\r': buf_append(b, "\\r", 2); break;
        case '\t': buf_append(b, "\\t", 2); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, esc, 6);
        }
        }
        i++;
    }
    buf_append(b, "\"", 1);
    return 0;
}

static void put_integer(buf_t *b, json_int_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        tmp[--i] = '-';
    buf_append(b, tmp + i, sizeof tmp - i);
}

typedef struct key_ref {
    const char *key;
    size_t len;
    json_t *value;
} key_ref_t;

/* jansson's order for JSON_SORT_KEYS: bytes, then the shorter first. */
static int compare_keys(const void *a, const void *b)
{
    const key_ref_t *k1 = a, *k2 = b;
    size_t min = k1->len < k2->len ? k1->len : k2->len;
    int r = memcmp(k1->key, k2->key, min);
    if (r != 0)
        return r;
    return k1->len < k2->len ? -1 : k1->len > k2->len;
}

static int put_value(buf_t *b, const json_t *json, size_t flags, int depth);

static int put_object(buf_t *b, const json_t *json, size_t flags, int depth)
{
    size_t n = json_object_size(json);
    buf_append(b, "{", 1);
    if (n == 0) {
        buf_append(b, "}", 1);
        return 0;
    }
    key_ref_t small[16];
    key_ref_t *keys = n <= 16 ? small : malloc(n * sizeof *keys);
    if (keys == NULL)
        return -1;
    size_t k = 0;
    for (void *it = json_object_iter((json_t *)json); it && k < n;
         it = json_object_iter_next((json_t *)json, it)) {
        keys[k].key = json_object_iter_key(it);
        keys[k].len = json_object_iter_key_len(it);
        keys[k].value = json_object_iter_value(it);
        k++;
    }
    if (flags & JSON_SORT_KEYS)
        qsort(keys, k, sizeof *keys, compare_keys);
    int rc = 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
        if (i > 0)
            buf_append(b, ",", 1);
        rc = put_string(b, keys[i].key, keys[i].len);
        if (rc == 0) {
            buf_append(b, ":", 1);
            rc = put_value(b, keys[i].value, flags, depth + 1);
        }
    }
    if (keys != small)
        free(keys);
    if (rc == 0)
        buf_append(b, "}", 1);
    return rc;
}

static int put_value(buf_t *b, const json_t *json, size_t flags, int depth)
{
    if (json == NULL || depth > JSONW_MAX_DEPTH)
        return -1;
    switch (json_typeof(json)) {
    case JSON_NULL:
        buf_append(b, "null", 4);
        return 0;
    case JSON_TRUE:
        buf_append(b, "true", 4);
        return 0;
    case JSON_FALSE:
        buf_append(b, "false", 5);
        return 0;
    case JSON_INTEGER:
        put_integer(b, json_integer_value(json));
        return 0;
    case JSON_REAL: {
        char *text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL)
            return -1;
        buf_append_str(b, text);
        free(text);
        return 0;
    }
    case JSON_STRING:
        return put_string(b, json_string_value(json), json_string_length(json));
    case JSON_ARRAY: {
        size_t n = json_array_size(json);
        buf_append(b, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                buf_append(b, ",", 1);
            if (put_value(b, json_array_get(json, i), flags, depth + 1) != 0)
                return -1;
        }
        buf_append(b, "]", 1);
        return 0;
    }
    case JSON_OBJECT:
        return put_object(b, json, flags, depth);
    }
    return -1;
}

int jsonw_append(buf_t *b, const json_t *json, size_t flags)
{
    size_t mark = b->len;
    int rc;
    if ((flags & ~(size_t)SUPPORTED) != 0 || !(flags & JSON_COMPACT)) {
        char *text = json_dumps(json, flags);
        if (text != NULL)
            buf_append_str(b, text);
        rc = text ? 0 : -1;
        free(text);
    } else if (json == NULL ||
               (!(flags & JSON_ENCODE_ANY) && !json_is_object(json) && !json_is_array(json))) {
        rc = -1;
    } else {
        rc = put_value(b, json, flags, 0);
    }
    if (rc != 0)
        b->len = mark;
    return rc;
}

char *jsonw_dumps(const json_t *json, size_t flags)
{
    buf_t b = {0};
    if (jsonw_append(&b, json, flags) != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}
