-- Reserve the worst case of one model call against every cap that applies, or refuse it.
--
-- KEYS[1]  the prefix of this team's budget keys, with the team's hash tag: every key below is
--          built from it, so they all live in one slot
-- ARGV[1]  hold id (one per attempt: "<step id>:<attempt>")
-- ARGV[2]  amount to hold, integer micro-dollars
-- ARGV[3]  seconds the hold lives before it runs out by itself (a killed worker's hold)
-- ARGV[4…] one triple per cap: scope name, cap in micro-dollars, period: "day" (the counters
--          of a UTC day, kept three days), "run" (a run's, kept a week after its last call) or
--          "total" (kept for good)
--
-- Returns {1} when held (or already held under this id), {0, scope, spent, reserved, cap}
-- naming the first cap the call would break, or {2} when the counters are not loaded (Redis
-- lost its data, or never had it): nothing is held until they are restored from the ledger.
-- Time comes from Redis; holds past their time are forfeited first (booked at their worst case).
--
-- The call's record, "call:<hold id>", is one string: "held <amount> <counter> …", each counter
-- named by what follows "spent:" or "reserved:" in its keys ("agent:writer:d20432",
-- "run:<run id>:total"), so that the settlement and the forfeit rebuild the keys from it rather
-- than parse long key names back; it becomes "settled <cost>" or "forfeited <amount> <counter>
-- …", kept a day. "open" lists every hold by the time it runs out; "due" is a time no open hold
-- runs out before, so that a reservation looks for holds past their time only once one may be
-- (it is lowered by every hold that runs out sooner, and set to the earliest again after each
-- look; a hold settled since only makes the next look come early). Holds of the earlier format
-- (a hash at "hold:<id>" listed in "holds") are not looked for here: the sweep books those
-- (budget_forfeit.lua).

local prefix, hold_id, amount_text = KEYS[1], ARGV[1], ARGV[2]
local amount, ttl = tonumber(amount_text), tonumber(ARGV[3])
local record_key, open, due_key = prefix .. 'call:' .. hold_id, prefix .. 'open', prefix .. 'due'
-- Seconds, as text: a number handed to redis.call is formatted as a float, at some cost.
local DAY_LIFE, RECORD_LIFE = '259200', '86400'
local now_text = redis.call('TIME')[1]
local now = tonumber(now_text)
local today = string.format(':d%d', math.floor(now / 86400))
local runs_out = string.format('%d', now + ttl)
local week_on = nil  -- a week from now, in milliseconds since the epoch, once a run cap needs it

-- The cap c is ARGV[3c+1] (scope), ARGV[3c+2] (limit), ARGV[3c+3] (period). keys: what the
-- decision reads in one command: whether the counters are loaded, "due", then each cap's spent
-- (keys[2c+1]) and reserved (keys[2c+2]) counters; counters: the name of each cap's pair.
local caps = (#ARGV - 3) / 3
local keys, counters = {prefix .. 'loaded', due_key}, {}
for c = 1, caps do
  local counter = ARGV[3 * c + 1] .. (ARGV[3 * c + 3] == 'day' and today or ':total')
  counters[c] = counter
  keys[2 * c + 1], keys[2 * c + 2] = prefix .. 'spent:' .. counter, prefix .. 'reserved:' .. counter
end

-- A hold past its time belongs to a call whose worker died (or that outlived its lease): its
-- worst case is booked as spent, not handed back, so that calls cut off by kills can never add
-- up past a cap. Its record keeps where it was booked and how much, for a late settlement
-- (budget_settle.lua), which corrects it to the real cost. A hundred at most are forfeited
-- (the next reservation takes the rest). Returns how many, and when the earliest hold left runs
-- out (nil: none is left).
local function forfeit_due()
  local due = redis.call('ZRANGEBYSCORE', open, '-inf', now_text, 'LIMIT', '0', '100')
  for _, id in ipairs(due) do
    local key = prefix .. 'call:' .. id
    local record = redis.call('GET', key)
    local held, booked_on = string.match(record or '', '^held (%d+) ?(.*)$')
    if held then
      for counter in string.gmatch(booked_on, '[^ ]+') do
        redis.call('DECRBY', prefix .. 'reserved:' .. counter, held)
        redis.call('INCRBY', prefix .. 'spent:' .. counter, held)
      end
      redis.call('SET', key, 'forfeited' .. string.sub(record, 5), 'EX', RECORD_LIFE)
    end
    redis.call('ZREM', open, id)
  end
  local earliest = redis.call('ZRANGE', open, '0', '0', 'WITHSCORES')
  return #due, tonumber(earliest[2])
end

-- Add this call's amount to cap c's reserved counter (``spent`` and ``reserved``: what they
-- held, as read), giving the counters of a day or a run their time to live without a command
-- of its own wherever that can be done.
local function count(c, spent, reserved)
  local period, spent_key, reserved_key = ARGV[3 * c + 3], keys[2 * c + 1], keys[2 * c + 2]
  if period == 'run' then
    -- A run's counters live a week after its last call: each call moves that on (to a time of
    -- Redis's clock: EXPIRE costs more, as it is rewritten into PEXPIREAT for replicas).
    week_on = week_on or string.format('%d000', now + 604800)
    redis.call('INCRBY', reserved_key, amount_text)
    redis.call('PEXPIREAT', reserved_key, week_on)
    if spent then
      redis.call('PEXPIREAT', spent_key, week_on)
    else
      redis.call('SET', spent_key, '0', 'PXAT', week_on)
    end
    return
  end
  if period == 'day' and not reserved then
    -- A day's counters live three days from their first call: set when each is made (the
    -- settlement's INCRBY on the spent counter keeps its time to live).
    redis.call('SET', reserved_key, amount_text, 'EX', DAY_LIFE)
  else
    redis.call('INCRBY', reserved_key, amount_text)
  end
  if period == 'day' and not spent then
    redis.call('SET', spent_key, '0', 'EX', DAY_LIFE)
  end
end

local values = redis.call('MGET', unpack(keys))
if not values[1] then
  return {2}
end
local stored_due = tonumber(values[2])
local due = stored_due
if not due or due <= now then
  local forfeited
  forfeited, due = forfeit_due()
  if forfeited > 0 then
    values = redis.call('MGET', unpack(keys))  -- a forfeit moved counters this call may read
  end
end
-- Listed first: a hold listed already is held under this id, and nothing more is held (a
-- refusal takes the listing back).
if redis.call('ZADD', open, 'NX', runs_out, hold_id) == 0 then
  return {1}
end

-- (Arithmetic reads the counters' text as numbers, once; tonumber would read it twice.)
for c = 1, caps do
  local spent, reserved, limit = values[2 * c + 1] or 0, values[2 * c + 2] or 0, ARGV[3 * c + 2]
  if spent + reserved + amount - limit > 0 then
    redis.call('ZREM', open, hold_id)
    return {0, ARGV[3 * c + 1], tonumber(spent), tonumber(reserved), tonumber(limit)}
  end
end

for c = 1, caps do
  count(c, values[2 * c + 1], values[2 * c + 2])
end
redis.call('SET', record_key, 'held ' .. amount_text .. ' ' .. table.concat(counters, ' '),
  'EX', string.format('%d', ttl + RECORD_LIFE))
-- "due" stays no later than any open hold's time: this one's, or the earliest a look found.
if not due or now + ttl < due then
  due = now + ttl
end
if due ~= stored_due then
  redis.call('SET', due_key, string.format('%d', due))
end
return {1}
