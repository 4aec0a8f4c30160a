/*
 * test_openapi.c - GET /openapi.json against the real gateway and the route table it was built
 * with: the document is served as built (byte for byte src/openapi.json), is OpenAPI 3.1, passes
 * a real OpenAPI linter (@redocly/cli, pinned in tests/openapi), documents every route of
 * route_table() with its method, authentication and scope and nothing the router does not know,
 * and says of every mutation body what validate.c enforces.
 *
 * The field rules are not listed here: the test walks each mutation's request schema in the
 * served document, collects every constraint it states (maxLength, pattern, minimum,
 * exclusiveMinimum, minItems, enum, required) and asks the gateway about each one, just inside
 * and just outside the bound; the 422 answer must agree (same loc, pydantic type and ctx). So a
 * limit changed on one side only fails here, whichever side it was.
 *
 * Every request leaves out X-Dest-Tenant-Name, so each is a 422 that stores nothing (checked at
 * the end: no saga record in Redis). One redis-server and one gateway for the file.
 *
 * The linter: tests/openapi/node_modules must exist (`npm ci --prefix tests/openapi`); without
 * it the lint test fails and says so, as a missing tool must not pass for a clean document.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "router.h"

#define ACME_KEY      "demo-acme-key" /* acme-supply, order:* (tests/fixtures/configs/gateway.json) */
#define HEX24_PATTERN "^[0-9a-fA-F]{24}$"

static harness_redis_t g_redis;
static harness_gw_t g_gw;
static bool g_redis_up, g_gw_up, g_teardown_failed;
static json_t *g_doc;         /* the served document */
static char g_root[PATH_MAX]; /* the source tree (CR_FIXTURES/../..) */

/* ---------------------------------------------------------------------------------------------
 * The document
 * ------------------------------------------------------------------------------------------- */

/* A JSON Pointer ("#/components/schemas/X", RFC 6901 escapes) into the document, or NULL. */
static json_t *doc_pointer(const char *ref)
{
    if (strncmp(ref, "#/", 2) != 0)
        return NULL;
    json_t *cur = g_doc;
    const char *p = ref + 2;
    while (cur != NULL && *p) {
        char key[256];
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char c = *p;
            if (c == '~' && (p[1] == '0' || p[1] == '1')) {
                c = p[1] == '0' ? '~' : '/';
                p++;
            }
            if (n + 1 < sizeof key)
                key[n++] = c;
        }
        key[n] = '\0';
        if (*p == '/')
            p++;
        cur = json_is_array(cur) ? json_array_get(cur, strtoul(key, NULL, 10))
                                 : json_object_get(cur, key);
    }
    return cur;
}

/* Follow $ref (local references only; a chain of at most 16). */
static json_t *deref(json_t *v)
{
    for (int i = 0; i < 16 && json_is_object(v); i++) {
        const char *ref = json_string_value(json_object_get(v, "$ref"));
        if (ref == NULL)
            return v;
        json_t *next = doc_pointer(ref);
        if (next == NULL)
            fail_msg("unresolvable $ref %s", ref);
        v = next;
    }
    return v;
}

static json_t *operation(const char *doc_path, const char *method)
{
    return json_object_get(json_object_get(json_object_get(g_doc, "paths"), doc_path), method);
}

/* "/v1/saga/{id}" and "/v1/saga/{saga_id}" are the same route: compare with names dropped. */
static void normalise_path(const char *in, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = in; *p && n + 3 < size; p++) {
        out[n++] = *p;
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (close == NULL)
                break;
            out[n++] = '}';
            p = close;
        }
    }
    out[n] = '\0';
}

/* The document's path for a route path, or NULL. */
static const char *doc_path_for(const char *route_path)
{
    char want[256], have[256];
    normalise_path(route_path, want, sizeof want);
    const char *key;
    json_t *item;
    json_object_foreach(json_object_get(g_doc, "paths"), key, item)
    {
        normalise_path(key, have, sizeof have);
        if (strcmp(have, want) == 0)
            return key;
    }
    return NULL;
}

static void lower(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------------- */

static void print_gw_log_tail(void)
{
    FILE *f = fopen(g_gw.log_path, "r");
    if (f == NULL)
        return;
    char ring[20][1024];
    int n = 0;
    while (fgets(ring[n % 20], sizeof ring[0], f) != NULL)
        n++;
    fclose(f);
    print_error("---- gateway log (%s), last lines:\n", g_gw.log_path);
    for (int i = n > 20 ? n - 20 : 0; i < n; i++)
        print_error("%s", ring[i % 20]);
}

/*
 * POST a mutation body with acme-supply's key and no X-Dest-Tenant-Name (so it is refused and
 * stores nothing); idem_key is an Idempotency-Key or NULL. The answer must be a 422 list.
 */
static void post_422(const char *path, const json_t *body, const char *idem_key,
                     harness_resp_t *resp)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    char idem[400];
    const char *headers[4] = {"Content-Type: application/json", "X-API-Key: " ACME_KEY, NULL, NULL};
    if (idem_key != NULL) {
        snprintf(idem, sizeof idem, "Idempotency-Key: %s", idem_key);
        headers[2] = idem;
    }
    if (harness_http(g_gw.port, "POST", path, headers, text, strlen(text), resp) != 0) {
        print_gw_log_tail();
        fail_msg("no answer to POST %s", path);
    }
    if (resp->status != 422 || !json_is_array(json_object_get(resp->json, "detail")))
        fail_msg("POST %s %s: status %d, want a 422 list; body: %s", path, text, resp->status,
                 resp->body ? resp->body : "");
    free(text);
}

