/*
 * intake.c - the durable intake write (see intake.h).
 */
#include "intake.h"

#include "store_keys.h"
#include "util/cr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * KEYS: stream, saga, history, idempotency (the saga key again when there is none)
 * ARGV: 1 saga_id, 2 type, 3 tenant, 4 fingerprint, 5 ttl_s, 6 response, 7 history_entry,
 *       8 dest, 9 order_id, 10 order_number, 11 order_json (create), 12 now_ms,
 *       13 has_idempotency ("1"/"0"), 14 retention_s (the order's saga index), then field,
 *       value, ... for the saga hash.
 * Returns {0, stream_id} stored, {1, first_response} repeat ("" when the record outlived its
 * saga), {2, ""} clash, {3, ""} create of an order number the tenant already has.
 * The idempotency check and the writes are one script, so two racing requests with the same
 * key cannot both create a saga.
 */
static store_script_t intake_script = {
    .name = "intake",
    .source =
        "local P = 'cr:{cr}:'\n"
        "local sid, stype, tenant = ARGV[1], ARGV[2], ARGV[3]\n"
        "if ARGV[13] == '1' then\n"
        "  local prev = redis.pcall('GET', KEYS[4])\n"
        "  if type(prev) == 'table' and prev.err then\n"
        "    -- a record of an older version (a hash)\n"
        "    local h = redis.call('HMGET', KEYS[4], 'fp', 'response')\n"
        "    prev = h[1] and (h[1] .. '\\n\\n' .. h[2]) or false\n"
        "  end\n"
        "  if prev then\n"
        "    if string.sub(prev, 1, #ARGV[4]) ~= ARGV[4] then return {2, ''} end\n"
        "    local nl = string.find(prev, '\\n', #ARGV[4] + 2, true)\n"
        "    local first = string.sub(prev, nl + 1)\n"
        "    if first == '' then\n"
        "      -- a compact record: the first answer is the saga's own copy\n"
        "      local psid = string.sub(prev, #ARGV[4] + 2, nl - 1)\n"
        "      first = redis.call('HGET', P .. 'saga:' .. psid, 'response') or ''\n"
        "    end\n"
        "    return {1, first}\n"
        "  end\n"
        "end\n"
        "local oid, num = ARGV[9], ARGV[10]\n"
        "if stype == 'order_create' then\n"
        "  if redis.call('EXISTS', P .. 'ordernum:' .. tenant .. ':' .. num) == 1 then\n"
        "    return {3, ''}\n"
        "  end\n"
        "  redis.call('SET', P .. 'ordernum:' .. tenant .. ':' .. num, oid)\n"
        "  redis.call('SET', P .. 'ordernum_in:' .. ARGV[8] .. ':' .. num, oid, 'NX')\n"
        "  local o = cjson.decode(ARGV[11])\n"
        "  local flat = {}\n"
        "  for k, v in pairs(o) do flat[#flat + 1] = k; flat[#flat + 1] = v end\n"
        "  redis.call('HSET', P .. 'order:' .. oid, unpack(flat))\n"
        "elseif oid ~= '' then\n"
        "  local o = redis.call('HMGET', P .. 'order:' .. oid, 'origin_tenant',\n"
        "                       'destination_tenant')\n"
        "  if o[1] ~= tenant and o[2] ~= tenant then oid = '' end\n"
        "elseif num ~= '' then\n"
        "  local v = redis.call('MGET', P .. 'ordernum:' .. tenant .. ':' .. num,\n"
        "                       P .. 'orderref:' .. tenant .. ':' .. num,\n"
        "                       P .. 'ordernum_in:' .. tenant .. ':' .. num)\n"
        "  oid = v[1] or v[2] or v[3] or ''\n"
        "end\n"
        "if oid ~= '' and stype ~= 'order_accept' then\n"
        "  redis.call('RPUSH', P .. 'order:' .. oid .. ':q', sid)\n"
        "end\n"
        "local id = redis.call('XADD', KEYS[1], '*', 'saga_id', sid, 'type', stype,\n"
        "                      'tenant', tenant)\n"
        "redis.call('HSET', KEYS[2], 'stream_id', id, 'response', ARGV[6], 'order_id', oid,\n"
        "           'epoch', 0, 'created_ms', ARGV[12], unpack(ARGV, 15))\n"
        "redis.call('RPUSH', KEYS[3], ARGV[7])\n"
        "redis.call('ZADD', P .. 'active', ARGV[12], sid)\n"
        "redis.call('ZADD', P .. 'idx:all', ARGV[12], sid)\n"
        "redis.call('ZADD', P .. 'idx:status:pending', ARGV[12], sid)\n"
        "redis.call('ZADD', P .. 'idx:tenant:' .. tenant, ARGV[12], sid)\n"
        "redis.call('ZADD', P .. 'idx:type:' .. stype, ARGV[12], sid)\n"
        "if oid ~= '' then\n"
        "  local ok = P .. 'idx:order:' .. oid\n"
        "  redis.call('ZADD', ok, ARGV[12], sid)\n"
        "  redis.call('ZREMRANGEBYSCORE', ok, '-inf',\n"
        "             '(' .. (tonumber(ARGV[12]) - tonumber(ARGV[14]) * 1000))\n"
        "  redis.call('EXPIRE', ok, ARGV[14])\n"
        "end\n"
        "if ARGV[13] == '1' then\n"
        "  -- The saga keeps the first answer at least retention_s: while the record lives no\n"
        "  -- longer than that, it names the saga instead of holding a second copy.\n"
        "  local first = ''\n"
        "  if tonumber(ARGV[5]) > tonumber(ARGV[14]) then first = ARGV[6] end\n"
        "  redis.call('SET', KEYS[4], ARGV[4] .. '\\n' .. sid .. '\\n' .. first, 'EX', ARGV[5])\n"
        "end\n"
        "return {0, id}\n",
};

typedef struct intake_op {
    intake_cb cb;
    void *data;
} intake_op_t;

void intake_init(store_t *store)
{
    store_script_register(store, &intake_script);
}

static void on_reply(const redisReply *reply, const char *err, void *data)
{
    intake_op_t *op = data;
    intake_cb cb = op->cb;
    void *cbdata = op->data;
    free(op);
    if (err != NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_INTEGER) {
        cb(INTAKE_UNAVAILABLE, NULL, 0, cbdata);
        return;
    }
    const redisReply *r1 = reply->element[1];
    switch (reply->element[0]->integer) {
    case 0:
        cb(INTAKE_STORED, NULL, 0, cbdata);
        break;
    case 1:
        cb(INTAKE_REPEAT, r1->str, r1->len, cbdata);
        break;
    case 2:
        cb(INTAKE_CONFLICT, NULL, 0, cbdata);
        break;
    case 3:
        cb(INTAKE_DUPLICATE, NULL, 0, cbdata);
        break;
    default:
        cb(INTAKE_UNAVAILABLE, NULL, 0, cbdata);
    }
}

int intake_submit(store_t *store, const intake_rec_t *rec, intake_cb cb, void *data)
{
    char saga_key[96], hist_key[96], idem_key[256];
    snprintf(saga_key, sizeof saga_key, STORE_KEY_SAGA_FMT, rec->saga_id);
    snprintf(hist_key, sizeof hist_key, STORE_KEY_SAGA_HIST_FMT, rec->saga_id);
    const int numkeys = 4;
    if (rec->idem_key_hash)
        snprintf(idem_key, sizeof idem_key, STORE_KEY_IDEM_FMT, rec->tenant, rec->idem_key_hash);
    else
        snprintf(idem_key, sizeof idem_key, "%s", saga_key);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", rec->idem_ttl_s);

    size_t argc = (size_t)numkeys + 14 + rec->n_fields;
    char retention[24];
    snprintf(retention, sizeof retention, "%ld", rec->retention_s);
    const char **argv = cr_malloc(argc * sizeof *argv);
    size_t i = 0;
    argv[i++] = STORE_KEY_STREAM;
    argv[i++] = saga_key;
    argv[i++] = hist_key;
    argv[i++] = idem_key;
    argv[i++] = rec->saga_id;
    argv[i++] = rec->saga_type;
    argv[i++] = rec->tenant;
    argv[i++] = rec->fingerprint;
    argv[i++] = ttl;
    argv[i++] = rec->response;
    argv[i++] = rec->history;
    argv[i++] = rec->dest;
    argv[i++] = rec->order_id ? rec->order_id : "";
    argv[i++] = rec->order_number ? rec->order_number : "";
    argv[i++] = rec->order_json ? rec->order_json : "{}";
    argv[i++] = rec->now_ms;
    argv[i++] = rec->idem_key_hash ? "1" : "0";
    argv[i++] = retention;
    for (size_t f = 0; f < rec->n_fields; f++)
        argv[i++] = rec->fields[f];

    intake_op_t *op = cr_malloc(sizeof *op);
    op->cb = cb;
    op->data = data;
    int rc = store_evalsha(store, &intake_script, numkeys, (int)argc, argv, NULL, on_reply, op);
    free(argv);
    if (rc != 0)
        free(op);
    return rc;
}
