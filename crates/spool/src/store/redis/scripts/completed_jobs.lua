-- Completed records of this queue for a search, newest first: ARGV = channel, after_at and
-- after_id (the position to go on from, '' for the newest end), window (records to examine at
-- most), limit, then job name, batch id and tag to match ('' for any). Returns
-- {stop_at, stop_id, records...}: where it stopped examining when it may go on (window or
-- limit reached; '' otherwise), then each match {id, record, has_result} (`record` as settle
-- wrote it in `:done:rec`).
local after_at, after_id = ARGV[2], ARGV[3]
local window, limit = num(ARGV[4], 'window'), num(ARGV[5], 'limit')
local want_job, want_batch, want_tag = ARGV[6], ARGV[7], ARGV[8]
local from = after_at == '' and '+inf' or after_at
local after = after_at ~= '' and num(after_at, 'position') or nil
local CHUNK = 500
local out = {'', ''}
local examined, found, offset = 0, 0, 0
while true do
  local page = redis.call('ZREVRANGEBYSCORE', K_DONE, from, '-inf', 'WITHSCORES', 'LIMIT',
    offset, CHUNK)
  local ids, scores = {}, {}
  for i = 1, #page, 2 do
    local at = num(page[i + 1], 'completion time')
    -- At the cursor's millisecond, only ids after it (members of one score come in reverse
    -- byte order, so those are the ones ahead of it).
    if not (after and at == after and not bytes_before(page[i], after_id)) then
      ids[#ids + 1] = page[i]
      scores[#scores + 1] = at
    end
  end
  local records = #ids > 0 and redis.call('HMGET', K_DONE_REC, unpack(ids)) or {}
  for n, id in ipairs(ids) do
    examined = examined + 1
    local job, batch, tags = nil, nil, nil
    if records[n] then
      job, batch, tags = record_names(records[n])
    end
    if job and (want_job == '' or job == want_job) and (want_batch == '' or batch == want_batch)
        and (want_tag == '' or has_tag(tags, want_tag)) then
      found = found + 1
      out[#out + 1] = {id, records[n], redis.call('EXISTS', result_key(id))}
    end
    if found >= limit or examined >= window then
      out[1] = string.format('%d', scores[n])
      out[2] = id
      return out
    end
  end
  if #page < CHUNK * 2 then
    return out
  end
  offset = offset + CHUNK
end
