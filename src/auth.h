/*
 * auth.h - who is calling: API key lookup by SHA-256 in constant time, scopes, and the
 * X-Tenant-Name / X-Origin-Instance-Name rules (SPEC section 2).
 *
 * Owns nothing; results point into the configuration the caller holds a reference to.
 * Must not: log or keep the key itself.
 */
#ifndef CR_AUTH_H
#define CR_AUTH_H

#include "config.h"
#include "httpd.h"

typedef struct auth_ctx {
    const cfg_tenant_t *tenant;
    const cfg_api_key_t *key;
    const char *instance; /* resolved origin instance, or NULL */
    size_t instance_len;
} auth_ctx_t;

/*
 * Authenticate req against cfg and check that the key carries scope (0: any). On success
 * returns 0 and fills out. On failure returns the HTTP status (401 or 403) and sets *detail to
 * the message for {"detail": ...} (a static string, or one written into detail_buf).
 *
 * The key comes from X-API-Key or "Authorization: Bearer". Two X-API-Key headers, two
 * Authorization headers, or both headers naming different keys are refused as ambiguous (401).
 */
int auth_check(const cfg_t *cfg, const httpd_req_t *req, unsigned scope, auth_ctx_t *out,
               const char **detail, char *detail_buf, size_t detail_size);

/* Find the configured key whose hash matches key (comparing every key in constant time). */
const cfg_api_key_t *auth_find_key(const cfg_t *cfg, const char *key, size_t len,
                                   const cfg_tenant_t **tenant);

#endif
