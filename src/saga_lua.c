/*
 * saga_lua.c - Lua scripts of the saga engine (see saga_lua.h, saga.h).
 *
 * All keys share the {cr} hash tag (store_keys.h), so each script is atomic in one slot.
 */
#include "saga_lua.h"

/* The end of a saga, shared by the commit script's "end" and the begin script's poison stop: it
 * leaves the active set and its order's queue (waking the order's next saga with a stream entry)
 * and its records expire with the retention. It is not in the delayed set: only a run puts a saga
 * there, giving up its stream entry, and the wake-up that takes it out is what lets it run again.
 * An order whose queue it leaves empty is idle from now on (cr:{cr}:orders:idle, unless
 * order_keep is "0": orders kept for good); the order reaper removes orders idle longer than
 * saga.order_retention_s. Needs P defined. */
#define LUA_LEAVE                                                                                 \
    "local function leave(stream, sid, oid, stype, saga_key, hist_key, retention, now,\n"         \
    "                     order_keep)\n"                                                         \
    "  redis.call('ZREM', P .. 'active', sid)\n"                                                 \
    "  if oid ~= '' and stype ~= 'order_accept' then\n"                                         \
    "    local q = P .. 'order:' .. oid .. ':q'\n"                                               \
    "    local two = redis.call('LRANGE', q, 0, 1)\n"                                           \
    "    local head, nxt = two[1], two[2]\n"                                                    \
    "    local idle = not head\n"                                                               \
    "    if head == sid then\n"                                                                 \
    "      redis.call('LPOP', q)\n"                                                              \
    "      if nxt then\n"                                                                       \
    "        local id = redis.call('XADD', stream, '*', 'saga_id', nxt, 'type', 'wake',\n"       \
    "                              'tenant', '')\n"                                             \
    "        redis.call('HSET', P .. 'saga:' .. nxt, 'stream_id', id)\n"                         \
    "      else\n"                                                                              \
    "        idle = true\n"                                                                     \
    "      end\n"                                                                               \
    "    elseif head then\n"                                                                    \
    "      redis.call('LREM', q, 1, sid)\n"                                                      \
    "    end\n"                                                                                 \
    "    if idle and order_keep ~= '0' then\n"                                                  \
    "      redis.call('ZADD', P .. 'orders:idle', now, oid)\n"                                   \
    "    end\n"                                                                                 \
    "  end\n"                                                                                   \
    "  redis.call('EXPIRE', saga_key, retention)\n"                                              \
    "  redis.call('EXPIRE', hist_key, retention)\n"                                              \
    "end\n"

/*
 * KEYS: saga, stream. ARGV: 1 saga_id, 2 consumer, 3 stream entry id ("" when none), 4 now_ms,
 * 5 "1" when the entry was claimed from an idle consumer, 6 claims allowed, 7 now (ISO),
 * 8 retention_s, 9 claims from which a saga is a suspect, 10 saga.order_retention_s. A saga
 * claimed more than ARGV[6] times (its runs keep dying with their worker) ends "error" here and
 * {"poisoned"} is returned.
 * A claim counts only when a run had started with the claimed entry ("started" holds the entry
 * a run started with): an entry that its dead worker had read but not yet begun (a new saga, or
 * one woken again after a delay) charges the saga with nothing. A suspect is begun with started
 * "0" and marked with its entry by its process just before it runs, so a suspect that was only
 * held behind another when its worker died is not charged with that death either, nor is a run
 * that ended in a live process because Redis did not answer (saga_lua_release).
 * Returns {"run", epoch, order fields} when this process may run the saga now (the process reads
 * the saga hash with a plain HGETALL sent right behind this script on the same connection: a
 * hash of ~30 fields costs far more as a Lua table and back than as a reply), or
 * {"gone"|"done"|"stale"|"queued"|"parked"} after dropping the entry: no saga, already ended,
 * an entry that is not the saga's current one, not the head of its order's queue, or a create
 * still waiting for the destination's accept. A saga behind another on its order is woken by
 * the commit that ends its predecessor.
 */
