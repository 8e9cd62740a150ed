-- wrk script for rake bench: cycles through BENCH_PATHS (space-separated, already in
-- the order of the mix) and stops each thread after its share of BENCH_REQUESTS. wrk
-- itself only stops at its -d duration, so each thread prints THREAD_DONE and the bench
-- sends wrk SIGINT once all have (wrk then prints its summary and calls done()).
-- PROGRESS lines let the bench draw its progress bar.
local paths = {}
for path in string.gmatch(os.getenv("BENCH_PATHS") or "/posts", "%S+") do
  table.insert(paths, path)
end
local total = tonumber(os.getenv("BENCH_REQUESTS") or "1000")
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local counter, quota, answered = 0, 0, 0
local all_threads = {}

function setup(thread)
  thread:set("id", #all_threads)
  table.insert(all_threads, thread)
end

function init(args)
  quota = math.floor(total / threads)
  if id < total % threads then quota = quota + 1 end
  counter = id
end

function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end

function response(status, headers, body)
  answered = answered + 1
  if answered % 50 == 0 then
    io.write("PROGRESS 50\n")
    io.flush()
  end
  if answered == quota then
    io.write(string.format("PROGRESS %d\nTHREAD_DONE\n", answered % 50))
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
    '"errors_status":%d,"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
