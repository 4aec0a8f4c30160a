-- POST /v1/order/reset, a new order number and Idempotency-Key per request. See bench.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

bench.run{path = "/v1/order/reset",
          body = function(tag, n) return bench.reset_body("PO-" .. tag .. "-" .. n) end}