/* The entry of a 422 answer at exactly loc, or NULL. */
static json_t *error_at(const harness_resp_t *resp, const json_t *loc)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(resp->json, "detail"), i, e)
    {
        if (json_equal(json_object_get(e, "loc"), loc))
            return e;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Fixture
 * ------------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    const char *fixtures = getenv("CR_FIXTURES");
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/../..", fixtures ? fixtures : "tests/fixtures");
    if (realpath(tmp, g_root) == NULL) {
        print_error("cannot resolve the source tree from CR_FIXTURES (%s)\n", tmp);
        return -1;
    }
    if (harness_redis_start(&g_redis, false) != 0)
        return -1;
    g_redis_up = true;
    if (harness_gw_start(&g_gw, "gateway.json", g_redis.port, NULL) != 0)
        return -1;
    g_gw_up = true;

    harness_resp_t r;
    if (harness_http(g_gw.port, "GET", "/openapi.json", NULL, NULL, 0, &r) != 0)
        return -1;
    if (r.status != 200) {
        print_error("GET /openapi.json: status %d, body %s%s\n", r.status, r.body ? r.body : "",
                    r.status == 404 ? " (is the route in src/router.c?)" : "");
        harness_resp_free(&r);
        return -1;
    }
    /* Strict: a duplicate key in the document would be read differently by different tools. */
    json_error_t err;
    g_doc = json_loadb(r.body, r.body_len, JSON_REJECT_DUPLICATES, &err);
    if (g_doc == NULL)
        print_error("GET /openapi.json: not JSON: line %d column %d: %s\n", err.line, err.column,
                    err.text);
    harness_resp_free(&r);
    return g_doc ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    json_decref(g_doc);
    g_doc = NULL;
    if (g_gw_up) {
        int st = harness_gw_stop(&g_gw);
        if (st != 0) {
            print_error("gateway stop returned %d (want 0)\n", st);
            rc = -1;
        }
        g_gw_up = false;
    }
    if (g_redis_up) {
        harness_redis_stop(&g_redis);
        g_redis_up = false;
    }
    g_teardown_failed = rc != 0;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The served document
 * ------------------------------------------------------------------------------------------- */

static void test_served_as_built(void **state)
{
    (void)state;
    harness_resp_t r;
    assert_int_equal(harness_http(g_gw.port, "GET", "/openapi.json", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    char ct[128], rid[160];
    assert_true(harness_resp_header(&r, "Content-Type", ct, sizeof ct));
    assert_true(strncasecmp(ct, "application/json", 16) == 0);
    assert_true(harness_resp_header(&r, "X-Request-Id", rid, sizeof rid));

    /* The binary embeds src/openapi.json at build time: the two must be the same bytes. */
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/src/openapi.json", g_root);
    size_t len = 0;
    char *file = harness_read_file(path, &len);
    if (file == NULL)
        fail_msg("cannot read %s", path);
    if (len != r.body_len || memcmp(file, r.body, len) != 0)
        fail_msg("GET /openapi.json (%zu bytes) differs from %s (%zu bytes): rebuild", r.body_len,
                 path, len);
    free(file);
    harness_resp_free(&r);

    const char *version = json_string_value(json_object_get(g_doc, "openapi"));
    assert_non_null(version);
    if (strncmp(version, "3.1.", 4) != 0)
        fail_msg("openapi is \"%s\", want 3.1.x", version);
    const char *info_version =
        json_string_value(json_object_get(json_object_get(g_doc, "info"), "version"));
    if (info_version == NULL || strcmp(info_version, CR_VERSION) != 0)
        fail_msg("info.version is \"%s\", the gateway is %s", info_version ? info_version : "",
                 CR_VERSION);
    json_t *servers = json_object_get(g_doc, "servers");
    assert_true(json_array_size(servers) >= 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(servers, 0), "url")), "/");
    /* Both ways of presenting a key. */
    json_t *schemes = json_object_get(json_object_get(g_doc, "components"), "securitySchemes");
    bool api_key = false, bearer = false;
    const char *name;
    json_t *s;
    json_object_foreach(schemes, name, s)
    {
        const char *type = json_string_value(json_object_get(s, "type"));
        if (type && strcmp(type, "apiKey") == 0 &&
            strcmp(json_string_value(json_object_get(s, "in")), "header") == 0 &&
            strcasecmp(json_string_value(json_object_get(s, "name")), "X-API-Key") == 0)
            api_key = true;
        if (type && strcmp(type, "http") == 0 &&
            strcasecmp(json_string_value(json_object_get(s, "scheme")), "bearer") == 0)
            bearer = true;
    }
    assert_true(api_key);
    assert_true(bearer);
}

/* ---------------------------------------------------------------------------------------------
 * Routes <-> paths
 * ------------------------------------------------------------------------------------------- */

/* Is the string s in the JSON array arr? */
static bool has_string(const json_t *arr, const char *s)
{
    if (s == NULL)
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

/* A documented operation agrees with its route on authentication and scope. */
static int check_auth(const route_t *rt, json_t *op)
{
    int bad = 0;
    json_t *sec = json_object_get(op, "security");
    if (sec == NULL)
        sec = json_object_get(g_doc, "security");
    json_t *scopes = json_object_get(op, "x-required-scopes");
    if (!json_is_array(scopes)) {
        print_error("%s %s: no x-required-scopes array\n", rt->method, rt->path);
        return 1;
    }
    if (rt->auth == ROUTE_AUTH_NONE) {
        if (json_array_size(sec) != 0 || json_array_size(scopes) != 0) {
            print_error("%s %s takes no key, but the document asks for one\n", rt->method,
                        rt->path);
            bad++;
        }
        return bad;
    }
    if (json_array_size(sec) == 0) {
        print_error("%s %s needs an API key, but the document says security: []\n", rt->method,
                    rt->path);
        return bad + 1;
    }
    /* Each alternative (X-API-Key, Bearer) lists the same scopes as x-required-scopes. */
    size_t i;
    json_t *req;
    json_array_foreach(sec, i, req)
    {
        const char *scheme;
        json_t *list;
        json_object_foreach(req, scheme, list)
        {
            if (!json_equal(list, scopes)) {
                print_error("%s %s: security %s lists other scopes than x-required-scopes\n",
                            rt->method, rt->path, scheme);
                bad++;
            }
        }
    }
    const char *want = cfg_scope_name(rt->scope);
    if (rt->scope == 0
            ? json_array_size(scopes) != 0
            : (json_array_size(scopes) != 1 || want == NULL || !has_string(scopes, want))) {
        char *got = json_dumps(scopes, JSON_COMPACT);
        print_error("%s %s: route scope %s, document x-required-scopes %s\n", rt->method, rt->path,
                    want ? want : "(any key)", got);
        free(got);
        bad++;
    }
    const char *desc = json_string_value(json_object_get(op, "description"));
    if (want != NULL && (desc == NULL || strstr(desc, want) == NULL)) {
        print_error("%s %s: the description does not name the scope %s\n", rt->method, rt->path,
                    want);
        bad++;
    }
    return bad;
}

/* Responses every operation documents, by the route's nature. */
static int check_responses(const route_t *rt, json_t *op)
{
    json_t *responses = json_object_get(op, "responses");
    int bad = 0;
    const char *always[] = {"200", "400", "405", "408", "414", "431", "503"};
    const char *keyed[] = {"401", "403", "429"};
    const char *posted[] = {"411", "413"};
    const char *mutation[] = {"409", "415", "422"};
    struct {
        const char *const *codes;
        size_t n;
        bool applies;
    } sets[] = {
        {always, sizeof always / sizeof always[0], true},
        {keyed, sizeof keyed / sizeof keyed[0], rt->auth != ROUTE_AUTH_NONE},
        {posted, sizeof posted / sizeof posted[0], strcmp(rt->method, "POST") == 0},
        {mutation, sizeof mutation / sizeof mutation[0],
         strncmp(rt->path, "/v1/order/", 10) == 0 && strcmp(rt->method, "POST") == 0},
    };
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        for (size_t i = 0; sets[s].applies && i < sets[s].n; i++) {
            if (json_object_get(responses, sets[s].codes[i]) == NULL) {
                print_error("%s %s: response %s is not documented\n", rt->method, rt->path,
                            sets[s].codes[i]);
                bad++;
            }
        }
    }
    /* Every error is {"detail": ...}; 503 says when to come back. */
    const char *code;
    json_t *resp;
    json_object_foreach(responses, code, resp)
    {
        resp = deref(resp);
        if (code[0] < '4')
            continue;
        json_t *schema = deref(json_object_get(
            json_object_get(json_object_get(resp, "content"), "application/json"), "schema"));
        if (!has_string(json_object_get(schema, "required"), "detail")) {
            print_error("%s %s: response %s is not a {\"detail\": ...} body\n", rt->method,
                        rt->path, code);
            bad++;
        }
        if (strcmp(code, "503") == 0 &&
            json_object_get(json_object_get(resp, "headers"), "Retry-After") == NULL) {
            print_error("%s %s: 503 without Retry-After\n", rt->method, rt->path);
            bad++;
        }
    }
    return bad;
}

static void test_every_route_documented(void **state)
{
    (void)state;
    size_t n;
    const route_t *routes = route_table(&n);
    assert_true(n > 0);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const route_t *rt = &routes[i];
        const char *dp = doc_path_for(rt->path);
        char m[16];
        lower(rt->method, m, sizeof m);
        json_t *op = dp ? operation(dp, m) : NULL;
        if (op == NULL) {
            print_error("route %s %s is not in the document\n", rt->method, rt->path);
            bad++;
            continue;
        }
        bad += check_auth(rt, op);
        bad += check_responses(rt, op);
    }
    if (bad)
        fail_msg("%d problem(s) between route_table() and the document (listed above)", bad);
}

