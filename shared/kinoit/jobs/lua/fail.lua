-- A failed attempt: retry it later (attempt + 1, backoff) or, out of attempts, fail the job.
-- KEYS: 8 job keys, running, stats, queue, owed ends.
-- ARGV: task_id, attempt, reason, now, maxlen, max_attempts, base, cap, retain, job_id.
-- Returns JSON: {status = 'ignored', reason} | {status = 'retry', next_attempt, retry_at}
-- | {status = 'job_failed', reason}.
local tid, attempt, reason, now = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local maxlen = ARGV[5]
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return cjson.encode({status = 'ignored', reason = 'job not running'}) end
local v = redis.call('HGET', KEYS[3], tid)
if not v then return cjson.encode({status = 'ignored', reason = 'unknown task'}) end
local s, a, stg = parse(v)
if s ~= 'L' or a ~= attempt then return cjson.encode({status = 'ignored', reason = 'stale report'}) end
redis.call('ZREM', KEYS[6], tid)
cnt(KEYS[2], stg, 'leased', -1)
if a < tonumber(ARGV[6]) then
  local due = now + backoff(a, tonumber(ARGV[7]), tonumber(ARGV[8]))
  redis.call('HSET', KEYS[3], tid, enc('P', a + 1, stg, reason))
  redis.call('ZADD', KEYS[7], due, tid)
  if a == 1 then cnt(KEYS[2], stg, 'retrying', 1) end
  cnt(KEYS[2], stg, 'retries', 1)
  redis.call('HINCRBY', KEYS[10], 'tasks:retried', 1)
  ev(KEYS[8], maxlen, 'type', 'task.retry', 'task', tid, 'stage', stg, 'attempt', a + 1,
     'reason', reason)
  return cjson.encode({status = 'retry', next_attempt = a + 1, retry_at = tostring(due)})
end
redis.call('HSET', KEYS[3], tid, enc('F', a, stg, reason))
cnt(KEYS[2], stg, 'failed', 1)
if a > 1 then cnt(KEYS[2], stg, 'retrying', -1) end
redis.call('HINCRBY', KEYS[10], 'tasks:failed', 1)
ev(KEYS[8], maxlen, 'type', 'task.failed', 'task', tid, 'stage', stg, 'attempt', a,
   'reason', reason)
local why = stg .. ' task ' .. tid .. ' failed after ' .. a .. ' attempts: ' .. reason
local jid = ARGV[10]
stop_job(KEYS, jid, 'failed', why, now, maxlen, KEYS[9], KEYS[10], KEYS[11], tonumber(ARGV[9]),
         KEYS[12])
return cjson.encode({status = 'job_failed', reason = why})
