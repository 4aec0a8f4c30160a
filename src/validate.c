/*
 * validate.c - field rules for the seven mutation bodies, reported as FastAPI with pydantic v2
 * reports them (SPEC section 2).
 *
 * Does: strict JSON parsing of a request body (val_json_parse) and, per mutation, a walk over a
 * table of fields that collects every problem in field declaration order and, when there is none,
 * builds the canonical copy of the body the rest of the gateway works from (val_mutation).
 * Owns: nothing between calls; every json_t it returns is a new reference for the caller.
 * Must not: look at tenants, Redis, headers or the clock. Tenant-dependent defaults (hauled_by)
 * and existence checks (does the order exist?) belong to the saga, not to validation.
 */
#include "validate.h"

#include "util/cr.h"
#include "util/timefmt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Messages. pydantic's exact words: clients match on "type", people read "msg".
 * ------------------------------------------------------------------------------------------- */

#define HEX24_PATTERN "^[0-9a-fA-F]{24}$"

/* pydantic's enum message: the values quoted, joined by ", ", the last one by " or ". */
#define PROGRESS_EXPECTED                                                                          \
    "'assigned', 'driving_to_load', 'arrived_at_load', 'loading', 'completed_load', "              \
    "'driving_to_drop', 'arrived_at_drop', 'dropping', 'completed_drop' or 'complete'"

/*
 * no_progress is deliberately absent: only a reset may put an order back there, so a client
 * sending it is refused like any other unknown value.
 */
static const char *const progress_values[] = {
    "assigned",        "driving_to_load", "arrived_at_load", "loading",        "completed_load",
    "driving_to_drop", "arrived_at_drop", "dropping",        "completed_drop", "complete",
};

/* ---------------------------------------------------------------------------------------------
 * Field tables. Each body is a flat list of fields walked in declaration order, which is the
 * order pydantic reports errors in.
 * ------------------------------------------------------------------------------------------- */

typedef enum {
    FK_ORDER,        /* OrderRequest */
    FK_ORDER_REASON, /* OrderRequest that also takes reason_code (cancel) */
    FK_STRING,       /* str with max_len */
    FK_MAPPING_KEY,  /* MappingKey */
    FK_DATETIME,     /* datetime, re-rendered canonically */
    FK_NUMBER_GT0,   /* float > 0 */
    FK_NUMBER_GE0,   /* float >= 0 */
    FK_PROGRESS,     /* OrderProgressStatus */
    FK_LINES,        /* list[OrderLine], at least one */
} field_kind_t;

/* The field must be present (null is then a type error, as for a non-Optional pydantic field). */
#define F_REQUIRED 0x1
/* update_status location: required unless progress_status is "complete". */
#define F_UNLESS_COMPLETE 0x2

typedef struct {
    const char *name;
    field_kind_t kind;
    unsigned flags;
    size_t max_len; /* FK_STRING only */
} field_t;

static const field_t cancel_fields[] = {
    {"order", FK_ORDER_REASON, F_REQUIRED, 0},
    {"reason_code", FK_STRING, 0, 30},
};

static const field_t order_only_fields[] = {
    {"order", FK_ORDER, F_REQUIRED, 0},
};

static const field_t update_status_fields[] = {
    {"order", FK_ORDER, F_REQUIRED, 0},
    {"location", FK_MAPPING_KEY, F_UNLESS_COMPLETE, 0},
    {"progress_status", FK_PROGRESS, F_REQUIRED, 0},
    {"eta", FK_DATETIME, 0, 0},
    {"delivery_eta", FK_DATETIME, 0, 0},
    {"actual", FK_DATETIME, 0, 0},
    {"assigned_to", FK_STRING, 0, 50},
    {"hauled_by", FK_STRING, 0, 255},
};

static const field_t create_fields[] = {
    {"order_number", FK_STRING, F_REQUIRED, 64},
    {"lines", FK_LINES, F_REQUIRED, 0},
    {"requested_delivery", FK_DATETIME, F_REQUIRED, 0},
    {"notes", FK_STRING, 0, 1000},
};

static const field_t line_fields[] = {
    {"product", FK_MAPPING_KEY, F_REQUIRED, 0},
    {"terminal", FK_MAPPING_KEY, F_REQUIRED, 0},
    {"site", FK_MAPPING_KEY, F_REQUIRED, 0},
    {"quantity", FK_NUMBER_GT0, F_REQUIRED, 0},
    {"uom", FK_STRING, 0, 16},
};

