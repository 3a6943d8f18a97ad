-- Checks that a worker holds a job under a token and, with a slot key, notes the key on the
-- job so its settlement frees the slot: ARGV = channel, worker, id, token, slot key ('' to
-- check only). Returns 1 if the worker holds the job, else 0.
local key = job_key(ARGV[3])
local fence = redis.call('HMGET', key, 'worker', 'token', 'slots')
if fence[1] ~= ARGV[2] or tonumber(fence[2]) ~= tonumber(ARGV[4]) then
  return 0
end
local slot = ARGV[5]
if slot ~= '' then
  local ok, keys = pcall(cjson.decode, fence[3] or '[]')
  if not ok or type(keys) ~= 'table' then
    keys = {}
  end
  for _, k in ipairs(keys) do
    if k == slot then
      return 1
    end
  end
  keys[#keys + 1] = slot
  redis.call('HSET', key, 'slots', cjson.encode(keys))
end
return 1