static void test_every_path_routed(void **state)
{
    (void)state;
    static const char *const methods[] = {"get",  "put",     "post",  "delete",
                                          "head", "options", "patch", "trace"};
    size_t n;
    const route_t *routes = route_table(&n);
    int bad = 0, ops = 0;
    const char *dp;
    json_t *item;
    json_object_foreach(json_object_get(g_doc, "paths"), dp, item)
    {
        char want[256];
        normalise_path(dp, want, sizeof want);
        for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
            if (json_object_get(item, methods[k]) == NULL)
                continue;
            ops++;
            bool found = false;
            for (size_t i = 0; i < n && !found; i++) {
                char have[256], m[16];
                normalise_path(routes[i].path, have, sizeof have);
                lower(routes[i].method, m, sizeof m);
                found = strcmp(have, want) == 0 && strcmp(m, methods[k]) == 0;
            }
            /* The matcher agrees: a concrete path (ids filled in) reaches a route. */
            char concrete[256] = "", param[64];
            size_t len = 0;
            for (const char *p = dp; *p && len + 30 < sizeof concrete; p++) {
                if (*p == '{') {
                    len += (size_t)snprintf(concrete + len, sizeof concrete - len, "%s",
                                            "64b7cf5a86d9755df3a6c501");
                    p = strchr(p, '}');
                    if (p == NULL)
                        break;
                } else {
                    concrete[len++] = *p;
                    concrete[len] = '\0';
                }
            }
            char upper[16];
            size_t u = 0;
            for (; methods[k][u] && u + 1 < sizeof upper; u++)
                upper[u] = (char)toupper((unsigned char)methods[k][u]);
            upper[u] = '\0';
            int status = 0;
            const char *allow;
            bool matches =
                route_match(upper, concrete, param, sizeof param, &status, &allow) != NULL;
            if (!found) {
                print_error("documented %s %s is not in route_table()\n", upper, dp);
                bad++;
            } else if (!matches) {
                print_error("documented %s %s: route_match(\"%s\") answers %d\n", upper, dp,
                            concrete, status);
                bad++;
            }
        }
    }
    if ((size_t)ops != n)
        print_error("the document has %d operations, route_table() %zu routes\n", ops, n);
    if (bad || (size_t)ops != n)
        fail_msg("the document describes routes the gateway does not have (listed above)");
}

