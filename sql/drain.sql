-- drain.sql -- empty a pool before maintenance: pause it (new acquires
-- wait instead of getting a slot), then wait until no connection is in use.
-- Run the maintenance, then sql/resume.sql.
--
--   sql/run.sh sql/drain.sql db=/srv/app.db timeout_ms=60000 &&
--     do-the-maintenance;
--   sql/run.sh sql/resume.sql db=/srv/app.db
--
-- Parameters: @db (required), @timeout_ms (60000).
-- "In use": active - idle, the slots held by connections that are checked
-- out or kept open by the SQLite extension (a connection counted by the
-- extension holds its slot until it closes). Idle connections of
-- in-process C pools stay open, unused, while the pool is paused.
-- Paused, waiters queue (their own acquire timeouts still run). If the pool
-- does not drain within @timeout_ms, the wait fails (exit status 1) and the
-- pool is resumed, so that a failed drain never leaves it paused; the last
-- row shows the state it was left in.
SELECT dbpool_setting(@db, 'paused', 1) AS paused;

SELECT dbpool_wait('SELECT active - idle = 0 FROM pool_stats WHERE database = '
                   || quote(@db), coalesce(@timeout_ms, 60000)) AS drained;

-- Not drained (the wait above failed): resume rather than stay paused.
SELECT dbpool_setting(@db, 'paused', 0) AS resumed_after_timeout
  FROM pool_stats WHERE database = @db AND active - idle > 0;

SELECT database, paused, active, idle, waiting
  FROM pool_stats WHERE database = @db;
