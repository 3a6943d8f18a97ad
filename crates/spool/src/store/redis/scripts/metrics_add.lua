-- Adds metrics cells. KEYS: the metrics hashes (all under the store's hash tag). ARGV, for
-- each key in order: the instant it expires at (ms; 0 = never), the number of fields, then
-- that many (field, amount) pairs.
local a = 1
for k = 1, #KEYS do
    local expires, count = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    a = a + 2
    for _ = 1, count do
        redis.call('HINCRBY', KEYS[k], ARGV[a], ARGV[a + 1])
        a = a + 2
    end
    if expires > 0 then
        redis.call('PEXPIREAT', KEYS[k], expires)
    end
end
return 0
