-- wrk script for the Spoolway benches: POST /track/event with small JSON bodies.
-- Configured by environment (all Lua states see it):
--   BENCH_MODE      "max" (closed loop, as fast as possible) | "paced" (delay()-paced)
--   BENCH_RATE      paced: total target rate, req/s, over all threads
--   BENCH_THREADS   must equal wrk -t (to split the rate)
--   BENCH_PATH      default /track/event
--   BENCH_TAG       goes into sessionId
--   BENCH_IDS_FILE  when set: the eventId of every 2xx answer is recorded, with the
--                   wall-clock ms at which the answer arrived, and written there by done()
-- done() prints one line "BENCH_JSON {...}" with counts, statuses and percentiles (µs).
--
-- Pacing: each thread hands out send slots at a fixed interval (rate/threads); a
-- connection that is ready waits for its slot (delay(), whole ms). When all
-- connections are busy the slots fall behind and requests go out at once
-- (catch-up, capped at 1 s of backlog). This is a paced CLOSED-LOOP approximation:
-- wrk measures latency from the actual send, so it is NOT coordinated-omission corrected.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function clock_ms(clk)
  ffi.C.clock_gettime(clk, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local function mono_ms() return clock_ms(1) end  -- CLOCK_MONOTONIC
local function wall_ms() return clock_ms(0) end  -- CLOCK_REALTIME

local threads = {}
local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
  table.insert(threads, thread)
end

local mode, interval, capture, next_slot

function init(args)
  mode = os.getenv("BENCH_MODE") or "max"
  local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
  local path = os.getenv("BENCH_PATH") or "/track/event"
  if path == "" then path = "/track/event" end
  local tag = os.getenv("BENCH_TAG") or "b"
  capture = (os.getenv("BENCH_IDS_FILE") or "") ~= ""
  if mode == "paced" and rate > 0 then interval = 1000 / (rate / nthreads) end
  counts = {}
  sent = 0
  ids = {}
  times = {}
  nids = 0
  reqs = {}
  for i = 1, 512 do
    local body = string.format('{"eventType":"bench","sessionId":"s-%s-%d-%d"}', tag, tid or 0, i)
    reqs[i] = wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
  end
end

function request()
  sent = sent + 1
  return reqs[(sent % 512) + 1]
end

if os.getenv("BENCH_MODE") == "paced" then
  function delay()
    local now = mono_ms()
    if next_slot == nil then next_slot = now end
    if next_slot < now - 1000 then next_slot = now - 1000 end
    local d = next_slot - now
    next_slot = next_slot + interval
    if d <= 0 then return 0 end
    return math.floor(d + 0.5)
  end
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if capture and status >= 200 and status < 300 then
    local eid = string.match(body, '"eventId":"([%x%-]+)"')
    if eid then
      nids = nids + 1
      ids[nids] = eid
      times[nids] = wall_ms()
    end
  end
end

function done(summary, latency, requests)
  local statuses = {}
  local total_sent = 0
  local nid = 0
  local ids_file = os.getenv("BENCH_IDS_FILE") or ""
  local f = nil
  if ids_file ~= "" then f = assert(io.open(ids_file, "w")) end
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do statuses[k] = (statuses[k] or 0) + v end
    total_sent = total_sent + (t:get("sent") or 0)
    if f then
      local tids = t:get("ids")
      local ttimes = t:get("times")
      for i = 1, #tids do
        f:write(string.format("%.1f %s\n", ttimes[i], tids[i]))
        nid = nid + 1
      end
    end
  end
  if f then f:close() end
  local parts = {}
  for k, v in pairs(statuses) do table.insert(parts, string.format('"%d":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"sent":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"statuses":{%s},"ids":%d,"ids_file":"%s"}\n',
    summary.duration, summary.requests, summary.bytes, total_sent,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ","), nid, ids_file))
end
