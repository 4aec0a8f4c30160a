/*
 * router.h - the single route table: method, path, scope, handler.
 *
 * Owns nothing. The table is static; matching compares the raw path (no percent-decoding, so
 * "%2e%2e" never reaches a handler as "..") and "{id}" segments match one non-empty segment.
 */
#ifndef CR_ROUTER_H
#define CR_ROUTER_H

#include "httpd.h"

struct app;

typedef enum {
    ROUTE_AUTH_NONE = 0, /* health probes */
    ROUTE_AUTH_KEY,      /* an API key with route->scope */
} route_auth_t;

typedef struct route route_t;
struct auth_ctx;
/* auth is NULL for ROUTE_AUTH_NONE routes; it is valid only during the call. */
typedef void (*route_handler_fn)(struct app *app, httpd_req_t *req, const route_t *route,
                                 const struct auth_ctx *auth);

struct route {
    const char *method;
    const char *path; /* "/v1/saga/{id}" style */
    route_auth_t auth;
    unsigned scope;   /* CFG_SCOPE_* required (0: any authenticated key) */
    route_handler_fn handler;
    int arg;          /* handler-specific (the mutation kind) */
};

/*
 * Find the route for method and path. Returns it, or NULL: then *status is 404 (no such path)
 * or 405 (path known, method not), and for 405 *allow lists the allowed methods ("POST").
 * Path parameters ("{id}") are copied into param (NUL-terminated, at most param_size-1 bytes;
 * longer segments do not match).
 */
const route_t *route_match(const char *method, const char *path, char *param, size_t param_size,
                           int *status, const char **allow);

/* The table, for documentation checks (OpenAPI); *n gets its length. */
const route_t *route_table(size_t *n);

#endif
