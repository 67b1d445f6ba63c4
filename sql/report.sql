-- report.sql -- one screen on the pools of this host: use, waiters, the
-- slowest holders, the writer queue.
--
--   sql/run.sh sql/report.sql                  every pool this user can read
--   sql/run.sh sql/report.sql db=/srv/app.db   one database's pool
--   sql/run.sh sql/report.sql top=10           more holders and waiters
--
-- Parameters: @db (optional), @top (rows of holders and of waiters, 5).
-- Reads only: changes nothing, holds no slot. Pools are those of the
-- current DBPOOL_NAMESPACE.

-- The pools, fullest first.
SELECT database,
       active || '/' || max_connections AS active,
       idle, waiting, processes,
       printf('%d%%', round(utilization * 100)) AS used,
       CASE paused WHEN 1 THEN 'paused' ELSE 'no' END AS paused,
       printf('%.1f', p99_wait_ms) AS p99_wait_ms,
       total_timeouts AS timeouts,
       file
  FROM pool_stats
 WHERE @db IS NULL OR database = @db
 ORDER BY utilization DESC, database;

-- The holders that have held their slot longest.
SELECT database, pid, process, state, duration_ms AS held_ms,
       coalesce(label, '') AS label, joined
  FROM pool_connections
 WHERE state <> 'waiting' AND (@db IS NULL OR database = @db)
 ORDER BY duration_ms DESC
 LIMIT coalesce(@top, 5);

-- The waiters, longest first.
SELECT database, pid, process, duration_ms AS waited_ms,
       coalesce(label, '') AS label
  FROM pool_connections
 WHERE state = 'waiting' AND (@db IS NULL OR database = @db)
 ORDER BY duration_ms DESC
 LIMIT coalesce(@top, 5);

-- The writer queue (WAL databases).
SELECT database, writer_queue, writers_waiting, total_writes,
       printf('%.1f', write_wait_p99_ms) AS write_p99_ms,
       printf('%.1f', write_wait_max_ms) AS write_max_ms
  FROM pool_stats
 WHERE @db IS NULL OR database = @db
 ORDER BY database;
