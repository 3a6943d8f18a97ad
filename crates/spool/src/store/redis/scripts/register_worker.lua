-- Registers a worker (or renews a registration): ARGV = worker, info as a JSON object,
-- lease_ms. A first registration stamps the object with `started_at` (server clock).
local worker, lease = ARGV[1], num(ARGV[3], 'lease')
local now = now_ms()
if redis.call('HEXISTS', K_WORKERS, worker) == 0 then
  local info = ARGV[2]
  if string.sub(info, 1, 1) ~= '{' then
    error('worker info must be a JSON object')
  end
  redis.call('HSET', K_WORKERS, worker,
    '{"started_at":' .. string.format('%d', now) .. ',' .. string.sub(info, 2))
end
redis.call('ZADD', K_LEASES, now + lease, worker)
return now
