-- Tell the breaker how a call went; returns its state afterwards.
--
-- KEYS[1]  the agent's breaker hash (see breaker_acquire.lua)
-- ARGV[1]  the call's id (as given to breaker_acquire.lua)
-- ARGV[2]  "success" or "failure" (failures that say the provider is in trouble: overloaded,
--          rate limited, timed out, unavailable), or "not_made": the call was let through but
--          not made (a spend cap refused it), which frees the probe's place if it was the probe
-- ARGV[3]  failures within a window that open the breaker
-- ARGV[4]  the window, seconds
-- ARGV[5]  how long the breaker stays open, seconds
--
-- Closed: failures are counted in a window; the threshold opens the breaker. Half-open: only the
-- probe's outcome counts: success closes, failure re-opens with a fresh deadline. Open: outcomes
-- of calls that started before it opened change nothing.
local key, call_id, outcome = KEYS[1], ARGV[1], ARGV[2]
local threshold, window, reset = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HGET', key, 'state') or 'closed'

local function open()
  redis.call('HSET', key, 'state', 'open', 'open_until', tostring(now + reset), 'failures', 0)
  redis.call('HDEL', key, 'probe', 'probe_until', 'window_until')
  redis.call('HINCRBY', key, 'opened', 1)
  return 'open'
end

if state == 'half_open' then
  if redis.call('HGET', key, 'probe') ~= call_id then
    return state
  end
  if outcome == 'not_made' then
    redis.call('HDEL', key, 'probe', 'probe_until')
    return state
  end
  if outcome == 'success' then
    redis.call('HSET', key, 'state', 'closed', 'failures', 0)
    redis.call('HDEL', key, 'probe', 'probe_until', 'window_until', 'open_until')
    return 'closed'
  end
  return open()
end
if state == 'open' or outcome ~= 'failure' then
  return state
end
-- closed, a failure: count it in the current window
local window_until = tonumber(redis.call('HGET', key, 'window_until') or '0')
local failures = 1
if now < window_until then
  failures = redis.call('HINCRBY', key, 'failures', 1)
else
  redis.call('HSET', key, 'failures', 1, 'window_until', tostring(now + window))
end
if failures >= threshold then
  return open()
end
return 'closed'
