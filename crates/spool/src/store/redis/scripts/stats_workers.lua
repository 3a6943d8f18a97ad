-- Registered workers whose lease is current, and the queues: {now, {worker, info JSON}...,
-- queue names...} with the workers as arrays and the queues as strings.
local now = now_ms()
local out = {now}
local live = redis.call('ZRANGEBYSCORE', K_LEASES, '(' .. string.format('%d', now), '+inf')
for _, worker in ipairs(live) do
  local info = redis.call('HGET', K_WORKERS, worker)
  if info then
    out[#out + 1] = {worker, info}
  end
end
return with_queues(out)
