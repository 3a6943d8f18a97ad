-- Makes a delayed job available now: ARGV = channel, id. Returns 1 if it was delayed.
local id = ARGV[2]
local now = now_ms()
local due = redis.call('ZSCORE', K_DELAYED, id)
if not due or num(due, 'due time') <= now then
  return 0
end
redis.call('ZREM', K_DELAYED, id)
redis.call('HSET', job_key(id), 'available_at', now)
redis.call('RPUSH', K_READY, id)
redis.call('PUBLISH', CHANNEL, base)
return 1
