-- A new restart epoch: the clock's reading, but at least one past the previous epoch, so it
-- strictly increases even if the clock stands still or steps back.
local now = now_ms()
local previous = tonumber(redis.call('HGET', K_META, 'restart_epoch') or '0') or 0
local epoch = math.max(now, previous + 1)
redis.call('HSET', K_META, 'restart_epoch', epoch)
return epoch
