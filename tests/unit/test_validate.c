/*
 * test_validate.c - unit tests for validate: the 422 table in tests/fixtures/validation_cases.json
 * run through val_json_parse and val_mutation (the same table the integration tests POST through
 * the real server), plus targeted checks of what the table does not pin down: the full entries
 * (msg, input, ctx), the canonical output, and jansson's strictness with our offset rule.
 *
 * Fixture format: a JSON array of {"name", "endpoint", "expect": [{"loc", "type"}...]} with the
 * request body as one of
 *   "body":    a JSON value, sent as its compact serialisation;
 *   "raw":     a string whose UTF-8 bytes are sent as they are (malformed JSON, empty bodies);
 *   "raw_hex": the bytes in hex, for bodies that are not valid UTF-8 or contain NUL bytes.
 * "expect" is the complete list of entries in the order produced; [] means the body is valid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/cr.h"
#include "validate.h"

#define OID "64b7cf5a86d9755df3a6c501"

static const val_kind_t all_kinds[] = {VAL_CANCEL, VAL_RESET, VAL_UPDATE_STATUS, VAL_CREATE,
                                       VAL_ACCEPT, VAL_BOL,   VAL_DROP};

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static json_t *must_parse(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    if (v == NULL)
        fail_msg("test JSON does not parse: %s: %s", err.text, text);
    return v;
}

/* Validate a body given as JSON text; returns the errors array, *out the canonical body. */
static json_t *run(val_kind_t kind, const char *text, size_t len, json_t **out)
{
    json_t *errors = json_array();
    *out = NULL;
    json_t *body = val_json_parse(text, len, errors);
    if (body != NULL) {
        int rc = val_mutation(kind, body, errors, out);
        assert_int_equal(rc == 0, json_array_size(errors) == 0);
        assert_int_equal(rc == 0, *out != NULL);
        json_decref(body);
    }
    return errors;
}

static json_t *run_str(val_kind_t kind, const char *text, json_t **out)
{
    return run(kind, text, strlen(text), out);
}

static void assert_json_eq(const json_t *got, const char *want_text)
{
    json_t *want = must_parse(want_text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
        print_error("got:  %s\nwant: %s\n", g ? g : "(null)", want_text);
        free(g);
        json_decref(want);
        fail();
    }
    json_decref(want);
}

/* The body must fail with exactly one entry, equal to want_text in full. */
static void assert_one_error(val_kind_t kind, const char *body, const char *want_text)
{
    json_t *out;
    json_t *errors = run_str(kind, body, &out);
    assert_null(out);
    assert_int_equal(json_array_size(errors), 1);
    assert_json_eq(json_array_get(errors, 0), want_text);
    json_decref(errors);
}

