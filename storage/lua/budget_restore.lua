-- Raise spend counters to what the cost ledger in PostgreSQL says was spent (after Redis lost
-- its data). A counter already higher is left alone: it holds settlements whose ledger rows
-- are not committed yet, so restoring is safe while workers run.
--
-- KEYS[1]  the prefix of this team's budget keys (see budget_reserve.lua)
-- ARGV     one triple per counter: "<scope>:<period>", spent micro-dollars, seconds to keep
--          it (0: no expiry)
--
-- Marks the counters loaded (budget_reserve.lua holds nothing until they are). Returns how many
-- counters were raised.
local prefix, raised = KEYS[1], 0
for i = 1, #ARGV, 3 do
  local key, amount, keep = prefix .. 'spent:' .. ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if tonumber(redis.call('GET', key) or '0') < amount then
    redis.call('SET', key, amount)
    if keep > 0 then
      redis.call('EXPIRE', key, keep)
    end
    raised = raised + 1
  end
end
redis.call('SET', prefix .. 'loaded', 1)
return raised
