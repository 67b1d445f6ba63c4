-- The API surface: what loading dbpool adds, compared with the documented set.
CREATE TEMP TABLE modules_before AS SELECT name FROM pragma_module_list;
CREATE TEMP TABLE functions_before AS SELECT name FROM pragma_function_list;
.load @EXT@
SELECT 'module', name FROM pragma_module_list
 WHERE name NOT IN (SELECT name FROM modules_before)
   AND name NOT LIKE 'pragma_%' ORDER BY name;
SELECT DISTINCT 'function', name, narg FROM pragma_function_list
 WHERE name NOT IN (SELECT name FROM functions_before) ORDER BY name;
.vfsname
.open test.db
.vfsname
SELECT 'pragma', 'dbpool_' || name, typeof(value) FROM pool_settings ORDER BY name;
PRAGMA dbpool_acquire_timeout_ms;
PRAGMA dbpool_max_connections;
PRAGMA dbpool_paused;
SELECT 'pool_stats', group_concat(name, ',') FROM pragma_table_info('pool_stats');
SELECT 'pool_connections', group_concat(name, ',') FROM pragma_table_info('pool_connections');
SELECT 'pool_settings', group_concat(name, ',') FROM pragma_table_info('pool_settings');
SELECT 'version', dbpool_version() GLOB '[0-9]*.[0-9]*.[0-9]*';
