-- resume.sql -- resume a paused pool (after sql/drain.sql and the
-- maintenance), and watch the acquires that queued meanwhile get in.
--
--   sql/run.sh sql/resume.sql db=/srv/app.db
--
-- Parameters: @db (required), @timeout_ms (30000). It waits until no
-- acquire is queued or the pool is full; it fails (exit status 1) if that
-- does not happen within @timeout_ms (the pool stays resumed).
SELECT dbpool_setting(@db, 'paused', 0) AS paused;

SELECT dbpool_wait('SELECT waiting = 0 OR active >= max_connections FROM pool_stats '
                   || 'WHERE database = ' || quote(@db),
                   coalesce(@timeout_ms, 30000)) AS waiters_served;

SELECT database, paused, active, waiting
  FROM pool_stats WHERE database = @db;
