-- Unlists an idle, empty queue, step 1 of 3 (see `RedisStore::unlist_idle_queues`): ARGV =
-- channel, idle_ms. If nothing was pushed for idle_ms and the queue holds nothing (no job,
-- failed record, batch, kept result, completed record or follow-up), drops `:listed` and its
-- leases and returns
-- its processed count (to be kept in the global total); else -1.
local idle = num(ARGV[2], 'idle')
local listed = redis.call('GET', K_LISTED)
if listed and now_ms() - (tonumber(listed) or 0) < idle then
  return -1
end
for _, key in ipairs({K_READY, K_DELAYED, K_RESERVED, K_ENV, K_FAILED, K_BATCHES, K_RESULTS,
    K_OUTBOX, K_DONE}) do
  if redis.call('EXISTS', key) == 1 then
    return -1
  end
end
redis.call('DEL', K_LISTED, K_LEASES)
return tonumber(redis.call('GET', K_PROCESSED) or '0') or 0
