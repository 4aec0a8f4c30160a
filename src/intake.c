/*
 * intake.c - the durable intake write (see intake.h).
 */
#include "intake.h"

#include "log.h"
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
 * A batch is one transaction: MULTI, per request a plain HSET of its saga hash (and, for a create,
 * one of its order hash), one EVALSHA, EXEC. The hashes go as plain commands because every
 * string handed to a Lua script is copied, hashed byte by byte and converted back for the
 * command it feeds: through the script, the saga hash (~20 fields: the request, the answer)
 * and a create's order hash cost Redis ~100 k more instructions per create than as their own
 * HSETs (callgrind, whole create saga: 1.315 M before, 1.21-1.22 M after). MULTI makes the
 * hashes and the script's writes one atomic unit, and the script deletes the hashes of every
 * request it does not store.
 *
 * The script. KEYS: the stream. ARGV: 1 number of requests, then per request 12 values:
 * saga_id, type, tenant, idempotency key hash or "", fingerprint, idempotency ttl_s, history
 * entry, dest, order_id, order_number, now_ms, retention_s.
 * Returns one {code, value} per request, in order: {0, stream_id} stored, {1, first_response}
 * repeat ("" when the record outlived its saga), {2, ""} clash, {3, ""} create of an order
 * number the tenant already has, {4, ""} failed (a Redis error while storing it).
 * Requests are stored one after the other, so two in one batch with the same Idempotency-Key
 * are a first request and its repeat, as they would be in two calls; the idempotency check and
 * the writes of one request are one script, so racing requests cannot both create a saga. Each
 * request runs under pcall: an error fails that request alone, and what it had written is
 * removed again (Redis does not roll a script back): its place in its order's queue above all,
 * where it would hold every later saga of the order behind a saga that does not exist. The
 * index ZADDs of all stored requests are grouped by key and sent once at the end (members
 * differ, the scores are each request's own): per request they were five of its eleven Redis
 * calls. One that fails is logged by Redis and leaves the requests stored and answered.
 */
#define INTAKE_VALUES 12
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
        "local undo -- what the request being stored has written so far (see failed)\n"
        "local function store(a)\n"
        "  undo = {}\n"
        "  local sid, stype, tenant, idem, fp, ttl, hentry, dest, oid, num, now,\n"
        "        retention = unpack(ARGV, a, a + 11)\n"
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
        "    -- the order hash itself came ahead of the script\n"
        "    undo.oid = oid\n"
        "    undo.names = {P .. 'ordernum:' .. tenant .. ':' .. num,\n"
        "                  P .. 'ordernum_in:' .. dest .. ':' .. num}\n"
        "    if not redis.call('SET', undo.names[1], oid, 'NX') then\n"
        "      return {3, ''}\n"
        "    end\n"
        "    redis.call('SET', undo.names[2], oid, 'NX')\n"
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
        "    undo.q = P .. 'order:' .. oid .. ':q'\n"
        "    redis.call('RPUSH', undo.q, sid)\n"
        "  end\n"
        "  local id = redis.call('XADD', KEYS[1], '*', 'saga_id', sid, 'type', stype,\n"
        "                        'tenant', tenant)\n"
        "  undo.entry = id\n"
        "  redis.call('HSET', skey, 'stream_id', id, 'order_id', oid, 'epoch', 0, 'created_ms',\n"
        "             now)\n"
        "  redis.call('RPUSH', skey .. ':hist', hentry)\n"
        "  if oid ~= '' then\n"
        "    local ok = P .. 'idx:order:' .. oid\n"
        "    undo.idx = ok\n"
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
        "    if tonumber(ttl) > tonumber(retention) then\n"
        "      first = redis.call('HGET', skey, 'response')\n"
        "    end\n"
        "    undo.idem = ikey\n"
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
        "-- A request that failed half way: take back what it wrote (each step on its own, so one\n"
        "-- that fails too does not keep the others from running).\n"
        "local function failed(sid)\n"
        "  local u = undo\n"
        "  if u.q then pcall(redis.call, 'LREM', u.q, -1, sid) end\n"
        "  if u.entry then pcall(redis.call, 'XDEL', KEYS[1], u.entry) end\n"
        "  if u.idx then pcall(redis.call, 'ZREM', u.idx, sid) end\n"
        "  if u.idem then pcall(redis.call, 'DEL', u.idem) end\n"
        "  for _, k in ipairs(u.names or {}) do\n"
        "    if redis.pcall('GET', k) == u.oid then pcall(redis.call, 'DEL', k) end\n"
        "  end\n"
        "  pcall(redis.call, 'DEL', P .. 'saga:' .. sid .. ':hist')\n"
        "end\n"
        "local out, a = {}, 2\n"
        "for j = 1, tonumber(ARGV[1]) do\n"
        "  local ok, r = pcall(store, a)\n"
        "  if not ok then\n"
        "    failed(ARGV[a])\n"
        "    r = {4, ''}\n"
        "  end\n"
        "  if r[1] ~= 0 then\n"
        "    -- not stored: the hashes written ahead of the script for it go\n"
        "    redis.call('DEL', P .. 'saga:' .. ARGV[a])\n"
        "    if ARGV[a + 1] == 'order_create' then\n"
        "      redis.call('DEL', P .. 'order:' .. ARGV[a + 8])\n"
        "    end\n"
        "  end\n"
        "  out[j] = r\n"
        "  a = a + 12\n"
        "end\n"
        "-- The requests are stored by now: an index that cannot be written (a key of another\n"
        "-- type) must not turn their answers into errors, or a retry would store them twice.\n"
        "for _, k in ipairs(zkeys) do\n"
        "  local ok, err = pcall(redis.call, 'ZADD', k, unpack(zargs[k]))\n"
        "  if not ok then\n"
        "    redis.log(redis.LOG_WARNING, 'crossroads intake: index ' .. k .. ' not written: ' ..\n"
        "              (type(err) == 'table' and tostring(err.err) or tostring(err)))\n"
        "  end\n"
        "end\n"
        "return out\n",
};

