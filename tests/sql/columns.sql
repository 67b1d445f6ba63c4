-- Every column and the rowid of pool_stats and pool_connections,
-- constraints the tables leave to SQLite (other columns and operators,
-- NULL, a join's not-yet-usable side), changes pool_settings refuses, the
-- summary pragma of a rollback-journal database, and a listing of more
-- pools than its first allocation holds.
.load @EXT@
.open test.db
PRAGMA journal_mode = wal;
INSERT INTO t VALUES (2);
SELECT 'writer columns', typeof(write_wait_p50_ms), typeof(write_wait_p99_ms),
       typeof(write_wait_p999_ms), typeof(write_wait_max_ms), writer_turns_skipped,
       writer_turns_expired, total_writes >= 1, total_write_waits
  FROM pool_stats WHERE database = '@DIR@/test.db';
SELECT 'rowid', rowid FROM pool_stats WHERE database = '@DIR@/test.db';
SELECT 'rowid', rowid, writer, write_wait_ms FROM pool_connections
 WHERE database = '@DIR@/test.db';
SELECT 'by other column', count(*) FROM pool_stats
 WHERE max_connections = 10 AND database LIKE '%/test.db';
SELECT 'by other operator', count(*) FROM pool_stats
 WHERE database > '' AND database LIKE '%/test.db';
SELECT 'stats = NULL', count(*) FROM pool_stats WHERE database = NULL;
SELECT 'connections = NULL', count(*) FROM pool_connections WHERE database = NULL;
SELECT 'connections by other operator', count(*) FROM pool_connections
 WHERE database LIKE '%/test.db';
SELECT 'connections by other column', count(*) FROM pool_connections
 WHERE pid > 0 AND current AND database LIKE '%/test.db';
SELECT 'stats joined', q.n, s.max_connections FROM (SELECT '@DIR@/test.db' AS n) AS q
  LEFT JOIN pool_stats AS s ON s.database = q.n;
SELECT 'connections joined', q.n, c.current FROM (SELECT '@DIR@/test.db' AS n) AS q
  LEFT JOIN pool_connections AS c ON c.database = q.n;
SELECT 'settings by value', name FROM pool_settings WHERE value = 10;
SELECT 'settings by range', count(*) FROM pool_settings WHERE name > 'a';
SELECT 'settings joined', q.n, p.value FROM (SELECT 'paused' AS n) AS q
  LEFT JOIN pool_settings AS p ON p.name = q.n;
-- changes pool_settings refuses
UPDATE pool_settings SET name = NULL WHERE name = 'paused';
UPDATE pool_settings SET default_value = '10' WHERE name = 'max_connections';
UPDATE pool_settings SET default_value = 10 WHERE name = 'max_connections';
UPDATE pool_settings SET rowid = 99 WHERE name = 'paused';
SELECT 'unchanged', name, value FROM pool_settings;
-- a rollback-journal database's writes: the queue is inactive there
.open rollback.db
CREATE TABLE r(x);
INSERT INTO r VALUES (1);
PRAGMA dbpool_stats;
-- more pools than the listing's first allocation
.open p1.db
CREATE TABLE x(y);
.open p2.db
CREATE TABLE x(y);
.open p3.db
CREATE TABLE x(y);
.open p4.db
CREATE TABLE x(y);
SELECT 'pools', count(*) FROM pool_stats WHERE database LIKE '@DIR@/%';
SELECT 'pools listed', count(DISTINCT database) FROM pool_connections;
