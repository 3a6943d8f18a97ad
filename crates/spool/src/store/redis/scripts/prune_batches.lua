-- Deletes old batch records of this queue: ARGV = channel, then the ages in ms ('' for none)
-- of finished batches (by finish), unfinished ones and cancelled ones (by creation), then a
-- chunk size. Returns the ids deleted (at most a chunk; the caller repeats while a whole chunk
-- went).
local now = now_ms()
local function cutoff(arg)
  if arg == '' then
    return nil
  end
  return now - num(arg, 'age')
end
local finished, unfinished, cancelled = cutoff(ARGV[2]), cutoff(ARGV[3]), cutoff(ARGV[4])
local chunk = num(ARGV[5], 'chunk')
local out = {}
local ids = redis.call('ZRANGE', K_BATCHES, 0, -1, 'WITHSCORES')
for i = 1, #ids, 2 do
  if #out >= chunk then
    break
  end
  local id, created = ids[i], num(ids[i + 1], 'created_at')
  local b = redis.call('HMGET', batch_key(id), 'finished_at', 'cancelled_at')
  local done = tonumber(b[1])
  local old = (finished and done and done < finished)
    or (unfinished and not done and created < unfinished)
    or (cancelled and b[2] and created < cancelled)
  if old then
    redis.call('DEL', batch_key(id))
    redis.call('ZREM', K_BATCHES, id)
    out[#out + 1] = id
  end
end
return out
