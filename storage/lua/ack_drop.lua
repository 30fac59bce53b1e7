-- Give up waiting for one (message, recipient): it was dead-lettered.
--
-- KEYS[1]  the prefix of this team's ack keys (see ack_expect.lua)
-- ARGV[1]  "<message id>|<recipient>"
--
-- Returns 1 when it was waiting, 0 when an acknowledgement came first (nothing changes).
local prefix, entry = KEYS[1], ARGV[1]
if redis.call('EXISTS', prefix .. 'acked:' .. entry) == 1 then
  return 0
end
redis.call('HDEL', prefix .. 'attempts', entry)
return redis.call('ZREM', prefix .. 'pending', entry)
