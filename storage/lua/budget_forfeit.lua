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
-- (The forfeit below is budget_reserve.lua's; scripts cannot share code.)
local prefix, hold_id, worst = KEYS[1], ARGV[1], tonumber(ARGV[2])
local hold = prefix .. 'hold:' .. hold_id
local expired = prefix .. 'expired:' .. hold_id

local settled = redis.call('GET', prefix .. 'settled:' .. hold_id)
if settled then
  return {0, tonumber(settled)}
end
local before = redis.call('GET', expired)
if before then
  return {1, tonumber(string.match(before, '^(%d+)|'))}
end
local held = tonumber(redis.call('HGET', hold, 'amount'))
if held then
  local spent = redis.call('HGET', hold, 'spent') or ''
  for key in string.gmatch(redis.call('HGET', hold, 'reserved') or '', '%S+') do
    redis.call('DECRBY', key, held)
  end
  for key in string.gmatch(spent, '%S+') do
    redis.call('INCRBY', key, held)
  end
  redis.call('SET', expired, held .. '|' .. spent, 'EX', 86400)
  redis.call('DEL', hold)
  redis.call('ZREM', prefix .. 'holds', hold_id)
  return {1, held}
end
if redis.call('EXISTS', prefix .. 'loaded') == 0 then
  return {3}
end
local day = math.floor(tonumber(redis.call('TIME')[1]) / 86400)
local keep = {day = 3 * 86400, run = 7 * 86400}
local keys = {}
for i = 3, #ARGV, 2 do
  local period = ARGV[i + 1]
  local key = prefix .. 'spent:' .. ARGV[i] .. ':' .. (period == 'day' and ('d' .. day) or 'total')
  if keep[period] and redis.call('TTL', key) < 0 then
    redis.call('SET', key, redis.call('GET', key) or 0, 'EX', keep[period])
  end
  redis.call('INCRBY', key, worst)
  keys[#keys + 1] = key
end
redis.call('SET', expired, worst .. '|' .. table.concat(keys, ' '), 'EX', 86400)
return {2, worst}
