-- Leases the next never-dispatched tasks (at most ``limit``) in insertion order; returns
-- lines "task|stage|attempt" (one string, not a RESP array of 3 x n items: much cheaper
-- for the client to parse). One 'task.leased' event per stage and call (count, first,
-- last) keeps fan-out cheap.
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
