-- POST /v1/order/cancel, a new order number and Idempotency-Key per request (the saga then
-- ends "error: order not found" in the engine; intake is what this measures). See bench.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

bench.run{path = "/v1/order/cancel",
          body = function(tag, n) return bench.cancel_body("PO-" .. tag .. "-" .. n) end}
