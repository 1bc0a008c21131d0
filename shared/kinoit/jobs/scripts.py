"""Lua sources of every multi-key transition (each runs atomically in Redis).

Per-job scripts take the eight per-job keys of :func:`kinoit.jobs.keys.job_keys`
as KEYS[1..8] (job, counts, tasks, payloads, pending, leases, retries, events)
followed by the global keys named in each script. The sweep and promote
scripts iterate jobs and build per-job key names from the prefix they are
given: kinoit targets one Redis (with AOF), not Redis Cluster.

A task is one hash field: ``<state letter><attempt>|<stage>|<result or reason>``.
"""

from __future__ import annotations

# Shared helpers, prepended to every per-job script.
PRELUDE = r"""
local function parse(v)
  local s, a, stg, rest = string.match(v, '^(%u)(%d+)|([^|]*)|(.*)$')
  return s, tonumber(a), stg, rest
end
local function enc(s, a, stg, rest)
  return s .. tostring(a) .. '|' .. stg .. '|' .. (rest or '')
end
-- Per-stage counters; only done and total are also kept job-wide ("*"), for all_done.
local function cnt(k, stg, f, d)
  local v = redis.call('HINCRBY', k, stg .. ':' .. f, d)
  if f == 'done' or f == 'total' then return redis.call('HINCRBY', k, '*:' .. f, d) end
  return v
end
local function ev(k, maxlen, ...)
  redis.call('XADD', k, 'MAXLEN', '~', maxlen, '*', ...)
end
local function backoff(a, base, cap)
  local d = base * (2 ^ (a - 1))
  if d > cap then d = cap end
  return d
end
local function jobkeys(prefix, jid)
  local j = prefix .. 'job:' .. jid
  return {j, j .. ':counts', j .. ':tasks', j .. ':payloads', j .. ':pending',
          j .. ':leases', j .. ':retries', j .. ':events'}
end
-- Stop a queued or running job: release every lease, drop pending work, free the slot.
-- Returns false when the job is not stoppable, else the released {task, stage, attempt}.
local function stop_job(K, jid, newstate, reason, now, maxlen, running, stats, queue, retain)
  local st = redis.call('HGET', K[1], 'state')
  if st ~= 'running' and st ~= 'queued' then return false end
  local released = {}
  local leased = redis.call('ZRANGE', K[6], 0, -1)
  for _, tid in ipairs(leased) do
    local v = redis.call('HGET', K[3], tid)
    if v then
      local s, a, stg = parse(v)
      if s == 'L' then
        redis.call('HSET', K[3], tid, enc('P', a, stg, ''))
        cnt(K[2], stg, 'leased', -1)
        table.insert(released, tid)
        table.insert(released, stg)
        table.insert(released, a)
      end
    end
  end
  -- payloads are read only to dispatch, which an ended job never does again
  redis.call('DEL', K[4], K[5], K[6], K[7])
  redis.call('HSET', K[1], 'state', newstate, 'finished_at', now)
  if reason ~= '' then redis.call('HSET', K[1], 'error', reason) end
  redis.call('SREM', running, jid)
  redis.call('LREM', queue, 0, jid)
  redis.call('HINCRBY', stats, 'jobs:' .. newstate, 1)
  ev(K[8], maxlen, 'type', 'job.' .. newstate, 'reason', reason)
  if retain > 0 then
    for i = 3, 8 do redis.call('EXPIRE', K[i], retain) end
  end
  return released
end
"""

# Registers tasks of stage ``stg``: ARGV-style list ``args`` holds pairs task_id,
# payload-json ('' for none) from index ``from`` to ``to``. Returns the number newly
# added, or -1 when the job is over.
ADD_FN = r"""
local function add_tasks(K, stg, args, from, to)
  local st = redis.call('HGET', K[1], 'state')
  if st ~= 'queued' and st ~= 'running' then return -1 end
  local fresh = enc('P', 1, stg, '')
  local new, pay = {}, {}
  for i = from, to, 2 do
    local tid = args[i]
    if redis.call('HSETNX', K[3], tid, fresh) == 1 then
      new[#new + 1] = tid
      if args[i + 1] ~= '' then
        pay[#pay + 1] = tid
        pay[#pay + 1] = args[i + 1]
      end
    end
  end
  -- one bulk call each (batches are small enough for unpack)
  if #new > 0 then
    redis.call('RPUSH', K[5], unpack(new))
    cnt(K[2], stg, 'total', #new)
  end
  if #pay > 0 then redis.call('HSET', K[4], unpack(pay)) end
  return #new
end
"""

