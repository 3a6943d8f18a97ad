-- Which of some workers hold a current lease: ARGV = worker ids. Returns one 1/0 per worker.
local now = now_ms()
local out = {}
for i = 1, #ARGV do
  local expires = redis.call('ZSCORE', K_LEASES, ARGV[i])
  out[i] = (expires and num(expires, 'lease') > now) and 1 or 0
end
return out
