-- Add one finished run's cost to its workflow type's rolling statistics, atomically for every
-- worker; returns the statistics as they were before it (what the run is judged against).
--
-- KEYS[1]  the hash of one workflow type's statistics: n (runs counted), mean, var (micro-dollars)
-- ARGV[1]  the run's cost, micro-dollars
-- ARGV[2]  the window: past this many runs, older ones weigh less and less (an exponentially
--          weighted mean and variance; before it, every run weighs the same)
--
-- Returns {n, mean, var} before this run, as strings.
local key = KEYS[1]
local cost, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = tonumber(redis.call('HGET', key, 'n') or '0')
local mean = tonumber(redis.call('HGET', key, 'mean') or '0')
local var = tonumber(redis.call('HGET', key, 'var') or '0')
local before = {tostring(n), tostring(mean), tostring(var)}

local count = n + 1
local alpha = math.max(1 / count, 2 / (window + 1))
local diff = cost - mean
local step = alpha * diff
redis.call('HSET', key, 'n', count, 'mean', tostring(mean + step),
  'var', tostring((1 - alpha) * (var + diff * step)))
return before
