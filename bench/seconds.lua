-- wrk script: counts responses in each second of the run and prints "second N count" lines at the end, N from 0.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} start = os.time() end
function response(status, headers, body)
  local second = os.time() - start
  counts[second + 1] = (counts[second + 1] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for i, n in pairs(thread:get("counts")) do total[i] = (total[i] or 0) + n end
  end
  for i = 1, #total do io.write(string.format("second %d %d\n", i - 1, total[i] or 0)) end
end
