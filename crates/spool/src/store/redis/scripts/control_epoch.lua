-- A new control epoch: ARGV = its name. The clock's reading, but at least one past the
-- previous one, so it strictly increases even if the clock stands still or steps back.
local field = 'epoch:' .. ARGV[1]
local previous = tonumber(redis.call('HGET', K_CONTROL, field) or '0') or 0
local epoch = math.max(now_ms(), previous + 1)
redis.call('HSET', K_CONTROL, field, epoch)
return epoch