/* The body must pass, and its canonical form must equal want_text. */
static void assert_output(val_kind_t kind, const char *body, const char *want_text)
{
    json_t *out;
    json_t *errors = run_str(kind, body, &out);
    if (json_array_size(errors) != 0) {
        char *g = json_dumps(errors, JSON_COMPACT);
        print_error("unexpected errors: %s\n", g);
        free(g);
    }
    assert_int_equal(json_array_size(errors), 0);
    assert_json_eq(out, want_text);
    json_decref(out);
    json_decref(errors);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * The fixture table
 * ------------------------------------------------------------------------------------------- */

static int kind_from_name(const char *name, val_kind_t *kind)
{
    for (size_t i = 0; i < CR_ARRAY_SIZE(all_kinds); i++) {
        if (strcmp(val_kind_name(all_kinds[i]), name) == 0) {
            *kind = all_kinds[i];
            return 0;
        }
    }
    return -1;
}

/* Bytes to send for one case, in a new buffer; NULL on a malformed case. */
static char *case_bytes(const json_t *c, size_t *len)
{
    const json_t *raw = json_object_get(c, "raw");
    const json_t *raw_hex = json_object_get(c, "raw_hex");
    const json_t *body = json_object_get(c, "body");
    if (json_is_string(raw)) {
        *len = json_string_length(raw);
        return cr_strndup(json_string_value(raw), *len);
    }
    if (json_is_string(raw_hex)) {
        const char *h = json_string_value(raw_hex);
        size_t n = json_string_length(raw_hex);
        if (n % 2 != 0)
            return NULL;
        char *b = cr_malloc(n / 2 + 1);
        for (size_t i = 0; i < n / 2; i++) {
            int hi = hex_value(h[2 * i]), lo = hex_value(h[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                free(b);
                return NULL;
            }
            b[i] = (char)(hi * 16 + lo);
        }
        *len = n / 2;
        return b;
    }
    if (body != NULL) {
        char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        *len = s ? strlen(s) : 0;
        return s;
    }
    return NULL;
}

/* Every entry, whatever its case, has the FastAPI shape. */
static int check_entry_shape(const json_t *e)
{
    const json_t *loc = json_object_get(e, "loc");
    return json_is_string(json_object_get(e, "type")) &&
           json_is_string(json_object_get(e, "msg")) && json_is_array(loc) &&
           json_array_size(loc) >= 1 &&
           strcmp(json_string_value(json_array_get(loc, 0)), "body") == 0;
}

/* Reduce the produced entries to the fixture's form: [{"loc", "type"}...]. */
static json_t *loc_type_only(const json_t *errors)
{
    json_t *r = json_array();
    size_t i;
    const json_t *e;
    json_array_foreach(errors, i, e)
    {
        json_array_append_new(r, json_pack("{s:O,s:O}", "loc", json_object_get(e, "loc"), "type",
                                           json_object_get(e, "type")));
    }
    return r;
}

/* Returns 0 when the case behaves as the table says; prints the difference otherwise. */
static int run_case(const json_t *c)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *endpoint = json_string_value(json_object_get(c, "endpoint"));
    const json_t *expect = json_object_get(c, "expect");
    val_kind_t kind;
    size_t len = 0;
    if (name == NULL || endpoint == NULL || !json_is_array(expect) ||
        kind_from_name(endpoint, &kind) != 0) {
        print_error("malformed fixture case: %s\n", name ? name : "(no name)");
        return -1;
    }
    char *bytes = case_bytes(c, &len);
    if (bytes == NULL) {
        print_error("%s: no body, raw or raw_hex\n", name);
        return -1;
    }

    int bad = 0;
    json_t *errors = json_array();
    json_t *out = NULL;
    json_t *body = val_json_parse(bytes, len, errors);
    if (body != NULL) {
        int rc = val_mutation(kind, body, errors, &out);
        if ((rc == 0) != (json_array_size(errors) == 0) || (rc == 0) != (out != NULL)) {
            print_error("%s: rc=%d with %zu errors\n", name, rc, json_array_size(errors));
            bad = 1;
        }
    }
    size_t i;
    const json_t *e;
    json_array_foreach(errors, i, e)
    {
        if (!check_entry_shape(e)) {
            print_error("%s: entry %zu lacks type, msg or a body loc\n", name, i);
            bad = 1;
        }
    }
    json_t *got = loc_type_only(errors);
    if (!json_equal(got, expect)) {
        char *g = json_dumps(got, JSON_COMPACT);
        char *w = json_dumps(expect, JSON_COMPACT);
        print_error("%s [%s]\n  got:  %s\n  want: %s\n", name, endpoint, g, w);
        free(g);
        free(w);
        bad = 1;
    }

    /*
     * The canonical form of a valid body is itself valid and canonical: the rest of the gateway
     * may re-validate what it stored (a saga retried after a restart) and must get the same.
     */
    if (out != NULL && !bad) {
        json_t *errors2 = json_array();
        json_t *out2 = NULL;
        if (val_mutation(kind, out, errors2, &out2) != 0 || !json_equal(out, out2)) {
            print_error("%s: canonical output is not a fixed point\n", name);
            bad = 1;
        }
        json_decref(out2);
        json_decref(errors2);
    }

    json_decref(got);
    json_decref(out);
    json_decref(body);
    json_decref(errors);
    free(bytes);
    return bad ? -1 : 0;
}

static void test_fixture_table(void **state)
{
    (void)state;
    const char *dir = getenv("CR_FIXTURES");
    char path[4096];
    snprintf(path, sizeof(path), "%s/validation_cases.json", dir ? dir : "tests/fixtures");
    json_error_t err;
    json_t *cases = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (cases == NULL)
        fail_msg("cannot load %s: %s (line %d)", path, err.text, err.line);
    assert_true(json_is_array(cases));
    assert_true(json_array_size(cases) >= 100);

    size_t failed = 0, valid = 0, raw = 0, i;
    int seen[CR_ARRAY_SIZE(all_kinds)] = {0};
    const json_t *c;
    json_array_foreach(cases, i, c)
    {
        if (run_case(c) != 0)
            failed++;
        if (json_array_size(json_object_get(c, "expect")) == 0)
            valid++;
        if (json_object_get(c, "body") == NULL)
            raw++;
        val_kind_t k;
        if (kind_from_name(json_string_value(json_object_get(c, "endpoint")), &k) == 0)
            seen[k]++;
    }
    print_message("%zu fixture cases (%zu valid, %zu raw), %zu failed\n", json_array_size(cases),
                  valid, raw, failed);
    /* The table must keep covering every endpoint and both outcomes. */
    for (size_t k = 0; k < CR_ARRAY_SIZE(all_kinds); k++)
        assert_true(seen[k] > 0);
    assert_true(valid > 0);
    assert_true(raw > 0);
    json_decref(cases);
    assert_int_equal(failed, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Full entries: msg, input, ctx
 * ------------------------------------------------------------------------------------------- */

static void test_entries_common(void **state)
{
    (void)state;
    assert_one_error(
        VAL_CANCEL, "{}",
        "{\"type\":\"missing\",\"loc\":[\"body\",\"order\"],\"msg\":\"Field required\"}");
    assert_one_error(VAL_RESET, "{\"order\":5}",
                     "{\"type\":\"model_type\",\"loc\":[\"body\",\"order\"],"
                     "\"msg\":\"Input should be a valid dictionary or instance of OrderRequest\","
                     "\"input\":5,\"ctx\":{\"class_name\":\"OrderRequest\"}}");
    assert_one_error(VAL_RESET, "{\"order\":{\"x\":1}}",
                     "{\"type\":\"value_error\",\"loc\":[\"body\",\"order\"],"
                     "\"msg\":\"Value error, order_id or order_number is required\","
                     "\"input\":{\"x\":1},"
                     "\"ctx\":{\"error\":\"order_id or order_number is required\"}}");
    assert_one_error(VAL_ACCEPT, "{\"order\":{\"order_id\":\"abc\"}}",
                     "{\"type\":\"string_pattern_mismatch\","
                     "\"loc\":[\"body\",\"order\",\"order_id\"],"
                     "\"msg\":\"String should match pattern '^[0-9a-fA-F]{24}$'\","
                     "\"input\":\"abc\",\"ctx\":{\"pattern\":\"^[0-9a-fA-F]{24}$\"}}");
    assert_one_error(VAL_ACCEPT, "{\"order\":{\"order_number\":12}}",
                     "{\"type\":\"string_type\",\"loc\":[\"body\",\"order\",\"order_number\"],"
                     "\"msg\":\"Input should be a valid string\",\"input\":12}");
    assert_one_error(VAL_CANCEL,
                     "{\"order\":{\"order_id\":\"" OID "\"},"
                     "\"reason_code\":\"0123456789012345678901234567890\"}",
                     "{\"type\":\"string_too_long\",\"loc\":[\"body\",\"reason_code\"],"
                     "\"msg\":\"String should have at most 30 characters\","
                     "\"input\":\"0123456789012345678901234567890\","
                     "\"ctx\":{\"max_length\":30}}");
    assert_one_error(VAL_DROP, "[1]",
                     "{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],"
                     "\"msg\":\"Input should be a valid dictionary or object to extract fields "
                     "from\",\"input\":[1]}");
}

static void test_entries_update_status(void **state)
{
    (void)state;
    const char *expected = "'assigned', 'driving_to_load', 'arrived_at_load', 'loading', "
                           "'completed_load', 'driving_to_drop', 'arrived_at_drop', 'dropping', "
                           "'completed_drop' or 'complete'";
    json_t *out;
    json_t *errors = run_str(VAL_UPDATE_STATUS,
                             "{\"order\":{\"order_id\":\"" OID "\"},"
                             "\"progress_status\":\"no_progress\"}",
                             &out);
    assert_int_equal(json_array_size(errors), 1);
    json_t *e = json_array_get(errors, 0);
    char msg[512];
    snprintf(msg, sizeof(msg), "Input should be %s", expected);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "enum");
    assert_string_equal(json_string_value(json_object_get(e, "msg")), msg);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "ctx"), "expected")),
                        expected);
    assert_string_equal(json_string_value(json_object_get(e, "input")), "no_progress");
    json_decref(errors);

    assert_one_error(VAL_UPDATE_STATUS,
                     "{\"order\":{\"order_id\":\"" OID "\"},\"progress_status\":\"complete\","
                     "\"eta\":\"2026-13-01T00:00:00Z\"}",
                     "{\"type\":\"datetime_parsing\",\"loc\":[\"body\",\"eta\"],"
                     "\"msg\":\"Input should be a valid datetime, month value is outside "
                     "expected range of 1-12\",\"input\":\"2026-13-01T00:00:00Z\","
                     "\"ctx\":{\"error\":\"month value is outside expected range of 1-12\"}}");
    assert_one_error(VAL_UPDATE_STATUS,
                     "{\"order\":{\"order_id\":\"" OID "\"},\"progress_status\":\"complete\","
                     "\"actual\":1778527551}",
                     "{\"type\":\"datetime_type\",\"loc\":[\"body\",\"actual\"],"
                     "\"msg\":\"Input should be a valid datetime\",\"input\":1778527551}");
    assert_one_error(VAL_UPDATE_STATUS,
                     "{\"order\":{\"order_id\":\"" OID "\"},\"progress_status\":\"loading\"}",
                     "{\"type\":\"missing\",\"loc\":[\"body\",\"location\"],"
                     "\"msg\":\"Field required\"}");
    assert_one_error(VAL_UPDATE_STATUS,
                     "{\"order\":{\"order_id\":\"" OID "\"},\"progress_status\":\"loading\","
                     "\"location\":{\"source_id\":null}}",
                     "{\"type\":\"value_error\",\"loc\":[\"body\",\"location\"],"
                     "\"msg\":\"Value error, at least one of source_id, source_name or "
                     "mapping_id is required\",\"input\":{\"source_id\":null},"
                     "\"ctx\":{\"error\":\"at least one of source_id, source_name or mapping_id "
                     "is required\"}}");
    assert_one_error(VAL_UPDATE_STATUS,
                     "{\"order\":{\"order_id\":\"" OID "\"},\"progress_status\":\"loading\","
                     "\"location\":\"HOU\"}",
                     "{\"type\":\"model_type\",\"loc\":[\"body\",\"location\"],"
                     "\"msg\":\"Input should be a valid dictionary or instance of MappingKey\","
                     "\"input\":\"HOU\",\"ctx\":{\"class_name\":\"MappingKey\"}}");
}

