/*
** operator.c -- the SQL functions operators' scripts need (sql/ at the top
** of the tree): dbpool_setting(database, name [, value]) reads or changes a
** setting of any pool by its database path, and dbpool_wait(condition,
** timeout_ms) waits until a query says yes. SQL cannot sleep or loop by
** itself; with these, a drain or a resize is a plain SQL script, run from a
** connection that holds no slot (the shell's :memory:), so that it works
** when the pool is full -- which is when it is needed.
**
**   .load ./build/dbpool
**   SELECT dbpool_setting('/srv/app.db', 'paused', 1);
**   SELECT dbpool_wait('SELECT active - idle = 0 FROM pool_stats
**                       WHERE database = ''/srv/app.db''', 60000);
**   SELECT dbpool_setting('/srv/app.db', 'paused', 0);
**
** dbpool_setting(database, name) returns the value; with a value, it sets
** it (the same validation as pool_settings and dbpoolctl set; a pool that
** does not exist yet is created with it) and returns the value in effect.
** dbpool_wait runs condition, one query, on this connection every 20 ms
** until the first column of its first row is true, and returns 1; it fails
** with "dbpool_wait: still false after N ms: CONDITION" at the timeout.
**
** LIMITATIONS
**   - dbpool_wait blocks the calling statement (and connection) while it
**     waits; sqlite3_interrupt (Ctrl-C in the shell) ends it.
**   - The condition runs inside the calling statement's transaction: it sees
**     live values in pool_stats and pool_connections, but ordinary tables
**     only as of that transaction's snapshot.
**   - Both are DIRECTONLY: not from triggers or views.
*/
#include <errno.h>
#include <string.h>
#include <time.h>

#include "ext.h"
SQLITE_EXTENSION_INIT3

#define WAIT_POLL_MS 20

/* ------------------------------------------------------- dbpool_setting */

static void setting_func(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  if (argc != 2 && argc != 3) {
    /* One registration for both forms (nArg -1): every registration is
    ** paid on every open, so SQLite's own count check is done here. */
    char *msg = sqlite3_mprintf("dbpool_setting: expected (database, name) or "
                                "(database, name, value), got %d argument%s",
                                argc, argc == 1 ? "" : "s");
    sqlite3_result_error(ctx, msg ? msg : "dbpool_setting: wrong number of arguments", -1);
    sqlite3_free(msg);
    return;
  }
  const char *path = (const char *)sqlite3_value_text(argv[0]);
  const char *name = (const char *)sqlite3_value_text(argv[1]);
  int s = name ? dbpool_setting_lookup(name) : -EINVAL;
  if (!path || !name) {
    sqlite3_result_error(ctx, "dbpool_setting: database and name must not be NULL", -1);
    return;
  }
  int64_t v = 0;
  int rc = s;
  dbpool_coord *c = NULL;
  if (rc >= 0 && argc == 3) {
    const char *text = (const char *)sqlite3_value_text(argv[2]);
    rc = dbpool_setting_parse(s, text ? text : "", &v);
    int64_t values[DBPOOL_SETTING_COUNT];
    for (int k = 0; k < DBPOOL_SETTING_COUNT; k++) values[k] = DBPOOL_SETTING_UNSET;
    values[s] = v; /* a pool created now starts with it */
    if (rc == 0) rc = dbpool_coord_open_with(path, values, &c);
    if (rc == 0) rc = dbpool_coord_set(c, s, v);
  } else if (rc >= 0) {
    rc = dbpool_coord_open(path, DBPOOL_OPEN_READONLY | DBPOOL_OPEN_NOCREATE, &c);
  }
  if (rc >= 0) rc = dbpool_coord_get(c, s, &v);
  dbpool_coord_close(c);
  if (rc < 0) sqlite3_result_error(ctx, dbpool_last_error(), -1);
  else sqlite3_result_int64(ctx, v);
}

/* ---------------------------------------------------------- dbpool_wait */

static void sleep_ms(int ms)
{
  /* Not sqlite3_sleep: the VFS's xSleep is where the writer gate waits. */
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* One evaluation: 1 true, 0 false, or a SQLite error (message in *err). */
static int condition_holds(sqlite3_stmt *stmt, char **err)
{
  int rc = sqlite3_step(stmt);
  int holds = rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL &&
              sqlite3_column_double(stmt, 0) != 0.0;
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
  if (rc != SQLITE_OK)
    *err = sqlite3_mprintf("dbpool_wait: %s", sqlite3_errmsg(sqlite3_db_handle(stmt)));
  sqlite3_reset(stmt);
  return rc != SQLITE_OK ? -rc : holds;
}

static void wait_func(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  const char *sql = (const char *)sqlite3_value_text(argv[0]);
  sqlite3_int64 timeout_ms = sqlite3_value_int64(argv[1]);
  sqlite3_stmt *stmt = NULL;
  const char *tail = NULL;
  char *err = NULL;
  (void)argc;
  if (!sql || sqlite3_value_type(argv[1]) == SQLITE_NULL || timeout_ms < 0 ||
      timeout_ms > DBPOOL_ACQUIRE_TIMEOUT_LIMIT) {
    sqlite3_result_error(ctx, "dbpool_wait: expected a query and a timeout in ms "
                         "from 0 to 86400000", -1);
    return;
  }
  int rc = sqlite3_prepare_v2(sqlite3_context_db_handle(ctx), sql, -1, &stmt, &tail);
  if (rc != SQLITE_OK) {
    err = sqlite3_mprintf("dbpool_wait: %s", sqlite3_errmsg(sqlite3_context_db_handle(ctx)));
  } else if (!stmt || !sqlite3_stmt_readonly(stmt) || sqlite3_column_count(stmt) < 1 ||
             (tail && tail[strspn(tail, " \t\r\n;")])) {
    err = sqlite3_mprintf("dbpool_wait: the condition must be one query that "
                          "returns a value: %s", sql);
  }
  int64_t deadline = dbp_mono_ns() + (int64_t)timeout_ms * 1000000;
  int holds = 0;
  while (!err) {
    holds = condition_holds(stmt, &err);
    if (holds != 0) break;
    int64_t left_ms = (deadline - dbp_mono_ns()) / 1000000;
    if (left_ms <= 0) {
      err = sqlite3_mprintf("dbpool_wait: still false after %lld ms: %s",
                            (long long)timeout_ms, sql);
      break;
    }
    sleep_ms(left_ms < WAIT_POLL_MS ? (int)left_ms : WAIT_POLL_MS);
  }
  sqlite3_finalize(stmt);
  if (err || holds < 0) {
    sqlite3_result_error(ctx, err ? err : "dbpool_wait: out of memory", -1);
    if (holds < 0) sqlite3_result_error_code(ctx, -holds);
    sqlite3_free(err);
    return;
  }
  sqlite3_result_int(ctx, 1);
}

int dbx_register_operator_functions(sqlite3 *db)
{
  int flags = SQLITE_UTF8 | SQLITE_DIRECTONLY;
  int rc = sqlite3_create_function_v2(db, "dbpool_setting", -1, flags, NULL, setting_func,
                                      NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function_v2(db, "dbpool_wait", 2, flags, NULL, wait_func, NULL,
                                    NULL, NULL);
  return rc;
}
