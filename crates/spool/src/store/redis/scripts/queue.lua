-- Shared by every per-queue script: it is prepended to each of them.
--
-- KEYS[1] is the queue's key base, `{<prefix>:<queue>}`. Every key a script touches is that base
-- plus a suffix, so all of them hash to the queue's slot and one script call stays on one node
-- of a Redis Cluster. ARGV[1] is the wake-up channel.
--
-- A job is a small hash (`:job:<id>`: counters, times, holder, token) plus its envelope in the
-- queue's `:env` hash, kept apart so the job hash stays small enough for Redis's compact
-- encoding. Where it waits: `:ready` (a list, claimed from the head), `:delayed` (a sorted set
-- by due time), or `:reserved` (a hash of id -> holder).

local base = KEYS[1]
local K_READY = base .. ':ready'
local K_DELAYED = base .. ':delayed'
local K_RESERVED = base .. ':reserved'
local K_LEASES = base .. ':leases'
local K_SEQ = base .. ':seq'
local K_PROCESSED = base .. ':processed'
local K_FAILED = base .. ':failed'
local K_ENV = base .. ':env'
local CHANNEL = ARGV[1]

-- Jobs moved from `:delayed` to `:ready` per call; the rest follow on the next call.
local MIGRATE_BATCH = 1000

-- Arguments per command when a script applies one command to many items (Lua's unpack has a
-- limit, and one huge command would hold a big reply buffer).
local BATCH_ARGS = 1000