static const field_t bol_fields[] = {
    {"order", FK_ORDER, F_REQUIRED, 0},
    {"bol_number", FK_STRING, F_REQUIRED, 64},
    {"terminal", FK_MAPPING_KEY, F_REQUIRED, 0},
    {"product", FK_MAPPING_KEY, F_REQUIRED, 0},
    {"gross_volume", FK_NUMBER_GE0, F_REQUIRED, 0},
    {"net_volume", FK_NUMBER_GE0, F_REQUIRED, 0},
    {"actual", FK_DATETIME, 0, 0},
};

static const field_t drop_fields[] = {
    {"order", FK_ORDER, F_REQUIRED, 0},
    {"site", FK_MAPPING_KEY, F_REQUIRED, 0},
    {"product", FK_MAPPING_KEY, F_REQUIRED, 0},
    {"volume", FK_NUMBER_GE0, F_REQUIRED, 0},
    {"actual", FK_DATETIME, 0, 0},
};

typedef struct {
    const char *name;
    const field_t *fields;
    size_t nfields;
} kind_desc_t;

static const kind_desc_t kinds[] = {
    [VAL_CANCEL] = {"cancel", cancel_fields, CR_ARRAY_SIZE(cancel_fields)},
    [VAL_RESET] = {"reset", order_only_fields, CR_ARRAY_SIZE(order_only_fields)},
    [VAL_UPDATE_STATUS] = {"update_status", update_status_fields,
                           CR_ARRAY_SIZE(update_status_fields)},
    [VAL_CREATE] = {"create", create_fields, CR_ARRAY_SIZE(create_fields)},
    [VAL_ACCEPT] = {"accept", order_only_fields, CR_ARRAY_SIZE(order_only_fields)},
    [VAL_BOL] = {"bol", bol_fields, CR_ARRAY_SIZE(bol_fields)},
    [VAL_DROP] = {"drop", drop_fields, CR_ARRAY_SIZE(drop_fields)},
};

const char *val_kind_name(val_kind_t kind)
{
    if ((size_t)kind >= CR_ARRAY_SIZE(kinds))
        return "unknown";
    return kinds[kind].name;
}

/* ---------------------------------------------------------------------------------------------
 * Error entries and locations
 * ------------------------------------------------------------------------------------------- */

/* Nesting depth of a JSON value, counted up to limit (a scalar is 0). */
static int json_depth(const json_t *v, int limit)
{
    if (limit <= 0 || !(json_is_object(v) || json_is_array(v)))
        return 0;
    int deepest = 0;
    if (json_is_array(v)) {
        size_t i;
        const json_t *x;
        json_array_foreach((json_t *)v, i, x)
        {
            int d = json_depth(x, limit - 1);
            if (d > deepest)
                deepest = d;
        }
    } else {
        const char *k;
        const json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            int d = json_depth(x, limit - 1);
            if (d > deepest)
                deepest = d;
        }
    }
    return deepest + 1;
}

void val_error_add(json_t *errors, json_t *loc, const char *type, const char *msg,
                   const json_t *input, json_t *ctx)
{
    /*
     * Bounded answers: a hostile body could otherwise produce one entry per array element, or
     * an "input" echo nested deeper than any JSON reader (ours included) accepts.
     */
    if (json_array_size(errors) >= VAL_MAX_ERRORS) {
        json_decref(loc);
        json_decref(ctx);
        return;
    }
    if (input != NULL && json_depth(input, VAL_MAX_INPUT_DEPTH + 1) > VAL_MAX_INPUT_DEPTH)
        input = NULL;
    /* Members in FastAPI's order (type, loc, msg, input, ctx): jansson keeps insertion order. */
    json_t *e = json_object();
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "loc", loc);
    json_object_set_new(e, "msg", json_string(msg));
    if (input != NULL)
        json_object_set_new(e, "input", json_deep_copy(input));
    if (ctx != NULL)
        json_object_set_new(e, "ctx", ctx);
    json_array_append_new(errors, e);
}

/*
 * Locations are built as we descend: each level copies its parent's array (a shallow copy of a
 * few strings and integers) and appends its key or index, so an entry's loc is independent of
 * the walk that produced it.
 */
