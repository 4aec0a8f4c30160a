-- POST /v1/order/create with two order lines, a unique order_number (order numbers are unique
-- per origin tenant: a repeat would be 409) and Idempotency-Key per request. Every saga is
-- delivered to swift-haul's webhook (the loopback destination). See bench.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

bench.run{path = "/v1/order/create",
          body = function(tag, n) return bench.create_body("PO-" .. tag .. "-" .. n) end}