#define LINE_OK                                                                                    \
    "{\"product\":{\"source_id\":\"P\"},\"terminal\":{\"source_id\":\"T\"},"                       \
    "\"site\":{\"source_id\":\"S\"},\"quantity\":5}"
#define CREATE_HEAD "{\"order_number\":\"PO-1\",\"requested_delivery\":\"2026-05-11\","

static void test_entries_create_bol_drop(void **state)
{
    (void)state;
    assert_one_error(VAL_CREATE, CREATE_HEAD "\"lines\":{}}",
                     "{\"type\":\"list_type\",\"loc\":[\"body\",\"lines\"],"
                     "\"msg\":\"Input should be a valid list\",\"input\":{}}");
    assert_one_error(VAL_CREATE, CREATE_HEAD "\"lines\":[]}",
                     "{\"type\":\"too_short\",\"loc\":[\"body\",\"lines\"],"
                     "\"msg\":\"List should have at least 1 item after validation, not 0\","
                     "\"input\":[],\"ctx\":{\"field_type\":\"List\",\"min_length\":1,"
                     "\"actual_length\":0}}");
    assert_one_error(VAL_CREATE, CREATE_HEAD "\"lines\":[" LINE_OK ",7]}",
                     "{\"type\":\"model_type\",\"loc\":[\"body\",\"lines\",1],"
                     "\"msg\":\"Input should be a valid dictionary or instance of OrderLine\","
                     "\"input\":7,\"ctx\":{\"class_name\":\"OrderLine\"}}");
    assert_one_error(VAL_CREATE,
                     CREATE_HEAD "\"lines\":[{\"product\":{\"source_id\":\"P\"},"
                                 "\"terminal\":{\"source_id\":\"T\"},\"site\":{\"source_id\":"
                                 "\"S\"},\"quantity\":true}]}",
                     "{\"type\":\"float_type\",\"loc\":[\"body\",\"lines\",0,\"quantity\"],"
                     "\"msg\":\"Input should be a valid number\",\"input\":true}");
    assert_one_error(VAL_CREATE,
                     CREATE_HEAD "\"lines\":[{\"product\":{\"source_id\":\"P\"},"
                                 "\"terminal\":{\"source_id\":\"T\"},\"site\":{\"source_id\":"
                                 "\"S\"},\"quantity\":0}]}",
                     "{\"type\":\"greater_than\",\"loc\":[\"body\",\"lines\",0,\"quantity\"],"
                     "\"msg\":\"Input should be greater than 0\",\"input\":0,\"ctx\":{\"gt\":0}}");
    assert_one_error(VAL_DROP,
                     "{\"order\":{\"order_number\":\"PO-1\"},\"site\":{\"source_id\":\"S\"},"
                     "\"product\":{\"source_id\":\"P\"},\"volume\":-2.5}",
                     "{\"type\":\"greater_than_equal\",\"loc\":[\"body\",\"volume\"],"
                     "\"msg\":\"Input should be greater than or equal to 0\",\"input\":-2.5,"
                     "\"ctx\":{\"ge\":0}}");
}

