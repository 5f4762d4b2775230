-- GET /oauth/connect repeatedly and append each code from the 302 Location to a file:
-- wrk ... -s mint.lua "http://.../oauth/connect?..." -- OUT_FILE
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local out

function init(args)
  out = io.open(args[1], "a")
end

function response(status, headers, body)
  local location = headers["Location"] or headers["location"] or ""
  local code = string.match(location, "[?&]code=([^&]+)")
  if status == 302 and code then
    out:write(code, "\n")
    out:flush()
  end
end
