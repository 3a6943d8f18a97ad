-- Deletes this queue's completed records older than now - age: ARGV = channel, age_ms, chunk.
-- Returns how many; the caller repeats while a whole chunk went.
local cutoff = now_ms() - num(ARGV[2], 'age')
local ids = redis.call('ZRANGEBYSCORE', K_DONE, '-inf', '(' .. string.format('%d', cutoff),
  'LIMIT', 0, num(ARGV[3], 'chunk'))
if #ids > 0 then
  batched('HDEL', K_DONE_REC, ids)
  batched('ZREM', K_DONE, ids)
end
return #ids
