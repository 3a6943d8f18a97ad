-- Unlisting, step 3 of 3: ARGV = channel, processed count moved to the global total in step 2.
-- Returns 1 if the queue was pushed to since step 1 (the caller lists it again and takes the
-- count back); else drops the count moved, and returns 0.
if redis.call('EXISTS', K_LISTED) == 1 then
  return 1
end
local moved = num(ARGV[2], 'processed')
if moved > 0 then
  redis.call('DECRBY', K_PROCESSED, moved)
end
return 0
