-- Removes a worker's registration: ARGV = worker. Returns {0, queue names...}; the caller
-- then hands back its jobs queue by queue.
redis.call('HDEL', K_WORKERS, ARGV[1])
redis.call('ZREM', K_LEASES, ARGV[1])
return with_queues({0})
