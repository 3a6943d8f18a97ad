-- Queued jobs of this queue for a search, in listing order: the ready list, then the delayed
-- jobs by due time, then the reserved ones by id. ARGV = channel, segment (`r`, `d` or `h`)
-- and offset to go on from, window (jobs to examine at most), limit, state ('' for any,
-- pending, delayed, reserved), then job name, batch id and tag to match ('' for any).
-- Returns {now, segment, offset, examined, jobs...}: where to go on from ('' once this queue
-- is done), how many jobs it examined, then each match as `jobs.lua` lists it.
local segment, offset = ARGV[2], num(ARGV[3], 'offset')
local window, limit, state = num(ARGV[4], 'window'), num(ARGV[5], 'limit'), ARGV[6]
local want_job, want_batch, want_tag = ARGV[7], ARGV[8], ARGV[9]
local now = now_ms()
local out = {now, '', 0, 0}
local examined, found = 0, 0
local SEGMENTS = {'r', 'd', 'h'}
local CHUNK = 500

-- Whether segment `s` can hold jobs in the state searched for.
local function wanted(s)
  if state == '' then
    return true
  end
  return (s == 'r' and state == 'pending') or (s == 'd' and state ~= 'reserved')
    or (s == 'h' and state == 'reserved')
end

-- The reserved ids in byte order, so offsets are stable between calls.
local function reserved_ids()
  local ids = redis.call('HKEYS', K_RESERVED)
  table.sort(ids, bytes_before)
  return ids
end

local held = nil
local at = 1
for i, s in ipairs(SEGMENTS) do
  if s == segment then
    at = i
  end
end
for i = at, #SEGMENTS do
  local s = SEGMENTS[i]
  if s ~= segment then
    offset = 0
  end
  while wanted(s) do
    local ids, due = {}, {}
    if s == 'r' then
      ids = redis.call('LRANGE', K_READY, offset, offset + CHUNK - 1)
    elseif s == 'd' then
      local page = redis.call('ZRANGE', K_DELAYED, offset, offset + CHUNK - 1, 'WITHSCORES')
      for n = 1, #page, 2 do
        ids[#ids + 1] = page[n]
        due[#due + 1] = num(page[n + 1], 'due time') <= now
      end
    else
      held = held or reserved_ids()
      for n = offset + 1, math.min(offset + CHUNK, #held) do
        ids[#ids + 1] = held[n]
      end
    end
    for n, id in ipairs(ids) do
      examined = examined + 1
      offset = offset + 1
      local in_state = s ~= 'd' or state == '' or (state == 'pending') == due[n]
      local f = redis.call('HMGET', job_key(id), 'job', 'worker', 'available_at', 'attempts',
        'recoveries', 'deferrals', 'last_error', 'seq', 'progress', 'progress_message',
        'reserved_at', 'tags', 'batch')
      if in_state and f[1] and (want_job == '' or f[1] == want_job)
          and (want_batch == '' or f[13] == want_batch)
          and (want_tag == '' or has_tag(f[12], want_tag)) then
        found = found + 1
        out[#out + 1] = {id, f[1], f[2], f[3], f[4], f[5], f[6], f[7],
          redis.call('HGET', K_ENV, id) or '', f[8], f[9] or false, f[10] or false,
          f[11] or false, f[12] or ''}
      end
      if found >= limit or examined >= window then
        out[2], out[3], out[4] = s, offset, examined
        return out
      end
    end
    if #ids < CHUNK then
      break
    end
  end
end
out[4] = examined
return out
