/*
 * fuzz_validate.c - the request-body validators: val_json_parse, then val_mutation for all seven
 * mutation kinds on the same document.
 *
 * Input: the raw request body (any bytes). Invariants checked:
 *   - val_json_parse either returns a value and adds nothing, or returns NULL and adds exactly one
 *     entry: "missing" at ["body"] for an empty body, else "json_invalid" at ["body", offset] with
 *     0 <= offset <= size and ctx.error a string;
 *   - every error entry is an object with a non-empty "type" and "msg", a "loc" that starts with
 *     "body" and holds only strings and non-negative integers, an optional "input", an optional
 *     object "ctx", and nothing else; at most VAL_MAX_ERRORS entries; the list serialises;
 *   - val_mutation returns 0 exactly when it added no entry, and then *out is an object holding
 *     only that kind's fields, datetimes as "YYYY-MM-DDTHH:MM:SS.mmmZ", ids in lower-case hex,
 *     numbers as finite reals, and no reason_code left inside a cancel's order;
 *   - a body accepted once re-validates to the same canonical output (serialise, strict parse,
 *     validate again: accepted, json_equal), and the input document is not modified;
 *   - errors already in the list (header problems come first in the gateway) do not change the
 *     verdict.
 * The custom mutator mixes libFuzzer's byte mutations with structure-aware JSON mutations.
 */
#include "fuzz_common.h"
#include "validate.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static const char *const fields_of[7][9] = {
    [VAL_CANCEL] = {"order", "reason_code"},
    [VAL_RESET] = {"order"},
    [VAL_UPDATE_STATUS] = {"order", "location", "progress_status", "eta", "delivery_eta",
                           "actual", "assigned_to", "hauled_by"},
    [VAL_CREATE] = {"order_number", "lines", "requested_delivery", "notes"},
    [VAL_ACCEPT] = {"order"},
    [VAL_BOL] = {"order", "bol_number", "terminal", "product", "gross_volume", "net_volume",
                 "actual"},
    [VAL_DROP] = {"order", "site", "product", "volume", "actual"},
};

static bool known_field(val_kind_t kind, const char *k)
{
    for (size_t i = 0; i < 9 && fields_of[kind][i]; i++)
        if (strcmp(fields_of[kind][i], k) == 0)
            return true;
    return false;
}

static void check_entry(const json_t *e, size_t idx)
{
    FUZZ_CHECK(json_is_object(e), "entry %zu is not an object", idx);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)e, k, v)
    {
        FUZZ_CHECK(strcmp(k, "type") == 0 || strcmp(k, "loc") == 0 || strcmp(k, "msg") == 0 ||
                       strcmp(k, "input") == 0 || strcmp(k, "ctx") == 0,
                   "entry %zu has member '%s'", idx, k);
    }
    const json_t *type = json_object_get(e, "type"), *msg = json_object_get(e, "msg"),
                 *loc = json_object_get(e, "loc"), *ctx = json_object_get(e, "ctx");
    FUZZ_CHECK(json_is_string(type) && json_string_length(type) > 0, "entry %zu: bad type", idx);
    FUZZ_CHECK(json_is_string(msg) && json_string_length(msg) > 0, "entry %zu: bad msg", idx);
    FUZZ_CHECK(json_is_array(loc) && json_array_size(loc) >= 1, "entry %zu: bad loc", idx);
    FUZZ_CHECK(json_is_string(json_array_get(loc, 0)) &&
                   strcmp(json_string_value(json_array_get(loc, 0)), "body") == 0,
               "entry %zu: loc does not start with body", idx);
    size_t i;
    json_t *p;
    json_array_foreach(loc, i, p)
    {
        FUZZ_CHECK(json_is_string(p) || (json_is_integer(p) && json_integer_value(p) >= 0),
                   "entry %zu: loc[%zu] is neither a key nor an index", idx, i);
    }
    FUZZ_CHECK(ctx == NULL || json_is_object(ctx), "entry %zu: ctx is not an object", idx);
}

