-- wrk script for the end-to-end / seed-baseline / soak benches (bench/e2e.ts, bench/soak.ts).
-- Generates every request on the fly (no fixed pool): realistic page views from browser
-- sessions plus the other tracking endpoints, and counts accepted EVENTS (a batch's 202
-- carries "count":N, a single event's 202 counts 1).
--
-- Environment (all Lua states see it):
--   BENCH_PROFILE   mixed   (default) per REQUEST: 70 % /track/view, 8 % /track/event, 4 % engagement,
--                           3 % conversion, 10 % /track/interaction (5 events), 5 % /track/batch (50 events)
--                           → 3.85 events per request on average, 18 % of the events are views
--                   browser per EVENT ≈ 70 % views: 79 % view, 3 % conversion, 6 % engagement,
--                           12 % interaction (2 events) → 1.12 events per request
--                   batch50 100 % /track/batch with 50 /track/event bodies
--                   views   100 % /track/view
--   BENCH_MODE      "max" (closed loop) | "paced" (delay(), BENCH_RATE req/s over all threads)
--   BENCH_RATE, BENCH_THREADS (= wrk -t), BENCH_TAG (goes into session ids)
-- done() prints one line "BENCH_JSON {...}".
--
-- Sessions: every thread opens a new session every 6 requests; a session keeps its UA (15
-- weighted real browser UAs; 3 % of the sessions are bots), its public IPv4 (sent as
-- X-Forwarded-For: the servers trust loopback proxies), Accept-Language and site (Origin, one
-- of 5 registered hosts). Views carry page URLs, 35 % a referrer, 20 % UTM attribution and the
-- client's device data.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } e2e_timespec;
  int clock_gettime(int clk_id, e2e_timespec *tp);
]]
local ts = ffi.new("e2e_timespec")
local function mono_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
  table.insert(threads, thread)
end

