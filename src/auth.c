/*
 * auth.c - API keys, scopes and tenant headers (see auth.h).
 *
 * Keys are stored only as SHA-256 hashes. The presented key is hashed and compared with every
 * configured hash using CRYPTO_memcmp, without stopping at the first match, so the time taken
 * says nothing about which key (or which prefix) matched.
 */
#include "auth.h"

#include "util/crypto.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char NOT_AUTHENTICATED[] = "Not authenticated";

const cfg_api_key_t *auth_find_key(const cfg_t *cfg, const char *key, size_t len,
                                   const cfg_tenant_t **tenant)
{
    uint8_t digest[32];
    crypto_sha256(key, len, digest);
    const cfg_api_key_t *found = NULL;
    const cfg_tenant_t *found_tenant = NULL;
    for (size_t t = 0; t < cfg->n_tenants; t++) {
        const cfg_tenant_t *ten = &cfg->tenants[t];
        for (size_t k = 0; k < ten->n_keys; k++) {
            if (crypto_equal_ct(digest, ten->keys[k].sha256, 32) && found == NULL) {
                found = &ten->keys[k];
                found_tenant = ten;
            }
        }
    }
    if (tenant)
        *tenant = found_tenant;
    return found;
}

/* The bearer token of an Authorization header, or NULL for another scheme. */
static const char *bearer_token(const char *v, size_t n, size_t *len)
{
    if (n < 7 || strncasecmp(v, "bearer ", 7) != 0)
        return NULL;
    size_t i = 7;
    while (i < n && v[i] == ' ')
        i++;
    *len = n - i;
    return *len ? v + i : NULL;
}

int auth_check(const cfg_t *cfg, const httpd_req_t *req, unsigned scope, auth_ctx_t *out,
               const char **detail, char *detail_buf, size_t detail_size)
{
    memset(out, 0, sizeof *out);
    *detail = NOT_AUTHENTICATED;

    size_t klen = 0, alen = 0, blen = 0;
    int kcount = 0, acount = 0;
    const char *key = httpd_req_header(req, "x-api-key", &klen, &kcount);
    const char *authz = httpd_req_header(req, "authorization", &alen, &acount);
    const char *bearer = authz ? bearer_token(authz, alen, &blen) : NULL;
    if (kcount > 1 || acount > 1)
        return 401;
    if (key && klen == 0)
        return 401;

    const cfg_tenant_t *tenant = NULL;
    const cfg_api_key_t *k = NULL;
    if (key) {
        k = auth_find_key(cfg, key, klen, &tenant);
        if (bearer) {
            const cfg_tenant_t *t2 = NULL;
            const cfg_api_key_t *k2 = auth_find_key(cfg, bearer, blen, &t2);
            if (k2 != k)
                return 401; /* two credentials that disagree: refuse rather than pick one */
        }
    } else if (bearer) {
        k = auth_find_key(cfg, bearer, blen, &tenant);
    }
    if (k == NULL)
        return 401;

    if (scope && (k->scopes & scope) == 0) {
        snprintf(detail_buf, detail_size, "Missing scope %s", cfg_scope_name(scope));
        *detail = detail_buf;
        return 403;
    }

    size_t tlen;
    const char *tname = httpd_req_header(req, "x-tenant-name", &tlen, NULL);
    if (tname && (strlen(tenant->name) != tlen || memcmp(tname, tenant->name, tlen) != 0)) {
        *detail = "X-Tenant-Name does not match the API key's tenant";
        return 403;
    }

    size_t ilen;
    int icount;
    const char *inst = httpd_req_header(req, "x-origin-instance-name", &ilen, &icount);
    if (inst) {
        bool ok = icount == 1 && cfg_tenant_has_instance(tenant, inst, ilen) &&
                  (k->instance == NULL ||
                   (strlen(k->instance) == ilen && memcmp(k->instance, inst, ilen) == 0));
        if (!ok) {
            *detail = "X-Origin-Instance-Name is not an instance of this tenant or API key";
            return 403;
        }
        out->instance = inst;
        out->instance_len = ilen;
    } else if (k->instance) {
        out->instance = k->instance;
        out->instance_len = strlen(k->instance);
    }
    out->tenant = tenant;
    out->key = k;
    *detail = NULL;
    return 0;
}