typedef struct waiter {
    intake_cb cb;
    void *data;
} waiter_t;

/* A batch sent: its waiters, answered from the one reply, and the keys of the hashes written
 * ahead of the script (removed again if the script did not run). */
typedef struct sent {
    store_t *store;
    size_t n;
    char *keys; /* NUL-separated */
    size_t n_keys;
    waiter_t w[];
} sent_t;

struct intake {
    store_t **stores;
    size_t n_stores;
    size_t next;
    uv_check_t check;
    bool check_on;
    buf_t pre;      /* MULTI, then the HSETs of the requests */
    size_t *cuts;   /* where each command of pre ends */
    size_t n_cuts, cuts_cap;
    buf_t keys;     /* the HSETs' keys, NUL-separated */
    size_t n_keys;
    buf_t cmd;      /* HEAD_ROOM, then the script's arguments after the request count */
    size_t n;       /* requests in the batch being filled */
    size_t argc;    /* argument strings in cmd */
    waiter_t *w;
    size_t w_cap;
    intake_stats_t stats;
};

static void cut(intake_t *in)
{
    if (in->n_cuts == in->cuts_cap) {
        in->cuts_cap = in->cuts_cap ? 2 * in->cuts_cap : 64;
        in->cuts = cr_realloc(in->cuts, in->cuts_cap * sizeof *in->cuts);
    }
    in->cuts[in->n_cuts++] = in->pre.len;
}

