-- The typed effects of kinoit.jobs.effects, decoded from JSON: the only writes a
-- caller may hand a script (no raw commands). Amounts travel as strings so that a
-- float is added exactly as Python wrote it.
local function apply_effects(effects)
  for _, e in ipairs(effects) do
    local op = e['op']
    if op == 'hincrby' then
      redis.call('HINCRBY', e['key'], e['field'], e['amount'])
    elseif op == 'hincrbyfloat' then
      redis.call('HINCRBYFLOAT', e['key'], e['field'], e['amount'])
    elseif op == 'sadd' then
      redis.call('SADD', e['key'], e['member'])
    elseif op == 'set' then
      redis.call('SET', e['key'], e['value'])
    else
      error('unknown effect ' .. tostring(op))
    end
  end
end