static json_t *loc_key(json_t *parent, const char *key)
{
    json_t *loc = json_copy(parent);
    json_array_append_new(loc, json_string(key));
    return loc;
}

static json_t *loc_index(json_t *parent, size_t i)
{
    json_t *loc = json_copy(parent);
    json_array_append_new(loc, json_integer((json_int_t)i));
    return loc;
}

static void err_missing(json_t *errors, json_t *loc)
{
    val_error_add(errors, json_copy(loc), "missing", "Field required", NULL, NULL);
}

static void err_model_type(json_t *errors, json_t *loc, const json_t *v, const char *class_name)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "Input should be a valid dictionary or instance of %s", class_name);
    val_error_add(errors, json_copy(loc), "model_type", msg, v,
                  json_pack("{s:s}", "class_name", class_name));
}

/*
 * A model validator's ValueError: pydantic prefixes "Value error, " to the message and keeps the
 * bare reason in ctx.error.
 */
static void err_value(json_t *errors, json_t *loc, const json_t *v, const char *reason)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "Value error, %s", reason);
    val_error_add(errors, json_copy(loc), "value_error", msg, v,
                  json_pack("{s:s}", "error", reason));
}

/* ---------------------------------------------------------------------------------------------
 * Scalars
 * ------------------------------------------------------------------------------------------- */

/* pydantic counts characters (code points), not bytes; jansson strings are valid UTF-8. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static int check_string(const json_t *v, json_t *loc, size_t max_len, json_t *errors, json_t **out)
{
    if (!json_is_string(v)) {
        val_error_add(errors, json_copy(loc), "string_type", "Input should be a valid string", v,
                      NULL);
        return -1;
    }
    if (utf8_chars(json_string_value(v), json_string_length(v)) > max_len) {
        char msg[80];
        snprintf(msg, sizeof(msg), "String should have at most %zu character%s", max_len,
                 max_len == 1 ? "" : "s");
        val_error_add(errors, json_copy(loc), "string_too_long", msg, v,
                      json_pack("{s:I}", "max_length", (json_int_t)max_len));
        return -1;
    }
    *out = json_deep_copy(v);
    return 0;
}

/* order_id and mapping_id: 24 hex digits (a Mongo ObjectId), normalised to lower case. */
static int check_hex24(const json_t *v, json_t *loc, json_t *errors, json_t **out)
{
    if (!json_is_string(v)) {
        val_error_add(errors, json_copy(loc), "string_type", "Input should be a valid string", v,
                      NULL);
        return -1;
    }
    const char *s = json_string_value(v);
    bool ok = json_string_length(v) == 24;
    char lower[25];
    for (size_t i = 0; ok && i < 24; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        lower[i] = c;
    }
    if (!ok) {
        val_error_add(errors, json_copy(loc), "string_pattern_mismatch",
                      "String should match pattern '" HEX24_PATTERN "'", v,
                      json_pack("{s:s}", "pattern", HEX24_PATTERN));
        return -1;
    }
    lower[24] = '\0';
    *out = json_string(lower);
    return 0;
}

static int check_datetime(const json_t *v, json_t *loc, json_t *errors, json_t **out)
{
    /*
     * Deliberate departure from pydantic, which also takes Unix timestamps as numbers: a number
     * here is far more often a unit mistake (seconds vs milliseconds) than a real timestamp.
     */
    if (!json_is_string(v)) {
        val_error_add(errors, json_copy(loc), "datetime_type", "Input should be a valid datetime",
                      v, NULL);
        return -1;
    }
    int64_t ms;
    const char *reason = NULL;
    if (time_parse_iso(json_string_value(v), json_string_length(v), &ms, &reason) != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "Input should be a valid datetime, %s", reason);
        val_error_add(errors, json_copy(loc), "datetime_parsing", msg, v,
                      json_pack("{s:s}", "error", reason));
        return -1;
    }
    char buf[TIME_ISO_LEN];
    time_format_iso(ms, buf);
    *out = json_string(buf);
    return 0;
}

/*
 * Quantities and volumes are floats: integers are taken and widened, booleans are not numbers
 * (jansson types them apart, unlike Python), and strings are refused rather than coerced.
 */
