-- The live values whose names fall in a range, in name order. KEYS[1] = the key-value base;
-- ARGV = the first name (inclusive), the end (exclusive; '' for none), the most to return.
-- Returns {name, value, version, expiry ('' for none), ...}; names whose value has expired
-- leave the index on the way.
local index = KEYS[1] .. ':i'
local last = '+'
if ARGV[2] ~= '' then
  last = '(' .. ARGV[2]
end
local limit = num(ARGV[3], 'limit')
local out, offset = {}, 0
while #out < 4 * limit do
  local names = redis.call('ZRANGEBYLEX', index, '[' .. ARGV[1], last, 'LIMIT', offset, 256)
  if #names == 0 then
    break
  end
  for _, name in ipairs(names) do
    local f = redis.call('HMGET', KEYS[1] .. ':v:' .. name, 'v', 'ver', 'exp')
    if f[2] then
      if #out < 4 * limit then
        out[#out + 1] = name
        out[#out + 1] = f[1]
        out[#out + 1] = f[2]
        out[#out + 1] = f[3] or ''
      end
      offset = offset + 1
    else
      redis.call('ZREM', index, name)
    end
  end
end
return out
