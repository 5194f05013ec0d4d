-- Unique addresses per request and thread. Counts requests sent and 2xx answers, so the script
-- can check that every 2xx was stored and nothing beyond what was sent (requests still in
-- flight when wrk stops are sent and stored but never answered).
local counter = 0
local threads = {}
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  sent = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  sent = sent + 1
  local body = string.format('{"email":"load-%d-%d@example.org","name":"Load %d"}', id, counter, counter)
  return wrk.format(nil, "/subscriptions", nil, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 end
end

function done(summary, latency, requests)
  local total, requested = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("ok")
    requested = requested + thread:get("sent")
  end
  io.write(string.format("ACCEPTED %d\nSENT %d\n", total, requested))
end
