-- Creates a batch here and pushes its jobs, or pushes more jobs into a batch here:
-- ARGV = channel, queue, mode (`create` or `add`), batch id, then for `create` the name,
-- allow_failures (1/0) and the `then`, `catch` and `finally` jobs (each [id, queue, job,
-- envelope] as JSON, or ''), then per job the JOB_FIELDS push fields. Only the jobs actually
-- stored are counted: total and pending grow, and a finished batch is open again.
-- Returns {status, flags}: status 1, or 0 when creating a batch that exists or adding to one
-- that doesn't (then nothing was written).
local queue, mode, id = ARGV[2], ARGV[3], ARGV[4]
local bkey = batch_key(id)
local exists = redis.call('EXISTS', bkey) == 1
local now = now_ms()
local first
if mode == 'create' then
  if exists then
    return {0, {}, 0}
  end
  redis.call('HSET', bkey, 'name', ARGV[5], 'queue', queue, 'total', 0, 'pending', 0,
    'failed', 0, 'failed_ids', '[]', 'allow_failures', ARGV[6], 'then_job', ARGV[7],
    'catch_job', ARGV[8], 'finally_job', ARGV[9], 'created_at', now)
  redis.call('ZADD', K_BATCHES, now, id)
  first = 10
else
  if not exists then
    return {0, {}, 0}
  end
  first = 5
end
local count = (#ARGV - first + 1) / JOB_FIELDS
local seq = redis.call('INCRBY', K_SEQ, count) - count
local out = {}
local acc = {envelopes = {}, ready = {}}
local added = 0
for i = first, #ARGV, JOB_FIELDS do
  seq = seq + 1
  local s = spec_at(ARGV, i, queue)
  s.batch = id
  local queued = insert_job(s, seq, now, acc)
  added = added + queued
  out[#out + 1] = queued
end
local listed_now = 0
if added > 0 then
  write_inserted(acc)
  listed_now = mark_listed(now)
  redis.call('HINCRBY', bkey, 'total', added)
  redis.call('HINCRBY', bkey, 'pending', added)
  redis.call('HDEL', bkey, 'finished_at')
  redis.call('PUBLISH', CHANNEL, queue)
end
return {1, out, listed_now}
