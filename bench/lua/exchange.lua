-- One distinct authorization code per request (codes are single use):
-- wrk ... -s exchange.lua URL -- CODES_FILE "app_id=...&secret=...&grant_type=authorization_code"
-- When the file runs out the thread stops rather than replaying a code.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local codes = {}
local next_code = 1
local prefix
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then codes[#codes + 1] = line end
  end
  prefix = args[2] .. "&code="
end

function request()
  local code = codes[next_code]
  if code == nil then
    wrk.thread:stop()
    code = "exhausted"
  end
  next_code = next_code + 1
  return wrk.format("POST", nil, headers, prefix .. code)
end
