-- Lease named tasks for a given attempt.
-- KEYS: 8 job keys. ARGV: deadline, maxlen, then pairs task_id, attempt.
-- Returns one entry per pair: the stage when leased, false when refused.
local out = {}
local running = redis.call('HGET', KEYS[1], 'state') == 'running'
for i = 3, #ARGV, 2 do
  local tid, want = ARGV[i], tonumber(ARGV[i + 1])
  local ok = false
  local v = running and redis.call('HGET', KEYS[3], tid)
  if v then
    local s, a, stg = parse(v)
    if s == 'P' and a == want and (a == 1 or not redis.call('ZSCORE', KEYS[7], tid)) then
      redis.call('HSET', KEYS[3], tid, enc('L', a, stg, ''))
      redis.call('ZADD', KEYS[6], ARGV[1], tid)
      cnt(KEYS[2], stg, 'leased', 1)
      ev(KEYS[8], ARGV[2], 'type', 'task.leased', 'task', tid, 'stage', stg, 'attempt', a)
      ok = stg
    end
  end
  table.insert(out, ok)
end
return out
