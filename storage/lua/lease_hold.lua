-- Take or keep the lease of one job (a sweep), so that exactly one process does it at a time.
--
-- KEYS[1]  the lease: a hash (holder, fence), expiring when the lease runs out
-- KEYS[2]  the job's fencing counter: an integer, raised each time the lease changes hands
-- ARGV[1]  the id of the process asking (host, pid and a random part: unique per process)
-- ARGV[2]  how long the lease lasts from now, milliseconds
--
-- Returns {1, fence} when the caller holds the lease now (taken afresh, or kept: its time starts
-- again), fence being the number of the holding (a holder whose fence is not the newest has lost
-- the lease since); {0, holder, ms left} when another process holds it.
local lease, counter, me, ttl = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
local holder = redis.call('HGET', lease, 'holder')
if holder == me then
  redis.call('PEXPIRE', lease, ttl)
  return {1, tonumber(redis.call('HGET', lease, 'fence'))}
end
if holder then
  return {0, holder, redis.call('PTTL', lease)}
end
local fence = redis.call('INCR', counter)
redis.call('HSET', lease, 'holder', me, 'fence', fence)
redis.call('PEXPIRE', lease, ttl)
return {1, fence}