# KEYS: 8 job keys. ARGV: stage, then pairs task_id, payload-json ('' for none).
# Returns the number of tasks newly added, or -1 when the job is over.
ADD_TASKS = PRELUDE + ADD_FN + "return add_tasks(KEYS, ARGV[1], ARGV, 2, #ARGV)\n"

# KEYS: 8 job keys. ARGV: deadline, maxlen, then pairs task_id, attempt.
# Returns one entry per pair: the stage when leased, false when refused.
LEASE = (
    PRELUDE
    + r"""
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
"""
)

# KEYS: 8 job keys. ARGV: deadline, maxlen, limit.
# Leases the next never-dispatched tasks in insertion order; returns lines "task|stage|attempt".
# One 'task.leased' event per stage and call (count, first, last) keeps fan-out cheap.
# Leases the next never-dispatched tasks (at most ``limit``) in insertion order; returns
# lines "task|stage|attempt" (one string, not a RESP array of 3 x n items: much cheaper
# for the client to parse). One 'task.leased' event per stage and call (count, first,
# last) keeps fan-out cheap.
LEASE_NEXT_FN = r"""
local function lease_next(K, deadline, maxlen, limit)
  local out = {}
  if redis.call('HGET', K[1], 'state') ~= 'running' then return '' end
  local n = 0
  local per, order = {}, {}
  -- bulk pops, reads and writes: a handful of calls per batch instead of five per task
  while n < limit do
    local ids = redis.call('LPOP', K[5], limit - n)
    if not ids then break end
    local vals = redis.call('HMGET', K[3], unpack(ids))
    local hs, zs = {}, {}
    for i, tid in ipairs(ids) do
      local v = vals[i]
      if v then
        local s, a, stg = parse(v)
        if s == 'P' and (a == 1 or not redis.call('ZSCORE', K[7], tid)) then
          hs[#hs + 1] = tid
          hs[#hs + 1] = enc('L', a, stg, '')
          zs[#zs + 1] = deadline
          zs[#zs + 1] = tid
          local g = per[stg]
          if not g then
            g = {0, tid, tid}
            per[stg] = g
            order[#order + 1] = stg
          end
          g[1] = g[1] + 1
          g[3] = tid
          out[#out + 1] = tid .. '|' .. stg .. '|' .. a
          n = n + 1
        end
      end
    end
    if #hs > 0 then
      redis.call('HSET', K[3], unpack(hs))
      redis.call('ZADD', K[6], unpack(zs))
    end
  end
  for _, stg in ipairs(order) do
    local g = per[stg]
    cnt(K[2], stg, 'leased', g[1])
    ev(K[8], maxlen, 'type', 'task.leased', 'stage', stg, 'count', g[1], 'first', g[2],
       'last', g[3])
  end
  return table.concat(out, '\n')
end
"""

# KEYS: 8 job keys. ARGV: deadline, maxlen, limit. Returns lines "task|stage|attempt".
LEASE_NEXT = (
    PRELUDE + LEASE_NEXT_FN + "return lease_next(KEYS, ARGV[1], ARGV[2], tonumber(ARGV[3]))\n"
)

# Recording one result (K: 8 job keys): ``check`` whether it is accepted, then ``record``
# it; the reply is {status, stage, attempt, stage_done, all_done, stage done, stage total,
# job done, job total}.
COMPLETE_FN = r"""
-- check: the refusal reply, or false and the task's state, attempt and stage.
local function check(K, stats, tid, attempt)
  local v = redis.call('HGET', K[3], tid)
  if not v then return {'unknown', '', 0, 0, 0} end
  local s, a, stg = parse(v)
  if s == 'D' then
    redis.call('HINCRBY', stats, 'tasks:duplicate', 1)
    return {'duplicate', stg, a, 0, 0}
  end
  local st = redis.call('HGET', K[1], 'state')
  if st ~= 'running' then return {'job_' .. tostring(st), stg, a, 0, 0} end
  if s == 'F' then return {'task_failed', stg, a, 0, 0} end
  if attempt > a or attempt < 1 then return {'future_attempt', stg, a, 0, 0} end
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
  return {'accepted', stg, attempt, sdone == stot and 1 or 0, jdone == jtot and 1 or 0,
          sdone, stot, jdone, jtot}
end
"""
# KEYS: 8 job keys, stats. ARGV: task_id, attempt, result-json, maxlen.
COMPLETE = (
    PRELUDE
    + COMPLETE_FN
    + r"""
local tid, attempt = ARGV[1], tonumber(ARGV[2])
local no, s, a, stg = check(KEYS, KEYS[9], tid, attempt)
if no then return no end
return record(KEYS, tid, attempt, ARGV[3], ARGV[4], s, a, stg)
"""
)

