-- A delivery of one (message, recipient) begins: take the processing lease, unless the message
-- was acknowledged already or another delivery holds the lease.
--
-- KEYS[1]  the prefix of this team's ack keys (see ack_expect.lua)
-- ARGV[1]  "<message id>|<recipient>"
-- ARGV[2]  seconds the lease lasts: the message's ack_timeout_s
--
-- Returns 1 when this delivery may process the message: it holds the lease, and the deadline
-- of an awaited acknowledgement moves to the lease's end (the time to process counts from now,
-- not from when the copy was published). Returns 0 when it was acknowledged already, 2 when
-- another delivery holds the lease, 3 as 1 but Redis lost its data since the acknowledgements
-- were last loaded (no ``loaded`` marker): whether it was acknowledged is then for PostgreSQL to
-- say. A lease whose holder died runs out with the deadline, so the sweeper's next copy is
-- processed. Time comes from Redis.
local prefix, entry, lease = KEYS[1], ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', prefix .. 'acked:' .. entry) == 1 then
  return 0
end
local key = prefix .. 'processing:' .. entry
if redis.call('SET', key, 1, 'NX', 'PX', math.floor(lease * 1000)) == false then
  return 2
end
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1e6
redis.call('ZADD', prefix .. 'pending', 'XX', now + lease, entry)
if redis.call('EXISTS', prefix .. 'loaded') == 0 then
  return 3
end
return 1
