-- Jobs of one queue for listings: ARGV = channel, state ('' for all, pending, delayed,
-- reserved), limit, then optionally ids to look up instead. Returns {now, jobs...}, each job
-- {id, job, worker, available_at, attempts, recoveries, deferrals, last_error, envelope, seq,
-- progress, progress message, reserved_at, tags}.
local state, limit = ARGV[2], num(ARGV[3], 'limit')
local now = now_ms()
local ids = {}
if #ARGV > 3 then
  for i = 4, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
else
  local function add(list)
    for _, id in ipairs(list) do
      ids[#ids + 1] = id
    end
  end
  if state == '' or state == 'pending' then
    add(redis.call('LRANGE', K_READY, 0, limit - 1))
    add(redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, limit))
  end
  if state == '' or state == 'delayed' then
    add(redis.call('ZRANGEBYSCORE', K_DELAYED, '(' .. string.format('%d', now), '+inf', 'LIMIT', 0, limit))
  end
  if state == '' or state == 'reserved' then
    add(redis.call('HKEYS', K_RESERVED))
  end
end
local out = {now}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', job_key(id), 'job', 'worker', 'available_at', 'attempts',
    'recoveries', 'deferrals', 'last_error', 'seq', 'progress', 'progress_message', 'reserved_at',
    'tags')
  if f[1] then
    out[#out + 1] = {id, f[1], f[2], f[3], f[4], f[5], f[6], f[7],
      redis.call('HGET', K_ENV, id) or '', f[8], f[9] or false, f[10] or false,
      f[11] or false, f[12] or ''}
  end
end
return out
