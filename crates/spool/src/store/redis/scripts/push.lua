-- Push: ARGV = channel, queue, then per job: id, job name, envelope, delay_ms, retry_for_ms
-- ('' for none). Returns 1 (queued) or 0 (the id is already queued here) per job.
local queue = ARGV[2]
local now = now_ms()
local count = (#ARGV - 2) / 5
local seq = redis.call('INCRBY', K_SEQ, count) - count
local out = {}
local inserted = 0
local envelopes = {}
local ready = {}
for i = 3, #ARGV, 5 do
  local id = ARGV[i]
  local key = job_key(id)
  seq = seq + 1
  if redis.call('EXISTS', key) == 1 then
    out[#out + 1] = 0
  else
    local delay = num(ARGV[i + 3], 'delay')
    local at = now + delay
    redis.call('HSET', key, 'queue', queue, 'job', ARGV[i + 1], 'seq', seq,
      'available_at', at, 'token', 0, 'attempts', 0, 'recoveries', 0, 'deferrals', 0,
      'exceptions', 0, 'created_at', now)
    if ARGV[i + 4] ~= '' then
      redis.call('HSET', key, 'retry_until', now + num(ARGV[i + 4], 'retry window'))
    end
    envelopes[#envelopes + 1] = id
    envelopes[#envelopes + 1] = ARGV[i + 2]
    if delay > 0 then
      redis.call('ZADD', K_DELAYED, at, id)
    else
      ready[#ready + 1] = id
    end
    inserted = inserted + 1
    out[#out + 1] = 1
  end
end
if inserted > 0 then
  batched('HSET', K_ENV, envelopes)
  if #ready > 0 then
    batched('RPUSH', K_READY, ready)
  end
  redis.call('PUBLISH', CHANNEL, queue)
end
return out
