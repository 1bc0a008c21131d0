-- Expire overdue leases and re-lease due retries across every running job.
-- KEYS: running, stats, queue, owed ends.
-- ARGV: now, lease_deadline, maxlen, max_attempts, base, cap, limit, job key templates
-- (JSON, see jobkeys), retain.
-- Returns JSON: {dispatches = [{job, task, stage, attempt}, ...], expired = n,
-- failed = [job id, ...]}.
local now, deadline, maxlen = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local maxatt, base, cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local limit, templates, retain = tonumber(ARGV[7]), cjson.decode(ARGV[8]), tonumber(ARGV[9])
local out, failed, expired = {}, {}, 0
for _, jid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local K = jobkeys(templates, jid)
  local dead = false
  local exp = redis.call('ZRANGEBYSCORE', K[6], '-inf', now, 'LIMIT', 0, limit)
  for _, tid in ipairs(exp) do
    if dead then break end
    redis.call('ZREM', K[6], tid)
    local v = redis.call('HGET', K[3], tid)
    if v then
      local s, a, stg = parse(v)
      if s == 'L' then
        expired = expired + 1
        cnt(K[2], stg, 'leased', -1)
        redis.call('HINCRBY', KEYS[2], 'tasks:expired', 1)
        if a < maxatt then
          local due = now + backoff(a, base, cap)
          redis.call('HSET', K[3], tid, enc('P', a + 1, stg, 'lease expired'))
          redis.call('ZADD', K[7], due, tid)
          if a == 1 then cnt(K[2], stg, 'retrying', 1) end
          cnt(K[2], stg, 'retries', 1)
          redis.call('HINCRBY', KEYS[2], 'tasks:retried', 1)
          ev(K[8], maxlen, 'type', 'task.expired', 'task', tid, 'stage', stg, 'attempt', a)
        else
          redis.call('HSET', K[3], tid, enc('F', a, stg, 'lease expired'))
          cnt(K[2], stg, 'failed', 1)
          if a > 1 then cnt(K[2], stg, 'retrying', -1) end
          redis.call('HINCRBY', KEYS[2], 'tasks:failed', 1)
          ev(K[8], maxlen, 'type', 'task.failed', 'task', tid, 'stage', stg, 'attempt', a,
             'reason', 'lease expired')
          local why = stg .. ' task ' .. tid .. ' failed after ' .. a ..
            ' attempts: lease expired'
          stop_job(K, jid, 'failed', why, now, maxlen, KEYS[1], KEYS[2], KEYS[3], retain,
                   KEYS[4])
          table.insert(failed, jid)
          dead = true
        end
      end
    end
  end
  if not dead then
    local due = redis.call('ZRANGEBYSCORE', K[7], '-inf', now, 'LIMIT', 0, limit)
    for _, tid in ipairs(due) do
      redis.call('ZREM', K[7], tid)
      local v = redis.call('HGET', K[3], tid)
      if v then
        local s, a, stg = parse(v)
        if s == 'P' then
          redis.call('HSET', K[3], tid, enc('L', a, stg, ''))
          redis.call('ZADD', K[6], deadline, tid)
          cnt(K[2], stg, 'leased', 1)
          ev(K[8], maxlen, 'type', 'task.leased', 'task', tid, 'stage', stg, 'attempt', a)
          out[#out + 1] = {job = jid, task = tid, stage = stg, attempt = a}
        end
      end
    end
  end
end
return cjson.encode({dispatches = out, expired = expired, failed = failed})