static void check_errors(const json_t *errors, bool serialise)
{
    FUZZ_CHECK(json_array_size(errors) <= VAL_MAX_ERRORS, "%zu entries",
               json_array_size(errors));
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) check_entry(e, i);
    if (!serialise)
        return;
    /* The 422 answer is this list serialised: it must serialise, and parse back strictly. */
    json_t *wrapped = json_pack("{sO}", "detail", (json_t *)errors);
    char *text = json_dumps(wrapped, JSON_COMPACT);
    FUZZ_CHECK(text != NULL, "errors do not serialise");
    json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(back != NULL, "serialised errors do not parse: %.200s", text);
    json_decref(back);
    free(text);
    json_decref(wrapped);
}

static bool is_canonical_time(const json_t *v)
{
    const char *s = json_string_value(v);
    if (s == NULL || json_string_length(v) != 24)
        return false;
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < 24; i++) {
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
            return false;
    }
    return true;
}

static bool is_lower_hex24(const json_t *v)
{
    const char *s = json_string_value(v);
    if (s == NULL || json_string_length(v) != 24)
        return false;
    for (size_t i = 0; i < 24; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Walk a canonical output: the shapes val_mutation promises. */
static void check_canonical(const json_t *v, const char *key)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) check_canonical(x, k);
        return;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) check_canonical(x, key);
        return;
    }
    if (key == NULL)
        return;
    if (strcmp(key, "eta") == 0 || strcmp(key, "delivery_eta") == 0 ||
        strcmp(key, "actual") == 0 || strcmp(key, "requested_delivery") == 0)
        FUZZ_CHECK(is_canonical_time(v), "%s is not canonical: %s", key,
                   json_string_value(v) ? json_string_value(v) : "(not a string)");
    if (strcmp(key, "order_id") == 0 || strcmp(key, "mapping_id") == 0)
        FUZZ_CHECK(is_lower_hex24(v), "%s is not lower-case hex24", key);
    if (strcmp(key, "quantity") == 0 || strcmp(key, "gross_volume") == 0 ||
        strcmp(key, "net_volume") == 0 || strcmp(key, "volume") == 0)
        FUZZ_CHECK(json_is_real(v) && isfinite(json_real_value(v)), "%s is not a finite real",
                   key);
    FUZZ_CHECK(!json_is_null(v), "%s is null in canonical output (absent fields are left out)",
               key);
}