/* val_error_add copies input, steals loc and ctx, and leaves out what is NULL. */
static void test_error_add(void **state)
{
    (void)state;
    json_t *errors = json_array();
    json_t *input = must_parse("{\"a\":[1,2]}");
    val_error_add(errors, json_pack("[s,s]", "header", "idempotency-key"), "string_too_long",
                  "String should have at most 255 characters", input,
                  json_pack("{s:i}", "max_length", 255));
    val_error_add(errors, json_pack("[s]", "body"), "missing", "Field required", NULL, NULL);
    json_array_append_new(json_object_get(input, "a"), json_integer(3));
    assert_json_eq(errors,
                   "[{\"type\":\"string_too_long\",\"loc\":[\"header\",\"idempotency-key\"],"
                   "\"msg\":\"String should have at most 255 characters\","
                   "\"input\":{\"a\":[1,2]},\"ctx\":{\"max_length\":255}},"
                   "{\"type\":\"missing\",\"loc\":[\"body\"],\"msg\":\"Field required\"}]");
    json_decref(input);
    json_decref(errors);
}

/* Entries already in the array (e.g. header problems) do not make a valid body fail. */
static void test_preexisting_errors(void **state)
{
    (void)state;
    json_t *errors = json_array();
    val_error_add(errors, json_pack("[s,s]", "header", "x-dest-tenant-name"), "missing",
                  "Field required", NULL, NULL);
    json_t *body = must_parse("{\"order\":{\"order_number\":\"PO-1\"}}");
    json_t *out = NULL;
    assert_int_equal(val_mutation(VAL_RESET, body, errors, &out), 0);
    assert_non_null(out);
    assert_int_equal(json_array_size(errors), 1);
    json_decref(out);
    json_decref(body);

    body = must_parse("{}");
    assert_true(val_mutation(VAL_RESET, body, errors, &out) < 0);
    assert_null(out);
    assert_int_equal(json_array_size(errors), 2);
    json_decref(body);
    json_decref(errors);
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(val_kind_name(VAL_CANCEL), "cancel");
    assert_string_equal(val_kind_name(VAL_RESET), "reset");
    assert_string_equal(val_kind_name(VAL_UPDATE_STATUS), "update_status");
    assert_string_equal(val_kind_name(VAL_CREATE), "create");
    assert_string_equal(val_kind_name(VAL_ACCEPT), "accept");
    assert_string_equal(val_kind_name(VAL_BOL), "bol");
    assert_string_equal(val_kind_name(VAL_DROP), "drop");
}

