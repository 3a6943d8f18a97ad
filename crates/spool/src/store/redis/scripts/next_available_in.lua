-- Milliseconds until a job of this queue is available (0: one is ready now), or nil.
local now = now_ms()
if redis.call('LLEN', K_READY) > 0 then
  return 0
end
local first = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if #first == 0 then
  return nil
end
return math.max(0, num(first[2], 'due time') - now)
