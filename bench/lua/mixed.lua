-- A mix per 10 requests of one thread: 4 create, 3 update_status, 2 reset, 1 cancel; the
-- non-create ones name the order this thread created last, so their sagas find a real order.
-- Unique Idempotency-Key per request. See bench.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

local last = nil
bench.run{pick = function(tag, n)
  local k = n % 10
  if last == nil or k < 4 then
    last = "PO-" .. tag .. "-" .. n
    return "/v1/order/create", bench.create_body(last)
  elseif k < 7 then
    return "/v1/order/update_status", bench.update_status_body(last)
  elseif k < 9 then
    return "/v1/order/reset", bench.reset_body(last)
  end
  local num = last
  last = nil -- a canceled order takes no more mutations
  return "/v1/order/cancel", bench.cancel_body(num)
end}