/* ---------------------------------------------------------------------------------------------
 * Canonical output
 * ------------------------------------------------------------------------------------------- */

static void test_output_cancel(void **state)
{
    (void)state;
    /* reason_code inside order is hoisted; order_id is lower-cased; extras are dropped. */
    assert_output(VAL_CANCEL,
                  "{\"order\":{\"order_id\":\"64B7CF5A86D9755DF3A6C501\",\"reason_code\":\"dup\","
                  "\"extra\":1},\"other\":true}",
                  "{\"order\":{\"order_id\":\"" OID "\"},\"reason_code\":\"dup\"}");
    /* The top level wins over order.reason_code. */
    assert_output(VAL_CANCEL,
                  "{\"reason_code\":\"top\",\"order\":{\"order_number\":\"PO-1\","
                  "\"reason_code\":\"inner\"}}",
                  "{\"order\":{\"order_number\":\"PO-1\"},\"reason_code\":\"top\"}");
    /* Nulls are absences, not values. */
    assert_output(VAL_CANCEL,
                  "{\"order\":{\"order_id\":null,\"order_number\":\"PO-1\",\"reason_code\":null},"
                  "\"reason_code\":null}",
                  "{\"order\":{\"order_number\":\"PO-1\"}}");
    assert_output(VAL_RESET, "{\"order\":{\"order_id\":\"" OID "\",\"order_number\":\"PO-1\"}}",
                  "{\"order\":{\"order_id\":\"" OID "\",\"order_number\":\"PO-1\"}}");
}

