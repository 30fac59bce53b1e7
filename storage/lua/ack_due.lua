-- Claim the acknowledgements that are overdue, for one sweeper.
--
-- KEYS[1]  the prefix of this team's ack keys (see ack_expect.lua)
-- ARGV[1]  the most entries to claim
-- ARGV[2]  seconds the claim lasts: an entry claimed by a sweeper that died comes due again
--
-- Returns a flat list: entry, attempt, entry, attempt... Each claimed entry's deadline moves on
-- by the claim, so two sweepers never take the same one; the sweeper then publishes it again
-- (ack_expect.lua sets the new deadline) or gives it up (ack_drop.lua).
local prefix, limit, lease = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1e6
local due = redis.call('ZRANGEBYSCORE', prefix .. 'pending', '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, entry in ipairs(due) do
  redis.call('ZADD', prefix .. 'pending', now + lease, entry)
  out[#out + 1] = entry
  out[#out + 1] = redis.call('HGET', prefix .. 'attempts', entry) or '1'
end
return out
