-- POST /v1/order/update_status naming one of N preloaded orders at random (order numbers
-- ST-0 .. ST-<N-1> of acme-supply, sent to swift-haul; run.sh "stored" preloads them).
--   wrk -s bench/lua/stored.lua URL -- TAG N
-- Unique Idempotency-Key per request. See bench.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

local n_orders = 1000
bench.run{
  init = function(args)
    n_orders = tonumber(args[2] or "") or 1000
    math.randomseed(os.time() + (tid or 1) * 7919)
  end,
  path = "/v1/order/update_status",
  body = function(tag, n)
    return bench.update_status_body("ST-" .. math.random(0, n_orders - 1))
  end}
