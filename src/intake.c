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
 * A batch is sent once the loop iteration that filled it ends (a check handle), or earlier when
 * the next request would take it past BATCH_MAX_BYTES: Redis reads at most 16 KiB from one
 * connection per pass of its event loop, so a larger command would wait for several passes
 * (and, with appendfsync always, several fsyncs) while the other connections of the pool idle.
 */
#define BATCH_MAX_BYTES (16 * 1024 - 512)
#define BATCH_MAX_REQUESTS 64
/* Room before the arguments for the command's head, written once the batch is complete. */
#define HEAD_ROOM 160

/*
 * One EVALSHA stores every request of a batch. KEYS: the stream. ARGV: 1 number of requests,
 * then per request: the number N of saga-hash strings, 14 values (saga_id, type, tenant,
 * idempotency key hash or "", fingerprint, idempotency ttl_s, response, history entry, dest,
 * order_id, order_number, the number M of order-hash strings (create; 0 otherwise), now_ms,
 * retention_s), the N field/value strings of the saga hash and the M of the order hash. The
 * order's fields come as arguments, not as one JSON text to decode in Lua: decoding it and
 * building a table from it cost Redis ~30 k instructions per create (callgrind).
 * Returns one {code, value} per request, in order: {0, stream_id} stored, {1, first_response}
 * repeat ("" when the record outlived its saga), {2, ""} clash, {3, ""} create of an order
 * number the tenant already has, {4, ""} failed (a Redis error while storing it).
 * Requests are stored one after the other, so two in one batch with the same Idempotency-Key
 * are a first request and its repeat, as they would be in two calls; the idempotency check and
 * the writes of one request are one script, so racing requests cannot both create a saga. Each
 * request runs under pcall: an error fails that request alone. The index ZADDs of all stored
 * requests are grouped by key and sent once at the end (members differ, the scores are each
 * request's own): per request they were five of its eleven Redis calls.
 */
