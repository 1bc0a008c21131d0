-- Apply typed effects atomically (e.g. the counters of one finished task).
-- KEYS: none (the effects name their keys). ARGV: effects JSON. Returns 1.
apply_effects(cjson.decode(ARGV[1]))
return 1