/* ---------------------------------------------------------------------------------------------
 * Mutation bodies: what the document says against what the gateway enforces
 * ------------------------------------------------------------------------------------------- */

static const char *const mutation_paths[] = {
    "/v1/order/cancel", "/v1/order/reset", "/v1/order/update_status", "/v1/order/create",
    "/v1/order/accept", "/v1/order/bol",   "/v1/order/drop",
};

static json_t *request_schema(const char *path)
{
    json_t *op = operation(path, "post");
    json_t *body = deref(json_object_get(op, "requestBody"));
    json_t *schema = json_object_get(
        json_object_get(json_object_get(body, "content"), "application/json"), "schema");
    if (schema == NULL)
        fail_msg("POST %s: no application/json request schema", path);
    if (!json_is_true(json_object_get(body, "required")))
        fail_msg("POST %s: requestBody is not required (an empty body is a 422)", path);
    return schema;
}

/*
 * Collect the constraints the schema states, by field path ("lines.0.product.source_id"; "0" is
 * an array item), into rules: {path: {keyword: value}}. $ref, allOf, anyOf and oneOf are all
 * followed (anyOf branches name the at-least-one rules; their minLength is not a length limit,
 * so minLength is not collected). Two places stating different values for one field and keyword
 * are a contradiction in the document.
 */
static void collect_rules(json_t *schema, const char *path, json_t *rules, int depth)
{
    static const char *const keywords[] = {"maxLength",        "pattern",  "minimum",
                                           "exclusiveMinimum", "minItems", "enum"};
    if (depth > 12)
        fail_msg("schema nesting too deep at %s", path);
    schema = deref(schema);
    if (!json_is_object(schema))
        return;
    for (size_t k = 0; path[0] && k < sizeof keywords / sizeof keywords[0]; k++) {
        json_t *v = json_object_get(schema, keywords[k]);
        if (v == NULL)
            continue;
        json_t *r = json_object_get(rules, path);
        if (r == NULL) {
            r = json_object();
            json_object_set_new(rules, path, r);
        }
        json_t *prev = json_object_get(r, keywords[k]);
        if (prev != NULL && !json_equal(prev, v))
            fail_msg("the document gives %s two different %s values", path, keywords[k]);
        json_object_set(r, keywords[k], v);
    }
    char sub[256];
    const char *name;
    json_t *prop;
    json_object_foreach(json_object_get(schema, "properties"), name, prop)
    {
        snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", name);
        collect_rules(prop, sub, rules, depth + 1);
    }
    json_t *items = json_object_get(schema, "items");
    if (items != NULL) {
        snprintf(sub, sizeof sub, "%s%s0", path, path[0] ? "." : "");
        collect_rules(items, sub, rules, depth + 1);
    }
    static const char *const combiners[] = {"allOf", "anyOf", "oneOf"};
    for (size_t c = 0; c < 3; c++) {
        size_t i;
        json_t *branch;
        json_array_foreach(json_object_get(schema, combiners[c]), i, branch)
            collect_rules(branch, path, rules, depth + 1);
    }
}

