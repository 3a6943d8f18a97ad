-- Failed records of one queue, newest first: ARGV = channel, limit, then optionally ids to
-- look up instead. Returns {total, records...}, each record
-- {id, queue, job, envelope, error, causes, attempts, failed_at, tags}.
local ids
if #ARGV > 2 then
  ids = {}
  for i = 3, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
else
  ids = redis.call('ZREVRANGE', K_FAILED, 0, num(ARGV[2], 'limit') - 1)
end
local out = {redis.call('ZCARD', K_FAILED)}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', failed_key(id), 'queue', 'job', 'envelope', 'error', 'causes',
    'attempts', 'failed_at', 'tags')
  if f[7] then
    out[#out + 1] = {id, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8] or ''}
  end
end
return out
