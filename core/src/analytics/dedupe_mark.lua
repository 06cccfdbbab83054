-- Marks analytics event ids as taken (wp_core::analytics::ingest::mark_new).
-- ARGV[1]: key base ("{prefix}:analytics:seen:"), ARGV[2]: today (days since the
-- epoch), ARGV[3]: when today's keys expire (Unix s), then pairs: a 32-bit hash of the
-- id, the id's 16 bytes. Answers 1 (new) or 0 (taken before) per id.
--
-- Each day's ids live in small hashes ("{base}{day}:{shard}", field = the id's bytes,
-- empty value): kept under Redis's listpack limit (128 entries) they cost ~24 bytes an
-- id, against ~490 for a key with its own expiry. A day's shard count is fixed when
-- the day begins, from the day before's count (64 ids a shard), and kept
-- ("{base}{day}:shards") so later days find its ids. An id is looked for in today's
-- and the two days before (so remembered 48 to 72 hours) and stored in today's.
local base, today, exp = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local function shards(day, create)
  local key = base .. day .. ':shards'
  local s = tonumber(redis.call('GET', key))
  if s or not create then
    return s
  end
  local before = tonumber(redis.call('GET', base .. (day - 1) .. ':n')) or 0
  s = 1024
  while s * 64 < before do
    s = s * 2
  end
  redis.call('SET', key, s, 'EXAT', exp)
  return s
end

local s0 = shards(today, true)
local s1 = shards(today - 1, false)
local s2 = shards(today - 2, false)
local out, stored = {}, 0
for i = 4, #ARGV, 2 do
  local h, id = tonumber(ARGV[i]), ARGV[i + 1]
  local seen = (s1 and redis.call('HEXISTS', base .. (today - 1) .. ':' .. (h % s1), id) == 1)
    or (s2 and redis.call('HEXISTS', base .. (today - 2) .. ':' .. (h % s2), id) == 1)
  local new = 0
  if not seen then
    local key = base .. today .. ':' .. (h % s0)
    new = redis.call('HSETNX', key, id, '')
    if new == 1 then
      redis.call('EXPIREAT', key, exp)
      stored = stored + 1
    end
  end
  out[#out + 1] = new
end
if stored > 0 then
  redis.call('INCRBY', base .. today .. ':n', stored)
  redis.call('EXPIREAT', base .. today .. ':n', exp)
end
return out
