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
--
-- Workflow state lives under the same tag (see `redis/workflow.rs`): unique locks
-- (`:lock:<key>`), the batches whose jobs were dispatched here (`:batch:<id>`, listed in
-- `:batches`), kept results (`:result:<id>`, listed in `:results`), the completed history
-- (`:done`, ids by completion time, and `:done:rec`, id -> short record), and the outbox of
-- follow-ups bound for other queues (`:outbox`, id -> job), which the caller delivers after
-- the script.

local base = KEYS[1]
local K_READY = base .. ':ready'
local K_DELAYED = base .. ':delayed'
local K_RESERVED = base .. ':reserved'
local K_LEASES = base .. ':leases'
local K_SEQ = base .. ':seq'
local K_PROCESSED = base .. ':processed'
local K_FAILED = base .. ':failed'
local K_ENV = base .. ':env'
local K_OUTBOX = base .. ':outbox'
local K_RESULTS = base .. ':results'
local K_DONE = base .. ':done'
local K_DONE_REC = base .. ':done:rec'
local K_BATCHES = base .. ':batches'
-- When the queue was last pushed to: set while it is in `{<prefix>}:queues`.
local K_LISTED = base .. ':listed'
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

-- The keys of one kind of record under the queue's tag: `<base>:<kind>:<id>`.
local function key_of(kind)
  local prefix = base .. ':' .. kind .. ':'
  return function(id)
    return prefix .. id
  end
end

local job_key = key_of('job')
local failed_key = key_of('failed')
local lock_key = key_of('lock')
local batch_key = key_of('batch')
local result_key = key_of('result')

-- Marks a job delivered from another queue's outbox, so a repeated delivery (after a crash
-- between delivering and clearing the outbox) never pushes it twice, even once it has run.
local delivered_key = key_of('delivered')
local DELIVERED_TTL_MS = 7 * 24 * 3600 * 1000

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
  local extra = redis.call('HMGET', key, 'batch', 'tags')
  if extra[1] then
    redis.call('HSET', failed_key(id), 'batch', extra[1])
  end
  if extra[2] then
    redis.call('HSET', failed_key(id), 'tags', extra[2])
  else
    redis.call('HDEL', failed_key(id), 'tags')
  end
  redis.call('ZADD', K_FAILED, now, id)
  redis.call('DEL', key)
  redis.call('HDEL', K_ENV, id)
  redis.call('HDEL', K_RESERVED, id)
end

-- Fields per job in a push (after the queue, which a push names once and a follow-up per job):
-- id, job name, envelope, delay_ms, retry_for_ms, batch id, unique key, unique until,
-- unique ttl_ms, tags (comma-joined) ('' for none in the last six).
local JOB_FIELDS = 10

-- The job spec at ARGV-like `args[i..i+9]`, bound for `queue`.
local function spec_at(args, i, queue)
  return {queue = queue, id = args[i], job = args[i + 1], envelope = args[i + 2],
    delay = args[i + 3], retry_for = args[i + 4], batch = args[i + 5], ukey = args[i + 6],
    hold = args[i + 7], ttl = args[i + 8], tags = args[i + 9]}
end

