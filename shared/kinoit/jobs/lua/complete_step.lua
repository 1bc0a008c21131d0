-- One callback's whole transition in one round trip: check the result is accepted; add
-- its follow-up tasks (before recording it, so "all done" counts them; with ARGV[10] "1"
-- ahead of the tasks not yet dispatched, so they are the next leased); record it; apply
-- the caller's effects (metrics, result cache); lease up to ``limit`` next tasks.
-- KEYS: 8 job keys, stats. ARGV: task_id, attempt, result-json, maxlen, deadline, limit,
-- cache key prefix, follow-ups JSON [[stage, [task_id, payload-json, ...]], ...], effects
-- JSON (kinoit.jobs.effects; two arguments rather than dozens: cheaper to send), "1" to
-- queue the follow-ups first, settled tasks JSON [[stage, [task_id, result-json, ...]], ...].
-- Returns the JSON of the complete reply; when accepted with three more fields: ``leased``
-- (lines "task|stage|attempt"), ``payloads`` of those tasks (false for none) and
-- ``cached``: for each payload naming a result-cache digest under "cache" that entry
-- ('' when absent), else false.
local tid, attempt = ARGV[1], tonumber(ARGV[2])
local no, s, a, stg = check(KEYS, KEYS[9], tid, attempt)
if no then return cjson.encode(no) end
local first = ARGV[10] == '1'
for _, group in ipairs(cjson.decode(ARGV[8])) do
  local pairs_ = group[2]
  if #pairs_ > 0 then add_tasks(KEYS, group[1], pairs_, 1, #pairs_, first) end
end
-- tasks settled by this result (a range transcode's other segments): recorded done at
-- attempt 1, each once, before the result itself, so "all done" counts them
for _, group in ipairs(cjson.decode(ARGV[11] or '[]')) do
  local sstg, pairs_ = group[1], group[2]
  for i = 1, #pairs_, 2 do
    if redis.call('HSETNX', KEYS[3], pairs_[i], enc('D', 1, sstg, pairs_[i + 1])) == 1 then
      cnt(KEYS[2], sstg, 'total', 1)
      cnt(KEYS[2], sstg, 'done', 1)
      redis.call('XADD', KEYS[8], '*', 'type', 'task.done', 'task', pairs_[i], 'stage', sstg,
                 'attempt', 1)
    end
  end
end
local reply = record(KEYS, tid, attempt, ARGV[3], ARGV[4], s, a, stg)
apply_effects(cjson.decode(ARGV[9]))
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
reply['leased'] = lines
reply['payloads'] = payloads
reply['cached'] = cached
return cjson.encode(reply)
