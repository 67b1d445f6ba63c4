-- old_holders.sql -- the connections that have held their slot for more
-- than N seconds, with their labels: who keeps a connection open (a leak, a
-- long report, a stuck worker), and which process to look at.
--
--   sql/run.sh sql/old_holders.sql seconds=300
--   sql/run.sh sql/old_holders.sql seconds=60 db=/srv/app.db
--
-- Parameters: @seconds (60), @db (optional). Reads only. Waiters are not
-- holders (report.sql shows them). Labels are set with dbpool_label().
SELECT database, pid, process, thread, state,
       since, duration_ms / 1000 AS held_s,
       coalesce(label, '') AS label, joined, process_state
  FROM pool_connections
 WHERE state <> 'waiting'
   AND duration_ms >= coalesce(@seconds, 60) * 1000
   AND (@db IS NULL OR database = @db)
 ORDER BY duration_ms DESC;
