-- Forgets analytics event ids marked on a day (their enqueue failed); see
-- dedupe_mark.lua. ARGV[1]: key base, ARGV[2]: the day they were marked, then pairs:
-- the id's hash, its bytes. Answers how many were removed.
local base, day = ARGV[1], ARGV[2]
local gens = redis.call('LRANGE', base .. day .. ':gens', 0, -1)
local removed = 0
for i = 3, #ARGV, 2 do
  local h, id = tonumber(ARGV[i]), ARGV[i + 1]
  for g, s in ipairs(gens) do
    local key = base .. day .. ':' .. g .. ':' .. math.floor(h * tonumber(s) / 4294967296)
    removed = removed + redis.call('HDEL', key, id)
  end
end
-- (Not on a count that is gone: DECRBY would make one that never expires.)
if removed > 0 and redis.call('EXISTS', base .. day .. ':n') == 1 then
  redis.call('DECRBY', base .. day .. ':n', removed)
end
return removed
