-- Reap one queue: ARGV = channel, max_recoveries, outbox chunk. The jobs of every worker whose
-- lease in this queue expired go back to the tail (attempt refunded, recovery counted), or fail
-- as poison pills at the max_recoveries-th loss (counted in their batch, their lock freed).
-- Returns {recovered, failed, outbox entries, slots to free, job names recovered}: the outbox
-- entries are those the poison pills wrote plus up to a chunk of leftovers (a settlement whose
-- delivery never ran), for the caller to deliver; the names are for the rescued counts.
local max_recoveries = num(ARGV[2], 'max_recoveries')
local chunk = num(ARGV[3], 'outbox chunk')
local now = now_ms()
local fx = new_effects()
local recovered, failed = 0, 0
local names = {}
local dead = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now)
if #dead > 0 then
  local is_dead = {}
  for _, w in ipairs(dead) do
    is_dead[w] = true
  end
  local held = redis.call('HGETALL', K_RESERVED)
  for i = 1, #held, 2 do
    local id, worker = held[i], held[i + 1]
    if is_dead[worker] then
      local key = job_key(id)
      local f = redis.call('HMGET', key, 'worker', 'recoveries', 'attempts', 'last_error',
        'queue', 'job', 'token', unpack(WORKFLOW_FIELDS))
      if f[1] == worker then
        local recoveries = num(f[2], 'recoveries') + 1
        -- Poison-pill rule in Lua, not shared Rust: decided atomically with the recovery.
        if recoveries >= max_recoveries then
          local causes = cjson.encode({f[4] or 'no error recorded before the losses'})
          job_ended(id, key, f[7], {f[8], f[9], f[10], f[11]}, true, nil, now, fx)
          move_to_failed(id, key, {queue = f[5], job = f[6], attempts = f[3]},
            'worker lost ' .. recoveries .. ' times while running this job', causes, now)
          failed = failed + 1
        else
          redis.call('HDEL', key, 'worker', 'reserved_at', 'slots')
          redis.call('HSET', key, 'available_at', now, 'attempts', num(f[3], 'attempts') - 1,
            'recoveries', recoveries)
          redis.call('RPUSH', K_READY, id)
          recovered = recovered + 1
          names[#names + 1] = f[6] or ''
        end
      end
      redis.call('HDEL', K_RESERVED, id)
    end
  end
  redis.call('ZREMRANGEBYSCORE', K_LEASES, '-inf', now)
end
if recovered > 0 or fx.readied then
  redis.call('PUBLISH', CHANNEL, base)
end
-- Leftovers: every entry still in the outbox (those just written included).
local outbox = {}
local scan = redis.call('HSCAN', K_OUTBOX, 0, 'COUNT', chunk)
for _, v in ipairs(scan[2]) do
  outbox[#outbox + 1] = v
end
return {recovered, failed, outbox, fx.slots, names}
