-- wrk script: POST the same V2 inference request with binary tensor data (Triton's extension): a JSON
-- header of STRATUS_BENCH_HEADER_LEN bytes, then the 30 FP32 values raw. Written by
-- bench/serving/model.py (binary_request_body) to the file named by STRATUS_BENCH_BODY.
local path = assert(os.getenv("STRATUS_BENCH_BODY"), "set STRATUS_BENCH_BODY to the request body file")
local length = assert(os.getenv("STRATUS_BENCH_HEADER_LEN"), "set STRATUS_BENCH_HEADER_LEN")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = length
