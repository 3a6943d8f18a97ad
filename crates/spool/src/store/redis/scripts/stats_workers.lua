-- Registered workers whose lease is current, those expired and not yet reaped, and the queues:
-- {now, jobs processed on queues since unlisted, {worker, info JSON, lease expiry}...,
-- {worker, lease expiry}..., queue names...} with the workers as arrays and the queues as
-- strings.
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
-- Expired, not yet reaped: {worker, expiry} (two fields, where a live worker has three).
local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', string.format('%d', now),
  'WITHSCORES')
for i = 1, #expired, 2 do
  out[#out + 1] = {expired[i], expired[i + 1]}
end
return with_queues(out)
