-- Extends a worker's lease if it still has one: ARGV = worker, lease_ms.
-- Returns {kept (1/0), restart epoch, new expiry, the worker's queue names...}.
local worker, lease = ARGV[1], num(ARGV[2], 'lease')
local now = now_ms()
local kept = 0
if redis.call('ZSCORE', K_LEASES, worker) then
  redis.call('ZADD', K_LEASES, now + lease, worker)
  kept = 1
end
local epoch = tonumber(redis.call('HGET', K_META, 'restart_epoch') or '0') or 0
return with_worker_queues({kept, epoch, now + lease}, worker)
