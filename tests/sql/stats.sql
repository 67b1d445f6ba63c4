-- pool_stats, pool_connections, dbpool_label and dbpool_version on one
-- connection; in-memory databases are not counted.
.load @EXT@
.mode list
SELECT database, max_connections, active, idle, waiting, peak_active, processes,
       total_acquired, total_released, total_timeouts, total_reclaimed,
       utilization, paused, acquire_timeout_ms,
       created_at GLOB '2[0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9].[0-9][0-9][0-9]Z'
  FROM pool_stats;
SELECT typeof(avg_wait_ms), typeof(p50_wait_ms), typeof(p95_wait_ms),
       typeof(p99_wait_ms), typeof(max_wait_ms) FROM pool_stats;
-- a second connection to the same file counts too (and the first one, the
-- loading connection, is closed by .open)
.open test.db
SELECT 'after .open', active, total_acquired, total_released, peak_active FROM pool_stats;
SELECT 'records', records_in_use, records_max FROM pool_stats;
.open test.db
ATTACH 'test.db' AS again;
SELECT 'attach adds no slot', active FROM pool_stats;
DETACH again;
-- the equality constraint reads only that pool; the row is kept only when
-- the recorded absolute path equals the value
SELECT 'by path', count(*) FROM pool_stats WHERE database = '@DIR@/test.db';
SELECT 'relative path', count(*) FROM pool_stats WHERE database = 'test.db';
SELECT 'no such file', count(*) FROM pool_stats WHERE database = '/nonexistent/x.db';
-- who holds what
SELECT database, process, thread > 0, state, duration_ms >= 0, label, current,
       since GLOB '2*Z'
  FROM pool_connections;
SELECT dbpool_label('nightly-report');
SELECT 'labelled', label FROM pool_connections WHERE current;
SELECT dbpool_label('a label that is much longer than forty-seven bytes, cut');
SELECT dbpool_label(NULL) IS NULL, (SELECT label FROM pool_connections WHERE current) IS NULL;
SELECT dbpool_label('x', 'y');
SELECT dbpool_version() = (SELECT dbpool_version());
-- settings changes show in the stats at once
UPDATE pool_settings SET value = 3 WHERE name = 'max_connections';
SELECT 'limit 3', max_connections, round(utilization, 4) FROM pool_stats;
-- in-memory: no slot, no settings, and the label cannot be set
.open :memory:
SELECT 'memory', (SELECT active FROM pool_stats WHERE database = '@DIR@/test.db');
SELECT 'memory settings', count(*) FROM pool_settings;
SELECT dbpool_label('x');
SELECT 'memory sees pools', count(*) >= 1 FROM pool_stats;
