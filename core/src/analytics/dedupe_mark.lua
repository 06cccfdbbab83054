-- Marks analytics event ids as taken (wp_core::analytics::ingest::mark_new).
-- ARGV[1]: key base ("{prefix}:analytics:seen:"), ARGV[2]: today (days since the
-- epoch, UTC), ARGV[3]: when today's keys expire (Unix s); then triples: a 32-bit hash
-- of the id, the id's 16 bytes, the id as text. Answers 1 (new) or 0 (taken) per id.
--
-- A day's ids live in small hashes, "{base}{day}:{generation}:{shard}" (field: the
-- id's bytes, empty value). Kept under Redis's compact (listpack) limit of 128 entries
-- they cost ~24 bytes an id, against ~490 for a key of its own with an expiry. A day's
-- first generation gets 64 ids a shard of the busier of the two days before (at least
-- 1,024 shards); once the day holds 80 ids a shard of all its generations, it opens
-- another twice as wide. "{base}{day}:gens" lists the shard counts, "{base}{day}:n"
-- counts the ids. An id is looked for in its day, the two before and the one after (a
-- replica whose clock runs ahead), so it is remembered 48 to 72 hours; and, for one
-- release, under the first design's key, "{base}{id as text}".
--
-- The keys are built here, not passed: this needs a standalone Redis (as the rest of
-- the platform), not Redis Cluster.
local base, today, exp = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local FILL, GROW = 64, 80

local function gens(day)
  local list = redis.call('LRANGE', base .. day .. ':gens', 0, -1)
  for i = 1, #list do
    list[i] = tonumber(list[i])
  end
  return list
end

local function count(day)
  return tonumber(redis.call('GET', base .. day .. ':n')) or 0
end

local function shard(h, s)
  return math.floor(h * s / 4294967296)
end

local mine = gens(today)
if #mine == 0 then
  local before = math.max(count(today - 1), count(today - 2))
  local s = 1024
  while s * FILL < before do
    s = s * 2
  end
  redis.call('RPUSH', base .. today .. ':gens', s)
  redis.call('EXPIREAT', base .. today .. ':gens', exp)
  mine = { s }
end

-- Where a taken id may be: {key prefix, shards}.
local lookups = {}
for _, day in ipairs({ today + 1, today - 1, today - 2 }) do
  for g, s in ipairs(gens(day)) do
    lookups[#lookups + 1] = { base .. day .. ':' .. g .. ':', s }
  end
end
for g = 1, #mine - 1 do
  lookups[#lookups + 1] = { base .. today .. ':' .. g .. ':', mine[g] }
end
local current, shards = base .. today .. ':' .. #mine .. ':', mine[#mine]
local n, capacity = count(today), 0
for _, s in ipairs(mine) do
  capacity = capacity + GROW * s
end

local out, stored, touched = {}, 0, {}
for i = 4, #ARGV, 3 do
  local h, id = tonumber(ARGV[i]), ARGV[i + 1]
  local seen = redis.call('EXISTS', base .. ARGV[i + 2]) == 1
  for _, l in ipairs(lookups) do
    if seen then
      break
    end
    seen = redis.call('HEXISTS', l[1] .. shard(h, l[2]), id) == 1
  end
  local new = 0
  if not seen then
    local key = current .. shard(h, shards)
    new = redis.call('HSETNX', key, id, '')
    if new == 1 then
      touched[key] = true
      stored = stored + 1
      n = n + 1
      if n >= capacity then
        -- This generation is full: the next, twice as wide.
        lookups[#lookups + 1] = { current, shards }
        shards = shards * 2
        mine[#mine + 1] = shards
        capacity = capacity + GROW * shards
        current = base .. today .. ':' .. #mine .. ':'
        redis.call('RPUSH', base .. today .. ':gens', shards)
      end
    end
  end
  out[#out + 1] = new
end
for key in pairs(touched) do
  redis.call('EXPIREAT', key, exp)
end
if stored > 0 then
  redis.call('INCRBY', base .. today .. ':n', stored)
  redis.call('EXPIREAT', base .. today .. ':n', exp)
end
return out
