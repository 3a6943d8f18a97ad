-- Deletes the values whose names fall in a range. KEYS[1] = the key-value base; ARGV = the
-- first name (inclusive), the end (exclusive; '' for none). Returns how many live values went.
local index = KEYS[1] .. ':i'
local last = '+'
if ARGV[2] ~= '' then
  last = '(' .. ARGV[2]
end
local deleted = 0
while true do
  local names = redis.call('ZRANGEBYLEX', index, '[' .. ARGV[1], last, 'LIMIT', 0, 256)
  if #names == 0 then
    break
  end
  for _, name in ipairs(names) do
    deleted = deleted + redis.call('DEL', KEYS[1] .. ':v:' .. name)
    redis.call('ZREM', index, name)
  end
end
return deleted
