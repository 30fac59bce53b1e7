-- Book a call cut off by a dead worker (its attempt's lease ran out) at its worst case, as spent
-- but unknown, unless it was settled. The maintenance sweep calls this before it writes the
-- call's row in the cost ledger, so that the ledger and the counters agree on the amount.
--
-- KEYS[1]  the prefix of this team's budget keys (see budget_reserve.lua)
-- ARGV[1]  hold id ("<step id>:<attempt>")
-- ARGV[2]  the call's worst case, integer micro-dollars: booked when Redis knows nothing of the
--          hold (it lost its data, or the worker died before it held anything)
-- ARGV[3…] one pair per cap the call answers to: scope name, period ("day", "run" or "total")
--
-- Returns {0, cost} when the call was settled (its cost is known); {1, amount} when its hold is
-- forfeited now or was before (its worst case, booked when it ran out); {2, amount} when Redis
-- knew nothing of it: the worst case given is booked on the caps given; {3} when the counters
-- are not loaded: nothing is booked, the caller restores them from the ledger and calls again.
-- A settlement that comes later still corrects the booking to the real cost (budget_settle.lua).
--
-- The sweep may run a version other than the worker's that held the call, so a hold of the
-- earlier format is read too (see forfeit_earlier_format).
-- (The forfeit of a held record below is budget_reserve.lua's; scripts cannot share code.)
local prefix, hold_id, worst_text = KEYS[1], ARGV[1], ARGV[2]
local record_key = prefix .. 'call:' .. hold_id
local RECORD_LIFE = '86400'

-- A call held by a worker of the earlier version: a hash at "hold:<id>" (its amount and the
-- full names of the counter keys it counts against) listed in "holds", marked "settled:<id>"
-- (its cost) once settled or "expired:<id>" ("<amount>|<spent keys>") once forfeited. Its
-- records stay in that format: that worker, if it was only slow, settles it with the earlier
-- script, which reads nothing else. Returns nil when there is no such call.
local function forfeit_earlier_format()
  local hold, expired = prefix .. 'hold:' .. hold_id, prefix .. 'expired:' .. hold_id
  local settled = redis.call('GET', prefix .. 'settled:' .. hold_id)
  if settled then
    return {0, tonumber(settled)}
  end
  local before = redis.call('GET', expired)
  if before then
    return {1, tonumber(string.match(before, '^(%d+)|'))}
  end
  local held = tonumber(redis.call('HGET', hold, 'amount'))
  if not held then
    return nil
  end
  local spent = redis.call('HGET', hold, 'spent') or ''
  for key in string.gmatch(redis.call('HGET', hold, 'reserved') or '', '%S+') do
    redis.call('DECRBY', key, held)
  end
  for key in string.gmatch(spent, '%S+') do
    redis.call('INCRBY', key, held)
  end
  redis.call('SET', expired, held .. '|' .. spent, 'EX', RECORD_LIFE)
  redis.call('DEL', hold)
  redis.call('ZREM', prefix .. 'holds', hold_id)
  return {1, held}
end

local record = redis.call('GET', record_key)
if record then
  local state, amount, counters = string.match(record, '^(%a+) (%d+) ?(.*)$')
  if state == 'settled' then
    return {0, tonumber(amount)}
  end
  if state == 'held' then
    for counter in string.gmatch(counters, '[^ ]+') do
      redis.call('DECRBY', prefix .. 'reserved:' .. counter, amount)
      redis.call('INCRBY', prefix .. 'spent:' .. counter, amount)
    end
    redis.call('SET', record_key, 'forfeited' .. string.sub(record, 5), 'EX', RECORD_LIFE)
    redis.call('ZREM', prefix .. 'open', hold_id)
  end
  return {1, tonumber(amount)}
end
local earlier = forfeit_earlier_format()
if earlier then
  return earlier
end
if redis.call('EXISTS', prefix .. 'loaded') == 0 then
  return {3}
end
-- Redis knows nothing of the call: its worst case goes on the caps' counters of today.
local today = 'd' .. math.floor(tonumber(redis.call('TIME')[1]) / 86400)
local keep = {day = 3 * 86400, run = 7 * 86400}
local counters = {}
for i = 3, #ARGV, 2 do
  local period = ARGV[i + 1]
  local counter = ARGV[i] .. ':' .. (period == 'day' and today or 'total')
  local key = prefix .. 'spent:' .. counter
  if keep[period] and redis.call('TTL', key) < 0 then
    redis.call('SET', key, redis.call('GET', key) or 0, 'EX', keep[period])
  end
  redis.call('INCRBY', key, worst_text)
  counters[#counters + 1] = counter
end
redis.call('SET', record_key, 'forfeited ' .. worst_text .. ' ' .. table.concat(counters, ' '),
  'EX', RECORD_LIFE)
return {2, tonumber(worst_text)}
