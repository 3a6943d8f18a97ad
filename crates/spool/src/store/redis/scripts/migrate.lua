-- Records the key layout's version: ARGV = this build's version. Returns the version found
-- before (0 for a new keyspace); the caller refuses a newer one.
local found = tonumber(redis.call('HGET', K_META, 'schema_version') or '0') or 0
if found < num(ARGV[1], 'version') then
  redis.call('HSET', K_META, 'schema_version', ARGV[1])
end
return found
