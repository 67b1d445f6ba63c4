-- dbpool_setting and dbpool_wait, the functions of the operator scripts
-- (sql/), on the pool of
-- test.db by its path; every way of getting them wrong.
.load @EXT@
-- test.db is the shell's own database: its pool exists (the loading
-- connection counts)
SELECT dbpool_setting('@DIR@/test.db', 'max_connections');
SELECT 'set', dbpool_setting('@DIR@/test.db', 'max_connections', 7);
SELECT 'get', dbpool_setting('@DIR@/test.db', 'max_connections');
SELECT 'stats', max_connections FROM pool_stats WHERE database = '@DIR@/test.db';
SELECT 'paused', dbpool_setting('@DIR@/test.db', 'paused', 'on');
SELECT 'paused', dbpool_setting('@DIR@/test.db', 'paused', 0);
SELECT 'text', dbpool_setting('@DIR@/test.db', 'acquire_timeout_ms', ' 3.0e3 ');
-- invalid: nothing changes
SELECT dbpool_setting('@DIR@/test.db', 'max_connections', 0);
SELECT dbpool_setting('@DIR@/test.db', 'max_connections', 'lots');
SELECT dbpool_setting('@DIR@/test.db', 'max_conections', 3);
SELECT dbpool_setting(NULL, 'paused');
SELECT dbpool_setting('@DIR@/missing.db', 'paused', 1);
SELECT 'unchanged', dbpool_setting('@DIR@/test.db', 'max_connections');
-- dbpool_wait
SELECT 'true at once', dbpool_wait('SELECT waiting = 0 FROM pool_stats WHERE database = '
                                   || quote('@DIR@/test.db'), 1000);
SELECT 'true later', dbpool_wait('SELECT 2 > 1', 0);
SELECT dbpool_wait('SELECT 0', 50);
SELECT dbpool_wait('SELECT NULL', 0);
SELECT dbpool_wait('SELECT 1 WHERE 0', 0);
SELECT dbpool_wait('SELECT * FROM nowhere', 100);
SELECT dbpool_wait('CREATE TABLE x(y)', 100);
SELECT dbpool_wait('SELECT 1; SELECT 2', 100);
SELECT dbpool_wait('SELECT 1', -1);
SELECT dbpool_wait('SELECT 1', 86400001);
SELECT dbpool_wait(NULL, 100);
SELECT dbpool_wait('SELECT 1', NULL);
-- DIRECTONLY: not from a view in the database
CREATE VIEW v AS SELECT dbpool_setting('@DIR@/test.db', 'paused') AS p;
SELECT * FROM v;
-- one registration serves both forms: any other count is an error
SELECT dbpool_setting('@DIR@/test.db');
SELECT dbpool_setting('@DIR@/test.db', 'paused', 1, 2);
SELECT 'still', dbpool_setting('@DIR@/test.db', 'paused');
