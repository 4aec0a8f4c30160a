/*
 * router.c - the route table and its matcher (see router.h).
 */
#include "router.h"

#include "api.h"
#include "config.h"
#include "validate.h"

#include <string.h>

/* Matched in order, first match wins. The probes come first: a load balancer asks for them
 * most often, and they should not pay for a walk past every other route. */
static const route_t routes[] = {
    {"GET", "/healthz", ROUTE_AUTH_NONE, 0, api_healthz, 0},
    {"GET", "/readyz", ROUTE_AUTH_NONE, 0, api_readyz, 0},
    {"POST", "/v1/order/cancel", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_CANCEL, api_mutation, VAL_CANCEL},
    {"POST", "/v1/order/reset", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_RESET, api_mutation, VAL_RESET},
    {"POST", "/v1/order/update_status", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_UPDATE_STATUS, api_mutation,
     VAL_UPDATE_STATUS},
    {"POST", "/v1/order/create", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_CREATE, api_mutation, VAL_CREATE},
    {"POST", "/v1/order/accept", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_ACCEPT, api_mutation, VAL_ACCEPT},
    {"POST", "/v1/order/bol", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_EXECUTE, api_mutation, VAL_BOL},
    {"POST", "/v1/order/drop", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_EXECUTE, api_mutation, VAL_DROP},
    {"GET", "/v1/saga/{id}", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_READ, api_saga_get, 0},
    {"POST", "/v1/saga/{id}/retry", ROUTE_AUTH_KEY, 0, api_saga_retry, 0},
    {"GET", "/v1/order", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_READ, api_order_get, 0},
    {"GET", "/v1/order/logs", ROUTE_AUTH_KEY, CFG_SCOPE_ORDER_READ, api_order_logs, 0},
    {"GET", "/v1/admin/sagas", ROUTE_AUTH_KEY, CFG_SCOPE_ADMIN, api_admin_sagas, 0},
    {"GET", "/v1/admin/sagas/{id}", ROUTE_AUTH_KEY, CFG_SCOPE_ADMIN, api_admin_saga, 0},
    {"POST", "/v1/admin/sagas/{id}/retry", ROUTE_AUTH_KEY, CFG_SCOPE_ADMIN, api_admin_retry, 0},
    {"GET", "/v1/admin/counts", ROUTE_AUTH_KEY, CFG_SCOPE_ADMIN, api_admin_counts, 0},
    {"POST", "/v1/admin/reload", ROUTE_AUTH_KEY, CFG_SCOPE_ADMIN, api_admin_reload, 0},
    {"GET", "/console", ROUTE_AUTH_NONE, 0, api_console, 0},
    {"GET", "/console/{id}", ROUTE_AUTH_NONE, 0, api_console, 0},
    {"GET", "/metrics", ROUTE_AUTH_NONE, 0, api_metrics, 0},
    {"GET", "/openapi.json", ROUTE_AUTH_NONE, 0, api_openapi, 0},
};

const route_t *route_table(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* Does path match pattern? "{x}" matches one non-empty segment, copied into param. */
static bool path_matches(const char *pattern, const char *path, char *param, size_t param_size)
{
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *close = strchr(pattern, '}');
            const char *seg_end = strchr(path, '/');
            size_t seg_len = seg_end ? (size_t)(seg_end - path) : strlen(path);
            if (seg_len == 0 || seg_len >= param_size)
                return false;
            memcpy(param, path, seg_len);
            param[seg_len] = '\0';
            pattern = close + 1;
            path += seg_len;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

const route_t *route_match(const char *method, const char *path, char *param, size_t param_size,
                           int *status, const char **allow)
{
    bool path_known = false;
    *allow = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!path_matches(routes[i].path, path, param, param_size))
            continue;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
        path_known = true;
        *allow = routes[i].method;
    }
    *status = path_known ? 405 : 404;
    return NULL;
}
