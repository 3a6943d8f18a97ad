-- Settle: ARGV = channel, worker, then the settlements. Returns one 1/0 per settlement.
local applied, readied = settle(ARGV[2], 3, now_ms())
if readied then
  redis.call('PUBLISH', CHANNEL, base)
end
return applied