static bool is_index(const char *seg)
{
    return seg[0] != '\0' && strspn(seg, "0123456789") == strlen(seg);
}

/* A body holding value (stolen) at field path, and the loc ["body", ...] of that field. */
static json_t *body_at(const char *path, json_t *value, json_t **loc)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", path);
    char *segs[16];
    size_t n = 0;
    for (char *save = NULL, *s = strtok_r(copy, ".", &save); s && n < 16;
         s = strtok_r(NULL, ".", &save))
        segs[n++] = s;
    *loc = json_pack("[s]", "body");
    for (size_t i = 0; i < n; i++)
        json_array_append_new(*loc, is_index(segs[i]) ? json_integer(atoi(segs[i]))
                                                      : json_string(segs[i]));
    json_t *cur = value;
    for (size_t i = n; i-- > 0;) {
        if (is_index(segs[i]))
            cur = json_pack("[o]", cur); /* index 0 only: that is what collect_rules writes */
        else
            cur = json_pack("{s:o}", segs[i], cur);
    }
    return cur;
}

/* A string of n copies of the UTF-8 character ch (1 or 2 bytes). */
static json_t *string_of(size_t n, const char *ch)
{
    size_t w = strlen(ch);
    char *s = malloc(n * w + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * w, ch, w);
    s[n * w] = '\0';
    json_t *v = json_string(s);
    free(s);
    return v;
}

/* Problems found by the rule checks, printed as they come and counted. */
static int g_bad;

static void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    print_error("%s\n", buf);
    g_bad++;
}

/*
 * POST value at field; expect_type NULL: no error at the field's loc; else an error there of
 * that type whose ctx[ctx_key] equals ctx_want (when ctx_key is not NULL). Returns the entry
 * (a new reference) or NULL.
 */
static json_t *probe(const char *endpoint, const char *field, json_t *value,
                     const char *expect_type, const char *ctx_key, const json_t *ctx_want)
{
    json_t *loc;
    json_t *body = body_at(field, value, &loc);
    harness_resp_t r;
    post_422(endpoint, body, NULL, &r);
    json_t *e = error_at(&r, loc);
    char *shown = json_dumps(body, JSON_COMPACT);
    if (strlen(shown) > 120)
        strcpy(shown + 100, "...");
    if (expect_type == NULL && e != NULL) {
        bad("POST %s %s: the document allows it, the gateway says %s", endpoint, shown,
            json_string_value(json_object_get(e, "msg")));
    } else if (expect_type != NULL && e == NULL) {
        bad("POST %s %s: the document refuses it (%s), the gateway accepts %s", endpoint, shown,
            expect_type, field);
    } else if (expect_type != NULL) {
        const char *type = json_string_value(json_object_get(e, "type"));
        if (type == NULL || strcmp(type, expect_type) != 0)
            bad("POST %s %s: error type %s, want %s", endpoint, shown, type ? type : "(none)",
                expect_type);
        json_t *got = json_object_get(json_object_get(e, "ctx"), ctx_key ? ctx_key : "");
        if (ctx_key != NULL && !json_equal(got, ctx_want)) {
            char *g = got ? json_dumps(got, JSON_ENCODE_ANY) : strdup("(none)");
            char *w = json_dumps(ctx_want, JSON_ENCODE_ANY);
            bad("POST %s %s: the gateway's limit is ctx.%s=%s, the document's %s", endpoint, shown,
                ctx_key, g, w);
            free(g);
            free(w);
        }
    }
    json_t *out = e ? json_incref(e) : NULL;
    free(shown);
    json_decref(body);
    json_decref(loc);
    harness_resp_free(&r);
    return out;
}

/* 'x' and 'é' (two bytes, one character): limits count characters, in JSON Schema too. */
static void check_max_length(const char *endpoint, const char *field, json_int_t max)
{
    static const char *const chars[] = {"x", "\xc3\xa9"};
    json_t *want = json_integer(max);
    for (size_t c = 0; c < 2; c++) {
        json_decref(probe(endpoint, field, string_of((size_t)max, chars[c]), NULL, NULL, NULL));
        json_decref(probe(endpoint, field, string_of((size_t)max + 1, chars[c]), "string_too_long",
                          "max_length", want));
    }
    json_decref(want);
}

