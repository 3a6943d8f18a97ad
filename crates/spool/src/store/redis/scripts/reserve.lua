-- Reserve: ARGV = channel, worker, limit, lease_ms, queue name. Returns the claimed jobs.
return reserve(ARGV[2], num(ARGV[3], 'limit'), num(ARGV[4], 'lease'), now_ms(), ARGV[5])
