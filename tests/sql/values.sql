-- The one rule for setting values, through every SQL entry point:
-- surrounding whitespace is ignored, a REAL with an integral value is that
-- integer, a fraction is refused with the standard message.
.load @EXT@
.open test.db
UPDATE pool_settings SET value = ' 5' WHERE name = 'max_connections';
SELECT 'leading space', value FROM pool_settings WHERE name = 'max_connections';
UPDATE pool_settings SET value = '6 ' WHERE name = 'max_connections';
SELECT 'trailing space', value FROM pool_settings WHERE name = 'max_connections';
UPDATE pool_settings SET value = 3.0 WHERE name = 'max_connections';
SELECT 'real 3.0', value FROM pool_settings WHERE name = 'max_connections';
UPDATE pool_settings SET value = 3.5 WHERE name = 'max_connections';
UPDATE pool_settings SET value = ' on ' WHERE name = 'paused';
UPDATE pool_settings SET value = 0.0 WHERE name = 'paused';
SELECT 'paused', value FROM pool_settings WHERE name = 'paused';
UPDATE pool_settings SET value = 1500.0 WHERE name = 'acquire_timeout_ms';
SELECT 'timeout', value FROM pool_settings WHERE name = 'acquire_timeout_ms';
UPDATE pool_settings SET value = 4097.0 WHERE name = 'max_connections';
PRAGMA dbpool_max_connections = ' 7';
PRAGMA dbpool_max_connections = '8 ';
PRAGMA dbpool_max_connections = 9.0;
PRAGMA dbpool_max_connections = 9.5;
PRAGMA dbpool_acquire_timeout_ms = ' 250 ';
PRAGMA dbpool_paused = ' off';
SELECT 'after pragmas', name, value FROM pool_settings;
