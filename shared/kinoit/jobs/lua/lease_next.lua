-- Lease the next never-dispatched tasks (see lib/lease_next.lua).
-- KEYS: 8 job keys. ARGV: deadline, maxlen, limit. Returns lines "task|stage|attempt".
return lease_next(KEYS, ARGV[1], ARGV[2], tonumber(ARGV[3]))
