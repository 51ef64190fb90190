-- wrk script: POST the same V2 inference request (1 row x 30 FP32) on every call.
-- The body is written by bench/serving/model.py (request_body) to the file named by STRATUS_BENCH_BODY,
-- so the bench and this script cannot disagree on it.
local path = assert(os.getenv("STRATUS_BENCH_BODY"), "set STRATUS_BENCH_BODY to the request body file")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
