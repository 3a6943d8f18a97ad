-- Frees slots: KEYS = the slot's holders; ARGV = (holder, token) pairs, each freed only if it
-- was taken under that token (a later reservation of the same job keeps its own). Returns how
-- many were freed.
local slots = KEYS[1]
local freed = 0
for i = 1, #ARGV, 2 do
  local raw = redis.call('HGET', slots, ARGV[i])
  if raw then
    local ok, rec = pcall(cjson.decode, raw)
    if not ok or type(rec) ~= 'table' or tostring(rec.t) == ARGV[i + 1] then
      freed = freed + redis.call('HDEL', slots, ARGV[i])
    end
  end
end
return freed
