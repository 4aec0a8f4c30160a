-- bench.lua - shared by the wrk scripts in this folder (loaded with require from the script's
-- own directory, so `wrk -s bench/lua/cancel.lua URL -- TAG` works from anywhere).
--
-- A mix script calls bench.run{path = ..., body = function(tag, n) ... end} or
-- bench.run{pick = function(tag, n) return path, body end}; this installs wrk's setup, init,
-- request and done hooks:
--   * every request is built by hand (one string concatenation, no wrk.format table walk) with
--     the demo's valid key and headers: X-API-Key, X-Dest-Tenant-Name, Content-Type and a
--     unique Idempotency-Key; `n` counts the thread's requests, `tag` is "<run tag>-<thread>",
--     so order numbers and idempotency keys never repeat within or across runs;
--   * done() prints one line "BENCH_JSON {...}" (and a "BENCH_KV k=v ..." twin for awk):
--     requests (responses read), duration_s, rps, latency_ms p50/p90/p99/max/mean, non2xx
--     (wrk counts status >= 400 as errors.status), ok = requests - non2xx, sent (requests
--     written, summed over threads; sent - requests = in flight when wrk stopped), and socket
--     errors (connect/read/write/timeout).
-- Environment: BENCH_API_KEY (default demo-acme-key), BENCH_DEST (default swift-haul).
local M = {}

M.api_key = os.getenv("BENCH_API_KEY") or "demo-acme-key"
M.dest = os.getenv("BENCH_DEST") or "swift-haul"

local threads = {}
local nthreads = 0

function M.install_done()
  function setup(thread)
    nthreads = nthreads + 1
    thread:set("tid", nthreads)
    threads[nthreads] = thread
  end

  function done(summary, latency, requests)
    local sent = 0
    local known = false
    for i = 1, nthreads do
      local s = threads[i]:get("sent")
      if s then
        sent = sent + s
        known = true
      end
    end
    if not known then sent = -1 end
    local dur = summary.duration / 1e6
    local e = summary.errors
    local ok = summary.requests - e.status
    local rps = dur > 0 and summary.requests / dur or 0
    local function ms(us) return us / 1000.0 end
    local p50, p90, p99 = ms(latency:percentile(50)), ms(latency:percentile(90)),
                          ms(latency:percentile(99))
    local mx, mean = ms(latency.max), ms(latency.mean)
    io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,' ..
      '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f,"mean":%.3f},' ..
      '"non2xx":%d,"ok":%d,"sent":%d,"bytes":%d,' ..
      '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
      summary.requests, dur, rps, p50, p90, p99, mx, mean, e.status, ok, sent, summary.bytes,
      e.connect, e.read, e.write, e.timeout))
    io.write(string.format(
      'BENCH_KV requests=%d duration_s=%.3f rps=%.1f p50=%.3f p90=%.3f p99=%.3f max=%.3f ' ..
      'mean=%.3f non2xx=%d ok=%d sent=%d sock_connect=%d sock_read=%d sock_write=%d ' ..
      'sock_timeout=%d\n',
      summary.requests, dur, rps, p50, p90, p99, mx, mean, e.status, ok, sent,
      e.connect, e.read, e.write, e.timeout))
  end
end

-- spec: {path = "/v1/order/x", body = function(tag, n) -> string} or
--       {pick = function(tag, n) -> path, body}; idempotency (default true).
function M.run(spec)
  M.install_done()
  local prefix, tag
  local with_idem = spec.idempotency ~= false

  function init(args)
    sent = 0
    local run_tag = (args and args[1]) or tostring(os.time())
    tag = run_tag .. "-" .. tostring(tid or 1)
    M.args = args or {}
    if spec.init then spec.init(M.args) end
    prefix = "HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. tostring(wrk.port) ..
             "\r\nX-API-Key: " .. M.api_key ..
             "\r\nX-Dest-Tenant-Name: " .. M.dest ..
             "\r\nContent-Type: application/json\r\n"
  end

  function request()
    sent = sent + 1
    local path, body
    if spec.pick then
      path, body = spec.pick(tag, sent)
    else
      path, body = spec.path, spec.body(tag, sent)
    end
    local idem = with_idem and ("Idempotency-Key: bench-" .. tag .. "-" .. sent .. "\r\n") or ""
    return "POST " .. path .. " " .. prefix .. idem ..
           "Content-Length: " .. #body .. "\r\n\r\n" .. body
  end
end

-- Bodies, shaped like the README's examples (valid for the demo config's tenants/mappings).
function M.cancel_body(num)
  return '{"order":{"order_number":"' .. num .. '"},"reason_code":"customer_request"}'
end

function M.reset_body(num)
  return '{"order":{"order_number":"' .. num .. '"}}'
end

function M.update_status_body(num)
  return '{"order":{"order_number":"' .. num .. '"},"progress_status":"arrived_at_load",' ..
         '"location":{"source_id":"HOU-T1"},"eta":"2026-05-11T19:25:51.332Z",' ..
         '"assigned_to":"driver-17"}'
end

function M.create_body(num)
  return '{"order_number":"' .. num .. '","lines":[' ..
         '{"product":{"source_id":"ULSD"},"terminal":{"source_id":"HOU-T1"},' ..
         '"site":{"source_id":"ATX-S12"},"quantity":8500,"uom":"gal"},' ..
         '{"product":{"source_id":"RUL87"},"terminal":{"source_id":"DAL-T2"},' ..
         '"site":{"source_id":"SAT-S07"},"quantity":4200,"uom":"gal"}],' ..
         '"requested_delivery":"2026-05-12T14:00:00Z","notes":"Deliver to dock 3; call ahead."}'
end

return M
