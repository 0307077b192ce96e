-- wrk script: counts responses by body (GET /pid answers the worker's pid) and prints "pid count" lines at the end.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body) counts[body] = (counts[body] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for pid, n in pairs(thread:get("counts")) do io.write(string.format("share %s %d\n", pid, n)) end
  end
end