-- The spec as an outbox entry: the queue followed by the push fields. Without tags it is the
-- entry builds before tags wrote (and read), so a worker of either build delivers it.
local function encode_spec(s)
  local entry = {s.queue, s.id, s.job, s.envelope, s.delay, s.retry_for, s.batch, s.ukey,
    s.hold, s.ttl}
  if s.tags ~= '' then
    entry[#entry + 1] = s.tags
  end
  return cjson.encode(entry)
end

-- Stores one job unless its id exists here or its unique lock is held: returns 1 (queued) or
-- 0. With `acc`, envelopes and ready ids are collected for one write per batch of jobs.
local function insert_job(s, seq, now, acc)
  local key = job_key(s.id)
  if redis.call('EXISTS', key) == 1 then
    return 0
  end
  if s.ukey ~= '' then
    local lock = lock_key(s.ukey)
    -- An expired lock is gone already: Redis deletes it when its PEXPIRE runs out.
    if redis.call('EXISTS', lock) == 1 then
      return 0
    end
    redis.call('HSET', lock, 'owner', s.id, 'until', s.hold)
    if s.ttl ~= '' then
      redis.call('PEXPIRE', lock, math.max(1, num(s.ttl, 'lock ttl')))
    end
  end
  local delay = num(s.delay, 'delay')
  local at = now + delay
  redis.call('HSET', key, 'queue', s.queue, 'job', s.job, 'seq', seq,
    'available_at', at, 'token', 0, 'attempts', 0, 'recoveries', 0, 'deferrals', 0,
    'exceptions', 0, 'created_at', now)
  if s.retry_for ~= '' then
    redis.call('HSET', key, 'retry_until', now + num(s.retry_for, 'retry window'))
  end
  if s.batch ~= '' then
    redis.call('HSET', key, 'batch', s.batch)
  end
  if s.ukey ~= '' then
    redis.call('HSET', key, 'ukey', s.ukey, 'hold', s.hold)
  end
  if s.tags ~= '' then
    redis.call('HSET', key, 'tags', s.tags)
  end
  if acc then
    acc.envelopes[#acc.envelopes + 1] = s.id
    acc.envelopes[#acc.envelopes + 1] = s.envelope
  else
    redis.call('HSET', K_ENV, s.id, s.envelope)
  end
  if delay > 0 then
    redis.call('ZADD', K_DELAYED, at, s.id)
  elseif acc then
    acc.ready[#acc.ready + 1] = s.id
  else
    redis.call('RPUSH', K_READY, s.id)
  end
  return 1
end

-- Notes a push in `:listed`; 1 if the queue was not listed (new, or unlisted while idle):
-- the caller then adds it to `{<prefix>}:queues`, after the script, so an unlisting that ran
-- meanwhile cannot hide it.
local function mark_listed(now)
  return redis.call('SET', K_LISTED, now, 'GET') == false and 1 or 0
end

-- Writes what `insert_job` collected in `acc`: the envelopes, then the ready ids in order.
local function write_inserted(acc)
  batched('HSET', K_ENV, acc.envelopes)
  if #acc.ready > 0 then
    batched('RPUSH', K_READY, acc.ready)
  end
end

-- Releases a job's unique lock if it still owns it and the lock is held `until` this point.
local function release_lock(id, ukey, hold, point)
  if ukey and hold == point then
    local lock = lock_key(ukey)
    if redis.call('HGET', lock, 'owner') == id then
      redis.call('DEL', lock)
    end
  end
end

-- Frees the lock of a queued job an operator deletes (not one held until expiry).
local function release_lock_of(id, key)
  local f = redis.call('HMGET', key, 'ukey', 'hold')
  if f[1] and f[2] ~= 'expiry' then
    release_lock(id, f[1], f[2], f[2])
  end
end

-- What settling did beyond the job itself, for the caller: outbox entries to deliver
-- ({id, entry}...), slots to free ({slot key, job id, token}...), whether a job became ready.
local function new_effects()
  return {outbox = {}, slots = {}, readied = false}
end

-- Pushes a follow-up: here at once, or for another queue into the outbox (atomically with
-- the settlement); the caller delivers outbox entries and clears them.
local function route_job(s, here, now, fx)
  if s.queue == here then
    if insert_job(s, redis.call('INCR', K_SEQ), now, nil) == 1 and num(s.delay, 'delay') <= 0 then
      fx.readied = true
    end
  else
    local entry = encode_spec(s)
    redis.call('HSET', K_OUTBOX, s.id, entry)
    fx.outbox[#fx.outbox + 1] = s.id
    fx.outbox[#fx.outbox + 1] = entry
  end
end

-- Pushes a batch callback (stored as [id, queue, job, envelope]) and marks it fired.
local function fire(bkey, which, here, now, fx)
  redis.call('HSET', bkey, which .. '_fired', 1)
  local stored = redis.call('HGET', bkey, which .. '_job')
  if not stored or stored == '' then
    return
  end
  local ok, cb = pcall(cjson.decode, stored)
  if not ok or type(cb) ~= 'table' then
    return
  end
  route_job({queue = cb[2], id = cb[1], job = cb[3], envelope = cb[4], delay = '0',
    retry_for = '', batch = '', ukey = '', hold = '', ttl = '', tags = ''}, here, now, fx)
end

-- Counts a finished job in its batch and pushes the callbacks that became due, each once:
-- `catch` at the first failure, `finally` when no job is pending, `then` when no job is
-- pending and none failed. Without `allow_failures` the first failure cancels the batch.
-- Batch-callback rule in Lua, not shared Rust: decided atomically with the settlement.
local function count_in_batch(batch_id, job_id, failed, now, fx)
  local bkey = batch_key(batch_id)
  local b = redis.call('HMGET', bkey, 'pending', 'failed', 'failed_ids', 'allow_failures',
    'cancelled_at', 'finished_at', 'then_fired', 'catch_fired', 'finally_fired', 'queue')
  if not b[1] then
    return -- the batch was pruned: nothing to count
  end
  local before = num(b[1], 'batch pending')
  local pending = math.max(before - 1, 0)
  local failures = num(b[2], 'batch failed')
  redis.call('HSET', bkey, 'pending', pending)
  if failed then
    failures = failures + 1
    local ids = cjson.decode(b[3] or '[]')
    if type(ids) ~= 'table' then
      ids = {}
    end
    -- At most rules::MAX_FAILED_IDS ids are kept.
    if #ids < 1000 then
      ids[#ids + 1] = job_id
      redis.call('HSET', bkey, 'failed', failures, 'failed_ids', cjson.encode(ids))
    else
      redis.call('HSET', bkey, 'failed', failures)
    end
    if b[4] ~= '1' and not b[5] then
      redis.call('HSET', bkey, 'cancelled_at', now)
    end
  end
  if before - 1 <= 0 and not b[6] then
    redis.call('HSET', bkey, 'finished_at', now)
  end
  local here = b[10]
  if failed and b[8] ~= '1' then
    fire(bkey, 'catch', here, now, fx)
  end
  if pending == 0 and b[9] ~= '1' then
    fire(bkey, 'finally', here, now, fx)
  end
  if pending == 0 and failures == 0 and b[7] ~= '1' then
    fire(bkey, 'then', here, now, fx)
  end
end

-- The side effects of a job that ended (completed or failed for good), before its hash is
-- deleted: its "until done" lock is freed, its slots listed for release, its result kept, its
-- batch counted. `w` holds the job's workflow fields (see WORKFLOW_FIELDS).
local function job_ended(id, key, token, w, failed, result, now, fx)
  if not (w[1] or w[2] or w[4]) and not result then
    return
  end
  release_lock(id, w[2], w[3], 'done')
  if w[4] then
    local ok, keys = pcall(cjson.decode, w[4])
    if ok and type(keys) == 'table' then
      for _, slot in ipairs(keys) do
        fx.slots[#fx.slots + 1] = slot
        fx.slots[#fx.slots + 1] = id
        fx.slots[#fx.slots + 1] = token
      end
    end
  end
  if result then
    local f = redis.call('HMGET', key, 'queue', 'job')
    local rkey = result_key(id)
    redis.call('DEL', rkey)
    redis.call('HSET', rkey, 'queue', f[1], 'job', f[2], 'result', result, 'completed_at', now)
    if w[1] then
      redis.call('HSET', rkey, 'batch', w[1])
    end
    redis.call('ZADD', K_RESULTS, now, id)
  end
  if w[1] then
    count_in_batch(w[1], id, failed, now, fx)
  end
end

-- The workflow fields every settlement reads with its fence, then what a completed job's
-- history record keeps.
local WORKFLOW_FIELDS = {'batch', 'ukey', 'hold', 'slots', 'job', 'attempts', 'created_at',
  'reserved_at', 'tags'}

-- A completed job's history record, from the fields settle read with its fence (`f`), as one
-- string (every completion writes one, so no JSON encoding): `attempts,enqueued_at,started_at,
-- completed_at,<bytes of the job name>,<bytes of the batch id>,tags,` then the job name and
-- the batch id, whose lengths say where each ends (either may hold commas; tags never do).
local function history_record(f, batch, now_s)
  local job, b = f[8] or '', batch or ''
  return (f[9] or '0') .. ',' .. (f[10] or '0') .. ',' .. (f[11] or '') .. ',' .. now_s .. ','
    .. #job .. ',' .. #b .. ',' .. (f[12] or '') .. ',' .. job .. b
end

-- The job name, batch id and tags of a record `history_record` wrote; nil if malformed.
local function record_names(r)
  local jl, bl, tags, rest = r:match('^[^,]*,[^,]*,[^,]*,[^,]*,(%d+),(%d+),([^,]*),(.*)$')
  if not jl then
    return nil
  end
  jl = tonumber(jl)
  return rest:sub(1, jl), rest:sub(jl + 1, jl + tonumber(bl)), tags
end

-- Claims up to `limit` ready jobs for `worker`, oldest first. Returns one array per job:
-- id, envelope, token, attempts, recoveries, deferrals, exceptions, retry_until, last_error,
-- reserved_at, available_at.
-- The first of a job's numeric fields (as `reserve` reads them) that is not a number, if any.
local NUMERIC_FIELDS = {'token', 'attempts', 'recoveries', 'deferrals', 'exceptions',
  'retry_until'}
local function unreadable_number(f)
  for n, name in ipairs(NUMERIC_FIELDS) do
    if f[n] and not tonumber(f[n]) then
      return name
    end
  end
  return nil
end

local function reserve(worker, limit, lease_ms, now, queue)
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
      'exceptions', 'retry_until', 'last_error', 'available_at', 'ukey', 'hold')
    -- An id without its job (only possible if keys were deleted or written by hand) cannot
    -- run: it becomes a failed record saying so, rather than vanishing without a trace.
    local odd = f[1] and unreadable_number(f)
    if not f[1] then
      move_to_failed(id, key, {queue = queue, job = '', attempts = 0},
        'unreadable job: its id was in the ready list of queue ' .. queue ..
        ' but its job hash ' .. key .. ' does not exist (deleted or written past Spool)',
        '[]', now)
    elseif odd then
      -- Without a numeric token it cannot be held and settled: it fails here, with the field.
      release_lock_of(id, key)
      move_to_failed(id, key, {queue = queue, job = redis.call('HGET', key, 'job') or '',
        attempts = 0}, 'unreadable job: field `' .. odd .. '` of ' .. key ..
        ' is not a number (written past Spool)', '[]', now)
    else
      release_lock(id, f[9], f[10], 'processing')
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
--   C, id, token, has_result, result, n, then n follow-ups
--   r, id, token, delay_ms, refund, deferral, exception, has_error, error
--   f, id, token, error, causes_json, n, then n follow-ups
-- A follow-up is its queue followed by the JOB_FIELDS push fields. `c` is a completion with
-- nothing attached (the hot path); `C` keeps a result or pushes follow-ups.
-- Returns one 1/0 per item and the effects (see `new_effects`).
local function settle(worker, first, now)
  local applied = {}
  local completed = {}
  -- History records and their index entries, written after the loop (one command each).
  local records = {}
  local done_at = {}
  local now_s = string.format('%d', now)
  local fx = new_effects()
  -- Completed jobs are deleted after the loop: a repeat in the same batch must not match.
  local gone = {}
  local i = first
  while i <= #ARGV do
    local kind, id, token = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    local key = job_key(id)
    local fence = redis.call('HMGET', key, 'worker', 'token', 'queue', unpack(WORKFLOW_FIELDS))
    local held = fence[1] == worker and tonumber(fence[2]) == token and not gone[id]
    local w = {fence[4], fence[5], fence[6], fence[7]}
    local here = fence[3]
    local f = {}
    if held and (kind == 'r' or kind == 'f') then
      f = redis.call('HMGET', key, 'attempts', 'deferrals', 'exceptions', 'queue', 'job')
    end
    local follow_at, follow_n = nil, 0
    if kind == 'c' or kind == 'C' then
      local result = nil
      if kind == 'C' then
        if ARGV[i + 3] == '1' then
          result = ARGV[i + 4]
        end
        follow_n = num(ARGV[i + 5], 'follow-ups')
        follow_at = i + 6
      end
      if held then
        local counted = w
        -- A chain link in a batch hands its membership to its next link (a follow-up in the
        -- same batch): the batch counts the chain once, at its last link.
        -- Lua, not the shared `hands_on_batch_membership`: decided atomically with the settlement.
        if w[1] then
          for n = 0, follow_n - 1 do
            local at = follow_at + n * (JOB_FIELDS + 1)
            if spec_at(ARGV, at + 1, ARGV[at]).batch == w[1] then
              counted = {nil, w[2], w[3], w[4]}
              break
            end
          end
        end
        job_ended(id, key, token, counted, false, result, now, fx)
        completed[#completed + 1] = id
        gone[id] = true
        -- Every completion leaves its short record, in this script: no round trip more.
        records[#records + 1] = id
        records[#records + 1] = history_record(fence, w[1], now_s)
        done_at[#done_at + 1] = now_s
        done_at[#done_at + 1] = id
      end
      i = kind == 'c' and i + 3 or follow_at + follow_n * (JOB_FIELDS + 1)
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
          fx.readied = true
        end
        -- Released jobs free their slots too; the next attempt asks again.
        if w[4] then
          job_ended(id, key, token, {nil, nil, nil, w[4]}, false, nil, now, fx)
          redis.call('HDEL', key, 'slots')
        end
      end
      i = i + 9
    elseif kind == 'f' then
      follow_n = num(ARGV[i + 5], 'follow-ups')
      follow_at = i + 6
      if held then
        job_ended(id, key, token, w, true, nil, now, fx)
        move_to_failed(id, key, {queue = f[4], job = f[5], attempts = f[1]},
          ARGV[i + 3], ARGV[i + 4], now)
      end
      i = follow_at + follow_n * (JOB_FIELDS + 1)
    else
      error('unknown settlement kind ' .. tostring(kind))
    end
    if held and follow_n > 0 then
      for n = 0, follow_n - 1 do
        local at = follow_at + n * (JOB_FIELDS + 1)
        route_job(spec_at(ARGV, at + 1, ARGV[at]), here, now, fx)
      end
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
    batched('HSET', K_DONE_REC, records)
    batched('ZADD', K_DONE, done_at)
  end
  return applied, fx
end

-- Whether `a` sorts before `b` byte by byte, as Redis orders members (Lua's `<` follows the
-- server's locale).
local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- Whether a comma-joined tag list holds `tag`.
local function has_tag(tags, tag)
  return tags ~= nil and (',' .. tags .. ','):find(',' .. tag .. ',', 1, true) ~= nil
end
