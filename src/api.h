/*
 * api.h - route handlers: the mutations (api_mutation.c) and the reads and probes (api_read.c).
 *
 * Each handler answers its request exactly once (httpd_respond), possibly after an asynchronous
 * Redis round trip. Authentication and scope are checked by app.c before a handler runs.
 */
#ifndef CR_API_H
#define CR_API_H

#include "router.h"

#include <hiredis/hiredis.h>
#include <jansson.h>

struct auth_ctx;
struct store;
void api_mutation(struct app *app, httpd_req_t *req, const route_t *route,
                  const struct auth_ctx *auth);
void api_saga_get(struct app *app, httpd_req_t *req, const route_t *route,
                  const struct auth_ctx *auth);
void api_saga_retry(struct app *app, httpd_req_t *req, const route_t *route,
                    const struct auth_ctx *auth);
void api_order_get(struct app *app, httpd_req_t *req, const route_t *route,
                   const struct auth_ctx *auth);
void api_order_logs(struct app *app, httpd_req_t *req, const route_t *route,
                    const struct auth_ctx *auth);
void api_admin_reload(struct app *app, httpd_req_t *req, const route_t *route,
                      const struct auth_ctx *auth);
void api_metrics(struct app *app, httpd_req_t *req, const route_t *route,
                 const struct auth_ctx *auth);
void api_openapi(struct app *app, httpd_req_t *req, const route_t *route,
                 const struct auth_ctx *auth);
/* GET /console and /console/{id}: the operator console's embedded files (api_console.c). */
void api_console(struct app *app, httpd_req_t *req, const route_t *route,
                 const struct auth_ctx *auth);
void api_admin_sagas(struct app *app, httpd_req_t *req, const route_t *route,
                     const struct auth_ctx *auth);
void api_admin_counts(struct app *app, httpd_req_t *req, const route_t *route,
                      const struct auth_ctx *auth);
void api_admin_saga(struct app *app, httpd_req_t *req, const route_t *route,
                    const struct auth_ctx *auth);
void api_admin_retry(struct app *app, httpd_req_t *req, const route_t *route,
                     const struct auth_ctx *auth);
/* Register the admin scripts with the store (before store_start). */
void api_admin_init(struct store *store);
void api_healthz(struct app *app, httpd_req_t *req, const route_t *route,
                 const struct auth_ctx *auth);
void api_readyz(struct app *app, httpd_req_t *req, const route_t *route,
                const struct auth_ctx *auth);

struct store;
/* Register the read scripts with the store (before store_start). */
void api_read_init(struct store *store);

/* Answer 422 with {"detail": errors} (errors borrowed). */
void api_respond_422(httpd_req_t *req, const json_t *errors);
/* Answer with a JSON value (borrowed). */
void api_respond_json(httpd_req_t *req, int status, const json_t *body, const char *extra_headers);

/* The answer to a retry script's reply ({"ok"|"forbidden"|"conflict"|"missing", status}), for
 * POST /v1/saga/{id}/retry and the console's retry alike. */
void api_respond_retry(httpd_req_t *req, const char *saga_id, const redisReply *reply,
                       const char *err);

#endif