store_script_t saga_lua_begin = {
    .name = "begin",
    .source =
        "local P = 'cr:{cr}:'\n"
        LUA_LEAVE
        "local sid, entry = ARGV[1], ARGV[3]\n"
        "local function drop_entry()\n"
        "  if entry ~= '' then\n"
        "    redis.call('XACK', KEYS[2], 'workers', entry)\n"
        "    redis.call('XDEL', KEYS[2], entry)\n"
        "  end\n"
        "end\n"
        "local s = redis.call('HMGET', KEYS[1], 'status', 'order_id', 'type', 'stream_id',\n"
        "                     'started', 'claims', 'epoch')\n"
        "if not s[1] then drop_entry(); return {'gone'} end\n"
        "local st = s[1]\n"
        "if st == 'synced' or st == 'canceled' or st == 'rejected' or st == 'error' then\n"
        "  drop_entry(); return {'done'}\n"
        "end\n"
        "if entry ~= '' and s[4] ~= entry then drop_entry(); return {'stale'} end\n"
        "local oid, stype = s[2] or '', s[3]\n"
        "local order = {}\n"
        "if oid ~= '' then\n"
        "  if stype ~= 'order_accept' then\n"
        "    if redis.call('LINDEX', P .. 'order:' .. oid .. ':q', 0) ~= sid then\n"
        "      drop_entry(); redis.call('HSET', KEYS[1], 'stream_id', ''); return {'queued'}\n"
        "    end\n"
        "  end\n"
        "  order = redis.call('HGETALL', P .. 'order:' .. oid)\n"
        "  if st == 'requested' and redis.call('HGET', P .. 'order:' .. oid, 'accepted') ~= '1' then\n"
        "    drop_entry(); redis.call('HSET', KEYS[1], 'stream_id', ''); return {'parked'}\n"
        "  end\n"
        "end\n"
        "local claims = tonumber(s[6] or '0')\n"
        "if ARGV[5] == '1' and entry ~= '' and s[5] == entry then\n"
        "  claims = redis.call('HINCRBY', KEYS[1], 'claims', 1)\n"
        "  if claims > tonumber(ARGV[6]) then\n"
        "    -- A saga whose runs keep dying with their worker: stop it instead of letting it\n"
        "    -- take down every process in turn. Ends as the commit script's 'end' does.\n"
        "    local msg = 'stopped: the saga was abandoned by its worker ' .. claims .. ' times'\n"
        "    local was = st\n"
        "    -- A new epoch fences the run that holds the saga now: it must not write over 'error'.\n"
        "    redis.call('HINCRBY', KEYS[1], 'epoch', 1)\n"
        "    redis.call('HSET', KEYS[1], 'status', 'error', 'failed_from', was, 'message', msg,\n"
        "               'stream_id', '')\n"
        "    local created = redis.call('HGET', KEYS[1], 'created_ms') or ARGV[4]\n"
        "    redis.call('ZREM', P .. 'idx:status:' .. was, sid)\n"
        "    redis.call('ZADD', P .. 'idx:status:error', created, sid)\n"
        "    redis.call('RPUSH', KEYS[1] .. ':hist', cjson.encode({status = 'error',\n"
        "               date = ARGV[7], message = msg}))\n"
        "    drop_entry()\n"
        "    leave(KEYS[2], sid, oid, stype, KEYS[1], KEYS[1] .. ':hist', ARGV[8], ARGV[4],\n"
        "          ARGV[10])\n"
        "    return {'poisoned'}\n"
        "  end\n"
        "end\n"
        "local epoch = tonumber(s[7] or '0') + 1\n"
        "redis.call('HSET', KEYS[1], 'epoch', epoch, 'owner', ARGV[2], 'started',\n"
        "           claims >= tonumber(ARGV[9]) and '0' or entry)\n"
        "return {'run', epoch, order}\n",
};

