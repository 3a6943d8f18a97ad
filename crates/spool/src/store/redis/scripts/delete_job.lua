-- Deletes a job no worker holds: ARGV = channel, id. Returns 1 if deleted.
local id = ARGV[2]
local key = job_key(id)
if redis.call('EXISTS', key) == 0 or redis.call('HEXISTS', key, 'worker') == 1 then
  return 0
end
if redis.call('ZREM', K_DELAYED, id) == 0 then
  redis.call('LREM', K_READY, 1, id)
end
release_lock_of(id, key)
redis.call('DEL', key)
redis.call('HDEL', K_ENV, id)
return 1
