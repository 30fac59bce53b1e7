-- Settle a hold: book what the call really cost and free the rest of what was held.
--
-- KEYS[1]  the prefix of this team's budget keys (see budget_reserve.lua)
-- ARGV[1]  hold id
-- ARGV[2]  the call's real cost, integer micro-dollars (0 to release a call never made)
--
-- Returns 1 when settled now, 2 when the hold had expired (the cost is booked all the same, on
-- the caps it was held against), 0 when this hold was settled before (nothing changes: settling
-- is idempotent) or is unknown.
local prefix, hold_id = KEYS[1], ARGV[1]
local cost = tonumber(ARGV[2])
local hold = prefix .. 'hold:' .. hold_id
local done = prefix .. 'settled:' .. hold_id

if redis.call('EXISTS', done) == 1 then
  return 0
end

local result = 0
local held = tonumber(redis.call('HGET', hold, 'amount'))
local spent_keys
if held then
  for key in string.gmatch(redis.call('HGET', hold, 'reserved') or '', '%S+') do
    redis.call('DECRBY', key, held)
  end
  spent_keys = redis.call('HGET', hold, 'spent') or ''
  redis.call('DEL', hold)
  redis.call('ZREM', prefix .. 'holds', hold_id)
  result = 1
else
  spent_keys = redis.call('GET', prefix .. 'expired:' .. hold_id)
  if not spent_keys then
    return 0
  end
  redis.call('DEL', prefix .. 'expired:' .. hold_id)
  result = 2
end

if cost > 0 then
  for key in string.gmatch(spent_keys, '%S+') do
    redis.call('INCRBY', key, cost)
  end
end
redis.call('SET', done, cost, 'EX', 86400)
return result