/*
 * KEYS: saga, history, stream, the order's log.
 * ARGV: 1 saga_id, 2 epoch, 3 status, 4 number H of history entries, 5 number L of order log
 *       entries (steps held in the run are written with the next commit: several of each),
 *       6 now_ms, 7 order status-history entry ("" none), 8 mode, 9 mode argument,
 *       10 number of order field strings N, 11 saga.order_retention_s ("0": orders kept for
 *       good, see LUA_LEAVE), 12 "1" when the entries are inline, 13..12+N order field/value
 *       pairs, then, inline, the H history entries and the L log entries, then saga
 *       field/value pairs.
 * The entries are normally not arguments: the same transaction pushes them with plain RPUSHes
 * right before this script (MULTI, RPUSH history, RPUSH log, EVALSHA, EXEC). Every byte handed
 * to a script is copied into Lua and hashed, and the entries are most of a commit's bytes (a
 * delivery's log entry carries its request and answer). Nothing runs between those pushes and
 * this script, so when it writes nothing it takes exactly them back from the lists' tails.
 * Inline entries are for a Redis at maxmemory, which refuses every command queued in a
 * transaction (saga.c: on_commit).
 * mode: "step" (keep the entry), "park" (drop the entry; woken by an accept), "delay" (drop the
 * entry, wake at ARGV[9] ms), "end" (drop the entry, leave the active index and the order's
 * queue, wake the next saga of the order, expire after ARGV[9] seconds). Ending in "error"
 * remembers the status it failed from ("failed_from"), where a retry resumes. Only a park or a
 * delay moves the saga's score in the active index: a run holds its stream entry, which is what
 * the reconciler looks for, so neither a begin nor a step touches the index (each ZADD was a
 * Redis call per saga).
 * Returns "ok", or "fenced" without writing anything when the epoch is not the run's.
 */
store_script_t saga_lua_commit = {
    .name = "commit",
    .source =
        "local P = 'cr:{cr}:'\n"
        LUA_LEAVE
        "local sid, status, mode = ARGV[1], ARGV[3], ARGV[8]\n"
        "local nord, nh, nl = tonumber(ARGV[10]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
        "local inline = ARGV[12] == '1'\n"
        "local fe = 13 + nord -- the first inline entry, or the first saga field\n"
        "local fs = inline and fe + nh + nl or fe\n"
        "-- the last n entries of list key, pushed by this transaction, taken back\n"
        "local function take_back(key, n)\n"
        "  if n > 0 and not inline then redis.call('LTRIM', key, 0, -n - 1) end\n"
        "end\n"
        "-- one read of what this needs (each redis.call costs Lua glue on top of the command)\n"
        "local cur = redis.call('HMGET', KEYS[1], 'epoch', 'status', 'created_ms', 'order_id',\n"
        "                       'type', 'stream_id', 'claims')\n"
        "if cur[1] ~= ARGV[2] then\n"
        "  take_back(KEYS[2], nh)\n"
        "  take_back(KEYS[4], nl)\n"
        "  return 'fenced'\n"
        "end\n"
        "local was, oid, stype, entry = cur[2], cur[4] or '', cur[5], cur[6]\n"
        "-- an accept is not in its order's queue, so the order reaper may have removed the order\n"
        "-- while it ran: write nothing of an order that is gone\n"
        "if oid ~= '' and stype == 'order_accept' and\n"
        "   redis.call('EXISTS', P .. 'order:' .. oid) == 0 then\n"
        "  oid = ''\n"
        "end\n"
        "if nl > 0 and KEYS[4] ~= P .. 'order:' .. oid .. ':log' then take_back(KEYS[4], nl) end\n"
        "-- progress made: earlier claims were not this saga's fault\n"
        "if cur[7] then redis.call('HDEL', KEYS[1], 'claims') end\n"
        "if was ~= status then\n"
        "  redis.call('ZREM', P .. 'idx:status:' .. was, sid)\n"
        "  redis.call('ZADD', P .. 'idx:status:' .. status, cur[3] or ARGV[6], sid)\n"
        "end\n"
        "local set = {'status', status}\n"
        "if status == 'error' then set[3] = 'failed_from'; set[4] = was end\n"
        "-- every mode but a step gives its stream entry up (below)\n"
        "if mode ~= 'step' then set[#set + 1] = 'stream_id'; set[#set + 1] = '' end\n"
        "for i = fs, #ARGV do set[#set + 1] = ARGV[i] end\n"
        "redis.call('HSET', KEYS[1], unpack(set))\n"
        "if inline and nh > 0 then\n"
        "  redis.call('RPUSH', KEYS[2], unpack(ARGV, fe, fe + nh - 1))\n"
        "end\n"
        "if oid ~= '' then\n"
        "  local ok = P .. 'order:' .. oid\n"
        "  if inline and nl > 0 and KEYS[4] == ok .. ':log' then\n"
        "    redis.call('RPUSH', KEYS[4], unpack(ARGV, fe + nh, fs - 1))\n"
        "  end\n"
        "  if ARGV[7] ~= '' then redis.call('RPUSH', ok .. ':status', ARGV[7]) end\n"
        "  if nord > 0 then\n"
        "    redis.call('HSET', ok, unpack(ARGV, 13, 12 + nord))\n"
        "    -- the counterparty's number names the order from the commit that writes it\n"
        "    for i = 13, 11 + nord, 2 do\n"
        "      if ARGV[i] == 'counterparty_order_number' and ARGV[i + 1] ~= '' then\n"
        "        local dt = redis.call('HGET', ok, 'destination_tenant')\n"
        "        if dt then\n"
        "          redis.call('SET', P .. 'orderref:' .. dt .. ':' .. ARGV[i + 1], oid, 'NX')\n"
        "        end\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "end\n"
        "local function drop_entry()\n"
        "  if entry and entry ~= '' then\n"
        "    redis.call('XACK', KEYS[3], 'workers', entry)\n"
        "    redis.call('XDEL', KEYS[3], entry)\n"
        "  end\n"
        "end\n"
        "if mode == 'end' then\n"
        "  drop_entry()\n"
        "  leave(KEYS[3], sid, oid, stype, KEYS[1], KEYS[2], ARGV[9], ARGV[6], ARGV[11])\n"
        "elseif mode == 'delay' then\n"
        "  drop_entry()\n"
        "  redis.call('ZADD', P .. 'delayed', ARGV[9], sid)\n"
        "  redis.call('ZADD', P .. 'active', ARGV[6], sid)\n"
        "elseif mode == 'park' then\n"
        "  drop_entry()\n"
        "  redis.call('ZADD', P .. 'active', ARGV[6], sid)\n"
        "end\n"
        "return 'ok'\n",
};

