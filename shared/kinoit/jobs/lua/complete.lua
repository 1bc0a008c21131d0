-- Record one result (see lib/complete.lua).
-- KEYS: 8 job keys, stats. ARGV: task_id, attempt, result-json, maxlen.
-- Returns the JSON of the check or record reply.
local tid, attempt = ARGV[1], tonumber(ARGV[2])
local no, s, a, stg = check(KEYS, KEYS[9], tid, attempt)
if no then return cjson.encode(no) end
return cjson.encode(record(KEYS, tid, attempt, ARGV[3], ARGV[4], s, a, stg))
