-- resize.sql -- change a pool's max_connections, and watch the waiters it
-- let in drain: raise the limit when callers time out waiting for a slot.
--
--   sql/run.sh sql/resize.sql db=/srv/app.db max=20
--   sql/run.sh sql/resize.sql db=/srv/app.db max=20 timeout_ms=10000
--
-- Parameters: @db, @max (both required), @timeout_ms (30000).
-- Safe: the value is validated first (an invalid one changes nothing); the
-- change reaches every process at once; lowering revokes no slot (new
-- acquires wait until the count is below the limit). Needs write
-- permission on the database. After raising, it waits until no acquire is
-- queued, or until the new capacity is in use (the pool is full again: the
-- rest wait for a reason the raise does not remove). It fails (exit status
-- 1) if that does not happen within @timeout_ms; the limit stays changed.
SELECT 'before' AS at, max_connections, active, waiting, total_timeouts AS timeouts
  FROM pool_stats WHERE database = @db;

SELECT dbpool_setting(@db, 'max_connections', @max) AS max_connections;

SELECT dbpool_wait('SELECT waiting = 0 OR active >= max_connections FROM pool_stats '
                   || 'WHERE database = ' || quote(@db),
                   coalesce(@timeout_ms, 30000)) AS waiters_drained;

SELECT 'after' AS at, max_connections, active, waiting, total_timeouts AS timeouts
  FROM pool_stats WHERE database = @db;
