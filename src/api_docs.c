/*
 * api_docs.c - GET /openapi.json: the OpenAPI 3.1 document of this API.
 *
 * The document is src/openapi.json, compiled into the binary at build time (cmake/embed.cmake
 * turns it into the byte array below), so the answer always describes the running version and
 * needs no file at run time. tests/integration/test_openapi.c lints it and checks it against the
 * route table and the validation rules.
 *
 * Owns nothing. Must not: parse or rebuild the document per request (its bytes are served as
 * they are), or read a file after start-up.
 */
#include "api.h"

#include <stddef.h>

/* Defined in the generated ${CMAKE_BINARY_DIR}/generated/cr_openapi_json.c. */
extern const unsigned char cr_openapi_json[];
extern const size_t cr_openapi_json_len;

void api_openapi(struct app *app, httpd_req_t *req, const route_t *route,
                 const struct auth_ctx *auth)
{
    (void)app;
    (void)route;
    (void)auth;
    httpd_respond(req, 200, "application/json", NULL, (const char *)cr_openapi_json,
                  cr_openapi_json_len);
}
