-- Registers tasks of stage ``stg``: the ARGV-style list ``args`` holds pairs task_id,
-- payload-json ('' for none) from index ``from`` to ``to``. Returns the number newly
-- added, or -1 when the job is over. ``front``: queue them, in order, ahead of every
-- task not yet dispatched (a result's follow-ups: a segment's checksum runs right
-- after its transcode instead of after the whole fan-out, so the preview grows).
local function add_tasks(K, stg, args, from, to, front)
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
    if front then
      local reversed = {}
      for i = #new, 1, -1 do reversed[#reversed + 1] = new[i] end
      redis.call('LPUSH', K[5], unpack(reversed))
    else
      redis.call('RPUSH', K[5], unpack(new))
    end
    cnt(K[2], stg, 'total', #new)
  end
  if #pay > 0 then redis.call('HSET', K[4], unpack(pay)) end
  return #new
end