static store_script_t intake_script = {
    .name = "intake",
    .source =
        "local P = 'cr:{cr}:'\n"
        "local zkeys, zargs = {}, {}\n"
        "local function zadd(key, score, member)\n"
        "  local t = zargs[key]\n"
        "  if not t then t = {}; zargs[key] = t; zkeys[#zkeys + 1] = key end\n"
        "  t[#t + 1] = score; t[#t + 1] = member\n"
        "end\n"
        "local function store(a)\n"
        "  local nf = tonumber(ARGV[a])\n"
        "  local sid, stype, tenant, idem, fp, ttl, resp, hentry, dest, oid, num, no, now,\n"
        "        retention = unpack(ARGV, a + 1, a + 14)\n"
        "  local skey = P .. 'saga:' .. sid\n"
        "  local ikey = P .. 'idem:' .. tenant .. ':' .. idem\n"
        "  if idem ~= '' then\n"
        "    local prev = redis.pcall('GET', ikey)\n"
        "    if type(prev) == 'table' and prev.err then\n"
        "      -- a record of an older version (a hash)\n"
        "      local h = redis.call('HMGET', ikey, 'fp', 'response')\n"
        "      prev = h[1] and (h[1] .. '\\n\\n' .. h[2]) or false\n"
        "    end\n"
        "    if prev then\n"
        "      if string.sub(prev, 1, #fp) ~= fp then return {2, ''} end\n"
        "      local nl = string.find(prev, '\\n', #fp + 2, true)\n"
        "      local first = string.sub(prev, nl + 1)\n"
        "      if first == '' then\n"
        "        -- a compact record: the first answer is the saga's own copy\n"
        "        local psid = string.sub(prev, #fp + 2, nl - 1)\n"
        "        first = redis.call('HGET', P .. 'saga:' .. psid, 'response') or ''\n"
        "      end\n"
        "      return {1, first}\n"
        "    end\n"
        "  end\n"
        "  if stype == 'order_create' then\n"
        "    if not redis.call('SET', P .. 'ordernum:' .. tenant .. ':' .. num, oid, 'NX') then\n"
        "      return {3, ''}\n"
        "    end\n"
        "    redis.call('SET', P .. 'ordernum_in:' .. dest .. ':' .. num, oid, 'NX')\n"
        "    local of = a + 15 + nf\n"
        "    redis.call('HSET', P .. 'order:' .. oid, unpack(ARGV, of, of + tonumber(no) - 1))\n"
        "  elseif oid ~= '' then\n"
        "    local o = redis.call('HMGET', P .. 'order:' .. oid, 'origin_tenant',\n"
        "                         'destination_tenant')\n"
        "    if o[1] ~= tenant and o[2] ~= tenant then oid = '' end\n"
        "  elseif num ~= '' then\n"
        "    local v = redis.call('MGET', P .. 'ordernum:' .. tenant .. ':' .. num,\n"
        "                         P .. 'orderref:' .. tenant .. ':' .. num,\n"
        "                         P .. 'ordernum_in:' .. tenant .. ':' .. num)\n"
        "    oid = v[1] or v[2] or v[3] or ''\n"
        "  end\n"
        "  if oid ~= '' and stype ~= 'order_accept' then\n"
        "    redis.call('RPUSH', P .. 'order:' .. oid .. ':q', sid)\n"
        "  end\n"
        "  local id = redis.call('XADD', KEYS[1], '*', 'saga_id', sid, 'type', stype,\n"
        "                        'tenant', tenant)\n"
        "  redis.call('HSET', skey, 'stream_id', id, 'response', resp, 'order_id', oid,\n"
        "             'epoch', 0, 'created_ms', now, unpack(ARGV, a + 15, a + 14 + nf))\n"
        "  redis.call('RPUSH', skey .. ':hist', hentry)\n"
        "  if oid ~= '' then\n"
        "    local ok = P .. 'idx:order:' .. oid\n"
        "    redis.call('ZADD', ok, now, sid)\n"
        "    if stype ~= 'order_create' then -- a new order's index holds nothing older\n"
        "      redis.call('ZREMRANGEBYSCORE', ok, '-inf',\n"
        "                 '(' .. (tonumber(now) - tonumber(retention) * 1000))\n"
        "    end\n"
        "    redis.call('EXPIRE', ok, retention)\n"
        "  end\n"
        "  if idem ~= '' then\n"
        "    -- The saga keeps the first answer at least retention_s: while the record lives no\n"
        "    -- longer than that, it names the saga instead of holding a second copy.\n"
        "    local first = ''\n"
        "    if tonumber(ttl) > tonumber(retention) then first = resp end\n"
        "    redis.call('SET', ikey, fp .. '\\n' .. sid .. '\\n' .. first, 'EX', ttl)\n"
        "  end\n"
        "  -- last, once nothing of this request can fail any more\n"
        "  zadd(P .. 'active', now, sid)\n"
        "  zadd(P .. 'idx:all', now, sid)\n"
        "  zadd(P .. 'idx:status:pending', now, sid)\n"
        "  zadd(P .. 'idx:tenant:' .. tenant, now, sid)\n"
        "  zadd(P .. 'idx:type:' .. stype, now, sid)\n"
        "  return {0, id}\n"
        "end\n"
        "local out, a = {}, 2\n"
        "for j = 1, tonumber(ARGV[1]) do\n"
        "  local ok, r = pcall(store, a)\n"
        "  out[j] = ok and r or {4, ''}\n"
        "  a = a + 15 + tonumber(ARGV[a]) + tonumber(ARGV[a + 12])\n"
        "end\n"
        "for _, k in ipairs(zkeys) do redis.call('ZADD', k, unpack(zargs[k])) end\n"
        "return out\n",
};

typedef struct waiter {
    intake_cb cb;
    void *data;
} waiter_t;