static void check_pattern(const char *endpoint, const char *field, const char *pattern)
{
    if (strcmp(pattern, HEX24_PATTERN) != 0) {
        bad("%s %s: pattern %s has no sample here; add one to test_openapi.c", endpoint, field,
            pattern);
        return;
    }
    json_t *want = json_string(pattern);
    json_decref(probe(endpoint, field, json_string("64B7cf5a86d9755df3a6c501"), NULL, NULL, NULL));
    json_decref(probe(endpoint, field, json_string("64b7cf5a86d9755df3a6c50"),
                      "string_pattern_mismatch", "pattern", want));
    json_decref(probe(endpoint, field, json_string("64b7cf5a86d9755df3a6c50g"),
                      "string_pattern_mismatch", "pattern", want));
    json_decref(want);
}

/* The quoted values in pydantic's enum text "'a', 'b' or 'c'", as a JSON array. */
static json_t *quoted_values(const char *text)
{
    json_t *out = json_array();
    const char *p = text;
    while (p && (p = strchr(p, '\'')) != NULL) {
        const char *end = strchr(p + 1, '\'');
        if (end == NULL)
            break;
        json_array_append_new(out, json_stringn(p + 1, (size_t)(end - p - 1)));
        p = end + 1;
    }
    return out;
}

static void check_enum(const char *endpoint, const char *field, const json_t *values)
{
    size_t i;
    json_t *v;
    json_array_foreach(values, i, v)
        json_decref(probe(endpoint, field, json_deep_copy(v), NULL, NULL, NULL));
    /* Anything else is refused, and the gateway lists exactly the document's values. */
    static const char *const others[] = {"no_progress", "COMPLETE", "", "__not_a_value__"};
    bool compared = false;
    for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
        json_t *other = json_string(others[k]);
        bool listed = false;
        json_array_foreach(values, i, v) listed = listed || json_equal(v, other);
        if (listed) {
            json_decref(other);
            continue;
        }
        json_t *e = probe(endpoint, field, other, "enum", NULL, NULL);
        if (e == NULL)
            continue;
        if (compared) { /* the list was compared once already */
            json_decref(e);
            continue;
        }
        compared = true;
        json_t *expected = quoted_values(
            json_string_value(json_object_get(json_object_get(e, "ctx"), "expected")));
        bool same = json_array_size(expected) == json_array_size(values);
        json_array_foreach(values, i, v) same = same && has_string(expected, json_string_value(v));
        if (!same) {
            char *a = json_dumps(expected, JSON_COMPACT), *b = json_dumps(values, JSON_COMPACT);
            bad("POST %s %s: the gateway accepts %s, the document lists %s", endpoint, field, a, b);
            free(a);
            free(b);
        }
        json_decref(expected);
        json_decref(e);
    }
}

static void check_minimum(const char *endpoint, const char *field, const json_t *min,
                          bool exclusive)
{
    double m = json_number_value(min);
    if (exclusive) {
        json_decref(probe(endpoint, field, json_real(m), "greater_than", "gt", min));
        json_decref(probe(endpoint, field, json_real(m + 0.5), NULL, NULL, NULL));
    } else {
        json_decref(probe(endpoint, field, json_real(m), NULL, NULL, NULL));
        json_decref(probe(endpoint, field, json_real(m - 0.5), "greater_than_equal", "ge", min));
    }
}

static void check_min_items(const char *endpoint, const char *field, const json_t *min)
{
    json_decref(probe(endpoint, field, json_array(), "too_short", "min_length", min));
    json_t *one = json_array();
    for (json_int_t i = 0; i < json_integer_value(min); i++)
        json_array_append_new(one, json_object());
    json_decref(probe(endpoint, field, one, NULL, NULL, NULL));
}

static void test_mutation_field_rules(void **state)
{
    (void)state;
    g_bad = 0;
    int checked = 0, max_lengths = 0;
    for (size_t m = 0; m < sizeof mutation_paths / sizeof mutation_paths[0]; m++) {
        const char *ep = mutation_paths[m];
        json_t *rules = json_object();
        collect_rules(request_schema(ep), "", rules, 0);
        const char *field;
        json_t *r;
        json_object_foreach(rules, field, r)
        {
            json_t *v;
            if ((v = json_object_get(r, "maxLength")) != NULL) {
                check_max_length(ep, field, json_integer_value(v));
                max_lengths++;
            }
            if ((v = json_object_get(r, "pattern")) != NULL)
                check_pattern(ep, field, json_string_value(v));
            if ((v = json_object_get(r, "enum")) != NULL)
                check_enum(ep, field, v);
            if ((v = json_object_get(r, "minimum")) != NULL)
                check_minimum(ep, field, v, false);
            if ((v = json_object_get(r, "exclusiveMinimum")) != NULL)
                check_minimum(ep, field, v, true);
            if ((v = json_object_get(r, "minItems")) != NULL)
                check_min_items(ep, field, v);
            checked++;
        }
        json_decref(rules);
    }
    print_message("checked %d constrained fields (%d maxLength) across %zu mutations\n", checked,
                  max_lengths, sizeof mutation_paths / sizeof mutation_paths[0]);
    /* The walk must have found the limits SPEC names; an empty walk proves nothing. */
    assert_true(max_lengths >= 20);
    if (g_bad)
        fail_msg("%d disagreement(s) between the document and the gateway (listed above)", g_bad);
}