# One callback's whole transition in one round trip: check the result is accepted; add
# its follow-up tasks (before recording it, so "all done" counts them); record it; run
# the caller's extra writes (metrics, result cache); lease up to ``limit`` next tasks.
# KEYS: 8 job keys, stats. ARGV: task_id, attempt, result-json, maxlen, deadline, limit,
# cache key prefix, follow-ups JSON [[stage, [task_id, payload-json, ...]], ...], writes
# JSON [[command, arg, ...], ...] (two arguments rather than dozens: cheaper to send).
# Returns the COMPLETE reply; when accepted, three more items: the leased lines
# "task|stage|attempt", the payloads of those tasks (false for none) and, in order,
# for each payload naming a result-cache digest under "cache" that entry ('' when
# absent), else false.
COMPLETE_STEP = (
    PRELUDE
    + ADD_FN
    + COMPLETE_FN
    + LEASE_NEXT_FN
    + r"""
local tid, attempt = ARGV[1], tonumber(ARGV[2])
local no, s, a, stg = check(KEYS, KEYS[9], tid, attempt)
if no then return no end
for _, group in ipairs(cjson.decode(ARGV[8])) do
  local pairs_ = group[2]
  if #pairs_ > 0 then add_tasks(KEYS, group[1], pairs_, 1, #pairs_) end
end
local reply = record(KEYS, tid, attempt, ARGV[3], ARGV[4], s, a, stg)
for _, write in ipairs(cjson.decode(ARGV[9])) do
  redis.call(unpack(write))
end
local lines, payloads = '', {}
local limit = tonumber(ARGV[6])
if limit > 0 then
  lines = lease_next(KEYS, ARGV[5], ARGV[4], limit)
  if lines ~= '' then
    local ids = {}
    for line in string.gmatch(lines, '[^\n]+') do
      ids[#ids + 1] = string.match(line, '^([^|]*)|')
    end
    payloads = redis.call('HMGET', KEYS[4], unpack(ids))
  end
end
-- a payload naming its result-cache entry ("cache": digest) gets it read here too
local cached = {}
for j, raw in ipairs(payloads) do
  local hit = false
  if raw and string.find(raw, '"cache":', 1, true) then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == 'table' and type(decoded['cache']) == 'string' then
      hit = redis.call('GET', ARGV[7] .. decoded['cache']) or ''
    end
  end
  cached[j] = hit
end
reply[10] = lines
reply[11] = payloads
reply[12] = cached
return reply
"""
)

# KEYS: 8 job keys, running, stats, queue.
# ARGV: task_id, attempt, reason, now, maxlen, max_attempts, base, cap, retain.
# Returns {'ignored', why} | {'retry', next_attempt, due} | {'job_failed', reason}.
FAIL = (
    PRELUDE
    + r"""
local tid, attempt, reason, now = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local maxlen = ARGV[5]
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return {'ignored', 'job not running'} end
local v = redis.call('HGET', KEYS[3], tid)
if not v then return {'ignored', 'unknown task'} end
local s, a, stg = parse(v)
if s ~= 'L' or a ~= attempt then return {'ignored', 'stale report'} end
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
  return {'retry', a + 1, tostring(due)}
end
redis.call('HSET', KEYS[3], tid, enc('F', a, stg, reason))
cnt(KEYS[2], stg, 'failed', 1)
if a > 1 then cnt(KEYS[2], stg, 'retrying', -1) end
redis.call('HINCRBY', KEYS[10], 'tasks:failed', 1)
ev(KEYS[8], maxlen, 'type', 'task.failed', 'task', tid, 'stage', stg, 'attempt', a,
   'reason', reason)
local why = stg .. ' task ' .. tid .. ' failed after ' .. a .. ' attempts: ' .. reason
local jid = string.match(KEYS[1], ':job:([^:]+)$')
stop_job(KEYS, jid, 'failed', why, now, maxlen, KEYS[9], KEYS[10], KEYS[11], tonumber(ARGV[9]))
return {'job_failed', why}
"""
)

