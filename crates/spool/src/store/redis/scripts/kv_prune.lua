-- One step of pruning the index of names whose value expired (the values expire by
-- themselves). KEYS[1] = the key-value base; ARGV = the offset to start at, how many to
-- check. Returns {names removed, the next offset or -1 when the index is done}.
local index = KEYS[1] .. ':i'
local offset, count = num(ARGV[1], 'offset'), num(ARGV[2], 'count')
local names = redis.call('ZRANGE', index, offset, offset + count - 1)
local removed = 0
for _, name in ipairs(names) do
  if redis.call('EXISTS', KEYS[1] .. ':v:' .. name) == 0 then
    redis.call('ZREM', index, name)
    removed = removed + 1
  end
end
if #names < count then
  return {removed, -1}
end
return {removed, offset + count - removed}
