-- Give a lease up (a process that stops), so that another takes the job over at once.
--
-- KEYS[1]  the lease (see lease_hold.lua)
-- ARGV[1]  the id of the process giving it up
--
-- Returns 1 when it was that process's and is released, 0 when it was not (nothing changes).
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
