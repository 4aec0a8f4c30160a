-- POST /v1/order/cancel with a body the API refuses (422: the order's number is not a string),
-- with the demo's valid key and headers: answered without Redis, so a client sending these as
-- fast as they are answered saturates the gateway's core (bench/run.sh flood). See bench.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

bench.run{path = "/v1/order/cancel", body = function(tag, n) return '{"order_number": 5}' end}
