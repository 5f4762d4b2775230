-- RFC 7662 introspection of live tokens, a different one on each request, in turn:
-- wrk ... -s introspect.lua URL -- TOKENS_FILE "app_id=...&secret=..."
-- Counts the answers that say "active":true (bench_ok) and the others (bench_bad).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local bodies = {}
local next_body = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then bodies[#bodies + 1] = args[2] .. "&token=" .. line end
  end
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[next_body])
end

function response(status, _, body)
  if status == 200 and string.find(body, '"active":true', 1, true) then
    bench_ok = bench_ok + 1
  else
    bench_bad = bench_bad + 1
  end
end
