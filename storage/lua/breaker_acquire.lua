-- May a call to this agent go ahead? The breaker's answer, for every worker at once.
--
-- KEYS[1]  the agent's breaker hash: state ("closed" | "open" | "half_open"), failures,
--          window_until, open_until, probe (id of the call that holds the probe lease),
--          probe_until
-- ARGV[1]  an id for this call (it becomes the probe's, if this call is the probe)
-- ARGV[2]  seconds a probe holds its lease (a probe whose worker died is replaced after this)
-- ARGV[3]  the longest wait to suggest while a probe is under way (its answer usually comes
--          well before its lease runs out)
--
-- Returns {decision, seconds}: {"allow", 0} while closed; {"probe", 0} to the one call let through
-- while half-open; {"reject", s} otherwise, s being how long until the breaker may let a call
-- through again. Open turns half-open when its time is up; time comes from Redis.
local key, call_id, lease, hint = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HGET', key, 'state') or 'closed'

if state == 'closed' then
  return {'allow', '0'}
end
if state == 'open' then
  local open_until = tonumber(redis.call('HGET', key, 'open_until') or '0')
  if now < open_until then
    return {'reject', tostring(open_until - now)}
  end
  state = 'half_open'
  redis.call('HSET', key, 'state', state)
  redis.call('HDEL', key, 'probe', 'probe_until')
end
-- half-open: exactly one call holds the probe lease at a time
local probe_until = tonumber(redis.call('HGET', key, 'probe_until') or '0')
if redis.call('HGET', key, 'probe') and now < probe_until then
  return {'reject', tostring(math.min(probe_until - now, hint))}
end
redis.call('HSET', key, 'probe', call_id, 'probe_until', tostring(now + lease))
return {'probe', '0'}
