-- dbpool_wait conditions that fail when run, are empty, are not queries
-- or end in blanks and semicolons; dbpool_setting with NULL arguments.
.load @EXT@
SELECT dbpool_wait('SELECT abs(-9223372036854775807 - 1)', 100);
SELECT dbpool_wait('', 100);
SELECT dbpool_wait('-- only a comment', 100);
SELECT dbpool_wait('BEGIN', 100);
SELECT 'blanks after', dbpool_wait('SELECT 1;  ;' || char(10), 0);
SELECT dbpool_setting('@DIR@/test.db', NULL);
SELECT dbpool_setting('@DIR@/test.db', 'paused', NULL);
SELECT 'unchanged', dbpool_setting('@DIR@/test.db', 'paused');