static void test_output_update_status(void **state)
{
    (void)state;
    /* delivery_eta defaults to eta; datetimes are rendered in UTC with milliseconds. */
    assert_output(VAL_UPDATE_STATUS,
                  "{\"order\":{\"order_number\":\"PO-1\"},\"progress_status\":\"arrived_at_load\","
                  "\"location\":{\"mapping_id\":\"64B7CF5A86D9755DF3A6C501\",\"goid\":\"x\"},"
                  "\"eta\":\"2026-05-11T19:25:51+05:30\",\"actual\":\"2026-05-11 19:25:51.1\","
                  "\"assigned_to\":\"driver 7\",\"hauled_by\":null}",
                  "{\"order\":{\"order_number\":\"PO-1\"},"
                  "\"location\":{\"mapping_id\":\"" OID "\"},"
                  "\"progress_status\":\"arrived_at_load\","
                  "\"eta\":\"2026-05-11T13:55:51.000Z\","
                  "\"delivery_eta\":\"2026-05-11T13:55:51.000Z\","
                  "\"actual\":\"2026-05-11T19:25:51.100Z\",\"assigned_to\":\"driver 7\"}");
    /* A delivery_eta of its own is kept. */
    assert_output(VAL_UPDATE_STATUS,
                  "{\"order\":{\"order_number\":\"PO-1\"},\"progress_status\":\"complete\","
                  "\"eta\":\"2026-05-11\",\"delivery_eta\":\"2026-05-12T00:00:00.999999Z\"}",
                  "{\"order\":{\"order_number\":\"PO-1\"},\"progress_status\":\"complete\","
                  "\"eta\":\"2026-05-11T00:00:00.000Z\","
                  "\"delivery_eta\":\"2026-05-12T00:00:00.999Z\"}");
    /* complete needs no location, and none is invented. */
    assert_output(VAL_UPDATE_STATUS,
                  "{\"order\":{\"order_number\":\"PO-1\"},\"progress_status\":\"complete\","
                  "\"location\":null}",
                  "{\"order\":{\"order_number\":\"PO-1\"},\"progress_status\":\"complete\"}");
}

