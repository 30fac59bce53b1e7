-- Acknowledge one (message, recipient): it is processed, stop waiting for it.
--
-- KEYS[1]  the prefix of this team's ack keys (see ack_expect.lua)
-- ARGV[1]  "<message id>|<recipient>"
-- ARGV[2]  seconds to remember the acknowledgement (a late copy is then recognised)
--
-- Returns {outcome, attempt}. The outcome is 1 when acknowledged now, 0 when it was acknowledged
-- before (nothing changes), 2 when nothing waits for it (never expected, or already given up and
-- dead-lettered): it is remembered all the same, so that a copy still on a queue is not
-- processed. The attempt is the one that was awaited (0 when none was).
local prefix, entry, keep = KEYS[1], ARGV[1], tonumber(ARGV[2])
local acked = prefix .. 'acked:' .. entry
local before = redis.call('GET', acked)
if before then
  return {0, tonumber(before)}
end
local attempt = redis.call('HGET', prefix .. 'attempts', entry) or '0'
redis.call('SET', acked, attempt, 'EX', keep)
redis.call('DEL', prefix .. 'processing:' .. entry)
local waited = redis.call('ZREM', prefix .. 'pending', entry)
redis.call('HDEL', prefix .. 'attempts', entry)
if waited == 1 then
  return {1, tonumber(attempt)}
end
return {2, tonumber(attempt)}
