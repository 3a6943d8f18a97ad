-- Deletes kept results of this queue completed before now - age: ARGV = channel, age_ms,
-- chunk. Returns how many; the caller repeats while a whole chunk went.
local cutoff = now_ms() - num(ARGV[2], 'age')
local ids = redis.call('ZRANGEBYSCORE', K_RESULTS, '-inf', '(' .. string.format('%d', cutoff),
  'LIMIT', 0, num(ARGV[3], 'chunk'))
for _, id in ipairs(ids) do
  redis.call('DEL', result_key(id))
  redis.call('ZREM', K_RESULTS, id)
end
return #ids
