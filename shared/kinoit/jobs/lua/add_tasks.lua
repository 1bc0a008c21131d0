-- Register tasks of one stage (see lib/add_tasks.lua).
-- KEYS: 8 job keys. ARGV: stage, then pairs task_id, payload-json ('' for none).
-- Returns the number of tasks newly added, or -1 when the job is over.
return add_tasks(KEYS, ARGV[1], ARGV, 2, #ARGV)
