-- Push: ARGV = channel, queue, delivery flag ('1' when delivering from an outbox: each id is
-- pushed at most once, ever), then per job the JOB_FIELDS push fields. Returns 1 (queued) or 0
-- (the id is already queued here, its unique lock is held, or it was delivered before) per job,
-- after whether the queue must be listed again: {listed_now, {flags...}}.
local queue, delivery = ARGV[2], ARGV[3] == '1'
local now = now_ms()
local count = (#ARGV - 3) / JOB_FIELDS
local seq = redis.call('INCRBY', K_SEQ, count) - count
local out = {}
local acc = {envelopes = {}, ready = {}}
local inserted = 0
for i = 4, #ARGV, JOB_FIELDS do
  seq = seq + 1
  local s = spec_at(ARGV, i, queue)
  local fresh = true
  if delivery then
    fresh = redis.call('SET', delivered_key(s.id), 1, 'PX', DELIVERED_TTL_MS, 'NX') ~= false
  end
  local queued = fresh and insert_job(s, seq, now, acc) or 0
  inserted = inserted + queued
  out[#out + 1] = queued
end
local listed_now = 0
if inserted > 0 then
  write_inserted(acc)
  listed_now = mark_listed(now)
  redis.call('PUBLISH', CHANNEL, queue)
end
return {listed_now, out}