/*
 * KEYS: delayed, stream. ARGV: 1 now_ms, 2 limit.
 * Moves up to limit sagas whose retry time has come back to the stream; returns how many.
 */
store_script_t saga_lua_wake_due = {
    .name = "wake_due",
    .source =
        "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
        "for _, sid in ipairs(due) do\n"
        "  redis.call('ZREM', KEYS[1], sid)\n"
        "  local sk = 'cr:{cr}:saga:' .. sid\n"
        "  if redis.call('EXISTS', sk) == 1 then\n"
        "    local id = redis.call('XADD', KEYS[2], '*', 'saga_id', sid, 'type', 'wake', 'tenant', '')\n"
        "    redis.call('HSET', sk, 'stream_id', id)\n"
        "  end\n"
        "end\n"
        "return #due\n",
};

/*
 * KEYS: stream. ARGV: 1 order_id, 2 now (ISO).
 * Marks the order accepted and wakes its create saga if it waits in "requested".
 * Returns "resumed", "accepted", "already", "canceled" or "gone" (the order reaper removed the
 * order since the saga began: an accept is not in its order's queue).
 */
store_script_t saga_lua_accept = {
    .name = "accept",
    .source =
        "local P = 'cr:{cr}:'\n"
        "local ok = P .. 'order:' .. ARGV[1]\n"
        "if redis.call('EXISTS', ok) == 0 then return 'gone' end\n"
        "if redis.call('HGET', ok, 'canceled') == '1' then return 'canceled' end\n"
        "local was = redis.call('HGET', ok, 'accepted')\n"
        "redis.call('HSET', ok, 'accepted', '1', 'updated_at', ARGV[2])\n"
        "local head = redis.call('LINDEX', ok .. ':q', 0)\n"
        "if head then\n"
        "  local hk = P .. 'saga:' .. head\n"
        "  local h = redis.call('HMGET', hk, 'type', 'status')\n"
        "  if h[1] == 'order_create' and h[2] == 'requested' then\n"
        "    local id = redis.call('XADD', KEYS[1], '*', 'saga_id', head, 'type', 'wake', 'tenant', '')\n"
        "    redis.call('HSET', hk, 'stream_id', id)\n"
        "    return 'resumed'\n"
        "  end\n"
        "end\n"
        "if was == '1' then return 'already' end\n"
        "return 'accepted'\n",
};

