-- Takes a concurrency slot if fewer than `limit` are held: KEYS = the slot's holders (a hash
-- of job id -> {w = worker, q = queue, t = token, e = expiry ms or 0} as JSON); ARGV = job id,
-- worker, token, queue, limit, expire_after_ms ('' for none), then (holder, token) pairs the
-- caller found stale (the job no longer held under that token, or its worker dead), freed if
-- their record is unchanged. Expired holders are freed too. Asking again for a held slot is a
-- success. Returns 1 (held) or 0.
local slots = KEYS[1]
local id, worker, token, queue = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit = num(ARGV[5], 'limit')
local now = now_ms()
for i = 7, #ARGV, 2 do
  local raw = redis.call('HGET', slots, ARGV[i])
  if raw then
    local ok, rec = pcall(cjson.decode, raw)
    if not ok or type(rec) ~= 'table' or tostring(rec.t) == ARGV[i + 1] then
      redis.call('HDEL', slots, ARGV[i])
    end
  end
end
local held = redis.call('HGETALL', slots)
local taken = 0
for i = 1, #held, 2 do
  local ok, rec = pcall(cjson.decode, held[i + 1])
  local expired = not ok or type(rec) ~= 'table'
    or (tonumber(rec.e) or 0) > 0 and tonumber(rec.e) <= now
  if expired then
    redis.call('HDEL', slots, held[i])
  elseif held[i] == id and tostring(rec.t) == token then
    return 1
  elseif held[i] ~= id then
    taken = taken + 1
  end
end
if taken >= limit then
  return 0
end
local expires = 0
if ARGV[6] ~= '' then
  expires = now + num(ARGV[6], 'expire_after')
end
redis.call('HSET', slots, id, cjson.encode({w = worker, q = queue, t = token, e = expires}))
return 1
