-- The typed effects of kinoit.jobs.effects, decoded from JSON: the only writes a
-- caller may hand a script (no raw commands). Each is a positional array
-- [op, key, field | member | value, amount]. Amounts travel as strings so that a
-- float is added exactly as Python wrote it.
local function apply_effects(effects)
  for _, e in ipairs(effects) do
    local op = e[1]
    if op == 'hincrby' then
      redis.call('HINCRBY', e[2], e[3], e[4])
    elseif op == 'hincrbyfloat' then
      redis.call('HINCRBYFLOAT', e[2], e[3], e[4])
    elseif op == 'sadd' then
      redis.call('SADD', e[2], e[3])
    elseif op == 'set' then
      redis.call('SET', e[2], e[3])
    else
      error('unknown effect ' .. tostring(op))
    end
  end
end
