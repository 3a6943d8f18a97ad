-- Settle: ARGV = channel, worker, then the settlements.
-- Returns {applied flags, outbox entries, slots to free} (see `settle` and `new_effects`).
local applied, fx = settle(ARGV[2], 3, now_ms())
if fx.readied then
  redis.call('PUBLISH', CHANNEL, base)
end
return {applied, fx.outbox, fx.slots}
