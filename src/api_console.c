/*
 * api_console.c - GET /console and /console/{asset}: the operator console, a static page (HTML,
 * CSS and one script) that reads the admin API (/v1/admin/...) with a key the operator types in.
 *
 * The three files live in src/console/ and are compiled into the binary at build time
 * (cmake/embed.cmake turns each into a byte array), so the page always matches the running
 * version and needs no file at run time. The page itself needs no key to load: it holds no data,
 * and every call it makes goes to the admin API, which checks the key and its admin scope.
 *
 * Every answer carries a Content-Security-Policy that allows nothing but this origin (no inline
 * script or style, no other host, no framing), X-Content-Type-Options: nosniff and
 * Cache-Control: no-store. tests/integration/test_console.c and tests/console/ (a real browser)
 * check it.
 *
 * Owns nothing. Must not: read a file after start-up, build a body per request (the embedded
 * bytes are served as they are), or serve anything but the three known files.
 */
#include "api.h"

#include <stddef.h>
#include <string.h>

/* Defined in the generated ${CMAKE_BINARY_DIR}/generated/cr_console_*.c. */
extern const unsigned char cr_console_html[];
extern const size_t cr_console_html_len;
extern const unsigned char cr_console_js[];
extern const size_t cr_console_js_len;
extern const unsigned char cr_console_css[];
extern const size_t cr_console_css_len;

#define CONSOLE_HEADERS                                                                            \
    "Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:; "      \
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'\r\n"                              \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Cache-Control: no-store\r\n"                                                                  \
    "Referrer-Policy: no-referrer\r\n"

typedef struct console_asset {
    const char *name; /* the {id} segment: "" for /console itself */
    const char *content_type;
    const unsigned char *data;
    const size_t *len;
} console_asset_t;

static const console_asset_t assets[] = {
    {"", "text/html; charset=utf-8", cr_console_html, &cr_console_html_len},
    {"console.js", "text/javascript; charset=utf-8", cr_console_js, &cr_console_js_len},
    {"console.css", "text/css; charset=utf-8", cr_console_css, &cr_console_css_len},
};

void api_console(struct app *app, httpd_req_t *req, const route_t *route,
                 const struct auth_ctx *auth)
{
    (void)app;
    (void)auth;
    /* "/console" has no {id}; "/console/{id}" fills route_param with the asset's name. */
    const char *name = strchr(route->path, '{') ? req->route_param : "";
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
        if (strcmp(name, assets[i].name) == 0) {
            httpd_respond(req, 200, assets[i].content_type, CONSOLE_HEADERS,
                          (const char *)assets[i].data, *assets[i].len);
            return;
        }
    }
    httpd_respond_detail(req, 404, "Not Found", CONSOLE_HEADERS);
}
