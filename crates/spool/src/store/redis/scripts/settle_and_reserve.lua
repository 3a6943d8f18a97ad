-- The worker's hot path, "ack batch k and claim batch k+1" in one call:
-- ARGV = channel, worker, limit, lease_ms, queue name, then the settlements.
-- Returns {applied flags, claimed jobs, outbox entries, slots to free}.
local now = now_ms()
local applied, fx = settle(ARGV[2], 6, now)
local claimed = reserve(ARGV[2], num(ARGV[3], 'limit'), num(ARGV[4], 'lease'), now, ARGV[5])
if fx.readied then
  redis.call('PUBLISH', CHANNEL, base)
end
return {applied, claimed, fx.outbox, fx.slots}
