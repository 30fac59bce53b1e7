-- Reserve the worst case of one model call against every cap that applies, or refuse it.
--
-- KEYS[1]  the prefix of this team's budget keys, with the team's hash tag: every key below is
--          built from it, so they all live in one slot
-- ARGV[1]  hold id (one per attempt: "<step id>:<attempt>")
-- ARGV[2]  amount to hold, integer micro-dollars
-- ARGV[3]  seconds the hold lives before it is released by itself (a killed worker's hold)
-- ARGV[4…] one triple per cap: scope name, cap in micro-dollars, period: "day" (the counters
--          of a UTC day, kept three days), "run" (a run's, kept a week after its last call) or
--          "total" (kept for good)
--
-- Returns {1} when held (or already held under this id), {0, scope, spent, reserved, cap}
-- naming the first cap the call would break, or {2} when the counters are not loaded (Redis
-- lost its data, or never had it): nothing is held until they are restored from the ledger.
-- Time comes from Redis; holds past their time are forfeited first (booked at their worst case).
local prefix, hold_id = KEYS[1], ARGV[1]
local amount, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', prefix .. 'loaded') == 0 then
  return {2}
end
local now = tonumber(redis.call('TIME')[1])
local day = math.floor(now / 86400)
local keep = {day = 3 * 86400, run = 7 * 86400}

-- A hold past its time belongs to a call whose worker died (or that outlived its lease): its
-- worst case is booked as spent, not handed back, so that calls cut off by kills can never add
-- up past a cap. A late settlement still corrects it to the real cost (budget_settle.lua).
local function forfeit(id)
  local hold = prefix .. 'hold:' .. id
  local held = tonumber(redis.call('HGET', hold, 'amount'))
  if held then
    local spent = redis.call('HGET', hold, 'spent') or ''
    for key in string.gmatch(redis.call('HGET', hold, 'reserved') or '', '%S+') do
      redis.call('DECRBY', key, held)
    end
    for key in string.gmatch(spent, '%S+') do
      redis.call('INCRBY', key, held)
    end
    -- Where it was booked and how much: a late settlement finds both.
    redis.call('SET', prefix .. 'expired:' .. id, held .. '|' .. spent, 'EX', 86400)
    redis.call('DEL', hold)
  end
  redis.call('ZREM', prefix .. 'holds', id)
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', prefix .. 'holds', '-inf', now, 'LIMIT', 0, 100)) do
  forfeit(id)
end

if redis.call('EXISTS', prefix .. 'hold:' .. hold_id) == 1 then
  return {1}
end

-- Every cap's counters in one read: spent, then reserved, cap after cap.
local spent_keys, reserved_keys, periods, counters = {}, {}, {}, {}
for i = 4, #ARGV, 3 do
  local scope, period = ARGV[i], ARGV[i + 2]
  local suffix = scope .. ':' .. (period == 'day' and ('d' .. day) or 'total')
  spent_keys[#spent_keys + 1] = prefix .. 'spent:' .. suffix
  reserved_keys[#reserved_keys + 1] = prefix .. 'reserved:' .. suffix
  periods[#periods + 1] = period
  counters[#counters + 1] = spent_keys[#spent_keys]
  counters[#counters + 1] = reserved_keys[#reserved_keys]
end
local values = redis.call('MGET', unpack(counters))
for c = 1, #spent_keys do
  local spent = tonumber(values[2 * c - 1] or '0')
  local reserved = tonumber(values[2 * c] or '0')
  local cap = tonumber(ARGV[3 * c + 2])
  if spent + reserved + amount > cap then
    return {0, ARGV[3 * c + 1], spent, reserved, cap}
  end
end

for c, key in ipairs(reserved_keys) do
  local period = periods[c]
  local life = keep[period]
  local now_reserved = redis.call('INCRBY', key, amount)
  if period == 'run' then
    -- A run's counters live a week after its last call: each call moves that on.
    redis.call('SET', spent_keys[c], 0, 'NX')
    redis.call('EXPIRE', key, life)
    redis.call('EXPIRE', spent_keys[c], life)
  elseif life then
    -- A day's counters live three days from their first call: set once, when each is made
    -- (the spent counter exists from now on, so the settlement's INCRBY keeps its time to live).
    redis.call('SET', spent_keys[c], 0, 'NX', 'EX', life)
    if now_reserved == amount then
      redis.call('EXPIRE', key, life)
    end
  end
end
redis.call('HSET', prefix .. 'hold:' .. hold_id, 'amount', amount,
  'reserved', table.concat(reserved_keys, ' '), 'spent', table.concat(spent_keys, ' '))
redis.call('EXPIRE', prefix .. 'hold:' .. hold_id, ttl + 86400)
redis.call('ZADD', prefix .. 'holds', now + ttl, hold_id)
return {1}