/*
 * KEYS: active, delayed, stream. ARGV: 1 older_than_ms, 2 limit, 3 now_ms.
 * Looks at up to limit unfinished sagas not queued or parked since older_than_ms. One that is
 * neither parked for a retry, nor waiting for an accept or behind its order's head, nor holding
 * a live stream entry is re-queued (a new entry). Ended sagas leave the index. Returns how many
 * were re-queued.
 */
store_script_t saga_lua_reconcile = {
    .name = "reconcile",
    .source =
        "local P = 'cr:{cr}:'\n"
        "local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
        "local requeued = 0\n"
        "for _, sid in ipairs(old) do\n"
        "  local sk = P .. 'saga:' .. sid\n"
        "  local s = redis.call('HMGET', sk, 'status', 'stream_id', 'order_id', 'type')\n"
        "  local st = s[1]\n"
        "  if not st or st == 'synced' or st == 'canceled' or st == 'rejected' or st == 'error' then\n"
        "    redis.call('ZREM', KEYS[1], sid)\n"
        "  else\n"
        "    local waiting = redis.call('ZSCORE', KEYS[2], sid) ~= false\n"
        "    local oid = s[3] or ''\n"
        "    if not waiting and oid ~= '' then\n"
        "      if st == 'requested' then\n"
        "        waiting = redis.call('HGET', P .. 'order:' .. oid, 'accepted') ~= '1'\n"
        "      end\n"
        "      if not waiting and s[4] ~= 'order_accept' then\n"
        "        waiting = redis.call('LINDEX', P .. 'order:' .. oid .. ':q', 0) ~= sid\n"
        "      end\n"
        "    end\n"
        "    if not waiting and s[2] and s[2] ~= '' then\n"
        "      waiting = #redis.call('XRANGE', KEYS[3], s[2], s[2]) > 0\n"
        "    end\n"
        "    if not waiting then\n"
        "      local id = redis.call('XADD', KEYS[3], '*', 'saga_id', sid, 'type', 'wake', 'tenant', '')\n"
        "      redis.call('HSET', sk, 'stream_id', id)\n"
        "      requeued = requeued + 1\n"
        "    end\n"
        "    redis.call('ZADD', KEYS[1], ARGV[3], sid)\n"
        "  end\n"
        "end\n"
        "return requeued\n",
};

/*
 * KEYS: saga, history, stream. ARGV: 1 saga_id, 2 tenant ("*" for an operator: any tenant),
 * 3 now_ms, 4 history entry, 5.. saga types the caller's key may retry.
 * Re-runs a saga that ended "error" from the stage that failed: status back to "failed_from",
 * attempts 0, retried 1, persisted again (no expiry), back into the active index and, for an
 * order's saga, back into the order's queue (it runs when it reaches the head). Returns
 * {"ok", status}, {"notfound"}, {"forbidden"} (type outside the key's scopes) or
 * {"conflict", status}.
 */
store_script_t saga_lua_retry = {
    .name = "retry",
    .source =
        "local P = 'cr:{cr}:'\n"
        "local sid = ARGV[1]\n"
        "local s = redis.call('HMGET', KEYS[1], 'tenant', 'type', 'status', 'failed_from',\n"
        "                     'order_id')\n"
        "if not s[1] or (ARGV[2] ~= '*' and s[1] ~= ARGV[2]) then return {'notfound'} end\n"
        "local allowed = false\n"
        "for i = 5, #ARGV do if ARGV[i] == s[2] then allowed = true end end\n"
        "if not allowed then return {'forbidden'} end\n"
        "if s[3] ~= 'error' then return {'conflict', s[3]} end\n"
        "local from = s[4] or 'pending'\n"
        "if from == 'error' or from == '' then from = 'pending' end\n"
        "local created = redis.call('HGET', KEYS[1], 'created_ms') or ARGV[3]\n"
        "redis.call('ZREM', P .. 'idx:status:error', sid)\n"
        "redis.call('ZADD', P .. 'idx:status:' .. from, created, sid)\n"
        "redis.call('HSET', KEYS[1], 'status', from, 'attempts', '0', 'retried', '1',\n"
        "           'message', 'retry requested', 'stream_id', '')\n"
        "redis.call('PERSIST', KEYS[1])\n"
        "redis.call('PERSIST', KEYS[2])\n"
        "redis.call('RPUSH', KEYS[2], ARGV[4])\n"
        "redis.call('ZADD', P .. 'active', ARGV[3], sid)\n"
        "local oid = s[5] or ''\n"
        "if oid ~= '' and s[2] ~= 'order_accept' then\n"
        "  local q = P .. 'order:' .. oid .. ':q'\n"
        "  redis.call('RPUSH', q, sid)\n"
        "  if redis.call('LINDEX', q, 0) ~= sid then return {'ok', from} end\n"
        "end\n"
        "local id = redis.call('XADD', KEYS[3], '*', 'saga_id', sid, 'type', 'retry',\n"
        "                      'tenant', ARGV[2])\n"
        "redis.call('HSET', KEYS[1], 'stream_id', id)\n"
        "return {'ok', from}\n",
};

