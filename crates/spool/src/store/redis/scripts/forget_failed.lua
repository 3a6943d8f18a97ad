-- Deletes failed records: ARGV = channel, then `ids` and the ids, or `older` with a chunk size
-- and an age in ms, or `all` with a chunk size. Returns how many were deleted; for `older` and
-- `all` the caller repeats while a whole chunk went.
local function forget(id)
  redis.call('DEL', failed_key(id))
  return redis.call('ZREM', K_FAILED, id)
end
local n = 0
local ids
if ARGV[2] == 'ids' then
  ids = {}
  for i = 3, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
elseif ARGV[2] == 'older' then
  local cutoff = now_ms() - num(ARGV[4], 'age')
  ids = redis.call('ZRANGEBYSCORE', K_FAILED, '-inf', '(' .. string.format('%d', cutoff),
    'LIMIT', 0, num(ARGV[3], 'chunk'))
else
  ids = redis.call('ZRANGE', K_FAILED, 0, num(ARGV[3], 'chunk') - 1)
end
for _, id in ipairs(ids) do
  n = n + forget(id)
end
return n
