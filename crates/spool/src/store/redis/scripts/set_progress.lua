-- Records a reserved job's progress, fenced like a settlement: ARGV = channel, worker, id,
-- token, percent, has_message (1/0), message. Returns 1, or 0 if the worker no longer holds it.
local key = job_key(ARGV[3])
local fence = redis.call('HMGET', key, 'worker', 'token')
if fence[1] ~= ARGV[2] or tonumber(fence[2]) ~= tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', key, 'progress', num(ARGV[5], 'percent'))
if ARGV[6] == '1' then
  redis.call('HSET', key, 'progress_message', ARGV[7])
else
  redis.call('HDEL', key, 'progress_message')
end
return 1