-- Runs `command key items...` in slices of at most BATCH_ARGS items.
local function batched(command, key, items)
  for i = 1, #items, BATCH_ARGS do
    redis.call(command, key, unpack(items, i, math.min(i + BATCH_ARGS - 1, #items)))
  end
end

-- Like `batched`, for commands taking keys only (DEL): `command items...`.
local function batched_keys(command, items)
  for i = 1, #items, BATCH_ARGS do
    redis.call(command, unpack(items, i, math.min(i + BATCH_ARGS - 1, #items)))
  end
end

-- HMGET in slices; returns all values in order.
local function batched_hmget(key, fields)
  local out = {}
  for i = 1, #fields, BATCH_ARGS do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + BATCH_ARGS - 1, #fields)))
    for _, v in ipairs(part) do
      out[#out + 1] = v
    end
  end
  return out
end

local function job_key(id)
  return base .. ':job:' .. id
end

local function failed_key(id)
  return base .. ':failed:' .. id
end

-- The server's clock in milliseconds (D-7): callers never send absolute times.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A stored counter or time; a missing or malformed one stops the script with an error rather
-- than being taken as zero.
local function num(value, what)
  local n = tonumber(value)
  if n == nil then
    error('malformed ' .. what .. ': ' .. tostring(value))
  end
  return n
end

-- Due delayed jobs join the tail of the ready list, earliest due first.
local function migrate_due(now)
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, MIGRATE_BATCH)
  if #due == 0 then
    return
  end
  for _, id in ipairs(due) do
    redis.call('RPUSH', K_READY, id)
  end
  -- They are the lowest-ranked members, so removing by rank removes exactly them.
  redis.call('ZREMRANGEBYRANK', K_DELAYED, 0, #due - 1)
end

-- Writes a failed record (replacing an older one with the same id) and deletes the job.
local function move_to_failed(id, key, fields, err, causes, now)
  redis.call('HSET', failed_key(id),
    'queue', fields.queue, 'job', fields.job, 'envelope', redis.call('HGET', K_ENV, id) or '',
    'error', err, 'causes', causes, 'attempts', fields.attempts, 'failed_at', now)
  redis.call('ZADD', K_FAILED, now, id)
  redis.call('DEL', key)
  redis.call('HDEL', K_ENV, id)
  redis.call('HDEL', K_RESERVED, id)
end

-- Claims up to `limit` ready jobs for `worker`, oldest first. Returns one array per job:
-- id, envelope, token, attempts, recoveries, deferrals, exceptions, retry_until, last_error,
-- reserved_at, available_at.
local function reserve(worker, limit, lease_ms, now)
  migrate_due(now)
  if limit <= 0 then
    return {}
  end
  local ids = redis.call('LPOP', K_READY, limit)
  if not ids then
    return {}
  end
  local out = {}
  local claimed = {}
  local holders = {}
  for _, id in ipairs(ids) do
    local key = job_key(id)
    local f = redis.call('HMGET', key, 'token', 'attempts', 'recoveries', 'deferrals',
      'exceptions', 'retry_until', 'last_error', 'available_at')
    -- An id without its job (only possible if keys were deleted by hand) is dropped.
    if f[1] then
      local token = num(f[1], 'token') + 1
      local attempts = num(f[2], 'attempts') + 1
      redis.call('HSET', key, 'worker', worker, 'token', token, 'attempts', attempts,
        'reserved_at', now)
      claimed[#claimed + 1] = id
      holders[#holders + 1] = id
      holders[#holders + 1] = worker
      out[#out + 1] = {id, false, token, attempts, f[3], f[4], f[5], f[6] or false,
        f[7] or false, now, f[8]}
    end
  end
  if #out > 0 then
    local envelopes = batched_hmget(K_ENV, claimed)
    for n, job in ipairs(out) do
      job[2] = envelopes[n] or ''
    end
    batched('HSET', K_RESERVED, holders)
    -- The holder's lease as this queue sees it; GT never shortens one a heartbeat extended.
    redis.call('ZADD', K_LEASES, 'GT', now + lease_ms, worker)
  end
  return out
end

-- Settles the items in ARGV[first..], each fenced on (worker, token). Item layouts:
--   c, id, token
--   r, id, token, delay_ms, refund, deferral, exception, has_error, error
--   f, id, token, error, causes_json
-- Returns one 1/0 per item and whether a job was made ready (waiting workers should look).
local function settle(worker, first, now)
  local applied = {}
  local completed = {}
  -- Completed jobs are deleted after the loop: a repeat in the same batch must not match.
  local gone = {}
  local readied = false
  local i = first
  while i <= #ARGV do
    local kind, id, token = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    local key = job_key(id)
    local fence = redis.call('HMGET', key, 'worker', 'token')
    local held = fence[1] == worker and tonumber(fence[2]) == token and not gone[id]
    local f = {}
    if held and kind ~= 'c' then
      f = redis.call('HMGET', key, 'attempts', 'deferrals', 'exceptions', 'queue', 'job')
    end
    if kind == 'c' then
      if held then
        completed[#completed + 1] = id
        gone[id] = true
      end
      i = i + 3
    elseif kind == 'r' then
      if held then
        local delay = num(ARGV[i + 3], 'delay')
        local at = now + delay
        redis.call('HDEL', key, 'worker', 'reserved_at')
        redis.call('HSET', key, 'available_at', at,
          'attempts', num(f[1], 'attempts') - num(ARGV[i + 4], 'refund'),
          'deferrals', num(f[2], 'deferrals') + num(ARGV[i + 5], 'deferral'),
          'exceptions', num(f[3], 'exceptions') + num(ARGV[i + 6], 'exception'))
        if ARGV[i + 7] == '1' then
          redis.call('HSET', key, 'last_error', ARGV[i + 8])
        end
        redis.call('HDEL', K_RESERVED, id)
        if delay > 0 then
          redis.call('ZADD', K_DELAYED, at, id)
        else
          redis.call('RPUSH', K_READY, id)
          readied = true
        end
      end
      i = i + 9
    elseif kind == 'f' then
      if held then
        move_to_failed(id, key, {queue = f[4], job = f[5], attempts = f[1]},
          ARGV[i + 3], ARGV[i + 4], now)
      end
      i = i + 5
    else
      error('unknown settlement kind ' .. tostring(kind))
    end
    applied[#applied + 1] = held and 1 or 0
  end
  if #completed > 0 then
    -- Deleted together: one command per kind of key for the whole batch.
    local keys = {}
    for n, id in ipairs(completed) do
      keys[n] = job_key(id)
    end
    batched_keys('DEL', keys)
    batched('HDEL', K_ENV, completed)
    batched('HDEL', K_RESERVED, completed)
    redis.call('INCRBY', K_PROCESSED, #completed)
  end
  return applied, readied
end