/* The "required" of a schema: its own and its allOf branches' (not anyOf: those are choices). */
static void required_of(json_t *schema, json_t *out)
{
    schema = deref(schema);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(schema, "required"), i, v)
    {
        if (!has_string(out, json_string_value(v)))
            json_array_append(out, v);
    }
    json_array_foreach(json_object_get(schema, "allOf"), i, v) required_of(v, out);
}

/* The fields the gateway reports missing directly under loc prefix (["body"] or a line). */
static json_t *missing_under(const harness_resp_t *r, const json_t *prefix)
{
    json_t *out = json_array();
    size_t i, k, np = json_array_size(prefix);
    json_t *e;
    json_array_foreach(json_object_get(r->json, "detail"), i, e)
    {
        json_t *loc = json_object_get(e, "loc");
        const char *type = json_string_value(json_object_get(e, "type"));
        if (type == NULL || strcmp(type, "missing") != 0 || json_array_size(loc) != np + 1)
            continue;
        bool under = true;
        for (k = 0; k < np && under; k++)
            under = json_equal(json_array_get(loc, k), json_array_get(prefix, k));
        if (under)
            json_array_append(out, json_array_get(loc, np));
    }
    return out;
}

static bool same_set(const json_t *a, const json_t *b)
{
    if (json_array_size(a) != json_array_size(b))
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!has_string(b, json_string_value(v)))
            return false;
    }
    return true;
}

static void compare_required(const char *what, json_t *doc_required, json_t *server_missing)
{
    if (!same_set(doc_required, server_missing)) {
        char *a = json_dumps(doc_required, JSON_COMPACT);
        char *b = json_dumps(server_missing, JSON_COMPACT);
        bad("%s: the document requires %s, the gateway reports missing %s", what, a, b);
        free(a);
        free(b);
    }
}

static void test_required_fields(void **state)
{
    (void)state;
    g_bad = 0;
    json_t *body_loc = json_pack("[s]", "body");
    for (size_t m = 0; m < sizeof mutation_paths / sizeof mutation_paths[0]; m++) {
        const char *ep = mutation_paths[m];
        json_t *schema = request_schema(ep);
        json_t *req = json_array();
        required_of(schema, req);
        harness_resp_t r;
        json_t *empty = json_object();
        post_422(ep, empty, NULL, &r);
        json_t *miss = missing_under(&r, body_loc);
        compare_required(ep, req, miss);
        /* The header the document marks required is reported missing the same way. */
        json_t *hloc = json_pack("[ss]", "header", "x-dest-tenant-name");
        json_t *he = error_at(&r, hloc);
        if (he == NULL || strcmp(json_string_value(json_object_get(he, "type")), "missing") != 0)
            bad("POST %s without X-Dest-Tenant-Name: no missing-header error", ep);
        json_decref(hloc);
        json_decref(miss);
        harness_resp_free(&r);
        json_decref(empty);

        /* Items of a required list (create's lines): their own required fields. */
        json_t *lines = json_object_get(json_object_get(deref(schema), "properties"), "lines");
        if (lines != NULL) {
            json_t *item_req = json_array();
            required_of(json_object_get(deref(lines), "items"), item_req);
            json_t *body = json_pack("{s:[{}]}", "lines");
            post_422(ep, body, NULL, &r);
            json_t *prefix = json_pack("[s,s,i]", "body", "lines", 0);
            json_t *lmiss = missing_under(&r, prefix);
            compare_required("create lines[0]", item_req, lmiss);
            json_decref(lmiss);
            json_decref(prefix);
            json_decref(body);
            json_decref(item_req);
            harness_resp_free(&r);
        }
        json_decref(req);
    }
    json_decref(body_loc);

    /* update_status: location is required unless progress_status is "complete"; the document
     * says so with an anyOf branch that requires location. */
    json_t *us = deref(request_schema("/v1/order/update_status"));
    bool branch = false;
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(us, "anyOf"), i, b) branch =
        branch || has_string(json_object_get(deref(b), "required"), "location");
    if (!branch)
        bad("UpdateStatusRequest: no anyOf branch requiring location");
    json_t *loc = json_pack("[ss]", "body", "location");
    static const struct {
        const char *status;
        bool required;
    } cases[] = {{"complete", false}, {"assigned", true}, {"dropping", true}};
    for (size_t k = 0; k < 3; k++) {
        harness_resp_t r;
        json_t *body = json_pack("{s:s}", "progress_status", cases[k].status);
        post_422("/v1/order/update_status", body, NULL, &r);
        if ((error_at(&r, loc) != NULL) != cases[k].required)
            bad("update_status with progress_status %s: location %s by the gateway",
                cases[k].status, cases[k].required ? "not required" : "required");
        json_decref(body);
        harness_resp_free(&r);
    }
    json_decref(loc);
    if (g_bad)
        fail_msg("%d disagreement(s) about required fields (listed above)", g_bad);
}

