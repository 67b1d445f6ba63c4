-- pool_settings inside savepoints: ROLLBACK TO forgets the changes made
-- since the savepoint, RELEASE keeps them for the commit, and nothing
-- applies before the transaction commits.
.load @EXT@
.open test.db
BEGIN;
UPDATE pool_settings SET value = 5 WHERE name = 'max_connections';
SAVEPOINT a;
UPDATE pool_settings SET value = 7 WHERE name = 'max_connections';
SELECT 'pending until commit', value FROM pool_settings WHERE name = 'max_connections';
ROLLBACK TO a;
SAVEPOINT b;
SAVEPOINT c;
UPDATE pool_settings SET value = 1 WHERE name = 'paused';
RELEASE c;
ROLLBACK TO b;
COMMIT;
SELECT 'rolled back to a and b', name, value FROM pool_settings;
-- savepoints as the transaction itself, released in turn
SAVEPOINT outer1;
UPDATE pool_settings SET value = 9 WHERE name = 'max_connections';
SAVEPOINT inner1;
UPDATE pool_settings SET value = 250 WHERE name = 'acquire_timeout_ms';
RELEASE inner1;
RELEASE outer1;
SELECT 'released', name, value FROM pool_settings;
-- a savepoint begun before the table joins the transaction
BEGIN;
SAVEPOINT s1;
SAVEPOINT s2;
UPDATE pool_settings SET value = 4 WHERE name = 'max_connections';
ROLLBACK TO s1;
UPDATE pool_settings SET value = 6 WHERE name = 'max_connections';
RELEASE s1;
COMMIT;
SELECT 'joined late', value FROM pool_settings WHERE name = 'max_connections';
-- ROLLBACK TO the outermost savepoint keeps the transaction open
SAVEPOINT t1;
UPDATE pool_settings SET value = 3 WHERE name = 'max_connections';
ROLLBACK TO t1;
UPDATE pool_settings SET value = 30 WHERE name = 'writer_starvation_ms';
RELEASE t1;
SELECT 'outermost', name, value FROM pool_settings WHERE name IN ('max_connections', 'writer_starvation_ms');
-- the same with a savepoint between, and a new transaction after
SAVEPOINT u1;
SAVEPOINT u2;
UPDATE pool_settings SET value = 2 WHERE name = 'max_connections';
ROLLBACK TO u1;
RELEASE u1;
SELECT 'outermost again', value FROM pool_settings WHERE name = 'max_connections';