static int check_number(const json_t *v, json_t *loc, bool strict_positive, json_t *errors,
                        json_t **out)
{
    if (!json_is_number(v)) {
        val_error_add(errors, json_copy(loc), "float_type", "Input should be a valid number", v,
                      NULL);
        return -1;
    }
    double d = json_number_value(v);
    if (strict_positive && !(d > 0)) {
        val_error_add(errors, json_copy(loc), "greater_than", "Input should be greater than 0", v,
                      json_pack("{s:i}", "gt", 0));
        return -1;
    }
    if (!strict_positive && !(d >= 0)) {
        val_error_add(errors, json_copy(loc), "greater_than_equal",
                      "Input should be greater than or equal to 0", v, json_pack("{s:i}", "ge", 0));
        return -1;
    }
    *out = json_real(d);
    return 0;
}

/* Index into progress_values, or -1 (not a string, or not a value a client may send). */
static int progress_index(const json_t *v)
{
    if (!json_is_string(v))
        return -1;
    for (size_t i = 0; i < CR_ARRAY_SIZE(progress_values); i++)
        if (strcmp(json_string_value(v), progress_values[i]) == 0)
            return (int)i;
    return -1;
}

static int check_progress(const json_t *v, json_t *loc, json_t *errors, json_t **out)
{
    /* A non-string is an enum error too: pydantic's enum validator reports it the same way. */
    if (progress_index(v) < 0) {
        val_error_add(errors, json_copy(loc), "enum", "Input should be " PROGRESS_EXPECTED, v,
                      json_pack("{s:s}", "expected", PROGRESS_EXPECTED));
        return -1;
    }
    *out = json_deep_copy(v);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------------------- */

/* Absent, or null (which pydantic's "X | None = None" treats as absent). */
static bool is_absent(const json_t *v)
{
    return v == NULL || json_is_null(v);
}

/*
 * "Given" for the at-least-one rules: an empty string names nothing, so {"order_number": ""} is
 * refused as if the field were absent rather than sent on to match no order.
 */
static bool is_given(const json_t *out, const char *key)
{
    const json_t *v = json_object_get(out, key);
    return json_is_string(v) && json_string_length(v) > 0;
}

/*
 * Validate one optional member of a small model into out. The sub-checks take a loc and report
 * against it, so each member's loc is built here and released after.
 */
typedef enum { M_STRING, M_HEX24 } member_kind_t;

static int check_member(const json_t *obj, const char *key, member_kind_t kind, size_t max_len,
                        json_t *loc, json_t *errors, json_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (is_absent(v))
        return 0;
    json_t *mloc = loc_key(loc, key);
    json_t *norm = NULL;
    int rc = kind == M_HEX24 ? check_hex24(v, mloc, errors, &norm)
                             : check_string(v, mloc, max_len, errors, &norm);
    json_decref(mloc);
    if (rc == 0)
        json_object_set_new(out, key, norm);
    return rc;
}

/*
 * OrderRequest. The "one of" rule is a model validator in pydantic, which runs only once every
 * field is valid, so it is checked last and only when the fields passed.
 */
static int check_order(const json_t *v, json_t *loc, bool with_reason, json_t *errors, json_t **out)
{
    if (!json_is_object(v)) {
        err_model_type(errors, loc, v, "OrderRequest");
        return -1;
    }
    json_t *o = json_object();
    int rc = 0;
    rc |= check_member(v, "order_id", M_HEX24, 0, loc, errors, o);
    rc |= check_member(v, "order_number", M_STRING, 64, loc, errors, o);
    if (with_reason)
        rc |= check_member(v, "reason_code", M_STRING, 30, loc, errors, o);
    if (rc == 0 && !is_given(o, "order_id") && !is_given(o, "order_number")) {
        err_value(errors, loc, v, "order_id or order_number is required");
        rc = -1;
    }
    if (rc != 0) {
        json_decref(o);
        return -1;
    }
    *out = o;
    return 0;
}

/* MappingKey (terminal, site, product, location): at least one way to find the mapping. */
static int check_mapping_key(const json_t *v, json_t *loc, json_t *errors, json_t **out)
{
    if (!json_is_object(v)) {
        err_model_type(errors, loc, v, "MappingKey");
        return -1;
    }
    json_t *o = json_object();
    int rc = 0;
    rc |= check_member(v, "source_id", M_STRING, 255, loc, errors, o);
    rc |= check_member(v, "source_name", M_STRING, 255, loc, errors, o);
    rc |= check_member(v, "mapping_id", M_HEX24, 0, loc, errors, o);
    if (rc == 0 && !is_given(o, "source_id") && !is_given(o, "source_name") &&
        !is_given(o, "mapping_id")) {
        err_value(errors, loc, v,
                  "at least one of source_id, source_name or mapping_id is required");
        rc = -1;
    }
    if (rc != 0) {
        json_decref(o);
        return -1;
    }
    *out = o;
    return 0;
}

static int check_fields(const field_t *fields, size_t n, const json_t *obj, json_t *loc,
                        json_t *errors, json_t *out);

static int check_lines(const json_t *v, json_t *loc, json_t *errors, json_t **out)
{
    if (!json_is_array(v)) {
        val_error_add(errors, json_copy(loc), "list_type", "Input should be a valid list", v, NULL);
        return -1;
    }
    if (json_array_size(v) == 0) {
        val_error_add(
            errors, json_copy(loc), "too_short",
            "List should have at least 1 item after validation, not 0", v,
            json_pack("{s:s,s:i,s:i}", "field_type", "List", "min_length", 1, "actual_length", 0));
        return -1;
    }
    json_t *lines = json_array();
    int rc = 0;
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        json_t *iloc = loc_index(loc, i);
        if (!json_is_object(item)) {
            err_model_type(errors, iloc, item, "OrderLine");
            rc = -1;
        } else {
            json_t *line = json_object();
            if (check_fields(line_fields, CR_ARRAY_SIZE(line_fields), item, iloc, errors, line) ==
                0)
                json_array_append_new(lines, line);
            else {
                json_decref(line);
                rc = -1;
            }
        }
        json_decref(iloc);
    }
    if (rc != 0) {
        json_decref(lines);
        return -1;
    }
    *out = lines;
    return 0;
}