static void test_output_create_bol_drop(void **state)
{
    (void)state;
    assert_output(VAL_CREATE,
                  "{\"order_number\":\"PO-9\",\"requested_delivery\":\"2026-05-20T08:00:00-05:00\","
                  "\"lines\":[{\"product\":{\"source_id\":\"ULSD\",\"source_name\":null},"
                  "\"terminal\":{\"source_name\":\"Houston\"},\"site\":{\"source_id\":\"S-1\"},"
                  "\"quantity\":8000,\"uom\":\"gal\",\"price\":3}],\"notes\":null}",
                  "{\"order_number\":\"PO-9\",\"lines\":[{\"product\":{\"source_id\":\"ULSD\"},"
                  "\"terminal\":{\"source_name\":\"Houston\"},\"site\":{\"source_id\":\"S-1\"},"
                  "\"quantity\":8000.0,\"uom\":\"gal\"}],"
                  "\"requested_delivery\":\"2026-05-20T13:00:00.000Z\"}");
    assert_output(VAL_BOL,
                  "{\"order\":{\"order_id\":\"" OID "\"},\"bol_number\":\"B-1\","
                  "\"terminal\":{\"source_id\":\"T\"},\"product\":{\"source_id\":\"P\"},"
                  "\"gross_volume\":0,\"net_volume\":7999.5}",
                  "{\"order\":{\"order_id\":\"" OID "\"},\"bol_number\":\"B-1\","
                  "\"terminal\":{\"source_id\":\"T\"},\"product\":{\"source_id\":\"P\"},"
                  "\"gross_volume\":0.0,\"net_volume\":7999.5}");
    assert_output(VAL_DROP,
                  "{\"order\":{\"order_id\":\"" OID "\"},\"site\":{\"source_id\":\"S\"},"
                  "\"product\":{\"source_id\":\"P\"},\"volume\":12,"
                  "\"actual\":\"2026-05-11T19:25:51.332Z\"}",
                  "{\"order\":{\"order_id\":\"" OID "\"},\"site\":{\"source_id\":\"S\"},"
                  "\"product\":{\"source_id\":\"P\"},\"volume\":12.0,"
                  "\"actual\":\"2026-05-11T19:25:51.332Z\"}");
}

/* ---------------------------------------------------------------------------------------------
 * Strict JSON: each case BAD_INPUT.md lists, with the offset our rule gives and jansson's reason
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *what;
    const char *body;
    size_t len;         /* 0: strlen(body) */
    long offset;        /* expected loc[1] */
    const char *reason; /* prefix of ctx.error */
} json_case_t;

#define B(s) s, sizeof(s) - 1

static const json_case_t json_cases[] = {
    {"duplicate key", B("{\"order\":1,\"order\":2}"), 18, "duplicate object key"},
    {"UTF-8 BOM", B("\xef\xbb\xbf{}"), 3, "invalid token"},
    {"trailing x", B("{}x"), 3, "end of file expected"},
    {"two documents", B("{} {}"), 4, "end of file expected"},
    {"escaped NUL", B("{\"a\":\"\\u0000\"}"), 13, "\\u0000 is not allowed"},
    {"escaped NUL in key", B("{\"a\\u0000\":1}"), 10, "NUL byte in object key"},
    {"raw NUL in string", B("{\"a\":\"\0\"}"), 7, "control character 0x0"},
    {"raw NUL after document", B("{}\0"), 3, "end of file expected"},
    {"lone surrogate", B("{\"a\":\"\\ud800\"}"), 13, "invalid Unicode '\\uD800'"},
    {"overlong C0 AF", B("{\"a\":\"\xc0\xaf\"}"), 7, "unable to decode byte 0xc0"},
    {"byte FF", B("{\"a\":\"\xff\"}"), 7, "unable to decode byte 0xff"},
    {"byte FF alone", B("\xff"), 1, "unable to decode byte 0xff"},
    {"NaN", B("{\"a\":NaN}"), 8, "invalid token"},
    {"1e999", B("{\"quantity\":1e999}"), 17, "real number overflow"},
    {"2^70", B("{\"a\":1180591620717411303424}"), 27, "too big integer"},
    {"-2^63-1", B("{\"a\":-9223372036854775809}"), 25, "too big negative integer"},
    {"control char", B("{\"a\":\"x\x01y\"}"), 8, "control character 0x1"},
    {"newline in string", B("{\"a\":\"x\ny\"}"), 8, "unexpected newline"},
    {"whitespace only", B("  "), 2, "unexpected token"},
    {"unterminated", B("{\"a\":\"abc"), 9, "premature end of input"},
};

