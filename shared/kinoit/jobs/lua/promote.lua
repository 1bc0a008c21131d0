-- Move the oldest queued jobs into running while slots are free.
-- KEYS: queue, running. ARGV: max_active, now, maxlen, job key templates (JSON, see
-- jobkeys). Returns the ids of the jobs started.
local templates = cjson.decode(ARGV[4])
local out = {}
local maxactive = tonumber(ARGV[1])
while redis.call('SCARD', KEYS[2]) < maxactive do
  local jid = redis.call('LPOP', KEYS[1])
  if not jid then break end
  local K = jobkeys(templates, jid)
  if redis.call('HGET', K[1], 'state') == 'queued' then
    redis.call('HSET', K[1], 'state', 'running', 'started_at', ARGV[2])
    redis.call('SADD', KEYS[2], jid)
    ev(K[8], ARGV[3], 'type', 'job.started')
    table.insert(out, jid)
  end
end
return out
