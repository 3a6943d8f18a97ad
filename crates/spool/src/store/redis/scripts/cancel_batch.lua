-- Marks a batch cancelled: ARGV = channel, batch id. Returns 1, or 0 if there is no such batch
-- here or it was cancelled already.
local bkey = batch_key(ARGV[2])
if redis.call('EXISTS', bkey) == 0 or redis.call('HEXISTS', bkey, 'cancelled_at') == 1 then
  return 0
end
redis.call('HSET', bkey, 'cancelled_at', now_ms())
return 1
