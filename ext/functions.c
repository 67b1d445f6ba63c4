/*
** functions.c -- the SQL functions dbpool_version() and dbpool_label(text).
**
**   .load ./build/dbpool
**   SELECT dbpool_version();                 -- '0.1.0'
**   SELECT dbpool_label('nightly-report');    -- label this connection
**   SELECT label FROM pool_connections WHERE current;
**
** dbpool_label sets the label shown with the calling connection in
** pool_connections (and dbpoolctl): NULL or '' clears it; labels longer than
** 47 bytes are cut at a character boundary. It returns the label stored
** (NULL when cleared).
**
** LIMITATIONS
**   - A connection to an in-memory or temporary database, or to something
**     that is not a regular file, holds no slot and so cannot be labelled
**     (an error says so).
*/
#include <string.h>

#include "ext.h"
SQLITE_EXTENSION_INIT3

static void version_func(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  (void)argc;
  (void)argv;
  sqlite3_result_text(ctx, dbpool_version(), -1, SQLITE_STATIC);
}

static void label_func(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  dbx_conn *conn = sqlite3_user_data(ctx);
  const char *label = (const char *)sqlite3_value_text(argv[0]);
  int rc;
  (void)argc;
  if (conn->record == DBP_NO_RECORD) {
    sqlite3_result_error(ctx, "dbpool_label: this connection holds no slot "
                         "(in-memory, temporary or not a regular file)", -1);
    return;
  }
  if (!label && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
    sqlite3_result_error_nomem(ctx); /* the value could not be made text */
    return;
  }
  /* All or nothing: what can fail (memory for the answer) before the label
  ** is stored; the answer then takes the copy without allocating. */
  char *stored = sqlite3_malloc64(DBPOOL_LABEL_MAX);
  if (!stored) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  dbx_conn_follow(conn); /* a pool removed under us: the new one */
  if (conn->holder)
    rc = dbpool_holder_set_label(conn->holder, label);
  else
    rc = dbp_coord_set_record_label(conn->coord, conn->record, label);
  if (rc) {
    sqlite3_free(stored);
    sqlite3_result_error(ctx, dbpool_last_error(), -1);
    return;
  }
  dbp_coord_record_label(conn->coord, conn->record, stored, DBPOOL_LABEL_MAX);
  if (stored[0]) {
    sqlite3_result_text(ctx, stored, -1, sqlite3_free);
  } else {
    sqlite3_free(stored);
    sqlite3_result_null(ctx);
  }
}

int dbx_register_functions(sqlite3 *db, dbx_conn *conn)
{
  int rc = sqlite3_create_function_v2(db, "dbpool_version", 0,
                                      SQLITE_UTF8 | SQLITE_INNOCUOUS |
                                          SQLITE_DETERMINISTIC,
                                      NULL, version_func, NULL, NULL, NULL);
  if (rc == SQLITE_OK) {
    dbx_conn_ref(conn);
    rc = sqlite3_create_function_v2(db, "dbpool_label", 1,
                                    SQLITE_UTF8 | SQLITE_DIRECTONLY, conn,
                                    label_func, NULL, NULL, dbx_conn_unref);
  }
  if (rc == SQLITE_OK) rc = dbx_register_operator_functions(db);
  return rc;
}