static void test_idempotency_key_limit(void **state)
{
    (void)state;
    g_bad = 0;
    json_t *p = json_object_get(json_object_get(json_object_get(g_doc, "components"), "parameters"),
                                "IdempotencyKey");
    json_t *schema = json_object_get(deref(p), "schema");
    json_int_t max = json_integer_value(json_object_get(schema, "maxLength"));
    assert_string_equal(json_string_value(json_object_get(deref(p), "name")), "Idempotency-Key");
    assert_true(max > 0 && max < 1000);
    /* Every mutation takes it. */
    for (size_t m = 0; m < sizeof mutation_paths / sizeof mutation_paths[0]; m++) {
        bool listed = false;
        size_t i;
        json_t *prm;
        json_array_foreach(json_object_get(operation(mutation_paths[m], "post"), "parameters"), i,
                           prm) listed = listed || deref(prm) == deref(p);
        if (!listed)
            bad("POST %s does not document Idempotency-Key", mutation_paths[m]);
    }
    json_t *loc = json_pack("[ss]", "header", "idempotency-key");
    json_t *body = json_object();
    char key[1024];
    for (int extra = 0; extra <= 1; extra++) {
        memset(key, 'k', (size_t)max + (size_t)extra);
        key[max + extra] = '\0';
        harness_resp_t r;
        post_422("/v1/order/cancel", body, key, &r);
        json_t *e = error_at(&r, loc);
        if (extra == 0 && e != NULL)
            bad("an Idempotency-Key of %lld characters is refused", (long long)max);
        if (extra == 1 && (e == NULL || json_integer_value(json_object_get(
                                            json_object_get(e, "ctx"), "max_length")) != max))
            bad("an Idempotency-Key of %lld characters is not refused with max_length %lld",
                (long long)max + 1, (long long)max);
        harness_resp_free(&r);
    }
    json_decref(body);
    json_decref(loc);
    if (g_bad)
        fail_msg("%d disagreement(s) about Idempotency-Key (listed above)", g_bad);
}

/* Nothing this file sent was stored: every request was a 422. */
static void test_nothing_stored(void **state)
{
    (void)state;
    assert_int_equal(harness_saga_count(&g_redis), 0);
}

/* ---------------------------------------------------------------------------------------------
 * The linter
 * ------------------------------------------------------------------------------------------- */

static void test_redocly_lint(void **state)
{
    (void)state;
    char bin[PATH_MAX + 64];
    snprintf(bin, sizeof bin, "%s/tests/openapi/node_modules/.bin/redocly", g_root);
    struct stat st;
    if (stat(bin, &st) != 0)
        fail_msg("the OpenAPI linter is not installed (%s is missing): run "
                 "`npm ci --prefix tests/openapi` in %s (needs Node.js >= 20.19)",
                 bin, g_root);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1 "
             "'%s' lint --config tests/openapi/redocly.yaml --format=stylish src/openapi.json "
             "2>&1",
             g_root, bin);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[4096];
    size_t errors = 0, warnings = 0;
    char *out = NULL;
    size_t out_len = 0;
    bool report = false;
    while (fgets(line, sizeof line, p) != NULL) {
        /* Keep the report (from "validating ..." on), not the banners Node or npm print. */
        report = report || strncmp(line, "validating ", 11) == 0;
        if (!report)
            continue;
        size_t n = strlen(line);
        char *grown = realloc(out, out_len + n + 1);
        assert_non_null(grown);
        out = grown;
        memcpy(out + out_len, line, n + 1);
        out_len += n;
        /* stylish: "  12:3  error    rule-id  message" */
        if (strstr(line, "  error  ") != NULL)
            errors++;
        if (strstr(line, "  warning  ") != NULL)
            warnings++;
    }
    int rc = pclose(p);
    int exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    /* cmocka's print functions cut long text: the report goes to stderr whole. */
    if (exit_code != 0 || errors > 0 || warnings > 0) {
        fprintf(stderr, "---- redocly lint (%s):\n%s----\n", cmd, out ? out : "(no report)\n");
        fflush(stderr);
    }
    if (exit_code != 0 || errors > 0)
        fail_msg("redocly lint src/openapi.json: exit %d, %zu error(s), %zu warning(s)", exit_code,
                 errors, warnings);
    print_message("redocly lint src/openapi.json: no errors, %zu warning(s)\n", warnings);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_served_as_built),        cmocka_unit_test(test_redocly_lint),
        cmocka_unit_test(test_every_route_documented), cmocka_unit_test(test_every_path_routed),
        cmocka_unit_test(test_mutation_field_rules),   cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_idempotency_key_limit),  cmocka_unit_test(test_nothing_stored),
    };
    int failed = cmocka_run_group_tests_name("openapi", tests, group_setup, group_teardown);
    /* cmocka 1.1 reports a failed group teardown but still exits 0. */
    return failed != 0 || g_teardown_failed ? 1 : 0;
}