static void test_json_strictness(void **state)
{
    (void)state;
    for (size_t i = 0; i < CR_ARRAY_SIZE(json_cases); i++) {
        const json_case_t *c = &json_cases[i];
        json_t *errors = json_array();
        json_t *v = val_json_parse(c->body, c->len, errors);
        if (v != NULL)
            fail_msg("%s: parsed", c->what);
        assert_int_equal(json_array_size(errors), 1);
        json_t *e = json_array_get(errors, 0);
        json_t *loc = json_object_get(e, "loc");
        const char *reason = json_string_value(json_object_get(json_object_get(e, "ctx"), "error"));
        long off = (long)json_integer_value(json_array_get(loc, 1));
        if (off != c->offset || reason == NULL || strncmp(reason, c->reason, strlen(c->reason)))
            print_error("%s: offset %ld (want %ld), reason \"%s\" (want \"%s...\")\n", c->what, off,
                        c->offset, reason ? reason : "-", c->reason);
        assert_string_equal(json_string_value(json_object_get(e, "type")), "json_invalid");
        assert_string_equal(json_string_value(json_object_get(e, "msg")), "JSON decode error");
        assert_string_equal(json_string_value(json_array_get(loc, 0)), "body");
        assert_int_equal(json_array_size(loc), 2);
        assert_int_equal(off, c->offset);
        assert_non_null(reason);
        assert_int_equal(strncmp(reason, c->reason, strlen(c->reason)), 0);
        assert_json_eq(json_object_get(e, "input"), "{}");
        json_decref(errors);
    }
}

/* jansson stops at depth 2048; deeper bodies, up to the body limit, fail at the same place. */
static void test_json_depth(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *b = cr_malloc(2 * n);
    memset(b, '[', n);
    memset(b + n, ']', n);
    size_t depths[] = {2049, 32768, n};
    for (size_t i = 0; i < CR_ARRAY_SIZE(depths); i++) {
        json_t *errors = json_array();
        /* depth d: the last d '[' then the first d ']' */
        assert_null(val_json_parse(b + n - depths[i], 2 * depths[i], errors));
        assert_int_equal(json_array_size(errors), 1);
        json_t *e = json_array_get(errors, 0);
        assert_int_equal(json_integer_value(json_array_get(json_object_get(e, "loc"), 1)), 2049);
        assert_string_equal(json_string_value(json_object_get(json_object_get(e, "ctx"), "error")),
                            "maximum parsing depth reached near '['");
        json_decref(errors);
    }
    /* 2048 is allowed: valid JSON, refused later only because it is not an object. */
    json_t *errors = json_array();
    json_t *v = val_json_parse(b + n - 2048, 2 * 2048, errors);
    assert_non_null(v);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(v);
    json_decref(errors);
    free(b);
}

static void test_json_misc(void **state)
{
    (void)state;
    json_t *errors = json_array();
    /* Empty body: "missing" at ["body"], no input. */
    assert_null(val_json_parse("", 0, errors));
    assert_json_eq(errors,
                   "[{\"type\":\"missing\",\"loc\":[\"body\"],\"msg\":\"Field required\"}]");
    json_array_clear(errors);
    /* Any JSON type parses (the object check belongs to val_mutation). */
    json_t *v = val_json_parse("123", 3, errors);
    assert_true(json_is_integer(v));
    json_decref(v);
    v = val_json_parse("\"s\"", 3, errors);
    assert_true(json_is_string(v));
    json_decref(v);
    /* The length bounds the parse: what follows is not read, NUL or not. */
    v = val_json_parse("{}garbage", 2, errors);
    assert_true(json_is_object(v));
    json_decref(v);
    assert_int_equal(json_array_size(errors), 0);
    /* Largest int64 is fine; integers are numbers for volumes. */
    json_t *out;
    json_t *errs = run_str(VAL_DROP,
                           "{\"order\":{\"order_number\":\"PO-1\"},\"site\":{\"source_id\":\"S\"},"
                           "\"product\":{\"source_id\":\"P\"},\"volume\":9223372036854775807}",
                           &out);
    assert_int_equal(json_array_size(errs), 0);
    assert_true(json_is_real(json_object_get(out, "volume")));
    json_decref(out);
    json_decref(errs);
    json_decref(errors);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_table),
        cmocka_unit_test(test_entries_common),
        cmocka_unit_test(test_entries_update_status),
        cmocka_unit_test(test_entries_create_bol_drop),
        cmocka_unit_test(test_error_add),
        cmocka_unit_test(test_preexisting_errors),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_output_cancel),
        cmocka_unit_test(test_output_update_status),
        cmocka_unit_test(test_output_create_bol_drop),
        cmocka_unit_test(test_json_strictness),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_json_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