static void check_kind(val_kind_t kind, const json_t *body, int *verdict, bool serialise)
{
    json_t *errors = json_array();
    json_t *out = (json_t *)0x1; /* must be overwritten */
    int rc = val_mutation(kind, body, errors, &out);
    size_t n = json_array_size(errors);
    *verdict = rc;
    if (rc != 0) {
        FUZZ_CHECK(rc < 0, "%s: rc %d", val_kind_name(kind), rc);
        FUZZ_CHECK(n > 0, "%s: refused without an entry", val_kind_name(kind));
        FUZZ_CHECK(out == NULL, "%s: refused but *out set", val_kind_name(kind));
        check_errors(errors, serialise);
        json_decref(errors);
        return;
    }
    FUZZ_CHECK(n == 0, "%s: accepted with %zu entries", val_kind_name(kind), n);
    FUZZ_CHECK(json_is_object(out), "%s: accepted, *out not an object", val_kind_name(kind));
    json_decref(errors);

    const char *k;
    json_t *x;
    json_object_foreach(out, k, x)
    {
        FUZZ_CHECK(known_field(kind, k), "%s: canonical output has unknown member '%s'",
                   val_kind_name(kind), k);
    }
    check_canonical(out, NULL);
    if (kind == VAL_CANCEL)
        FUZZ_CHECK(json_object_get(json_object_get(out, "order"), "reason_code") == NULL,
                   "cancel: reason_code left inside order");
    if (kind == VAL_UPDATE_STATUS && json_object_get(out, "eta"))
        FUZZ_CHECK(json_object_get(out, "delivery_eta") != NULL,
                   "update_status: eta without delivery_eta");

    /* Re-validation of the canonical form is a fixed point. */
    char *text = json_dumps(out, JSON_COMPACT);
    FUZZ_CHECK(text != NULL, "%s: canonical output does not serialise", val_kind_name(kind));
    json_t *errs2 = json_array();
    json_t *body2 = val_json_parse(text, strlen(text), errs2);
    FUZZ_CHECK(body2 != NULL, "%s: canonical output is not strict JSON: %.300s",
               val_kind_name(kind), text);
    json_t *out2 = NULL;
    int rc2 = val_mutation(kind, body2, errs2, &out2);
    if (rc2 != 0) {
        char *e = json_dumps(errs2, JSON_COMPACT);
        FUZZ_CHECK(rc2 == 0, "%s: canonical output refused on re-validation: %.300s -> %.600s",
                   val_kind_name(kind), text, e ? e : "?");
    }
    if (!json_equal(out, out2)) {
        char *t2 = json_dumps(out2, JSON_COMPACT);
        FUZZ_CHECK(false, "%s: re-validation changed the canonical output:\n  %.400s\n  %.400s",
                   val_kind_name(kind), text, t2 ? t2 : "?");
    }
    json_decref(out2);
    json_decref(body2);
    json_decref(errs2);
    free(text);
    json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *errors = json_array();
    json_t *body = val_json_parse((const char *)data, size, errors);
    if (body == NULL) {
        FUZZ_CHECK(json_array_size(errors) == 1, "parse failure added %zu entries",
                   json_array_size(errors));
        check_errors(errors, true);
        const json_t *e = json_array_get(errors, 0);
        const char *type = json_string_value(json_object_get(e, "type"));
        const json_t *loc = json_object_get(e, "loc");
        if (size == 0) {
            FUZZ_CHECK(strcmp(type, "missing") == 0 && json_array_size(loc) == 1,
                       "empty body: %s", type);
        } else {
            FUZZ_CHECK(strcmp(type, "json_invalid") == 0, "parse failure typed %s", type);
            FUZZ_CHECK(json_array_size(loc) == 2 && json_is_integer(json_array_get(loc, 1)),
                       "json_invalid loc is not [body, offset]");
            json_int_t off = json_integer_value(json_array_get(loc, 1));
            FUZZ_CHECK(off >= 0 && (size_t)off <= size, "offset %lld outside a %zu-byte body",
                       (long long)off, size);
            FUZZ_CHECK(json_is_string(json_object_get(json_object_get(e, "ctx"), "error")),
                       "json_invalid without ctx.error");
        }
        json_decref(errors);
        return 0;
    }
    FUZZ_CHECK(json_array_size(errors) == 0, "parse success added entries");
    json_t *before = json_deep_copy(body);
    int verdict[7];
    /* Serialising the 422 list is the costly check: one kind per input (rotating with size). */
    for (int k = 0; k < 7; k++)
        check_kind((val_kind_t)k, body, &verdict[k], (size_t)k == size % 7);
    FUZZ_CHECK(json_equal(before, body), "val_mutation modified its input");

    /* Header problems come first in the gateway's list; the body's verdict must not change. */
    val_kind_t k = (val_kind_t)(size % 7);
    json_t *pre = json_array();
    val_error_add(pre, json_pack("[ss]", "header", "x-dest-tenant-name"), "missing",
                  "Field required", json_null(), NULL);
    json_t *out = NULL;
    int rc = val_mutation(k, body, pre, &out);
    FUZZ_CHECK((rc == 0) == (verdict[k] == 0), "%s: verdict changed by a preceding entry",
               val_kind_name(k));
    FUZZ_CHECK(rc != 0 || json_array_size(pre) == 1, "accepted but appended");
    json_decref(out);
    json_decref(pre);

    json_decref(before);
    json_decref(body);
    json_decref(errors);
    return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    if (seed % 3 != 0) {
        size_t n = fuzz_json_mutate(data, size, max_size, seed);
        if (n > 0)
            return n;
    }
    return LLVMFuzzerMutate(data, size, max_size);
}
