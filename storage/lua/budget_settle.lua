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
--
-- The call's record ("call:<hold id>", see budget_reserve.lua) becomes "settled <cost>", kept a
-- day: the mark that makes settling idempotent, and the known cost a forfeit reports.
-- (A hold of the earlier format, a hash at "hold:<id>", is never met here: only the worker that
-- held a call settles it, and a worker of the earlier version settles with its own script.)
local prefix, hold_id, cost_text = KEYS[1], ARGV[1], ARGV[2]
local record_key = prefix .. 'call:' .. hold_id
local RECORD_LIFE = '86400'  -- as text: a number given to redis.call is formatted as a float

-- Add ``amount`` (text) to the spent counter of each counter named in ``counters`` (split on
-- '[^ ]+': a set is matched faster than the class '%S+').
local function book(counters, amount)
  if amount ~= '0' then
    for counter in string.gmatch(counters, '[^ ]+') do
      redis.call('INCRBY', prefix .. 'spent:' .. counter, amount)
    end
  end
end

-- The record is marked settled by the command that reads what it was (XX: a call with no
-- record gets none here). It keeps its time to live: a day past the time its hold runs out, or
-- past its forfeit.
local settled = 'settled ' .. cost_text
local record = redis.call('SET', record_key, settled, 'XX', 'GET', 'KEEPTTL')
if record then
  local state, amount, counters = string.match(record, '^(%a+) (%d+) ?(.*)$')
  if state == 'held' then
    -- (One pass over the counters frees the hold and books the cost, rather than book's second.)
    local booked = cost_text ~= '0'
    for counter in string.gmatch(counters, '[^ ]+') do
      redis.call('DECRBY', prefix .. 'reserved:' .. counter, amount)
      if booked then
        redis.call('INCRBY', prefix .. 'spent:' .. counter, cost_text)
      end
    end
    redis.call('ZREM', prefix .. 'open', hold_id)
    return 1
  elseif state == 'forfeited' then
    book(counters, string.format('%d', cost_text - amount))  -- its worst case is on them already
    return 2
  end
  if record ~= settled then
    redis.call('SET', record_key, record, 'KEEPTTL')  -- settled before: its cost stands
  end
  return 0
end

if #ARGV < 4 then
  return 0
end
if redis.call('EXISTS', prefix .. 'loaded') == 0 then
  return 3
end
-- Redis lost the hold with the rest of its data: book on the caps' counters of today.
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
  counters[#counters + 1] = counter
end
book(table.concat(counters, ' '), cost_text)
redis.call('SET', record_key, settled, 'EX', RECORD_LIFE)
return 4
