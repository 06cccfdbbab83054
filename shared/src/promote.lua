-- Moves jobs whose time has come from a queue's scheduled set to its active list,
-- 1000 ids per RPUSH (Lua's unpack fails past ~8000 values, which is what apalis-redis'
-- own promotion does with a large backlog), then wakes idle workers.
-- KEYS[1]: scheduled set   KEYS[2]: active list   KEYS[3]: signal list
-- ARGV[1]: now (Unix seconds)   ARGV[2]: most ids to move   ARGV[3]: channel to publish
local ids = redis.call('zrangebyscore', KEYS[1], 0, ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local n = #ids
if n == 0 then
    return 0
end
for i = 1, n, 1000 do
    local last = math.min(i + 999, n)
    redis.call('rpush', KEYS[2], unpack(ids, i, last))
    redis.call('zrem', KEYS[1], unpack(ids, i, last))
end
redis.call('del', KEYS[3])
redis.call('lpush', KEYS[3], 1)
redis.call('publish', ARGV[3], ids[1])
return n
