-- Puts failed jobs back on this queue with fresh counters and the same id: ARGV = channel,
-- then `ids` and the ids, `all` for all of the queue's records, or `batch` and a batch id for
-- that batch's failed jobs. Oldest failure first; a record whose id is queued again meanwhile
-- stays. A retried job of a batch is pending there again (no longer failed, and the
-- cancellation and finish its failure caused are lifted). Returns {id, failed_at} per job
-- requeued.
local now = now_ms()
local candidates = {}
local mode = ARGV[2]
local wanted = {}
if mode == 'ids' then
  for i = 3, #ARGV do
    wanted[#wanted + 1] = ARGV[i]
  end
elseif mode == 'batch' then
  local ids = redis.call('HGET', batch_key(ARGV[3]), 'failed_ids')
  local ok, decoded = pcall(cjson.decode, ids or '[]')
  if ok and type(decoded) == 'table' then
    wanted = decoded
  end
end
if mode == 'all' then
  local all = redis.call('ZRANGE', K_FAILED, 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    candidates[#candidates + 1] = {all[i], num(all[i + 1], 'failed_at')}
  end
else
  for _, id in ipairs(wanted) do
    local at = redis.call('ZSCORE', K_FAILED, id)
    if at then
      candidates[#candidates + 1] = {id, num(at, 'failed_at')}
    end
  end
  table.sort(candidates, function(a, b)
    if a[2] ~= b[2] then
      return a[2] < b[2]
    end
    return a[1] < b[1]
  end)
end

-- Puts a retried job of a batch back to pending there.
local function uncount(batch_id, job_id)
  local bkey = batch_key(batch_id)
  local b = redis.call('HMGET', bkey, 'pending', 'failed', 'failed_ids')
  if not b[1] then
    return
  end
  local ok, ids = pcall(cjson.decode, b[3] or '[]')
  local kept = {}
  if ok and type(ids) == 'table' then
    for _, id in ipairs(ids) do
      if id ~= job_id then
        kept[#kept + 1] = id
      end
    end
  end
  local failed_ids = #kept == 0 and '[]' or cjson.encode(kept)
  redis.call('HSET', bkey, 'pending', num(b[1], 'batch pending') + 1,
    'failed', math.max(num(b[2], 'batch failed') - 1, 0), 'failed_ids', failed_ids)
  redis.call('HDEL', bkey, 'cancelled_at', 'finished_at')
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
  local f = redis.call('HMGET', record, 'queue', 'job', 'envelope', 'batch', 'tags')
  if f[1] and redis.call('EXISTS', key) == 0 then
    local seq = redis.call('INCR', K_SEQ)
    redis.call('HSET', key, 'queue', f[1], 'job', f[2], 'seq', seq, 'available_at', now,
      'token', 0, 'attempts', 0, 'recoveries', 0, 'deferrals', 0, 'exceptions', 0,
      'created_at', now)
    local window = retry_window(f[3] or '')
    if window then
      redis.call('HSET', key, 'retry_until', now + window)
    end
    if f[4] then
      redis.call('HSET', key, 'batch', f[4])
      uncount(f[4], id)
    end
    if f[5] then
      redis.call('HSET', key, 'tags', f[5])
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
