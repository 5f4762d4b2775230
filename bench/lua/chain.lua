-- Chains of single-use values, each answer giving the next (refresh rotation):
-- wrk ... -s chain.lua URL -- IN_FILE OUT_FILE BODY_PREFIX FIELD
-- Each request POSTs BODY_PREFIX .. the value at the front of the queue (read from IN_FILE), so
-- no value is presented twice. FIELD's string value in each 200 answer (the new refresh token)
-- goes to the back of the queue: the chain continues from the answer. At the end OUT_FILE gets
-- the queue, for the next run. A request wrk abandons at its stop loses its chain; an empty
-- queue stops the thread rather than replay a value.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local prefix, pattern
queue, head, tail, out_path = {}, 1, 0, nil  -- globals: bench_done reads them through thread:get

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      tail = tail + 1
      queue[tail] = line
    end
  end
  out_path, prefix = args[2], args[3]
  pattern = '"' .. args[4] .. '":"([^"]+)"'
end

function request()
  local value = queue[head]
  if value == nil then
    wrk.thread:stop()
    value = "exhausted"
  else
    queue[head] = nil
    head = head + 1
  end
  return wrk.format("POST", nil, headers, prefix .. value)
end

function response(status, _, body)
  local value = status == 200 and string.match(body, pattern)
  if value then
    bench_ok = bench_ok + 1
    tail = tail + 1
    queue[tail] = value
  else
    bench_bad = bench_bad + 1
  end
end

function bench_done(threads)
  local out = io.open(threads[1]:get("out_path"), "w")
  for _, thread in ipairs(threads) do
    local q = thread:get("queue")
    for i = thread:get("head"), thread:get("tail") do out:write(q[i], "\n") end
  end
  out:close()
end
