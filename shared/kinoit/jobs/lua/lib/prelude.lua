-- Helpers shared by every script (prepended by kinoit.jobs.scripts).
-- A task is one hash field: "<state letter><attempt>|<stage>|<result or reason>".
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
-- The eight per-job keys of job ``jid``, from the templates kinoit.jobs.keys gives
-- (decoded JSON: {{before, after}, ...} around the job id, in KEYS[1..8] order).
local function jobkeys(templates, jid)
  local K = {}
  for i, t in ipairs(templates) do K[i] = t[1] .. jid .. t[2] end
  return K
end
-- Stop a queued or running job: release every lease, drop pending work, free the slot,
-- and in the same step record the job's end as owed in ``ending`` (its webhook and the
-- release of its holds are settled after, by whichever process gets there: see
-- kinoit.service.endings). Returns false when the job is not stoppable, else the
-- released tasks ({task =, stage =, attempt =} each).
local function stop_job(K, jid, newstate, reason, now, maxlen, running, stats, queue, retain,
                        ending)
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
        released[#released + 1] = {task = tid, stage = stg, attempt = a}
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
  redis.call('ZADD', ending, 'NX', now, jid)
  ev(K[8], maxlen, 'type', 'job.' .. newstate, 'reason', reason)
  if retain > 0 then
    for i = 3, 8 do redis.call('EXPIRE', K[i], retain) end
  end
  return released
end