static int check_value(const field_t *f, const json_t *v, json_t *loc, json_t *errors, json_t **out)
{
    switch (f->kind) {
    case FK_ORDER:
        return check_order(v, loc, false, errors, out);
    case FK_ORDER_REASON:
        return check_order(v, loc, true, errors, out);
    case FK_STRING:
        return check_string(v, loc, f->max_len, errors, out);
    case FK_MAPPING_KEY:
        return check_mapping_key(v, loc, errors, out);
    case FK_DATETIME:
        return check_datetime(v, loc, errors, out);
    case FK_NUMBER_GT0:
        return check_number(v, loc, true, errors, out);
    case FK_NUMBER_GE0:
        return check_number(v, loc, false, errors, out);
    case FK_PROGRESS:
        return check_progress(v, loc, errors, out);
    case FK_LINES:
        return check_lines(v, loc, errors, out);
    }
    return -1;
}

/*
 * location is required unless the order is being marked complete. When progress_status is itself
 * missing or invalid we cannot tell, and reporting a missing location on top would send the
 * client chasing a second problem that may not exist.
 */
static bool location_required(const json_t *obj)
{
    int i = progress_index(json_object_get(obj, "progress_status"));
    return i >= 0 && strcmp(progress_values[i], "complete") != 0;
}

/* Walk a field table over obj, appending errors and filling out. Returns 0 or -1. */
static int check_fields(const field_t *fields, size_t n, const json_t *obj, json_t *loc,
                        json_t *errors, json_t *out)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const field_t *f = &fields[i];
        const json_t *v = json_object_get(obj, f->name);
        json_t *floc = loc_key(loc, f->name);
        if (v == NULL || (json_is_null(v) && !(f->flags & F_REQUIRED))) {
            if ((f->flags & F_REQUIRED) ||
                ((f->flags & F_UNLESS_COMPLETE) && location_required(obj))) {
                err_missing(errors, floc);
                rc = -1;
            }
        } else {
            json_t *norm = NULL;
            if (check_value(f, v, floc, errors, &norm) == 0)
                json_object_set_new(out, f->name, norm);
            else
                rc = -1;
        }
        json_decref(floc);
    }
    return rc;
}