# KEYS: running, stats, queue.
# ARGV: now, lease_deadline, maxlen, max_attempts, base, cap, limit, prefix, retain.
# Returns {dispatches (flat job, task, stage, attempt), expired count, failed job ids}.
SWEEP = (
    PRELUDE
    + r"""
local now, deadline, maxlen = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local maxatt, base, cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local limit, prefix, retain = tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])
local out, failed, expired = {}, {}, 0
for _, jid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local K = jobkeys(prefix, jid)
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
          stop_job(K, jid, 'failed', why, now, maxlen, KEYS[1], KEYS[2], KEYS[3], retain)
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
          table.insert(out, jid)
          table.insert(out, tid)
          table.insert(out, stg)
          table.insert(out, a)
        end
      end
    end
  end
end
return {out, expired, failed}
"""
)

# KEYS: 8 job keys, stats. ARGV: task_id, reason, deadline, maxlen.
# Moves a done task back to leased with attempt + 1. Returns {stage, attempt} or {why}.
RERUN = (
    PRELUDE
    + r"""
local tid = ARGV[1]
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return {'job not running'} end
local v = redis.call('HGET', KEYS[3], tid)
if not v then return {'unknown task'} end
local s, a, stg = parse(v)
if s ~= 'D' then return {'task not done'} end
redis.call('HSET', KEYS[3], tid, enc('L', a + 1, stg, ''))
redis.call('ZADD', KEYS[6], ARGV[3], tid)
cnt(KEYS[2], stg, 'done', -1)
cnt(KEYS[2], stg, 'leased', 1)
cnt(KEYS[2], stg, 'retrying', 1)
cnt(KEYS[2], stg, 'retries', 1)
redis.call('HINCRBY', KEYS[9], 'tasks:rerun', 1)
ev(KEYS[8], ARGV[4], 'type', 'task.rerun', 'task', tid, 'stage', stg, 'attempt', a + 1,
   'reason', ARGV[2])
return {stg, a + 1}
"""
)

# KEYS: 8 job keys, running, stats, queue. ARGV: new_state, reason, now, maxlen, job_id, retain.
# Returns {'ok', previous_state, released flat {task, stage, attempt}} or {'conflict', state}.
STOP = (
    PRELUDE
    + r"""
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing', ''} end
local released = stop_job(KEYS, ARGV[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4], KEYS[9],
                          KEYS[10], KEYS[11], tonumber(ARGV[6]))
if not released then return {'conflict', st} end
return {'ok', st, released}
"""
)

# KEYS: 8 job keys, running, stats.
# ARGV: now, manifest, outputs-json, maxlen, job_id, retain, keep (events kept, 0: all).
# Returns {'ok'} or {'conflict', state}. A completed job keeps only its last ``keep``
# events and no payloads (nothing is dispatched again): what stays is the record,
# the counts and each task's result.
FINISH = (
    PRELUDE
    + r"""
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing', ''} end
if st ~= 'running' then return {'conflict', st} end
redis.call('HSET', KEYS[1], 'state', 'completed', 'finished_at', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'manifest', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'outputs', ARGV[3]) end
redis.call('SREM', KEYS[9], ARGV[5])
redis.call('HINCRBY', KEYS[10], 'jobs:completed', 1)
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[7])
local keep = tonumber(ARGV[7])
if keep > 0 then redis.call('XTRIM', KEYS[8], 'MAXLEN', keep - 1) end
ev(KEYS[8], ARGV[4], 'type', 'job.completed', 'manifest', ARGV[2])
local retain = tonumber(ARGV[6])
if retain > 0 then
  for i = 3, 8 do redis.call('EXPIRE', KEYS[i], retain) end
end
return {'ok'}
"""
)

# KEYS: queue, running. ARGV: max_active, now, maxlen, prefix.
# Moves the oldest queued jobs into running while slots are free; returns their ids.
PROMOTE = (
    PRELUDE
    + r"""
local out = {}
local maxactive = tonumber(ARGV[1])
while redis.call('SCARD', KEYS[2]) < maxactive do
  local jid = redis.call('LPOP', KEYS[1])
  if not jid then break end
  local K = jobkeys(ARGV[4], jid)
  if redis.call('HGET', K[1], 'state') == 'queued' then
    redis.call('HSET', K[1], 'state', 'running', 'started_at', ARGV[2])
    redis.call('SADD', KEYS[2], jid)
    ev(K[8], ARGV[3], 'type', 'job.started')
    table.insert(out, jid)
  end
end
return out
"""
)
