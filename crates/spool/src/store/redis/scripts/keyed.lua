-- Shared by the scripts on one limiter's or slot's keys (`{<prefix>:limit:<key>}` or
-- `{<prefix>:slot:<key>}`, in KEYS): each such key has a hash tag of its own, so callers of
-- different keys never contend for one Cluster slot.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function num(value, what)
  local n = tonumber(value)
  if n == nil then
    error('malformed ' .. what .. ': ' .. tostring(value))
  end
  return n
end
