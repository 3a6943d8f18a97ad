-- Counts for one queue: {now, ready, due, delayed, reserved, oldest ready available_at (or
-- false), processed, failed, {id, worker, seq}...}.
local now = now_ms()
local ready = redis.call('LLEN', K_READY)
local due = redis.call('ZCOUNT', K_DELAYED, '-inf', now)
local delayed = redis.call('ZCOUNT', K_DELAYED, '(' .. string.format('%d', now), '+inf')
local oldest = false
local head = redis.call('LINDEX', K_READY, 0)
if head then
  oldest = tonumber(redis.call('HGET', job_key(head), 'available_at')) or false
end
if due > 0 then
  local first = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  local at = num(first[2], 'due time')
  if not oldest or at < oldest then
    oldest = at
  end
end
local held = redis.call('HGETALL', K_RESERVED)
local busy = {}
for i = 1, #held, 2 do
  busy[#busy + 1] = {held[i], held[i + 1], redis.call('HGET', job_key(held[i]), 'seq') or 0}
end
return {now, ready, due, delayed, #held / 2, oldest,
  tonumber(redis.call('GET', K_PROCESSED) or '0') or 0, redis.call('ZCARD', K_FAILED), busy}
