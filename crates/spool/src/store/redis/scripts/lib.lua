-- Shared by every script: it is prepended to each of them, before the helpers of the keys it
-- works on (`queue.lua` or `global.lua`), if any.

-- The server's clock in milliseconds (D-7): callers never send absolute times.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A stored counter or time; a missing or malformed one stops the script with an error rather
-- than being taken as zero.
local function num(value, what)
  local n = tonumber(value)
  if n == nil then
    error('malformed ' .. what .. ': ' .. tostring(value))
  end
  return n
end