static void reset_batch(intake_t *in)
{
    buf_reset(&in->cmd);
    buf_reserve(&in->cmd, HEAD_ROOM);
    in->cmd.len = HEAD_ROOM;
    buf_reset(&in->pre);
    in->n_cuts = 0;
    store_resp_len(&in->pre, '*', 1);
    store_resp_arg(&in->pre, "MULTI", 5);
    cut(in);
    buf_reset(&in->keys);
    in->n_keys = 0;
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

static void on_cleaned(const redisReply *reply, const char *err, void *data)
{
    (void)reply;
    (void)err;
    (void)data;
}

/* The transaction ran but its script did not (NOSCRIPT after a SCRIPT FLUSH): remove the hashes
 * written ahead of it, which nothing names. Best effort: Redis answered a moment ago. */
static void remove_hashes(sent_t *b)
{
    const char **argv = cr_malloc((b->n_keys + 1) * sizeof *argv);
    argv[0] = "DEL";
    const char *k = b->keys;
    for (size_t i = 0; i < b->n_keys; i++, k += strlen(k) + 1)
        argv[i + 1] = k;
    if (store_command_argv(b->store, (int)b->n_keys + 1, argv, NULL, on_cleaned, NULL) != 0)
        log_msg(LOG_WARN, "intake: could not remove the hashes of a batch its script did not store",
                NULL);
    free(argv);
}

/* The reply of EXEC: the HSETs' counts, then the script's reply. */
static void on_reply(const redisReply *reply, const char *err, void *data)
{
    sent_t *b = data;
    const redisReply *script = NULL;
    if (err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1)
        script = reply->element[reply->elements - 1];
    bool whole = script != NULL && script->type == REDIS_REPLY_ARRAY && script->elements == b->n;
    if (script != NULL && script->type == REDIS_REPLY_ERROR) {
        log_msg(LOG_ERROR, "intake script failed", "error", script->str, NULL);
        if (strncmp(script->str, "NOSCRIPT", 8) == 0)
            remove_hashes(b);
    }
    for (size_t i = 0; i < b->n; i++)
        answer(&b->w[i], whole ? script->element[i] : NULL);
    free(b->keys);
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
    b->keys = cr_malloc(in->keys.len ? in->keys.len : 1);
    memcpy(b->keys, in->keys.data, in->keys.len);
    b->n_keys = in->n_keys;

    /* The head goes right before the arguments, in the room left for it (one buffer, reused:
     * the loop is single-threaded). */
    static buf_t head;
    buf_reset(&head);
    char count[CR_INT_LEN];
    size_t count_len = cr_fmt_int(count, (long long)in->n);
    store_resp_len(&head, '*', 5 + in->argc);
    store_resp_arg(&head, "EVALSHA", 7);
    store_resp_arg(&head, intake_script.sha1, 40);
    store_resp_arg(&head, "1", 1);
    store_resp_arg(&head, STORE_KEY_STREAM, sizeof STORE_KEY_STREAM - 1);
    store_resp_arg(&head, count, count_len);
    if (head.len > HEAD_ROOM)
        abort(); /* at most ~110 bytes: 64 requests cannot have 10^8 arguments */
    char *start = in->cmd.data + HEAD_ROOM - head.len;
    memcpy(start, head.data, head.len);

    /* MULTI and the HSETs, the EVALSHA, EXEC */
    static const char exec[] = "*1\r\n$4\r\nEXEC\r\n";
    size_t n_cmds = in->n_cuts + 2;
    const char **cmds = cr_malloc(n_cmds * sizeof *cmds);
    size_t *lens = cr_malloc(n_cmds * sizeof *lens);
    for (size_t i = 0, from = 0; i < in->n_cuts; from = in->cuts[i++]) {
        cmds[i] = in->pre.data + from;
        lens[i] = in->cuts[i] - from;
    }
    cmds[in->n_cuts] = start;
    lens[in->n_cuts] = in->cmd.len - (HEAD_ROOM - head.len);
    cmds[in->n_cuts + 1] = exec;
    lens[in->n_cuts + 1] = sizeof exec - 1;

    in->stats.batches++;
    in->stats.requests += in->n;
    store_t *s = next_store(in);
    b->store = s;
    int rc = s ? store_commands_formatted(s, n_cmds, cmds, lens, on_reply, b) : UV_ENOTCONN;
    free(cmds);
    free(lens);
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

/* HSET key, then n field/value strings and the extra pair (name NULL for none), into pre. */
static void add_hset(intake_t *in, const char *key, const char **fv, size_t n, const char *name,
                     const char *value)
{
    store_resp_len(&in->pre, '*', 2 + n + (name ? 2 : 0));
    store_resp_arg(&in->pre, "HSET", 4);
    store_resp_arg(&in->pre, key, strlen(key));
    for (size_t i = 0; i < n; i++)
        store_resp_arg(&in->pre, fv[i], strlen(fv[i]));
    if (name) {
        store_resp_arg(&in->pre, name, strlen(name));
        store_resp_arg(&in->pre, value, strlen(value));
    }
    cut(in);
    buf_append(&in->keys, key, strlen(key) + 1);
    in->n_keys++;
}

int intake_submit(intake_t *in, const intake_rec_t *rec, intake_cb cb, void *data)
{
    if (!intake_ready(in))
        return UV_ENOTCONN;
    char ttl[CR_INT_LEN], retention[CR_INT_LEN];
    cr_fmt_int(ttl, rec->idem_ttl_s);
    cr_fmt_int(retention, rec->retention_s);
    const char *v[] = {
        rec->saga_id,
        rec->saga_type,
        rec->tenant,
        rec->idem_key_hash ? rec->idem_key_hash : "",
        rec->fingerprint,
        ttl,
        rec->history,
        rec->dest,
        rec->order_id ? rec->order_id : "",
        rec->order_number ? rec->order_number : "",
        rec->now_ms,
        retention,
    };
    _Static_assert(CR_ARRAY_SIZE(v) == INTAKE_VALUES, "the script reads 12 values a request");
    size_t bytes = 2 * 64 + arg_bytes(rec->response);
    for (size_t i = 0; i < CR_ARRAY_SIZE(v); i++)
        bytes += arg_bytes(v[i]);
    for (size_t f = 0; f < rec->n_fields; f++)
        bytes += arg_bytes(rec->fields[f]);
    for (size_t f = 0; f < rec->n_order_fields; f++)
        bytes += arg_bytes(rec->order_fields[f]);
    size_t filled = in->cmd.len - HEAD_ROOM + in->pre.len;
    if (in->n > 0 && (in->n >= BATCH_MAX_REQUESTS || filled + bytes > BATCH_MAX_BYTES))
        flush(in);

    char key[96]; /* the saga and order ids are ours: 24 hex digits */
    cr_cat(key, sizeof key, STORE_KEY_SAGA_PRE, rec->saga_id, NULL);
    add_hset(in, key, rec->fields, rec->n_fields, "response", rec->response);
    if (rec->n_order_fields > 0) {
        cr_cat(key, sizeof key, STORE_KEY_ORDER_PRE, rec->order_id, NULL);
        add_hset(in, key, rec->order_fields, rec->n_order_fields, NULL, NULL);
    }
    for (size_t i = 0; i < CR_ARRAY_SIZE(v); i++)
        add_arg(in, v[i]);
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
    buf_free(&in->pre);
    buf_free(&in->keys);
    free(in->cuts);
    free(in->w);
    free(in->stores);
    free(in);
}

void intake_close(intake_t *in)
{
    flush(in);
    uv_close((uv_handle_t *)&in->check, on_check_closed);
}
