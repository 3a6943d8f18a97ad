-- Registered workers whose lease is current, and the queues: {now, jobs processed on queues
-- since unlisted, {worker, info JSON, lease expiry}..., queue names...} with the workers as
-- arrays and the queues as strings.
local now = now_ms()
local out = {now, tonumber(redis.call('HGET', K_META, 'processed_unlisted') or '0') or 0}
local live = redis.call('ZRANGEBYSCORE', K_LEASES, '(' .. string.format('%d', now), '+inf',
  'WITHSCORES')
for i = 1, #live, 2 do
  local worker = live[i]
  local info = redis.call('HGET', K_WORKERS, worker)
  if info then
    out[#out + 1] = {worker, info, live[i + 1]}
  end
end
return with_queues(out)
