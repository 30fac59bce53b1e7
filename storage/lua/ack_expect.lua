-- Expect acknowledgements: each (message, recipient) must be acknowledged before its deadline,
-- or the sweeper publishes it again (ack_due.lua).
--
-- KEYS[1]  the prefix of this team's ack keys: every key below is built from it (one hash tag)
-- ARGV[1]  seconds until the acknowledgement is due
-- ARGV[2]  the attempt being published (1 for the first)
-- ARGV[3…] one entry per recipient: "<message id>|<recipient>"
--
-- An entry already acknowledged is skipped (a late ack beat the re-publish). Returns how many
-- entries now wait for an acknowledgement. Time comes from Redis.
local prefix, timeout, attempt = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local now = redis.call('TIME')
local deadline = tonumber(now[1]) + tonumber(now[2]) / 1e6 + timeout
local waiting = 0
for i = 3, #ARGV do
  local entry = ARGV[i]
  if redis.call('EXISTS', prefix .. 'acked:' .. entry) == 0 then
    redis.call('ZADD', prefix .. 'pending', deadline, entry)
    redis.call('HSET', prefix .. 'attempts', entry, attempt)
    waiting = waiting + 1
  end
end
return waiting
