-- wrk script: counts responses outside 2xx in every thread and prints one summary line with
-- wrk's own socket error counts. wrk keeps a Lua state per thread; done() adds them up.
-- WRK_DELAY_MS set: each connection waits that long before each request, a steady rate.
local threads = {}
local pace = tonumber(os.getenv("WRK_DELAY_MS") or "")
if pace then
  function delay()
    return pace
  end
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("non2xx")
  end
  io.write(string.format("requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d 2xx=%d\n",
    summary.requests, total, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), summary.requests - total))
end
