-- A compare-and-set write of one value. KEYS[1] = the key-value base `{<prefix>:kv}`;
-- ARGV = name, value, expectation (0 any, 1 absent, 2 version), the expected version, time to
-- live in ms (0: never expires). Returns the new version, or nil if the expectation failed.
local name, mode = ARGV[1], ARGV[3]
local key = KEYS[1] .. ':v:' .. name
local version = tonumber(redis.call('HGET', key, 'ver') or '0') or 0
if mode == '1' and version ~= 0 then
  return false
end
if mode == '2' and version ~= num(ARGV[4], 'expected version') then
  return false
end
version = version + 1
local ttl = num(ARGV[5], 'time to live')
local expires = ''
if ttl > 0 then
  expires = tostring(now_ms() + ttl)
end
redis.call('HSET', key, 'v', ARGV[2], 'ver', version, 'exp', expires)
if ttl > 0 then
  redis.call('PEXPIRE', key, ttl)
else
  redis.call('PERSIST', key)
end
redis.call('ZADD', KEYS[1] .. ':i', 0, name)
return version
