-- Deletes up to ARGV[2] ready and as many delayed jobs of the queue; reserved ones finish.
-- Returns {ready deleted, delayed deleted}; the caller repeats until both fall short.
local chunk = num(ARGV[2], 'chunk')
local function drop(ids)
  for _, id in ipairs(ids) do
    release_lock_of(id, job_key(id))
    redis.call('DEL', job_key(id))
    redis.call('HDEL', K_ENV, id)
  end
end
local ready = redis.call('LPOP', K_READY, chunk) or {}
drop(ready)
local delayed = redis.call('ZRANGE', K_DELAYED, 0, chunk - 1)
drop(delayed)
if #delayed > 0 then
  redis.call('ZREMRANGEBYRANK', K_DELAYED, 0, #delayed - 1)
end
return {#ready, #delayed}
