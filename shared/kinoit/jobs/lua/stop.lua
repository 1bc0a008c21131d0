-- Stop a queued or running job (failed or cancelled): see stop_job in lib/prelude.lua.
-- KEYS: 8 job keys, running, stats, queue, owed ends. ARGV: new_state, reason, now, maxlen, job_id,
-- retain. Returns JSON: {status = 'ok', previous_state, released = [{task, stage,
-- attempt}, ...]} | {status = 'missing'} | {status = 'conflict', state}.
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return cjson.encode({status = 'missing'}) end
local released = stop_job(KEYS, ARGV[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4], KEYS[9],
                          KEYS[10], KEYS[11], tonumber(ARGV[6]), KEYS[12])
if not released then return cjson.encode({status = 'conflict', state = st}) end
return cjson.encode({status = 'ok', previous_state = st, released = released})
