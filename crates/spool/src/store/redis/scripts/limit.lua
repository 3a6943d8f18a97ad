-- One sliding-window limiter call: KEYS = the hit log (a sorted set of hits by time) and its
-- hit counter; ARGV = window_ms, mode (`acquire`, `record`, `peek`, or `clear`), limit.
-- Counts the hits in the window and records one as the mode says, atomically.
-- Returns {hit (1/0), count, resets_in_ms}.
local hits, counter = KEYS[1], KEYS[2]
if ARGV[2] == 'clear' then
  redis.call('DEL', hits, counter)
  return {0, 0, 0}
end
local window = num(ARGV[1], 'window')
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', hits, '-inf', now - window)
local count = redis.call('ZCARD', hits)
local oldest = redis.call('ZRANGE', hits, 0, 0, 'WITHSCORES')
local hit = false
if ARGV[2] == 'acquire' then
  hit = count < num(ARGV[3], 'limit')
elseif ARGV[2] == 'record' then
  hit = true
end
local first = oldest[2] and num(oldest[2], 'hit time') or nil
if hit then
  local n = redis.call('INCR', counter)
  redis.call('ZADD', hits, now, now .. ':' .. n)
  redis.call('PEXPIRE', hits, window + 1)
  redis.call('PEXPIRE', counter, window + 1)
  count = count + 1
  first = first or now
end
local resets_in = 0
if first then
  resets_in = math.max(first + window - now, 0)
end
return {hit and 1 or 0, count, resets_in}
