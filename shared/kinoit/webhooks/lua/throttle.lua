-- Progress throttle: win when progress advanced and either enough time passed or
-- progress moved by at least the step. KEYS: the job's throttle hash.
-- ARGV: fraction, now, min interval, min step, retention seconds. Returns 1 or 0.
local last_f = tonumber(redis.call('HGET', KEYS[1], 'f') or '-1')
local last_t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local f, now = tonumber(ARGV[1]), tonumber(ARGV[2])
if f <= last_f then return 0 end
if now - last_t < tonumber(ARGV[3]) and f - last_f < tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
