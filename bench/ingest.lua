-- wrk script for bench/ingest.py: Alertmanager 0.27 webhook bodies, varied per request.
-- Environment: WARROOM_CASE = repeat | open | storm, WARROOM_PER_BODY = alerts per body,
-- WARROOM_SEED = a string that makes this run's fingerprints and groups new.
-- repeat: the same alert every time (the dedup path); open: a new alert per request into one
-- of 50 open groups; storm: a new group (so a new incident) per request.
local case = os.getenv("WARROOM_CASE") or "open"
local per = tonumber(os.getenv("WARROOM_PER_BODY") or "1")
local seed = os.getenv("WARROOM_SEED") or "s"
local n = 0
statuses = {}

local function alert(fingerprint, group)
  return '{"status":"firing","labels":{"alertname":"Bench' .. group .. '","instance":"'
    .. fingerprint .. '","severity":"warning"},"annotations":{"summary":"bench group '
    .. group .. '"},"startsAt":"2026-11-26T09:00:00Z","endsAt":"0001-01-01T00:00:00Z",'
    .. '"generatorURL":"http://prometheus/graph","fingerprint":"' .. fingerprint .. '"}'
end

request = function()
  n = n + 1
  local group, base
  if case == "repeat" then
    group, base = 0, seed .. "-same"
  elseif case == "storm" then
    group, base = seed .. "-" .. n, seed .. "-" .. n
  else
    group, base = n % 50, seed .. "-" .. n
  end
  local alerts = {}
  for i = 1, per do alerts[i] = alert(base .. "-" .. i, group) end
  local body = '{"version":"4","groupKey":"{}:{alertname=\\"Bench' .. group .. '\\",run=\\"'
    .. seed .. '\\"}","status":"firing","receiver":"bench","groupLabels":{"alertname":"Bench'
    .. group .. '"},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",'
    .. '"truncatedAlerts":0,"alerts":[' .. table.concat(alerts, ",") .. ']}'
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local threads = {}
setup = function(thread) table.insert(threads, thread) end

done = function(summary, latency, requests)
  local codes = {}
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses")) do
      codes[#codes + 1] = string.format('"%d": %d', code, count)
    end
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"codes": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, table.concat(codes, ", ")))
end