/* A batch sent: its waiters, answered from the one reply. */
typedef struct sent {
    size_t n;
    waiter_t w[];
} sent_t;

struct intake {
    store_t **stores;
    size_t n_stores;
    size_t next;
    uv_check_t check;
    bool check_on;
    buf_t cmd;      /* HEAD_ROOM, then the arguments after the request count */
    size_t n;       /* requests in the batch being filled */
    size_t argc;    /* argument strings in cmd */
    waiter_t *w;
    size_t w_cap;
    intake_stats_t stats;
};

static void reset_batch(intake_t *in)
{
    buf_reset(&in->cmd);
    buf_reserve(&in->cmd, HEAD_ROOM);
    in->cmd.len = HEAD_ROOM;
    in->n = 0;
    in->argc = 0;
}

static void on_check(uv_check_t *h);

intake_t *intake_new(uv_loop_t *loop, store_t *const *stores, size_t n_stores)
{
    intake_t *in = cr_calloc(1, sizeof *in);
    in->stores = cr_malloc(n_stores * sizeof *in->stores);
    memcpy(in->stores, stores, n_stores * sizeof *in->stores);
    in->n_stores = n_stores;
    for (size_t i = 0; i < n_stores; i++)
        store_script_register(stores[i], &intake_script);
    uv_check_init(loop, &in->check);
    in->check.data = in;
    reset_batch(in);
    return in;
}

/* The next ready connection, round-robin; NULL when none is. */
static store_t *next_store(intake_t *in)
{
    for (size_t i = 0; i < in->n_stores; i++) {
        store_t *s = in->stores[in->next++ % in->n_stores];
        if (store_ready(s))
            return s;
    }
    return NULL;
}

bool intake_ready(const intake_t *in)
{
    for (size_t i = 0; i < in->n_stores; i++)
        if (store_ready(in->stores[i]))
            return true;
    return false;
}

static void answer(const waiter_t *w, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        w->cb(INTAKE_UNAVAILABLE, NULL, 0, w->data);
        return;
    }
    const redisReply *r1 = r->element[1];
    switch (r->element[0]->integer) {
    case 0:
        w->cb(INTAKE_STORED, NULL, 0, w->data);
        break;
    case 1:
        w->cb(INTAKE_REPEAT, r1->str, r1->len, w->data);
        break;
    case 2:
        w->cb(INTAKE_CONFLICT, NULL, 0, w->data);
        break;
    case 3:
        w->cb(INTAKE_DUPLICATE, NULL, 0, w->data);
        break;
    default:
        w->cb(INTAKE_UNAVAILABLE, NULL, 0, w->data);
    }
}

static void on_reply(const redisReply *reply, const char *err, void *data)
{
    sent_t *b = data;
    bool whole = err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
                 reply->elements == b->n;
    for (size_t i = 0; i < b->n; i++)
        answer(&b->w[i], whole ? reply->element[i] : NULL);
    free(b);
}

/* Send the batch being filled (if any) on the next ready connection, or fail its requests. */
static void flush(intake_t *in)
{
    if (in->n == 0)
        return;
    sent_t *b = cr_malloc(sizeof *b + in->n * sizeof b->w[0]);
    b->n = in->n;
    memcpy(b->w, in->w, in->n * sizeof b->w[0]);

    /* The head goes right before the arguments, in the room left for it (one buffer, reused:
     * the loop is single-threaded). */
    static buf_t head;
    buf_reset(&head);
    char count[24];
    int count_len = snprintf(count, sizeof count, "%zu", in->n);
    store_resp_len(&head, '*', 5 + in->argc);
    store_resp_arg(&head, "EVALSHA", 7);
    store_resp_arg(&head, intake_script.sha1, 40);
    store_resp_arg(&head, "1", 1);
    store_resp_arg(&head, STORE_KEY_STREAM, sizeof STORE_KEY_STREAM - 1);
    store_resp_arg(&head, count, (size_t)count_len);
    if (head.len > HEAD_ROOM)
        abort(); /* at most ~110 bytes: 64 requests cannot have 10^8 arguments */
    char *start = in->cmd.data + HEAD_ROOM - head.len;
    memcpy(start, head.data, head.len);
    size_t len = in->cmd.len - (HEAD_ROOM - head.len);

    in->stats.batches++;
    in->stats.requests += in->n;
    store_t *s = next_store(in);
    int rc = s ? store_command_formatted(s, start, len, on_reply, b) : UV_ENOTCONN;
    reset_batch(in);
    if (rc != 0)
        on_reply(NULL, STORE_ERR_DOWN, b);
}

