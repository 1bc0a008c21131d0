-- Recording one result (K: 8 job keys): ``check`` whether it is accepted, then
-- ``record`` it. Both replies are tables with named fields (kinoit.jobs.engine decodes
-- them by name): status, stage, attempt and, when accepted, stage_done, all_done,
-- stage_done_count, stage_total, done, total.
-- check: the refusal reply, or false and the task's state, attempt and stage.
local function check(K, stats, tid, attempt)
  local v = redis.call('HGET', K[3], tid)
  if not v then return {status = 'unknown', stage = '', attempt = 0} end
  local s, a, stg = parse(v)
  if s == 'D' then
    redis.call('HINCRBY', stats, 'tasks:duplicate', 1)
    return {status = 'duplicate', stage = stg, attempt = a}
  end
  local st = redis.call('HGET', K[1], 'state')
  if st ~= 'running' then return {status = 'job_' .. tostring(st), stage = stg, attempt = a} end
  if s == 'F' then return {status = 'task_failed', stage = stg, attempt = a} end
  if attempt > a or attempt < 1 then
    return {status = 'future_attempt', stage = stg, attempt = a}
  end
  return false, s, a, stg
end
local function record(K, tid, attempt, result, maxlen, s, a, stg)
  if s == 'L' then
    redis.call('ZREM', K[6], tid)
    redis.call('HINCRBY', K[2], stg .. ':leased', -1)
  end
  if a > 1 then
    -- only tasks past attempt 1 ever wait in the retry set
    redis.call('ZREM', K[7], tid)
    redis.call('HINCRBY', K[2], stg .. ':retrying', -1)
  end
  redis.call('HSET', K[3], tid, enc('D', attempt, stg, result))
  local sdone = redis.call('HINCRBY', K[2], stg .. ':done', 1)
  local jdone = redis.call('HINCRBY', K[2], '*:done', 1)
  local tot = redis.call('HMGET', K[2], stg .. ':total', '*:total')
  local stot, jtot = tonumber(tot[1] or '0'), tonumber(tot[2] or '0')
  -- trimming the stream every 64 completions is as good as on every XADD, and cheaper
  redis.call('XADD', K[8], '*', 'type', 'task.done', 'task', tid, 'stage', stg,
             'attempt', attempt)
  if jdone % 64 == 0 then redis.call('XTRIM', K[8], 'MAXLEN', '~', maxlen) end
  return {status = 'accepted', stage = stg, attempt = attempt, stage_done = sdone == stot,
          all_done = jdone == jtot, stage_done_count = sdone, stage_total = stot,
          done = jdone, total = jtot}
end
