-- Expect acknowledgements: each (message, recipient) must be acknowledged before its deadline,
-- or the sweeper publishes it again (ack_due.lua).
--
-- KEYS[1]  the prefix of this team's ack keys: every key below is built from it (one hash tag)
-- ARGV[1]  seconds until the acknowledgement is due
-- ARGV[2]  the attempt being published (1 for the first)
-- ARGV[3]  "1" to leave an entry that is already awaited as it is (loading again from the
--          database after Redis lost its data), "0" to set its deadline and attempt anew
-- ARGV[4…] one entry per recipient: "<message id>|<recipient>"
--
-- An entry already acknowledged is skipped (a late ack beat the re-publish). Returns how many
-- entries this call set waiting. Time comes from Redis.
local prefix, timeout, attempt, keep = KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3] == '1' 
local now = redis.call('TIME')
local deadline = tonumber(now[1]) + tonumber(now[2]) / 1e6 + timeout
local waiting = 0
for i = 4, #ARGV do
  local entry = ARGV[i]
  local skip = redis.call('EXISTS', prefix .. 'acked:' .. entry) == 1
  if not skip and keep then
    skip = redis.call('ZSCORE', prefix .. 'pending', entry) ~= false
  end
  if not skip then
    redis.call('ZADD', prefix .. 'pending', deadline, entry)
    redis.call('HSET', prefix .. 'attempts', entry, attempt)
    waiting = waiting + 1
  end
end
return waiting
