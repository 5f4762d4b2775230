-- POST the same form body on every request: wrk ... -s post_form.lua URL -- "a=1&b=2"
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local prepared

function init(args)
  prepared = wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, args[1])
end

function request()
  return prepared
end