/*
 * KEYS: stream. ARGV: 1 idle_ms, 2 this process's consumer name.
 * Deletes consumers of the group that have no pending entries and have been idle longer than
 * idle_ms (processes that exited or restarted under a new name). A consumer with pending entries
 * is left for XAUTOCLAIM: deleting it would drop its entries from the group. Returns how many.
 */
store_script_t saga_lua_reap = {
    .name = "reap",
    .source =
        "local ok, cs = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], 'workers')\n"
        "if not ok then return 0 end\n"
        "local n = 0\n"
        "for _, c in ipairs(cs) do\n"
        "  local f = {}\n"
        "  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
        "  if f['pending'] == 0 and f['idle'] > tonumber(ARGV[1]) and f['name'] ~= ARGV[2] then\n"
        "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], 'workers', f['name'])\n"
        "    n = n + 1\n"
        "  end\n"
        "end\n"
        "return n\n",
};

/*
 * KEYS: stream. ARGV: 1 this process's consumer name, then saga_id, epoch pairs of its runs.
 * A run that takes longer than claim_idle_ms (a slow destination, a long timeout) must not look
 * abandoned: for each saga still held at that epoch and not ended, its stream entry is claimed
 * again by this consumer (XCLAIM with min-idle 0 and JUSTID resets the entry's idle time
 * without counting a delivery). A saga taken by another process in the meantime has a newer
 * epoch and is left alone. Returns how many entries were refreshed.
 */
store_script_t saga_lua_touch = {
    .name = "touch",
    .source =
        "local n = 0\n"
        "for i = 2, #ARGV - 1, 2 do\n"
        "  local s = redis.call('HMGET', 'cr:{cr}:saga:' .. ARGV[i], 'epoch', 'stream_id', 'status')\n"
        "  local st = s[3]\n"
        "  if s[1] == ARGV[i + 1] and s[2] and s[2] ~= '' and st ~= 'synced' and\n"
        "     st ~= 'canceled' and st ~= 'rejected' and st ~= 'error' then\n"
        "    local ok, r = pcall(redis.call, 'XCLAIM', KEYS[1], 'workers', ARGV[1], 0, s[2],\n"
        "                        'JUSTID')\n"
        "    if ok then n = n + #r end\n"
        "  end\n"
        "end\n"
        "return n\n",
};

/*
 * ARGV: saga_id, epoch, entry triples of runs that ended in a live process because Redis did not
 * answer one of their writes (saga_engine_release). For each saga still at that epoch and
 * marked "started" with that entry, "started" goes back to "0", so the claim that resumes it
 * charges it nothing: no worker died. A saga begun again since (a newer epoch) is left alone.
 * Returns how many were released.
 */
store_script_t saga_lua_release = {
    .name = "release",
    .source =
        "local n = 0\n"
        "for i = 1, #ARGV - 2, 3 do\n"
        "  local k = 'cr:{cr}:saga:' .. ARGV[i]\n"
        "  local s = redis.call('HMGET', k, 'epoch', 'started')\n"
        "  if s[1] == ARGV[i + 1] and s[2] == ARGV[i + 2] then\n"
        "    redis.call('HSET', k, 'started', '0')\n"
        "    n = n + 1\n"
        "  end\n"
        "end\n"
        "return n\n",
};
