-- Puts failed jobs back on this queue with fresh counters and the same id: ARGV = channel,
-- then the ids, or none for all of the queue's records. Oldest failure first; a record whose
-- id is queued again meanwhile stays. Returns {id, failed_at} per job requeued.
local now = now_ms()
local candidates = {}
if #ARGV > 1 then
  for i = 2, #ARGV do
    local at = redis.call('ZSCORE', K_FAILED, ARGV[i])
    if at then
      candidates[#candidates + 1] = {ARGV[i], num(at, 'failed_at')}
    end
  end
  table.sort(candidates, function(a, b)
    if a[2] ~= b[2] then
      return a[2] < b[2]
    end
    return a[1] < b[1]
  end)
else
  local all = redis.call('ZRANGE', K_FAILED, 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    candidates[#candidates + 1] = {all[i], num(all[i + 1], 'failed_at')}
  end
end

-- The retry window frozen in the envelope (`options.retry_for_ms`), or nil. An envelope may be
-- malformed (the worker reports that when it runs the job): then there is no window.
local function retry_window(envelope)
  local ok, decoded = pcall(cjson.decode, envelope)
  if not ok or type(decoded) ~= 'table' or type(decoded.options) ~= 'table' then
    return nil
  end
  local window = decoded.options.retry_for_ms
  if type(window) ~= 'number' or window < 0 then
    return nil
  end
  return math.floor(window)
end

local out = {}
for _, c in ipairs(candidates) do
  local id = c[1]
  local key = job_key(id)
  local record = failed_key(id)
  local f = redis.call('HMGET', record, 'queue', 'job', 'envelope')
  if f[1] and redis.call('EXISTS', key) == 0 then
    local seq = redis.call('INCR', K_SEQ)
    redis.call('HSET', key, 'queue', f[1], 'job', f[2], 'seq', seq, 'available_at', now,
      'token', 0, 'attempts', 0, 'recoveries', 0, 'deferrals', 0, 'exceptions', 0,
      'created_at', now)
    local window = retry_window(f[3] or '')
    if window then
      redis.call('HSET', key, 'retry_until', now + window)
    end
    redis.call('HSET', K_ENV, id, f[3] or '')
    redis.call('RPUSH', K_READY, id)
    redis.call('DEL', record)
    redis.call('ZREM', K_FAILED, id)
    out[#out + 1] = {id, c[2]}
  end
end
if #out > 0 then
  redis.call('PUBLISH', CHANNEL, base)
end
return out
