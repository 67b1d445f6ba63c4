-- pool_settings and PRAGMA dbpool_*: reading, changing, and every way of
-- getting it wrong (each error names the value and changes nothing).
.load @EXT@
.headers on
.mode list
SELECT * FROM pool_settings;
.headers off
UPDATE pool_settings SET value = 20 WHERE name = 'max_connections';
SELECT 'after update', value FROM pool_settings WHERE name = 'max_connections';
-- invalid values
UPDATE pool_settings SET value = 0 WHERE name = 'max_connections';
UPDATE pool_settings SET value = -5 WHERE name = 'max_connections';
UPDATE pool_settings SET value = 4097 WHERE name = 'max_connections';
UPDATE pool_settings SET value = 'twenty' WHERE name = 'max_connections';
UPDATE pool_settings SET value = 2.5 WHERE name = 'max_connections';
UPDATE pool_settings SET value = NULL WHERE name = 'max_connections';
UPDATE pool_settings SET value = -1 WHERE name = 'acquire_timeout_ms';
UPDATE pool_settings SET value = 2 WHERE name = 'paused';
-- unknown name, other columns, insert, delete
UPDATE pool_settings SET value = 1 WHERE name = 'max_conections';
SELECT * FROM pool_settings WHERE name = 'nope';
UPDATE pool_settings SET name = 'limit' WHERE name = 'max_connections';
UPDATE pool_settings SET default_value = 1 WHERE name = 'max_connections';
UPDATE pool_settings SET description = 'x' WHERE name = 'paused';
INSERT INTO pool_settings VALUES ('max_idle', 1, 1, 'no such thing');
DELETE FROM pool_settings WHERE name = 'paused';
-- one bad row fails the whole statement: nothing changes
UPDATE pool_settings SET value = 7;
SELECT 'unchanged', name, value FROM pool_settings;
-- a transaction applies at commit, or not at all
BEGIN;
UPDATE pool_settings SET value = 8 WHERE name = 'max_connections';
ROLLBACK;
SELECT 'rolled back', value FROM pool_settings WHERE name = 'max_connections';
BEGIN;
UPDATE pool_settings SET value = 9 WHERE name = 'max_connections';
UPDATE pool_settings SET value = 0 WHERE name = 'max_connections';
UPDATE pool_settings SET value = 'on' WHERE name = 'paused';
COMMIT;
SELECT 'committed', name, value FROM pool_settings;
UPDATE pool_settings SET value = 'off' WHERE name = 'paused';
-- pragmas: only on connections opened after loading
PRAGMA dbpool_max_connections;
.open test.db
PRAGMA dbpool_max_connections;
PRAGMA dbpool_max_connections = 12;
PRAGMA dbpool_max_connections;
PRAGMA main.dbpool_acquire_timeout_ms = 250;
PRAGMA dbpool_acquire_timeout_ms;
PRAGMA dbpool_paused = on;
PRAGMA dbpool_paused;
PRAGMA dbpool_paused = 0;
PRAGMA dbpool_max_connections = 0;
PRAGMA dbpool_max_connections = 'lots';
PRAGMA dbpool_acquire_timeout_ms = -3;
PRAGMA dbpool_maxconnections = 3;
PRAGMA dbpool_stats = 1;
PRAGMA DBPOOL_MAX_CONNECTIONS;
SELECT 'pragma and table agree', value FROM pool_settings WHERE name = 'max_connections';
-- the writer queue's settings: on/off words, range, live in pool_stats
PRAGMA dbpool_writer_queue = off;
SELECT 'queue', writer_queue FROM pool_stats WHERE database = '@DIR@/test.db';
PRAGMA dbpool_writer_queue = maybe;
PRAGMA dbpool_writer_starvation_ms = 60001;
PRAGMA dbpool_writer_starvation_ms = 5;
UPDATE pool_settings SET value = 'on' WHERE name = 'writer_queue';
SELECT 'queue', writer_queue, writers_waiting, total_writes FROM pool_stats WHERE database = '@DIR@/test.db';