int val_mutation(val_kind_t kind, const json_t *body, json_t *errors, json_t **out)
{
    size_t before = json_array_size(errors);
    *out = NULL;

    if (!json_is_object(body)) {
        val_error_add(errors, json_pack("[s]", "body"), "model_attributes_type",
                      "Input should be a valid dictionary or object to extract fields from", body,
                      NULL);
        return -EINVAL;
    }
    if ((size_t)kind >= CR_ARRAY_SIZE(kinds))
        return -EINVAL;

    const kind_desc_t *k = &kinds[kind];
    json_t *loc = json_pack("[s]", "body");
    json_t *o = json_object();
    check_fields(k->fields, k->nfields, body, loc, errors, o);
    json_decref(loc);

    if (json_array_size(errors) != before) {
        json_decref(o);
        return -EINVAL;
    }

    if (kind == VAL_CANCEL) {
        /* reason_code may come inside order; one place downstream, and the top level wins. */
        json_t *order = json_object_get(o, "order");
        json_t *inner = json_object_get(order, "reason_code");
        if (inner != NULL) {
            if (json_object_get(o, "reason_code") == NULL)
                json_object_set(o, "reason_code", inner);
            json_object_del(order, "reason_code");
        }
    } else if (kind == VAL_UPDATE_STATUS) {
        /* Backwards compatibility (seed): delivery_eta defaults to eta. */
        json_t *eta = json_object_get(o, "eta");
        if (eta != NULL && json_object_get(o, "delivery_eta") == NULL)
            json_object_set(o, "delivery_eta", eta);
    }
    *out = o;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Strict JSON
 * ------------------------------------------------------------------------------------------- */

/*
 * The offset in loc ["body", offset] is always just past the byte (or token) where parsing
 * stopped: the number of body bytes consumed up to and including the offending one. That is
 * jansson's json_error_t.position for almost every error (it counts bytes, not characters: a
 * duplicate key, a bad escape or an out-of-range number all point just past their token), with
 * two exceptions that we shift by one byte so the rule holds everywhere:
 *   - invalid UTF-8: jansson stops before counting the bad lead byte ("unable to decode byte");
 *   - a raw control character inside a string: jansson un-reads it before reporting.
 * Without the shift "{\"a\":\"\x01\"}" and "{\"a\":\"x\x01\"}" would disagree by one about
 * where their problem is; with it, every offset means the same thing.
 */
static size_t json_error_offset(const json_error_t *err, size_t len)
{
    size_t off = err->position < 0 ? 0 : (size_t)err->position;
    enum json_error_code code = json_error_code(err);
    bool before_byte =
        code == json_error_invalid_utf8 ||
        (code == json_error_invalid_syntax && (strncmp(err->text, "control character", 17) == 0 ||
                                               strncmp(err->text, "unexpected newline", 18) == 0));
    if (before_byte && off < len)
        off++;
    return off;
}

/* jansson's message quotes a few input bytes; keep ctx valid UTF-8 whatever they were. */
static json_t *error_text(const char *text)
{
    json_t *s = json_string(text);
    if (s != NULL)
        return s;
    char clean[JSON_ERROR_TEXT_LENGTH];
    size_t i;
    for (i = 0; text[i] != '\0' && i + 1 < sizeof(clean); i++)
        clean[i] = (unsigned char)text[i] < 0x80 ? text[i] : '?';
    clean[i] = '\0';
    return json_string(clean);
}

json_t *val_json_parse(const char *body, size_t len, json_t *errors)
{
    if (len == 0 || body == NULL) {
        val_error_add(errors, json_pack("[s]", "body"), "missing", "Field required", NULL, NULL);
        return NULL;
    }
    /*
     * Duplicate keys are refused (two parsers reading {"order":A,"order":B} differently is the
     * JSON form of request smuggling); JSON_ALLOW_NUL is left off so \u0000 never reaches code
     * that handles C strings. jansson itself refuses invalid UTF-8, lone surrogates, NaN,
     * numbers it cannot hold (real overflow, integers beyond int64) and nesting deeper than
     * 2048, and checks that nothing follows the document.
     */
    json_error_t err;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v != NULL)
        return v;

    json_t *loc = json_pack("[s,I]", "body", (json_int_t)json_error_offset(&err, len));
    json_t *ctx = json_object();
    json_object_set_new(ctx, "error", error_text(err.text));
    /* FastAPI puts an empty object in "input" for a body that is not JSON; so do we. */
    json_t *input = json_object();
    val_error_add(errors, loc, "json_invalid", "JSON decode error", input, ctx);
    json_decref(input);
    return NULL;
}