local UAS = {
  { "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 22 },
  { "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 10 },
  { "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 16 },
  { "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36", 12 },
  { "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", 7 },
  { "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", 5 },
  { "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67", 6 },
  { "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 3 },
  { "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.118 Mobile Safari/537.36", 4 },
  { "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 2 },
  { "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36", 3 },
  { "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/459.0.0.41.110]", 2 },
  { "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", 2 },
  { "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36", 1 },
  { "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 2 },
}
local BOT_UAS = {
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
  "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
}
-- keep in sync with E2E_HOSTS in bench/e2e-lib.ts (registered as domains)
local HOSTS = { "shop.example.com", "blog.example.com", "www.acme.test", "docs.acme.test", "news.example.org" }
local PATHS = { "/", "/pricing", "/blog/launch", "/docs/getting-started", "/product/42", "/cart", "/checkout", "/about", "/contact" }
local REFERRERS = {
  "https://www.google.com/", "https://www.google.co.uk/", "https://t.co/abc", "https://www.facebook.com/",
  "https://news.ycombinator.com/", "https://duckduckgo.com/", "https://partner.example.net/review",
}
local UTMS = {
  '"utmSource":"newsletter","utmMedium":"email","utmCampaign":"spring-sale"',
  '"utmSource":"google","utmMedium":"cpc","utmCampaign":"brand","utmTerm":"acme shoes"',
  '"utmSource":"facebook","utmMedium":"social","utmCampaign":"launch"',
}
local LANGS = { "en-US,en;q=0.9", "en-GB,en;q=0.8", "de-DE,de;q=0.9,en;q=0.5", "fr-FR,fr;q=0.9", "es-ES,es;q=0.9" }
local FIRST_OCTETS = { 24, 31, 46, 62, 78, 81, 89, 92, 104, 151, 176, 185, 193, 212 }
local DESKTOP = '"clientDevice":{"screenWidth":1920,"screenHeight":1080,"viewportWidth":1440,"viewportHeight":900,"pixelRatio":1,"colorDepth":24,"hardwareConcurrency":8,"language":"en-US","timezone":"Europe/Berlin","cookiesEnabled":true}'
local MOBILE = '"clientDevice":{"screenWidth":390,"screenHeight":844,"viewportWidth":390,"viewportHeight":664,"pixelRatio":3,"touchPoints":5,"language":"en-US","timezone":"Europe/London"}'
local EVENT_TYPES = { "click", "scroll", "signup_click", "add_to_cart", "video_play", "search" }

local UA_TOTAL = 0
for _, u in ipairs(UAS) do UA_TOTAL = UA_TOTAL + u[2] end

local mode, interval, next_slot, profile, tag
local seq = 0            -- requests generated by this thread
local session = nil      -- current session's attributes

local function pick(t) return t[math.random(#t)] end

local function new_session()
  local n = math.floor(seq / 6)
  local s = {}
  s.id = string.format("s-%s-%d-%d", tag, tid or 0, n)
  if math.random() < 0.03 then
    s.ua = pick(BOT_UAS)
    s.mobile = false
  else
    local r = math.random() * UA_TOTAL
    s.ua = UAS[1][1]
    for _, u in ipairs(UAS) do
      r = r - u[2]
      if r < 0 then s.ua = u[1]; break end
    end
    s.mobile = (string.find(s.ua, "Mobile", 1, true) or string.find(s.ua, "iPhone", 1, true) or string.find(s.ua, "Android", 1, true)) ~= nil
  end
  s.ip = string.format("%d.%d.%d.%d", pick(FIRST_OCTETS), math.random(0, 255), math.random(0, 255), math.random(1, 254))
  s.lang = pick(LANGS)
  s.host = pick(HOSTS)
  if math.random() < 0.2 then s.user = string.format("u-%s-%d-%d", tag, tid or 0, n) end
  s.headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = s.ua,
    ["X-Forwarded-For"] = s.ip,
    ["Accept-Language"] = s.lang,
    ["Origin"] = "https://" .. s.host,
  }
  return s
end

local function page(s)
  local q = ""
  if math.random() < 0.2 then q = "?ref=x" end
  return "https://" .. s.host .. pick(PATHS) .. q
end

local function view_body(s)
  local parts = { string.format('{"sessionId":"%s","pageUrl":"%s"', s.id, page(s)) }
  if s.user then table.insert(parts, string.format(',"userId":"%s"', s.user)) end
  local ref = nil
  if math.random() < 0.35 then
    ref = pick(REFERRERS)
    table.insert(parts, string.format(',"referrer":"%s"', ref))
  end
  if math.random() < 0.2 then table.insert(parts, ',"attribution":{' .. pick(UTMS) .. '}') end
  table.insert(parts, ',' .. (s.mobile and MOBILE or DESKTOP))
  table.insert(parts, string.format(',"contentType":"article","app":"web","duration":%d}', math.random(0, 30000)))
  return table.concat(parts)
end

local function event_item(s)
  return string.format('{"eventType":"%s","sessionId":"%s","pageUrl":"%s","metadata":{"x":%d,"y":%d,"selector":"#buy-now"}}',
    pick(EVENT_TYPES), s.id, page(s), math.random(0, 1000), math.random(0, 800))
end

local function interaction_body(s, n)
  local items = {}
  for i = 1, n do
    items[i] = string.format('{"type":"%s","sessionId":"%s","data":{"x":%d,"y":%d}}',
      pick({ "click", "scroll", "resize" }), s.id, math.random(0, 1000), math.random(0, 800))
  end
  return '{"events":[' .. table.concat(items, ",") .. ']}'
end

local function batch_body(s, n)
  local items = {}
  for i = 1, n do items[i] = event_item(s) end
  return '{"events":[' .. table.concat(items, ",") .. ']}'
end

local function engagement_body(s)
  return string.format('{"userId":"%s","metricType":"%s","targetId":"post-%d","targetType":"post"}',
    s.user or s.id, pick({ "like", "comment", "subscribe" }), math.random(0, 100))
end

local function conversion_body(s)
  return string.format('{"conversionType":"%s","sessionId":"%s","value":%d.%02d,"currency":"%s"}',
    pick({ "purchase", "signup", "lead" }), s.id, math.random(0, 199), math.random(0, 99), pick({ "EUR", "USD" }))
end

function init(args)
  mode = os.getenv("BENCH_MODE") or "max"
  profile = os.getenv("BENCH_PROFILE") or "mixed"
  tag = os.getenv("BENCH_TAG") or "e"
  local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
  if mode == "paced" and rate > 0 then interval = 1000 / (rate / nthreads) end
  math.randomseed((tid or 1) * 7919 + os.time())
  counts = {}
  sent = 0
  acc = 0
end

function request()
  if seq % 6 == 0 or session == nil then session = new_session() end
  seq = seq + 1
  sent = sent + 1
  local s = session
  local r = math.random() * 100
  local path, body
  if profile == "batch50" then
    path, body = "/track/batch", batch_body(s, 50)
  elseif profile == "views" then
    path, body = "/track/view", view_body(s)
  elseif profile == "browser" then
    if r < 79 then path, body = "/track/view", view_body(s)
    elseif r < 82 then path, body = "/track/conversion", conversion_body(s)
    elseif r < 88 then path, body = "/track/engagement", engagement_body(s)
    else path, body = "/track/interaction", interaction_body(s, 2) end
  else
    if r < 70 then path, body = "/track/view", view_body(s)
    elseif r < 78 then path, body = "/track/event", event_item(s)
    elseif r < 82 then path, body = "/track/engagement", engagement_body(s)
    elseif r < 85 then path, body = "/track/conversion", conversion_body(s)
    elseif r < 95 then path, body = "/track/interaction", interaction_body(s, 5)
    else path, body = "/track/batch", batch_body(s, 50) end
  end
  return wrk.format("POST", path, s.headers, body)
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
  if status >= 200 and status < 300 then
    local c = string.match(body, '"count":(%d+)')
    if c then acc = acc + tonumber(c) else acc = acc + 1 end
  end
end

function done(summary, latency, requests)
  local statuses = {}
  local total_sent, total_acc = 0, 0
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do statuses[k] = (statuses[k] or 0) + v end
    total_sent = total_sent + (t:get("sent") or 0)
    total_acc = total_acc + (t:get("acc") or 0)
  end
  local parts = {}
  for k, v in pairs(statuses) do table.insert(parts, string.format('"%d":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"sent":%d,"accepted_events":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"statuses":{%s}}\n',
    summary.duration, summary.requests, summary.bytes, total_sent, total_acc,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ",")))
end
