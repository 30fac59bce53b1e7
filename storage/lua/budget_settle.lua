-- Settle a hold: book what the call really cost and free the rest of what was held.
--
-- KEYS[1]  the prefix of this team's budget keys (see budget_reserve.lua)
-- ARGV[1]  hold id
-- ARGV[2]  the call's real cost, integer micro-dollars (0 to release a call never made)
-- ARGV[3…] one pair per cap the call was held against: scope name, period ("day", "run" or
--          "total"); where to book the cost if Redis lost the hold (it lost its data)
--
-- Returns 1 when settled now; 2 when the hold had run out (it was booked at its worst case, and
-- the booking is corrected to the real cost, on the caps it was held against); 0 when this hold
-- was settled before (nothing changes: settling is idempotent) or is unknown and no caps were
-- given; 4 when Redis had lost the hold (the cost is booked on the caps given); 3 when it had
-- lost the hold and the counters are not loaded yet: nothing is booked, the caller restores the
-- counters from the ledger and settles again.
local prefix, hold_id = KEYS[1], ARGV[1]
local cost = tonumber(ARGV[2])
local hold = prefix .. 'hold:' .. hold_id
local done = prefix .. 'settled:' .. hold_id

-- A hold still open is settled now (settling deletes it); without one, the marker says whether
-- it was settled before.
local result = 0
local fields = redis.call('HMGET', hold, 'amount', 'reserved', 'spent')
local held = tonumber(fields[1])
local spent_keys
local booked = 0  -- already on the spent counters for this call
if not held and redis.call('EXISTS', done) == 1 then
  return 0
end
if held then
  for key in string.gmatch(fields[2] or '', '%S+') do
    redis.call('DECRBY', key, held)
  end
  spent_keys = fields[3] or ''
  redis.call('DEL', hold)
  redis.call('ZREM', prefix .. 'holds', hold_id)
  result = 1
else
  local expired = redis.call('GET', prefix .. 'expired:' .. hold_id)
  if expired then
    local amount, keys = string.match(expired, '^(%d+)|(.*)$')
    booked, spent_keys = tonumber(amount), keys
    redis.call('DEL', prefix .. 'expired:' .. hold_id)
    result = 2
  elseif #ARGV < 4 then
    return 0
  elseif redis.call('EXISTS', prefix .. 'loaded') == 0 then
    return 3
  else
    -- Redis lost the hold with the rest of its data: book on the caps' counters of today.
    local day = math.floor(tonumber(redis.call('TIME')[1]) / 86400)
    local keep = {day = 3 * 86400, run = 7 * 86400}
    local keys = {}
    for i = 3, #ARGV, 2 do
      local period = ARGV[i + 1]
      local key = prefix .. 'spent:' .. ARGV[i] .. ':' .. (period == 'day' and ('d' .. day) or 'total')
      if keep[period] and redis.call('TTL', key) < 0 then
        redis.call('SET', key, redis.call('GET', key) or 0, 'EX', keep[period])
      end
      keys[#keys + 1] = key
    end
    spent_keys = table.concat(keys, ' ')
    result = 4
  end
end

if cost ~= booked then
  for key in string.gmatch(spent_keys, '%S+') do
    redis.call('INCRBY', key, cost - booked)
  end
end
redis.call('SET', done, cost, 'EX', 86400)
return result