static void on_check(uv_check_t *h)
{
    intake_t *in = h->data;
    uv_check_stop(&in->check);
    in->check_on = false;
    flush(in);
}

static size_t arg_bytes(const char *s)
{
    return strlen(s) + 16; /* "$<len>\r\n" and "\r\n" */
}

static void add_arg(intake_t *in, const char *s)
{
    store_resp_arg(&in->cmd, s, strlen(s));
    in->argc++;
}

int intake_submit(intake_t *in, const intake_rec_t *rec, intake_cb cb, void *data)
{
    if (!intake_ready(in))
        return UV_ENOTCONN;
    char ttl[24], retention[24], nf[24], no[24];
    snprintf(ttl, sizeof ttl, "%ld", rec->idem_ttl_s);
    snprintf(retention, sizeof retention, "%ld", rec->retention_s);
    snprintf(nf, sizeof nf, "%zu", rec->n_fields);
    snprintf(no, sizeof no, "%zu", rec->n_order_fields);
    const char *v[] = {
        nf,
        rec->saga_id,
        rec->saga_type,
        rec->tenant,
        rec->idem_key_hash ? rec->idem_key_hash : "",
        rec->fingerprint,
        ttl,
        rec->response,
        rec->history,
        rec->dest,
        rec->order_id ? rec->order_id : "",
        rec->order_number ? rec->order_number : "",
        no,
        rec->now_ms,
        retention,
    };
    size_t bytes = 0;
    for (size_t i = 0; i < CR_ARRAY_SIZE(v); i++)
        bytes += arg_bytes(v[i]);
    for (size_t f = 0; f < rec->n_fields; f++)
        bytes += arg_bytes(rec->fields[f]);
    for (size_t f = 0; f < rec->n_order_fields; f++)
        bytes += arg_bytes(rec->order_fields[f]);
    if (in->n > 0 && (in->n >= BATCH_MAX_REQUESTS ||
                      in->cmd.len - HEAD_ROOM + bytes > BATCH_MAX_BYTES))
        flush(in);

    for (size_t i = 0; i < CR_ARRAY_SIZE(v); i++)
        add_arg(in, v[i]);
    for (size_t f = 0; f < rec->n_fields; f++)
        add_arg(in, rec->fields[f]);
    for (size_t f = 0; f < rec->n_order_fields; f++)
        add_arg(in, rec->order_fields[f]);
    if (in->n == in->w_cap) {
        in->w_cap = in->w_cap ? 2 * in->w_cap : 16;
        in->w = cr_realloc(in->w, in->w_cap * sizeof *in->w);
    }
    in->w[in->n++] = (waiter_t){cb, data};
    if (!in->check_on) {
        uv_check_start(&in->check, on_check);
        in->check_on = true;
    }
    return 0;
}

void intake_stats_get(const intake_t *in, intake_stats_t *out)
{
    *out = in->stats;
}

static void on_check_closed(uv_handle_t *h)
{
    intake_t *in = h->data;
    buf_free(&in->cmd);
    free(in->w);
    free(in->stores);
    free(in);
}

void intake_close(intake_t *in)
{
    flush(in);
    uv_close((uv_handle_t *)&in->check, on_check_closed);
}
