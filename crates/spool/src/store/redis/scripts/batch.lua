-- Batch records of this queue: ARGV = channel, then `ids` and the ids, or `newest` and a limit.
-- Returns one record per batch found: {id, name, total, pending, failed, failed_ids,
-- allow_failures, created_at, cancelled_at, finished_at}.
local ids = {}
if ARGV[2] == 'newest' then
  ids = redis.call('ZREVRANGE', K_BATCHES, 0, num(ARGV[3], 'limit') - 1)
else
  for i = 3, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
end
local out = {}
for _, id in ipairs(ids) do
  local b = redis.call('HMGET', batch_key(id), 'name', 'total', 'pending', 'failed',
    'failed_ids', 'allow_failures', 'created_at', 'cancelled_at', 'finished_at')
  if b[2] then
    out[#out + 1] = {id, b[1] or '', b[2], b[3], b[4], b[5] or '[]', b[6] or '0', b[7],
      b[8] or false, b[9] or false}
  end
end
return out
