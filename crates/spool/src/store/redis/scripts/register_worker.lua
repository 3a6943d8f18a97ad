-- Registers a worker (or renews a registration): ARGV = worker, info as a JSON object,
-- lease_ms, and optionally a cap. A first registration stamps the object with `started_at`
-- (server clock). With a cap (`work --max-workers`), registers only if fewer live workers
-- than the cap serve any of its queues, and returns -1 if not; else returns the time.
local worker, lease = ARGV[1], num(ARGV[3], 'lease')
local now = now_ms()
if ARGV[4] then
  local cap = num(ARGV[4], 'max workers')
  local mine = {}
  local ok, info = pcall(cjson.decode, ARGV[2])
  if ok and type(info) == 'table' and type(info.queues) == 'table' then
    for _, q in ipairs(info.queues) do
      mine[q] = true
    end
  end
  local sharing = 0
  local live = redis.call('ZRANGEBYSCORE', K_LEASES, '(' .. string.format('%d', now), '+inf')
  for _, other in ipairs(live) do
    if other ~= worker then
      local read, theirs = pcall(cjson.decode, redis.call('HGET', K_WORKERS, other) or '')
      -- A record that cannot be read counts as sharing: the cap errs on starting fewer.
      local shares = not read or type(theirs) ~= 'table' or type(theirs.queues) ~= 'table'
      if not shares then
        for _, q in ipairs(theirs.queues) do
          if mine[q] then
            shares = true
            break
          end
        end
      end
      if shares then
        sharing = sharing + 1
      end
    end
  end
  if sharing >= cap then
    return -1
  end
end
if redis.call('HEXISTS', K_WORKERS, worker) == 0 then
  local info = ARGV[2]
  if string.sub(info, 1, 1) ~= '{' then
    error('worker info must be a JSON object')
  end
  redis.call('HSET', K_WORKERS, worker,
    '{"started_at":' .. string.format('%d', now) .. ',' .. string.sub(info, 2))
end
redis.call('ZADD', K_LEASES, now + lease, worker)
return now
