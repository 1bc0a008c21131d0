-- Complete a running job (after merge). A completed job keeps only its last ``keep``
-- events and no payloads (nothing is dispatched again): what stays is the record,
-- the counts and each task's result.
-- KEYS: 8 job keys, running, stats, owed ends (the end is recorded as owed in the same
-- step: kinoit.service.endings settles its webhook and holds).
-- ARGV: now, manifest, outputs-json, maxlen, job_id, retain, keep (events kept, 0: all).
-- Returns JSON: {status = 'ok'} | {status = 'missing'} | {status = 'conflict', state}.
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return cjson.encode({status = 'missing'}) end
if st ~= 'running' then return cjson.encode({status = 'conflict', state = st}) end
redis.call('HSET', KEYS[1], 'state', 'completed', 'finished_at', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'manifest', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'outputs', ARGV[3]) end
redis.call('SREM', KEYS[9], ARGV[5])
redis.call('ZADD', KEYS[11], 'NX', ARGV[1], ARGV[5])
redis.call('HINCRBY', KEYS[10], 'jobs:completed', 1)
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[7])
local keep = tonumber(ARGV[7])
if keep > 0 then redis.call('XTRIM', KEYS[8], 'MAXLEN', keep - 1) end
ev(KEYS[8], ARGV[4], 'type', 'job.completed', 'manifest', ARGV[2])
local retain = tonumber(ARGV[6])
if retain > 0 then
  for i = 3, 8 do redis.call('EXPIRE', KEYS[i], retain) end
end
return cjson.encode({status = 'ok'})
