-- GET the URL as given (headers come from wrk -H); only reports.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
