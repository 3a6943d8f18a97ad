-- Removes the registrations whose lease expired. Returns {removed, queue names...}; the caller
-- then reaps each queue, whose own view of the leases decides which jobs go back.
local now = now_ms()
local dead = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now)
for _, worker in ipairs(dead) do
  redis.call('HDEL', K_WORKERS, worker)
end
redis.call('ZREMRANGEBYSCORE', K_LEASES, '-inf', now)
return with_queues({#dead})
