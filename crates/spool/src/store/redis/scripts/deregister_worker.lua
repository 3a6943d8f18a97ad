-- Removes a worker's registration: ARGV = worker. Returns {0, the worker's queue names...};
-- the caller then hands back its jobs queue by queue.
local reply = with_worker_queues({0}, ARGV[1])
redis.call('HDEL', K_WORKERS, ARGV[1])
redis.call('ZREM', K_LEASES, ARGV[1])
return reply
