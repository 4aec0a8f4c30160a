-- POST /v1/order/update_status (acme-supply -> swift-haul, location by source_id), a new
-- order number and Idempotency-Key per request. See bench.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

bench.run{path = "/v1/order/update_status",
          body = function(tag, n) return bench.update_status_body("PO-" .. tag .. "-" .. n) end}
