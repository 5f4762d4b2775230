-- Shared by every scenario: print wrk's summary as one JSON line the runner parses.
-- Latencies are in microseconds; status errors are responses with status >= 400.
-- A script that checks its answers counts them in the thread globals bench_ok / bench_bad
-- (summed here over the threads), and may define bench_done(threads) to save what its
-- threads kept (thread:get copies a thread's global into this, the main, state).

local threads = {}
bench_ok, bench_bad = 0, 0

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + (thread:get("bench_ok") or 0)
    bad = bad + (thread:get("bench_bad") or 0)
  end
  if bench_done then bench_done(threads) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"ok":%d,"bad":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, ok, bad))
end
