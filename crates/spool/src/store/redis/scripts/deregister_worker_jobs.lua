-- Deregister a worker from one queue: ARGV = channel, worker. Its jobs go back to the head of
-- the queue, where they were, with the attempt refunded. Returns how many.
local worker = ARGV[2]
local returned = 0
local held = redis.call('HGETALL', K_RESERVED)
for i = 1, #held, 2 do
  local id = held[i]
  if held[i + 1] == worker then
    local key = job_key(id)
    local f = redis.call('HMGET', key, 'worker', 'attempts')
    if f[1] == worker then
      redis.call('HDEL', key, 'worker', 'reserved_at')
      redis.call('HSET', key, 'attempts', num(f[2], 'attempts') - 1)
      redis.call('LPUSH', K_READY, id)
      returned = returned + 1
    end
    redis.call('HDEL', K_RESERVED, id)
  end
end
redis.call('ZREM', K_LEASES, worker)
if returned > 0 then
  redis.call('PUBLISH', CHANNEL, base)
end
return returned
