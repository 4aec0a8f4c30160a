-- GET /healthz, a static request (no request() hook: wrk's fastest path), keep-alive.
-- done() prints the BENCH_JSON line (sent is -1: unknown for static requests). See bench.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")
wrk.method = "GET"
wrk.path = "/healthz"
bench.install_done()
