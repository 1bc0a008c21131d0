-- Claim due webhooks: move each due id's score to the claim deadline, so that one
-- deliverer sends it and a crashed one's claim expires.
-- KEYS: due set. ARGV: now, limit, claim deadline. Returns the claimed ids.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
