-- GET /oauth/connect repeatedly and append each code from the 302 Location to a file:
-- wrk ... -s mint.lua "http://.../oauth/connect?..." -- OUT_FILE [PATHS_FILE]
-- PATHS_FILE (optional): one path with its query a line, requested in turn (a code for each of
-- several customers); without it every request is the URL's.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local out
local paths = {}
local turn = 0

function init(args)
  out = io.open(args[1], "a")
  if args[2] then
    for line in io.lines(args[2]) do
      if #line > 0 then paths[#paths + 1] = line end
    end
  end
end

function request()
  if #paths == 0 then return wrk.format() end
  turn = turn % #paths + 1
  return wrk.format("GET", paths[turn])
end

function response(status, headers, body)
  local location = headers["Location"] or headers["location"] or ""
  local code = string.match(location, "[?&]code=([^&]+)")
  if status == 302 and code then
    out:write(code, "\n")
    out:flush()
  end
end
