-- Forgets analytics event ids marked today (their enqueue failed); see dedupe_mark.lua.
-- ARGV[1]: key base, ARGV[2]: the day they were marked, then pairs: hash, id bytes.
local base, day = ARGV[1], ARGV[2]
local s = tonumber(redis.call('GET', base .. day .. ':shards'))
if not s then
  return 0
end
local removed = 0
for i = 3, #ARGV, 2 do
  removed = removed + redis.call('HDEL', base .. day .. ':' .. (tonumber(ARGV[i]) % s), ARGV[i + 1])
end
if removed > 0 then
  redis.call('DECRBY', base .. day .. ':n', removed)
end
return removed
