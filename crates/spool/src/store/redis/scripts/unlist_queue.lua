-- Unlisting, step 2 of 3 (or its undo): ARGV = queue, processed count, 'remove' or 'add'.
-- Removes the queue from (or adds it back to) the queue list, moving its processed count to
-- (or back from) the total kept for unlisted queues in the meta hash.
local queue, moved = ARGV[1], num(ARGV[2], 'processed')
if ARGV[3] == 'remove' then
  redis.call('SREM', K_QUEUES, queue)
  redis.call('HINCRBY', K_META, 'processed_unlisted', moved)
else
  redis.call('SADD', K_QUEUES, queue)
  redis.call('HINCRBY', K_META, 'processed_unlisted', -moved)
end
return 1
